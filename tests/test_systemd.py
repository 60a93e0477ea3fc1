"""The systemd units in contrib/systemd: valid for systemd itself, and their
command lines valid for `reconcile`."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import commands
from reconciler.cli import agent_parser

UNITS = Path(__file__).parent.parent / "contrib" / "systemd"
INSTALLED = "/usr/local/bin/reconcile"
# The venv's own `reconcile`: systemd-analyze checks that ExecStart's binary
# exists, and the units name the installed path, absent on a development
# machine.
VENV_RECONCILE = Path(sys.executable).parent / "reconcile"


def unit(name: str) -> configparser.ConfigParser:
    # Units repeat keys (Environment=): not strict; `%` and `$` are systemd's.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def exec_start(name: str, **environment: str) -> list[str]:
    line = unit(name)["Service"]["ExecStart"]
    for key, value in environment.items():
        line = line.replace("${" + key + "}", value)
    argv = shlex.split(line)
    assert argv[0] == INSTALLED
    return argv[1:]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd: scripts/setup.sh)")
    names = sorted(p.name for p in UNITS.glob("*.service"))
    assert names == ["reconciler-agent.service", "reconciler-sync.service"]
    for name in names:
        text = (UNITS / name).read_text()
        assert INSTALLED in text
        (tmp_path / name).write_text(text.replace(INSTALLED, str(VENV_RECONCILE)))
    proc = subprocess.run(
        [analyze, "verify", *names], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    # Warnings (an unknown key, say) leave the exit status 0: none allowed.
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_agent_unit() -> None:
    service = unit("reconciler-agent.service")["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["Restart"] == "on-failure"
    assert service["WatchdogSec"] == "15min"
    args = agent_parser().parse_args(exec_start("reconciler-agent.service"))
    assert args.config == Path("/etc/reconciler/agent.cfg")
    assert not args.once


def test_sync_unit() -> None:
    argv = exec_start(
        "reconciler-sync.service", INTERVAL="60", ZOOKEEPER="zk:2181", REPOSITORY="/srv/tree"
    )
    args = commands.parser().parse_args(argv)
    assert (args.command, args.interval, args.zookeeper, args.repository) == (
        "sync",
        60.0,
        "zk:2181",
        "/srv/tree",
    )
