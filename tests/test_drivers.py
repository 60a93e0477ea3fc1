"""The command runner and the yum driver alone (pytest-subprocess fakes the
processes; the rest of the suite runs real ones)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger
from pytest_subprocess import FakeProcess

from reconciler.drivers.command import Runner
from reconciler.drivers.packages import Yum, parse_list_installed
from reconciler.errors import CommandFailed


@pytest.fixture
def log() -> Iterator[list[str]]:
    lines: list[str] = []
    handler = logger.add(lambda m: lines.append(f"{m.record['level'].name} {m.record['message']}"))
    yield lines
    logger.remove(handler)


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("yum", "deploy"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    return Runner(root=tmp_path / "root", path=[bin_dir])


def test_output_shown_only_on_failure(fp: FakeProcess, runner: Runner, log: list[str]) -> None:
    fp.register([fp.any()], stdout="all good\n")
    runner.run(["yum", "clean", "all"])
    assert log == ["INFO yum clean all"]

    fp.register([fp.any()], stdout="waaaa\n", returncode=1)
    with pytest.raises(CommandFailed) as info:
        runner.run(["yum", "-y", "install", "x-1"])
    assert str(info.value) == "Command failed: yum -y install x-1"
    assert log[1:] == ["INFO yum -y install x-1", "OUTPUT waaaa", "ERROR FAILURE"]


def test_verbose_shows_output_and_success(fp: FakeProcess, runner: Runner, log: list[str]) -> None:
    runner.verbose = True
    fp.register([fp.any()], stdout="done\n")
    runner.run(["yum", "clean", "all"])
    assert log == ["INFO yum clean all", "OUTPUT done", "INFO SUCCESS"]


def test_a_query_failing_is_no_failure(fp: FakeProcess, runner: Runner, log: list[str]) -> None:
    fp.register([fp.any()], stdout="Error: No matching Packages to list\n", returncode=1)
    assert Yum(runner).installed_version("z4m") is None
    assert log == ["INFO yum -q list installed z4m"]


def test_host_paths_run_under_the_root(fp: FakeProcess, runner: Runner, log: list[str]) -> None:
    fp.register([str(runner.root / "opt/z4m/bin/zookeeper-deploy"), "/a", "0"])
    runner.run(["/opt/z4m/bin/zookeeper-deploy", "/a", "0"])
    assert log == ["INFO /opt/z4m/bin/zookeeper-deploy /a 0"]
    assert runner.env["RECONCILER_ROOT"] == str(runner.root)


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("Installed Packages\nz4m\t1.0.0-1\tinstalled\n", "1.0.0"),
        ("Installed Packages\nz4m.noarch   2.0-1.el9   @local\n", "2.0"),
        ("z4m.x86_64  1:3.1.4-2  @base\n", "3.1.4"),
        # Another package whose name starts with the same letters.
        ("z4m-666\t666-1\tinstalled\n", None),
        ("z4mmonitor.noarch 1.1.0-1 @local\n", None),
        ("", None),
    ],
)
def test_list_installed_parsing(output: str, version: str | None) -> None:
    assert parse_list_installed(output, "z4m") == version
