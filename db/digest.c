/* The daily digest's queries (digest.h). */
#include "digest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alarm.h"
#include "arena.h"
#include "db_internal.h"

/* The day's bounds, as instants: [t0, t1) is the local calendar day d of
 * the factory, in its zone ($1 the factory, $2 the day or NULL, $3 now).
 * Every query below filters by factory_id and by a time range the
 * (factory_id, created_at) and (factory_id, completed_at) indexes serve. */
#define DIGEST_DAY                                                                                 \
    "WITH b AS (SELECT f.id, f.name, f.timezone, x.d, "                                            \
    "  (x.d::timestamp AT TIME ZONE f.timezone) AS t0, "                                           \
    "  ((x.d + 1)::timestamp AT TIME ZONE f.timezone) AS t1 "                                      \
    "  FROM factories f CROSS JOIN LATERAL (SELECT coalesce($2::date, "                            \
    "    (to_timestamp($3::float8) AT TIME ZONE f.timezone)::date - 1) AS d) x "                   \
    "  WHERE f.id = $1) "

/* A calendar date written YYYY-MM-DD, 2000 to 2999. */
static int date_ok(const char *s)
{
    struct tm tm = {0};
    int y, m, d;
    char tail;

    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || strspn(s, "0123456789-") != 10 ||
        sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3)
        return 0;
    if (y < 2000 || y > 2999 || m < 1 || m > 12 || d < 1 || d > 31)
        return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    tm.tm_hour = 12;
    if (timegm(&tm) == (time_t)-1)
        return 0;
    /* timegm() normalizes 2026-02-30 to March 2nd */
    return tm.tm_year == y - 1900 && tm.tm_mon == m - 1 && tm.tm_mday == d;
}

static int digest_overdue(struct db *db, struct arena *a, const char *const *p, struct digest *d)
{
    static const struct db_stmt st = {
        "digest_overdue",
        DIGEST_DAY "SELECT w.number, w.title, w.priority, w.status, "
                   "  floor(extract(epoch FROM b.t1 - w.created_at) / 86400)::int "
                   "FROM b JOIN work_orders w ON w.factory_id = b.id "
                   "WHERE w.status IN ('open', 'in_progress', 'on_hold') "
                   "  AND w.created_at < b.t1 - make_interval(days => $4::int) "
                   "ORDER BY w.created_at, w.id LIMIT $5::int",
        5};
    struct digest_wo *v;
    PGresult *res;
    int r, rows;

    r = db_query(db, &st, p, &res);
    if (r < 0)
        return r;
    rows = PQntuples(res);
    v = arena_alloc(a, sizeof(*v) * (size_t)(rows ? rows : 1));
    if (!v) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        v[i].number = db_str(a, res, i, 0);
        v[i].title = db_str(a, res, i, 1);
        v[i].priority = db_str(a, res, i, 2);
        v[i].status = db_str(a, res, i, 3);
        v[i].age_days = db_int(res, i, 4);
        if (!v[i].number || !v[i].title || !v[i].priority || !v[i].status) {
            r = -ENOMEM;
            goto out;
        }
    }
    d->oldest = v;
    d->n_oldest = rows;
out:
    PQclear(res);
    return r;
}

int db_digest_collect(struct db *db, struct arena *a, int64_t factory_id, const char *date,
                      double now, struct digest *ret)
{
    /* Alarms by the time Rivet recorded them; a work order is opened at
     * created_at and completed at completed_at (reopening clears that).
     * Acknowledged alarms count whenever they were acknowledged. */
    static const struct db_stmt st = {
        "digest_collect",
        DIGEST_DAY
        "SELECT b.name, b.timezone, b.d::text, to_char(b.d, 'FMDay'), "
        "  al.low, al.medium, al.high, al.critical, al.acked, "
        "  coalesce(extract(epoch FROM al.mean_ack)::float8, -1), "
        "  (SELECT count(*) FROM work_orders w WHERE w.factory_id = b.id "
        "    AND w.created_at >= b.t0 AND w.created_at < b.t1), "
        "  (SELECT count(*) FROM work_orders w WHERE w.factory_id = b.id "
        "    AND w.completed_at >= b.t0 AND w.completed_at < b.t1 AND w.status = 'completed'), "
        "  (SELECT count(*) FROM work_orders w WHERE w.factory_id = b.id "
        "    AND w.status IN ('open', 'in_progress', 'on_hold') "
        "    AND w.created_at < b.t1 - make_interval(days => $4::int)) "
        "FROM b CROSS JOIN LATERAL (SELECT "
        "  count(*) FILTER (WHERE a.severity = 'low') AS low, "
        "  count(*) FILTER (WHERE a.severity = 'medium') AS medium, "
        "  count(*) FILTER (WHERE a.severity = 'high') AS high, "
        "  count(*) FILTER (WHERE a.severity = 'critical') AS critical, "
        "  count(a.acknowledged_at) AS acked, "
        "  avg(a.acknowledged_at - a.created_at) AS mean_ack "
        "  FROM alarms a WHERE a.factory_id = b.id "
        "    AND a.created_at >= b.t0 AND a.created_at < b.t1) al",
        4};
    struct db_num fid, days, lines;
    char when[40];
    const char *p[5];
    PGresult *res;
    int r;

    if (date && !date_ok(date))
        return -EINVAL;
    memset(ret, 0, sizeof(*ret));
    snprintf(when, sizeof(when), "%.3f", now);
    p[0] = db_num(&fid, factory_id);
    p[1] = date;
    p[2] = when;
    p[3] = db_num(&days, DIGEST_OVERDUE_DAYS);
    p[4] = db_num(&lines, DIGEST_OVERDUE_LINES);
    r = db_query(db, &st, p, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) != 1) {
        r = -ENOENT;
        goto out;
    }
    ret->factory_id = factory_id;
    ret->factory_name = db_str(a, res, 0, 0);
    ret->timezone = db_str(a, res, 0, 1);
    ret->date = db_str(a, res, 0, 2);
    ret->weekday = db_str(a, res, 0, 3);
    if (!ret->factory_name || !ret->timezone || !ret->date || !ret->weekday) {
        r = -ENOMEM;
        goto out;
    }
    for (int k = 0; k < 4; k++)
        ret->alarms[k] = db_int(res, 0, 4 + k);
    ret->acknowledged = db_int(res, 0, 8);
    ret->mean_ack_s = strtod(PQgetvalue(res, 0, 9), NULL);
    ret->wo_opened = db_int(res, 0, 10);
    ret->wo_completed = db_int(res, 0, 11);
    ret->overdue = db_int(res, 0, 12);
    if (ret->overdue > 0)
        r = digest_overdue(db, a, p, ret);
out:
    PQclear(res);
    return r;
}

int db_digest_claim(struct db *db, struct arena *a, double now, const int64_t *skip, int n_skip,
                    struct digest_claim *ret)
{
    /* One statement: the due factory is picked and locked (SKIP LOCKED: a
     * process claiming it already is passed over, not waited for) and its
     * local today recorded. A second process after the commit no longer
     * finds it due; the same process's crash before the commit leaves it
     * due. The digest time is compared with the local time now, so a
     * process that was down at 07:00 sends it when it is back that day. */
    static const struct db_stmt st = {
        "digest_claim",
        "WITH n AS (SELECT to_timestamp($1::float8) AS t), "
        "due AS (SELECT f.id FROM factories f, n "
        "  WHERE f.digest_time IS NOT NULL AND f.id <> ALL ($2::bigint[]) "
        "    AND f.digest_last_sent IS DISTINCT FROM (n.t AT TIME ZONE f.timezone)::date "
        "    AND (n.t AT TIME ZONE f.timezone)::time >= f.digest_time "
        "  ORDER BY f.id LIMIT 1 FOR UPDATE OF f SKIP LOCKED) "
        "UPDATE factories f SET digest_last_sent = (n.t AT TIME ZONE f.timezone)::date "
        "FROM due, n WHERE f.id = due.id "
        "  AND f.digest_last_sent IS DISTINCT FROM (n.t AT TIME ZONE f.timezone)::date "
        "RETURNING f.id, f.slug, f.digest_last_sent::text",
        2};
    char when[40], *list = NULL;
    size_t cap = 3 + (size_t)(n_skip > 0 ? n_skip : 0) * 22;
    PGresult *res;
    size_t len;
    int r;

    if (n_skip < 0 || n_skip > 10000 || (n_skip > 0 && !skip))
        return -EINVAL;
    list = arena_alloc(a, cap);
    if (!list)
        return -ENOMEM;
    len = (size_t)snprintf(list, cap, "{");
    for (int i = 0; i < n_skip; i++)
        len += (size_t)snprintf(list + len, cap - len, "%s%lld", i ? "," : "", (long long)skip[i]);
    snprintf(list + len, cap - len, "}");
    snprintf(when, sizeof(when), "%.3f", now);
    r = db_query(db, &st, (const char *[]){when, list}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) != 1) {
        r = -ENOENT;
        goto out;
    }
    ret->factory_id = db_i64(res, 0, 0);
    ret->slug = db_str(a, res, 0, 1);
    ret->today = db_str(a, res, 0, 2);
    if (!ret->slug || !ret->today)
        r = -ENOMEM;
out:
    PQclear(res);
    return r;
}

int db_digest_recipients(struct db *db, struct arena *a, int64_t factory_id,
                         struct alarm_recipient **ret, int *n)
{
    /* The chats an alarm would go to, of the factory's supervisors and
     * admins. */
    static const struct db_stmt st = {
        "digest_recipients",
        "SELECT u.id, c.channel, c.chat_id FROM users u " USER_CHATS
        "WHERE u.factory_id = $1 AND u.active AND u.role IN ('supervisor', 'admin') "
        "ORDER BY u.id, c.channel",
        1};
    struct db_num fid;

    return db_recipients_query(db, a, &st, (const char *[]){db_num(&fid, factory_id)}, ret, n);
}

int db_digest_set_time(struct db *db, int64_t factory_id, const char *value)
{
    static const struct db_stmt st = {
        "digest_set_time", "UPDATE factories SET digest_time = $2::time WHERE id = $1", 2};
    struct db_num fid;
    char hhmm[16];
    PGresult *res;
    int h, m, r;

    if (!value)
        return -EINVAL;
    if (strcasecmp(value, "off") == 0) {
        value = NULL;
    } else {
        /* H:MM or HH:MM, 00:00 to 23:59 */
        size_t n = strlen(value), colon = strcspn(value, ":");
        if ((n != 4 && n != 5) || colon != n - 3 || strspn(value, "0123456789") != colon ||
            strspn(value + colon + 1, "0123456789") != 2)
            return -EINVAL;
        h = colon == 1 ? value[0] - '0' : (value[0] - '0') * 10 + (value[1] - '0');
        m = (value[colon + 1] - '0') * 10 + (value[colon + 2] - '0');
        if (h > 23 || m > 59)
            return -EINVAL;
        snprintf(hhmm, sizeof(hhmm), "%02d:%02d", h, m);
        value = hhmm;
    }
    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id), value}, &res);
    if (r < 0)
        return r;
    r = strcmp(PQcmdTuples(res), "1") == 0 ? 0 : -ENOENT;
    PQclear(res);
    return r;
}

int db_digest_get_time(struct db *db, struct arena *a, int64_t factory_id, const char **ret)
{
    static const struct db_stmt st = {
        "digest_get_time", "SELECT to_char(digest_time, 'HH24:MI') FROM factories WHERE id = $1",
        1};
    struct db_num fid;
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id)}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) != 1) {
        r = -ENOENT;
    } else {
        *ret = PQgetisnull(res, 0, 0) ? NULL : db_str(a, res, 0, 0);
        if (!PQgetisnull(res, 0, 0) && !*ret)
            r = -ENOMEM;
    }
    PQclear(res);
    return r;
}
