#!/bin/sh
# Set up (see setup.sh), then lint, type-check and run the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k seed).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
.venv/bin/ruff check reconciler tests bench scripts
.venv/bin/mypy reconciler
exec .venv/bin/pytest -q "$@"
