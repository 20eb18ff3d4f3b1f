-- Workers, batches, items, assignments and answers: the whole labeling loop.
-- Times are Unix seconds (REAL). Counters on items let the next-task query use an index
-- instead of counting answers.

CREATE TABLE workers (
    id            INTEGER PRIMARY KEY,              -- the worker's Telegram user id
    name          TEXT    NOT NULL,
    language      TEXT,
    status        TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'banned')),
    notify        INTEGER NOT NULL DEFAULT 1 CHECK (notify IN (0, 1)),
    reachable     INTEGER NOT NULL DEFAULT 1 CHECK (reachable IN (0, 1)),
    created_at    REAL    NOT NULL,
    last_seen_at  REAL    NOT NULL
);

CREATE TABLE batches (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    question      TEXT    NOT NULL,
    options       TEXT,                              -- JSON array; NULL asks for free text
    overlap       INTEGER NOT NULL CHECK (overlap >= 1),
    gold_ratio    REAL    NOT NULL DEFAULT 0 CHECK (gold_ratio BETWEEN 0 AND 1),
    reward        REAL    NOT NULL DEFAULT 0 CHECK (reward >= 0),
    instructions  TEXT,
    status        TEXT    NOT NULL DEFAULT 'draft'
                          CHECK (status IN ('draft', 'open', 'paused', 'closed')),
    source        TEXT,                              -- the file it was imported from
    created_by    INTEGER,
    created_at    REAL    NOT NULL,
    published_at  REAL,
    closed_at     REAL
);

CREATE INDEX batches_open ON batches (id) WHERE status = 'open';

CREATE TABLE items (
    id            INTEGER PRIMARY KEY,
    batch_id      INTEGER NOT NULL REFERENCES batches (id),
    position      INTEGER NOT NULL,                  -- the row's place in the batch file
    external_id   TEXT,
    text          TEXT,
    image         TEXT,                              -- URL or local path
    image_file_id TEXT,                              -- Telegram's id once uploaded, to reuse
    gold          TEXT,
    explanation   TEXT,
    metadata      TEXT    NOT NULL DEFAULT '{}',     -- JSON object of the file's other columns
    answers       INTEGER NOT NULL DEFAULT 0 CHECK (answers >= 0),
    wanted        INTEGER NOT NULL CHECK (wanted >= 0), -- overlap - answers - open assignments
    CHECK (text IS NOT NULL OR image IS NOT NULL),
    UNIQUE (batch_id, position),
    UNIQUE (batch_id, external_id)
);
-- The pool of items that still need a worker: finished items leave the index, so picking a
-- task never walks the finished part of a batch.
CREATE INDEX items_pool ON items (batch_id, id) WHERE wanted > 0;

CREATE TABLE assignments (
    id            INTEGER PRIMARY KEY,
    item_id       INTEGER NOT NULL REFERENCES items (id),
    batch_id      INTEGER NOT NULL REFERENCES batches (id),
    worker_id     INTEGER NOT NULL REFERENCES workers (id),
    status        TEXT    NOT NULL DEFAULT 'open'
                          CHECK (status IN ('open', 'answered', 'skipped', 'expired')),
    issued_at     REAL    NOT NULL,
    expires_at    REAL    NOT NULL,
    closed_at     REAL,
    UNIQUE (item_id, worker_id)                      -- a worker never gets an item twice
);
CREATE UNIQUE INDEX assignments_one_open ON assignments (worker_id) WHERE status = 'open';
CREATE INDEX assignments_expiry ON assignments (expires_at) WHERE status = 'open';
CREATE INDEX assignments_batch ON assignments (batch_id, status);

CREATE TABLE answers (
    id            INTEGER PRIMARY KEY,
    assignment_id INTEGER NOT NULL UNIQUE REFERENCES assignments (id),
    item_id       INTEGER NOT NULL REFERENCES items (id),
    batch_id      INTEGER NOT NULL REFERENCES batches (id),
    worker_id     INTEGER NOT NULL REFERENCES workers (id),
    value         TEXT    NOT NULL,
    duration_ms   INTEGER NOT NULL CHECK (duration_ms >= 0),  -- from the card shown to the tap
    created_at    REAL    NOT NULL,
    UNIQUE (item_id, worker_id)                      -- a repeated tap can never count twice
);
CREATE INDEX answers_batch ON answers (batch_id, item_id);
CREATE INDEX answers_worker ON answers (worker_id, created_at);

-- Announcements to workers (a batch published, a message from a coordinator). A delivery row
-- is written before the message is sent, so a restart never tells anyone twice.
CREATE TABLE broadcasts (
    id            INTEGER PRIMARY KEY,
    batch_id      INTEGER REFERENCES batches (id),
    text          TEXT    NOT NULL,
    created_at    REAL    NOT NULL,
    finished_at   REAL
);
CREATE TABLE deliveries (
    broadcast_id  INTEGER NOT NULL REFERENCES broadcasts (id),
    worker_id     INTEGER NOT NULL REFERENCES workers (id),
    status        TEXT    NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    updated_at    REAL    NOT NULL,
    error         TEXT,
    PRIMARY KEY (broadcast_id, worker_id)
) WITHOUT ROWID;
