"""Saving config.toml reloads it, exactly like SIGHUP, through a real `monitor run`: an editor
that writes a temporary file and renames it over config.toml, an in-place write, an invalid
file (every problem logged, the old config kept), `watch_config = false`; nothing re-alerts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer
from tests.test_daemon import rss, wait_until


def text(srv: FeedServer, hook: WebhookServer, tmp: Path, extra: str = "", watch: str = "") -> str:
    return f"""
[monitor]
database = "sqlite:///{tmp / "monitor.db"}"
interval = "1h"
timeout = "5s"
{watch}
[channels]
hook = "{hook.apprise_url()}"
[[feeds]]
name = "one"
url = "{srv.url("/one.xml")}"
[[rules]]
name = "kursk"
query = "Kursk"
{extra}"""


def replace(path: Path, content: str) -> None:
    """What vim, VS Code and most editors do: write a temporary file, rename it over."""
    tmp = path.with_name(".config.toml.swp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)


def start(path: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(path), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_saving_the_file_reloads_it(tmp_path: Path) -> None:
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/one.xml"] = Static(rss("k1", "Lage in Kursk", "Bericht aus Kursk."))
        srv.routes["/two.xml"] = Static(rss("t1", "Sanktionen", "Neue Sanktionen beschlossen."))
        path = tmp_path / "config.toml"
        path.write_text(text(srv, hook, tmp_path), encoding="utf-8")
        log = tmp_path / "daemon.log"
        proc = start(path, log)
        try:
            [first] = hook.wait_for(1, timeout=15)
            assert "Lage in Kursk" in str(first.json)

            # a new feed and a new rule, saved by rename: the feed is polled, the rule alerts
            extra = (
                f'[[feeds]]\nname = "two"\nurl = "{srv.url("/two.xml")}"\n'
                '[[rules]]\nname = "sanctions"\nquery = "Sanktionen"\n'
            )
            replace(path, text(srv, hook, tmp_path, extra))
            hook.wait_for(2, timeout=20)
            assert "Sanktionen" in str(hook.requests[1].json)
            assert "changed: reloading it" in log.read_text()

            # an invalid file, written in place: every problem logged, the old config kept
            bad = text(srv, hook, tmp_path, extra + "[[rules]]\nname = 'x'\nquery = '('\n")
            path.write_text(bad.replace('timeout = "5s"', 'timeout = "5s"\ncolour = 1'))
            wait_until(lambda: "not reloaded" in log.read_text(), 15, "the refused reload")
            refused = log.read_text()
            assert "colour" in refused and 'rules[3] "x"' in refused, refused
            assert proc.poll() is None

            # removing the feed and a rule, changing the other: applied, nothing re-alerts
            srv.routes["/one.xml"] = Static(rss("k1", "Lage in Kursk", "Bericht aus Kursk."))
            changed = text(srv, hook, tmp_path).replace('"Kursk"', '"Kursk OR Lage"')
            replace(path, changed.replace('interval = "1h"', 'interval = "2h"'))
            wait_until(
                lambda: log.read_text().count("config reloaded") >= 2, 15, "the second reload"
            )
            wait_until(lambda: srv.hits("/one.xml") >= 2, 15, "the changed feed's new poll")
            time.sleep(2)  # a re-alert would be sent within this
            assert len(hook.requests) == 2
            assert stop(proc) == 0
        finally:
            stop(proc)
        assert "Traceback" not in log.read_text()


def test_watch_config_false_leaves_the_file_alone(tmp_path: Path) -> None:
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/one.xml"] = Static(rss("k1", "Nothing", "Nothing here"))
        srv.routes["/two.xml"] = Static(rss("t1", "Sanktionen", "Neue Sanktionen beschlossen."))
        path = tmp_path / "config.toml"
        watch = "watch_config = false"
        path.write_text(text(srv, hook, tmp_path, watch=watch), encoding="utf-8")
        log = tmp_path / "daemon.log"
        proc = start(path, log)
        try:
            wait_until(lambda: srv.hits("/one.xml") >= 1, 15, "the first poll")
            extra = f'[[feeds]]\nname = "two"\nurl = "{srv.url("/two.xml")}"\n'
            replace(path, text(srv, hook, tmp_path, extra, watch=watch))
            time.sleep(6)  # three ticks
            assert srv.hits("/two.xml") == 0
            proc.send_signal(signal.SIGHUP)  # SIGHUP still works
            wait_until(lambda: srv.hits("/two.xml") >= 1, 15, "the new feed after SIGHUP")
            assert stop(proc) == 0
        finally:
            stop(proc)
