"""Where the Chromium for the explorer's browser tests is: `python tests/browser.py` prints its path (exit 1 when
there is none), and `browse` runs a check in it. Used by tests/test_gallery.py, tests/test_explorer_escaping.py
and scripts/dev-setup.sh."""

import os
import shutil
import sys

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def find_chromium() -> str | None:
    """$KERASVIZ_CHROMIUM, else a Chromium or Chrome on the PATH, else the one `playwright install chromium`
    downloaded; None when there is none."""
    given = os.environ.get("KERASVIZ_CHROMIUM")
    if given:
        return given if os.path.exists(given) else None
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            path = p.chromium.executable_path
        return path if os.path.exists(path) else None
    except Exception:  # no Playwright, or no browser of its own
        return None


def browse(check, viewport: dict | None = None) -> None:
    """Run `check(page)` on a page of headless Chromium, then assert that no page logged an error or a warning
    and that nothing was fetched from outside the file system."""
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    assert chromium, "No Chromium: run scripts/dev-setup.sh (the README's set-up) or set KERASVIZ_CHROMIUM"
    problems, external = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=viewport) if viewport else browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else external.append(r.url))
            check(page)
        finally:
            browser.close()
    assert problems == [] and external == []


if __name__ == "__main__":
    found = find_chromium()
    print(found or "no Chromium found")
    sys.exit(0 if found else 1)
