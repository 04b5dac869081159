-- The event outbox nodes share (internal/pgoutbox): every node appends the
-- events it records, and each sink is delivered by one node at a time,
-- the one holding the sink's lease. The tables follow internal/state's
-- SQLite outbox (see its 00001_outbox.sql for the reasoning), plus the
-- lease.

-- +goose Up

-- One row per event, in the order recorded. seq comes from the one row of
-- cloudftpd_outbox_seq, incremented in the appending transaction, not
-- from a sequence: a sequence hands out numbers at insert time, so a
-- reader could see seq 6 committed before seq 5 and move a cursor past 5
-- for good. The counter row's lock serialises appenders (of all nodes)
-- until commit, so seqs become visible in order. body is the event's JSON
-- as text (byte for byte what was recorded; body::jsonb for queries).
CREATE TABLE cloudftpd_outbox (
    seq        bigint PRIMARY KEY,
    id         text   NOT NULL UNIQUE,
    created_ms bigint NOT NULL,
    type       text   NOT NULL,
    body       text   NOT NULL
);

CREATE TABLE cloudftpd_outbox_seq (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    last_seq bigint  NOT NULL
);
INSERT INTO cloudftpd_outbox_seq (one, last_seq) VALUES (true, 0);

-- One row per sink: its cursor (every event with seq <= delivered_seq is
-- done), the retry state of the event at its head, and its lease. The
-- node named by lease_holder delivers the sink until lease_until (the
-- database's clock), renewing it while it runs; a node that dies stops
-- renewing, and another takes the sink over from the cursor once the
-- lease has run out. A node that stops cleanly sets lease_until to
-- -infinity, handing the sink over at once.
CREATE TABLE cloudftpd_outbox_sinks (
    sink            text        PRIMARY KEY,
    delivered_seq   bigint      NOT NULL,
    failing_id      text        NOT NULL DEFAULT '',
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_ms bigint      NOT NULL DEFAULT 0,
    last_error      text        NOT NULL DEFAULT '',
    delivered_ms    bigint      NOT NULL DEFAULT 0,
    dropped         bigint      NOT NULL DEFAULT 0,
    lease_holder    text        NOT NULL DEFAULT '',
    lease_until     timestamptz NOT NULL DEFAULT '-infinity'
);

-- +goose Down
DROP TABLE cloudftpd_outbox_sinks;
DROP TABLE cloudftpd_outbox_seq;
DROP TABLE cloudftpd_outbox;
