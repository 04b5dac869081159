-- What each user stores, for quotas (internal/quota).
--
-- The server keeps usage in memory and writes the rows that changed about
-- once a second, not at every upload: a crash can lose the last second.
-- quota_claim says whether a server had usage open and did not close it
-- cleanly; the next one to open it then marks every row stale, and a
-- stale row is recomputed by a scan of the user's tree before it is used.

-- +goose Up

CREATE TABLE quota_usage (
    user_name  TEXT    NOT NULL PRIMARY KEY,
    bytes      BIGINT  NOT NULL,
    files      BIGINT  NOT NULL,
    stale      INTEGER NOT NULL DEFAULT 0,
    scanned_ms BIGINT  NOT NULL DEFAULT 0,
    updated_ms BIGINT  NOT NULL DEFAULT 0
);

CREATE TABLE quota_claim (
    id         INTEGER NOT NULL PRIMARY KEY,
    claimed    INTEGER NOT NULL,
    claimed_ms BIGINT  NOT NULL
);
INSERT INTO quota_claim (id, claimed, claimed_ms) VALUES (1, 0, 0);

-- +goose Down
DROP TABLE quota_claim;
DROP TABLE quota_usage;
