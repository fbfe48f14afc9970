"""Polls that finish together are written together: one transaction for many plans, and a plan
that fails is written alone so it never costs the others."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.alerts.decide import Fetched, PollPlan
from monitor.app import make_app
from monitor.errors import StorageError
from monitor.store.repo import Recorded, Store
from monitor.types import Config, FeedConfig, Settings

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def plan(feed: str, etag: str) -> PollPlan:
    update = Fetched(NOW, NOW + timedelta(minutes=15), etag, None, None, None)
    return PollPlan(feed, update)


def test_plans_waiting_for_the_writer_share_one_transaction(tmp_path: Path) -> None:
    feeds = tuple(
        FeedConfig(f"f{i}", f"http://127.0.0.1:9/{i}", timedelta(minutes=15)) for i in range(6)
    )
    config = Config(
        path=tmp_path / "config.toml",
        settings=Settings(database=f"sqlite:///{tmp_path / 'm.db'}"),
        channels=(),
        feeds=feeds,
        rules=(),
    )
    store = Store.open(config.settings.database)
    app = make_app(config, store=store)
    batches: list[list[str]] = []
    real = store.record_polls

    def counting(plans: list[PollPlan]) -> list[Recorded]:
        batches.append([p.feed for p in plans])
        return real(plans)

    store.record_polls = counting  # type: ignore[method-assign]
    plans = [plan(f.name, f'"{i}"') for i, f in enumerate(feeds)]
    plans.insert(3, plan("no-such-feed", '"x"'))  # its row does not exist: it fails

    async def all_at_once() -> list[Recorded | BaseException]:
        return await asyncio.gather(*(app.record(p) for p in plans), return_exceptions=True)

    try:
        results = asyncio.run(all_at_once())
        states = store.feed_states()
    finally:
        app.close()
        store.close()
    assert isinstance(results[3], StorageError)
    assert all(isinstance(r, Recorded) for i, r in enumerate(results) if i != 3)
    assert [states[f.name].etag for f in feeds] == [f'"{i}"' for i in range(6)]
    # the first writer went alone; the six waiting behind it went in one transaction, which
    # failed because of the bad plan, and were then written one by one
    assert batches[0] == ["f0"]
    assert len(batches[1]) == 6 and "no-such-feed" in batches[1]
    assert batches[2:] == [[name] for name in batches[1]]  # one by one
