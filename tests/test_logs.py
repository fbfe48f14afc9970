"""Log redaction: what is secret in a channel URL is masked wherever it stands as a whole
token; everything else (channel names, hosts, user names, ordinary words) stays readable.
Also the JSON log format and how `check` shows channel URLs."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.alerts.deliver import SecretRedactor, mask_url, redact
from monitor.cli import main
from monitor.logs import HANDLER_NAME, JsonFormatter, redact_secrets_of, setup_logging

SMTP_PW = "Sm7pCanaryPw"
JSON_PW = "JsonCanary99"
SLACK_TOKEN = "T0CANARY1/B0CANARY2/Xq9CanaryTokenZz12345678"

# the examples: a bare webhook, a URL ending in /fail, the README's mail channel
HOOK = "json://127.0.0.1:18080/hook"
FAIL = "json://127.0.0.1:18081/fail"
MAIL = f"mailtos://alerts:{SMTP_PW}@mail.example.org?to=desk@example.org"
URLS = [HOOK, FAIL, MAIL, f"json://hookuser:{JSON_PW}@127.0.0.1:18082/hook"]


def through_redactor(urls: list[str], msg: str, *args: object) -> str:
    record = logging.LogRecord("monitor.daemon", logging.INFO, __file__, 1, msg, args, None)
    assert SecretRedactor(urls).filter(record)
    return record.getMessage()


@pytest.mark.parametrize(
    "line",
    [
        "channel hook: 1 delivered, 0 failed",
        "channel fail: 0 delivered, 1 failed",
        "channel desk: 0 alerts queued",
        "stopping: abandoning running polls, finishing alerts being sent",
        "delivery to channel hook failed; retrying later",
        "JSON notification to 127.0.0.1:18081/fail failed: 500 (user hookuser)",
        "webhooks and hooks, failures, mail.example.org, alerts@example.org",
    ],
)
def test_ordinary_words_are_never_masked(line: str) -> None:
    assert through_redactor(URLS, "%s", line) == line


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        (MAIL, [SMTP_PW]),
        (URLS[3], [JSON_PW]),
        (f"slack://{SLACK_TOKEN}/#osint", SLACK_TOKEN.split("/")),
        ("json://127.0.0.1/x?+Authorization=Bearer%20abc123xyz789", ["abc123xyz789"]),
        ("ntfy://127.0.0.1/topic?token=tk_abcdefghijklmnop", ["tk_abcdefghijklmnop"]),
        ("pover://useruserkey1@tokentokentoken2", ["useruserkey1", "tokentokentoken2"]),
    ],
)
def test_secrets_are_masked_in_every_form(url: str, secrets: list[str]) -> None:
    for secret in secrets:
        for shown in (
            f"login failed with {secret}",
            f"login failed with {secret}.",
            f"GET http://127.0.0.1/?k={secret}&x=1",
            f"'{secret}'",
            f"url={url}",
        ):
            line = through_redactor([url], "%s", shown)
            assert secret not in line, line
            assert "***" in line


def test_a_secret_is_masked_only_as_a_whole_token() -> None:
    url = "json://user:hook@127.0.0.1:18080/x"  # a password that is an ordinary word
    assert through_redactor([url], "channel hook: 1 delivered") == "channel ***: 1 delivered"
    assert through_redactor([url], "webhooks and hooks") == "webhooks and hooks"
    assert through_redactor([url], "auth user:hook@127.0.0.1") == "auth user:***@127.0.0.1"
    assert through_redactor([url], "a=%22hook%22") == "a=%22***%22"  # after a percent escape


def test_a_password_is_masked_in_a_basic_auth_header() -> None:
    basic = base64.b64encode(f"hookuser:{JSON_PW}".encode()).decode()
    line = through_redactor(URLS, "headers: {'Authorization': 'Basic %s'}", basic)
    assert line == "headers: {'Authorization': 'Basic ***'}"


def test_the_redactor_masks_arguments_tracebacks_and_json_logs() -> None:
    record = logging.LogRecord(
        "apprise", logging.ERROR, __file__, 1, "sending to %s failed", (URLS[3],), None
    )
    try:
        raise ConnectionError(f"refused: {MAIL}")
    except ConnectionError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    assert SecretRedactor(URLS).filter(record)
    event = json.loads(JsonFormatter().format(record))
    assert set(event) == {"time", "level", "logger", "message", "traceback"}
    assert event["message"] == "sending to json://hookuser:***@127.0.0.1:18082/hook failed"
    assert SMTP_PW not in event["traceback"] and "mailtos://alerts:***@" in event["traceback"]


def test_redact_secrets_of_follows_a_reload(restore_logging: None) -> None:
    setup_logging(daemon=True, secrets=[HOOK])
    [handler] = [h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME]
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "pw %s", (JSON_PW,), None)
    assert handler.filter(record) and record.getMessage() == f"pw {JSON_PW}"
    redact_secrets_of(URLS)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "pw %s", (JSON_PW,), None)
    assert handler.filter(record) and record.getMessage() == "pw ***"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


# --- how channel URLs are shown ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (HOOK, HOOK),  # the host and path stay; no `***?method=POST&...`
        (f"{FAIL}?method=PUT", f"{FAIL}?method=PUT"),
        (MAIL, "mailtos://alerts:****@mail.example.org/desk%40example.org"),
        (URLS[3], "json://hookuser:****@127.0.0.1:18082/hook"),
        (f"slack://{SLACK_TOKEN}/#osint", "slack://T...1/B...2/X...8/%23osint/"),
        ("console://", "console://"),
        ("console://stderr", "console://stderr"),
        ("json://127.0.0.1/x?+X-Token=ab12cd34ef56", "json://127.0.0.1/x?%2BX-Token=***"),
        ("nosuch://user:pw@host/x", "nosuch://***"),
    ],
)
def test_a_channel_url_is_shown_in_apprise_privacy_form(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_redact_keeps_a_url_readable() -> None:
    text = f"could not reach {URLS[3]} or {MAIL}"
    assert redact(text, URLS) == (
        "could not reach json://hookuser:***@127.0.0.1:18082/hook or "
        "mailtos://alerts:***@mail.example.org?to=desk@example.org"
    )


def test_check_shows_channels_readably_and_hides_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[monitor]
database = "sqlite:///monitor.db"
[channels]
hook = "{HOOK}"
desk = "{MAIL}"
console = "console://stderr"
secured = "{URLS[3]}"
""",
        encoding="utf-8",
    )
    config.chmod(0o600)
    assert main(["--config", str(config), "check"]) == 0
    out = capsys.readouterr().out
    assert f"channel hook: {HOOK}\n" in out
    assert "channel desk: mailtos://alerts:****@mail.example.org" in out
    assert "channel console: console://stderr\n" in out
    assert "channel secured: json://hookuser:****@127.0.0.1:18082/hook\n" in out
    assert SMTP_PW not in out and JSON_PW not in out


def test_check_hints_at_json_for_a_bare_web_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[channels]\nweb = "https://hooks.example.org/in/abc?key=S3cretKey99"\n', encoding="utf-8"
    )
    assert main(["--config", str(config), "check"]) == 2
    err = capsys.readouterr().err
    assert "config.toml:2: channels.web: unknown Apprise scheme 'https'" in err
    assert "for a webhook use json:// or form://" in err
    assert "S3cretKey99" not in err
