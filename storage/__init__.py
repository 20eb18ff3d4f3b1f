"""SQLite persistence: one connection, numbered migrations, and the repositories over them."""
