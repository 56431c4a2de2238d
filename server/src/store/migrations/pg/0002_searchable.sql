-- Relive schema, version 2 (PostgreSQL): the FND directory opt-in (see ../0002_searchable.sql).

ALTER TABLE accounts ADD COLUMN searchable BIGINT NOT NULL DEFAULT 0 CHECK (searchable IN (0, 1));
