-- Signing keys may also be ES384, PS256 or EdDSA. SQLite cannot change a
-- CHECK constraint in place: the table is rebuilt with the same rows, and
-- its indexes and triggers are made again.
CREATE TABLE signing_keys_new (
    kid                 TEXT    PRIMARY KEY,  -- RFC 7638 thumbprint
    alg                 TEXT    NOT NULL CHECK (alg IN ('RS256', 'ES256', 'ES384', 'PS256', 'EdDSA')),
    state               TEXT    NOT NULL CHECK (state IN ('next', 'active', 'retiring', 'retired', 'revoked')),
    public_jwk          TEXT    NOT NULL,     -- public members only, as JSON
    sealed_private      BLOB,                 -- AES-256-GCM under the master key; NULL once retired or revoked
    created_at          INTEGER NOT NULL,     -- created and published
    activated_at        INTEGER,              -- started signing
    deactivated_at      INTEGER,              -- stopped signing
    retired_at          INTEGER,              -- unpublished after its tokens expired
    revoked_at          INTEGER,
    rotate_requested_at INTEGER               -- `jwtd keys rotate` asked for a rotation
);
INSERT INTO signing_keys_new (kid, alg, state, public_jwk, sealed_private, created_at,
                              activated_at, deactivated_at, retired_at, revoked_at,
                              rotate_requested_at)
    SELECT kid, alg, state, public_jwk, sealed_private, created_at,
           activated_at, deactivated_at, retired_at, revoked_at, rotate_requested_at
    FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_new RENAME TO signing_keys;

-- At most one key signs at any instant, whatever number of processes write.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
-- At most one key waits to sign.
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';

CREATE TRIGGER signing_keys_insert AFTER INSERT ON signing_keys
BEGIN UPDATE key_set_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER signing_keys_update AFTER UPDATE ON signing_keys
BEGIN UPDATE key_set_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER signing_keys_delete AFTER DELETE ON signing_keys
BEGIN UPDATE key_set_version SET version = version + 1 WHERE id = 1; END;
