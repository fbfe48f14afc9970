"""Issue 8 item 2: no work for bytes already seen.

A 200 whose body hashes as the last one parsed is not parsed again (nor matched, nor stored);
items already stored are never matched again. Counted through the worker pool the pipeline
really uses, against a loopback server that sends no validators (no ETag, no Last-Modified).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

from monitor import pipeline
from monitor.app import App, make_app
from monitor.store.repo import Store
from monitor.types import Config, FeedConfig, Item, Match, ParsedFeed, RuleConfig, Settings
from monitor.workers import WorkerPool
from tests.feedserver import FeedServer, Static


class CountingPool(WorkerPool):
    """The real worker pool, counting what it is asked to do."""

    def __init__(self) -> None:
        super().__init__(workers=1)
        self.parsed = 0
        self.matched: list[str] = []  # keys of the items sent to matching

    async def parse(self, body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
        self.parsed += 1
        return await super().parse(body, headers, url)

    async def match(
        self, matcher_id: str, rules: tuple[RuleConfig, ...], feed: str, items: Sequence[Item]
    ) -> list[tuple[Item, list[Match]]]:
        self.matched += [i.key for i in items]
        return await super().match(matcher_id, rules, feed, items)

    async def parse_and_match(
        self,
        body: bytes,
        headers: Mapping[str, str],
        url: str,
        matcher_id: str,
        rules: tuple[RuleConfig, ...],
        feed: str,
    ) -> tuple[ParsedFeed, list[tuple[Item, list[Match]]]]:
        """A feed's first poll: parsed and matched in one round trip."""
        self.parsed += 1
        parsed, found = await super().parse_and_match(body, headers, url, matcher_id, rules, feed)
        self.matched += [i.key for i in parsed.items]
        return parsed, found


def rss(*guids: str) -> bytes:
    items = "".join(
        f"<item><guid>{g}</guid><title>Hafen {g}</title><link>https://n.example/{g}</link></item>"
        for g in guids
    )
    return f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()


def one_pass(app: App) -> list[pipeline.FeedOutcome]:
    async def run() -> list[pipeline.FeedOutcome]:
        async with app.fetcher() as fetcher:
            return await pipeline.poll_all(app, fetcher)

    return asyncio.run(run())


def test_the_same_body_is_not_parsed_again_and_stored_items_are_not_matched_again(
    tmp_path: Path, database_url: str
) -> None:
    with FeedServer() as srv:
        srv.routes["/f"] = Static(rss("a", "b"))  # no ETag, no Last-Modified
        config = Config(
            path=tmp_path / "config.toml",
            settings=Settings(database=database_url, timeout=timedelta(seconds=5)),
            channels=(),
            feeds=(FeedConfig("f", srv.url("/f"), timedelta(minutes=15)),),
            rules=(RuleConfig(name="hafen", query="Hafen"),),
        )
        store = Store.open(database_url)
        pool = CountingPool()
        app = make_app(config, store=store, executor=pool)
        try:
            first = one_pass(app)
            assert (first[0].status, first[0].new_items, pool.parsed) == ("new", 2, 1)
            hashed = store.feed_state("f").body_hash
            assert hashed is not None and len(hashed) == 64

            second = one_pass(app)  # a 200 with the very same bytes
            assert srv.hits("/f") == 2
            assert pool.parsed == 1, "the same body was parsed again"
            assert (second[0].status, second[0].new_items, second[0].matches) == ("unchanged", 0, 0)
            assert len(store.items()) == 2 and len(store.matches()) == 2
            state = store.feed_state("f")
            assert state.consecutive_failures == 0 and state.body_hash == hashed

            # a changed body is parsed; only the item not stored before is matched
            srv.routes["/f"] = Static(rss("a", "b", "c"))
            third = one_pass(app)
            assert pool.parsed == 2
            assert pool.matched == ["a", "b", "c"]  # a, b on the first pass; c alone now
            assert (third[0].new_items, third[0].matches) == (1, 1)
            assert store.feed_state("f").body_hash not in (None, hashed)
        finally:
            app.close()
            store.close()


def test_an_empty_or_broken_document_is_parsed_every_time(tmp_path: Path) -> None:
    """So that `monitor poll` keeps saying "empty" or showing the problem."""
    database_url = f"sqlite:///{tmp_path / 'm.db'}"
    with FeedServer() as srv:
        srv.routes["/empty"] = Static(rss())
        srv.routes["/broken"] = Static(rss("a").replace(b"</channel>", b""))
        config = Config(
            path=tmp_path / "config.toml",
            settings=Settings(database=database_url, timeout=timedelta(seconds=5)),
            channels=(),
            feeds=(
                FeedConfig("empty", srv.url("/empty"), timedelta(minutes=15)),
                FeedConfig("broken", srv.url("/broken"), timedelta(minutes=15)),
            ),
            rules=(),
        )
        store = Store.open(database_url)
        pool = CountingPool()
        app = make_app(config, store=store, executor=pool)
        try:
            for _ in range(2):
                outcomes = {o.feed: o for o in one_pass(app)}
                assert outcomes["empty"].status == "empty"
                assert outcomes["broken"].error is not None
            assert pool.parsed == 4
            assert store.feed_state("empty").body_hash is None
        finally:
            app.close()
            store.close()
