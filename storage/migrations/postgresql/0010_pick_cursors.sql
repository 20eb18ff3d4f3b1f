-- The PostgreSQL form of sqlite/0010_pick_cursors.sql: the next task is one indexed read
-- however long a worker's history.

ALTER TABLE worker_batches ADD COLUMN task_cursor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE worker_batches ADD COLUMN gold_cursor BIGINT NOT NULL DEFAULT 0;
-- Ranks are below 2^31.
ALTER TABLE items ADD COLUMN gold_rank INTEGER;

UPDATE items SET gold_rank = (id * 2654435761) % 2147483647 WHERE gold IS NOT NULL;
UPDATE worker_batches SET task_cursor = COALESCE(
    (SELECT MAX(a.item_id) FROM assignments a WHERE a.worker_id = worker_batches.worker_id
        AND a.batch_id = worker_batches.batch_id AND a.kind = 'task'), 0);

CREATE INDEX items_gold_rank ON items (batch_id, gold_rank) WHERE gold IS NOT NULL AND exam = 0;
DROP INDEX items_gold;
