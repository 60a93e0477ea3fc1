"""The run directory: `host_version` and `status`, both written atomically."""

from __future__ import annotations

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
