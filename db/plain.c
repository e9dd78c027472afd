/* Proposed work orders, work-order photos, message context and the
 * assistant's calls: see plain.h. */
#include "db_internal.h"
#include "plain.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

int db_draft_add(struct db *db, int64_t factory_id, int64_t user_id, int64_t equipment_id,
                 const char *title, const char *priority, const char *description, int64_t *id)
{
    static const struct db_stmt st = {
        "draft_add",
        "INSERT INTO wo_drafts (factory_id, user_id, equipment_id, title, priority, description) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        6};
    struct db_num fid, uid, eid;
    PGresult *res;
    int r;

    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), db_num(&uid, user_id),
                                  equipment_id ? db_num(&eid, equipment_id) : NULL, title, priority,
                                  description},
                 &res);
    if (r < 0)
        return r;
    *id = db_i64(res, 0, 0);
    PQclear(res);
    return 0;
}

int db_draft_get(struct db *db, struct arena *a, int64_t factory_id, int64_t id,
                 struct wo_draft *ret)
{
    static const struct db_stmt st = {
        "draft_get",
        "SELECT d.id, d.user_id, coalesce(d.equipment_id, 0), d.title, d.priority, "
        "  d.description, d.status, w.number, e.number, "
        "  d.created_at < now() - make_interval(secs => $3) "
        "FROM wo_drafts d "
        "LEFT JOIN equipment e ON e.factory_id = d.factory_id AND e.id = d.equipment_id "
        "LEFT JOIN work_orders w ON w.factory_id = d.factory_id AND w.id = d.work_order_id "
        "WHERE d.factory_id = $1 AND d.id = $2 FOR UPDATE OF d",
        3};
    struct db_num fid, did, ttl;
    PGresult *res;
    int r;

    r = db_query(
        db, &st,
        (const char *[]){db_num(&fid, factory_id), db_num(&did, id), db_num(&ttl, DRAFT_TTL_S)},
        &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    *ret = (struct wo_draft){.id = db_i64(res, 0, 0),
                             .user_id = db_i64(res, 0, 1),
                             .equipment_id = db_i64(res, 0, 2),
                             .title = db_str(a, res, 0, 3),
                             .priority = db_str(a, res, 0, 4),
                             .description = db_str(a, res, 0, 5),
                             .status = db_str(a, res, 0, 6),
                             .wo_number = db_str(a, res, 0, 7),
                             .equipment_number = db_str(a, res, 0, 8),
                             .expired = PQgetvalue(res, 0, 9)[0] == 't'};
    PQclear(res);
    if (!ret->title || !ret->priority || !ret->description || !ret->status)
        return -ENOMEM;
    return 0;
}

int db_draft_set(struct db *db, int64_t factory_id, int64_t id, int64_t equipment_id,
                 const char *title, const char *priority)
{
    static const struct db_stmt st = {
        "draft_set",
        "UPDATE wo_drafts SET equipment_id = coalesce($3, equipment_id), "
        "  title = coalesce($4, title), priority = coalesce($5, priority) "
        "WHERE factory_id = $1 AND id = $2",
        5};
    struct db_num fid, did, eid;

    return db_query(db, &st,
                    (const char *[]){db_num(&fid, factory_id), db_num(&did, id),
                                     equipment_id ? db_num(&eid, equipment_id) : NULL, title,
                                     priority},
                    NULL);
}

int db_draft_decide(struct db *db, int64_t factory_id, int64_t id, const char *status,
                    int64_t wo_id)
{
    static const struct db_stmt st = {
        "draft_decide",
        "UPDATE wo_drafts SET status = $3, work_order_id = $4, decided_at = now() "
        "WHERE factory_id = $1 AND id = $2",
        4};
    struct db_num fid, did, wid;

    return db_query(db, &st,
                    (const char *[]){db_num(&fid, factory_id), db_num(&did, id), status,
                                     wo_id ? db_num(&wid, wo_id) : NULL},
                    NULL);
}

int db_drafts_purge(struct db *db, int days, long *gone)
{
    static const struct db_stmt st = {"drafts_purge",
                                      "DELETE FROM wo_drafts WHERE status <> 'created' "
                                      "AND created_at < now() - make_interval(days => $1::int)",
                                      1};
    struct db_num d;
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){db_num(&d, days)}, &res);
    if (r < 0)
        return r;
    *gone = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

int db_wo_set_description(struct db *db, int64_t factory_id, int64_t wo_id, const char *description)
{
    static const struct db_stmt st = {
        "wo_set_description",
        "UPDATE work_orders SET description = $3 WHERE factory_id = $1 AND id = $2", 3};
    struct db_num fid, wid;

    return db_query(db, &st,
                    (const char *[]){db_num(&fid, factory_id), db_num(&wid, wo_id), description},
                    NULL);
}

int db_wo_add_photo(struct db *db, int64_t factory_id, int64_t wo_id, int64_t user_id,
                    const char *channel, const char *file_id, const char *caption)
{
    static const struct db_stmt st = {
        "wo_add_photo",
        "WITH p AS (INSERT INTO work_order_photos (factory_id, work_order_id, user_id, channel, "
        "  file_id, caption) VALUES ($1, $2, $3, $4, $5, $6)), "
        "e AS (INSERT INTO work_order_events (factory_id, work_order_id, user_id, kind, "
        "  new_value) VALUES ($1, $2, $3, 'photo', coalesce($6, 'photo'))) "
        "UPDATE work_orders SET updated_at = now() WHERE factory_id = $1 AND id = $2",
        6};
    struct db_num fid, wid, uid;

    return db_query(db, &st,
                    (const char *[]){db_num(&fid, factory_id), db_num(&wid, wo_id),
                                     db_num(&uid, user_id), channel, file_id, caption},
                    NULL);
}

int db_wo_photo_count(struct db *db, int64_t factory_id, int64_t wo_id, int *n)
{
    static const struct db_stmt st = {
        "wo_photo_count",
        "SELECT count(*) FROM work_order_photos WHERE factory_id = $1 AND work_order_id = $2", 2};
    struct db_num fid, wid;
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id), db_num(&wid, wo_id)}, &res);
    if (r < 0)
        return r;
    *n = db_int(res, 0, 0);
    PQclear(res);
    return 0;
}

int db_machine_history(struct db *db, struct arena *a, int64_t factory_id, int64_t equipment_id,
                       int limit, const char **text)
{
    static const struct db_stmt st = {
        "machine_history",
        "SELECT coalesce(string_agg(line, E'\\n' ORDER BY at DESC), '') FROM ("
        " (SELECT w.created_at AS at, to_char(w.created_at, 'YYYY-MM-DD') || ' work order ' "
        "   || w.number || ' (' || w.status || ', ' || w.priority || '): ' || w.title AS line "
        "  FROM work_orders w WHERE w.factory_id = $1 AND w.equipment_id = $2 "
        "  ORDER BY w.id DESC LIMIT $3) "
        " UNION ALL "
        " (SELECT a.observed_at, to_char(a.observed_at, 'YYYY-MM-DD') || ' alarm (' "
        "   || a.severity || '): ' || left(a.message, 200) "
        "  FROM alarms a JOIN devices d ON d.factory_id = a.factory_id AND d.id = a.device_id "
        "  WHERE a.factory_id = $1 AND d.equipment_id = $2 ORDER BY a.id DESC LIMIT $3)) x",
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
    *text = db_str(a, res, 0, 0);
    PQclear(res);
    return *text ? 0 : -ENOMEM;
}

int db_outbox_context(struct db *db, struct arena *a, const char *channel, const char *chat_id,
                      const char *remote_id, const char **context)
{
    /* An edit records the same remote id as the message it replaced: the
     * newest row says what the message shows now (a page of a list edited
     * over a card shows nothing in particular). */
    static const struct db_stmt st = {
        "outbox_context",
        "SELECT context FROM outbox WHERE channel = $1 AND remote_id = $3 AND chat_id = $2 "
        "ORDER BY id DESC LIMIT 1",
        3};
    PGresult *res;
    int r;

    *context = NULL;
    r = db_query(db, &st, (const char *[]){channel, chat_id, remote_id}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        PQclear(res);
        return -ENOENT;
    }
    *context = db_str(a, res, 0, 0);
    PQclear(res);
    return *context ? 0 : -ENOMEM;
}

int db_llm_use(struct db *db, int64_t factory_id, int64_t user_id, struct llm_use *ret)
{
    static const struct db_stmt st = {
        "llm_use",
        "SELECT count(*) FILTER (WHERE user_id = $2 AND at > now() - interval '1 hour'), "
        "  count(*) FILTER (WHERE at > now() - interval '1 hour'), "
        "  coalesce(sum(cost_usd), 0) "
        "FROM llm_calls WHERE factory_id = $1 "
        "AND at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        2};
    struct db_num fid, uid;
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id), db_num(&uid, user_id)}, &res);
    if (r < 0)
        return r;
    ret->user_hour = db_int(res, 0, 0);
    ret->factory_hour = db_int(res, 0, 1);
    ret->factory_month_usd = strtod(PQgetvalue(res, 0, 2), NULL);
    PQclear(res);
    return 0;
}

int db_llm_call_add(struct db *db, int64_t factory_id, int64_t user_id, bool ok,
                    const char *provider, const char *model, long ms, int prompt_tokens,
                    int completion_tokens, double cost_usd)
{
    static const struct db_stmt st = {
        "llm_call_add",
        "INSERT INTO llm_calls (factory_id, user_id, ok, provider, model, ms, prompt_tokens, "
        "completion_tokens, cost_usd) VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), $6, "
        "$7, $8, $9)",
        9};
    struct db_num fid, uid, msn, pt, ct;
    char cost[32];

    snprintf(cost, sizeof(cost), "%.6f", cost_usd);
    return db_query(db, &st,
                    (const char *[]){db_num(&fid, factory_id), db_num(&uid, user_id),
                                     ok ? "true" : "false", provider, model, db_num(&msn, ms),
                                     db_num(&pt, prompt_tokens), db_num(&ct, completion_tokens),
                                     cost},
                    NULL);
}
