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
  timeout at least 1s, max_age at least 1s, give_up_after at least 1m,
  full_text_wait at least 1s.
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

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from monitor.config.checks import compile_checked, url_problem
from monitor.config.locate import Loc, Locator, cut, key_path, suggest
from monitor.config.schema import (
    CHANNEL_NAME,
    DEFAULTS,
    MATCHING_KEYS,
    MAX_NAME,
    MESSAGES,
    SECTIONS,
    ClusterModel,
    FeedModel,
    Model,
    MonitorModel,
    RuleModel,
    TemplateModel,
    absolute_database,
    is_loopback,
    salvage,
    split_address,
    too_long,
    unique,
)
from monitor.errors import ConfigError
from monitor.rules.lint import flood_warnings
from monitor.rules.match import CompiledRule
from monitor.types import (
    AlertTiming,
    ChannelConfig,
    ClusterConfig,
    Config,
    FeedConfig,
    RuleConfig,
    Settings,
    TemplateConfig,
)


def resolve_config_path(arg: str | None, env: Mapping[str, str]) -> Path:
    """`--config` if given, else `$MONITOR_CONFIG` (when set and non-empty), else ./config.toml."""
    if arg:
        return Path(arg)
    if env.get("MONITOR_CONFIG"):
        return Path(env["MONITOR_CONFIG"])
    return Path("config.toml")


def load_config(path: Path, env: Mapping[str, str]) -> Config:
    """Read, interpolate, validate and convert config.toml. ConfigError lists every problem."""
    return load_config_text(path, _read(path), env)


def load_config_text(path: Path, text: str, env: Mapping[str, str]) -> Config:
    """`load_config` of a text read elsewhere (a cluster worker reads the scheduler's
    config.toml from the database); `path` names it in messages and anchors relative paths."""
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


_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_REF_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Problem:
    loc: Loc
    message: str
    keep: bool = False  # shown even where a ${VAR} failed (it is that failure)


class _Loader:
    def __init__(self, path: Path, text: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.locator = Locator(text)
        self.problems: list[_Problem] = []
        self.tainted: set[Loc] = set()  # where a ${VAR} failed: no second problem there
        self.raw: dict[str, Any] = {}
        self.compiled: dict[str, CompiledRule] = {}  # each rule compiled once, by name

    def problem(self, loc: Loc, message: str) -> None:
        self.problems.append(_Problem(loc, message))

    # -- the whole file --

    def load(self, raw: dict[str, Any]) -> Config:
        self.raw = raw
        data = self.interpolate(raw, ())
        for key in data:
            if key not in SECTIONS:
                self.problem((key,), "unknown top-level key" + suggest(key, SECTIONS))
        settings = self.settings(data.get("monitor", {}))
        channels = self.channels(data.get("channels", {}))
        feeds = self.feeds(self.entries(data, "feeds"), settings)
        rules = self.rules(self.entries(data, "rules"), settings, channels)
        templates = self.templates(self.entries(data, "templates"), channels, rules)
        self.ops_channels(settings)
        self.http_token(settings)
        cluster = self.cluster(data.get("cluster"), settings)
        self.raise_problems()
        return Config(
            path=self.path,
            settings=settings,
            channels=channels,
            feeds=feeds,
            rules=rules,
            warnings=self.rule_warnings(rules),
            templates=templates,
            cluster=cluster,
        )

    def rule_warnings(self, rules: tuple[RuleConfig, ...]) -> tuple[str, ...]:
        """Rules that will flood (`monitor check` prints these; they are not errors)."""
        out: list[str] = []
        raw = self.raw.get("rules")
        index = {e.get("name"): i for i, e in enumerate(raw or []) if isinstance(e, dict)}
        for rule in rules:
            i = index.get(rule.name)
            loc: Loc = ("rules",) if i is None else ("rules", i)
            for message in flood_warnings(rule, self.compiled.get(rule.name)):
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
        rank = list(SECTIONS).index(str(p.loc[0])) + 1 if p.loc and p.loc[0] in SECTIONS else 0
        entry = p.loc[1] if len(p.loc) > 1 and isinstance(p.loc[1], int) else -1
        return rank, entry, self.locator.line(p.loc, self.raw) or 0

    def render(self, p: _Problem) -> str:
        where = key_path(p.loc, self.raw)
        line = self.locator.line(p.loc, self.raw)
        prefix = f"{self.path}:{line}: " if line else ""
        return f"{prefix}{where}: {p.message}" if where else f"{prefix}{p.message}"

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

    def validate(self, model: type[Model], value: object, loc: Loc) -> Model | None:
        try:
            return model.model_validate(value)
        except PydanticValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False, include_context=False):
                where = (*loc, *err["loc"])
                if err["type"] == "extra_forbidden":
                    key = str(err["loc"][-1]) if err["loc"] else ""
                    message = "unknown key" + suggest(key, model.model_fields)
                elif err["type"] == "value_error":
                    message = err["msg"].removeprefix("Value error, ")
                else:
                    message = MESSAGES.get(err["type"], err["msg"])
                self.problem(where, message)
            return None

    def settings(self, value: object) -> Settings:
        model = self.validate(MonitorModel, value, ("monitor",))
        if not isinstance(model, MonitorModel):
            return DEFAULTS
        return Settings(
            database=absolute_database(model.database, self.path.absolute().parent),
            interval=model.interval,
            timeout=model.timeout,
            max_age=model.max_age,
            give_up_after=model.give_up_after,
            languages=unique(model.languages),
            max_bytes=model.max_bytes,
            concurrency=model.concurrency,
            per_host=model.per_host,
            user_agent=model.user_agent,
            dead_after=model.dead_after,
            stale_after=model.stale_after,
            ops_channels=unique(model.ops_channels),
            http=model.http,
            http_token=model.http_token,
            watch_config=model.watch_config,
            retention=model.retention,
            timezone=model.timezone,
            timing=timing(model, AlertTiming()),
            story_similarity=model.story_similarity,
            story_window=model.story_window,
            full_text=model.full_text,
            full_text_wait=model.full_text_wait,
        )

    def ops_channels(self, settings: Settings) -> None:
        """`[monitor] ops_channels` must name channels, like a rule's `channels`."""
        declared = self.raw.get("channels")
        names = set(declared) if isinstance(declared, dict) else set()
        for j, channel in enumerate(settings.ops_channels):
            if channel not in names:
                known = ", ".join(cut(n) for n in sorted(names)) or "none defined"
                hint = suggest(channel, names) or f" (channels: {known})"
                loc: Loc = ("monitor", "ops_channels", j)
                self.problem(loc, f'unknown channel "{cut(channel)}"{hint}')

    def http_token(self, settings: Settings) -> None:
        """`[monitor] http` on an address other machines can reach needs `http_token`."""
        if settings.http is None or settings.http_token is not None:
            return
        host, _ = split_address(settings.http)
        if not is_loopback(host):
            self.problem(
                ("monitor", "http"),
                "listens on a non-loopback address: set [monitor] http_token (a bearer token "
                'the server requires), or bind to "127.0.0.1:PORT"',
            )

    def cluster(self, value: object, settings: Settings) -> ClusterConfig | None:
        """`[cluster]`: the broker; a cluster shares one PostgreSQL database."""
        if value is None:
            return None
        model = self.validate(ClusterModel, value, ("cluster",))
        if not isinstance(model, ClusterModel):
            return None
        if not settings.database.startswith("postgresql"):
            self.problem(
                ("cluster", "broker"),
                "a cluster needs a PostgreSQL database: set [monitor] database to a "
                "postgresql:// URL (every scheduler and worker shares it)",
            )
            return None
        return ClusterConfig(
            broker=model.broker, redispatch_after=model.redispatch_after, queue=model.queue
        )

    def channels(self, value: object) -> tuple[ChannelConfig, ...]:
        if not isinstance(value, dict):
            self.problem(("channels",), "expected a table of name = Apprise URL")
            return ()
        out: list[ChannelConfig] = []
        for name, urls in value.items():
            loc: Loc = ("channels", name)
            if not CHANNEL_NAME.fullmatch(name):
                self.problem(loc, 'a channel name is a letter, then letters, digits, "_" or "-"')
            elif len(name) > MAX_NAME:
                self.problem(loc, too_long(name))
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
                elif (why := url_problem(url)) is not None:
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
            model = self.validate(FeedModel, value, ("feeds", i))
            if not isinstance(model, FeedModel):
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
                    full_text=settings.full_text if model.full_text is None else model.full_text,
                )
            )
        return tuple(out)

    def rules(
        self,
        entries: list[tuple[int, object]],
        settings: Settings,
        channels: tuple[ChannelConfig, ...],
    ) -> tuple[RuleConfig, ...]:
        out: list[RuleConfig] = []
        seen: dict[str, int] = {}
        defined = {c.name for c in channels}
        declared = self.raw.get("channels")
        declared_names = set(declared) if isinstance(declared, dict) else set()
        for i, value in entries:
            loc: Loc = ("rules", i)
            model = self.validate(RuleModel, value, loc)
            ok = isinstance(model, RuleModel)
            removed: set[str] = set()
            if not isinstance(model, RuleModel):
                # Reported already; check what is left of the rule too, so that one pass of
                # `monitor check` lists every problem, not just the first of each rule.
                model, removed = salvage(RuleModel, value)
                if not isinstance(model, RuleModel):
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
                    known = ", ".join(cut(n) for n in sorted(declared_names)) or "none defined"
                    hint = suggest(channel, declared_names) or f" (channels: {known})"
                    self.problem((*loc, "channels", j), f'unknown channel "{cut(channel)}"{hint}')
                    ok = False
                elif channel not in defined:
                    ok = False  # the channel itself is invalid and reported already
            if not self.feed_names(model, loc):
                ok = False
            rule = RuleConfig(
                name=model.name,
                any=tuple(model.any),
                all=tuple(model.all),
                none=tuple(model.none),
                query=model.query if model.query and model.query.strip() else None,
                languages=unique(
                    settings.languages if model.languages is None else model.languages
                ),
                channels=None if model.channels is None else unique(model.channels),
                transliterate=model.transliterate,
                feeds=None if model.feeds is None else unique(model.feeds),
                exclude_feeds=unique(model.exclude_feeds),
                timing=timing(model, settings.timing),
            )
            if removed & MATCHING_KEYS:
                ok = False  # what is left cannot be judged without the key that failed
            else:
                compiled, problems = compile_checked(rule)
                for where, message in problems:
                    self.problem((*loc, *where), message)
                    ok = False
                if compiled is not None:
                    self.compiled[rule.name] = compiled
            if ok:
                out.append(rule)
        return tuple(out)

    def templates(
        self,
        entries: list[tuple[int, object]],
        channels: tuple[ChannelConfig, ...],
        rules: tuple[RuleConfig, ...],
    ) -> tuple[TemplateConfig, ...]:
        """`[[templates]]`: Jinja2 files for alerts of some rules or channels, compiled and
        rendered against a sample alert in every format now (`alerts.templates`), so a
        syntax error or an unknown variable is a problem with its file and line."""
        if not entries:
            return ()  # Jinja2 is imported only for a config that has templates
        from monitor.alerts.templates import TemplateProblem, check_template

        out: list[TemplateConfig] = []
        base = self.path.absolute().parent
        channel_names = {c.name for c in channels} | set(self.raw.get("channels") or {})
        rule_names = {r.name for r in rules}
        for i, value in entries:
            loc: Loc = ("templates", i)
            model = self.validate(TemplateModel, value, loc)
            if not isinstance(model, TemplateModel):
                continue
            ok = True
            if model.subject is None and model.body is None:
                self.problem(loc, "a template needs `subject` or `body` (a Jinja2 file)")
                ok = False
            sources: dict[str, tuple[str, str] | None] = {"subject": None, "body": None}
            for key in ("subject", "body"):
                name = getattr(model, key)
                if name is None:
                    continue
                file = base / name
                try:
                    sources[key] = (str(file), file.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                    self.problem((*loc, key), f"cannot read {file}: {reason}")
                    ok = False
            for key, names, known in (
                ("channels", model.channels, channel_names),
                ("rules", model.rules, rule_names),
            ):
                for j, name in enumerate(names):
                    if name not in known:
                        self.problem((*loc, key, j), f'unknown {key[:-1]} "{cut(name)}"')
                        ok = False
            template = TemplateConfig(
                name=model.name,
                subject=sources["subject"],
                body=sources["body"],
                channels=unique(model.channels),
                rules=unique(model.rules),
            )
            for problem in check_template(template):
                assert isinstance(problem, TemplateProblem)
                key = (
                    "subject"
                    if template.subject and problem.where.startswith(template.subject[0])
                    else "body"
                )
                self.problem((*loc, key), f"template error at {problem}")
                ok = False
            if ok:
                out.append(template)
        return tuple(out)

    def feed_names(self, model: RuleModel, loc: Loc) -> bool:
        """`feeds` and `exclude_feeds` name configured feeds."""
        if not model.feeds and not model.exclude_feeds:
            return True
        raw = self.raw.get("feeds")
        declared = {
            e["name"] for e in raw or [] if isinstance(e, dict) and isinstance(e.get("name"), str)
        }
        ok = True
        for key in ("feeds", "exclude_feeds"):
            for j, name in enumerate(getattr(model, key) or []):
                if name not in declared:
                    known = ", ".join(cut(n) for n in sorted(declared)) or "none defined"
                    hint = suggest(name, declared) or f" (feeds: {known})"
                    self.problem((*loc, key, j), f'unknown feed "{cut(name)}"{hint}')
                    ok = False
        return ok


def timing(model: MonitorModel | RuleModel, default: AlertTiming) -> AlertTiming:
    """A rule's (or [monitor]'s) digest, quiet hours and cap: its own keys, else `default`;
    "off" and 0 switch a default off."""
    digest = default.digest if model.digest is None else model.digest
    quiet = default.quiet_hours if model.quiet_hours is None else model.quiet_hours
    cap = default.max_per_hour if model.max_per_hour is None else model.max_per_hour
    return AlertTiming(
        digest=None if digest == "off" else digest,
        quiet_hours=None if quiet == "off" else quiet,
        max_per_hour=cap or None,
    )


def _related(loc: Loc, tainted: Loc) -> bool:
    """`loc` is at, inside or around (the entry holding) a key whose ${VAR} failed."""
    n = min(len(loc), len(tainted))
    return len(loc) >= 2 and loc[:n] == tainted[:n]
