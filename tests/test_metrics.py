"""Metrics: the series an operator scrapes, over HTTP, in the node_exporter
textfile, and through a real Prometheus server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.config import load
from reconciler.errors import ConfigError
from reconciler.metrics import Metrics, SyncMetrics, parse_address
from tests.support.prometheus import PrometheusFactory, samples, scrape

BASE = "[zkdeployment]\nhost-id = h1\nrun-directory = run\n"


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = Metrics()
    m.configure("127.0.0.1:0", None)
    yield m
    m.close()


def drive(m: Metrics) -> None:
    """One successful run to version 8 and one failed run to version 9."""
    m.session_state("CONNECTED")
    m.cluster_version(8)
    m.host_version(7)
    m.command_finished("package_manager", ok=True)
    m.command_finished("deploy_script", ok=True)
    m.lock_waited(0.25)
    m.host_version(8)
    m.run_finished("done", 2.0, ok=True)
    m.cluster_version("9")
    m.command_finished("deploy_script", ok=False)
    m.cluster_version(None)
    m.run_finished("failed", 40.0, ok=False)


def test_http_endpoint(metrics: Metrics) -> None:
    drive(metrics)
    got = samples(scrape(metrics.port))
    assert got[("reconciler_runs_total", (("outcome", "done"),))] == 1
    assert got[("reconciler_runs_total", (("outcome", "failed"),))] == 1
    assert got[("reconciler_run_duration_seconds_count", ())] == 2
    assert got[("reconciler_run_duration_seconds_sum", ())] == 42.0
    assert got[("reconciler_run_duration_seconds_bucket", (("le", "5.0"),))] == 1
    assert got[("reconciler_commands_total", (("kind", "deploy_script"),))] == 2
    assert got[("reconciler_command_failures_total", (("kind", "deploy_script"),))] == 1
    assert got[("reconciler_command_failures_total", (("kind", "package_manager"),))] == 0
    assert got[("reconciler_commands_total", (("kind", "vcs"),))] == 0
    assert got[("reconciler_lock_wait_seconds_total", ())] == 0.25
    # Info-style: only the current version, halted shown as `null`.
    assert {k: v for k, v in got.items() if k[0] == "reconciler_cluster_version_info"} == {
        ("reconciler_cluster_version_info", (("version", "null"),)): 1
    }
    assert got[("reconciler_host_version_info", (("version", "8"),))] == 1
    assert got[("reconciler_halted", ())] == 1
    assert got[("reconciler_converged", ())] == 0
    assert got[("reconciler_last_success_timestamp_seconds", ())] > 1.7e9
    assert got[("reconciler_zookeeper_session_state", (("state", "connected"),))] == 1
    assert got[("reconciler_zookeeper_session_state", (("state", "lost"),))] == 0
    assert got[("reconciler_zookeeper_session_expiries_total", ())] == 0


def test_versions_as_labels() -> None:
    metrics = Metrics()
    metrics.cluster_version("abc123")
    metrics.host_version("abc123")
    got = samples(metrics.text())
    assert got[("reconciler_cluster_version_info", (("version", "abc123"),))] == 1
    assert got[("reconciler_converged", ())] == 1
    assert got[("reconciler_halted", ())] == 0
    metrics.cluster_version(False)  # paused
    got = samples(metrics.text())
    assert got[("reconciler_cluster_version_info", (("version", "false"),))] == 1
    assert got[("reconciler_halted", ())] == 0
    assert got[("reconciler_converged", ())] == 0


def test_session_expiry() -> None:
    metrics = Metrics()
    metrics.session_state("LOST")
    metrics.session_expired()
    got = samples(metrics.text())
    assert got[("reconciler_zookeeper_session_state", (("state", "lost"),))] == 1
    assert got[("reconciler_zookeeper_session_expiries_total", ())] == 1


def test_unknown_command_kind() -> None:
    with pytest.raises(ValueError, match="unknown command kind 'shell'"):
        Metrics().command_finished("shell", ok=True)


def test_textfile(tmp_path: Path) -> None:
    m = Metrics()
    path = tmp_path / "reconciler.prom"
    m.configure(None, path)
    assert m.port is None
    m.run_finished("done", 1.5, ok=True)
    m.flush()
    first = samples(path.read_text())
    assert first[("reconciler_runs_total", (("outcome", "done"),))] == 1
    m.run_finished("done", 1.5, ok=True)
    m.flush()
    assert samples(path.read_text())[("reconciler_runs_total", (("outcome", "done"),))] == 2
    # Written by rename: no temporary file left for node_exporter to trip on.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reconciler.prom"]


def test_textfile_unwritable(tmp_path: Path) -> None:
    m = Metrics()
    m.configure(None, tmp_path / "missing" / "reconciler.prom")
    with pytest.raises(ConfigError, match=r"^metrics-file .*missing/reconciler.prom: No such"):
        m.flush()


def test_sync_metrics(tmp_path: Path) -> None:
    m = SyncMetrics()
    m.configure(None, tmp_path / "sync.prom")
    m.sync_finished("synced", "abc123")
    m.sync_finished("refused")
    m.flush()
    got = samples((tmp_path / "sync.prom").read_text())
    assert got[("reconciler_syncs_total", (("outcome", "synced"),))] == 1
    assert got[("reconciler_syncs_total", (("outcome", "refused"),))] == 1
    assert got[("reconciler_sync_revision_info", (("revision", "abc123"),))] == 1
    assert got[("reconciler_sync_last_outcome_info", (("outcome", "refused"),))] == 1
    assert ("reconciler_sync_last_outcome_info", (("outcome", "synced"),)) not in got
    assert got[("reconciler_sync_last_timestamp_seconds", ())] > 1.7e9
    # The agent's series are not the sync's.
    assert not any(name.startswith("reconciler_runs") for name, _ in got)


def test_address_in_use(metrics: Metrics) -> None:
    other = Metrics()
    with pytest.raises(ConfigError, match=rf"^metrics-address 127.0.0.1:{metrics.port}: "):
        other.configure(f"127.0.0.1:{metrics.port}", None)


@pytest.mark.parametrize("text", ["9105", "localhost", "host:port", "[::1]9105", "h:70000"])
def test_bad_address(text: str) -> None:
    with pytest.raises(ConfigError, match="^metrics-address: expected HOST:PORT, got"):
        parse_address(text)


def test_addresses() -> None:
    assert parse_address("127.0.0.1:9105") == ("127.0.0.1", 9105)
    assert parse_address("[::1]:9105") == ("::1", 9105)
    assert parse_address("agent.example.com:0") == ("agent.example.com", 0)


def test_config_keys(tmp_path: Path) -> None:
    path = tmp_path / "agent.cfg"
    path.write_text(BASE + "metrics-address = 127.0.0.1:9105\nmetrics-file = m/r.prom\n")
    config = load(path)
    assert config.metrics_address == "127.0.0.1:9105"
    assert config.metrics_file == tmp_path / "m" / "r.prom"
    path.write_text(BASE)
    assert load(path).metrics_address is None
    assert load(path).metrics_file is None


def test_config_bad_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.cfg"
    path.write_text(BASE + "metrics-address = 9105\n")
    assert main([str(path), "--once"]) == 2
    assert capsys.readouterr().err.startswith(f"{path}: metrics-address: ")


def test_real_prometheus(metrics: Metrics, prometheus: PrometheusFactory) -> None:
    server = prometheus([f"127.0.0.1:{metrics.port}"])
    metrics.run_finished("done", 3.0, ok=True)
    metrics.run_finished("done", 3.0, ok=True)
    metrics.run_finished("failed", 3.0, ok=False)
    metrics.cluster_version(9)
    metrics.host_version(8)
    found = server.wait_for("reconciler_runs_total", lambda r: len(r) == 2)
    assert {s["metric"]["outcome"]: s["value"][1] for s in found} == {
        "done": "2",
        "failed": "1",
    }
    assert all(s["metric"]["job"] == "reconciler" for s in found)
    # The README's alert expressions, as Prometheus evaluates them.
    not_converged = "reconciler_converged == 0 and on(instance) reconciler_halted == 0"
    behind = server.wait_for(not_converged)
    assert [s["metric"]["instance"] for s in behind] == [f"127.0.0.1:{metrics.port}"]
    metrics.cluster_version(None)
    assert server.wait_for("max(reconciler_halted) == 1")
    assert server.wait_for(not_converged, lambda r: not r) == []
    assert server.query('reconciler_cluster_version_info{version="null"}')


def test_textfile_carried_over_between_runs(tmp_path: Path) -> None:
    """`--once` from cron: every run is a new process writing the same file."""
    path = tmp_path / "reconciler.prom"
    first = Metrics()
    first.configure(None, path)
    first.run_finished("done", 1.0, ok=True)
    first.command_finished("package_manager", ok=False)
    first.flush()
    succeeded = samples(path.read_text())[("reconciler_last_success_timestamp_seconds", ())]
    second = Metrics()
    second.configure(None, path)
    second.run_finished("failed", 1.0, ok=False)
    second.flush()
    got = samples(path.read_text())
    assert got[("reconciler_runs_total", (("outcome", "done"),))] == 1
    assert got[("reconciler_runs_total", (("outcome", "failed"),))] == 1
    assert got[("reconciler_command_failures_total", (("kind", "package_manager"),))] == 1
    assert got[("reconciler_last_success_timestamp_seconds", ())] == succeeded
    sync = SyncMetrics()
    sync.configure(None, tmp_path / "sync.prom")
    sync.sync_finished("synced", "abc")
    sync.flush()
    again = SyncMetrics()
    again.configure(None, tmp_path / "sync.prom")
    assert samples(again.text())[("reconciler_sync_revision_info", (("revision", "abc"),))] == 1


def test_textfile_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "reconciler.prom"
    path.write_text("this is { not metrics\n")
    m = Metrics()
    m.configure(None, path)  # starts from zero
    m.flush()
    assert samples(path.read_text())[("reconciler_last_success_timestamp_seconds", ())] == 0
