-- Relive schema, version 5: the website.
-- Accounts get an admin flag (`relive-server user admin EMAIL`) and a disabled flag (an admin
-- can stop an account logging in without deleting it). Tokens remember the class of address
-- they were last used from (loopback, private, public; never the address itself). Website
-- sessions and admin API keys are stored as SHA-256 hashes of their random values, so a copy
-- of the database does not sign anyone in. Invite codes gate registration when the operator
-- asks for them.

ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1));
ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));
ALTER TABLE tokens ADD COLUMN last_address_class TEXT;

CREATE TABLE web_sessions (
    -- SHA-256 of the cookie value, hex.
    id_hash    TEXT    PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX web_sessions_by_account ON web_sessions(account_id);

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    -- SHA-256 of the key, hex.
    key_hash   TEXT    NOT NULL UNIQUE,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    label      TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE invite_codes (
    code       TEXT    PRIMARY KEY,
    created_by INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    used_by    TEXT,
    used_at    INTEGER
) WITHOUT ROWID;
