"""`monitor test-rule`: whether and where a rule matches a text, or every stored item.

The text under test is read like an item: its first line is the title, the rest the body
(a one-line `--text` is a title alone; words are searched in both fields unless the query
says `title:`). Matched words are shown between `[[` and `]]`. On no match, every part of the
rule that is false is named (`monitor.rules.why`).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from monitor.clock import utcnow
from monitor.config import parse_duration
from monitor.errors import QueryError, UsageError
from monitor.rules.match import CompiledRule, MatchResult, compile_rule, highlight
from monitor.rules.text import language_code_for
from monitor.rules.why import why_not
from monitor.types import Config, RuleConfig

MAX_SHOWN = 2000  # characters of body shown highlighted; longer texts show the snippet


def _rule(config: Config, args: argparse.Namespace) -> CompiledRule:
    if args.query is not None:
        languages = config.settings.languages
        if args.languages:
            languages = tuple(_language(x) for x in args.languages.split(",") if x.strip())
        rule = RuleConfig(name="--query", query=args.query, languages=languages)
        try:
            return compile_rule(rule)
        except QueryError as exc:
            raise UsageError(f"--query: column {exc.column}: {exc.message}") from None
    if args.name is None:
        raise UsageError("test-rule: give a rule NAME from config.toml or --query Q")
    found = next((r for r in config.rules if r.name == args.name), None)
    if found is None:
        names = ", ".join(r.name for r in config.rules) or "none"
        raise UsageError(f"no rule {args.name!r} in {config.path} (rules: {names})")
    return compile_rule(found)


def _since(args: argparse.Namespace) -> datetime | None:
    """`--since DURATION` as a time (only with --history)."""
    text = getattr(args, "since", None)
    if text is None:
        return None
    if not args.history:
        raise UsageError("--since works with --history only")
    try:
        return utcnow() - parse_duration(text)
    except (ValueError, OverflowError) as exc:
        reason = "too long ago" if isinstance(exc, OverflowError) else exc
        raise UsageError(f"--since {text!r}: {reason}") from None


def _language(name: str) -> str:
    code = language_code_for(name)
    if code is None or code != name.strip():
        hint = f': use "{code}"' if code else ": expected two-letter codes such as de,en,ru"
        raise UsageError(f"--languages: {name.strip()!r} is not a language code{hint}")
    return code


def _text(args: argparse.Namespace) -> str:
    if args.text is not None:
        return str(args.text)
    if args.file is not None:
        try:
            return Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--file {args.file}: cannot read: {exc}") from None
    return sys.stdin.read()


def _show(result: MatchResult, title: str, body: str) -> None:
    print(f"  terms: {', '.join(result.terms)}")
    if title:
        print(f"  title: {highlight(title, result.title_spans)}")
    if body and result.text_spans:
        shown = highlight(body, result.text_spans) if len(body) <= MAX_SHOWN else result.snippet
        print(f"  text:  {' '.join(shown.split())}")


def _label(rule: CompiledRule) -> str:
    """`rule NAME`, or `query Q` for --query."""
    if rule.name == "--query" and rule.config.query is not None:
        return f"query {rule.config.query}"
    return f"rule {rule.name}"


def run_test_rule(config: Config, args: argparse.Namespace) -> int:
    rule = _rule(config, args)
    since = _since(args)
    if args.history:
        return _history(config, rule, since)
    title, _, body = _text(args).strip().partition("\n")
    result = rule.explain(title, body)
    if result is None:
        print(f"NO MATCH: {_label(rule)}")
        for failure in why_not(rule.config, title, body):
            print(f"  {failure}")
        return 0
    print(f"MATCH: {_label(rule)}")
    _show(result, title, body)
    return 0


def _history(config: Config, rule: CompiledRule, since: datetime | None) -> int:
    from monitor.store.repo import Store

    store = Store.open(config.settings.database, for_reading=True)
    try:
        items = store.items(since=since)
    finally:
        store.close()
    hits: list[tuple[str, datetime]] = []
    for item in items:
        if not rule.applies_to(item.feed):
            continue
        # a full-text feed's item is matched on its feed text and its article, as when polled
        text = f"{item.text}\n\n{item.article}" if item.article else item.text
        result = rule.explain(item.title, text, url=item.link)
        if result is None:
            continue
        when = item.published or item.first_seen
        hits.append((item.feed, when))
        print(f"{when:%Y-%m-%d %H:%M}  {item.feed}  {item.link or ''}")
        _show(result, item.title, text)
    scope = f" first seen since {since:%Y-%m-%d %H:%M} UTC" if since else ""
    print(f"\n{_label(rule)}: {len(hits)} of {len(items)} stored items{scope} match")
    if hits:
        per_feed, per_day = history_counts(hits)
        print("\nper feed:")
        for feed, count in per_feed:
            print(f"  {count:>6}  {feed}")
        print("per day (UTC, by the item's date):")
        for day, count in per_day:
            print(f"  {count:>6}  {day}")
    return 0


def history_counts(
    hits: Sequence[tuple[str, datetime]],
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """How many matches per feed (most first, then by name) and per day (in date order)."""
    per_feed = Counter(feed for feed, _ in hits)
    per_day = Counter(when.astimezone(UTC).strftime("%Y-%m-%d") for _, when in hits)
    return (
        sorted(per_feed.items(), key=lambda fc: (-fc[1], fc[0])),
        sorted(per_day.items()),
    )
