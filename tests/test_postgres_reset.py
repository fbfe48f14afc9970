"""PostgreSQL in production: the daemon's backend connections killed with pg_terminate_backend
in the middle of a run cost at most a failed pass, never an alert lost or sent twice, and the
one-daemon lock (a session advisory lock, lost with its session) is taken again, so a second
daemon still cannot start beside the first."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer
from tests.test_daemon import wait_until

pytestmark = pytest.mark.postgres


def feed(*items: tuple[str, str]) -> bytes:
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><link>https://n.example/{g}</link>"
        f"<description>{t}</description></item>"
        for g, t in items
    )
    head = '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
    return f"{head}{body}</channel></rss>".encode()


def test_killed_backends_cost_no_alert_and_the_lock_is_retaken(
    tmp_path: Path, postgres_url: str
) -> None:
    app_name = f"monitor-test-{uuid.uuid4().hex[:8]}"
    url = postgres_url + f"&application_name={app_name}"
    admin = create_engine(postgres_url)
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/one.xml"] = Static(feed(("k1", "Kursk eins")))
        path = tmp_path / "config.toml"
        path.write_text(
            f"""
[monitor]
database = "{url}"
interval = "30s"
timeout = "5s"
[channels]
hook = "{hook.apprise_url()}"
[[feeds]]
name = "one"
url = "{srv.url("/one.xml")}"
[[rules]]
name = "kursk"
query = "Kursk"
""",
            encoding="utf-8",
        )
        command = [sys.executable, "-m", "monitor", "--config", str(path), "run"]
        log = tmp_path / "daemon.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            hook.wait_for(1, timeout=20)

            def kill_backends() -> int:
                with admin.begin() as conn:
                    return len(
                        conn.execute(
                            text(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = :name"
                            ),
                            {"name": app_name},
                        ).all()
                    )

            assert kill_backends() >= 1  # at least the lock's session
            srv.routes["/one.xml"] = Static(feed(("k1", "Kursk eins"), ("k2", "Kursk zwei")))
            wait_until(
                lambda: "daemon lock taken again" in log.read_text(), 20, "the lock re-taken"
            )
            # a second daemon still refuses to start: the lock is held again
            second = subprocess.run(command, capture_output=True, text=True, timeout=60)
            assert second.returncode == 1, second.stderr
            assert "already using this database" in second.stderr

            kill_backends()  # once more, while polls and sends go on
            hook.wait_for(2, timeout=60)  # the new item's alert (interval 30 s)
            time.sleep(3)
            titles = [str(r.json) for r in hook.requests]
            assert len(titles) == 2, titles  # nothing lost, nothing twice
            assert "Kursk eins" in titles[0] and "Kursk zwei" in titles[1]
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            admin.dispose()
        assert "Traceback" not in log.read_text()
