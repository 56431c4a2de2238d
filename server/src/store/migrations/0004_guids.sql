-- Relive schema, version 4: GUIDs for the MSNP10+ address book (MSN 6.1 - 7.5).
-- MSNP10 names a contact in a list (C=) and a group by a GUID instead of a handle or a number.
-- Every contact row and every group gets a random version-4 GUID, kept for as long as the row
-- exists: the same contacts and groups MSNP2-9 clients see by handle and number, under names
-- that survive restarts. New rows get theirs from the triggers below, so every path that
-- inserts rows (lists, groups, account creation, bulk seeding) is covered.

ALTER TABLE groups ADD COLUMN guid TEXT;
ALTER TABLE contacts ADD COLUMN guid TEXT;

-- lower-case 8-4-4-4-12 hex, version nibble 4, variant nibble 8/9/a/b.
UPDATE groups SET guid =
    lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
    substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) ||
    substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)));
UPDATE contacts SET guid =
    lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
    substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) ||
    substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)));

CREATE UNIQUE INDEX groups_by_guid ON groups(account_id, guid);
CREATE UNIQUE INDEX contacts_by_guid ON contacts(owner_id, guid);

CREATE TRIGGER groups_guid AFTER INSERT ON groups WHEN NEW.guid IS NULL
BEGIN
    UPDATE groups SET guid =
        lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
        substr(lower(hex(randomblob(2))), 2) || '-' ||
        substr('89ab', 1 + (abs(random()) % 4), 1) ||
        substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))
    WHERE account_id = NEW.account_id AND group_id = NEW.group_id;
END;

CREATE TRIGGER contacts_guid AFTER INSERT ON contacts WHEN NEW.guid IS NULL
BEGIN
    UPDATE contacts SET guid =
        lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
        substr(lower(hex(randomblob(2))), 2) || '-' ||
        substr('89ab', 1 + (abs(random()) % 4), 1) ||
        substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))
    WHERE owner_id = NEW.owner_id AND contact_id = NEW.contact_id;
END;
