/* Equipment: numbered EQ-YYYY-NNNNNN per factory, fuzzy-searchable. */
#include "db_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

#define OPEN_STATUSES "('open', 'in_progress', 'on_hold')"

#define EQ_COLUMNS                                                                                 \
    "e.id, e.number, e.name, e.manufacturer, e.model, e.serial, e.location, e.criticality, "       \
    "e.nameplate::text, to_char(e.created_at AT TIME ZONE f.timezone, 'YYYY-MM-DD HH24:MI'), "     \
    "u.display_name, (SELECT count(*) FROM work_orders w WHERE w.factory_id = e.factory_id "       \
    "AND w.equipment_id = e.id AND w.status IN " OPEN_STATUSES ") "
#define EQ_FROM                                                                                    \
    "FROM equipment e JOIN factories f ON f.id = e.factory_id "                                    \
    "LEFT JOIN users u ON u.factory_id = e.factory_id AND u.id = e.created_by "

static void eq_from(struct arena *a, PGresult *res, int row, struct equipment *e)
{
    e->id = db_i64(res, row, 0);
    e->number = db_str(a, res, row, 1);
    e->name = db_str(a, res, row, 2);
    e->manufacturer = db_str(a, res, row, 3);
    e->model = db_str(a, res, row, 4);
    e->serial = db_str(a, res, row, 5);
    e->location = db_str(a, res, row, 6);
    e->criticality = db_str(a, res, row, 7);
    e->nameplate = db_str(a, res, row, 8);
    e->created_at = db_str(a, res, row, 9);
    e->created_by = db_str(a, res, row, 10);
    e->open_work_orders = db_int(res, row, 11);
    e->substring = PQnfields(res) > 12 && PQgetvalue(res, row, 12)[0] == 't';
    e->similarity = PQnfields(res) > 13 ? strtod(PQgetvalue(res, row, 13), NULL) : 0;
}

/* Runs a statement whose first column set is EQ_COLUMNS; *ret (arena) gets
 * its rows. */
static int eq_many(struct db *db, struct arena *a, const struct db_stmt *st,
                   const char *const *params, struct equipment **ret, int *n)
{
    struct equipment *v;
    PGresult *res;
    int rows, r;

    r = db_query(db, st, params, &res);
    if (r < 0)
        return r;
    rows = PQntuples(res);
    v = arena_alloc(a, sizeof(*v) * (size_t)(rows ? rows : 1));
    if (!v) {
        PQclear(res);
        return -ENOMEM;
    }
    for (int i = 0; i < rows; i++)
        eq_from(a, res, i, &v[i]);
    PQclear(res);
    *ret = v;
    *n = rows;
    return 0;
}

/* Runs a statement whose first column set is EQ_COLUMNS and expects one row. */
static int eq_one(struct db *db, struct arena *a, const struct db_stmt *st,
                  const char *const *params, struct equipment *ret)
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
    eq_from(a, res, 0, ret);
    PQclear(res);
    return 0;
}

int db_equipment_add(struct db *db, struct arena *a, int64_t factory_id, int64_t user_id,
                     const struct equipment_fields *f, struct equipment *ret)
{
    /* The counter row lock serializes concurrent adds in one factory; the
     * number and the row are written in one statement. */
    static const struct db_stmt st = {
        "equipment_add",
        "WITH n AS (INSERT INTO number_sequences (factory_id, kind, year, last) "
        "  VALUES ($1, 'EQ', extract(year FROM now())::int, 1) "
        "  ON CONFLICT (factory_id, kind, year) DO UPDATE SET last = number_sequences.last + 1 "
        "  RETURNING year, last), "
        "e AS (INSERT INTO equipment (factory_id, number, name, manufacturer, model, serial, "
        "  location, criticality, created_by) "
        "  SELECT $1, format('EQ-%s-%s', n.year, lpad(n.last::text, greatest(6, "
        "    length(n.last::text)), '0')), $3, $4, $5, $6, $7, coalesce($8, 'medium'), $2 FROM n "
        "  RETURNING *) "
        "SELECT " EQ_COLUMNS "FROM e JOIN factories f ON f.id = e.factory_id "
        "LEFT JOIN users u ON u.factory_id = e.factory_id AND u.id = e.created_by",
        8};
    struct db_num fid, uid;

    return eq_one(db, a, &st,
                  (const char *[]){db_num(&fid, factory_id), user_id ? db_num(&uid, user_id) : NULL,
                                   f->name, f->manufacturer, f->model, f->serial, f->location,
                                   f->criticality},
                  ret);
}

int db_equipment_get(struct db *db, struct arena *a, int64_t factory_id, const char *number,
                     struct equipment *ret)
{
    static const struct db_stmt st = {
        "equipment_get",
        "SELECT " EQ_COLUMNS EQ_FROM "WHERE e.factory_id = $1 AND e.number = upper($2)", 2};
    struct db_num fid;

    return eq_one(db, a, &st, (const char *[]){db_num(&fid, factory_id), number}, ret);
}

int db_equipment_update(struct db *db, struct arena *a, int64_t factory_id, const char *number,
                        const struct equipment_fields *f, struct equipment *ret)
{
    /* NULL parameters keep the column; an empty string clears an optional one. */
    static const struct db_stmt st = {
        "equipment_update",
        "WITH e AS (UPDATE equipment SET "
        "  name = CASE WHEN $3::text IS NULL THEN name ELSE nullif($3, '') END, "
        "  manufacturer = coalesce($4, manufacturer), model = coalesce($5, model), "
        "  serial = CASE WHEN $6::text IS NULL THEN serial ELSE nullif($6, '') END, "
        "  location = CASE WHEN $7::text IS NULL THEN location ELSE nullif($7, '') END, "
        "  criticality = coalesce($8, criticality), updated_at = now() "
        "  WHERE factory_id = $1 AND number = upper($2) RETURNING *) "
        "SELECT " EQ_COLUMNS "FROM e JOIN factories f ON f.id = e.factory_id "
        "LEFT JOIN users u ON u.factory_id = e.factory_id AND u.id = e.created_by",
        8};
    struct db_num fid;

    return eq_one(db, a, &st,
                  (const char *[]){db_num(&fid, factory_id), number, f->name, f->manufacturer,
                                   f->model, f->serial, f->location, f->criticality},
                  ret);
}

int db_equipment_list(struct db *db, struct arena *a, int64_t factory_id, int offset, int limit,
                      struct equipment **ret, int *n, int *total)
{
    static const struct db_stmt page = {"equipment_list",
                                        "SELECT " EQ_COLUMNS EQ_FROM "WHERE e.factory_id = $1 "
                                        "ORDER BY e.created_at DESC, e.id DESC OFFSET $2 LIMIT $3",
                                        3};
    static const struct db_stmt count = {"equipment_count",
                                         "SELECT count(*) FROM equipment WHERE factory_id = $1", 1};
    struct db_num fid, off, lim;
    PGresult *res;
    int r;

    r = db_query(db, &count, (const char *[]){db_num(&fid, factory_id)}, &res);
    if (r < 0)
        return r;
    *total = db_int(res, 0, 0);
    PQclear(res);
    return eq_many(db, a, &page, (const char *[]){fid.s, db_num(&off, offset), db_num(&lim, limit)},
                   ret, n);
}

int db_equipment_search(struct db *db, struct arena *a, int64_t factory_id, const char *text,
                        int limit, struct equipment **ret, int *n)
{
    /* A substring match (LIKE, with the user's % and _ escaped) or a
     * trigram word-similarity match; both use the GIN trigram index.
     * Substring hits rank first, then by similarity. Scoring every match
     * costs a word_similarity() each, thousands of them on a big factory
     * (issue 9), so the candidates are bounded: the first SEARCH_LIKE
     * substring hits and SEARCH_FUZZY word matches the index returns,
     * ranked exactly. A factory with fewer matches gets the same answer
     * as ranking all of them; a bigger one may get other rows of equal
     * rank (the tie-breakers: make and model, whole text, newest). The
     * matches are CTEs read only as far as the LIMITs: planned without the
     * LIMIT, they take the index even when a sequential scan would look
     * cheaper for the first rows (each match costs a word_similarity()). */
#define SEARCH_PAT                                                                                 \
    "'%' || replace(replace(replace(lower($2), '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%'"
#define SEARCH_LIKE "100"
#define SEARCH_FUZZY "200"
    static const struct db_stmt st = {
        "equipment_search",
        "WITH q AS (SELECT lower($2) AS t, " SEARCH_PAT " AS pat), "
        "l AS MATERIALIZED (SELECT id FROM equipment WHERE factory_id = $1 "
        "  AND search_text LIKE " SEARCH_PAT "), "
        "f AS MATERIALIZED (SELECT id FROM equipment WHERE factory_id = $1 "
        "  AND lower($2) <% search_text), "
        "c AS ((SELECT id FROM l LIMIT " SEARCH_LIKE ") UNION (SELECT id FROM f LIMIT " SEARCH_FUZZY
        ")) "
        "SELECT " EQ_COLUMNS ", e.search_text LIKE q.pat " EQ_FROM "JOIN c ON c.id = e.id, q "
        "WHERE e.factory_id = $1 "
        "ORDER BY (e.search_text LIKE q.pat) DESC, word_similarity(q.t, e.search_text) DESC, "
        "  similarity(q.t, lower(e.manufacturer || ' ' || e.model)) DESC, "
        "  similarity(q.t, e.search_text) DESC, e.id DESC LIMIT $3",
        3};
#undef SEARCH_PAT
#undef SEARCH_LIKE
#undef SEARCH_FUZZY
    struct db_num fid, lim;

    return eq_many(db, a, &st,
                   (const char *[]){db_num(&fid, factory_id), text, db_num(&lim, limit)}, ret, n);
}

int db_equipment_resolve(struct db *db, struct arena *a, int64_t factory_id, const char *words,
                         const char *location, int limit, struct equipment **ret, int *n)
{
    /* The candidates come through the trigram index (<% and LIKE on
     * search_text); the score is the best word similarity against the
     * name, the make and model, the serial, or the whole text. */
    static const struct db_stmt st = {
        "equipment_resolve",
        "WITH q AS (SELECT lower(coalesce($2, '')) AS m, lower(coalesce($3, '')) AS l), "
        "p AS (SELECT q.*, '%' || replace(replace(replace(q.m, '\\', '\\\\'), '%', '\\%'), "
        "  '_', '\\_') || '%' AS mpat, "
        "  '%' || replace(replace(replace(q.l, '\\', '\\\\'), '%', '\\%'), '_', '\\_') "
        "  || '%' AS lpat FROM q) "
        "SELECT " EQ_COLUMNS ", p.m <> '' AND e.search_text LIKE p.mpat, "
        "  CASE WHEN p.m = '' THEN 0.5 ELSE greatest("
        "    word_similarity(p.m, lower(coalesce(e.name, ''))), "
        "    word_similarity(p.m, lower(e.manufacturer || ' ' || e.model)), "
        "    word_similarity(p.m, lower(coalesce(e.serial, ''))), "
        "    0.9 * word_similarity(p.m, e.search_text)) END "
        "  + CASE WHEN p.l <> '' AND lower(coalesce(e.location, '')) LIKE p.lpat THEN 0.3 "
        "    ELSE 0 END AS score " EQ_FROM ", p "
        "WHERE e.factory_id = $1 AND CASE WHEN p.m <> '' "
        "  THEN (p.m <% e.search_text OR e.search_text LIKE p.mpat) "
        "  ELSE p.l <> '' AND e.search_text LIKE p.lpat END "
        "ORDER BY score DESC, e.id LIMIT $4",
        4};
    struct db_num fid, lim;

    return eq_many(db, a, &st,
                   (const char *[]){db_num(&fid, factory_id), words, location, db_num(&lim, limit)},
                   ret, n);
}

int db_equipment_named_in(struct db *db, struct arena *a, int64_t factory_id, const char *text,
                          int limit, struct equipment **ret, int *n)
{
    /* Words are compared with punctuation folded to single spaces on both
     * sides, so "VF-2" is found in "the vf 2 is down". A scan of the
     * factory's machines: used only when the parser found no machine. */
#define WORDS(x) "(' ' || regexp_replace(lower(" x "), '[^[:alnum:]]+', ' ', 'g') || ' ')"
    static const struct db_stmt
        st = {"equipment_named_in",
              "WITH q AS (SELECT " WORDS(
                  "$2") " AS t) "
                        "SELECT " EQ_COLUMNS ", true, "
                        "  CASE WHEN e.name IS NOT NULL AND length(e.name) >= 3 "
                        "    AND strpos(q.t, " WORDS(
                            "e.name") ") > 0 THEN 1 "
                                      "  WHEN length(e.model) >= 3 AND strpos(q.t, " WORDS(
                                          "e.model") ") > 0 THEN 0.9 "
                                                     "  ELSE 0.6 END AS score " EQ_FROM ", q "
                                                     "WHERE e.factory_id = $1 AND ("
                                                     "  (e.name IS NOT NULL AND length(e.name) >= "
                                                     "3 AND strpos(q.t, " WORDS(
                                                         "e.name") ") > 0) "
                                                                   "  OR (length(e.model) >= 3 AND "
                                                                   "strpos(q.t, " WORDS(
                                                                       "e.model") ") > 0) "
                                                                                  "  OR "
                                                                                  "(length(e."
                                                                                  "manufacturer) "
                                                                                  ">= 3 AND "
                                                                                  "strpos(q.t,"
                                                                                  " " WORDS(
                                                                                      "e."
                                                                                      "manufacture"
                                                                                      "r") ") > "
                                                                                           "0)) "
                                                                                           "ORDER "
                                                                                           "BY "
                                                                                           "score "
                                                                                           "DESC, "
                                                                                           "e.id "
                                                                                           "LIMIT "
                                                                                           "$3",
              3};
#undef WORDS
    struct db_num fid, lim;

    return eq_many(db, a, &st,
                   (const char *[]){db_num(&fid, factory_id), text, db_num(&lim, limit)}, ret, n);
}

const char *db_equipment_suggest(struct db *db, struct arena *a, int64_t factory_id,
                                 const char *number)
{
    static const struct db_stmt st = {
        "equipment_suggest",
        "SELECT number FROM equipment WHERE factory_id = $1 "
        "AND levenshtein(number, upper(left($2, 64))) <= 3 "
        "ORDER BY levenshtein(number, upper(left($2, 64))), id DESC LIMIT 1",
        2};
    struct db_num fid;

    return db_first_str(db, a, &st, (const char *[]){db_num(&fid, factory_id), number});
}

int db_equipment_by_serial(struct db *db, struct arena *a, int64_t factory_id,
                           const char *serial_norm, int limit, struct equipment **ret, int *n)
{
    static const struct db_stmt st = {
        "equipment_by_serial",
        "SELECT " EQ_COLUMNS ", false, 1 " EQ_FROM
        "WHERE e.factory_id = $1 AND e.serial_norm = $2 ORDER BY e.id LIMIT $3",
        3};
    struct db_num fid, lim;

    return eq_many(db, a, &st,
                   (const char *[]){db_num(&fid, factory_id), serial_norm, db_num(&lim, limit)},
                   ret, n);
}

int db_equipment_similar_model(struct db *db, struct arena *a, int64_t factory_id,
                               const char *model, int limit, struct equipment **ret, int *n)
{
    /* The folded model equal (an index lookup), or one character more or
     * less than it: a dropped or doubled character. The second is found
     * through the trigram index on the model; similarity is 1 for the
     * first, 0.9 for the second. */
    static const struct db_stmt st = {
        "equipment_similar_model",
        "WITH q AS (SELECT regexp_replace(translate(upper($2), 'OISBZG', '015826'), "
        "  '[^A-Z0-9]', '', 'g') AS f) "
        "SELECT " EQ_COLUMNS ", false, CASE WHEN e.model_fold = q.f THEN 1 ELSE 0.9 END " EQ_FROM
        ", q WHERE e.factory_id = $1 AND q.f <> '' AND (e.model_fold = q.f OR "
        "  (length(q.f) >= 4 AND lower(e.model) % lower($2) "
        "   AND abs(length(e.model_fold) - length(q.f)) = 1 "
        "   AND levenshtein(left(e.model_fold, 200), left(q.f, 200)) = 1)) "
        "ORDER BY 14 DESC, e.id LIMIT $3",
        3};
    struct db_num fid, lim;

    return eq_many(db, a, &st,
                   (const char *[]){db_num(&fid, factory_id), model, db_num(&lim, limit)}, ret, n);
}

int db_equipment_set_nameplate(struct db *db, int64_t factory_id, int64_t equipment_id,
                               const char *nameplate, const char *file_id, const char *sha256)
{
    /* The caller merged the fields; the photo replaces the old one. */
    static const struct db_stmt st = {
        "equipment_set_nameplate",
        "UPDATE equipment SET nameplate = $3::jsonb, "
        "  photo_file_id = coalesce($4, photo_file_id), photo_sha256 = coalesce($5, photo_sha256), "
        "  updated_at = now() WHERE factory_id = $1 AND id = $2",
        5};
    struct db_num fid, eid;
    PGresult *res;
    int r;

    r = db_query(db, &st,
                 (const char *[]){db_num(&fid, factory_id), db_num(&eid, equipment_id), nameplate,
                                  file_id, sha256},
                 &res);
    if (r < 0)
        return r;
    r = PQcmdTuples(res)[0] == '1' ? 0 : -ENOENT;
    PQclear(res);
    return r;
}
