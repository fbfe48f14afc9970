"""Templates (alerts.templates): Jinja2 sandbox, neutralised variables, HTML autoescaping,
and `monitor check` naming the file and line of a template error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.alerts.deliver import send_alert
from monitor.cli import main
from monitor.types import ChannelConfig, TemplateConfig
from tests.servers import SmtpServer, WebhookServer
from tests.test_formats import assert_inert, hostile

SUBJECT = "{{ feed }} / {{ rules|join(', ') }}: {{ title }}"
BODY = (
    "<h1>{{ title }}</h1>\n"
    "{% for m in matches %}<p class=rule>{{ m.rule }}</p><blockquote>{{ m.snippet }}"
    "</blockquote>{% endfor %}\n"
    '{% if link %}<a href="{{ link }}">read</a>{% endif %}\n'
    "<small>{{ alert_id }} {{ format }}</small>"
)


def template(tmp: Path) -> TemplateConfig:
    return TemplateConfig("t", (str(tmp / "s.j2"), SUBJECT), (str(tmp / "b.j2"), BODY))


def test_an_email_template_autoescapes_and_keeps_feed_text_inert(tmp_path: Path) -> None:
    with SmtpServer() as smtp:
        channel = ChannelConfig("mail", (smtp.apprise_url(),))
        outcome = send_alert(channel, hostile(), timeout=10, template=template(tmp_path))
        assert outcome.ok, outcome.error
        [mail] = smtp.received
    message = mail.message
    subject = str(message["Subject"])
    assert subject.startswith("feed ‹!channel› / kursk: ")
    assert_inert(subject)
    rich = message.get_body(("html",))
    assert rich is not None
    html_text = rich.get_content()
    assert html_text.startswith("<h1>")
    assert_inert(html_text)
    # the template's own markup only; the feed's is text
    assert set(re.findall(r"<(\w+)", html_text)) <= {"h1", "p", "blockquote", "a", "small"}
    assert re.findall(r'href="([^"]*)"', html_text) == [
        "https://news.example/story?id=7&amp;lang=de"
    ]
    assert "nm-0123456789abcdef0123 html" in html_text
    assert message["X-Alert-Id"] == "nm-0123456789abcdef0123"


def test_a_webhook_template_is_text_and_keeps_the_fields(tmp_path: Path) -> None:
    with WebhookServer() as hook:
        channel = ChannelConfig("hook", (hook.apprise_url(),))
        outcome = send_alert(channel, hostile(), timeout=10, template=template(tmp_path))
        assert outcome.ok, outcome.error
        (request,) = hook.wait_for(1)
    body = request.json
    assert body["message"].startswith("<h1>")  # a text format: no escaping beyond neutralising
    assert_inert(body["message"])
    assert body["alert"]["alert_id"] == "nm-0123456789abcdef0123"


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("ok\n{{ title }\n", 2, "unexpected '}'"),
        ("{{ title }}\n{% for m in matches %}\n{{ m.nope }}{% endfor %}\n", 3, "has no attribute"),
        ("{{ title }}\n\n{{ unknown_variable }}\n", 3, "'unknown_variable' is undefined"),
        ("{{ ''.__class__.__mro__ }}\n", 1, "unsafe"),
    ],
)
def test_check_names_the_template_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, line: int, message: str
) -> None:
    (tmp_path / "body.j2").write_text(source)
    config = tmp_path / "config.toml"
    config.write_text(
        '[monitor]\ndatabase = "sqlite:///m.db"\n[channels]\ndesk = "json://127.0.0.1:9/x"\n'
        '[[rules]]\nname = "r"\nany = ["x"]\n'
        '[[templates]]\nname = "t"\nbody = "body.j2"\nchannels = ["desk"]\n'
    )
    assert main(["--config", str(config), "check"]) == 2
    err = capsys.readouterr().err
    assert f"body.j2:{line}: " in err and message in err, err
    assert "templates[1].body" in err and "Traceback" not in err
