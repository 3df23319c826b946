"""First paint of every dashboard page in headless Chromium, on the demo organisation and at 10M events (issue 8).

Target: first page paint <= 1 s on localhost. The server is the real one (`create_app` under
uvicorn in a thread, the ledgers `bench/analytics.py` builds and keeps); Chromium is Debian's
`/usr/bin/chromium` driven by Playwright, signed in as an admin. For each page the browser's own
Paint Timing is read: `first-contentful-paint` from the start of navigation, with the time to the
first byte of the HTML beside it (the server's share). Each page is loaded cold (the server's read
cache emptied first: the first visitor after a write) and then warm, and the median of `--repeat`
loads of each is printed:

    .venv/bin/python bench/paint.py [--sizes demo,10m] [--repeat 3]
        [--ledger /tmp/tokenops-bench-analytics.duckdb] [--demo-ledger /tmp/tokenops-bench-demo.duckdb]

A missing ledger is built first (`bench/analytics.py` does the same; building 10M events takes minutes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the ledgers bench/analytics.py builds and keeps
from analytics import build, build_demo

from tokenops.config import Settings
from tokenops.store import DuckDBLedger
from tokenops.testing import serve_in_thread
from tokenops.web import create_app
from tokenops.web.api_cache import read_cache
from tokenops.web.html import NAV
from tokenops.web.users import user_store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "bench-password-1"
TARGET_MS = 1000.0
_PAINT = """() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    return {ttfb: nav.responseStart - nav.startTime, fcp: fcp ? fcp.startTime : null};
}"""


def _load(page: Page, url: str) -> tuple[float, float]:
    """(first byte, first contentful paint) in ms for one navigation."""
    reply = page.goto(url, wait_until="load")
    if reply is None or reply.status != 200:
        raise SystemExit(f"{url}: HTTP {reply.status if reply else 'no reply'}")
    page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0", timeout=30_000)
    timing = page.evaluate(_PAINT)
    return float(timing["ttfb"]), float(timing["fcp"])


def measure(ledger_path: Path, repeat: int) -> dict[str, tuple[float, float, float, float]]:
    """Per page: median cold first byte, cold first paint, warm first byte, warm first paint (ms)."""
    with tempfile.TemporaryDirectory() as state, DuckDBLedger(ledger_path) as ledger:
        settings = Settings(ledger=str(ledger_path), data_dir=Path(state))
        user_store(settings).create("bench-admin", "admin", password=PASSWORD)
        app = create_app(settings, ledger)
        cache = read_cache(app)
        with serve_in_thread(app) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_context().new_page()
            page.goto(url + "/")
            page.fill("input[name=name]", "bench-admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("form.signin button")
            page.wait_for_url(url + "/")
            results = {}
            for _, path, _ in NAV:
                cold, warm = [], []
                for _ in range(repeat):
                    cache.clear()
                    cold.append(_load(page, url + path))
                    warm.append(_load(page, url + path))
                results[path] = (
                    statistics.median(t for t, _ in cold),
                    statistics.median(f for _, f in cold),
                    statistics.median(t for t, _ in warm),
                    statistics.median(f for _, f in warm),
                )
            browser.close()
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="demo,10m", help="demo, 10m or both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--ledger", type=Path, default=Path("/tmp/tokenops-bench-analytics.duckdb"))
    parser.add_argument("--demo-ledger", type=Path, default=Path("/tmp/tokenops-bench-demo.duckdb"))
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    runs: dict[str, dict[str, tuple[float, float, float, float]]] = {}
    if "demo" in sizes:
        if not args.demo_ledger.exists():
            build_demo(args.demo_ledger)
        runs["demo"] = measure(args.demo_ledger, args.repeat)
    if "10m" in sizes:
        if not args.ledger.exists():
            build(args.ledger, args.events)
        runs["10M"] = measure(args.ledger, args.repeat)
    print(f"\nfirst contentful paint, median of {args.repeat} (ms; target <= {TARGET_MS:.0f} cold)")
    print(f"{'size':<6}{'page':<18}{'cold byte':>10}{'cold paint':>11}{'warm byte':>10}{'warm paint':>11}")
    for size, pages in runs.items():
        for path, (cold_byte, cold_paint, warm_byte, warm_paint) in pages.items():
            verdict = "ok" if cold_paint <= TARGET_MS else "SLOW"
            cold = f"{cold_byte:>10.0f}{cold_paint:>11.0f}"
            print(f"{size:<6}{path:<18}{cold}{warm_byte:>10.0f}{warm_paint:>11.0f}  {verdict}")


if __name__ == "__main__":
    main()
