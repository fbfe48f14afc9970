"""The schema of config.toml: strict pydantic models of its sections and the value checks
they run (durations, sizes, names, languages, URLs, the database), each raising a ValueError
whose message is shown to the user as it is (never with the value: it may be a secret).

Pure: nothing here reads a file or the environment; `monitor.config.load` turns the models'
errors into problems with key paths and lines.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from monitor.config.locate import CONTROL
from monitor.rules.text import language_code_for
from monitor.types import Settings

MIN_INTERVAL = timedelta(seconds=30)  # no feed is polled more often than this
MIN_TIMEOUT = timedelta(seconds=1)
MIN_MAX_BYTES = 1024
MAX_NAME = 200  # characters of a feed, rule or channel name (String(200) in the database)

_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
DURATION_HELP = 'expected a duration such as "30s", "15m", "2h", "7d" or "1h30m"'


def parse_duration(text: str) -> timedelta:
    """`30s`, `15m`, `2h`, `7d`, `2w`, `1h30m` -> timedelta. ValueError (without the text)."""
    m = _DURATION.fullmatch(text.strip())
    if not text.strip() or m is None:
        raise ValueError(DURATION_HELP)
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


def _duration(minimum: timedelta) -> Callable[[object], timedelta]:
    def validate(value: object) -> timedelta:
        if isinstance(value, timedelta):
            result = value
        elif not isinstance(value, str):
            raise ValueError(f"{DURATION_HELP} (a string with a unit), not a {_toml_type(value)}")
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


CHANNEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_LANGUAGE_HELP = 'a two-letter ISO 639-1 language code in lower case, such as "de" or "ru"'


def _language(value: str) -> str:
    code = language_code_for(value)
    if code == value:
        return value
    if code is not None:
        raise ValueError(f'use "{code}" (languages are ISO 639-1 codes: two lower-case letters)')
    raise ValueError(f"expected {_LANGUAGE_HELP}")


def _name(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if value != value.strip() or CONTROL.search(value):
        raise ValueError("must not start or end with blanks or contain control characters")
    if len(value) > MAX_NAME:
        raise ValueError(too_long(value))
    return value


def too_long(name: str) -> str:
    return f"too long: at most {MAX_NAME} characters (this one has {len(name)})"


def _term(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _user_agent(value: str) -> str:
    if not value.strip() or CONTROL.search(value):
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


# SQLAlchemy's own URL grammar (sqlalchemy.engine.url._parse_url), so that what passes here is
# what `create_engine` accepts, without importing SQLAlchemy (~0.2 s) to read one string.
_DB_URL = re.compile(
    r"""
    (?P<name>[\w+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.VERBOSE | re.DOTALL,
)


def _parse_database(value: str) -> re.Match[str] | None:
    """The parts of a database URL, or None when SQLAlchemy could not read it either."""
    m = _DB_URL.match(value)
    if m is None:
        return None
    if m["port"] is not None:  # "host:" with no number is an error too
        try:
            int(m["port"])
        except ValueError:
            return None
    return m


def _database(value: str) -> str:
    """A SQLite or PostgreSQL URL, PostgreSQL's with the psycopg 3 driver named. The messages
    never include the URL (it may hold a password)."""
    parsed = _parse_database(value)
    if parsed is None:
        raise ValueError(
            'not a valid database URL (expected e.g. "sqlite:///monitor.db" or '
            '"postgresql://user@host/db")'
        )
    scheme = parsed["name"].lower()
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


def absolute_database(url: str, base: Path) -> str:
    """A validated database URL with a relative SQLite path made absolute against `base` (the
    config file's directory); anything else as it is."""
    parsed = _parse_database(url)
    if parsed is None or not parsed["name"].lower().startswith("sqlite"):
        return url
    db = unquote(parsed["database"] or "")
    if not db or db == ":memory:" or db.startswith("file:") or os.path.isabs(db):
        return url
    return url[: parsed.start("database")] + str(base / db) + url[parsed.end("database") :]


def split_address(value: str) -> tuple[str, int]:
    """`"127.0.0.1:9464"`, `"[::1]:9464"`, `"localhost:9464"` -> (host, port). ValueError."""
    host, sep, port = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError('expected "host:port", such as "127.0.0.1:9464" or "[::1]:9464"')
    if CONTROL.search(host) or " " in host or "/" in host:
        raise ValueError('expected "host:port", such as "127.0.0.1:9464" or "[::1]:9464"')
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or "localhost") only ever means this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _http_address(value: str) -> str:
    split_address(value)
    return value.strip()


MIN_TOKEN = 16


def _http_token(value: str) -> str:
    if len(value) < MIN_TOKEN or not value.isprintable() or " " in value or "://" in value:
        raise ValueError(
            f"must be at least {MIN_TOKEN} printable characters without spaces "
            '(e.g. from "openssl rand -hex 32")'
        )
    return value


MIN_RETENTION = timedelta(days=1)


def _retention(value: object) -> timedelta | None:
    """`"90d"` (at least a day) or `"off"` (None: nothing is pruned)."""
    if value == "off":
        return None
    return _duration(MIN_RETENTION)(value)


_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
DIGEST_HELP = 'expected a period such as "1h" or "30m", a daily time such as "08:00", or "off"'
MIN_DIGEST = timedelta(minutes=5)


def parse_clock(text: str) -> time | None:
    m = _CLOCK.fullmatch(text.strip())
    return time(int(m.group(1)), int(m.group(2))) if m else None


def _digest(value: object) -> timedelta | time | Literal["off"]:
    """`digest = "1h"` (a period), `"08:00"` (daily, local time) or `"off"`."""
    if not isinstance(value, str):
        raise ValueError(f"{DIGEST_HELP}, not a {_toml_type(value)}")
    if value.strip().lower() == "off":
        return "off"
    if (at := parse_clock(value)) is not None:
        return at
    try:
        period = parse_duration(value)
    except ValueError:
        raise ValueError(DIGEST_HELP) from None
    if not MIN_DIGEST <= period <= timedelta(days=1):
        raise ValueError("a digest period must be between 5m and 24h (or a daily time: 08:00)")
    return period


def _quiet_hours(value: object) -> tuple[time, time] | Literal["off"]:
    """`quiet_hours = "22:00-07:00"` (local times; may wrap midnight) or `"off"`."""
    help_ = 'expected local times "HH:MM-HH:MM" such as "22:00-07:00", or "off"'
    if not isinstance(value, str):
        raise ValueError(f"{help_}, not a {_toml_type(value)}")
    if value.strip().lower() == "off":
        return "off"
    start, sep, end = value.partition("-")
    first, last = parse_clock(start), parse_clock(end)
    if not sep or first is None or last is None:
        raise ValueError(help_)
    if first == last:
        raise ValueError("quiet hours must not start and end at the same time")
    return first, last


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            'unknown time zone: expected an IANA name such as "Europe/Berlin" or "UTC"'
        ) from None
    return value


Digest = Annotated[timedelta | time | Literal["off"], BeforeValidator(_digest)]
QuietHours = Annotated[tuple[time, time] | Literal["off"], BeforeValidator(_quiet_hours)]
MaxPerHour = Annotated[int, Field(ge=0, le=100_000)]  # 0: no cap
Interval = Annotated[timedelta, BeforeValidator(_duration(MIN_INTERVAL))]
Timeout = Annotated[timedelta, BeforeValidator(_duration(MIN_TIMEOUT))]
MaxAge = Annotated[timedelta, BeforeValidator(_duration(timedelta(seconds=1)))]
HealthAfter = Annotated[timedelta, BeforeValidator(_duration(timedelta(minutes=1)))]
FullTextWait = Annotated[timedelta, BeforeValidator(_duration(timedelta(seconds=1)))]
# at least one retry after the first failure (30 s backoff) before an alert counts as failed
GiveUpAfter = Annotated[timedelta, BeforeValidator(_duration(timedelta(minutes=1)))]
Language = Annotated[str, AfterValidator(_language)]
Languages = Annotated[list[Language], Field(min_length=1)]
RuleLanguages = list[Language]  # [] on a rule = no stemming
Name = Annotated[str, AfterValidator(_name)]
Term = Annotated[str, AfterValidator(_term)]

DEFAULTS = Settings()


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True, frozen=True)


class MonitorModel(Model):
    database: Annotated[str, AfterValidator(_database)] = DEFAULTS.database
    interval: Interval = DEFAULTS.interval
    timeout: Timeout = DEFAULTS.timeout
    max_age: MaxAge = DEFAULTS.max_age
    give_up_after: GiveUpAfter = DEFAULTS.give_up_after
    languages: Languages = list(DEFAULTS.languages)
    max_bytes: Annotated[int, BeforeValidator(_size)] = DEFAULTS.max_bytes
    concurrency: Annotated[int, Field(ge=1, le=1000)] = DEFAULTS.concurrency
    per_host: Annotated[int, Field(ge=1, le=100)] = DEFAULTS.per_host
    user_agent: Annotated[str, AfterValidator(_user_agent)] = DEFAULTS.user_agent
    dead_after: HealthAfter = DEFAULTS.dead_after
    stale_after: HealthAfter | None = DEFAULTS.stale_after
    ops_channels: list[Name] = []
    http: Annotated[str, AfterValidator(_http_address)] | None = None
    http_token: Annotated[str, AfterValidator(_http_token)] | None = None
    timezone: Annotated[str, AfterValidator(_timezone)] = DEFAULTS.timezone
    digest: Digest | None = None
    quiet_hours: QuietHours | None = None
    max_per_hour: MaxPerHour | None = None
    story_similarity: Annotated[float, Field(gt=0.0, le=1.0)] = DEFAULTS.story_similarity
    story_window: Annotated[timedelta, BeforeValidator(_duration(timedelta(0)))] = (
        DEFAULTS.story_window
    )

    watch_config: bool = DEFAULTS.watch_config
    retention: Annotated[timedelta | None, BeforeValidator(_retention)] = DEFAULTS.retention
    full_text: bool = DEFAULTS.full_text
    full_text_wait: FullTextWait = DEFAULTS.full_text_wait


class FeedModel(Model):
    name: Name
    url: Annotated[str, AfterValidator(_feed_url)]
    interval: Interval | None = None
    enabled: bool = True
    catch_up: bool = False
    per_host: Annotated[int, Field(ge=1, le=100)] | None = None
    full_text: bool | None = None  # None: [monitor] full_text


class RuleModel(Model):
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
    digest: Digest | None = None
    quiet_hours: QuietHours | None = None
    max_per_hour: MaxPerHour | None = None


class TemplateModel(Model):
    name: Name
    subject: Annotated[str, Field(min_length=1)] | None = None  # a file, relative to config
    body: Annotated[str, Field(min_length=1)] | None = None
    channels: list[Name] = []
    rules: list[Name] = []


def _broker(value: str) -> str:
    """A Celery broker URL: Redis or RabbitMQ (AMQP). The message never shows the URL (it
    may hold a password)."""
    scheme = value.partition("://")[0].lower() if "://" in value else ""
    if scheme not in ("redis", "rediss", "amqp", "amqps", "redis+socket"):
        raise ValueError(
            'expected a broker URL: "redis://HOST:6379/0", "redis+socket:///PATH" or '
            '"amqp://USER:PASSWORD@HOST:5672//"'
        )
    return value


class ClusterModel(Model):
    """`[cluster]`: run as a cluster (`monitor run --role scheduler`, `monitor worker`)."""

    broker: Annotated[str, AfterValidator(_broker)]
    # a poll task not claimed by any worker this long after it was sent is sent again (the
    # broker lost it: a restart without persistence)
    redispatch_after: Annotated[timedelta, BeforeValidator(_duration(timedelta(seconds=1)))] = (
        timedelta(minutes=5)
    )
    # the broker's queue of poll tasks: clusters sharing one broker need their own
    queue: Annotated[str, AfterValidator(_name)] = "monitor"


SECTIONS: dict[str, type[Model] | None] = {
    "monitor": MonitorModel,
    "channels": None,
    "feeds": FeedModel,
    "rules": RuleModel,
    "templates": TemplateModel,
    "cluster": ClusterModel,
}

MESSAGES = {
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


MATCHING_KEYS = {"any", "all", "none", "query", "languages", "transliterate"}


def salvage(model: type[Model], value: object) -> tuple[Model | None, set[str]]:
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


def unique(items: list[str] | tuple[str, ...]) -> tuple[str, ...]:
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
