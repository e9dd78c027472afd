-- The channels' durable queues. An update is written to the inbox before
-- the poller confirms it to Telegram; a worker handles it and writes the
-- replies to the outbox in the same transaction as the change it made; a
-- sender delivers the outbox. A crash between any two steps loses nothing
-- and repeats nothing. These are transport tables, keyed by chat, not by
-- factory: a chat's rows are read only to deliver that chat's messages.

-- One row per chat Rivet has talked to: its kind (for rate limits), whether
-- it still accepts messages (a user who blocked the bot does not), and the
-- earliest moment the next message may go out (rate limits, 429).
CREATE TABLE chats (
    channel       text NOT NULL CHECK (channel IN ('telegram', 'whatsapp')),
    chat_id       text NOT NULL,
    kind          text NOT NULL DEFAULT 'private'
                  CHECK (kind IN ('private', 'group', 'supergroup', 'channel')),
    active        boolean NOT NULL DEFAULT true,
    next_send_at  timestamptz NOT NULL DEFAULT '-infinity',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, chat_id)
);

CREATE TABLE inbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel      text NOT NULL,
    external_id  text NOT NULL,           -- Telegram update_id
    chat_id      text NOT NULL,           -- '' when the update has no chat
    payload      text NOT NULL,           -- the update as received (JSON)
    received_at  timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    not_before   timestamptz NOT NULL DEFAULT '-infinity',
    handled_at   timestamptz,
    outcome      text,
    UNIQUE (channel, external_id)
);
-- The oldest unhandled update of each chat is the only one a worker may
-- claim, which keeps each chat in order while chats run in parallel.
CREATE INDEX inbox_pending ON inbox (channel, chat_id, id) WHERE handled_at IS NULL;

CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel      text NOT NULL,
    chat_id      text NOT NULL,
    method       text NOT NULL CHECK (method IN ('sendMessage', 'editMessageText')),
    payload      text NOT NULL,           -- the method's parameters (JSON)
    inbox_id     bigint REFERENCES inbox (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    due_at       timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    sent_at      timestamptz,
    failed_at    timestamptz,
    last_error   text,
    remote_id    text                     -- Telegram message_id
);
CREATE INDEX outbox_pending ON outbox (channel, chat_id, id)
    WHERE sent_at IS NULL AND failed_at IS NULL;

-- Where each channel's receiving left off (Telegram's getUpdates offset).
CREATE TABLE channel_state (
    channel      text PRIMARY KEY,
    poll_offset  bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
