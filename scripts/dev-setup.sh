#!/usr/bin/env bash
# Set up a checkout for development: kerasviz with its test tools (pip), and a Chromium for the gallery's
# browser test (the system's, else Debian's package where apt-get can install it, else Playwright's own).
# The README's install command; CI runs it too.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[dev]"
if python tests/browser.py >/dev/null 2>&1; then
    echo "dev-setup: Chromium found: $(python tests/browser.py)"
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then
    as_root=""; [ "$(id -u)" = 0 ] || as_root="sudo"
    $as_root apt-get update -q && $as_root apt-get install -y -q chromium || true
fi
if ! python tests/browser.py >/dev/null 2>&1; then
    python -m playwright install chromium || true  # downloads Playwright's build (needs its download site)
fi
if python tests/browser.py >/dev/null 2>&1; then
    echo "dev-setup: Chromium found: $(python tests/browser.py)"
else
    echo "dev-setup: no Chromium for the gallery's browser test: install one (apt install chromium," \
         "brew install --cask chromium) or set KERASVIZ_CHROMIUM to its path" >&2
    exit 1
fi
