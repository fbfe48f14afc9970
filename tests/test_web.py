"""The status page, health and the token, without a daemon: the page rendered from stored
values (hostile feed text stays text, in Chromium too), sort links, the health rules, the
token comparison, and `check` refusing a non-loopback address without a token."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.metrics import Liveness
from monitor.types import FeedConfig, FeedHealth, FeedState, StoredMatch
from monitor.web import authorized, chart_svg, daily_counts, health_reasons, render_page

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="alert(1)"><b id="inj">x</b>'


def feed(name: str) -> FeedConfig:
    return FeedConfig(name, f"https://{name}.example/rss", timedelta(minutes=15))


def state(name: str, **kw: object) -> FeedState:
    base = FeedState.unpolled(name, f"https://{name}.example/rss")
    fields = {f: getattr(base, f) for f in base.__slots__}  # type: ignore[attr-defined]
    fields |= {"last_success_at": NOW - timedelta(minutes=3)} | kw
    return FeedState(**fields)  # type: ignore[arg-type]


def match(rule: str, title: str, days_ago: int, **kw: object) -> StoredMatch:
    values: dict[str, object] = {
        "rule": rule,
        "title": title,
        "link": "https://news.example/a?x=1&y=2",
        "feed": "tagesschau",
        "published": None,
        "first_seen": NOW - timedelta(days=days_ago),
        "matched_at": NOW - timedelta(days=days_ago, minutes=5),
        "terms": ("Kursk",),
        "snippet": "Truppen in der Region Kursk gesichtet.",
        "alerted": True,
    }
    return StoredMatch(**(values | kw))  # type: ignore[arg-type]


FEEDS = [feed("tagesschau"), feed("bbc"), feed("hostile"), feed("reuters")]
STATES = {
    "tagesschau": state("tagesschau"),
    "bbc": state(
        "bbc",
        consecutive_failures=4,
        last_error="HTTP 503",
        last_error_at=NOW,
        last_success_at=NOW - timedelta(hours=5),
    ),
    "hostile": state("hostile", last_error=HOSTILE, consecutive_failures=1, last_error_at=NOW),
    "reuters": state(
        "reuters",
        health=FeedHealth.DEAD,
        consecutive_failures=90,
        last_error_at=NOW,
        last_error="cannot connect",
        last_success_at=NOW - timedelta(days=2),
    ),
}
MATCHES = [
    match("kursk", "Nordkoreanische Truppen nahe Kursk", 0),
    match("kursk", HOSTILE + " Kursk", 0, link='javascript:alert("x")', feed="hostile"),
    match("energy", "Gaspreise steigen weiter", 1, terms=("Gaspreise",), snippet="Gaspreise"),
    *[match("kursk", f"Bericht {i} aus Kursk", i % 30) for i in range(40)],
    *[match("energy", f"Strom {i}", (i * 7) % 30, terms=("Strom",)) for i in range(25)],
    *[match("ai", f"KI-Gesetz {i}", (i * 3) % 30, terms=("KI",)) for i in range(12)],
]


def page(query: dict[str, str] | None = None, reasons: list[str] | None = None) -> str:
    return render_page(
        feeds=FEEDS,
        states=STATES,
        latest=MATCHES[:20],
        recent=MATCHES,
        now=NOW,
        reasons=reasons or [],
        query=query or {},
    )


def test_hostile_feed_text_is_escaped_everywhere() -> None:
    html = page()
    assert "<script" not in html and "<img" not in html and 'id="inj"' not in html
    assert "&lt;script&gt;" in html
    assert "javascript:" not in html  # a non-http link is shown without href
    assert 'href="https://news.example/a?x=1&amp;y=2"' in html
    assert "<mark>Kursk</mark>" in html


def test_tables_sort_by_a_link() -> None:
    html = page()
    assert '<a href="?feeds=name&amp;matches=time">feed</a>' in html
    assert html.index(">reuters<") < html.index(">bbc<") < html.index(">tagesschau<")  # worst
    by_name = page({"feeds": "name"})
    assert by_name.index(">bbc<") < by_name.index(">reuters<") < by_name.index(">tagesschau<")
    by_rule = page({"matches": "rule", "feeds": "name"})
    assert '<a href="?feeds=name&amp;matches=rule">rule</a>' in by_rule
    body = by_rule.split("Latest matches")[1]
    assert body.index("<td>energy</td>") < body.index("<td>kursk</td>")
    assert page({"feeds": "<x>"}) == page()  # an unknown sort is the default


def test_chart_counts_matches_per_rule_per_day() -> None:
    counts = daily_counts(MATCHES, NOW.date())
    assert sum(counts["kursk"]) == 42 and sum(counts["energy"]) == 26 and sum(counts["ai"]) == 12
    assert counts["kursk"][-1] == 4  # today: the two above and days 0 of the 40
    svg = chart_svg(counts, NOW.date())
    assert svg.startswith("<svg") and "2026-03-31 · kursk: 4" in svg


def test_health_reasons() -> None:
    live = Liveness(started=1000.0, last_tick=1000.0)
    assert health_reasons(live, 1010.0, None) == []
    assert any("scheduler" in r for r in health_reasons(live, 1100.0, None))
    assert any("database: gone" in r for r in health_reasons(live, 1010.0, "gone"))
    live.reload_error = "rules[0].any: must not be empty"
    assert any("config" in r and "must not" in r for r in health_reasons(live, 1010.0, None))
    assert health_reasons(Liveness(started=1000.0), 1001.0, None)  # no pass yet


def test_token_comparison() -> None:
    token = "0123456789abcdef-token"
    assert authorized(f"Bearer {token}", token)
    assert not authorized(f"Bearer {token}x", token)
    assert not authorized(None, token) and not authorized("", token)
    basic = base64.b64encode(f"desk:{token}".encode()).decode()
    assert authorized(f"Basic {basic}", token)
    assert not authorized("Basic !!!", token)


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("127.0.0.1:9464", True),
        ("[::1]:9464", True),
        ("localhost:9464", True),
        ("0.0.0.0:9464", False),
        ("192.0.2.7:9464", False),
        ("status.example:9464", False),
    ],
)
def test_check_refuses_a_public_address_without_a_token(
    tmp_path: Path, address: str, ok: bool
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[monitor]\nhttp = "{address}"\n[channels]\n', encoding="utf-8")
    run = [sys.executable, "-m", "monitor", "--config", str(path), "check"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env)
    if ok:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2
    assert "monitor.http" in result.stderr and "http_token" in result.stderr
    assert "Traceback" not in result.stderr
    path.write_text(
        f'[monitor]\nhttp = "{address}"\nhttp_token = "a-long-enough-token-123"\n[channels]\n',
        encoding="utf-8",
    )
    result = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert "a-long-enough-token-123" not in result.stdout + result.stderr


def test_a_bad_address_or_short_token_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[monitor]\nhttp = "9464"\nhttp_token = "tok3n"\n[channels]\n')
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(path), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2
    assert ":2: monitor.http:" in result.stderr and ":3: monitor.http_token:" in result.stderr
    assert "tok3n" not in result.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)
def test_the_page_in_headless_chromium(tmp_path: Path) -> None:
    """Chromium renders the page: the hostile title is text (no element injected, no script
    run: the title stays), and a screenshot is taken (MONITOR_SCREENSHOT=path keeps it)."""
    assert CHROMIUM is not None
    html = tmp_path / "status.html"
    html.write_text(page(), encoding="utf-8")
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*flags, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=90
    ).stdout
    assert "<title>news monitor: status</title>" in dom  # no script renamed it
    assert '<b id="inj"' not in dom and "<img" not in dom and "<script" not in dom
    assert "&lt;script&gt;" in dom
    assert dom.count("<mark>Kursk</mark>") >= 2
    assert "<svg" in dom and "<rect" in dom
    shot = Path(os.environ.get("MONITOR_SCREENSHOT") or tmp_path / "status.png")
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1200,1400", html.as_uri()],
        capture_output=True,
        timeout=90,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_grafana_dashboard_uses_only_served_metrics() -> None:
    import json
    import re

    from monitor.metrics import Metrics

    served = {s.name for family in Metrics().registry.collect() for s in family.samples}
    served |= {f.name for f in Metrics().registry.collect()}
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"monitor_\w+", target["expr"])
    }
    assert used and used <= served | {
        "monitor_feed_polls_total",
        "monitor_feed_items_new_total",
        "monitor_matches_total",
        "monitor_alerts_total",
        "monitor_feed_last_success_timestamp_seconds",
        "monitor_outbox_pending",
        "monitor_poll_duration_seconds_bucket",
        "monitor_delivery_duration_seconds_bucket",
        "monitor_config_reloads_total",
    }
