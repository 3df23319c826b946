"""What people and programs read over HTTP: the JSON API (and, as it arrives, the dashboard).

Owns routes and response shapes. Numbers come from `tokenops.analytics`; this package only
parses query strings and serialises results (money as exact decimal strings).
"""

from tokenops.web.app import create_app

__all__ = ["create_app"]
