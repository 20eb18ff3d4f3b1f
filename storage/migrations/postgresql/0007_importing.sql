-- The PostgreSQL form of sqlite/0007_importing.sql.
ALTER TABLE batches ADD COLUMN importing INTEGER NOT NULL DEFAULT 0;
