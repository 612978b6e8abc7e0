-- Version 2: replicas. Each serving process registers itself and heartbeats on
-- PostgreSQL's clock; a session's runs are executed by the replica that owns it.
CREATE TABLE replicas (id text COLLATE "C" PRIMARY KEY, seen_ms bigint NOT NULL);
CREATE TABLE session_owners (
    session_key text COLLATE "C" PRIMARY KEY,
    replica text COLLATE "C" NOT NULL
);
CREATE INDEX session_owners_replica ON session_owners (replica);
-- Duties one replica performs at a time (the heartbeat schedule, the relay, each egress
-- endpoint); free when the holder is no longer in `replicas`.
CREATE TABLE leases (
    name text COLLATE "C" PRIMARY KEY,
    replica text COLLATE "C" NOT NULL
);
