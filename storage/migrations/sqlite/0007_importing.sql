-- A large batch file is stored a few thousand items at a time, so that workers' answers keep
-- landing meanwhile; until its last item is in, the batch is marked importing and is seen by
-- nobody. A batch left importing (the process died) is removed at the next start.
ALTER TABLE batches ADD COLUMN importing INTEGER NOT NULL DEFAULT 0;
