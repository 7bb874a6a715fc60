"""Logging setup: one JSON object per line (with Cloud Logging's ``severity``) or readable text."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


class _CloudJsonFormatter(JsonFormatter):
    """JSON lines whose ``severity`` field Cloud Logging reads as the entry's level."""

    def add_fields(self, log_record, record, message_dict):  # noqa: ANN001 - library signature
        super().add_fields(log_record, record, message_dict)
        log_record["severity"] = record.levelname
        log_record.setdefault("logger", record.name)


class _TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` with the ``extra`` fields appended."""

    _standard = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in self._standard}
        return line + "".join(f" {k}={v}" for k, v in extras.items())


def setup_logging(log_format: str = "auto", level: int = logging.INFO) -> None:
    """Send logs to stderr; ``auto`` means text on a terminal and JSON elsewhere (containers)."""
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(_CloudJsonFormatter("%(message)s %(levelname)s %(name)s", timestamp=True))
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("google", "urllib3", "grpc", "rpy2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
