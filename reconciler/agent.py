"""The agent process: `reconcile CONFIG` with or without `--once`.

`main` is the one path for every mode; they differ only in which cluster
is opened (a tree file, or ZooKeeper) and in whether runs repeat:

- with ZooKeeper, the `Daemon` connects, registers the host (its ephemeral
  node `/hosts/<host-id>`, registered again after a session expiry),
  keeps the tree in a mirror (not with `--once`: one read is all it needs)
  and lets the `ZooKeeperCluster`'s watch on `/hosts` queue runs;
- `--once` (or a tree file) does one run; otherwise a single worker thread
  runs one reconciliation per queued change until SIGTERM/SIGINT sets the
  stop event, which the run checks between steps.

Registration holds the run directory's `agent.lock` for the process's life
and records the session id there: a restart after a crash (the lock is
free) takes over a host node still owned by its predecessor's session
instead of waiting for ZooKeeper to expire it; an agent that is really
running (the lock is held, or the node belongs to a session we did not
record) is refused.

Every run is counted in the metrics (`reconciler.metrics`, flushed after
each run); under systemd (`reconciler.notify`) the daemon sends READY=1
once registered and watching, WATCHDOG=1 from the worker (idle, between
steps, while waiting for a lock: never while a command runs, so a hung
command gets the agent restarted) and STOPPING=1 on SIGTERM/SIGINT.

The worker never dies of a run: an exception escaping one is logged with
its traceback and counted (outcome `error` in the metrics), and the worker goes on
watching. A reconnection queues a run (a run that could not reach
ZooKeeper is retried then). Only a fatal condition (this host's node held
by another agent) ends the daemon, with one CRITICAL line and exit 1.

A reconciliation itself is `run.Reconciler`'s.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError
from loguru import logger

from reconciler import notify
from reconciler.cluster import Cluster, ClusterUnavailable, HostNodeTaken
from reconciler.config import Config
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.metrics import Metrics
from reconciler.model import HostIdentity
from reconciler.run import Outcome, Reconciler, error_message
from reconciler.tree import TreeError
from reconciler.treefile import TreeFileCluster
from reconciler.zk.cluster import ClusterHooks, ZooKeeperCluster
from reconciler.zk.connect import (
    ZooKeeperUnavailable,
    ZooKeeperUnreachable,
    connect,
    settings,
)
from reconciler.zk.paths import HOSTS
from reconciler.zk.storage import decode

RUNNING = "Another agent is running"
# The daemon waits for an unreachable ZooKeeper at start, retrying after
# these delays (doubling).
CONNECT_RETRY_FIRST = 1.0
CONNECT_RETRY_MAX = 30.0
# The worker wakes at least this often, idle or not (stop, watchdog).
IDLE_WAKE = 0.5


class AgentRunning(Exception):
    pass


def run_measured(reconciler: Reconciler, metrics: Metrics) -> Outcome:
    """One run, counted (by outcome; `error` when it raised) and timed,
    with the versions after it; the textfile is rewritten."""
    started = time.monotonic()
    outcome: Outcome | None = None
    try:
        outcome = reconciler.run()
        return outcome
    finally:
        name = outcome.name.lower() if outcome else "error"
        converged = outcome in (Outcome.DONE, Outcome.NOTHING)
        metrics.run_finished(name, time.monotonic() - started, ok=converged)
        metrics.cluster_version(reconciler.cluster.version())
        metrics.host_version(reconciler.host_version)
        metrics.flush_after_run()


class Daemon:
    """One ZooKeeper session of this host: its cluster, its host node, and
    the event that queues a run."""

    def __init__(
        self,
        config: Config,
        stop: threading.Event,
        metrics: Metrics | None = None,
        watchdog: notify.Watchdog | None = None,
        wait_for_zookeeper: bool = False,
    ) -> None:
        self.host = HostIdentity(id=config.host_id, name=config.host_name, role=config.role)
        self.metrics = metrics or Metrics()
        self.watchdog = watchdog or notify.Watchdog({})
        self.client = self._connect(config, stop, wait_for_zookeeper)
        self.pending = threading.Event()
        self.stop = stop
        hooks = ClusterHooks(
            version_seen=self.metrics.cluster_version,
            lock_waited=self.metrics.lock_waited,
            waiting=self.watchdog.ping_if_due,
        )
        self.cluster = ZooKeeperCluster(
            self.client,
            self.host,
            stop,
            on_change=self.pending.set,
            hooks=hooks,
            retry_deadline=config.zookeeper_session_timeout,
        )
        self.registered = False
        self.session_lost = False
        self.reconciler: Reconciler | None = None
        # Why the daemon had to stop (exit 1), if it had to.
        self.fatal: str | None = None

    @staticmethod
    def _connect(config: Config, stop: threading.Event, wait: bool) -> KazooClient:
        """The session. A ZooKeeper that does not answer at all is waited
        for when `wait` (the daemon: it may be restarting, or the network
        cut), retrying with a growing delay; wrong settings (credentials,
        TLS, access) are a ConfigError at once."""
        delay = CONNECT_RETRY_FIRST
        while True:
            try:
                return connect(settings(config), readable=HOSTS)
            except ZooKeeperUnreachable as e:
                if not wait:
                    raise
                logger.warning(f"{e}; retrying in {delay:g} s")
                notify.status(f"waiting for ZooKeeper ({e})")
                if stop.wait(delay):
                    raise
                delay = min(delay * 2, CONNECT_RETRY_MAX)
            except ZooKeeperUnavailable as e:
                raise ConfigError(str(e)) from None

    # Registration

    def register(self, reconciler: Reconciler) -> None:
        """Create the ephemeral host node. A legacy persistent node (left by
        the original agent) gives its `version` as the host version, even
        over the host version file (agent.md), and is replaced. An ephemeral
        node left by this host's previous agent is taken over (see the
        module's docstring)."""
        rundir = reconciler.rundir
        try:
            if not rundir.lock():
                raise AgentRunning(RUNNING)
        except OSError as e:
            raise ConfigError(f"Can't lock {rundir.lock_file}: {e.strerror or e}") from None
        self.client.ensure_path(HOSTS)
        path = self.cluster.host_path
        try:
            data, stat = self.client.get(path)
        except NoNodeError:
            pass
        else:
            if stat.ephemeralOwner:
                self._take_over(stat.ephemeralOwner, rundir.read_session())
            else:
                reconciler.host_version = decode(data).get("version")
                self.client.delete(path)
        self.reconciler = reconciler
        self._create_host_node()
        self.registered = True
        self.client.add_listener(self._session_changed)
        self.metrics.session_state(self.client.state)

    def _take_over(self, owner: int, recorded: int | None) -> None:
        """The host node belongs to a live session. Ours to delete only when
        it is the one our previous agent recorded: holding the lock, we
        know that agent is dead, and its session merely not expired yet.
        Anything else (another run directory, another host with our id)
        may be an agent that is running."""
        if owner != recorded or owner == self.client.client_id[0]:
            raise AgentRunning(RUNNING)
        logger.info(
            f"Taking over the host node of this host's previous agent "
            f"(session 0x{owner:x}, no longer running)"
        )
        try:
            self.client.delete(self.cluster.host_path)
        except NoNodeError:
            pass  # expired meanwhile

    def _create_host_node(self) -> None:
        # The host version now: a registration after a session expiry
        # comes after runs.
        self.cluster.host_version = self.reconciler.host_version if self.reconciler else None
        # Recorded before the node exists: a crash in between leaves an id
        # that owns nothing, never a node whose owner is unknown.
        if self.reconciler:
            self.reconciler.rundir.write_session(self.client.client_id[0])
        self.cluster.create_host_node()

    def _session_changed(self, state: str) -> None:
        self.metrics.session_state(state)
        if state == KazooState.LOST:
            # kazoo says LOST on our own close too (`close` unregisters first).
            if self.registered:
                self.metrics.session_expired()
            self.session_lost = True
        elif state == KazooState.CONNECTED:
            # A run that could not reach ZooKeeper runs again now; for any
            # other, a run that finds nothing to do costs one read.
            self.pending.set()
            if self.session_lost and self.registered:
                self.session_lost = False
                # The expired session took the ephemeral host node with it.
                # Not in this callback: it runs on kazoo's event thread.
                self.client.handler.spawn(self._register_again)

    def _register_again(self) -> None:
        logger.warning("ZooKeeper session expired; registering the host again")
        try:
            self.client.retry(self._create_host_node)
        except HostNodeTaken as error:
            self.exit_fatally(str(error))
        except Exception:
            logger.opt(exception=True).error("Could not register the host again")

    def start(self, reconciler: Reconciler, follow: bool = True) -> None:
        """Register; with `follow` (not for `--once`), keep the tree in a
        mirror from now on, so that a run reads only what changed."""
        self.register(reconciler)
        self.cluster.watch_host_node()
        if follow:
            self.cluster.follow_tree()
        # The watches' first deliveries are not changes: `serve` runs at start.
        self.pending.clear()
        cluster = self.cluster.version()
        logger.info(f"Agent starting, cluster {cluster}, host {reconciler.host_version}")

    # The worker

    def serve(self, reconciler: Reconciler) -> None:
        """Run a reconciliation at start and after every change, until stopped."""
        self.pending.set()
        wake = min(IDLE_WAKE, self.watchdog.interval or IDLE_WAKE)
        while not self.stop.is_set():
            self.watchdog.ping_if_due()
            if not self.pending.wait(wake):
                continue
            self.pending.clear()
            if self.stop.is_set():
                break
            outcome = self.run(reconciler)
            notify.status(self.status(reconciler, outcome.value if outcome else "error"))
            if outcome is Outcome.WAITING and self.client.connected:
                # Connected again before the run gave up: no reconnection
                # will queue the next try.
                self.pending.set()

    def status(self, reconciler: Reconciler, state: str) -> str:
        """The line `systemctl status` shows."""
        return f"{state}; cluster {self.cluster.version()!r}, host {reconciler.host_version!r}"

    def run(self, reconciler: Reconciler) -> Outcome | None:
        """One run that never kills the worker; None when it crashed."""
        try:
            self.cluster.repair_host_node()
            return run_measured(reconciler, self.metrics)
        except HostNodeTaken as error:
            self.exit_fatally(str(error))
        except Exception as error:
            logger.opt(exception=True).critical("Run crashed; waiting for the next change")
            try:
                reconciler.crashed(error)
            except Exception:
                logger.opt(exception=True).error("Could not report the crash")
        return None

    def exit_fatally(self, reason: str) -> None:
        """Stop the daemon for a reason it cannot recover from (exit 1)."""
        logger.critical(reason)
        self.fatal = reason
        self.stop.set()

    def close(self) -> None:
        self.registered = False
        try:
            self.cluster.unfollow_tree()
            self.client.stop()
        finally:
            self.client.close()
            if self.reconciler:
                self.reconciler.rundir.unlock()


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop`: the running command finishes, the run
    stops between steps (or a wait for ZooKeeper ends), the daemon exits 0."""

    def shutdown(signum: int, frame: FrameType | None) -> None:
        # First: logging may refuse to run inside a handler that interrupted
        # a log call of the same thread (loguru avoids the deadlock by raising).
        stop.set()
        try:
            logger.info(f"Stopping on {signal.Signals(signum).name}")
            notify.stopping()
        except RuntimeError:
            pass

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)


def serve_until_signalled(daemon: Daemon, reconciler: Reconciler) -> None:
    # READY=1 before the worker's first WATCHDOG=1.
    notify.ready(daemon.status(reconciler, "Agent running"))
    worker = threading.Thread(target=daemon.serve, args=(reconciler,), name="reconciler")
    worker.start()
    while worker.is_alive():
        worker.join(0.5)


def print_plan(reconciler: Reconciler) -> int:
    """`--plan`: 0 with the plan printed; a tree the run would refuse is
    one line and 1 (as the run would fail), ZooKeeper unreachable 75."""
    try:
        reconciler.print_plan()
    except ClusterUnavailable as e:
        logger.error(f"Cannot reach ZooKeeper ({e})")
        return Outcome.WAITING.exit_status
    except (ReconcilerError, TreeError, KazooException) as e:
        logger.error(error_message(e))
        return Outcome.FAILED.exit_status
    return 0


def main(config: Config, once: bool = False, plan_only: bool = False, verbose: bool = False) -> int:
    """`reconcile CONFIG`: the exit status. A tree file means one run."""
    stop = threading.Event()
    daemon: Daemon | None = None
    cluster: Cluster
    metrics = Metrics()
    watchdog = notify.Watchdog()
    serving = config.tree is None and not (once or plan_only)
    if serving:
        # From the start: a SIGTERM while waiting for ZooKeeper, or right
        # after READY=1 (which lets systemd stop the service), stops cleanly.
        stop_on_signals(stop)
    if config.tree is None:
        try:
            daemon = Daemon(config, stop, metrics, watchdog, wait_for_zookeeper=serving)
        except ZooKeeperUnreachable as e:
            if stop.is_set():
                return 0
            # --once (and --plan): the same "try again later" as a run that
            # loses ZooKeeper (Outcome.WAITING).
            logger.error(str(e))
            return Outcome.WAITING.exit_status
        cluster = daemon.cluster
    else:
        cluster = TreeFileCluster.read(config.tree)
    try:
        reconciler = Reconciler(
            config,
            cluster,
            stop,
            verbose=verbose,
            on_command=metrics.command_finished,
            heartbeat=watchdog.ping_if_due,
        )
        if plan_only:
            return print_plan(reconciler)
        if daemon:
            try:
                daemon.start(reconciler, follow=not once)
            except AgentRunning as e:
                logger.error(str(e))
                return 1
        # After registering: a second agent is refused as such, not for
        # the port the running one serves on.
        if config.metrics_address or config.metrics_file:
            metrics.configure(config.metrics_address, config.metrics_file)
            metrics.flush()  # an unwritable file is an error now, not after a run
        if once or daemon is None:
            try:
                return run_measured(reconciler, metrics).exit_status
            except HostNodeTaken as e:
                logger.critical(str(e))
                return 1
        serve_until_signalled(daemon, reconciler)
        return 1 if daemon.fatal else 0
    finally:
        if daemon:
            daemon.close()
        metrics.close()
