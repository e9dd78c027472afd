/* The daily digest against PostgreSQL (db/digest.c, handlers/digest.c):
 * numbers known in advance for one local day of a factory in New York
 * (alarms by severity, the mean time to acknowledge, work orders opened,
 * completed and overdue), rows just across either edge of the local day
 * and another factory's rows left out; a quiet factory says so; who gets
 * it; the digest time's values; and the claim: once per factory and local
 * day however many connections try, nothing before the time, the same day
 * after a late start, none when off, a rolled-back claim claimable again. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarm.h"
#include "arena.h"
#include "digest.h"
#include "digest_reply.h"
#include "handlers.h"
#include "pgtest.h"
#include "queue.h"

/* The day the numbers are about: a Tuesday, after New York moved to
 * summer time (UTC-4), before Europe did. */
#define DAY "2026-03-10"

struct fixture {
    struct pgtest_db d;
    PGconn *c;
    struct db *db, *db2; /* two connections: as two rivet serve processes */
    struct arena *a;
    int64_t alpha, beta, quiet, machine, beta_machine;
};

/* An instant as Unix seconds, read by PostgreSQL ("2026-03-10 12:00+00"). */
static double at(struct fixture *f, const char *ts)
{
    char *s = pgtest_qstr(f->c, "SELECT extract(epoch FROM $1::timestamptz)::text", ts, NULL);
    double v;

    assert_non_null(s);
    v = strtod(s, NULL);
    free(s);
    return v;
}

static void sql(struct fixture *f, const char *q, const char *p1, const char *p2)
{
    PQclear(pgtest_q(f->c, q, p1, p2, NULL));
}

static char *num(int64_t v)
{
    static char b[4][24];
    static int k;

    k = (k + 1) % 4;
    snprintf(b[k], sizeof(b[k]), "%lld", (long long)v);
    return b[k];
}

/* An alarm of the factory's device "d1" raised at created (local time of
 * zone tz), acknowledged ack_s later (< 0: not acknowledged). */
static void alarm_at(struct fixture *f, int64_t factory, const char *severity, const char *created,
                     int ack_s)
{
    char ack[16];

    snprintf(ack, sizeof(ack), "%d", ack_s);
    PQclear(pgtest_q(
        f->c,
        "INSERT INTO alarms (factory_id, device_id, source, severity, message, observed_at, "
        "  created_at, acknowledged_at) "
        "SELECT $1::bigint, d.id, 'device', $2, 'test alarm at ' || $3, t, t, "
        "  CASE WHEN $4::int >= 0 THEN t + make_interval(secs => $4::int) END "
        "FROM devices d, (SELECT $3::timestamptz AS t) x WHERE d.factory_id = $1::bigint",
        num(factory), severity, created, ack, NULL));
}

/* A work order opened at created, with a status and completed_at (may be
 * NULL). */
static void wo_at(struct fixture *f, int64_t factory, int64_t machine, const char *number,
                  const char *title, const char *status, const char *created, const char *completed)
{
    PQclear(pgtest_q(f->c,
                     "INSERT INTO work_orders (factory_id, number, equipment_id, title, status, "
                     "  priority, created_at, updated_at, completed_at) "
                     "VALUES ($1::bigint, $2, $3::bigint, $4, $5, 'high', $6::timestamptz, "
                     "  $6::timestamptz, nullif($7, '')::timestamptz)",
                     num(factory), number, num(machine), title, status, created,
                     completed ? completed : "", NULL));
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    int64_t admin, badmin;

    assert_non_null(f);
    pgtest_db_create(&f->d);
    f->db = pgtest_connect(&f->d);
    f->db2 = pgtest_connect(&f->d);
    f->c = pgtest_pq(&f->d);
    assert_int_equal(arena_new(&f->a), 0);
    pgtest_migrate(f->db);
    f->alpha = pgtest_factory(f->db, f->a, "Plant Alpha");
    f->beta = pgtest_factory(f->db, f->a, "Plant Beta");
    f->quiet = pgtest_factory(f->db, f->a, "Quiet Plant");
    assert_int_equal(db_factory_set(f->db, f->alpha, "timezone", "America/New_York"), 0);
    assert_int_equal(db_factory_set(f->db, f->beta, "timezone", "America/New_York"), 0);
    admin = pgtest_user(f->db, f->a, f->alpha, "alpha-admin", "Alpha Admin", "admin");
    badmin = pgtest_user(f->db, f->a, f->beta, "beta-admin", "Beta Admin", "admin");
    f->machine = pgtest_equipment(f->db, f->a, f->alpha, admin, "Siemens", "G120C", "Main drive",
                                  "XAJ123", "Line 1", NULL);
    f->beta_machine =
        pgtest_equipment(f->db, f->a, f->beta, badmin, "ABB", "ACS580", "Fan", "B1", "Hall", NULL);
    sql(f, "INSERT INTO devices (factory_id, key) VALUES ($1::bigint, 'd1'), ($2::bigint, 'd1')",
        num(f->alpha), num(f->beta));

    /* Alpha's day (New York, UTC-4): 1 critical, 2 high, 1 medium; three
     * acknowledged after 600, 1200 and 300 s: a mean of 700 s. */
    alarm_at(f, f->alpha, "critical", DAY " 08:00 America/New_York", 600);
    alarm_at(f, f->alpha, "high", DAY " 09:00 America/New_York", 1200);
    alarm_at(f, f->alpha, "high", DAY " 10:00 America/New_York", -1);
    /* 23:30 local is 03:30 UTC on the next day: still this day here */
    alarm_at(f, f->alpha, "medium", DAY " 23:30 America/New_York", 300);
    /* 00:10 the next local day, and 23:50 the day before (03:50 UTC on
     * this day): neither counts */
    alarm_at(f, f->alpha, "low", "2026-03-11 00:10 America/New_York", 5);
    alarm_at(f, f->alpha, "low", "2026-03-09 23:50 America/New_York", 5);
    /* Beta's alarm that day: not Alpha's */
    alarm_at(f, f->beta, "critical", DAY " 12:00 America/New_York", 60);

    /* Alpha's work orders: 2 opened that day, 1 completed, 2 overdue
     * (opened 30 and 10 days before the day's end, still open). */
    wo_at(f, f->alpha, f->machine, "WO-2026-000001", "Opened in the morning", "open",
          DAY " 09:00 America/New_York", NULL);
    wo_at(f, f->alpha, f->machine, "WO-2026-000002", "Opened late at night", "open",
          DAY " 23:30 America/New_York", NULL);
    wo_at(f, f->alpha, f->machine, "WO-2026-000003", "Completed that day", "completed",
          "2026-02-18 12:00 America/New_York", DAY " 15:00 America/New_York");
    wo_at(f, f->alpha, f->machine, "WO-2026-000004", "Ten days open", "open",
          "2026-02-28 12:00 America/New_York", NULL);
    wo_at(f, f->alpha, f->machine, "WO-2026-000005", "Thirty days in progress", "in_progress",
          "2026-02-08 12:00 America/New_York", NULL);
    wo_at(f, f->alpha, f->machine, "WO-2026-000006", "Three days open", "on_hold",
          "2026-03-07 12:00 America/New_York", NULL);
    wo_at(f, f->alpha, f->machine, "WO-2026-000007", "Done long ago", "completed",
          "2026-01-29 12:00 America/New_York", "2026-02-03 12:00 America/New_York");
    wo_at(f, f->alpha, f->machine, "WO-2026-000008", "Cancelled", "cancelled",
          "2026-02-26 12:00 America/New_York", NULL);
    /* completed the next local day (01:00 UTC on the 11th is the 10th in
     * New York: counts) and just after midnight local (does not) */
    wo_at(f, f->alpha, f->machine, "WO-2026-000009", "Completed at 21:00", "completed",
          DAY " 08:00 America/New_York", "2026-03-11 01:00+00");
    wo_at(f, f->alpha, f->machine, "WO-2026-000010", "Completed after midnight", "completed",
          "2026-03-09 08:00 America/New_York", "2026-03-11 00:05 America/New_York");
    /* Beta's: opened that day, overdue, completed that day */
    wo_at(f, f->beta, f->beta_machine, "WO-2026-000001", "Beta open", "open",
          "2026-02-01 12:00 America/New_York", NULL);
    wo_at(f, f->beta, f->beta_machine, "WO-2026-000002", "Beta today", "completed",
          DAY " 10:00 America/New_York", DAY " 11:00 America/New_York");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    PQfinish(f->c);
    db_close(f->db);
    db_close(f->db2);
    arena_free(f->a);
    pgtest_db_drop(&f->d);
    free(f);
    return 0;
}

/* ---- the numbers ---- */

static void test_known_day(void **state)
{
    struct fixture *f = *state;
    struct digest d;

    assert_int_equal(db_digest_collect(f->db, f->a, f->alpha, DAY, 0, &d), 0);
    assert_string_equal(d.date, DAY);
    assert_string_equal(d.weekday, "Tuesday");
    assert_string_equal(d.timezone, "America/New_York");
    assert_int_equal(d.alarms[0], 0); /* low: both outside the day */
    assert_int_equal(d.alarms[1], 1);
    assert_int_equal(d.alarms[2], 2);
    assert_int_equal(d.alarms[3], 1);
    assert_int_equal(d.acknowledged, 3);
    assert_true(d.mean_ack_s > 699.9 && d.mean_ack_s < 700.1);
    assert_int_equal(d.wo_opened, 3);    /* 1, 2 and 9 */
    assert_int_equal(d.wo_completed, 2); /* 3 and 9 */
    assert_int_equal(d.overdue, 2);
    assert_int_equal(d.n_oldest, 2);
    assert_string_equal(d.oldest[0].number, "WO-2026-000005");
    assert_int_equal(d.oldest[0].age_days, 30);
    assert_string_equal(d.oldest[1].number, "WO-2026-000004");
    assert_int_equal(d.oldest[1].age_days, 10);

    /* the day before and the day after, by the same local edges */
    assert_int_equal(db_digest_collect(f->db, f->a, f->alpha, "2026-03-09", 0, &d), 0);
    assert_int_equal(d.alarms[0], 1);
    assert_int_equal(d.alarms[3] + d.alarms[2] + d.alarms[1], 0);
    assert_int_equal(d.wo_opened, 1); /* 10 */
    assert_int_equal(db_digest_collect(f->db, f->a, f->alpha, "2026-03-11", 0, &d), 0);
    assert_int_equal(d.alarms[0], 1);
    assert_int_equal(d.acknowledged, 1);
    assert_true(d.mean_ack_s > 4.9 && d.mean_ack_s < 5.1);
    assert_int_equal(d.wo_completed, 1); /* 10 */
    assert_int_equal(d.wo_opened, 0);
}

/* Without a date: the day before the factory's local date at now. At
 * 02:00 UTC on the 11th it is still the 10th in New York. */
static void test_yesterday_is_local(void **state)
{
    struct fixture *f = *state;
    struct digest d;

    assert_int_equal(
        db_digest_collect(f->db, f->a, f->alpha, NULL, at(f, "2026-03-11 02:00+00"), &d), 0);
    assert_string_equal(d.date, "2026-03-09");
    assert_int_equal(
        db_digest_collect(f->db, f->a, f->alpha, NULL, at(f, "2026-03-11 07:00+00"), &d), 0);
    assert_string_equal(d.date, DAY);
    assert_int_equal(d.alarms[3], 1);
    assert_int_equal(d.overdue, 2);
}

static void test_other_factory(void **state)
{
    struct fixture *f = *state;
    struct digest d;

    assert_int_equal(db_digest_collect(f->db, f->a, f->beta, DAY, 0, &d), 0);
    assert_int_equal(d.alarms[3], 1);
    assert_int_equal(d.alarms[0] + d.alarms[1] + d.alarms[2], 0);
    assert_int_equal(d.acknowledged, 1);
    assert_true(d.mean_ack_s > 59.9 && d.mean_ack_s < 60.1);
    assert_int_equal(d.wo_opened, 1);
    assert_int_equal(d.wo_completed, 1);
    assert_int_equal(d.overdue, 1);
    assert_string_equal(d.oldest[0].title, "Beta open");
    assert_int_equal(db_digest_collect(f->db, f->a, 999999, DAY, 0, &d), -ENOENT);
}

static void test_quiet_factory(void **state)
{
    struct fixture *f = *state;
    struct digest d;
    struct reply rep;

    assert_int_equal(db_digest_collect(f->db, f->a, f->quiet, DAY, 0, &d), 0);
    assert_int_equal(d.alarms[0] + d.alarms[1] + d.alarms[2] + d.alarms[3], 0);
    assert_int_equal(d.wo_opened + d.wo_completed + d.overdue + d.n_oldest, 0);
    assert_true(d.mean_ack_s < 0);
    assert_int_equal(digest_reply(f->a, &d, &rep), 0);
    pgtest_assert_contains(rep.text, "Daily digest · Quiet Plant");
    pgtest_assert_contains(rep.text, "Tuesday " DAY " (UTC)");
    pgtest_assert_contains(rep.text, "A quiet day: no alarms, no work orders opened or completed.");
    pgtest_assert_contains(rep.text, "Nothing overdue");
    pgtest_assert_not_contains(rep.text, "Mean time");
}

static void test_bad_dates(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {"2026-02-30", "2026-3-10",  "2026-03-10x", "10.03.2026",
                                      "",           "1999-12-31", "2026-13-01",  "2026-00-10",
                                      "x026-03-10", "2026-02-29"};
    struct digest d;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(db_digest_collect(f->db, f->a, f->alpha, bad[i], 0, &d), -EINVAL);
    assert_int_equal(db_digest_collect(f->db, f->a, f->alpha, "2028-02-29", 0, &d), 0);
}

/* ---- the text ---- */

static void test_reply_text(void **state)
{
    struct fixture *f = *state;
    struct digest d;
    struct reply rep;

    assert_int_equal(db_digest_collect(f->db, f->a, f->alpha, DAY, 0, &d), 0);
    assert_int_equal(digest_reply(f->a, &d, &rep), 0);
    assert_null(rep.chat_id);
    pgtest_assert_contains(rep.text, "Daily digest · Plant Alpha");
    pgtest_assert_contains(rep.text, "Tuesday " DAY " (America/New_York)");
    pgtest_assert_contains(rep.text,
                           "Alarms: 4 — 🔴 1 critical · 🟠 2 high · 🟡 1 medium\n");
    pgtest_assert_contains(rep.text, "Mean time to acknowledge: 12 min (3 of 4 acknowledged)");
    pgtest_assert_contains(rep.text, "Work orders: 3 opened · 2 completed");
    pgtest_assert_contains(rep.text, "Overdue (open more than 7 days): 2");
    /* oldest first */
    assert_true(strstr(rep.text, "WO-2026-000005 Thirty days in progress · 30 days · in progress") <
                strstr(rep.text, "WO-2026-000004 Ten days open · 10 days · open"));
    assert_non_null(strstr(rep.text, "WO-2026-000004 Ten days open · 10 days · open"));
    pgtest_assert_not_contains(rep.text, "Beta");
    pgtest_assert_not_contains(rep.text, "quiet");

    /* more overdue than lines: the rest counted */
    d.overdue = 9;
    assert_int_equal(digest_reply(f->a, &d, &rep), 0);
    pgtest_assert_contains(rep.text, "… and 7 more (/wo list)");
    /* alarms none acknowledged */
    d.acknowledged = 0;
    d.mean_ack_s = -1;
    assert_int_equal(digest_reply(f->a, &d, &rep), 0);
    pgtest_assert_contains(rep.text, "None acknowledged yet");
}

static void test_durations(void **state)
{
    static const struct {
        double s;
        const char *want;
    } cases[] = {{0, "0 s"},           {59.4, "59 s"},       {60, "1 min"},
                 {700, "12 min"},      {3599, "1 h 00 min"}, {3600, "1 h 00 min"},
                 {5430, "1 h 31 min"}, {86399, "1 d 0 h"},   {90000, "1 d 1 h"},
                 {-5, "0 s"}};
    char out[32];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        digest_duration(cases[i].s, out, sizeof(out));
        assert_string_equal(out, cases[i].want);
    }
}

/* ---- who gets it ---- */

static void test_recipients(void **state)
{
    struct fixture *f = *state;
    struct alarm_recipient *rc;
    struct user u;
    int64_t sue, ada, ted, ivy;
    int n;

    assert_int_equal(
        db_user_create(f->db, f->a, f->alpha, CHANNEL_TELEGRAM, "7001", "Sue", "supervisor", &u),
        0);
    sue = u.id;
    assert_int_equal(
        db_user_create(f->db, f->a, f->alpha, CHANNEL_WHATSAPP, "4917000001", "Ada", "admin", &u),
        0);
    ada = u.id;
    assert_int_equal(
        db_user_create(f->db, f->a, f->alpha, CHANNEL_TELEGRAM, "7002", "Ted", "technician", &u),
        0);
    ted = u.id;
    assert_int_equal(
        db_user_create(f->db, f->a, f->alpha, CHANNEL_TELEGRAM, "7003", "Ivy", "supervisor", &u),
        0);
    ivy = u.id;
    /* Sue is also on WhatsApp; Ivy is switched off; a Beta supervisor */
    sql(f, "UPDATE users SET whatsapp_id = '4917000002' WHERE id = $1::bigint", num(sue), NULL);
    sql(f, "UPDATE users SET active = false WHERE id = $1::bigint", num(ivy), NULL);
    assert_int_equal(
        db_user_create(f->db, f->a, f->beta, CHANNEL_TELEGRAM, "7004", "Bea", "supervisor", &u), 0);
    /* no chat yet: nobody can be reached */
    assert_int_equal(db_digest_recipients(f->db, f->a, f->alpha, &rc, &n), 0);
    assert_int_equal(n, 0);
    for (const char *const *c = (const char *const[]){"7001", "7002", "7003", "7004", NULL}; *c;
         c++)
        assert_int_equal(db_chat_seen(f->db, "telegram", *c, "private"), 0);
    assert_int_equal(db_chat_seen(f->db, "whatsapp", "4917000001", "private"), 0);
    assert_int_equal(db_chat_seen(f->db, "whatsapp", "4917000002", "private"), 0);

    assert_int_equal(db_digest_recipients(f->db, f->a, f->alpha, &rc, &n), 0);
    assert_int_equal(n, 3);
    assert_true(rc[0].user_id == sue && strcmp(rc[0].channel, "telegram") == 0 &&
                strcmp(rc[0].chat_id, "7001") == 0);
    assert_true(rc[1].user_id == sue && strcmp(rc[1].channel, "whatsapp") == 0 &&
                strcmp(rc[1].chat_id, "4917000002") == 0);
    assert_true(rc[2].user_id == ada && strcmp(rc[2].channel, "whatsapp") == 0);
    for (int i = 0; i < n; i++)
        assert_true(rc[i].user_id != ted && rc[i].user_id != ivy);

    /* a chat that blocked the bot is not written to */
    assert_int_equal(db_chat_set_active(f->db, "telegram", "7001", false), 0);
    assert_int_equal(db_digest_recipients(f->db, f->a, f->alpha, &rc, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rc[0].channel, "whatsapp");
    assert_int_equal(db_chat_set_active(f->db, "telegram", "7001", true), 0);

    assert_int_equal(db_digest_recipients(f->db, f->a, f->beta, &rc, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rc[0].chat_id, "7004");
}

/* ---- the setting ---- */

static void test_digest_time_values(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {"24:00",  "12:60", "1200",     "",      "12:5",
                                      "-1:00",  "7",     "07:00:00", "7:0",   " 7:00",
                                      "07:00 ", "ab:cd", "on",       "123:00"};
    const char *t;

    assert_int_equal(db_digest_get_time(f->db, f->a, f->quiet, &t), 0);
    assert_non_null(t);
    assert_string_equal(t, "07:00"); /* the default */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(db_digest_set_time(f->db, f->quiet, bad[i]), -EINVAL);
        assert_int_equal(db_digest_get_time(f->db, f->a, f->quiet, &t), 0);
        assert_string_equal(t, "07:00");
    }
    assert_int_equal(db_digest_set_time(f->db, f->quiet, "6:05"), 0);
    assert_int_equal(db_digest_get_time(f->db, f->a, f->quiet, &t), 0);
    assert_string_equal(t, "06:05");
    assert_int_equal(db_digest_set_time(f->db, f->quiet, "23:59"), 0);
    assert_int_equal(db_digest_set_time(f->db, f->quiet, "OFF"), 0);
    assert_int_equal(db_digest_get_time(f->db, f->a, f->quiet, &t), 0);
    assert_null(t);
    assert_int_equal(db_digest_set_time(f->db, f->quiet, "07:00"), 0);
    assert_int_equal(db_digest_set_time(f->db, 999999, "07:00"), -ENOENT);
    /* an unknown zone changes nothing */
    assert_int_equal(db_factory_set(f->db, f->quiet, "timezone", "Mars/Olympus_Mons"), -EINVAL);
    assert_int_equal(
        pgtest_qint(f->c, "SELECT count(*) FROM factories WHERE timezone = 'UTC' AND id = $1",
                    num(f->quiet), NULL),
        1);
}

/* ---- the claim ---- */

/* One claim in its own transaction on db: the factory claimed, 0 when
 * none was due. */
static int64_t claim(struct fixture *f, struct db *db, double now)
{
    struct digest_claim c;
    int r;

    assert_int_equal(db_begin(db), 0);
    r = db_digest_claim(db, f->a, now, NULL, 0, &c);
    if (r == -ENOENT) {
        assert_int_equal(db_rollback(db), 0);
        return 0;
    }
    assert_int_equal(r, 0);
    assert_int_equal(db_commit(db), 0);
    return c.factory_id;
}

/* Only the quiet factory (UTC, 07:00) takes part; the others are off. */
static void claim_setup(struct fixture *f)
{
    sql(f, "UPDATE factories SET digest_time = NULL, digest_last_sent = NULL", NULL, NULL);
    sql(f, "UPDATE factories SET digest_time = '07:00' WHERE id = $1::bigint", num(f->quiet), NULL);
}

static void test_claim_once_a_day(void **state)
{
    struct fixture *f = *state;
    struct digest_claim c;

    claim_setup(f);
    /* before the time: nothing */
    assert_int_equal(claim(f, f->db, at(f, DAY " 06:59:59+00")), 0);
    /* at the time: once, whichever connection asks */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_digest_claim(f->db, f->a, at(f, DAY " 07:00:00+00"), NULL, 0, &c), 0);
    assert_int_equal(c.factory_id, f->quiet);
    assert_string_equal(c.today, DAY);
    assert_int_equal(db_commit(f->db), 0);
    assert_int_equal(claim(f, f->db, at(f, DAY " 07:00:30+00")), 0);
    assert_int_equal(claim(f, f->db2, at(f, DAY " 23:59:00+00")), 0);
    /* the next day, again once */
    assert_int_equal(claim(f, f->db2, at(f, "2026-03-11 06:00+00")), 0);
    assert_int_equal(claim(f, f->db2, at(f, "2026-03-11 07:01+00")), f->quiet);
    assert_int_equal(claim(f, f->db, at(f, "2026-03-11 07:01+00")), 0);
    /* a process that was down at 07:00 sends it when back, that day */
    assert_int_equal(claim(f, f->db, at(f, "2026-03-12 15:30+00")), f->quiet);
    assert_int_equal(claim(f, f->db2, at(f, "2026-03-12 15:31+00")), 0);
    /* off: never */
    assert_int_equal(db_digest_set_time(f->db, f->quiet, "off"), 0);
    assert_int_equal(claim(f, f->db, at(f, "2026-03-13 12:00+00")), 0);
    assert_int_equal(db_digest_set_time(f->db, f->quiet, "07:00"), 0);
    assert_int_equal(claim(f, f->db, at(f, "2026-03-13 12:00+00")), f->quiet);
}

/* Two processes at once: the second passes over the row the first holds
 * and, once the first commits, finds it sent; a claim rolled back (a
 * crash before the messages were queued) is claimed again. */
static void test_claim_race(void **state)
{
    struct fixture *f = *state;
    struct digest_claim c1, c2;
    double now = at(f, DAY " 07:05+00");

    claim_setup(f);
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_begin(f->db2), 0);
    assert_int_equal(db_digest_claim(f->db, f->a, now, NULL, 0, &c1), 0);
    assert_int_equal(db_digest_claim(f->db2, f->a, now, NULL, 0, &c2), -ENOENT);
    assert_int_equal(db_rollback(f->db2), 0);
    assert_int_equal(db_commit(f->db), 0);
    assert_int_equal(claim(f, f->db2, now), 0);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM factories WHERE digest_last_sent = $1::date",
                                 DAY, NULL),
                     1);

    /* rolled back: lost nothing */
    claim_setup(f);
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_digest_claim(f->db, f->a, now, NULL, 0, &c1), 0);
    assert_int_equal(db_rollback(f->db), 0);
    assert_int_equal(claim(f, f->db2, now), f->quiet);
    assert_int_equal(claim(f, f->db, now), 0);
}

/* Each factory by its own zone and time; the skip list passes one over. */
static void test_claim_zones(void **state)
{
    struct fixture *f = *state;
    struct digest_claim c;
    int64_t skip[1];

    claim_setup(f);
    sql(f,
        "UPDATE factories SET digest_time = '07:00', timezone = 'Asia/Tokyo' WHERE id = "
        "$1::bigint",
        num(f->beta), NULL);
    /* 22:30 UTC on the 9th is 07:30 on the 10th in Tokyo, 22:30 in UTC */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_digest_claim(f->db, f->a, at(f, "2026-03-09 22:30+00"), NULL, 0, &c), 0);
    assert_int_equal(c.factory_id, f->beta);
    assert_string_equal(c.today, DAY);
    assert_int_equal(db_commit(f->db), 0);
    assert_int_equal(claim(f, f->db, at(f, "2026-03-09 22:31+00")), f->quiet);
    assert_int_equal(claim(f, f->db, at(f, "2026-03-09 22:32+00")), 0);
    /* the next morning in both (08:00 on the 11th in Tokyo, 23:00 on the
     * 10th in UTC): the skip list passes Beta over */
    skip[0] = f->beta;
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_digest_claim(f->db, f->a, at(f, DAY " 23:00+00"), skip, 1, &c), 0);
    assert_int_equal(c.factory_id, f->quiet);
    assert_int_equal(db_digest_claim(f->db, f->a, at(f, DAY " 23:00+00"), skip, 1, &c), -ENOENT);
    assert_int_equal(db_commit(f->db), 0);
    assert_int_equal(claim(f, f->db, at(f, DAY " 23:00+00")), f->beta);
    assert_int_equal(claim(f, f->db, at(f, DAY " 23:00+00")), 0);
    assert_int_equal(db_digest_claim(f->db, f->a, 0, NULL, -1, &c), -EINVAL);
    sql(f, "UPDATE factories SET timezone = 'America/New_York' WHERE id = $1::bigint", num(f->beta),
        NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_day),          cmocka_unit_test(test_yesterday_is_local),
        cmocka_unit_test(test_other_factory),      cmocka_unit_test(test_quiet_factory),
        cmocka_unit_test(test_bad_dates),          cmocka_unit_test(test_reply_text),
        cmocka_unit_test(test_durations),          cmocka_unit_test(test_recipients),
        cmocka_unit_test(test_digest_time_values), cmocka_unit_test(test_claim_once_a_day),
        cmocka_unit_test(test_claim_race),         cmocka_unit_test(test_claim_zones),
    };
    int status;

    if (!pgtest_init(&status))
        return status;
    return cmocka_run_group_tests_name("integration-digest", tests, setup, teardown);
}
