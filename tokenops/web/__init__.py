"""What people and programs read over HTTP: the JSON API and the dashboard.

Owns routes and response shapes. Numbers come from `tokenops.analytics`; this package only
parses query strings and serialises results (money as exact decimal strings).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenops.web.app import create_app


def __getattr__(name: str) -> Any:
    # imported on use, so that a module under tokenops.web (e.g. `responses`, used by the SDK)
    # does not pull in the whole server
    if name == "create_app":
        from tokenops.web.app import create_app

        return create_app
    raise AttributeError(f"module 'tokenops.web' has no attribute {name!r}")


__all__ = ["create_app"]
