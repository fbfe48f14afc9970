"""What the worker processes run: parsing and matching (imported in the workers only).

The main process never imports this module (nor feedparser, lxml or the rule compiler it
brings): `workers.WorkerPool` names these functions by their dotted path, and the worker
resolves the name. The forkserver preloads this module, so every worker starts with it.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace

from monitor.feeds.extract import extract_text
from monitor.feeds.parse import parse_feed
from monitor.rules.compile import CompiledRules, compile_rules
from monitor.types import Item, Match, ParsedFeed, RuleConfig


def parse(body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
    """The parsed document (FeedError when it is not a feed)."""
    return parse_feed(body, headers, url)


def extract_article(body: bytes, headers: Mapping[str, str], url: str) -> str:
    """An article page's main text (FeedError when there is none): full-text feeds."""
    return extract_text(body, headers, url)


# --- matching: one compiled rule set per worker process and rule-set id ---------------------
#
# The parent writes each rule set once, pickled, to a private temporary folder, named by its id
# (`Snapshot.matcher_id`), and sends only the id and that path with the items. A worker that
# has no compiled matcher for the id reads the file and compiles it, once per worker and config
# generation: a poll never pickles the rule set again, and no task waits for a round trip.

_COMPILED: OrderedDict[str, CompiledRules] = OrderedDict()
_KEEP = 2  # the current generation, and the previous one for polls still running with it


def match_items(
    matcher_id: str,
    rules_file: str,
    feed: str,
    items: Sequence[Item],
) -> list[list[Match]]:
    """The matches of every item, in the items' order (runs in a worker process). Only the
    matches travel back: the parent has the items."""
    compiled = _compiled(matcher_id, rules_file)
    return [_match_one(compiled, item, feed) for item in items]


def parse_and_match(
    body: bytes,
    headers: Mapping[str, str],
    url: str,
    matcher_id: str,
    rules_file: str,
    feed: str,
) -> tuple[ParsedFeed, list[list[Match]]]:
    """`parse`, then `match_items` over every item: one round trip for a feed none of whose
    items can have been stored yet (its first poll)."""
    parsed = parse_feed(body, headers, url)
    return parsed, match_items(matcher_id, rules_file, feed, parsed.items)


def _compiled(matcher_id: str, rules_file: str) -> CompiledRules:
    """This worker's compiled rule set for `matcher_id` (read and compiled on first use)."""
    compiled = _COMPILED.get(matcher_id)
    if compiled is None:
        with open(rules_file, "rb") as handle:
            rules: tuple[RuleConfig, ...] = pickle.load(handle)  # our own file, mode 0600
        compiled = _COMPILED[matcher_id] = compile_rules(rules)
        while len(_COMPILED) > _KEEP:
            _COMPILED.popitem(last=False)
    else:
        _COMPILED.move_to_end(matcher_id)
    return compiled


NOTE_MAX = 80  # characters of the reason an article was not read, shown before the snippet


def _match_one(compiled: CompiledRules, item: Item, feed: str) -> list[Match]:
    """An item's matches. A full-text item whose article was read is matched on its title,
    feed text and article text (source "article"); one whose article could not be read on
    its feed text, and its snippet says why the article is missing."""
    if item.article:
        whole = replace(item, text=f"{item.text}\n\n{item.article}" if item.text else item.article)
        return [replace(m, source="article") for m in compiled.match_item(whole, feed=feed)]
    matches = compiled.match_item(item, feed=feed)
    if item.article_error is None:
        return matches
    note = (
        item.article_error
        if len(item.article_error) <= NOTE_MAX
        else (item.article_error[: NOTE_MAX - 1] + "…")
    )
    return [
        replace(m, snippet=f"[feed text only; article not read: {note}] {m.snippet}")
        for m in matches
    ]
