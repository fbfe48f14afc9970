"""The HTTP server of `monitor run` (`[monitor] http = "127.0.0.1:9464"`, off by default).

    /healthz   200 + JSON when the scheduler ticks, the database answers and no reload failed;
               503 + JSON with the reasons otherwise
    /metrics   Prometheus text format (monitor.metrics.Metrics' own registry)
    /          the status page: feeds and their health, matches per rule per day for 30 days
               (inline SVG), the latest matches with their terms marked; plain HTML, no script

aiohttp.web on the daemon's own event loop: a request only ever awaits (database reads run in
a thread), so serving never holds up polling. With `[monitor] http_token` every request needs
`Authorization: Bearer <token>` (or HTTP Basic with the token as password, so a browser can
ask for it), compared in constant time; `monitor check` refuses a non-loopback address without
a token. Every text that came from a feed is escaped (`html.escape`), and the page is sent with
a Content-Security-Policy that allows no script at all.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from monitor.config.schema import split_address
from monitor.errors import MonitorError
from monitor.metrics import Liveness, Metrics
from monitor.types import FeedConfig, FeedHealth, FeedState, StoredMatch

if TYPE_CHECKING:
    from monitor.app import App
    from monitor.store.repo import Store

SCHEDULER_LATE = timedelta(seconds=30)  # no tick for this long: unhealthy (it ticks every 2 s)
DATABASE_TIMEOUT = 5.0  # seconds /healthz waits for the database
CHART_DAYS = 30
LATEST_MATCHES = 50
CHART_MATCHES = 50_000  # at most this many matches are read for the chart
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
APP_KEY: web.AppKey[App] = web.AppKey("app")


# --- health (pure) ----------------------------------------------------------------------------


def health_reasons(liveness: Liveness, now: float, database_error: str | None) -> list[str]:
    """Why the daemon is unwell; [] when it is healthy. `now` as time.time()."""
    reasons: list[str] = []
    late = SCHEDULER_LATE.total_seconds()
    if liveness.reload_error is not None:
        reasons.append(
            f"config: the last reload failed, the previous config is in force: "
            f"{liveness.reload_error}"
        )
    if database_error is not None:
        reasons.append(f"database: {database_error}")
    elif liveness.tick_error is not None:
        reasons.append(f"database: the last tick could not read the feeds: {liveness.tick_error}")
    if liveness.last_tick is None:
        reasons.append(
            f"scheduler: no pass finished since start {now - liveness.started:.0f} s ago"
        )
    elif now - liveness.last_tick > late:
        reasons.append(f"scheduler: the last pass finished {now - liveness.last_tick:.0f} s ago")
    return reasons


def health_body(liveness: Liveness, reasons: Sequence[str], generation: int) -> dict[str, object]:
    def iso(t: float | None) -> str | None:
        return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()

    return {
        "status": "unhealthy" if reasons else "ok",
        "reasons": list(reasons),
        "started": iso(liveness.started),
        "last_pass": iso(liveness.last_tick),
        "last_poll": iso(liveness.last_poll),
        "config_generation": generation,
    }


def database_error(store: Store) -> str | None:
    """None when the database answers a trivial query; else why not (one line)."""
    from sqlalchemy import text

    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to answer is the answer
        reason = str(getattr(exc, "orig", None) or exc)
        return " ".join(reason.split())[:300]
    return None


def database_health(store: Store, feeds: Sequence[FeedConfig], now: datetime) -> list[str]:
    """`monitor health` without the HTTP server: whether the database answers and some
    enabled feed was polled recently (within twice the shortest interval, at least 5 minutes).

    For the integrator: issue 10's daemon heartbeat, when present, is the better "last pass"
    and should replace the feed-row check here."""
    error = database_error(store)
    if error is not None:
        return [f"database: {error}"]
    enabled = [f for f in feeds if f.enabled]
    if not enabled:
        return []
    states = store.feed_states()
    polled = [
        t
        for f in enabled
        if (s := states.get(f.name)) is not None
        for t in (s.last_success_at, s.last_error_at)
        if t is not None
    ]
    window = max(2 * min(f.interval for f in enabled), timedelta(minutes=5))
    if not polled:
        return ["scheduler: no feed has been polled yet"]
    last = max(polled)
    if now - last > window:
        return [
            f"scheduler: no feed polled for {_ago(now - last)} (expected within {_ago(window)})"
        ]
    return []


# --- the server -----------------------------------------------------------------------------


def authorized(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries `token` (Bearer, or Basic with it as the
    password), compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.encode(), token.encode())


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[APP_KEY].config.settings.http_token
    if token is not None and not authorized(request.headers.get("Authorization"), token):
        return web.json_response(
            {"error": "unauthorized"},
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="monitor", charset="UTF-8"'},
        )
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def healthz(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    try:
        error = await asyncio.wait_for(
            asyncio.to_thread(database_error, app.store), DATABASE_TIMEOUT
        )
    except TimeoutError:
        error = f"no answer within {DATABASE_TIMEOUT:.0f} s"
    liveness = app.observer.liveness
    reasons = health_reasons(liveness, time.time(), error)
    body = health_body(liveness, reasons, app.snapshot.generation)
    return web.json_response(body, status=503 if reasons else 200)


async def metrics(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    observer = app.observer
    if not isinstance(observer, Metrics):
        raise web.HTTPNotFound(text="metrics are not collected")
    try:
        counts = await asyncio.to_thread(app.store.outbox_counts)
        observer.set_outbox({ch: pending for ch, (pending, _) in counts.items()})
    except Exception:  # the database is away: the counters are still worth reading
        pass
    body, content_type = observer.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def status_page(request: web.Request) -> web.Response:
    app = request.app[APP_KEY]
    now = app.clock()
    snapshot = app.snapshot

    def read() -> tuple[dict[str, FeedState], list[StoredMatch], list[StoredMatch]]:
        store = app.store
        since = now - timedelta(days=CHART_DAYS)
        return (
            store.feed_states(),
            store.matches(limit=LATEST_MATCHES),
            store.matches(since=since, limit=CHART_MATCHES),
        )

    states, latest, recent = await asyncio.to_thread(read)
    liveness = app.observer.liveness
    reasons = health_reasons(liveness, time.time(), None)
    page = render_page(
        feeds=snapshot.config.feeds,
        states=states,
        latest=latest,
        recent=recent,
        now=now,
        reasons=reasons,
        query=request.query,
    )
    return web.Response(
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": CSP},
    )


def make_web_app(app: App) -> web.Application:
    server = web.Application(middlewares=[_guard])
    server[APP_KEY] = app
    server.router.add_get("/", status_page)
    server.router.add_get("/healthz", healthz)
    server.router.add_get("/metrics", metrics)
    return server


class WebServer:
    """The server of one daemon: `await start()`, `await stop()`."""

    def __init__(self, app: App, address: str) -> None:
        self.app = app
        self.address = address
        self.host, self.port = split_address(address)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(make_web_app(self.app), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise HttpServerError(
                f"[monitor] http: cannot listen on {self.address}: {exc.strerror or exc}"
            ) from None
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class HttpServerError(MonitorError):
    """The status server could not start (address in use, not ours)."""


# --- the status page (pure) ----------------------------------------------------------------

FEED_SORTS = ("status", "name", "last_success", "failures", "items")
MATCH_SORTS = ("time", "rule", "feed", "title")


@dataclass(frozen=True, slots=True)
class FeedRow:
    name: str
    status: str  # ok, failing, dead, stale, gone, disabled, new
    rank: int  # worst first
    last_success: datetime | None
    failures: int
    items: int
    error: str | None


_RANK = {"dead": 0, "gone": 1, "failing": 2, "stale": 3, "new": 4, "ok": 5, "disabled": 6}


def feed_rows(feeds: Sequence[FeedConfig], states: Mapping[str, FeedState]) -> list[FeedRow]:
    rows = []
    for feed in feeds:
        s = states.get(feed.name)
        if not feed.enabled:
            status = "disabled"
        elif s is None or (s.last_success_at is None and s.last_error_at is None):
            status = "new"
        elif s.gone:
            status = "gone"
        elif s.health is FeedHealth.DEAD:
            status = "dead"
        elif s.consecutive_failures:
            status = "failing"
        elif s.health is FeedHealth.STALE:
            status = "stale"
        else:
            status = "ok"
        rows.append(
            FeedRow(
                name=feed.name,
                status=status,
                rank=_RANK[status],
                last_success=s.last_success_at if s else None,
                failures=s.consecutive_failures if s else 0,
                items=s.items_seen if s else 0,
                error=(s.last_error if s and s.consecutive_failures else None),
            )
        )
    return rows


def sort_feeds(rows: list[FeedRow], key: str) -> list[FeedRow]:
    if key == "name":
        return sorted(rows, key=lambda r: r.name.casefold())
    if key == "last_success":  # the longest without success first
        return sorted(rows, key=lambda r: (_aware(r.last_success), r.name.casefold()))
    if key == "failures":
        return sorted(rows, key=lambda r: (-r.failures, r.name.casefold()))
    if key == "items":
        return sorted(rows, key=lambda r: (-r.items, r.name.casefold()))
    return sorted(rows, key=lambda r: (r.rank, r.name.casefold()))


def sort_matches(matches: list[StoredMatch], key: str) -> list[StoredMatch]:
    if key == "rule":
        return sorted(matches, key=lambda m: m.rule.casefold())
    if key == "feed":
        return sorted(matches, key=lambda m: m.feed.casefold())
    if key == "title":
        return sorted(matches, key=lambda m: m.title.casefold())
    return matches  # newest first, as stored


def highlight(text: str, terms: Sequence[str]) -> str:
    """`text` escaped, with every occurrence of a matched term in <mark>."""
    words = sorted({t for t in terms if t.strip()}, key=len, reverse=True)
    if not words:
        return escape(text)
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    out: list[str] = []
    last = 0
    for m in pattern.finditer(text):
        out.append(escape(text[last : m.start()]))
        out.append(f"<mark>{escape(m.group(0))}</mark>")
        last = m.end()
    out.append(escape(text[last:]))
    return "".join(out)


def safe_link(url: str | None) -> str | None:
    """An article link fit for href: http(s) only (never javascript: or data:)."""
    if url and re.match(r"(?i)https?://", url.strip()):
        return url.strip()
    return None


def daily_counts(
    matches: Sequence[StoredMatch], today: date, days: int = CHART_DAYS
) -> dict[str, list[int]]:
    """Matches per rule per day, oldest day first, for the `days` days up to `today`."""
    first = today - timedelta(days=days - 1)
    counts: dict[str, list[int]] = {}
    for m in matches:
        day = _aware(m.matched_at).astimezone(UTC).date()
        if first <= day <= today:
            counts.setdefault(m.rule, [0] * days)[(day - first).days] += 1
    return counts


def chart_svg(counts: Mapping[str, list[int]], today: date, days: int = CHART_DAYS) -> str:
    """Stacked bars: matches per day, one colour per rule (the 7 busiest; the rest as
    "other rules"). Each bar part has a <title>, so a pointer shows the numbers."""
    totals = Counter({rule: sum(v) for rule, v in counts.items()})
    top = [rule for rule, _ in totals.most_common(len(PALETTE) - 1)]
    series: list[tuple[str, list[int]]] = [(rule, counts[rule]) for rule in top]
    rest = [rule for rule in counts if rule not in top]
    if rest:
        other = [sum(counts[r][i] for r in rest) for i in range(days)]
        series.append((f"other rules ({len(rest)})", other))
    width, height, left, bottom, top_pad = 760, 220, 40, 24, 10
    plot_h = height - bottom - top_pad
    slot = (width - left - 10) / days
    peak = max([sum(s[1][i] for s in series) for i in range(days)] + [1])
    scale = plot_h / peak
    first = today - timedelta(days=days - 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="Matches per rule per day, last {days} days">',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 10}" y2="{top_pad + plot_h}" '
        'stroke="#999"/>',
        f'<text x="{left - 6}" y="{top_pad + 10}" text-anchor="end" class="axis">{peak}</text>',
        f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end" class="axis">0</text>',
    ]
    for i in range(days):
        day = first + timedelta(days=i)
        x = left + i * slot + 1
        y = float(top_pad + plot_h)
        for n, (rule, values) in enumerate(series):
            if values[i]:
                h = values[i] * scale
                y -= h
                label = escape(f"{day:%Y-%m-%d} · {rule}: {values[i]}")
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot - 2:.1f}" height="{h:.1f}" '
                    f'fill="{PALETTE[n]}"><title>{label}</title></rect>'
                )
        if i % 5 == 4 or i == days - 1:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{height - 6}" text-anchor="middle" '
                f'class="axis">{day:%m-%d}</text>'
            )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" style="background:{PALETTE[n]}"></span>'
        f"{escape(rule)} <small>({sum(values)})</small></li>"
        for n, (rule, values) in enumerate(series)
    )
    if not series:
        legend = "<li>no matches in these days</li>"
    return "".join(parts) + f'<ul class="legend">{legend}</ul>'


def _sort_link(label: str, param: str, value: str, sorts: Mapping[str, str], current: str) -> str:
    """A column header: a link to the page sorted by it (the other table keeps its order)."""
    params = {"feeds": sorts["feeds"], "matches": sorts["matches"], param: value}
    mark = " ▾" if value == current else ""
    return f'<a href="?{escape(urlencode(params))}">{escape(label)}</a>{mark}'


def render_page(
    *,
    feeds: Sequence[FeedConfig],
    states: Mapping[str, FeedState],
    latest: Sequence[StoredMatch],
    recent: Sequence[StoredMatch],
    now: datetime,
    reasons: Sequence[str],
    query: Mapping[str, str],
) -> str:
    """The whole status page. Every text from a feed or the config goes through escape()."""
    feed_sort = query.get("feeds", "status")
    feed_sort = feed_sort if feed_sort in FEED_SORTS else "status"
    match_sort = query.get("matches", "time")
    match_sort = match_sort if match_sort in MATCH_SORTS else "time"

    sorts = {"feeds": feed_sort, "matches": match_sort}
    rows = sort_feeds(feed_rows(feeds, states), feed_sort)
    counts = Counter(r.status for r in rows)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))

    def th_feed(label: str, key: str) -> str:
        return f"<th>{_sort_link(label, 'feeds', key, sorts, feed_sort)}</th>"

    def th_match(label: str, key: str) -> str:
        return f"<th>{_sort_link(label, 'matches', key, sorts, match_sort)}</th>"

    feed_html = "".join(
        f'<tr><td>{escape(r.name)}</td><td><span class="st {r.status}">{r.status}</span></td>'
        f"<td>{_when(r.last_success, now)}</td><td>{r.failures}</td><td>{r.items}</td>"
        f'<td class="err">{escape(r.error or "")}</td></tr>'
        for r in rows
    )
    match_rows = []
    for m in sort_matches(list(latest), match_sort):
        title = highlight(m.title, m.terms)
        link = safe_link(m.link)
        if link:
            title = f'<a href="{escape(link)}" rel="noopener noreferrer nofollow">{title}</a>'
        match_rows.append(
            f"<tr><td>{_when(m.matched_at, now)}</td><td>{escape(m.rule)}</td>"
            f"<td>{escape(m.feed)}</td><td>{title}"
            f'<div class="snip">{highlight(m.snippet, m.terms)}</div></td>'
            f"<td>{escape(', '.join(m.terms))}</td><td>{'yes' if m.alerted else 'no'}</td></tr>"
        )
    today = _aware(now).astimezone(UTC).date()
    chart = chart_svg(daily_counts(recent, today), today)
    if reasons:
        health = '<p class="bad">Unhealthy: ' + "; ".join(escape(r) for r in reasons) + "</p>"
    else:
        health = '<p class="good">Healthy</p>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>news monitor: status</title>
<style>{STYLE}</style></head>
<body>
<header><h1>news monitor</h1>{health}
<p class="meta">{len(rows)} feeds: {escape(summary) or "none"} · {now:%Y-%m-%d %H:%M} UTC ·
<a href="metrics">metrics</a> · <a href="healthz">healthz</a></p></header>
<section><h2>Matches per rule per day (last {CHART_DAYS} days, UTC)</h2>{chart}</section>
<section><h2>Feeds</h2>
<table><thead><tr>{th_feed("feed", "name")}{th_feed("status", "status")}
{th_feed("last success", "last_success")}{th_feed("failures", "failures")}
{th_feed("items", "items")}<th>last error</th></tr></thead>
<tbody>{feed_html or '<tr><td colspan="6">no feeds configured</td></tr>'}</tbody></table>
</section>
<section><h2>Latest matches</h2>
<table><thead><tr>{th_match("matched", "time")}{th_match("rule", "rule")}
{th_match("feed", "feed")}{th_match("title", "title")}<th>terms</th><th>alerted</th></tr></thead>
<tbody>{"".join(match_rows) or '<tr><td colspan="6">no matches yet</td></tr>'}</tbody></table>
</section>
</body></html>
"""


STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;width:100%}th,td{padding:.3em .6em;text-align:left;
vertical-align:top;border-bottom:1px solid #e4e4e4}th{background:#f4f4f4;white-space:nowrap}
th a{color:#222}mark{background:#ffe066;padding:0 .1em}.snip{color:#555;font-size:.9em}
.meta{color:#666}.good{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}
.st{padding:.1em .5em;border-radius:.6em;font-size:.85em;background:#eee}
.st.ok{background:#dafbe1}.st.failing,.st.stale{background:#fff1c2}
.st.dead,.st.gone{background:#ffd7d5}.err{color:#b42318;font-size:.9em}
.axis{font-size:11px;fill:#666}.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;
gap:.4em 1.2em}.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em}
"""


def _aware(value: datetime | None) -> datetime:
    if value is None:
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _when(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    at = _aware(value)
    return f'<span title="{at:%Y-%m-%d %H:%M:%S} UTC">{_ago(_aware(now) - at)} ago</span>'


def _ago(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def health_json(body: Mapping[str, object]) -> str:
    return json.dumps(body, indent=2)
