"""The run directory: `host_version` and `status`, both written atomically."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from reconciler.drivers.filesystem import write_atomically


def version_text(version: Any) -> str:
    """A version as one word for the status line (the monitor compares
    versions as strings, so `1` and `'1'` read the same)."""
    text = version if isinstance(version, str) else json.dumps(version)
    return text if text and not any(c.isspace() for c in text) else json.dumps(text)


class RunDirectory:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.host_version_file = path / "host_version"
        self.status_file = path / "status"

    def read_host_version(self) -> Any:
        try:
            return json.loads(self.host_version_file.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            # A damaged file only means we don't know: the next run converges.
            return None

    def write_host_version(self, version: Any) -> None:
        write_atomically(self.host_version_file, json.dumps(version) + "\n")

    def has_status(self) -> bool:
        return self.status_file.exists()

    def write_status(self, version: Any, status: str) -> None:
        line = f"{int(time.time())} {os.getpid()} {version_text(version)} {status}\n"
        write_atomically(self.status_file, line)
