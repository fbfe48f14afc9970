"""Rule query language: a lexer and recursive-descent parser to a small frozen AST.

    query   := or      or := and (OR and)*      and := unary ([AND] unary)*
    unary   := (NOT | -) unary | near           near := primary [NEAR/n primary]
    primary := term | "phrase" | ( query ) | field: primary
    field   := title | body | tag | author | url

Precedence NOT > AND > OR; neighbours are AND-ed. A bare term that the tokenizer splits into
several words (`Kursk-Region`) is a phrase; `word*` marks a prefix word (also inside quotes).
Operators are upper case only; a lower-case `and`/`or`/`not` or `near/5` standing alone is an
error (with a hint to upper-case or quote it), because silently searching for the word "or"
is the kind of rule that quietly matches nothing. NEAR joins two terms or phrases, not
groups, and does not chain. Every error is a `QueryError` with a 1-based column.
`Phrase.words` hold normalised words; stems and folded forms are computed by `match`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import Enum

from monitor.errors import QueryError
from monitor.rules.text import tokenize


@dataclass(frozen=True, slots=True)
class Word:
    """A normalised (NFKC, case-folded) rule word; `prefix` for `word*`."""

    text: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words that must occur consecutively; a plain term is a one-word phrase."""

    words: tuple[Word, ...]
    column: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)  # with column: the source, query[column-1:end]

    @property
    def text(self) -> str:
        return " ".join(w.text + ("*" if w.prefix else "") for w in self.words)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    column: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)  # with column: the source, query[column-1:end]


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]
    column: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)  # with column: the source, query[column-1:end]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]
    column: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)  # with column: the source, query[column-1:end]


@dataclass(frozen=True, slots=True)
class Near:
    """Both phrases occur, in either order, at most `distance` words apart."""

    left: Phrase
    right: Phrase
    distance: int
    column: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)  # with column: the source, query[column-1:end]


@dataclass(frozen=True, slots=True)
class Title:
    """The operand is evaluated on the item's title alone."""

    operand: Node
    column: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)  # with column: the source, query[column-1:end]


@dataclass(frozen=True, slots=True)
class Field:
    """The operand is evaluated on one other field of the item: `body` (the text without the
    title), `tag` (categories), `author`, `url` (the words of the link)."""

    name: str
    operand: Node
    column: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)  # with column: the source, query[column-1:end]


FIELD_NAMES = ("title", "body", "tag", "author", "url")

Node = Phrase | Not | And | Or | Near | Title | Field


def source(query: str, node: Node) -> str:
    """The part of `query` that `node` was parsed from, as the user wrote it."""
    # a Near's column is its operator's, unless parentheses around it moved it before `left`
    start = min(node.column, node.left.column) if isinstance(node, Near) else node.column
    return query[start - 1 : node.end]


def is_positive(node: Node) -> bool:
    """True when the node can only hold if some non-negated term occurs in the item."""
    match node:
        case Phrase() | Near():
            return True
        case Not():
            return False
        case And(operands):
            return any(is_positive(n) for n in operands)
        case Or(operands):
            return all(is_positive(n) for n in operands)
        case Title(operand) | Field(_, operand):
            return is_positive(operand)


# --- lexer ---------------------------------------------------------------------------------


class _Kind(Enum):
    WORDS = "term"
    AND = "AND"
    OR = "OR"
    NOT = "NOT"
    NEG = "'-'"
    NEAR = "NEAR"
    TITLE = "'title:'"
    FIELD = "field:"
    LPAREN = "'('"
    RPAREN = "')'"
    END = "end of query"


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: _Kind
    column: int
    words: tuple[Word, ...] = ()
    distance: int = 0
    end: int = 0  # 0-based index just past the token
    name: str = ""  # a field token's field (title, body, tag, author, url)


_OPERAND_START = frozenset(
    {_Kind.WORDS, _Kind.NOT, _Kind.NEG, _Kind.TITLE, _Kind.FIELD, _Kind.LPAREN}
)
_NEAR = re.compile(r"NEAR/(\d+)")
_SPECIAL = '()"'
_FIELD_PREFIX = re.compile(r"(title|body|tag|author|url):", re.IGNORECASE)


def parse_words(text: str, offset: int = 0) -> tuple[Word, ...]:
    """The words of a term, phrase or list entry; `*` right after a word makes it a prefix.

    `offset` is the 0-based position of `text` in the query, for error columns.
    """
    tokens = tokenize(text)
    ends = {t.end for t in tokens}
    for i, ch in enumerate(text):
        if ch == "*" and i not in ends:
            raise QueryError(
                "'*' must directly follow a word (prefix search: word*)", offset + i + 1
            )
    return tuple(Word(t.word, t.end < len(text) and text[t.end] == "*") for t in tokens)


def parse_entry(entry: str) -> Phrase:
    """An `any`/`all`/`none` list entry: a word or phrase (operators are plain words here)."""
    words = parse_words(entry)
    if not words:
        raise QueryError(f"{entry!r} contains no word to search for", 1)
    return Phrase(words, 1)


def _lex(query: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        col = i + 1
        if ch.isspace():
            i += 1
        elif ch == "(":
            toks.append(_Tok(_Kind.LPAREN, col, end=col))
            i += 1
        elif ch == ")":
            toks.append(_Tok(_Kind.RPAREN, col, end=col))
            i += 1
        elif ch == '"':
            close = query.find('"', i + 1)
            if close < 0:
                raise QueryError("unterminated phrase: the closing '\"' is missing", col)
            words = parse_words(query[i + 1 : close], i + 1)
            if not words:
                raise QueryError("empty phrase: put words between the quotes", col)
            toks.append(_Tok(_Kind.WORDS, col, words, end=close + 1))
            i = close + 1
        elif ch == "-":
            if i + 1 == n or query[i + 1].isspace() or query[i + 1] == ")":
                raise QueryError(
                    "'-' must be directly followed by the term, phrase or '(' to exclude", col
                )
            toks.append(_Tok(_Kind.NEG, col, end=col))
            i += 1
        elif (m := _FIELD_PREFIX.match(query, i)) is not None:
            name = m.group(1).lower()
            nxt = query[m.end() : m.end() + 1]
            if not nxt or nxt.isspace() or nxt == ")":
                raise QueryError(
                    f"'{name}:' must be directly followed by a term, \"phrase\" or (group)", col
                )
            kind = _Kind.TITLE if name == "title" else _Kind.FIELD
            toks.append(_Tok(kind, col, end=m.end(), name=name))
            i = m.end()
        else:
            j = i
            while j < n and not query[j].isspace() and query[j] not in _SPECIAL:
                j += 1
            tok = _lex_chunk(query[i:j], i)
            if tok is not None:
                toks.append(replace(tok, end=j))
            i = j
    return toks


def _lex_chunk(chunk: str, offset: int) -> _Tok | None:
    col = offset + 1
    upper = chunk.upper()
    if chunk in ("AND", "OR", "NOT"):
        return _Tok(_Kind[chunk], col)
    if upper in ("AND", "OR", "NOT"):
        raise QueryError(
            f'operators are upper case: write {upper}, or "{chunk}" to search the word', col
        )
    if upper.startswith("NEAR/"):
        if not chunk.startswith("NEAR/"):
            raise QueryError(f"operators are upper case: write {upper}", col)
        m = _NEAR.fullmatch(chunk)
        if m is None:
            raise QueryError("NEAR needs a distance in words, e.g. NEAR/5", col)
        distance = int(m.group(1))
        if distance < 1:
            raise QueryError("NEAR/n needs a distance of at least 1 word", col)
        return _Tok(_Kind.NEAR, col, distance=distance)
    if chunk == "NEAR":
        raise QueryError("NEAR needs a distance in words, e.g. NEAR/5", col)
    words = parse_words(chunk, offset)
    if words:
        return _Tok(_Kind.WORDS, col, words)
    if set(chunk) <= set("&|!"):
        raise QueryError(f"{chunk!r} is not an operator here: use AND, OR, NOT", col)
    return None  # bare punctuation such as a dash between words separates like a space


# --- parser --------------------------------------------------------------------------------


def parse_query(query: str) -> Node:
    """Parse a rule query; raise QueryError(message, 1-based column) when it is invalid."""
    toks = _lex(query)
    if not toks:
        raise QueryError("query is empty: give at least one term", 1)
    parser = _Parser([*toks, _Tok(_Kind.END, len(query) + 1)])
    node = parser.parse_or()
    tok = parser.peek()
    if tok.kind is _Kind.RPAREN:
        raise QueryError("')' has no matching '('", tok.column)
    if tok.kind is not _Kind.END:  # pragma: no cover - every other token starts an operand
        raise QueryError(f"unexpected {tok.kind.value}", tok.column)
    return node


class _Parser:
    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.pos = 0

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def end(self) -> int:
        """Where the last token taken ends: the end of the node just parsed."""
        return self.toks[self.pos - 1].end

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def expect_operand(self, after: _Tok, name: str) -> None:
        nxt = self.peek()
        if nxt.kind not in _OPERAND_START:
            found = "" if nxt.kind is _Kind.END else f", found {nxt.kind.value}"
            raise QueryError(
                f"{name} must be followed by a term, \"phrase\" or '('{found}", after.column
            )

    def parse_or(self) -> Node:
        first = self.peek()
        operands = [self.parse_and()]
        while self.peek().kind is _Kind.OR:
            op = self.take()
            self.expect_operand(op, "OR")
            operands.append(self.parse_and())
        if len(operands) == 1:
            return operands[0]
        return Or(tuple(operands), first.column, self.end())

    def parse_and(self) -> Node:
        first = self.peek()
        operands = [self.parse_unary()]
        while True:
            kind = self.peek().kind
            if kind is _Kind.AND:
                op = self.take()
                self.expect_operand(op, "AND")
            elif kind not in _OPERAND_START:
                break
            operands.append(self.parse_unary())
        if len(operands) == 1:
            return operands[0]
        return And(tuple(operands), first.column, self.end())

    def parse_unary(self) -> Node:
        tok = self.peek()
        if tok.kind in (_Kind.NOT, _Kind.NEG):
            self.take()
            self.expect_operand(tok, tok.kind.value)
            operand = self.parse_unary()
            return Not(operand, tok.column, self.end())
        return self.parse_near()

    def parse_near(self) -> Node:
        left = self.parse_primary()
        if self.peek().kind is not _Kind.NEAR:
            return left
        op = self.take()
        if isinstance(left, Title | Field):
            name = "title" if isinstance(left, Title) else left.name
            raise QueryError(
                f"NEAR joins two terms or phrases; for one field write {name}:(a NEAR/n b)",
                op.column,
            )
        if not isinstance(left, Phrase):
            raise QueryError("NEAR joins two terms or phrases, not a group", op.column)
        right_tok = self.peek()
        if right_tok.kind not in (_Kind.WORDS, _Kind.LPAREN):
            found = "" if right_tok.kind is _Kind.END else f", found {right_tok.kind.value}"
            raise QueryError(
                f'NEAR/{op.distance} must be followed by a term or "phrase"{found}', op.column
            )
        right = self.parse_primary()
        if not isinstance(right, Phrase):
            raise QueryError("NEAR joins two terms or phrases, not a group", right_tok.column)
        if self.peek().kind is _Kind.NEAR:
            raise QueryError(
                "NEAR cannot be chained: write (a NEAR/n b) AND (b NEAR/n c)", self.peek().column
            )
        return Near(left, right, op.distance, op.column, self.end())

    def parse_primary(self) -> Node:
        tok = self.take()
        match tok.kind:
            case _Kind.WORDS:
                return Phrase(tok.words, tok.column, tok.end)
            case _Kind.LPAREN:
                if self.peek().kind is _Kind.RPAREN:
                    raise QueryError("empty parentheses", tok.column)
                node = self.parse_or()
                if self.peek().kind is not _Kind.RPAREN:
                    raise QueryError("'(' is never closed: a ')' is missing", tok.column)
                self.take()
                return replace(node, column=tok.column, end=self.end())  # with its parentheses
            case _Kind.TITLE:
                if self.peek().kind not in (_Kind.WORDS, _Kind.LPAREN):
                    raise QueryError(
                        "'title:' must be followed by a term, \"phrase\" or (group)", tok.column
                    )
                operand = self.parse_primary()
                return Title(operand, tok.column, self.end())
            case _Kind.FIELD:
                if self.peek().kind not in (_Kind.WORDS, _Kind.LPAREN):
                    raise QueryError(
                        f"'{tok.name}:' must be followed by a term, \"phrase\" or (group)",
                        tok.column,
                    )
                operand = self.parse_primary()
                return Field(tok.name, operand, tok.column, self.end())
            case _Kind.RPAREN:
                raise QueryError("')' has no matching '('", tok.column)
            case _Kind.END:  # pragma: no cover - operators check for an operand first
                raise QueryError("the query ends where a term was expected", tok.column)
            case _:
                raise QueryError(f"{tok.kind.value} needs a term before it", tok.column)
