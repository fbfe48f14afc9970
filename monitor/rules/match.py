"""Compile rules and match items: item text -> `Match`es with terms, spans and a snippet.

A rule is compiled once into a small tree of evaluators: `any` (an OR of phrases), every
`all` phrase, NOT (an OR of the `none` phrases), and the parsed query, AND-ed together. Rule
words carry their folded form and their folded stem per Snowball algorithm of the rule's
languages, computed at compile time.

An item is analysed once per `Matcher.match`: title and body are tokenised separately (a
phrase never spans the two) and indexed by folded form; a stem index per algorithm is built
lazily, stemming each distinct word once. Evaluators return the token ranges ("hits") of the
positive terms that made them true; negated terms never contribute. Hits become the matched
terms as written in the text, character spans for highlighting, and the snippet.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from monitor.errors import QueryError, RuleQueryError
from monitor.rules import query as q
from monitor.rules.text import Token, fold, stem_with, stemmer_name, tokenize
from monitor.rules.translit import transliterations
from monitor.textutil import one_line
from monitor.types import Item, Match, RuleConfig

TITLE, BODY, TAGS, AUTHOR, URL = range(5)
_ALL_FIELDS = (TITLE, BODY)  # what an unqualified term searches
_FIELD_INDEX = {"title": TITLE, "body": BODY, "tag": TAGS, "author": AUTHOR, "url": URL}
SNIPPET_WIDTH = 200

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Why a rule matched: its terms as written, the snippet, and character spans per field."""

    rule: str
    terms: tuple[str, ...]
    snippet: str
    title_spans: tuple[Span, ...]
    text_spans: tuple[Span, ...]

    def to_match(self) -> Match:
        return Match(rule=self.rule, terms=self.terms, snippet=self.snippet)


# --- the analysed item ---------------------------------------------------------------------


class _Hit(NamedTuple):
    field: int
    start: int  # token indices, end exclusive
    end: int


@dataclass(frozen=True, slots=True)
class _Word:
    folded: str
    prefix: bool
    stems: tuple[tuple[str, str], ...]  # (Snowball algorithm, folded stem)
    alternates: tuple[str, ...] = ()  # other folded forms (transliterations)

    @property
    def forms(self) -> tuple[str, ...]:
        """Every folded form the word matches by (or, for a prefix word, starts with)."""
        return (self.folded, *self.alternates)


class _Field:
    __slots__ = ("_by_stem", "_by_word", "_positions", "_sorted", "by_folded", "text", "tokens")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[Token] = tokenize(text)
        # Positions per normalised word; stems and folded forms are computed per distinct word.
        by_word: dict[str, list[int]] = {}
        folded: dict[str, str] = {}
        for i, tok in enumerate(self.tokens):
            found = by_word.get(tok.word)
            if found is None:
                by_word[tok.word] = [i]
                folded[tok.word] = tok.folded
            else:
                found.append(i)
        self._by_word = by_word
        self.by_folded: dict[str, list[int]] = {}  # position lists are unordered
        by_folded = self.by_folded
        for word, positions in by_word.items():
            f = folded[word]
            other = by_folded.get(f)
            by_folded[f] = positions if other is None else other + positions
        self._by_stem: dict[str, dict[str, list[int]]] = {}
        self._positions: dict[_Word, frozenset[int]] = {}
        self._sorted: list[str] | None = None  # distinct folded words, for prefix lookups

    def _stem_index(self, algorithm: str) -> dict[str, list[int]]:
        index = self._by_stem.get(algorithm)
        if index is None:
            index = {}
            for word, positions in self._by_word.items():
                s = stem_with(word, algorithm)
                other = index.get(s)
                index[s] = positions if other is None else other + positions
            self._by_stem[algorithm] = index
        return index

    def positions(self, word: _Word) -> frozenset[int]:
        found = self._positions.get(word)
        if found is None:
            if word.prefix:
                hits = [i for form in word.forms for i in self._prefixed(form)]
            else:
                hits = [i for form in word.forms for i in self.by_folded.get(form, ())]
                for algorithm, s in word.stems:
                    hits.extend(self._stem_index(algorithm).get(s, ()))
            found = self._positions[word] = frozenset(hits)
        return found

    def _prefixed(self, prefix: str) -> list[int]:
        if self._sorted is None:
            self._sorted = sorted(self.by_folded)
        keys = self._sorted
        hits: list[int] = []
        for i in range(bisect_left(keys, prefix), len(keys)):
            if not keys[i].startswith(prefix):
                break
            hits.extend(self.by_folded[keys[i]])
        return hits

    def span(self, hit: _Hit) -> Span:
        return self.tokens[hit.start].start, self.tokens[hit.end - 1].end


class _Doc:
    __slots__ = ("fields",)

    def __init__(
        self,
        title: str,
        text: str,
        tags: Sequence[str] = (),
        author: str | None = None,
        url: str | None = None,
    ) -> None:
        # Categories are one text, in order, one per line.
        extra = ("\n".join(tags), author or "", url or "")
        self.fields = (_Field(title), _Field(text), *(_Field(t) for t in extra))


# --- evaluators ----------------------------------------------------------------------------

_Hits = list[_Hit] | None  # None: false; a list (maybe empty): true, with its positive hits


class _Node:
    __slots__ = ()

    def evaluate(self, doc: _Doc, fields: tuple[int, ...]) -> _Hits:
        raise NotImplementedError


class _Phrase(_Node):
    __slots__ = ("words",)

    def __init__(self, words: tuple[_Word, ...]) -> None:
        self.words = words

    def hits(self, doc: _Doc, f: int) -> list[_Hit]:
        fld = doc.fields[f]
        first = fld.positions(self.words[0])
        if not first:
            return []
        rest = [fld.positions(w) for w in self.words[1:]]
        n = len(self.words)
        return [
            _Hit(f, p, p + n)
            for p in sorted(first)
            if all(p + k in s for k, s in enumerate(rest, start=1))
        ]

    def evaluate(self, doc: _Doc, fields: tuple[int, ...]) -> _Hits:
        return [h for f in fields for h in self.hits(doc, f)] or None


class _Not(_Node):
    __slots__ = ("operand",)

    def __init__(self, operand: _Node) -> None:
        self.operand = operand

    def evaluate(self, doc: _Doc, fields: tuple[int, ...]) -> _Hits:
        return None if self.operand.evaluate(doc, fields) is not None else []


class _And(_Node):
    __slots__ = ("operands",)

    def __init__(self, operands: Sequence[_Node]) -> None:
        self.operands = tuple(operands)

    def evaluate(self, doc: _Doc, fields: tuple[int, ...]) -> _Hits:
        hits: list[_Hit] = []
        for node in self.operands:
            found = node.evaluate(doc, fields)
            if found is None:
                return None
            hits.extend(found)
        return hits


class _Or(_Node):
    __slots__ = ("operands",)

    def __init__(self, operands: Sequence[_Node]) -> None:
        self.operands = tuple(operands)

    def evaluate(self, doc: _Doc, fields: tuple[int, ...]) -> _Hits:
        results = [node.evaluate(doc, fields) for node in self.operands]
        if all(r is None for r in results):
            return None
        return [h for r in results if r is not None for h in r]


class _Near(_Node):
    __slots__ = ("distance", "left", "right")

    def __init__(self, left: _Phrase, right: _Phrase, distance: int) -> None:
        self.left, self.right, self.distance = left, right, distance

    def evaluate(self, doc: _Doc, fields: tuple[int, ...]) -> _Hits:
        # For each left hit, the right hits within reach are found by bisection (a right hit
        # after it starts in [a.end, a.end + d - 1]; one before it ends in [a.start - d + 1,
        # a.start]), so an item repeating both words thousands of times stays linear-ish.
        found: set[_Hit] = set()
        d = self.distance
        for f in fields:
            rights = self.right.hits(doc, f)
            lefts = self.left.hits(doc, f) if rights else []
            if not lefts:
                continue
            by_start = sorted(rights, key=lambda h: h.start)
            starts = [h.start for h in by_start]
            by_end = sorted(rights, key=lambda h: h.end)
            ends = [h.end for h in by_end]
            for a in lefts:
                after = by_start[bisect_left(starts, a.end) : bisect_right(starts, a.end - 1 + d)]
                before = by_end[bisect_left(ends, a.start - d + 1) : bisect_right(ends, a.start)]
                for b in (*after, *before):
                    found.update((a, b))
        return sorted(found) or None


class _Title(_Node):
    __slots__ = ("operand",)

    def __init__(self, operand: _Node) -> None:
        self.operand = operand

    def evaluate(self, doc: _Doc, fields: tuple[int, ...]) -> _Hits:
        return self.operand.evaluate(doc, (TITLE,))


class _InField(_Node):
    __slots__ = ("field", "operand")

    def __init__(self, field: int, operand: _Node) -> None:
        self.field, self.operand = field, operand

    def evaluate(self, doc: _Doc, fields: tuple[int, ...]) -> _Hits:
        return self.operand.evaluate(doc, (self.field,))


# --- compiling -----------------------------------------------------------------------------


class _Compiler:
    def __init__(self, algorithms: tuple[str, ...], transliterate: bool = False) -> None:
        self.algorithms = algorithms
        self.transliterate = transliterate

    def word(self, w: q.Word) -> _Word:
        forms = (w.text, *transliterations(w.text)) if self.transliterate else (w.text,)
        folded = tuple(dict.fromkeys(fold(f) for f in forms))
        if w.prefix:
            return _Word(folded[0], True, (), folded[1:])
        stems = tuple(dict.fromkeys((a, stem_with(f, a)) for f in forms for a in self.algorithms))
        return _Word(folded[0], False, stems, folded[1:])

    def phrase(self, p: q.Phrase) -> _Phrase:
        return _Phrase(tuple(self.word(w) for w in p.words))

    def node(self, n: q.Node) -> _Node:
        match n:
            case q.Phrase():
                return self.phrase(n)
            case q.Not(operand):
                return _Not(self.node(operand))
            case q.And(operands):
                return _And([self.node(o) for o in operands])
            case q.Or(operands):
                return _Or([self.node(o) for o in operands])
            case q.Near(left, right, distance):
                return _Near(self.phrase(left), self.phrase(right), distance)
            case q.Title(operand):
                return _Title(self.node(operand))
            case q.Field(name, operand):
                return _InField(_FIELD_INDEX[name], self.node(operand))


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    """A rule ready to evaluate. Build it with `compile_rule`."""

    name: str
    config: RuleConfig
    root: _Node

    def explain(
        self,
        title: str,
        text: str,
        *,
        tags: Sequence[str] = (),
        author: str | None = None,
        url: str | None = None,
    ) -> MatchResult | None:
        """Whether and where this rule matches an item."""
        return self._result(_Doc(title, text, tags, author, url))

    def applies_to(self, feed: str | None) -> bool:
        """Whether the rule watches `feed` (`feeds`/`exclude_feeds`); None: any feed."""
        return applies_to(self.config, feed)

    def _result(self, doc: _Doc) -> MatchResult | None:
        hits = self.root.evaluate(doc, _ALL_FIELDS)
        return None if hits is None else _result(self.name, doc, hits)


def _entries(rule: RuleConfig, key: str, entries: tuple[str, ...]) -> list[q.Phrase]:
    phrases = []
    for i, entry in enumerate(entries):
        try:
            phrases.append(q.parse_entry(entry))
        except QueryError as e:
            raise RuleQueryError(rule.name, key, e.message, e.column, i) from None
    return phrases


def _contains(outer: q.Phrase, inner: q.Phrase) -> bool:
    n, m = len(outer.words), len(inner.words)
    return any(outer.words[i : i + m] == inner.words for i in range(n - m + 1))


def _check_satisfiable(
    rule: RuleConfig, any_: list[q.Phrase], all_: list[q.Phrase], none: list[q.Phrase]
) -> None:
    """Reject list combinations that can never match (a `none` entry inside a required one)."""
    for i, n in enumerate(none):
        for j, a in enumerate(all_):
            if _contains(a, n):
                message = f"{rule.none[i]!r} is part of the `all` entry {rule.all[j]!r}"
                raise RuleQueryError(rule.name, "none", message + ": the rule never matches", 1, i)
    if any_ and none and all(any(_contains(a, n) for n in none) for a in any_):
        raise RuleQueryError(
            rule.name, "any", "every `any` entry contains a `none` entry: the rule never matches"
        )


def compile_rule(rule: RuleConfig) -> CompiledRule:
    """Compile a rule; raise RuleQueryError (a QueryError) naming the rule, field and column."""
    any_ = _entries(rule, "any", rule.any)
    all_ = _entries(rule, "all", rule.all)
    none = _entries(rule, "none", rule.none)
    query: q.Node | None = None
    if rule.query is not None:
        try:
            query = q.parse_query(rule.query)
        except QueryError as e:
            raise RuleQueryError(rule.name, "query", e.message, e.column) from None
    if not (any_ or all_ or (query is not None and q.is_positive(query))):
        if query is None:
            message = "nothing to match: give `any`, `all` or a `query`"
        else:
            message = (
                "the query only excludes (NOT, -, or an OR with a negated side) and there is no "
                "`any` or `all` list, so nearly every item would match: add a required term"
            )
        raise RuleQueryError(rule.name, "rule", message)
    _check_satisfiable(rule, any_, all_, none)

    algorithms = (stemmer_name(code) for code in rule.languages)  # None: match unstemmed
    compiler = _Compiler(
        tuple(dict.fromkeys(a for a in algorithms if a is not None)), rule.transliterate
    )
    parts: list[_Node] = []
    if any_:
        parts.append(_Or([compiler.phrase(p) for p in any_]))
    parts.extend(compiler.phrase(p) for p in all_)
    if query is not None:
        parts.append(compiler.node(query))
    if none:
        parts.append(_Not(_Or([compiler.phrase(p) for p in none])))
    return CompiledRule(rule.name, rule, parts[0] if len(parts) == 1 else _And(parts))


def applies_to(rule: RuleConfig, feed: str | None) -> bool:
    """Whether `rule` watches `feed` (its `feeds` and `exclude_feeds`); None: any feed."""
    if feed is None:
        return True
    return (rule.feeds is None or feed in rule.feeds) and feed not in rule.exclude_feeds


class RuleSet:
    """What every rule set answers (`Matcher`, the oracle, and `compile.CompiledRules`, the
    index): `explain` (one MatchResult per matching rule, in rule order) is each one's own;
    `match` and `match_item` follow from it."""

    def explain(
        self,
        title: str,
        text: str,
        *,
        tags: Sequence[str] = (),
        author: str | None = None,
        url: str | None = None,
        feed: str | None = None,
    ) -> list[MatchResult]:
        raise NotImplementedError

    def match(
        self,
        title: str,
        text: str,
        *,
        tags: Sequence[str] = (),
        author: str | None = None,
        url: str | None = None,
        feed: str | None = None,
    ) -> list[Match]:
        """One Match per matching rule, in rule order; only rules watching `feed` if given."""
        found = self.explain(title, text, tags=tags, author=author, url=url, feed=feed)
        return [r.to_match() for r in found]

    def match_item(self, item: Item, feed: str | None = None) -> list[Match]:
        """`match` over an item's fields: title, text, categories, author, link."""
        return self.match(
            item.title,
            item.text,
            tags=item.categories,
            author=item.author,
            url=item.link,
            feed=feed,
        )


class Matcher(RuleSet):
    """Every rule of a config, compiled once; `match` analyses an item once and evaluates every
    rule on it. The simple evaluator: `monitor.rules.compile.CompiledRules` gives the same
    answers faster, and this class is its test oracle."""

    def __init__(self, rules: Iterable[RuleConfig]) -> None:
        self.rules: tuple[CompiledRule, ...] = tuple(compile_rule(r) for r in rules)

    def explain(
        self,
        title: str,
        text: str,
        *,
        tags: Sequence[str] = (),
        author: str | None = None,
        url: str | None = None,
        feed: str | None = None,
    ) -> list[MatchResult]:
        doc = _Doc(title, text, tags, author, url)
        return [
            r
            for rule in self.rules
            if rule.applies_to(feed) and (r := rule._result(doc)) is not None
        ]


def explain(rule: RuleConfig | CompiledRule, title: str, text: str) -> MatchResult | None:
    """Whether and where one rule matches (for `test-rule`); None when it does not."""
    compiled = rule if isinstance(rule, CompiledRule) else compile_rule(rule)
    return compiled.explain(title, text)


# --- presenting ----------------------------------------------------------------------------


def _result(rule: str, doc: _Doc, hits: list[_Hit]) -> MatchResult:
    terms: dict[str, str] = {}
    spans: tuple[set[Span], ...] = tuple(set() for _ in doc.fields)
    for hit in sorted(set(hits)):
        fld = doc.fields[hit.field]
        start, end = fld.span(hit)
        spans[hit.field].add((start, end))
        surface = one_line(fld.text[start:end])
        terms.setdefault(surface.casefold(), surface)
    field = BODY if spans[BODY] else TITLE
    if spans[field]:
        first = min(spans[field])
        text = snippet(doc.fields[field].text, first[0], first[1])
    else:  # unreachable for a compiled rule: every match has a positive term
        text = snippet(doc.fields[BODY].text or doc.fields[TITLE].text, 0, 0)
    return MatchResult(
        rule, tuple(terms.values()), text, tuple(sorted(spans[TITLE])), tuple(sorted(spans[BODY]))
    )


def snippet(text: str, start: int, end: int, width: int = SNIPPET_WIDTH) -> str:
    """About `width` characters of `text` around [start, end), cut at word boundaries, with
    "…" where text was cut and whitespace collapsed."""
    if len(text) <= width:
        return one_line(text)
    lead = max(0, (width - (end - start)) // 3)
    s = max(0, start - lead)
    e = max(min(len(text), s + width), end)
    s = max(0, min(s, e - width))
    if s > 0 and not text[s - 1].isspace():
        cut = next((i for i in range(s, start) if text[i].isspace()), None)
        s = s if cut is None else cut + 1
    if e < len(text) and not text[e].isspace():
        cut = next((i for i in range(e - 1, end - 1, -1) if text[i].isspace()), None)
        e = e if cut is None else cut
    body = one_line(text[s:e])
    return ("…" if s > 0 else "") + body + ("…" if e < len(text) else "")


def highlight(text: str, spans: Iterable[Span], before: str = "[[", after: str = "]]") -> str:
    """`text` with every span wrapped in `before`/`after`; overlapping spans are merged."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, pos = [], 0
    for start, end in merged:
        out += [text[pos:start], before, text[start:end], after]
        pos = end
    out.append(text[pos:])
    return "".join(out)
