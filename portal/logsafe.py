"""Logging that user input cannot forge: CR and LF in log arguments are escaped,
so a value like ``"x\\nINFO admin signed in"`` stays on its own line."""

from __future__ import annotations

import logging


def _escape(value: object) -> object:
    if isinstance(value, str):
        return value.replace("\r", "\\r").replace("\n", "\\n")
    return value


class EscapeNewlines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_escape(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _escape(v) for k, v in record.args.items()}
        return True


def configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in root.handlers:
        if not any(isinstance(f, EscapeNewlines) for f in handler.filters):
            handler.addFilter(EscapeNewlines())
    # One INFO line per ERP or webhook request is noise (and a lock every worker thread takes);
    # failures are logged by the outbox with their reason. WeasyPrint logs seven steps per PDF.
    for noisy in ("httpx", "httpcore", "weasyprint.progress"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
