"""Checks beyond the schema: does a rule compile, is a channel URL usable, does the file leak.

- Rules: `rule_problems` compiles a rule with the matcher's own `compile_rule`; when that
  fails, each `any`/`all`/`none` entry and the query are compiled alone to point the problem
  at the entry at fault (`rules[2].any[3]`), else at the rule as a whole.
- Channels: `url_problem` and `mask_url` ask Apprise, offline, through `monitor.alerts.deliver`
  (the only module that touches Apprise objects; it keeps Apprise's own log records, which
  carry secrets, from reaching any handler). Apprise costs about 0.1 s to import, and most
  commands never look at a channel URL, so `deliver` is imported on the first such call: the
  one deferred import of this package (`_apprise`).
- `insecure_permissions` warns when config.toml is readable by others and holds a secret
  written into it.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from monitor.alerts.console import console_url_problem, is_console_url
from monitor.config.locate import Loc
from monitor.errors import QueryError, RuleQueryError
from monitor.rules.match import CompiledRule, compile_rule
from monitor.types import RuleConfig

# --- rules ---------------------------------------------------------------------------------


def rule_problems(rule: RuleConfig) -> list[tuple[Loc, str]]:
    """Why `rule` does not compile, each problem at its key path below the rule; [] if it does."""
    return compile_checked(rule)[1]


def compile_checked(rule: RuleConfig) -> tuple[CompiledRule | None, list[tuple[Loc, str]]]:
    """The compiled rule, or None and why it does not compile (problems at key paths)."""
    try:
        return compile_rule(rule), []
    except QueryError as exc:
        return None, _blame(rule, exc)


def _compile_error(probe: RuleConfig) -> QueryError | None:
    try:
        compile_rule(probe)
    except QueryError as failed:
        return failed
    return None


def _blame(rule: RuleConfig, exc: QueryError) -> list[tuple[Loc, str]]:
    """Point a failed compile at the query or list entry at fault, by compiling each alone."""
    found: list[tuple[Loc, str]] = []
    for field in ("any", "all", "none"):
        for j, entry in enumerate(getattr(rule, field)):
            probe = RuleConfig(name=rule.name, any=(entry,), languages=rule.languages)
            bad = _compile_error(probe)
            if bad is not None:
                column = f"column {bad.column}: " if bad.column > 1 else ""
                found.append(((field, j), f"{column}{bad.message}"))
    if rule.query is not None:
        probe = RuleConfig(name=rule.name, any=("x",), query=rule.query, languages=rule.languages)
        bad = _compile_error(probe)
        if bad is not None:
            found.append((("query",), f"column {bad.column}: {bad.message}"))
    if not found:  # a problem of the whole rule (or of how its lists combine)
        where = _field_loc(exc.field if isinstance(exc, RuleQueryError) else "rule")
        column = f"column {exc.column}: " if where[-1:] == ("query",) else ""
        found.append((where, f"{column}{exc.message}"))
    return found


def _field_loc(field: str) -> Loc:
    """`RuleQueryError.field` ("query", "none[0]", "any", "rule") -> a key path below the rule."""
    m = re.fullmatch(r"(any|all|none|query)(?:\[(\d+)\])?", field)
    if m is None:
        return ()
    return (m.group(1),) if m.group(2) is None else (m.group(1), int(m.group(2)))


# --- channels ------------------------------------------------------------------------------


class _AppriseEdge(Protocol):
    """What this package asks of `monitor.alerts.deliver` (a module satisfies it)."""

    def url_problem(self, url: str) -> str | None: ...

    def mask_url(self, url: str) -> str: ...

    def privacy_form_hides(self, url: str) -> bool: ...


def _apprise() -> _AppriseEdge:
    # Deferred on purpose (see the module docstring): Apprise only when a URL is looked at.
    from monitor.alerts import deliver

    return deliver


def url_problem(url: str) -> str | None:
    """Why `url` is not a usable Apprise URL (offline), or None. Never includes the URL."""
    if is_console_url(url):
        return console_url_problem(url)
    return _apprise().url_problem(url)


def mask_url(url: str) -> str:
    """A channel URL fit to show (Apprise's privacy form, secrets masked), for the CLI."""
    if is_console_url(url):
        return url.strip()  # holds no secret: shown as written
    return _apprise().mask_url(url)


def insecure_permissions(path: Path) -> str | None:
    """A warning when `path` is readable by group or others and holds a literal secret.

    "Literal secret": a channel URL written in the file itself (no `${VAR}` in it) that Apprise
    masks when asked for its privacy form, or one with a literal password (`user:pw@`).
    Returns None when the file is private, holds no such URL, or cannot be read.
    """
    if os.name != "posix":
        return None
    try:
        mode = path.stat().st_mode
        if not mode & (stat.S_IRGRP | stat.S_IROTH):
            return None
        data = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    channels = data.get("channels")
    if not isinstance(channels, dict):
        return None
    leaky = sorted(
        name
        for name, value in channels.items()
        if any(_literal_secret(u) for u in (value if isinstance(value, list) else [value]))
    )
    if not leaky:
        return None
    return (
        f"{path} is readable by group or others (mode {stat.S_IMODE(mode):04o}) and holds a "
        f"secret in channel(s) {', '.join(leaky)}: run `chmod 600 {path}` or move the secret "
        "to an environment variable (${VAR})"
    )


def _literal_secret(url: object) -> bool:
    if not isinstance(url, str) or is_console_url(url):
        return False
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password and "${" not in password:
        return True
    if "${" in url:
        return False
    return _apprise().privacy_form_hides(url)
