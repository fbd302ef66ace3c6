#!/bin/sh
# tests/ensure_check.sh - make sure the Check unit-test library (and pkg-config) is
# installed; install it with apt-get when possible, else say exactly what to run.
if pkg-config --exists check 2>/dev/null; then
    exit 0
fi
cmd="apt-get install -y check pkg-config"
echo "Check is not installed; trying: $cmd" >&2
if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        SUDO=
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=sudo
    else
        echo "error: cannot install Check without root; run: sudo $cmd" >&2
        exit 1
    fi
    $SUDO apt-get update -qq >&2 || true
    $SUDO apt-get install -y -qq check pkg-config >&2 || true
fi
if pkg-config --exists check 2>/dev/null; then
    exit 0
fi
echo "error: the Check library is missing; install it with: $cmd" >&2
exit 1
