"""`reconcile hosts --wait`: a real `reconcile` process follows a rollout that
the test plays by writing host nodes in a real ZooKeeper."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from reconciler.cli import main
from reconciler.zk.storage import encode

RECONCILE = Path(sys.executable).parent / "reconcile"
FAILURE = "Command failed: /opt/cranky/bin/zookeeper-deploy /cust/cranky 0\nexit status 1"


def host(zk: KazooClient, host_id: str, create: bool = False, **properties: Any) -> None:
    """Register (ephemeral, as an agent does) or update a host node."""
    if create:
        zk.create(f"/hosts/{host_id}", encode(properties), ephemeral=True, makepath=True)
    else:
        zk.set(f"/hosts/{host_id}", encode(properties))


class Waiting:
    """`reconcile hosts --wait` running; its output line by line as it comes."""

    def __init__(self, chroot: str, *options: str) -> None:
        self.process = subprocess.Popen(
            [str(RECONCILE), "hosts", "--wait", "-z", chroot, *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._reader.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def expect(self, *lines: str, timeout: float = 15) -> None:
        """The next lines printed are exactly these."""
        got = []
        for _ in lines:
            try:
                got.append(self.lines.get(timeout=timeout))
            except queue.Empty:
                break
        assert got == list(lines)

    def finish(self, timeout: float = 15) -> tuple[int, list[str], str]:
        """Exit status, the remaining stdout lines and stderr."""
        try:
            self.process.wait(timeout=timeout)
        finally:
            self.process.kill()
            self._reader.join()
        assert self.process.stderr is not None
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        err = self.process.stderr.read()
        self.process.stderr.close()
        return self.process.returncode, rest, err


def test_rollout_converges(zk: KazooClient, zk_chroot: str) -> None:
    zk.create("/hosts", encode({"version": 9}))
    host(zk, "h1", create=True, name="h1", version=8)
    host(zk, "h2", create=True, name="web2.example.com", role="web", version=8)
    waiting = Waiting(zk_chroot)
    waiting.expect(
        "Cluster version 9: 0 of 2 hosts converged",
        "h1 deploying 9 (has 8)",
        "h2 (web2.example.com) deploying 9 (has 8)",
    )
    host(zk, "h1", name="h1", version=9)
    waiting.expect("h1 converged to 9: 1 of 2 hosts converged")
    host(zk, "h3", create=True, name="h3", version=7)
    waiting.expect("h3 registered, at 7: 1 of 3 hosts converged")
    zk.delete("/hosts/h3")  # its agent stopped: no longer waited for
    waiting.expect("h3 unregistered: 1 of 2 hosts converged")
    host(zk, "h2", name="web2.example.com", role="web", version=9)
    changed = time.monotonic()
    status, rest, err = waiting.finish()
    # Event-driven: the end is seen at once, not at a polling interval.
    assert time.monotonic() - changed < 2
    assert (status, err) == (0, "")
    assert rest == [
        "h2 (web2.example.com) converged to 9: 2 of 2 hosts converged",
        "All 2 hosts converged to 9",
    ]


def test_new_version_followed(zk: KazooClient, zk_chroot: str) -> None:
    zk.create("/hosts", encode({"version": 9}))
    host(zk, "h1", create=True, version=8)
    waiting = Waiting(zk_chroot)
    waiting.expect("Cluster version 9: 0 of 1 host converged", "h1 deploying 9 (has 8)")
    zk.set("/hosts", encode({"version": "abc"}))
    waiting.expect("Cluster version abc: 0 of 1 host converged", "h1 deploying abc (has 8)")
    host(zk, "h1", version="abc")
    assert waiting.finish()[:2] == (
        0,
        ["h1 converged to abc: 1 of 1 host converged", "All 1 host converged to abc"],
    )


def test_halt(zk: KazooClient, zk_chroot: str) -> None:
    zk.create("/hosts", encode({"version": 9}))
    host(zk, "h1", create=True, version=9)
    host(zk, "h2", create=True, version=8)
    waiting = Waiting(zk_chroot)
    waiting.expect("Cluster version 9: 1 of 2 hosts converged", "h2 deploying 9 (has 8)")
    # What a failing agent does: halt, then its error.
    zk.set("/hosts", encode({"version": None}))
    host(zk, "h2", version=8, error=FAILURE)
    status, _rest, err = waiting.finish()
    assert status == 1
    assert err.splitlines() == [f"Cluster halted: h2 failed: {' '.join(FAILURE.splitlines())}"]


def test_halted_without_error(zk: KazooClient, zk_chroot: str) -> None:
    zk.create("/hosts", encode({"version": None}))
    host(zk, "h1", create=True, version=8)
    status, rest, err = Waiting(zk_chroot).finish()
    assert (status, rest) == (1, ["h1 at 8"])
    assert err == "Cluster halted (version None), no host reports an error\n"


def test_timeout(zk: KazooClient, zk_chroot: str) -> None:
    zk.create("/hosts", encode({"version": 9}))
    host(zk, "h1", create=True, version=8)
    host(zk, "h2", create=True, version=9)
    status, rest, err = Waiting(zk_chroot, "--timeout", "1").finish()
    assert status == 3
    assert rest == ["Cluster version 9: 1 of 2 hosts converged", "h1 deploying 9 (has 8)"]
    assert err == "Timed out after 1 s: 1 of 2 hosts converged to 9; not converged: h1 at 8\n"


def test_paused_then_converged(zk: KazooClient, zk_chroot: str) -> None:
    zk.create("/hosts", encode({"version": False}))
    host(zk, "h1", create=True, version=8)
    waiting = Waiting(zk_chroot)
    waiting.expect("Cluster paused (version False): waiting", "h1 at 8")
    zk.set("/hosts", encode({"version": 8}))
    assert waiting.finish()[:2] == (
        0,
        ["Cluster version 8: 1 of 1 host converged", "All 1 host converged to 8"],
    )


def test_already_converged(
    zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    zk.create("/hosts", encode({"version": 9}))
    host(zk, "h1", create=True, version=9)
    assert main(["hosts", "--wait", "-z", zk_chroot]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Cluster version 9: 1 of 1 host converged",
        "All 1 host converged to 9",
    ]


def test_no_hosts_node(zk_chroot: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hosts", "--timeout", "5", "-z", zk_chroot]) == 1
    assert capsys.readouterr().err == (
        "No /hosts node: nothing synced and no agent registered yet\n"
    )


def test_bad_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["hosts", "--wait", "--timeout", "0"])
    assert exit.value.code == 2
    assert "argument --timeout: must be positive: '0'" in capsys.readouterr().err
