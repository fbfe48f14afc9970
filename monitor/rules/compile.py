"""One compiled matcher for a whole rule set: the item's words pick the few rules worth
evaluating, the way Lucene Monitor and the Elasticsearch percolator index queries.

`compile_rules(rules, generation)` compiles every rule with `match.compile_rule` (the same
evaluator trees the simple `Matcher` runs) and indexes each rule under its *required keys*: a
set of keys at least one of which every matching item contains. A key is

* `("f", "", w)`: a folded word `w` of the item (any field);
* `("s", algorithm, s)`: a word of the item whose Snowball stem in `algorithm` is `s`;
* `("p", "", p)`: a folded word of the item that starts with `p`.

The keys of a rule word are exactly the ways the evaluator lets it match (its folded forms,
transliterations included, and its stems; a prefix word's forms as prefixes), so a rule whose
keys are all absent from an item cannot match it. A phrase needs all its words, so one word's
keys suffice (the rarest: the longest, not a stop word, not a prefix); NEAR and AND likewise
take their rarest operand; OR needs the union of its operands' keys; NOT pins nothing. A rule
that cannot be pinned (its required part is a NOT, or an OR with a negated side, ...) is an
*always-candidate*, evaluated on every item and counted in `stats`.

`match` analyses an item once (`match._Doc`: tokens per field, stems per algorithm, shared with
the evaluation), collects the candidates from the folded words, the stems of every algorithm
the index uses, and every prefix of every word whose length some prefix key has (a dict probed
per length: O(words x distinct prefix lengths), whatever the number of prefix rules), then runs
only the candidates' evaluators, in rule order. The output is therefore exactly the `Matcher`'s:
the same evaluators on the same analysed item, minus rules that provably cannot match
(tests/test_rules_compile.py checks this with hypothesis).

A `CompiledRules` pickles as its plain rule tuple and generation and is rebuilt on unpickling,
so it can be handed to a worker process once per config generation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.rules import match as m
from monitor.rules.stopwords import ALL_STOP_WORDS
from monitor.types import RuleConfig

Key = tuple[str, str, str]  # (kind "f" | "s" | "p", algorithm or "", text)
Keys = frozenset[Key]

SHORT_PREFIX = 2  # a prefix of at most this many letters matches a good part of any text


@dataclass(frozen=True, slots=True)
class IndexStats:
    """How the rule set was indexed."""

    rules: int
    indexed: int  # rules pinned to required keys
    always: int  # always-candidates: evaluated on every item
    keys: int  # distinct index keys
    prefix_lengths: tuple[int, ...]


# --- required keys -------------------------------------------------------------------------


def _word_keys(word: m._Word) -> Keys:
    if word.prefix:
        return frozenset(("p", "", f) for f in word.forms)
    return frozenset([("f", "", f) for f in word.forms] + [("s", a, s) for a, s in word.stems])


def key_cost(key: Key) -> float:
    """How often a key is expected to be present: short words, stop words and short prefixes
    are common."""
    kind, _, text = key
    if kind == "p":
        return 1000.0 if len(text) <= SHORT_PREFIX else 4.0 / len(text)
    if text in ALL_STOP_WORDS:
        return 100.0
    return 1.0 / max(1, len(text))


def _cost(keys: Keys) -> float:
    return sum(key_cost(k) for k in keys)


def _rarest(options: Iterable[Keys | None]) -> Keys | None:
    found = [k for k in options if k is not None]
    return min(found, key=_cost) if found else None


def required_keys(node: m._Node) -> Keys | None:
    """Keys at least one of which is in every item the node holds on; None: none such."""
    if isinstance(node, m._Phrase):
        return _rarest(_word_keys(w) for w in node.words)
    if isinstance(node, m._Near):
        return _rarest((required_keys(node.left), required_keys(node.right)))
    if isinstance(node, m._And):
        return _rarest(required_keys(o) for o in node.operands)
    if isinstance(node, m._Or):
        union: set[Key] = set()
        for o in node.operands:
            keys = required_keys(o)
            if keys is None:
                return None
            union |= keys
        return frozenset(union)
    if isinstance(node, m._Title | m._InField):
        return required_keys(node.operand)
    return None  # _Not, or anything new: evaluate always (safe)


Requirement = Keys | tuple[str, tuple["Requirement", ...]]  # keys, ("and" | "or", parts)


def _all(parts: list[Requirement]) -> Requirement | None:
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else ("and", tuple(parts))


def requirement(node: m._Node) -> Requirement | None:
    """What an item must hold for the node to hold, ignoring positions, fields and NOT: an
    AND/OR tree of key sets (None: nothing known). Checked before running the evaluator."""
    if isinstance(node, m._Phrase):
        return _all([_word_keys(w) for w in node.words])
    if isinstance(node, m._Near):
        return _all([r for p in (node.left, node.right) if (r := requirement(p)) is not None])
    if isinstance(node, m._And):
        return _all([r for o in node.operands if (r := requirement(o)) is not None])
    if isinstance(node, m._Or):
        parts = [requirement(o) for o in node.operands]
        if any(p is None for p in parts):
            return None
        return ("or", tuple(p for p in parts if p is not None))
    if isinstance(node, m._Title | m._InField):
        return requirement(node.operand)
    return None


def _meets(req: Requirement, has: _ItemKeys) -> bool:
    # plain loops, not all()/any() over generators: this runs for every candidate of every item
    if isinstance(req, frozenset):
        return has.any(req)
    kind, parts = req
    if kind == "and":
        for part in parts:  # noqa: SIM110 (measured: the generator costs ~15 %)
            if not _meets(part, has):
                return False
        return True
    for part in parts:  # noqa: SIM110
        if _meets(part, has):
            return True
    return False


# --- the compiled rule set -----------------------------------------------------------------


class CompiledRules(m.RuleSet):
    """Every rule of a config generation, compiled and indexed. `match` gives exactly what
    `Matcher(rules).match` gives. Raises `RuleQueryError` like `compile_rule`."""

    def __init__(self, rules: Iterable[RuleConfig], generation: int = 0) -> None:
        self.rules: tuple[RuleConfig, ...] = tuple(rules)
        self.generation = generation
        self.compiled: tuple[m.CompiledRule, ...] = tuple(m.compile_rule(r) for r in self.rules)
        folded: dict[str, list[int]] = {}
        stems: dict[str, dict[str, list[int]]] = {}
        prefixes: dict[str, list[int]] = {}
        always: list[int] = []
        # Per rule, what else an item must hold, checked before the evaluator runs.
        checks: dict[int, Requirement] = {}
        for i, rule in enumerate(self.compiled):
            keys = required_keys(rule.root)
            if keys is None:
                always.append(i)
                continue
            req = requirement(rule.root)
            if req is not None and req != keys:
                checks[i] = req
            for kind, algorithm, text in keys:
                if kind == "f":
                    folded.setdefault(text, []).append(i)
                elif kind == "s":
                    stems.setdefault(algorithm, {}).setdefault(text, []).append(i)
                else:
                    prefixes.setdefault(text, []).append(i)
        self._folded = folded
        self._stems = stems
        self._prefixes = prefixes
        self._prefix_lengths = tuple(sorted({len(p) for p in prefixes}))
        self._always = tuple(always)
        self._checks = checks
        self._filtered = any(r.feeds is not None or r.exclude_feeds for r in self.rules)
        self._blocked: dict[str, frozenset[int]] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (CompiledRules, (self.rules, self.generation))

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def stats(self) -> IndexStats:
        keys = len(self._folded) + len(self._prefixes) + sum(len(s) for s in self._stems.values())
        return IndexStats(
            rules=len(self.rules),
            indexed=len(self.rules) - len(self._always),
            always=len(self._always),
            keys=keys,
            prefix_lengths=self._prefix_lengths,
        )

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The Snowball algorithms an item is stemmed with (those some rule word needs)."""
        return tuple(self._stems)

    def _candidates(self, doc: m._Doc, feed: str | None) -> list[int]:
        found: set[int] = set(self._always)
        hit_prefixes: set[str] = set()
        folded, prefixes, lengths = self._folded, self._prefixes, self._prefix_lengths
        for fld in doc.fields:
            if not fld.tokens:
                continue
            words = fld.by_folded
            for w in words:
                hit = folded.get(w)
                if hit is not None:
                    found.update(hit)
            for algorithm, index in self._stems.items():
                for s in fld._stem_index(algorithm):
                    hit = index.get(s)
                    if hit is not None:
                        found.update(hit)
            if lengths:
                for w in words:
                    n = len(w)
                    for length in lengths:
                        if length > n:
                            break
                        hit = prefixes.get(w[:length])
                        if hit is not None:
                            found.update(hit)
                            hit_prefixes.add(w[:length])
        if feed is not None and self._filtered:
            found -= self._blocked_for(feed)
        checks = self._checks
        if any(i in checks for i in found):
            has = _ItemKeys(doc, hit_prefixes)
            found = {i for i in found if i not in checks or _meets(checks[i], has)}
        return sorted(found)

    def _blocked_for(self, feed: str) -> frozenset[int]:
        blocked = self._blocked.get(feed)
        if blocked is None:
            blocked = frozenset(i for i, r in enumerate(self.rules) if not m.applies_to(r, feed))
            self._blocked[feed] = blocked
        return blocked

    def explain(
        self,
        title: str,
        text: str,
        *,
        tags: Sequence[str] = (),
        author: str | None = None,
        url: str | None = None,
        feed: str | None = None,
    ) -> list[m.MatchResult]:
        """Why each matching rule matched, in rule order (as `Matcher.explain`)."""
        doc = m._Doc(title, text, tags, author, url)
        compiled = self.compiled
        return [
            r for i in self._candidates(doc, feed) if (r := compiled[i]._result(doc)) is not None
        ]


class _ItemKeys:
    """Which keys an analysed item has (built on demand, for the pre-filter)."""

    __slots__ = ("_doc", "_folded", "_prefixes", "_stems")

    def __init__(self, doc: m._Doc, prefixes: set[str]) -> None:
        self._doc = doc
        self._prefixes = prefixes
        self._folded: set[str] | None = None
        self._stems: dict[str, set[str]] = {}

    def has(self, key: Key) -> bool:
        kind, algorithm, text = key
        if kind == "f":
            return text in self.folded()
        if kind == "s":
            stems = self._stems.get(algorithm)
            if stems is None:
                stems = self._stems[algorithm] = set().union(
                    *(f._stem_index(algorithm) for f in self._doc.fields if f.tokens)
                )
            return text in stems
        if text in self._prefixes:
            return True
        found = any(w.startswith(text) for w in self.folded())
        if found:
            self._prefixes.add(text)
        return found

    def folded(self) -> set[str]:
        if self._folded is None:
            self._folded = set().union(*(f.by_folded for f in self._doc.fields))
        return self._folded

    def any(self, keys: Keys) -> bool:
        for key in keys:  # noqa: SIM110
            if self.has(key):
                return True
        return False


def compile_rules(rules: Iterable[RuleConfig], generation: int = 0) -> CompiledRules:
    """Compile and index a rule set (one config generation)."""
    return CompiledRules(rules, generation)
