"""systemd's notification protocol (sd_notify(3)), without libsystemd.

Under `Type=notify` systemd passes `NOTIFY_SOCKET`: a datagram socket, a
path or, starting with `@`, a name in Linux's abstract namespace. Each
message is newline-separated `KEY=VALUE` fields: `READY=1` once the agent is
registered, `STATUS=...` for `systemctl status`, `WATCHDOG=1` at least every
`WatchdogSec` (else systemd kills and restarts the service), `STOPPING=1`.

Outside systemd (no `NOTIFY_SOCKET`) every call does nothing. A failed send
is logged, never raised: losing a notification must not stop a deployment
(systemd then restarts the agent, which is the watchdog's point anyway).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

from loguru import logger


def _address(value: str) -> str | None:
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # e.g. `vsock:`: not for an agent on a host


def notify(*fields: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `fields` (`KEY=VALUE`) as one message; whether it was sent."""
    env = os.environ if environ is None else environ
    value = env.get("NOTIFY_SOCKET", "")
    if not value:
        return False
    address = _address(value)
    if address is None:
        logger.warning(f"Unsupported NOTIFY_SOCKET {value!r}: not notifying systemd")
        return False
    message = "\n".join(fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(message)
    except OSError as e:
        logger.warning(f"Can't notify systemd at {value}: {e.strerror or e}")
        return False
    return True


def _one_line(text: str) -> str:
    # A newline would start another field.
    return " ".join(text.splitlines())


def ready(status: str | None = None) -> bool:
    return notify("READY=1", *([f"STATUS={_one_line(status)}"] if status else []))


def status(text: str) -> bool:
    return notify(f"STATUS={_one_line(text)}")


def stopping() -> bool:
    return notify("STOPPING=1")


class Watchdog:
    """systemd's watchdog for this process, from `WATCHDOG_USEC` (and
    `WATCHDOG_PID`: a child that inherited the variables is not the one
    watched).

    `interval` is how often to ping: half the timeout, as sd_watchdog_enabled(3)
    advises, so that one late wake-up is not fatal; None when disabled.
    `ping()` sends `WATCHDOG=1`; `ping_if_due()` only when `interval` has
    passed since the last one, for loops that turn faster than that."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.interval: float | None = None
        self._last = float("-inf")
        try:
            usec = int(env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return
        pid = env.get("WATCHDOG_PID", "")
        if usec <= 0 or (pid and pid != str(os.getpid())):
            return
        self.interval = usec / 2_000_000
        self._environ = env

    @property
    def enabled(self) -> bool:
        return self.interval is not None

    def ping(self) -> bool:
        if self.interval is None:
            return False
        self._last = time.monotonic()
        return notify("WATCHDOG=1", environ=self._environ)

    def ping_if_due(self) -> bool:
        if self.interval is None or time.monotonic() - self._last < self.interval:
            return False
        return self.ping()
