"""Cluster mode (issue 13): the dispatch record of each feed's poll task and the published
config generations.

- dispatch: one row per feed name: the token of the last task sent (a redelivered or older
  task whose token is not the row's is a no-op), the config generation it carries, when it
  was sent, the worker that claimed it (its owner name, see monitor.store.owners) and its
  lease, and when it finished;
- config_generations: config.toml's text and SHA-256 as the active scheduler loaded it; the
  id is the generation a task carries.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dispatch",
        sa.Column("feed", sa.String(200), nullable=False),
        sa.Column("token", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("feed", name=op.f("pk_dispatch")),
    )
    op.create_table(
        "config_generations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_generations")),
    )


def downgrade() -> None:
    op.drop_table("config_generations")
    op.drop_table("dispatch")
