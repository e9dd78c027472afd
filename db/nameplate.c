/* Nameplate reads: one per factory and photo, with what became of it. */
#include "db_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

#define NR_COLUMNS                                                                                 \
    "r.id, coalesce(r.equipment_id, 0), r.sha256, r.channel, r.file_id, r.caption, "               \
    "r.fields::text, r.confidence, r.status, r.llm_used, e.number, r.llm_failed "
#define NR_FROM                                                                                    \
    "FROM nameplate_reads r LEFT JOIN equipment e ON e.factory_id = r.factory_id "                 \
    "AND e.id = r.equipment_id "

static int nr_one(struct db *db, struct arena *a, const struct db_stmt *st,
                  const char *const *params, struct nameplate_read *ret)
{
    PGresult *res;
    int r;

    r = db_query(db, st, params, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    ret->id = db_i64(res, 0, 0);
    ret->equipment_id = db_i64(res, 0, 1);
    ret->sha256 = db_str(a, res, 0, 2);
    ret->channel = db_str(a, res, 0, 3);
    ret->file_id = db_str(a, res, 0, 4);
    ret->caption = db_str(a, res, 0, 5);
    ret->fields = db_str(a, res, 0, 6);
    ret->confidence = strtod(PQgetvalue(res, 0, 7), NULL);
    ret->status = db_str(a, res, 0, 8);
    ret->llm_used = PQgetvalue(res, 0, 9)[0] == 't';
    ret->equipment_number = db_str(a, res, 0, 10);
    ret->llm_failed = PQgetvalue(res, 0, 11)[0] == 't';
    PQclear(res);
    return ret->sha256 && ret->fields && ret->status ? 0 : -ENOMEM;
}

int db_nameplate_find(struct db *db, struct arena *a, int64_t factory_id, const char *sha256,
                      struct nameplate_read *ret)
{
    static const struct db_stmt st = {
        "nameplate_find", "SELECT " NR_COLUMNS NR_FROM "WHERE r.factory_id = $1 AND r.sha256 = $2",
        2};
    struct db_num fid;

    return nr_one(db, a, &st, (const char *[]){db_num(&fid, factory_id), sha256}, ret);
}

int db_nameplate_get(struct db *db, struct arena *a, int64_t factory_id, int64_t id,
                     struct nameplate_read *ret)
{
    static const struct db_stmt st = {
        "nameplate_get",
        "SELECT " NR_COLUMNS NR_FROM "WHERE r.factory_id = $1 AND r.id = $2 FOR UPDATE OF r", 2};
    struct db_num fid, rid;

    return nr_one(db, a, &st, (const char *[]){db_num(&fid, factory_id), db_num(&rid, id)}, ret);
}

int db_nameplate_add(struct db *db, struct arena *a, int64_t factory_id, int64_t user_id,
                     enum channel ch, const char *sha256, const char *file_id, const char *caption,
                     const char *fields, double confidence, const struct nameplate_read_info *info,
                     struct nameplate_read *ret)
{
    static const struct db_stmt st = {
        "nameplate_add",
        "INSERT INTO nameplate_reads (factory_id, user_id, sha256, channel, file_id, caption, "
        "  fields, confidence, engine, width, height, ocr_ms, total_ms, llm_used, llm_provider, "
        "  llm_model, llm_ms, prompt_tokens, completion_tokens, cost_usd, llm_failed) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::real, $9, $10, $11, $12, $13, $14, $15, "
        "  $16, $17, $18, $19, $20::numeric, $21) "
        "ON CONFLICT (factory_id, sha256) DO NOTHING",
        21};
    struct db_num fid, uid, w, h, ocr, total, llm, pt, ct;
    char conf[32], cost[32];
    bool asked = info->llm_provider != NULL; /* an LLM answered, used or not */
    PGresult *res;
    int r;

    snprintf(conf, sizeof(conf), "%.3f", confidence);
    snprintf(cost, sizeof(cost), "%.6f", info->cost_usd);
    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id),
                                  db_num(&uid, user_id),
                                  sha256,
                                  channel_name(ch),
                                  file_id,
                                  caption,
                                  fields,
                                  conf,
                                  info->engine,
                                  db_num(&w, info->width),
                                  db_num(&h, info->height),
                                  db_num(&ocr, info->ocr_ms),
                                  db_num(&total, info->total_ms),
                                  info->llm_used ? "true" : "false",
                                  info->llm_provider,
                                  info->llm_model,
                                  asked ? db_num(&llm, info->llm_ms) : NULL,
                                  asked ? db_num(&pt, info->prompt_tokens) : NULL,
                                  asked ? db_num(&ct, info->completion_tokens) : NULL,
                                  asked ? cost : NULL,
                                  info->llm_failed ? "true" : "false"},
                 &res);
    if (r < 0)
        return r;
    PQclear(res);
    return db_nameplate_find(db, a, factory_id, sha256, ret);
}

int db_nameplate_set_fields(struct db *db, int64_t factory_id, int64_t id, const char *fields,
                            double confidence)
{
    static const struct db_stmt st = {
        "nameplate_set_fields",
        "UPDATE nameplate_reads SET fields = $3::jsonb, confidence = $4::real "
        "WHERE factory_id = $1 AND id = $2",
        4};
    struct db_num fid, rid;
    char conf[32];
    PGresult *res;
    int r;

    snprintf(conf, sizeof(conf), "%.3f", confidence);
    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), db_num(&rid, id), fields, conf}, &res);
    if (r < 0)
        return r;
    r = PQcmdTuples(res)[0] == '1' ? 0 : -ENOENT;
    PQclear(res);
    return r;
}

int db_nameplate_decide(struct db *db, int64_t factory_id, int64_t id, int64_t user_id,
                        const char *status, int64_t equipment_id)
{
    static const struct db_stmt st = {
        "nameplate_decide",
        "UPDATE nameplate_reads SET status = $4, equipment_id = $5, "
        "  decided_by = CASE WHEN $4 = 'pending' THEN NULL ELSE $3::bigint END, "
        "  decided_at = CASE WHEN $4 = 'pending' THEN NULL ELSE now() END "
        "WHERE factory_id = $1 AND id = $2",
        5};
    struct db_num fid, rid, uid, eid;
    PGresult *res;
    int r;

    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), db_num(&rid, id), db_num(&uid, user_id),
                                  status, equipment_id ? db_num(&eid, equipment_id) : NULL},
                 &res);
    if (r < 0)
        return r;
    r = PQcmdTuples(res)[0] == '1' ? 0 : -ENOENT;
    PQclear(res);
    return r;
}

int db_nameplate_reread(struct db *db, int64_t factory_id, int64_t id, const char *fields,
                        double confidence, const struct nameplate_read_info *info)
{
    /* Costs add up: both calls were paid for. */
    static const struct db_stmt st = {
        "nameplate_reread",
        "UPDATE nameplate_reads SET fields = $3::jsonb, confidence = $4::real, engine = $5, "
        "  ocr_ms = $6, total_ms = $7, llm_used = $8, llm_failed = $9, "
        "  llm_provider = coalesce($10, llm_provider), llm_model = coalesce($11, llm_model), "
        "  llm_ms = coalesce($12, llm_ms), "
        "  prompt_tokens = coalesce(prompt_tokens, 0) + coalesce($13, 0), "
        "  completion_tokens = coalesce(completion_tokens, 0) + coalesce($14, 0), "
        "  cost_usd = coalesce(cost_usd, 0) + coalesce($15::numeric, 0) "
        "WHERE factory_id = $1 AND id = $2",
        15};
    struct db_num fid, rid, ocr, total, llm, pt, ct;
    bool asked = info->llm_provider != NULL;
    char conf[32], cost[32];
    PGresult *res;
    int r;

    snprintf(conf, sizeof(conf), "%.3f", confidence);
    snprintf(cost, sizeof(cost), "%.6f", info->cost_usd);
    r = db_query(db, &st,
                 (const char *[]){
                     db_num(&fid, factory_id), db_num(&rid, id), fields, conf, info->engine,
                     db_num(&ocr, info->ocr_ms), db_num(&total, info->total_ms),
                     info->llm_used ? "true" : "false", info->llm_failed ? "true" : "false",
                     info->llm_provider, info->llm_model, asked ? db_num(&llm, info->llm_ms) : NULL,
                     asked ? db_num(&pt, info->prompt_tokens) : NULL,
                     asked ? db_num(&ct, info->completion_tokens) : NULL, asked ? cost : NULL},
                 &res);
    if (r < 0)
        return r;
    r = PQcmdTuples(res)[0] == '1' ? 0 : -ENOENT;
    PQclear(res);
    return r;
}
