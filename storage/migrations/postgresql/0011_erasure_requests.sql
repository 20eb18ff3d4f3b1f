-- The PostgreSQL form of sqlite/0011_erasure_requests.sql.
CREATE TABLE erasure_requests (
    worker_id     BIGINT  PRIMARY KEY REFERENCES workers (id),
    code          TEXT    NOT NULL,
    expires_at    DOUBLE PRECISION NOT NULL
);
