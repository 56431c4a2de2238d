-- Relive schema, version 2: the FND directory opt-in.
-- An account appears in FND results only when its owner allowed it; off by default.

ALTER TABLE accounts ADD COLUMN searchable INTEGER NOT NULL DEFAULT 0 CHECK (searchable IN (0, 1));
