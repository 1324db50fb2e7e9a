-- tollgate schema 0004 (PostgreSQL): the audit log's hash is no longer indexed.
-- A UNIQUE index on a hash puts every append on a random page of the index; nothing looks an entry
-- up by its hash (verification walks the chain by sequence, and each entry's hash covers the
-- previous one, so a duplicate cannot go unnoticed). PostgreSQL drops the constraint in place
-- (SQLite has to rebuild the table); the append-only triggers stay as they are.

ALTER TABLE audit_log DROP CONSTRAINT audit_log_hash_key;
