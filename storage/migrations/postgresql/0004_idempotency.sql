-- The PostgreSQL form of sqlite/0004_idempotency.sql.

ALTER TABLE answers ADD COLUMN source TEXT;
CREATE UNIQUE INDEX answers_source ON answers (source) WHERE source IS NOT NULL;

ALTER TABLE batches ADD COLUMN source_file TEXT;
CREATE UNIQUE INDEX batches_source_file ON batches (source_file) WHERE source_file IS NOT NULL;

ALTER TABLE broadcasts ADD COLUMN source_message TEXT;
CREATE UNIQUE INDEX broadcasts_source_message ON broadcasts (source_message)
    WHERE source_message IS NOT NULL;
