"""Storage backends: the shared contract on memory and SQLite, and PostgreSQL."""
