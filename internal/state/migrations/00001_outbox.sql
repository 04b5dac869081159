-- The event outbox and each sink's place in it.
--
-- Written for SQLite now and PostgreSQL later from the same file: BIGINT
-- and TEXT columns, times as BIGINT Unix milliseconds (no TIMESTAMP, whose
-- driver mappings differ), no AUTOINCREMENT, IDENTITY or SERIAL.

-- +goose Up

-- outbox holds every event in the order it was recorded. seq is assigned
-- from outbox_seq in the appending transaction rather than by
-- AUTOINCREMENT or a PostgreSQL sequence: both are SQLite- or
-- PostgreSQL-only syntax, and a sequence hands out numbers at insert time,
-- so on PostgreSQL a reader could see seq 6 committed before seq 5 and move
-- a sink's cursor past 5 for good. Incrementing one row serialises
-- appenders until commit, so seqs become visible in order and without gaps.
CREATE TABLE outbox (
    seq        BIGINT NOT NULL PRIMARY KEY,
    id         TEXT   NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    type       TEXT   NOT NULL,
    body       TEXT   NOT NULL
);

CREATE TABLE outbox_seq (
    id       INTEGER NOT NULL PRIMARY KEY,
    last_seq BIGINT  NOT NULL
);
INSERT INTO outbox_seq (id, last_seq) VALUES (1, 0);

-- sink_cursors is one row per sink: a cursor rather than a row per event
-- and sink. Delivery is ordered per sink, so a sink's progress is one
-- number (every event with seq <= delivered_seq is done: delivered,
-- filtered out or dropped) plus the state of the one event at its head
-- that is being retried. Appending then writes nothing per sink, a sink
-- added later needs no back-filled rows, dropping a backlog is one update,
-- and pruning is "seq <= the smallest cursor". With PostgreSQL, nodes
-- share a sink by locking its row (FOR UPDATE SKIP LOCKED) while they
-- deliver its next batch.
CREATE TABLE sink_cursors (
    sink            TEXT    NOT NULL PRIMARY KEY,
    delivered_seq   BIGINT  NOT NULL,
    failing_id      TEXT    NOT NULL DEFAULT '',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT  NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    delivered_ms    BIGINT  NOT NULL DEFAULT 0,
    dropped         BIGINT  NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE sink_cursors;
DROP TABLE outbox_seq;
DROP TABLE outbox;
