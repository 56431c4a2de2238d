-- Relive schema, version 6 (PostgreSQL): password reset codes (see ../0006_reset_codes.sql).

CREATE TABLE reset_codes (
    account_id BIGINT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    code_hash  TEXT   COLLATE "C" NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
