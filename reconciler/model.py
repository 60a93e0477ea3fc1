"""Desired state: everything the tree says one host should have (its
deployments, and for a host with a role its role controller), with every
rule of the spec. Pure, no I/O.

Whatever the tree says is checked here, before anything on the host changes:
node types, names, versions, and the VCS version grammar (`git:REPO#REF`,
`svn:...`), which the VCS driver reads through `vcs_origin`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from reconciler.errors import TreeContentError
from reconciler.tree import Node, TreeError, join_path, resolved_properties
from reconciler.validate import (
    Invalid,
    instances,
    package_problem,
    printable,
    shown,
    version_problem,
)

VERSIONED_RPM = re.compile(r"(\S+)-\d+(\.\d+)*$")
VCS_VERSION = re.compile(r"^(git|svn|svn\+[a-z]+|file):")
GIT_PREFIXES = ("git://", "git:")
UNSAFE = re.compile(r"[\s\x00-\x1f\x7f/]")
UNSAFE_URL = re.compile(r"[\s\x00-\x1f\x7f]")
ROLES = "/roles"
MAX_PARALLEL = "max-parallel"

Version = str | int | float | None


class HostIdentity(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    role: str | None = None


class Deployment(BaseModel):
    """One instance of an app on this host."""

    model_config = ConfigDict(frozen=True)

    app: str
    rpm: str
    subtype: str | None
    version: Version
    path: str
    n: int
    # Hosts that may run this deployable node's deploy script at once.
    max_parallel: int = 1

    @property
    def path_name(self) -> str:
        return path_name(self.path)

    @property
    def key(self) -> tuple[str, str, int]:
        """What makes an installed deployment wanted: `(app, path, n)`."""
        return (self.app, self.path, self.n)


@dataclass(frozen=True)
class Controller:
    """The role controller `/roles/<role>` names: a package at a version,
    installed like any other software (package manager or VCS)."""

    rpm: str
    # None: "don't care" (a versioned package name without a version).
    version: Version
    # Hosts of the role that may hold the role lock at once.
    max_parallel: int = 1


@dataclass(frozen=True)
class Origin:
    """Where a VCS version checks out from: what `git clone` or `svn co` is
    given, and for git the REF to check out."""

    kind: Literal["git", "svn"]
    url: str
    ref: str | None = None


class DesiredState(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployments: tuple[Deployment, ...]
    # rpm name -> version; None means "don't care" (versioned rpm names).
    packages: dict[str, Version]
    # The host's role (None: no role, installed controllers are left alone)
    # and the controller `/roles/<role>` wants (None: none wanted).
    role: str | None = None
    controller: Controller | None = None


def path_name(path: str) -> str:
    """`/cust/someapp/cms` -> `cust,someapp,cms` (the deployment file's stem)."""
    return path.lstrip("/").replace("/", ",")


def app_name(rpm: str) -> str:
    match = VERSIONED_RPM.fullmatch(rpm)
    return match.group(1) if match else rpm


def is_versioned(rpm: str) -> bool:
    return VERSIONED_RPM.fullmatch(rpm) is not None


def is_vcs(version: Version) -> bool:
    return isinstance(version, str) and VCS_VERSION.match(version) is not None


def check_name(name: str, what: str, where: str) -> None:
    """Refuse names that could escape /opt or /etc, be read as options or
    (by yum) as globs or groups."""
    if not name or UNSAFE.search(name) or ".." in name or name.startswith("-") or name == ".":
        raise TreeContentError(f"Unsafe {what} {shown(name)} at {printable(where)}")
    # Package names and versions also go to yum, which expands globs.
    checks = {"package name": package_problem, "version": version_problem}
    problem = checks[what](name) if what in checks else None
    if problem:
        raise TreeContentError(f"Unsafe {what} {shown(name)} at {printable(where)}: {problem}")


def _targets(path: str, deploy: Node, host: HostIdentity) -> list[str]:
    """The children of a `deploy` node that name this host."""
    names = deploy.children
    if host.role is not None:
        for name in (host.id, host.name):
            if name in names and name != host.role:
                raise TreeContentError(
                    f"Found a host-based deployment at {join_path(join_path(path, 'deploy'), name)}"
                    f" but the host has a role, {host.role}."
                )
        wanted = [host.role]
    else:
        if host.id != host.name and host.id in names and host.name in names:
            raise TreeContentError(
                f"Conflicting deployments for {path}. Can't deploy to {host.name} and {host.id}."
            )
        wanted = [host.id, host.name]
    return [name for name in dict.fromkeys(wanted) if name in names]


def max_parallel(properties: dict[str, Any], path: str) -> int:
    """`max-parallel` of a deployable node or `/roles/<role>`: an int of at
    least 1 (not a bool, whose `True` would read as 1), 1 when not set."""
    value = properties.get(MAX_PARALLEL, 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TreeContentError(f"Invalid {MAX_PARALLEL} for {printable(path)}: {shown(value)}")
    return value


def _instances(target_path: str, properties: dict[str, Any]) -> int:
    try:
        return instances(properties.get("n", 1))
    except Invalid as e:
        raise TreeContentError(f"Invalid n for {printable(target_path)}: {e}") from None


def _properties(root: Node, path: str) -> dict[str, Any]:
    try:
        return resolved_properties(root, path)
    except TreeError as e:
        raise TreeContentError(str(e)) from None


def role_path(role: str) -> str:
    return f"{ROLES}/{role}"


def software(properties: dict[str, Any], path: str) -> tuple[str, str | None, Version]:
    """`(rpm, subtype, version)` of the node at `path` (a deployable node or
    `/roles/<role>`), from its resolved properties, with every check."""
    rpm, subtype = _type(properties, path)
    return rpm, subtype, _version(properties, rpm, path)


def _type(properties: dict[str, Any], path: str) -> tuple[str, str | None]:
    type_ = properties["type"]
    words = type_.split() if isinstance(type_, str) else []
    if not 1 <= len(words) <= 2:
        raise TreeContentError(f"Invalid node type: {type_!r}")
    rpm = words[0]
    subtype = words[1] if len(words) == 2 else None
    check_name(rpm, "package name", path)
    check_name(app_name(rpm), "app name", path)
    if subtype is not None:
        check_name(subtype, "subtype", path)
    return rpm, subtype


def role_controller(root: Node, role: str) -> Controller | None:
    """The controller `/roles/<role>` names; None when the node is missing
    or has no `type`."""
    path = role_path(role)
    node = root.get(path)
    if node is None or not node.has_property("type"):
        return None
    properties = _properties(root, path)
    rpm, _subtype, version = software(properties, path)
    return Controller(rpm, version, max_parallel(properties, path))


def desired_state(root: Node, host: HostIdentity) -> DesiredState:
    """Every deployment the tree gives `host`, and its role controller, with
    every rule of the spec.

    Raises TreeContentError with the spec's exact message on the first
    problem (deployable nodes first, then `/roles/<role>`).
    """
    deployments: list[Deployment] = []
    versions: dict[str, Version] = {}
    for path, node in root.walk():
        if "deploy" not in node.children or not node.has_property("type"):
            continue
        properties = _properties(root, path)
        targets = _targets(path, node.children["deploy"], host)
        if not targets:
            continue
        # `software()`'s checks, in the spec's order around the path's.
        rpm, subtype = _type(properties, path)
        for segment in path.split("/")[1:]:
            check_name(segment, "path segment", path)
        version = _version(properties, rpm, path)
        if rpm in versions and versions[rpm] != version:
            raise TreeContentError(
                f"Inconsistent versions for {rpm}. {version!r} != {versions[rpm]!r}"
            )
        versions[rpm] = version
        width = max_parallel(properties, path)
        for name in targets:
            target_path = join_path(join_path(path, "deploy"), name)
            count = _instances(target_path, _properties(root, target_path))
            deployments.extend(
                Deployment(
                    app=app_name(rpm),
                    rpm=rpm,
                    subtype=subtype,
                    version=version,
                    path=path,
                    n=i,
                    max_parallel=width,
                )
                for i in range(count)
            )
    deployments.sort(key=lambda d: (d.path, d.n))
    role = host.role
    return DesiredState(
        deployments=tuple(deployments),
        packages=versions,
        role=role,
        controller=role_controller(root, role) if role is not None else None,
    )


def _version(properties: dict[str, Any], rpm: str, path: str) -> Version:
    if "version" not in properties:
        if is_versioned(rpm):
            return None
        raise TreeContentError(f"No version found for {path}")
    version: Version = properties["version"]
    if isinstance(version, bool) or not isinstance(version, str | int | float):
        raise TreeContentError(f"Invalid version for {path}: {version!r}")
    if isinstance(version, str):
        if is_vcs(version):
            vcs_origin(version, path)
        else:
            check_name(version, "version", path)
    return version


def vcs_origin(version: str, where: str) -> Origin:
    """The one reading of a VCS version: `git:REPO#REF` or `git://REPO#REF`
    is git REPO at REF; any other (`svn:`, `svn+ssh:`, `file:` ...) is an svn
    URL, used as is. The URL goes on git's or svn's command line: no
    whitespace, and nothing that could be read as an option."""
    if UNSAFE_URL.search(version) or version.startswith("-"):
        raise TreeContentError(f"Unsafe version {version!r} at {where}")
    for prefix in GIT_PREFIXES:
        if version.startswith(prefix):
            repo, sep, ref = version[len(prefix) :].rpartition("#")
            if not sep or not repo or not ref:
                raise TreeContentError(
                    f"Invalid git version {version!r} at {where}: expected git:REPO#REF"
                )
            if repo.startswith("-") or ref.startswith("-"):
                raise TreeContentError(f"Unsafe version {version!r} at {where}")
            return Origin("git", repo, ref)
    return Origin("svn", version)
