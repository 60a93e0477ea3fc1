"""Runs the steps of a plan through the drivers.

The package manager's exit code is never trusted alone: every install is
verified by asking what is installed, with a downgrade as the fallback.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any, Protocol

from loguru import logger

from reconciler.drivers.command import Runner
from reconciler.drivers.filesystem import FileSystem
from reconciler.drivers.packages import PackageManager, package_spec
from reconciler.drivers.vcs import Vcs
from reconciler.errors import InstallFailed
from reconciler.model import Version, path_name
from reconciler.rundir import RunDirectory
from reconciler.steps import (
    ENDING,
    STARTING,
    AfterHook,
    Checkout,
    ControllerCommand,
    Deploy,
    InstallPackage,
    RecordSuccess,
    RemoveEmptyConfigDirs,
    RemoveSoftware,
    Step,
    Undeploy,
    deploy_script,
)


class Abandoned(Exception):
    """The cluster version became None while we were deploying."""


class Stopped(Exception):
    """The agent is shutting down: stop between steps, halting nothing."""


class Cluster(Protocol):
    """What a run needs from the cluster (ZooKeeper, or a tree file)."""

    def version(self) -> Any:
        """The cluster version now."""

    def halt(self) -> None:
        """Set the cluster version to None: every other agent stops."""

    def record(self, version: Any) -> None:
        """This host converged to `version`."""

    def lock(self, name: str) -> AbstractContextManager[object]:
        """The cluster-wide lock `/agent-locks/<name>`."""

    def role_lock(self, role: str) -> AbstractContextManager[object]:
        """The persistent role lock `/role-locks/<role>`: released when the
        block ends normally, kept when it ends with an exception."""

    def stopping(self) -> bool:
        """The agent was asked to stop."""


def satisfied(installed: str | None, version: Version) -> bool:
    return installed is not None and (version is None or installed == str(version))


class Executor:
    def __init__(
        self,
        runner: Runner,
        fs: FileSystem,
        packages: PackageManager,
        cluster: Cluster,
        rundir: RunDirectory,
        version: Any,
        vcs: Vcs | None = None,
    ) -> None:
        self.runner = runner
        self.fs = fs
        self.packages = packages
        self.vcs = vcs or Vcs(runner, fs)
        self.cluster = cluster
        self.rundir = rundir
        self.version = version
        self.cleaned = False

    def status(self, text: str) -> None:
        self.rundir.write_status(self.version, text)

    def execute(self, steps: Iterable[Step], abandonable: bool = True) -> None:
        """Run every step but the after hook, checking between steps whether
        another host halted the cluster (unless not `abandonable`: a host
        with a role controller finishes its run).

        The role lock is taken before a controller's `starting-deployments`
        and released after its `ending-deployments`; a failure in between
        (the `ending-deployments` is then not run) keeps it.
        """
        with ExitStack() as held:
            for step in steps:
                if isinstance(step, AfterHook):
                    continue
                if self.cluster.stopping():
                    raise Stopped()
                if abandonable and self.cluster.version() is None:
                    raise Abandoned()
                if isinstance(step, ControllerCommand) and step.command == STARTING:
                    held.enter_context(self.cluster.role_lock(step.role))
                self.run_step(step)
                if isinstance(step, ControllerCommand) and step.command == ENDING:
                    held.close()

    def run_step(self, step: Step) -> None:
        match step:
            case Undeploy():
                self.status(f"undeploying {step.path} {step.n}")
                self.runner.run([deploy_script(step.rpm), "-u", step.path, str(step.n)])
                self.fs.remove_records(step.app, step.path, step.n)
            case InstallPackage():
                self.status(f"installing {step.rpm} {step.version}")
                self.install(step.rpm, step.version, step.present)
            case Checkout():
                self.status(f"installing {step.rpm} {step.url}")
                self.vcs.checkout(step.rpm, step.url)
            case Deploy():
                self.deploy(step)
            case ControllerCommand():
                self.status(f"{step.command} {step.role}")
                self.runner.run(step.argv())
            case RemoveSoftware():
                self.status(f"removing {step.name}")
                if step.checkout:
                    logger.info(f"Removing checkout {step.name}")
                    self.fs.remove_opt(step.name)
                else:
                    self.packages.remove(step.name, if_installed=step.if_installed)
            case RemoveEmptyConfigDirs():
                for app in step.apps:
                    self.fs.remove_empty_config_dir(app)
            case RecordSuccess():
                self.cluster.record(step.version)
                self.rundir.write_host_version(step.version)
                logger.info(f"Done deploying version {step.version}")
                self.status("done")
            case AfterHook():
                self.runner.run(list(step.argv))

    def install(self, rpm: str, version: Version, present: bool) -> None:
        installed = self.packages.installed_version(rpm) if present else None
        if satisfied(installed, version):
            return
        spec = package_spec(rpm, version)
        if not self.cleaned:
            self.packages.clean()
            self.cleaned = True
        self.packages.install(rpm, version)
        installed = self.packages.installed_version(rpm)
        if not satisfied(installed, version) and installed is not None:
            self.packages.downgrade(rpm, version)
            installed = self.packages.installed_version(rpm)
        if not satisfied(installed, version):
            raise InstallFailed(f"Failed to install {spec} (installed: {installed})")

    def deploy(self, step: Deploy) -> None:
        self.status(f"deploying {step.path} {step.n}")
        self.fs.ensure_config_dir(step.app)
        lock = self.cluster.lock(path_name(step.path)) if step.lock else nullcontext()
        with lock:
            try:
                self.runner.run(step.argv())
            except Exception:
                # Halt while we still hold the lock, so the next host in line
                # sees the halt before it can restart the same service.
                self.cluster.halt()
                raise
        self.fs.write_script_record(step.app, step.path, step.n, deploy_script(step.rpm))
