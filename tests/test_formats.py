"""Each channel's own format, with hostile feed text, checked on the bytes that reach a real
loopback server: HTML e-mail (aiosmtpd), Slack mrkdwn and Discord Markdown (a local HTTP
receiver standing in for hooks.slack.com / discord.com: Apprise's endpoint URL is pointed at
127.0.0.1, the only thing mocked), and a json:// webhook's structured fields."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from apprise.plugins.discord import NotifyDiscord
from apprise.plugins.slack import NotifySlack

from monitor.alerts.deliver import send_alert
from monitor.alerts.render import render, render_html, render_markdown
from monitor.types import AlertContent, ChannelConfig, Match
from tests.servers import SmtpServer, WebhookServer

HOSTILE_TITLE = (
    "<script>alert(1)</script> <!channel> <!here> <@U123> @everyone **bold** "
    "[x](https://evil.example/a) "
    '<a href="javascript:alert(2)">click</a> & evil.example/login'
)
HOSTILE_SNIPPET = (
    "Truppen bei Kursk <img src=x onerror=alert(3)> <https://evil.example|Kursk> "
    "*kursk* `code` @here ![i](http://evil.example/p.png) javascript:alert(4)"
)
LINK = "https://news.example/story?id=7&lang=de"


def hostile() -> AlertContent:
    return AlertContent(
        title=HOSTILE_TITLE,
        link=LINK,
        feed="feed <!channel>",
        published=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        matches=(Match("kursk", ("Kursk",), HOSTILE_SNIPPET),),
        alert_id="nm-0123456789abcdef0123",
        item_id="nmi-0123456789abcdef0123",
    )


FORBIDDEN = [
    "<script",
    "<!channel>",
    "<!here>",
    "<@U123>",
    "@everyone",
    "@here",
    "<img",
    "javascript:",
    "evil.example",
]


def assert_inert(text: str) -> None:
    for bad in FORBIDDEN:
        assert bad not in text, (bad, text)


def test_email_is_html_with_a_text_part_a_real_link_and_highlights() -> None:
    with SmtpServer() as smtp:
        outcome = send_alert(ChannelConfig("mail", (smtp.apprise_url(),)), hostile(), timeout=10)
        assert outcome.ok, outcome.error
        [mail] = smtp.received
    raw = mail.raw.decode()
    message = mail.message
    assert message["X-Alert-Id"] == "nm-0123456789abcdef0123"
    subject = str(message["Subject"])
    assert subject.startswith("[kursk] ")
    assert_inert(subject)
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None
    html_text = rich.get_content()
    assert_inert(html_text)
    assert_inert(plain.get_content())
    # the one live link is the item's, written as an anchor; nothing else has an href
    hrefs = re.findall(r'href="([^"]*)"', html_text)
    assert hrefs and set(hrefs) == {"https://news.example/story?id=7&amp;lang=de"}
    assert re.findall(r"<(\w+)", html_text) and set(re.findall(r"<(\w+)", html_text)) <= {
        "h2",
        "a",
        "p",
        "b",
        "br",
        "mark",
        "blockquote",
    }
    assert "<mark><b>Kursk</b></mark>" in html_text  # the matched word, whole-word, any case
    assert "<mark><b>kursk</b></mark>" in html_text
    assert "‹script›" in html_text  # the feed's markup is shown as text
    assert "nm-0123456789abcdef0123" in raw


@pytest.fixture
def slack_hook(monkeypatch: pytest.MonkeyPatch) -> WebhookServer:
    hook = WebhookServer(path="/services")
    hook.reply = b"ok"
    hook.start()
    monkeypatch.setattr(NotifySlack, "webhook_url", f"http://127.0.0.1:{hook.port}/services")
    return hook


def test_slack_gets_mrkdwn_with_the_link_as_a_link_and_bold_terms(
    slack_hook: WebhookServer,
) -> None:
    try:
        url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7/"
        outcome = send_alert(ChannelConfig("slack", (url,)), hostile(), timeout=10)
        assert outcome.ok, outcome.error
        [request] = slack_hook.requests
    finally:
        slack_hook.stop()
    body = request.body.decode()
    payload = json.loads(body)
    text = json.dumps(payload, ensure_ascii=False)
    # Slack's own syntax is live only where we wrote it: the item link and bold
    links = re.findall(r"<([^<>]*)>", text)
    assert links and all(link.startswith("https://news.example/story") for link in links)
    assert "*Kursk*" in text and "*kursk*" in text
    for bad in ("<!", "<@", "@everyone", "@here", "evil.example", "<script", "javascript:"):
        assert bad not in text, bad


def test_discord_gets_markdown_with_feed_text_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = WebhookServer(path="/api/webhooks/4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js")
    hook.start()
    monkeypatch.setattr(NotifyDiscord, "notify_url", f"http://127.0.0.1:{hook.port}/api/webhooks")
    try:
        url = "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js/"
        outcome = send_alert(ChannelConfig("discord", (url,)), hostile(), timeout=10)
        assert outcome.ok, outcome.error
        requests = hook.requests
    finally:
        hook.stop()
    text = json.dumps([r.json for r in requests], ensure_ascii=False)
    assert "](<https://news.example/story?id=7&lang=de>)" in text  # our one link
    assert "**Kursk**" in text and "**kursk**" in text
    assert r"\*\*bold\*\*" in text.replace("\\\\", "\\")  # the feed's markup stays literal
    assert_inert(text)


def test_webhook_gets_structured_fields_and_the_alert_id() -> None:
    with WebhookServer() as hook:
        outcome = send_alert(ChannelConfig("hook", (hook.apprise_url(),)), hostile(), timeout=10)
        assert outcome.ok, outcome.error
        [request] = hook.requests
    payload = request.json
    assert payload["title"] == render(hostile()).title  # the plain text as before
    assert payload["message"] == render(hostile()).body
    fields = payload["alert"]
    assert fields["alert_id"] == "nm-0123456789abcdef0123"
    assert fields["item_id"] == "nmi-0123456789abcdef0123"
    assert fields["rules"] == ["kursk"]
    assert fields["link"] == LINK
    assert fields["feed"] == "feed ‹!channel›"
    assert fields["terms"] == ["Kursk"]
    assert fields["published"] == "2026-11-25T12:00:00Z"
    assert [m["rule"] for m in fields["matches"]] == ["kursk"]
    raw = request.body.decode("unicode_escape")
    assert_inert(json.dumps(fields, ensure_ascii=False))
    assert "nm-0123456789abcdef0123" in raw


def test_renderers_highlight_whole_words_only() -> None:
    alert = AlertContent(
        "t",
        None,
        "f",
        None,
        (Match("r", ("Kursk",), "Kursker Lage, Kursk und KURSK."),),
        "nm-x",
    )
    assert "Kursker Lage, **Kursk** und **KURSK**" in render_markdown(alert).body
    assert "<mark><b>Kursk</b></mark> und <mark><b>KURSK</b></mark>" in render_html(alert).body
    assert "<mark><b>Kursker" not in render_html(alert).body
