"""One alert per story: near-copies from several feeds alert once per rule (alerts.story),
are stored linked to the first, and show as "also reported by" in `matches` and digests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

import pytest

from monitor import pipeline
from monitor.alerts.story import MIN_SHINGLES, shingles, similarity, story_of
from monitor.app import App, make_app
from monitor.cli import main
from monitor.store.repo import Store
from monitor.types import AlertTiming, ChannelConfig, Config, FeedConfig, RuleConfig, Settings
from tests.feedserver import FeedServer, Static
from tests.servers import WebhookServer

NOW = datetime.now(UTC).replace(microsecond=0)

# Written for these tests: one agency story, and a different story on the same topic.
STORY = (
    "Drones struck an oil depot in the Kursk region overnight, the regional governor said on "
    "Wednesday, setting a fuel tank on fire. Firefighters brought the blaze under control by "
    "morning and nobody was hurt, according to the emergency services. Residents of two "
    "nearby villages were told to keep their windows closed because of the smoke. The "
    "defence ministry said air defences had downed eleven drones over the border areas, and "
    "rail traffic on the line to Belgorod was briefly halted as a precaution."
)
EDITED = STORY.replace(
    " The defence ministry said air defences had downed eleven drones over the border areas, "
    "and rail traffic on the line to Belgorod was briefly halted as a precaution.",
    "",
).replace("on Wednesday", "early on Wednesday")
REWORDED = STORY.replace("setting a fuel tank on fire", "which set a fuel tank ablaze")
OTHER = (
    "Farmers in the Kursk region expect a smaller wheat harvest after a dry spring, the "
    "regional agriculture department said on Wednesday. Yields fell by about a fifth compared "
    "with last year, and several districts asked for emergency support. Grain traders said "
    "prices on local markets had already risen, while the governor promised compensation for "
    "farms that lost more than half of their crop to the drought."
)


def test_a_story_with_small_edits_is_close_and_another_story_is_not() -> None:
    first = story_of("Drone attack hits Kursk oil depot", STORY)
    trimmed = story_of("Fire at Kursk fuel depot after drone strike", EDITED)
    reworded = story_of("Kursk oil depot ablaze after drones", REWORDED)
    other = story_of("Kursk farmers fear poor harvest", OTHER)
    assert first and trimmed and reworded and other
    assert similarity(first.signature, trimmed.signature) >= 0.5
    assert similarity(first.signature, reworded.signature) >= 0.5
    assert similarity(first.signature, other.signature) < 0.2
    # a shared bucket is what makes the store look at a candidate
    assert set(first.buckets) & set(trimmed.buckets)


def test_too_short_texts_have_no_fingerprint() -> None:
    assert story_of("Kursk", "Short note.") is None
    assert len(shingles("one two three four five six seven eight nine ten")) == MIN_SHINGLES


def item(guid: str, title: str, text: str) -> str:
    return (
        f"<item><guid>{guid}</guid><title>{escape(title)}</title>"
        f"<link>https://{guid}.example/story</link><description>{escape(text)}</description>"
        f"<pubDate>{format_datetime(NOW)}</pubDate></item>"
    )


def rss(*items: str) -> bytes:
    return f'<rss version="2.0"><channel><title>t</title>{"".join(items)}</channel></rss>'.encode()


@pytest.fixture
def servers() -> Iterator[tuple[FeedServer, WebhookServer]]:
    with FeedServer() as srv, WebhookServer() as hook:
        yield srv, hook


def make(tmp: Path, db: str, srv: FeedServer, hook: WebhookServer, timing: AlertTiming) -> Config:
    return Config(
        path=tmp / "config.toml",
        settings=Settings(database=db, timeout=timedelta(seconds=5)),
        channels=(ChannelConfig("hook", (hook.apprise_url(),)),),
        feeds=tuple(FeedConfig(n, srv.url(f"/{n}"), timedelta(minutes=5)) for n in "abc"),
        rules=(
            RuleConfig(name="kursk", query="Kursk", timing=timing),
            RuleConfig(name="drones", query="drones OR drone", timing=timing),
        ),
    )


def poll(app: App, *feeds: str) -> None:
    async def one() -> None:
        async with app.fetcher() as fetcher:
            for name in feeds:
                await pipeline.poll_feed(app, app.snapshot.feeds[name], fetcher)

    asyncio.run(one())


def test_one_story_from_three_feeds_alerts_once_per_rule(
    servers: tuple[FeedServer, WebhookServer], tmp_path: Path, database_url: str
) -> None:
    srv, hook = servers
    srv.routes["/a"] = Static(rss(item("a1", "Drone attack hits Kursk oil depot", STORY)))
    srv.routes["/b"] = Static(
        rss(item("b1", "Fire at Kursk fuel depot after drone strike", EDITED))
    )
    srv.routes["/c"] = Static(
        rss(
            item("c1", "Kursk oil depot ablaze after drones", REWORDED),
            item("c2", "Kursk farmers fear poor harvest", OTHER),
        )
    )
    config = make(tmp_path, database_url, srv, hook, AlertTiming())
    store = Store.open(database_url)
    app = make_app(config, store=store)
    try:
        for feed in "abc":  # one after the other: a's copy is the first
            poll(app, feed)
        asyncio.run(pipeline.deliver_all(app))
        matches = store.matches()
    finally:
        app.close()
        store.close()
    requests = hook.wait_for(2)
    titles = sorted(r.json["alert"]["title"] for r in requests)
    # one alert for the story (both rules in it), one for the other story; no copy alerts
    assert titles == ["Drone attack hits Kursk oil depot", "Kursk farmers fear poor harvest"]
    story_alert = next(r for r in requests if "Drone" in r.json["alert"]["title"])
    assert story_alert.json["alert"]["rules"] == ["kursk", "drones"]
    # every copy is stored with its matches, linked to the first
    by_title = {(m.title, m.rule): m for m in matches}
    first = by_title[("Drone attack hits Kursk oil depot", "kursk")]
    assert first.alerted and first.also_reported_by == ("b", "c")
    for title in (
        "Fire at Kursk fuel depot after drone strike",
        "Kursk oil depot ablaze after drones",
    ):
        copy = by_title[(title, "kursk")]
        assert not copy.alerted and copy.copy_of == "a" and copy.also_reported_by == ()
    other = by_title[("Kursk farmers fear poor harvest", "kursk")]
    assert other.alerted and other.copy_of is None and other.also_reported_by == ()


def test_also_reported_by_in_matches_and_in_the_digest(
    servers: tuple[FeedServer, WebhookServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    srv, hook = servers
    srv.routes["/a"] = Static(rss(item("a1", "Drone attack hits Kursk oil depot", STORY)))
    srv.routes["/b"] = Static(rss(item("b1", "Fire at Kursk fuel depot", EDITED)))
    srv.routes["/c"] = Static(rss())
    db = f"sqlite:///{tmp_path / 'm.db'}"
    config = make(tmp_path, db, srv, hook, AlertTiming(digest=timedelta(hours=1)))
    now = NOW
    store = Store.open(db)
    app = make_app(config, store=store, clock=lambda: now)
    try:
        poll(app, "a", "b")
        now = now.replace(minute=0) + timedelta(hours=1)
        asyncio.run(pipeline.deliver_all(app))
    finally:
        app.close()
        store.close()
    (request,) = hook.wait_for(1)
    digest = request.json["alert"]
    assert digest["count"] == 1
    assert digest["items"][0]["also_reported_by"] == ["b"]
    assert "Also reported by: b" in request.json["message"]
    # `monitor matches`: a field in every format
    toml = tmp_path / "config.toml"
    toml.write_text(f'[monitor]\ndatabase = "{db}"\n[[rules]]\nname = "kursk"\nany = ["Kursk"]\n')
    assert main(["--config", str(toml), "matches", "--rule", "kursk", "--format", "json"]) == 0
    records = {r["feed"]: r for r in json.loads(capsys.readouterr().out)}
    assert records["a"]["also_reported_by"] == ["b"] and records["a"]["copy_of"] is None
    assert records["b"]["also_reported_by"] == [] and records["b"]["copy_of"] == "a"
    assert main(["--config", str(toml), "matches", "--rule", "kursk", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(",alerted,also_reported_by,copy_of,source")
    assert main(["--config", str(toml), "matches", "--rule", "kursk"]) == 0
    table = capsys.readouterr().out
    assert "also reported by" in table and "copy of a" in table
