"""Cluster mode (issue 13) with real parts: PostgreSQL, a private redis-server as the broker,
`monitor run --role scheduler` and `monitor worker` as subprocesses, loopback feed and
webhook servers."""

from __future__ import annotations

from pathlib import Path

from tests.cluster_kit import Procs, RedisServer, cluster_config, procs, redis, rss
from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer

__all__ = ["procs", "redis"]  # fixtures


def test_a_scheduler_and_a_worker_alert_once(
    tmp_path: Path, postgres_url: str, redis: RedisServer, procs: Procs
) -> None:
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/f.xml"] = Static(rss(("k1", "Lage bei Kursk"), ("k2", "Wetter")))
        config = cluster_config(
            tmp_path / "config.toml",
            postgres_url,
            redis.url,
            f'[channels]\nhook = "{hook.apprise_url()}"\n'
            f'[[feeds]]\nname = "news"\nurl = "{srv.url("/f.xml")}"\ninterval = "1m"\n'
            '[[rules]]\nname = "kursk"\nany = ["Kursk"]\n',
        )
        procs.start("scheduler", ["--config", str(config), "run", "--role", "scheduler"])
        procs.start("worker", ["--config", str(config), "worker", "--concurrency", "4"])
        try:
            hook.wait_for(1, timeout=40)
        except AssertionError:
            print(procs.dump())
            raise
        print(procs.dump())
        assert srv.hits("/f.xml") == 1
        assert len(hook.requests) == 1
        assert "Kursk" in hook.requests[0].json["message"]
