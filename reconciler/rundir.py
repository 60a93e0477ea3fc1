"""The run directory: `host_version` and `status`, both written atomically;
the daemon's `agent.lock` and `session` (see `lock` and `write_session`)."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from reconciler.drivers.filesystem import remove_stale_temporaries, write_atomically
from reconciler.validate import printable


def version_text(version: Any) -> str:
    """A version as one word for the status line; the monitor reads it back
    with `monitor.parse_status` and compares it as a string (so `1` and
    `'1'` read the same).

    A string that is one printable word, not starting with `"`, is written
    as is; anything else as a JSON string (ASCII: a lone surrogate or a
    newline is escaped), which the monitor decodes. Every JSON scalar thus
    reads back as exactly the text `sync.version_key` gives it.
    """
    if isinstance(version, str):
        text = version
    else:
        try:
            text = json.dumps(version)
        except (TypeError, ValueError):
            # Nothing JSON decoding can produce (an integer too long to
            # print); shown rather than raised, the status is still written.
            text = printable(repr(type(version)))
    if text and text.isprintable() and not text.startswith('"') and " " not in text:
        return text
    return json.dumps(text)


class RunDirectory:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.host_version_file = path / "host_version"
        self.status_file = path / "status"
        self.lock_file = path / "agent.lock"
        self.session_file = path / "session"
        self._lock_fd: int | None = None

    def read_host_version(self) -> Any:
        """At start-up: also removes what an interrupted write left."""
        remove_stale_temporaries(self.path)
        try:
            return json.loads(self.host_version_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (ValueError, RecursionError):
            # A damaged file only means we don't know: the next run converges.
            return None

    def write_host_version(self, version: Any) -> None:
        write_atomically(self.host_version_file, json.dumps(version) + "\n")

    def has_status(self) -> bool:
        return self.status_file.exists()

    def write_status(self, version: Any, status: str) -> None:
        # The status text names paths and versions from the tree: one line.
        line = f"{int(time.time())} {os.getpid()} {version_text(version)} {printable(status)}\n"
        write_atomically(self.status_file, line)

    # The daemon's lock and ZooKeeper session: what lets a restart after a
    # crash take over its own stale host node at once.

    def lock(self) -> bool:
        """Hold `agent.lock` (flock) until `unlock` or this process's end;
        False when another process holds it: an agent of this host is
        running. The kernel drops the lock when its holder dies, SIGKILL
        included, so a free lock means every earlier agent is gone. Raises
        OSError when the file can't be opened."""
        self.path.mkdir(parents=True, exist_ok=True)
        # Not inherited by commands (os.open's default): a deploy script
        # that leaves a service running must not keep the lock.
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def read_session(self) -> int | None:
        """The ZooKeeper session id the last agent registered with."""
        try:
            return int(self.session_file.read_text().strip(), 16)
        except (OSError, ValueError):
            return None

    def write_session(self, session_id: int) -> None:
        """Only the id (hex, as ZooKeeper logs it), never the password: it
        identifies the owner of a stale host node, it can't resume it."""
        write_atomically(self.session_file, f"0x{session_id:x}\n")
