"""End to end through the CLI: real loopback feed, SMTP and webhook servers; SQLite and PostgreSQL.

One story, pass by pass, as a user would live it:
1. first poll: every kind of feed is read (RSS 2.0, Atom via gzip behind a redirect, RSS 1.0,
   Latin-1, not well-formed), broken and slow feeds are reported, the German article saying
   "nordkoreanischer Truppen" is caught by "nordkoreanische Truppen" and alerted by email and
   webhook, once per channel, and the same article in a second feed is not alerted again;
2. second poll: nothing is sent again and unchanged feeds are answered 304;
3. the SMTP server is down: the webhook still gets the new alert, the email waits;
4. the SMTP server is back: the email arrives, once, and the webhook gets nothing twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

import pytest

from tests.feedserver import FeedServer, Redirect, Static
from tests.servers import SmtpServer, WebhookServer

SMTP_PASSWORD = "canary-pw-7f3a9"
NOW = datetime.now(UTC)


def rfc822(delta: timedelta) -> str:
    return format_datetime(NOW - delta)


def rss(items: list[tuple[str, str, str, str]], encoding: str = "utf-8") -> bytes:
    entries = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>{escape(link)}</link>"
        f"<description>{text}</description><pubDate>{rfc822(timedelta(hours=1))}</pubDate></item>"
        for guid, title, link, text in items
    )
    doc = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel>'
        f"<title>Test</title><link>http://127.0.0.1/</link>{entries}</channel></rss>"
    )
    return doc.encode(encoding)


GERMAN = (
    "de-1",
    "Nato: Nordkoreanische Soldaten an der Front",
    "https://news.example/de/nk-kursk?utm_source=rss&utm_medium=feed",
    "Die Nato hat am Montag die Verlegung nordkoreanischer Truppen in die russische "
    "Kursk-Region bestätigt. Nach Angaben aus Brüssel handelt es sich um mehrere Tausend Mann.",
)
GERMAN_NEW = (
    "de-2",
    "Weitere Einheiten aus Pjöngjang",
    "https://news.example/de/nk-kursk-2",
    "Nach Berichten aus Seoul sollen weitere nordkoreanische Truppen im Gebiet Kursk "
    "eingetroffen sein.",
)
OLD_ISO = (NOW - timedelta(days=3)).isoformat()
ATOM = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>World</title><id>urn:world</id>
<updated>{NOW.isoformat()}</updated>
<entry><id>urn:en-1</id><title>Troops sighted near Kursk</title>
<link href="https://world.example/en/1"/><updated>{NOW.isoformat()}</updated>
<summary type="html">&lt;p&gt;Officials said &lt;b&gt;North Korean troops&lt;/b&gt; were seen
moving towards Kursk on Tuesday.&lt;/p&gt;</summary></entry>
<entry><id>urn:en-old</id><title>Old report on North Korean troops in Kursk</title>
<link href="https://world.example/en/old"/><updated>{OLD_ISO}</updated>
<summary>North Korean troops were first reported in Kursk long ago.</summary></entry>
</feed>""".encode()
RDF = f"""<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="http://127.0.0.1/ru"><title>Новости</title><link>http://127.0.0.1/ru</link>
<description>ru</description></channel>
<item rdf:about="https://ru.example/1"><title>Северокорейские военные в Курской области</title>
<link>https://ru.example/1</link><description>По данным разведки, северокорейские военные
переброшены в район Курска.</description><dc:date>{NOW.isoformat()}</dc:date></item>
</rdf:RDF>""".encode()
LATIN1 = rss(
    [
        (
            "lat-1",
            "Gespräche in München",
            "https://latin.example/1",
            "Die Außenminister führten Gespräche über Großbritannien.",
        )
    ],
    encoding="iso-8859-1",
)
BROKEN = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Kaputt</title>'
    b"<item><guid>br-1</guid><title>Meldung ohne Ende</title><link>https://broken.example/1"
    b"</link><description>Ein Bericht <b>ohne schliessende Tags"
)


def config_text(srv: FeedServer, smtp: SmtpServer, hook: WebhookServer, database: str) -> str:
    mail_url = smtp.apprise_url().replace(f":{SMTP_PASSWORD}@", ":${SMTP_PASSWORD}@")
    return f"""
[monitor]
database = "{database}"
interval = "5m"
timeout = "2s"
max_age = "24h"
languages = ["de", "en"]

[channels]
mail = "{mail_url}"
hook = "{hook.apprise_url()}"

[[feeds]]
name = "german"
url = "{srv.url("/de.xml")}"
[[feeds]]
name = "world"
url = "{srv.url("/moved/world.atom")}"
[[feeds]]
name = "russian"
url = "{srv.url("/ru.rdf")}"
[[feeds]]
name = "latin1"
url = "{srv.url("/latin1.xml")}"
[[feeds]]
name = "broken"
url = "{srv.url("/broken.xml")}"
[[feeds]]
name = "mirror"
url = "{srv.url("/mirror.xml")}"
[[feeds]]
name = "slow"
url = "{srv.url("/slow.xml")}"
[[feeds]]
name = "failing"
url = "{srv.url("/500.xml")}"

[[rules]]
name = "nk-troops"
any = ["nordkoreanische Truppen", "North Korean troops", "северокорейские военные"]
query = 'Kursk OR Курск'
languages = ["de", "en", "ru"]

[[rules]]
name = "talks"
any = ["Gesprache"]
channels = []
"""


@pytest.fixture
def world() -> Iterator[tuple[FeedServer, SmtpServer, WebhookServer]]:
    with FeedServer() as srv, SmtpServer(password=SMTP_PASSWORD) as smtp, WebhookServer() as hook:
        srv.routes["/de.xml"] = Static(rss([GERMAN]), etag='"de-v1"')
        srv.routes["/moved/world.atom"] = Redirect("/world.atom", status=302)
        srv.routes["/world.atom"] = Static(
            ATOM, content_type="application/atom+xml", encoding="gzip", etag='"w1"'
        )
        srv.routes["/ru.rdf"] = Static(
            RDF, content_type="application/rdf+xml", last_modified=format_datetime(NOW, usegmt=True)
        )
        srv.routes["/latin1.xml"] = Static(LATIN1, content_type="application/rss+xml")
        srv.routes["/broken.xml"] = Static(BROKEN)
        mirror = (*GERMAN[:2], "https://news.example/de/nk-kursk#top", GERMAN[3])
        srv.routes["/mirror.xml"] = Static(rss([("mirror-1", *mirror[1:])]))
        srv.routes["/slow.xml"] = Static(rss([GERMAN_NEW]), delay=6.0)
        srv.routes["/500.xml"] = Static(b"oops", status=500, content_type="text/plain")
        yield srv, smtp, hook


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one command; whatever else the story checks, no command may print a traceback."""
    env = {**os.environ, "SMTP_PASSWORD": SMTP_PASSWORD}
    env.pop("MONITOR_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    for name, output in (("stderr", result.stderr), ("stdout", result.stdout)):
        assert "Traceback" not in output, f"`monitor {' '.join(args)}` {name}:\n{output}"
    return result


def settle() -> None:
    """Give a stray duplicate the chance to arrive before we count (bounded)."""
    time.sleep(0.3)


def test_the_whole_story(
    world: tuple[FeedServer, SmtpServer, WebhookServer], database_url: str, tmp_path: Path
) -> None:
    srv, smtp, hook = world
    config = tmp_path / "config.toml"
    config.write_text(config_text(srv, smtp, hook, database_url), encoding="utf-8")

    # 1. first pass
    first = monitor(config, "poll")
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    out = first.stdout
    assert "failing" in out and "500" in out
    assert "slow" in out and "timed out" in out.lower()
    assert SMTP_PASSWORD not in out + first.stderr
    mails = smtp.wait_for(3)
    hooks = hook.wait_for(3)
    settle()
    assert len(smtp.messages) == 3 and len(hook.requests) == 3  # de, en, ru; mirror deduped
    subjects = sorted(str(m["Subject"]) for m in mails)
    assert any("Nordkoreanische Soldaten an der Front" in s for s in subjects)
    german = next(m for m in mails if "Nordkoreanische Soldaten" in str(m["Subject"]))
    body = german.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "nordkoreanischer Truppen" in text  # the matched terms, as written
    assert "nk-troops" in text
    assert "Feed: german" in text or "Feed: mirror" in text  # whichever was polled first
    assert "https://news.example/de/nk-kursk" in text
    bodies = [json.dumps(r.json, ensure_ascii=False) for r in hooks]
    assert any("Курской" in b or "Курска" in b for b in bodies)
    assert not any("Old report" in b for b in bodies)  # older than max_age: stored only

    found = json.loads(monitor(config, "matches", "--format", "json").stdout)
    by_title = {m["title"]: m for m in found}
    assert set(by_title) >= {
        "Nato: Nordkoreanische Soldaten an der Front",
        "Troops sighted near Kursk",
        "Old report on North Korean troops in Kursk",
        "Северокорейские военные в Курской области",
        "Gespräche in München",  # Latin-1 decoded; rule with channels = [] stores only
    }
    assert by_title["Old report on North Korean troops in Kursk"]["alerted"] is False
    assert by_title["Gespräche in München"]["alerted"] is False
    for key in ("rule", "title", "link", "feed", "published", "matched_at", "terms"):
        assert key in found[0]

    feeds = monitor(config, "feeds")
    assert feeds.returncode == 0
    broken_line = next(line for line in feeds.stdout.splitlines() if line.startswith("broken"))
    assert "well-formed" in broken_line or "not" in broken_line

    # 2. second pass: nothing new, nothing sent, validators used
    second = monitor(config, "poll")
    assert second.returncode == 0, second.stderr
    settle()
    assert len(smtp.messages) == 3 and len(hook.requests) == 3
    assert srv.requests_for("/de.xml")[-1].headers.get("if-none-match") == '"de-v1"'
    assert srv.requests_for("/world.atom")[-1].headers.get("if-none-match") == '"w1"'
    assert "if-modified-since" in srv.requests_for("/ru.rdf")[-1].headers
    german_line = next(line for line in second.stdout.splitlines() if line.startswith("german"))
    assert "unchanged" in german_line

    # 3. the mail server is down: the webhook still alerts, the mail waits
    smtp.stop()
    srv.routes["/de.xml"] = Static(rss([GERMAN, GERMAN_NEW]), etag='"de-v2"')
    third = monitor(config, "poll")
    assert third.returncode == 0, third.stderr
    assert "mail" in third.stdout and "1 failed" in third.stdout
    assert SMTP_PASSWORD not in third.stdout + third.stderr
    hook.wait_for(4)
    settle()
    assert len(hook.requests) == 4 and len(smtp.messages) == 3

    # 4. the mail server is back: the waiting email arrives, once; nothing else is repeated
    smtp.start()
    fourth = monitor(config, "poll")
    assert fourth.returncode == 0, fourth.stderr
    smtp.wait_for(4)
    settle()
    assert len(smtp.messages) == 4 and len(hook.requests) == 4
    assert "Pjöngjang" in str(smtp.messages[-1]["Subject"])
    fifth = monitor(config, "poll")
    assert fifth.returncode == 0
    settle()
    assert len(smtp.messages) == 4 and len(hook.requests) == 4
