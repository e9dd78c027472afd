-- Plain words: what a message of Rivet's was about (so that a reply to it
-- carries that context), work orders proposed from a sentence, photos
-- attached to work orders, and the troubleshooting assistant's calls.

-- What a delivered message shows, with the factory it was written for:
-- 'wo:12:WO-2026-000012', 'eq:12:EQ-2026-000003', 'alarm:12:17',
-- 'draft:12:5'. A reply to the message is read in that context.
ALTER TABLE outbox ADD COLUMN context text
    CHECK (context ~ '^[a-z]{1,8}:[0-9]{1,19}:[A-Za-z0-9-]{1,40}$');

-- A work order proposed from a message in plain words ("pump 3 on line 2
-- is leaking"). Nothing is created until its proposer taps Create; a
-- proposal is good for a day. equipment_id is NULL while the machine is
-- still to be chosen.
CREATE TABLE wo_drafts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id    bigint NOT NULL REFERENCES factories(id),
    user_id       bigint NOT NULL,
    equipment_id  bigint,
    title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    priority      text NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    description   text NOT NULL CHECK (length(description) <= 4000),
    status        text NOT NULL DEFAULT 'proposed'
                  CHECK (status IN ('proposed', 'created', 'cancelled')),
    work_order_id bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz,
    UNIQUE (factory_id, id),
    FOREIGN KEY (factory_id, user_id) REFERENCES users (factory_id, id),
    FOREIGN KEY (factory_id, equipment_id) REFERENCES equipment (factory_id, id),
    FOREIGN KEY (factory_id, work_order_id) REFERENCES work_orders (factory_id, id)
);

-- Photos sent in reply to a work order. The image stays with the channel
-- (Telegram file_id, WhatsApp media id); Rivet keeps the reference.
CREATE TABLE work_order_photos (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id     bigint NOT NULL,
    work_order_id  bigint NOT NULL,
    user_id        bigint NOT NULL,
    channel        text NOT NULL,
    file_id        text NOT NULL CHECK (length(file_id) <= 300),
    caption        text CHECK (length(caption) <= 1024),
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (factory_id, work_order_id) REFERENCES work_orders (factory_id, id),
    FOREIGN KEY (factory_id, user_id) REFERENCES users (factory_id, id)
);
CREATE INDEX work_order_photos_wo ON work_order_photos (factory_id, work_order_id);

ALTER TABLE work_order_events DROP CONSTRAINT work_order_events_kind_check;
ALTER TABLE work_order_events ADD CONSTRAINT work_order_events_kind_check
    CHECK (kind IN ('created', 'status', 'note', 'assign', 'edit', 'photo'));

-- A machine's alarms (the assistant's context, "any alarms on chiller 1")
-- without reading every alarm of the factory.
CREATE INDEX alarms_device ON alarms (factory_id, device_id, id DESC);

-- Each question put to the troubleshooting assistant: the rate limits and
-- the monthly budget are counted from here.
CREATE TABLE llm_calls (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id         bigint NOT NULL REFERENCES factories(id),
    user_id            bigint NOT NULL,
    at                 timestamptz NOT NULL DEFAULT now(),
    ok                 boolean NOT NULL,
    provider           text CHECK (length(provider) <= 32),
    model              text CHECK (length(model) <= 128),
    ms                 integer NOT NULL DEFAULT 0,
    prompt_tokens      integer NOT NULL DEFAULT 0,
    completion_tokens  integer NOT NULL DEFAULT 0,
    cost_usd           numeric(12, 6) NOT NULL DEFAULT 0,
    FOREIGN KEY (factory_id, user_id) REFERENCES users (factory_id, id)
);
CREATE INDEX llm_calls_factory_at ON llm_calls (factory_id, at);
CREATE INDEX llm_calls_user_at ON llm_calls (user_id, at);
