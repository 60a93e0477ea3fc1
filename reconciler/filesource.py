"""A tree file as the cluster: for `--once`, the demo and rehearsals.

The cluster version is `/hosts` `version` in the file. A halt is kept in
memory only (the file belongs to version control), and there are no other
hosts to lock against.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from reconciler import treefmt
from reconciler.errors import ConfigError
from reconciler.tree import Node


class TreeFileSource:
    def __init__(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ConfigError(f"Can't read tree {path}: {e.strerror}") from None
        try:
            self.root = treefmt.parse_bytes(data, str(path))
        except treefmt.TreeFormatError as e:
            raise ConfigError(str(e)) from None
        hosts = self.root.get("/hosts")
        if hosts is None or "version" not in hosts.properties:
            raise ConfigError(f"{path}: no cluster version (property version of /hosts)")
        self._version: Any = hosts.properties["version"]
        self.error: str | None = None

    def version(self) -> Any:
        return self._version

    def halt(self) -> None:
        self._version = None

    def record(self, version: Any) -> None:
        pass

    def lock(self, name: str) -> AbstractContextManager[object]:
        return nullcontext()

    def role_lock(self, role: str) -> AbstractContextManager[object]:
        return nullcontext()

    def stopping(self) -> bool:
        return False

    def tree(self) -> Node:
        return self.root

    def set_error(self, message: str | None) -> None:
        self.error = message
