"""`--version`, for `reconcile` and each subcommand: the installed
distribution's version (pyproject.toml), so it can't drift from a release."""

from __future__ import annotations

import argparse
from importlib import metadata


def version() -> str:
    try:
        return metadata.version("reconciler")
    except metadata.PackageNotFoundError:  # run from a source tree never installed
        return "unknown"


def add_option(parser: argparse.ArgumentParser) -> None:
    # The same line whatever the subcommand: scripts compare it as is.
    parser.add_argument(
        "--version", action="version", version=f"reconcile {version()}", help="print the version"
    )
