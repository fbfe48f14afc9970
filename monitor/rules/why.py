"""Why a rule does not match a text: which part failed, for `monitor test-rule`.

A rule is the AND of its parts: `any` (one entry must occur), each `all` entry, the `query`,
and `none` (no entry may occur). `why_not` evaluates each part on its own, with the very
evaluators `compile_rule` builds (so it can never disagree with the matcher), and names the
parts that are false. For the query it goes down through AND (and `title:(...)` around an AND)
to the first operand that is false and shows it as the user wrote it.

Pure code: a rule and a text in, `Failure`s out; an empty tuple means the rule matches.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.rules import query as q
from monitor.rules.match import _ALL_FIELDS, TITLE, _Compiler, _Doc
from monitor.rules.text import stemmer_name
from monitor.types import RuleConfig


@dataclass(frozen=True, slots=True)
class Failure:
    """One part of a rule that is false for the text.

    `part` is "any", "all", "none" or "query"; `terms` the entries at fault as written in the
    rule (`any`: every entry, none occurs; `all`: the missing ones; `none`: the ones that
    occur; `query`: the first false sub-expression); `reason` says why, in words.
    """

    part: str
    terms: tuple[str, ...]
    reason: str

    def __str__(self) -> str:
        shown = ", ".join(f'"{t}"' for t in self.terms)
        return f"{self.part}: {shown} {self.reason}"


def why_not(rule: RuleConfig, title: str, text: str) -> tuple[Failure, ...]:
    """Every part of `rule` that is false for an item (`title`, `text`), in the order any,
    all, none, query; empty when the rule matches. The rule must compile (see compile_rule)."""
    algorithms = (stemmer_name(code) for code in rule.languages)
    compiler = _Compiler(tuple(dict.fromkeys(a for a in algorithms if a is not None)))
    doc = _Doc(title, text)

    def occurs(entry: str) -> bool:
        phrase = compiler.phrase(q.parse_entry(entry))
        return phrase.evaluate(doc, _ALL_FIELDS) is not None

    failures: list[Failure] = []
    if rule.any and not any(occurs(e) for e in rule.any):
        reason = "does not occur" if len(rule.any) == 1 else "(none of them occurs)"
        failures.append(Failure("any", rule.any, reason))
    missing = tuple(e for e in rule.all if not occurs(e))
    if missing:
        failures.append(Failure("all", missing, _plural(missing, "does not occur")))
    present = tuple(e for e in rule.none if occurs(e))
    if present:
        failures.append(Failure("none", present, _plural(present, "occurs") + ", excluded"))
    if rule.query is not None:
        node = q.parse_query(rule.query)
        if compiler.node(node).evaluate(doc, _ALL_FIELDS) is None:
            culprit, in_title = _first_false(compiler, doc, node, _ALL_FIELDS)
            fields = (TITLE,) if in_title else _ALL_FIELDS
            reason = _reason(compiler, doc, culprit, fields, rule.query)
            failures.append(Failure("query", (q.source(rule.query, culprit),), reason))
    return tuple(failures)


def _plural(terms: tuple[str, ...], verb: str) -> str:
    if len(terms) == 1:
        return verb
    return {"does not occur": "do not occur", "occurs": "occur"}[verb]


def _first_false(
    compiler: _Compiler, doc: _Doc, node: q.Node, fields: tuple[int, ...]
) -> tuple[q.Node, bool]:
    """The first false operand of a false node, going down through AND; and whether it is
    evaluated on the title alone."""
    match node:
        case q.And(operands):
            for operand in operands:
                if compiler.node(operand).evaluate(doc, fields) is None:
                    return _first_false(compiler, doc, operand, fields)
        case q.Title(operand) if isinstance(operand, q.And):
            culprit, _ = _first_false(compiler, doc, operand, (TITLE,))
            return culprit, True
    return node, fields == (TITLE,)


def _reason(
    compiler: _Compiler, doc: _Doc, node: q.Node, fields: tuple[int, ...], query: str
) -> str:
    where = " in the title" if fields == (TITLE,) else ""
    match node:
        case q.Not():
            return f"is false: the excluded text occurs{where}"
        case q.Or():
            return f"is false: none of its alternatives holds{where}"
        case q.Near(left, right, distance):
            absent = [p for p in (left, right) if compiler.phrase(p).evaluate(doc, fields) is None]
            if absent:
                return f'is false: "{q.source(query, absent[0])}" does not occur{where}'
            return f"is false: both occur{where}, but not within {distance} words of each other"
        case q.Title(operand) if isinstance(operand, q.Phrase):
            return "is false: not in the title"
        case q.Title():
            return "is false for the title"
        case _:
            return f"is false: does not occur{where}"
