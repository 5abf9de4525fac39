"""All SQL of the recorder: the catalog database (SQLite by default, any SQLAlchemy URL).

engine.py   make_engine (SQLite pragmas, a server database's pool), guard_db_errors, Queries
tables.py   the schema: the run index (rebuilt by `reindex`) and the control tables
schema.py   bringing a database up to date at start-up (Alembic migrations in migrations/)
catalog.py  Catalog: the run index (runs, streams, tags, notes): index, list, search, tag
sources.py, jobs.py, managers.py, tokens.py: one query class per control table group
control.py  Control: those four on one engine, for callers that use several

Nothing outside this package imports SQLAlchemy or a table.
"""
