"""One exception tree, with messages written for the user who must act on them.

    MonitorError                 anything the monitor reports instead of a traceback
     +-- UserError               the user's mistake: the CLI exits 2
     |    +-- ConfigError        config.toml is invalid; carries every problem at once
     |    +-- QueryError         one rule query is invalid (message + 1-based column)
     |    |    +-- RuleQueryError  one rule of config.toml does not compile (rule, field, entry)
     |    +-- UsageError         a command-line mistake (unknown rule, bad --since, ...)
     |    +-- DatabaseSetupError the database cannot be used as set up (folder permissions)
     |    +-- OpmlError          an OPML file or config text cannot be used (also a ValueError)
     +-- FeedError               one feed could not be fetched or parsed (never fatal to a pass)
     |    +-- PrivateAddressRefused  a public feed led to a private address (also an OSError,
     |                               so aiohttp reports it as a connection failure)
     +-- DeliveryError           one channel did not accept an alert (it stays pending)
     +-- StorageError            the database is unreachable or failed (exit 1)

Every public exception class of the monitor is defined here (modules keep only private ones,
for control flow), so `except MonitorError` is the whole contract of the CLI and the daemon.
Messages name the subject (file:line, key path, rule, feed, channel) and the cause, and never
contain a secret: channel URLs are only ever shown masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address


class MonitorError(Exception):
    """Base of every error the monitor reports to its user."""


class UserError(MonitorError):
    """A mistake of the user's: the CLI prints the message and exits 2."""


class ConfigError(UserError):
    """config.toml is invalid. `problems` lists every problem found, each one line."""

    def __init__(self, path: str, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{path}: {len(self.problems)} problem(s):\n{lines}")


class QueryError(UserError):
    """A rule query does not parse. `column` is 1-based within the query text."""

    def __init__(self, message: str, column: int) -> None:
        self.message = message
        self.column = column
        super().__init__(f"column {column}: {message}")


class RuleQueryError(QueryError):
    """A rule does not compile. `field` is "query", "any", "all", "none" or "rule" (the rule as
    a whole); `index` is the 0-based list entry at fault, if any; `column` is 1-based within
    the query or entry."""

    def __init__(
        self, rule: str, field: str, message: str, column: int = 1, index: int | None = None
    ) -> None:
        super().__init__(message, column)
        self.rule = rule
        self.field = field
        self.index = index

    def __str__(self) -> str:
        if self.field == "rule":
            return f"rule {self.rule!r}: {self.message}"
        where = self.field if self.index is None else f"{self.field}[{self.index}]"
        return f"rule {self.rule!r}, {where} column {self.column}: {self.message}"


class UsageError(UserError):
    """A command-line mistake."""


class DatabaseSetupError(UserError):
    """The database cannot be used as the user set it up (a folder it may not write)."""


class OpmlError(UserError, ValueError):
    """The OPML file or the config text cannot be used; the message says why (one line)."""


class FeedError(MonitorError):
    """A feed could not be fetched or parsed."""


class PrivateAddressRefused(FeedError, OSError):
    """A feed configured with a public host was led to a non-public address."""

    def __init__(self, ip: IPv4Address | IPv6Address, kind: str, host: str | None = None) -> None:
        self.ip = ip
        self.kind = kind
        self.host = host
        where = f"{host} resolves to" if host is not None else "redirected to"
        super().__init__(
            f"{where} {ip}, a {kind} address: refused, as the feed's configured host is public"
            " (configure the feed by its address or an intranet name to allow this)"
        )


class DeliveryError(MonitorError):
    """A channel did not accept an alert."""


class StorageError(MonitorError):
    """The database could not be opened or written."""
