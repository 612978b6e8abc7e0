-- clawplane on PostgreSQL, schema version 1. Applied once, under an advisory lock, by the
-- first replica that starts; every value column holds the same encoding redb stores
-- (protobuf, or JSON for the small internal rows), so the two backends read alike.
-- Keys compare bytewise (COLLATE "C"), as redb's do: listings come out in the same order.

CREATE TABLE meta (k text COLLATE "C" PRIMARY KEY, v bigint NOT NULL);
INSERT INTO meta (k, v) VALUES ('last_seq', 0), ('sessions', 0), ('run_order', 1), ('webhook_call', 1);

CREATE TABLE runs (
    run_id text COLLATE "C" PRIMARY KEY,
    ord bigint NOT NULL UNIQUE,
    session_key text COLLATE "C" NOT NULL,
    active boolean NOT NULL,
    data bytea NOT NULL
);
CREATE INDEX runs_session ON runs (session_key, ord);
CREATE INDEX runs_active ON runs (ord) WHERE active;

CREATE TABLE idempotency (
    key text COLLATE "C" PRIMARY KEY,
    fingerprint bytea NOT NULL,
    run_id text COLLATE "C" NOT NULL
);
CREATE INDEX idempotency_run ON idempotency (run_id);

CREATE TABLE sessions (key text COLLATE "C" PRIMARY KEY, data bytea NOT NULL);
CREATE TABLE messages (
    session_id text COLLATE "C" NOT NULL,
    idx bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (session_id, idx)
);
CREATE TABLE events (seq bigint PRIMARY KEY, data bytea NOT NULL);
CREATE TABLE system_events (session_key text COLLATE "C" PRIMARY KEY, data bytea NOT NULL);
CREATE TABLE settings (k text COLLATE "C" PRIMARY KEY, v text NOT NULL);
CREATE TABLE webhook_keys (key_id text COLLATE "C" PRIMARY KEY, digest bytea NOT NULL, data bytea NOT NULL);
CREATE TABLE webhook_calls (n bigint PRIMARY KEY, data bytea NOT NULL);
CREATE TABLE devices (device_id text COLLATE "C" PRIMARY KEY, data bytea NOT NULL);
CREATE TABLE pairing_requests (request_id text COLLATE "C" PRIMARY KEY, data bytea NOT NULL);
CREATE TABLE device_tokens (
    digest bytea PRIMARY KEY,
    device_id text COLLATE "C" NOT NULL,
    role text COLLATE "C" NOT NULL,
    data bytea NOT NULL
);
CREATE INDEX device_tokens_device ON device_tokens (device_id, role);
CREATE TABLE records (
    kind text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    data bytea NOT NULL,
    written_ms bigint,
    PRIMARY KEY (kind, key)
);
CREATE INDEX records_age ON records (kind, written_ms) WHERE written_ms IS NOT NULL;
