"""Rule matching throughput: `monitor.rules.match.Matcher` against naive regexes, same run.

    .venv/bin/python benchmarks/bench_match.py [--rules 10,100,1000] [--items 2000]
                                               [--budget 4] [--seed 1]

Items: generated news-like articles (German, English, Russian in rotation, 400-2,500
characters of plain text each, see benchmarks/__init__.py). Rules: the ten hand-written rules
of bench_poll, then generated ones (any/all/none lists, phrases, OR, NEAR, title:, prefixes,
NOT; languages de/en/ru), most of whose terms never occur, so most rules miss most items.

Baseline: one compiled `re` per rule term (case-insensitive, `\\b` word boundaries, words of
a phrase joined by `\\W+`, no folding and no stemming), every rule evaluated on every item with
short-circuit AND/OR: what a first implementation would do.

Each measurement runs over the items in order until they are exhausted or `--budget` seconds
have passed (at least 20 items), after one untimed warm-up pass over 200 *other* items (a
different seed: the stem and fold caches are warm in a running daemon too, but no timed item
has been seen before). Prints items/s, microseconds per item, the ratio Matcher/baseline,
matches per item for both (they differ: the baseline does not stem), the cost of tokenising
alone, and how one NEAR rule's time grows with the number of occurrences of its words in one
item (`--near` prints only that, up to 8,000 repeats: the hostile item of
tests/test_rules_match.py). There is no target; the figures go in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import Article, articles, generated_rules
from monitor.rules import query as q
from monitor.rules.match import Matcher
from monitor.rules.text import tokenize
from monitor.types import RuleConfig

MIN_ITEMS = 20
WARMUP_ITEMS = 200

# --- the naive baseline --------------------------------------------------------------------

Fields = tuple[str, ...]
Test = Callable[[Fields], bool]


def _word_pattern(word: q.Word) -> str:
    # Rule words are case-folded ("fußball" -> "fussball"); let "ss" match "ß" again.
    text = re.escape(word.text).replace("ss", "(?:ss|ß)")
    return text + r"\w*" if word.prefix else text


def _phrase_pattern(phrase: q.Phrase) -> str:
    return r"\W+".join(_word_pattern(w) for w in phrase.words)


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE)


def _search(regex: re.Pattern[str]) -> Test:
    return lambda fields: any(regex.search(f) for f in fields)


def _node(node: q.Node) -> Test:
    match node:
        case q.Phrase():
            return _search(_compile(_phrase_pattern(node)))
        case q.Not(operand):
            inner = _node(operand)
            return lambda fields: not inner(fields)
        case q.And(operands):
            parts = [_node(o) for o in operands]
            return lambda fields: all(p(fields) for p in parts)
        case q.Or(operands):
            parts = [_node(o) for o in operands]
            return lambda fields: any(p(fields) for p in parts)
        case q.Near(left, right, distance):
            a, b = _phrase_pattern(left), _phrase_pattern(right)
            gap = rf"\W+(?:\w+\W+){{0,{distance - 1}}}"
            return _search(_compile(f"{a}{gap}{b}|{b}{gap}{a}"))
        case q.Title(operand):
            inner = _node(operand)
            return lambda fields: inner(fields[:1])
    raise TypeError(node)


class NaiveRule:
    """One rule as regexes: one compiled pattern per term, evaluated term by term."""

    def __init__(self, rule: RuleConfig) -> None:
        self.name = rule.name
        self.any = [_node(q.parse_entry(e)) for e in rule.any]
        self.all = [_node(q.parse_entry(e)) for e in rule.all]
        self.none = [_node(q.parse_entry(e)) for e in rule.none]
        self.query = _node(q.parse_query(rule.query)) if rule.query else None

    def matches(self, fields: Fields) -> bool:
        if self.any and not any(t(fields) for t in self.any):
            return False
        if not all(t(fields) for t in self.all):
            return False
        if self.query is not None and not self.query(fields):
            return False
        return not any(t(fields) for t in self.none)


class NaiveMatcher:
    def __init__(self, rules: Sequence[RuleConfig]) -> None:
        self.rules = [NaiveRule(r) for r in rules]

    def match(self, title: str, text: str) -> list[str]:
        fields = (title, text)
        return [r.name for r in self.rules if r.matches(fields)]


# --- measuring -----------------------------------------------------------------------------


def run(
    match: Callable[[str, str], Sequence[object]], items: Sequence[Article], budget: float
) -> tuple[int, float, list[int]]:
    """Items processed, seconds, and the number of matches of each processed item."""
    counts: list[int] = []
    start = time.perf_counter()
    elapsed = 0.0
    for item in items:
        counts.append(len(match(item.title, item.text)))
        elapsed = time.perf_counter() - start
        if len(counts) >= MIN_ITEMS and elapsed > budget:
            break
    return len(counts), elapsed, counts


def tokenize_cost(items: Sequence[Article], warmup: Sequence[Article]) -> dict[str, float]:
    """Microseconds per item to tokenise title and text, per language and overall."""
    for item in warmup:
        tokenize(item.title)
        tokenize(item.text)
    by_language: dict[str, list[float]] = {}
    for item in items:
        start = time.perf_counter()
        tokenize(item.title)
        tokenize(item.text)
        by_language.setdefault(item.language, []).append(time.perf_counter() - start)
    result = {lang: 1e6 * sum(v) / len(v) for lang, v in sorted(by_language.items())}
    every = [t for v in by_language.values() for t in v]
    result["all"] = 1e6 * sum(every) / len(every)
    return result


NEAR_WORDS = "Kursk Wald Feld Wiese Truppen Haus Dorf Stadt Land"  # as in test_rules_match


def near_scaling(repeats: Sequence[int] = (500, 1000, 2000, 4000, 8000)) -> None:
    """One NEAR rule on an item repeating both of its words: time per item as it grows."""
    matcher = Matcher([RuleConfig("near", query="Kursk NEAR/4 Truppen", languages=("de",))])
    matcher.match("Lage", NEAR_WORDS)  # warm: the stems of these words
    print(f"\none NEAR rule (Kursk NEAR/4 Truppen), item text '{NEAR_WORDS} ' x n:")
    previous = None
    for n in repeats:
        text = " ".join([NEAR_WORDS] * n)
        start = time.perf_counter()
        found = matcher.match("", text)
        seconds = time.perf_counter() - start
        assert [m.rule for m in found] == ["near"]
        growth = f"  ({seconds / previous:.1f}x the previous)" if previous else ""
        print(f"  n={n:>5} ({len(text):>6} characters): {1000 * seconds:8.0f} ms{growth}")
        previous = seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", default="10,100,1000", help="comma-separated rule counts")
    parser.add_argument("--items", type=int, default=2000, help="generated items (default 2000)")
    parser.add_argument("--budget", type=float, default=4.0, help="seconds per measurement")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--near", action="store_true", help="only the NEAR scaling")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.rules.split(",")]
    if args.near:
        print(
            f"bench_match --near  python {platform.python_version()}  {platform.machine()}"
            f"  load average {os.getloadavg()[0]:.2f}"
        )
        near_scaling()
        return 0

    items = articles(args.items, seed=args.seed)
    warmup = articles(WARMUP_ITEMS, seed=args.seed + 1_000_003)  # never timed
    chars = sum(len(i.title) + len(i.text) for i in items) / len(items)
    print(
        f"bench_match  python {platform.python_version()}  {platform.machine()}"
        f"  load average {os.getloadavg()[0]:.2f}"
    )
    print(f"items: {len(items)} (de/en/ru in rotation), {chars:.0f} characters on average")

    tok = tokenize_cost(items, warmup)
    per_lang = ", ".join(f"{k} {v:.0f}" for k, v in tok.items() if k != "all")
    print(f"tokenise alone (title + text): {tok['all']:.0f} us/item ({per_lang})")
    analysed = Matcher([])
    for item in warmup:
        analysed.match(item.title, item.text)
    n, seconds, _ = run(analysed.match, items, args.budget)
    print(f"Matcher with 0 rules (tokenise + index only): {1e6 * seconds / n:.0f} us/item\n")

    header = (
        f"{'rules':>6} {'compile s':>9} | {'Matcher it/s':>12} {'us/item':>8} {'n':>5}"
        f" | {'regex it/s':>10} {'us/item':>8} {'n':>5} | {'ratio':>6}"
        f" | {'matches/item M':>14} {'re':>6}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for count in counts:
        rules = generated_rules(count)
        start = time.perf_counter()
        matcher = Matcher(rules)
        compile_s = time.perf_counter() - start
        naive = NaiveMatcher(rules)
        for item in warmup:  # other items than the timed ones
            matcher.match(item.title, item.text)
            naive.match(item.title, item.text)
        m_n, m_s, m_counts = run(matcher.match, items, args.budget)
        r_n, r_s, r_counts = run(naive.match, items, args.budget)
        m_rate, r_rate = m_n / m_s, r_n / r_s
        common = min(m_n, r_n)
        print(
            f"{count:>6} {compile_s:>9.2f} | {m_rate:>12,.0f} {1e6 / m_rate:>8,.0f} {m_n:>5}"
            f" | {r_rate:>10,.0f} {1e6 / r_rate:>8,.0f} {r_n:>5} | {m_rate / r_rate:>5.1f}x"
            f" | {sum(m_counts[:common]) / common:>14.2f} {sum(r_counts[:common]) / common:>6.2f}"
        )
        rows.append((count, 1e6 / m_rate))
    near_scaling()
    if len(rows) >= 2:
        (c1, us1), (c2, us2) = rows[-2], rows[-1]
        per_rule = (us2 - us1) / (c2 - c1)
        fixed = us1 - per_rule * c1
        at_10k = fixed + per_rule * 10_000
        print(
            f"\nMatcher cost grows linearly: ~{per_rule:.1f} us per rule per item"
            f" (+{fixed:.0f} us fixed); extrapolated to 10,000 rules: {at_10k / 1000:.0f} ms/item"
            f" = {1e6 / at_10k:,.0f} items/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
