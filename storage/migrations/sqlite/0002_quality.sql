-- Quality control: gold mixing, trust per worker and batch, training exams, fast answers and
-- dynamic overlap.

-- The batch's full settings (BatchSettings as JSON); the columns above stay for SQL's use.
ALTER TABLE batches ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
UPDATE batches SET settings = json_object(
    'name', name, 'question', question, 'options', json(options), 'overlap', overlap,
    'gold_ratio', gold_ratio, 'reward', reward, 'instructions', instructions
);
-- Hidden gold items (the exam's gold is shown openly and not counted here).
ALTER TABLE batches ADD COLUMN gold_items INTEGER NOT NULL DEFAULT 0;
-- The median time of recent answers, refreshed in the background, for the fast-answer rule.
ALTER TABLE batches ADD COLUMN median_ms INTEGER;

-- Exam items are the first gold items of a batch that requires training.
ALTER TABLE items ADD COLUMN exam INTEGER NOT NULL DEFAULT 0 CHECK (exam IN (0, 1));
-- How many answers the item should get now: the overlap, raised one at a time up to the
-- batch's maximum while the label stays below its confidence target.
ALTER TABLE items ADD COLUMN target INTEGER NOT NULL DEFAULT 0;
UPDATE items SET target = (SELECT overlap FROM batches WHERE batches.id = items.batch_id);
-- Gold items are handed out by the gold schedule, never from the pool.
UPDATE items SET wanted = 0 WHERE gold IS NOT NULL;
UPDATE batches SET gold_items = (
    SELECT COUNT(*) FROM items WHERE items.batch_id = batches.id AND items.gold IS NOT NULL
);
CREATE INDEX items_gold ON items (batch_id, id) WHERE gold IS NOT NULL AND exam = 0;

ALTER TABLE assignments ADD COLUMN kind TEXT NOT NULL DEFAULT 'task'
    CHECK (kind IN ('task', 'gold'));
UPDATE assignments SET kind = 'gold'
    WHERE item_id IN (SELECT id FROM items WHERE gold IS NOT NULL);

-- For a gold item: whether the answer matched the known one. NULL for ordinary items.
ALTER TABLE answers ADD COLUMN correct INTEGER CHECK (correct IN (0, 1));
-- Far faster than the batch's median: the worker may not have read the task.
ALTER TABLE answers ADD COLUMN fast INTEGER NOT NULL DEFAULT 0 CHECK (fast IN (0, 1));

-- A worker's standing in one batch: admitted, in training, suspended; and the counts that
-- the trust rules read.
CREATE TABLE worker_batches (
    worker_id     INTEGER NOT NULL REFERENCES workers (id),
    batch_id      INTEGER NOT NULL REFERENCES batches (id),
    status        TEXT    NOT NULL DEFAULT 'active'
                          CHECK (status IN ('active', 'suspended', 'failed')),
    tasks         INTEGER NOT NULL DEFAULT 0,  -- assignments issued
    gold_issued   INTEGER NOT NULL DEFAULT 0,
    answers       INTEGER NOT NULL DEFAULT 0,
    gold_answers  INTEGER NOT NULL DEFAULT 0,
    gold_correct  INTEGER NOT NULL DEFAULT 0,
    fast_answers  INTEGER NOT NULL DEFAULT 0,
    judged        INTEGER NOT NULL DEFAULT 0,  -- answers given once the batch's median was known
    reason        TEXT,                        -- why the status changed, for the log
    changed_at    REAL,
    retry_at      REAL,                        -- a failed exam may be retried from then on
    PRIMARY KEY (worker_id, batch_id)
) WITHOUT ROWID;
INSERT INTO worker_batches (worker_id, batch_id, tasks, answers)
    SELECT worker_id, batch_id, COUNT(*), SUM(status = 'answered')
    FROM assignments GROUP BY worker_id, batch_id;

CREATE TABLE exam_attempts (
    id            INTEGER PRIMARY KEY,
    batch_id      INTEGER NOT NULL REFERENCES batches (id),
    worker_id     INTEGER NOT NULL REFERENCES workers (id),
    started_at    REAL    NOT NULL,
    finished_at   REAL,
    answered      INTEGER NOT NULL DEFAULT 0,
    correct       INTEGER NOT NULL DEFAULT 0,
    passed        INTEGER CHECK (passed IN (0, 1))
);
CREATE UNIQUE INDEX exam_attempts_one_open ON exam_attempts (worker_id, batch_id)
    WHERE finished_at IS NULL;
CREATE TABLE exam_answers (
    attempt_id    INTEGER NOT NULL REFERENCES exam_attempts (id),
    item_id       INTEGER NOT NULL REFERENCES items (id),
    value         TEXT    NOT NULL,
    correct       INTEGER NOT NULL CHECK (correct IN (0, 1)),
    created_at    REAL    NOT NULL,
    PRIMARY KEY (attempt_id, item_id)             -- a double tap in the exam counts once
) WITHOUT ROWID;
