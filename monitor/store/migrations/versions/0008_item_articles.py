"""Full-text feeds: the article text of an item, and what a match was made on.

- items.article: the article's main text, UTF-8, zlib-compressed (full-text feeds);
- items.article_error: why a full-text item's article was not read (matched on feed text);
- matches.source: "feed" or "article" (NULL, rows before this revision: "feed").

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("article", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("article_error", sa.Text(), nullable=True))
    with op.batch_alter_table("matches") as batch:
        batch.add_column(sa.Column("source", sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("matches") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("article_error")
        batch.drop_column("article")
