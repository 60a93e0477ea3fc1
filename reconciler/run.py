"""One reconciliation (steps 1-14 of agent.md) and what a failure means.

This module alone says what happens in what order:

1. the cluster version decides whether to run at all (halted, paused,
   already converged);
2. the role controller's steps, then the deployment steps (planned from
   the host as the controller steps left it), one at a time through the
   `Executor`; before each step the run stops if `stop` is set and
   abandons if the cluster version became None (a host with a role
   controller finishes its run instead: it must not be left out of
   service);
3. the role lock is taken before `starting-deployments` and released after
   `ending-deployments`; a failure in between keeps it;
4. recording success (host node, host version file, status `done`);
5. the after hook, which runs after success and after an abandon, never
   after a failure.

Any failure of this host's own work (a command, a tree error, the hook,
or anything else raised during the run) halts the cluster, sets the
host's `error` (never empty) and writes status `error`. Not reaching the
cluster (`ClusterUnavailable`, after the cluster's own retries) is not a
failure: the run stops, halting nothing, with status `waiting for
ZooKeeper`, and the daemon runs again once connected. A halt that cannot
reach the cluster is done by the next run, if the cluster version is still
the one that failed. The same run serves the daemon and `--once`; only the
`Cluster` differs.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from loguru import logger

from reconciler.cluster import Abandoned, Cluster, ClusterUnavailable, HostNodeTaken, Stopped
from reconciler.config import Config
from reconciler.drivers.command import CommandObserver, Runner
from reconciler.drivers.dnf import Dnf
from reconciler.drivers.filesystem import FileSystem
from reconciler.drivers.packages import PackageManager, Yum
from reconciler.errors import EXIT_TEMPFAIL
from reconciler.executor import Executor
from reconciler.model import DesiredState, HostIdentity, desired_state
from reconciler.planner import controller_steps, plan
from reconciler.rundir import RunDirectory
from reconciler.steps import ENDING, STARTING, ControllerCommand, Step

RULE = "=" * 60
HALTED = "Not deploying because cluster version is None"
WAITING = "waiting for ZooKeeper"


class Outcome(enum.Enum):
    NOTHING = "nothing to do"
    DONE = "done"
    HALTED = "cluster halted or paused"
    ABANDONED = "abandoned"
    STOPPED = "stopped"
    FAILED = "failed"
    WAITING = WAITING

    @property
    def exit_status(self) -> int:
        """For `--once`: 1 when the host did not converge through its own
        run (failed or abandoned), 75 (EX_TEMPFAIL: try again later) when
        ZooKeeper could not be reached, else 0."""
        if self is Outcome.WAITING:
            return EXIT_TEMPFAIL
        return 1 if self in (Outcome.FAILED, Outcome.ABANDONED) else 0


def error_message(error: BaseException) -> str:
    """The host's `error`: never empty, so that a halted cluster always
    shows a reason."""
    return str(error) or type(error).__name__


def package_manager(config: Config, runner: Runner) -> PackageManager:
    if config.package_manager == "dnf":
        # A sandbox root is also dnf's root unless told otherwise: never let a
        # rehearsal install onto the real system.
        root = None if config.root == Path("/") else config.root
        return Dnf(
            runner,
            installroot=config.dnf_installroot or root,
            repository=config.dnf_repository,
            options=config.dnf_options,
        )
    return Yum(runner)


class Reconciler:
    """Reconciles this host with `cluster`, one whole run at a time."""

    def __init__(
        self,
        config: Config,
        cluster: Cluster,
        stop: threading.Event | None = None,
        verbose: bool = False,
        on_command: CommandObserver | None = None,
        heartbeat: Callable[[], object] = lambda: None,
    ) -> None:
        self.config = config
        self.cluster = cluster
        self.stop = stop or threading.Event()
        self.host = HostIdentity(id=config.host_id, name=config.host_name, role=config.role)
        self.runner = Runner(config.root, config.path, verbose=verbose, on_command=on_command)
        self.fs = FileSystem(config.root)
        self.packages = package_manager(config, self.runner.for_kind("package_manager"))
        # Called between steps: the daemon pings systemd's watchdog here,
        # so that only a command that hangs (not a long run) is fatal.
        self.heartbeat = heartbeat
        self.rundir = RunDirectory(config.run_directory)
        self.host_version: Any = self.rundir.read_host_version()
        # The halt was already reported (by the end of the last run): the
        # run the halt itself queues stays silent.
        self.halt_reported = False
        # Whether the status file says `done` for the host version: not
        # known at start-up, where a crash may have left a stale status.
        self.status_done = False
        # A failure (version, error) the cluster could not be told of.
        self.unreported: tuple[Any, str] | None = None

    # Planning

    def desired(self) -> DesiredState:
        """This host's deployments and role controller, from one reading of
        the tree; every error of the tree is raised here, before anything
        on the host changes."""
        return desired_state(self.cluster.tree(), self.host)

    def controller_steps(self, desired: DesiredState) -> list[Step]:
        """Step 5: make the installed role controller match (role hosts only)."""
        return controller_steps(desired, self.fs.read())

    def deployment_steps(self, desired: DesiredState) -> list[Step]:
        """Steps 7-12, from the host as it is now (after step 5)."""
        return plan(desired, self.fs.read())

    def print_plan(self) -> None:
        """`--plan`: the steps of a run to the cluster version, one line each."""
        version = self.cluster.version()
        print(f"# cluster version {version!r}, host version {self.host_version!r}")
        desired = self.desired()
        steps = self.controller_steps(desired) + self.deployment_steps(desired)
        for step in steps:
            print(step.describe(self.packages))
        print(f"# record version {version!r}")
        if self.config.after:
            print(" ".join(self.config.after))

    # Running

    def run(self) -> Outcome:
        """One run: steps 1-14, with the failure rules of agent.md. Every
        exception is an Outcome, except `HostNodeTaken` (fatal)."""
        version = self.cluster.version()
        try:
            return self.steps(version)
        except ClusterUnavailable as error:
            logger.warning(f"Cannot reach ZooKeeper ({error}); {WAITING}")
            self.write_status(version, WAITING)
            return Outcome.WAITING
        except HostNodeTaken:
            raise
        except Exception as error:
            self.fail(error, version, "deploying", f"FAILED deploying version {version}")
            return Outcome.FAILED

    def steps(self, version: Any) -> Outcome:
        if self.unreported is not None:
            failed, message = self.unreported
            self.unreported = None
            if version == failed:
                self.report(failed, message)
                return Outcome.FAILED
        if version is None:
            if not self.halt_reported:
                logger.warning(HALTED)
                self.halt_reported = True
            return Outcome.HALTED
        self.halt_reported = False
        if version is False:
            return Outcome.HALTED
        self.cluster.set_error(None)
        if version == self.host_version:
            if not self.status_done or not self.rundir.has_status():
                self.write_status(version, "done")
            return Outcome.NOTHING

        logger.info(RULE)
        logger.info(f"Deploying version {version}")
        self.write_status(version, "deploying")
        outcome = Outcome.DONE
        try:
            self.converge(version)
            self.record(version)
        except Stopped:
            logger.warning(f"Stopped before finishing version {version}")
            self.write_status(version, "stopped")
            return Outcome.STOPPED
        except Abandoned:
            logger.warning("Abandoning deployment because cluster version is None")
            self.write_status(version, "abandoned")
            outcome = Outcome.ABANDONED
        if self.config.after and not self.after_hook(version):
            return Outcome.FAILED
        return outcome

    def converge(self, version: Any) -> None:
        """Steps 5-12, checking between steps; the role lock frames the
        controller's `starting-deployments` .. `ending-deployments`."""
        desired = self.desired()
        executor = Executor(self.runner, self.fs, self.packages, self.cluster, self.rundir, version)
        # A host with a role controller is not abandoned: it finishes its
        # run, so that it is not left out of service.
        abandonable = desired.controller is None
        batches: list[Callable[[], list[Step]]] = [
            lambda: self.controller_steps(desired),
            # Planned after the controller steps ran: they change /opt.
            lambda: self.deployment_steps(desired),
        ]
        with ExitStack() as role_lock:
            for batch in batches:
                for step in batch():
                    self.between_steps(abandonable)
                    if isinstance(step, ControllerCommand) and step.command == STARTING:
                        lock = self.cluster.role_lock(step.role, step.max_parallel)
                        role_lock.enter_context(lock)
                    executor.apply(step)
                    if isinstance(step, ControllerCommand) and step.command == ENDING:
                        role_lock.close()
        # Recording success is a step too.
        self.between_steps(abandonable)

    def between_steps(self, abandonable: bool) -> None:
        """Stop when asked to; abandon when another host halted the cluster."""
        self.heartbeat()
        if self.stop.is_set():
            raise Stopped()
        if abandonable and self.cluster.version() is None:
            raise Abandoned()

    def record(self, version: Any) -> None:
        """Step 13."""
        self.cluster.record(version)
        self.rundir.write_host_version(version)
        self.host_version = version
        logger.info(f"Done deploying version {version}")
        self.write_status(version, "done")

    def after_hook(self, version: Any) -> bool:
        """Step 14; False when the hook failed. The halt is reported here
        (even our own, after a failing hook), not by the run it queues."""
        logger.info("Running after hook")
        succeeded = True
        try:
            self.runner.run(list(self.config.after), kind="hook")
        except Exception as error:
            self.fail(error, version, "after", f"FAILED after deploying version {version}")
            succeeded = False
        if self.cluster.version() is None:
            logger.warning(HALTED)
            self.halt_reported = True
        return succeeded

    def fail(self, error: Exception, version: Any, label: str, critical: str) -> None:
        try:
            self.failed(version, error)
        finally:
            logger.opt(exception=error).error(label)
            logger.critical(critical)

    def crashed(self, error: Exception) -> None:
        """An error no phase of the run accounts for (a bug, or data it could
        not handle; the daemon logs it): a failure like any other."""
        self.failed(self.cluster.version(), error)

    def failed(self, version: Any, error: Exception) -> None:
        """Halt, say why on the host node, status `error`."""
        try:
            self.report(version, error_message(error))
        finally:
            self.write_status(version, "error")

    def report(self, version: Any, message: str) -> None:
        """Halt the cluster and set this host's `error`; when ZooKeeper
        cannot be reached, the next run does it instead."""
        try:
            self.cluster.halt()
            self.cluster.set_error(message)
        except ClusterUnavailable as error:
            logger.error(f"Could not halt the cluster ({error}); halting once ZooKeeper answers")
            self.unreported = (version, message)

    def write_status(self, version: Any, status: str) -> None:
        """The status line (any JSON scalar version: see `rundir.version_text`)."""
        self.rundir.write_status(version, status)
        self.status_done = status == "done"
