"""Alembic environment: migrations run on the connection the Store hands over."""
from alembic import context

from core.schema import metadata

config = context.config
connection = config.attributes.get("connection")


def run_migrations() -> None:
    if connection is None:
        from sqlalchemy import create_engine

        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as conn:
            context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
