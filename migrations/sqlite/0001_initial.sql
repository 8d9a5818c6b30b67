-- Users who log in with a username and password.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,           -- argon2id PHC string
    is_active     INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    date_joined   INTEGER NOT NULL,           -- unix seconds
    last_login    INTEGER                     -- unix seconds; set when update_last_login is on
);

-- Signing keys and where each is in its life (SPEC section 5).
CREATE TABLE signing_keys (
    kid            TEXT    PRIMARY KEY,       -- RFC 7638 thumbprint
    alg            TEXT    NOT NULL CHECK (alg IN ('RS256', 'ES256')),
    state          TEXT    NOT NULL CHECK (state IN ('next', 'active', 'retiring', 'retired', 'revoked')),
    public_jwk     TEXT    NOT NULL,          -- public members only, as JSON
    sealed_private BLOB,                      -- AES-256-GCM under the master key; NULL once retired or revoked
    created_at     INTEGER NOT NULL,          -- created and published
    activated_at   INTEGER,                   -- started signing
    deactivated_at INTEGER,                   -- stopped signing
    retired_at     INTEGER,                   -- unpublished after its tokens expired
    revoked_at     INTEGER
);

-- At most one key signs at any instant, whatever number of processes write.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
-- At most one key waits to sign.
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';

-- A counter bumped by every change to signing_keys, so every process can
-- poll one row to learn that its in-memory key ring is stale.
CREATE TABLE key_set_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO key_set_version (id, version) VALUES (1, 0);

CREATE TRIGGER signing_keys_insert AFTER INSERT ON signing_keys
BEGIN UPDATE key_set_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER signing_keys_update AFTER UPDATE ON signing_keys
BEGIN UPDATE key_set_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER signing_keys_delete AFTER DELETE ON signing_keys
BEGIN UPDATE key_set_version SET version = version + 1 WHERE id = 1; END;
