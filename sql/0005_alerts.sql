-- Plant alarms: the devices that publish telemetry over MQTT, each
-- factory's alert rules, the alarms they raise, who receives them and what
-- each recipient was sent. As everywhere, tenant rows carry factory_id and
-- their foreign keys include it.

-- Per-factory settings of the alert thread.
ALTER TABLE factories
    -- An unknown device key in this factory's topics is registered (true)
    -- or its messages dropped (false).
    ADD COLUMN devices_auto_register boolean NOT NULL DEFAULT true,
    -- A device silent this long raises an "offline" alarm; 0: never.
    ADD COLUMN device_offline_s integer NOT NULL DEFAULT 600
        CHECK (device_offline_s = 0 OR device_offline_s BETWEEN 10 AND 2592000),
    -- A critical alarm nobody acknowledged this long goes to the
    -- supervisors, once; 0: never.
    ADD COLUMN escalate_after_s integer NOT NULL DEFAULT 900
        CHECK (escalate_after_s = 0 OR escalate_after_s BETWEEN 1 AND 2592000),
    -- A flood of random device keys stops here.
    ADD COLUMN max_devices integer NOT NULL DEFAULT 10000
        CHECK (max_devices BETWEEN 0 AND 1000000);

CREATE TABLE devices (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id    bigint NOT NULL REFERENCES factories(id),
    key           text NOT NULL CHECK (key ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    -- The machine technicians know it as, when linked.
    equipment_id  bigint,
    -- Metric names seen in its telemetry (sorted, at most 256).
    parameters    text[] NOT NULL DEFAULT '{}',
    last_seen     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (factory_id, key),
    UNIQUE (factory_id, id),
    FOREIGN KEY (factory_id, equipment_id) REFERENCES equipment (factory_id, id)
);
CREATE INDEX devices_equipment ON devices (factory_id, equipment_id)
    WHERE equipment_id IS NOT NULL;

-- A rule as its author wrote it (definition: condition tree, device scope,
-- schedule, cooldown), checked by Rivet before it is stored. name,
-- severity and active are columns because lists and switches use them.
CREATE TABLE alert_rules (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id  bigint NOT NULL REFERENCES factories(id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    severity    text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    definition  jsonb NOT NULL CHECK (jsonb_typeof(definition) = 'object'),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (factory_id, name),
    UNIQUE (factory_id, id)
);

-- source: 'rule' (rule_id set), 'device' (the device's own alarm topic,
-- with its code) or 'offline' (silence past device_offline_s).
CREATE TABLE alarms (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id       bigint NOT NULL REFERENCES factories(id),
    device_id        bigint NOT NULL,
    rule_id          bigint,
    source           text NOT NULL CHECK (source IN ('rule', 'device', 'offline')),
    code             text CHECK (length(code) <= 64),
    severity         text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    message          text NOT NULL CHECK (length(message) BETWEEN 1 AND 1000),
    snapshot         jsonb NOT NULL DEFAULT '{}'::jsonb,
    observed_at      timestamptz NOT NULL,   -- the telemetry's timestamp
    created_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  bigint,
    resolved_at      timestamptz,
    resolved_by      bigint,                 -- NULL when resolved: by Rivet (back online)
    escalated_at     timestamptz,
    work_order_id    bigint,
    UNIQUE (factory_id, id),
    CHECK ((source = 'rule') = (rule_id IS NOT NULL)),
    FOREIGN KEY (factory_id, device_id) REFERENCES devices (factory_id, id),
    FOREIGN KEY (factory_id, rule_id) REFERENCES alert_rules (factory_id, id),
    FOREIGN KEY (factory_id, acknowledged_by) REFERENCES users (factory_id, id),
    FOREIGN KEY (factory_id, resolved_by) REFERENCES users (factory_id, id),
    FOREIGN KEY (factory_id, work_order_id) REFERENCES work_orders (factory_id, id)
);
-- A telemetry message the broker delivers again (Rivet was killed before
-- acknowledging it) records nothing new.
CREATE UNIQUE INDEX alarms_rule_once ON alarms (factory_id, rule_id, device_id, observed_at)
    WHERE rule_id IS NOT NULL;
-- A device has at most one open offline alarm, and one open alarm per code
-- (an alarm without a code: per message).
CREATE UNIQUE INDEX alarms_device_open ON alarms (factory_id, device_id, source,
    (CASE WHEN source = 'device' AND code IS NULL THEN 'm:' || md5(message)
          ELSE coalesce(code, '') END))
    WHERE resolved_at IS NULL AND source IN ('device', 'offline');
CREATE INDEX alarms_cooldown ON alarms (factory_id, rule_id, device_id, observed_at DESC)
    WHERE rule_id IS NOT NULL;
CREATE INDEX alarms_open ON alarms (factory_id, id DESC) WHERE resolved_at IS NULL;
CREATE INDEX alarms_unescalated ON alarms (created_at)
    WHERE severity = 'critical' AND acknowledged_at IS NULL AND resolved_at IS NULL
      AND escalated_at IS NULL;

-- What a user asked to receive. device_id NULL: every device. A row for a
-- device wins over the factory-wide row; no row at all means high and
-- critical alarms of every device. 'off': nothing.
CREATE TABLE alarm_subscriptions (
    factory_id    bigint NOT NULL,
    user_id       bigint NOT NULL,
    device_id     bigint,
    min_severity  text NOT NULL CHECK (min_severity IN ('low', 'medium', 'high', 'critical', 'off')),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (factory_id, user_id, device_id),
    FOREIGN KEY (factory_id, user_id) REFERENCES users (factory_id, id),
    FOREIGN KEY (factory_id, device_id) REFERENCES devices (factory_id, id)
);

-- /mute: nothing from the device (device_id NULL: from any) until then.
CREATE TABLE alarm_mutes (
    factory_id  bigint NOT NULL,
    user_id     bigint NOT NULL,
    device_id   bigint,
    until       timestamptz NOT NULL,
    UNIQUE NULLS NOT DISTINCT (factory_id, user_id, device_id),
    FOREIGN KEY (factory_id, user_id) REFERENCES users (factory_id, id),
    FOREIGN KEY (factory_id, device_id) REFERENCES devices (factory_id, id)
);

-- One row per alarm and recipient: which chat got it and through which
-- outbox row, so that acknowledging edits every copy. state 'held': part
-- of a storm, waiting to go out in one summary ('summarized').
CREATE TABLE alarm_deliveries (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id  bigint NOT NULL,
    alarm_id    bigint NOT NULL,
    user_id     bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('alarm', 'escalation')),
    channel     text NOT NULL,
    chat_id     text NOT NULL,
    state       text NOT NULL CHECK (state IN ('queued', 'held', 'summarized')),
    outbox_id   bigint REFERENCES outbox (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (alarm_id, user_id, kind, channel),
    FOREIGN KEY (factory_id, alarm_id) REFERENCES alarms (factory_id, id),
    FOREIGN KEY (factory_id, user_id) REFERENCES users (factory_id, id)
);
CREATE INDEX alarm_deliveries_alarm ON alarm_deliveries (factory_id, alarm_id);
CREATE INDEX alarm_deliveries_held ON alarm_deliveries (channel, chat_id, created_at)
    WHERE state = 'held';
