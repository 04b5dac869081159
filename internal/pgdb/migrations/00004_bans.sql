-- The defender's bans and scores, shared by the nodes (internal/pgbans).
-- Each node keeps its own in-memory copy of the bans for the check at
-- accept; this is the copy they share.

-- +goose Up

-- One row per banned prefix, in force or ended but remembered (until
-- forget) so that the next ban of the prefix is longer. until and forget
-- are NULL for a ban until it is lifted.
CREATE TABLE cloudftpd_bans (
    prefix  cidr PRIMARY KEY,
    reason  text NOT NULL DEFAULT '',
    since   timestamptz NOT NULL DEFAULT now(),
    until   timestamptz,
    forget  timestamptz,
    strikes integer NOT NULL DEFAULT 1 CHECK (strikes >= 1),
    manual  boolean NOT NULL DEFAULT false,
    -- the node that made the ban: its name, or '' when made in SQL
    node    text NOT NULL DEFAULT '',
    CHECK ((until IS NULL) = (forget IS NULL))
);
CREATE INDEX cloudftpd_bans_forget ON cloudftpd_bans (forget) WHERE forget IS NOT NULL;

-- The points each prefix scored on all the nodes, one row per prefix: its
-- recent scores as a JSON array of {"at", "node", "points"}, pruned of
-- the ones older than the window as new ones come. One row per prefix
-- makes nodes adding to one prefix at once wait for each other, so that
-- each sees the others' points and exactly one of them bans.
CREATE TABLE cloudftpd_ban_scores (
    prefix  cidr PRIMARY KEY,
    scores  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(scores) = 'array'),
    updated timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cloudftpd_ban_scores_updated ON cloudftpd_ban_scores (updated);

-- The change counter every node polls, in case it missed notifications:
-- bumped once per statement that changes cloudftpd_bans.
CREATE TABLE cloudftpd_bans_version (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint NOT NULL
);
INSERT INTO cloudftpd_bans_version (one, version) VALUES (true, 0);

-- Each changed row notifies channel cloudftpd_bans with its prefix, so a
-- node reads that one row again (delivered when the transaction commits).
-- +goose StatementBegin
CREATE FUNCTION cloudftpd_bans_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('cloudftpd_bans', OLD.prefix::text);
    ELSE
        PERFORM pg_notify('cloudftpd_bans', NEW.prefix::text);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER cloudftpd_bans_notify AFTER INSERT OR UPDATE OR DELETE ON cloudftpd_bans
    FOR EACH ROW EXECUTE FUNCTION cloudftpd_bans_notify();

-- The counter is bumped by a statement trigger, after the statement has
-- locked every row it changes: a row trigger would lock the counter while
-- the statement still waits for rows, and two such statements could wait
-- for each other. A TRUNCATE notifies with an empty payload: reload all.
-- +goose StatementBegin
CREATE FUNCTION cloudftpd_bans_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cloudftpd_bans_version SET version = version + 1;
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('cloudftpd_bans', '');
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER cloudftpd_bans_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cloudftpd_bans
    FOR EACH STATEMENT EXECUTE FUNCTION cloudftpd_bans_changed();

-- +goose Down
DROP TABLE cloudftpd_bans;
DROP TABLE cloudftpd_ban_scores;
DROP TABLE cloudftpd_bans_version;
DROP FUNCTION cloudftpd_bans_notify();
DROP FUNCTION cloudftpd_bans_changed();
