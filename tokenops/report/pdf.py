"""HTML to PDF by printing it in headless Chromium (Debian's `/usr/bin/chromium`, driven by Playwright).

No network: the page is loaded with `set_content` and every request it would make is aborted,
so a report can never fetch anything (its HTML is self-contained anyway). Playwright never
downloads a browser here; the system Chromium must be installed (`make chromium`).
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
"""The browser that prints."""
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
"""Chromium flags: no sandbox (containers), no GPU, no background fetches."""


class PdfError(RuntimeError):
    """The PDF could not be produced (no Chromium, or it failed)."""


def _refuse(route: Route) -> None:
    route.abort()


def print_pdf(html: str, out: Path, *, chromium: Path = CHROMIUM) -> Path:
    """Write `html` as an A4 PDF to `out` (backgrounds printed, CSS `@page` honoured); returns `out`."""
    if not chromium.exists():
        raise PdfError(f"No Chromium at {str(chromium)!r}; install it (apt-get install chromium, or `make chromium`)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.route("**/*", _refuse)
            page.set_content(html, wait_until="load")
            page.pdf(path=str(out), format="A4", print_background=True, prefer_css_page_size=True)
        finally:
            browser.close()
    return out
