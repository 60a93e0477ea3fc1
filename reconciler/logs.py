"""Logging set-up: human-readable lines or one JSON object per record.

Command output gets its own level, OUTPUT, just above INFO: it is shown with
the INFO messages but can be told apart from the agent's own messages.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

if TYPE_CHECKING:
    from loguru import Message

OUTPUT = "OUTPUT"
logger.level(OUTPUT, no=21)


def _json_sink(stream: TextIO) -> Any:
    def sink(message: Message) -> None:
        record = message.record
        entry: dict[str, Any] = {
            "level": record["level"].name,
            "message": record["message"],
            "time": record["time"].isoformat(),
        }
        if record["exception"] is not None:
            import traceback

            exc = record["exception"]
            entry["exception"] = "".join(
                traceback.format_exception(exc.type, exc.value, exc.traceback)
            )
        stream.write(json.dumps(entry) + "\n")
        stream.flush()

    return sink


def setup(json_lines: bool = False, stream: TextIO | None = None) -> None:
    """Send INFO and above to `stream` (stderr by default)."""
    out = stream or sys.stderr
    logger.remove()
    if json_lines:
        logger.add(_json_sink(out), level="INFO")
    else:
        logger.add(
            out,
            level="INFO",
            format="{time:YYYY-MM-DD HH:mm:ss} {level} {message}",
            colorize=False,
            backtrace=False,
            diagnose=False,
        )
