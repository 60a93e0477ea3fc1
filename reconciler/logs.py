"""Logging set-up: human-readable lines or one JSON object per record.

Command output gets its own level, OUTPUT, just above INFO: it is shown with
the INFO messages but can be told apart from the agent's own messages.

In text mode a record is one line: control characters in a message (a
newline in a cluster version, an escape sequence in a node name) are shown
escaped, so that data from outside can neither forge a record nor drive the
terminal. Command output and tracebacks keep their lines, each after the
first indented, so no line of them can pass for a record either. JSON mode
escapes by itself.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

from reconciler.validate import printable

if TYPE_CHECKING:
    from loguru import Message, Record

OUTPUT = "OUTPUT"
logger.level(OUTPUT, no=21)


def _traceback(record: Record) -> str | None:
    exc = record["exception"]
    if exc is None:
        return None
    return "".join(traceback.format_exception(exc.type, exc.value, exc.traceback))


def _json_sink(stream: TextIO) -> Any:
    def sink(message: Message) -> None:
        record = message.record
        entry: dict[str, Any] = {
            "level": record["level"].name,
            "message": record["message"],
            "time": record["time"].isoformat(),
        }
        trace = _traceback(record)
        if trace is not None:
            entry["exception"] = trace
        stream.write(json.dumps(entry) + "\n")
        stream.flush()

    return sink


TEXT_FORMAT = "{time:YYYY-MM-DD HH:mm:ss} {level} {extra[printable]}\n"
CONTINUATION = "\n    "


def _lines(text: str) -> str:
    """Several lines as one record: each escaped, those after the first
    indented (tabs too are harmless in command output and tracebacks)."""
    return CONTINUATION.join(
        "\t".join(map(printable, line.split("\t"))) for line in text.split("\n")
    )


def _text_format(record: Record) -> str:
    message = record["message"]
    text = _lines(message) if record["level"].name == OUTPUT else printable(message)
    trace = _traceback(record)
    if trace is not None:
        # An exception's message may quote data from outside, too.
        text += CONTINUATION + _lines(trace.rstrip("\n"))
    record["extra"]["printable"] = text
    return TEXT_FORMAT


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
            format=_text_format,
            colorize=False,
            backtrace=False,
            diagnose=False,
        )
