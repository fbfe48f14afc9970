"""Full-text feeds (issue 12) against loopback servers: the article page of each new item is
read (robots.txt, the feed fetcher's limits, the private-address guard), its main text
extracted in a worker and matched with the item; when that fails, the item is matched on its
feed text and the match says so."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from monitor import pipeline
from monitor.app import App, make_app
from monitor.feeds.article import RobotsCache, not_a_page, read_page
from monitor.feeds.dns import IPAddress, address_kind
from monitor.feeds.fetch import Fetcher
from monitor.store.repo import Store, pack_article, unpack_article
from monitor.types import ChannelConfig, Config, FeedConfig, RuleConfig, Settings
from tests.feedserver import Endless, FeedServer, GzipBomb, Redirect, Static
from tests.servers import WebhookServer
from tests.test_fetch_private import MapResolver

NOW = datetime.now(UTC)
HTML = "text/html; charset=utf-8"
PLAYS_PUBLIC = ipaddress.IPv4Address("127.0.0.1")


def plays_public(ip: IPAddress) -> str | None:
    return None if ip == PLAYS_PUBLIC else address_kind(ip)


def rss(base: str, *items: tuple[str, str, str]) -> bytes:
    """A feed whose items are (guid, title, teaser), each linking to {base}/a/{guid}."""
    date = format_datetime(NOW)
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><link>{base}/a/{g}</link>"
        f"<description>{d}</description><pubDate>{date}</pubDate></item>"
        for g, t, d in items
    )
    return f'<rss version="2.0"><channel><title>t</title>{body}</channel></rss>'.encode()


def page(body: str, *, nav: str = "Startseite Politik Wirtschaft Sport") -> bytes:
    """A news page as sites serve them: navigation, a cookie banner, the article, a box of
    related articles, comments and a footer around it."""
    paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
    links = "".join(f'<li><a href="/{w}">{w}</a></li>' for w in nav.split())
    return f"""<!DOCTYPE html><html lang="de"><head><meta charset="utf-8">
<title>Nachrichten</title></head><body>
<header><nav><ul>{links}</ul></nav></header>
<div id="cookie-banner" class="cookie-consent"><p>Wir verwenden Cookies, um Ihnen das beste
Erlebnis zu bieten. <button>Alle akzeptieren</button> <button>Einstellungen</button></p></div>
<main><article><h1>Bericht aus der Region</h1>
<p class="byline">Von unserer Redaktion</p>{paragraphs}</article>
<aside class="related"><h2>Mehr zum Thema</h2><ul>
<li><a href="/r1">Hafenausbau in Rotterdam verzögert sich</a></li>
<li><a href="/r2">Neue Buslinie im Umland</a></li></ul></aside>
<section id="comments"><h2>Kommentare</h2><div class="comment"><p>Leser schreibt: alles
Unsinn hier.</p></div></section></main>
<footer><p>Impressum Datenschutz Kontakt</p></footer></body></html>""".encode()


ARTICLE = (
    "Am Dienstagmorgen überquerte eine Fahrzeugkolonne nach Angaben mehrerer Augenzeugen "
    "die Grenze in der Nähe des Dorfes, wie die Behörden später bestätigten.\n\n"
    "Der Kommandeur der Einheit, Oberst Wendelin Auerhahn, wollte sich am Telefon nicht zu "
    "den Berichten äußern und verwies auf eine Erklärung des Ministeriums.\n\n"
    "Weitere Einzelheiten sollen bis zum Ende der Woche bekannt gegeben werden, hieß es in "
    "einer kurzen Mitteilung, die am Nachmittag verbreitet wurde."
)
TEASER = "Eine Kolonne hat die Grenze überquert."


def make_config(
    tmp: Path,
    feeds: list[FeedConfig],
    channels: list[ChannelConfig] = (),  # type: ignore[assignment]
    *,
    database: str | None = None,
    wait: timedelta = timedelta(seconds=20),
    max_bytes: int = 10 * 1024 * 1024,
) -> Config:
    return Config(
        path=tmp / "config.toml",
        settings=Settings(
            database=database or f"sqlite:///{tmp / 'm.db'}",
            timeout=timedelta(seconds=5),
            full_text_wait=wait,
            max_bytes=max_bytes,
        ),
        channels=tuple(channels),
        feeds=tuple(feeds),
        rules=(
            RuleConfig(name="auerhahn", query="Auerhahn"),
            RuleConfig(name="kolonne", query="Kolonne"),
            RuleConfig(name="rotterdam", query="Rotterdam"),  # only in the related box
            RuleConfig(name="cookies", query="Cookies"),  # only in the cookie banner
        ),
    )


@pytest.fixture
def srv() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


def poll(app: App, fetcher_args: dict[str, Any] | None = None) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        s = app.config.settings
        async with Fetcher(
            timeout=s.timeout.total_seconds(),
            max_bytes=s.max_bytes,
            user_agent=s.user_agent,
            **(fetcher_args or {}),
        ) as fetcher:
            return {o.feed: o for o in await pipeline.poll_all(app, fetcher)}

    return asyncio.run(main())


def open_app(config: Config) -> App:
    return make_app(config, store=Store.open(config.settings.database))


def by_rule(app: App) -> dict[str, Any]:
    return {m.rule: m for m in app.store.matches()}


def test_the_article_is_matched_and_the_snippet_comes_from_it(
    srv: FeedServer, tmp_path: Path, database_url: str
) -> None:
    srv.routes["/feed"] = Static(rss(srv.base_url, ("1", "Grenzübertritt gemeldet", TEASER)))
    srv.routes["/a/1"] = Static(page(ARTICLE, nav="Startseite Politik Auerhahnweg"), HTML)
    feed = FeedConfig("news", srv.url("/feed"), timedelta(minutes=5), full_text=True)
    with WebhookServer() as hook:
        channel = ChannelConfig("hook", (hook.apprise_url(),))
        app = open_app(make_config(tmp_path, [feed], [channel], database=database_url))
        try:
            outcome = poll(app)["news"]
            assert outcome.new_items == 1
            matches = by_rule(app)
            # the commander's name stands only in the article; the teaser's word still counts
            assert set(matches) == {"auerhahn", "kolonne"}
            assert matches["auerhahn"].source == "article"
            assert "Oberst Wendelin Auerhahn" in matches["auerhahn"].snippet
            # boilerplate around the article is not the article: cookie banner, related box
            assert "rotterdam" not in matches and "cookies" not in matches
            asyncio.run(pipeline.deliver_all(app))
            sent = hook.wait_for(1)[0]
            assert "Wendelin Auerhahn" in json.dumps(sent.json, ensure_ascii=False)
            # stored with the item, compressed, for backtests (`test-rule --history`)
            [item] = app.store.items()
            assert item.article is not None and "Wendelin Auerhahn" in item.article
            assert "Cookies" not in item.article and "Rotterdam" not in item.article
            # one article request, with the configured user agent, asking for HTML
            [request] = srv.requests_for("/a/1")
            assert request.headers["user-agent"] == app.config.settings.user_agent
            assert request.headers["accept"].startswith("text/html")
        finally:
            app.close()
            app.store.close()


def test_robots_disallow_means_not_fetched_and_matched_on_the_feed_text(
    srv: FeedServer, tmp_path: Path
) -> None:
    srv.routes["/robots.txt"] = Static(
        b"User-agent: news-monitor\nDisallow: /a/\n\nUser-agent: *\nAllow: /\n", "text/plain"
    )
    srv.routes["/feed"] = Static(rss(srv.base_url, ("1", "Grenzübertritt", TEASER)))
    srv.routes["/a/1"] = Static(page(ARTICLE), HTML)
    feed = FeedConfig("news", srv.url("/feed"), timedelta(minutes=5), full_text=True)
    app = open_app(make_config(tmp_path, [feed]))
    try:
        poll(app)
        assert srv.hits("/a/1") == 0
        assert srv.hits("/robots.txt") == 1
        matches = by_rule(app)
        assert set(matches) == {"kolonne"}  # "Auerhahn" is in the article, never read
        assert matches["kolonne"].source == "feed"
        assert "robots.txt disallows it" in matches["kolonne"].snippet
        assert app.store.items()[0].article is None
    finally:
        app.close()
        app.store.close()


def test_a_slow_article_site_falls_back_after_full_text_wait_and_delays_no_other_feed(
    srv: FeedServer, tmp_path: Path
) -> None:
    srv.routes["/slow-feed"] = Static(rss(srv.base_url + "/slow", ("1", "Gemeldet", TEASER)))
    srv.routes["/slow/a/1"] = Static(page(ARTICLE), HTML, delay=15)
    srv.routes["/other"] = Static(rss(srv.base_url, ("2", "Kolonne gesichtet", "kurz")))
    slow = FeedConfig("slow", srv.url("/slow-feed"), timedelta(minutes=5), full_text=True)
    other = FeedConfig("other", srv.url("/other"), timedelta(minutes=5))
    config = make_config(tmp_path, [slow, other], wait=timedelta(seconds=1))
    config = Config(
        config.path,
        Settings(
            database=config.settings.database,
            timeout=timedelta(seconds=30),  # the article fetch itself would wait 15 s
            full_text_wait=timedelta(seconds=1),
        ),
        (),
        config.feeds,
        config.rules,
    )
    app = open_app(config)

    async def main() -> tuple[bool, Any, Any]:
        async with Fetcher(timeout=30) as fetcher:
            slow_poll = asyncio.create_task(pipeline.poll_feed(app, slow, fetcher))
            other_outcome = await pipeline.poll_feed(app, other, fetcher)
            slow_still_waiting = not slow_poll.done()
            return slow_still_waiting, other_outcome, await slow_poll

    try:
        slow_still_waiting, other_outcome, slow_outcome = asyncio.run(main())
        assert other_outcome.new_items == 1 and other_outcome.matches == 1
        assert slow_still_waiting  # the other feed was recorded while the article loaded
        assert slow_outcome.new_items == 1
        [match] = [m for m in app.store.matches(rule="kolonne") if m.feed == "slow"]
        assert match.source == "feed"
        assert "not read within full_text_wait (1s)" in match.snippet
    finally:
        app.close()
        app.store.close()


def test_a_public_link_redirecting_to_a_private_address_is_refused(
    srv: FeedServer, tmp_path: Path
) -> None:
    port = srv.base_url.rsplit(":", 1)[1]
    public = f"http://news.example:{port}"
    srv.routes["/feed"] = Static(
        rss(public, ("1", "Gemeldet", TEASER), ("2", "Auch gemeldet", TEASER))
    )
    srv.routes["/a/1"] = Redirect(f"http://127.0.0.2:{port}/inside")
    srv.routes["/inside"] = Static(page(ARTICLE), HTML)
    srv.routes["/a/2"] = Static(page(ARTICLE), HTML)
    feed = FeedConfig("news", f"{public}/feed", timedelta(minutes=5), full_text=True)
    app = open_app(make_config(tmp_path, [feed]))
    resolver = MapResolver({"news.example": ["127.0.0.1"]})
    try:
        poll(app, {"resolver": resolver, "address_kind": plays_public})
        assert srv.hits("/inside") == 0
        stored = {m.link: m for m in app.store.matches(rule="kolonne")}
        refused = stored[f"{public}/a/1"]
        assert refused.source == "feed" and "127.0.0.2" in refused.snippet
        assert stored[f"{public}/a/2"].source == "article"  # the honest one is read
        # an item link naming a private address outright is not even tried
        result = asyncio.run(_read_one("http://10.1.2.3/a", resolver))
        assert isinstance(result, str) and "private address" in result
    finally:
        app.close()
        app.store.close()


async def _read_one(link: str, resolver: MapResolver, **args: Any) -> Any:
    async with Fetcher(timeout=5, resolver=resolver, address_kind=plays_public, **args) as f:
        return await read_page(f, RobotsCache(), link, "news-monitor/0.1")


def test_hostile_pages_fail_only_their_own_item(srv: FeedServer, tmp_path: Path) -> None:
    items = [(g, f"Meldung {g}", TEASER) for g in ("huge", "endless", "bomb", "png", "deep", "ok")]
    srv.routes["/feed"] = Static(rss(srv.base_url, *items))
    srv.routes["/a/huge"] = Static(page(ARTICLE + "\n\n" + "Lorem ipsum. " * 20_000), HTML)
    srv.routes["/a/endless"] = Endless(content_type=HTML, seconds=20)
    srv.routes["/a/bomb"] = GzipBomb(size=64 * 1024 * 1024, content_type=HTML)
    srv.routes["/a/png"] = Static(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 100, "image/png")
    srv.routes["/a/deep"] = Static(
        b"<html><body>" + b"<div>" * 50_000 + b"Auerhahn" + b"</div>" * 50_000 + b"</body>",
        HTML,
    )
    srv.routes["/a/ok"] = Static(page(ARTICLE), HTML)
    feed = FeedConfig("news", srv.url("/feed"), timedelta(minutes=5), full_text=True)
    app = open_app(make_config(tmp_path, [feed], max_bytes=128 * 1024))
    try:
        outcome = poll(app)["news"]
        assert outcome.new_items == 6 and outcome.error is None
        notes = {m.link.rsplit("/", 1)[1]: m for m in app.store.matches(rule="kolonne")}
        assert notes["ok"].source == "article"
        assert "response larger than 128 KB" in notes["huge"].snippet
        assert "response larger than 128 KB" in notes["bomb"].snippet
        assert "timed out" in notes["endless"].snippet or "larger" in notes["endless"].snippet
        assert "not an HTML page (image/png)" in notes["png"].snippet
        assert notes["deep"].source == "feed"
        assert {m.link.rsplit("/", 1)[1] for m in app.store.matches(rule="auerhahn")} == {"ok"}
    finally:
        app.close()
        app.store.close()


def test_an_article_is_fetched_once_across_polls(srv: FeedServer, tmp_path: Path) -> None:
    srv.routes["/feed"] = Static(rss(srv.base_url, ("1", "Erste", TEASER)))
    srv.routes["/a/1"] = Static(page(ARTICLE), HTML)
    srv.routes["/a/2"] = Static(page(ARTICLE), HTML)
    feed = FeedConfig("news", srv.url("/feed"), timedelta(minutes=5), full_text=True)
    app = open_app(make_config(tmp_path, [feed]))
    try:
        poll(app)
        srv.routes["/feed"] = Static(
            rss(srv.base_url, ("2", "Zweite", TEASER), ("1", "Erste", TEASER))
        )
        poll(app)
        poll(app)
        assert srv.hits("/a/1") == 1 and srv.hits("/a/2") == 1
        assert srv.hits("/robots.txt") == 1  # 404 (allow all), kept for the next polls
        assert len(app.store.matches(rule="auerhahn")) == 2
    finally:
        app.close()
        app.store.close()


def test_feeds_without_full_text_never_fetch_articles(srv: FeedServer, tmp_path: Path) -> None:
    srv.routes["/feed"] = Static(rss(srv.base_url, ("1", "Erste", TEASER)))
    srv.routes["/a/1"] = Static(page(ARTICLE), HTML)
    feed = FeedConfig("news", srv.url("/feed"), timedelta(minutes=5))
    app = open_app(make_config(tmp_path, [feed]))
    try:
        poll(app)
        assert srv.hits("/a/1") == 0 and srv.hits("/robots.txt") == 0
        assert by_rule(app)["kolonne"].source == "feed"
        assert "[feed text only" not in by_rule(app)["kolonne"].snippet
    finally:
        app.close()
        app.store.close()


def test_robots_answers_per_rfc_9309(srv: FeedServer) -> None:
    async def refusal(path: str) -> str | None:
        from yarl import URL

        async with Fetcher(timeout=5) as fetcher:
            return await RobotsCache().refusal(fetcher, URL(srv.url(path)), "news-monitor/0.1")

    srv.routes["/robots.txt"] = Static(b"", status=404)
    assert asyncio.run(refusal("/a")) is None  # no robots.txt: allowed
    srv.routes["/robots.txt"] = Static(b"", status=503)
    reason = asyncio.run(refusal("/a"))  # unreadable: everything disallowed for a while
    assert reason is not None and "robots.txt could not be read" in reason
    srv.routes["/robots.txt"] = Static(b"User-agent: *\nDisallow: /private\n", "text/plain")
    assert asyncio.run(refusal("/a")) is None
    assert asyncio.run(refusal("/private/x")) == "robots.txt disallows it"


def test_not_a_page() -> None:
    assert not_a_page(b"<html>", {"content-type": "text/html"}) is None
    assert not_a_page(b"x", {"content-type": "application/pdf"}) == "not an HTML page " + (
        "(application/pdf)"
    )
    assert not_a_page(b"GIF89a\x00\x01", {}) == "not an HTML page (binary content)"
    assert not_a_page(b"  ", {}) == "empty page"


def test_article_text_round_trips_compressed() -> None:
    text = "Kursk " * 1000
    packed = pack_article(text)
    assert packed is not None and len(packed) < len(text) // 10
    assert unpack_article(packed) == text
    assert unpack_article(b"not zlib") is None
    assert pack_article(None) is None


# --- configuration and commands ------------------------------------------------------------


def test_full_text_keys(tmp_path: Path) -> None:
    from tests.test_config import load, only

    config = load(
        tmp_path,
        '[monitor]\nfull_text = true\nfull_text_wait = "30s"\n'
        '[[feeds]]\nname = "a"\nurl = "https://example.org/a"\n'
        '[[feeds]]\nname = "b"\nurl = "https://example.org/b"\nfull_text = false\n',
    )
    assert config.settings.full_text_wait == timedelta(seconds=30)
    assert [f.full_text for f in config.feeds] == [True, False]
    default = load(tmp_path, '[[feeds]]\nname = "a"\nurl = "https://example.org/a"\n')
    assert default.settings.full_text_wait == timedelta(minutes=2)
    assert not default.feeds[0].full_text
    problem = only(tmp_path, '[monitor]\nfull_text_wait = "0s"\n')
    assert "monitor.full_text_wait: must be at least 1s" in problem
    problem = only(
        tmp_path, '[[feeds]]\nname = "a"\nurl = "https://example.org/a"\nfull_text = "yes"\n'
    )
    assert problem.endswith('config.toml:4: feeds[1] "a".full_text: expected true or false')


def test_commands_show_the_source_and_backtest_the_article(
    srv: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.cli import main

    srv.routes["/feed"] = Static(rss(srv.base_url, ("1", "Gemeldet", TEASER)))
    srv.routes["/a/1"] = Static(page(ARTICLE), HTML)
    config = tmp_path / "config.toml"
    config.write_text(
        '[monitor]\ndatabase = "sqlite:///m.db"\nfull_text_wait = "20s"\n[channels]\n'
        f'[[feeds]]\nname = "news"\nurl = "{srv.url("/feed")}"\nfull_text = true\n'
        '[[rules]]\nname = "auerhahn"\nany = ["Auerhahn"]\nchannels = []\n'
        '[[rules]]\nname = "ministerium"\nany = ["Ministerium"]\nchannels = []\n',
        encoding="utf-8",
    )
    assert main(["--config", str(config), "poll"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "matches", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["rule"]: r["source"] for r in records} == {
        "auerhahn": "article",
        "ministerium": "article",
    }
    assert main(["--config", str(config), "matches", "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.endswith(",alerted,also_reported_by,copy_of,source")
    # the backtest reads the stored article like the poll did
    assert main(["--config", str(config), "test-rule", "--query", "Auerhahn", "--history"]) == 0
    assert "1 of 1 stored items" in capsys.readouterr().out


def test_the_main_process_never_imports_the_extractor() -> None:
    import subprocess
    import sys

    code = (
        "import sys, monitor.pipeline, monitor.fulltext, monitor.daemon; "
        "print(sorted({'trafilatura', 'justext', 'lxml'} & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # the workers import it (forkserver preload)


def test_a_cancelled_poll_leaves_no_article_fetch_running(srv: FeedServer, tmp_path: Path) -> None:
    srv.routes["/feed"] = Static(rss(srv.base_url, ("1", "Gemeldet", TEASER)))
    srv.routes["/a/1"] = Static(page(ARTICLE), HTML, delay=15)
    feed = FeedConfig("news", srv.url("/feed"), timedelta(minutes=5), full_text=True)
    app = open_app(make_config(tmp_path, [feed], wait=timedelta(seconds=60)))

    async def main() -> list[asyncio.Task[Any]]:
        async with Fetcher(timeout=30) as fetcher:
            polling = asyncio.create_task(pipeline.poll_feed(app, feed, fetcher))
            while srv.hits("/a/1") == 0:
                await asyncio.sleep(0.05)
            polling.cancel()
            with pytest.raises(asyncio.CancelledError):
                await polling
            return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    try:
        assert asyncio.run(main()) == []
        assert app.store.items() == []  # nothing stored: the next poll sees the item as new
    finally:
        app.close()
        app.store.close()
