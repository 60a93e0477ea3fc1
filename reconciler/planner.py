"""plan(desired, actual) -> the ordered steps of one run. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.actual import ActualState
from reconciler.model import DesiredState, Version, app_name, is_vcs
from reconciler.steps import (
    ENDING,
    STARTING,
    Checkout,
    ControllerCommand,
    Deploy,
    InstallPackage,
    RemoveEmptyConfigDirs,
    RemoveSoftware,
    Step,
    Undeploy,
)


def plan(
    desired: DesiredState,
    actual: ActualState,
    version: Version,
    after: Sequence[str] = (),
    role: str | None = None,
    controller: str | None = None,
) -> list[Step]:
    """The steps 7-14 of a run, in the order of the spec.

    `controller` is the role controller package in /opt (if the host has a
    role and one is configured); its commands frame the installs and deploys.
    """
    steps: list[Step] = []
    wanted = {d.key for d in desired.deployments}
    stale = sorted(
        (d for d in actual.deployments if d.key not in wanted),
        key=lambda d: (d.app, d.rpm, d.path, d.n),
    )
    steps += [Undeploy(app=d.app, rpm=d.rpm, path=d.path, n=d.n) for d in stale]

    if controller and role:
        steps.append(ControllerCommand(controller, STARTING, role))

    for rpm in sorted(desired.packages):
        steps += install_steps(rpm, desired.packages[rpm], actual)

    steps += [
        Deploy(app=d.app, rpm=d.rpm, subtype=d.subtype, path=d.path, n=d.n, lock=controller is None)
        for d in desired.deployments
    ]

    if controller and role:
        steps.append(ControllerCommand(controller, ENDING, role))

    used = set(desired.packages)
    unused = sorted(actual.applications - used)
    steps += [RemoveSoftware(name, checkout=name in actual.checkouts) for name in unused]
    emptied = sorted({d.app for d in stale} | {app_name(name) for name in unused})
    if emptied:
        steps.append(RemoveEmptyConfigDirs(tuple(emptied)))

    return steps


def install_steps(rpm: str, version: Version, actual: ActualState) -> list[Step]:
    """Install `rpm` at `version`: from the package manager, or a checkout
    for a VCS version. A package where a checkout is wanted is removed with
    the package manager first; a checkout where a package is wanted is
    removed from disk."""
    if is_vcs(version):
        removal = [RemoveSoftware(rpm)] if rpm in actual.opt - actual.checkouts else []
        return [*removal, Checkout(rpm=rpm, url=str(version))]
    if rpm in actual.checkouts:
        return [RemoveSoftware(rpm, checkout=True), InstallPackage(rpm, version, present=False)]
    return [InstallPackage(rpm=rpm, version=version, present=rpm in actual.opt)]
