-- Failed /start CODE attempts per sender, against guessing invite codes:
-- at most 5 in the 15 minutes from the first one (handlers/start.c). Keyed
-- by the channel and the channel's sender id, as link_attempts is, since a
-- stranger has no user yet; the console is a channel here too. Counted in
-- the database, so the limit holds across processes and restarts; rows
-- whose window has passed are cleared as new attempts come.
CREATE TABLE invite_attempts (
    channel       text NOT NULL CHECK (channel IN ('console', 'telegram', 'whatsapp')),
    sender_id     text NOT NULL CHECK (length(sender_id) BETWEEN 1 AND 256),
    window_start  timestamptz NOT NULL DEFAULT now(),
    failures      integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    PRIMARY KEY (channel, sender_id)
);
CREATE INDEX invite_attempts_window ON invite_attempts (window_start);
