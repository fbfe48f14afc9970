"""config.toml loading: the example loads; every kind of mistake is reported, all at once,
with its key path (and line), and never with a value that may be a secret."""

from __future__ import annotations

import logging
import os
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import (
    insecure_permissions,
    load_config,
    mask_url,
    parse_duration,
    parse_size,
    resolve_config_path,
)
from monitor.errors import ConfigError
from monitor.types import Config

CANARY = "canary-s3cret"
SLACK = "xoxb-1234-5678-canarytoken"
ENV = {"SMTP_PASSWORD": CANARY, "SLACK_TOKEN": SLACK}

EXAMPLE = """\
[monitor]
database = "sqlite:///monitor.db"   # relative SQLite paths are relative to config.toml
interval = "15m"
timeout = "20s"
max_age = "24h"
languages = ["de", "en"]

[channels]
desk = "mailtos://alerts:${SMTP_PASSWORD}@mail.example.org?to=desk@example.org"
osint = "slack://${SLACK_TOKEN}/#osint"

[[feeds]]
name = "tagesschau"
url = "https://www.tagesschau.de/xml/rss2/"
interval = "5m"

[[feeds]]
name = "bbc-world"
url = "https://feeds.bbci.co.uk/news/world/rss.xml"
enabled = false

[[rules]]
name = "nk-troops"
any = ["nordkoreanische Truppen", "North Korean troops"]
all = []
none = ["Fußball"]
query = 'Kursk OR Курск'
languages = ["de", "en", "ru"]
channels = ["desk", "osint"]

[[rules]]
name = "sanctions"
query = 'Sanktionen AND Nordkorea'

[[rules]]
name = "archive"
any = ["Kursk"]
channels = []
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), ENV if env is None else env)


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env)
    assert CANARY not in str(info.value)
    assert SLACK not in str(info.value)
    return info.value.problems


def only(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    found = problems(tmp_path, text, env)
    assert len(found) == 1, found
    return found[0]


MINIMAL = """\
[[feeds]]
name = "f"
url = "https://example.org/rss"
"""


# --- the example ---------------------------------------------------------------------------


def test_example_loads(tmp_path: Path) -> None:
    config = load(tmp_path, EXAMPLE)
    s = config.settings
    assert s.database == f"sqlite:///{tmp_path.absolute() / 'monitor.db'}"
    assert (s.interval, s.timeout, s.max_age) == (
        timedelta(minutes=15),
        timedelta(seconds=20),
        timedelta(hours=24),
    )
    assert s.languages == ("de", "en")
    assert s.max_bytes == 10 * 1024 * 1024  # Settings defaults
    assert s.concurrency == 100 and s.per_host == 4

    desk = config.channel("desk")
    assert desk is not None and desk.urls == (
        f"mailtos://alerts:{CANARY}@mail.example.org?to=desk@example.org",
    )
    assert [c.name for c in config.channels] == ["desk", "osint"]

    tagesschau, bbc = config.feeds
    assert tagesschau.interval == timedelta(minutes=5) and tagesschau.enabled
    assert bbc.interval == timedelta(minutes=15) and not bbc.enabled

    nk, sanctions, archive = config.rules
    assert nk.any == ("nordkoreanische Truppen", "North Korean troops")
    assert nk.none == ("Fußball",) and nk.all == ()
    assert nk.query == "Kursk OR Курск"
    assert nk.languages == ("de", "en", "ru") and nk.channels == ("desk", "osint")
    assert sanctions.languages == ("de", "en")  # default: [monitor].languages
    assert sanctions.channels is None and config.rule_channels(sanctions) == ("desk", "osint")
    assert archive.channels == () and config.rule_channels(archive) == ()


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert config.feeds == () and config.rules == () and config.channels == ()
    assert config.settings.interval == timedelta(minutes=15)


def test_monitor_extras(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        [monitor]
        max_bytes = "2MB"
        concurrency = 5
        user_agent = "desk-bot/1.0"
        languages = ["ru", "ru", "uk"]
        """,
    )
    assert config.settings.max_bytes == 2 * 1024 * 1024
    assert config.settings.concurrency == 5 and config.settings.user_agent == "desk-bot/1.0"
    assert config.settings.languages == ("ru", "uk")


def test_channel_may_be_a_list(tmp_path: Path) -> None:
    config = load(tmp_path, '[channels]\nteam = ["json://localhost:8080/a", "json://localhost/b"]')
    team = config.channel("team")
    assert team is not None and len(team.urls) == 2


# --- TOML syntax and reading ---------------------------------------------------------------


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[monitor]\ninterval = "15m"\ntimeout = 20s\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.problems == [
        f"{path}:3:13: TOML syntax error: Expected newline or end of document after a statement"
    ]
    assert str(path) in str(info.value)


def test_toml_error_at_end_of_file_has_a_position(tmp_path: Path) -> None:
    problem = only(tmp_path, 'a = 1\nname = "x')
    assert problem.endswith(
        ":2:10: TOML syntax error: Unterminated string (at the end of the file)"
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml", {})
    assert "nope.toml: no such file" in str(info.value)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'a = 1\nb = "\xff"\n')
    with pytest.raises(ConfigError, match=r"config.toml:2: not UTF-8 text"):
        load_config(path, {})


# --- schema --------------------------------------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    problem = only(tmp_path, '[[feed]]\nname = "f"\nurl = "https://x.org/"\n')
    assert problem.endswith(':1: feed: unknown top-level key (did you mean "feeds"?)')


def test_unknown_key_in_monitor(tmp_path: Path) -> None:
    problem = only(tmp_path, '[monitor]\ninterval = "15m"\nintervall = "5m"\n')
    assert problem.endswith(':3: monitor.intervall: unknown key (did you mean "interval"?)')


def test_unknown_key_in_a_rule(tmp_path: Path) -> None:
    problem = only(
        tmp_path,
        MINIMAL + '\n[[rules]]\nname = "nk-troops"\nany_of = ["Kursk"]\nquery = "Kursk"\n',
    )
    assert problem.endswith(':7: rules[1] "nk-troops".any_of: unknown key (did you mean "any"?)')


def test_wrong_types(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        [monitor]
        languages = "de"
        concurrency = "5"

        [[feeds]]
        name = "f"
        url = "https://example.org/rss"
        enabled = "yes"

        [[rules]]
        name = "r"
        any = "Kursk"
        """,
    )
    assert [p.split(": ", 1)[1] for p in found] == [
        "monitor.languages: expected a list",
        "monitor.concurrency: expected an integer",
        'feeds[1] "f".enabled: expected true or false',
        'rules[1] "r".any: expected a list',
    ]


def test_missing_required_keys(tmp_path: Path) -> None:
    found = problems(tmp_path, '[[feeds]]\nname = "f"\n\n[[rules]]\nany = ["x"]\n')
    assert found[0].endswith(': feeds[1] "f".url: required key is missing')
    assert found[1].endswith(":4: rules[1].name: required key is missing")


def test_integer_duration_names_the_format(tmp_path: Path) -> None:
    problem = only(tmp_path, "[monitor]\ninterval = 900\n")
    assert problem.endswith(
        ':2: monitor.interval: expected a duration such as "30s", "15m", "2h", "7d" or '
        '"1h30m" (a string with a unit), not a number'
    )


@pytest.mark.parametrize("value", ["15 minutes", "15", "m", "", "1m30", "30m1h", "-5m"])
def test_bad_duration(tmp_path: Path, value: str) -> None:
    problem = only(tmp_path, MINIMAL + f'interval = "{value}"\n')
    assert problem.endswith(
        ':4: feeds[1] "f".interval: expected a duration such as "30s", "15m", "2h", "7d" or "1h30m"'
    )


def test_duration_limits(tmp_path: Path) -> None:
    found = problems(
        tmp_path, '[monitor]\ninterval = "10s"\ntimeout = "0s"\nmax_age = "0m"\nmax_bytes = 10\n'
    )
    assert [p.split(": ", 1)[1] for p in found] == [
        "monitor.interval: must be at least 30s",
        "monitor.timeout: must be at least 1s",
        "monitor.max_age: must be at least 1s",
        "monitor.max_bytes: must be at least 1KB",
    ]


def test_languages(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        '[monitor]\nlanguages = []\n\n[[rules]]\nname = "r"\nany = ["x"]\nlanguages = ["German"]\n',
    )
    assert found[0].endswith(":2: monitor.languages: must not be empty")
    assert found[1].endswith(
        ':7: rules[1] "r".languages[1]: use "de" (languages are ISO 639-1 codes: two lower-case '
        "letters)"
    )


@pytest.mark.parametrize(
    ("code", "suggested"),
    [
        ("deu", "de"),
        ("ger", "de"),
        ("eng", "en"),
        ("rus", "ru"),
        ("ukr", "uk"),
        ("fra", "fr"),
        ("fre", "fr"),
        ("spa", "es"),
        ("nld", "nl"),
        ("dut", "nl"),
        ("por", "pt"),
        ("pol", "pl"),
        ("DE", "de"),
        ("Deu", "de"),
        ("russian", "ru"),
    ],
)
def test_language_code_that_names_a_two_letter_one_suggests_it(
    tmp_path: Path, code: str, suggested: str
) -> None:
    # "deu" used to pass `check` and silently turn German stemming off
    problem = only(tmp_path, f'[monitor]\nlanguages = ["en", "{code}"]\n')
    assert problem.endswith(
        f':2: monitor.languages[2]: use "{suggested}" (languages are ISO 639-1 '
        "codes: two lower-case letters)"
    )


@pytest.mark.parametrize("code", ["xx", "qq", "gsw", "d", "deutsch", "de-DE", "de_AT", ""])
def test_language_that_is_no_iso_639_1_code(tmp_path: Path, code: str) -> None:
    problem = only(tmp_path, f'[[rules]]\nname = "r"\nany = ["x"]\nlanguages = ["{code}"]\n')
    assert problem.endswith(
        ':4: rules[1] "r".languages[1]: expected a two-letter ISO 639-1 language code in lower '
        'case, such as "de" or "ru"'
    )


def test_any_iso_639_1_code_is_a_language(tmp_path: Path) -> None:
    config = load(tmp_path, '[monitor]\nlanguages = ["uk", "zh", "ka", "nb", "de"]\n')
    assert config.settings.languages == ("uk", "zh", "ka", "nb", "de")


# --- ${VAR} --------------------------------------------------------------------------------


def test_missing_variable_names_it_and_the_key(tmp_path: Path) -> None:
    problem = only(tmp_path, EXAMPLE, env={"SLACK_TOKEN": SLACK})
    assert problem.endswith(
        ":9: channels.desk: environment variable SMTP_PASSWORD is not set "
        "(set it, or give a default: ${SMTP_PASSWORD:-default})"
    )


def test_variable_defaults_and_lists(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        [monitor]
        interval = "${INTERVAL:-10m}"
        timeout = "${TIMEOUT:-30s}"
        languages = ["${LANG1}", "${LANG2:-ru}"]

        [channels]
        hook = "json://${HOOK_HOST:-localhost}/alerts"
        """,
        env={"TIMEOUT": "45s", "LANG1": "uk", "LANG2": ""},
    )
    assert config.settings.interval == timedelta(minutes=10)  # unset: the default
    assert config.settings.timeout == timedelta(seconds=45)  # set: the variable
    assert config.settings.languages == ("uk", "ru")  # set but empty: the default
    hook = config.channel("hook")
    assert hook is not None and hook.urls == ("json://localhost/alerts",)


def test_dollar_escape(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        '[[rules]]\nname = "r"\nany = ["$${NOT_A_VAR}", "US$ 5"]\n',
        env={},
    )
    assert config.rules[0].any == ("${NOT_A_VAR}", "US$ 5")


def test_malformed_reference(tmp_path: Path) -> None:
    problem = only(tmp_path, '[monitor]\ndatabase = "${DB URL}"\n', env={})
    assert problem.endswith(
        ":2: monitor.database: malformed ${...}: expected ${NAME} or ${NAME:-default}"
    )


def test_missing_variable_in_a_list_and_no_follow_up_problem(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        [[rules]]
        name = "r"
        query = "${QUERY}"
        any = ["Kursk", "${TERM}"]
        """,
        env={},
    )
    # the empty substitutes do not cause a second problem ("nothing to match", "empty term")
    assert [p.split(": ", 1)[1] for p in found] == [
        'rules[1] "r".query: environment variable QUERY is not set '
        "(set it, or give a default: ${QUERY:-default})",
        'rules[1] "r".any[2]: environment variable TERM is not set '
        "(set it, or give a default: ${TERM:-default})",
    ]


# --- semantic problems ---------------------------------------------------------------------


def test_duplicate_feed_and_rule_names(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        MINIMAL
        + """
        [[feeds]]
        name = "f"
        url = "https://example.org/other"

        [[rules]]
        name = "r"
        any = ["a"]

        [[rules]]
        name = "r"
        any = ["b"]
        """,
    )
    assert found[0].endswith(':6: feeds[2] "f".name: duplicate feed name (also feeds[1])')
    assert found[1].endswith(':14: rules[2] "r".name: duplicate rule name (also rules[1])')
    assert len(found) == 2


def test_unknown_channel_in_a_rule(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        [channels]
        desk = "json://localhost/desk"

        [[rules]]
        name = "r"
        any = ["Kursk"]
        channels = ["desk", "desks", "slack"]
        """,
    )
    assert [p.split(": ", 1)[1] for p in found] == [
        'rules[1] "r".channels[2]: unknown channel "desks" (did you mean "desk"?)',
        'rules[1] "r".channels[3]: unknown channel "slack" (channels: desk)',
    ]


def test_names_fit_the_database_columns(tmp_path: Path) -> None:
    longest = "n" * 200  # String(200): fits
    config = load(
        tmp_path,
        f"""\
        [channels]
        C{longest[1:]} = "console://"

        [[feeds]]
        name = "{longest}"
        url = "https://example.org/rss"

        [[rules]]
        name = "{longest}"
        any = ["Kursk"]
        """,
    )
    assert config.feeds[0].name == config.rules[0].name == longest
    assert config.channels[0].name == "C" + longest[1:]


def test_too_long_names_are_problems_that_do_not_repeat_the_name(tmp_path: Path) -> None:
    feed, rule, channel = "F" * 201, "R" * 5000, "C" * 300
    found = problems(
        tmp_path,
        f"""\
        [channels]
        {channel} = "console://"

        [[feeds]]
        name = "{feed}"
        url = "https://example.org/rss"

        [[rules]]
        name = "{rule}"
        any = ["Kursk"]
        channels = ["{"D" * 300}"]
        """,
    )
    rest = [p.split(": ", 1)[1] for p in found]
    assert rest == [
        f'channels."{"C" * 59}…": too long: at most 200 characters (this one has 300)',
        f'feeds[1] "{"F" * 59}…".name: too long: at most 200 characters (this one has 201)',
        f'rules[1] "{"R" * 59}…".name: too long: at most 200 characters (this one has 5000)',
        f'rules[1] "{"R" * 59}…".channels[1]: too long: at most 200 characters (this one has 300)',
    ]
    assert all(len(p) < 200 for p in rest)


def test_unknown_long_channel_name_is_cut(tmp_path: Path) -> None:
    name = "desk" + "x" * 150  # a valid length, but not defined
    problem = only(tmp_path, f'[[rules]]\nname = "r"\nany = ["a"]\nchannels = ["{name}"]\n')
    assert problem.endswith(f'unknown channel "{name[:59]}…" (channels: none defined)')


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", 'a feed URL must start with http:// or https:// (not "file")'),
        ("ftp://example.org/rss", 'a feed URL must start with http:// or https:// (not "ftp")'),
        ("example.org/rss", "a feed URL must start with http:// or https://"),
        ("https:///rss", "the URL has no host"),
    ],
)
def test_feed_urls_must_be_http(tmp_path: Path, url: str, message: str) -> None:
    problem = only(tmp_path, f'[[feeds]]\nname = "f"\nurl = "{url}"\n')
    assert problem.endswith(f':3: feeds[1] "f".url: {message}')


def test_invalid_apprise_urls(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        f"""\
        [channels]
        desk = "mailtos://{CANARY}"
        typo = "slackk://T1/B1/C1"
        plain = "not a url"
        team = ["json://localhost/ok", "slack://{CANARY}/#osint"]
        empty = []
        "my desk" = "json://localhost/x"
        """,
    )
    assert [p.split(": ", 1)[1] for p in found] == [
        "channels.desk: invalid mailtos:// URL (see the Apprise documentation for its syntax)",
        "channels.typo: unknown Apprise scheme 'slackk'",
        "channels.plain: not an Apprise URL (expected scheme://...)",
        "channels.team[2]: invalid slack:// URL (see the Apprise documentation for its syntax)",
        "channels.empty: needs at least one Apprise URL",
        'channels."my desk": a channel name is a letter, then letters, digits, "_" or "-"',
    ]


def test_console_channel_is_valid(tmp_path: Path) -> None:
    config = load(tmp_path, '[channels]\ndesk = "${MONITOR_DESK_URL:-console://}"\n', env={})
    desk = config.channel("desk")
    assert desk is not None and desk.urls == ("console://",)


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        (f"https://hooks.example.org/in/{CANARY}", "json:// or form:// (jsons:// or forms://"),
        ("http://127.0.0.1:8080/hook", "for a webhook use json:// or form://"),
    ],
)
def test_a_bare_web_url_channel_gets_a_webhook_hint(tmp_path: Path, url: str, hint: str) -> None:
    problem = only(tmp_path, f'[channels]\nweb = "{url}"\n')
    assert "config.toml:2: channels.web: unknown Apprise scheme 'http" in problem
    assert hint in problem


def test_console_stderr_is_shown_as_written(tmp_path: Path) -> None:
    config = load(tmp_path, '[channels]\nlog = "console://stderr"\n')
    log = config.channel("log")
    assert log is not None and [mask_url(u) for u in log.urls] == ["console://stderr"]


def test_invalid_query_names_rule_and_column(tmp_path: Path) -> None:
    problem = only(
        tmp_path,
        MINIMAL + '\n[[rules]]\nname = "nk-troops"\nquery = "Kursk AND (Truppen OR Soldaten"\n',
    )
    assert 'config.toml:7: rules[1] "nk-troops".query: column 11: ' in problem


def test_bad_list_entries_and_query_reported_together(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        [[rules]]
        name = "r"
        any = ["Kursk", "---"]
        none = ["!!"]
        query = "Kursk AND"
        """,
    )
    assert [p.split(": ", 2)[1] for p in found] == [
        'rules[1] "r".any[2]',
        'rules[1] "r".none[1]',
        'rules[1] "r".query',
    ]
    assert found[2].split(": ")[2].startswith("column ")


def test_rule_with_nothing_to_match(tmp_path: Path) -> None:
    problem = only(tmp_path, '[[rules]]\nname = "r"\nnone = ["Fußball"]\n')
    assert ':1: rules[1] "r": ' in problem and "nothing to match" in problem


def test_bad_database_url(tmp_path: Path) -> None:
    problem = only(tmp_path, f'[monitor]\ndatabase = "postgres ql://u:{CANARY}@host/db"\n')
    assert ":2: monitor.database: not a valid database URL" in problem


@pytest.mark.parametrize(
    ("database", "message"),
    [
        (f"mysql://u:{CANARY}@db.example.org/news", "unsupported database"),
        (f"mysql+pymysql://u:{CANARY}@db/news", "unsupported database"),
        (f"oracle://u:{CANARY}@db:1521/news", "unsupported database"),
        (f"mssql+pyodbc://u:{CANARY}@dsn", "unsupported database"),
        (f"postgresql+psycopg2://u:{CANARY}@db/news", "unsupported PostgreSQL driver"),
        (f"postgresql+asyncpg://u:{CANARY}@db/news", "unsupported PostgreSQL driver"),
        ("sqlite+aiosqlite:///news.db", "unsupported SQLite driver"),
    ],
)
def test_only_sqlite_and_postgresql_databases(tmp_path: Path, database: str, message: str) -> None:
    problem = only(tmp_path, f'[monitor]\ndatabase = "{database}"\n')  # `only`: no CANARY
    assert f":2: monitor.database: {message}: use " in problem
    assert "example.org" not in problem and "@" not in problem.split(": ", 1)[1]


@pytest.mark.parametrize(
    ("database", "expected"),
    [
        # SQLAlchemy rejects postgres://; plain postgresql:// would pick psycopg2
        (f"postgres://u:{CANARY}@db/news", f"postgresql+psycopg://u:{CANARY}@db/news"),
        (f"postgresql://u:{CANARY}@db/news", f"postgresql+psycopg://u:{CANARY}@db/news"),
        (
            "PostgreSQL://db:5433/news?sslmode=require",
            "postgresql+psycopg://db:5433/news?sslmode=require",
        ),
        ("postgres+psycopg://u:p%40ss@db/news", "postgresql+psycopg://u:p%40ss@db/news"),
        ("postgresql+psycopg://u@db/news", "postgresql+psycopg://u@db/news"),
        ("SQLite:////abs/x.db", "sqlite:////abs/x.db"),
    ],
)
def test_database_urls_are_normalised(tmp_path: Path, database: str, expected: str) -> None:
    config = load(tmp_path, f'[monitor]\ndatabase = "{database}"\n')
    assert config.settings.database == expected


@pytest.mark.parametrize(
    "database",
    [
        "postgresql://db/news",
        "postgresql://u:p@db:5432/news",
        "postgresql://u@[::1]:5432/news",
        "postgresql://db:/news",  # an empty port
        "postgresql://db:54x/news",
        "postgresql://db:5432",
        "postgres ql://db/news",
        "sqlite:///x.db?timeout=5",
        "sqlite://",
        "://db/news",
        "sqlite:/x.db",
    ],
)
def test_database_urls_are_read_as_sqlalchemy_reads_them(tmp_path: Path, database: str) -> None:
    """The config reads a database URL without SQLAlchemy (start-up time), by its grammar."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(database)
        readable = True
    except (ArgumentError, ValueError):
        readable = False
    path = tmp_path / "config.toml"
    path.write_text(f'[monitor]\ndatabase = "{database}"\n', encoding="utf-8")
    try:
        load_config(path, {})
        loaded = True
    except ConfigError as exc:
        assert not readable or "not a valid database URL" not in str(exc)
        loaded = False
    if not readable:
        assert not loaded


def test_postgres_alias_with_the_password_in_the_environment(tmp_path: Path) -> None:
    config = load(tmp_path, '[monitor]\ndatabase = "postgres://news:${SMTP_PASSWORD}@db/news"\n')
    assert config.settings.database == f"postgresql+psycopg://news:{CANARY}@db/news"
    problem = only(tmp_path, '[monitor]\ndatabase = "mysql://news:${SMTP_PASSWORD}@db/news"\n')
    assert problem.endswith(
        "monitor.database: unsupported database: use sqlite:/// or postgresql://"
    )


def test_inline_arrays_get_key_paths_without_lines(tmp_path: Path) -> None:
    problem = only(tmp_path, 'feeds = [{ name = "f", url = "file:///x" }]\n')
    assert problem.startswith('feeds[1] "f".url: a feed URL must start with http')


def test_many_problems_at_once_without_secrets(tmp_path: Path) -> None:
    text = EXAMPLE.replace('interval = "15m"', "interval = 15").replace(
        'name = "bbc-world"', 'name = "tagesschau"'
    )
    text = text.replace('any = ["Kursk"]\n', 'any = ["Kursk"]\ncolour = "red"\n')
    text += '\n[[feeds]]\nname = "local"\nurl = "file:///etc/passwd"\n'
    text += '\n[[rules]]\nname = "broken"\nquery = "(Kursk"\nchannels = ["dsk"]\n'
    text += f'\n[channels.more]\nx = "{CANARY}"\n'  # [channels] gets a table: not a URL
    found = problems(tmp_path, text)
    assert len(found) == 7, found
    joined = "\n".join(found)
    for part in (
        "monitor.interval: expected a duration",
        "channels.more: expected an Apprise URL",
        'feeds[2] "tagesschau".name: duplicate feed name (also feeds[1])',
        'feeds[3] "local".url: a feed URL must start with http:// or https://',
        'rules[3] "archive".colour: unknown key',
        'rules[4] "broken".query: column ',
        'rules[4] "broken".channels[1]: unknown channel "dsk" (did you mean "desk"?)',
    ):
        assert part in joined
    assert CANARY not in joined and SLACK not in joined


def test_secrets_never_in_errors_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    found = problems(
        tmp_path,
        """\
        [monitor]
        database = "postgresql://user:${SMTP_PASSWORD}@db/x?bad=${SMTP_PASSWORD"
        interval = "${SMTP_PASSWORD}"

        [channels]
        desk = "mailtos://alerts:${SMTP_PASSWORD}@mail.example.org?to=desk@example.org"
        bad = "slack://${SMTP_PASSWORD}/#osint"
        worse = "${SMTP_PASSWORD}"
        """,
    )
    assert len(found) == 4, found
    assert CANARY not in caplog.text


# --- paths, masking, permissions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("database", "expected"),
    [
        ("sqlite:///monitor.db", "sqlite:///{dir}/monitor.db"),
        ("sqlite:///./data/x.db", "sqlite:///{dir}/data/x.db"),
        ("sqlite+pysqlite:///x.db", "sqlite+pysqlite:///{dir}/x.db"),
        ("sqlite:////abs/x.db", "sqlite:////abs/x.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
    ],
)
def test_sqlite_paths_relative_to_the_config_file(
    tmp_path: Path, database: str, expected: str
) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    config = load_config(write(sub, f'[monitor]\ndatabase = "{database}"\n'), {})
    got = config.settings.database.replace("/./", "/")
    assert got == expected.format(dir=sub.absolute())


def test_resolve_config_path() -> None:
    assert resolve_config_path("a.toml", {"MONITOR_CONFIG": "b.toml"}) == Path("a.toml")
    assert resolve_config_path(None, {"MONITOR_CONFIG": "b.toml"}) == Path("b.toml")
    assert resolve_config_path(None, {"MONITOR_CONFIG": ""}) == Path("config.toml")
    assert resolve_config_path(None, {}) == Path("config.toml")


def test_mask_url() -> None:
    masked = mask_url(f"mailtos://alerts:{CANARY}@mail.example.org?to=desk@example.org")
    assert CANARY not in masked and masked.startswith("mailtos://alerts:****@mail.example.org")
    assert mask_url("json://127.0.0.1:18080/hook") == "json://127.0.0.1:18080/hook"
    assert CANARY not in mask_url(f"slack://{CANARY}/#x")
    assert mask_url(f"nonsense {CANARY}") == "?://***"


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_insecure_permissions(tmp_path: Path) -> None:
    literal = write(tmp_path, f'[channels]\ndesk = "mailtos://a:{CANARY}@mail.example.org"\n')
    literal.chmod(0o644)
    warning = insecure_permissions(literal)
    assert warning is not None and "channel(s) desk" in warning and CANARY not in warning
    literal.chmod(0o600)
    assert insecure_permissions(literal) is None

    from_env = write(tmp_path, EXAMPLE, name="env.toml")
    from_env.chmod(0o644)
    assert insecure_permissions(from_env) is None  # secrets come from ${VAR}


def test_parse_helpers() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(days=14)
    assert parse_duration(" 7d ") == timedelta(days=7)
    with pytest.raises(ValueError):
        parse_duration("1.5h")
    assert parse_size(2048) == parse_size("2KB") == parse_size("2 KiB") == 2048
    with pytest.raises(ValueError):
        parse_size("2 TB")


# --- issue 7: languages = [], transliterate, feeds / exclude_feeds, flood warnings ---------

RULES_FEEDS = """\
[[feeds]]
name = "tass"
url = "https://example.org/tass"

[[feeds]]
name = "dpa"
url = "https://example.org/dpa"

"""


def test_rule_languages_may_be_empty_for_no_stemming(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        MINIMAL + '\n[[rules]]\nname = "exact"\nany = ["Truppen"]\nlanguages = []\n'
        '\n[[rules]]\nname = "default"\nany = ["Truppen"]\n',
    )
    exact, default = config.rules
    assert exact.languages == () and default.languages == ("de", "en")


def test_transliterate_and_feed_filters_load(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        RULES_FEEDS + '[[rules]]\nname = "r"\nany = ["Kursk"]\nlanguages = ["ru"]\n'
        'transliterate = true\nfeeds = ["tass"]\nexclude_feeds = ["dpa"]\n',
    )
    (rule,) = config.rules
    assert rule.transliterate and rule.feeds == ("tass",) and rule.exclude_feeds == ("dpa",)
    assert config.warnings == ()


def test_unknown_feed_names_are_config_errors(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        RULES_FEEDS + '[[rules]]\nname = "r"\nany = ["Kursk"]\nfeeds = ["tas"]\n'
        'exclude_feeds = ["reuters"]\n',
    )
    assert len(found) == 2, found
    assert found[0].endswith(
        ':12: rules[1] "r".feeds[1]: unknown feed "tas" (did you mean "tass"?)'
    )
    assert found[1].endswith(
        ':13: rules[1] "r".exclude_feeds[1]: unknown feed "reuters" (feeds: dpa, tass)'
    )


def test_transliterate_must_be_a_boolean(tmp_path: Path) -> None:
    message = only(
        tmp_path, MINIMAL + '\n[[rules]]\nname = "r"\nany = ["x"]\ntransliterate = "yes"\n'
    )
    assert message.endswith('rules[1] "r".transliterate: expected true or false')


def test_flooding_rules_are_warnings_not_errors(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        MINIMAL + '\n[[rules]]\nname = "fine"\nany = ["der Spiegel"]\n'
        '\n[[rules]]\nname = "stop"\nany = ["der", "the"]\n'
        '\n[[rules]]\nname = "short"\nquery = "ab*"\n',
    )
    assert len(config.rules) == 3
    assert len(config.warnings) == 2, config.warnings
    assert ':9: rules[2] "stop": this rule will match nearly every item' in config.warnings[0]
    assert "(der, the)" in config.warnings[0]
    assert ':13: rules[3] "short": ' in config.warnings[1] and "(ab*)" in config.warnings[1]
