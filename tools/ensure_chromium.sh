#!/bin/sh
# `make test` runs a real-browser test in Debian's Chromium. Find it, install it when we may
# (root with apt-get), or say at once the one command that installs it: not after the other suites.
set -eu
# LAB_CHROMIUM is for the test of this script.
CHROMIUM=${LAB_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "${LAB_SKIP_BROWSER:-}" = "1" ]; then
    echo "LAB_SKIP_BROWSER=1: the browser test will be skipped on request." >&2
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser test (apt-get, once)..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    exit 0
fi
echo "The browser test needs Debian's Chromium at $CHROMIUM. Install it with:" >&2
echo "    sudo apt-get install -y chromium" >&2
echo "then run make test again (or LAB_SKIP_BROWSER=1 make test to skip that one test)." >&2
exit 2
