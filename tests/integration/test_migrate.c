/* Migrations against a real PostgreSQL: a second run is a no-op, two runs at
 * once both succeed and apply each file once, a changed applied file is
 * refused, a failing file leaves nothing behind. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate.h"
#include "pgtest.h"

/* pg_advisory_lock key of db/migrate.c ("RIVT"). */
#define MIGRATE_LOCK "1380538964"

static int last_version(void)
{
    return migrations[n_migrations - 1].version;
}

/* Every built-in migration recorded exactly once, and the schema there. */
static void assert_schema_complete(PGconn *c)
{
    char v[16];

    snprintf(v, sizeof(v), "%d", last_version());
    assert_int_equal(pgtest_qint(c, "SELECT count(*) FROM schema_migrations", NULL), n_migrations);
    assert_int_equal(pgtest_qint(c, "SELECT count(DISTINCT version) FROM schema_migrations", NULL),
                     n_migrations);
    assert_int_equal(pgtest_qint(c, "SELECT max(version) FROM schema_migrations", NULL),
                     last_version());
    assert_int_equal(
        pgtest_qint(c, "SELECT count(*) FROM schema_migrations WHERE version = $1", v, NULL), 1);
    for (const char *const *t =
             (const char *const[]){"factories", "users", "invites", "number_sequences", "equipment",
                                   "work_orders", "work_order_events", NULL};
         *t; t++)
        assert_int_equal(pgtest_qint(c,
                                     "SELECT count(*) FROM pg_tables WHERE schemaname = "
                                     "'public' AND tablename = $1",
                                     *t, NULL),
                         1);
    assert_int_equal(
        pgtest_qint(c, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'", NULL), 1);
}

static void test_second_run_is_noop(void **state)
{
    struct pgtest_db d;
    struct migrate_report rep;
    struct pgtest_snap snap;
    struct db *db;
    PGconn *c;

    pgtest_db_create(&d);
    db = pgtest_connect(&d);
    c = pgtest_pq(&d);

    assert_int_equal(migrate_run(db, migrations, n_migrations, &rep), 0);
    assert_int_equal(rep.applied, n_migrations);
    assert_int_equal(rep.current, last_version());
    assert_int_equal(rep.unknown_version, 0);
    assert_string_equal(rep.failed, "");
    assert_schema_complete(c);

    pgtest_snap_take(c, &snap);
    assert_int_equal(migrate_run(db, migrations, n_migrations, &rep), 0);
    assert_int_equal(rep.applied, 0);
    assert_int_equal(rep.current, last_version());
    assert_int_equal(rep.unknown_version, 0);
    pgtest_assert_unchanged(c, &snap, "the second migrate_run");

    /* A third run on a new connection: still nothing to do. */
    db_close(db);
    db = pgtest_connect(&d);
    assert_int_equal(migrate_run(db, migrations, n_migrations, &rep), 0);
    assert_int_equal(rep.applied, 0);
    pgtest_assert_unchanged(c, &snap, "a migrate_run on a new connection");

    pgtest_snap_free(&snap);
    PQfinish(c);
    db_close(db);
    pgtest_db_drop(&d);
}

struct racer {
    struct db *db;
    pthread_barrier_t *start;
    int r;
    struct migrate_report rep;
    char err[256];
};

static void *race(void *arg)
{
    struct racer *x = arg;

    pthread_barrier_wait(x->start);
    x->r = migrate_run(x->db, migrations, n_migrations, &x->rep);
    if (x->r < 0)
        snprintf(x->err, sizeof(x->err), "%s", db_errmsg(x->db));
    return NULL;
}

/* Two `rivet migrate` at once on a fresh database, several rounds: both
 * succeed, one applies everything, the other finds nothing left. */
static void test_concurrent_runs(void **state)
{
    for (int round = 0; round < 3; round++) {
        struct racer x[2];
        pthread_t th[2];
        pthread_barrier_t start;
        struct pgtest_db d;
        PGconn *c;

        pgtest_db_create(&d);
        assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
        for (int i = 0; i < 2; i++) {
            memset(&x[i], 0, sizeof(x[i]));
            x[i].db = pgtest_connect(&d);
            x[i].start = &start;
        }
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&th[i], NULL, race, &x[i]), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&start);

        for (int i = 0; i < 2; i++) {
            if (x[i].r != 0)
                fail_msg("round %d runner %d: %s (%s: %s)", round, i, strerror(-x[i].r),
                         x[i].rep.failed, x[i].err);
            assert_int_equal(x[i].rep.current, last_version());
            assert_int_equal(x[i].rep.unknown_version, 0);
            db_close(x[i].db);
        }
        assert_int_equal(x[0].rep.applied + x[1].rep.applied, n_migrations);
        assert_true(x[0].rep.applied == 0 || x[1].rep.applied == 0);

        c = pgtest_pq(&d);
        assert_schema_complete(c);
        PQfinish(c);
        pgtest_db_drop(&d);
    }
}

/* The built-in list with version 1's text replaced by sql, and extra
 * entries after it. */
static struct migration *edited_list(const char *sql1, const struct migration *extra,
                                     unsigned n_extra, unsigned *n)
{
    struct migration *list = calloc(n_migrations + n_extra, sizeof(*list));

    assert_non_null(list);
    memcpy(list, migrations, n_migrations * sizeof(*list));
    assert_int_equal(list[0].version, 1);
    if (sql1)
        list[0].sql = sql1;
    if (n_extra)
        memcpy(list + n_migrations, extra, n_extra * sizeof(*list));
    *n = n_migrations + n_extra;
    return list;
}

static void test_changed_migration_refused(void **state)
{
    static const struct migration later[] = {
        {9001, "9001_it_never.sql", "CREATE TABLE it_never (x int);"}};
    /* A trailing blank, a comment, and a keyword in lower case: the same
     * schema, but not the file that was applied. */
    const char *edits[] = {" \n", "\n-- fixed a typo after release\n", ""};
    struct pgtest_snap snap;
    struct pgtest_db d;
    struct migrate_report rep;
    struct db *db;
    PGconn *c;

    pgtest_db_create(&d);
    db = pgtest_connect(&d);
    c = pgtest_pq(&d);
    pgtest_migrate(db);
    pgtest_snap_take(c, &snap);

    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        size_t len = strlen(migrations[0].sql);
        char *sql = malloc(len + strlen(edits[i]) + 1);
        struct migration *list;
        unsigned n;
        int r;

        assert_non_null(sql);
        memcpy(sql, migrations[0].sql, len + 1);
        if (*edits[i])
            strcat(sql, edits[i]);
        else
            memcpy(strstr(sql, "CREATE TABLE factories"), "create", 6);
        list = edited_list(sql, later, 1, &n);

        r = migrate_run(db, list, n, &rep);
        assert_int_equal(r, -EBADMSG);
        assert_string_equal(rep.failed, migrations[0].name);
        assert_string_equal(rep.failed, "0001_init.sql");
        assert_int_equal(rep.applied, 0);
        /* Nothing after the changed file was applied. */
        assert_int_equal(
            pgtest_qint(c, "SELECT count(*) FROM pg_tables WHERE tablename = 'it_never'", NULL), 0);
        pgtest_assert_unchanged(c, &snap, "a refused migrate_run");
        free(list);
        free(sql);
    }

    /* The lock was released: the original list still runs, as a no-op. */
    assert_int_equal(migrate_run(db, migrations, n_migrations, &rep), 0);
    assert_int_equal(rep.applied, 0);
    pgtest_assert_unchanged(c, &snap, "migrate_run after a refusal");

    pgtest_snap_free(&snap);
    PQfinish(c);
    db_close(db);
    pgtest_db_drop(&d);
}

/* A migration that fails half-way leaves no trace, names itself, and
 * releases the lock; a newer database is reported, not refused. */
static void test_failed_and_newer_migrations(void **state)
{
    int next = last_version() + 1;
    char broken_name[64], good_name[64];
    struct migration broken, good;
    struct pgtest_db d;
    struct migrate_report rep;
    struct migration *list;
    struct db *db;
    unsigned n;
    PGconn *c;
    int r;

    snprintf(broken_name, sizeof(broken_name), "%04d_it_broken.sql", next);
    snprintf(good_name, sizeof(good_name), "%04d_it_extra.sql", next);
    broken =
        (struct migration){next, broken_name, "CREATE TABLE it_partial (x int);\nSELECT 1/0;\n"};
    good = (struct migration){next, good_name, "CREATE TABLE it_extra (x int);\n"};
    pgtest_db_create(&d);
    db = pgtest_connect(&d);
    c = pgtest_pq(&d);

    list = edited_list(NULL, &broken, 1, &n);
    r = migrate_run(db, list, n, &rep);
    free(list);
    assert_true(r < 0);
    assert_int_not_equal(r, -EBADMSG);
    assert_string_equal(rep.failed, broken_name);
    assert_int_equal(rep.applied, n_migrations); /* the good ones before it stay */
    assert_int_equal(
        pgtest_qint(c, "SELECT count(*) FROM pg_tables WHERE tablename = 'it_partial'", NULL), 0);
    assert_int_equal(pgtest_qint(c, "SELECT count(*) FROM schema_migrations", NULL), n_migrations);
    /* Nobody holds this database's migration lock any more (advisory
     * locks are per database; other test binaries hold their own). */
    assert_int_equal(pgtest_qint(c,
                                 "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                 "AND objid = " MIGRATE_LOCK "::bigint::oid AND database = "
                                 "(SELECT oid FROM pg_database "
                                 "WHERE datname = current_database())",
                                 NULL),
                     0);

    /* The same connection goes on working. */
    list = edited_list(NULL, &good, 1, &n);
    assert_int_equal(migrate_run(db, list, n, &rep), 0);
    free(list);
    assert_int_equal(rep.applied, 1);
    assert_int_equal(rep.current, next);
    assert_int_equal(
        pgtest_qint(c, "SELECT count(*) FROM pg_tables WHERE tablename = 'it_extra'", NULL), 1);

    /* An older binary on the newer database: nothing to do, newer noted. */
    assert_int_equal(migrate_run(db, migrations, n_migrations, &rep), 0);
    assert_int_equal(rep.applied, 0);
    assert_int_equal(rep.unknown_version, next);

    PQfinish(c);
    db_close(db);
    pgtest_db_drop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_run_is_noop),
        cmocka_unit_test(test_concurrent_runs),
        cmocka_unit_test(test_changed_migration_refused),
        cmocka_unit_test(test_failed_and_newer_migrations),
    };
    int status;

    if (!pgtest_init(&status))
        return status;
    return cmocka_run_group_tests_name("integration-migrate", tests, NULL, NULL);
}
