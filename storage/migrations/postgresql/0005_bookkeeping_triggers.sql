-- The PostgreSQL form of sqlite/0005_bookkeeping_triggers.sql: each trigger is a plpgsql
-- function of the same name and a trigger that fires on the same event.
--
-- How statements are separated, in this file and every other: a statement ends with a `;` at
-- the end of a line, except within a function body, which is dollar-quoted (opened and closed
-- by a double dollar sign) and so belongs to its CREATE FUNCTION statement. No comment or
-- string ends a line with `;` or holds a double dollar sign, so a splitter that ends
-- statements at line-final semicolons outside dollar quotes finds each one whole.
--
-- One difference no trigger can hide: SQLite runs a row trigger right after its row,
-- PostgreSQL runs AFTER ROW triggers once the whole statement has written its rows. The
-- effects are the same for labelbot's statements: its INSERTs into answers and assignments
-- write one row each, and a many-row UPDATE of assignments (expiry) only adds to counters.

CREATE FUNCTION answers_bookkeeping() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE assignments SET status = 'answered', closed_at = NEW.created_at
        WHERE id = NEW.assignment_id;
    INSERT INTO ledger (worker_id, batch_id, answer_id, amount, created_at)
        SELECT NEW.worker_id, NEW.batch_id, NEW.id, reward, NEW.created_at
        FROM batches WHERE id = NEW.batch_id;
    UPDATE items SET answers = answers + 1 WHERE id = NEW.item_id AND gold IS NULL;
    INSERT INTO worker_batches (worker_id, batch_id) VALUES (NEW.worker_id, NEW.batch_id)
        ON CONFLICT DO NOTHING;
    UPDATE worker_batches SET
        answers = answers + 1,
        gold_answers = gold_answers + (NEW.correct IS NOT NULL)::integer,
        gold_correct = gold_correct + COALESCE(NEW.correct, 0),
        fast_answers = fast_answers + NEW.fast,
        judged = judged
            + (SELECT (median_ms IS NOT NULL)::integer FROM batches WHERE id = NEW.batch_id)
        WHERE worker_id = NEW.worker_id AND batch_id = NEW.batch_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER answers_bookkeeping AFTER INSERT ON answers
    FOR EACH ROW EXECUTE FUNCTION answers_bookkeeping();

CREATE FUNCTION assignments_bookkeeping() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE items SET wanted = wanted - 1 WHERE id = NEW.item_id AND NEW.kind = 'task';
    INSERT INTO worker_batches (worker_id, batch_id) VALUES (NEW.worker_id, NEW.batch_id)
        ON CONFLICT DO NOTHING;
    UPDATE worker_batches SET
        tasks = tasks + 1,
        gold_issued = gold_issued + (NEW.kind = 'gold')::integer
        WHERE worker_id = NEW.worker_id AND batch_id = NEW.batch_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER assignments_bookkeeping AFTER INSERT ON assignments
    FOR EACH ROW EXECUTE FUNCTION assignments_bookkeeping();
