/* Work orders (WO-YYYY-NNNNNN), their history, and plant statistics. */
#include "db_internal.h"

#include <errno.h>
#include <string.h>

#include "arena.h"

#define TS(col) "to_char(" col " AT TIME ZONE f.timezone, 'YYYY-MM-DD HH24:MI')"

#define WO_COLUMNS                                                                                 \
    "w.id, w.equipment_id, w.number, w.title, w.description, w.status, w.priority, e.number, "     \
    "e.manufacturer || ' ' || e.model || coalesce(' (' || e.name || ')', ''), "                    \
    "ua.display_name, uc.display_name, " TS("w.created_at") ", " TS("w.updated_at") ", " TS(       \
        "w.completed_at") ", ud.display_name, "                                                    \
                          "extract(day FROM now() - w.created_at)::int, w.assignee_id "
#define WO_FROM                                                                                    \
    "FROM work_orders w JOIN factories f ON f.id = w.factory_id "                                  \
    "JOIN equipment e ON e.factory_id = w.factory_id AND e.id = w.equipment_id "                   \
    "LEFT JOIN users ua ON ua.factory_id = w.factory_id AND ua.id = w.assignee_id "                \
    "LEFT JOIN users uc ON uc.factory_id = w.factory_id AND uc.id = w.created_by "                 \
    "LEFT JOIN users ud ON ud.factory_id = w.factory_id AND ud.id = w.completed_by "
#define WO_ORDER                                                                                   \
    "ORDER BY array_position(ARRAY['critical','high','medium','low'], w.priority), "               \
    "w.created_at, w.id "

static void wo_from(struct arena *a, PGresult *res, int row, struct work_order *w)
{
    w->id = db_i64(res, row, 0);
    w->equipment_id = db_i64(res, row, 1);
    w->number = db_str(a, res, row, 2);
    w->title = db_str(a, res, row, 3);
    w->description = db_str(a, res, row, 4);
    w->status = db_str(a, res, row, 5);
    w->priority = db_str(a, res, row, 6);
    w->equipment_number = db_str(a, res, row, 7);
    w->equipment_label = db_str(a, res, row, 8);
    w->assignee = db_str(a, res, row, 9);
    w->created_by = db_str(a, res, row, 10);
    w->created_at = db_str(a, res, row, 11);
    w->updated_at = db_str(a, res, row, 12);
    w->completed_at = db_str(a, res, row, 13);
    w->completed_by = db_str(a, res, row, 14);
    w->age_days = db_int(res, row, 15);
    w->assignee_id = db_i64(res, row, 16);
}

static int wo_rows(struct arena *a, PGresult *res, struct work_order **ret, int *n)
{
    int rows = PQntuples(res);
    struct work_order *v = arena_alloc(a, sizeof(*v) * (size_t)(rows ? rows : 1));

    if (!v)
        return -ENOMEM;
    for (int i = 0; i < rows; i++)
        wo_from(a, res, i, &v[i]);
    *ret = v;
    *n = rows;
    return 0;
}

static int add_event(struct db *db, int64_t factory_id, int64_t wo_id, int64_t user_id,
                     const char *kind, const char *old_value, const char *new_value)
{
    static const struct db_stmt st = {
        "wo_event_add",
        "INSERT INTO work_order_events (factory_id, work_order_id, user_id, kind, old_value, "
        "new_value) VALUES ($1, $2, $3, $4, $5, $6)",
        6};
    struct db_num fid, wid, uid;

    return db_query(db, &st,
                    (const char *[]){db_num(&fid, factory_id), db_num(&wid, wo_id),
                                     user_id ? db_num(&uid, user_id) : NULL, kind, old_value,
                                     new_value},
                    NULL);
}

int db_wo_get(struct db *db, struct arena *a, int64_t factory_id, const char *number,
              struct work_order *ret)
{
    static const struct db_stmt st = {
        "wo_get", "SELECT " WO_COLUMNS WO_FROM "WHERE w.factory_id = $1 AND w.number = upper($2)",
        2};
    struct db_num fid;
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id), number}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    wo_from(a, res, 0, ret);
    PQclear(res);
    return 0;
}

int db_wo_create(struct db *db, struct arena *a, int64_t factory_id, int64_t user_id,
                 int64_t equipment_id, const char *title, const char *priority,
                 struct work_order *ret)
{
    static const struct db_stmt st = {
        "wo_create",
        "WITH n AS (INSERT INTO number_sequences (factory_id, kind, year, last) "
        "  VALUES ($1, 'WO', extract(year FROM now())::int, 1) "
        "  ON CONFLICT (factory_id, kind, year) DO UPDATE SET last = number_sequences.last + 1 "
        "  RETURNING year, last) "
        "INSERT INTO work_orders (factory_id, number, equipment_id, title, priority, created_by) "
        "SELECT $1, format('WO-%s-%s', n.year, lpad(n.last::text, greatest(6, "
        "  length(n.last::text)), '0')), $3, $4, coalesce($5, 'medium'), $2 FROM n "
        "RETURNING id, number",
        5};
    struct db_num fid, uid, eid;
    const char *number;
    int64_t id;
    PGresult *res;
    int r;

    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), user_id ? db_num(&uid, user_id) : NULL,
                                  db_num(&eid, equipment_id), title, priority},
                 &res);
    if (r < 0)
        return r;
    id = db_i64(res, 0, 0);
    number = db_str(a, res, 0, 1);
    PQclear(res);
    r = add_event(db, factory_id, id, user_id, "created", NULL, title);
    if (r < 0)
        return r;
    return db_wo_get(db, a, factory_id, number, ret);
}

#define WO_OPEN_WHERE "w.status IN ('open', 'in_progress', 'on_hold') "
#define WO_COUNT(where)                                                                            \
    "SELECT coalesce(sum(n), 0) FROM work_order_counts WHERE factory_id = $1 AND " where

int db_wo_list(struct db *db, struct arena *a, int64_t factory_id, enum wo_filter filter,
               const char *status, int64_t user_id, int offset, int limit, struct work_order **ret,
               int *n, int *total)
{
    /* A statement per filter, each reading its page off an index in
     * WO_ORDER (sql/0009_hot_paths.sql); the total comes from the counters
     * the triggers keep, except "mine", counted off its partial index. */
    static const struct db_stmt pages[] = {
        [WO_OPEN] = {"wo_list_open",
                     "SELECT " WO_COLUMNS WO_FROM
                     "WHERE w.factory_id = $1 AND " WO_OPEN_WHERE WO_ORDER "OFFSET $2 LIMIT $3",
                     3},
        [WO_MINE] = {"wo_list_mine",
                     "SELECT " WO_COLUMNS WO_FROM "WHERE w.factory_id = $1 AND " WO_OPEN_WHERE
                     "AND w.assignee_id = $4 " WO_ORDER "OFFSET $2 LIMIT $3",
                     4},
        [WO_ALL] = {"wo_list_all",
                    "SELECT " WO_COLUMNS WO_FROM "WHERE w.factory_id = $1 " WO_ORDER
                    "OFFSET $2 LIMIT $3",
                    3},
        [WO_STATUS] = {"wo_list_status",
                       "SELECT " WO_COLUMNS WO_FROM
                       "WHERE w.factory_id = $1 AND w.status = $4 " WO_ORDER "OFFSET $2 LIMIT $3",
                       4},
    };
    static const struct db_stmt counts[] = {
        [WO_OPEN] = {"wo_count_open", WO_COUNT("status IN ('open', 'in_progress', 'on_hold')"), 1},
        [WO_MINE] = {"wo_count_mine",
                     "SELECT count(*) FROM work_orders w WHERE w.factory_id = $1 "
                     "AND " WO_OPEN_WHERE "AND w.assignee_id = $2",
                     2},
        [WO_ALL] = {"wo_count_all", WO_COUNT("true"), 1},
        [WO_STATUS] = {"wo_count_status", WO_COUNT("status = $2"), 2},
    };
    struct db_num fid, uid, off, lim;
    const char *key = NULL;
    PGresult *res;
    int r;

    if (filter < WO_OPEN || filter > WO_STATUS)
        return -EINVAL;
    if (filter == WO_MINE)
        key = db_num(&uid, user_id);
    else if (filter == WO_STATUS)
        key = status;
    db_num(&fid, factory_id);
    r = db_query(db, &counts[filter], (const char *[]){fid.s, key}, &res);
    if (r < 0)
        return r;
    *total = db_int(res, 0, 0);
    PQclear(res);
    if (*total == 0 || offset >= *total) {
        *ret = NULL;
        *n = 0;
        return 0;
    }
    r = db_query(db, &pages[filter],
                 (const char *[]){fid.s, db_num(&off, offset), db_num(&lim, limit), key}, &res);
    if (r < 0)
        return r;
    r = wo_rows(a, res, ret, n);
    PQclear(res);
    return r;
}

int db_wo_list_equipment(struct db *db, struct arena *a, int64_t factory_id, int64_t equipment_id,
                         int limit, struct work_order **ret, int *n)
{
    static const struct db_stmt st = {
        "wo_list_equipment",
        "SELECT " WO_COLUMNS WO_FROM "WHERE w.factory_id = $1 AND w.equipment_id = $2 "
        "AND w.status IN ('open', 'in_progress', 'on_hold') " WO_ORDER "LIMIT $3",
        3};
    struct db_num fid, eid, lim;
    PGresult *res;
    int r;

    r = db_query(
        db, &st,
        (const char *[]){db_num(&fid, factory_id), db_num(&eid, equipment_id), db_num(&lim, limit)},
        &res);
    if (r < 0)
        return r;
    r = wo_rows(a, res, ret, n);
    PQclear(res);
    return r;
}

int db_wo_set_status(struct db *db, int64_t factory_id, int64_t wo_id, int64_t user_id,
                     const char *old_status, const char *status)
{
    /* Guarded by the old status, so two technicians changing it at once
     * cannot both record a transition from the same state. */
    static const struct db_stmt st = {
        "wo_set_status",
        "UPDATE work_orders SET status = $4, updated_at = now(), "
        "  completed_at = CASE WHEN $4 = 'completed' THEN now() END, "
        "  completed_by = CASE WHEN $4 = 'completed' THEN $3::bigint END "
        "WHERE factory_id = $1 AND id = $2 AND status = $5 AND status <> $4",
        5};
    struct db_num fid, wid, uid;
    PGresult *res;
    int r;

    if (strcmp(old_status, status) == 0)
        return -EALREADY;
    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), db_num(&wid, wo_id),
                                  user_id ? db_num(&uid, user_id) : NULL, status, old_status},
                 &res);
    if (r < 0)
        return r;
    r = strcmp(PQcmdTuples(res), "1") == 0 ? 0 : -ESTALE;
    PQclear(res);
    if (r < 0)
        return r;
    return add_event(db, factory_id, wo_id, user_id, "status", old_status, status);
}

int db_wo_add_note(struct db *db, int64_t factory_id, int64_t wo_id, int64_t user_id,
                   const char *text)
{
    static const struct db_stmt st = {
        "wo_touch", "UPDATE work_orders SET updated_at = now() WHERE factory_id = $1 AND id = $2",
        2};
    struct db_num fid, wid;
    int r;

    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id), db_num(&wid, wo_id)}, NULL);
    if (r < 0)
        return r;
    return add_event(db, factory_id, wo_id, user_id, "note", NULL, text);
}

int db_wo_assign(struct db *db, int64_t factory_id, int64_t wo_id, int64_t user_id,
                 int64_t assignee_id, const char *assignee_name)
{
    static const struct db_stmt st = {
        "wo_assign",
        /* The row is locked first, so the previous assignee recorded is
         * the one this change replaced, even when two people assign at once. */
        "WITH old AS (SELECT w.id, u.display_name FROM work_orders w "
        "  LEFT JOIN users u ON u.factory_id = w.factory_id AND u.id = w.assignee_id "
        "  WHERE w.factory_id = $1 AND w.id = $2 FOR UPDATE OF w) "
        "UPDATE work_orders w SET assignee_id = $3, updated_at = now() FROM old "
        "WHERE w.factory_id = $1 AND w.id = old.id RETURNING old.display_name",
        3};
    struct db_num fid, wid, aid;
    const char *old = NULL;
    char oldbuf[128];
    PGresult *res;
    int r;

    r = db_query(
        db, &st,
        (const char *[]){db_num(&fid, factory_id), db_num(&wid, wo_id), db_num(&aid, assignee_id)},
        &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    if (!PQgetisnull(res, 0, 0)) {
        snprintf(oldbuf, sizeof(oldbuf), "%s", PQgetvalue(res, 0, 0));
        old = oldbuf;
    }
    PQclear(res);
    return add_event(db, factory_id, wo_id, user_id, "assign", old, assignee_name);
}

int db_wo_events(struct db *db, struct arena *a, int64_t factory_id, int64_t wo_id, int limit,
                 struct wo_event **ret, int *n, int *total)
{
    static const struct db_stmt st = {
        "wo_events",
        "SELECT * FROM (SELECT ev.kind, u.display_name, ev.old_value, ev.new_value, "
        "  " TS(
            "ev.created_at") ", ev.id, count(*) OVER () "
                             "  FROM work_order_events ev JOIN factories f ON f.id = ev.factory_id "
                             "  LEFT JOIN users u ON u.factory_id = ev.factory_id AND u.id = "
                             "ev.user_id "
                             "  WHERE ev.factory_id = $1 AND ev.work_order_id = $2 ORDER BY ev.id "
                             "DESC LIMIT $3) x "
                             "ORDER BY id",
        3};
    struct db_num fid, wid, lim;
    struct wo_event *v;
    PGresult *res;
    int r, rows;

    r = db_query(
        db, &st,
        (const char *[]){db_num(&fid, factory_id), db_num(&wid, wo_id), db_num(&lim, limit)}, &res);
    if (r < 0)
        return r;
    rows = PQntuples(res);
    *total = rows > 0 ? db_int(res, 0, 6) : 0;
    v = arena_alloc(a, sizeof(*v) * (size_t)(rows ? rows : 1));
    if (!v) {
        PQclear(res);
        return -ENOMEM;
    }
    for (int i = 0; i < rows; i++) {
        v[i].kind = db_str(a, res, i, 0);
        v[i].user = db_str(a, res, i, 1);
        v[i].old_value = db_str(a, res, i, 2);
        v[i].new_value = db_str(a, res, i, 3);
        v[i].created_at = db_str(a, res, i, 4);
    }
    PQclear(res);
    *ret = v;
    *n = rows;
    return 0;
}

const char *db_wo_suggest(struct db *db, struct arena *a, int64_t factory_id, const char *number)
{
    static const struct db_stmt st = {
        "wo_suggest",
        "SELECT number FROM work_orders WHERE factory_id = $1 "
        "AND levenshtein(number, upper(left($2, 64))) <= 3 "
        "ORDER BY levenshtein(number, upper(left($2, 64))), id DESC LIMIT 1",
        2};
    struct db_num fid;

    return db_first_str(db, a, &st, (const char *[]){db_num(&fid, factory_id), number});
}

#define OPEN "status IN ('open', 'in_progress', 'on_hold')"

int db_stats(struct db *db, struct arena *a, int64_t factory_id, struct plant_stats *ret)
{
    /* The totals come from the counters (sql/0009_hot_paths.sql); only
     * the open work orders of the last 7 days are counted, off a partial
     * index, and taken from the open ones. */
    static const struct db_stmt st = {
        "stats",
        "SELECT (SELECT coalesce(sum(n), 0) FROM equipment_counts WHERE factory_id = $1), "
        "  coalesce(sum(n) FILTER (WHERE status = 'open'), 0), "
        "  coalesce(sum(n) FILTER (WHERE status = 'in_progress'), 0), "
        "  coalesce(sum(n) FILTER (WHERE status = 'on_hold'), 0), "
        "  coalesce(sum(n) FILTER (WHERE status = 'completed'), 0), "
        "  coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0), "
        "  coalesce(sum(n) FILTER (WHERE " OPEN " AND priority = 'low'), 0), "
        "  coalesce(sum(n) FILTER (WHERE " OPEN " AND priority = 'medium'), 0), "
        "  coalesce(sum(n) FILTER (WHERE " OPEN " AND priority = 'high'), 0), "
        "  coalesce(sum(n) FILTER (WHERE " OPEN " AND priority = 'critical'), 0), "
        "  coalesce(sum(n) FILTER (WHERE " OPEN "), 0) - (SELECT count(*) FROM work_orders w "
        "    WHERE w.factory_id = $1 AND w." OPEN " AND w.created_at >= now() - interval '7 days') "
        "FROM work_order_counts WHERE factory_id = $1",
        1};
    static const struct db_stmt top = {
        "stats_top",
        "SELECT e.number, e.manufacturer || ' ' || e.model || coalesce(' (' || e.name || ')', ''), "
        "  c.n "
        "FROM equipment_open_counts c JOIN equipment e ON e.factory_id = c.factory_id "
        "  AND e.id = c.equipment_id "
        "WHERE c.factory_id = $1 AND c.n > 0 ORDER BY c.n DESC, c.equipment_id LIMIT 1",
        1};
    struct db_num fid;
    PGresult *res;
    int r;

    memset(ret, 0, sizeof(*ret));
    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id)}, &res);
    if (r < 0)
        return r;
    ret->equipment = db_int(res, 0, 0);
    for (int i = 0; i < 5; i++)
        ret->by_status[i] = db_int(res, 0, 1 + i);
    for (int i = 0; i < 4; i++)
        ret->by_priority[i] = db_int(res, 0, 6 + i);
    ret->open_older_7d = db_int(res, 0, 10);
    PQclear(res);
    r = db_query(db, &top, (const char *[]){fid.s}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) > 0) {
        ret->top_equipment_number = db_str(a, res, 0, 0);
        ret->top_equipment_label = db_str(a, res, 0, 1);
        ret->top_equipment_open = db_int(res, 0, 2);
    }
    PQclear(res);
    return 0;
}
