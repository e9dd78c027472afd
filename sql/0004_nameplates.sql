-- Nameplate photos. Every read is kept per factory and photo hash, so the
-- same photo sent again gives the same answer without being read again,
-- and each read says what it cost (engine, times, LLM tokens). Equipment
-- keeps the photo it was registered from, and a normalized serial for
-- matching a new read against what the factory already has.

-- The serial as np_serial_normalize() sees it: upper case, letter O as
-- zero, letters and digits only.
ALTER TABLE equipment
    ADD COLUMN serial_norm text GENERATED ALWAYS AS (
        nullif(regexp_replace(translate(upper(coalesce(serial, '')), 'O', '0'),
                              '[^A-Z0-9]', '', 'g'), '')) STORED,
    -- The model with OCR's usual confusions folded away (O I S B Z G as
    -- 0 1 5 8 2 6, letters and digits only): a misread model folds to the
    -- same text, another model of the family does not.
    ADD COLUMN model_fold text GENERATED ALWAYS AS (
        regexp_replace(translate(upper(model), 'OISBZG', '015826'), '[^A-Z0-9]', '', 'g')) STORED,
    ADD COLUMN photo_file_id text CHECK (length(photo_file_id) <= 256),
    ADD COLUMN photo_sha256 text CHECK (photo_sha256 ~ '^[0-9a-f]{64}$');
CREATE INDEX equipment_serial_norm ON equipment (factory_id, serial_norm)
    WHERE serial_norm IS NOT NULL;
CREATE INDEX equipment_model_fold ON equipment (factory_id, model_fold);
-- Finds models one character longer or shorter (pg_trgm on the model alone).
CREATE INDEX equipment_model_trgm ON equipment USING gin (lower(model) gin_trgm_ops);

CREATE TABLE nameplate_reads (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    factory_id        bigint NOT NULL REFERENCES factories(id),
    user_id           bigint NOT NULL,
    sha256            text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    channel           text NOT NULL CHECK (channel IN ('console', 'telegram', 'whatsapp')),
    file_id           text CHECK (length(file_id) <= 256),
    caption           text CHECK (length(caption) <= 1024),
    -- {"manufacturer": {"value": "...", "confidence": 0.93, "source": "ocr"}, ...}
    fields            jsonb NOT NULL DEFAULT '{}'::jsonb,
    confidence        real NOT NULL DEFAULT 0,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'saved', 'linked', 'discarded')),
    equipment_id      bigint,
    engine            text,
    width             int,
    height            int,
    ocr_ms            int,
    total_ms          int,
    llm_used          boolean NOT NULL DEFAULT false,
    -- The LLM was asked and failed (down, slow, a broken answer): the photo
    -- is read again when it is sent again, instead of answering from here.
    llm_failed        boolean NOT NULL DEFAULT false,
    llm_provider      text,
    llm_model         text,
    llm_ms            int,
    prompt_tokens     int,
    completion_tokens int,
    cost_usd          numeric(12, 6),
    created_at        timestamptz NOT NULL DEFAULT now(),
    decided_at        timestamptz,
    decided_by        bigint,
    UNIQUE (factory_id, sha256),
    UNIQUE (factory_id, id),
    FOREIGN KEY (factory_id, user_id) REFERENCES users (factory_id, id),
    FOREIGN KEY (factory_id, decided_by) REFERENCES users (factory_id, id),
    FOREIGN KEY (factory_id, equipment_id) REFERENCES equipment (factory_id, id)
);
