#!/bin/sh
# Set up a development machine: system packages (ZooKeeper for the tests and
# the demo; rpm, dnf and createrepo-c for the real-RPM tests; prometheus and
# systemd's systemd-analyze for the metrics and unit tests) and a virtual
# environment in .venv with the project and its test tools.
set -eu
cd "$(dirname "$0")/.."

missing=""
# Debian's python3 makes virtual environments only with python3-venv.
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing="$missing python3-venv"
[ -f /usr/share/java/zookeeper.jar ] || missing="$missing zookeeper"
command -v rpmbuild >/dev/null 2>&1 || missing="$missing rpm"
command -v dnf >/dev/null 2>&1 || missing="$missing dnf"
command -v createrepo_c >/dev/null 2>&1 || missing="$missing createrepo-c"
command -v java >/dev/null 2>&1 || missing="$missing default-jre-headless"
command -v git >/dev/null 2>&1 || missing="$missing git"
command -v svnadmin >/dev/null 2>&1 || missing="$missing subversion"
command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "Installing Debian packages:$missing"
        apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
        echo "Please install these Debian packages first:$missing" >&2
        echo "  sudo apt-get install -y$missing" >&2
        exit 1
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
