-- Relive schema, version 4 (PostgreSQL): GUIDs for the MSNP10+ address book (see
-- ../0004_guids.sql). SQLite fills them with triggers; here a volatile column default gives every
-- existing and new row its own lower-case version-4 GUID.

ALTER TABLE groups ADD COLUMN guid TEXT COLLATE "C" DEFAULT gen_random_uuid()::text;
ALTER TABLE contacts ADD COLUMN guid TEXT COLLATE "C" DEFAULT gen_random_uuid()::text;

CREATE UNIQUE INDEX groups_by_guid ON groups(account_id, guid);
CREATE UNIQUE INDEX contacts_by_guid ON contacts(owner_id, guid);
