"""`reconcile tree import|export` against a real ZooKeeper."""

from __future__ import annotations

from pathlib import Path

import pytest
from kazoo.client import KazooClient

from reconciler.cli import main
from reconciler.zk.reader import read_properties
from tests.support.sandbox_host import TREES


def test_import_export_round_trip(
    tmp_path: Path, zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tree", "import", "-z", zk_chroot, str(TREES / "seed-v1.zk")]) == 0
    assert read_properties(zk, "/cust/someapp/cms") == {"type": "z4m", "version": "1.0.0"}
    capsys.readouterr()
    assert main(["tree", "export", "-z", zk_chroot, "/cust"]) == 0
    assert capsys.readouterr().out.startswith("/cust\n  /someapp\n    /cms : z4m\n")

    # Without --trim, what the file no longer has is reported, not deleted.
    assert main(["tree", "import", "-z", zk_chroot, str(TREES / "seed-v2.zk")]) == 0
    assert capsys.readouterr().out == "extra path not trimmed: /cust/someapp/monitor\n"
    assert (
        main(["tree", "import", "--trim", "--dry-run", "-z", zk_chroot, str(TREES / "seed-v2.zk")])
        == 0
    )
    assert "would delete /cust/someapp/monitor." in capsys.readouterr().out
    assert zk.exists("/cust/someapp/monitor")
    assert main(["tree", "import", "--trim", "-z", zk_chroot, str(TREES / "seed-v2.zk")]) == 0
    assert zk.exists("/cust/someapp/monitor") is None


def test_import_of_a_bad_file_writes_nothing(
    tmp_path: Path, zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.zk"
    bad.write_text("/a\n  x = 1\n  /b\n  y = open('/etc/passwd')\n")
    assert main(["tree", "import", "-z", zk_chroot, str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}:4: Bad value")
    assert zk.get_children("/") == []
