-- The chat commands' hot paths on big factories (issue 9): /wo list reads a
-- page off an index in the list's order and takes its total from counters;
-- /stats reads the counters instead of counting every work order.

-- /wo list: one index per filter, in the list's order (WO_ORDER in
-- db/workorder.c: priority rank, then oldest first), so a page is the first
-- rows of an index range instead of a sort of every matching work order.
CREATE INDEX work_orders_open_order ON work_orders (factory_id,
    array_position(ARRAY['critical','high','medium','low'], priority), created_at, id)
    WHERE status IN ('open', 'in_progress', 'on_hold');
CREATE INDEX work_orders_mine_order ON work_orders (factory_id, assignee_id,
    array_position(ARRAY['critical','high','medium','low'], priority), created_at, id)
    WHERE status IN ('open', 'in_progress', 'on_hold') AND assignee_id IS NOT NULL;
CREATE INDEX work_orders_status_order ON work_orders (factory_id, status,
    array_position(ARRAY['critical','high','medium','low'], priority), created_at, id);
CREATE INDEX work_orders_all_order ON work_orders (factory_id,
    array_position(ARRAY['critical','high','medium','low'], priority), created_at, id);
-- /stats: open work orders of the last days (the rest are "older than 7
-- days") and the open ones of a machine.
CREATE INDEX work_orders_open_created ON work_orders (factory_id, created_at)
    WHERE status IN ('open', 'in_progress', 'on_hold');
CREATE INDEX work_orders_open_equipment ON work_orders (factory_id, equipment_id)
    WHERE status IN ('open', 'in_progress', 'on_hold');

-- Counters, kept by the triggers below in the transaction that changes the
-- rows, so a reader sees them consistent with the rows in its snapshot.
-- Work orders per status and priority:
CREATE TABLE work_order_counts (
    factory_id  bigint NOT NULL REFERENCES factories(id) ON DELETE CASCADE,
    status      text NOT NULL,
    priority    text NOT NULL,
    n           bigint NOT NULL,
    PRIMARY KEY (factory_id, status, priority)
);
-- Open work orders per machine (the machine with the most, for /stats):
CREATE TABLE equipment_open_counts (
    factory_id    bigint NOT NULL,
    equipment_id  bigint NOT NULL,
    n             bigint NOT NULL,
    PRIMARY KEY (factory_id, equipment_id),
    FOREIGN KEY (factory_id, equipment_id) REFERENCES equipment (factory_id, id) ON DELETE CASCADE
);
CREATE INDEX equipment_open_counts_top ON equipment_open_counts (factory_id, n DESC, equipment_id);
-- Machines per factory:
CREATE TABLE equipment_counts (
    factory_id  bigint PRIMARY KEY REFERENCES factories(id) ON DELETE CASCADE,
    n           bigint NOT NULL
);

-- Statement-level triggers with transition tables: a bulk load costs one
-- grouped upsert per counter table. A change that leaves a counter as it was
-- (an edited title) does not touch it; the others are upserted in key
-- order, so two transactions changing the same counters lock them in the
-- same order. TRUNCATE empties the counters with the rows.
CREATE FUNCTION work_order_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH d AS (SELECT factory_id, status, priority, equipment_id, 1 AS k FROM new_rows),
        s AS (SELECT factory_id, status, priority, sum(k) AS k FROM d
              GROUP BY 1, 2, 3 HAVING sum(k) <> 0 ORDER BY 1, 2, 3)
        INSERT INTO work_order_counts AS c (factory_id, status, priority, n)
        SELECT factory_id, status, priority, k FROM s
        ON CONFLICT (factory_id, status, priority) DO UPDATE SET n = c.n + excluded.n;
        WITH d AS (SELECT factory_id, status, priority, equipment_id, 1 AS k FROM new_rows),
        s AS (SELECT factory_id, equipment_id, sum(k) AS k FROM d
              WHERE status IN ('open', 'in_progress', 'on_hold')
              GROUP BY 1, 2 HAVING sum(k) <> 0 ORDER BY 1, 2)
        INSERT INTO equipment_open_counts AS c (factory_id, equipment_id, n)
        SELECT factory_id, equipment_id, k FROM s
        ON CONFLICT (factory_id, equipment_id) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'UPDATE' THEN
        WITH d AS (SELECT factory_id, status, priority, equipment_id, -1 AS k FROM old_rows
                   UNION ALL SELECT factory_id, status, priority, equipment_id, 1 AS k FROM new_rows),
        s AS (SELECT factory_id, status, priority, sum(k) AS k FROM d
              GROUP BY 1, 2, 3 HAVING sum(k) <> 0 ORDER BY 1, 2, 3)
        INSERT INTO work_order_counts AS c (factory_id, status, priority, n)
        SELECT factory_id, status, priority, k FROM s
        ON CONFLICT (factory_id, status, priority) DO UPDATE SET n = c.n + excluded.n;
        WITH d AS (SELECT factory_id, status, priority, equipment_id, -1 AS k FROM old_rows
                   UNION ALL SELECT factory_id, status, priority, equipment_id, 1 AS k FROM new_rows),
        s AS (SELECT factory_id, equipment_id, sum(k) AS k FROM d
              WHERE status IN ('open', 'in_progress', 'on_hold')
              GROUP BY 1, 2 HAVING sum(k) <> 0 ORDER BY 1, 2)
        INSERT INTO equipment_open_counts AS c (factory_id, equipment_id, n)
        SELECT factory_id, equipment_id, k FROM s
        ON CONFLICT (factory_id, equipment_id) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        WITH d AS (SELECT factory_id, status, priority, equipment_id, -1 AS k FROM old_rows),
        s AS (SELECT factory_id, status, priority, sum(k) AS k FROM d
              GROUP BY 1, 2, 3 HAVING sum(k) <> 0 ORDER BY 1, 2, 3)
        INSERT INTO work_order_counts AS c (factory_id, status, priority, n)
        SELECT factory_id, status, priority, k FROM s
        ON CONFLICT (factory_id, status, priority) DO UPDATE SET n = c.n + excluded.n;
        WITH d AS (SELECT factory_id, status, priority, equipment_id, -1 AS k FROM old_rows),
        s AS (SELECT factory_id, equipment_id, sum(k) AS k FROM d
              WHERE status IN ('open', 'in_progress', 'on_hold')
              GROUP BY 1, 2 HAVING sum(k) <> 0 ORDER BY 1, 2)
        INSERT INTO equipment_open_counts AS c (factory_id, equipment_id, n)
        SELECT factory_id, equipment_id, k FROM s
        ON CONFLICT (factory_id, equipment_id) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        DELETE FROM equipment_open_counts;
        DELETE FROM work_order_counts;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER work_order_counts_insert AFTER INSERT ON work_orders
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION work_order_counts_apply();
CREATE TRIGGER work_order_counts_update AFTER UPDATE ON work_orders
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION work_order_counts_apply();
CREATE TRIGGER work_order_counts_delete AFTER DELETE ON work_orders
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION work_order_counts_apply();
CREATE TRIGGER work_order_counts_truncate AFTER TRUNCATE ON work_orders
    FOR EACH STATEMENT EXECUTE FUNCTION work_order_counts_apply();

CREATE FUNCTION equipment_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO equipment_counts AS c (factory_id, n)
        SELECT factory_id, count(*) FROM new_rows GROUP BY 1 ORDER BY 1
        ON CONFLICT (factory_id) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE equipment_counts c SET n = c.n - o.n
        FROM (SELECT factory_id, count(*) AS n FROM old_rows GROUP BY 1) o
        WHERE c.factory_id = o.factory_id;
    ELSE
        DELETE FROM equipment_counts;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER equipment_counts_insert AFTER INSERT ON equipment
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION equipment_counts_apply();
CREATE TRIGGER equipment_counts_delete AFTER DELETE ON equipment
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION equipment_counts_apply();
CREATE TRIGGER equipment_counts_truncate AFTER TRUNCATE ON equipment
    FOR EACH STATEMENT EXECUTE FUNCTION equipment_counts_apply();

-- The counts of the rows already there.
INSERT INTO work_order_counts (factory_id, status, priority, n)
SELECT factory_id, status, priority, count(*) FROM work_orders GROUP BY 1, 2, 3;
INSERT INTO equipment_open_counts (factory_id, equipment_id, n)
SELECT factory_id, equipment_id, count(*) FROM work_orders
WHERE status IN ('open', 'in_progress', 'on_hold') GROUP BY 1, 2;
INSERT INTO equipment_counts (factory_id, n)
SELECT factory_id, count(*) FROM equipment GROUP BY 1;
