"""What the monitor tells about its own work: the observer the pipeline and the daemon call.

`Observer` (every `App` has one; it does nothing but remember what `/healthz` needs: when the
scheduler last ticked, whether the last reload failed) is told about each poll, delivery, tick
and reload. `Metrics` is the observer `monitor run` uses when `[monitor] http` is set: it also
counts everything in its own Prometheus `CollectorRegistry` (never the global one, so tests and
several apps in one process stay apart), served by `monitor.web` at `/metrics`.

prometheus-client is imported only when a `Metrics` is made, so commands that never serve
metrics do not pay for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.types import PollStatus

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    from monitor.pipeline import FeedOutcome

# a poll that came to one of these fetched the feed and read it
SUCCESS = frozenset({PollStatus.NEW, PollStatus.CAUGHT_UP, PollStatus.UNCHANGED, PollStatus.EMPTY})

POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def outcome_label(status: PollStatus) -> str:
    """A poll status as a label value: `caught up` -> `caught_up`."""
    return status.value.replace(" ", "_")


@dataclass(slots=True)
class Liveness:
    """What the daemon last did, in wall-clock seconds (time.time()); None: not yet."""

    started: float
    last_tick: float | None = None  # the last tick that read the database and started polls
    tick_error: str | None = None  # the last tick's database error (None: it answered)
    last_poll: float | None = None  # the last poll that finished, whatever its outcome
    reload_error: str | None = None  # the last SIGHUP's invalid config (None: in force)


class Observer:
    """Told about every poll, delivery, tick and reload; remembers what health needs."""

    def __init__(self) -> None:
        self.liveness = Liveness(started=time.time())

    def tick(self, error: str | None = None) -> None:
        """The scheduler ticked; `error` when the database did not answer."""
        if error is None:
            self.liveness.last_tick = time.time()
        self.liveness.tick_error = error

    def poll(self, outcome: FeedOutcome, seconds: float) -> None:
        self.liveness.last_poll = time.time()

    def delivery(self, channel: str, ok: bool, seconds: float) -> None:
        """One alert sent (`ok`) or refused by its channel."""

    def reload(self, error: str | None = None) -> None:
        """A reload was asked for: `error` when the new config was refused."""
        self.liveness.reload_error = error


class Metrics(Observer):
    """An observer that also counts, for Prometheus (`render()` is the `/metrics` body)."""

    def __init__(self) -> None:
        super().__init__()
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry: CollectorRegistry = CollectorRegistry()
        r = self.registry
        self.polls: Counter = Counter(
            "monitor_feed_polls", "Polls of a feed, by outcome.", ["feed", "outcome"], registry=r
        )
        self.items_new: Counter = Counter(
            "monitor_feed_items_new", "New items stored, per feed.", ["feed"], registry=r
        )
        self.last_success: Gauge = Gauge(
            "monitor_feed_last_success_timestamp_seconds",
            "When the feed was last fetched and read (Unix time).",
            ["feed"],
            registry=r,
        )
        self.matches: Counter = Counter(
            "monitor_matches", "Matches stored, per rule.", ["rule"], registry=r
        )
        self.alerts: Counter = Counter(
            "monitor_alerts",
            "Alert deliveries, by channel and outcome (sent, failed).",
            ["channel", "outcome"],
            registry=r,
        )
        self.outbox_pending: Gauge = Gauge(
            "monitor_outbox_pending",
            "Alerts not yet delivered, per channel.",
            ["channel"],
            registry=r,
        )
        self.poll_duration: Histogram = Histogram(
            "monitor_poll_duration_seconds",
            "How long one feed's poll took (fetch, parse, match, record).",
            buckets=POLL_BUCKETS,
            registry=r,
        )
        self.delivery_duration: Histogram = Histogram(
            "monitor_delivery_duration_seconds",
            "How long sending one alert took.",
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.reloads: Counter = Counter(
            "monitor_config_reloads",
            "Config reloads (SIGHUP), by outcome.",
            ["outcome"],
            registry=r,
        )
        for outcome in ("ok", "error"):
            self.reloads.labels(outcome)

    # --- the observer ----------------------------------------------------------------

    def poll(self, outcome: FeedOutcome, seconds: float) -> None:
        super().poll(outcome, seconds)
        self.polls.labels(outcome.feed, outcome_label(outcome.status)).inc()
        self.poll_duration.observe(seconds)
        if outcome.new_items:
            self.items_new.labels(outcome.feed).inc(outcome.new_items)
        else:
            self.items_new.labels(outcome.feed)  # the series exists from the first poll
        if outcome.status in SUCCESS:
            self.last_success.labels(outcome.feed).set(time.time())
        for rule in outcome.rules:
            self.matches.labels(rule).inc()

    def delivery(self, channel: str, ok: bool, seconds: float) -> None:
        self.alerts.labels(channel, "sent" if ok else "failed").inc()
        self.delivery_duration.observe(seconds)

    def reload(self, error: str | None = None) -> None:
        super().reload(error)
        self.reloads.labels("ok" if error is None else "error").inc()

    # --- what is read from the database --------------------------------------------

    def seed(self, last_success: Mapping[str, datetime | None], rules: Iterable[str]) -> None:
        """At start: each feed's last success as the database knows it, and a zero for every
        rule, so a dashboard has its series before the first poll."""
        for feed, at in last_success.items():
            if at is not None:
                self.last_success.labels(feed).set(at.timestamp())
        for rule in rules:
            self.matches.labels(rule)

    def set_outbox(self, pending: Mapping[str, int]) -> None:
        """The outbox as it is now (read when /metrics is scraped)."""
        self.outbox_pending.clear()
        for channel, count in pending.items():
            self.outbox_pending.labels(channel).set(count)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
