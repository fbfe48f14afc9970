"""config.toml -> a validated, frozen `Config`, with every problem reported at once.

The flow of `load_config(path, env)`:

1. Read the file (UTF-8) and parse it with `tomllib`. A syntax error stops here with one
   problem naming file, line and column: `config.toml:3:9: TOML syntax error: ...`.
2. Interpolate `${VAR}` and `${VAR:-default}` in every string value (also inside lists), on the
   parsed values, never on the raw text. `env` is passed in; `os.environ` is never read here.
3. Validate each section on its own with strict pydantic models (`extra="forbid"`, so a typo'd
   key is an error, never a silently ignored setting; `hide_input_in_errors`, and we build our
   messages only from the error type and location, so no value is ever echoed).
4. Semantic checks over what validated: duplicate feed and rule names, rule channels that name
   no channel, Apprise URL syntax (offline), the database URL, and every rule compiled with
   `monitor.rules.match.compile_rule` (query syntax, a rule with nothing to match).
5. Any problem -> one `ConfigError` listing them all, each as `[file:line: ]key.path: what`.
   Otherwise the frozen dataclasses of `monitor.types`.

Decisions (for README.md):

- Key paths count array entries from 1, like the `[[rules]]` tables in the file, and carry the
  entry's name: `rules[3] "nk-troops".query`. The line is found by scanning the text for the
  N-th `[[rules]]` header (and the key inside it); it is left out when that is ambiguous.
- Durations: `30s`, `15m`, `2h`, `7d`, `2w` and combinations in descending order (`1h30m`).
  A bare number is an error (the unit would be a guess). Feed intervals are at least 30s, the
  timeout at least 1s, max_age at least 1s.
- Sizes (`max_bytes`): an integer number of bytes or `"512KB"`, `"10MB"`, `"1GB"` (binary:
  1 KB = 1024 bytes; `KiB`/`MiB`/`GiB` are accepted too). At least 1 KB.
- Interpolation: `${NAME}` (NAME = letters, digits, `_`), `${NAME:-default}` (default also when
  NAME is set but empty, as in the shell). `$${` is a literal `${`; any other `$` is literal.
  Defaults cannot nest. A resolved value is never shown in a message.
- Databases: SQLite (`sqlite:///...`) and PostgreSQL only (the store speaks these two
  dialects). `postgres://` (a common alias SQLAlchemy rejects) and `postgresql://` become
  `postgresql+psycopg://`: psycopg 3 is our driver (SQLAlchemy would pick psycopg2).
  Relative SQLite paths are made absolute against the config file's directory.
- Channel names: a letter, then letters, digits, `_` or `-`. Feed and rule names: non-empty,
  no surrounding blanks, no control characters. All names: at most 200 characters (the
  database columns); a problem shows a long name cut short.
- Languages: ISO 639-1 codes, lower case. An upper-case code, an ISO 639-2 code (`deu`,
  `ger`) or a stemmer's name (`german`) is a problem that suggests the code (`use "de"`).
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import os
import re
import stat
import threading
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from monitor.errors import ConfigError, QueryError
from monitor.textutil import cap
from monitor.types import ChannelConfig, Config, FeedConfig, RuleConfig, Settings

__all__ = [
    "MIN_INTERVAL",
    "insecure_permissions",
    "load_config",
    "mask_url",
    "parse_duration",
    "parse_size",
    "resolve_config_path",
]

MIN_INTERVAL = timedelta(seconds=30)  # no feed is polled more often than this
MIN_TIMEOUT = timedelta(seconds=1)
MIN_MAX_BYTES = 1024
MAX_NAME = 200  # characters of a feed, rule or channel name (String(200) in the database)

Loc = tuple[str | int, ...]

# --- public helpers ------------------------------------------------------------------------


def resolve_config_path(arg: str | None, env: Mapping[str, str]) -> Path:
    """`--config` if given, else `$MONITOR_CONFIG` (when set and non-empty), else ./config.toml."""
    if arg:
        return Path(arg)
    if env.get("MONITOR_CONFIG"):
        return Path(env["MONITOR_CONFIG"])
    return Path("config.toml")


_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_HELP = 'expected a duration such as "30s", "15m", "2h", "7d" or "1h30m"'


def parse_duration(text: str) -> timedelta:
    """`30s`, `15m`, `2h`, `7d`, `2w`, `1h30m` -> timedelta. ValueError (without the text)."""
    m = _DURATION.fullmatch(text.strip())
    if not text.strip() or m is None:
        raise ValueError(_DURATION_HELP)
    w, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    try:
        return timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)
    except OverflowError:
        raise ValueError("duration is too large") from None


_SIZE = re.compile(r"(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1024, "kib": 1024, "mb": 1024**2, "mib": 1024**2}
_SIZE_UNITS |= {"gb": 1024**3, "gib": 1024**3}


def parse_size(value: object) -> int:
    """An int (bytes) or `"512KB"`, `"10MB"`, `"1GB"` (binary units) -> bytes. ValueError."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        m = _SIZE.fullmatch(value.strip())
        if m is not None:
            return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()]
    raise ValueError('expected a number of bytes or a size such as "512KB", "10MB" or "1GB"')


def mask_url(url: str) -> str:
    """A channel URL fit to show (Apprise's privacy form, secrets masked), for the CLI."""
    from monitor.alerts import deliver

    with _quiet_apprise():
        return deliver.mask_url(url)


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
    if not isinstance(url, str):
        return False
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password and "${" not in password:
        return True
    if "${" in url:
        return False
    import apprise

    from monitor.alerts.deliver import register_console_channel

    register_console_channel()
    with _quiet_apprise():
        try:
            plugin: Any = apprise.Apprise.instantiate(url)
            return plugin is not None and plugin.url(privacy=True) != plugin.url(privacy=False)
        except Exception:
            return False


# --- loading -------------------------------------------------------------------------------


def load_config(path: Path, env: Mapping[str, str]) -> Config:
    """Read, interpolate, validate and convert config.toml. ConfigError lists every problem."""
    text = _read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [_syntax_problem(path, text, exc)]) from None
    return _Loader(path, text, env).load(data)


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            str(path),
            [f"{path}: no such file (give --config FILE or set MONITOR_CONFIG)"],
        ) from None
    except IsADirectoryError:
        raise ConfigError(str(path), [f"{path}: is a directory, not a config file"]) from None
    except PermissionError:
        raise ConfigError(str(path), [f"{path}: cannot read the file: permission denied"]) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"{path}: cannot read the file: {exc.strerror}"]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(str(path), [f"{path}:{line}: not UTF-8 text"]) from None


_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _syntax_problem(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> str:
    msg = str(exc)
    m = _TOML_POS.search(msg)
    if m is not None:
        return f"{path}:{m.group(1)}:{m.group(2)}: TOML syntax error: {msg[: m.start()]}"
    msg = msg.replace(" (at end of document)", "")
    line = text.count("\n") + 1
    column = len(text) - (text.rfind("\n") + 1) + 1
    return f"{path}:{line}:{column}: TOML syntax error: {msg} (at the end of the file)"


# --- schema --------------------------------------------------------------------------------


def _duration(minimum: timedelta) -> Callable[[object], timedelta]:
    def validate(value: object) -> timedelta:
        if isinstance(value, timedelta):
            result = value
        elif not isinstance(value, str):
            raise ValueError(f"{_DURATION_HELP} (a string with a unit), not a {_toml_type(value)}")
        else:
            result = parse_duration(value)
        if result < minimum:
            raise ValueError(f"must be at least {_show(minimum)}")
        return result

    return validate


def _size(value: object) -> int:
    size = parse_size(value)
    if size < MIN_MAX_BYTES:
        raise ValueError("must be at least 1KB")
    return size


_CHANNEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LANGUAGE_HELP = 'a two-letter ISO 639-1 language code in lower case, such as "de" or "ru"'


def _language(value: str) -> str:
    from monitor.rules.text import language_code_for

    code = language_code_for(value)
    if code == value:
        return value
    if code is not None:
        raise ValueError(f'use "{code}" (languages are ISO 639-1 codes: two lower-case letters)')
    raise ValueError(f"expected {_LANGUAGE_HELP}")


def _name(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if value != value.strip() or _CONTROL.search(value):
        raise ValueError("must not start or end with blanks or contain control characters")
    if len(value) > MAX_NAME:
        raise ValueError(_too_long(value))
    return value


def _too_long(name: str) -> str:
    return f"too long: at most {MAX_NAME} characters (this one has {len(name)})"


def _term(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _user_agent(value: str) -> str:
    if not value.strip() or _CONTROL.search(value):
        raise ValueError("must be non-empty text without control characters")
    return value


def _feed_url(value: str) -> str:
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
    except ValueError:
        raise ValueError("not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = (
            f' (not "{scheme}")' if scheme and re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) else ""
        )
        raise ValueError(f"a feed URL must start with http:// or https://{shown}")
    if not host:
        raise ValueError("the URL has no host")
    return value.strip()


_SQLITE_SCHEMES = frozenset({"sqlite", "sqlite+pysqlite"})
_POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "postgres+psycopg", "postgresql+psycopg"})
_POSTGRES = "postgresql+psycopg"


POSTGRES_DRIVER_MISSING = (
    "the PostgreSQL driver (psycopg 3) is not installed: "
    "pip install 'news-monitor[postgres]' (from a checkout: pip install '.[postgres]')"
)


def postgres_driver_installed() -> bool:
    """Whether psycopg 3 can be imported (looked up, not imported: that costs start-up)."""
    try:
        return importlib.util.find_spec("psycopg") is not None
    except (ImportError, ValueError):
        return False


def _database(value: str) -> str:
    """A SQLite or PostgreSQL URL, PostgreSQL's with the psycopg 3 driver named. The messages
    never include the URL (it may hold a password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(value)
    except (ArgumentError, ValueError):
        raise ValueError(
            'not a valid database URL (expected e.g. "sqlite:///monitor.db" or '
            '"postgresql://user@host/db")'
        ) from None
    scheme = parsed.drivername.lower()
    rest = value[value.index("://") :]  # the rest exactly as written
    if scheme in _SQLITE_SCHEMES:
        return scheme + rest
    if scheme in _POSTGRES_SCHEMES:
        if not postgres_driver_installed():
            raise ValueError(POSTGRES_DRIVER_MISSING)
        return _POSTGRES + rest
    backend = scheme.partition("+")[0]
    if backend in ("postgres", "postgresql"):
        raise ValueError("unsupported PostgreSQL driver: use postgresql:// (psycopg 3)")
    if backend == "sqlite":
        raise ValueError("unsupported SQLite driver: use sqlite:///")
    raise ValueError("unsupported database: use sqlite:/// or postgresql://")


Interval = Annotated[timedelta, BeforeValidator(_duration(MIN_INTERVAL))]
Timeout = Annotated[timedelta, BeforeValidator(_duration(MIN_TIMEOUT))]
MaxAge = Annotated[timedelta, BeforeValidator(_duration(timedelta(seconds=1)))]
Language = Annotated[str, AfterValidator(_language)]
Languages = Annotated[list[Language], Field(min_length=1)]
RuleLanguages = list[Language]  # [] = no stemming
Name = Annotated[str, AfterValidator(_name)]
Term = Annotated[str, AfterValidator(_term)]

_DEFAULTS = Settings()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True, frozen=True)


class _MonitorModel(_Model):
    database: Annotated[str, AfterValidator(_database)] = _DEFAULTS.database
    interval: Interval = _DEFAULTS.interval
    timeout: Timeout = _DEFAULTS.timeout
    max_age: MaxAge = _DEFAULTS.max_age
    languages: Languages = list(_DEFAULTS.languages)
    max_bytes: Annotated[int, BeforeValidator(_size)] = _DEFAULTS.max_bytes
    concurrency: Annotated[int, Field(ge=1, le=1000)] = _DEFAULTS.concurrency
    per_host: Annotated[int, Field(ge=1, le=100)] = _DEFAULTS.per_host
    user_agent: Annotated[str, AfterValidator(_user_agent)] = _DEFAULTS.user_agent


class _FeedModel(_Model):
    name: Name
    url: Annotated[str, AfterValidator(_feed_url)]
    interval: Interval | None = None
    enabled: bool = True
    catch_up: bool = False
    per_host: Annotated[int, Field(ge=1, le=100)] | None = None


class _RuleModel(_Model):
    name: Name
    any: list[Term] = []
    all: list[Term] = []
    none: list[Term] = []
    query: str | None = None
    languages: RuleLanguages | None = None
    channels: list[Name] | None = None
    transliterate: bool = False
    feeds: list[Name] | None = None
    exclude_feeds: list[Name] = []


_SECTIONS: dict[str, type[_Model] | None] = {
    "monitor": _MonitorModel,
    "channels": None,
    "feeds": _FeedModel,
    "rules": _RuleModel,
}

_MESSAGES = {
    "missing": "required key is missing",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "model_type": "expected a table",
    "dict_type": "expected a table",
    "too_short": "must not be empty",
    "string_too_short": "must not be empty",
}


# --- the loader ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Problem:
    loc: Loc
    message: str
    keep: bool = False  # shown even where a ${VAR} failed (it is that failure)


class _Loader:
    def __init__(self, path: Path, text: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.locator = _Locator(text)
        self.problems: list[_Problem] = []
        self.tainted: set[Loc] = set()  # where a ${VAR} failed: no second problem there
        self.raw: dict[str, Any] = {}

    def problem(self, loc: Loc, message: str) -> None:
        self.problems.append(_Problem(loc, message))

    # -- the whole file --

    def load(self, raw: dict[str, Any]) -> Config:
        self.raw = raw
        data = self.interpolate(raw, ())
        for key in data:
            if key not in _SECTIONS:
                self.problem((key,), "unknown top-level key" + _suggest(key, _SECTIONS))
        settings = self.settings(data.get("monitor", {}))
        channels = self.channels(data.get("channels", {}))
        feeds = self.feeds(self.entries(data, "feeds"), settings)
        rules = self.rules(self.entries(data, "rules"), settings, channels, feeds)
        self.raise_problems()
        return Config(
            path=self.path,
            settings=settings,
            channels=channels,
            feeds=feeds,
            rules=rules,
            warnings=self.rule_warnings(rules),
        )

    def rule_warnings(self, rules: tuple[RuleConfig, ...]) -> tuple[str, ...]:
        """Rules that will flood (`monitor check` prints these; they are not errors)."""
        from monitor.rules.lint import flood_warnings

        out: list[str] = []
        raw = self.raw.get("rules")
        index = {e.get("name"): i for i, e in enumerate(raw or []) if isinstance(e, dict)}
        for rule in rules:
            i = index.get(rule.name)
            loc: Loc = ("rules",) if i is None else ("rules", i)
            for message in flood_warnings(rule):
                out.append(self.render(_Problem(loc, message)))
        return tuple(out)

    def raise_problems(self) -> None:
        shown: list[str] = []
        for p in sorted(self.problems, key=self.order):
            if not p.keep and any(_related(p.loc, t) for t in self.tainted):
                continue  # a ${VAR} failed here: that is the problem to fix first
            text = self.render(p)
            if text not in shown:
                shown.append(text)
        if shown:
            raise ConfigError(str(self.path), shown)

    def order(self, p: _Problem) -> tuple[int, int, int]:
        """Sections in file order, entries in order, problems of one entry by line."""
        rank = list(_SECTIONS).index(str(p.loc[0])) + 1 if p.loc and p.loc[0] in _SECTIONS else 0
        entry = p.loc[1] if len(p.loc) > 1 and isinstance(p.loc[1], int) else -1
        return rank, entry, self.locator.line(p.loc, self.raw) or 0

    def render(self, p: _Problem) -> str:
        where = self.key_path(p.loc)
        line = self.locator.line(p.loc, self.raw)
        prefix = f"{self.path}:{line}: " if line else ""
        return f"{prefix}{where}: {p.message}" if where else f"{prefix}{p.message}"

    def key_path(self, loc: Loc) -> str:
        out = ""
        for i, key in enumerate(loc):
            if isinstance(key, int):
                out += f"[{key + 1}]"
                if i == 1 and loc[0] in ("feeds", "rules"):
                    name = _entry_name(self.raw, str(loc[0]), key)
                    out += f" {_quote(_cut(_CONTROL.sub('?', name)))}" if name is not None else ""
            else:
                plain = re.fullmatch(r"[A-Za-z0-9_-]+", key) and len(key) <= _SHOWN_MAX
                shown = key if plain else _quote(_cut(key))
                out += f".{shown}" if out else shown
        return out

    # -- ${VAR} --

    def interpolate(self, value: Any, loc: Loc) -> Any:
        if isinstance(value, str):
            return self.substitute(value, loc)
        if isinstance(value, list):
            return [self.interpolate(v, (*loc, i)) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.interpolate(v, (*loc, k)) for k, v in value.items()}
        return value

    def substitute(self, text: str, loc: Loc) -> str:
        def replace(m: re.Match[str]) -> str:
            if m.group(0) == "$${":
                return "${"
            body = m.group(1)
            ref = _REF_BODY.fullmatch(body) if body is not None else None
            if ref is None:
                self.fail(loc, "malformed ${...}: expected ${NAME} or ${NAME:-default}")
                return ""
            name, default = ref.group(1), ref.group(2)
            value = self.env.get(name)
            if default is not None and not value:
                return default
            if value is None:
                self.fail(
                    loc,
                    f"environment variable {name} is not set "
                    f"(set it, or give a default: ${{{name}:-default}})",
                )
                return ""
            return value

        return _REF.sub(replace, text)

    def fail(self, loc: Loc, message: str) -> None:
        self.tainted.add(loc)
        self.problems.append(_Problem(loc, message, keep=True))

    # -- sections --

    def validate(self, model: type[_Model], value: object, loc: Loc) -> _Model | None:
        try:
            return model.model_validate(value)
        except PydanticValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False, include_context=False):
                where = (*loc, *err["loc"])
                if err["type"] == "extra_forbidden":
                    key = str(err["loc"][-1]) if err["loc"] else ""
                    message = "unknown key" + _suggest(key, model.model_fields)
                elif err["type"] == "value_error":
                    message = err["msg"].removeprefix("Value error, ")
                else:
                    message = _MESSAGES.get(err["type"], err["msg"])
                self.problem(where, message)
            return None

    def settings(self, value: object) -> Settings:
        model = self.validate(_MonitorModel, value, ("monitor",))
        if not isinstance(model, _MonitorModel):
            return _DEFAULTS
        return Settings(
            database=self.database(model.database),
            interval=model.interval,
            timeout=model.timeout,
            max_age=model.max_age,
            languages=_unique(model.languages),
            max_bytes=model.max_bytes,
            concurrency=model.concurrency,
            per_host=model.per_host,
            user_agent=model.user_agent,
        )

    def database(self, url: str) -> str:
        """Relative SQLite paths -> absolute, against the config file's directory."""
        from sqlalchemy.engine import make_url

        parsed = make_url(url)  # already validated
        db = parsed.database
        if (
            not parsed.drivername.startswith("sqlite")
            or not db
            or db == ":memory:"
            or db.startswith("file:")
            or os.path.isabs(db)
        ):
            return url
        base = self.path.absolute().parent
        return parsed.set(database=str(base / db)).render_as_string(hide_password=False)

    def channels(self, value: object) -> tuple[ChannelConfig, ...]:
        if not isinstance(value, dict):
            self.problem(("channels",), "expected a table of name = Apprise URL")
            return ()
        out: list[ChannelConfig] = []
        for name, urls in value.items():
            loc: Loc = ("channels", name)
            if not _CHANNEL_NAME.fullmatch(name):
                self.problem(loc, 'a channel name is a letter, then letters, digits, "_" or "-"')
            elif len(name) > MAX_NAME:
                self.problem(loc, _too_long(name))
            if isinstance(urls, str):
                checked = [(loc, urls)]
            elif isinstance(urls, list) and urls:
                checked = [((*loc, i), u) for i, u in enumerate(urls)]
            else:
                empty = isinstance(urls, list)
                self.problem(
                    loc,
                    "needs at least one Apprise URL"
                    if empty
                    else "expected an Apprise URL (a string) or a list of them",
                )
                continue
            ok = True
            for where, url in checked:
                if not isinstance(url, str):
                    self.problem(where, "expected an Apprise URL (a string)")
                    ok = False
                elif (why := _apprise_problem(url)) is not None:
                    self.problem(where, why)
                    ok = False
            if ok:
                out.append(ChannelConfig(name=name, urls=tuple(u for _, u in checked)))
        return tuple(out)

    def entries(self, data: dict[str, Any], key: str) -> list[tuple[int, object]]:
        value = data.get(key, [])
        if not isinstance(value, list):
            self.problem((key,), f"expected [[{key}]] tables (a list)")
            return []
        return list(enumerate(value))

    def feeds(
        self, entries: list[tuple[int, object]], settings: Settings
    ) -> tuple[FeedConfig, ...]:
        out: list[FeedConfig] = []
        seen: dict[str, int] = {}
        for i, value in entries:
            model = self.validate(_FeedModel, value, ("feeds", i))
            if not isinstance(model, _FeedModel):
                continue
            if model.name in seen:
                self.problem(
                    ("feeds", i, "name"), f"duplicate feed name (also feeds[{seen[model.name]}])"
                )
                continue
            seen[model.name] = i + 1
            out.append(
                FeedConfig(
                    name=model.name,
                    url=model.url,
                    interval=model.interval or settings.interval,
                    enabled=model.enabled,
                    catch_up=model.catch_up,
                    per_host=model.per_host,
                )
            )
        return tuple(out)

    def rules(
        self,
        entries: list[tuple[int, object]],
        settings: Settings,
        channels: tuple[ChannelConfig, ...],
        feeds: tuple[FeedConfig, ...] = (),
    ) -> tuple[RuleConfig, ...]:
        out: list[RuleConfig] = []
        seen: dict[str, int] = {}
        defined = {c.name for c in channels}
        declared = self.raw.get("channels")
        declared_names = set(declared) if isinstance(declared, dict) else set()
        for i, value in entries:
            loc: Loc = ("rules", i)
            model = self.validate(_RuleModel, value, loc)
            ok = isinstance(model, _RuleModel)
            removed: set[str] = set()
            if not isinstance(model, _RuleModel):
                # Reported already; check what is left of the rule too, so that one pass of
                # `monitor check` lists every problem, not just the first of each rule.
                model, removed = _salvage(_RuleModel, value)
                if not isinstance(model, _RuleModel):
                    continue
            if model.name in seen:
                self.problem(
                    (*loc, "name"), f"duplicate rule name (also rules[{seen[model.name]}])"
                )
                ok = False
            else:
                seen[model.name] = i + 1
            for j, channel in enumerate(model.channels or []):
                if channel not in declared_names:
                    known = ", ".join(_cut(n) for n in sorted(declared_names)) or "none defined"
                    hint = _suggest(channel, declared_names) or f" (channels: {known})"
                    self.problem((*loc, "channels", j), f'unknown channel "{_cut(channel)}"{hint}')
                    ok = False
                elif channel not in defined:
                    ok = False  # the channel itself is invalid and reported already
            if not self.feed_names(model, loc, feeds):
                ok = False
            rule = RuleConfig(
                name=model.name,
                any=tuple(model.any),
                all=tuple(model.all),
                none=tuple(model.none),
                query=model.query if model.query and model.query.strip() else None,
                languages=_unique(
                    settings.languages if model.languages is None else model.languages
                ),
                channels=None if model.channels is None else _unique(model.channels),
                transliterate=model.transliterate,
                feeds=None if model.feeds is None else _unique(model.feeds),
                exclude_feeds=_unique(model.exclude_feeds),
            )
            if removed & _MATCHING_KEYS:
                ok = False  # what is left cannot be judged without the key that failed
            elif not self.compiles(rule, loc):
                ok = False
            if ok:
                out.append(rule)
        return tuple(out)

    def feed_names(self, model: _RuleModel, loc: Loc, feeds: tuple[FeedConfig, ...]) -> bool:
        """`feeds` and `exclude_feeds` name configured feeds."""
        raw = self.raw.get("feeds")
        declared = {
            e["name"] for e in raw or [] if isinstance(e, dict) and isinstance(e.get("name"), str)
        }
        ok = True
        for key in ("feeds", "exclude_feeds"):
            for j, name in enumerate(getattr(model, key) or []):
                if name not in declared:
                    known = ", ".join(_cut(n) for n in sorted(declared)) or "none defined"
                    hint = _suggest(name, declared) or f" (feeds: {known})"
                    self.problem((*loc, key, j), f'unknown feed "{_cut(name)}"{hint}')
                    ok = False
        return ok

    def compiles(self, rule: RuleConfig, loc: Loc) -> bool:
        from monitor.rules.match import compile_rule  # lazily: rules import nothing from here

        try:
            compile_rule(rule)
        except QueryError as exc:
            self.blame(rule, loc, exc, compile_rule)
            return False
        return True

    def blame(
        self,
        rule: RuleConfig,
        loc: Loc,
        exc: QueryError,
        compile_rule: Callable[[RuleConfig], object],
    ) -> None:
        """Point a failed compile at the query or list entry at fault, by compiling each alone."""

        def error(probe: RuleConfig) -> QueryError | None:
            try:
                compile_rule(probe)
            except QueryError as failed:
                return failed
            return None

        found = False
        for field in ("any", "all", "none"):
            for j, entry in enumerate(getattr(rule, field)):
                bad = error(RuleConfig(name=rule.name, any=(entry,), languages=rule.languages))
                if bad is not None:
                    column = f"column {bad.column}: " if bad.column > 1 else ""
                    self.problem((*loc, field, j), f"{column}{bad.message}")
                    found = True
        if rule.query is not None:
            probe = RuleConfig(
                name=rule.name, any=("x",), query=rule.query, languages=rule.languages
            )
            bad = error(probe)
            if bad is not None:
                self.problem((*loc, "query"), f"column {bad.column}: {bad.message}")
                found = True
        if not found:  # a problem of the whole rule (or of how its lists combine)
            where = _field_loc(str(getattr(exc, "field", "rule")))
            column = f"column {exc.column}: " if where[-1:] == ("query",) else ""
            self.problem((*loc, *where), f"{column}{exc.message}")


_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_REF_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


# --- line numbers --------------------------------------------------------------------------

_HEADER = re.compile(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?")


class _Locator:
    """Line numbers for key paths, by scanning the text for table headers and `key =` lines.

    Cheap and conservative: array entries get a line only when the number of `[[name]]` headers
    equals the number of entries (not for inline arrays), and a key not found in its table's
    lines falls back to the table's header.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: list[tuple[int, str, bool]] = []  # (0-based line, name, is array)
        for n, line in enumerate(self.lines):
            m = _HEADER.fullmatch(line)
            if m is not None:
                name = re.sub(r"\s*\.\s*", ".", m.group(2)).replace('"', "")
                self.headers.append((n, name, m.group(1) == "[["))

    def line(self, loc: Loc, raw: Mapping[str, Any]) -> int | None:
        if not loc or not isinstance(loc[0], str):
            return None
        table = loc[0]
        if len(loc) >= 2 and isinstance(loc[1], int):
            arrays = [h for h in self.headers if h[1] == table and h[2]]
            entries = raw.get(table)
            if not isinstance(entries, list) or len(arrays) != len(entries):
                return None
            start = arrays[loc[1]][0]
            key = loc[2] if len(loc) >= 3 else None
        else:
            tables = [h for h in self.headers if h[1] == table and not h[2]]
            if len(loc) == 1:  # a top-level key: its first header, or a `key =` line before any
                tables = [h for h in self.headers if h[1].split(".")[0] == table]
            if tables:
                start = tables[0][0]
                key = loc[1] if len(loc) >= 2 else None
            else:
                start, key = -1, table
        if isinstance(key, str):
            found = self.key_line(start, key)
            if found is not None:
                return found + 1
            if not isinstance(loc[1], int):  # `[channels.more]` rather than `more = ...`
                sub = [h for h in self.headers if h[1] == f"{table}.{key}"]
                if sub:
                    return sub[0][0] + 1
        return start + 1 if start >= 0 else None

    def key_line(self, start: int, key: str) -> int | None:
        later = [h[0] for h in self.headers if h[0] > start]
        end = later[0] if later else len(self.lines)
        pattern = re.compile(
            rf"""\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*="""
        )
        for n in range(start + 1, end):
            if pattern.match(self.lines[n]):
                return n
        return None


# --- small helpers -------------------------------------------------------------------------


def _apprise_problem(url: str) -> str | None:
    """Why `url` is not a usable Apprise URL (offline), or None. Never includes the URL."""
    from monitor.alerts import deliver

    with _quiet_apprise():
        return deliver.url_problem(url)


class _ThisThread(logging.Filter):
    """Drops records logged by one thread: Apprise logs rejected URLs, secrets included."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return threading.get_ident() != self.thread


@contextmanager
def _quiet_apprise() -> Iterator[None]:
    logger = logging.getLogger("apprise")
    mute = _ThisThread()
    logger.addFilter(mute)
    try:
        yield
    finally:
        logger.removeFilter(mute)


_MATCHING_KEYS = {"any", "all", "none", "query", "languages", "transliterate"}


def _salvage(model: type[_Model], value: object) -> tuple[_Model | None, set[str]]:
    """`value` validated without the keys that failed validation (None if that fails too),
    and the keys left out."""
    removed: set[str] = set()
    if not isinstance(value, dict):
        return None, removed
    data = dict(value)
    for _ in range(3):
        try:
            return model.model_validate(data), removed
        except PydanticValidationError as exc:
            bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
            if not bad & data.keys():
                return None, removed
            removed |= bad
            data = {k: v for k, v in data.items() if k not in bad}
    return None, removed


def _field_loc(field: str) -> Loc:
    """`RuleQueryError.field` ("query", "none[0]", "any", "rule") -> a key path below the rule."""
    m = re.fullmatch(r"(any|all|none|query)(?:\[(\d+)\])?", field)
    if m is None:
        return ()
    return (m.group(1),) if m.group(2) is None else (m.group(1), int(m.group(2)))


def _related(loc: Loc, tainted: Loc) -> bool:
    """`loc` is at, inside or around (the entry holding) a key whose ${VAR} failed."""
    n = min(len(loc), len(tainted))
    return len(loc) >= 2 and loc[:n] == tainted[:n]


def _entry_name(raw: Mapping[str, Any], table: str, index: int) -> str | None:
    """The name of feeds[i] / rules[i] as written in the file (never an interpolated value)."""
    entries = raw.get(table)
    if isinstance(entries, list) and index < len(entries) and isinstance(entries[index], dict):
        name = entries[index].get("name")
        if isinstance(name, str) and name:
            return name
    return None


def _suggest(key: str, known: Any) -> str:
    close = difflib.get_close_matches(key, [str(k) for k in known], n=1, cutoff=0.6)
    return f' (did you mean "{_cut(close[0])}"?)' if close else ""


_SHOWN_MAX = 60  # characters of a name shown in a problem


def _cut(text: str) -> str:
    """A name or key short enough to show in a problem (a long one ends in `…`)."""
    return cap(text, _SHOWN_MAX)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unique(items: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__


def _show(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
