-- tollgate schema 0011: the per-client login throttle, shared by every node on the database.
-- One row per client address (an IPv6 /64 counts as one): when its window began and how many
-- failure slots it holds. A slot is taken before the password is checked and given back when the
-- login succeeds, so concurrent attempts from one client cannot pass the limit together.

CREATE TABLE login_throttle (
    client         TEXT    PRIMARY KEY CHECK (char_length(client) BETWEEN 1 AND 64),
    window_started BIGINT  NOT NULL,
    failures       INTEGER NOT NULL CHECK (failures >= 0)
);

CREATE INDEX login_throttle_window ON login_throttle (window_started);
