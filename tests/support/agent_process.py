"""The real agent daemon as a subprocess, its JSON log read as it comes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.sandbox_host import SandboxHost


class AgentProcess:
    def __init__(self, host: SandboxHost, connection: str, *flags: str) -> None:
        host.extra["zookeeper"] = connection
        config = host.write_config(None)
        self.records: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "--log-json", *flags, str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=host.env(),
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self.changed:
                self.lines.append(line)
                try:
                    self.records.append(json.loads(line))
                except ValueError:
                    pass
                self.changed.notify_all()

    def messages(self, start: int = 0) -> list[str]:
        with self.changed:
            return [
                f"{r['level']} {r['message']}"
                for r in self.records[start:]
                if r["level"] != "OUTPUT"
            ]

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = 20) -> list[str]:
        """Wait until `predicate(messages)` holds; the messages then."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                messages = self.messages()
                if predicate(messages):
                    return messages
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.process.poll() is not None and not self.reader.is_alive()
                ):
                    raise AssertionError(f"timed out; log so far:\n{''.join(self.lines)}")
                self.changed.wait(min(remaining, 0.2))

    def wait_for_message(self, message: str, count: int = 1, timeout: float = 20) -> list[str]:
        return self.wait_for(lambda m: m.count(message) >= count, timeout)

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.reader.join(5)
        return code


def write_tree_without_hosts(path: Path) -> str:
    return path.read_text()
