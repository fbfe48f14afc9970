"""Issue 13, item 3: a cluster on several "hosts". PostgreSQL, a broker, two schedulers and
three workers, each worker in its own network namespace (a veth pair each: the feed server
and the broker listen on the host side of the first veth, PostgreSQL is reached through its
unix socket); plain processes where `ip netns add` is not allowed. One worker and the active
scheduler are killed (SIGKILL) mid-run; every expected alert arrives once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.cluster_kit import Procs, RedisServer, cluster_config, procs, redis_binary, rss
from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer
from tests.test_daemon import wait_until

__all__ = ["procs"]

PG_SOCKET = "/var/run/postgresql"
FEEDS = 24


def _ip(*args: str) -> bool:
    return subprocess.run(["ip", *args], capture_output=True, check=False).returncode == 0


class Hosts:
    """Network namespaces for the workers; `prefix(i)` runs a command in the i-th."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.names: list[str] = []

    def make(self, count: int) -> bool:
        if shutil.which("ip") is None:
            return False
        for i in range(count):
            name = f"nm{self.tag}{i}"
            if not _ip("netns", "add", name):
                return False
            self.names.append(name)
            host_if, ns_if = f"nm{self.tag}{i}h", f"nm{self.tag}{i}n"
            ok = (
                _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
                and _ip("link", "set", ns_if, "netns", name)
                and _ip("addr", "add", f"{self.address(i)}/24", "dev", host_if)
                and _ip("link", "set", host_if, "up")
                and _ip("-n", name, "addr", "add", f"{self.subnet(i)}.2/24", "dev", ns_if)
                and _ip("-n", name, "link", "set", ns_if, "up")
                and _ip("-n", name, "link", "set", "lo", "up")
                and _ip("-n", name, "route", "add", "default", "via", self.address(i))
            )
            if not ok:
                return False
        return True

    def subnet(self, i: int) -> str:
        return f"10.{200 + int(self.tag[:2], 16) % 50}.{i + 1}"

    def address(self, i: int) -> str:
        """The host side of the i-th veth."""
        return f"{self.subnet(i)}.1"

    def prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.names[i]] if self.names else []

    def remove(self) -> None:
        for name in self.names:  # the veth pair goes with its namespace
            _ip("netns", "del", name)
        self.names = []


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    group = Hosts(format(abs(hash(str(tmp_path))) % 0xFFFF, "04x"))
    try:
        # MONITOR_TEST_NO_NETNS=1 tries the fallback on a machine that has namespaces
        if os.environ.get("MONITOR_TEST_NO_NETNS") == "1" or not group.make(3):
            group.remove()  # plain processes: still three workers, one shared network
        yield group
    finally:
        group.remove()


def _socket_url(postgres_url: str) -> str:
    """The test schema's URL through PostgreSQL's unix socket (reachable from any netns)."""
    url = make_url(postgres_url)
    query = dict(url.query)
    query["host"] = PG_SOCKET
    return url.set(host=None, port=None, query=query).render_as_string(hide_password=False)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_cluster_on_three_hosts_survives_a_worker_and_its_scheduler(
    tmp_path: Path, postgres_url: str, hosts: Hosts, procs: Procs
) -> None:
    redis_binary()
    isolated = bool(hosts.names)
    address = hosts.address(0) if isolated else "127.0.0.1"
    database = _socket_url(postgres_url) if isolated else postgres_url
    broker = RedisServer(tmp_path / "redis", bind=address)
    broker.start()
    try:
        with FeedServer(host=address) as srv, WebhookServer() as hook:
            feeds = ""
            expected = set()
            for i in range(FEEDS):
                title = f"Kursk Meldung {i}"
                expected.add(title)
                srv.routes[f"/f{i}.xml"] = Static(
                    rss((f"m{i}", title), (f"o{i}", f"Wetter {i}")), delay=1.0
                )
                feeds += (
                    f'[[feeds]]\nname = "f{i}"\nurl = "{srv.url(f"/f{i}.xml")}"\ninterval = "1h"\n'
                )
            config = cluster_config(
                tmp_path / "config.toml",
                database,
                broker.url,
                f'[channels]\nhook = "{hook.apprise_url()}"\n{feeds}'
                '[[rules]]\nname = "kursk"\nany = ["Kursk"]\n',
            )
            try:
                for i in range(3):
                    procs.start(
                        f"w{i}",
                        ["--config", str(config), "worker", "--concurrency", "2"],
                        prefix=hosts.prefix(i),
                    )
                for i in range(3):
                    procs.wait_log(f"w{i}", "ready", 40)
                run = ["--config", str(config), "run", "--role", "scheduler"]
                procs.start("s1", run)
                procs.wait_log("s1", "elected active scheduler", 30)
                procs.start("s2", run)
                procs.wait_log("s2", "standing by", 30)
                # mid-run: every feed dispatched, the first ones being fetched. The active
                # scheduler goes first, while no alert is being sent: a sender killed
                # between a channel's "accepted" and recording it sends that alert again,
                # in one process as in a cluster (at-least-once; README, "Alerts")
                wait_until(lambda: len(srv.requests) >= 4, 30, "the first polls")
                procs.kill("s1")
                wait_until(lambda: len(srv.requests) >= 10, 30, "more polls")
                procs.kill("w0")  # in the middle of its fetches
                procs.wait_log("s2", "elected active scheduler", 30)
                hook.wait_for(FEEDS, timeout=45)
                time.sleep(2)  # nothing more comes
                # w0's claimed feeds were sent again, and fetched again
                assert len(srv.requests) > FEEDS
                titles = [r.json["title"] for r in hook.requests]
                assert len(titles) == FEEDS, sorted(titles)
                found = {m.group(0) for t in titles if (m := re.search(r"Kursk Meldung \d+", t))}
                assert found == expected
                for i in (1, 2):
                    assert "Traceback" not in procs.log(f"w{i}")
                assert broker.password not in "".join(procs.log(n) for n in procs.procs)
                if isolated:  # the workers did run on their own network
                    clients = {r.client.rsplit(".", 1)[0] for r in srv.requests}
                    assert clients <= {hosts.subnet(i) for i in range(3)}, clients
                    assert len(clients) >= 2, clients
            except (AssertionError, TimeoutError):
                print(procs.dump())
                raise
    finally:
        broker.stop()
