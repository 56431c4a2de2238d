-- Relive schema, version 3 (PostgreSQL): placeholder accounts (see ../0003_placeholders.sql).

ALTER TABLE accounts ADD COLUMN placeholder BIGINT NOT NULL DEFAULT 0 CHECK (placeholder IN (0, 1));
