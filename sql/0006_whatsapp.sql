-- WhatsApp: the second chat channel, and one identity across channels.

-- WhatsApp rows are Graph API message bodies (method 'messages').
ALTER TABLE outbox DROP CONSTRAINT outbox_method_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_method_check
    CHECK (method IN ('sendMessage', 'editMessageText', 'messages'));

-- What the channel reported after accepting a message (WhatsApp statuses:
-- sent, delivered, read, failed), with the error of a failure. A status
-- never goes back (read stays read when a late 'delivered' arrives).
ALTER TABLE outbox ADD COLUMN remote_status text
    CHECK (remote_status IN ('sent', 'delivered', 'read', 'failed'));
ALTER TABLE outbox ADD COLUMN remote_status_at timestamptz;
ALTER TABLE outbox ADD COLUMN remote_error text CHECK (length(remote_error) <= 300);
CREATE INDEX outbox_remote ON outbox (channel, remote_id) WHERE remote_id IS NOT NULL;

-- When the chat's user last wrote: WhatsApp lets a business send free-form
-- messages for 24 hours after that, and only templates outside. A table of
-- its own, not a column of chats: a sender holds its chat's row locked
-- while it sends, and a webhook must never wait for that.
CREATE TABLE chat_windows (
    channel          text NOT NULL,
    chat_id          text NOT NULL,
    last_inbound_at  timestamptz NOT NULL,
    PRIMARY KEY (channel, chat_id)
);

-- One-time codes that attach a second channel to a user (/link): only the
-- SHA-256 is stored, like invites. A code is good for 10 minutes, once.
CREATE TABLE link_codes (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id   bigint NOT NULL,
    user_id      bigint NOT NULL,
    code_sha256  text NOT NULL UNIQUE CHECK (code_sha256 ~ '^[0-9a-f]{64}$'),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (factory_id, user_id) REFERENCES users (factory_id, id)
);
CREATE INDEX link_codes_user ON link_codes (factory_id, user_id);

-- Failed /link CODE attempts per sender of a channel, against guessing:
-- at most 5 in the hour from the first one. Keyed by the channel's sender
-- id (a stranger has no user), like chats; rows older than the hour are
-- cleared as new attempts come.
CREATE TABLE link_attempts (
    channel       text NOT NULL CHECK (channel IN ('telegram', 'whatsapp')),
    sender_id     text NOT NULL CHECK (length(sender_id) BETWEEN 1 AND 64),
    window_start  timestamptz NOT NULL DEFAULT now(),
    failures      integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    PRIMARY KEY (channel, sender_id)
);
CREATE INDEX link_attempts_window ON link_attempts (window_start);
