-- Named API keys with a scope. Only the SHA-256 of each secret is kept (keys are 192 random
-- bits, so a fast digest is enough), plus a short prefix to tell keys apart in a list.
-- Same conventions as 0001: timestamps are fixed-width RFC 3339 text, ids UUID text.
CREATE TABLE api_keys (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    scope      text NOT NULL,
    key_hash   text NOT NULL UNIQUE,
    prefix     text NOT NULL,
    created_at text NOT NULL,
    revoked_at text
);

-- A name is unique among the keys in use; a revoked key's name may be reused.
CREATE UNIQUE INDEX api_keys_active_name_idx ON api_keys (name) WHERE revoked_at IS NULL;
