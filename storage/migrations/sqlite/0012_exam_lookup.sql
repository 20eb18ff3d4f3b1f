-- A worker's attempts at a batch's exam are looked up on every exam answer and every /next
-- during training (their score, their last attempt's questions, whether one is open). The
-- partial unique index holds open attempts only, so finished ones were found by scanning
-- every worker's attempts.
CREATE INDEX exam_attempts_worker ON exam_attempts (worker_id, batch_id, id);
