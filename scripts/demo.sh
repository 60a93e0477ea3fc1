#!/bin/sh
# Set up (see setup.sh), then run the demo: the seed scenario end to end with
# a private ZooKeeper and a sandbox root. Needs no ZooKeeper of your own.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
