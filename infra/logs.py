"""Log context (request id and stack name on every line), an optional JSON line format, the
masking of the secrets a block works with, and the escaping of client-chosen values (also in
gunicorn's access log)."""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gunicorn import glogging

from infra.masking import mask_text

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
stack_name: contextvars.ContextVar[str] = contextvars.ContextVar("stack_name", default="-")
# The workflow (operation) a line belongs to; a burner stack's workflow id is its stack name.
operation: contextvars.ContextVar[str] = contextvars.ContextVar("operation", default="-")
# Secret values in use (a stack's secret config): masked in every line, a traceback included.
secrets: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("secrets", default=())

TEXT_FORMAT = ("%(asctime)s [%(process)d] %(levelname)s %(name)s "
               "[req=%(request_id)s op=%(operation)s stack=%(stack)s]: %(message)s")


def escape(value: str) -> str:
    """``value`` with every non-printable character (newlines, ESC, bidi controls) escaped.

    For values a client chose (path, method, headers, parameters): written raw, they could
    start a forged log line or drive the terminal of whoever reads the log.
    """
    if value.isprintable():
        return value
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in value)


@contextmanager
def bound(var: contextvars.ContextVar[str], value: str) -> Iterator[None]:
    """Set a log context variable for the duration of a block."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


@contextmanager
def masking(values: tuple[str, ...]) -> Iterator[None]:
    """Mask ``values`` in every log line of a block (a program may print its secret config in
    its own error, and the engine's output is logged)."""
    token = secrets.set(values)
    try:
        yield
    finally:
        secrets.reset(token)


class _EscapedAtoms(glogging.SafeAtoms):
    """gunicorn's access log values: it escapes only quotes, we escape control characters too."""

    def __init__(self, atoms: dict[str, Any]) -> None:
        super().__init__({key: escape(value) if isinstance(value, str) else value
                          for key, value in atoms.items()})


class GunicornLogger(glogging.Logger):
    """gunicorn's logger, with access log lines a client cannot break or forge.

    gunicorn refuses control characters in the request line and header values, but writes the
    Basic-auth user name (``%(u)s``) decoded, the decoded path (``%(U)s``) and header bytes
    above 0x7f (C1 controls such as NEL and CSI) as they came.
    """

    atoms_wrapper_class = _EscapedAtoms


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``operation`` and ``stack`` to every record (``-`` where unknown),
    and masks the secrets in use."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops it."""
        record.request_id = request_id.get()
        record.stack = stack_name.get()
        record.operation = operation.get()
        hidden = secrets.get()
        if hidden:
            try:
                message = record.getMessage()
            except Exception:  # a bad log call: shown as written, never raised into the caller
                message = f"{record.msg} {record.args}"
            record.msg, record.args = mask_text(message, hidden), None
            if record.exc_info and not record.exc_text:
                record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = mask_text(record.exc_text, hidden)
        return True


_TRACEBACKS = logging.Formatter()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, pid, request id, stack, message."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line."""
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "request_id": getattr(record, "request_id", "-"),
            "operation": getattr(record, "operation", "-"),
            "stack": getattr(record, "stack", "-"),
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def dict_config(level: str, log_format: str, extra_loggers: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping: everything to stderr with the context filter."""
    formatter: dict[str, Any] = (
        {"()": "infra.logs.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "infra.logs.ContextFilter"}},
        "formatters": {"generic": formatter},
        "handlers": {
            "error_console": {"class": "logging.StreamHandler", "formatter": "generic",
                              "filters": ["context"], "stream": "ext://sys.stderr"},
        },
        "root": {"level": level, "handlers": ["error_console"]},
        "loggers": extra_loggers or {},
    }
