-- Relive schema, version 1: accounts, phone properties, groups, contacts and access tokens.
-- Applied inside one transaction by store::migrations; PRAGMA user_version records the result.

CREATE TABLE accounts (
    id                   INTEGER PRIMARY KEY,
    -- Lowercase MSN handle (validated by store::Email before it gets here).
    email                TEXT    NOT NULL UNIQUE,
    -- Friendly name in its URL-encoded wire form.
    friendly_name        TEXT    NOT NULL,
    -- bcrypt hash ($2b$...).
    password_hash        TEXT    NOT NULL,
    -- List version (MSNP2-9), bumped on every list or property change.
    list_version         INTEGER NOT NULL DEFAULT 0,
    gtc                  TEXT    NOT NULL DEFAULT 'A'  CHECK (gtc IN ('A', 'N')),
    blp                  TEXT    NOT NULL DEFAULT 'AL' CHECK (blp IN ('AL', 'BL')),
    -- Off by default: clients log in with access tokens.
    allow_password_login INTEGER NOT NULL DEFAULT 0 CHECK (allow_password_login IN (0, 1)),
    -- Passport member id (PUID) handed to MSNP8+ clients; random, unique.
    member_id            INTEGER NOT NULL UNIQUE,
    -- Unix seconds.
    created_at           INTEGER NOT NULL
);

CREATE TABLE account_phones (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    prop       TEXT    NOT NULL CHECK (prop IN ('PHH', 'PHW', 'PHM', 'MOB', 'MBE')),
    -- URL-encoded wire form.
    value      TEXT    NOT NULL,
    PRIMARY KEY (account_id, prop)
) WITHOUT ROWID;

CREATE TABLE groups (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- 0 is "Other Contacts", created with the account and never removed.
    group_id   INTEGER NOT NULL CHECK (group_id >= 0),
    -- URL-encoded wire form.
    name       TEXT    NOT NULL,
    PRIMARY KEY (account_id, group_id)
) WITHOUT ROWID;

CREATE TABLE contacts (
    owner_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    contact_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- The contact's name as stored in the owner's list (URL-encoded).
    friendly_name TEXT    NOT NULL,
    -- FL=1 AL=2 BL=4 RL=8. A row whose bits are all clear is deleted.
    lists         INTEGER NOT NULL CHECK (lists BETWEEN 1 AND 15),
    PRIMARY KEY (owner_id, contact_id)
) WITHOUT ROWID;

CREATE INDEX contacts_by_contact ON contacts(contact_id);

CREATE TABLE contact_groups (
    owner_id   INTEGER NOT NULL,
    contact_id INTEGER NOT NULL,
    group_id   INTEGER NOT NULL,
    PRIMARY KEY (owner_id, contact_id, group_id),
    FOREIGN KEY (owner_id, contact_id) REFERENCES contacts(owner_id, contact_id) ON DELETE CASCADE,
    FOREIGN KEY (owner_id, group_id) REFERENCES groups(account_id, group_id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    label        TEXT    NOT NULL,
    -- ChaCha20-Poly1305 under the server key, account id as associated data.
    nonce        BLOB    NOT NULL,
    ciphertext   BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE INDEX tokens_by_account ON tokens(account_id);
