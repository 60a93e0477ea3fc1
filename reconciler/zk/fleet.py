"""The fleet: `/hosts` (the cluster version) and its children, the agents
registered there (ephemeral nodes) and legacy persistent host nodes. Read by
the sync, `reconcile hosts`, `reconcile monitor` and the tree lint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from reconciler.model import HostIdentity
from reconciler.tree import join_path
from reconciler.zk.paths import HOSTS
from reconciler.zk.storage import decode


def version_key(version: Any) -> str:
    """Versions compare as strings: `1` equals `'1'` (the status file and
    the operators' tools can't tell them apart either)."""
    return version if isinstance(version, str) else json.dumps(version)


@dataclass(frozen=True)
class HostRecord:
    """One child of `/hosts`: a registered agent (ephemeral), or a legacy
    persistent node."""

    id: str
    name: str | None
    role: str | None
    version: Any
    error: str | None
    registered: bool

    def identity(self) -> HostIdentity:
        return HostIdentity(id=self.id, name=self.name or self.id, role=self.role or None)


@dataclass(frozen=True)
class Fleet:
    exists: bool  # whether `/hosts` exists at all
    version: Any
    properties: dict[str, Any] = field(default_factory=dict)
    hosts: tuple[HostRecord, ...] = ()

    @property
    def initial(self) -> bool:
        """No version was ever set: no sync yet (agents started first
        create `/hosts` without one)."""
        return "version" not in self.properties

    @property
    def halted(self) -> bool:
        """The cluster version is None: an agent failed (not: never synced)."""
        return self.version is None and not self.initial

    def converged(self, host: HostRecord) -> bool:
        return version_key(host.version) == version_key(self.version)

    def unconverged(self) -> list[HostRecord]:
        return [host for host in self.hosts if not self.converged(host)]


def read_fleet(client: KazooClient) -> Fleet:
    """`/hosts` and its children, sorted by host id."""
    try:
        data, _stat = client.get(HOSTS)
        names = client.get_children(HOSTS)
    except NoNodeError:
        return Fleet(exists=False, version=None)
    properties = decode(data)
    hosts = []
    for name in sorted(names):
        try:
            host_data, stat = client.get(join_path(HOSTS, name))
        except NoNodeError:
            continue  # the agent stopped since the listing
        hosts.append(host_record(name, host_data, stat))
    return Fleet(True, properties.get("version"), properties, tuple(hosts))


def host_record(host_id: str, data: bytes, stat: Any) -> HostRecord:
    """The record of `/hosts/<host_id>`, from its data and stat."""
    host = decode(data)
    return HostRecord(
        id=host_id,
        name=_text(host.get("name")),
        role=_text(host.get("role")),
        version=host.get("version"),
        error=_text(host.get("error")),
        registered=stat.ephemeralOwner != 0,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
