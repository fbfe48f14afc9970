"""Digests and stories (issue 9).

- outbox.due_at, outbox.digest_key: an alert held for a digest (or quiet hours) is due at
  `due_at`; rows sharing `digest_key` (channel@due) are sent together as one message;
- items.story_sig, items.story_of and the story_buckets table: near-duplicate stories across
  feeds (MinHash signature, LSH bands as indexed buckets), a copy linked to its first item.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("due_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("digest_key", sa.String(length=300), nullable=True))
        batch.create_index("ix_outbox_digest", ["channel", "digest_key"])
        batch.create_index("ix_outbox_channel_created", ["channel", "created_at"])
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("story_sig", sa.Text(), nullable=True))
        batch.add_column(sa.Column("story_of", sa.Integer(), nullable=True))
        batch.create_index("ix_items_story_of", ["story_of"])
    op.create_table(
        "story_buckets",
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_story_buckets_item_id_items"),
        sa.PrimaryKeyConstraint("bucket", "item_id", name="pk_story_buckets"),
    )
    op.create_index("ix_story_buckets_bucket", "story_buckets", ["bucket", "seen_at"])


def downgrade() -> None:
    op.drop_index("ix_story_buckets_bucket", table_name="story_buckets")
    op.drop_table("story_buckets")
    with op.batch_alter_table("items") as batch:
        batch.drop_index("ix_items_story_of")
        batch.drop_column("story_of")
        batch.drop_column("story_sig")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_channel_created")
        batch.drop_index("ix_outbox_digest")
        batch.drop_column("digest_key")
        batch.drop_column("due_at")
