-- Version 3: short-lived state every replica must see the same, kept out of the durable
-- log: request buckets, device challenge nonces and authentication failure counts.
-- UNLOGGED: a PostgreSQL crash empties them, which only refills the buckets, voids the
-- outstanding challenges (clients ask for new ones) and forgets failure counts.
CREATE UNLOGGED TABLE rate_buckets (
    k text COLLATE "C" PRIMARY KEY,
    tokens float8 NOT NULL,
    at_ms bigint NOT NULL,
    -- When the bucket is full again (a row past it is the same as no row).
    full_ms bigint NOT NULL,
    -- Whether the last spend was admitted (read back by the spending statement).
    ok boolean NOT NULL
);
CREATE INDEX rate_buckets_full ON rate_buckets (full_ms);
CREATE UNLOGGED TABLE challenges (
    nonce text COLLATE "C" PRIMARY KEY,
    scope text COLLATE "C",
    expire_ms bigint NOT NULL
);
CREATE INDEX challenges_scope ON challenges (scope);
CREATE INDEX challenges_expiry ON challenges (expire_ms);
CREATE UNLOGGED TABLE auth_failures (
    k text COLLATE "C" PRIMARY KEY,
    n integer NOT NULL,
    window_start_ms bigint NOT NULL
)
