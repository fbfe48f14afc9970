"""`why_not`: which part of a rule is false for a text; it never disagrees with the matcher."""

from __future__ import annotations

import itertools

import pytest

from monitor.rules import compile_rule, parse_query
from monitor.rules.query import And, Near, Not, Or, Phrase, Title, source
from monitor.rules.why import Failure, why_not
from monitor.types import RuleConfig

TITLE = "Lage an der Front"
BODY = "Nordkoreanischer Truppen nahe Kursk gesichtet; Fußball fällt aus. Region Belgorod ruhig."


def rule(**fields: object) -> RuleConfig:
    return RuleConfig(name="r", languages=("de", "en"), **fields)  # type: ignore[arg-type]


# (rule, expected failures as (part, terms)); the text is TITLE / BODY
CASES: list[tuple[RuleConfig, list[tuple[str, tuple[str, ...]]]]] = [
    (rule(any=("Kursk",)), []),
    (rule(any=("Moskau", "Kiew")), [("any", ("Moskau", "Kiew"))]),
    (rule(any=("Moskau", "Kursker")), []),  # stemmed: Kursker = Kursk
    (rule(all=("Kursk", "Belgorod")), []),
    (rule(all=("Kursk", "Charkiw", "Sumy")), [("all", ("Charkiw", "Sumy"))]),
    (rule(any=("Kursk",), none=("Fussball", "Tennis")), [("none", ("Fussball",))]),
    (rule(any=("Kursk",), none=("Tennis",)), []),
    (rule(query="Kursk AND Belgorod"), []),
    (rule(query="Kursk Charkiw Sumy"), [("query", ("Charkiw",))]),
    (rule(query="Kursk AND (Charkiw OR Sumy)"), [("query", ("(Charkiw OR Sumy)",))]),
    (rule(query="Kursk -Fußball"), [("query", ("-Fußball",))]),
    (rule(query="Kursk AND NOT  Fußball"), [("query", ("NOT  Fußball",))]),
    (rule(query="title:Kursk"), [("query", ("title:Kursk",))]),
    (rule(query="title:(Front Kursk)"), [("query", ("Kursk",))]),  # inside title:(AND)
    (rule(query='title:(Front "der Lage")'), [("query", ('"der Lage"',))]),  # consecutive
    (rule(query="Kursk NEAR/3 Truppen"), []),
    (rule(query="Kursk NEAR/2 Belgorod"), [("query", ("Kursk NEAR/2 Belgorod",))]),
    (rule(query="Truppen (Kursk NEAR/1 Region)"), [("query", ("(Kursk NEAR/1 Region)",))]),
    (rule(query='"Truppen nahe" Moskau'), [("query", ("Moskau",))]),
    (rule(query="Moskau OR Kiew"), [("query", ("Moskau OR Kiew",))]),
    (rule(query="Kursk (Moskau OR Kiew) Sumy"), [("query", ("(Moskau OR Kiew)",))]),
    (rule(query="Kurs*"), []),
    (rule(query="Kursz*"), [("query", ("Kursz*",))]),
    # every part false: all named, in the order any, all, none, query
    (
        rule(any=("Moskau",), all=("Sumy",), none=("Kursk",), query="Kiew"),
        [("any", ("Moskau",)), ("all", ("Sumy",)), ("none", ("Kursk",)), ("query", ("Kiew",))],
    ),
    # unstemmed rule: Kursker no longer matches Kursk
    (
        RuleConfig(name="r", any=("Kursker",), languages=()),
        [("any", ("Kursker",))],
    ),
]


@pytest.mark.parametrize(("r", "expected"), CASES)
def test_why_not_names_the_false_parts(
    r: RuleConfig, expected: list[tuple[str, tuple[str, ...]]]
) -> None:
    failures = why_not(r, TITLE, BODY)
    assert [(f.part, f.terms) for f in failures] == expected
    assert (compile_rule(r).explain(TITLE, BODY) is None) == bool(expected)


@pytest.mark.parametrize(
    ("r", "reason"),
    [
        (rule(any=("Moskau", "Kiew")), "none of them occurs"),
        (rule(any=("Moskau",)), "does not occur"),
        (rule(all=("Sumy", "Kiew")), "do not occur"),
        (rule(any=("Kursk",), none=("Fussball",)), "occurs, excluded"),
        (rule(query="Kursk -Fußball"), "the excluded text occurs"),
        (rule(query="Moskau OR Kiew"), "none of its alternatives"),
        (rule(query="Kursk NEAR/2 Belgorod"), "not within 2 words"),
        (rule(query="Kursk NEAR/2 Kiew"), '"Kiew" does not occur'),
        (rule(query="title:Kursk"), "not in the title"),
        (rule(query="title:(Front Kursk)"), "does not occur in the title"),
    ],
)
def test_reasons_are_in_words(r: RuleConfig, reason: str) -> None:
    [failure] = why_not(r, TITLE, BODY)
    assert reason in failure.reason
    assert str(failure).startswith(f"{failure.part}: ")


def test_failure_text_shows_terms_as_written() -> None:
    failure = Failure("query", ("(Moskau OR Kiew)",), "is false")
    assert str(failure) == 'query: "(Moskau OR Kiew)" is false'


def test_why_not_never_disagrees_with_the_matcher() -> None:
    """Every combination of parts over several texts: no failure exactly when it matches."""
    texts = [
        ("", ""),
        (TITLE, BODY),
        ("Kursk", "Belgorod Fußball"),
        ("Sumy und Kiew", "Truppen bei Moskau"),
    ]
    anys = [(), ("Kursk",), ("Moskau", "Sumy")]
    alls = [(), ("Belgorod",), ("Kiew", "Truppen")]
    nones = [(), ("Fußball",), ("Moskau",)]
    queries = [None, "Kursk OR Kiew", "title:(Kursk OR Sumy) -Moskau", "Truppen NEAR/3 Kursk"]
    checked = 0
    for any_, all_, none, query in itertools.product(anys, alls, nones, queries):
        r = rule(any=any_, all=all_, none=none, query=query)
        try:
            compiled = compile_rule(r)
        except Exception:
            continue  # a rule that cannot compile (nothing positive to match)
        for title, body in texts:
            failures = why_not(r, title, body)
            assert (compiled.explain(title, body) is None) == bool(failures), (r, title, body)
            checked += 1
    assert checked > 300


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Kursk", {Phrase: ["Kursk"]}),
        ('  "Nord Korea"  ', {Phrase: ['"Nord Korea"']}),
        ("a  (b OR c)", {And: ["a  (b OR c)"], Or: ["(b OR c)"], Phrase: ["a", "b", "c"]}),
        ("-x NOT y", {And: ["-x NOT y"], Not: ["-x", "NOT y"], Phrase: ["x", "y"]}),
        ("title:(a NEAR/2 b)", {Title: ["title:(a NEAR/2 b)"], Near: ["(a NEAR/2 b)"]}),
        ("(a) NEAR/2 b", {Near: ["(a) NEAR/2 b"], Phrase: ["(a)", "b"]}),
        ("title:a*", {Title: ["title:a*"], Phrase: ["a*"]}),
    ],
)
def test_source_gives_each_node_as_written(query: str, expected: dict[type, list[str]]) -> None:
    found: dict[type, list[str]] = {}

    def walk(node: object) -> None:
        found.setdefault(type(node), []).append(source(query, node))  # type: ignore[arg-type]
        for child in getattr(node, "operands", ()):
            walk(child)
        if isinstance(node, Not | Title):
            walk(node.operand)
        if isinstance(node, Near):
            walk(node.left)
            walk(node.right)

    walk(parse_query(query))
    for kind, texts in expected.items():
        assert found[kind] == texts
