-- The counters that follow from rows are kept by triggers, in the same statement as the row:
-- no code path can forget one, and an answer costs fewer round trips to the database.

-- An answer closes its assignment, is paid the batch's reward, counts on its item (gold items
-- are not pooled, so only ordinary ones count) and in the worker's trust counters.
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
        judged = judged + (SELECT median_ms IS NOT NULL FROM batches WHERE id = NEW.batch_id)
        WHERE worker_id = NEW.worker_id AND batch_id = NEW.batch_id;
END;

-- A task handed out leaves the pool and counts towards the worker's gold schedule.
CREATE TRIGGER assignments_bookkeeping AFTER INSERT ON assignments
BEGIN
    UPDATE items SET wanted = wanted - 1 WHERE id = NEW.item_id AND NEW.kind = 'task';
    INSERT OR IGNORE INTO worker_batches (worker_id, batch_id) VALUES (NEW.worker_id, NEW.batch_id);
    UPDATE worker_batches SET tasks = tasks + 1, gold_issued = gold_issued + (NEW.kind = 'gold')
        WHERE worker_id = NEW.worker_id AND batch_id = NEW.batch_id;
END;
