"""`monitor test-rule`: whether and where a rule matches a text, or every stored item.

The text under test is read like an item: its first line is the title, the rest the body
(a one-line `--text` is a title alone; words are searched in both fields unless the query
says `title:`). Matched words are shown between `[[` and `]]`. On no match, every part of the
rule that is false is named (`monitor.rules.why`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    if args.history:
        return _history(config, rule)
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


def _history(config: Config, rule: CompiledRule) -> int:
    from monitor.store.repo import Store

    store = Store.open(config.settings.database, for_reading=True)
    try:
        items = store.items()
    finally:
        store.close()
    hits = 0
    for item in items:
        result = rule.explain(item.title, item.text)
        if result is None:
            continue
        hits += 1
        when = (item.published or item.first_seen).strftime("%Y-%m-%d %H:%M")
        print(f"{when}  {item.feed}  {item.link or ''}")
        _show(result, item.title, item.text)
    print(f"\n{_label(rule)}: {hits} of {len(items)} stored items match")
    return 0
