"""The query language: parse trees, precedence, positions and every error with its column."""

from __future__ import annotations

import pytest

from monitor.errors import QueryError
from monitor.rules.query import (
    And,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Title,
    Word,
    is_positive,
    parse_entry,
    parse_query,
)


def P(*words: str) -> Phrase:
    """A phrase; a trailing `*` on a word makes it a prefix."""
    return Phrase(tuple(Word(w.rstrip("*"), w.endswith("*")) for w in words))


a, b, c, x = P("a"), P("b"), P("c"), P("x")


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        # terms and phrases
        ("Kursk", P("kursk")),
        ("  KURSK  ", P("kursk")),
        ('"nordkoreanische Truppen"', P("nordkoreanische", "truppen")),
        ('"Северокорейские войска"', P("северокорейские", "войска")),
        ("Kursk-Region", P("kursk", "region")),  # split like text: an unquoted phrase
        ("Großbritannien", P("grossbritannien")),
        # prefix
        ("nordkorea*", P("nordkorea*")),
        ('"nordkorea* Truppen"', P("nordkorea*", "truppen")),
        # AND, implicit AND, OR
        ("a b", And((a, b))),
        ("a AND b", And((a, b))),
        ("a OR b", Or((a, b))),
        ("a OR b OR c", Or((a, b, c))),
        # precedence NOT > AND > OR
        ("a OR b c", Or((a, And((b, c))))),
        ("a b OR c", Or((And((a, b)), c))),
        ("a AND b OR c AND x", Or((And((a, b)), And((c, x))))),
        ("NOT a b", And((Not(a), b))),
        ("a OR NOT b", Or((a, Not(b)))),
        ("NOT a OR b", Or((Not(a), b))),
        ("NOT NOT a", Not(Not(a))),
        # -term, -"phrase", -(group)
        ("a -b", And((a, Not(b)))),
        ('a -"b c"', And((a, Not(P("b", "c"))))),
        ("a -(b OR c)", And((a, Not(Or((b, c)))))),
        ("a-b", P("a", "b")),  # a hyphen inside a word is not negation
        # parentheses
        ("(a OR b) c", And((Or((a, b)), c))),
        ("a AND (b OR c)", And((a, Or((b, c))))),
        ("((a))", a),
        # NEAR/n binds its two neighbours, tighter than NOT
        ("a NEAR/3 b", Near(a, b, 3)),
        ('"a b" NEAR/10 c', Near(P("a", "b"), c, 10)),
        ("x a NEAR/2 b", And((x, Near(a, b, 2)))),
        ("NOT a NEAR/2 b", Not(Near(a, b, 2))),
        ("a NEAR/2 b OR c", Or((Near(a, b, 2), c))),
        # title:
        ("title:Kursk", Title(P("kursk"))),
        ('title:"a b"', Title(P("a", "b"))),
        ("title:(a OR b) c", And((Title(Or((a, b))), c))),
        ("Title:a", Title(a)),
        ("-title:a b", And((Not(Title(a)), b))),
        ("title:(a NEAR/2 b)", Title(Near(a, b, 2))),
        # lower-case words are words when quoted; stray punctuation separates like a space
        ('"or" "and"', And((P("or"), P("and")))),
        ("Kursk – Sudscha", And((P("kursk"), P("sudscha")))),
        ("near", P("near")),
    ],
)
def test_parse(query: str, tree: Node) -> None:
    assert parse_query(query) == tree


def test_nodes_carry_their_columns() -> None:
    tree = parse_query('Kursk OR -"b c" NEAR/2 d title:e')
    assert isinstance(tree, Or)
    assert tree.operands[0].column == 1
    conj = tree.operands[1]
    assert isinstance(conj, And)
    neg, title = conj.operands
    assert isinstance(neg, Not) and neg.column == 10
    near = neg.operand
    assert isinstance(near, Near) and near.column == 17
    assert near.left.column == 11 and near.right.column == 24
    assert isinstance(title, Title) and title.column == 26


@pytest.mark.parametrize(
    ("query", "column", "message"),
    [
        ("", 1, "query is empty"),
        ("   ", 1, "query is empty"),
        ("— …", 1, "query is empty"),
        # parentheses
        ("(Kursk OR Kurs", 1, "'(' is never closed"),
        ("a (b (c) d", 3, "'(' is never closed"),
        ("Kursk)", 6, "')' has no matching '('"),
        ("(a) b)", 6, "')' has no matching '('"),
        ("a () b", 3, "empty parentheses"),
        # dangling operators
        ("Kursk AND", 7, "AND must be followed by a term"),
        ("Kursk OR", 7, "OR must be followed by a term"),
        ("Kursk OR OR Kursker", 7, "found OR"),
        ("Kursk AND )", 7, "found ')'"),
        ("(Kursk OR) Kursker", 8, "OR must be followed"),
        ("AND Kursk", 1, "AND needs a term before it"),
        ("OR Kursk", 1, "OR needs a term before it"),
        ("(OR Kursk)", 2, "OR needs a term before it"),
        ("Kursk NOT", 7, "NOT must be followed"),
        ("Kursk -", 7, "'-' must be directly followed"),
        ("Kursk - Sudscha", 7, "'-' must be directly followed"),
        ("Kursk -)", 7, "'-' must be directly followed"),
        # quotes
        ('"Kursk', 1, "unterminated phrase"),
        ('Kursk "Sudscha', 7, "unterminated phrase"),
        ('Kursk ""', 7, "empty phrase"),
        ('" ,; "', 1, "empty phrase"),
        # NEAR
        ("a NEAR b", 3, "NEAR needs a distance in words, e.g. NEAR/5"),
        ("a NEAR/ b", 3, "NEAR needs a distance"),
        ("a NEAR/x b", 3, "NEAR needs a distance"),
        ("a NEAR/0 b", 3, "at least 1 word"),
        ("a near/3 b", 3, "operators are upper case: write NEAR/3"),
        ("NEAR/3 b", 1, "NEAR needs a term before it"),
        ("a NEAR/3", 3, "NEAR/3 must be followed by a term"),
        ("(a OR b) NEAR/3 c", 10, "NEAR joins two terms or phrases"),
        ("a NEAR/3 (b OR c)", 10, "NEAR joins two terms or phrases"),
        ("a NEAR/3 -b", 3, "NEAR/3 must be followed"),
        ("a NEAR/2 b NEAR/2 c", 12, "NEAR cannot be chained"),
        ("title:a NEAR/3 b", 9, "title:(a NEAR/n b)"),
        # title:
        ("title:", 1, "'title:' must be directly followed"),
        ("Kursk title: Sudscha", 7, "'title:' must be directly followed"),
        ("title:)", 1, "'title:' must be directly followed"),
        ("x title:-y", 3, "'title:' must be followed by a term"),
        # lower-case operators would silently search for the word "or"
        ("Kursk or Курск", 7, 'write OR, or "or" to search the word'),
        ("Kursk and Sudscha", 7, "write AND"),
        ("Kursk Not Sudscha", 7, "write NOT"),
        # stars and stray operators
        ("*Kursk", 1, "'*' must directly follow a word"),
        ("Kursk *", 7, "'*' must directly follow a word"),
        ("Kursk**", 7, "'*' must directly follow a word"),
        ('"Kursk *"', 8, "'*' must directly follow a word"),
        ("Kursk && Sudscha", 7, "not an operator here: use AND, OR, NOT"),
        ("Kursk | Sudscha", 7, "not an operator here"),
    ],
)
def test_errors(query: str, column: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert message in info.value.message
    assert info.value.column == column
    assert str(info.value) == f"column {column}: {info.value.message}"


@pytest.mark.parametrize(
    ("entry", "phrase"),
    [
        ("Kursk", P("kursk")),
        ("nordkoreanische Truppen", P("nordkoreanische", "truppen")),
        ("Kursk-Region", P("kursk", "region")),
        ("Fußball", P("fussball")),
        ("nordkorea*", P("nordkorea*")),
        ("AND OR NOT", P("and", "or", "not")),  # no operators in list entries
        ('"Kim Jong Un"', P("kim", "jong", "un")),  # quotes are just punctuation here
        ("title:Kursk", P("title", "kursk")),
    ],
)
def test_parse_entry(entry: str, phrase: Phrase) -> None:
    assert parse_entry(entry) == phrase


@pytest.mark.parametrize(
    ("entry", "column", "message"),
    [
        ("", 1, "contains no word"),
        (" -- ", 1, "contains no word"),
        ("Kursk *", 7, "'*' must directly follow a word"),
    ],
)
def test_parse_entry_errors(entry: str, column: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_entry(entry)
    assert message in info.value.message
    assert info.value.column == column


@pytest.mark.parametrize(
    ("query", "positive"),
    [
        ("a", True),
        ("a b", True),
        ("a -b", True),
        ("-a b", True),
        ("NOT a", False),
        ("-a -b", False),
        ("a OR -b", False),  # the negated side alone would let nearly everything through
        ("(a OR b) -c", True),
        ("-(a OR b)", False),
        ("title:a", True),
        ("title:(-a)", False),
        ("a NEAR/2 b", True),
        ("NOT a NEAR/2 b", False),
    ],
)
def test_is_positive(query: str, positive: bool) -> None:
    assert is_positive(parse_query(query)) is positive
