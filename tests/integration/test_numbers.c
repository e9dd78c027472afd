/* Number allocation under concurrency: work orders and equipment created at
 * once from many connections get unique, consecutive numbers per factory
 * and year, formatted WO-YYYY-NNNNNN / EQ-YYYY-NNNNNN. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "pgtest.h"

#define WO_THREADS 8
#define WO_PER_THREAD 100
#define EQ_THREADS 4
#define EQ_PER_THREAD 50

struct fixture {
    struct pgtest_db d;
    PGconn *c;
    struct db *db;
    struct arena *a;
    int year;
    int64_t wo_factory, wo_user, wo_machine; /* the 8 x 100 run */
    int64_t eq_factory, eq_user;             /* the equipment run */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    pgtest_db_create(&f->d);
    f->db = pgtest_connect(&f->d);
    f->c = pgtest_pq(&f->d);
    assert_int_equal(arena_new(&f->a), 0);
    pgtest_migrate(f->db);
    f->year = (int)pgtest_qint(f->c, "SELECT extract(year FROM now())::int", NULL);

    f->wo_factory = pgtest_factory(f->db, f->a, "Numbers Plant");
    f->wo_user = pgtest_user(f->db, f->a, f->wo_factory, "numbers-admin", "Nora", "admin");
    f->wo_machine = pgtest_equipment(f->db, f->a, f->wo_factory, f->wo_user, "Grundfos", "CR 10-4",
                                     "Cooling pump", "A1234567", "Line 1", NULL);
    f->eq_factory = pgtest_factory(f->db, f->a, "Numbers Plant EQ");
    f->eq_user = pgtest_user(f->db, f->a, f->eq_factory, "numbers-eq-admin", "Emil", "admin");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    PQfinish(f->c);
    db_close(f->db);
    arena_free(f->a);
    pgtest_db_drop(&f->d);
    free(f);
    return 0;
}

/* The sequence number of "PP-YYYY-NNNNNN" with year, or -1 when the
 * text is not exactly that (six digits, zero-padded, or more when needed). */
static long parse_number(const char *prefix, int year, const char *s)
{
    char want[16];
    size_t digits = 0;

    snprintf(want, sizeof(want), "%s-%04d-", prefix, year);
    if (strncmp(s, want, strlen(want)) != 0)
        return -1;
    s += strlen(want);
    for (const char *p = s; *p; p++, digits++)
        if (!isdigit((unsigned char)*p))
            return -1;
    if (digits < 6 || (digits > 6 && s[0] == '0'))
        return -1;
    return strtol(s, NULL, 10);
}

enum kind { KIND_WO, KIND_EQ };

struct worker {
    enum kind kind;
    struct db *db;
    pthread_barrier_t *start;
    int64_t factory, user, machine;
    int index, count;
    char **numbers; /* count slots, strdup'd */
    int failures;
    char first_error[256];
};

/* Creates count rows, each in its own transaction. */
static void *work(void *arg)
{
    struct worker *w = arg;

    pthread_barrier_wait(w->start);
    for (int i = 0; i < w->count; i++) {
        struct arena *a = NULL;
        const char *number = NULL;
        char text[64];
        int r;

        if (arena_new(&a) < 0) {
            w->failures++;
            continue;
        }
        snprintf(text, sizeof(text), "T%d-%03d", w->index, i);
        r = db_begin(w->db);
        if (r == 0) {
            if (w->kind == KIND_WO) {
                struct work_order wo;
                r = db_wo_create(w->db, a, w->factory, w->user, w->machine, text,
                                 i % 2 ? "high" : NULL, &wo);
                number = r == 0 ? wo.number : NULL;
            } else {
                struct equipment e;
                struct equipment_fields fl = {
                    .manufacturer = "Danfoss", .model = "FC-302", .serial = text};
                r = db_equipment_add(w->db, a, w->factory, w->user, &fl, &e);
                number = r == 0 ? e.number : NULL;
            }
            if (r == 0)
                r = db_commit(w->db);
            else
                db_rollback(w->db);
        }
        if (r == 0) {
            w->numbers[i] = strdup(number);
        } else if (w->failures++ == 0) {
            snprintf(w->first_error, sizeof(w->first_error), "%s: %s", strerror(-r),
                     db_errmsg(w->db));
        }
        arena_free(a);
    }
    return NULL;
}

static int cmp_long(const void *x, const void *y)
{
    long a = *(const long *)x, b = *(const long *)y;
    return (a > b) - (a < b);
}

/* Runs threads x per creates at once and checks the numbers they got:
 * all distinct, exactly 1..threads*per, increasing within each thread. */
static void run_and_check(struct fixture *f, enum kind kind, int threads, int per, int64_t factory,
                          int64_t user, int64_t machine)
{
    const char *prefix = kind == KIND_WO ? "WO" : "EQ";
    int total = threads * per;
    struct worker *w = calloc((size_t)threads, sizeof(*w));
    pthread_t *th = calloc((size_t)threads, sizeof(*th));
    long *seq = calloc((size_t)total, sizeof(*seq));
    pthread_barrier_t start;

    assert_true(w && th && seq);
    assert_int_equal(pthread_barrier_init(&start, NULL, (unsigned)threads), 0);
    for (int t = 0; t < threads; t++) {
        w[t] = (struct worker){.kind = kind,
                               .db = pgtest_connect(&f->d),
                               .start = &start,
                               .factory = factory,
                               .user = user,
                               .machine = machine,
                               .index = t,
                               .count = per,
                               .numbers = calloc((size_t)per, sizeof(char *))};
        assert_non_null(w[t].numbers);
    }
    for (int t = 0; t < threads; t++)
        assert_int_equal(pthread_create(&th[t], NULL, work, &w[t]), 0);
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&start);

    for (int t = 0; t < threads; t++) {
        long prev = 0;
        if (w[t].failures)
            fail_msg("thread %d: %d of %d creates failed; first: %s", t, w[t].failures, per,
                     w[t].first_error);
        for (int i = 0; i < per; i++) {
            long n = parse_number(prefix, f->year, w[t].numbers[i]);
            if (n < 1)
                fail_msg("thread %d got a malformed number \"%s\"", t, w[t].numbers[i]);
            /* One thread's transactions commit in order. */
            assert_true(n > prev);
            prev = n;
            seq[t * per + i] = n;
        }
    }
    qsort(seq, (size_t)total, sizeof(*seq), cmp_long);
    for (int i = 0; i < total; i++)
        if (seq[i] != i + 1)
            fail_msg("sorted %s numbers: position %d holds %ld, expected %d (a %s)", prefix, i,
                     seq[i], i + 1, i > 0 && seq[i] == seq[i - 1] ? "duplicate" : "gap");

    for (int t = 0; t < threads; t++) {
        for (int i = 0; i < per; i++)
            free(w[t].numbers[i]);
        free(w[t].numbers);
        db_close(w[t].db);
    }
    free(seq);
    free(th);
    free(w);
}

static void test_work_orders_8x100(void **state)
{
    struct fixture *f = *state;
    char fid[24], last[32];

    run_and_check(f, KIND_WO, WO_THREADS, WO_PER_THREAD, f->wo_factory, f->wo_user, f->wo_machine);

    /* What the rows say agrees with what the callers got. */
    snprintf(fid, sizeof(fid), "%lld", (long long)f->wo_factory);
    snprintf(last, sizeof(last), "WO-%04d-%06d", f->year, WO_THREADS * WO_PER_THREAD);
    assert_int_equal(
        pgtest_qint(f->c, "SELECT count(*) FROM work_orders WHERE factory_id = $1", fid, NULL),
        WO_THREADS * WO_PER_THREAD);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(DISTINCT number) FROM work_orders "
                                 "WHERE factory_id = $1",
                                 fid, NULL),
                     WO_THREADS * WO_PER_THREAD);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM work_orders WHERE factory_id = $1 "
                                 "AND number = $2",
                                 fid, last, NULL),
                     1);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT last FROM number_sequences WHERE factory_id = $1 "
                                 "AND kind = 'WO'",
                                 fid, NULL),
                     WO_THREADS * WO_PER_THREAD);
    /* Each creation recorded once in the history. */
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM work_order_events WHERE factory_id = $1 "
                                 "AND kind = 'created'",
                                 fid, NULL),
                     WO_THREADS * WO_PER_THREAD);
    /* The equipment counter of the factory was not used. */
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT last FROM number_sequences WHERE factory_id = $1 "
                                 "AND kind = 'EQ'",
                                 fid, NULL),
                     1);
}

static void test_equipment_4x50(void **state)
{
    struct fixture *f = *state;
    char fid[24];

    run_and_check(f, KIND_EQ, EQ_THREADS, EQ_PER_THREAD, f->eq_factory, f->eq_user, 0);
    snprintf(fid, sizeof(fid), "%lld", (long long)f->eq_factory);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(DISTINCT number) FROM equipment "
                                 "WHERE factory_id = $1",
                                 fid, NULL),
                     EQ_THREADS * EQ_PER_THREAD);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT last FROM number_sequences WHERE factory_id = $1 "
                                 "AND kind = 'EQ'",
                                 fid, NULL),
                     EQ_THREADS * EQ_PER_THREAD);
}

/* A rolled back creation gives its number back; another factory counts
 * from 1 on its own. */
static void test_rollback_and_per_factory(void **state)
{
    struct fixture *f = *state;
    struct work_order wo;
    struct equipment e;
    struct arena *a;
    char want[32];
    int64_t other, user, machine;
    const char *eq_number;

    assert_int_equal(arena_new(&a), 0);
    other = pgtest_factory(f->db, a, "Numbers Plant South");
    user = pgtest_user(f->db, a, other, "numbers-south", "Sami", "technician");
    machine = pgtest_equipment(f->db, a, other, user, "WEG", "W22", NULL, NULL, NULL, &eq_number);
    snprintf(want, sizeof(want), "EQ-%04d-000001", f->year);
    assert_string_equal(eq_number, want);

    assert_int_equal(db_wo_create(f->db, a, other, user, machine, "First", NULL, &wo), 0);
    snprintf(want, sizeof(want), "WO-%04d-000001", f->year);
    assert_string_equal(wo.number, want);

    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_wo_create(f->db, a, other, user, machine, "Rolled back", NULL, &wo), 0);
    snprintf(want, sizeof(want), "WO-%04d-000002", f->year);
    assert_string_equal(wo.number, want);
    assert_int_equal(db_rollback(f->db), 0);

    assert_int_equal(db_wo_create(f->db, a, other, user, machine, "Second", NULL, &wo), 0);
    assert_string_equal(wo.number, want);
    assert_string_equal(wo.title, "Second");

    /* Same for equipment. */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(
        db_equipment_add(f->db, a, other, user,
                         &(struct equipment_fields){.manufacturer = "ABB", .model = "ACS580"}, &e),
        0);
    assert_int_equal(db_rollback(f->db), 0);
    assert_int_equal(
        db_equipment_add(f->db, a, other, user,
                         &(struct equipment_fields){.manufacturer = "ABB", .model = "ACS880"}, &e),
        0);
    snprintf(want, sizeof(want), "EQ-%04d-000002", f->year);
    assert_string_equal(e.number, want);
    assert_string_equal(e.model, "ACS880");
    arena_free(a);
}

/* Past 999999 the number grows a digit instead of wrapping, and the
 * handlers still accept it. */
static void test_seven_digits(void **state)
{
    struct fixture *f = *state;
    struct work_order wo;
    struct arena *a;
    char want[32], fid[24], cmd[64];
    int64_t fac, user, machine;
    const char *reply;

    assert_int_equal(arena_new(&a), 0);
    fac = pgtest_factory(f->db, a, "Numbers Plant Big");
    user = pgtest_user(f->db, a, fac, "numbers-big", "Bea", "admin");
    machine =
        pgtest_equipment(f->db, a, fac, user, "KSB", "Etanorm 065-040-250", NULL, NULL, NULL, NULL);
    assert_int_equal(db_wo_create(f->db, a, fac, user, machine, "One", NULL, &wo), 0);
    snprintf(fid, sizeof(fid), "%lld", (long long)fac);
    PQclear(pgtest_q(f->c,
                     "UPDATE number_sequences SET last = 999998 WHERE factory_id = $1 "
                     "AND kind = 'WO'",
                     fid, NULL));

    assert_int_equal(db_wo_create(f->db, a, fac, user, machine, "Nines", NULL, &wo), 0);
    snprintf(want, sizeof(want), "WO-%04d-999999", f->year);
    assert_string_equal(wo.number, want);
    assert_int_equal(db_wo_create(f->db, a, fac, user, machine, "Million", NULL, &wo), 0);
    snprintf(want, sizeof(want), "WO-%04d-1000000", f->year);
    assert_string_equal(wo.number, want);

    snprintf(cmd, sizeof(cmd), "/wo view %s", want);
    reply = pgtest_say(f->db, "numbers-big", cmd);
    pgtest_assert_contains(reply, want);
    pgtest_assert_contains(reply, "Million");
    arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_work_orders_8x100),
        cmocka_unit_test(test_equipment_4x50),
        cmocka_unit_test(test_rollback_and_per_factory),
        cmocka_unit_test(test_seven_digits),
    };
    int status;

    if (!pgtest_init(&status))
        return status;
    return cmocka_run_group_tests_name("integration-numbers", tests, setup, teardown);
}
