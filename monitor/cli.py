"""The command line: parses arguments, runs one command, and turns errors into exit codes.

This is the one place that catches MonitorError: a user's mistake (UserError) exits 2 with its
message, any other MonitorError exits 1, and no traceback is shown for either.

Start-up: a command imports only what it uses. The heavy modules (the config package with
pydantic and the stemmers, the store with SQLAlchemy and Alembic, Apprise, aiohttp, the
daemon, asyncio) are imported inside the command that needs them; that is the pattern for a
CLI's commands, and `--help` or `check` pays for nothing else (tests/test_startup.py,
benchmarks/bench_startup.py). Keep module-level imports here to the standard library's light
modules and monitor's pure ones (errors, types, clock, logs).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TextIO

from monitor import __version__
from monitor.clock import utcnow
from monitor.errors import MonitorError, UsageError, UserError
from monitor.logs import setup_logging
from monitor.textutil import one_line
from monitor.types import Config, FeedConfig, FeedState, PollStatus

Command = Callable[[argparse.Namespace], int]


def _load(args: argparse.Namespace) -> Config:
    from monitor.config import insecure_permissions, load_config, resolve_config_path

    path = resolve_config_path(args.config, os.environ)
    config = load_config(path, os.environ)
    setup_logging(args.verbose, secrets=_secrets(config))
    warning = insecure_permissions(path)
    if warning:
        print(f"monitor: warning: {warning}", file=sys.stderr)
    return config


def _secrets(config: Config) -> list[str]:
    """What the logs never show: the channel URLs' secrets and the HTTP token (a token has no
    "://", so the redactor hides all of it)."""
    token = config.settings.http_token
    broker = [config.cluster.broker] if config.cluster else []
    return [*(u for c in config.channels for u in c.urls), *([token] if token else []), *broker]


# --- commands ------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from monitor.config import mask_url

    config = _load(args)
    print(
        f"{config.path}: OK: {len(config.feeds)} feeds, {len(config.rules)} rules, "
        f"{len(config.channels)} channels"
    )
    for channel in config.channels:
        shown = ", ".join(mask_url(u) for u in channel.urls)
        print(f"  channel {channel.name}: {shown}")
    for warning in config_warnings(config):
        print(f"monitor: warning: {config.path}: {warning}", file=sys.stderr)
    for warning in config.warnings:  # rules that will flood; already located in the file
        print(f"monitor: warning: {warning}", file=sys.stderr)
    return 0


def config_warnings(config: Config) -> list[str]:
    """What is valid but almost certainly not what the user wants (`check` still exits 0)."""
    warnings = []
    if not config.feeds:
        warnings.append("no [[feeds]]: nothing will be polled")
    elif not any(f.enabled for f in config.feeds):
        warnings.append("every feed has enabled = false: nothing will be polled")
    if not config.rules:
        warnings.append("no [[rules]]: items are stored, but nothing will ever match or alert")
    return warnings


def _selected_feeds(config: Config, names: Sequence[str]) -> list[FeedConfig]:
    """The feeds `poll --feed` names, in config order; an unknown or disabled one exits 2."""
    by_name = {f.name: f for f in config.feeds}
    for name in names:
        feed = by_name.get(name)
        if feed is None:
            known = ", ".join(by_name) or "none"
            raise UsageError(f"--feed: no feed {name!r} in {config.path} (feeds: {known})")
        if not feed.enabled:
            raise UsageError(f"--feed: feed {name!r} has enabled = false in {config.path}")
    return [f for f in config.feeds if f.name in names]


def cmd_poll(args: argparse.Namespace) -> int:
    import asyncio

    from monitor import pipeline
    from monitor.app import freeze_startup_heap, make_app
    from monitor.store.repo import Store

    config = _load(args)
    selected = _selected_feeds(config, args.feed) if args.feed else None
    catch_up: bool = args.catch_up
    store = Store.open(config.settings.database)
    try:
        app = make_app(config, store=store)

        async def one_pass() -> tuple[list[Any], Any]:
            async with app.fetcher() as fetcher:
                outcomes = await pipeline.poll_all(app, fetcher, selected, catch_up=catch_up)
            if catch_up:  # a quiet pass: nothing is sent, not even alerts pending from before
                return outcomes, None
            return outcomes, await pipeline.deliver_all(app, all_pending=True)

        orphaned = pipeline.orphaned_alerts(app)
        freeze_startup_heap()
        try:
            outcomes, delivery = asyncio.run(one_pass())
        finally:
            app.close()
        pending = sum(p for p, _ in store.outbox_counts().values()) if catch_up else 0
    finally:
        store.close()
    rows = [
        [
            o.feed,
            o.status,
            str(o.items),
            str(o.new_items),
            str(o.matches),
            str(o.alerts),
            o.error or "",
        ]
        for o in outcomes
    ]
    _table(["feed", "status", "items", "new", "matches", "queued", "problem"], rows, sys.stdout)
    failed = sum(1 for o in outcomes if o.status in (PollStatus.ERROR, PollStatus.GONE))
    queued = sum(o.alerts for o in outcomes)
    if delivery is None:
        alerts = (
            f"{queued} alerts queued; none sent (--catch-up), "
            f"{pending} pending for the next poll or run"
        )
    else:
        alerts = (
            f"{queued} alerts queued; "
            f"delivery attempts: {delivery.sent} delivered, {delivery.failed} failed"
            + (" (kept, will be retried)" if delivery.failed else "")
            + (
                f", {delivery.untried} not tried (their channel kept failing; still pending)"
                if delivery.untried
                else ""
            )
        )
    print(
        f"\n{len(outcomes)} feeds polled, {failed} failed; "
        f"{sum(o.new_items for o in outcomes)} new items, "
        f"{sum(o.matches for o in outcomes)} matches; {alerts}"
    )
    caught_up = [o for o in outcomes if o.status is PollStatus.CAUGHT_UP]
    if caught_up:
        print(
            f"  caught up: {sum(o.new_items for o in caught_up)} new items of "
            f"{', '.join(o.feed for o in caught_up)} stored as seen, their matches not alerted"
        )
    for error in delivery.errors if delivery is not None else ():
        print(f"  {error}")
    for name, count in orphaned.items():
        print(
            f"  {count} alert(s) wait for channel {name!r}, which is no longer in "
            f"{config.path}: they are kept and sent if it comes back"
        )
    return 0


# Every format carries the same fields (README): JSON's keys; CSV's columns keep the order of
# earlier versions, `snippet` and `alerted` added at the end; the table is fitted to the terminal.
CSV_COLUMNS = ("matched_at", "rule", "feed", "title", "link", "published", "terms", "snippet")


def cmd_matches(args: argparse.Namespace) -> int:
    from monitor.config import parse_duration
    from monitor.store.repo import Store

    config = _load(args)
    since = None
    if args.since is not None:
        try:
            since = utcnow() - parse_duration(args.since)
        except (ValueError, OverflowError) as exc:
            reason = "too long ago" if isinstance(exc, OverflowError) else exc
            raise UsageError(f"--since {args.since!r}: {reason}") from None
    store = Store.open(config.settings.database, for_reading=True)
    try:
        found = store.matches(rule=args.rule, since=since, limit=args.limit)
        known = any(r.name == args.rule for r in config.rules)
        # a rule removed from config.toml still has its stored matches: accept its name
        if args.rule is not None and not known and not store.matches(rule=args.rule, limit=1):
            names = ", ".join(r.name for r in config.rules) or "none"
            raise UsageError(
                f"no rule {args.rule!r} in {config.path} and no stored matches of it "
                f"(rules: {names})"
            )
    finally:
        store.close()
    records: list[dict[str, Any]] = [
        {
            "rule": m.rule,
            "title": m.title,
            "link": m.link,
            "feed": m.feed,
            "published": _iso(m.published),
            "matched_at": _iso(m.matched_at),
            "terms": list(m.terms),
            "snippet": m.snippet,
            "alerted": m.alerted,
            "also_reported_by": list(m.also_reported_by),
            "copy_of": m.copy_of,
            "source": m.source,
        }
        for m in found
    ]
    if args.format == "json":
        json.dump(records, sys.stdout, ensure_ascii=False, indent=2)
        print()
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow([*CSV_COLUMNS, "alerted", "also_reported_by", "copy_of", "source"])
        for record in records:
            cells = [_csv_cell(record[key]) for key in CSV_COLUMNS]
            alerted = "true" if record["alerted"] else "false"
            story = [_csv_cell(record["also_reported_by"]), _csv_cell(record["copy_of"])]
            writer.writerow([*cells, alerted, *story, record["source"]])
    else:
        rows = [
            [
                _when(m.matched_at)[:16],
                "yes" if m.alerted else "no",
                m.rule,
                m.feed,
                m.title,
                m.link or "",
                ", ".join(m.terms),
                _when(m.published)[:16],
                ", ".join(m.also_reported_by) or (f"copy of {m.copy_of}" if m.copy_of else ""),
                m.source,
                one_line(m.snippet),
            ]
            for m in found
        ]
        headers = [
            "matched (UTC)",
            "alerted",
            "rule",
            "feed",
            "title",
            "link",
            "terms",
            "published",
            "also reported by",
            "source",
            "snippet",
        ]
        width = shutil.get_terminal_size().columns
        _table(headers, rows, sys.stdout, width=width, shrink=_MATCH_SHRINK, drop=_MATCH_DROP)
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    """`monitor alerts [--pending|--failed]` lists the outbox; `monitor alerts retry ID|--all`
    requeues failed alerts."""
    from monitor.store.repo import Store
    from monitor.types import AlertState

    if args.action is None and (args.id or args.all):
        raise UsageError("an alert id or --all only goes with `retry`: monitor alerts retry ID")
    if args.action == "retry" and bool(args.id) == bool(args.all):
        raise UsageError("monitor alerts retry: give one alert id, or --all")
    config = _load(args)
    if args.action == "retry":
        store = Store.open(config.settings.database)
        try:
            if args.all:
                count = store.requeue(utcnow())
                print(f"{count} failed alert(s) requeued")
                return 0
            states = store.alert_states([args.id])
            if args.id not in states:
                raise UsageError(f"no alert {args.id!r} in the outbox (see `monitor alerts`)")
            if states[args.id] is not AlertState.FAILED:
                print(f"alert {args.id} is {states[args.id]}: nothing to requeue")
                return 0
            store.requeue(utcnow(), [args.id])
            print(f"alert {args.id} requeued: it is sent on the next delivery pass")
            return 0
        finally:
            store.close()
    wanted: set[AlertState] | None = None
    if args.pending:
        wanted = {AlertState.PENDING, AlertState.RETRYING}
    elif args.failed:
        wanted = {AlertState.FAILED}
    store = Store.open(config.settings.database, for_reading=True)
    try:
        found = store.alerts(wanted, limit=args.limit)
    finally:
        store.close()
    if args.format == "json":
        records = [
            {
                "alert_id": a.alert_id,
                "channel": a.channel,
                "state": str(a.state),
                "attempts": a.attempts,
                "created_at": _iso(a.created_at),
                "next_attempt_at": _iso(a.next_attempt_at),
                "delivered_at": _iso(a.delivered_at),
                "failed_at": _iso(a.failed_at),
                "last_error": a.last_error,
                "title": a.title,
            }
            for a in found
        ]
        json.dump(records, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 0
    headers = [
        "alert",
        "state",
        "channel",
        "attempts",
        "queued (UTC)",
        "next try",
        "error",
        "title",
    ]
    rows = [
        [
            a.alert_id,
            str(a.state),
            a.channel,
            str(a.attempts),
            _when(a.created_at)[:16],
            _when(a.next_attempt_at)[:16],
            one_line(a.last_error or ""),
            one_line(a.title),
        ]
        for a in found
    ]
    width = shutil.get_terminal_size().columns
    _table(headers, rows, sys.stdout, width=width, shrink=_ALERT_SHRINK, drop=_ALERT_DROP)
    return 0


_ALERT_SHRINK = {"error": 24, "title": 20, "channel": 10}
_ALERT_DROP = ("title", "next try")


# `matches` table: columns that may be cut (with their narrowest useful width), and those left
# out, in this order, when even that does not fit the terminal.
_MATCH_SHRINK = {
    "title": 24,
    "link": 20,
    "terms": 16,
    "snippet": 30,
    "rule": 12,
    "feed": 12,
    "also reported by": 16,
}
_MATCH_DROP = ("snippet", "published", "source", "also reported by")


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


# `monitor feeds`: the same fields in every format (README); the table shows them shortened.
FEED_FIELDS = (
    "name",
    "url",
    "state",
    "health",
    "last_success",
    "failing_since",
    "failing_for",
    "last_error",
    "failures",
    "next_poll",
    "items",
    "new_per_day",
)
PER_DAY_WINDOW = timedelta(days=7)  # `new_per_day`: items first seen over this many days


def cmd_feeds(args: argparse.Namespace) -> int:
    command = getattr(args, "feeds_command", None)
    if command == "import":
        return _feeds_import(args)
    if command == "export":
        return _feeds_export(args)
    from monitor.feeds.urls import mask_feed_url
    from monitor.store.repo import Store

    config = _load(args)
    now = utcnow()
    store = Store.open(config.settings.database, for_reading=True)
    try:
        if not store.read_only:
            store.sync_feeds(config.feeds)
        states = store.feed_states()
        recent = store.new_items_since(now - PER_DAY_WINDOW)
    finally:
        store.close()
    records: list[dict[str, Any]] = []
    for feed in config.feeds:
        s = states.get(feed.name) or FeedState.unpolled(feed.name, feed.url)
        failing = s.consecutive_failures > 0 or s.gone
        since = (s.failing_since or s.last_error_at) if failing else None
        days = PER_DAY_WINDOW.total_seconds() / 86400
        records.append(
            {
                "name": feed.name,
                "url": mask_feed_url(s.url),
                "state": _feed_status(feed, s, now),
                "health": str(s.health),
                "last_success": _iso(s.last_success_at),
                "failing_since": _iso(since),
                "failing_for": _ago(now - since) if since else None,
                "last_error": (s.last_error if failing else s.problem) or None,
                "failures": s.consecutive_failures,
                "next_poll": _iso(s.next_poll_at),
                "items": s.items_seen,
                "new_per_day": round(recent.get(feed.name, 0) / days, 1),
            }
        )
    if args.failing:
        records = [r for r in records if r["failing_since"] is not None]
    if args.format == "json":
        json.dump(records, sys.stdout, ensure_ascii=False, indent=2)
        print()
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(FEED_FIELDS)
        for record in records:
            writer.writerow([_csv_cell(record[key]) for key in FEED_FIELDS])
    else:
        rows = [
            [
                r["name"],
                r["url"],
                r["state"] + ("" if r["health"] == "ok" else f" ({r['health']})"),
                (r["last_success"] or "-").replace("T", " ")[:16],
                r["failing_for"] or "-",
                _cut(one_line(r["last_error"] or ""), 50),
                str(r["failures"]),
                (r["next_poll"] or "-").replace("T", " ")[:16],
                f"{r['new_per_day']:g}",
                str(r["items"]),
            ]
            for r in records
        ]
        headers = [
            "feed",
            "url",
            "state",
            "last success",
            "failing for",
            "last error",
            "failures",
            "next poll",
            "new/day",
            "items",
        ]
        # fitted to a terminal; piped, every column whole
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        _table(headers, rows, sys.stdout, width=width, shrink=_FEED_SHRINK, drop=("url",))
    return 1 if args.failing and records else 0


_FEED_SHRINK = {"url": 24, "last error": 20, "feed": 12}


def _ago(delta: timedelta) -> str:
    """A duration as people read it: `3d 4h`, `5h 20m`, `12m`."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins}m" if hours else f"{mins}m"


def _feeds_import(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from monitor.config import load_config
    from monitor.feeds.opml import import_opml

    config = _load(args)
    try:
        opml = Path(args.file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    path = config.path
    text = path.read_bytes().decode("utf-8-sig")
    new_text, added, skipped = import_opml(opml, text)
    for outline in skipped:
        print(f"skipped: {outline.label}: {outline.reason}")
    if added:
        # written beside config.toml, checked as a whole config, then moved over it
        fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                out.write(new_text)
            os.chmod(tmp, path.stat().st_mode & 0o7777)
            load_config(Path(tmp), os.environ)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    for feed in added:
        disabled = "" if feed.enabled else " (enabled = false)"
        print(f"added: {feed.name}: {feed.url}{disabled}")
    print(f"{path}: {len(added)} feeds added, {len(skipped)} skipped")
    return 0


def _feeds_export(args: argparse.Namespace) -> int:
    from monitor.feeds.opml import export_opml

    config = _load(args)
    sys.stdout.buffer.write(export_opml(config.feeds, now=utcnow()))
    sys.stdout.flush()
    return 0


def _feed_status(feed: FeedConfig, state: FeedState, now: datetime) -> str:
    if state.gone:
        return "gone (410)"
    if not feed.enabled:
        return "disabled"
    if state.retry_until and state.retry_until > now:
        return "waiting (Retry-After)"
    if state.consecutive_failures:
        return "failing"
    if state.problem:
        return "degraded"  # read, but not well-formed
    return "ok" if state.last_success_at else "new"


def cmd_notify_test(args: argparse.Namespace) -> int:
    from monitor.alerts.deliver import send
    from monitor.types import Message

    config = _load(args)
    channel = config.channel(args.channel)
    if channel is None:
        names = ", ".join(c.name for c in config.channels) or "none"
        raise UsageError(f"no channel {args.channel!r} in {config.path} (channels: {names})")
    message = Message(
        title="[news monitor] test alert",
        body=f"This is a test alert from news monitor for channel {channel.name}, "
        f"sent at {_iso(utcnow())}. If you read this, the channel works.",
    )
    outcome = send(channel, message)
    if outcome.ok:
        print(f"channel {channel.name}: test alert sent")
        return 0
    print(f"channel {channel.name}: test alert NOT sent: {outcome.error}", file=sys.stderr)
    return 1


def cmd_test_rule(args: argparse.Namespace) -> int:
    from monitor.testrule import run_test_rule

    config = _load(args)
    return run_test_rule(config, args)


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the monitor is healthy, 1 when not (for container health checks): asks the
    running daemon's /healthz when [monitor] http is set, else the database. A config.toml
    that does not load is unhealthy too (exit 1): the daemon could not restart with it."""
    from monitor.errors import ConfigError

    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"unhealthy\n  config: {exc}")
        return 1
    if config.settings.http is not None:
        healthy, lines = _ask_healthz(config.settings.http, config.settings.http_token)
        summary = "healthy: " + ", ".join(lines)
    else:  # the daemon's heartbeat in the database
        from monitor.store.repo import Store

        store = Store.open(config.settings.database, for_reading=True)
        try:
            lines, summary = health_problems(config, store, utcnow())
        finally:
            store.close()
        healthy = not lines
    if healthy:
        print(summary)
        return 0
    print("unhealthy")
    for line in lines:
        print(f"  {line}")
    return 1


def _ask_healthz(address: str, token: str | None) -> tuple[bool, list[str]]:
    import urllib.error
    import urllib.request

    from monitor.config.schema import split_address

    host, port = split_address(address)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
            return True, [f"{k}: {v}" for k, v in body.items() if k not in ("status", "reasons")]
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            return False, [f"{url} answered {exc.code}"]
        body = json.loads(exc.read())
        return False, [str(r) for r in body.get("reasons", [])]
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, [f"no answer from {url}: {reason}"]


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.config import load_config

    config = _load(args)
    role = args.role or ("scheduler" if config.cluster else "single")
    if role == "scheduler" and config.cluster is None:
        raise UsageError(
            f"{config.path}: --role scheduler needs a [cluster] table with a broker "
            '(e.g. [cluster] broker = "redis://127.0.0.1:6379/0")'
        )
    if role == "single" and config.cluster is not None:
        raise UsageError(
            f"{config.path}: [cluster] is set: this config runs as a cluster "
            "(`monitor run --role scheduler` and `monitor worker`); remove [cluster] to run "
            "a single process"
        )
    setup_logging(args.verbose, secrets=_secrets(config), daemon=True)
    reload = lambda: load_config(config.path, os.environ)  # noqa: E731
    if role == "scheduler":
        from monitor.cluster.scheduler import run_scheduler

        return run_scheduler(config, reload)
    from monitor.daemon import run_daemon

    return run_daemon(config, reload)


def cmd_worker(args: argparse.Namespace) -> int:
    config = _load(args)
    if config.cluster is None:
        raise UsageError(
            f"{config.path}: `monitor worker` needs a [cluster] table with a broker "
            '(e.g. [cluster] broker = "redis://127.0.0.1:6379/0")'
        )
    setup_logging(args.verbose, secrets=_secrets(config), daemon=True)
    from monitor.cluster.worker import run_worker

    return run_worker(config, args.concurrency)


HEALTH_TICK = 60.0  # seconds: an older heartbeat means the scheduler no longer ticks
HEALTH_LATE = 600.0  # seconds a due feed may wait before the daemon counts as stuck


def health_problems(config: Config, store: Any, now: datetime) -> tuple[list[str], str]:
    """The heartbeat is fresh (the scheduler ticks and reached the database, which answers
    now), and no enabled feed has waited long past its due time (polls are finished)."""
    from datetime import timedelta

    beat = store.heartbeat()
    if beat is None:
        return ["no `monitor run` has ever written a heartbeat to this database"], ""
    problems = []
    age = (now - beat.ticked_at).total_seconds()
    if age > HEALTH_TICK:
        problems.append(f"last scheduler tick {age:.0f} s ago (pid {beat.pid} on {beat.host})")
    late = now - timedelta(seconds=HEALTH_LATE)
    if beat.started_at < late:
        states = store.feed_states()
        for feed in config.feeds:
            s = states.get(feed.name)
            if not feed.enabled or s is None or s.gone or s.next_poll_at is None:
                continue
            if s.next_poll_at < late and not (s.retry_until and s.retry_until > now):
                problems.append(f"feed {feed.name} due since {_when(s.next_poll_at)} UTC")
                break
    last = _when(beat.pass_at) + " UTC" if beat.pass_at else "none yet"
    summary = f"healthy: last tick {age:.0f} s ago, last poll finished {last}"
    return problems, summary


def cmd_db(args: argparse.Namespace) -> int:
    """`db upgrade`: migrate to the newest schema; `db current`: show the schema revision."""
    from monitor.store.repo import Store, schema_revisions

    config = _load(args)
    url = config.settings.database
    if args.action == "upgrade":
        Store.open(url).close()  # opening migrates (under a lock on PostgreSQL)
    current, head = schema_revisions(url)
    if current == head:
        print(f"database schema: {current} (newest)")
    else:
        print(f"database schema: {current or 'empty'}; newest is {head}: run `monitor db upgrade`")
    return 0


# --- output helpers ------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    out: TextIO,
    *,
    width: int | None = None,
    shrink: Mapping[str, int] | None = None,
    drop: Sequence[str] = (),
) -> None:
    """Rows under headers, columns padded; with `width`, fitted to it (see `fit_columns`)."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    keep = list(range(len(headers)))
    if width is not None:
        keep, widths = fit_columns(headers, widths, width, shrink or {}, drop)
    for cells in (headers, *rows):
        line = "  ".join(_cut(cells[i], w).ljust(w) for i, w in zip(keep, widths, strict=True))
        line = line.rstrip()
        out.write((line if width is None else _cut(line, width)) + "\n")


def fit_columns(
    headers: Sequence[str],
    widths: Sequence[int],
    total: int,
    shrink: Mapping[str, int],
    drop: Sequence[str],
) -> tuple[list[int], list[int]]:
    """Which columns to show, and how wide, so that a row (columns two spaces apart) fits
    `total` characters. The widest cuttable column (`shrink`: header -> narrowest useful
    width) gives up a character at a time; when all are at that width, the next `drop` column
    is left out; when none is left to drop, cuttable columns go down to their header's width.
    Pure: returns (indices of the columns kept, their widths)."""
    keep = list(range(len(headers)))
    dropping = [name for name in drop if name in headers]
    while True:
        last_resort = not dropping
        current = [widths[i] for i in keep]
        floors = [
            widths[i]
            if headers[i] not in shrink
            else min(widths[i], len(headers[i]) if last_resort else shrink[headers[i]])
            for i in keep
        ]
        excess = sum(current) + 2 * (len(keep) - 1) - total
        while excess > 0:
            cuttable = [j for j in range(len(keep)) if current[j] > floors[j]]
            if not cuttable:
                break
            widest = max(cuttable, key=lambda j: current[j])
            current[widest] -= 1
            excess -= 1
        if excess <= 0 or last_resort:
            return keep, current
        keep.remove(headers.index(dropping.pop(0)))


# --- argument parsing ----------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="config file (default: $MONITOR_CONFIG, then ./config.toml)",
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output"
    )
    parser = argparse.ArgumentParser(
        prog="monitor",
        description="Watch RSS/Atom feeds for what you care about and send alerts.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = add("run", cmd_run, "run the daemon: poll on schedule, match, store, alert")
    p.add_argument(
        "--role",
        choices=["single", "scheduler"],
        help="single: one process does everything (the default without [cluster]); "
        "scheduler: the cluster's scheduler, active or standby (the default with [cluster])",
    )
    p = add(
        "worker",
        cmd_worker,
        "cluster mode ([cluster]): a Celery worker that polls the feeds the scheduler sends",
    )
    p.add_argument(
        "--concurrency",
        type=_positive,
        metavar="N",
        help="polls at once (default: [monitor] concurrency)",
    )
    p = add("poll", cmd_poll, "one pass: fetch every feed once, match, store, deliver, summarise")
    p.add_argument(
        "--feed",
        metavar="NAME",
        action="append",
        help="poll only this feed (may be repeated)",
    )
    p.add_argument(
        "--catch-up",
        action="store_true",
        help="store and match, mark items as seen, send nothing (e.g. for a feed just added)",
    )
    add("check", cmd_check, "validate config.toml without network access")
    add(
        "health",
        cmd_health,
        "exit 0 if the daemon is healthy, 1 if not (asks /healthz when [monitor] http is set, "
        "else the database)",
    )
    p = add("matches", cmd_matches, "list stored matches, newest first")
    p.add_argument("--rule", metavar="R", help="only this rule's matches")
    p.add_argument("--since", metavar="DURATION", help="only matches this recent, e.g. 24h")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--limit", type=_positive, default=1000, help="at most this many (default 1000)")
    p = add("test-rule", cmd_test_rule, "show whether and where a rule matches a text")
    target = p.add_mutually_exclusive_group()
    target.add_argument("name", nargs="?", metavar="NAME", help="a rule from config.toml")
    target.add_argument("--query", metavar="Q", help="a query to try instead of a named rule")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--text", metavar="T", help="the text to test")
    source.add_argument("--file", metavar="F", help="read the text from a file")
    source.add_argument("--history", action="store_true", help="run over stored items")
    p.add_argument("--languages", metavar="L", help="with --query: languages, e.g. de,en,ru")
    p.add_argument(
        "--since", metavar="DURATION", help="with --history: only items first seen this recently"
    )
    p = add("feeds", cmd_feeds, "every feed with its polling state and health")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument(
        "--failing", action="store_true", help="only failing feeds; exit 1 when there are any"
    )
    feeds_sub = p.add_subparsers(dest="feeds_command", metavar="SUBCOMMAND")
    q = feeds_sub.add_parser(
        "import",
        parents=[common],
        help="append the feeds of an OPML file to config.toml",
        description="append the feeds of an OPML file to config.toml (comments kept; "
        "URLs already there are skipped)",
    )
    q.add_argument("file", metavar="FILE.opml")
    q.set_defaults(format="table", failing=False)
    q = feeds_sub.add_parser(
        "export",
        parents=[common],
        help="write the feeds as OPML 2.0 to stdout",
        description="write the feeds of config.toml as OPML 2.0 to stdout",
    )
    q.set_defaults(format="table", failing=False)
    p = add(
        "alerts",
        cmd_alerts,
        "list undelivered alerts with their state and last error; `retry` requeues failed ones",
    )
    p.add_argument("action", nargs="?", choices=["retry"], help="requeue failed alerts")
    p.add_argument("id", nargs="?", metavar="ID", help="with retry: the alert id to requeue")
    p.add_argument("--all", action="store_true", help="with retry: every failed alert")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--pending", action="store_true", help="only pending and retrying")
    state.add_argument("--failed", action="store_true", help="only failed (given up)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--limit", type=_positive, default=1000, help="at most this many (default 1000)")
    p = add("db", cmd_db, "database schema: upgrade to the newest, or show the current one")
    p.add_argument("action", choices=["upgrade", "current"])
    p = add("notify-test", cmd_notify_test, "send a test alert through one channel")
    p.add_argument("channel", metavar="CHANNEL")
    return parser


def _is_sqlalchemy_error(exc: BaseException) -> bool:
    """`isinstance(exc, SQLAlchemyError)` without importing SQLAlchemy at start-up: when one of
    its errors was raised, its module is loaded already."""
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.SQLAlchemyError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.config = getattr(args, "config", None)
    args.verbose = getattr(args, "verbose", 0)
    setup_logging(args.verbose)
    func: Command = args.func
    try:
        return func(args)
    except UserError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    except MonitorError as exc:
        print(f"monitor: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if not _is_sqlalchemy_error(exc):
            raise
        # parameters are hidden by the engine: no secret in it
        reason = one_line(str(getattr(exc, "orig", None) or exc))[:300]
        print(f"monitor: database error: {reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
