#!/bin/sh
# Make headless Chromium and its WebDriver available for the leaderboard page test
# (tests/test_leaderboard_browser.py). Installs Debian's `chromium` and `chromium-driver` with
# apt-get when either is missing and we are root with apt-get; otherwise says why not and exits 0
# (the test then skips, saying so). Idempotent: does nothing when both are already installed.
set -u

have() { command -v "$1" >/dev/null 2>&1; }

if have chromium && have chromedriver; then
    echo "ensure_chromium: chromium and chromedriver already installed"
    exit 0
fi
if ! have apt-get; then
    echo "ensure_chromium: apt-get not found; install chromium and chromedriver yourself" \
         "(the browser test skips without them)"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "ensure_chromium: not root; run 'sudo apt-get install chromium chromium-driver'" \
         "(the browser test skips without them)"
    exit 0
fi
echo "ensure_chromium: installing chromium and chromium-driver with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >/dev/null \
   || ! apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; then
    echo "ensure_chromium: apt-get could not install chromium chromium-driver" \
         "(no network or no such package here); the browser test will skip"
    exit 0
fi
if have chromium && have chromedriver; then
    echo "ensure_chromium: installed $(chromium --version 2>/dev/null)"
else
    echo "ensure_chromium: apt-get finished but chromium or chromedriver is still missing"
fi
exit 0
