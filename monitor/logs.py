"""Logging set-up: one handler on stderr, secrets redacted from every record.

Text lines by default; `MONITOR_LOG_FORMAT=json` gives one JSON object per line (for Docker and
log shippers), with a traceback as a field. Channel URLs carry passwords and tokens, so every
record passes through `SecretRedactor`, which replaces the secrets of the configured URLs (what
Apprise marks private, passwords, token-like values) with `***` wherever one stands as a whole
token, whatever logged it (our code, Apprise, aiohttp); channel names, hosts, user names and
ordinary words stay readable.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from monitor.alerts.secrets import SecretRedactor, configure_apprise_logging

HANDLER_NAME = "monitor"  # ours, replaced on every set-up; other handlers are left alone
# The fields of an event (a poll, a match, a delivery), passed as logging's `extra=`: the JSON
# format makes each a key of the object; the text format shows the message only.
EVENT_FIELDS = ("event", "feed", "rule", "channel", "duration_ms", "outcome")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in EVENT_FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                event[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # the redacted text (SecretRedactor), never exc_info formatted anew
            event["traceback"] = record.exc_text
        if record.stack_info:
            event["stack"] = record.stack_info
        return json.dumps(event, ensure_ascii=False)


def setup_logging(verbose: int = 0, secrets: Sequence[str] = (), daemon: bool = False) -> None:
    """(Re)configure the root logger. Commands log warnings; the daemon logs its progress."""
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose or daemon else logging.ERROR
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("MONITOR_LOG_FORMAT") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretRedactor(secrets))
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Apprise logs full tokens at DEBUG (its Slack plugin prints the webhook URL): keep it
    # at WARNING unless asked three times (-vvv), and then the Redactor still hides the secrets.
    configure_apprise_logging(logging.DEBUG if verbose >= 3 else logging.WARNING, force=True)
    logging.getLogger("apscheduler").setLevel(logging.INFO if verbose >= 2 else logging.WARNING)
    # Alembic says "Context impl SQLiteImpl." at every start: only with -vv
    logging.getLogger("alembic").setLevel(logging.INFO if verbose >= 2 else logging.WARNING)


def redact_secrets_of(urls: Sequence[str]) -> None:
    """Make our handler hide the secrets of these channel URLs (after a config reload)."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == HANDLER_NAME:
            for f in handler.filters:
                if isinstance(f, SecretRedactor):
                    f.set_urls(urls)
