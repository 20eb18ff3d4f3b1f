-- Coordinators in Telegram: promoted roles, the pay ledger, worker administration, and
-- broadcasts that report their progress.

-- Coordinators promoted from Telegram; those in COORDINATOR_IDS need no row.
CREATE TABLE coordinators (
    user_id       INTEGER PRIMARY KEY,
    promoted_by   INTEGER NOT NULL,
    created_at    REAL    NOT NULL
);

-- What each worker has earned: one entry per answer (its batch's reward at the time), and
-- room for adjustments. A worker is owed the sum of their entries.
CREATE TABLE ledger (
    id            INTEGER PRIMARY KEY,
    worker_id     INTEGER NOT NULL REFERENCES workers (id),
    batch_id      INTEGER REFERENCES batches (id),
    answer_id     INTEGER UNIQUE REFERENCES answers (id),  -- an answer is paid once
    amount        REAL    NOT NULL,
    kind          TEXT    NOT NULL DEFAULT 'reward' CHECK (kind IN ('reward', 'adjustment')),
    note          TEXT,
    created_at    REAL    NOT NULL
);
CREATE INDEX ledger_worker ON ledger (worker_id, batch_id);
INSERT INTO ledger (worker_id, batch_id, answer_id, amount, created_at)
    SELECT a.worker_id, a.batch_id, a.id, b.reward, a.created_at
    FROM answers a JOIN batches b ON b.id = a.batch_id;

-- Bans, unbans, promotions and suspensions lifted, with who did it and why.
CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    actor_id      INTEGER,                     -- the coordinator, or NULL for the CLI
    action        TEXT    NOT NULL,
    subject_id    INTEGER,
    reason        TEXT,
    created_at    REAL    NOT NULL
);

-- Who asked for a broadcast (their chat gets a progress message), whether it may use paid
-- broadcasting, and the message to keep editing.
ALTER TABLE broadcasts ADD COLUMN created_by INTEGER;
ALTER TABLE broadcasts ADD COLUMN paid INTEGER NOT NULL DEFAULT 0 CHECK (paid IN (0, 1));
ALTER TABLE broadcasts ADD COLUMN progress_message_id INTEGER;
ALTER TABLE broadcasts ADD COLUMN started_at REAL;
-- 'unknown': the bot stopped while the message was in flight; it is not sent again, since
-- telling a worker twice is worse than a missed announcement.
CREATE TABLE deliveries_new (
    broadcast_id  INTEGER NOT NULL REFERENCES broadcasts (id),
    worker_id     INTEGER NOT NULL REFERENCES workers (id),
    status        TEXT    NOT NULL CHECK (status IN ('sending', 'sent', 'failed', 'unknown')),
    updated_at    REAL    NOT NULL,
    error         TEXT,
    PRIMARY KEY (broadcast_id, worker_id)
) WITHOUT ROWID;
INSERT INTO deliveries_new SELECT * FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
