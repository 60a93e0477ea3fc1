"""A tree file as the cluster: for `--once`, the demo and rehearsals.

The cluster version is `/hosts` `version` in the file. A halt is kept in
memory only (the file belongs to version control), and there are no other
hosts to lock against; a failing body of `lock()` still halts, as the
`Cluster` contract promises.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from reconciler import treefmt
from reconciler.cluster import halting
from reconciler.errors import ConfigError
from reconciler.tree import Node
from reconciler.zk.paths import HOSTS


class TreeFileCluster:
    """A `reconciler.cluster.Cluster` held in memory: a tree and its version."""

    def __init__(self, root: Node, version: Any) -> None:
        self.root = root
        self.cluster_version = version
        self.error: str | None = None
        self.recorded: Any = None

    @classmethod
    def read(cls, path: Path) -> TreeFileCluster:
        """The cluster in a tree file; a file that can't be used is a
        ConfigError naming it."""
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ConfigError(f"Can't read tree {path}: {e.strerror}") from None
        try:
            root = treefmt.parse_bytes(data, str(path))
        except treefmt.TreeFormatError as e:
            raise ConfigError(str(e)) from None
        hosts = root.get(HOSTS)
        if hosts is None or "version" not in hosts.properties:
            raise ConfigError(f"{path}: no cluster version (property version of {HOSTS})")
        return cls(root, hosts.properties["version"])

    def tree(self) -> Node:
        return self.root

    def version(self) -> Any:
        return self.cluster_version

    def halt(self) -> None:
        self.cluster_version = None

    def record(self, version: Any) -> None:
        self.recorded = version

    def set_error(self, message: str | None) -> None:
        self.error = message

    def lock(self, name: str, max_parallel: int = 1) -> AbstractContextManager[object]:
        return halting(self, nullcontext())

    def role_lock(self, role: str, max_parallel: int = 1) -> AbstractContextManager[object]:
        return nullcontext()
