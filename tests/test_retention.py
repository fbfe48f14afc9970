"""Retention: items, matches and delivered alerts older than `retention` are pruned in small
batches; an item keeps its identity (feed, key), so it is never stored or alerted again;
undelivered alerts are never touched; SQLite gives the space back (incremental vacuum),
also in a database created before auto_vacuum was set."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.store.repo import Store
from monitor.types import Match, Pruned
from tests.test_store import FEED, NOW, alert, item

OLD = NOW - timedelta(days=100)
CUTOFF = NOW - timedelta(days=90)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store.open(database_url)
    s.sync_feeds([FEED])
    yield s
    s.close()


def fill(store: Store, old: int, new: int) -> dict[str, int]:
    """`old` items seen 100 days ago (matched; alerts delivered but for the first one), `new`
    items seen now (matched, alerted and delivered)."""
    with store.transaction() as tx:
        fid = tx.feed_id(FEED.name)
        ids = tx.insert_items(fid, [item(f"old{n}") for n in range(old)], OLD)
        ids |= tx.insert_items(fid, [item(f"new{n}") for n in range(new)], NOW)
        for key, iid in ids.items():
            when = OLD if key.startswith("old") else NOW
            tx.insert_match(iid, Match("nk", ("Kursk",), "… Kursk …"), when, alerted=True)
            tx.enqueue(iid, alert("desk", f"nm-{key}"), when)
    lease = timedelta(minutes=5)
    while (pending := store.claim_next_alert("desk", NOW, lease)) is not None:
        if pending.alert_id != "nm-old0":  # one old alert never got through
            at = OLD if pending.alert_id.startswith("nm-old") else NOW
            store.mark_delivered(pending, at)
        else:
            store.mark_failed(pending, "down", NOW + timedelta(days=1))
    return ids


def prune_all(store: Store, batch: int) -> tuple[Pruned, int]:
    total, batches = Pruned(), 0
    while pruned := store.prune(CUTOFF, NOW, batch):
        batches += 1
        total = Pruned(
            total.items + pruned.items,
            total.matches + pruned.matches,
            total.alerts + pruned.alerts,
        )
    return total, batches


def test_old_rows_are_pruned_in_batches_and_identities_kept(store: Store) -> None:
    fill(store, old=7, new=3)
    total, batches = prune_all(store, batch=3)
    assert total == Pruned(items=7, matches=7, alerts=6)  # the undelivered alert stays
    assert batches == 3  # 7 rows of each kind, 3 per transaction
    assert store.outbox_counts() == {"desk": (1, 3)}
    assert [m.title for m in store.matches()] == ["Titel new2", "Titel new1", "Titel new0"]
    assert {i.title for i in store.items()} == {"Titel new0", "Titel new1", "Titel new2"}
    # the undelivered alert of a pruned item still carries everything to send it
    left = store.claim_next_alert("desk", NOW + timedelta(days=2), timedelta(minutes=5))
    assert left is not None and left.alert_id == "nm-old0" and left.content.title == "t"
    # identities kept: the feed still knows every old key, and storing it again is a no-op
    keys = [f"old{n}" for n in range(7)]
    assert store.seen_keys(FEED.name, keys) == set(keys)
    with store.transaction() as tx:
        assert tx.insert_items(tx.feed_id(FEED.name), [item("old3")], NOW) == {}
    assert prune_all(store, batch=3) == (Pruned(), 0)  # nothing left to do


def test_sqlite_space_is_reclaimed_even_in_a_database_made_before(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    url = f"sqlite:///{path}"
    store = Store.open(url)
    store.sync_feeds([FEED])
    store.close()
    raw = sqlite3.connect(path)  # as a database created before this release
    raw.execute("PRAGMA auto_vacuum=NONE")
    raw.execute("VACUUM")
    assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    raw.close()

    store = Store.open(url)  # converted once
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() == 2
        big = item("x")
        with store.transaction() as tx:
            fid = tx.feed_id(FEED.name)
            many = [
                type(big)(**{**{f: getattr(big, f) for f in big.__slots__}, "key": f"old{n}"})
                for n in range(2000)
            ]
            many = [i.__class__(**{**_fields(i), "text": "Kursk " * 400}) for i in many]
            tx.insert_items(fid, many, OLD)
        size = _checkpointed_size(path)
        assert size > 4_000_000
        assert prune_all(store, batch=500)[0].items == 2000
        store.reclaim_space()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA freelist_count").scalar() == 0
        assert _checkpointed_size(path) < size / 4
    finally:
        store.close()


def _checkpointed_size(path: Path) -> int:
    """The database file's size once the WAL is folded into it."""
    check = sqlite3.connect(path)
    try:
        check.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        check.close()
    return path.stat().st_size


def _fields(i: object) -> dict[str, object]:
    return {f: getattr(i, f) for f in i.__slots__}  # type: ignore[attr-defined]


def test_retention_setting(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[monitor]\n")
    assert load_config(path, {}).settings.retention == timedelta(days=90)
    path.write_text('[monitor]\nretention = "off"\n')
    assert load_config(path, {}).settings.retention is None
    path.write_text('[monitor]\nretention = "26w"\nwatch_config = false\n')
    settings = load_config(path, {}).settings
    assert settings.retention == timedelta(weeks=26) and not settings.watch_config
    path.write_text('[monitor]\nretention = "12h"\n')
    with pytest.raises(ConfigError, match=r"monitor.retention: must be at least 1d"):
        load_config(path, {})
