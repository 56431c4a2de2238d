-- Relive schema, version 6: password reset codes.
-- The server sends no mail, so an admin issues a one-time code (admin page, `/api/`, or
-- `relive-server user reset-code EMAIL`) and hands it to the account's owner, who sets a new
-- password with it on `/reset`. One code per account (a new one replaces the old), stored as
-- the SHA-256 of the code, valid until `expires_at`, deleted when used or with the account.

CREATE TABLE reset_codes (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    -- SHA-256 of the normalised code, hex.
    code_hash  TEXT    NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
