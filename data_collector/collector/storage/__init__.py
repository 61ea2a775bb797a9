"""The database: SQLAlchemy Core schema, Alembic migrations, data access and credential files."""
