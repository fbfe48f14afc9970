"""The compiled matcher's index, transliteration, the new query fields and feed filters."""

from __future__ import annotations

import pytest

from monitor.rules.compile import compile_rules, required_keys
from monitor.rules.lint import flood_warnings
from monitor.rules.match import Matcher, _And, compile_rule
from monitor.types import Item, RuleConfig


def names(rules: list[RuleConfig], title: str, text: str, **kw: object) -> list[str]:
    compiled = [m.rule for m in compile_rules(rules).match(title, text, **kw)]  # type: ignore[arg-type]
    simple = [m.rule for m in Matcher(rules).match(title, text, **kw)]  # type: ignore[arg-type]
    assert compiled == simple
    return compiled


def test_rules_that_cannot_be_pinned_are_always_candidates_and_counted() -> None:
    rules = [
        RuleConfig("pinned", query="Kursk AND NOT Fußball"),
        RuleConfig("or-not", any=("x",), query="(Kursk OR NOT Fußball)"),
        RuleConfig("neg-or", query="Grenze AND (Kursk OR -Fußball)"),
    ]
    compiled = compile_rules(rules)
    assert compiled.stats.rules == 3
    assert compiled.stats.always == 0  # "x" and "Grenze" pin the last two
    # A valid rule always has a positive part (`compile_rule` insists), so every rule of a
    # config is pinned today; a part that pins nothing makes its rule an always-candidate.
    title_only = compile_rules([RuleConfig("t", query='title:(Kursk OR "Курск") AND NOT x*')])
    assert title_only.stats.always == 0
    not_node = compile_rule(RuleConfig("n", any=("a",), none=("b",))).root
    assert isinstance(not_node, _And) and required_keys(not_node.operands[1]) is None


def test_or_with_a_negated_side_pins_nothing() -> None:
    rule = compile_rule(RuleConfig("r", any=("x",), query="Kursk OR NOT Fußball"))
    assert required_keys(rule.root) is not None  # the any-list pins it
    assert required_keys(compile_rule(RuleConfig("q", query="a (b OR -c)")).root) == {
        ("f", "", "a"),
        ("s", "german", "a"),
        ("s", "english", "a"),
    }


def test_prefix_keys_find_longer_words() -> None:
    rules = [RuleConfig("p", query="nordkorea*"), RuleConfig("q", query="nordkoreanisch*")]
    assert names(rules, "", "Nordkoreanische Truppen") == ["p", "q"]
    assert names(rules, "", "Nordkor") == []


def test_transliterated_latin_rule_matches_cyrillic_inflections() -> None:
    rule = RuleConfig("r", any=("Kursk",), languages=("ru",), transliterate=True)
    for text in ("Курск", "в Курской области", "Курская АЭС", "Kursk"):
        assert names([rule], "", text) == ["r"], text
    assert names([rule], "", "курс рубля") == []
    plain = RuleConfig("p", any=("Kursk",), languages=("ru",))
    assert names([plain], "", "в Курской области") == []


def test_a_short_word_never_matches_a_longer_one_across_scripts() -> None:
    rule = RuleConfig("r", any=("Kurs",), languages=("ru", "de"), transliterate=True)
    assert names([rule], "", "Курск") == []
    assert names([rule], "", "Курской") == []
    assert names([rule], "", "курс доллара") == ["r"]


def test_transliterated_cyrillic_rule_matches_latin_text() -> None:
    rule = RuleConfig("r", any=("Чернобыль",), languages=("en",), transliterate=True)
    assert names([rule], "", "near Chernobyl today") == ["r"]
    rule = RuleConfig("z", any=("Зеленский",), languages=(), transliterate=True)
    assert names([rule], "", "President Zelenskij said") == ["z"]
    assert names([rule], "", "President Selenskyj said") == []


def test_transliteration_without_stemming_matches_the_exact_form_only() -> None:
    rule = RuleConfig("r", any=("Kursk",), languages=(), transliterate=True)
    assert names([rule], "", "Курск") == ["r"]
    assert names([rule], "", "Курской") == []


def test_empty_languages_means_no_stemming() -> None:
    exact = RuleConfig("e", any=("Truppen",), languages=())
    stemmed = RuleConfig("s", any=("Truppen",), languages=("de",))
    assert names([exact, stemmed], "", "die Truppe") == ["s"]
    assert names([exact, stemmed], "", "die Truppen") == ["e", "s"]
    assert names([RuleConfig("p", any=("Trupp*",), languages=())], "", "Truppe") == ["p"]
    assert compile_rules([exact]).algorithms == ()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("body:Kursk", ["r"]),
        ("body:Grenze", []),  # only in the title
        ("tag:Politik", ["r"]),
        ("tag:Kursk", []),
        ("author:Müller", ["r"]),
        ("author:Kursk", []),
        ("url:ukraine", ["r"]),
        ('url:"example org"', ["r"]),
        ("url:Kursk", []),
        ("Politik", []),  # tags are not part of the plain text here (the feed adds them)
        ("author:(Anna NEAR/1 Müller)", ["r"]),
    ],
)
def test_field_queries(query: str, expected: list[str]) -> None:
    rule = RuleConfig("r", query=query)
    got = names(
        [rule],
        "Grenze",
        "Truppen bei Kursk",
        tags=["Politik", "Osteuropa"],
        author="Anna Müller",
        url="https://example.org/ukraine/truppen?id=3",
    )
    assert got == expected


def test_match_item_reads_the_item_fields() -> None:
    item = Item(
        key="k",
        guid=None,
        link="https://example.org/a/b",
        canonical_link=None,
        title="Titel",
        text="Text Politik",
        published=None,
        categories=("Politik",),
        author="Anna",
    )
    compiled = compile_rules([RuleConfig("a", query="author:anna tag:politik url:example")])
    assert [m.rule for m in compiled.match_item(item)] == ["a"]


def test_feed_filters() -> None:
    rules = [
        RuleConfig("only-a", any=("Kursk",), feeds=("a",)),
        RuleConfig("not-b", any=("Kursk",), exclude_feeds=("b",)),
        RuleConfig("all", any=("Kursk",)),
    ]
    assert names(rules, "", "Kursk", feed="a") == ["only-a", "not-b", "all"]
    assert names(rules, "", "Kursk", feed="b") == ["all"]
    assert names(rules, "", "Kursk", feed="c") == ["not-b", "all"]
    assert names(rules, "", "Kursk") == ["only-a", "not-b", "all"]


@pytest.mark.parametrize(
    ("rule", "warns"),
    [
        (RuleConfig("r", any=("der",)), True),
        (RuleConfig("r", any=("the", "die")), True),
        (RuleConfig("r", query="ab*"), True),
        (RuleConfig("r", any=("a*", "de*")), True),
        (RuleConfig("r", query="и OR в", languages=("ru",)), True),
        (RuleConfig("r", any=("der Spiegel",)), False),
        (RuleConfig("r", any=("der", "Kursk")), False),
        (RuleConfig("r", query="der AND Kursk"), False),
        (RuleConfig("r", query="abc*"), False),
        (RuleConfig("r", any=("the",), languages=("ru",)), False),  # not a Russian stop word
        (RuleConfig("r", any=("Kursk",)), False),
    ],
)
def test_flood_warnings(rule: RuleConfig, warns: bool) -> None:
    assert bool(flood_warnings(rule)) is warns
