"""Prometheus metrics of the agent (`Metrics`) and of the sync (`SyncMetrics`).

Each process keeps its series in a registry of its own (not
prometheus_client's global one, which also carries the Python process
collectors and would mix the agent's and a test's series) and exposes them:
- on an HTTP endpoint when `metrics-address = HOST:PORT` is set;
- in the node_exporter textfile form when `metrics-file = PATH` is set,
  rewritten atomically by `flush()` after each run (so that `--once` from
  cron is scraped too).

Versions (any JSON scalar) are label values, as `version_label` spells
them: a string as is, anything else as JSON: `8`, `1.5`, `true`, `false`
(paused) and `null` (halted). Info-style series carry one sample of value 1
whose label is the current value.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import generate_latest, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from reconciler.errors import ConfigError
from reconciler.zk.fleet import version_key

# Which commands are counted: `command_finished(kind, ok)` takes one of these.
COMMAND_KINDS = ("package_manager", "deploy_script", "hook", "controller", "vcs")
# kazoo's KazooState values, lower-cased as label values.
SESSION_STATES = ("connected", "suspended", "lost")
# Runs last from a second (nothing to do) to an hour (a slow fleet of RPMs).
RUN_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

# Every series' help text, the agent's then the sync's (README: Metrics).
HELP = {
    "reconciler_runs": "Runs finished, by outcome.",
    "reconciler_run_duration_seconds": "Duration of a run.",
    "reconciler_commands": "Commands run, by kind.",
    "reconciler_command_failures": "Commands that failed (non-zero exit or not runnable), by kind.",
    "reconciler_lock_wait_seconds": "Time spent waiting for role and agent locks.",
    "reconciler_cluster_version_info": (
        "The cluster version this agent last saw (label version; null: halted)."
    ),
    "reconciler_host_version_info": "The version this host last converged to (label version).",
    "reconciler_converged": "1 when the host version equals the cluster version, else 0.",
    "reconciler_halted": "1 when the cluster version is null (halted).",
    "reconciler_last_success_timestamp_seconds": (
        "Unix time of the last successful run (0: none yet)."
    ),
    "reconciler_zookeeper_session_state": (
        "1 for the ZooKeeper session's current state, 0 for the others."
    ),
    "reconciler_zookeeper_session_expiries": "ZooKeeper sessions that expired.",
    "reconciler_syncs": "Sync rounds, by outcome.",
    "reconciler_sync_revision_info": "The revision last synced into ZooKeeper (label revision).",
    "reconciler_sync_last_timestamp_seconds": (
        "Unix time of the last sync round, whatever its outcome."
    ),
    "reconciler_sync_last_outcome_info": "The last sync round's outcome (label outcome).",
}

_ADDRESS = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:\[\]]+)):(?P<port>\d{1,5})$")


def version_label(version: Any) -> str:
    """A version as a label value (see the module's docstring)."""
    return version_key(version)


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPv6]:PORT` as (host, port); ConfigError otherwise."""
    match = _ADDRESS.match(text.strip())
    if match is None or int(match["port"]) > 65535:
        raise ConfigError(f"metrics-address: expected HOST:PORT, got {text!r}")
    return match["v6"] or match["host"], int(match["port"])


class _Exported:
    """A registry and where it goes: an HTTP endpoint, a textfile, or both."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.file: Path | None = None
        self._server: WSGIServer | None = None
        # Series carried over from the last textfile (see `configure`).
        self.carried: dict[str, Counter | Gauge] = {}

    def _counter(self, name: str, *labels: str) -> Counter:
        return Counter(name, HELP[name], labels, registry=self.registry)

    def _gauge(self, name: str, *labels: str) -> Gauge:
        return Gauge(name, HELP[name], labels, registry=self.registry)

    def configure(self, address: str | None, file: Path | None) -> None:
        """Serve on `address` (`HOST:PORT`; port 0 picks a free one) and
        write `file` on every `flush()`; None turns either off.

        An existing `file` is read back first: with `--once` from cron each
        run is a new process, and its counters and last success time must
        go on from the last run's rather than restart at zero.

        A port in use or a bad address is a ConfigError (exit status 2)."""
        self.file = file
        if file is not None:
            self._carry_over(file)
        if address is None:
            return
        host, port = parse_address(address)
        try:
            self._server, _thread = start_http_server(port, host, registry=self.registry)
        except OSError as e:
            raise ConfigError(f"metrics-address {address}: {e.strerror or e}") from None

    def _carry_over(self, file: Path) -> None:
        try:
            families = list(text_string_to_metric_families(file.read_text()))
        except (OSError, ValueError):
            return  # none yet, or not ours: start from zero
        for family in families:
            metric = self.carried.get(family.name)
            if metric is None:
                continue
            wanted = family.name + "_total" if isinstance(metric, Counter) else family.name
            for sample in family.samples:
                if sample.name != wanted:
                    continue
                child = metric.labels(**sample.labels) if sample.labels else metric
                if isinstance(child, Counter):
                    child.inc(sample.value)
                else:
                    child.set(sample.value)

    @property
    def port(self) -> int | None:
        """The HTTP endpoint's port (None when not serving)."""
        return None if self._server is None else self._server.server_port

    def text(self) -> str:
        """The exposition text, as scraped."""
        return generate_latest(self.registry).decode()

    def flush(self) -> None:
        """Rewrite the textfile (if configured) atomically: node_exporter
        reads `*.prom` files only, and the temporary file's name ends in
        `.prom.<pid>.<thread>`, so a half-written file is never read."""
        if self.file is not None:
            try:
                write_to_textfile(str(self.file), self.registry)
            except OSError as e:
                raise ConfigError(f"metrics-file {self.file}: {e.strerror or e}") from None

    def flush_after_run(self) -> None:
        """`flush`, logging a failure: checked at start (a first `flush`),
        a disk that filled up since must not stop the runs."""
        try:
            self.flush()
        except ConfigError as e:
            logger.warning(str(e))

    def close(self) -> None:
        """Stop the HTTP endpoint (the textfile stays for the collector)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _info(gauge: Gauge, label: str) -> None:
    """Make `label` the only sample of an info-style gauge."""
    gauge.clear()
    gauge.labels(label).set(1)


class Metrics(_Exported):
    """The agent's series. Every method is cheap and thread-safe: call it
    from the worker, the runner or a kazoo callback alike."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = self._counter("reconciler_runs", "outcome")
        self.run_duration = Histogram(
            "reconciler_run_duration_seconds",
            HELP["reconciler_run_duration_seconds"],
            buckets=RUN_BUCKETS,
            registry=self.registry,
        )
        self.commands = self._counter("reconciler_commands", "kind")
        self.command_failures = self._counter("reconciler_command_failures", "kind")
        self.lock_wait = self._counter("reconciler_lock_wait_seconds")
        self.cluster = self._gauge("reconciler_cluster_version_info", "version")
        self.host = self._gauge("reconciler_host_version_info", "version")
        self.converged = self._gauge("reconciler_converged")
        self.halted = self._gauge("reconciler_halted")
        self.last_success = self._gauge("reconciler_last_success_timestamp_seconds")
        self.session = self._gauge("reconciler_zookeeper_session_state", "state")
        self.expiries = self._counter("reconciler_zookeeper_session_expiries")
        self.carried = {
            "reconciler_runs": self.runs,
            "reconciler_commands": self.commands,
            "reconciler_command_failures": self.command_failures,
            "reconciler_lock_wait_seconds": self.lock_wait,
            "reconciler_zookeeper_session_expiries": self.expiries,
            "reconciler_last_success_timestamp_seconds": self.last_success,
        }
        self._versions: dict[str, str] = {}
        for kind in COMMAND_KINDS:
            # Zero samples from the start, so that rate() sees the first one.
            self.commands.labels(kind)
            self.command_failures.labels(kind)
        self.session_state("lost")  # not connected yet

    def run_finished(self, outcome: str, seconds: float, ok: bool) -> None:
        """A run ended: `outcome` is its `run.Outcome` name in lower case
        (`done`, `nothing`, `halted`, `abandoned`, `stopped`, `failed`);
        `ok` when the host is converged after it (done, nothing to do),
        which sets the last success time."""
        self.runs.labels(outcome).inc()
        self.run_duration.observe(seconds)
        if ok:
            self.last_success.set(time.time())

    def command_finished(self, kind: str, ok: bool) -> None:
        if kind not in COMMAND_KINDS:
            raise ValueError(f"unknown command kind {kind!r}")
        self.commands.labels(kind).inc()
        if not ok:
            self.command_failures.labels(kind).inc()

    def lock_waited(self, seconds: float) -> None:
        self.lock_wait.inc(max(seconds, 0.0))

    def cluster_version(self, version: Any) -> None:
        self._versions["cluster"] = version_label(version)
        _info(self.cluster, self._versions["cluster"])
        self.halted.set(1 if version is None else 0)
        self._update_converged()

    def host_version(self, version: Any) -> None:
        self._versions["host"] = version_label(version)
        _info(self.host, self._versions["host"])
        self._update_converged()

    def _update_converged(self) -> None:
        if len(self._versions) == 2:
            self.converged.set(int(self._versions["cluster"] == self._versions["host"]))

    def session_state(self, state: str) -> None:
        """kazoo's connection state (`KazooState` or its string, any case).
        LOST is also kazoo's state after a normal close: call
        `session_expired()` for an expiry."""
        current = str(state).lower()
        for name in SESSION_STATES:
            self.session.labels(name).set(1 if name == current else 0)

    def session_expired(self) -> None:
        self.expiries.inc()


class SyncMetrics(_Exported):
    """The sync's series (`reconcile sync`, once or with --interval)."""

    def __init__(self) -> None:
        super().__init__()
        self.syncs = self._counter("reconciler_syncs", "outcome")
        self.revision = self._gauge("reconciler_sync_revision_info", "revision")
        self.last = self._gauge("reconciler_sync_last_timestamp_seconds")
        self.last_outcome = self._gauge("reconciler_sync_last_outcome_info", "outcome")
        self.carried = {
            "reconciler_syncs": self.syncs,
            "reconciler_sync_revision_info": self.revision,
        }

    def sync_finished(self, outcome: str, revision: str | None = None) -> None:
        """A round ended with `outcome` (`synced`, `unchanged`, `refused`,
        `invalid`, `dry run`, `error`); `revision` when ZooKeeper holds it
        now (synced or unchanged)."""
        self.syncs.labels(outcome).inc()
        self.last.set(time.time())
        _info(self.last_outcome, outcome)
        if revision is not None:
            _info(self.revision, revision)


def add_options(parser: argparse.ArgumentParser) -> None:
    """`--metrics-address` and `--metrics-file`, for commands without a
    configuration file (the sync)."""
    parser.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on HOST:PORT (default: off)",
    )
    parser.add_argument(
        "--metrics-file",
        metavar="PATH",
        type=Path,
        help="write the metrics to PATH (node_exporter textfile) after each round",
    )
