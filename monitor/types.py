"""Frozen value types that cross stage boundaries.

Feedparser dicts, HTTP responses, ORM rows and Apprise objects never leave the module that
adapts them; the stages hand each other these plain values instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import Enum, StrEnum
from pathlib import Path

# --- configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertTiming:
    """When a rule's alerts go out (issue 9): at once, or batched in digests.

    - `digest`: None (each alert at once), a period (every `1h`, windows counted from local
      midnight) or a daily local time (`08:00`);
    - `quiet_hours`: (start, end) local times; alerts due inside are held until `end` and go
      out as one digest;
    - `max_per_hour`: at most this many immediate alerts per rule and channel in any 60
      minutes; the rest fold into the next digest (the rule's digest window, else the next
      full local hour).
    """

    digest: timedelta | time | None = None
    quiet_hours: tuple[time, time] | None = None
    max_per_hour: int | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """The `[monitor]` table."""

    database: str = "sqlite:///monitor.db"
    interval: timedelta = timedelta(minutes=15)
    timeout: timedelta = timedelta(seconds=20)
    max_age: timedelta = timedelta(hours=24)
    give_up_after: timedelta = timedelta(days=3)  # an alert still failing after this: failed
    languages: tuple[str, ...] = ("de", "en")
    max_bytes: int = 10 * 1024 * 1024  # cap on a feed's decompressed body
    concurrency: int = 100  # feeds fetched at once, over all hosts
    per_host: int = 4  # feeds fetched at once from one host (a [[feeds]] per_host overrides)
    user_agent: str = "news-monitor/0.1 (+https://github.com/news-monitor)"
    dead_after: timedelta = timedelta(hours=24)  # failing this long: one alert to ops_channels
    stale_after: timedelta | None = None  # no new item this long: one alert (None: never)
    ops_channels: tuple[str, ...] = ()  # where feed-health alerts go (none by default)
    http: str | None = None  # "host:port" of the status/metrics server in `monitor run`
    http_token: str | None = None  # bearer token the server requires (a secret)
    watch_config: bool = True  # the daemon reloads config.toml when the file changes
    # items, matches and delivered alerts older than this are pruned (None: kept for ever);
    # an item's identity (feed, key) is always kept, so it is never alerted again
    retention: timedelta | None = timedelta(days=90)
    timezone: str = "UTC"  # IANA name: local times of digests and quiet hours
    timing: AlertTiming = AlertTiming()  # the rules' default digest / quiet hours / cap
    story_similarity: float = 0.5  # near-duplicate stories: estimated Jaccard of shingles
    story_window: timedelta = timedelta(hours=48)  # how far back a story's first copy is found
    full_text: bool = False  # default of [[feeds]] full_text: read each new item's article
    full_text_wait: timedelta = timedelta(minutes=2)  # then match on the feed text alone


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The `[cluster]` table (cluster mode, monitor.cluster)."""

    broker: str  # Celery broker URL (a secret: it may hold a password)
    redispatch_after: timedelta = timedelta(minutes=5)  # a task never claimed is sent again
    queue: str = "monitor"  # the broker's queue of poll tasks


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """One `[[feeds]]` entry."""

    name: str
    url: str
    interval: timedelta
    enabled: bool = True
    catch_up: bool = False  # first successful poll stores and matches, alerts nothing
    per_host: int | None = None  # overrides Settings.per_host for this feed's fetches
    full_text: bool = False  # fetch each new item's article page and match its text too


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """One `[[rules]]` entry. `channels` None means every channel; () stores without alerting."""

    name: str
    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    query: str | None = None
    languages: tuple[str, ...] = ("de", "en")  # () = no stemming
    channels: tuple[str, ...] | None = None
    transliterate: bool = False  # rule words also match in the other script (Latin/Cyrillic)
    feeds: tuple[str, ...] | None = None  # None: every feed
    exclude_feeds: tuple[str, ...] = ()
    timing: AlertTiming = AlertTiming()  # resolved: the rule's keys, else [monitor]'s


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """One `[channels]` entry: a name and one or more Apprise URLs (secrets resolved)."""

    name: str
    urls: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TemplateConfig:
    """A `[[templates]]` entry: Jinja2 sources (read at load) for an alert's subject and body,
    used for the alerts of `rules` (first) or of `channels`."""

    name: str
    subject: tuple[str, str] | None = None  # (file, source)
    body: tuple[str, str] | None = None
    channels: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    """A validated config.toml."""

    path: Path
    settings: Settings
    channels: tuple[ChannelConfig, ...]
    feeds: tuple[FeedConfig, ...]
    rules: tuple[RuleConfig, ...]
    warnings: tuple[str, ...] = ()  # `monitor check` shows these; they are not errors
    templates: tuple[TemplateConfig, ...] = ()
    cluster: ClusterConfig | None = None  # [cluster]: None = the single-process daemon

    def template_for(self, channel: str, rules: tuple[str, ...]) -> TemplateConfig | None:
        """The template of an alert: the first of its rules that has one, else its channel's."""
        for rule in rules:
            for t in self.templates:
                if rule in t.rules:
                    return t
        return next((t for t in self.templates if channel in t.channels), None)

    def channel(self, name: str) -> ChannelConfig | None:
        return next((c for c in self.channels if c.name == name), None)

    def rule_channels(self, rule: RuleConfig) -> tuple[str, ...]:
        """The channels a rule alerts: its own list, or every channel when it names none."""
        if rule.channels is None:
            return tuple(c.name for c in self.channels)
        return rule.channels


# --- fetching ------------------------------------------------------------------------------


class FetchStatus(Enum):
    OK = "ok"  # a body to parse
    NOT_MODIFIED = "not_modified"  # 304: nothing new
    GONE = "gone"  # 410: disable the feed
    ERROR = "error"  # anything else; `error` says what


@dataclass(frozen=True, slots=True)
class FetchRequest:
    feed: str  # feed name, for messages
    url: str
    etag: str | None = None
    last_modified: str | None = None
    per_host: int | None = None  # this feed's per-host limit; None: the Fetcher's default
    accept: str | None = None  # the Accept header; None: feed types (fetch.ACCEPT)


@dataclass(frozen=True, slots=True)
class FetchResult:
    status: FetchStatus
    url: str  # the URL finally answered (after redirects)
    http_status: int | None = None
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    permanent_url: str | None = None  # set when every redirect hop was 301/308
    retry_after: timedelta | None = None  # from a 429/503 Retry-After header
    max_age: timedelta | None = None  # freshness left by Cache-Control max-age (minus Age)
    error: str | None = None  # a one-line reason for ERROR and GONE


# --- parsing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One feed entry, as plain text. `key` identifies it within its feed."""

    key: str
    guid: str | None
    link: str | None
    canonical_link: str | None  # link without tracking parameters and fragment
    title: str
    text: str  # summary, content and categories: HTML removed, entities decoded
    published: datetime | None  # as the feed states it, UTC; None when absent or unparseable
    categories: tuple[str, ...] = ()  # also part of `text`; searched alone by `tag:`
    author: str | None = None
    # full-text feeds only (issue 12): the article's main text as read from `link`, or why it
    # was not read (then the item is matched on its feed text alone)
    article: str | None = None
    article_error: str | None = None
    # its story fingerprint (alerts.story), computed in the worker processes for items that
    # matched a rule: None when not computed, () when the text is too short to compare
    story_sig: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str
    items: tuple[Item, ...]
    problem: str | None = None  # feed not well-formed (items recovered as far as possible)
    # Hints that may lengthen the poll interval (schedule.effective_interval): RSS `<ttl>`
    # (schedule.rss_ttl) and `sy:updatePeriod` / `sy:updateFrequency` (syndication_interval).
    ttl: timedelta | None = None
    update_interval: timedelta | None = None


# --- matching and alerts -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that matched an item: the matched terms (as written in the text) and a snippet."""

    rule: str
    terms: tuple[str, ...]
    snippet: str
    # what was matched: "feed" (the feed's text) or "article" (title, feed text and the
    # article's text, read from the item's link: full-text feeds)
    source: str = "feed"


@dataclass(frozen=True, slots=True)
class AlertContent:
    """What one notification says: one item and the rules of one channel it matched."""

    title: str
    link: str | None
    feed: str
    published: datetime | None
    matches: tuple[Match, ...]
    alert_id: str  # stable across retries, so receivers can drop a duplicate
    item_id: str = ""  # the same for every channel: correlates one item's alerts
    also: tuple[str, ...] = ()  # feeds that reported the same story later (filled at sending)


@dataclass(frozen=True, slots=True)
class DigestContent:
    """One message listing several alerts of one channel, sent together (issue 9)."""

    items: tuple[AlertContent, ...]
    alert_id: str  # stable for the digest (from its key), so receivers can dedupe
    due: datetime  # the end of the window it collects


class FeedHealth(StrEnum):
    """What the desk was last told about a feed (`[monitor] ops_channels`)."""

    OK = "ok"
    DEAD = "dead"  # failing for longer than dead_after (or answered 410)
    STALE = "stale"  # no new item for longer than stale_after


@dataclass(frozen=True, slots=True)
class HealthAlert:
    """One feed-health notification: the feed entered `state` (from `previous`)."""

    feed: str
    url: str  # credentials masked
    state: FeedHealth
    previous: FeedHealth
    at: datetime  # when the change was decided
    since: datetime | None  # dead: failing since; stale: last new item
    error: str | None  # dead: the last error
    alert_id: str  # stable across retries


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered notification, ready for a channel."""

    title: str
    body: str
    format: str = "text"  # "text", "html" or "markdown": how the channel should read body


# --- stored state (what the store hands back) and poll outcomes -----------------------------


@dataclass(frozen=True, slots=True)
class FeedState:
    """A feed's row in the database: where to fetch it, its validators and its health."""

    name: str
    url: str
    title: str | None
    etag: str | None
    last_modified: str | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    next_poll_at: datetime | None
    retry_until: datetime | None
    gone: bool
    items_seen: int
    problem: str | None = None  # what is wrong with the current document (read anyway)
    body_hash: str | None = None  # SHA-256 of the last 200 body parsed
    cache_max_age: timedelta | None = None  # the hints of the last answers (interval only
    feed_ttl: timedelta | None = None  # ever lengthened by them: schedule.effective_interval)
    feed_update_interval: timedelta | None = None
    failing_since: datetime | None = None  # first failure of the current run of failures
    last_new_item_at: datetime | None = None
    health: FeedHealth = FeedHealth.OK
    health_since: datetime | None = None

    @classmethod
    def unpolled(cls, name: str, url: str) -> FeedState:
        """A feed the database has no row for yet."""
        return cls(name, url, None, None, None, None, None, None, 0, None, None, False, 0)


class PollStatus(StrEnum):
    """What one feed's poll came to (shown in `monitor poll` and the daemon log)."""

    NEW = "new"  # new items stored
    CAUGHT_UP = "caught up"  # new items stored as seen, not alerted
    UNCHANGED = "unchanged"  # nothing new, or a 304
    EMPTY = "empty"  # the document holds no items
    ERROR = "error"  # fetching or parsing failed
    GONE = "gone"  # answered 410 just now: disabled
    DISABLED = "disabled"  # gone earlier: not fetched
    WAITING = "waiting"  # the server's Retry-After has not passed: not fetched


@dataclass(frozen=True, slots=True)
class PendingAlert:
    id: int
    channel: str
    alert_id: str
    # Message: rows rendered before 0003; DigestContent: the rows of one digest, leased together
    content: AlertContent | HealthAlert | Message | DigestContent
    attempts: int
    lease: datetime  # our hold on the row: the token for mark_delivered / mark_failed
    since: datetime | None = None  # queued (or requeued) at: `give_up_after` counts from here
    members: tuple[int, ...] = ()  # a digest: the ids of all its rows (all under this lease)


class AlertState(StrEnum):
    """Where an outbox row stands (`monitor alerts`)."""

    PENDING = "pending"  # not tried yet
    RETRYING = "retrying"  # failed at least once, tried again after a backoff
    FAILED = "failed"  # still failing after `give_up_after`: not tried again until requeued
    DELIVERED = "delivered"


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One outbox row as `monitor alerts` shows it."""

    alert_id: str
    channel: str
    state: AlertState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None  # None once delivered or failed
    last_error: str | None
    delivered_at: datetime | None
    failed_at: datetime | None
    title: str


@dataclass(frozen=True, slots=True)
class StoredMatch:
    rule: str
    title: str
    link: str | None
    feed: str
    published: datetime | None
    first_seen: datetime
    matched_at: datetime
    terms: tuple[str, ...]
    snippet: str
    alerted: bool
    # one story, several feeds (issue 9): the feeds whose near-copies were folded into this
    # item, and, for a copy, the feed of the story's first item
    also_reported_by: tuple[str, ...] = ()
    copy_of: str | None = None
    source: str = "feed"  # Match.source


@dataclass(frozen=True, slots=True)
class StoredItem:
    feed: str
    title: str
    text: str
    link: str | None
    published: datetime | None
    first_seen: datetime
    article: str | None = None  # the article's text (full-text feeds), stored compressed


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What the running daemon last wrote about itself (`Store.beat`, `monitor health`)."""

    host: str
    pid: int
    started_at: datetime
    ticked_at: datetime  # the scheduler's last tick
    pass_at: datetime | None = None  # a feed's poll last finished
    pruned_at: datetime | None = None  # retention last ran


@dataclass(frozen=True, slots=True)
class Pruned:
    """One retention batch: rows deleted or emptied."""

    items: int = 0
    matches: int = 0
    alerts: int = 0

    def __bool__(self) -> bool:
        return bool(self.items or self.matches or self.alerts)
