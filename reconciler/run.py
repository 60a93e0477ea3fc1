"""One deployment run (steps 1-14 of the spec) and its failure semantics.

The same run serves `--once` with a tree file and the daemon with
ZooKeeper; only the `Source` differs.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from reconciler.config import Config
from reconciler.drivers.command import Runner
from reconciler.drivers.dnf import Dnf
from reconciler.drivers.filesystem import FileSystem
from reconciler.drivers.packages import PackageManager, Yum
from reconciler.executor import Abandoned, Cluster, Executor, Stopped
from reconciler.model import Controller, DesiredState, HostIdentity, desired_state
from reconciler.model import role_controller as wanted_controller
from reconciler.planner import controller_change as controller_steps
from reconciler.planner import plan
from reconciler.rundir import RunDirectory
from reconciler.steps import Step
from reconciler.tree import Node

RULE = "=" * 60


class Source(Cluster, Protocol):
    """Where the desired state comes from and where results go."""

    def tree(self) -> Node:
        """The whole tree, read now."""

    def set_error(self, message: str | None) -> None:
        """Set (or, with None, clear) this host's `error`."""


class Outcome(enum.Enum):
    NOTHING = "nothing to do"
    DONE = "done"
    HALTED = "cluster halted or paused"
    ABANDONED = "abandoned"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def exit_status(self) -> int:
        """For `--once`: 1 when the host did not converge through its own
        run (failed or abandoned), else 0."""
        return 1 if self in (Outcome.FAILED, Outcome.ABANDONED) else 0


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


class Deployer:
    def __init__(self, config: Config, source: Source, verbose: bool = False) -> None:
        self.config = config
        self.source = source
        self.host = HostIdentity(id=config.host_id, name=config.host_name, role=config.role)
        self.runner = Runner(config.root, config.path, verbose=verbose)
        self.fs = FileSystem(config.root)
        self.packages = package_manager(config, self.runner)
        self.rundir = RunDirectory(config.run_directory)
        self.host_version: Any = self.rundir.read_host_version()
        # The halt was already reported (by the end of the last run): the
        # run the halt itself queues stays silent.
        self.halt_reported = False

    def desired(self) -> tuple[DesiredState, Controller | None]:
        """This host's deployments and role controller, from one reading of
        the tree; every error of the tree is raised here, before anything
        on the host changes."""
        root = self.source.tree()
        desired = desired_state(root, self.host)
        role = self.host.role
        return desired, wanted_controller(root, role) if role else None

    def controller_steps(self, controller: Controller | None) -> list[Step]:
        """Step 5: make the installed role controller match (role hosts only)."""
        return controller_steps(controller, self.fs.read()) if self.host.role else []

    def deployment_steps(
        self, desired: DesiredState, controller: Controller | None, version: Any
    ) -> list[Step]:
        """Steps 7-14, from the host as it is now."""
        return plan(
            desired,
            self.fs.read(),
            version,
            self.config.after,
            role=self.host.role,
            controller=controller.rpm if controller else None,
        )

    def plan(self, version: Any) -> list[Step]:
        desired, controller = self.desired()
        return self.controller_steps(controller) + self.deployment_steps(
            desired, controller, version
        )

    def deploy(self, executor: Executor, version: Any) -> None:
        """Steps 5-13. A host with a role controller is not abandoned: it
        finishes its run, so that it is not left out of service."""
        desired, controller = self.desired()
        abandonable = controller is None
        executor.execute(self.controller_steps(controller), abandonable)
        executor.execute(self.deployment_steps(desired, controller, version), abandonable)

    def print_plan(self, version: Any) -> None:
        """`--plan`: the steps of a run to `version`, one line each."""
        print(f"# cluster version {version!r}, host version {self.host_version!r}")
        for step in self.plan(version):
            print(step.describe(self.packages))

    def run(self) -> Outcome:
        version = self.source.version()
        if version is None:
            if not self.halt_reported:
                logger.warning("Not deploying because cluster version is None")
                self.halt_reported = True
            return Outcome.HALTED
        self.halt_reported = False
        if version is False:
            return Outcome.HALTED
        self.source.set_error(None)
        if version == self.host_version:
            if not self.rundir.has_status():
                self.rundir.write_status(version, "done")
            return Outcome.NOTHING

        logger.info(RULE)
        logger.info(f"Deploying version {version}")
        self.rundir.write_status(version, "deploying")
        executor = Executor(self.runner, self.fs, self.packages, self.source, self.rundir, version)
        outcome = Outcome.DONE
        try:
            self.deploy(executor, version)
            self.host_version = version
        except Stopped:
            logger.warning(f"Stopped before finishing version {version}")
            self.rundir.write_status(version, "stopped")
            return Outcome.STOPPED
        except Abandoned:
            logger.warning("Abandoning deployment because cluster version is None")
            self.rundir.write_status(version, "abandoned")
            outcome = Outcome.ABANDONED
        except Exception as error:
            self.fail(error, version, "deploying", f"FAILED deploying version {version}")
            return Outcome.FAILED

        if self.config.after:
            logger.info("Running after hook")
            try:
                self.runner.run(list(self.config.after))
            except Exception as error:
                self.fail(error, version, "after", f"FAILED after deploying version {version}")
                outcome = Outcome.FAILED
            if self.source.version() is None:
                logger.warning("Not deploying because cluster version is None")
                self.halt_reported = True
        return outcome

    def fail(self, error: Exception, version: Any, label: str, critical: str) -> None:
        try:
            self.source.halt()
            self.source.set_error(str(error))
        finally:
            logger.opt(exception=error).error(label)
            logger.critical(critical)
            self.rundir.write_status(version, "error")
