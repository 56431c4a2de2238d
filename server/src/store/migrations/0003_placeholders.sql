-- Relive schema, version 3: placeholder accounts.
-- A handle someone put on a list before it was registered gets an account row that cannot log
-- in (placeholder = 1: no password hash, no tokens, never listed, never found), so the list
-- model treats it like any account that never comes online and ADD answers alike for
-- registered and unregistered handles (no enumeration). Registering the handle turns the row
-- into a real account, keeping the lists that already name it (its RL shows who added it).
-- A placeholder nobody lists any more is deleted.

ALTER TABLE accounts ADD COLUMN placeholder INTEGER NOT NULL DEFAULT 0 CHECK (placeholder IN (0, 1));
