-- Relive schema, version 7: the local mailboxes and the pager inbox (issue 18).
--
-- Mail: one row per owner's copy. Sending writes the recipient's Inbox copy and the sender's
-- Sent copy, so each deletes their own. Deleting moves a copy to 'deleted'; deleting it there
-- removes the row. Mail only goes between accounts of this server (no SMTP).
CREATE TABLE mail_messages (
    id         INTEGER PRIMARY KEY,
    owner_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    folder     TEXT    NOT NULL CHECK (folder IN ('inbox', 'sent', 'deleted')),
    -- Handles as text, so a copy outlives the other party's account.
    from_addr  TEXT    NOT NULL,
    from_name  TEXT    NOT NULL,
    to_addr    TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    -- Unix seconds.
    created_at INTEGER NOT NULL,
    -- NULL while unread (a Sent copy is created read).
    read_at    INTEGER
);

CREATE INDEX mail_by_owner ON mail_messages(owner_id, folder, read_at);

-- Pages (PAG/PGD) to an account: the server is the pager device. Kept until the recipient
-- deletes them on the website; delivered_at is set once a client got it as IPG.
CREATE TABLE pages (
    id           INTEGER PRIMARY KEY,
    to_id        INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- The sender's id for the rate limit (NULL once that account is gone) and handle to show.
    from_id      INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    from_addr    TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    callback_loc TEXT,
    callback_num TEXT,
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER
);

CREATE INDEX pages_by_recipient ON pages(to_id, delivered_at);
CREATE INDEX pages_by_sender ON pages(from_id, created_at);
