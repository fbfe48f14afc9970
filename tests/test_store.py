"""Storage on real SQLite files and the real PostgreSQL server (see conftest.database_url)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from monitor.alerts.decide import Failed, Fetched, Gone, QueuedAlert
from monitor.errors import StorageError
from monitor.store.models import Base
from monitor.store.repo import MIGRATIONS, Store, make_engine
from monitor.types import AlertContent, FeedConfig, Item, Match, Message

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FEED = FeedConfig(name="tagesschau", url="http://127.0.0.1:9/feed", interval=timedelta(minutes=5))


def item(key: str, link: str | None = None) -> Item:
    return Item(
        key=key,
        guid=key,
        link=link,
        canonical_link=link,
        title=f"Titel {key}",
        text="Text über Kursk",
        published=NOW - timedelta(hours=1),
    )


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store.open(database_url)
    s.sync_feeds([FEED])
    yield s
    s.close()


def fetched(etag: str, moved_to: str | None = None) -> Fetched:
    return Fetched(NOW, NOW, etag=etag, last_modified=None, moved_to=moved_to, document=None)


def alert(channel: str, alert_id: str) -> QueuedAlert:
    content = AlertContent("t", None, FEED.name, None, (Match("nk", ("K",), "s"),), alert_id)
    return QueuedAlert(channel, content)


def test_migrations_create_exactly_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_opening_twice_is_a_no_op_migration(database_url: str) -> None:
    Store.open(database_url).close()
    s = Store.open(database_url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with s.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    s.close()


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    s = Store.open(f"sqlite:///{tmp_path}/sub/dir/m.db")  # parent folders are created
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    s.close()


def test_insert_or_ignore_finds_new_items(store: Store) -> None:
    with store.transaction() as tx:
        fid = tx.feed_id(FEED.name)
        first = tx.insert_items(fid, [item("a")], NOW)
        again = tx.insert_items(fid, [item("a"), item("b")], NOW)
    assert set(first) == {"a"} and set(again) == {"b"}
    assert first["a"] != again["b"]
    assert store.seen_keys(FEED.name, ["a", "b", "c"]) == {"a", "b"}
    many = [item(f"k{n}") for n in range(1000)]  # more than one statement's worth
    with store.transaction() as tx:
        assert len(tx.insert_items(tx.feed_id(FEED.name), many, NOW)) == 1000


def test_a_failed_transaction_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.insert_items(tx.feed_id(FEED.name), [item("a")], NOW)
        tx.apply(FEED.name, fetched('"v2"'))
        raise RuntimeError("crash between insert and commit")
    assert store.seen_keys(FEED.name, ["a"]) == set()
    assert store.feed_state(FEED.name).etag is None


def test_one_alert_per_rule_and_article(store: Store) -> None:
    with store.transaction() as tx:
        fid = tx.feed_id(FEED.name)
        ids = tx.insert_items(
            fid, [item("a", "https://x.org/1"), item("b", "https://x.org/1")], NOW
        )
        a, b = ids["a"], ids["b"]
        assert tx.claim_link("nk", "https://x.org/1", a)
        assert not tx.claim_link("nk", "https://x.org/1", b)
        assert tx.claim_link("other-rule", "https://x.org/1", b)


def test_outbox_claim_deliver_and_retry(store: Store) -> None:
    with store.transaction() as tx:
        iid = tx.insert_items(tx.feed_id(FEED.name), [item("a")], NOW)["a"]
        tx.insert_match(iid, Match("nk", ("Kursk",), "… Kursk …"), NOW, alerted=True)
        tx.enqueue(iid, alert("desk", "nm-1"), NOW)
        tx.enqueue(iid, alert("osint", "nm-2"), NOW)
    lease = timedelta(minutes=5)
    desk = store.claim_next_alert("desk", NOW, lease)
    osint = store.claim_next_alert("osint", NOW, lease)
    assert desk is not None and osint is not None
    assert store.claim_next_alert("desk", NOW + timedelta(minutes=1), lease) is None  # leased
    assert store.mark_delivered(desk, NOW)
    assert store.mark_failed(osint, "connection refused", NOW + timedelta(seconds=30))
    assert store.claim_next_alert("desk", NOW + timedelta(hours=1), lease) is None  # sent
    assert store.claim_next_alert("osint", NOW + timedelta(seconds=10), lease) is None  # backoff
    again = store.claim_next_alert("osint", NOW + timedelta(seconds=31), lease)
    assert again is not None and again.attempts == 1
    assert store.mark_failed(again, "still down", NOW + timedelta(hours=1))
    forced = store.claim_next_alert("osint", NOW + timedelta(minutes=1), lease, all_pending=True)
    assert forced is not None  # `monitor poll` retries what is backing off...
    later = NOW + timedelta(minutes=2)  # ...but never what another sender holds
    assert store.claim_next_alert("osint", later, lease, all_pending=True) is None
    assert store.mark_failed(forced, "still down", NOW + timedelta(hours=1))
    assert store.outbox_counts() == {"desk": (0, 1), "osint": (1, 0)}
    last = store.claim_next_alert("osint", NOW + timedelta(days=1), lease, all_pending=True)
    assert last is not None and last.attempts == 3


def test_a_sender_that_lost_its_lease_cannot_mark_the_alert(store: Store) -> None:
    with store.transaction() as tx:
        iid = tx.insert_items(tx.feed_id(FEED.name), [item("a")], NOW)["a"]
        tx.enqueue(iid, alert("desk", "nm-1"), NOW)
    lease = timedelta(minutes=5)
    slow = store.claim_next_alert("desk", NOW, lease)
    assert slow is not None
    fast = store.claim_next_alert("desk", NOW + timedelta(minutes=6), lease)  # lease ran out
    assert fast is not None
    assert store.mark_delivered(fast, NOW + timedelta(minutes=6))
    assert not store.mark_delivered(slow, NOW + timedelta(minutes=7))
    assert store.claim_next_alert("desk", NOW + timedelta(days=1), lease, all_pending=True) is None


def test_an_alert_a_channel_keeps_refusing_does_not_block_the_others(store: Store) -> None:
    with store.transaction() as tx:
        ids = tx.insert_items(tx.feed_id(FEED.name), [item("a"), item("b")], NOW)
        tx.enqueue(ids["a"], alert("desk", "nm-a"), NOW)
        tx.enqueue(ids["b"], alert("desk", "nm-b"), NOW)
    lease = timedelta(minutes=5)
    first = store.claim_next_alert("desk", NOW, lease, all_pending=True)
    assert first is not None and first.alert_id == "nm-a"
    store.mark_failed(first, "550 rejected", NOW + timedelta(hours=1))
    second = store.claim_next_alert("desk", NOW, lease, all_pending=True)
    assert second is not None and second.alert_id == "nm-b"


def test_reads_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    """A reader finishes while a writer holds SQLite's write lock, and sees the last commit."""
    path = tmp_path / "m.db"
    store = Store.open(f"sqlite:///{path}")
    store.sync_feeds([FEED])
    with store.transaction() as tx:
        tx.apply(FEED.name, fetched('"committed"'))
    seen: list[str | None] = []
    reader = threading.Thread(target=lambda: seen.append(store.feed_state(FEED.name).etag))
    try:
        with store.transaction() as tx:
            tx.apply(FEED.name, fetched('"uncommitted"'))  # the write takes the lock
            other = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:  # proof that the lock is held: a second writer cannot start
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
            reader.start()
            # busy_timeout is 30 s: a reader that waited for the lock would still be waiting
            reader.join(timeout=15)
            assert not reader.is_alive(), "the read waited for the writer's transaction"
    finally:
        if reader.ident is not None:
            reader.join()
        store.close()
    assert seen == ['"committed"']  # the writer's uncommitted change is not visible


def test_matches_newest_first_with_filters(store: Store) -> None:
    with store.transaction() as tx:
        fid = tx.feed_id(FEED.name)
        for n, key in enumerate(["a", "b", "c"]):
            iid = tx.insert_items(fid, [item(key)], NOW)[key]
            rule = "nk" if key != "b" else "other"
            at = NOW + timedelta(minutes=n)
            tx.insert_match(iid, Match(rule, ("Kursk", "Курск"), "s"), at, alerted=True)
    found = store.matches()
    assert [m.title for m in found] == ["Titel c", "Titel b", "Titel a"]
    assert found[0].terms == ("Kursk", "Курск")
    assert found[0].matched_at == NOW + timedelta(minutes=2)
    assert found[0].matched_at.tzinfo is not None
    assert [m.title for m in store.matches(rule="nk")] == ["Titel c", "Titel a"]
    assert len(store.matches(since=NOW + timedelta(minutes=1))) == 2


def test_changed_feed_url_resets_http_state(store: Store) -> None:
    with store.transaction() as tx:
        tx.apply(FEED.name, fetched('"1"', moved_to="http://127.0.0.1:9/moved"))
        tx.apply(FEED.name, Gone(NOW, "410 Gone"))
    store.sync_feeds([FEED])  # same config URL: the permanent redirect and state stay
    assert store.feed_state(FEED.name).url == "http://127.0.0.1:9/moved"
    moved = FeedConfig(FEED.name, "http://127.0.0.1:9/new", FEED.interval)
    store.sync_feeds([moved])
    state = store.feed_state(FEED.name)
    assert (state.url, state.etag, state.gone) == ("http://127.0.0.1:9/new", None, False)


def test_outbox_rows_queued_before_0003_keep_their_text(database_url: str) -> None:
    """Revision 0003 moves rendered rows into `content` as version 0: sent exactly as they
    were rendered."""
    engine = make_engine(database_url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0002")
        connection.execute(
            text(
                "INSERT INTO feeds (name, config_url, url, consecutive_failures, gone, "
                "items_seen) VALUES ('news', 'http://x/', 'http://x/', 0, false, 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO items (feed_id, key, title, text, first_seen_at) "
                "SELECT id, 'a', 'T', 'x', :now FROM feeds"
            ),
            {"now": NOW},
        )
        connection.execute(
            text(
                "INSERT INTO outbox (item_id, channel, alert_id, title, body, created_at, "
                "attempts, next_attempt_at) SELECT id, 'desk', 'nm-old', 'Old title', "
                ":body, :now, 0, :now FROM items"
            ),
            {"now": NOW, "body": "Title: Old\nalert-id: nm-old"},
        )
    engine.dispose()
    store = Store.open(database_url)
    try:
        pending = store.claim_next_alert("desk", NOW, timedelta(minutes=5))
        assert pending is not None
        assert pending.content == Message("Old title", "Title: Old\nalert-id: nm-old")
    finally:
        store.close()


def test_database_errors_leave_the_store_as_storage_errors(tmp_path: Path) -> None:
    """No raw SQLAlchemy error crosses the store's boundary (reads, writes, plans)."""
    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        store.sync_feeds([FEED])
        with store.engine.begin() as conn:
            conn.execute(text("DROP TABLE outbox"))
        with pytest.raises(StorageError, match="no such table: outbox"):
            store.outbox_counts()
        with pytest.raises(StorageError, match="no such table: outbox"):
            store.claim_next_alert("desk", NOW, timedelta(minutes=5))
        with pytest.raises(StorageError, match="no such table"), store.transaction() as tx:
            tx.enqueue(1, alert("desk", "nm-1"), NOW)
    finally:
        store.close()


def test_feed_rows_written_in_batches_equal_those_written_one_by_one(store: Store) -> None:
    """`apply_many` (the 304s of a pass, in a few executemany statements) leaves the rows as
    `apply` does, and refuses a feed without a row instead of writing nothing silently."""
    other = FeedConfig("other", "http://127.0.0.1:9/other", FEED.interval)
    third = FeedConfig("third", "http://127.0.0.1:9/third", FEED.interval)
    store.sync_feeds([FEED, other, third])
    failed = Failed(NOW, "HTTP 500", consecutive_failures=2, next_poll_at=NOW, retry_until=None)
    with store.transaction() as tx:
        tx.apply(FEED.name, fetched('"a"'))
        tx.apply_many([(other.name, fetched('"a"')), (third.name, failed)])
    one, many, bad = (store.feed_state(n) for n in (FEED.name, other.name, third.name))
    assert (many.etag, many.last_success_at, many.consecutive_failures) == ('"a"', NOW, 0)
    assert (one.etag, one.last_success_at) == (many.etag, many.last_success_at)
    assert (bad.consecutive_failures, bad.last_error, bad.failing_since) == (2, "HTTP 500", NOW)
    with pytest.raises(StorageError, match="no row"), store.transaction() as tx:
        tx.apply_many([(FEED.name, fetched('"b"')), ("nowhere", fetched('"b"'))])
    assert store.feed_state(FEED.name).etag == '"a"'  # the whole transaction rolled back
    with pytest.raises(StorageError, match="nowhere"), store.transaction() as tx:
        tx.apply("nowhere", fetched('"b"'))
