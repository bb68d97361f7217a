"""A report page opened in a real headless browser (Debian's chromium, driven by Playwright).

``inspect_page`` loads a file, records console messages, page errors and every request, checks
what is on the page and keeps a full-page screenshot. ``browser_missing`` says why it cannot run
(the tests skip with that reason)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser")

PAGE_FACTS = """() => {
  const internal = [...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute('href').slice(1));
  const sources = [...document.querySelectorAll('[src],[href],link,script')]
    .map(e => e.getAttribute('src') || e.getAttribute('href') || e.tagName)
    .filter(u => !u.startsWith('#') && !u.startsWith('data:'));
  return {
    figures: [...document.querySelectorAll('figure')].map(f => f.id),
    images: [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth, alt: i.alt})),
    tables: [...document.querySelectorAll('table')].map(t => t.id),
    rows: Object.fromEntries([...document.querySelectorAll('table')].map(t => [t.id, t.tBodies[0].rows.length])),
    internal_links: internal.length,
    broken_links: internal.filter(id => !document.getElementById(decodeURIComponent(id))),
    external: sources,
    scripts: document.scripts.length,
  };
}"""


def chromium_path() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return "no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"
    return None


def inspect_page(page_file: Path, screenshot: Path, *, click: str | None = None) -> dict[str, Any]:
    """Facts about the loaded page; ``click``: a link's href to follow, reporting the hash and
    whether its target is then in view."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # --no-sandbox: CI containers run as root, where chromium's sandbox refuses to start
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            console: list[str] = []
            requests: list[str] = []
            page.on(
                "console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
            )
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            facts: dict[str, Any] = page.evaluate(PAGE_FACTS)
            page.screenshot(path=str(screenshot), full_page=True)
            if click:
                page.click(f'a[href="{click}"] >> nth=0')
                target = click[1:]
                facts["hash_after_click"] = page.evaluate("() => location.hash")
                facts["target_in_view"] = page.evaluate(
                    "id => { const r = document.getElementById(id).getBoundingClientRect();"
                    " return r.top >= -1 && r.top < window.innerHeight; }",
                    target,
                )
        finally:
            browser.close()
    facts["console"] = console
    facts["requests"] = [u for u in requests if not u.startswith(("data:", page_file.resolve().as_uri()))]
    return facts
