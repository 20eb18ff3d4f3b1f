-- Coordinators told about their batches without asking (a batch complete, a digest of
-- suspensions), workers told when a coordinator lets them back in or a paused batch is back.

-- Notices now also go to coordinators: `coordinator_id` instead of `worker_id` (a coordinator
-- need not be a worker), with the text composed when queued (`text`, for a digest).
-- 'let_back': a coordinator reinstated the worker; 'completed': every item of the batch has its
-- answers; 'suspensions': the workers suspended since the last digest.
CREATE TABLE notices_new (
    id             INTEGER PRIMARY KEY,
    worker_id      INTEGER REFERENCES workers (id),
    coordinator_id INTEGER,
    batch_id       INTEGER REFERENCES batches (id),
    kind           TEXT    NOT NULL CHECK (kind IN
                           ('reinstated', 'suspended', 'let_back', 'completed', 'suspensions')),
    text           TEXT,
    status         TEXT    NOT NULL DEFAULT 'queued'
                           CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'unknown')),
    created_at     REAL    NOT NULL,
    updated_at     REAL,
    CHECK ((worker_id IS NULL) <> (coordinator_id IS NULL))
);
INSERT INTO notices_new (id, worker_id, batch_id, kind, status, created_at, updated_at)
    SELECT id, worker_id, batch_id, kind, status, created_at, updated_at FROM notices;
DROP TABLE notices;
ALTER TABLE notices_new RENAME TO notices;
CREATE INDEX notices_queued ON notices (id) WHERE status = 'queued';

-- When every ordinary item first had its answers (its coordinator was told then, once), and
-- when the last digest of suspensions went out (at most one every few minutes).
ALTER TABLE batches ADD COLUMN completed_at REAL;
ALTER TABLE batches ADD COLUMN digest_at REAL;
UPDATE batches SET completed_at = created_at
    WHERE EXISTS (SELECT 1 FROM items i WHERE i.batch_id = batches.id AND i.gold IS NULL)
    AND NOT EXISTS (SELECT 1 FROM items i WHERE i.batch_id = batches.id AND i.gold IS NULL
                    AND i.answers < i.target);
-- When the worker's suspension was last listed in a digest: a suspension after that is new.
ALTER TABLE worker_batches ADD COLUMN reported_at REAL;
UPDATE worker_batches SET reported_at = changed_at WHERE status = 'suspended';

-- Who a broadcast reaches: 'all' active workers (a batch opened, an announcement), or 'batch':
-- those who worked in its batch or were told of it (the batch is back after a pause).
ALTER TABLE broadcasts ADD COLUMN audience TEXT NOT NULL DEFAULT 'all'
    CHECK (audience IN ('all', 'batch'));

-- The money a batch has cost, for /status, without reading every worker's entries.
CREATE INDEX ledger_batch ON ledger (batch_id, amount);
