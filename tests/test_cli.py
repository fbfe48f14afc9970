"""The command line as users and their scripts see it: outputs, exit codes, no tracebacks."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor.cli import main
from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer, closed_port

ROOT = Path(__file__).resolve().parents[1]
CANARY = "canary-token-51d2e8"


def feed() -> bytes:
    date = format_datetime(datetime.now(UTC) - timedelta(hours=2))
    return f"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>
<item><guid>a1</guid><title>Truppen bei Kursk gesichtet</title><link>https://n.example/a1</link>
<description>Beobachter melden nordkoreanischer Truppen nahe der Stadt Kursk.</description>
<pubDate>{date}</pubDate></item>
<item><guid>a2</guid><title>Börse: Kursziel angehoben</title><link>https://n.example/a2</link>
<description>Analysten heben das Kursziel an; die Kurse steigen.</description>
<pubDate>{date}</pubDate></item></channel></rss>""".encode()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, WebhookServer]]:
    with FeedServer() as srv, WebhookServer() as hook:
        srv.routes["/f.xml"] = Static(feed())
        config = tmp_path / "config.toml"
        config.write_text(
            f"""
[monitor]
database = "sqlite:///state/monitor.db"
[channels]
hook = "{hook.apprise_url()}"
down = "json://127.0.0.1:{closed_port()}/x?token=${{TOKEN}}"
[[feeds]]
name = "news"
url = "{srv.url("/f.xml")}"
[[rules]]
name = "nk-troops"
any = ["nordkoreanische Truppen"]
query = "Kursk"
channels = ["hook"]
""",
            encoding="utf-8",
        )
        yield config, hook


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TOKEN", CANARY)
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)  # main() configures logging; leave the next test what it had
    root.handlers[:] = handlers


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_poll_matches_feeds_and_test_rule(
    setup: tuple[Path, WebhookServer], capsys: pytest.CaptureFixture[str]
) -> None:
    config, hook = setup
    code, out, _ = run(capsys, "--config", str(config), "poll")
    assert code == 0
    assert "news" in out and "1 delivered" in out
    assert (config.parent / "state" / "monitor.db").exists()  # relative to config.toml
    assert len(hook.wait_for(1)) == 1

    code, out, _ = run(capsys, "--config", str(config), "matches", "--format", "json")
    assert code == 0
    [match] = json.loads(out)
    assert match["rule"] == "nk-troops" and match["feed"] == "news"
    assert match["link"] == "https://n.example/a1"
    assert set(match["terms"]) == {"nordkoreanischer Truppen", "Kursk"}
    assert match["matched_at"].endswith("Z") and match["published"].endswith("Z")

    code, out, _ = run(capsys, "--config", str(config), "matches", "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:3] == ["matched_at", "rule", "feed"] and rows[1][1] == "nk-troops"
    code, out, _ = run(capsys, "matches", "--config", str(config), "--rule", "nk-troops")
    assert code == 0 and "Truppen" in out  # --config after the command works too
    code, out, _ = run(capsys, "--config", str(config), "matches", "--since", "1h")
    assert "Truppen b" in out

    code, out, _ = run(capsys, "--config", str(config), "feeds")
    assert code == 0
    line = next(row for row in out.splitlines() if row.startswith("news"))
    assert " ok " in line and line.rstrip().endswith("2")  # two items seen

    code, out, _ = run(capsys, "--config", str(config), "test-rule", "nk-troops", "--history")
    assert code == 0 and "1 of 2 stored items match" in out and "[[Kursk]]" in out


def test_matches_formats_carry_the_same_fields(
    setup: tuple[Path, WebhookServer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, _ = setup
    assert run(capsys, "--config", str(config), "poll")[0] == 0
    code, out, _ = run(capsys, "--config", str(config), "matches", "--format", "json")
    [record] = json.loads(out)
    assert set(record) == {
        *("rule", "title", "link", "feed", "published", "matched_at", "terms", "snippet"),
        *("alerted", "also_reported_by", "copy_of"),
        "source",  # "feed" or "article" (full-text feeds, issue 12)
    }
    assert record["alerted"] is True and "Kursk" in record["snippet"]
    assert record["source"] == "feed"

    code, out, _ = run(capsys, "--config", str(config), "matches", "--format", "csv")
    header, row = list(csv.reader(io.StringIO(out)))
    assert set(header) == set(record)
    assert header[:3] == ["matched_at", "rule", "feed"]  # earlier columns keep their place
    by_name = dict(zip(header, row, strict=True))
    assert by_name["snippet"] == record["snippet"] and by_name["alerted"] == "true"
    assert by_name["link"] == record["link"] and by_name["terms"] == "; ".join(record["terms"])

    monkeypatch.setenv("COLUMNS", "400")
    code, out, _ = run(capsys, "--config", str(config), "matches")
    assert code == 0
    header_line, line = out.splitlines()
    for name in ("rule", "title", "link", "feed", "published", "matched", "terms", "snippet"):
        assert name in header_line
    assert "alerted" in header_line and " yes " in line
    assert "https://n.example/a1" in line and record["title"] in line


@pytest.mark.parametrize("columns", [40, 60, 80, 120, 200])
def test_matches_table_fits_the_terminal(
    setup: tuple[Path, WebhookServer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    columns: int,
) -> None:
    config, _ = setup
    assert run(capsys, "--config", str(config), "poll")[0] == 0
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, _ = run(capsys, "--config", str(config), "matches")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2  # one row, never wrapped onto a second line
    assert all(len(line) <= columns for line in lines)
    if columns >= 80:
        assert "alerted" in lines[0] and "link" in lines[0] and "title" in lines[0]
        assert "Truppen" in lines[1] and "https://" in lines[1]
    if columns <= 80:
        assert "…" in lines[1]  # the title (and more) cut, with an ellipsis


@pytest.mark.parametrize(
    ("widths", "total", "kept", "fitted"),
    [
        ([5, 5], 20, [0, 1], [5, 5]),  # fits: untouched
        ([10, 30], 30, [0, 1], [10, 18]),  # the cuttable one gives up the excess
        ([10, 30, 30], 40, [0, 1, 2], [10, 13, 13]),  # widest first: shared evenly
        ([10, 30, 30], 34, [0, 1], [10, 22]),  # c below its floor: dropped instead
        ([10, 30, 30], 14, [0, 1], [10, 2]),  # last resort: down to the header's width
    ],
)
def test_fit_columns(widths: list[int], total: int, kept: list[int], fitted: list[int]) -> None:
    from monitor.cli import fit_columns

    assert fit_columns(
        ["a", "bb", "c"][: len(widths)], widths, total, {"bb": 12, "c": 12}, ["c"]
    ) == (
        kept,
        fitted,
    )


def test_matches_of_an_unknown_rule_exit_2_naming_the_rules(
    setup: tuple[Path, WebhookServer], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup
    assert run(capsys, "--config", str(config), "poll")[0] == 0
    code, out, err = run(capsys, "--config", str(config), "matches", "--rule", "nope")
    assert code == 2 and out == ""
    assert "no rule 'nope'" in err and "rules: nk-troops" in err
    # a rule removed from config.toml: its stored matches can still be listed
    text = config.read_text(encoding="utf-8").replace('name = "nk-troops"', 'name = "renamed"')
    config.write_text(text, encoding="utf-8")
    code, out, err = run(capsys, "--config", str(config), "matches", "--rule", "nk-troops")
    assert code == 0 and "nk-troops" in out and "Truppen b" in out, err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nk-troops", "--text", "Nordkoreanische Truppen rücken auf Kursk vor"], "MATCH"),
        (["nk-troops", "--text", "Das Kursziel für Kurse in Kursk"], "NO MATCH: rule nk-troops"),
        (["--query", "Kursk NEAR/2 Region", "--text", "Region um Kursk"], "MATCH: query Kursk"),
        (["--query", 'title:"Kursk"', "--text", "Kursk\nnot in the body"], "MATCH"),
        (["--query", "Kursk Region", "--text", "Kursk"], "NO MATCH: query Kursk Region"),
    ],
)
def test_test_rule_on_text(
    setup: tuple[Path, WebhookServer],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    expected: str,
) -> None:
    code, out, _ = run(capsys, "--config", str(setup[0]), "test-rule", *args)
    assert code == 0
    assert out.startswith(expected)
    if expected.startswith("MATCH"):
        assert "[[" in out
    assert "--query" not in out


@pytest.mark.parametrize(
    ("args", "lines"),
    [
        (
            ["nk-troops", "--text", "Das Kursziel für Kurse in Kursk"],
            ['  any: "nordkoreanische Truppen" does not occur'],
        ),
        (
            ["nk-troops", "--text", "Nordkoreanische Truppen bei Moskau"],
            ['  query: "Kursk" is false: does not occur'],
        ),
        (
            ["--query", "Kursk AND (Sumy OR Charkiw)", "--text", "Kursk"],
            ['  query: "(Sumy OR Charkiw)" is false: none of its alternatives holds'],
        ),
    ],
)
def test_test_rule_says_which_part_failed(
    setup: tuple[Path, WebhookServer],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    lines: list[str],
) -> None:
    code, out, _ = run(capsys, "--config", str(setup[0]), "test-rule", *args)
    assert code == 0
    assert out.splitlines()[0].startswith("NO MATCH: ")
    assert out.splitlines()[1:] == lines


def test_test_rule_reads_standard_input(setup: tuple[Path, WebhookServer]) -> None:
    config = str(setup[0])
    text = "Lagebericht\nBeobachter sahen nordkoreanischer Truppen bei Kursker Dörfern.\n"
    result = cli("--config", config, "test-rule", "nk-troops", input=text)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MATCH: rule nk-troops")
    assert "title: Lagebericht" in result.stdout  # first line of the input is the title
    assert "[[nordkoreanischer Truppen]]" in result.stdout and "[[Kursker]]" in result.stdout
    result = cli("--config", config, "test-rule", "nk-troops", input="Wetter\nSonne in Kursk.")
    assert result.returncode == 0 and result.stdout.startswith("NO MATCH: rule nk-troops")


def test_test_rule_highlights_stemmed_words(
    setup: tuple[Path, WebhookServer], capsys: pytest.CaptureFixture[str]
) -> None:
    text = "Bericht\nBeobachter sahen nordkoreanischer Truppen bei Kursker Dörfern."
    code, out, _ = run(capsys, "--config", str(setup[0]), "test-rule", "nk-troops", "--text", text)
    assert code == 0
    assert "[[nordkoreanischer Truppen]]" in out and "[[Kursker]]" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["test-rule", "nope", "--text", "x"], "no rule 'nope'"),
        (["test-rule", "--query", "(Kursk", "--text", "x"], "--query: column"),
        (["test-rule", "--text", "x"], "give a rule NAME"),
        (["test-rule", "--query", "Kursk", "--languages", "deu", "--text", "x"], 'use "de"'),
        (["test-rule", "nk-troops", "--file", "/nonexistent/file.txt"], "cannot read"),
        (["matches", "--since", "yesterday"], "--since"),
        (["notify-test", "nope"], "no channel 'nope'"),
    ],
)
def test_usage_mistakes_exit_2(
    setup: tuple[Path, WebhookServer],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code, out, err = run(capsys, "--config", str(setup[0]), *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err + out


def test_notify_test(setup: tuple[Path, WebhookServer], capsys: pytest.CaptureFixture[str]) -> None:
    config, hook = setup
    code, out, _ = run(capsys, "--config", str(config), "notify-test", "hook")
    assert code == 0 and "sent" in out
    [request] = hook.wait_for(1)
    assert "test alert" in json.dumps(request.json)
    code, out, err = run(capsys, "--config", str(config), "notify-test", "down")
    assert code == 1
    assert "NOT sent" in err
    assert CANARY not in out + err


def test_check_valid_masks_secrets(
    setup: tuple[Path, WebhookServer], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--config", str(setup[0]), "check")
    assert code == 0
    assert "OK: 1 feeds, 1 rules, 2 channels" in out
    assert CANARY not in out


def cli(
    *args: str, cwd: Path | None = None, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"} | env
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        input=input,
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_bad_config_lists_every_problem_without_traceback_or_secret(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[monitor]
interval = 15
[channels]
desk = "mailtos://alerts:{CANARY}@mail.example.org?to=desk@example.org"
[[feeds]]
name = "a"
url = "file:///etc/passwd"
[[rules]]
name = "r"
any_of = ["Kursk"]
query = "(Kursk"
channels = ["nowhere"]
""",
        encoding="utf-8",
    )
    result = cli("--config", str(config), "check")
    assert result.returncode == 2
    err = result.stderr
    assert "Traceback" not in err and CANARY not in err + result.stdout
    for expected in ("monitor.interval", "feeds[1]", "any_of", "nowhere", "query"):
        assert expected in err, expected
    assert str(config) in err


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[monitor]\ninterval = "15m\n', encoding="utf-8")
    result = cli("--config", str(config), "poll")
    assert result.returncode == 2
    assert f"{config}:2:" in result.stderr and "Traceback" not in result.stderr


def test_config_from_environment_and_missing_file(tmp_path: Path) -> None:
    result = cli("check", MONITOR_CONFIG=str(tmp_path / "absent.toml"))
    assert result.returncode == 2 and "absent.toml" in result.stderr
    result = cli("check", cwd=tmp_path)  # ./config.toml
    assert result.returncode == 2 and "config.toml" in result.stderr


def test_unknown_command_exits_2() -> None:
    result = cli("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_console_script_and_module_are_the_same_program() -> None:
    script = Path(sys.executable).parent / "monitor"
    if not script.exists():
        pytest.skip("the monitor console script is not installed next to this Python")
    by_script = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert by_script.stdout == cli("--version").stdout != ""


def test_bundled_config_is_valid() -> None:
    result = cli("--config", str(ROOT / "config.toml"), "check")
    assert result.returncode == 0, result.stderr


def test_bundled_config_without_network_reports_every_feed(tmp_path: Path) -> None:
    """`monitor poll` on the bundled config with no network at all (a private net namespace)."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rn", "true"], check=False).returncode:
        pytest.skip("cannot create a network namespace here (unshare -rn) to cut the network")
    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    result = subprocess.run(
        [unshare, "-rn", sys.executable, "-m", "monitor", "--config", "config.toml", "poll"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip()]
    feeds = [n for n in names if n not in ("feed",) and not n[0].isdigit()]
    assert len(feeds) >= 3
    for line in result.stdout.splitlines()[1 : 1 + len(feeds)]:
        assert " error " in line
    assert (tmp_path / "data" / "monitor.db").exists()


def test_a_world_readable_config_with_a_literal_secret_is_warned_about(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[channels]\ndesk = "json://user:{CANARY}@127.0.0.1:9/x"\n')
    config.chmod(0o644)
    result = cli("--config", str(config), "check")
    assert result.returncode == 0
    assert "chmod 600" in result.stderr and CANARY not in result.stderr + result.stdout
    config.chmod(0o600)
    assert "chmod" not in cli("--config", str(config), "check").stderr


def test_poll_waits_out_retry_after(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FeedServer() as srv:
        srv.routes["/busy"] = Static(b"", status=429, headers={"Retry-After": "3600"})
        config = tmp_path / "config.toml"
        config.write_text(
            f'[monitor]\ndatabase = "sqlite:///m.db"\n'
            f'[[feeds]]\nname = "busy"\nurl = "{srv.url("/busy")}"\n'
            '[[rules]]\nname = "r"\nquery = "Kursk"\n',
            encoding="utf-8",
        )
        assert run(capsys, "--config", str(config), "poll")[0] == 0
        code, out, _ = run(capsys, "--config", str(config), "poll")
        assert code == 0
        assert srv.hits("/busy") == 1  # the second pass did not knock again
        assert "waiting" in out and "server asked to wait" in out


def test_alerts_of_a_removed_channel_are_kept_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FeedServer() as srv:
        srv.routes["/f.xml"] = Static(feed())
        config = tmp_path / "config.toml"
        body = (
            f'[monitor]\ndatabase = "sqlite:///m.db"\n'
            f'[[feeds]]\nname = "news"\nurl = "{srv.url("/f.xml")}"\n'
            '[[rules]]\nname = "r"\nquery = "Kursk"\n'
        )
        down = f'[channels]\ndesk = "json://127.0.0.1:{closed_port()}/x"\n'
        config.write_text(body + down, encoding="utf-8")
        code, out, _ = run(capsys, "--config", str(config), "poll")
        assert code == 0 and "1 failed" in out
        config.write_text(body + down.replace("desk", "newsdesk"), encoding="utf-8")
        code, out, _ = run(capsys, "--config", str(config), "poll")
        assert code == 0
        assert "1 alert(s) wait for channel 'desk'" in out


@pytest.mark.parametrize(
    "args", [["matches", "--since", "100000000d"], ["matches", "--limit", "-1"]]
)
def test_out_of_range_arguments_exit_2(
    setup: tuple[Path, WebhookServer], capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:  # argparse's own errors exit 2 too
        code, _, err = run(capsys, "--config", str(setup[0]), *args)
        assert code == 2 and "Traceback" not in err
        raise SystemExit(code)
    assert exit_info.value.code == 2


FEED = '[[feeds]]\nname = "f"\nurl = "http://127.0.0.1:9/f"\n'
RULE = '[[rules]]\nname = "r"\nquery = "Kursk"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[monitor\ninterval = "5m"\n', ":1:"),  # TOML syntax: file:line:column
        ('[monitor]\ninterval = "5 minutes"\n', "monitor.interval"),
        ("[monitor]\ninterval = 300\n", "monitor.interval"),
        ('[monitor]\nintervall = "5m"\n', 'did you mean "interval"'),
        ('[monitor]\ndatabase = "mysql://u@h/db"\n', "unsupported database"),
        ('[monitor]\nlanguages = ["deu"]\n', 'use "de"'),
        ('[channels]\ndesk = "${NO_SUCH_VARIABLE}"\n', "NO_SUCH_VARIABLE"),
        ('[channels]\ndesk = "nosuchscheme://x"\n', "channels.desk"),
        ('[[feeds]]\nname = "f"\nurl = "file:///etc/passwd"\n', 'feeds[1] "f".url'),
        (FEED + FEED, "duplicate feed name"),
        (FEED + '[[rules]]\nname = "r"\nany_of = ["Kursk"]\n', "any_of"),
        (FEED + '[[rules]]\nname = "r"\nquery = "Kursk AND"\n', 'rules[1] "r".query: column'),
        (FEED + '[[rules]]\nname = "r"\nquery = "NOT Kursk"\n', 'rules[1] "r"'),
        (FEED + RULE + RULE, "duplicate rule name"),
        (FEED + RULE + 'channels = ["nowhere"]\n', 'unknown channel "nowhere"'),
        (FEED + '[[rules]]\nname = "r"\nany = "Kursk"\n', 'rules[1] "r".any'),
    ],
)
def test_each_kind_of_config_mistake_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
    code, out, err = run(capsys, "--config", str(config), "check")
    assert code == 2
    assert str(config) in err and message in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    ("text", "warnings"),
    [
        (FEED + RULE, []),
        ("", ["no [[feeds]]", "no [[rules]]"]),
        (RULE, ["no [[feeds]]"]),
        (FEED, ["no [[rules]]"]),
        (FEED.replace("[[feeds]]\n", "[[feeds]]\nenabled = false\n") + RULE, ["enabled = false"]),
    ],
)
def test_check_warns_on_a_config_that_polls_or_matches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, warnings: list[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
    code, out, err = run(capsys, "--config", str(config), "check")
    assert code == 0 and "OK" in out
    lines = [line for line in err.splitlines() if "warning" in line]
    assert len(lines) == len(warnings)
    for line, warning in zip(lines, warnings, strict=True):
        assert str(config) in line and warning in line


def test_check_warns_about_rules_that_will_flood(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[feeds]]\nname = "n"\nurl = "http://127.0.0.1:9/f"\n'
        '[[rules]]\nname = "noisy"\nany = ["the"]\nlanguages = ["en"]\n'
        '[[rules]]\nname = "fine"\nany = ["Kursk"]\n',
        encoding="utf-8",
    )
    code, _, err = run(capsys, "--config", str(config), "check")
    assert code == 0
    [line] = [line for line in err.splitlines() if "warning" in line]
    assert '"noisy"' in line and "config.toml:" in line
