"""outbox.content: the alert's structured content (JSON), rendered per channel when sent.

Replaces the rendered `title` and `body` columns. Rows queued before keep their text as a
version-0 content (`{"v": 0, "title": ..., "body": ...}`), which is sent exactly as rendered.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

outbox = sa.table(
    "outbox",
    sa.column("id", sa.Integer),
    sa.column("title", sa.Text),
    sa.column("body", sa.Text),
    sa.column("content", sa.Text),
)


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("content", sa.Text(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(outbox.c.id, outbox.c.title, outbox.c.body)).all()
    for row_id, title, body in rows:
        content = json.dumps({"v": 0, "title": title, "body": body}, ensure_ascii=False)
        connection.execute(sa.update(outbox).where(outbox.c.id == row_id).values(content=content))
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("content", existing_type=sa.Text(), nullable=False)
        batch.drop_column("title")
        batch.drop_column("body")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("title", sa.Text(), nullable=True))
        batch.add_column(sa.Column("body", sa.Text(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(outbox.c.id, outbox.c.content)).all()
    for row_id, content in rows:
        data = json.loads(content)
        title = data.get("title") or ""
        # a structured content has no rendered body: keep it whole rather than lose it
        body = data.get("body", "") if data.get("v") == 0 else content
        connection.execute(
            sa.update(outbox).where(outbox.c.id == row_id).values(title=title, body=body)
        )
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("title", existing_type=sa.Text(), nullable=False)
        batch.alter_column("body", existing_type=sa.Text(), nullable=False)
        batch.drop_column("content")
