-- Refresh-token families: one per login. Reuse of a rotated-away refresh
-- token revokes its whole family.
CREATE TABLE token_families (
    id         TEXT    PRIMARY KEY,           -- 32 hex characters
    user_id    INTEGER NOT NULL,              -- no foreign key: a deleted user's tokens stay
    created_at INTEGER NOT NULL,
    revoked_at INTEGER                        -- set when reuse was detected
);

-- Every refresh and sliding token issued, by jti (never the token text).
CREATE TABLE outstanding_tokens (
    jti         TEXT    PRIMARY KEY,
    user_id     INTEGER NOT NULL,             -- refused at refresh once the user is gone
    token_type  TEXT    NOT NULL CHECK (token_type IN ('refresh', 'sliding')),
    family_id   TEXT    REFERENCES token_families (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,             -- exp (refresh) or refresh_exp (sliding)
    rotated_at  INTEGER,                      -- when a refresh replaced it
    replaced_by TEXT                          -- the jti that replaced it
);
CREATE INDEX outstanding_tokens_user ON outstanding_tokens (user_id);
CREATE INDEX outstanding_tokens_family ON outstanding_tokens (family_id);
CREATE INDEX outstanding_tokens_expires ON outstanding_tokens (expires_at);

-- Tokens that may no longer be used.
CREATE TABLE blacklisted_tokens (
    jti            TEXT    PRIMARY KEY REFERENCES outstanding_tokens (jti) ON DELETE CASCADE,
    blacklisted_at INTEGER NOT NULL
);
