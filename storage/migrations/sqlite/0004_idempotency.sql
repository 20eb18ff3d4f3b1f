-- Redelivered updates change nothing: what a message created remembers the message.

-- A typed (free-text) answer remembers the worker's message, so the same message delivered
-- again is not taken as the answer to the next task.
ALTER TABLE answers ADD COLUMN source TEXT;
CREATE UNIQUE INDEX answers_source ON answers (source) WHERE source IS NOT NULL;

-- A batch uploaded in the chat remembers the file (Telegram's file_unique_id).
ALTER TABLE batches ADD COLUMN source_file TEXT;
CREATE UNIQUE INDEX batches_source_file ON batches (source_file) WHERE source_file IS NOT NULL;

-- An announcement remembers the coordinator's message that asked for it.
ALTER TABLE broadcasts ADD COLUMN source_message TEXT;
CREATE UNIQUE INDEX broadcasts_source_message ON broadcasts (source_message)
    WHERE source_message IS NOT NULL;
