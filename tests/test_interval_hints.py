"""Issue 8 item 3: Cache-Control max-age, RSS <ttl> and sy:updatePeriod lengthen a feed's
interval, never shorten it, never beyond 24 h; a 304 (or the same body) keeps the hints of the
last 200. End to end through the pipeline against a loopback server, and both parse paths."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import pipeline
from monitor.app import App, make_app
from monitor.feeds.parse import parse_feed, parse_feed_fast
from monitor.store.repo import Store
from monitor.types import Config, FeedConfig, RuleConfig, Settings
from tests.feedserver import FeedServer, Static
from tests.test_parse_fast import corpus as corpus

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SY = "http://purl.org/rss/1.0/modules/syndication/"


def rss(extra: str = "") -> bytes:
    return (
        f'<?xml version="1.0"?><rss version="2.0" xmlns:sy="{SY}"><channel><title>t</title>'
        f"{extra}<item><guid>a</guid><title>Hafen</title></item></channel></rss>"
    ).encode()


@pytest.mark.parametrize("fast", [True, False])
def test_both_parse_paths_read_ttl_and_syndication(fast: bool) -> None:
    doc = rss(
        "<ttl>180</ttl><sy:updatePeriod>daily</sy:updatePeriod>"
        "<sy:updateFrequency>2</sy:updateFrequency>"
    )
    parsed = parse_feed(doc, {}, "https://x.example/", fast=fast)
    assert (parsed.ttl, parsed.update_interval) == (timedelta(hours=3), timedelta(hours=12))
    assert (parse_feed_fast(doc, {}, "https://x.example/") is not None) is True
    plain = parse_feed(rss(), {}, "https://x.example/", fast=fast)
    assert (plain.ttl, plain.update_interval) == (None, None)


def test_corpus_hints_agree_between_paths(corpus: dict[str, bytes]) -> None:
    url = "https://corpus.example.org/feed"
    with_hints = 0
    for name, body in corpus.items():
        fast = parse_feed_fast(body, {}, url)
        if fast is None:
            continue
        slow = parse_feed(body, {}, url, fast=False)
        assert (fast.ttl, fast.update_interval) == (slow.ttl, slow.update_interval), name
        with_hints += fast.ttl is not None or fast.update_interval is not None
    assert with_hints > 0  # the corpus has feeds with <ttl> or sy:updatePeriod


def poll(app: App) -> None:
    async def run() -> None:
        async with app.fetcher() as fetcher:
            await pipeline.poll_all(app, fetcher)

    asyncio.run(run())


def delay(store: Store, name: str) -> timedelta:
    when = store.feed_state(name).next_poll_at
    assert when is not None
    return when - NOW


def test_hints_lengthen_never_shorten_capped_and_kept_for_304(
    tmp_path: Path, database_url: str
) -> None:
    quarter = timedelta(minutes=15)
    with FeedServer() as srv:
        cc = "Cache-Control"
        srv.routes["/cc"] = Static(rss(), etag='"v1"', headers={cc: "max-age=7200"})
        srv.routes["/short"] = Static(rss(), headers={cc: "max-age=60"})
        srv.routes["/week"] = Static(rss(), headers={cc: "public, max-age=604800"})
        srv.routes["/ttl"] = Static(rss("<ttl>180</ttl>"))  # no validators
        srv.routes["/sy"] = Static(rss("<sy:updatePeriod>hourly</sy:updatePeriod>"))
        feeds = [
            FeedConfig("cc", srv.url("/cc"), quarter),
            FeedConfig("short", srv.url("/short"), quarter),
            FeedConfig("week", srv.url("/week"), quarter),
            FeedConfig("ttl", srv.url("/ttl"), quarter),
            FeedConfig("sy", srv.url("/sy"), timedelta(hours=2)),
        ]
        config = Config(
            path=tmp_path / "config.toml",
            settings=Settings(database=database_url, timeout=timedelta(seconds=5)),
            channels=(),
            feeds=tuple(feeds),
            rules=(RuleConfig(name="hafen", query="Hafen"),),
        )
        store = Store.open(database_url)
        app = make_app(config, store=store, clock=lambda: NOW)
        jitter = timedelta(seconds=60)  # after a success: at most +60 s
        try:
            poll(app)
            for name, expected in [
                ("cc", timedelta(hours=2)),  # lengthened by max-age
                ("short", quarter),  # never shortened
                ("week", timedelta(hours=24)),  # capped at 24 h
                ("ttl", timedelta(hours=3)),  # <ttl> in minutes
                ("sy", timedelta(hours=2)),  # hourly: shorter than the interval, ignored
            ]:
                assert expected <= delay(store, name) <= expected + jitter, name
            # second pass: /cc answers 304 without Cache-Control, /ttl the same body again
            srv.routes["/cc"] = Static(rss(), etag='"v1"')
            poll(app)
            assert srv.requests_for("/cc")[-1].headers.get("if-none-match") == '"v1"'
            assert timedelta(hours=2) <= delay(store, "cc") <= timedelta(hours=2) + jitter
            assert timedelta(hours=3) <= delay(store, "ttl") <= timedelta(hours=3) + jitter
            # a new 200 without hints brings the interval back to the configured one
            srv.routes["/cc"] = Static(rss("<ttl>0</ttl>"), etag='"v2"')
            poll(app)
            assert quarter <= delay(store, "cc") <= quarter + jitter
        finally:
            app.close()
            store.close()
