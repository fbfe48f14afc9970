"""heartbeat: the running daemon's last tick, last finished poll and last retention pass,
read by `monitor health` (the container's HEALTHCHECK).

Retention: items.pruned_at marks an item whose text was dropped (its row, the identity
(feed, key), stays, so it is never alerted again); items.first_seen_at gets an index, since
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
down_revision = "0003"
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
    # a plain ADD COLUMN on both dialects: the items table is not copied
    op.add_column("items", sa.Column("pruned_at", UTCDateTime(), nullable=True))
    op.create_index("ix_items_first_seen_at", "items", ["first_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_items_first_seen_at", table_name="items")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("pruned_at")
    op.drop_table("heartbeat")
