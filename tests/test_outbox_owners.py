"""Leases name their owner: the daemon takes over those of a process that is gone, and keeps
those of a live one (a `monitor poll` beside it), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.decide import QueuedAlert
from monitor.store.repo import Store
from monitor.types import AlertContent, FeedConfig, Item, Match

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
FEED = FeedConfig(name="news", url="http://127.0.0.1:9/feed", interval=timedelta(minutes=5))


def queue(store: Store, count: int) -> None:
    items = [Item(f"k{n}", f"k{n}", None, None, f"Titel {n}", "Text", NOW) for n in range(count)]
    with store.transaction() as tx:
        ids = tx.insert_items(tx.feed_id(FEED.name), items, NOW)
        for key, item_id in ids.items():
            content = AlertContent("t", None, FEED.name, None, (Match("r", ("K",), "s"),), key)
            tx.enqueue(item_id, QueuedAlert("desk", content), NOW)


@pytest.fixture
def daemon(database_url: str) -> Iterator[Store]:
    s = Store.open(database_url)
    s.sync_feeds([FEED])
    yield s
    s.close()


def test_leases_of_a_live_process_are_kept_and_of_a_gone_one_taken_over(
    daemon: Store, database_url: str
) -> None:
    queue(daemon, 3)
    poll = Store.open(database_url)  # `monitor poll` beside the daemon
    try:
        held = poll.claim_next_alert("desk", NOW, LEASE)
        assert held is not None
        crashed = Store.open(database_url)  # a process that will die holding a lease
        lost = crashed.claim_next_alert("desk", NOW, LEASE)
        assert lost is not None
        mine = daemon.claim_next_alert("desk", NOW, LEASE)
        assert mine is not None
        assert daemon.take_over_leases(NOW) == {}  # everyone is alive
        crashed.close()  # its lock goes with it, as when the process is killed
        assert daemon.take_over_leases(NOW + timedelta(seconds=1)) == {crashed.owner: 1}
        again = daemon.claim_next_alert("desk", NOW + timedelta(seconds=1), LEASE)
        assert again is not None and again.alert_id == lost.alert_id
        # the live poll's lease and the daemon's own were kept
        assert daemon.claim_next_alert("desk", NOW + timedelta(seconds=2), LEASE) is None
        assert poll.mark_delivered(held, NOW + timedelta(seconds=3))
        assert daemon.mark_delivered(mine, NOW + timedelta(seconds=3))
    finally:
        poll.close()


def test_owner_names_differ_per_process_and_store(database_url: str) -> None:
    a, b = Store.open(database_url), Store.open(database_url)
    try:
        assert a.owner != b.owner
    finally:
        a.close()
        b.close()
