-- `jwtd keys rotate`: when set on the active key, the next key takes over as
-- soon as it has been published for key_prepublish, whatever the interval.
ALTER TABLE signing_keys ADD COLUMN rotate_requested_at INTEGER;
