"""`monitor health` (the image's HEALTHCHECK) and `monitor db upgrade|current`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.clock import utcnow
from monitor.store.repo import Store
from monitor.types import FeedConfig, Heartbeat


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[monitor]\ndatabase = "{url}"\n[[feeds]]\nname = "one"\nurl = "http://127.0.0.1:9/x"\n'
    )
    return path


def beat(store: Store, ticked_ago: float, started_ago: float = 30) -> None:
    now = utcnow()
    store.beat(
        Heartbeat(
            host="h",
            pid=1,
            started_at=now - timedelta(seconds=started_ago),
            ticked_at=now - timedelta(seconds=ticked_ago),
        )
    )


def test_health(tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(write_config(tmp_path, database_url))
    assert main(["--config", path, "health"]) == 1  # no daemon ever ran
    assert "no `monitor run` has ever written a heartbeat" in capsys.readouterr().out
    store = Store.open(database_url)
    try:
        beat(store, ticked_ago=5)
        assert main(["--config", path, "health"]) == 0
        assert capsys.readouterr().out.startswith("healthy: last tick")
        beat(store, ticked_ago=120)  # the scheduler stopped ticking
        assert main(["--config", path, "health"]) == 1
        assert "last scheduler tick 120 s ago" in capsys.readouterr().out
        # ticking, but a feed waits far past its due time: polls do not finish
        store.sync_feeds([FeedConfig("one", "http://127.0.0.1:9/x", timedelta(minutes=15))])
        beat(store, ticked_ago=1, started_ago=3600)
        store.set_next_polls({"one": utcnow() - timedelta(minutes=30)})
        assert main(["--config", path, "health"]) == 1
        assert "feed one due since" in capsys.readouterr().out
    finally:
        store.close()


def test_db_upgrade_and_current(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(write_config(tmp_path, database_url))
    assert main(["--config", path, "db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("database schema: ") and "(newest)" in out
    assert main(["--config", path, "db", "current"]) == 0
    assert capsys.readouterr().out == out
