"""The compiled matcher and the simple evaluator agree exactly (hypothesis).

Random rules (terms, phrases, prefixes, AND/OR/NOT/-, NEAR/n, title:/body:/tag:, any/all/none
lists, languages including none, transliteration, feed filters) and random German, English and
Russian texts built from a small vocabulary of inflected forms, so that stems, folding,
transliteration and prefixes really meet. `Matcher` (every rule on every item) is the oracle;
`CompiledRules` must return the same MatchResults: rules, terms, snippets and spans.

The profile is fixed (derandomised, a set number of examples) so CI runs the same cases in
~10-20 s.
"""

from __future__ import annotations

import pickle

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from monitor.rules.compile import compile_rules
from monitor.rules.match import Matcher, RuleQueryError
from monitor.types import RuleConfig

VOCAB = [
    "Truppen",
    "Truppe",
    "nordkoreanische",
    "nordkoreanischer",
    "Gespräche",
    "Gesprache",
    "Straße",
    "Strasse",
    "Grenze",
    "Grenzen",
    "Kursker",
    "Region",
    "Regierung",
    "der",
    "die",
    "das",
    "und",
    "Bericht",
    "Berichte",
    "troops",
    "troop",
    "talks",
    "talk",
    "running",
    "runs",
    "border",
    "borders",
    "Kursk",
    "region",
    "the",
    "and",
    "report",
    "reports",
    "government",
    "Zelenskij",
    "Курск",
    "Курской",
    "Курская",
    "войска",
    "войск",
    "переговоры",
    "переговоров",
    "граница",
    "границы",
    "и",
    "в",
    "Зеленский",
    "Зеленского",
    "доклад",
    "доклады",
    "регион",
]
NAMES = ["Kursk", "Курск", "Курской", "Kurs", "Zelenskij", "Зеленский", "Зеленского"]
FEEDS = ["alpha", "beta"]

words = st.one_of(st.sampled_from(VOCAB), st.sampled_from(NAMES))
prefixes = st.builds(lambda w, k: w[:k] + "*", words, st.integers(1, 5))
terms = st.one_of(words, words, prefixes)
phrases = st.lists(terms, min_size=2, max_size=3).map(lambda ws: '"' + " ".join(ws) + '"')
atoms = st.one_of(terms, terms, phrases)
near = st.builds(lambda a, n, b: f"{a} NEAR/{n} {b}", atoms, st.integers(1, 4), atoms)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, b: f"({a} AND {b})", children, children),
        st.builds(lambda a, b: f"({a} OR {b})", children, children),
        st.builds(lambda a, b: f"({a} {b})", children, children),
        st.builds(lambda a: f"NOT {a}", children),
        st.builds(lambda a: f"-{a}", children),
        st.builds(lambda f, a: f"{f}:({a})", st.sampled_from(["title", "body", "tag"]), children),
    )


queries = st.recursive(st.one_of(atoms, near), _combine, max_leaves=5)
entries = st.just([]) | st.lists(
    st.one_of(words, prefixes, phrases.map(lambda p: p.strip('"'))), max_size=3
)


@st.composite
def rules(draw: st.DrawFn, index: int) -> RuleConfig:
    query = draw(st.none() | queries)
    any_ = tuple(draw(entries))
    all_ = tuple(draw(st.just([]) | st.lists(words, max_size=1)))
    none = tuple(draw(st.just([]) | st.lists(words, max_size=1)))
    languages = tuple(draw(st.lists(st.sampled_from(["de", "en", "ru"]), unique=True)))
    feeds = draw(st.none() | st.lists(st.sampled_from(FEEDS), unique=True).map(tuple))
    exclude = tuple(draw(st.lists(st.sampled_from(FEEDS), max_size=1)))
    return RuleConfig(
        name=f"r{index}",
        any=any_,
        all=all_,
        none=none,
        query=query,
        languages=languages,
        transliterate=draw(st.booleans()),
        feeds=feeds,
        exclude_feeds=exclude,
    )


@st.composite
def rule_sets(draw: st.DrawFn) -> tuple[RuleConfig, ...]:
    count = draw(st.integers(1, 6))
    return tuple(draw(rules(i)) for i in range(count))


separators = st.sampled_from([" ", " ", " ", ", ", ". ", "-", " — ", "\n"])


@st.composite
def texts(draw: st.DrawFn, max_words: int) -> str:
    ws = draw(st.lists(words, max_size=max_words))
    out = ""
    for w in ws:
        out += w + draw(separators)
    return out


@settings(
    max_examples=500,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    rule_set=rule_sets(),
    title=texts(6),
    text=texts(30),
    tags=st.lists(texts(2), max_size=2),
    feed=st.none() | st.sampled_from(FEEDS),
)
def test_compiled_matcher_agrees_with_the_simple_evaluator(
    rule_set: tuple[RuleConfig, ...],
    title: str,
    text: str,
    tags: list[str],
    feed: str | None,
) -> None:
    try:
        oracle = Matcher(rule_set)
    except RuleQueryError:
        assume(False)
        return
    compiled = compile_rules(rule_set)
    expected = oracle.explain(title, text, tags=tags, feed=feed)
    got = compiled.explain(title, text, tags=tags, feed=feed)
    assert got == expected
    assert compiled.match(title, text, tags=tags, feed=feed) == oracle.match(
        title, text, tags=tags, feed=feed
    )


def test_the_generator_finds_matches() -> None:
    """The vocabulary makes rules match often enough for the equivalence test to mean much."""
    rule = RuleConfig("r", query='Курск NEAR/3 "войска"', languages=("ru",))
    compiled = compile_rules([rule])
    assert compiled.match("", "Курской войск и граница") != []
    assert compiled.stats.always == 0


def test_pickles_as_its_rules_and_generation() -> None:
    rule_set = (
        RuleConfig("a", any=("Kursk",), languages=("ru",), transliterate=True),
        RuleConfig("b", query="Grenz* AND NOT Bericht"),
    )
    compiled = compile_rules(rule_set, generation=7)
    copy = pickle.loads(pickle.dumps(compiled))
    assert copy.rules == rule_set and copy.generation == 7
    assert copy.match("", "Die Grenze bei Курской") == compiled.match("", "Die Grenze bei Курской")
    assert [m.rule for m in copy.match("", "Die Grenze bei Курской")] == ["a", "b"]
