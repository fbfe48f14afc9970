"""Warnings about rules that are valid but will flood the channels (`monitor check`).

A rule floods when every alternative that can make it match (its required keys, as the
compiled matcher indexes them: see `monitor.rules.compile`) is a prefix of one or two letters
(`a*`, `ab*`) or a common stop word of the rule's languages (`der`, `the`, `и`), of every
listed language when the rule has `languages = []`. `der Spiegel` or `der AND Kursk` do not
flood: `spiegel` and `kursk` are required. Pure: a RuleConfig in, messages out.
"""

from __future__ import annotations

from monitor.errors import QueryError
from monitor.rules.compile import SHORT_PREFIX, Key, required_keys
from monitor.rules.match import CompiledRule, compile_rule
from monitor.rules.stopwords import stop_words
from monitor.rules.text import stem_with
from monitor.types import RuleConfig


def _floods(key: Key, words: frozenset[str]) -> bool:
    kind, algorithm, text = key
    if kind == "p":
        return len(text) <= SHORT_PREFIX
    if kind == "s":
        return text in words or any(stem_with(w, algorithm) == text for w in words)
    return text in words


def flood_warnings(rule: RuleConfig, compiled: CompiledRule | None = None) -> list[str]:
    """Why `rule` would match nearly every item ([] when it would not, or does not compile).
    Pass `compiled` when the rule was compiled already."""
    if compiled is None:
        try:
            compiled = compile_rule(rule)
        except QueryError:
            return []  # reported as an error elsewhere
    keys = required_keys(compiled.root)
    if not keys:
        return []
    words = stop_words(rule.languages)
    if not all(_floods(k, words) for k in keys):
        return []
    shown = sorted({text + ("*" if kind == "p" else "") for kind, _, text in keys})
    return [
        "this rule will match nearly every item: every alternative is a common word or a "
        f"prefix of at most {SHORT_PREFIX} letters ({', '.join(shown[:5])}); "
        "add a rarer required word"
    ]
