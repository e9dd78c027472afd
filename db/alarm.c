/* Plant alarms in the database (alarm.h): devices, rules, alarms, who gets
 * them and what each got, subscriptions and mutes.
 *
 * Values a caller could get wrong (a severity word, a setting, a device
 * key) are checked here before any statement runs: a CHECK violation would
 * abort the caller's transaction, and the handlers run inside one. For
 * the same reason the "already there" cases use ON CONFLICT DO NOTHING and
 * count rows instead of catching unique violations. */
#include "alarm.h"

#include "db_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"

/* Times shown to people: to_char(x AT_LOCAL, DAY_TIME) in the factory's
 * timezone (f is the factory in every statement that formats one). */
#define AT_LOCAL " AT TIME ZONE f.timezone"
#define DAY_TIME "'YYYY-MM-DD HH24:MI'"
#define TIME_OF_DAY "'HH24:MI'"
/* What technicians call the machine: its name, else make and model. NULL
 * when the device is not linked (every operand is NULL then). */
#define EQ_LABEL "coalesce(nullif(e.name, ''), e.manufacturer || ' ' || e.model)"
#define SEVERITY_ARRAY "ARRAY['low','medium','high','critical']"
/* The partial unique index alarms_device_open, as ON CONFLICT names it. */
#define DEVICE_OPEN_CONFLICT                                                                       \
    "ON CONFLICT (factory_id, device_id, source, (CASE WHEN source = 'device' AND code IS NULL "   \
    "THEN 'm:' || md5(message) ELSE coalesce(code, '') END)) "                                     \
    "WHERE resolved_at IS NULL AND source IN ('device', 'offline') DO NOTHING "

/* Mirrors of the CHECK constraints of sql/0005_alerts.sql. */
#define OFFLINE_S_MIN 10
#define ESCALATE_S_MIN 1
#define SETTING_S_MAX 2592000
#define MAX_DEVICES_MAX 1000000
#define RULE_NAME_MAX 200
#define ALARM_MESSAGE_CHARS 1000
#define ALARM_CODE_CHARS 64
#define TIMEZONE_NAME_MAX 64
/* /mute for longer than this is a typo; "/subscribe off" is for good. */
#define MUTE_MAX_S (10LL * 366 * 86400)

static const char *const severities[] = {"low", "medium", "high", "critical"};

static bool severity_ok(const char *s, bool off_too)
{
    if (!s)
        return false;
    for (size_t i = 0; i < sizeof(severities) / sizeof(severities[0]); i++)
        if (strcmp(s, severities[i]) == 0)
            return true;
    return off_too && strcmp(s, "off") == 0;
}

/* Characters of UTF-8 text, as PostgreSQL's length() counts them. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* Strict: digits only (a sign allowed), nothing after, within [min, max]. */
static int parse_int(const char *s, long long min, long long max, int *ret)
{
    char *end;
    long long v;

    if (!s || !*s || (*s != '-' && *s != '+' && (*s < '0' || *s > '9')))
        return -EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -EINVAL;
    *ret = (int)v;
    return 0;
}

static bool device_key_ok(const char *k)
{
    size_t n = 0;

    if (!k)
        return false;
    for (; k[n]; n++) {
        char c = k[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return n >= 1 && n <= 64;
}

/* Seconds since the epoch Rivet accepts: some 3000 years either side of
 * 1970. Beyond that a timestamp is a device's clock gone mad, and "%.6f"
 * would no longer fit the buffers below. */
#define EPOCH_MAX 1e11

static bool epoch_ok(double t)
{
    return isfinite(t) && fabs(t) < EPOCH_MAX;
}

/* A number of seconds as a parameter; "%.6f" keeps microseconds, which is
 * what timestamptz stores. */
struct db_dbl {
    char s[48];
};
static const char *db_dbl(struct db_dbl *b, double v)
{
    snprintf(b->s, sizeof(b->s), "%.6f", v);
    return b->s;
}

static bool is_true(const PGresult *res, int row, int col)
{
    return PQgetvalue(res, row, col)[0] == 't';
}

/* The number of rows a statement changed. */
static long changed(const PGresult *res)
{
    return strtol(PQcmdTuples((PGresult *)res), NULL, 10);
}

/* ---- array literals ---- */

/* A text[] literal of n strings, each quoted with " and \ escaped (arena).
 * Works for any bytes but NUL, which C strings cannot hold anyway. */
static char *text_array(struct arena *a, const char *const *v, size_t n)
{
    size_t cap = 3;
    char *s, *p;

    for (size_t i = 0; i < n; i++)
        cap += 2 * strlen(v[i]) + 3;
    s = arena_alloc(a, cap);
    if (!s)
        return NULL;
    p = s;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        *p++ = '"';
        for (const char *c = v[i]; *c; c++) {
            if (*c == '"' || *c == '\\')
                *p++ = '\\';
            *p++ = *c;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

/* A bigint[] or double precision[] literal (arena). */
static char *num_array(struct arena *a, const int64_t *iv, const double *dv, size_t n)
{
    size_t cap = 3 + n * 48, len = 1;
    char *s = arena_alloc(a, cap);

    if (!s)
        return NULL;
    s[0] = '{';
    for (size_t i = 0; i < n; i++) {
        if (iv)
            len += (size_t)snprintf(s + len, cap - len, "%s%" PRId64, i ? "," : "", iv[i]);
        else
            len += (size_t)snprintf(s + len, cap - len, "%s%.6f", i ? "," : "",
                                    epoch_ok(dv[i]) ? dv[i] : 0.0);
    }
    snprintf(s + len, cap - len, "}");
    return s;
}

/* Two bigint columns of every row into arena arrays. */
static int id_pairs(struct arena *a, const PGresult *res, int64_t **ids, int64_t **factories,
                    int *n)
{
    int rows = PQntuples(res);
    int64_t *x = arena_alloc(a, sizeof(*x) * (size_t)(rows ? rows : 1));
    int64_t *y = arena_alloc(a, sizeof(*y) * (size_t)(rows ? rows : 1));

    if (!x || !y)
        return -ENOMEM;
    for (int i = 0; i < rows; i++) {
        x[i] = db_i64(res, i, 0);
        y[i] = db_i64(res, i, 1);
    }
    *ids = x;
    *factories = y;
    *n = rows;
    return 0;
}

/* ---- factories ---- */

/* The offset is the difference of two wall-clock readings of one instant:
 * extract(timezone FROM ...) would read the session's zone instead. */
#define UTC_OFFSET_NOW "extract(epoch FROM (now()" AT_LOCAL ") - (now() AT TIME ZONE 'UTC'))::int"
#define UTC_OFFSET_AT_2                                                                            \
    "extract(epoch FROM (to_timestamp($2::double precision)" AT_LOCAL ") "                         \
    "  - (to_timestamp($2::double precision) AT TIME ZONE 'UTC'))::int"

int db_alert_factories(struct db *db, struct arena *a, struct alert_factory **ret, int *n)
{
    static const struct db_stmt st = {
        "alert_factories",
        "SELECT f.id, f.slug, f.timezone, " UTC_OFFSET_NOW ", f.devices_auto_register, "
        "  f.device_offline_s, f.escalate_after_s, f.max_devices, "
        "  (SELECT count(*) FROM devices d WHERE d.factory_id = f.id) "
        "FROM factories f ORDER BY f.id",
        0};
    struct alert_factory *v;
    PGresult *res;
    int r, rows;

    r = db_query(db, &st, NULL, &res);
    if (r < 0)
        return r;
    rows = PQntuples(res);
    v = arena_alloc(a, sizeof(*v) * (size_t)(rows ? rows : 1));
    if (!v) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        v[i].id = db_i64(res, i, 0);
        v[i].slug = db_str(a, res, i, 1);
        v[i].timezone = db_str(a, res, i, 2);
        v[i].utc_offset_s = db_int(res, i, 3);
        v[i].auto_register = is_true(res, i, 4);
        v[i].offline_s = db_int(res, i, 5);
        v[i].escalate_s = db_int(res, i, 6);
        v[i].max_devices = db_int(res, i, 7);
        v[i].n_devices = db_int(res, i, 8);
        if (!v[i].slug || !v[i].timezone) {
            r = -ENOMEM;
            goto out;
        }
    }
    *ret = v;
    *n = rows;
out:
    PQclear(res);
    return r;
}

int db_factory_utc_offset(struct db *db, int64_t factory_id, double utc, int *ret)
{
    static const struct db_stmt st = {"alert_utc_offset",
                                      "SELECT " UTC_OFFSET_AT_2 " FROM factories f "
                                      "WHERE f.id = $1",
                                      2};
    struct db_num fid;
    struct db_dbl t;
    PGresult *res;
    int r;

    if (!epoch_ok(utc))
        return -EINVAL;
    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id), db_dbl(&t, utc)}, &res);
    if (r < 0)
        return r;
    r = PQntuples(res) == 1 ? 0 : -ENOENT;
    if (r == 0)
        *ret = db_int(res, 0, 0);
    PQclear(res);
    return r;
}

int db_factory_set(struct db *db, int64_t factory_id, const char *key, const char *value)
{
    /* pg_timezone_names rather than trying the name: an unknown zone is an
     * error that would abort the caller's transaction. Stored as
     * PostgreSQL spells it ("europe/berlin" -> "Europe/Berlin"). */
    static const struct db_stmt tz = {"alert_tz_find",
                                      "SELECT name FROM pg_timezone_names "
                                      "WHERE lower(name) = lower($1) ORDER BY name = $1 DESC, name "
                                      "LIMIT 1",
                                      1};
    /* One statement: the change and its NOTIFY commit together, whether
     * the caller has a transaction open or not. */
    static const struct db_stmt st = {
        "alert_factory_set",
        "WITH u AS (UPDATE factories SET "
        "  devices_auto_register = coalesce($2::boolean, devices_auto_register), "
        "  device_offline_s = coalesce($3::int, device_offline_s), "
        "  escalate_after_s = coalesce($4::int, escalate_after_s), "
        "  max_devices = coalesce($5::int, max_devices), "
        "  timezone = coalesce($6, timezone) "
        "  WHERE id = $1 RETURNING id) "
        "SELECT pg_notify($7, '') FROM u",
        7};
    const char *p[7] = {NULL};
    struct db_num fid;
    char num[16], zone[TIMEZONE_NAME_MAX + 1];
    PGresult *res;
    int v, r;

    if (!key || !value)
        return -EINVAL;
    p[0] = db_num(&fid, factory_id);
    p[6] = ALERT_RULES_EVENT;
    if (strcmp(key, "auto_register") == 0) {
        if (strcasecmp(value, "on") == 0 || strcasecmp(value, "true") == 0)
            p[1] = "true";
        else if (strcasecmp(value, "off") == 0 || strcasecmp(value, "false") == 0)
            p[1] = "false";
        else
            return -EINVAL;
    } else if (strcmp(key, "offline_s") == 0 || strcmp(key, "escalate_s") == 0) {
        int min = key[0] == 'o' ? OFFLINE_S_MIN : ESCALATE_S_MIN;
        if (parse_int(value, 0, SETTING_S_MAX, &v) < 0 || (v != 0 && v < min))
            return -EINVAL;
        snprintf(num, sizeof(num), "%d", v);
        p[key[0] == 'o' ? 2 : 3] = num;
    } else if (strcmp(key, "max_devices") == 0) {
        if (parse_int(value, 0, MAX_DEVICES_MAX, &v) < 0)
            return -EINVAL;
        snprintf(num, sizeof(num), "%d", v);
        p[4] = num;
    } else if (strcmp(key, "timezone") == 0) {
        if (!*value || strlen(value) > TIMEZONE_NAME_MAX)
            return -EINVAL;
        r = db_query(db, &tz, (const char *[]){value}, &res);
        if (r < 0)
            return r;
        r = PQntuples(res) == 1 ? 0 : -EINVAL;
        if (r == 0)
            snprintf(zone, sizeof(zone), "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        if (r < 0)
            return r;
        p[5] = zone;
    } else {
        return -EINVAL;
    }
    r = db_query(db, &st, p, &res);
    if (r < 0)
        return r;
    r = PQntuples(res) == 1 ? 0 : -ENOENT;
    PQclear(res);
    return r;
}

/* ---- devices ---- */

#define DEVICE_COLUMNS                                                                             \
    "d.id, d.factory_id, coalesce(d.equipment_id, 0), d.key, e.number, " EQ_LABEL ", "             \
    "array_to_string(d.parameters, ', '), "                                                        \
    "to_char(d.last_seen" AT_LOCAL ", " DAY_TIME "), "                                             \
    "coalesce(extract(epoch FROM d.last_seen), 0)::double precision, "                             \
    "EXISTS (SELECT 1 FROM alarms o WHERE o.factory_id = d.factory_id AND o.device_id = d.id "     \
    "  AND o.source = 'offline' AND o.resolved_at IS NULL) "
#define DEVICE_FROM                                                                                \
    "FROM devices d JOIN factories f ON f.id = d.factory_id "                                      \
    "LEFT JOIN equipment e ON e.factory_id = d.factory_id AND e.id = d.equipment_id "

static int device_row(struct arena *a, const PGresult *res, int i, struct device *d)
{
    d->id = db_i64(res, i, 0);
    d->factory_id = db_i64(res, i, 1);
    d->equipment_id = db_i64(res, i, 2);
    d->key = db_str(a, res, i, 3);
    d->equipment_number = db_str(a, res, i, 4);
    d->equipment_label = db_str(a, res, i, 5);
    d->parameters = db_str(a, res, i, 6);
    d->last_seen = db_str(a, res, i, 7);
    d->last_seen_epoch = strtod(PQgetvalue(res, i, 8), NULL);
    d->offline = is_true(res, i, 9);
    return d->key && d->parameters ? 0 : -ENOMEM;
}

static int device_many(struct db *db, struct arena *a, const struct db_stmt *st,
                       const char *const *params, struct device **ret, int *n)
{
    struct device *v;
    PGresult *res;
    int r, rows;

    r = db_query(db, st, params, &res);
    if (r < 0)
        return r;
    rows = PQntuples(res);
    v = arena_alloc(a, sizeof(*v) * (size_t)(rows ? rows : 1));
    if (!v) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        r = device_row(a, res, i, &v[i]);
        if (r < 0)
            goto out;
    }
    *ret = v;
    *n = rows;
out:
    PQclear(res);
    return r;
}

int db_devices_load(struct db *db, struct arena *a, struct device **ret, int *n)
{
    static const struct db_stmt st = {
        "devices_load", "SELECT " DEVICE_COLUMNS DEVICE_FROM "ORDER BY d.factory_id, d.key", 0};

    return device_many(db, a, &st, NULL, ret, n);
}

int db_device_list(struct db *db, struct arena *a, int64_t factory_id, int offset, int limit,
                   struct device **ret, int *n, int *total)
{
    static const struct db_stmt page = {"device_list",
                                        "SELECT " DEVICE_COLUMNS DEVICE_FROM
                                        "WHERE d.factory_id = $1 ORDER BY d.key OFFSET $2 LIMIT $3",
                                        3};
    static const struct db_stmt count = {"device_count",
                                         "SELECT count(*) FROM devices WHERE factory_id = $1", 1};
    struct db_num fid, off, lim;
    PGresult *res;
    int r, t;

    r = db_query(db, &count, (const char *[]){db_num(&fid, factory_id)}, &res);
    if (r < 0)
        return r;
    t = db_int(res, 0, 0);
    PQclear(res);
    r = device_many(db, a, &page,
                    (const char *[]){fid.s, db_num(&off, offset < 0 ? 0 : offset),
                                     db_num(&lim, limit < 0 ? 0 : limit)},
                    ret, n);
    if (r == 0)
        *total = t;
    return r;
}

int db_device_get(struct db *db, struct arena *a, int64_t factory_id, const char *key,
                  struct device *ret)
{
    static const struct db_stmt st = {
        "device_get", "SELECT " DEVICE_COLUMNS DEVICE_FROM "WHERE d.factory_id = $1 AND d.key = $2",
        2};
    struct device *v;
    struct db_num fid;
    int r, n;

    if (!device_key_ok(key))
        return -ENOENT;
    r = device_many(db, a, &st, (const char *[]){db_num(&fid, factory_id), key}, &v, &n);
    if (r < 0)
        return r;
    if (n == 0)
        return -ENOENT;
    *ret = v[0];
    return 0;
}

int db_device_register(struct db *db, struct arena *a, int64_t factory_id, const char *key,
                       int max_devices, struct device *ret)
{
    /* The count and the insert are not serialized: two processes
     * registering at once may each see room for one more, so a factory
     * can end up a device or two over max_devices. The limit stops a
     * flood of random keys, not the odd extra device. */
    static const struct db_stmt st = {
        "device_register",
        "INSERT INTO devices (factory_id, key) "
        "SELECT $1::bigint, $2::text "
        "WHERE (SELECT count(*) FROM devices WHERE factory_id = $1::bigint) < $3::int "
        "ON CONFLICT (factory_id, key) DO NOTHING",
        3};
    struct db_num fid, max;
    int r;

    if (!device_key_ok(key))
        return -EINVAL;
    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), key, db_num(&max, max_devices)}, NULL);
    if (r < 0)
        return r;
    /* Inserted now, or there already (registered meanwhile, or a full
     * factory's existing device): either way it is there to read. */
    r = db_device_get(db, a, factory_id, key, ret);
    return r == -ENOENT ? -ENOSPC : r;
}

int db_device_link(struct db *db, int64_t factory_id, const char *key, int64_t equipment_id)
{
    /* The machine must be this factory's: checked here, not left to the
     * foreign key, whose violation would abort the caller's transaction. */
    static const struct db_stmt st = {
        "device_link",
        "UPDATE devices SET equipment_id = $3::bigint WHERE factory_id = $1 AND key = $2 "
        "AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM equipment e "
        "  WHERE e.factory_id = $1 AND e.id = $3::bigint))",
        3};
    struct db_num fid, eid;
    PGresult *res;
    int r;

    if (!device_key_ok(key))
        return -ENOENT;
    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), key,
                                  equipment_id ? db_num(&eid, equipment_id) : NULL},
                 &res);
    if (r < 0)
        return r;
    r = changed(res) == 1 ? 0 : -ENOENT;
    PQclear(res);
    return r;
}

/* The parameter list keeps the names it has and adds new ones, sorted, up
 * to 256: once full, a device's new names are dropped rather than pushing
 * out names rules may already use. Names sort bytewise (COLLATE "C"), as
 * strcmp() does, whatever the database's collation. */
int db_devices_seen(struct db *db, struct arena *a, const struct device_seen *s, int n,
                    int64_t **back, int64_t **factories, int *n_back)
{
    static const struct db_stmt st = {
        "devices_seen",
        "WITH s AS (SELECT d.factory_id, d.id, max(x.ts) AS ts "
        "  FROM unnest($1::bigint[], $2::double precision[]) AS x(id, ts) "
        "  JOIN devices d ON d.id = x.id GROUP BY d.factory_id, d.id), "
        "p AS (SELECT DISTINCT y.id, y.name FROM unnest($3::bigint[], $4::text[]) AS y(id, name)), "
        "seen AS (UPDATE devices d SET "
        "  last_seen = CASE WHEN s.ts > 0 THEN greatest(d.last_seen, to_timestamp(s.ts)) "
        "    ELSE d.last_seen END, "
        "  parameters = CASE WHEN NOT EXISTS (SELECT 1 FROM p WHERE p.id = d.id "
        "      AND NOT p.name = ANY (d.parameters)) THEN d.parameters "
        "    ELSE (SELECT array_agg(k ORDER BY k COLLATE \"C\") FROM ("
        "      SELECT u.k FROM (SELECT unnest(d.parameters) AS k "
        "        UNION SELECT p.name FROM p WHERE p.id = d.id) u "
        "      ORDER BY u.k = ANY (d.parameters) DESC, u.k COLLATE \"C\" LIMIT 256) kept) END "
        "  FROM s WHERE d.factory_id = s.factory_id AND d.id = s.id RETURNING d.id), "
        "back AS (UPDATE alarms a SET resolved_at = now() FROM s "
        "  WHERE a.factory_id = s.factory_id AND a.device_id = s.id AND a.source = 'offline' "
        "  AND a.resolved_at IS NULL RETURNING a.id, a.factory_id) "
        "SELECT id, factory_id FROM back ORDER BY id",
        4};
    int64_t *ids = NULL, *pdev = NULL;
    double *ts = NULL;
    const char **pname = NULL;
    char *p1, *p2, *p3, *p4;
    size_t np = 0, k = 0;
    PGresult *res;
    int r;

    if (n < 0 || (n > 0 && !s))
        return -EINVAL;
    if (n == 0) {
        *back = NULL;
        *factories = NULL;
        *n_back = 0;
        return 0;
    }
    for (int i = 0; i < n; i++)
        np += s[i].params && s[i].n_params > 0 ? (size_t)s[i].n_params : 0;
    ids = arena_alloc(a, sizeof(*ids) * (size_t)n);
    ts = arena_alloc(a, sizeof(*ts) * (size_t)n);
    pdev = arena_alloc(a, sizeof(*pdev) * (np ? np : 1));
    pname = arena_alloc(a, sizeof(*pname) * (np ? np : 1));
    if (!ids || !ts || !pdev || !pname)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        ids[i] = s[i].device_id;
        ts[i] = s[i].last_seen;
        for (int j = 0; s[i].params && j < s[i].n_params; j++) {
            if (!s[i].params[j])
                continue;
            pdev[k] = s[i].device_id;
            pname[k++] = s[i].params[j];
        }
    }
    p1 = num_array(a, ids, NULL, (size_t)n);
    p2 = num_array(a, NULL, ts, (size_t)n);
    p3 = num_array(a, pdev, NULL, k);
    p4 = text_array(a, pname, k);
    if (!p1 || !p2 || !p3 || !p4)
        return -ENOMEM;
    r = db_query(db, &st, (const char *[]){p1, p2, p3, p4}, &res);
    if (r < 0)
        return r;
    r = id_pairs(a, res, back, factories, n_back);
    PQclear(res);
    return r;
}

int db_devices_offline(struct db *db, struct arena *a, double listening_s, int64_t **ids,
                       int64_t **factories, int *n)
{
    /* A device never heard from counts from its registration. The message
     * is written here, where the factory's timezone is at hand: minutes
     * (rounded down) up to two hours, hours after; the time of day it was
     * last seen, with the date when that was a day or more ago. */
    static const struct db_stmt st = {
        "devices_offline",
        "INSERT INTO alarms (factory_id, device_id, source, severity, message, snapshot, "
        "  observed_at) "
        "SELECT d.factory_id, d.id, 'offline', 'high', "
        "  'No data for ' || CASE WHEN q.m < 120 THEN q.m || ' min' ELSE (q.m / 60) || ' h' END "
        "  || CASE WHEN d.last_seen IS NULL THEN ' (never seen)' "
        "    WHEN d.last_seen > now() - interval '1 day' "
        "    THEN ' (last seen ' || to_char(d.last_seen" AT_LOCAL ", " TIME_OF_DAY ") || ')' "
        "    ELSE ' (last seen ' || to_char(d.last_seen" AT_LOCAL ", " DAY_TIME ") || ')' END, "
        "  '{}'::jsonb, now() "
        "FROM devices d JOIN factories f ON f.id = d.factory_id "
        "CROSS JOIN LATERAL (SELECT floor(extract(epoch FROM "
        "  now() - coalesce(d.last_seen, d.created_at)) / 60)::bigint AS m) q "
        "WHERE f.device_offline_s > 0 AND f.device_offline_s <= $1::double precision "
        "  AND coalesce(d.last_seen, d.created_at) < "
        "    now() - make_interval(secs => f.device_offline_s) "
        "  AND NOT EXISTS (SELECT 1 FROM alarms o WHERE o.factory_id = d.factory_id "
        "    AND o.device_id = d.id AND o.source = 'offline' AND o.resolved_at IS "
        "NULL) " DEVICE_OPEN_CONFLICT "RETURNING id, factory_id",
        1};
    struct db_dbl l;
    PGresult *res;
    int r;

    if (isnan(listening_s))
        return -EINVAL;
    if (!epoch_ok(listening_s)) /* forever: long enough for any factory */
        listening_s = listening_s > 0 ? EPOCH_MAX / 2 : 0;
    r = db_query(db, &st, (const char *[]){db_dbl(&l, listening_s)}, &res);
    if (r < 0)
        return r;
    r = id_pairs(a, res, ids, factories, n);
    PQclear(res);
    return r;
}

/* ---- rules ---- */

int db_rule_save(struct db *db, int64_t factory_id, const char *name, const char *severity,
                 const char *definition, bool replace, int64_t *id)
{
    /* Without replace the DO UPDATE's WHERE is false: a clash returns no
     * row. The active column follows the definition's "active" (true when
     * absent), so what the file says is what runs. */
    static const struct db_stmt st = {
        "rule_save",
        "WITH s AS (INSERT INTO alert_rules (factory_id, name, severity, definition, active) "
        "  VALUES ($1, $2, $3, $4::jsonb, coalesce(($4::jsonb ->> 'active')::boolean, true)) "
        "  ON CONFLICT (factory_id, name) DO UPDATE SET severity = excluded.severity, "
        "    definition = excluded.definition, active = excluded.active, updated_at = now() "
        "  WHERE $5::boolean "
        "  RETURNING id) "
        "SELECT id, pg_notify($6, '') FROM s",
        6};
    struct db_num fid;
    PGresult *res;
    int r;

    if (!name || !*name || utf8_chars(name) > RULE_NAME_MAX || !severity_ok(severity, false) ||
        !definition)
        return -EINVAL;
    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), name, severity, definition,
                                  replace ? "true" : "false", ALERT_RULES_EVENT},
                 &res);
    if (r < 0)
        return r;
    r = PQntuples(res) == 1 ? 0 : -EEXIST;
    if (r == 0)
        *id = db_i64(res, 0, 0);
    PQclear(res);
    return r;
}

int db_rule_set_active(struct db *db, int64_t factory_id, int64_t id, bool active)
{
    static const struct db_stmt st = {
        "rule_set_active",
        "WITH u AS (UPDATE alert_rules SET active = $3, updated_at = now(), "
        "    definition = jsonb_set(definition, '{active}', to_jsonb($3::boolean)) "
        "  WHERE factory_id = $1 AND id = $2 RETURNING id) "
        "SELECT pg_notify($4, '') FROM u",
        4};
    struct db_num fid, rid;
    PGresult *res;
    int r;

    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), db_num(&rid, id),
                                  active ? "true" : "false", ALERT_RULES_EVENT},
                 &res);
    if (r < 0)
        return r;
    r = PQntuples(res) == 1 ? 0 : -ENOENT;
    PQclear(res);
    return r;
}

int db_rule_list(struct db *db, struct arena *a, int64_t factory_id, bool active_only,
                 struct alert_rule **ret, int *n)
{
    static const struct db_stmt st = {
        "rule_list",
        "SELECT r.id, r.factory_id, r.name, r.severity, r.definition::text, r.active, "
        "  to_char(r.updated_at" AT_LOCAL ", " DAY_TIME ") "
        "FROM alert_rules r JOIN factories f ON f.id = r.factory_id "
        "WHERE ($1::bigint = 0 OR r.factory_id = $1::bigint) "
        "  AND (NOT $2::boolean OR r.active) "
        "ORDER BY r.factory_id, r.name, r.id",
        2};
    struct alert_rule *v;
    struct db_num fid;
    PGresult *res;
    int r, rows;

    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), active_only ? "true" : "false"}, &res);
    if (r < 0)
        return r;
    rows = PQntuples(res);
    v = arena_alloc(a, sizeof(*v) * (size_t)(rows ? rows : 1));
    if (!v) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        v[i].id = db_i64(res, i, 0);
        v[i].factory_id = db_i64(res, i, 1);
        v[i].name = db_str(a, res, i, 2);
        v[i].severity = db_str(a, res, i, 3);
        v[i].definition = db_str(a, res, i, 4);
        v[i].active = is_true(res, i, 5);
        v[i].updated_at = db_str(a, res, i, 6);
        if (!v[i].name || !v[i].severity || !v[i].definition || !v[i].updated_at) {
            r = -ENOMEM;
            goto out;
        }
    }
    *ret = v;
    *n = rows;
out:
    PQclear(res);
    return r;
}

/* ---- alarms ---- */

int db_alarm_raise(struct db *db, const struct alarm_new *n, int64_t *id)
{
    /* A rule's alarm: none of the same rule and device observed within
     * the cooldown of this one on either side (messages arrive out of
     * order: a gateway's backlog, two processes splitting one device's
     * stream), a range alarms_cooldown answers. The transaction-scoped
     * advisory lock on (rule, device) makes two processes take turns, so
     * neither misses the other's alarm. The same instant again (a
     * redelivered message with cooldown 0) meets alarms_rule_once: DO
     * NOTHING, -EEXIST either way. */
    static const struct db_stmt lock = {"alarm_raise_lock",
                                        "SELECT pg_advisory_xact_lock($1::int, $2::int)", 2};
    static const struct db_stmt rule = {
        "alarm_raise_rule",
        "INSERT INTO alarms (factory_id, device_id, rule_id, source, severity, message, "
        "  snapshot, observed_at) "
        "SELECT $1::bigint, $2::bigint, $3::bigint, 'rule', $4::text, $5::text, "
        "  coalesce($6::jsonb, '{}'::jsonb), to_timestamp($7::double precision) "
        "WHERE NOT EXISTS (SELECT 1 FROM alarms a WHERE a.factory_id = $1::bigint "
        "  AND a.rule_id = $3::bigint AND a.device_id = $2::bigint "
        "  AND a.observed_at < to_timestamp($7::double precision) + make_interval(secs => "
        "$8::int) "
        "  AND a.observed_at > to_timestamp($7::double precision) - make_interval(secs => "
        "$8::int)) "
        "ON CONFLICT (factory_id, rule_id, device_id, observed_at) WHERE rule_id IS NOT NULL "
        "DO NOTHING RETURNING id",
        8};
    static const struct db_stmt dev = {
        "alarm_raise_device",
        "INSERT INTO alarms (factory_id, device_id, source, code, severity, message, snapshot, "
        "  observed_at) "
        "VALUES ($1::bigint, $2::bigint, $3::text, $4::text, $5::text, $6::text, "
        "  coalesce($7::jsonb, '{}'::jsonb), to_timestamp($8::double "
        "precision)) " DEVICE_OPEN_CONFLICT "RETURNING id",
        8};
    struct db_num fid, did, rid, cd;
    struct db_dbl t;
    PGresult *res;
    int r;

    if (!n || !n->factory_id || !n->device_id || !severity_ok(n->severity, false) || !n->message ||
        !*n->message || utf8_chars(n->message) > ALARM_MESSAGE_CHARS || !epoch_ok(n->observed_at))
        return -EINVAL;
    db_num(&fid, n->factory_id);
    db_num(&did, n->device_id);
    db_dbl(&t, n->observed_at);
    switch (n->source) {
    case ALARM_RULE:
        if (!n->rule_id)
            return -EINVAL;
        /* int4 halves of the ids: a collision only makes two alarms wait
         * for each other */
        r = db_query(
            db, &lock,
            (const char *[]){db_num(&rid, (int32_t)n->rule_id), db_num(&cd, (int32_t)n->device_id)},
            NULL);
        if (r < 0)
            return r;
        r = db_query(db, &rule,
                     (const char *[]){fid.s, did.s, db_num(&rid, n->rule_id), n->severity,
                                      n->message, n->snapshot, t.s,
                                      db_num(&cd, n->cooldown_s > 0 ? n->cooldown_s : 0)},
                     &res);
        break;
    case ALARM_DEVICE:
    case ALARM_OFFLINE:
        if (n->code && utf8_chars(n->code) > ALARM_CODE_CHARS)
            return -EINVAL;
        r = db_query(db, &dev,
                     (const char *[]){fid.s, did.s,
                                      n->source == ALARM_DEVICE ? "device" : "offline",
                                      n->source == ALARM_DEVICE ? n->code : NULL, n->severity,
                                      n->message, n->snapshot, t.s},
                     &res);
        break;
    default:
        return -EINVAL;
    }
    if (r < 0)
        return r;
    r = PQntuples(res) == 1 ? 0 : -EEXIST;
    if (r == 0)
        *id = db_i64(res, 0, 0);
    PQclear(res);
    return r;
}

#define ALARM_COLUMNS                                                                              \
    "a.id, a.factory_id, a.device_id, coalesce(a.rule_id, 0), coalesce(d.equipment_id, 0), "       \
    "coalesce(a.work_order_id, 0), a.source, a.code, a.severity, a.message, a.snapshot::text, "    \
    "d.key, r.name, e.number, " EQ_LABEL ", w.number, "                                            \
    "to_char(a.observed_at" AT_LOCAL ", " DAY_TIME "), "                                           \
    "to_char(a.acknowledged_at" AT_LOCAL ", " TIME_OF_DAY "), ua.display_name, "                   \
    "to_char(a.resolved_at" AT_LOCAL ", " TIME_OF_DAY "), ur.display_name, "                       \
    "a.acknowledged_at IS NOT NULL, a.resolved_at IS NOT NULL, a.escalated_at IS NOT NULL "
#define ALARM_JOINS                                                                                \
    "JOIN factories f ON f.id = a.factory_id "                                                     \
    "JOIN devices d ON d.factory_id = a.factory_id AND d.id = a.device_id "                        \
    "LEFT JOIN equipment e ON e.factory_id = d.factory_id AND e.id = d.equipment_id "              \
    "LEFT JOIN alert_rules r ON r.factory_id = a.factory_id AND r.id = a.rule_id "                 \
    "LEFT JOIN users ua ON ua.factory_id = a.factory_id AND ua.id = a.acknowledged_by "            \
    "LEFT JOIN users ur ON ur.factory_id = a.factory_id AND ur.id = a.resolved_by "                \
    "LEFT JOIN work_orders w ON w.factory_id = a.factory_id AND w.id = a.work_order_id "
#define ALARM_FROM "FROM alarms a " ALARM_JOINS

static int alarm_row(struct arena *a, const PGresult *res, int i, struct alarm *x)
{
    x->id = db_i64(res, i, 0);
    x->factory_id = db_i64(res, i, 1);
    x->device_id = db_i64(res, i, 2);
    x->rule_id = db_i64(res, i, 3);
    x->equipment_id = db_i64(res, i, 4);
    x->work_order_id = db_i64(res, i, 5);
    x->source = db_str(a, res, i, 6);
    x->code = db_str(a, res, i, 7);
    x->severity = db_str(a, res, i, 8);
    x->message = db_str(a, res, i, 9);
    x->snapshot = db_str(a, res, i, 10);
    x->device_key = db_str(a, res, i, 11);
    x->rule_name = db_str(a, res, i, 12);
    x->equipment_number = db_str(a, res, i, 13);
    x->equipment_label = db_str(a, res, i, 14);
    x->work_order_number = db_str(a, res, i, 15);
    x->observed_at = db_str(a, res, i, 16);
    x->acknowledged_at = db_str(a, res, i, 17);
    x->acknowledged_by = db_str(a, res, i, 18);
    x->resolved_at = db_str(a, res, i, 19);
    x->resolved_by = db_str(a, res, i, 20);
    x->acknowledged = is_true(res, i, 21);
    x->resolved = is_true(res, i, 22);
    x->escalated = is_true(res, i, 23);
    return x->source && x->severity && x->message && x->snapshot && x->device_key && x->observed_at
               ? 0
               : -ENOMEM;
}

static int alarm_many(struct db *db, struct arena *a, const struct db_stmt *st,
                      const char *const *params, struct alarm **ret, int *n)
{
    struct alarm *v;
    PGresult *res;
    int r, rows;

    r = db_query(db, st, params, &res);
    if (r < 0)
        return r;
    rows = PQntuples(res);
    v = arena_alloc(a, sizeof(*v) * (size_t)(rows ? rows : 1));
    if (!v) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        r = alarm_row(a, res, i, &v[i]);
        if (r < 0)
            goto out;
    }
    *ret = v;
    *n = rows;
out:
    PQclear(res);
    return r;
}

int db_alarm_get(struct db *db, struct arena *a, int64_t factory_id, int64_t id, bool for_update,
                 struct alarm *ret)
{
    static const struct db_stmt st[2] = {
        {"alarm_get", "SELECT " ALARM_COLUMNS ALARM_FROM "WHERE a.factory_id = $1 AND a.id = $2",
         2},
        {"alarm_get_lock",
         "SELECT " ALARM_COLUMNS ALARM_FROM "WHERE a.factory_id = $1 AND a.id = $2 FOR UPDATE OF a",
         2},
    };
    struct db_num fid, aid;
    struct alarm *v;
    int r, n;

    r = alarm_many(db, a, &st[for_update ? 1 : 0],
                   (const char *[]){db_num(&fid, factory_id), db_num(&aid, id)}, &v, &n);
    if (r < 0)
        return r;
    if (n == 0)
        return -ENOENT;
    *ret = v[0];
    return 0;
}

int db_alarm_list(struct db *db, struct arena *a, int64_t factory_id, bool open_only, int offset,
                  int limit, struct alarm **ret, int *n, int *total)
{
    static const struct db_stmt page = {
        "alarm_list",
        "SELECT " ALARM_COLUMNS ALARM_FROM
        "WHERE a.factory_id = $1 AND (NOT $2::boolean OR a.resolved_at IS NULL) "
        "ORDER BY a.id DESC OFFSET $3 LIMIT $4",
        4};
    static const struct db_stmt count = {"alarm_count",
                                         "SELECT count(*) FROM alarms WHERE factory_id = $1 "
                                         "AND (NOT $2::boolean OR resolved_at IS NULL)",
                                         2};
    struct db_num fid, off, lim;
    const char *open = open_only ? "true" : "false";
    PGresult *res;
    int r, t;

    r = db_query(db, &count, (const char *[]){db_num(&fid, factory_id), open}, &res);
    if (r < 0)
        return r;
    t = db_int(res, 0, 0);
    PQclear(res);
    r = alarm_many(db, a, &page,
                   (const char *[]){fid.s, open, db_num(&off, offset < 0 ? 0 : offset),
                                    db_num(&lim, limit < 0 ? 0 : limit)},
                   ret, n);
    if (r == 0)
        *total = t;
    return r;
}

int db_alarm_list_equipment(struct db *db, struct arena *a, int64_t factory_id,
                            int64_t equipment_id, int limit, struct alarm **ret, int *n)
{
    static const struct db_stmt st = {
        "alarm_list_equipment",
        "SELECT " ALARM_COLUMNS ALARM_FROM
        "WHERE a.factory_id = $1 AND a.resolved_at IS NULL AND a.device_id IN "
        "  (SELECT id FROM devices WHERE factory_id = $1 AND equipment_id = $2) "
        "ORDER BY a.id DESC LIMIT $3",
        3};
    struct db_num fid, eid, lim;

    return alarm_many(db, a, &st,
                      (const char *[]){db_num(&fid, factory_id), db_num(&eid, equipment_id),
                                       db_num(&lim, limit < 0 ? 0 : limit)},
                      ret, n);
}

/* After an UPDATE that changed nothing: -ENOENT when the factory has no
 * such alarm, or user (when one acts) is not its member; else -EALREADY
 * (the condition on the alarm's state was what failed). Alarms and users
 * are never deleted, so the answer cannot change in between. */
static int alarm_why_not(struct db *db, const char *fid, const char *aid, const char *uid)
{
    static const struct db_stmt st = {
        "alarm_exists",
        "SELECT 1 FROM alarms WHERE factory_id = $1 AND id = $2 AND ($3::bigint IS NULL "
        "OR EXISTS (SELECT 1 FROM users u WHERE u.factory_id = $1 AND u.id = $3::bigint))",
        3};
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){fid, aid, uid}, &res);
    if (r < 0)
        return r;
    r = PQntuples(res) == 1 ? -EALREADY : -ENOENT;
    PQclear(res);
    return r;
}

/* Runs an UPDATE of one alarm whose parameters are the factory, the alarm
 * and, when with_user, the user acting; 0, or alarm_why_not()'s answer. */
static int alarm_update(struct db *db, const struct db_stmt *st, const char *const *params,
                        bool with_user)
{
    PGresult *res;
    int r;

    r = db_query(db, st, params, &res);
    if (r < 0)
        return r;
    r = changed(res) == 1 ? 0 : 1;
    PQclear(res);
    return r == 0 ? 0 : alarm_why_not(db, params[0], params[1], with_user ? params[2] : NULL);
}

/* The user must be a member of the alarm's factory: checked in the WHERE,
 * so that a stranger's id is -ENOENT and not a foreign key violation. */
#define MEMBER "EXISTS (SELECT 1 FROM users u WHERE u.factory_id = $1 AND u.id = $3) "

int db_alarm_ack(struct db *db, int64_t factory_id, int64_t id, int64_t user_id)
{
    static const struct db_stmt st = {
        "alarm_ack",
        "UPDATE alarms SET acknowledged_at = now(), acknowledged_by = $3 "
        "WHERE factory_id = $1 AND id = $2 AND acknowledged_at IS NULL AND resolved_at IS NULL "
        "AND " MEMBER,
        3};
    struct db_num fid, aid, uid;

    return alarm_update(
        db, &st,
        (const char *[]){db_num(&fid, factory_id), db_num(&aid, id), db_num(&uid, user_id)}, true);
}

int db_alarm_resolve(struct db *db, int64_t factory_id, int64_t id, int64_t user_id)
{
    /* SET expressions read the row as it was: acknowledged_by changes only
     * when it had not been acknowledged. */
    static const struct db_stmt st = {
        "alarm_resolve",
        "UPDATE alarms SET resolved_at = now(), resolved_by = $3, "
        "  acknowledged_at = coalesce(acknowledged_at, now()), "
        "  acknowledged_by = CASE WHEN acknowledged_at IS NULL THEN $3 ELSE acknowledged_by END "
        "WHERE factory_id = $1 AND id = $2 AND resolved_at IS NULL AND " MEMBER,
        3};
    struct db_num fid, aid, uid;

    return alarm_update(
        db, &st,
        (const char *[]){db_num(&fid, factory_id), db_num(&aid, id), db_num(&uid, user_id)}, true);
}

int db_alarm_set_work_order(struct db *db, int64_t factory_id, int64_t id, int64_t wo_id)
{
    static const struct db_stmt st = {
        "alarm_set_wo",
        "UPDATE alarms SET work_order_id = $3::bigint WHERE factory_id = $1 AND id = $2 "
        "AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM work_orders w "
        "  WHERE w.factory_id = $1 AND w.id = $3::bigint))",
        3};
    struct db_num fid, aid, wid;
    PGresult *res;
    int r;

    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), db_num(&aid, id),
                                  wo_id ? db_num(&wid, wo_id) : NULL},
                 &res);
    if (r < 0)
        return r;
    r = changed(res) == 1 ? 0 : -ENOENT;
    PQclear(res);
    return r;
}

int db_alarm_counts(struct db *db, int64_t factory_id, int by_severity[4])
{
    static const struct db_stmt st = {"alarm_counts",
                                      "SELECT array_position(" SEVERITY_ARRAY
                                      ", severity), count(*) FROM alarms "
                                      "WHERE factory_id = $1 AND resolved_at IS NULL "
                                      "GROUP BY severity",
                                      1};
    struct db_num fid;
    PGresult *res;
    int r, k[4] = {0};

    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id)}, &res);
    if (r < 0)
        return r;
    for (int i = 0; i < PQntuples(res); i++) {
        int s = db_int(res, i, 0);
        if (s >= 1 && s <= 4)
            k[s - 1] = db_int(res, i, 1);
    }
    PQclear(res);
    memcpy(by_severity, k, sizeof(k));
    return 0;
}

/* ---- recipients and deliveries ---- */

int db_recipients_query(struct db *db, struct arena *a, const struct db_stmt *st,
                        const char *const *params, struct alarm_recipient **ret, int *n)
{
    struct alarm_recipient *v;
    PGresult *res;
    int r, rows;

    r = db_query(db, st, params, &res);
    if (r < 0)
        return r;
    rows = PQntuples(res);
    v = arena_alloc(a, sizeof(*v) * (size_t)(rows ? rows : 1));
    if (!v) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        v[i].user_id = db_i64(res, i, 0);
        v[i].channel = db_str(a, res, i, 1);
        v[i].chat_id = db_str(a, res, i, 2);
        if (!v[i].channel || !v[i].chat_id) {
            r = -ENOMEM;
            goto out;
        }
    }
    *ret = v;
    *n = rows;
out:
    PQclear(res);
    return r;
}

int db_alarm_recipients(struct db *db, struct arena *a, int64_t factory_id, int64_t alarm_id,
                        struct alarm_recipient **ret, int *n)
{
    /* The effective minimum: the user's row for this device, else the
     * user's row for every device, else high. 'off' ranks above critical,
     * so it lets nothing through. */
    static const struct db_stmt st = {
        "alarm_recipients",
        "SELECT u.id, c.channel, c.chat_id FROM alarms a "
        "JOIN users u ON u.factory_id = a.factory_id AND u.active "
        "CROSS JOIN LATERAL (SELECT coalesce("
        "  (SELECT s.min_severity FROM alarm_subscriptions s WHERE s.factory_id = a.factory_id "
        "    AND s.user_id = u.id AND s.device_id = a.device_id), "
        "  (SELECT s.min_severity FROM alarm_subscriptions s WHERE s.factory_id = a.factory_id "
        "    AND s.user_id = u.id AND s.device_id IS NULL), "
        "  'high') AS min_severity) sub " USER_CHATS "WHERE a.factory_id = $1 AND a.id = $2 "
        "  AND array_position(ARRAY['low','medium','high','critical','off'], a.severity) >= "
        "    array_position(ARRAY['low','medium','high','critical','off'], sub.min_severity) "
        "  AND NOT EXISTS (SELECT 1 FROM alarm_mutes m WHERE m.factory_id = a.factory_id "
        "    AND m.user_id = u.id AND (m.device_id = a.device_id OR m.device_id IS NULL) "
        "    AND m.until > now()) "
        "ORDER BY u.id, c.channel",
        2};
    struct db_num fid, aid;

    return db_recipients_query(
        db, a, &st, (const char *[]){db_num(&fid, factory_id), db_num(&aid, alarm_id)}, ret, n);
}

int db_alarm_supervisors(struct db *db, struct arena *a, int64_t factory_id,
                         struct alarm_recipient **ret, int *n)
{
    /* Admins stand in when no supervisor can be reached (none active, or
     * none with an active chat): an escalation that reaches nobody is the
     * one thing it must not do. */
    static const struct db_stmt st = {
        "alarm_supervisors",
        "WITH r AS (SELECT u.id, u.role, c.channel, c.chat_id FROM users u " USER_CHATS
        "  WHERE u.factory_id = $1 AND u.active AND u.role IN ('supervisor', 'admin')) "
        "SELECT id, channel, chat_id FROM r WHERE role = 'supervisor' "
        "  OR NOT EXISTS (SELECT 1 FROM r WHERE role = 'supervisor') "
        "ORDER BY id, channel",
        1};
    struct db_num fid;

    return db_recipients_query(db, a, &st, (const char *[]){db_num(&fid, factory_id)}, ret, n);
}

static bool one_of(const char *s, const char *x, const char *y, const char *z)
{
    return s && (strcmp(s, x) == 0 || strcmp(s, y) == 0 || (z && strcmp(s, z) == 0));
}

int db_alarm_delivery_add(struct db *db, int64_t factory_id, int64_t alarm_id, int64_t user_id,
                          const char *kind, const char *channel, const char *chat_id,
                          const char *state, int64_t outbox_id)
{
    /* Alarm and user are looked up in the factory rather than left to the
     * foreign keys, and a repeat is DO NOTHING: neither aborts the
     * caller's transaction. */
    static const struct db_stmt st = {
        "alarm_delivery_add",
        "INSERT INTO alarm_deliveries (factory_id, alarm_id, user_id, kind, channel, chat_id, "
        "  state, outbox_id) "
        "SELECT a.factory_id, a.id, u.id, $4::text, $5::text, $6::text, $7::text, $8::bigint "
        "FROM alarms a "
        "JOIN users u ON u.factory_id = a.factory_id AND u.id = $3 "
        "WHERE a.factory_id = $1 AND a.id = $2 "
        "  AND ($8::bigint IS NULL OR EXISTS (SELECT 1 FROM outbox o WHERE o.id = $8::bigint)) "
        "ON CONFLICT (alarm_id, user_id, kind, channel) DO NOTHING RETURNING id",
        8};
    static const struct db_stmt dup = {
        "alarm_delivery_dup",
        "SELECT 1 FROM alarm_deliveries WHERE factory_id = $1 AND alarm_id = $2 "
        "AND user_id = $3 AND kind = $4",
        4};
    struct db_num fid, aid, uid, oid;
    PGresult *res;
    int r;

    if (!one_of(kind, "alarm", "escalation", NULL) ||
        !one_of(state, "queued", "held", "summarized") || !channel || !chat_id)
        return -EINVAL;
    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), db_num(&aid, alarm_id),
                                  db_num(&uid, user_id), kind, channel, chat_id, state,
                                  outbox_id ? db_num(&oid, outbox_id) : NULL},
                 &res);
    if (r < 0)
        return r;
    r = PQntuples(res) == 1 ? 0 : 1;
    PQclear(res);
    if (r == 0)
        return 0;
    r = db_query(db, &dup, (const char *[]){fid.s, aid.s, uid.s, kind}, &res);
    if (r < 0)
        return r;
    r = PQntuples(res) == 1 ? -EEXIST : -ENOENT;
    PQclear(res);
    return r;
}

int db_alarm_deliveries(struct db *db, struct arena *a, int64_t factory_id, int64_t alarm_id,
                        struct alarm_delivery **ret, int *n)
{
    static const struct db_stmt st = {
        "alarm_deliveries",
        "SELECT id, alarm_id, user_id, coalesce(outbox_id, 0), kind, channel, chat_id, state "
        "FROM alarm_deliveries WHERE factory_id = $1 AND alarm_id = $2 ORDER BY id",
        2};
    struct alarm_delivery *v;
    struct db_num fid, aid;
    PGresult *res;
    int r, rows;

    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id), db_num(&aid, alarm_id)}, &res);
    if (r < 0)
        return r;
    rows = PQntuples(res);
    v = arena_alloc(a, sizeof(*v) * (size_t)(rows ? rows : 1));
    if (!v) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        v[i].id = db_i64(res, i, 0);
        v[i].alarm_id = db_i64(res, i, 1);
        v[i].user_id = db_i64(res, i, 2);
        v[i].outbox_id = db_i64(res, i, 3);
        v[i].kind = db_str(a, res, i, 4);
        v[i].channel = db_str(a, res, i, 5);
        v[i].chat_id = db_str(a, res, i, 6);
        v[i].state = db_str(a, res, i, 7);
        if (!v[i].kind || !v[i].channel || !v[i].chat_id || !v[i].state) {
            r = -ENOMEM;
            goto out;
        }
    }
    *ret = v;
    *n = rows;
out:
    PQclear(res);
    return r;
}

int db_alarm_held_due(struct db *db, struct arena *a, double window_s, struct held_chat **ret,
                      int *n)
{
    static const struct db_stmt st = {
        "alarm_held_due",
        "SELECT channel, chat_id FROM alarm_deliveries WHERE state = 'held' "
        "GROUP BY channel, chat_id "
        "HAVING min(created_at) < now() - make_interval(secs => $1::double precision) "
        "ORDER BY min(created_at), channel, chat_id",
        1};
    struct held_chat *v;
    struct db_dbl w;
    PGresult *res;
    int r, rows;

    if (isnan(window_s))
        return -EINVAL;
    if (!epoch_ok(window_s))
        window_s = window_s > 0 ? EPOCH_MAX / 2 : 0;
    r = db_query(db, &st, (const char *[]){db_dbl(&w, window_s)}, &res);
    if (r < 0)
        return r;
    rows = PQntuples(res);
    v = arena_alloc(a, sizeof(*v) * (size_t)(rows ? rows : 1));
    if (!v) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        v[i].channel = db_str(a, res, i, 0);
        v[i].chat_id = db_str(a, res, i, 1);
        if (!v[i].channel || !v[i].chat_id) {
            r = -ENOMEM;
            goto out;
        }
    }
    *ret = v;
    *n = rows;
out:
    PQclear(res);
    return r;
}

/* held_take remembers the deliveries it locked in a setting local to the
 * transaction, and held_done marks exactly those: a delivery held after
 * the take (not in the summary being sent) stays held for the next one,
 * and rows another process locked are neither waited for nor touched.
 * Both must run in one transaction; the setting ends with it. */
#define HELD_SETTING "'rivet.held_deliveries'"
#define HELD_IDS                                                                                   \
    "string_to_array(nullif(current_setting(" HELD_SETTING ", true), ''), ',')::bigint[]"

int db_alarm_held_take(struct db *db, struct arena *a, const char *channel, const char *chat_id,
                       struct alarm **ret, int *n)
{
    static const struct db_stmt lock = {
        "alarm_held_lock",
        "SELECT set_config(" HELD_SETTING ", concat_ws(',', "
        "  nullif(current_setting(" HELD_SETTING ", true), ''), "
        "  (SELECT string_agg(h.id::text, ',') FROM (SELECT id FROM alarm_deliveries "
        "    WHERE state = 'held' AND channel = $1 AND chat_id = $2 "
        "    FOR UPDATE SKIP LOCKED) h)), true)",
        2};
    static const struct db_stmt st = {"alarm_held_take",
                                      "SELECT " ALARM_COLUMNS ALARM_FROM
                                      "WHERE (a.factory_id, a.id) IN ("
                                      "  SELECT h.factory_id, h.alarm_id FROM alarm_deliveries h "
                                      "  WHERE h.id = ANY (" HELD_IDS ") AND h.state = 'held' "
                                      "    AND h.channel = $1 AND h.chat_id = $2) "
                                      "ORDER BY array_position(" SEVERITY_ARRAY
                                      ", a.severity) DESC, a.created_at DESC, a.id DESC",
                                      2};
    int r;

    if (!channel || !chat_id)
        return -EINVAL;
    r = db_query(db, &lock, (const char *[]){channel, chat_id}, NULL);
    if (r < 0)
        return r;
    return alarm_many(db, a, &st, (const char *[]){channel, chat_id}, ret, n);
}

int db_alarm_held_done(struct db *db, const char *channel, const char *chat_id, int64_t outbox_id,
                       const char *state)
{
    static const struct db_stmt st = {
        "alarm_held_done",
        "UPDATE alarm_deliveries SET state = $4, outbox_id = $3::bigint "
        "WHERE id = ANY (" HELD_IDS ") AND state = 'held' AND channel = $1 AND chat_id = $2",
        4};
    struct db_num oid;

    if (!channel || !chat_id || !state ||
        (strcmp(state, "summarized") != 0 && strcmp(state, "queued") != 0))
        return -EINVAL;
    return db_query(
        db, &st,
        (const char *[]){channel, chat_id, outbox_id ? db_num(&oid, outbox_id) : NULL, state},
        NULL);
}

int db_alarm_escalations_due(struct db *db, struct arena *a, int limit, struct alarm **ret, int *n)
{
    static const struct db_stmt st = {
        "alarm_escalations_due",
        "SELECT " ALARM_COLUMNS ALARM_FROM
        "WHERE a.severity = 'critical' AND a.acknowledged_at IS NULL AND a.resolved_at IS NULL "
        "  AND a.escalated_at IS NULL AND f.escalate_after_s > 0 "
        "  AND a.created_at < now() - make_interval(secs => f.escalate_after_s) "
        "ORDER BY a.created_at, a.id LIMIT $1 FOR UPDATE OF a SKIP LOCKED",
        1};
    struct db_num lim;

    return alarm_many(db, a, &st, (const char *[]){db_num(&lim, limit < 0 ? 0 : limit)}, ret, n);
}

int db_alarm_escalated(struct db *db, int64_t factory_id, int64_t id)
{
    static const struct db_stmt st = {"alarm_escalated",
                                      "UPDATE alarms SET escalated_at = now() "
                                      "WHERE factory_id = $1 AND id = $2 AND escalated_at IS NULL",
                                      2};
    struct db_num fid, aid;

    return alarm_update(db, &st, (const char *[]){db_num(&fid, factory_id), db_num(&aid, id)},
                        false);
}

/* ---- subscriptions and mutes ---- */

/* The user, and the device when one is named, must be the factory's. */
#define SUB_TARGET                                                                                 \
    "WHERE EXISTS (SELECT 1 FROM users u WHERE u.factory_id = $1 AND u.id = $2) "                  \
    "  AND ($3::bigint IS NULL OR EXISTS (SELECT 1 FROM devices d "                                \
    "    WHERE d.factory_id = $1 AND d.id = $3::bigint)) "

int db_subscription_set(struct db *db, int64_t factory_id, int64_t user_id, int64_t device_id,
                        const char *min_severity)
{
    /* "/subscribe critical" starts over: the per-device rows go in the
     * same statement as the factory-wide row is written. */
    static const struct db_stmt st = {
        "subscription_set",
        "WITH gone AS (DELETE FROM alarm_subscriptions WHERE factory_id = $1 AND user_id = $2 "
        "  AND device_id IS NOT NULL AND $3::bigint IS NULL) "
        "INSERT INTO alarm_subscriptions (factory_id, user_id, device_id, min_severity) "
        "SELECT $1::bigint, $2::bigint, $3::bigint, $4::text " SUB_TARGET
        "ON CONFLICT (factory_id, user_id, device_id) DO UPDATE "
        "  SET min_severity = excluded.min_severity, updated_at = now() "
        "RETURNING 1",
        4};
    struct db_num fid, uid, did;
    PGresult *res;
    int r;

    if (!severity_ok(min_severity, true))
        return -EINVAL;
    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), db_num(&uid, user_id),
                                  device_id ? db_num(&did, device_id) : NULL, min_severity},
                 &res);
    if (r < 0)
        return r;
    r = PQntuples(res) == 1 ? 0 : -ENOENT;
    PQclear(res);
    return r;
}

int db_subscription_list(struct db *db, struct arena *a, int64_t factory_id, int64_t user_id,
                         struct alarm_subscription **ret, int *n)
{
    static const struct db_stmt st = {
        "subscription_list",
        "SELECT key, min_severity, until FROM ("
        "  SELECT 0 AS part, d.key, s.min_severity, NULL AS until "
        "  FROM alarm_subscriptions s "
        "  LEFT JOIN devices d ON d.factory_id = s.factory_id AND d.id = s.device_id "
        "  WHERE s.factory_id = $1 AND s.user_id = $2 "
        "  UNION ALL "
        "  SELECT 1, d.key, 'muted', to_char(m.until" AT_LOCAL ", " DAY_TIME ") "
        "  FROM alarm_mutes m JOIN factories f ON f.id = m.factory_id "
        "  LEFT JOIN devices d ON d.factory_id = m.factory_id AND d.id = m.device_id "
        "  WHERE m.factory_id = $1 AND m.user_id = $2 AND m.until > now()) x "
        "ORDER BY part, key NULLS FIRST",
        2};
    struct alarm_subscription *v;
    struct db_num fid, uid;
    PGresult *res;
    int r, rows;

    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id), db_num(&uid, user_id)}, &res);
    if (r < 0)
        return r;
    rows = PQntuples(res);
    v = arena_alloc(a, sizeof(*v) * (size_t)(rows ? rows : 1));
    if (!v) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        v[i].device_key = db_str(a, res, i, 0);
        v[i].min_severity = db_str(a, res, i, 1);
        v[i].muted_until = db_str(a, res, i, 2);
        if (!v[i].min_severity) {
            r = -ENOMEM;
            goto out;
        }
    }
    *ret = v;
    *n = rows;
out:
    PQclear(res);
    return r;
}

int db_mute_set(struct db *db, int64_t factory_id, int64_t user_id, int64_t device_id,
                long long seconds)
{
    static const struct db_stmt set = {
        "mute_set",
        "INSERT INTO alarm_mutes (factory_id, user_id, device_id, until) "
        "SELECT $1::bigint, $2::bigint, $3::bigint, "
        "  now() + make_interval(secs => $4::double precision) " SUB_TARGET
        "ON CONFLICT (factory_id, user_id, device_id) DO UPDATE SET until = excluded.until "
        "RETURNING 1",
        4};
    /* Unmuting every device lifts the per-device mutes too. */
    static const struct db_stmt unset = {
        "mute_unset",
        "DELETE FROM alarm_mutes WHERE factory_id = $1 AND user_id = $2 "
        "AND ($3::bigint IS NULL OR device_id = $3::bigint)",
        3};
    struct db_num fid, uid, did, sec;
    PGresult *res;
    int r;

    if (seconds < 0 || seconds > MUTE_MAX_S)
        return -EINVAL;
    db_num(&fid, factory_id);
    db_num(&uid, user_id);
    if (seconds == 0)
        return db_query(db, &unset,
                        (const char *[]){fid.s, uid.s, device_id ? db_num(&did, device_id) : NULL},
                        NULL);
    r = db_query(db, &set,
                 (const char *[]){fid.s, uid.s, device_id ? db_num(&did, device_id) : NULL,
                                  db_num(&sec, seconds)},
                 &res);
    if (r < 0)
        return r;
    r = PQntuples(res) == 1 ? 0 : -ENOENT;
    PQclear(res);
    return r;
}

int db_device_unlink_all(struct db *db, struct arena *a, int64_t factory_id, int64_t equipment_id,
                         const char **keys)
{
    static const struct db_stmt st = {
        "device_unlink_all",
        "WITH u AS (UPDATE devices SET equipment_id = NULL "
        "  WHERE factory_id = $1 AND equipment_id = $2 RETURNING key) "
        "SELECT string_agg(key, ', ' ORDER BY key) FROM u",
        2};
    struct db_num fid, eid;
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id), db_num(&eid, equipment_id)},
                 &res);
    if (r < 0)
        return r;
    *keys = NULL;
    if (!PQgetisnull(res, 0, 0) && !(*keys = db_str(a, res, 0, 0)))
        r = -ENOMEM;
    PQclear(res);
    return r;
}
