"""`monitor feeds` (issue 8 items 5 and 6): masked URLs, how long a feed has failed, new items
per day, the same fields in table/json/csv, `--failing` exiting 1; OPML import and export."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import FEED_FIELDS, main
from tests.feedserver import FeedServer, Static
from tests.servers import closed_port

RSS = (
    b'<rss version="2.0"><channel><title>t</title>'
    b"<item><guid>a</guid><title>Hafen</title></item>"
    b"<item><guid>b</guid><title>Kran</title></item></channel></rss>"
)
TOKEN = "s3cr3t-Feed-Token-0a9b8c7d"


@pytest.fixture(autouse=True)
def quiet_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    with FeedServer() as srv:
        srv.routes["/ok.xml"] = Static(RSS)
        path = tmp_path / "config.toml"
        path.write_text(
            f"""# my feeds
[monitor]
database = "sqlite:///monitor.db"

[[feeds]]
name = "good"
url = "{srv.url("/ok.xml")}?token={TOKEN}"

[[feeds]]  # this one is down
name = "down"
url = "http://user:pa55word@127.0.0.1:{closed_port()}/f.xml"
""",
            encoding="utf-8",
        )
        yield path


def test_feeds_formats_carry_the_same_fields_masked(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--config", str(config), "poll")[0] == 0
    code, out, _ = run(capsys, "--config", str(config), "feeds", "--format", "json")
    assert code == 0
    records = {r["name"]: r for r in json.loads(out)}
    assert list(records["good"]) == list(FEED_FIELDS)
    good, down = records["good"], records["down"]
    assert good["url"].endswith("?token=***") and TOKEN not in out
    assert "pa55word" not in out and down["url"].startswith("http://user:***@127.0.0.1:")
    assert (good["state"], good["failing_since"], good["items"]) == ("ok", None, 2)
    assert good["new_per_day"] == round(2 / 7, 1)
    assert down["state"] == "failing" and down["failures"] == 1
    assert down["failing_since"] is not None and down["failing_for"] == "0m"
    assert down["last_error"].startswith("cannot connect to 127.0.0.1:")

    code, out, _ = run(capsys, "--config", str(config), "feeds", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and tuple(rows[0]) == FEED_FIELDS
    assert {r["name"]: r["url"] for r in rows} == {n: r["url"] for n, r in records.items()}
    assert TOKEN not in out and "pa55word" not in out

    code, out, _ = run(capsys, "--config", str(config), "feeds")
    assert code == 0 and TOKEN not in out and "pa55word" not in out
    line = next(row for row in out.splitlines() if row.startswith("down"))
    assert "failing" in line and "0m" in line

    code, out, _ = run(capsys, "--config", str(config), "feeds", "--failing", "--format", "json")
    assert code == 1 and [r["name"] for r in json.loads(out)] == ["down"]


def test_failing_exits_0_when_no_feed_fails(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = config.read_text(encoding="utf-8")
    config.write_text(text.split("[[feeds]]  # this one is down")[0], encoding="utf-8")
    assert run(capsys, "--config", str(config), "poll")[0] == 0
    code, out, _ = run(capsys, "--config", str(config), "feeds", "--failing", "--format", "csv")
    assert code == 0 and out.strip() == ",".join(FEED_FIELDS)


def test_opml_import_appends_and_export_round_trips(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opml = tmp_path / "in.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head/><body>'
        '<outline text="Folder"><outline type="rss" text="Port news" '
        'xmlUrl="https://port.example/rss"/></outline>'
        '<outline type="rss" text="again" xmlUrl="https://port.example/rss"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    before = config.read_text(encoding="utf-8")
    code, out, _ = run(capsys, "--config", str(config), "feeds", "import", str(opml))
    assert code == 0
    assert "added: Port news: https://port.example/rss" in out
    assert "skipped: https://port.example/rss: already in config.toml" in out
    after = config.read_text(encoding="utf-8")
    assert after.startswith(before.rstrip("\n")) and "# this one is down" in after
    assert 'name = "Port news"' in after

    code, out, _ = run(capsys, "--config", str(config), "feeds", "export")
    assert code == 0 and out.startswith("<?xml") and '<opml version="2.0">' in out
    assert 'xmlUrl="https://port.example/rss"' in out and out.count("<outline ") == 3
    # importing the export adds nothing
    exported = tmp_path / "out.opml"
    exported.write_text(out, encoding="utf-8")
    code, out, _ = run(capsys, "--config", str(config), "feeds", "import", str(exported))
    assert code == 0 and "0 feeds added, 3 skipped" in out
    assert config.read_text(encoding="utf-8") == after


def test_opml_import_of_a_bad_file_exits_2_and_changes_nothing(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = config.read_text(encoding="utf-8")
    bad = tmp_path / "bad.opml"
    bad.write_text("<opml><body><outline", encoding="utf-8")
    code, _, err = run(capsys, "--config", str(config), "feeds", "import", str(bad))
    assert code == 2 and "not well-formed" in err and "Traceback" not in err
    code, _, err = run(capsys, "--config", str(config), "feeds", "import", str(tmp_path / "no"))
    assert code == 2 and "cannot read" in err
    assert config.read_text(encoding="utf-8") == before


def test_health_keys_are_checked_like_rule_channels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[monitor]\ndead_after = "2h"\nstale_after = "3d"\nops_channels = ["opz"]\n'
        '[channels]\nops = "console://"\n',
        encoding="utf-8",
    )
    code, _, err = run(capsys, "--config", str(path), "check")
    assert code == 2 and f"{path}:4: monitor.ops_channels" in err
    assert 'unknown channel "opz" (did you mean "ops"?)' in err
    path.write_text('[monitor]\nstale_after = "10s"\n', encoding="utf-8")
    code, _, err = run(capsys, "--config", str(path), "check")
    assert code == 2 and "monitor.stale_after: must be at least 1m" in err
