"""Feed rows for polling at the network floor and for feed health (issue 8).

feeds.body_hash            SHA-256 of the last 200 body parsed: the same bytes are not parsed again
feeds.cache_max_age        Cache-Control max-age of the last answer, seconds    } hints that may
feeds.feed_ttl             RSS <ttl> of the last document, seconds               } lengthen the
feeds.feed_update_interval sy:updatePeriod / sy:updateFrequency, seconds        } poll interval
feeds.failing_since        the first failure of the current run of failures
feeds.last_new_item_at     when the feed last brought an item not seen before (stale_after)
feeds.health               the state the desk was last told about: ok, dead or stale
feeds.health_since         when the feed entered that state
outbox.item_id             nullable: a feed-health alert belongs to no item
ix_items_first_seen_at     `monitor feeds` counts a week's new items per feed

Existing rows: failing feeds count as failing since their last error (the first is not known),
last_new_item_at is the newest first_seen_at of the feed's items.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

feeds = sa.table(
    "feeds",
    sa.column("id", sa.Integer),
    sa.column("consecutive_failures", sa.Integer),
    sa.column("last_error_at", UTCDateTime()),
    sa.column("failing_since", UTCDateTime()),
    sa.column("last_new_item_at", UTCDateTime()),
)
items = sa.table(
    "items", sa.column("feed_id", sa.Integer), sa.column("first_seen_at", UTCDateTime())
)


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("body_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("cache_max_age", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("feed_ttl", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("feed_update_interval", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("failing_since", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("last_new_item_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("health", sa.String(10), nullable=False, server_default="ok"))
        batch.add_column(sa.Column("health_since", UTCDateTime(), nullable=True))
    connection = op.get_bind()
    connection.execute(
        sa.update(feeds)
        .where(feeds.c.consecutive_failures > 0)
        .values(failing_since=feeds.c.last_error_at)
    )
    newest = (
        sa.select(sa.func.max(items.c.first_seen_at))
        .where(items.c.feed_id == feeds.c.id)
        .scalar_subquery()
    )
    connection.execute(sa.update(feeds).values(last_new_item_at=newest))
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("item_id", existing_type=sa.Integer(), nullable=True)
    op.create_index("ix_items_first_seen_at", "items", ["first_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_items_first_seen_at", table_name="items")
    connection = op.get_bind()
    connection.execute(sa.text("DELETE FROM outbox WHERE item_id IS NULL"))
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("item_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("feeds") as batch:
        for column in (
            "health_since",
            "health",
            "last_new_item_at",
            "failing_since",
            "feed_update_interval",
            "feed_ttl",
            "cache_max_age",
            "body_hash",
        ):
            batch.drop_column(column)
