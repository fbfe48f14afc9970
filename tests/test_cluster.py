"""Cluster mode (issue 13) with real parts: PostgreSQL, a private redis-server as the broker,
`monitor run --role scheduler` and `monitor worker` as subprocesses, loopback feed and
webhook servers. The multi-host scenario is in test_cluster_hosts.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor import pipeline
from monitor.app import make_app
from monitor.cli import main
from monitor.cluster.worker import WorkerRuntime
from monitor.config import load_config
from monitor.store import dispatch
from monitor.store.models import DispatchRow
from monitor.store.repo import Store
from tests.cluster_kit import ROOT, Procs, RedisServer, cluster_config, procs, redis, rss
from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer
from tests.test_daemon import wait_until

__all__ = ["procs", "redis"]  # fixtures used by name

BROKER = "redis://:pw@127.0.0.1:6379/0"


def dump_on_failure(procs: Procs) -> None:
    print(procs.dump())


# --- configuration and roles (no servers) --------------------------------------------------


def test_cluster_needs_postgresql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cluster_config(tmp_path / "config.toml", "sqlite:///monitor.db", BROKER)
    assert main(["--config", str(path), "check"]) == 2
    err = capsys.readouterr().err
    assert "config.toml:5: cluster.broker: a cluster needs a PostgreSQL database" in err
    assert "pw@" not in err


def test_a_broker_url_is_redis_or_amqp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cluster_config(
        tmp_path / "config.toml", "postgresql://u@db/monitor", "http://:secret@mq:1234"
    )
    assert main(["--config", str(path), "check"]) == 2
    err = capsys.readouterr().err
    assert "cluster.broker: expected a broker URL" in err and "secret" not in err
    for broker in ("redis://h:6379/0", "amqp://u:p@h:5672//", "rediss://h/1"):
        cluster_config(path, "postgresql://u@db/monitor", broker)
        assert main(["--config", str(path), "check"]) == 0, broker
    capsys.readouterr()


def test_roles_need_the_matching_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    single = tmp_path / "single.toml"
    single.write_text('[monitor]\ndatabase = "sqlite:///monitor.db"\n', encoding="utf-8")
    assert main(["--config", str(single), "worker"]) == 2
    assert "`monitor worker` needs a [cluster] table" in capsys.readouterr().err
    assert main(["--config", str(single), "run", "--role", "scheduler"]) == 2
    assert "--role scheduler needs a [cluster] table" in capsys.readouterr().err
    cluster = cluster_config(tmp_path / "cluster.toml", "postgresql://u@db/monitor", BROKER)
    assert main(["--config", str(cluster), "run", "--role", "single"]) == 2
    assert "[cluster] is set" in capsys.readouterr().err


def test_broker_secrets_never_reach_the_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    from monitor.cli import _secrets
    from monitor.logs import setup_logging

    path = cluster_config(
        tmp_path / "config.toml", "postgresql://u@db/monitor", "amqp://desk:mq-s3cret@mq:5672//"
    )
    config = load_config(path, os.environ)
    setup_logging(0, secrets=_secrets(config))
    logging.getLogger("celery").error("cannot connect to amqp://desk:mq-s3cret@mq:5672//")
    err = capsys.readouterr().err
    assert "cannot connect to" in err and "mq-s3cret" not in err


def test_the_single_process_never_imports_celery() -> None:
    code = (
        "import sys, monitor.cli, monitor.daemon, monitor.app, monitor.pipeline;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('celery', 'kombu', 'redis')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- the dispatch record (in process, PostgreSQL) ------------------------------------------


def test_dispatch_records(postgres_url: str) -> None:
    store = Store.open(postgres_url)
    other = Store.open(postgres_url)  # another worker process, as far as owners go
    try:
        now = datetime.now(UTC)
        wait = timedelta(seconds=30)
        lease = timedelta(minutes=5)
        tasks = dispatch.dispatch(store, ["a", "b"], 1, now, wait)
        assert [(t.feed, t.token) for t in tasks] == [("a", 1), ("b", 1)]
        assert dispatch.dispatch(store, ["a", "b"], 1, now, wait) == []  # in flight
        a, b = tasks
        assert dispatch._claim(store, a, now, lease)
        assert not dispatch._claim(other, a, now, lease)  # delivered twice: one claim
        assert not dispatch._claim(store, a, now, lease)  # even in the same process
        dispatch.finish(store, [a], now)
        assert not dispatch._claim(other, a, now, lease)  # done
        # the broker lost b: sent again once redispatch_after has passed, with a new token
        later = now + wait + timedelta(seconds=1)
        again = dispatch.dispatch(store, ["a", "b"], 2, later, wait)
        assert [(t.feed, t.token, t.generation) for t in again] == [("a", 2, 2), ("b", 2, 2)]
        assert not dispatch._claim(store, b, later, lease)  # the old task is stale
        # a claim whose worker died is taken over at once, by the scheduler or a redelivery
        b2 = again[1]
        assert dispatch._claim(other, b2, later, lease)
        assert dispatch.dispatch(store, ["b"], 2, later, wait) == []  # its worker lives
        other.close()
        assert dispatch._claim(store, b2, later, lease)  # a redelivered copy
        # a's second task was never claimed: lost by the broker, sent again when it is old
        assert dispatch.dispatch(store, ["a"], 2, later, wait) == []
        much_later = later + wait + timedelta(seconds=1)
        assert [t.token for t in dispatch.dispatch(store, ["a"], 2, much_later, wait)] == [3]
        # config generations: published once per content
        assert dispatch.publish_config(store, "x = 1", now) == 1
        assert dispatch.publish_config(store, "x = 1", now) == 1
        assert dispatch.publish_config(store, "x = 2", now) == 2
        assert dispatch.newest_config(store) == (2, "x = 2")
    finally:
        other.close()
        store.close()


def test_a_task_delivered_twice_polls_the_feed_once(tmp_path: Path, postgres_url: str) -> None:
    """Two workers get the same task at the same moment (a broker's redelivery, a visibility
    timeout): one polls, the other does nothing; a task for an interval already polled is a
    no-op; the scheduler has nothing to send until the interval has passed."""
    with FeedServer() as srv:
        srv.routes["/f.xml"] = Static(rss(("k1", "Lage bei Kursk")), delay=0.5)
        path = cluster_config(
            tmp_path / "config.toml",
            postgres_url,
            BROKER,
            f'[[feeds]]\nname = "news"\nurl = "{srv.url("/f.xml")}"\ninterval = "1h"\n'
            '[[rules]]\nname = "kursk"\nany = ["Kursk"]\nchannels = []\n',
        )
        config = load_config(path, os.environ)
        stores = [Store.open(postgres_url) for _ in range(3)]
        runtimes = [WorkerRuntime(config, s) for s in stores[:2]]
        try:
            for runtime in runtimes:
                runtime.start()
            gen = dispatch.publish_config(stores[2], path.read_text(), runtimes[0].app.clock())
            due = [f.name for f in pipeline.due_feeds(make_app(config, store=stores[2]))]
            now = runtimes[0].app.clock()
            (task,) = dispatch.dispatch(stores[2], due, gen, now, timedelta(minutes=5))
            results: list[str] = []

            def run(i: int) -> None:
                results.append(runtimes[i].poll(task.feed, task.token, task.generation))

            threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert sorted(results) == ["new", "skipped"]
            assert srv.hits("/f.xml") == 1
            # a late copy of the same task, or of an older one: nothing
            assert runtimes[1].poll(task.feed, task.token, task.generation) == "skipped"
            assert runtimes[1].poll(task.feed, task.token - 1, task.generation) == "skipped"
            assert srv.hits("/f.xml") == 1
            # the feed row says it is not due: the scheduler sends nothing
            app = make_app(config, store=stores[2])
            assert pipeline.due_feeds(app) == []
            # a task the scheduler sent again (its record looked lost) finds the feed
            # polled for this interval: no second fetch
            later = now + timedelta(minutes=6)
            with stores[2].transaction() as tx:
                row = tx.session.get(DispatchRow, "news")
                assert row is not None
                row.done_at = None
                row.claimed_by = None
            (again,) = dispatch.dispatch(stores[2], ["news"], gen, later, timedelta(minutes=5))
            assert runtimes[0].poll(again.feed, again.token, again.generation) == "unchanged"
            assert srv.hits("/f.xml") == 1
            assert stores[2].outbox_counts() == {}  # channels = []: stored, no alert
            assert len(stores[2].matches()) == 1
        finally:
            for runtime in runtimes:
                runtime.close()
            for s in stores:
                s.close()


# --- processes: scheduler election, worker death, broker restart, config generations ------


def test_a_standby_scheduler_takes_over_a_dead_or_hung_one(
    tmp_path: Path, postgres_url: str, redis: RedisServer, procs: Procs
) -> None:
    config = cluster_config(tmp_path / "config.toml", postgres_url, redis.url, "[channels]\n")
    run = ["--config", str(config), "run", "--role", "scheduler"]
    try:
        procs.start("s1", run)
        procs.wait_log("s1", "elected active scheduler", 30)
        procs.start("s2", run)
        procs.wait_log("s2", "standing by", 30)
        assert "elected" not in procs.log("s2")
        procs.kill("s1")  # SIGKILL: its session ends, the lock with it
        died = time.monotonic()
        procs.wait_log("s2", "elected active scheduler", 30)
        assert time.monotonic() - died < 10
        procs.start("s3", run)
        procs.wait_log("s3", "standing by", 30)
        procs.kill("s2", signal.SIGSTOP)  # hung: the server ends its silent session
        hung = time.monotonic()
        procs.wait_log("s3", "elected active scheduler", 35)
        assert time.monotonic() - hung < 30
        procs.kill("s2", signal.SIGCONT)  # wakes up, finds the lock taken: steps down
        assert procs.procs["s2"].wait(20) == 1
        assert "another scheduler took over while this one was cut off" in procs.log("s2")
    except (AssertionError, TimeoutError):
        dump_on_failure(procs)
        raise


def test_a_worker_killed_mid_poll_loses_nothing_and_doubles_nothing(
    tmp_path: Path, postgres_url: str, redis: RedisServer, procs: Procs
) -> None:
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/slow.xml"] = Static(
            rss(("s1", "Kursk: Lage"), ("s2", "Kursk: Truppen")), delay=3.0
        )
        srv.routes["/fast.xml"] = Static(rss(("f1", "Kursk heute")))
        config = cluster_config(
            tmp_path / "config.toml",
            postgres_url,
            redis.url,
            f'[channels]\nhook = "{hook.apprise_url()}"\n'
            f'[[feeds]]\nname = "slow"\nurl = "{srv.url("/slow.xml")}"\ninterval = "1h"\n'
            f'[[feeds]]\nname = "fast"\nurl = "{srv.url("/fast.xml")}"\ninterval = "1h"\n'
            '[[rules]]\nname = "kursk"\nany = ["Kursk"]\n',
        )
        store = Store.open(postgres_url)
        try:
            workers = {}
            for name in ("w1", "w2"):
                workers[name] = procs.start(
                    name, ["--config", str(config), "worker", "--concurrency", "4"]
                )
            procs.wait_log("w1", "ready", 30)
            procs.wait_log("w2", "ready", 30)
            procs.start("scheduler", ["--config", str(config), "run"])

            def claimer() -> str | None:
                with store.transaction() as tx:
                    row = tx.session.get(DispatchRow, "slow")
                    return row.claimed_by if row is not None else None

            wait_until(lambda: claimer() is not None and srv.hits("/slow.xml") >= 1, 30, "claim")
            pid = int(str(claimer()).split(":")[1])
            victim = next(n for n, p in workers.items() if p.pid == pid)
            procs.kill(victim)  # SIGKILL, in the middle of the slow fetch
            survivor = "w2" if victim == "w1" else "w1"
            hook.wait_for(3, timeout=40)
            time.sleep(3)  # nothing more comes
            assert len(hook.requests) == 3
            titles = sorted(r.json["title"] for r in hook.requests)
            assert len(set(titles)) == 3, titles
            assert srv.hits("/slow.xml") == 2  # the killed fetch, and the survivor's
            assert "feed slow: new, 2 new items" in procs.log(survivor)
            with store.transaction() as tx:
                rows = tx.session.scalars(select(DispatchRow)).all()
                assert all(r.done_at is not None for r in rows)
        except (AssertionError, TimeoutError):
            dump_on_failure(procs)
            raise
        finally:
            store.close()


def test_a_broker_restart_loses_no_scheduled_poll(
    tmp_path: Path, postgres_url: str, redis: RedisServer, procs: Procs
) -> None:
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/f.xml"] = Static(rss(("k1", "Lage bei Kursk")))
        config = cluster_config(
            tmp_path / "config.toml",
            postgres_url,
            redis.url,
            f'[channels]\nhook = "{hook.apprise_url()}"\n'
            f'[[feeds]]\nname = "news"\nurl = "{srv.url("/f.xml")}"\ninterval = "1h"\n'
            '[[rules]]\nname = "kursk"\nany = ["Kursk"]\n',
            redispatch_after="3s",
        )
        try:
            procs.start("scheduler", ["--config", str(config), "run"])
            procs.wait_log("scheduler", "1 poll task(s) sent", 30)
            redis.stop()  # in memory only: the queued task is gone
            redis.start()
            procs.start("worker", ["--config", str(config), "worker", "--concurrency", "2"])
            hook.wait_for(1, timeout=40)
            time.sleep(2)
            assert len(hook.requests) == 1
            assert srv.hits("/f.xml") == 1
            logs = procs.log("scheduler") + procs.log("worker")
            assert redis.password not in logs
        except (AssertionError, TimeoutError):
            dump_on_failure(procs)
            raise


def test_a_config_change_reaches_a_running_worker(
    tmp_path: Path, postgres_url: str, redis: RedisServer, procs: Procs
) -> None:
    """The worker's own config.toml names only the database and the broker: the feeds and
    rules it polls with come from the generation the scheduler published."""
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/a.xml"] = Static(rss(("a1", "Lage bei Kursk")))
        srv.routes["/b.xml"] = Static(rss(("b1", "Charkiw heute")))
        channels = f'[channels]\nhook = "{hook.apprise_url()}"\n'
        feed_a = f'[[feeds]]\nname = "a"\nurl = "{srv.url("/a.xml")}"\ninterval = "1h"\n'
        rule_a = '[[rules]]\nname = "kursk"\nany = ["Kursk"]\n'
        path = cluster_config(
            tmp_path / "config.toml", postgres_url, redis.url, channels + feed_a + rule_a
        )
        own = cluster_config(tmp_path / "worker.toml", postgres_url, redis.url)
        try:
            procs.start("scheduler", ["--config", str(path), "run"])
            # generation 1 is there before the worker starts: it starts on it; generation
            # 2 comes while it runs: its first task of generation 2 loads it
            procs.wait_log("scheduler", "config generation 1 published", 30)
            procs.start("worker", ["--config", str(own), "worker", "--concurrency", "2"])
            hook.wait_for(1, timeout=40)
            assert "config generation 1 loaded: 1 feeds, 1 rules" in procs.log("worker")
            feed_b = f'[[feeds]]\nname = "b"\nurl = "{srv.url("/b.xml")}"\ninterval = "1h"\n'
            rule_b = '[[rules]]\nname = "charkiw"\nany = ["Charkiw"]\n'
            cluster_config(
                path, postgres_url, redis.url, channels + feed_a + feed_b + rule_a + rule_b
            )
            hook.wait_for(2, timeout=40)
            assert "config generation 2 loaded: 2 feeds, 2 rules" in procs.log("worker")
            assert "Charkiw" in hook.requests[1].json["title"]
            assert srv.hits("/a.xml") == 1  # a's interval has not passed
        except (AssertionError, TimeoutError):
            dump_on_failure(procs)
            raise


RABBITMQ = os.environ.get("MONITOR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def test_the_broker_may_be_rabbitmq(tmp_path: Path, postgres_url: str, procs: Procs) -> None:
    """The same cluster on RabbitMQ (the machine's server; a queue of this test's own,
    deleted afterwards)."""
    import uuid

    from kombu import Connection

    try:
        with Connection(RABBITMQ, connect_timeout=3) as conn:
            conn.connect()
    except OSError as exc:
        pytest.skip(f"no RabbitMQ at {RABBITMQ.split('@')[-1]} ({exc}): set MONITOR_TEST_AMQP_URL")
    queue = f"monitor-test-{uuid.uuid4().hex[:10]}"
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/f.xml"] = Static(rss(("k1", "Lage bei Kursk"), ("k2", "Wetter")))
        config = cluster_config(
            tmp_path / "config.toml",
            postgres_url,
            RABBITMQ,
            f'[channels]\nhook = "{hook.apprise_url()}"\n'
            f'[[feeds]]\nname = "news"\nurl = "{srv.url("/f.xml")}"\ninterval = "1h"\n'
            '[[rules]]\nname = "kursk"\nany = ["Kursk"]\n',
            queue=queue,
        )
        try:
            procs.start("worker", ["--config", str(config), "worker", "--concurrency", "2"])
            procs.start("scheduler", ["--config", str(config), "run"])
            hook.wait_for(1, timeout=40)
            time.sleep(1)
            assert len(hook.requests) == 1 and srv.hits("/f.xml") == 1
            assert "Connected to amqp://" in procs.log("worker")
        except (AssertionError, TimeoutError):
            dump_on_failure(procs)
            raise
        finally:
            procs.stop_all()
            with Connection(RABBITMQ, connect_timeout=3) as conn:
                conn.default_channel.queue_delete(queue)
                conn.default_channel.exchange_delete(queue)
