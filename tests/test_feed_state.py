"""What `monitor feeds` shows across polls, as a user sees it through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from tests.feedserver import FeedServer, Static

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"


def feed_line(capsys: pytest.CaptureFixture[str], config: Path, name: str) -> str:
    assert main(["--config", str(config), "feeds"]) == 0
    out = capsys.readouterr().out
    return next(line for line in out.splitlines() if line.startswith(name + " "))


def test_a_not_well_formed_feed_stays_degraded_while_it_is_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = (FIXTURES / "not-well-formed.xml").read_bytes()
    good = (FIXTURES / "rss20.xml").read_bytes()
    with FeedServer() as srv:
        srv.routes["/f.xml"] = Static(broken, etag='"v1"')
        config = tmp_path / "config.toml"
        config.write_text(
            f"""
[monitor]
database = "sqlite:///monitor.db"
[channels]
[[feeds]]
name = "shaky"
url = "{srv.url("/f.xml")}"
[[rules]]
name = "kursk"
any = ["Kursk"]
channels = []
""",
            encoding="utf-8",
        )
        assert main(["--config", str(config), "poll"]) == 0
        capsys.readouterr()
        assert "degraded" in feed_line(capsys, config, "shaky")
        assert main(["--config", str(config), "poll"]) == 0  # answered 304
        capsys.readouterr()
        assert srv.requests_for("/f.xml")[-1].headers.get("if-none-match") == '"v1"'
        line = feed_line(capsys, config, "shaky")
        assert "degraded" in line
        assert "well-formed" in line
        # the document is fixed: the problem goes with it
        srv.routes["/f.xml"] = Static(good, etag='"v2"')
        assert main(["--config", str(config), "poll"]) == 0
        capsys.readouterr()
        line = feed_line(capsys, config, "shaky")
        assert " ok " in line
        assert "well-formed" not in line
