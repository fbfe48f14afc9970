"""Delivery states a person can act on: pending -> delivered, or retrying with backoff ->
failed after `give_up_after`; `monitor alerts` lists them with the last error and attempts,
`monitor alerts retry ID|--all` requeues failed ones. Against a real loopback webhook."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import pipeline
from monitor.alerts.decide import QueuedAlert
from monitor.alerts.outbox import gives_up
from monitor.app import make_app
from monitor.cli import main
from monitor.store.repo import Store
from monitor.types import AlertContent, AlertState, Item, Match
from tests.servers import WebhookServer

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def write_config(tmp: Path, hook: WebhookServer, extra: str = "") -> Path:
    path = tmp / "config.toml"
    path.write_text(
        f"""
[monitor]
database = "sqlite:///{tmp / "monitor.db"}"
{extra}
[channels]
hook = "{hook.apprise_url()}"
[[feeds]]
name = "news"
url = "http://127.0.0.1:9/feed.xml"
[[rules]]
name = "kursk"
query = "Kursk"
""",
        encoding="utf-8",
    )
    return path


def queue(store: Store, *ids: str) -> None:
    items = [Item(i, i, None, None, f"Lage in Kursk {i}", "Kursk", START) for i in ids]
    with store.transaction() as tx:
        rows = tx.insert_items(tx.feed_id("news"), items, START)
        for key, row in rows.items():
            match = (Match("kursk", ("Kursk",), "Lage in Kursk"),)
            content = AlertContent(f"Lage in Kursk {key}", None, "news", None, match, key)
            tx.enqueue(row, QueuedAlert("hook", content), START)


def test_gives_up_after_the_configured_time() -> None:
    assert not gives_up(START + timedelta(days=2), START, timedelta(days=3))
    assert gives_up(START + timedelta(days=3), START, timedelta(days=3))
    assert not gives_up(START, None, timedelta(0))


def test_retrying_then_failed_listed_and_requeued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.config import load_config

    with WebhookServer() as hook:
        path = write_config(tmp_path, hook, 'give_up_after = "1h"')
        config = load_config(path, {})
        assert config.settings.give_up_after == timedelta(hours=1)
        store = Store.open(config.settings.database)
        now = [START]
        app = make_app(config, store=store, clock=lambda: now[0])
        try:
            queue(store, "nm-first", "nm-second")
            hook.always_fail(503)
            asyncio.run(pipeline.drain_channel(app, "hook", all_pending=True))
            states = {a.alert_id: a for a in store.alerts()}
            assert {a.state for a in states.values()} == {AlertState.RETRYING}
            assert "503" in (states["nm-first"].last_error or "")
            now[0] = START + timedelta(minutes=59)  # still within give_up_after
            asyncio.run(pipeline.drain_channel(app, "hook", all_pending=True))
            assert {a.state for a in store.alerts()} == {AlertState.RETRYING}
            now[0] = START + timedelta(hours=1)
            asyncio.run(pipeline.drain_channel(app, "hook", all_pending=True))
            assert {a.state for a in store.alerts()} == {AlertState.FAILED}
            tried = len(hook.requests)
            now[0] = START + timedelta(days=1)  # a failed alert is never tried again
            asyncio.run(pipeline.drain_channel(app, "hook", all_pending=True))
            assert len(hook.requests) == tried
        finally:
            app.close()
            store.close()

        assert main(["--config", str(path), "alerts", "--failed", "--format", "json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(a["alert_id"], a["state"], a["attempts"]) for a in listed] == [
            ("nm-second", "failed", 3),
            ("nm-first", "failed", 3),
        ]
        assert all("503" in a["last_error"] for a in listed)
        assert main(["--config", str(path), "alerts", "--pending", "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out) == []
        assert main(["--config", str(path), "alerts"]) == 0
        table = capsys.readouterr().out
        assert "nm-first" in table and "failed" in table

        assert main(["--config", str(path), "alerts", "retry", "nm-nope"]) == 2
        assert "no alert 'nm-nope'" in capsys.readouterr().err
        assert main(["--config", str(path), "alerts", "retry"]) == 2
        assert main(["--config", str(path), "alerts", "retry", "nm-first"]) == 0
        assert "requeued" in capsys.readouterr().out
        assert main(["--config", str(path), "alerts", "--pending", "--format", "json"]) == 0
        [pending] = json.loads(capsys.readouterr().out)
        assert (pending["alert_id"], pending["state"], pending["attempts"]) == (
            "nm-first",
            "pending",
            0,
        )

        hook.always_fail(None)  # the receiver is back
        assert main(["--config", str(path), "poll"]) == 0  # the feed is unreachable: fine
        capsys.readouterr()
        bodies = [r.body for r in hook.requests if r.status == 200]
        assert len(bodies) == 1 and b"nm-first" in bodies[0]
        assert main(["--config", str(path), "alerts", "retry", "--all"]) == 0
        assert "1 failed alert(s) requeued" in capsys.readouterr().out
        assert main(["--config", str(path), "poll"]) == 0
        capsys.readouterr()
        assert main(["--config", str(path), "alerts", "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out) == []  # nothing left undelivered


def test_give_up_after_is_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with WebhookServer() as hook:
        path = write_config(tmp_path, hook, 'give_up_after = "10s"')
        assert main(["--config", str(path), "check"]) == 2
        err = capsys.readouterr().err
        assert "give_up_after" in err and "config.toml:" in err
        path = write_config(tmp_path, hook, "give_up_after = 3")
        assert main(["--config", str(path), "check"]) == 2
        assert "give_up_after" in capsys.readouterr().err
