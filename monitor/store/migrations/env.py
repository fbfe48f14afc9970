"""Alembic environment: always run programmatically by monitor.store.repo.migrate().

The caller hands over an open connection in `config.attributes["connection"]`; nothing here
reads alembic.ini, configures logging or touches the network.
"""

from __future__ import annotations

from alembic import context

from monitor.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
