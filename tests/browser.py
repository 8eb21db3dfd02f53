"""Where the Chromium for the gallery's browser test is: `python tests/browser.py` prints its path (exit 1 when
there is none). Used by tests/test_gallery.py and scripts/dev-setup.sh."""

import os
import shutil
import sys

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


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


if __name__ == "__main__":
    found = find_chromium()
    print(found or "no Chromium found")
    sys.exit(0 if found else 1)
