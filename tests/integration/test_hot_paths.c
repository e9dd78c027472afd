/* The chat commands' hot paths on a factory big enough for the planner to
 * prefer an index (issue 9, sql/0009_hot_paths.sql): the statements of
 * /equip search, /wo list and /stats, as prepared by the db layer, must
 * not scan equipment or work_orders sequentially, in their custom or their
 * generic plan; the counters behind /stats and the list totals must agree
 * with counting the rows, also after changes; and search still finds a
 * misspelled machine. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "db_internal.h"
#include "pgtest.h"

#define MACHINES 20000
#define WORK_ORDERS 40000
#define STR_(x) #x
#define STR(x) STR_(x)

struct fixture {
    struct pgtest_db d;
    PGconn *c;
    struct db *db;
    struct arena *a;
    int64_t plant, user;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char fid[24], uid[24];

    assert_non_null(f);
    pgtest_db_create(&f->d);
    f->db = pgtest_connect(&f->d);
    f->c = pgtest_pq(&f->d);
    assert_int_equal(arena_new(&f->a), 0);
    pgtest_migrate(f->db);
    f->plant = pgtest_factory(f->db, f->a, "Hot Plant");
    f->user = pgtest_user(f->db, f->a, f->plant, "hot", "Hanna Hot", "technician");
    /* Another factory, so every statement has to pick its rows. */
    pgtest_equipment(f->db, f->a, pgtest_factory(f->db, f->a, "Cold Plant"), 0, "Siemens", "G120C",
                     "Cold drive", NULL, "Line 1", NULL);
    snprintf(fid, sizeof(fid), "%lld", (long long)f->plant);
    snprintf(uid, sizeof(uid), "%lld", (long long)f->user);
    /* Deterministic rows: a mix of makes, names, serials and locations;
     * one in 500 is a Siemens G120C. */
    PQclear(pgtest_q(
        f->c,
        "INSERT INTO equipment (factory_id, number, name, manufacturer, model, serial, location, "
        "  created_at) "
        "SELECT $1::bigint, 'EQ-2025-' || lpad(g::text, 6, '0'), "
        "  (ARRAY['Main drive', 'Cooling pump', 'Exhaust fan', NULL])[1 + g % 4] "
        "    || ' ' || (1 + g % 9), "
        "  CASE WHEN g % 500 = 0 THEN 'Siemens' "
        "    ELSE (ARRAY['ABB', 'WEG', 'Grundfos', 'Danfoss', 'Festo', 'KUKA', 'Fanuc'])[1 + g % "
        "7] "
        "    END, "
        "  CASE WHEN g % 500 = 0 THEN 'G120C' ELSE 'M' || (g % 97) || '-' || (g % 13) END, "
        "  upper(substr(md5(g::text), 1, 10)), "
        "  'Line ' || (1 + g % 12) || ', ' "
        "    || (ARRAY['welding', 'paint shop', 'packaging', 'boiler house'])[1 + g % 4], "
        "  now() - (g % 1000) * interval '1 day' "
        "FROM generate_series(1, " STR(MACHINES) ") g",
        fid, NULL));
    PQclear(pgtest_q(
        f->c,
        "INSERT INTO work_orders (factory_id, number, equipment_id, title, status, priority, "
        "  assignee_id, created_at) "
        "SELECT $1::bigint, 'WO-2025-' || lpad(g::text, 6, '0'), e.id, 'Check ' || g, "
        "  CASE WHEN g % 10 = 0 THEN 'open' WHEN g % 10 = 1 THEN 'in_progress' "
        "    WHEN g % 20 = 2 THEN 'on_hold' WHEN g % 10 = 3 THEN 'cancelled' ELSE 'completed' END, "
        "  (ARRAY['low', 'medium', 'high', 'critical'])[1 + g % 4], "
        "  CASE WHEN g % 3 = 0 THEN $2::bigint END, now() - (g % 400) * interval '1 day' "
        "FROM generate_series(1, " STR(
            WORK_ORDERS) ") g "
                         "JOIN equipment e ON e.factory_id = $1::bigint "
                         "  AND e.number = 'EQ-2025-' || lpad((1 + (g * 7919) % " STR(
                             MACHINES) ")::text, 6, '0')",
        fid, uid, NULL));
    PQclear(pgtest_q(f->c, "VACUUM ANALYZE equipment, work_orders", NULL));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    PQfinish(f->c);
    db_close(f->db);
    pgtest_db_drop(&f->d);
    arena_free(f->a);
    free(f);
    return 0;
}

/* Fails when a node of the plan (or below it) scans a hot table
 * sequentially. */
static void assert_no_seq_scan(json_t *node, const char *what)
{
    const char *type = json_string_value(json_object_get(node, "Node Type"));
    const char *rel = json_string_value(json_object_get(node, "Relation Name"));
    json_t *kids = json_object_get(node, "Plans"), *kid;
    size_t i;

    if (type && strcmp(type, "Seq Scan") == 0 && rel &&
        (strcmp(rel, "equipment") == 0 || strcmp(rel, "work_orders") == 0)) {
        fprintf(stderr, "%s: Seq Scan on %s\n", what, rel);
        fail();
    }
    json_array_foreach(kids, i, kid) assert_no_seq_scan(kid, what);
}

/* Runs every hot statement once through the db layer, then EXPLAINs the
 * text the db layer prepared, with the same session settings. */
static void test_no_seq_scan(void **state)
{
    struct fixture *f = *state;
    struct equipment *eq;
    struct work_order *wo;
    struct plant_stats st;
    int n, total;
    static const struct {
        const char *name, *args;
    } hot[] = {
        {"equipment_search", "FID, 'simens g120c', 10"},
        {"wo_list_open", "FID, 0, 10"},
        {"wo_list_mine", "FID, 0, 10, UID"},
        {"wo_list_all", "FID, 10, 10"},
        {"wo_list_status", "FID, 0, 10, 'completed'"},
        {"wo_count_open", "FID"},
        {"wo_count_mine", "FID, UID"},
        {"wo_count_all", "FID"},
        {"wo_count_status", "FID, 'on_hold'"},
        {"stats", "FID"},
        {"stats_top", "FID"},
    };
    static const struct db_stmt text = {
        "test_prepared_text", "SELECT statement FROM pg_prepared_statements WHERE name = $1", 1};

    assert_int_equal(db_equipment_search(f->db, f->a, f->plant, "simens g120c", 10, &eq, &n), 0);
    for (enum wo_filter w = WO_OPEN; w <= WO_STATUS; w++)
        assert_int_equal(
            db_wo_list(f->db, f->a, f->plant, w, "completed", f->user, 0, 10, &wo, &n, &total), 0);
    assert_int_equal(db_stats(f->db, f->a, f->plant, &st), 0);

    PQclear(pgtest_q(f->c, "SET pg_trgm.word_similarity_threshold = 0.45", NULL));
    for (size_t i = 0; i < sizeof(hot) / sizeof(hot[0]); i++) {
        static const char *const modes[] = {"force_custom_plan", "force_generic_plan"};
        char args[128], *p, sql[256];
        PGresult *res;

        assert_int_equal(db_query(f->db, &text, (const char *[]){hot[i].name}, &res), 0);
        assert_int_equal(PQntuples(res), 1);
        {
            size_t len = strlen(PQgetvalue(res, 0, 0)) + 64;
            char *prep = malloc(len);

            assert_non_null(prep);
            snprintf(prep, len, "PREPARE %s AS %s", hot[i].name, PQgetvalue(res, 0, 0));
            PQclear(pgtest_q(f->c, prep, NULL));
            free(prep);
        }
        PQclear(res);
        /* The arguments, with the test's ids. */
        snprintf(args, sizeof(args), "%s", hot[i].args);
        if ((p = strstr(args, "FID")) != NULL) {
            char rest[128];

            snprintf(rest, sizeof(rest), "%s", p + 3);
            snprintf(p, sizeof(args) - (size_t)(p - args), "%lld%s", (long long)f->plant, rest);
        }
        if ((p = strstr(args, "UID")) != NULL) {
            char rest[128];

            snprintf(rest, sizeof(rest), "%s", p + 3);
            snprintf(p, sizeof(args) - (size_t)(p - args), "%lld%s", (long long)f->user, rest);
        }
        for (size_t m = 0; m < 2; m++) {
            json_error_t err;
            json_t *plan;
            char *out;

            snprintf(sql, sizeof(sql), "SET plan_cache_mode = %s", modes[m]);
            PQclear(pgtest_q(f->c, sql, NULL));
            snprintf(sql, sizeof(sql), "EXPLAIN (FORMAT JSON) EXECUTE %s(%s)", hot[i].name, args);
            out = pgtest_qstr(f->c, sql, NULL);
            assert_non_null(out);
            plan = json_loads(out, 0, &err);
            assert_non_null(plan);
            snprintf(sql, sizeof(sql), "%s (%s)", hot[i].name, modes[m]);
            assert_no_seq_scan(json_object_get(json_array_get(plan, 0), "Plan"), sql);
            json_decref(plan);
            free(out);
        }
    }
    PQclear(pgtest_q(f->c, "RESET plan_cache_mode", NULL));
    PQclear(pgtest_q(f->c, "DEALLOCATE ALL", NULL));
}

/* The misspelled make and model still find a Siemens G120C first; the
 * exact model finds them all as substring hits before anything else. */
static void test_search_still_right(void **state)
{
    struct fixture *f = *state;
    struct equipment *v;
    int n;

    assert_int_equal(db_equipment_search(f->db, f->a, f->plant, "simens g120c", 10, &v, &n), 0);
    assert_true(n >= 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(v[i].manufacturer, "Siemens");
        assert_string_equal(v[i].model, "G120C");
    }
    assert_int_equal(db_equipment_search(f->db, f->a, f->plant, "g120c", 10, &v, &n), 0);
    assert_int_equal(n, 10);
    for (int i = 0; i < n; i++)
        assert_string_equal(v[i].model, "G120C");
    assert_int_equal(db_equipment_search(f->db, f->a, f->plant, "qqqzzzxxx", 10, &v, &n), 0);
    assert_int_equal(n, 0);
}

/* The counters agree with counting the rows, before and after changes
 * through the db layer and in bulk. */
static void check_counts(struct fixture *f, const char *what)
{
    static const char *const status[] = {"open", "in_progress", "on_hold", "completed",
                                         "cancelled"};
    static const char *const prio[] = {"low", "medium", "high", "critical"};
    struct plant_stats s;
    struct work_order *wo;
    char fid[24], uid[24];
    int n, total;

    snprintf(fid, sizeof(fid), "%lld", (long long)f->plant);
    snprintf(uid, sizeof(uid), "%lld", (long long)f->user);
    assert_int_equal(db_stats(f->db, f->a, f->plant, &s), 0);
    fprintf(stderr, "# %s: %d machines, %d open\n", what, s.equipment, s.by_status[0]);
    assert_int_equal(
        s.equipment,
        pgtest_qint(f->c, "SELECT count(*) FROM equipment WHERE factory_id = $1", fid, NULL));
    for (int i = 0; i < 5; i++)
        assert_int_equal(s.by_status[i],
                         pgtest_qint(f->c,
                                     "SELECT count(*) FROM work_orders WHERE factory_id = $1 "
                                     "AND status = $2",
                                     fid, status[i], NULL));
    for (int i = 0; i < 4; i++)
        assert_int_equal(s.by_priority[i],
                         pgtest_qint(f->c,
                                     "SELECT count(*) FROM work_orders WHERE factory_id = $1 "
                                     "AND status IN ('open', 'in_progress', 'on_hold') "
                                     "AND priority = $2",
                                     fid, prio[i], NULL));
    assert_int_equal(s.open_older_7d,
                     pgtest_qint(f->c,
                                 "SELECT count(*) FROM work_orders WHERE factory_id = $1 "
                                 "AND status IN ('open', 'in_progress', 'on_hold') "
                                 "AND created_at < now() - interval '7 days'",
                                 fid, NULL));
    assert_int_equal(s.top_equipment_open,
                     pgtest_qint(f->c,
                                 "SELECT count(*) FROM work_orders WHERE factory_id = $1 "
                                 "AND status IN ('open', 'in_progress', 'on_hold') "
                                 "GROUP BY equipment_id ORDER BY count(*) DESC, equipment_id "
                                 "LIMIT 1",
                                 fid, NULL));
    assert_int_equal(
        db_wo_list(f->db, f->a, f->plant, WO_MINE, NULL, f->user, 0, 10, &wo, &n, &total), 0);
    assert_int_equal(total, pgtest_qint(f->c,
                                        "SELECT count(*) FROM work_orders WHERE factory_id = $1 "
                                        "AND status IN ('open', 'in_progress', 'on_hold') "
                                        "AND assignee_id = $2",
                                        fid, uid, NULL));
    assert_int_equal(db_wo_list(f->db, f->a, f->plant, WO_ALL, NULL, 0, 0, 10, &wo, &n, &total), 0);
    assert_int_equal(
        total,
        pgtest_qint(f->c, "SELECT count(*) FROM work_orders WHERE factory_id = $1", fid, NULL));
    assert_int_equal(n, 10);
}

static void test_counters(void **state)
{
    struct fixture *f = *state;
    struct work_order w;
    struct equipment e;
    struct equipment_fields ef = {.manufacturer = "ABB", .model = "ACS580"};
    char fid[24];

    snprintf(fid, sizeof(fid), "%lld", (long long)f->plant);
    check_counts(f, "loaded");
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_equipment_add(f->db, f->a, f->plant, f->user, &ef, &e), 0);
    assert_int_equal(db_wo_create(f->db, f->a, f->plant, f->user, e.id, "New one", "critical", &w),
                     0);
    assert_int_equal(db_wo_set_status(f->db, f->plant, w.id, f->user, "open", "in_progress"), 0);
    assert_int_equal(db_commit(f->db), 0);
    check_counts(f, "after an add and a status change");
    /* A rolled back change leaves the counters as they were. */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_wo_set_status(f->db, f->plant, w.id, f->user, "in_progress", "completed"),
                     0);
    assert_int_equal(db_rollback(f->db), 0);
    check_counts(f, "after a rollback");
    PQclear(pgtest_q(f->c,
                     "UPDATE work_orders SET status = 'completed', priority = 'low' "
                     "WHERE factory_id = $1 AND id % 7 = 0",
                     fid, NULL));
    PQclear(pgtest_q(f->c, "UPDATE work_orders SET title = title || '.' WHERE factory_id = $1", fid,
                     NULL));
    check_counts(f, "after bulk updates");
    PQclear(pgtest_q(f->c, "DELETE FROM work_order_events WHERE factory_id = $1", fid, NULL));
    PQclear(
        pgtest_q(f->c, "DELETE FROM work_orders WHERE factory_id = $1 AND id % 5 = 2", fid, NULL));
    check_counts(f, "after a delete");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_seq_scan),
        cmocka_unit_test(test_search_still_right),
        cmocka_unit_test(test_counters),
    };
    int status;

    if (!pgtest_init(&status))
        return status;
    return cmocka_run_group_tests_name("integration-hot-paths", tests, setup, teardown);
}
