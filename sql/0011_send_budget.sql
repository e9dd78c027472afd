-- The bot-wide send budget of each channel (Telegram's ~30 messages a
-- second per bot, TELEGRAM_GLOBAL_PER_SECOND; WhatsApp's per business
-- number, WHATSAPP_PER_SECOND), shared by every `rivet serve` process on the
-- database. A sender that has claimed a message reserves the next slot with
-- one UPDATE in autocommit on a connection of its own (never inside the
-- claim transaction, which is held across the API call): the slot is
-- next_at, and next_at moves one interval on. So sends are spaced by the
-- interval across all processes however many there are; a slot reserved
-- and not used (the process stopped) is lost, never given twice. A
-- WhatsApp 130429 pushes next_at past the pause for every process.
CREATE TABLE send_budget (
    channel  text PRIMARY KEY CHECK (channel IN ('telegram', 'whatsapp')),
    next_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO send_budget (channel) VALUES ('telegram'), ('whatsapp');
