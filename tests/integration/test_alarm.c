/* Plant alarms in PostgreSQL (db/alarm.c): raising with cooldowns and
 * redeliveries, device codes, offline and back online, what devices_seen
 * keeps, the device limit, the factory settings and their timezone,
 * recipients (subscriptions, mutes, chats), supervisors, acknowledging and
 * resolving, deliveries, storm summaries and escalations taken by two
 * connections at once, rules and their NOTIFY, and factory isolation of
 * all of it. Each test gets a database of its own. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarm.h"
#include "arena.h"
#include "pgtest.h"
#include "queue.h"

/* 2024-01-15 12:00:00 UTC (winter) and 2024-07-15 12:00:00 UTC (summer). */
#define T_WINTER 1705320000.0
#define T_SUMMER 1721044800.0

#define MAX_PEOPLE 12

struct person {
    const char *name;
    int64_t id;
};

struct fixture {
    struct pgtest_db d;
    PGconn *c;
    struct db *db;
    struct arena *a;
    int64_t alpha, beta;
    int64_t alice, sam, adam, bob;
    int64_t press, pump;     /* Alpha's devices */
    int64_t beta_press;      /* Beta's device with the same key as Alpha's press */
    int64_t rule, beta_rule; /* "hot" in each factory */
    struct person people[MAX_PEOPLE];
    int n_people;
};

static void person(struct fixture *f, const char *name, int64_t id)
{
    assert_true(f->n_people < MAX_PEOPLE);
    f->people[f->n_people++] = (struct person){name, id};
}

static const char *who(const struct fixture *f, int64_t id)
{
    for (int i = 0; i < f->n_people; i++)
        if (f->people[i].id == id)
            return f->people[i].name;
    return "?";
}

static int64_t device(struct fixture *f, int64_t factory, const char *key)
{
    struct device d;
    int r = db_device_register(f->db, f->a, factory, key, 100, &d);

    if (r < 0)
        fail_msg("db_device_register %s: %s (%s)", key, strerror(-r), db_errmsg(f->db));
    assert_string_equal(d.key, key);
    assert_int_equal(d.factory_id, factory);
    return d.id;
}

static int64_t rule(struct fixture *f, int64_t factory, const char *name, const char *severity)
{
    int64_t id = 0;
    int r = db_rule_save(f->db, factory, name, severity, "{\"when\": {\"temp\": {\">\": 80}}}",
                         false, &id);

    if (r < 0)
        fail_msg("db_rule_save %s: %s (%s)", name, strerror(-r), db_errmsg(f->db));
    assert_true(id > 0);
    return id;
}

/* Gives a user a Telegram id and, when chat, the chats row the outbox
 * needs (active or not). */
static void telegram(struct fixture *f, int64_t user, const char *tg_id, bool chat, bool active)
{
    char uid[24];

    snprintf(uid, sizeof(uid), "%" PRId64, user);
    PQclear(pgtest_q(f->c, "UPDATE users SET telegram_user_id = $1::bigint WHERE id = $2::bigint",
                     tg_id, uid, NULL));
    if (chat)
        PQclear(pgtest_q(f->c,
                         "INSERT INTO chats (channel, chat_id, active) "
                         "VALUES ('telegram', $1, $2::boolean)",
                         tg_id, active ? "true" : "false", NULL));
}

static void sql_id(struct fixture *f, const char *sql, int64_t id)
{
    char s[24];

    snprintf(s, sizeof(s), "%" PRId64, id);
    PQclear(pgtest_q(f->c, sql, s, NULL));
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    pgtest_db_create(&f->d);
    f->db = pgtest_connect(&f->d);
    f->c = pgtest_pq(&f->d);
    assert_int_equal(arena_new(&f->a), 0);
    pgtest_migrate(f->db);
    f->alpha = pgtest_factory(f->db, f->a, "Plant Alpha");
    f->beta = pgtest_factory(f->db, f->a, "Plant Beta");
    f->alice = pgtest_user(f->db, f->a, f->alpha, "alice", "Alice Alpha", "technician");
    f->sam = pgtest_user(f->db, f->a, f->alpha, "sam", "Sam Super", "supervisor");
    f->adam = pgtest_user(f->db, f->a, f->alpha, "adam", "Adam Admin", "admin");
    f->bob = pgtest_user(f->db, f->a, f->beta, "bob", "Bob Beta", "technician");
    person(f, "alice", f->alice);
    person(f, "sam", f->sam);
    person(f, "adam", f->adam);
    person(f, "bob", f->bob);
    telegram(f, f->alice, "1001", true, true);
    telegram(f, f->sam, "1002", true, true);
    telegram(f, f->adam, "1003", true, true);
    telegram(f, f->bob, "2001", true, true);
    f->press = device(f, f->alpha, "press-1");
    f->pump = device(f, f->alpha, "pump-2");
    f->beta_press = device(f, f->beta, "press-1");
    f->rule = rule(f, f->alpha, "hot", "high");
    f->beta_rule = rule(f, f->beta, "hot", "high");
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

/* ---- raising ---- */

static int raise_rule(struct fixture *f, int64_t factory, int64_t dev, int64_t rule_id,
                      const char *severity, double t, int cooldown, int64_t *id)
{
    struct alarm_new n = {.factory_id = factory,
                          .device_id = dev,
                          .rule_id = rule_id,
                          .source = ALARM_RULE,
                          .severity = severity,
                          .message = "temp 91.5 > 80",
                          .snapshot = "{\"temp\": 91.5}",
                          .observed_at = t,
                          .cooldown_s = cooldown};
    int64_t x = 0;
    int r = db_alarm_raise(f->db, &n, &x);

    if (r == 0)
        assert_true(x > 0);
    if (id)
        *id = x;
    return r;
}

static int raise_device(struct fixture *f, int64_t factory, int64_t dev, enum alarm_source src,
                        const char *code, const char *severity, int64_t *id)
{
    struct alarm_new n = {.factory_id = factory,
                          .device_id = dev,
                          .source = src,
                          .code = code,
                          .severity = severity,
                          .message = "Hydraulic pressure low",
                          .observed_at = T_WINTER};
    int64_t x = 0;
    int r = db_alarm_raise(f->db, &n, &x);

    if (id)
        *id = x;
    return r;
}

/* An alarm raised now, on dev, of the given severity (a rule with cooldown
 * 0 and a fresh instant each time). */
static int64_t alarm_now(struct fixture *f, int64_t factory, int64_t dev, int64_t rule_id,
                         const char *severity)
{
    static double tick;
    int64_t id;
    int r;

    tick += 1;
    r = raise_rule(f, factory, dev, rule_id, severity, T_WINTER + tick, 0, &id);
    if (r < 0)
        fail_msg("raise: %s (%s)", strerror(-r), db_errmsg(f->db));
    return id;
}

static void test_rule_cooldown(void **state)
{
    struct fixture *f = *state;
    struct alarm al;
    int64_t a1, a2, a3;

    assert_int_equal(db_factory_set(f->db, f->alpha, "timezone", "Europe/Berlin"), 0);
    assert_int_equal(raise_rule(f, f->alpha, f->press, f->rule, "high", T_WINTER, 60, &a1), 0);
    /* the same message again, and more within the cooldown */
    assert_int_equal(raise_rule(f, f->alpha, f->press, f->rule, "high", T_WINTER, 60, NULL),
                     -EEXIST);
    assert_int_equal(raise_rule(f, f->alpha, f->press, f->rule, "high", T_WINTER + 10, 60, NULL),
                     -EEXIST);
    assert_int_equal(raise_rule(f, f->alpha, f->press, f->rule, "high", T_WINTER + 59.9, 60, NULL),
                     -EEXIST);
    /* another device, or another factory's rule of the same name, is not a repeat */
    assert_int_equal(raise_rule(f, f->alpha, f->pump, f->rule, "high", T_WINTER + 10, 60, NULL), 0);
    assert_int_equal(
        raise_rule(f, f->beta, f->beta_press, f->beta_rule, "high", T_WINTER + 10, 60, NULL), 0);
    /* past the cooldown */
    assert_int_equal(raise_rule(f, f->alpha, f->press, f->rule, "high", T_WINTER + 60, 60, &a2), 0);
    assert_true(a2 > a1);
    /* out of order: a message observed before a2 but within its cooldown (a
     * gateway's backlog, another process's share of the stream) */
    assert_int_equal(raise_rule(f, f->alpha, f->press, f->rule, "high", T_WINTER + 30, 60, NULL),
                     -EEXIST);
    /* cooldown 0: every new instant is new, a redelivered one is not */
    assert_int_equal(raise_rule(f, f->alpha, f->press, f->rule, "high", T_WINTER + 61, 0, &a3), 0);
    assert_int_equal(raise_rule(f, f->alpha, f->press, f->rule, "high", T_WINTER + 61, 0, NULL),
                     -EEXIST);
    assert_int_equal(raise_rule(f, f->alpha, f->press, f->rule, "high", T_WINTER + 61.5, 0, NULL),
                     0);
    assert_int_equal(pgtest_qint(f->c, "SELECT count(*) FROM alarms", NULL), 6);

    assert_int_equal(db_alarm_get(f->db, f->a, f->alpha, a1, false, &al), 0);
    assert_string_equal(al.source, "rule");
    assert_string_equal(al.severity, "high");
    assert_string_equal(al.message, "temp 91.5 > 80");
    assert_string_equal(al.device_key, "press-1");
    assert_string_equal(al.rule_name, "hot");
    assert_int_equal(al.rule_id, f->rule);
    assert_int_equal(al.device_id, f->press);
    assert_null(al.code);
    assert_null(al.equipment_number);
    assert_null(al.equipment_label);
    assert_null(al.work_order_number);
    /* 12:00 UTC is 13:00 in Berlin in January */
    assert_string_equal(al.observed_at, "2024-01-15 13:00");
    assert_non_null(strstr(al.snapshot, "91.5"));
    assert_false(al.acknowledged || al.resolved || al.escalated);

    /* bad input never reaches the database */
    assert_int_equal(raise_rule(f, f->alpha, f->press, f->rule, "urgent", T_WINTER + 999, 0, NULL),
                     -EINVAL);
    assert_int_equal(raise_rule(f, f->alpha, f->press, 0, "high", T_WINTER + 999, 0, NULL),
                     -EINVAL);
}

static void test_device_codes(void **state)
{
    struct fixture *f = *state;
    int64_t e42, other, none;

    assert_int_equal(raise_device(f, f->alpha, f->press, ALARM_DEVICE, "E42", "critical", &e42), 0);
    assert_int_equal(raise_device(f, f->alpha, f->press, ALARM_DEVICE, "E42", "critical", NULL),
                     -EEXIST);
    assert_int_equal(raise_device(f, f->alpha, f->press, ALARM_DEVICE, "E43", "high", &other), 0);
    assert_int_equal(raise_device(f, f->alpha, f->press, ALARM_DEVICE, NULL, "low", &none), 0);
    assert_int_equal(raise_device(f, f->alpha, f->press, ALARM_DEVICE, NULL, "low", NULL), -EEXIST);
    /* without a code, another message is another alarm */
    {
        struct alarm_new n = {.factory_id = f->alpha,
                              .device_id = f->press,
                              .source = ALARM_DEVICE,
                              .severity = "critical",
                              .message = "Overtemperature",
                              .observed_at = T_WINTER};
        int64_t x;
        assert_int_equal(db_alarm_raise(f->db, &n, &x), 0);
        assert_int_equal(db_alarm_raise(f->db, &n, &x), -EEXIST);
    }
    /* the same code on another device, and an offline alarm, are separate */
    assert_int_equal(raise_device(f, f->alpha, f->pump, ALARM_DEVICE, "E42", "critical", NULL), 0);
    assert_int_equal(raise_device(f, f->alpha, f->press, ALARM_OFFLINE, NULL, "high", NULL), 0);
    assert_int_equal(raise_device(f, f->alpha, f->press, ALARM_OFFLINE, NULL, "high", NULL),
                     -EEXIST);
    /* resolved, the code may come again */
    assert_int_equal(db_alarm_resolve(f->db, f->alpha, e42, f->alice), 0);
    assert_int_equal(raise_device(f, f->alpha, f->press, ALARM_DEVICE, "E42", "critical", NULL), 0);
    assert_int_equal(raise_device(f, f->alpha, f->press, ALARM_DEVICE, "E42", "critical", NULL),
                     -EEXIST);
}

/* ---- devices ---- */

static void set_time(struct fixture *f, const char *sql, int64_t id, const char *ago)
{
    char s[24];

    snprintf(s, sizeof(s), "%" PRId64, id);
    PQclear(pgtest_q(f->c, sql, s, ago, NULL));
}

static double now_epoch(struct fixture *f)
{
    char *s = pgtest_qstr(f->c, "SELECT extract(epoch FROM now())::double precision", NULL);
    double v = strtod(s, NULL);

    free(s);
    return v;
}

static void test_offline_and_back(void **state)
{
    struct fixture *f = *state;
    struct device_seen seen;
    struct device d;
    struct alarm al;
    int64_t *ids, *facs, *back, *bfacs, never, fresh, old;
    int n, nb;
    char *msg, *want;

    /* press: seen 11.5 minutes ago; never: registered 3 hours ago, never
     * heard from; fresh: seen now; old: seen two days ago */
    never = device(f, f->alpha, "never-3");
    fresh = device(f, f->alpha, "fresh-4");
    old = device(f, f->alpha, "old-5");
    seen = (struct device_seen){.device_id = f->press, .last_seen = now_epoch(f) - 690};
    assert_int_equal(db_devices_seen(f->db, f->a, &seen, 1, &back, &bfacs, &nb), 0);
    assert_int_equal(nb, 0);
    seen = (struct device_seen){.device_id = fresh, .last_seen = now_epoch(f)};
    assert_int_equal(db_devices_seen(f->db, f->a, &seen, 1, &back, &bfacs, &nb), 0);
    set_time(f, "UPDATE devices SET created_at = now() - $2::interval WHERE id = $1::bigint", never,
             "3 hours");
    set_time(f, "UPDATE devices SET last_seen = now() - $2::interval WHERE id = $1::bigint", old,
             "2 days 5 minutes");
    /* pump is new: not silent long enough. Beta turns offline alarms off */
    set_time(f, "UPDATE devices SET created_at = now() - $2::interval WHERE id = $1::bigint",
             f->beta_press, "3 hours");
    assert_int_equal(db_factory_set(f->db, f->beta, "offline_s", "0"), 0);
    assert_int_equal(db_factory_set(f->db, f->alpha, "timezone", "America/New_York"), 0);

    /* Rivet has listened for 5 minutes: it cannot know yet */
    assert_int_equal(db_devices_offline(f->db, f->a, 300, &ids, &facs, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(db_devices_offline(f->db, f->a, 599, &ids, &facs, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(db_devices_offline(f->db, f->a, 3600, &ids, &facs, &n), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++)
        assert_int_equal(facs[i], f->alpha);
    /* once open, not again */
    assert_int_equal(db_devices_offline(f->db, f->a, 3600, &ids, &facs, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM alarms WHERE source = 'offline' "
                                 "AND severity = 'high' AND snapshot = '{}'",
                                 NULL),
                     3);

    {
        char fid[24];
        snprintf(fid, sizeof(fid), "%" PRId64, f->alpha);
        want = pgtest_qstr(f->c,
                           "SELECT 'No data for 11 min (last seen ' || to_char(last_seen AT TIME "
                           "ZONE 'America/New_York', 'HH24:MI') || ')' FROM devices "
                           "WHERE key = 'press-1' AND factory_id = $1::bigint",
                           fid, NULL);
        msg = pgtest_qstr(f->c,
                          "SELECT a.message FROM alarms a JOIN devices d ON d.id = a.device_id "
                          "WHERE d.key = 'press-1' AND a.factory_id = $1::bigint",
                          fid, NULL);
        assert_non_null(want);
        assert_non_null(msg);
        assert_string_equal(msg, want);
        free(msg);
        free(want);
        msg = pgtest_qstr(f->c,
                          "SELECT a.message FROM alarms a JOIN devices d ON d.id = a.device_id "
                          "WHERE d.key = 'never-3'",
                          NULL);
        assert_string_equal(msg, "No data for 3 h (never seen)");
        free(msg);
        want = pgtest_qstr(f->c,
                           "SELECT 'No data for 48 h (last seen ' || to_char(last_seen AT TIME "
                           "ZONE 'America/New_York', 'YYYY-MM-DD HH24:MI') || ')' FROM devices "
                           "WHERE key = 'old-5'",
                           NULL);
        msg = pgtest_qstr(f->c,
                          "SELECT a.message FROM alarms a JOIN devices d ON d.id = a.device_id "
                          "WHERE d.key = 'old-5'",
                          NULL);
        assert_string_equal(msg, want);
        free(msg);
        free(want);
    }
    assert_int_equal(db_device_get(f->db, f->a, f->alpha, "press-1", &d), 0);
    assert_true(d.offline);
    /* raising it by hand is a repeat too */
    assert_int_equal(raise_device(f, f->alpha, f->press, ALARM_OFFLINE, NULL, "high", NULL),
                     -EEXIST);

    /* back online: press and fresh report; only press had an alarm */
    {
        struct device_seen two[2] = {{.device_id = f->press, .last_seen = now_epoch(f)},
                                     {.device_id = fresh, .last_seen = now_epoch(f)}};
        char pid[24];
        int64_t press_alarm;

        snprintf(pid, sizeof(pid), "%" PRId64, f->press);
        press_alarm = pgtest_qint(
            f->c, "SELECT id FROM alarms WHERE device_id = $1::bigint AND source = 'offline'", pid,
            NULL);
        assert_int_equal(db_devices_seen(f->db, f->a, two, 2, &back, &bfacs, &nb), 0);
        assert_int_equal(nb, 1);
        assert_int_equal(back[0], press_alarm);
        assert_int_equal(bfacs[0], f->alpha);
        assert_int_equal(db_alarm_get(f->db, f->a, f->alpha, press_alarm, false, &al), 0);
        assert_true(al.resolved);
        assert_null(al.resolved_by); /* by Rivet */
        assert_non_null(al.resolved_at);
        assert_false(al.acknowledged);
        /* reported again: nothing left to resolve */
        assert_int_equal(db_devices_seen(f->db, f->a, two, 2, &back, &bfacs, &nb), 0);
        assert_int_equal(nb, 0);
    }
    assert_int_equal(db_device_get(f->db, f->a, f->alpha, "press-1", &d), 0);
    assert_false(d.offline);
    assert_int_equal(db_device_get(f->db, f->a, f->alpha, "never-3", &d), 0);
    assert_true(d.offline);
    assert_null(d.last_seen);
    assert_true(d.last_seen_epoch == 0);
}

static void test_seen_parameters(void **state)
{
    struct fixture *f = *state;
    const char *names[260], *odd[] = {"we\"ird", "back\\slash", "{brace}", "comma,name",
                                      "NULL",    "Zeta",        "ключ",    " spaced "};
    const char *dup[] = {"b", "a", "b"};
    struct device_seen s[3];
    struct device d;
    int64_t *back, *facs;
    char fid[24], buf[16][8];
    int nb;

    snprintf(fid, sizeof(fid), "%" PRId64, f->press);
    /* duplicates within a message and across devices in one flush */
    s[0] = (struct device_seen){
        .device_id = f->press, .last_seen = T_SUMMER, .params = dup, .n_params = 3};
    s[1] = (struct device_seen){
        .device_id = f->pump, .last_seen = T_SUMMER, .params = odd, .n_params = 8};
    s[2] = (struct device_seen){
        .device_id = f->press, .last_seen = T_WINTER, .params = odd, .n_params = 2};
    assert_int_equal(db_devices_seen(f->db, f->a, s, 3, &back, &facs, &nb), 0);
    assert_int_equal(db_device_get(f->db, f->a, f->alpha, "press-1", &d), 0);
    assert_string_equal(d.parameters, "a, b, back\\slash, we\"ird");
    /* the latest of the two */
    assert_true(d.last_seen_epoch == T_SUMMER);
    snprintf(fid, sizeof(fid), "%" PRId64, f->pump);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT cardinality(parameters) FROM devices "
                                 "WHERE id = $1::bigint",
                                 fid, NULL),
                     8);
    {
        char *arr = pgtest_qstr(f->c, "SELECT parameters::text FROM devices WHERE id = $1::bigint",
                                fid, NULL);
        /* bytewise order, every name verbatim ("NULL" is a name, not NULL) */
        assert_string_equal(arr, "{\" spaced \",\"NULL\",Zeta,\"back\\\\slash\",\"comma,name\","
                                 "\"we\\\"ird\",\"{brace}\",ключ}");
        free(arr);
        assert_int_equal(pgtest_qint(f->c,
                                     "SELECT count(*) FROM devices WHERE id = $1::bigint "
                                     "AND 'NULL' = ANY (parameters) "
                                     "AND array_position(parameters, NULL) IS NULL",
                                     fid, NULL),
                         1);
    }

    /* last_seen never goes back */
    s[0] = (struct device_seen){.device_id = f->press, .last_seen = T_WINTER};
    assert_int_equal(db_devices_seen(f->db, f->a, s, 1, &back, &facs, &nb), 0);
    assert_int_equal(db_device_get(f->db, f->a, f->alpha, "press-1", &d), 0);
    assert_true(d.last_seen_epoch == T_SUMMER);
    assert_string_equal(d.parameters, "a, b, back\\slash, we\"ird");

    /* at most 256: the names it has stay, new ones fill up what is left */
    snprintf(fid, sizeof(fid), "%" PRId64, f->press);
    for (int i = 0; i < 250; i++) {
        char *n = arena_printf(f->a, "m%03d", i);
        assert_non_null(n);
        names[i] = n;
    }
    s[0] = (struct device_seen){
        .device_id = f->press, .last_seen = T_SUMMER, .params = names, .n_params = 250};
    assert_int_equal(db_devices_seen(f->db, f->a, s, 1, &back, &facs, &nb), 0);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT cardinality(parameters) FROM devices "
                                 "WHERE id = $1::bigint",
                                 fid, NULL),
                     254);
    for (int i = 0; i < 10; i++) {
        snprintf(buf[i], sizeof(buf[i]), "0x%d", 9 - i);
        names[i] = buf[i];
    }
    s[0] = (struct device_seen){
        .device_id = f->press, .last_seen = T_SUMMER, .params = names, .n_params = 10};
    assert_int_equal(db_devices_seen(f->db, f->a, s, 1, &back, &facs, &nb), 0);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT cardinality(parameters) FROM devices "
                                 "WHERE id = $1::bigint",
                                 fid, NULL),
                     256);
    {
        char *arr = pgtest_qstr(f->c,
                                "SELECT array_to_string(parameters[1:4], ',') || '|' || "
                                "array_to_string(parameters[255:256], ',') FROM devices "
                                "WHERE id = $1::bigint",
                                fid, NULL);
        /* 0x0 and 0x1 came in; the rest did not fit; a, b, m249 stayed */
        assert_string_equal(arr, "0x0,0x1,a,b|m249,we\"ird");
        free(arr);
    }
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM devices WHERE id = $1::bigint "
                                 "AND parameters = (SELECT array_agg(p ORDER BY p COLLATE \"C\") "
                                 "FROM unnest(parameters) p)",
                                 fid, NULL),
                     1);
    /* a flush of nothing is fine */
    assert_int_equal(db_devices_seen(f->db, f->a, NULL, 0, &back, &facs, &nb), 0);
    assert_int_equal(nb, 0);
}

static void test_register_limit(void **state)
{
    struct fixture *f = *state;
    struct device d, *list;
    int64_t eq, beta_eq;
    int n, total;

    /* Alpha has two devices */
    assert_int_equal(db_device_register(f->db, f->a, f->alpha, "c-3", 2, &d), -ENOSPC);
    assert_int_equal(db_device_register(f->db, f->a, f->alpha, "c-3", 3, &d), 0);
    assert_string_equal(d.key, "c-3");
    assert_int_equal(db_device_register(f->db, f->a, f->alpha, "d-4", 3, &d), -ENOSPC);
    /* a known device is returned even when the factory is full */
    assert_int_equal(db_device_register(f->db, f->a, f->alpha, "press-1", 3, &d), 0);
    assert_int_equal(d.id, f->press);
    assert_int_equal(db_device_register(f->db, f->a, f->alpha, "press-1", 0, &d), 0);
    assert_int_equal(db_device_register(f->db, f->a, f->alpha, "bad key", 100, &d), -EINVAL);
    assert_int_equal(db_device_register(f->db, f->a, f->alpha, "", 100, &d), -EINVAL);
    assert_int_equal(pgtest_qint(f->c, "SELECT count(*) FROM devices", NULL), 4);

    assert_int_equal(db_device_list(f->db, f->a, f->alpha, 0, 2, &list, &n, &total), 0);
    assert_int_equal(total, 3);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].key, "c-3");
    assert_string_equal(list[1].key, "press-1");
    assert_int_equal(db_device_list(f->db, f->a, f->alpha, 2, 2, &list, &n, &total), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].key, "pump-2");
    assert_string_equal(list[0].parameters, "");
    assert_null(list[0].last_seen);
    assert_int_equal(db_device_get(f->db, f->a, f->alpha, "nope", &d), -ENOENT);

    /* linking: to this factory's machine only */
    eq = pgtest_equipment(f->db, f->a, f->alpha, f->alice, "Bosch", "PX-9", NULL, NULL, NULL, NULL);
    beta_eq = pgtest_equipment(f->db, f->a, f->beta, f->bob, "KSB", "Etanorm", "Feed pump", NULL,
                               NULL, NULL);
    assert_int_equal(db_device_link(f->db, f->alpha, "press-1", eq), 0);
    assert_int_equal(db_device_get(f->db, f->a, f->alpha, "press-1", &d), 0);
    assert_int_equal(d.equipment_id, eq);
    assert_string_equal(d.equipment_label, "Bosch PX-9");
    assert_non_null(d.equipment_number);
    assert_int_equal(db_device_link(f->db, f->alpha, "press-1", beta_eq), -ENOENT);
    assert_int_equal(db_device_link(f->db, f->alpha, "ghost", eq), -ENOENT);
    assert_int_equal(db_device_link(f->db, f->beta, "press-1", beta_eq), 0);
    assert_int_equal(db_device_get(f->db, f->a, f->beta, "press-1", &d), 0);
    assert_string_equal(d.equipment_label, "Feed pump");
    assert_int_equal(db_device_link(f->db, f->alpha, "press-1", 0), 0);
    assert_int_equal(db_device_get(f->db, f->a, f->alpha, "press-1", &d), 0);
    assert_int_equal(d.equipment_id, 0);
    assert_null(d.equipment_label);
}

/* ---- factory settings ---- */

static const struct alert_factory *find_factory(struct fixture *f, int64_t id)
{
    struct alert_factory *v;
    int n;

    assert_int_equal(db_alert_factories(f->db, f->a, &v, &n), 0);
    for (int i = 0; i < n; i++)
        if (v[i].id == id)
            return &v[i];
    fail_msg("factory %" PRId64 " not listed", id);
    return NULL;
}

static void test_factory_set(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *key, *value;
        int want;
    } cases[] = {
        {"auto_register", "off", 0},
        {"auto_register", "ON", 0},
        {"auto_register", "false", 0},
        {"auto_register", "true", 0},
        {"auto_register", "maybe", -EINVAL},
        {"auto_register", "", -EINVAL},
        {"auto_register", "1", -EINVAL},
        {"offline_s", "0", 0},
        {"offline_s", "10", 0},
        {"offline_s", "2592000", 0},
        {"offline_s", "9", -EINVAL},
        {"offline_s", "2592001", -EINVAL},
        {"offline_s", "-1", -EINVAL},
        {"offline_s", "12x", -EINVAL},
        {"offline_s", " 12", -EINVAL},
        {"offline_s", "", -EINVAL},
        {"offline_s", "99999999999999999999", -EINVAL},
        {"escalate_s", "0", 0},
        {"escalate_s", "1", 0},
        {"escalate_s", "2592000", 0},
        {"escalate_s", "2592001", -EINVAL},
        {"escalate_s", "1.5", -EINVAL},
        {"max_devices", "0", 0},
        {"max_devices", "1000000", 0},
        {"max_devices", "1000001", -EINVAL},
        {"max_devices", "ten", -EINVAL},
        {"timezone", "Mars/Olympus_Mons", -EINVAL},
        {"timezone", "'; DROP TABLE factories; --", -EINVAL},
        {"timezone", "", -EINVAL},
        {"timezone", "Europe/Berlin", 0},
        {"colour", "blue", -EINVAL},
        {"", "1", -EINVAL},
    };
    const struct alert_factory *af;

    af = find_factory(f, f->alpha);
    assert_true(af->auto_register);
    assert_int_equal(af->offline_s, 600);
    assert_int_equal(af->escalate_s, 900);
    assert_int_equal(af->max_devices, 10000);
    assert_int_equal(af->n_devices, 2);
    assert_string_equal(af->slug, "plant-alpha");
    assert_string_equal(af->timezone, "UTC");
    assert_int_equal(af->utc_offset_s, 0);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = db_factory_set(f->db, f->alpha, cases[i].key, cases[i].value);
        if (r != cases[i].want)
            fail_msg("%s=%s: %d, expected %d (%s)", cases[i].key, cases[i].value, r, cases[i].want,
                     db_errmsg(f->db));
    }
    af = find_factory(f, f->alpha);
    assert_true(af->auto_register);
    assert_int_equal(af->offline_s, 2592000);
    assert_int_equal(af->escalate_s, 2592000);
    assert_int_equal(af->max_devices, 1000000);
    assert_string_equal(af->timezone, "Europe/Berlin");
    assert_true(af->utc_offset_s == 3600 || af->utc_offset_s == 7200);
    /* Beta untouched */
    af = find_factory(f, f->beta);
    assert_int_equal(af->offline_s, 600);
    assert_string_equal(af->timezone, "UTC");
    assert_int_equal(af->n_devices, 1);

    /* as PostgreSQL spells it */
    assert_int_equal(db_factory_set(f->db, f->beta, "timezone", "america/new_york"), 0);
    assert_string_equal(find_factory(f, f->beta)->timezone, "America/New_York");
    assert_int_equal(db_factory_set(f->db, 999999, "offline_s", "60"), -ENOENT);

    /* a refused value does not spoil the caller's transaction */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_factory_set(f->db, f->alpha, "timezone", "Nowhere/Special"), -EINVAL);
    assert_int_equal(db_factory_set(f->db, f->alpha, "offline_s", "5"), -EINVAL);
    assert_int_equal(db_factory_set(f->db, f->alpha, "offline_s", "120"), 0);
    assert_int_equal(db_commit(f->db), 0);
    assert_int_equal(find_factory(f, f->alpha)->offline_s, 120);
}

static void test_utc_offset(void **state)
{
    struct fixture *f = *state;
    int off = 1;

    assert_int_equal(db_factory_utc_offset(f->db, f->alpha, T_WINTER, &off), 0);
    assert_int_equal(off, 0);
    assert_int_equal(db_factory_set(f->db, f->alpha, "timezone", "Europe/Berlin"), 0);
    assert_int_equal(db_factory_set(f->db, f->beta, "timezone", "America/New_York"), 0);
    assert_int_equal(db_factory_utc_offset(f->db, f->alpha, T_WINTER, &off), 0);
    assert_int_equal(off, 3600);
    assert_int_equal(db_factory_utc_offset(f->db, f->alpha, T_SUMMER, &off), 0);
    assert_int_equal(off, 7200);
    assert_int_equal(db_factory_utc_offset(f->db, f->beta, T_WINTER, &off), 0);
    assert_int_equal(off, -18000);
    assert_int_equal(db_factory_utc_offset(f->db, f->beta, T_SUMMER, &off), 0);
    assert_int_equal(off, -14400);
    /* Berlin's spring change: 2024-03-31 01:00 UTC */
    assert_int_equal(db_factory_utc_offset(f->db, f->alpha, 1711846800.0 - 1, &off), 0);
    assert_int_equal(off, 3600);
    assert_int_equal(db_factory_utc_offset(f->db, f->alpha, 1711846800.0, &off), 0);
    assert_int_equal(off, 7200);
    assert_int_equal(db_factory_utc_offset(f->db, 999999, T_WINTER, &off), -ENOENT);

    /* the loaded offset is the one of now */
    assert_int_equal(db_factory_utc_offset(f->db, f->beta, now_epoch(f), &off), 0);
    assert_int_equal(find_factory(f, f->beta)->utc_offset_s, off);
    assert_true(off == -18000 || off == -14400);
}

/* ---- recipients ---- */

/* "alice sam adam@whatsapp", in the order returned. */
static const char *recipients(struct fixture *f, int64_t factory, int64_t alarm)
{
    struct alarm_recipient *v;
    char *s = arena_strdup(f->a, "");
    int n;
    int r = db_alarm_recipients(f->db, f->a, factory, alarm, &v, &n);

    if (r < 0)
        fail_msg("db_alarm_recipients: %s (%s)", strerror(-r), db_errmsg(f->db));
    for (int i = 0; i < n; i++) {
        s = arena_printf(f->a, "%s%s%s%s", s, i ? " " : "", who(f, v[i].user_id),
                         strcmp(v[i].channel, "telegram") == 0 ? "" : "@whatsapp");
        assert_non_null(s);
        /* a Telegram private chat's id is the user's */
        if (strcmp(v[i].channel, "telegram") == 0)
            assert_int_equal(strspn(v[i].chat_id, "0123456789"), strlen(v[i].chat_id));
    }
    return s;
}

static void test_recipients(void **state)
{
    struct fixture *f = *state;
    int64_t carol, dave, erin, frank, hi, med, crit_pump, hi_pump, lo;

    carol = pgtest_user(f->db, f->a, f->alpha, "carol", "Carol Gone", "technician");
    dave = pgtest_user(f->db, f->a, f->alpha, "dave", "Dave Blocked", "technician");
    erin = pgtest_user(f->db, f->a, f->alpha, "erin", "Erin NoChat", "technician");
    frank = pgtest_user(f->db, f->a, f->alpha, "frank", "Frank Console", "technician");
    person(f, "carol", carol);
    person(f, "dave", dave);
    person(f, "erin", erin);
    person(f, "frank", frank);
    telegram(f, carol, "1004", true, true);
    sql_id(f, "UPDATE users SET active = false WHERE id = $1::bigint", carol);
    telegram(f, dave, "1005", true, false); /* blocked the bot */
    telegram(f, erin, "1006", false, false);

    hi = alarm_now(f, f->alpha, f->press, f->rule, "high");
    med = alarm_now(f, f->alpha, f->press, f->rule, "medium");
    lo = alarm_now(f, f->alpha, f->press, f->rule, "low");
    crit_pump = alarm_now(f, f->alpha, f->pump, f->rule, "critical");
    hi_pump = alarm_now(f, f->alpha, f->pump, f->rule, "high");

    /* no subscription: high and critical; inactive users and chats, users
     * without a chats row or without Telegram get nothing; Bob is Beta's */
    assert_string_equal(recipients(f, f->alpha, hi), "alice sam adam");
    assert_string_equal(recipients(f, f->alpha, crit_pump), "alice sam adam");
    assert_string_equal(recipients(f, f->alpha, med), "");

    /* Alice: medium everywhere, but only critical from the press */
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->alice, 0, "medium"), 0);
    assert_string_equal(recipients(f, f->alpha, med), "alice");
    assert_string_equal(recipients(f, f->alpha, lo), "");
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->alice, f->press, "critical"), 0);
    assert_string_equal(recipients(f, f->alpha, med), "");
    assert_string_equal(recipients(f, f->alpha, hi), "sam adam");
    assert_string_equal(recipients(f, f->alpha, hi_pump), "alice sam adam");
    /* low from the press: the device row wins over the factory row */
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->alice, f->press, "low"), 0);
    assert_string_equal(recipients(f, f->alpha, lo), "alice");

    /* Sam: off */
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->sam, 0, "off"), 0);
    assert_string_equal(recipients(f, f->alpha, crit_pump), "alice adam");
    /* off for the pump only, critical elsewhere */
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->sam, 0, "critical"), 0);
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->sam, f->pump, "off"), 0);
    assert_string_equal(recipients(f, f->alpha, crit_pump), "alice adam");
    assert_string_equal(recipients(f, f->alpha, hi), "alice adam");

    /* "/subscribe high" for every device clears Sam's pump row */
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->sam, 0, "high"), 0);
    assert_string_equal(recipients(f, f->alpha, crit_pump), "alice sam adam");

    /* Adam mutes the press, then everything; an expired mute does nothing */
    assert_int_equal(db_mute_set(f->db, f->alpha, f->adam, f->press, 3600), 0);
    assert_string_equal(recipients(f, f->alpha, hi), "alice sam");
    assert_string_equal(recipients(f, f->alpha, hi_pump), "alice sam adam");
    assert_int_equal(db_mute_set(f->db, f->alpha, f->adam, 0, 600), 0);
    assert_string_equal(recipients(f, f->alpha, hi_pump), "alice sam");
    PQclear(pgtest_q(f->c, "UPDATE alarm_mutes SET until = now() - interval '1 second'", NULL));
    assert_string_equal(recipients(f, f->alpha, hi), "alice sam adam");
    assert_string_equal(recipients(f, f->alpha, hi_pump), "alice sam adam");
    /* unmuting */
    assert_int_equal(db_mute_set(f->db, f->alpha, f->sam, f->pump, 600), 0);
    assert_string_equal(recipients(f, f->alpha, hi_pump), "alice adam");
    assert_int_equal(db_mute_set(f->db, f->alpha, f->sam, 0, 0), 0);
    assert_string_equal(recipients(f, f->alpha, hi_pump), "alice sam adam");
    assert_int_equal(db_mute_set(f->db, f->alpha, f->sam, 0, -5), -EINVAL);

    /* Dave's chat comes back; Erin's chat row appears */
    PQclear(pgtest_q(f->c, "UPDATE chats SET active = true WHERE chat_id = '1005'", NULL));
    PQclear(
        pgtest_q(f->c, "INSERT INTO chats (channel, chat_id) VALUES ('telegram', '1006')", NULL));
    assert_string_equal(recipients(f, f->alpha, hi_pump), "alice sam adam dave erin");

    /* a user on both channels gets two */
    {
        char uid[24];
        snprintf(uid, sizeof(uid), "%" PRId64, f->adam);
        PQclear(pgtest_q(f->c, "UPDATE users SET whatsapp_id = '+4915100000' WHERE id = $1::bigint",
                         uid, NULL));
        assert_string_equal(recipients(f, f->alpha, hi_pump), "alice sam adam dave erin");
        PQclear(pgtest_q(
            f->c, "INSERT INTO chats (channel, chat_id) VALUES ('whatsapp', '+4915100000')", NULL));
        assert_string_equal(recipients(f, f->alpha, hi_pump),
                            "alice sam adam adam@whatsapp dave erin");
    }

    /* bad words */
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->alice, 0, "urgent"), -EINVAL);
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->alice, 0, NULL), -EINVAL);
}

static void test_subscription_list(void **state)
{
    struct fixture *f = *state;
    struct alarm_subscription *v;
    int n;

    assert_int_equal(db_factory_set(f->db, f->alpha, "timezone", "Europe/Berlin"), 0);
    assert_int_equal(db_subscription_list(f->db, f->a, f->alpha, f->alice, &v, &n), 0);
    assert_int_equal(n, 0);
    /* the same rows again: changed, not doubled */
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->alice, 0, "low"), 0);
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->alice, 0, "medium"), 0);
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->alice, f->pump, "low"), 0);
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->alice, f->press, "off"), 0);
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->alice, f->pump, "critical"), 0);
    assert_int_equal(pgtest_qint(f->c, "SELECT count(*) FROM alarm_subscriptions", NULL), 3);
    assert_int_equal(db_mute_set(f->db, f->alpha, f->alice, f->press, 3600), 0);
    assert_int_equal(db_mute_set(f->db, f->alpha, f->alice, 0, 7200), 0);
    assert_int_equal(db_mute_set(f->db, f->alpha, f->alice, f->pump, 60), 0);
    PQclear(pgtest_q(f->c,
                     "UPDATE alarm_mutes SET until = now() - interval '1 minute' "
                     "WHERE device_id IS NOT NULL AND until < now() + interval '2 minutes'",
                     NULL));
    assert_int_equal(db_subscription_list(f->db, f->a, f->alpha, f->alice, &v, &n), 0);
    assert_int_equal(n, 5);
    assert_null(v[0].device_key);
    assert_string_equal(v[0].min_severity, "medium");
    assert_null(v[0].muted_until);
    assert_string_equal(v[1].device_key, "press-1");
    assert_string_equal(v[1].min_severity, "off");
    assert_string_equal(v[2].device_key, "pump-2");
    assert_string_equal(v[2].min_severity, "critical");
    assert_null(v[3].device_key);
    assert_string_equal(v[3].min_severity, "muted");
    assert_non_null(v[3].muted_until);
    assert_int_equal(strlen(v[3].muted_until), 16); /* YYYY-MM-DD HH:MM */
    assert_string_equal(v[4].device_key, "press-1");
    assert_string_equal(v[4].min_severity, "muted");
    {
        char *want = pgtest_qstr(f->c,
                                 "SELECT to_char(until AT TIME ZONE 'Europe/Berlin', "
                                 "'YYYY-MM-DD HH24:MI') FROM alarm_mutes WHERE device_id IS NULL",
                                 NULL);
        assert_string_equal(v[3].muted_until, want);
        free(want);
    }

    /* every device again: the per-device rows go */
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->alice, 0, "critical"), 0);
    assert_int_equal(db_subscription_list(f->db, f->a, f->alpha, f->alice, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_null(v[0].device_key);
    assert_string_equal(v[0].min_severity, "critical");
    assert_string_equal(v[1].min_severity, "muted");
    /* unmuting every device lifts the per-device mutes too */
    assert_int_equal(db_mute_set(f->db, f->alpha, f->alice, 0, 0), 0);
    assert_int_equal(db_subscription_list(f->db, f->a, f->alpha, f->alice, &v, &n), 0);
    assert_int_equal(n, 1);
    /* Sam's list is his own */
    assert_int_equal(db_subscription_list(f->db, f->a, f->alpha, f->sam, &v, &n), 0);
    assert_int_equal(n, 0);
}

static void test_supervisors(void **state)
{
    struct fixture *f = *state;
    struct alarm_recipient *v;
    int64_t sue;
    int n;

    assert_int_equal(db_alarm_supervisors(f->db, f->a, f->alpha, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].user_id, f->sam);
    assert_string_equal(v[0].channel, "telegram");
    assert_string_equal(v[0].chat_id, "1002");
    /* subscriptions and mutes do not apply */
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->sam, 0, "off"), 0);
    assert_int_equal(db_mute_set(f->db, f->alpha, f->sam, 0, 3600), 0);
    assert_int_equal(db_alarm_supervisors(f->db, f->a, f->alpha, &v, &n), 0);
    assert_int_equal(n, 1);
    /* a second supervisor */
    sue = pgtest_user(f->db, f->a, f->alpha, "sue", "Sue Super", "supervisor");
    telegram(f, sue, "1010", true, true);
    assert_int_equal(db_alarm_supervisors(f->db, f->a, f->alpha, &v, &n), 0);
    assert_int_equal(n, 2);
    /* no supervisor left who can be reached: the admins */
    sql_id(f, "UPDATE users SET active = false WHERE id = $1::bigint", f->sam);
    PQclear(pgtest_q(f->c, "UPDATE chats SET active = false WHERE chat_id = '1010'", NULL));
    assert_int_equal(db_alarm_supervisors(f->db, f->a, f->alpha, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].user_id, f->adam);
    /* Beta has neither */
    assert_int_equal(db_alarm_supervisors(f->db, f->a, f->beta, &v, &n), 0);
    assert_int_equal(n, 0);
}

/* ---- acknowledging, resolving, listing ---- */

static void test_ack_resolve(void **state)
{
    struct fixture *f = *state;
    struct alarm al, *list;
    int64_t a1, a2, a3, eq, wo;
    int counts[4], n, total;
    const char *eq_number;

    a1 = alarm_now(f, f->alpha, f->press, f->rule, "critical");
    a2 = alarm_now(f, f->alpha, f->press, f->rule, "high");
    a3 = alarm_now(f, f->alpha, f->pump, f->rule, "low");
    assert_int_equal(db_alarm_counts(f->db, f->alpha, counts), 0);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 0);
    assert_int_equal(counts[2], 1);
    assert_int_equal(counts[3], 1);

    assert_int_equal(db_alarm_ack(f->db, f->alpha, a1, f->alice), 0);
    assert_int_equal(db_alarm_ack(f->db, f->alpha, a1, f->sam), -EALREADY);
    assert_int_equal(db_alarm_get(f->db, f->a, f->alpha, a1, false, &al), 0);
    assert_true(al.acknowledged);
    assert_false(al.resolved);
    assert_string_equal(al.acknowledged_by, "Alice Alpha");
    assert_int_equal(strlen(al.acknowledged_at), 5); /* HH:MM */
    assert_null(al.resolved_at);
    /* acknowledged alarms are still open */
    assert_int_equal(db_alarm_counts(f->db, f->alpha, counts), 0);
    assert_int_equal(counts[3], 1);

    assert_int_equal(db_alarm_resolve(f->db, f->alpha, a1, f->sam), 0);
    assert_int_equal(db_alarm_resolve(f->db, f->alpha, a1, f->sam), -EALREADY);
    assert_int_equal(db_alarm_ack(f->db, f->alpha, a1, f->sam), -EALREADY);
    assert_int_equal(db_alarm_get(f->db, f->a, f->alpha, a1, false, &al), 0);
    assert_true(al.resolved);
    assert_string_equal(al.acknowledged_by, "Alice Alpha");
    assert_string_equal(al.resolved_by, "Sam Super");
    assert_non_null(al.resolved_at);

    /* resolving acknowledges, by the same person */
    assert_int_equal(db_alarm_resolve(f->db, f->alpha, a2, f->adam), 0);
    assert_int_equal(db_alarm_get(f->db, f->a, f->alpha, a2, false, &al), 0);
    assert_true(al.acknowledged && al.resolved);
    assert_string_equal(al.acknowledged_by, "Adam Admin");
    assert_string_equal(al.resolved_by, "Adam Admin");

    assert_int_equal(db_alarm_counts(f->db, f->alpha, counts), 0);
    assert_int_equal(counts[0] + counts[1] + counts[2] + counts[3], 1);
    assert_int_equal(db_alarm_ack(f->db, f->alpha, 999999, f->alice), -ENOENT);
    assert_int_equal(db_alarm_resolve(f->db, f->alpha, 999999, f->alice), -ENOENT);
    /* a user of another factory is no one here */
    assert_int_equal(db_alarm_ack(f->db, f->alpha, a3, f->bob), -ENOENT);

    /* lists: newest first, open only */
    assert_int_equal(db_alarm_list(f->db, f->a, f->alpha, false, 0, 10, &list, &n, &total), 0);
    assert_int_equal(n, 3);
    assert_int_equal(total, 3);
    assert_int_equal(list[0].id, a3);
    assert_int_equal(list[2].id, a1);
    assert_int_equal(db_alarm_list(f->db, f->a, f->alpha, true, 0, 10, &list, &n, &total), 0);
    assert_int_equal(n, 1);
    assert_int_equal(total, 1);
    assert_int_equal(list[0].id, a3);
    assert_int_equal(db_alarm_list(f->db, f->a, f->alpha, false, 1, 1, &list, &n, &total), 0);
    assert_int_equal(n, 1);
    assert_int_equal(total, 3);
    assert_int_equal(list[0].id, a2);

    /* the machine and the work order */
    eq = pgtest_equipment(f->db, f->a, f->alpha, f->alice, "Bosch", "PX-9", "Press line 1", NULL,
                          NULL, &eq_number);
    assert_int_equal(db_device_link(f->db, f->alpha, "pump-2", eq), 0);
    {
        struct work_order w;
        assert_int_equal(
            db_wo_create(f->db, f->a, f->alpha, f->alice, eq, "Check pump", "high", &w), 0);
        wo = w.id;
        assert_int_equal(db_alarm_set_work_order(f->db, f->alpha, a3, wo), 0);
        assert_int_equal(db_alarm_get(f->db, f->a, f->alpha, a3, true, &al), 0);
        assert_int_equal(al.work_order_id, wo);
        assert_string_equal(al.work_order_number, w.number);
        assert_int_equal(al.equipment_id, eq);
        assert_string_equal(al.equipment_number, eq_number);
        assert_string_equal(al.equipment_label, "Press line 1");
        assert_int_equal(db_alarm_set_work_order(f->db, f->alpha, a3, 424242), -ENOENT);
        assert_int_equal(db_alarm_set_work_order(f->db, f->alpha, a3, 0), 0);
        assert_int_equal(db_alarm_get(f->db, f->a, f->alpha, a3, false, &al), 0);
        assert_int_equal(al.work_order_id, 0);
        assert_null(al.work_order_number);
    }
}

/* Two people press Acknowledge at once: the second waits for the first and
 * then sees it acknowledged. */
static void test_get_for_update(void **state)
{
    struct fixture *f = *state;
    struct db *db2 = pgtest_connect(&f->d);
    struct alarm al;
    int64_t id = alarm_now(f, f->alpha, f->press, f->rule, "critical");

    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_alarm_get(f->db, f->a, f->alpha, id, true, &al), 0);
    assert_false(al.acknowledged);
    /* the row is locked: db2 cannot take it without waiting */
    PQclear(pgtest_q(f->c, "SET lock_timeout = '200ms'", NULL));
    {
        char s[24];
        PGresult *res;
        snprintf(s, sizeof(s), "%" PRId64, id);
        const char *p[1] = {s};
        res = PQexecParams(f->c, "SELECT 1 FROM alarms WHERE id = $1::bigint FOR UPDATE", 1, NULL,
                           p, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
        PQclear(res);
        /* and devices, rules, users are not locked with it */
        res = PQexecParams(f->c,
                           "SELECT 1 FROM devices d JOIN alarms a ON a.device_id = d.id "
                           "WHERE a.id = $1::bigint FOR UPDATE OF d",
                           1, NULL, p, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
        PQclear(res);
    }
    assert_int_equal(db_alarm_ack(f->db, f->alpha, id, f->alice), 0);
    assert_int_equal(db_commit(f->db), 0);
    assert_int_equal(db_begin(db2), 0);
    assert_int_equal(db_alarm_get(db2, f->a, f->alpha, id, true, &al), 0);
    assert_true(al.acknowledged);
    assert_int_equal(db_alarm_ack(db2, f->alpha, id, f->sam), -EALREADY);
    assert_int_equal(db_commit(db2), 0);
    db_close(db2);
}

/* ---- deliveries, storms, escalations ---- */

static int64_t outbox_row(struct fixture *f, const char *chat)
{
    return pgtest_qint(f->c,
                       "INSERT INTO outbox (channel, chat_id, method, payload) "
                       "VALUES ('telegram', $1, 'sendMessage', '{}') RETURNING id",
                       chat, NULL);
}

static void test_deliveries(void **state)
{
    struct fixture *f = *state;
    struct alarm_delivery *v;
    int64_t al = alarm_now(f, f->alpha, f->press, f->rule, "critical");
    int64_t ob = outbox_row(f, "1001");
    int n;

    assert_int_equal(db_alarm_delivery_add(f->db, f->alpha, al, f->alice, "alarm", "telegram",
                                           "1001", "queued", ob),
                     0);
    assert_int_equal(
        db_alarm_delivery_add(f->db, f->alpha, al, f->sam, "alarm", "telegram", "1002", "held", 0),
        0);
    assert_int_equal(db_alarm_delivery_add(f->db, f->alpha, al, f->alice, "alarm", "telegram",
                                           "1001", "queued", ob),
                     -EEXIST);
    assert_int_equal(db_alarm_delivery_add(f->db, f->alpha, al, f->sam, "escalation", "telegram",
                                           "1002", "queued", ob),
                     0);
    assert_int_equal(
        db_alarm_delivery_add(f->db, f->alpha, al, f->adam, "alarm", "telegram", "1003", "sent", 0),
        -EINVAL);
    assert_int_equal(db_alarm_delivery_add(f->db, f->alpha, al, f->adam, "page", "telegram", "1003",
                                           "queued", 0),
                     -EINVAL);
    /* another factory's alarm or user, an unknown outbox row */
    assert_int_equal(
        db_alarm_delivery_add(f->db, f->beta, al, f->bob, "alarm", "telegram", "2001", "queued", 0),
        -ENOENT);
    assert_int_equal(db_alarm_delivery_add(f->db, f->alpha, al, f->bob, "alarm", "telegram", "2001",
                                           "queued", 0),
                     -ENOENT);
    assert_int_equal(db_alarm_delivery_add(f->db, f->alpha, al, f->adam, "alarm", "telegram",
                                           "1003", "queued", 987654),
                     -ENOENT);

    assert_int_equal(db_alarm_deliveries(f->db, f->a, f->alpha, al, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].user_id, f->alice);
    assert_int_equal(v[0].outbox_id, ob);
    assert_string_equal(v[0].state, "queued");
    assert_string_equal(v[0].kind, "alarm");
    assert_string_equal(v[0].chat_id, "1001");
    assert_int_equal(v[1].user_id, f->sam);
    assert_int_equal(v[1].outbox_id, 0);
    assert_string_equal(v[1].state, "held");
    assert_string_equal(v[2].kind, "escalation");
    assert_int_equal(db_alarm_deliveries(f->db, f->a, f->beta, al, &v, &n), 0);
    assert_int_equal(n, 0);
}

static void hold(struct fixture *f, int64_t alarm, int64_t user, const char *chat, int ago_s)
{
    char id[24], ago[24];
    int r =
        db_alarm_delivery_add(f->db, f->alpha, alarm, user, "alarm", "telegram", chat, "held", 0);

    if (r < 0)
        fail_msg("hold: %s (%s)", strerror(-r), db_errmsg(f->db));
    snprintf(id, sizeof(id), "%" PRId64, alarm);
    snprintf(ago, sizeof(ago), "%d seconds", ago_s);
    PQclear(pgtest_q(f->c,
                     "UPDATE alarm_deliveries SET created_at = now() - $2::interval "
                     "WHERE alarm_id = $1::bigint AND chat_id = $3",
                     id, ago, chat, NULL));
}

static void test_held(void **state)
{
    struct fixture *f = *state;
    struct db *db2 = pgtest_connect(&f->d);
    struct held_chat *due;
    struct alarm *v;
    int64_t lo, hi1, crit, hi2, late, ob;
    int n;

    lo = alarm_now(f, f->alpha, f->press, f->rule, "low");
    hi1 = alarm_now(f, f->alpha, f->press, f->rule, "high");
    crit = alarm_now(f, f->alpha, f->pump, f->rule, "critical");
    hi2 = alarm_now(f, f->alpha, f->pump, f->rule, "high");
    late = alarm_now(f, f->alpha, f->pump, f->rule, "medium");
    hold(f, lo, f->alice, "1001", 90);
    hold(f, hi1, f->alice, "1001", 80);
    hold(f, crit, f->alice, "1001", 70);
    hold(f, hi2, f->alice, "1001", 60);
    /* Sam's storm started just now */
    hold(f, hi1, f->sam, "1002", 5);

    assert_int_equal(db_alarm_held_due(f->db, f->a, 30, &due, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(due[0].channel, "telegram");
    assert_string_equal(due[0].chat_id, "1001");
    assert_int_equal(db_alarm_held_due(f->db, f->a, 1, &due, &n), 0);
    assert_int_equal(n, 2);

    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_alarm_held_take(f->db, f->a, "telegram", "1001", &v, &n), 0);
    assert_int_equal(n, 4);
    /* most severe first, then newest */
    assert_int_equal(v[0].id, crit);
    assert_int_equal(v[1].id, hi2);
    assert_int_equal(v[2].id, hi1);
    assert_int_equal(v[3].id, lo);
    assert_string_equal(v[0].device_key, "pump-2");

    /* another process finds them taken */
    assert_int_equal(db_begin(db2), 0);
    assert_int_equal(db_alarm_held_take(db2, f->a, "telegram", "1001", &v, &n), 0);
    assert_int_equal(n, 0);
    /* and Sam's chat is not part of it */
    assert_int_equal(db_alarm_held_take(db2, f->a, "telegram", "1002", &v, &n), 0);
    assert_int_equal(n, 1);
    /* marking what it did not take touches nothing */
    assert_int_equal(db_alarm_held_done(db2, "telegram", "1001", 0, "summarized"), 0);
    assert_int_equal(db_rollback(db2), 0);

    /* held (by another process) while the summary is being written: not
     * in it, so not marked */
    assert_int_equal(db_alarm_delivery_add(db2, f->alpha, late, f->alice, "alarm", "telegram",
                                           "1001", "held", 0),
                     0);
    ob = outbox_row(f, "1001");
    assert_int_equal(db_alarm_held_done(f->db, "telegram", "1001", ob, "summarized"), 0);
    assert_int_equal(db_commit(f->db), 0);

    {
        char obs[24];
        snprintf(obs, sizeof(obs), "%" PRId64, ob);
        assert_int_equal(pgtest_qint(f->c,
                                     "SELECT count(*) FROM alarm_deliveries "
                                     "WHERE state = 'summarized' AND outbox_id = $1::bigint",
                                     obs, NULL),
                         4);
    }
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM alarm_deliveries WHERE state = 'held' "
                                 "AND chat_id = '1001'",
                                 NULL),
                     1);
    assert_int_equal(db_alarm_held_due(f->db, f->a, 30, &due, &n), 0);
    assert_int_equal(n, 0);

    /* outside the transaction that took them nothing is marked */
    PQclear(pgtest_q(f->c, "UPDATE alarm_deliveries SET created_at = now() - interval '1 minute'",
                     NULL));
    assert_int_equal(db_alarm_held_take(f->db, f->a, "telegram", "1002", &v, &n), 0);
    assert_int_equal(db_alarm_held_done(f->db, "telegram", "1002", ob, "summarized"), 0);
    assert_int_equal(
        pgtest_qint(f->c, "SELECT count(*) FROM alarm_deliveries WHERE state = 'held'", NULL), 2);
    db_close(db2);
}

static void test_escalations(void **state)
{
    struct fixture *f = *state;
    struct db *db2 = pgtest_connect(&f->d);
    struct alarm *v;
    int64_t c1, c2, c3, acked, beta_c;
    int n;

    c1 = alarm_now(f, f->alpha, f->press, f->rule, "critical");
    c2 = alarm_now(f, f->alpha, f->pump, f->rule, "critical");
    c3 = alarm_now(f, f->alpha, f->pump, f->rule, "critical"); /* too recent */
    alarm_now(f, f->alpha, f->press, f->rule, "high");         /* not critical */
    acked = alarm_now(f, f->alpha, f->press, f->rule, "critical");
    beta_c = alarm_now(f, f->beta, f->beta_press, f->beta_rule, "critical");
    assert_int_equal(db_alarm_ack(f->db, f->alpha, acked, f->alice), 0);
    PQclear(pgtest_q(f->c, "UPDATE alarms SET created_at = now() - interval '20 minutes'", NULL));
    sql_id(f, "UPDATE alarms SET created_at = now() - interval '14 minutes' WHERE id = $1::bigint",
           c3);
    sql_id(f, "UPDATE alarms SET created_at = now() - interval '25 minutes' WHERE id = $1::bigint",
           c2);
    /* Beta does not escalate */
    assert_int_equal(db_factory_set(f->db, f->beta, "escalate_s", "0"), 0);

    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_alarm_escalations_due(f->db, f->a, 10, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].id, c2); /* oldest first */
    assert_int_equal(v[1].id, c1);
    /* taken: a second process gets none of them */
    assert_int_equal(db_begin(db2), 0);
    assert_int_equal(db_alarm_escalations_due(db2, f->a, 10, &v, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(db_rollback(db2), 0);
    assert_int_equal(db_alarm_escalated(f->db, f->alpha, c2), 0);
    assert_int_equal(db_alarm_escalated(f->db, f->alpha, c1), 0);
    assert_int_equal(db_commit(f->db), 0);

    /* exactly once */
    assert_int_equal(db_alarm_escalations_due(f->db, f->a, 10, &v, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(db_alarm_escalated(f->db, f->alpha, c1), -EALREADY);
    assert_int_equal(db_alarm_escalated(f->db, f->beta, c1), -ENOENT);
    {
        struct alarm al;
        assert_int_equal(db_alarm_get(f->db, f->a, f->alpha, c1, false, &al), 0);
        assert_true(al.escalated);
    }
    /* c3 comes of age; the limit holds */
    sql_id(f, "UPDATE alarms SET created_at = now() - interval '16 minutes' WHERE id = $1::bigint",
           c3);
    assert_int_equal(db_alarm_escalations_due(f->db, f->a, 0, &v, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(db_alarm_escalations_due(f->db, f->a, 10, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].id, c3);
    /* a factory turning escalation on late */
    assert_int_equal(db_factory_set(f->db, f->beta, "escalate_s", "60"), 0);
    assert_int_equal(db_alarm_escalations_due(f->db, f->a, 10, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].id, beta_c);
    assert_int_equal(v[0].factory_id, f->beta);
    db_close(db2);
}

/* ---- isolation ---- */

static void test_isolation(void **state)
{
    struct fixture *f = *state;
    struct alarm al, *list;
    struct alarm_recipient *rv;
    struct device d;
    struct alert_rule *rules;
    int64_t al_a, al_b, beta_eq;
    int counts[4], n, total;

    /* one key, two devices */
    assert_true(f->press != f->beta_press);
    assert_int_equal(db_device_get(f->db, f->a, f->beta, "press-1", &d), 0);
    assert_int_equal(d.id, f->beta_press);
    assert_int_equal(db_device_get(f->db, f->a, f->beta, "pump-2", &d), -ENOENT);

    al_a = alarm_now(f, f->alpha, f->press, f->rule, "critical");
    al_b = alarm_now(f, f->beta, f->beta_press, f->beta_rule, "critical");
    assert_string_equal(recipients(f, f->alpha, al_a), "alice sam adam");
    assert_string_equal(recipients(f, f->beta, al_b), "bob");
    assert_int_equal(db_alarm_recipients(f->db, f->a, f->beta, al_a, &rv, &n), 0);
    assert_int_equal(n, 0);
    /* Bob's subscription and mutes cannot name Alpha's things */
    assert_int_equal(db_subscription_set(f->db, f->beta, f->bob, f->press, "low"), -ENOENT);
    assert_int_equal(db_subscription_set(f->db, f->alpha, f->bob, 0, "low"), -ENOENT);
    assert_int_equal(db_mute_set(f->db, f->beta, f->bob, f->press, 60), -ENOENT);
    assert_int_equal(db_mute_set(f->db, f->beta, f->alice, 0, 60), -ENOENT);
    assert_int_equal(pgtest_qint(f->c, "SELECT count(*) FROM alarm_subscriptions", NULL) +
                         pgtest_qint(f->c, "SELECT count(*) FROM alarm_mutes", NULL),
                     0);

    /* Alpha's alarm from Beta */
    assert_int_equal(db_alarm_get(f->db, f->a, f->beta, al_a, false, &al), -ENOENT);
    assert_int_equal(db_alarm_get(f->db, f->a, f->beta, al_a, true, &al), -ENOENT);
    assert_int_equal(db_alarm_ack(f->db, f->beta, al_a, f->bob), -ENOENT);
    assert_int_equal(db_alarm_resolve(f->db, f->beta, al_a, f->bob), -ENOENT);
    assert_int_equal(db_alarm_escalated(f->db, f->beta, al_a), -ENOENT);
    assert_int_equal(db_alarm_list(f->db, f->a, f->beta, false, 0, 10, &list, &n, &total), 0);
    assert_int_equal(n, 1);
    assert_int_equal(total, 1);
    assert_int_equal(list[0].id, al_b);
    assert_int_equal(db_alarm_counts(f->db, f->beta, counts), 0);
    assert_int_equal(counts[3], 1);
    beta_eq =
        pgtest_equipment(f->db, f->a, f->beta, f->bob, "KSB", "Etanorm", NULL, NULL, NULL, NULL);
    {
        struct work_order w;
        assert_int_equal(db_wo_create(f->db, f->a, f->beta, f->bob, beta_eq, "Beta job", "low", &w),
                         0);
        assert_int_equal(db_alarm_set_work_order(f->db, f->beta, al_a, w.id), -ENOENT);
        assert_int_equal(db_alarm_set_work_order(f->db, f->alpha, al_a, w.id), -ENOENT);
    }
    /* an Alpha user cannot act on Beta's alarm either */
    assert_int_equal(db_alarm_ack(f->db, f->beta, al_b, f->alice), -ENOENT);
    assert_int_equal(db_alarm_ack(f->db, f->alpha, al_b, f->alice), -ENOENT);
    assert_int_equal(db_alarm_get(f->db, f->a, f->alpha, al_a, false, &al), 0);
    assert_false(al.acknowledged || al.resolved);
    assert_null(al.work_order_number);

    /* an alarm cannot name another factory's device or rule */
    assert_int_equal(raise_rule(f, f->beta, f->press, f->beta_rule, "high", T_SUMMER, 0, NULL),
                     -ENOENT);
    assert_int_equal(raise_rule(f, f->beta, f->beta_press, f->rule, "high", T_SUMMER, 0, NULL),
                     -ENOENT);

    /* rules */
    assert_int_equal(db_rule_set_active(f->db, f->beta, f->rule, false), -ENOENT);
    assert_int_equal(db_rule_list(f->db, f->a, f->alpha, false, &rules, &n), 0);
    assert_int_equal(n, 1);
    assert_true(rules[0].active);
    assert_int_equal(rules[0].id, f->rule);

    /* devices_seen of Beta's press does not touch Alpha's */
    {
        struct device_seen s = {.device_id = f->beta_press, .last_seen = T_SUMMER};
        int64_t *back, *facs;
        int nb;
        assert_int_equal(db_devices_seen(f->db, f->a, &s, 1, &back, &facs, &nb), 0);
        assert_int_equal(db_device_get(f->db, f->a, f->alpha, "press-1", &d), 0);
        assert_null(d.last_seen);
    }
}

/* ---- rules ---- */

static void test_rules(void **state)
{
    struct fixture *f = *state;
    static const char *evil = "x'); DROP TABLE alarms; --";
    struct alert_rule *v;
    int64_t id, id2, cold, ev;
    int n;

    assert_int_equal(db_rule_save(f->db, f->alpha, "hot", "low", "{}", false, &id), -EEXIST);
    assert_int_equal(db_rule_save(f->db, f->alpha, "hot", "critical", "{\"v\": 2}", true, &id), 0);
    assert_int_equal(id, f->rule);
    cold = rule(f, f->alpha, "cold", "low");
    assert_int_equal(db_rule_set_active(f->db, f->alpha, cold, false), 0);
    /* the switch is written into the definition too */
    assert_int_equal(db_rule_list(f->db, f->a, f->alpha, false, &v, &n), 0);
    assert_string_equal(v[0].definition, "{\"when\": {\"temp\": {\">\": 80}}, \"active\": false}");
    /* a replaced rule takes its switch from the file (true when absent) */
    assert_int_equal(db_rule_save(f->db, f->alpha, "cold", "medium",
                                  "{\"v\": 3, \"active\": false}", true, &id2),
                     0);
    assert_int_equal(id2, cold);
    ev = rule(f, f->alpha, evil, "critical");

    /* by name: cold, hot, x'); ... */
    assert_int_equal(db_rule_list(f->db, f->a, f->alpha, false, &v, &n), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++)
        assert_int_equal(v[i].factory_id, f->alpha);
    assert_int_equal(v[0].id, cold);
    assert_string_equal(v[0].name, "cold");
    assert_string_equal(v[0].severity, "medium");
    assert_string_equal(v[0].definition, "{\"v\": 3, \"active\": false}");
    assert_false(v[0].active);
    assert_int_equal(v[1].id, f->rule);
    assert_string_equal(v[1].severity, "critical");
    assert_string_equal(v[1].definition, "{\"v\": 2}");
    assert_true(v[1].active);
    assert_int_equal(strlen(v[1].updated_at), 16); /* YYYY-MM-DD HH:MM */
    assert_int_equal(v[2].id, ev);
    assert_string_equal(v[2].name, evil);
    assert_int_equal(pgtest_qint(f->c, "SELECT count(*) FROM alarms", NULL), 0);
    assert_int_equal(db_rule_list(f->db, f->a, f->alpha, true, &v, &n), 0);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++)
        assert_true(v[i].active && v[i].id != cold);
    /* every factory's, by factory */
    assert_int_equal(db_rule_list(f->db, f->a, 0, true, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].factory_id, f->alpha);
    assert_int_equal(v[2].factory_id, f->beta);
    assert_int_equal(v[2].id, f->beta_rule);
    assert_int_equal(db_rule_set_active(f->db, f->alpha, cold, true), 0);
    assert_int_equal(db_rule_set_active(f->db, f->alpha, 999999, true), -ENOENT);

    /* what the schema would refuse is refused first */
    assert_int_equal(db_rule_save(f->db, f->alpha, "x", "urgent", "{}", false, &id), -EINVAL);
    assert_int_equal(db_rule_save(f->db, f->alpha, "", "low", "{}", false, &id), -EINVAL);
    {
        char longname[202];
        memset(longname, 'n', 201);
        longname[201] = '\0';
        assert_int_equal(db_rule_save(f->db, f->alpha, longname, "low", "{}", false, &id), -EINVAL);
        longname[200] = '\0';
        assert_int_equal(db_rule_save(f->db, f->alpha, longname, "low", "{}", false, &id), 0);
    }
    assert_int_equal(db_rule_save(f->db, f->alpha, "arr", "low", "[1]", false, &id), -EINVAL);

    /* an SQL-looking rule raises and reads back verbatim */
    {
        struct alarm al;
        int64_t aid;
        int64_t dev = device(f, f->alpha, "1--.drop:table_devices");
        assert_int_equal(raise_rule(f, f->alpha, dev, ev, "critical", T_WINTER, 0, &aid), 0);
        assert_int_equal(db_alarm_get(f->db, f->a, f->alpha, aid, false, &al), 0);
        assert_string_equal(al.rule_name, evil);
        assert_string_equal(al.device_key, "1--.drop:table_devices");
    }
}

static void test_notify(void **state)
{
    struct fixture *f = *state;
    struct db *listener = pgtest_connect(&f->d);
    int64_t id;

    assert_int_equal(db_listen(listener, ALERT_RULES_EVENT), 0);
    /* setup saved rules before the LISTEN: nothing pending */
    assert_int_equal(db_wait_notify(listener, 100), 0);

    assert_int_equal(db_rule_save(f->db, f->alpha, "new", "low", "{}", false, &id), 0);
    assert_int_equal(db_wait_notify(listener, 5000), 1);
    assert_int_equal(db_wait_notify(listener, 100), 0);

    /* a clash changes nothing and tells no one */
    assert_int_equal(db_rule_save(f->db, f->alpha, "new", "low", "{}", false, &id), -EEXIST);
    assert_int_equal(db_wait_notify(listener, 200), 0);

    /* inside a transaction: on commit, not before */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_rule_save(f->db, f->alpha, "new", "high", "{}", true, &id), 0);
    assert_int_equal(db_wait_notify(listener, 200), 0);
    assert_int_equal(db_commit(f->db), 0);
    assert_int_equal(db_wait_notify(listener, 5000), 1);

    /* rolled back: never */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_rule_set_active(f->db, f->alpha, id, false), 0);
    assert_int_equal(db_rollback(f->db), 0);
    assert_int_equal(db_wait_notify(listener, 200), 0);

    assert_int_equal(db_rule_set_active(f->db, f->alpha, id, false), 0);
    assert_int_equal(db_wait_notify(listener, 5000), 1);
    assert_int_equal(db_rule_set_active(f->db, f->beta, id, true), -ENOENT);
    assert_int_equal(db_wait_notify(listener, 200), 0);

    assert_int_equal(db_factory_set(f->db, f->alpha, "escalate_s", "60"), 0);
    assert_int_equal(db_wait_notify(listener, 5000), 1);
    assert_int_equal(db_factory_set(f->db, f->alpha, "escalate_s", "-60"), -EINVAL);
    assert_int_equal(db_wait_notify(listener, 200), 0);
    db_close(listener);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rule_cooldown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_and_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seen_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_factory_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utc_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recipients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscription_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_supervisors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_for_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliveries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escalations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
    };
    int status;

    if (!pgtest_init(&status))
        return status;
    return cmocka_run_group_tests_name("integration-alarm", tests, NULL, NULL);
}
