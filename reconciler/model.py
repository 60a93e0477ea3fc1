"""Desired state: which deployments the tree gives one host. Pure, no I/O."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from reconciler.errors import TreeContentError
from reconciler.tree import Node, TreeError, join_path, resolved_properties

VERSIONED_RPM = re.compile(r"(\S+)-\d+(\.\d+)*$")
VCS_VERSION = re.compile(r"^(git|svn|svn\+[a-z]+|file):")
UNSAFE = re.compile(r"[\s\x00-\x1f\x7f/]")
UNSAFE_URL = re.compile(r"[\s\x00-\x1f\x7f]")

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

    @property
    def path_name(self) -> str:
        return path_name(self.path)

    @property
    def key(self) -> tuple[str, str, int]:
        """What makes an installed deployment wanted: `(app, path, n)`."""
        return (self.app, self.path, self.n)


class DesiredState(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployments: tuple[Deployment, ...]
    # rpm name -> version; None means "don't care" (versioned rpm names).
    packages: dict[str, Version]


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
    """Refuse names that could escape /opt or /etc or be read as options."""
    if not name or UNSAFE.search(name) or ".." in name or name.startswith("-") or name == ".":
        raise TreeContentError(f"Unsafe {what} {name!r} at {where}")


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


def _instances(target_path: str, properties: dict[str, Any]) -> int:
    n = properties.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise TreeContentError(f"Invalid n for {target_path}: {n!r}")
    return n


def _properties(root: Node, path: str) -> dict[str, Any]:
    try:
        return resolved_properties(root, path)
    except TreeError as e:
        raise TreeContentError(str(e)) from None


def desired_state(root: Node, host: HostIdentity) -> DesiredState:
    """Every deployment the tree gives `host`, with every rule of the spec.

    Raises TreeContentError with the spec's exact message on the first problem.
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
        type_ = properties["type"]
        words = type_.split() if isinstance(type_, str) else []
        if not 1 <= len(words) <= 2:
            raise TreeContentError(f"Invalid node type: {type_!r}")
        rpm = words[0]
        subtype = words[1] if len(words) == 2 else None
        app = app_name(rpm)
        check_name(rpm, "package name", path)
        check_name(app, "app name", path)
        if subtype is not None:
            check_name(subtype, "subtype", path)
        for segment in path.split("/")[1:]:
            check_name(segment, "path segment", path)
        version = _version(properties, rpm, path)
        if rpm in versions and versions[rpm] != version:
            raise TreeContentError(
                f"Inconsistent versions for {rpm}. {version!r} != {versions[rpm]!r}"
            )
        versions[rpm] = version
        for name in targets:
            target_path = join_path(join_path(path, "deploy"), name)
            count = _instances(target_path, _properties(root, target_path))
            deployments.extend(
                Deployment(app=app, rpm=rpm, subtype=subtype, version=version, path=path, n=i)
                for i in range(count)
            )
    deployments.sort(key=lambda d: (d.path, d.n))
    return DesiredState(deployments=tuple(deployments), packages=versions)


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
            check_vcs_version(version, path)
        else:
            check_name(version, "version", path)
    return version


def check_vcs_version(version: str, where: str) -> None:
    """A checkout URL goes on git's or svn's command line: no whitespace, and
    nothing that could be read as an option. Checked with the rest of the
    tree, before anything on the host changes."""
    if UNSAFE_URL.search(version):
        raise TreeContentError(f"Unsafe version {version!r} at {where}")
    if version.startswith("git:"):
        repo, sep, ref = version.removeprefix("git://").removeprefix("git:").rpartition("#")
        if not sep or not repo or not ref:
            raise TreeContentError(
                f"Invalid git version {version!r} at {where}: expected git:REPO#REF"
            )
        if repo.startswith("-") or ref.startswith("-"):
            raise TreeContentError(f"Unsafe version {version!r} at {where}")
