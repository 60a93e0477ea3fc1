"""The ACL policy: who may read and change which nodes.

ZooKeeper checks an ACL per node (never inherited), when the node is read
or changed: READ (data, children), WRITE (data), CREATE and DELETE (of
children), ADMIN (the ACL). A policy exists as soon as the command writing
the tree (`sync`, `tree import`) has credentials: its *writer* (that
identity) and the ids in `zookeeper-acl-operators` get every permission on
every node; `zookeeper-acl-agents` adds the agents' identities with just
what the agent needs:

| nodes                                    | agents                    |
|------------------------------------------|---------------------------|
| the deployment tree (everything else, /) | READ                      |
| `/hosts`                                 | READ, CREATE, WRITE       |
| `/agent-locks`                           | READ, CREATE              |
| `/role-locks/<role>`                     | READ, CREATE, DELETE      |

Nobody else gets anything. The ids are kept in `/acl-policy` (agents may
read it) because the nodes the agents create (their host node, lock nodes
and requests) need them: those get the *creator ACL* (`creator_acl`):
operators everything, agents READ, the creating agent READ, WRITE, CREATE
and DELETE. ZooKeeper shows digest ids to agents without their hash, so
the ACLs themselves can't tell an agent who the operators are. Those nodes
are the agents' own: only checked for other ids (a persistent one made
before the policy, open, then gets operators and agents only).
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
from reconciler.zk.paths import AGENT_LOCKS, HOSTS, ROLE_LOCKS
from reconciler.zk.reader import DEFAULT_WINDOW, normalize, read_tree
from reconciler.zk.storage import decode, encode

POLICY_NODE = "/acl-policy"
# Made by the policy when missing, so that agents never need CREATE on `/`.
AGENT_NODES = (HOSTS, AGENT_LOCKS, ROLE_LOCKS)
SCHEMES = ("digest", "sasl", "x509", "ip", "world", "super")

R: int = Permissions.READ
W: int = Permissions.WRITE
C: int = Permissions.CREATE
D: int = Permissions.DELETE
ALL: int = Permissions.ALL


def parse_id(text: str, key: str = "zookeeper-acl-agents") -> Id:
    """`scheme:id`, e.g. `digest:agent:<base64 SHA-1>` or `sasl:agent`."""
    scheme, colon, ident = text.partition(":")
    if not colon or not ident or scheme not in SCHEMES:
        raise ConfigError(f"{key}: {text!r} is not scheme:id (scheme one of {', '.join(SCHEMES)})")
    return Id(scheme, ident)


def text(ident: Id) -> str:
    return f"{ident.scheme}:{ident.id}"


@dataclass(frozen=True)
class AclPolicy:
    writer: Id
    agents: tuple[Id, ...] = ()
    operators: tuple[Id, ...] = ()

    def agent_permissions(self, path: str) -> int:
        names = split_path(path)
        if path == HOSTS:
            return R | C | W
        if path == AGENT_LOCKS:
            return R | C  # kazoo's Lock makes `/agent-locks/<name>` itself
        if path.startswith(ROLE_LOCKS + "/") and len(names) == 2:
            return R | C | D  # requests come and go; the role's node stays
        return R

    def acl(self, path: str) -> list[ACL]:
        """The ACL the policy gives the node at `path`."""
        full = dict.fromkeys((self.writer, *self.operators), ALL)
        rights = self.agent_permissions(path)
        agents = {agent: rights for agent in self.agents if agent not in full}
        return [ACL(perms, ident) for ident, perms in {**full, **agents}.items()]

    def stored(self) -> bytes:
        """`/acl-policy`'s data."""
        operators = [text(i) for i in dict.fromkeys((self.writer, *self.operators))]
        return encode({"operators": operators, "agents": [text(i) for i in self.agents]})


def _owned_by_agents(path: str) -> bool:
    """Persistent nodes the agents create (lock nodes, role lock requests,
    legacy host nodes): theirs, so only checked for strangers' access."""
    names = split_path(path)
    if not names:
        return False
    if names[0] in ("hosts", "hosts-lock"):
        return len(names) > 1
    depth = {"agent-locks": 1, "role-locks": 2}.get(names[0])
    return depth is not None and len(names) > depth


def _ids(acl: list[Any]) -> set[tuple[str, str]]:
    return {(entry.id.scheme, entry.id.id) for entry in acl}


def _entries(acl: list[Any]) -> set[tuple[int, str, str]]:
    return {(entry.perms, entry.id.scheme, entry.id.id) for entry in acl}


def _wanted(policy: AclPolicy, path: str, acl: list[Any]) -> list[ACL] | None:
    """The ACL the node at `path` should get instead of `acl`; None if fine."""
    if _owned_by_agents(path):
        known = _ids([ACL(0, i) for i in (policy.writer, *policy.operators, *policy.agents)])
        if _ids(acl) <= known:
            return None
        # Made before the policy (open): as agents now make them.
        return [ACL(ALL, i) for i in (policy.writer, *policy.operators)] + [
            ACL(R | W | C | D, agent) for agent in policy.agents
        ]
    wanted = policy.acl(path)
    return None if _entries(acl) == _entries(wanted) else wanted


def _audit(client: KazooClient, policy: AclPolicy, path: str) -> list[tuple[str, list[ACL]]]:
    """The nodes under `path` whose ACL breaks the policy, with the ACL they
    should have, in path order. Ephemeral nodes (live sessions) are left."""
    path = normalize(path)
    todo = deque(p for p, node in read_tree(client, path).walk(path) if not node.ephemeral)
    wrong = []
    in_flight: deque[tuple[str, Any]] = deque()
    while todo or in_flight:
        while todo and len(in_flight) < DEFAULT_WINDOW:
            p = todo.popleft()
            in_flight.append((p, client.get_acls_async(p)))
        p, result = in_flight.popleft()
        try:
            acl, _stat = result.get()
        except NoNodeError:
            continue  # deleted meanwhile
        wanted = _wanted(policy, p, acl)
        if wanted is not None:
            wrong.append((p, wanted))
    return wrong


def differences(client: KazooClient, policy: AclPolicy, path: str = "/") -> list[str]:
    """The paths under `path` whose ACL breaks the policy, in path order."""
    return [p for p, _acl in _audit(client, policy, path)]


def apply(client: KazooClient, policy: AclPolicy, path: str = "/") -> list[str]:
    """Give the nodes under `path` the policy's ACL (at `/`, also write
    `/acl-policy` and create the nodes agents need); the paths changed.
    The client's own new nodes get the creator ACL from then on."""
    if normalize(path) == "/":
        for node in AGENT_NODES:
            try:
                client.create(node, b"", acl=policy.acl(node))
            except NodeExistsError:
                pass
        try:
            client.create(POLICY_NODE, policy.stored(), acl=policy.acl(POLICY_NODE))
        except NodeExistsError:
            if client.get(POLICY_NODE)[0] != policy.stored():
                client.set(POLICY_NODE, policy.stored())
    wrong = _audit(client, policy, path)
    apply_writes(client, [Write("acl", p, acl=tuple(acl)) for p, acl in wrong])
    client.default_acl = creator_acl(client, policy.writer)
    return [p for p, _acl in wrong]


def creator_acl(client: KazooClient, me: Id) -> list[ACL] | None:
    """The ACL for nodes a client with identity `me` creates (see above);
    None (ZooKeeper's open ACL, as without credentials) while no policy
    was written, so that operators keep seeing hosts registered meanwhile."""
    try:
        stored = decode(client.get(POLICY_NODE)[0])
    except (NoNodeError, NoAuthError):
        return None
    try:
        operators = [parse_id(i, POLICY_NODE) for i in stored.get("operators", [])]
        agents = [parse_id(i, POLICY_NODE) for i in stored.get("agents", [])]
    except (ConfigError, TypeError):
        return None  # not ours to read: as without a policy
    acl = dict.fromkeys(agents, R) | {me: R | W | C | D} | dict.fromkeys(operators, ALL)
    return [ACL(perms, ident) for ident, perms in acl.items()]


def policy_for(
    writer: Id | None, agents: tuple[str, ...], operators: tuple[str, ...] = ()
) -> AclPolicy | None:
    """The policy of a writer with identity `writer` (None: no credentials,
    no policy: nodes stay open, as ZooKeeper makes them)."""
    if writer is None:
        if agents or operators:
            raise ConfigError(
                "zookeeper-acl-agents and -operators need credentials (zookeeper-auth-file)"
            )
        return None
    return AclPolicy(
        writer,
        tuple(parse_id(agent) for agent in agents),
        tuple(parse_id(operator, "zookeeper-acl-operators") for operator in operators),
    )
