"""Several monitors writing one PostgreSQL database at once (`monitor poll` beside `monitor run`).

SQLite lets one writer in at a time (BEGIN IMMEDIATE); on PostgreSQL two polls of feeds that
carry the same articles in a different order used to claim the articles' links in opposite
orders and deadlock: PostgreSQL killed one transaction and `monitor poll` printed the raw
error with a Python traceback. Two first starts at once raced in the migrations and in
`sync_feeds` the same way (a unique violation, exit 1).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from monitor.store.repo import Store
from monitor.types import FeedConfig, Item
from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SOON = 30.0  # seconds: a bound for waits that end at once when all is well


def feed(name: str) -> FeedConfig:
    return FeedConfig(name=name, url=f"http://127.0.0.1:9/{name}", interval=timedelta(hours=1))


def item(key: str, link: str) -> Item:
    return Item(
        key=key,
        guid=key,
        link=link,
        canonical_link=link,
        title=f"Bericht {key}",
        text="Truppen bei Kursk",
        published=NOW,
    )


def named(url: str, application: str) -> str:
    """The same database, on connections that pg_stat_activity shows as `application`."""
    named_url = make_url(url).update_query_dict({"application_name": application})
    return named_url.render_as_string(hide_password=False)


def waits_for_a_lock(store: Store, application: str) -> bool:
    with store.engine.connect() as conn:
        query = text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = :app AND wait_event_type = 'Lock'"
        )
        return bool(conn.execute(query, {"app": application}).scalar())


def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SOON
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def two_stores(postgres_url: str) -> Iterator[tuple[Store, Store]]:
    """Two stores on one database, as two monitor processes would have."""
    first = Store.open(postgres_url)
    second = Store.open(named(postgres_url, "monitor-race-second"))
    yield first, second
    first.close()
    second.close()


def test_two_polls_claiming_the_same_articles_in_opposite_orders_do_not_deadlock(
    two_stores: tuple[Store, Store],
) -> None:
    """Feed a lists articles L1, L2; feed b lists L2, L1; each poll claims them in its order."""
    first, second = two_stores
    first.sync_feeds([feed("a"), feed("b")])
    one_claimed, two_claimed = threading.Event(), threading.Event()
    won: dict[str, list[bool]] = {}
    errors: list[BaseException] = []

    def poll_a() -> None:
        with first.transaction() as tx:
            ids = tx.insert_items(tx.feed_id("a"), [item("a1", "L1"), item("a2", "L2")], NOW)
            claims = [tx.claim_link("kursk", "L1", ids["a1"])]
            one_claimed.set()
            # go on once the other poll has claimed L2, or is held back before it could
            until(
                lambda: two_claimed.is_set() or waits_for_a_lock(first, "monitor-race-second"),
                "the second poll",
            )
            claims.append(tx.claim_link("kursk", "L2", ids["a2"]))
        won["a"] = claims

    def poll_b() -> None:
        until(one_claimed.is_set, "the first poll")
        with second.transaction() as tx:
            ids = tx.insert_items(tx.feed_id("b"), [item("b2", "L2"), item("b1", "L1")], NOW)
            claims = [tx.claim_link("kursk", "L2", ids["b2"])]
            two_claimed.set()
            claims.append(tx.claim_link("kursk", "L1", ids["b1"]))
        won["b"] = claims

    def guarded(body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as exc:  # reported by the test below
                errors.append(exc)
                one_claimed.set()
                two_claimed.set()

        return run

    threads = [threading.Thread(target=guarded(f)) for f in (poll_a, poll_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * SOON)
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    # every article alerts once: which poll wins it does not matter, that one does
    assert sorted(won) == ["a", "b"]
    assert [a or b for a, b in zip(won["a"], reversed(won["b"]), strict=True)] == [True, True]
    assert not any(a and b for a, b in zip(won["a"], reversed(won["b"]), strict=True))


OPEN_AND_SYNC = """
import sys
from datetime import timedelta
from monitor.store.repo import Store
from monitor.types import FeedConfig
feeds = [FeedConfig(f"f{n}", f"http://127.0.0.1:9/f{n}", timedelta(hours=1)) for n in range(20)]
sys.stdin.read()  # all start together
store = Store.open(sys.argv[1])
store.sync_feeds(feeds)
store.close()
"""


def test_two_first_starts_at_once_migrate_and_create_the_feeds_once(postgres_url: str) -> None:
    """Processes opening a new database together: all end up with one schema and one row per
    feed, and none fails (they used to race in CREATE TABLE and in sync_feeds)."""
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_SYNC, postgres_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    for process in starts:  # their imports are done by now or soon: release them at once
        assert process.stdin is not None
        process.stdin.close()
    outputs = []
    for process in starts:
        assert process.stdout is not None
        outputs.append((process.stdout.read(), process.wait(timeout=2 * SOON)))
        process.stdout.close()
    assert outputs == [("", 0)] * 4
    store = Store.open(postgres_url)
    try:
        assert sorted(store.feed_states()) == sorted(f"f{n}" for n in range(20))
    finally:
        store.close()


# --- `monitor poll` beside `monitor run`, as real processes ---------------------------------


def rss(feed_no: int, articles: list[int]) -> bytes:
    date = format_datetime(datetime.now(UTC))
    items = "".join(
        f"<item><guid>f{feed_no}-{n}</guid><title>Truppen bei Kursk {n}</title>"
        f"<link>https://news.example/kursk/{n}</link>"
        f"<description>Bericht {n} aus Kursk.</description><pubDate>{date}</pubDate></item>"
        for n in articles
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"{items}</channel></rss>"
    ).encode()


ARTICLES = 6
FEEDS = 6


def test_poll_beside_a_running_daemon_alerts_each_article_once(
    postgres_url: str, tmp_path: Path
) -> None:
    with FeedServer() as srv, WebhookServer() as hook:
        feeds = ""
        for k in range(FEEDS):
            # the same articles in every feed, in a different order in every other one
            order = list(range(ARTICLES)) if k % 2 == 0 else list(reversed(range(ARTICLES)))
            srv.routes[f"/f{k}.xml"] = Static(rss(k, order))
            feeds += f'[[feeds]]\nname = "f{k}"\nurl = "{srv.url(f"/f{k}.xml")}"\n'
        config = tmp_path / "config.toml"
        config.write_text(
            f'[monitor]\ndatabase = "{postgres_url}"\ninterval = "1h"\ntimeout = "10s"\n'
            f'[channels]\nhook = "{hook.apprise_url()}"\n{feeds}'
            '[[rules]]\nname = "kursk"\nquery = "Kursk"\n',
            encoding="utf-8",
        )
        command = [sys.executable, "-m", "monitor", "--config", str(config)]
        log = (tmp_path / "daemon.log").open("w")
        daemon = subprocess.Popen([*command, "run"], stdout=log, stderr=subprocess.STDOUT)
        try:
            # started together with the daemon: both create the schema and the feed rows
            polls = [
                subprocess.Popen(
                    [*command, "poll"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
                for _ in range(2)
            ]
            results = [(p.communicate(timeout=120), p.returncode) for p in polls]
            hook.wait_for(ARTICLES, timeout=SOON)
            daemon_log_path = tmp_path / "daemon.log"
            until(
                lambda: (
                    daemon.poll() is not None or "monitor running" in daemon_log_path.read_text()
                ),
                "the daemon to start",
            )
            # The daemon polls whatever the database says is due once its start-up spread
            # (10 s) has passed: feeds the polls fetched after it started are not due again.
            started = time.monotonic()
            until(
                lambda: (
                    daemon.poll() is not None
                    or all(srv.hits(f"/f{k}.xml") >= 3 for k in range(FEEDS))
                    or time.monotonic() - started > 15
                ),
                "the daemon's first polls",
            )
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
            log.close()
        daemon_log = (tmp_path / "daemon.log").read_text()
        # the daemon lock is per schema: another test's daemon in another schema never holds it
        assert "another `monitor run` is already using this database" not in daemon_log
        for (out, err), code in results:
            assert "Traceback" not in out + err, err
            assert code == 0, err
        assert "Traceback" not in daemon_log, daemon_log
        assert daemon.returncode == 0, daemon_log
        time.sleep(0.3)  # a stray duplicate would arrive now (bounded, not asserted on time)
        links = sorted(str(r.json) for r in hook.requests)
        assert len(hook.requests) == ARTICLES, links  # one alert per article, in all
        assert all(f"news.example/kursk/{n}" in " ".join(links) for n in range(ARTICLES))


def test_a_lock_check_racing_the_release_at_shutdown_never_raises(postgres_url: str) -> None:
    """The daemon's tick checks its lock in a worker thread; a stop releases the lock from the
    main thread meanwhile. The two must take turns (a check on a connection being closed
    raised, and the daemon logged a traceback as it stopped), and a check after the release
    must not take the lock again."""
    from monitor.store.repo import PostgresLock

    store = Store.open(postgres_url)
    errors: list[BaseException] = []
    try:
        for _ in range(20):
            lock = PostgresLock(store.engine)
            assert lock.take()
            started = threading.Event()

            def checks(lock: PostgresLock = lock, started: threading.Event = started) -> None:
                try:
                    for _ in range(30):
                        assert lock.check()
                        started.set()
                except BaseException as exc:
                    errors.append(exc)
                    started.set()

            thread = threading.Thread(target=checks)
            thread.start()
            started.wait(5)
            lock.release()
            thread.join(10)
            assert lock.conn is None, "a check took the lock again after the release"
        assert not errors, errors[0]
        other = PostgresLock(store.engine)
        assert other.take(), "a released lock must be free"
        other.release()
    finally:
        store.close()
