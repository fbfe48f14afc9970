"""Outbox owners and states.

- lease_owner: which process holds a lease, so a restarted daemon takes over the leases of a
  process that died (instead of waiting for them to run out);
- failed_at: an alert still failing `give_up_after` after it was queued is failed, no longer
  tried;
- requeued_at: `monitor alerts retry` requeued it (`give_up_after` counts from then).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.store.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("failed_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("requeued_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("requeued_at")
        batch.drop_column("failed_at")
        batch.drop_column("lease_owner")
