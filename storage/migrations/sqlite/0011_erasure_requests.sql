-- A worker's request to be forgotten waits for their confirmation here, not in one process's
-- memory: with several replicas, the confirming tap may reach another one than /forgetme did.
CREATE TABLE erasure_requests (
    worker_id     INTEGER PRIMARY KEY REFERENCES workers (id),
    code          TEXT    NOT NULL,  -- what the worker's confirmation button carries
    expires_at    REAL    NOT NULL
);
