"""Tree lint: every error an agent would hit, found before the tree reaches
any host.

The model (`model.desired_state`) stops at a host's first error. To report
them all, each deployable node is checked on its own, for every host and
role the tree names (each deploy target as a host id and name without role,
and as a role), plus hosts known otherwise (`/hosts/<id>` nodes in the tree,
hosts registered in ZooKeeper) and the roles of `/roles`. Version
consistency, the one rule between nodes, is then checked pairwise against
the first node using the rpm. A host with a role also checks its role
controller (`/roles/<role>`), which is part of its desired state.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler import treefmt
from reconciler.errors import TreeContentError
from reconciler.model import ROLES, HostIdentity, desired_state, role_controller, role_path
from reconciler.tree import Node
from reconciler.validate import printable
from reconciler.zk.paths import HOSTS

TRIMMED_SUFFIX = ".zk"
UNTRIMMED_SUFFIX = ".zkx"


@dataclass(frozen=True)
class Problem:
    """One error: `where` is a node's path or `file:line`."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class TreeFile:
    name: str  # as shown to the operator
    trim: bool  # `.zk` (imported with trim) rather than `.zkx`
    tree: Node


@dataclass(frozen=True)
class Report:
    files: int
    deployables: int
    hosts: int
    problems: list[Problem]

    def summary(self) -> str:
        return (
            f"OK: {plural(self.files, 'file')}, {plural(self.deployables, 'deployable node')}, "
            f"{self.hosts} hosts and roles checked"
        )


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def find_tree_files(directory: Path) -> list[Path]:
    """The tree files under `directory`, relative to it, in the order the
    sync imports them: `.zk` files (sorted), then `.zkx` files (sorted).
    Hidden directories (`.git`, ...) and symbolic links are left out: a link
    could make the sync read a file outside the repository."""
    found: dict[str, list[Path]] = {TRIMMED_SUFFIX: [], UNTRIMMED_SUFFIX: []}
    for parent, directories, names in os.walk(directory):
        # Pruned in place, so `.git` (most of a clone) is never walked.
        directories[:] = [d for d in directories if not d.startswith(".")]
        for name in names:
            path = Path(parent, name)
            if path.suffix in found and path.is_file() and not path.is_symlink():
                found[path.suffix].append(path.relative_to(directory))
    return sorted(found[TRIMMED_SUFFIX]) + sorted(found[UNTRIMMED_SUFFIX])


def load(paths: Sequence[tuple[str, Path]]) -> tuple[list[TreeFile], list[Problem]]:
    """Parse `(name, path)` files; the trees that parse and one problem per
    file that does not (the parser stops at a file's first bad line)."""
    files: list[TreeFile] = []
    problems: list[Problem] = []
    for name, path in paths:
        try:
            tree = treefmt.parse_bytes(path.read_bytes(), name)
        except treefmt.TreeFormatError as e:
            where = f"{e.filename}:{e.lineno}"
            problems.append(Problem(where, f"{e.problem}: {printable(e.line)}"))
            continue
        except OSError as e:
            problems.append(Problem(name, f"Can't read: {e.strerror}"))
            continue
        files.append(TreeFile(name, path.suffix != UNTRIMMED_SUFFIX, tree))
    return files, problems


def merge(files: Iterable[TreeFile]) -> Node:
    """The tree ZooKeeper holds after importing `files` in order at `/`
    (on an empty tree), as `zk.importer.import_tree` does it: each
    imported node takes the file's properties; with trim, nodes below a
    top-level node that the file does not mention go."""
    root = Node()
    for tree_file in files:
        if tree_file.tree.properties:
            root.properties = dict(tree_file.tree.properties)
        for name, child in tree_file.tree.children.items():
            _overlay(root.child(name), child, tree_file.trim)
    return root


def _overlay(target: Node, source: Node, trim: bool) -> None:
    # Iterative: a tree may be nested deeper than Python's recursion limit.
    todo = [(target, source)]
    while todo:
        target, source = todo.pop()
        target.properties = dict(source.properties)
        if trim:
            for name in [n for n in target.children if n not in source.children]:
                del target.children[name]
        todo.extend((target.child(name), child) for name, child in source.children.items())


def lint(
    files: Sequence[TreeFile],
    parse_problems: Sequence[Problem] = (),
    known_hosts: Iterable[HostIdentity] = (),
) -> Report:
    """Lint the files merged as the sync would import them."""
    root = merge(files)
    hosts = identities(root, known_hosts)
    deployables = list(_deployables(root))
    problems = list(parse_problems) + check(root, hosts, deployables)
    return Report(len(files) + len(parse_problems), len(deployables), len(hosts), problems)


def identities(root: Node, known: Iterable[HostIdentity] = ()) -> list[HostIdentity]:
    """Every host and role to check: each target name as a host (id = name,
    no role) and as a role, the `/hosts/<id>` nodes of the tree (`name`,
    `role`), the roles of `/roles`, and `known`."""
    targets = sorted({name for _, node in _deployables(root) for name in deploy_targets(node)})
    found = [HostIdentity(id=t, name=t) for t in targets]
    # id = name = role: a role host never has its own name among targets.
    found += [HostIdentity(id=t, name=t, role=t) for t in targets]
    roles = root.get(ROLES)
    found += [HostIdentity(id=r, name=r, role=r) for r in sorted(roles.children if roles else ())]
    hosts = root.get(HOSTS)
    for host_id, node in sorted(hosts.children.items()) if hosts else ():
        name, role = node.properties.get("name"), node.properties.get("role")
        found.append(
            HostIdentity(
                id=host_id,
                name=name if isinstance(name, str) and name else host_id,
                role=role if isinstance(role, str) and role else None,
            )
        )
    found += known
    return list(dict.fromkeys(found))


def deploy_targets(node: Node) -> list[str]:
    return list(node.children["deploy"].children)


def _deployables(root: Node) -> Iterator[tuple[str, Node]]:
    for path, node in root.walk():
        if "deploy" in node.children and node.has_property("type"):
            yield path, node


class _View(Node):
    """The whole tree for look-ups (property links reach anywhere), but a
    walk that visits only the given nodes: `desired_state` walks its root,
    so it then sees just those deployable nodes."""

    def __init__(self, root: Node, visible: list[tuple[str, Node]]) -> None:
        super().__init__(properties=root.properties, children=root.children)
        self.visible = visible

    def walk(self, path: str = "/") -> Iterator[tuple[str, Node]]:
        yield from self.visible


# A host no target names: checking every node for it finds the errors
# every host hits (broken property links are resolved before targets).
_NOBODY = HostIdentity(id="", name="")


def check(
    root: Node, hosts: Sequence[HostIdentity], deployables: Sequence[tuple[str, Node]]
) -> list[Problem]:
    """Every error of every host, once each, sorted by path."""
    problems: dict[Problem, None] = {}
    by_target: dict[str, list[int]] = {}
    for index, (_path, node) in enumerate(deployables):
        for name in deploy_targets(node):
            by_target.setdefault(name, []).append(index)
    for host in (_NOBODY, *hosts):
        if host is _NOBODY:
            mine = list(range(len(deployables)))
        else:
            names = {host.id, host.name, host.role}
            mine = sorted({i for name in names if name for i in by_target.get(name, [])})
        for problem in _check_host(root, host, [deployables[i] for i in mine]):
            problems[problem] = None
    return sorted(problems, key=lambda p: (p.where, p.message))


def _check_host(
    root: Node, host: HostIdentity, entries: list[tuple[str, Node]]
) -> Iterator[Problem]:
    # The role controller's error is `/roles/<role>`'s, whichever node's
    # check meets it.
    controller_error = None
    if host.role is not None:
        try:
            role_controller(root, host.role)
        except TreeContentError as e:
            controller_error = str(e)
            yield Problem(role_path(host.role), controller_error)
    first: dict[str, tuple[str, Node]] = {}  # rpm -> the first node using it
    for entry in entries:
        try:
            state = desired_state(_View(root, [entry]), host)
        except TreeContentError as e:
            if str(e) != controller_error:
                yield Problem(entry[0], str(e))
            continue
        for rpm in state.packages:
            earlier = first.setdefault(rpm, entry)
            if earlier is entry:
                continue
            try:
                # The model's own message, the later node's version first.
                desired_state(_View(root, [earlier, entry]), host)
            except TreeContentError as e:
                yield Problem(entry[0], str(e))
