"""heartbeat: the running daemon's last tick, last finished poll and last retention pass,
read by `monitor health` (the container's HEALTHCHECK).

Retention: item_keys keeps the identity (feed, key) of every item retention deleted, so it
is never stored or alerted again. An item some rule alerted (rule_links points at it) is kept
with its title and text emptied instead (items.pruned_at). items.first_seen_at gets an index:
retention and `test-rule --history` select by it.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "heartbeat",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ticked_at", UTCDateTime(), nullable=False),
        sa.Column("pass_at", UTCDateTime(), nullable=True),
        sa.Column("pruned_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_heartbeat")),
    )
    op.create_table(
        "item_keys",
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(600), nullable=False),
        sa.ForeignKeyConstraint(["feed_id"], ["feeds.id"], name=op.f("fk_item_keys_feed_id_feeds")),
        sa.PrimaryKeyConstraint("feed_id", "key", name=op.f("pk_item_keys")),
    )
    # a plain ADD COLUMN on both dialects: the items table is not copied
    op.add_column("items", sa.Column("pruned_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("pruned_at")
    op.drop_table("item_keys")
    op.drop_table("heartbeat")
