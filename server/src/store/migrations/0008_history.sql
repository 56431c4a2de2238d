-- Relive schema: message history (opt-in, off by default).
-- One row in history_settings per account that ever chose; no row means off. A conversation
-- is one switchboard session as one member saw it: every member gets their own conversation
-- and message rows, so each deletes only their own copy. The text (with the sender's friendly
-- name) is sealed with ChaCha20-Poly1305 under a per-account key derived from the server key
-- (HKDF-SHA256); the sender's handle, the times and the participants' handles are plaintext
-- metadata. Rows go with the account (ON DELETE CASCADE).

CREATE TABLE history_settings (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    enabled    INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    changed_at INTEGER NOT NULL
);

CREATE TABLE history_conversations (
    id           INTEGER PRIMARY KEY,
    owner_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- Random per switchboard session (session ids repeat across restarts).
    room_key     INTEGER NOT NULL,
    -- Space-separated handles of everyone recorded as present, sorted.
    participants TEXT    NOT NULL,
    -- Unix seconds of the first and the latest recorded message.
    started_at   INTEGER NOT NULL,
    last_at      INTEGER NOT NULL,
    UNIQUE (owner_id, room_key)
);

CREATE INDEX history_conversations_by_owner ON history_conversations(owner_id, last_at);

CREATE TABLE history_messages (
    -- Assigned by the writer (largest + 1) so the associated data can bind it.
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES history_conversations(id) ON DELETE CASCADE,
    owner_id        INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    sender          TEXT    NOT NULL,
    sent_at         INTEGER NOT NULL,
    -- 96-bit nonce and ChaCha20-Poly1305 ciphertext of {"name", "text"} (JSON).
    nonce           BLOB    NOT NULL,
    ciphertext      BLOB    NOT NULL
);

CREATE INDEX history_messages_by_conversation ON history_messages(conversation_id, id);
CREATE INDEX history_messages_by_owner ON history_messages(owner_id, id);
