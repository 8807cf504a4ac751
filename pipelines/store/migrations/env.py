"""Alembic environment for the series store: always run by pipelines.store.db.upgrade with an open connection."""

from __future__ import annotations

from alembic import context

from pipelines.store.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
