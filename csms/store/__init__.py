"""The database adapter: SQLModel tables, migrations, the group-commit writer and queries."""
