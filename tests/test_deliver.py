"""Delivery through real loopback servers (aiosmtpd, a JSON webhook), Slack captured, console.

Nothing here reaches the internet: Slack's HTTP call is replaced by a recorder. Secrets are
canaries that must never appear in an outcome, a log record or stdout.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import apprise
import apprise.url
import pytest
import requests

from monitor.alerts.deliver import (
    Channel,
    DeliveryOutcome,
    SecretRedactor,
    mask_url,
    redact,
    register_console_channel,
    send,
    url_problem,
)
from monitor.alerts.outbox import BASE_DELAY, MAX_DELAY, next_attempt, retry_delay
from monitor.alerts.render import render
from monitor.logs import HANDLER_NAME, setup_logging
from monitor.types import AlertContent, ChannelConfig, Match, Message
from tests.servers import SmtpServer, WebhookServer, closed_port

CANARY = "Canary7pw9Secret"
SLACK_TOKEN = "T1A2B3C4D/B5E6F7G8H/Xq9CanaryTokenZz12345678"
SLACK_URL = f"slack://{SLACK_TOKEN}/#osint"

HOSTILE_TITLE = (
    "Kursk <!channel> @here <@U123> <https://evil.example|click> <script>alert(1)</script> "
    "javascript:alert(1)\r\nBcc: victim@evil.example"
)


def alert(title: str = "Nordkoreanische Truppen bei Kursk", snippet: str = "… Kursk …") -> Message:
    return render(
        AlertContent(
            title=title,
            link="https://www.tagesschau.de/ausland/kursk-100.html",
            feed="tagesschau",
            published=datetime(2024, 10, 1, 12, 0, tzinfo=UTC),
            matches=(Match(rule="nk-troops", terms=("Kursk",), snippet=snippet),),
            alert_id="alert-0001",
        )
    )


def channel(*urls: str, name: str = "desk") -> ChannelConfig:
    return ChannelConfig(name=name, urls=urls)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(password=CANARY) as server:
        yield server


@pytest.fixture
def hook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def fresh_apprise_logger() -> Iterator[logging.Logger]:
    """The `apprise` logger as nobody configured it; restored afterwards."""
    log = logging.getLogger(apprise.LOGGER_NAME)
    before = log.level
    log.setLevel(logging.NOTSET)
    yield log
    log.setLevel(before)


class SlackRecorder:
    """Stands in for `requests.request` (what Apprise's Slack plugin calls)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append((method, url, kwargs))
        response = requests.Response()
        response.status_code = self.status
        response._content = b"ok" if self.status == 200 else b"invalid_token"
        return response

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(kwargs["data"]) for _, _, kwargs in self.calls]


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> SlackRecorder:
    recorder = SlackRecorder()
    monkeypatch.setattr(requests, "request", recorder)
    return recorder


# --- email ---------------------------------------------------------------------------------


def test_email_arrives_with_title_as_subject_and_plain_body(smtp: SmtpServer) -> None:
    msg = alert()
    outcome = send(channel(smtp.apprise_url()), msg)
    assert outcome == DeliveryOutcome(ok=True)
    [received] = smtp.wait_for(1)
    assert received["Subject"] == msg.title
    assert received.get_content_type() == "text/plain"
    assert received.get_content().strip().replace("\r\n", "\n") == msg.body
    assert smtp.received[0].rcpt_tos == ("desk@example.org",)
    assert smtp.logins == ["user"]


def test_email_header_injection_in_title_adds_no_header(smtp: SmtpServer) -> None:
    msg = alert(title=HOSTILE_TITLE, snippet=HOSTILE_TITLE)
    assert send(channel(smtp.apprise_url()), msg).ok
    [received] = smtp.wait_for(1)
    assert len(received.get_all("Subject") or []) == 1
    assert received["Bcc"] is None and received["Cc"] is None
    assert smtp.received[0].rcpt_tos == ("desk@example.org",)
    raw = smtp.received[0].raw.decode()
    assert "victim@evil.example" not in raw and "<script>" not in received.get_content()
    assert "\nBcc:" not in raw


def test_smtp_down_fails_fast_without_secret(debug_logs: pytest.LogCaptureFixture) -> None:
    url = f"mailto://user:{CANARY}@127.0.0.1:{closed_port()}?from=a@b.example&to=d@e.example"
    started = time.monotonic()
    outcome = send(channel(url), alert(), timeout=60)
    assert time.monotonic() - started < 20  # refused at once, never waiting for the 60 s
    assert not outcome.ok and outcome.error
    assert "E-Mail" in outcome.error
    assert CANARY not in outcome.error and CANARY not in debug_logs.text


def test_smtp_outage_then_recovery_on_the_same_port(smtp: SmtpServer) -> None:
    desk = Channel(channel(smtp.apprise_url()))
    port = smtp.port
    smtp.stop()
    assert not desk.send(alert()).ok
    smtp.start()
    assert smtp.port == port
    assert desk.send(alert()).ok
    assert len(smtp.wait_for(1)) == 1


def test_a_reused_channel_never_sleeps_between_sends(
    smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a reused Apprise e-mail object would sleep 5.5 s between two sends (its throttle)
    sleeps: list[float] = []

    class RecordingTime:  # Apprise's throttle sleeps through `time` of apprise.url
        def sleep(self, seconds: float) -> None:
            sleeps.append(seconds)

        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

    monkeypatch.setattr(apprise.url, "time", RecordingTime())
    desk = Channel(channel(smtp.apprise_url()))
    assert all(desk.send(alert()).ok for _ in range(3))
    assert len(smtp.wait_for(3)) == 3
    assert [s for s in sleeps if s > 0] == []


@pytest.mark.parametrize("reply", ["451 4.3.0 Try again later", "550 5.7.1 Rejected"])
def test_smtp_rejection_is_a_failure(smtp: SmtpServer, reply: str) -> None:
    smtp.always_fail(reply)
    outcome = send(channel(smtp.apprise_url()), alert())
    assert not outcome.ok and outcome.error and CANARY not in outcome.error
    smtp.always_fail(None)
    assert send(channel(smtp.apprise_url()), alert()).ok


# --- webhook -------------------------------------------------------------------------------


def test_json_webhook_receives_title_and_body(hook: WebhookServer) -> None:
    msg = alert()
    assert send(channel(hook.apprise_url()), msg).ok
    [request] = hook.wait_for(1)
    assert request.method == "POST" and request.path == "/hook"
    assert request.json["title"] == msg.title
    assert request.json["message"] == msg.body
    assert "alert-id: alert-0001" in request.json["message"]


def test_webhook_500_is_a_failure_without_secret(
    hook: WebhookServer, debug_logs: pytest.LogCaptureFixture
) -> None:
    hook.always_fail(500)
    outcome = send(channel(hook.apprise_url("user", CANARY)), alert())
    assert not outcome.ok and outcome.error
    assert "500" in outcome.error
    assert "\n" not in outcome.error
    assert CANARY not in outcome.error
    assert CANARY not in debug_logs.text
    assert len(hook.requests) == 1  # Apprise itself does not retry: the outbox does


def test_huge_summary_is_one_truncated_message(hook: WebhookServer) -> None:
    msg = alert(snippet="Kursk " * 20_000)  # ~120 KB
    assert send(channel(hook.apprise_url()), msg).ok
    [request] = hook.wait_for(1)
    assert len(hook.requests) == 1
    body = request.json["message"]
    assert len(body) <= 4000 and body.count("[… truncated]") == 1
    assert body.endswith("alert-id: alert-0001")


def test_webhook_fails_then_recovers(hook: WebhookServer) -> None:
    desk = Channel(channel(hook.apprise_url()))
    hook.fail_next(2)
    results = [desk.send(alert()).ok for _ in range(3)]
    assert results == [False, False, True]
    assert [r.status for r in hook.requests] == [500, 500, 200]


def test_slow_webhook_times_out_as_unknown_outcome(hook: WebhookServer) -> None:
    hook.set_delay(30)
    started = time.monotonic()
    outcome = Channel(channel(hook.apprise_url()), timeout=0.5).send(alert())
    assert time.monotonic() - started < 15  # cut at the timeout, not the 30 s answer
    assert not outcome.ok and outcome.error and "timed out" in outcome.error
    assert len(hook.wait_for(1)) == 1  # it did reach the receiver: hence the stable alert id


def test_partial_success_of_a_multi_url_channel_fails_whole(
    hook: WebhookServer, capsys: pytest.CaptureFixture[str]
) -> None:
    hook.always_fail(503)
    outcome = send(channel(hook.apprise_url(), "console://"), alert())
    assert not outcome.ok and outcome.error
    assert outcome.error.startswith("partial: 1 of 2 URLs accepted")
    assert "[news monitor]" in capsys.readouterr().out
    hook.always_fail(None)
    assert send(channel(hook.apprise_url(), "console://"), alert()).ok


def test_channels_are_independent(hook: WebhookServer, smtp: SmtpServer) -> None:
    hook.always_fail(500)
    channels = [channel(hook.apprise_url(), name="hook"), channel(smtp.apprise_url(), name="mail")]
    results = {c.name: send(c, alert()).ok for c in channels}
    assert results == {"hook": False, "mail": True}


# --- Slack (captured, never sent) ----------------------------------------------------------


def test_slack_payload_has_no_live_mention_or_link(slack: SlackRecorder) -> None:
    msg = alert(title=HOSTILE_TITLE, snippet=HOSTILE_TITLE + " @everyone")
    assert send(channel(SLACK_URL), msg).ok
    [(method, url, _)] = slack.calls
    assert method.upper() == "POST" and url.startswith("https://hooks.slack.com/services/")
    [payload] = slack.payloads()
    text = json.dumps(payload, ensure_ascii=False)
    for live in ("<!", "<@", "<http", "<#", "@here", "@channel", "@everyone", "<script"):
        assert live not in text, live
    assert payload.get("mrkdwn") is False
    assert "tagesschau.de/ausland/kursk-100.html" in text  # the item link is kept


def test_slack_failure_and_logs_hide_the_token(
    monkeypatch: pytest.MonkeyPatch, fresh_apprise_logger: logging.Logger
) -> None:
    recorder = SlackRecorder(status=403)
    monkeypatch.setattr(requests, "request", recorder)
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect(level=logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        outcome = Channel(channel(SLACK_URL)).send(alert())
    finally:
        root.removeHandler(handler)
    assert fresh_apprise_logger.level == logging.WARNING  # P9: DEBUG logs the full token
    assert not outcome.ok and outcome.error and "403" in outcome.error
    secret = SLACK_TOKEN.split("/")[-1]
    assert secret not in outcome.error
    assert records and not any(secret in r for r in records)


# --- console -------------------------------------------------------------------------------


def test_console_channel_prints_the_alert(capsys: pytest.CaptureFixture[str]) -> None:
    msg = alert()
    assert send(channel("console://"), msg).ok
    out = capsys.readouterr().out
    assert msg.title in out and msg.body in out


def test_console_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert send(channel("console://stderr"), alert()).ok
    captured = capsys.readouterr()
    assert "[news monitor]" in captured.err and captured.out == ""


def test_console_registration_is_idempotent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        register_console_channel()
    assert url_problem("console://") is None
    assert "already defined" not in caplog.text


# --- failures never raise ------------------------------------------------------------------


def test_invalid_urls_fail_without_raising_or_leaking() -> None:
    outcome = send(channel(f"nosuch://user:{CANARY}@host", f"slack://{CANARY}"), alert())
    assert not outcome.ok and outcome.error
    assert "URL 1" in outcome.error and "URL 2" in outcome.error
    assert CANARY not in outcome.error


def test_apprise_exception_becomes_outcome(
    monkeypatch: pytest.MonkeyPatch, hook: WebhookServer
) -> None:
    url = hook.apprise_url("user", CANARY)

    def boom(self: object, *args: object, **kwargs: object) -> None:
        raise RuntimeError(f"exploded while sending to {url}")

    monkeypatch.setattr(apprise.Apprise, "notify", boom)
    outcome = send(channel(url), alert())
    assert not outcome.ok and outcome.error and outcome.error.startswith("RuntimeError")
    assert CANARY not in outcome.error


def test_long_failure_reason_is_one_capped_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: object, *args: object, **kwargs: object) -> None:
        raise RuntimeError("line one\n" + "word\t" * 500)

    monkeypatch.setattr(apprise.Apprise, "notify", boom)
    outcome = send(channel("console://"), alert())
    assert not outcome.ok and outcome.error
    assert outcome.error.startswith("RuntimeError: line one word word")
    assert len(outcome.error) <= 300 and outcome.error.endswith("…")
    assert "\n" not in outcome.error and "\t" not in outcome.error


def test_channel_with_no_url() -> None:
    assert send(channel(), alert()) == DeliveryOutcome(ok=False, error="no URL configured")


# --- logging -------------------------------------------------------------------------------


def test_channel_puts_a_fresh_apprise_logger_at_warning(
    fresh_apprise_logger: logging.Logger,
) -> None:
    Channel(channel("console://"))
    assert fresh_apprise_logger.level == logging.WARNING


def test_channel_respects_an_explicit_apprise_level(fresh_apprise_logger: logging.Logger) -> None:
    fresh_apprise_logger.setLevel(logging.INFO)
    Channel(channel("console://"))
    assert fresh_apprise_logger.level == logging.INFO


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    scheduler = logging.getLogger("apscheduler")
    scheduler_level = scheduler.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    scheduler.setLevel(scheduler_level)


@pytest.mark.usefixtures("restore_logging")
def test_setup_logging_sets_the_apprise_level(fresh_apprise_logger: logging.Logger) -> None:
    setup_logging(verbose=3)  # -vvv: Apprise's debug output too (the Redactor still applies)
    assert fresh_apprise_logger.level == logging.DEBUG
    Channel(channel("console://"))  # an explicit level stays
    assert fresh_apprise_logger.level == logging.DEBUG
    setup_logging(verbose=2, daemon=True)
    assert fresh_apprise_logger.level == logging.WARNING


def test_secret_redactor_filter() -> None:
    url = f"mailto://alerts:{CANARY}@mail.example.org?to=desk@example.org"
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.addFilter(SecretRedactor([url]))
    log = logging.getLogger("test.redactor")
    log.setLevel(logging.DEBUG)  # whatever level an earlier test left on the root logger
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("password is %s in %s", CANARY, url)
        try:
            raise ValueError(CANARY)
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert len(lines) == 2
    assert all(CANARY not in line for line in lines)
    assert "password is *** in mailto://alerts:***@mail.example.org?to=desk@example.org" in lines[0]


def test_secret_redactor_set_urls_replaces_the_secrets() -> None:
    old = f"mailto://alerts:{CANARY}@mail.example.org?to=desk@example.org"
    new = "mailto://alerts:N3wSecretPw@mail.example.org?to=desk@example.org"
    redactor = SecretRedactor([old])
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "%s %s", (CANARY, "N3wSecretPw"), None
    )
    redactor.set_urls([new])  # what a config reload has to call
    assert redactor.filter(record) and record.getMessage() == f"{CANARY} ***"


# --- redaction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        (f"mailtos://alerts:{CANARY}@mail.example.org?to=desk@example.org", [CANARY]),
        ("mailto://u:p%40ss%2Fword@mail.example.org", ["p@ss/word", "p%40ss%2Fword"]),
        (SLACK_URL, SLACK_TOKEN.split("/")),
        (
            "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-100123",
            ["AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"],
        ),
        ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", ["JHMHI8qBe7bk2ZwO5U711o3dV_js"]),
        ("json://hooks.example.org/x?+Authorization=Bearer%20abc123xyz", ["Bearer abc123xyz"]),
        ("ntfy://ntfy.example.org/topic?token=tk_abcdefghijklmnop", ["tk_abcdefghijklmnop"]),
        ("gotify://gotify.example.org/AbCdEf123456", ["AbCdEf123456"]),
    ],
)
def test_redact_removes_secrets(url: str, secrets: list[str]) -> None:
    text = f"error at {url}; " + "; ".join(f"saw {s}" for s in secrets)
    redacted = redact(text, [url])
    for secret in secrets:
        assert secret not in redacted
    assert "***" in redacted
    assert mask_url(url).count("***") + mask_url(url).count("...") >= 1
    for secret in secrets:
        assert secret not in mask_url(url)


def test_redact_keeps_harmless_text() -> None:
    url = f"mailtos://alerts:{CANARY}@mail.example.org?to=desk@example.org"
    assert redact("Connection refused by mail.example.org", [url]) == (
        "Connection refused by mail.example.org"
    )


def test_url_problem() -> None:
    assert url_problem("json://127.0.0.1:8080/hook") is None
    assert url_problem("mailto://u:p@mail.example.org?to=a@b.example") is None
    assert url_problem(SLACK_URL) is None
    assert "scheme" in (url_problem("nosuch://x") or "")
    assert url_problem("no url here") is not None


# --- outbox backoff (pure) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(0, 0), (-1, 0), (1, 30), (2, 60), (3, 120), (4, 240), (7, 1920), (8, 3600), (9, 3600)],
)
def test_retry_delay_doubles_from_30s_capped_at_1h(attempts: int, seconds: int) -> None:
    assert retry_delay(attempts) == timedelta(seconds=seconds)


def test_retry_delay_huge_attempts_stays_capped() -> None:
    assert retry_delay(10**9) == MAX_DELAY


def test_retry_delay_jitter_stays_within_bounds() -> None:
    assert retry_delay(1, jitter=0.5, sample=0.0) == BASE_DELAY
    assert retry_delay(1, jitter=0.5, sample=1.0) == BASE_DELAY / 2
    assert retry_delay(20, jitter=0.2, sample=0.5) == MAX_DELAY * 0.9
    for _ in range(100):
        assert MAX_DELAY / 2 <= retry_delay(30, jitter=0.5) <= MAX_DELAY
    with pytest.raises(ValueError):
        retry_delay(1, jitter=2)


def test_next_attempt() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert next_attempt(now, 3) == now + timedelta(minutes=2)
