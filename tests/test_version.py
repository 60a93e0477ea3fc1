"""`reconcile --version` and `reconcile SUBCOMMAND --version`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from reconciler.cli import SUBCOMMANDS, main

PYPROJECT = Path(__file__).parent.parent / "pyproject.toml"
RECONCILE = Path(sys.executable).parent / "reconcile"


def expected() -> str:
    with open(PYPROJECT, "rb") as f:
        return f"reconcile {tomllib.load(f)['project']['version']}\n"


def test_version() -> None:
    proc = subprocess.run([str(RECONCILE), "--version"], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, expected(), "")


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_subcommand_version(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main([command, "--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == expected()
