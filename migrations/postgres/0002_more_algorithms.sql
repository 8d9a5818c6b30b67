-- Signing keys may also be ES384, PS256 or EdDSA.
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_alg_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_alg_check
    CHECK (alg IN ('RS256', 'ES256', 'ES384', 'PS256', 'EdDSA'));
