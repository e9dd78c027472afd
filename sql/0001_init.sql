-- Rivet's first schema: tenants, people, invites, equipment, work orders.
-- Every table with tenant data carries factory_id, and the foreign keys
-- between tenant tables include it, so a row can never point into another
-- factory even if a query forgot to check.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE factories (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone    text NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id       bigint NOT NULL REFERENCES factories(id),
    display_name     text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    role             text NOT NULL CHECK (role IN ('technician', 'supervisor', 'admin')),
    telegram_user_id bigint UNIQUE,
    whatsapp_id      text UNIQUE,
    console_name     text UNIQUE,
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (factory_id, id)
);
CREATE INDEX users_factory_name ON users (factory_id, lower(display_name));

-- Only the SHA-256 of an invite code is stored: a copy of the database
-- does not let anyone join a factory.
CREATE TABLE invites (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id  bigint NOT NULL REFERENCES factories(id),
    code_sha256 text NOT NULL UNIQUE,
    role        text NOT NULL CHECK (role IN ('technician', 'supervisor', 'admin')),
    uses_left   integer NOT NULL CHECK (uses_left >= 0),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Per-factory, per-year counters behind EQ-YYYY-NNNNNN and WO-YYYY-NNNNNN.
-- INSERT .. ON CONFLICT DO UPDATE takes a row lock, so concurrent
-- transactions get consecutive numbers; a rolled back one gives its back.
CREATE TABLE number_sequences (
    factory_id  bigint NOT NULL REFERENCES factories(id),
    kind        text NOT NULL CHECK (kind IN ('EQ', 'WO')),
    year        integer NOT NULL,
    last        bigint NOT NULL,
    PRIMARY KEY (factory_id, kind, year)
);

CREATE TABLE equipment (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id    bigint NOT NULL REFERENCES factories(id),
    number        text NOT NULL,
    name          text CHECK (length(name) <= 200),
    manufacturer  text NOT NULL CHECK (length(manufacturer) BETWEEN 1 AND 200),
    model         text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
    serial        text CHECK (length(serial) <= 200),
    location      text CHECK (length(location) <= 200),
    criticality   text NOT NULL DEFAULT 'medium'
                  CHECK (criticality IN ('low', 'medium', 'high', 'critical')),
    nameplate     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by    bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- What fuzzy search looks at, lower-cased once at write time.
    search_text   text GENERATED ALWAYS AS (
                      lower(manufacturer || ' ' || model || ' ' || coalesce(name, '') || ' '
                            || coalesce(serial, '') || ' ' || coalesce(location, ''))) STORED,
    UNIQUE (factory_id, number),
    UNIQUE (factory_id, id),
    FOREIGN KEY (factory_id, created_by) REFERENCES users (factory_id, id)
);
CREATE INDEX equipment_search_trgm ON equipment USING gin (search_text gin_trgm_ops);
CREATE INDEX equipment_factory_created ON equipment (factory_id, created_at DESC, id DESC);

CREATE TABLE work_orders (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id    bigint NOT NULL REFERENCES factories(id),
    number        text NOT NULL,
    equipment_id  bigint NOT NULL,
    title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description   text CHECK (length(description) <= 4000),
    status        text NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'in_progress', 'on_hold', 'completed', 'cancelled')),
    priority      text NOT NULL DEFAULT 'medium'
                  CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    assignee_id   bigint,
    created_by    bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    completed_by  bigint,
    UNIQUE (factory_id, number),
    UNIQUE (factory_id, id),
    FOREIGN KEY (factory_id, equipment_id) REFERENCES equipment (factory_id, id),
    FOREIGN KEY (factory_id, assignee_id) REFERENCES users (factory_id, id),
    FOREIGN KEY (factory_id, created_by) REFERENCES users (factory_id, id),
    FOREIGN KEY (factory_id, completed_by) REFERENCES users (factory_id, id)
);
CREATE INDEX work_orders_factory_status ON work_orders (factory_id, status);
CREATE INDEX work_orders_equipment ON work_orders (factory_id, equipment_id);
CREATE INDEX work_orders_assignee ON work_orders (factory_id, assignee_id) WHERE assignee_id IS NOT NULL;

-- Everything that happened to a work order: creation, status changes,
-- notes, assignments; who and when.
CREATE TABLE work_order_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id     bigint NOT NULL,
    work_order_id  bigint NOT NULL,
    user_id        bigint,
    kind           text NOT NULL CHECK (kind IN ('created', 'status', 'note', 'assign', 'edit')),
    old_value      text,
    new_value      text CHECK (length(new_value) <= 4000),
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (factory_id, work_order_id) REFERENCES work_orders (factory_id, id),
    FOREIGN KEY (factory_id, user_id) REFERENCES users (factory_id, id)
);
CREATE INDEX work_order_events_wo ON work_order_events (factory_id, work_order_id, id);
