-- Version 4: more short-lived state every replica must see the same (UNLOGGED, as in
-- version 3): the channels' sends of the last hour (`maxMessagesPerHour`, per-recipient
-- `cooldownSeconds`), their health, and the windows of rate-limited security alerts.
CREATE UNLOGGED TABLE channel_sends (
    id bigserial PRIMARY KEY,
    channel text COLLATE "C" NOT NULL,
    to_key text COLLATE "C" NOT NULL,
    at_ms bigint NOT NULL
);
CREATE INDEX channel_sends_at ON channel_sends (channel, at_ms);
CREATE INDEX channel_sends_to ON channel_sends (channel, to_key, at_ms);
CREATE UNLOGGED TABLE alert_windows (
    k text COLLATE "C" PRIMARY KEY,
    start_ms bigint NOT NULL,
    -- Alerts suppressed in this window, and in the one before it (reported by the next).
    suppressed bigint NOT NULL,
    prev_suppressed bigint NOT NULL
);
CREATE INDEX alert_windows_start ON alert_windows (start_ms);
-- Each channel's last observed health (`GetChannel`), and whether it is connected (the
-- replica whose observation flips it reports the `connected` / `disconnected` event).
CREATE UNLOGGED TABLE channel_health (
    channel text COLLATE "C" PRIMARY KEY,
    ok boolean NOT NULL,
    last_error text NOT NULL,
    connected boolean,
    checked_ms bigint NOT NULL
);
