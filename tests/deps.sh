#!/bin/sh
# Installs the Debian packages that building and testing need, when they are missing.
# As root it runs apt-get; otherwise it only lists what is missing and fails.
set -eu

PKGS="build-essential pkg-config libmicrohttpd-dev libcurl4-openssl-dev libcjson-dev libpcre2-dev
      libssl-dev curl ca-certificates openssl python3 python3-pytest python3-pytest-xdist
      docker-registry skopeo apache2-utils python3-jwt python3-cryptography clang clang-format
      valgrind wrk chromium chromium-driver python3-selenium"
[ $# -gt 0 ] && PKGS="$*"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
    exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
