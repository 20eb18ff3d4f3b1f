-- Gold that cannot be dodged, judgement by a sequential test, and reports of problem items.

-- Each batch's secret for its workers' gold streams (labeling.gold.stream).
ALTER TABLE batches ADD COLUMN gold_seed TEXT;
UPDATE batches SET gold_seed = lower(hex(randomblob(16)));
-- Hidden gold items whatever their state (gold_items counts those that count now): gold taken
-- out by reports or suspicion still stands between an unjudged worker and the batch.
ALTER TABLE batches ADD COLUMN gold_total INTEGER NOT NULL DEFAULT 0;
UPDATE batches SET gold_total = gold_items;

-- Where each worker is in the batch's gold stream: tasks decided on, how many of them gold,
-- and whether gold is owed (drawn, not yet answered: a skip does not settle it).
ALTER TABLE worker_batches ADD COLUMN draws INTEGER NOT NULL DEFAULT 0;
ALTER TABLE worker_batches ADD COLUMN gold_drawn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE worker_batches ADD COLUMN gold_owed INTEGER NOT NULL DEFAULT 0
    CHECK (gold_owed IN (0, 1));
UPDATE worker_batches SET draws = tasks, gold_drawn = gold_issued;
-- Gold tasks the worker gave back unanswered (skipped, reported, let expire).
ALTER TABLE worker_batches ADD COLUMN gold_returned INTEGER NOT NULL DEFAULT 0;
-- Which rule changed the status ('gold', 'fast', 'unjudged', 'dodging', 'coordinator', 'exam'):
-- a worker suspended on gold that turns out wrong is reinstated when their record is
-- recomputed.
ALTER TABLE worker_batches ADD COLUMN cause TEXT;
UPDATE worker_batches SET cause = CASE
    WHEN reason LIKE 'gold accuracy%' THEN 'gold'
    WHEN reason LIKE '%faster than usual' THEN 'fast'
    WHEN reason LIKE 'exam%' THEN 'exam'
    WHEN reason = 'reinstated' THEN 'coordinator' END;
-- Gold answers from then on make up the worker's record: a reinstated worker starts afresh.
ALTER TABLE worker_batches ADD COLUMN trust_since REAL NOT NULL DEFAULT 0;
UPDATE worker_batches SET trust_since = COALESCE(changed_at, 0) WHERE reason = 'reinstated';

-- Agreement with other workers on finished items (labeling.gold.Peers): running ratios, and
-- how many checks and agreements made them.
ALTER TABLE worker_batches ADD COLUMN peer_below REAL NOT NULL DEFAULT 0;
ALTER TABLE worker_batches ADD COLUMN peer_guessing REAL NOT NULL DEFAULT 0;
ALTER TABLE worker_batches ADD COLUMN peer_checks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE worker_batches ADD COLUMN peer_agreed INTEGER NOT NULL DEFAULT 0;
-- Whether a finished item's answers were compared with each other. Items finished before this
-- migration are not: their workers were judged by the rules of their time.
ALTER TABLE items ADD COLUMN compared INTEGER NOT NULL DEFAULT 0 CHECK (compared IN (0, 1));
UPDATE items SET compared = 1 WHERE answers >= target;
CREATE INDEX items_to_compare ON items (batch_id, id)
    WHERE compared = 0 AND gold IS NULL AND answers >= target;

-- An item is 'ok'; 'broken' once enough workers reported it broken (handed out no more until a
-- coordinator restores it); a gold item is 'suspect' once trusted workers miss it too often
-- (it counts in no one's record until a coordinator corrects, drops or restores it).
ALTER TABLE items ADD COLUMN state TEXT NOT NULL DEFAULT 'ok'
    CHECK (state IN ('ok', 'broken', 'suspect'));
-- When a coordinator last judged the item (restored, corrected, dropped from gold): reports
-- and misses from before then have been answered and count no more; later ones do.
ALTER TABLE items ADD COLUMN reviewed_at REAL;

-- Problems workers report with an item; a worker reports an item once.
CREATE TABLE reports (
    id            INTEGER PRIMARY KEY,
    item_id       INTEGER NOT NULL REFERENCES items (id),
    batch_id      INTEGER NOT NULL REFERENCES batches (id),
    worker_id     INTEGER NOT NULL REFERENCES workers (id),
    -- 'disputed': in training, where gold answers are shown, the worker thinks one is wrong.
    reason        TEXT    NOT NULL
                          CHECK (reason IN ('unclear', 'broken', 'offensive', 'disputed')),
    created_at    REAL    NOT NULL,
    UNIQUE (item_id, worker_id)
);
CREATE INDEX reports_batch ON reports (batch_id, item_id);

-- Messages to one worker (reinstated after suspect gold, suspended after a correction), sent
-- by the notifier. Marked 'sending' before the send: after a crash it is 'unknown', not resent.
CREATE TABLE notices (
    id            INTEGER PRIMARY KEY,
    worker_id     INTEGER NOT NULL REFERENCES workers (id),
    batch_id      INTEGER REFERENCES batches (id),
    kind          TEXT    NOT NULL CHECK (kind IN ('reinstated', 'suspended')),
    status        TEXT    NOT NULL DEFAULT 'queued'
                          CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'unknown')),
    created_at    REAL    NOT NULL,
    updated_at    REAL
);
CREATE INDEX notices_queued ON notices (id) WHERE status = 'queued';

-- A gold task given back unanswered counts against no one's record, but is counted: a worker
-- who gives back gold as often as they answer it is dodging it.
CREATE TRIGGER gold_returned AFTER UPDATE OF status ON assignments
    WHEN NEW.kind = 'gold' AND OLD.status = 'open' AND NEW.status IN ('skipped', 'expired')
BEGIN
    UPDATE worker_batches SET gold_returned = gold_returned + 1
        WHERE worker_id = NEW.worker_id AND batch_id = NEW.batch_id;
END;

-- Answering gold settles the gold a worker owed (the same bookkeeping as before, plus that),
-- so the next pick reads a settled schedule and no answer path differs for gold.
DROP TRIGGER answers_bookkeeping;
CREATE TRIGGER answers_bookkeeping AFTER INSERT ON answers
BEGIN
    UPDATE assignments SET status = 'answered', closed_at = NEW.created_at
        WHERE id = NEW.assignment_id;
    INSERT INTO ledger (worker_id, batch_id, answer_id, amount, created_at)
        SELECT NEW.worker_id, NEW.batch_id, NEW.id, reward, NEW.created_at
        FROM batches WHERE id = NEW.batch_id;
    UPDATE items SET answers = answers + 1 WHERE id = NEW.item_id AND gold IS NULL;
    INSERT OR IGNORE INTO worker_batches (worker_id, batch_id)
        VALUES (NEW.worker_id, NEW.batch_id);
    UPDATE worker_batches SET
        answers = answers + 1,
        gold_answers = gold_answers + (NEW.correct IS NOT NULL),
        gold_correct = gold_correct + COALESCE(NEW.correct, 0),
        fast_answers = fast_answers + NEW.fast,
        judged = judged + (SELECT median_ms IS NOT NULL FROM batches WHERE id = NEW.batch_id),
        gold_owed = gold_owed
            * (SELECT kind = 'task' FROM assignments WHERE id = NEW.assignment_id)
        WHERE worker_id = NEW.worker_id AND batch_id = NEW.batch_id;
END;
