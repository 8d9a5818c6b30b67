-- A counter bumped by every change to a user that requests depend on
-- (name, password, active flag, deletion; not last_login), so a server
-- can poll one row to learn that its cache of users is stale.
CREATE TABLE users_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO users_version (id, version) VALUES (1, 0);

CREATE TRIGGER users_update AFTER UPDATE OF username, password_hash, is_active ON users
BEGIN UPDATE users_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER users_delete AFTER DELETE ON users
BEGIN UPDATE users_version SET version = version + 1 WHERE id = 1; END;
