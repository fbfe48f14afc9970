"""The database tables. Only monitor.store uses these; other stages see monitor.types values.

feeds      one row per configured feed: HTTP validators and polling state
items      every entry ever seen, unique per (feed, key): the seen-set that stops re-alerts
matches    every (item, rule) match, alerted or not
rule_links (rule, canonical link) already alerted: one alert per article and rule
outbox     one row per (item, channel), written with its matches; feed-health alerts have no
           item; rows of one digest share `digest_key` and are sent together once `due_at` has
           passed (revision 0007); delivered rows are pruned after `retention`, as are matches
           and items
heartbeat  the running daemon's last tick and poll (`monitor health`)
item_keys  (feed, key) of items retention deleted: still seen, never stored or alerted again
story_buckets  LSH buckets of items' story signatures (revision 0007): near-duplicate lookup
dispatch   cluster mode (revision 0009): one row per feed, the poll task the scheduler sent last
           (token), who claimed it and until when, and whether it finished
config_generations  cluster mode: every config.toml the scheduler published (id = generation)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class FeedRow(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config_url: Mapped[str] = mapped_column(Text)  # as written in config.toml
    url: Mapped[str] = mapped_column(Text)  # what we fetch: config_url or a permanent redirect
    title: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # what is wrong with the current document (read, but not well-formed); a 304 keeps it
    problem: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retry_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # 429/503 Retry-After
    gone: Mapped[bool] = mapped_column(Boolean, default=False)  # answered 410: not polled
    items_seen: Mapped[int] = mapped_column(Integer, default=0)
    # revision 0004: bytes already seen, interval hints, health
    body_hash: Mapped[str | None] = mapped_column(String(64))  # SHA-256 of the last 200 parsed
    cache_max_age: Mapped[int | None] = mapped_column(Integer)  # seconds, Cache-Control max-age
    feed_ttl: Mapped[int | None] = mapped_column(Integer)  # seconds, RSS <ttl>
    feed_update_interval: Mapped[int | None] = mapped_column(Integer)  # seconds, sy:update*
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_new_item_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    health: Mapped[str] = mapped_column(String(10), default="ok")  # ok, dead, stale
    health_since: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ItemRow(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("feed_id", "key"),
        Index("ix_items_first_seen_at", "first_seen_at"),  # revision 0004: items per day
        Index("ix_items_story_of", "story_of"),  # revision 0007: a story's copies
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id"))
    key: Mapped[str] = mapped_column(String(600))
    guid: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)
    canonical_link: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # as the feed says
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # retention dropped title and text (they are ""): only the identity (feed, key) is left
    pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # revision 0007: one story, several feeds (alerts.story)
    story_sig: Mapped[str | None] = mapped_column(Text)  # MinHash signature, hex
    story_of: Mapped[int | None] = mapped_column(Integer)  # the story's first item, if a copy
    # revision 0008, full-text feeds: the article's text (UTF-8, zlib) or why it was not read
    article: Mapped[bytes | None] = mapped_column(LargeBinary)
    article_error: Mapped[str | None] = mapped_column(Text)


class MatchRow(Base):
    __tablename__ = "matches"
    __table_args__ = (
        UniqueConstraint("item_id", "rule"),
        Index("ix_matches_matched_at", "matched_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    rule: Mapped[str] = mapped_column(String(200))
    terms: Mapped[str] = mapped_column(Text)  # JSON array of the matched terms
    snippet: Mapped[str] = mapped_column(Text)
    matched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    alerted: Mapped[bool] = mapped_column(Boolean)  # False: too old, duplicate, or no channel
    source: Mapped[str | None] = mapped_column(String(10))  # revision 0008; None: "feed"


class RuleLinkRow(Base):
    __tablename__ = "rule_links"

    rule: Mapped[str] = mapped_column(String(200), primary_key=True)
    link_key: Mapped[str] = mapped_column(String(700), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("item_id", "channel"),
        Index("ix_outbox_due", "delivered_at", "next_attempt_at"),
        Index("ix_outbox_digest", "channel", "digest_key"),
        Index("ix_outbox_channel_created", "channel", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"))  # None: feed health
    channel: Mapped[str] = mapped_column(String(200))
    alert_id: Mapped[str] = mapped_column(String(100))
    content: Mapped[str] = mapped_column(Text)  # JSON: alerts.outbox.content_to_json
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)  # backoff after a failure
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a sender is on it
    lease_owner: Mapped[str | None] = mapped_column(String(100))  # Store.owner of that sender
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # gave up: see give_up_after
    requeued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # `monitor alerts retry`
    # revision 0007: digests. Held until due_at (None: at once); rows with the same
    # digest_key (channel@due) are leased, sent and marked together as one message.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    digest_key: Mapped[str | None] = mapped_column(String(300))


class HeartbeatRow(Base):
    """One row per `monitor run` (id 1): written by its tick, read by `monitor health`."""

    __tablename__ = "heartbeat"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ticked_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the scheduler's last tick
    pass_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a poll last finished
    pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # retention last ran


class ItemKeyRow(Base):
    """The identity of an item retention deleted: (feed, key) stays seen, for ever."""

    __tablename__ = "item_keys"

    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(600), primary_key=True)


class StoryBucketRow(Base):
    """One LSH band of an item's story signature: items sharing a bucket are candidates."""

    __tablename__ = "story_buckets"
    __table_args__ = (Index("ix_story_buckets_bucket", "bucket", "seen_at"),)

    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DispatchRow(Base):
    """Cluster mode: the last poll task of a feed (`monitor.cluster`). The database, not the
    broker, says whether a feed's poll is in flight: a task the broker lost is sent again
    once `sent_at` is old, one whose worker died once its claimer's owner lock is free."""

    __tablename__ = "dispatch"

    feed: Mapped[str] = mapped_column(String(200), primary_key=True)
    token: Mapped[int] = mapped_column(Integer)  # +1 per task sent: an older task is a no-op
    generation: Mapped[int] = mapped_column(Integer)  # config generation the task carries
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(200))  # a worker's owner name
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConfigGenerationRow(Base):
    """Cluster mode: config.toml as the scheduler loaded it; workers load the newest."""

    __tablename__ = "config_generations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of `content`
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
