-- The next task is one indexed read however long a worker's history (bench/pick.py).
--
-- Each worker's walk through a batch's ordinary items resumes past the highest one handed to
-- them (task_cursor); their walk through its gold goes in the order of secret random ranks
-- drawn at import, from a start of their own (labeling/gold.py), and resumes at gold_cursor.

ALTER TABLE worker_batches ADD COLUMN task_cursor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE worker_batches ADD COLUMN gold_cursor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE items ADD COLUMN gold_rank INTEGER;

-- Gold imported before this: ranks in the order the earlier pick used (new imports draw
-- random ones). Workers already partway start their walk afresh; what they have seen is
-- still never shown again.
UPDATE items SET gold_rank = (id * 2654435761) % 2147483647 WHERE gold IS NOT NULL;
UPDATE worker_batches SET task_cursor = COALESCE(
    (SELECT MAX(a.item_id) FROM assignments a WHERE a.worker_id = worker_batches.worker_id
        AND a.batch_id = worker_batches.batch_id AND a.kind = 'task'), 0);

CREATE INDEX items_gold_rank ON items (batch_id, gold_rank) WHERE gold IS NOT NULL AND exam = 0;
DROP INDEX items_gold;
