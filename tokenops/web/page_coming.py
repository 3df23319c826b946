"""Pages whose analytics are still being built: each says plainly what it will show, and shows no numbers.

Every entry names the analytics module and JSON API it will read. When that module lands, its
page gets its own `tokenops/web/page_<name>.py` (built on `tokenops.web.frame`) and its entry here
is deleted; the navigation (`tokenops.web.html.NAV`) already links to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from starlette.requests import Request
from starlette.responses import Response

from tokenops.web.frame import frame_for, respond


@dataclass(frozen=True, slots=True)
class Coming:
    """A page not built yet."""

    slug: str
    """Navigation slug."""
    path: str
    """Where it will live."""
    title: str
    """Heading."""
    shows: tuple[str, ...]
    """What it will show."""
    source: str
    """The analytics it waits for."""


COMING: tuple[Coming, ...] = ()
"""Every page of the navigation is built; a new page announced before its analytics lands goes here."""


def _endpoint(entry: Coming) -> Callable[[Request], Response]:
    def coming(request: Request) -> Response:
        frame = frame_for(request, entry.title, entry.slug)
        items = "".join(f"<li>{escape(item)}</li>" for item in entry.shows)
        content = (
            f'<section class="panel coming" data-coming="{escape(entry.slug)}"><h2>Not built yet</h2>'
            f"<p>This page is coming. It will show:</p><ul>{items}</ul>"
            f"<p>It waits for {escape(entry.source)}. Until then it shows no numbers rather than estimates; "
            'the <a href="/">Overview</a> and <a href="/workflows">Workflows</a> pages work now.</p></section>'
        )
        return respond(request, frame, content)

    coming.__name__ = f"coming_{entry.slug}"
    return coming


pages = [(entry.path, _endpoint(entry)) for entry in COMING]
