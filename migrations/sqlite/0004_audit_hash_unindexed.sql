-- tollgate schema 0004: the audit log's hash is no longer indexed.
-- A UNIQUE index on a hash puts every append on a random page of the index, which each group commit
-- then writes and flushes; nothing looks an entry up by its hash (verification walks the chain by
-- sequence, and each entry's hash covers the previous one, so a duplicate cannot go unnoticed).
-- SQLite cannot drop the automatic index of a column constraint, so the table is rebuilt. DROP TABLE
-- fires no DELETE trigger, and the triggers are created again on the new table.

CREATE TABLE audit_log_rebuilt (
    sequence      INTEGER PRIMARY KEY CHECK (sequence >= 1),
    actor         TEXT    NOT NULL CHECK (length(actor) BETWEEN 1 AND 64),
    action        TEXT    NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target        TEXT    NOT NULL CHECK (length(target) <= 256),
    before        TEXT    CHECK (before IS NULL OR json_valid(before)),
    after         TEXT    CHECK (after IS NULL OR json_valid(after)),
    reason        TEXT    CHECK (reason IS NULL OR length(reason) <= 1024),
    ip            TEXT,
    at            INTEGER NOT NULL,
    previous_hash BLOB    NOT NULL CHECK (length(previous_hash) = 32),
    hash          BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

INSERT INTO audit_log_rebuilt (sequence, actor, action, target, before, after, reason, ip, at, previous_hash, hash)
SELECT sequence, actor, action, target, before, after, reason, ip, at, previous_hash, hash FROM audit_log;

DROP TABLE audit_log;
ALTER TABLE audit_log_rebuilt RENAME TO audit_log;

CREATE INDEX audit_log_actor ON audit_log (actor, sequence);
CREATE INDEX audit_log_target ON audit_log (target, sequence);
CREATE INDEX audit_log_at ON audit_log (at);

-- The audit log is append-only in the database itself, whoever connects.
CREATE TRIGGER audit_log_refuses_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_log_refuses_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;
