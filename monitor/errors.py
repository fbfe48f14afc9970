"""One exception tree, with messages written for the user who must act on them.

    MonitorError                 anything the monitor reports instead of a traceback
     +-- UserError               the user's mistake: the CLI exits 2
     |    +-- ConfigError        config.toml is invalid; carries every problem at once
     |    +-- QueryError         one rule query is invalid (rule name + 1-based column)
     |    +-- UsageError         a command-line mistake (unknown rule, bad --since, ...)
     |    +-- DatabaseSetupError the database cannot be used as set up (folder permissions)
     +-- FeedError               one feed could not be fetched or parsed (never fatal to a pass)
     +-- DeliveryError           one channel did not accept an alert (it stays pending)
     +-- StorageError            the database is unreachable or failed (exit 1)

Messages name the subject (file:line, key path, rule, feed, channel) and the cause, and never
contain a secret: channel URLs are only ever shown masked.
"""

from __future__ import annotations

from collections.abc import Sequence


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


class UsageError(UserError):
    """A command-line mistake."""


class DatabaseSetupError(UserError):
    """The database cannot be used as the user set it up (a folder it may not write)."""


class FeedError(MonitorError):
    """A feed could not be fetched or parsed."""


class DeliveryError(MonitorError):
    """A channel did not accept an alert."""


class StorageError(MonitorError):
    """The database could not be opened or written."""
