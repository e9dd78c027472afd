-- The daily digest: at a local time of day each factory's supervisors and
-- admins get yesterday's summary (alarms, work orders, what is overdue).
-- factories.timezone (0001) says what "yesterday" and "07:00" mean.

ALTER TABLE factories
    -- Local time of day the digest goes out; NULL: no digest. 07:00 for
    -- new and existing factories alike: the morning shift has started,
    -- the supervisor reads it at the handover, and the day it reports on
    -- is over everywhere in the plant's zone.
    ADD COLUMN digest_time time DEFAULT '07:00'
        CHECK (digest_time = date_trunc('minute', digest_time)),
    -- The local date of the last digest claimed: one UPDATE ... WHERE
    -- digest_last_sent IS DISTINCT FROM today sets it, in the transaction
    -- that queues the messages, so that several processes send it once.
    ADD COLUMN digest_last_sent date;

-- A day's rows of one factory, by time.
CREATE INDEX alarms_factory_created ON alarms (factory_id, created_at);
CREATE INDEX work_orders_factory_created ON work_orders (factory_id, created_at);
CREATE INDEX work_orders_factory_completed ON work_orders (factory_id, completed_at)
    WHERE completed_at IS NOT NULL;
