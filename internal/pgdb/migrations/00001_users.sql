-- Users of auth.store = "postgres" (internal/pgusers). One row per user,
-- the columns of a users-file [[user]] table; the limits keys are one JSON
-- document in the users file's key names, checked by cloudftpd as the
-- users file is (LimitsEntry.Parse), so the two stores share one schema.

-- +goose Up
CREATE TABLE cloudftpd_users (
    name          text PRIMARY KEY CHECK (name <> ''),
    password_hash text NOT NULL,
    home          text NOT NULL DEFAULT '',
    permissions   text[] NOT NULL,
    tls           text NOT NULL DEFAULT '' CHECK (tls IN ('', 'required', 'optional')),
    tls_data      text NOT NULL DEFAULT '' CHECK (tls_data IN ('', 'required', 'optional')),
    binary_only   boolean NOT NULL DEFAULT false,
    limits        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(limits) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The change counter every node polls: bumped once per statement that
-- changes cloudftpd_users, deletions included (which leave no updated_at
-- behind), and never going back (updated_at is a transaction's start
-- time, so a long transaction can commit an older one than already seen).
CREATE TABLE cloudftpd_users_version (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint NOT NULL
);
INSERT INTO cloudftpd_users_version (one, version) VALUES (true, 0);

-- +goose StatementBegin
CREATE FUNCTION cloudftpd_users_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER cloudftpd_users_touch BEFORE UPDATE ON cloudftpd_users
    FOR EACH ROW EXECUTE FUNCTION cloudftpd_users_touch();

-- Every change, made by cloudftpd or in SQL by hand, bumps the version and
-- notifies the nodes listening on channel cloudftpd_users; the
-- notification is delivered when the transaction commits.
-- +goose StatementBegin
CREATE FUNCTION cloudftpd_users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cloudftpd_users_version SET version = version + 1;
    PERFORM pg_notify('cloudftpd_users', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER cloudftpd_users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cloudftpd_users
    FOR EACH STATEMENT EXECUTE FUNCTION cloudftpd_users_changed();

-- +goose Down
DROP TABLE cloudftpd_users;
DROP TABLE cloudftpd_users_version;
DROP FUNCTION cloudftpd_users_touch();
DROP FUNCTION cloudftpd_users_changed();
