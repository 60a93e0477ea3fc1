"""Deployment records under /etc/<app>: one path, one record name; records
of the first naming still recognised; what a killed write leaves, removed.

End to end with the real agent (`--once` on a tree file) and the sandbox's
fake yum and deploy scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from reconciler.drivers.filesystem import (
    FileSystem,
    path_from_record_name,
    record_name,
)
from reconciler.rundir import RunDirectory
from reconciler.zk.storage import encode
from tests.support.sandbox_host import SandboxHost


@pytest.fixture
def host(tmp_path: Path, zk: KazooClient, zk_chroot: str) -> SandboxHost:
    host = SandboxHost(tmp_path)
    host.extra["zookeeper"] = zk_chroot
    zk.create("/hosts", encode({"version": None}))
    return host


def release(
    zk: KazooClient, host: SandboxHost, version: int, *paths: str, type_: str = "z4m"
) -> list[str]:
    """Make `paths` (and nothing else) this host's deployments in ZooKeeper,
    bump the cluster version and run the agent once: its commands. Node
    names with `,` or `%` come from other tools than tree files (zc.zk)."""
    for top in zk.get_children("/"):
        if top not in ("hosts", "zookeeper"):
            zk.delete(f"/{top}", recursive=True)
    for path in paths:
        properties = {"type": type_} if type_[-1].isdigit() else {"type": type_, "version": "1.0.0"}
        zk.create(path, encode(properties), makepath=True)
        zk.create(f"{path}/deploy/{host.host_id}", b"", makepath=True)
    zk.set("/hosts", encode({"version": version}))
    config = host.write_config(None)
    host.journal.write_text("")
    run = subprocess.run(
        [sys.executable, "-m", "reconciler", "--once", "--log-json", str(config)],
        capture_output=True,
        text=True,
        env=host.env(),
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return host.journal.read_text().splitlines()


def deploy_commands(commands: list[str]) -> list[str]:
    return [c for c in commands if "zookeeper-deploy" in c]


def undeploys(commands: list[str]) -> list[str]:
    return [c for c in commands if "zookeeper-deploy -u" in c]


def test_a_comma_in_a_node_name_is_deployed_once(zk: KazooClient, host: SandboxHost) -> None:
    first = release(zk, host, 1, "/sec/a,b")
    assert deploy_commands(first) == ["/opt/z4m/bin/zookeeper-deploy /sec/a,b 0"]
    # The next release (every run deploys what is wanted again) undeploys
    # nothing: /sec/a,b is never read back as /sec/a/b.
    assert deploy_commands(release(zk, host, 2, "/sec/a,b")) == deploy_commands(first)


def test_paths_meeting_on_one_deployed_name_are_undeployed(
    zk: KazooClient, host: SandboxHost
) -> None:
    release(zk, host, 1, "/x/y", "/x,y")
    removed = release(zk, host, 2, "/x/y")
    assert "/opt/z4m/bin/zookeeper-deploy -u /x,y 0" in removed
    assert "/opt/z4m/bin/zookeeper-deploy -u /x/y 0" not in removed


@pytest.mark.parametrize("path", ["/cust/someapp/cms", "/p/a%2Cb", "/p/100%"])
def test_records_of_the_first_naming_are_recognised(
    zk: KazooClient, host: SandboxHost, path: str
) -> None:
    # A versioned app: its deployment is attributed to /opt/z4m-4.0.0 by the
    # .script record, so a record not found would mean a redeploy.
    first = release(zk, host, 1, path, type_="z4m-4.0.0")
    etc = host.root / "etc/z4m"
    # What an agent of the first naming (`/` as `,`, nothing escaped) left.
    for record in etc.glob("*.script"):
        record.rename(etc / (path.lstrip("/").replace("/", ",") + ".0.script"))
    upgraded = release(zk, host, 2, path, type_="z4m-4.0.0")
    # Nothing undeployed, nothing installed or removed: the run of any
    # release (every wanted deployment deployed again, as the first run).
    assert undeploys(upgraded) == []
    assert not any(c.startswith("yum -y") for c in upgraded)
    assert deploy_commands(upgraded) == deploy_commands(first)


@pytest.mark.parametrize(
    "path", ["/a", "/a/b", "/a,b", "/a/b,c/d", "/%", "/%2C", "/a%25,b", "/,", "/é/ü"]
)
def test_record_names_are_injective_and_read_back(path: str) -> None:
    assert path_from_record_name(record_name(path)) == path
    assert "/" not in record_name(path)


@pytest.mark.parametrize("name", ["%ff", "a%2Fb", "a%2cb", "a,b%", "%C3%A9"])
def test_names_record_name_never_gives_are_not_records(name: str) -> None:
    assert path_from_record_name(name) is None


def test_odd_files_in_etc_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "opt/z4m/bin").mkdir(parents=True)
    (tmp_path / "opt/z4m/bin/zookeeper-deploy").write_text("#!/bin/sh\n")
    etc = tmp_path / "etc/z4m"
    etc.mkdir(parents=True)
    for name in ["a.\u00b2.deployed", "a.\u00b2.script", "%ff.0.script", "b.0.deployed"]:
        (etc / name).write_text("\xff")
    deployments = FileSystem(tmp_path).read().deployments
    assert [(d.path, d.n) for d in deployments] == [("/b", 0)]


def test_record_names_differ_where_deployed_names_meet() -> None:
    assert record_name("/x/y") != record_name("/x,y")
    assert record_name("/a%2Cb") != record_name("/a,b")
    # Paths without `,` or `%`: the first naming, unchanged.
    assert record_name("/cust/someapp/cms") == "cust,someapp,cms"


def test_temporary_files_of_a_killed_write_are_removed(tmp_path: Path) -> None:
    etc = tmp_path / "etc/z4m"
    bin_dir = tmp_path / "opt/z4m/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "zookeeper-deploy").write_text("#!/bin/sh\n")
    etc.mkdir(parents=True)
    dead = dead_pid()
    stale = etc / f".cust,a.0.script.{dead}.tmp"
    stale.write_text("/opt/z4m/bin/zookeeper-deploy")
    # A write in progress by a live process (this one, or a daemon while
    # `--plan` reads) is left alone; files not of our naming too.
    live = etc / f".cust,b.0.script.{os.getppid()}.tmp"
    live.write_text("")
    other = etc / "notes.tmp"
    other.write_text("")
    fs = FileSystem(tmp_path)
    fs.read()
    assert sorted(p.name for p in etc.iterdir()) == sorted([live.name, other.name])
    live.unlink()
    other.unlink()
    # So the empty /etc/<app> can go.
    assert fs.remove_empty_config_dir("z4m")

    run = tmp_path / "run"
    run.mkdir()
    (run / f".status.{dead}.tmp").write_text("1 2 3 deploying")
    (run / f".host_version.{dead}.tmp").write_text("3")
    RunDirectory(run).read_host_version()
    assert list(run.iterdir()) == []


def dead_pid() -> int:
    """The id of a process that has exited."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid
