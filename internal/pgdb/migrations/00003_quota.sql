-- Quota usage shared by every node (internal/pgquota).
--
-- cloudftpd_quota_usage is what each user stores, committed: nodes change
-- it by deltas (bytes written, files created, deletes) as uploads commit,
-- and `cloudftpd quota scan` replaces it with a scan's figure.
--
-- cloudftpd_quota_leases is the room of a quota each node holds for the
-- uploads it runs: a node spends its lease locally and gives back what
-- it did not use. A lease is granted, under the lock of the user's usage
-- row, only while bytes (files) plus every live lease stays within the
-- quota; a node renews its leases while it runs, and the leases of a node
-- that died expire (expires_at), giving their room back.

-- +goose Up
CREATE TABLE cloudftpd_quota_usage (
    user_name  text PRIMARY KEY CHECK (user_name <> ''),
    bytes      bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    files      bigint NOT NULL DEFAULT 0 CHECK (files >= 0),
    scanned_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cloudftpd_quota_leases (
    user_name  text NOT NULL REFERENCES cloudftpd_quota_usage (user_name) ON DELETE CASCADE,
    node       text NOT NULL,
    bytes      bigint NOT NULL CHECK (bytes >= 0),
    files      bigint NOT NULL CHECK (files >= 0),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (user_name, node)
);

-- A node renews and gives back its leases by node.
CREATE INDEX cloudftpd_quota_leases_node ON cloudftpd_quota_leases (node);

-- +goose Down
DROP TABLE cloudftpd_quota_leases;
DROP TABLE cloudftpd_quota_usage;
