"""The ACL policy: who may read and change which nodes.

ZooKeeper checks an ACL per node (never inherited), when the node is read
or changed: READ (data, children), WRITE (data), CREATE and DELETE (of
children), ADMIN (the ACL). A policy exists as soon as the command writing
the tree (`sync`, `tree import`) has credentials; its *writer* (that
identity) gets every permission on every node. `zookeeper-acl-agents` adds
the agents' identities with just what the agent needs:

| nodes                                    | agents                    |
|------------------------------------------|---------------------------|
| the deployment tree (everything else, /) | READ                      |
| `/hosts`                                 | READ, CREATE, WRITE       |
| `/agent-locks`, `/role-locks`, and       | READ, CREATE, DELETE      |
| `/role-locks/<role>`                     |                           |
| `/hosts-lock` (the sync's own lock)      | nothing                   |

Nobody else gets anything. The nodes agents create (their host node, lock
nodes and requests) get the *creator ACL* (`creator_acl`): every id holding
ADMIN on `/hosts` (the writers) gets everything, the other ids named there
(agents) READ, and the creating agent READ, WRITE, CREATE and DELETE. Those
nodes are the agents' own and are not checked against the policy.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NodeExistsError, NoNodeError
from kazoo.security import ACL, Id, Permissions

from reconciler.errors import ConfigError
from reconciler.tree import split_path
from reconciler.zk.importer import Write, apply_writes
from reconciler.zk.reader import DEFAULT_WINDOW, normalize, read_tree

HOSTS = "/hosts"
LOCK_AREAS = ("agent-locks", "role-locks")
# Made by the policy when missing, so that agents never need CREATE on `/`.
AGENT_NODES = (HOSTS, "/agent-locks", "/role-locks")
SYNC_LOCK = "hosts-lock"
SCHEMES = ("digest", "sasl", "x509", "ip", "world", "super")

R: int = Permissions.READ
W: int = Permissions.WRITE
C: int = Permissions.CREATE
D: int = Permissions.DELETE
ALL: int = Permissions.ALL


def parse_id(text: str) -> Id:
    """`scheme:id`, e.g. `digest:agent:<base64 SHA-1>` or `sasl:agent`."""
    scheme, colon, ident = text.partition(":")
    if not colon or not ident or scheme not in SCHEMES:
        raise ConfigError(
            f"zookeeper-acl-agents: {text!r} is not scheme:id (scheme one of {', '.join(SCHEMES)})"
        )
    return Id(scheme, ident)


@dataclass(frozen=True)
class AclPolicy:
    writer: Id
    agents: tuple[Id, ...] = ()

    def agent_permissions(self, path: str) -> int:
        names = split_path(path)
        if not names:
            return R
        if names[0] == SYNC_LOCK:
            return 0
        if path == HOSTS:
            return R | C | W
        if names[0] in LOCK_AREAS:
            return R | C | D
        return R

    def acl(self, path: str) -> list[ACL]:
        """The ACL the policy gives the node at `path`."""
        acl = [ACL(ALL, self.writer)]
        permissions = self.agent_permissions(path)
        if permissions:
            acl += [ACL(permissions, agent) for agent in self.agents if agent != self.writer]
        return acl


def _owned_by_agents(path: str, ephemeral: bool) -> bool:
    """Nodes the agents create: theirs, outside the policy."""
    names = split_path(path)
    if ephemeral or not names:
        return ephemeral
    if names[0] in ("hosts", SYNC_LOCK):
        return len(names) > 1
    depth = {"agent-locks": 1, "role-locks": 2}.get(names[0])
    return depth is not None and len(names) > depth


def _same(a: list[Any], b: list[Any]) -> bool:
    return {(x.perms, x.id.scheme, x.id.id) for x in a} == {
        (x.perms, x.id.scheme, x.id.id) for x in b
    }


def differences(client: KazooClient, policy: AclPolicy, path: str = "/") -> list[str]:
    """The paths under `path` whose ACL is not the policy's, in path order."""
    path = normalize(path)
    paths = [
        p
        for p, node in read_tree(client, path).walk(path)
        if not _owned_by_agents(p, node.ephemeral)
    ]
    differing = []
    in_flight: deque[tuple[str, Any]] = deque()
    todo = deque(paths)
    while todo or in_flight:
        while todo and len(in_flight) < DEFAULT_WINDOW:
            p = todo.popleft()
            in_flight.append((p, client.get_acls_async(p)))
        p, result = in_flight.popleft()
        try:
            acl, _stat = result.get()
        except NoNodeError:
            continue  # deleted meanwhile
        if not _same(acl, policy.acl(p)):
            differing.append(p)
    return differing


def apply(client: KazooClient, policy: AclPolicy, path: str = "/") -> list[str]:
    """Give the nodes under `path` the policy's ACL (creating the nodes
    agents need when `path` is `/`); the paths changed."""
    if normalize(path) == "/":
        for node in AGENT_NODES:
            try:
                client.create(node, b"", acl=policy.acl(node))
            except NodeExistsError:
                pass
    changed = differences(client, policy, path)
    apply_writes(client, [Write("acl", p, acl=tuple(policy.acl(p))) for p in changed])
    return changed


def creator_acl(client: KazooClient, me: Id) -> list[ACL]:
    """The ACL for nodes a client with identity `me` creates (see above)."""
    try:
        hosts_acl, _stat = client.get_acls(HOSTS)
    except (NoNodeError, NoAuthError):
        hosts_acl = []
    acl = {me: R | W | C | D}
    for entry in hosts_acl:
        full = entry.perms & Permissions.ADMIN
        acl[entry.id] = ALL if full else acl.get(entry.id, 0) | R
    if not hosts_acl:
        acl[me] = ALL
    return [ACL(perms, ident) for ident, perms in acl.items()]


def policy_for(writer: Id | None, agents: tuple[str, ...]) -> AclPolicy | None:
    """The policy of a writer with identity `writer` (None: no credentials,
    no policy: nodes stay open, as ZooKeeper makes them)."""
    if writer is None:
        if agents:
            raise ConfigError("zookeeper-acl-agents needs credentials (zookeeper-auth-file)")
        return None
    return AclPolicy(writer, tuple(parse_id(agent) for agent in agents))
