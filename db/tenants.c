/* Factories, users and invites. */
#include "db_internal.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "arena.h"

const char *channel_name(enum channel ch)
{
    switch (ch) {
    case CHANNEL_TELEGRAM:
        return "telegram";
    case CHANNEL_WHATSAPP:
        return "whatsapp";
    default:
        return "console";
    }
}

int channel_parse(const char *name, enum channel *ret)
{
    if (strcmp(name, "telegram") == 0)
        *ret = CHANNEL_TELEGRAM;
    else if (strcmp(name, "whatsapp") == 0)
        *ret = CHANNEL_WHATSAPP;
    else if (strcmp(name, "console") == 0)
        *ret = CHANNEL_CONSOLE;
    else
        return -EINVAL;
    return 0;
}

int db_slugify(const char *name, char *out, size_t n)
{
    size_t o = 0;
    bool dash = false;

    if (n < 2)
        return -EINVAL;
    for (const unsigned char *p = (const unsigned char *)name; *p && o < n - 1 && o < 63; p++) {
        if (isalnum(*p)) {
            if (dash && o > 0 && o < n - 2 && o < 62)
                out[o++] = '-';
            dash = false;
            out[o++] = (char)tolower(*p);
        } else {
            dash = true;
        }
    }
    out[o] = '\0';
    if (o == 0) {
        /* No ASCII letter or digit ("Завод"): a stable slug from the name's
         * FNV-1a hash, so the same name always finds the same factory. */
        uint32_t h = 2166136261u;
        bool any = false;

        for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
            any |= *p > 0x7f;
            h = (h ^ *p) * 16777619u;
        }
        if (!any || n < 11)
            return -EINVAL;
        snprintf(out, n, "f-%08x", h);
    }
    return 0;
}

static void factory_from(struct arena *a, PGresult *res, struct factory *f)
{
    f->id = db_i64(res, 0, 0);
    f->slug = db_str(a, res, 0, 1);
    f->name = db_str(a, res, 0, 2);
    f->timezone = db_str(a, res, 0, 3);
}

int db_factory_create(struct db *db, struct arena *a, const char *name, struct factory *ret)
{
    /* The alert thread learns of the factory at once (its MQTT topics
     * work from now on): the NOTIFY goes out when this commits. */
    static const struct db_stmt st = {
        "factory_create",
        "WITH f AS (INSERT INTO factories (slug, name) VALUES ($1, $2) "
        "  RETURNING id, slug, name, timezone) "
        "SELECT f.*, pg_notify('rivet_rules', '') FROM f",
        2};
    char slug[64];
    PGresult *res;
    int r;

    if (db_slugify(name, slug, sizeof(slug)) < 0)
        return -EINVAL;
    r = db_query(db, &st, (const char *[]){slug, name}, &res);
    if (r < 0)
        return r;
    factory_from(a, res, ret);
    PQclear(res);
    return 0;
}

int db_factory_find(struct db *db, struct arena *a, const char *name, struct factory *ret)
{
    static const struct db_stmt st = {
        "factory_find",
        "SELECT id, slug, name, timezone FROM factories "
        "WHERE slug = $1 OR lower(name) = lower($2) ORDER BY slug = $1 DESC LIMIT 1",
        2};
    char slug[64];
    PGresult *res;
    int r;

    if (db_slugify(name, slug, sizeof(slug)) < 0)
        return -ENOENT;
    r = db_query(db, &st, (const char *[]){slug, name}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    factory_from(a, res, ret);
    PQclear(res);
    return 0;
}

int db_factory_list_print(struct db *db, FILE *out)
{
    static const struct db_stmt st = {
        "factory_list",
        "SELECT f.slug, f.name, (SELECT count(*) FROM users u WHERE u.factory_id = f.id), "
        "(SELECT count(*) FROM equipment e WHERE e.factory_id = f.id) "
        "FROM factories f ORDER BY f.slug",
        0};
    PGresult *res;
    int r;

    r = db_query(db, &st, NULL, &res);
    if (r < 0)
        return r;
    for (int i = 0; i < PQntuples(res); i++)
        fprintf(out, "%s\t%s\t%s user%s\t%s equipment\n", PQgetvalue(res, i, 0),
                PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                strcmp(PQgetvalue(res, i, 2), "1") == 0 ? "" : "s", PQgetvalue(res, i, 3));
    PQclear(res);
    return 0;
}

int db_factory_ensure(struct db *db, struct arena *a, const char *name, struct factory *ret)
{
    int r = db_factory_find(db, a, name, ret);

    if (r != -ENOENT)
        return r;
    r = db_factory_create(db, a, name, ret);
    if (r == -EEXIST) /* created by someone else meanwhile */
        r = db_factory_find(db, a, name, ret);
    return r;
}

/* ---- users ---- */

#define USER_SELECT                                                                                \
    "SELECT u.id, u.factory_id, u.display_name, u.role, f.name, u.active "                         \
    "FROM users u JOIN factories f ON f.id = u.factory_id "

static void user_from(struct arena *a, PGresult *res, int row, struct user *u)
{
    u->id = db_i64(res, row, 0);
    u->factory_id = db_i64(res, row, 1);
    u->display_name = db_str(a, res, row, 2);
    u->role = db_str(a, res, row, 3);
    u->factory_name = db_str(a, res, row, 4);
    u->active = PQgetvalue(res, row, 5)[0] == 't';
}

int db_user_by_identity(struct db *db, struct arena *a, enum channel ch, const char *ext_id,
                        struct user *ret)
{
    static const struct db_stmt by[] = {
        {"user_by_console", USER_SELECT "WHERE u.console_name = $1", 1},
        {"user_by_telegram", USER_SELECT "WHERE u.telegram_user_id = $1::bigint", 1},
        {"user_by_whatsapp", USER_SELECT "WHERE u.whatsapp_id = $1", 1},
    };
    PGresult *res;
    int r;

    if ((unsigned)ch > CHANNEL_WHATSAPP || !ext_id)
        return -EINVAL;
    r = db_query(db, &by[ch], (const char *[]){ext_id}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    user_from(a, res, 0, ret);
    PQclear(res);
    return 0;
}

int db_user_create(struct db *db, struct arena *a, int64_t factory_id, enum channel ch,
                   const char *ext_id, const char *display_name, const char *role, struct user *ret)
{
    static const struct db_stmt st = {
        "user_create",
        "WITH u AS (INSERT INTO users (factory_id, display_name, role, console_name, "
        "telegram_user_id, whatsapp_id) VALUES ($1, $2, $3, $4, $5::bigint, $6) RETURNING *) "
        "SELECT u.id, u.factory_id, u.display_name, u.role, f.name, u.active "
        "FROM u JOIN factories f ON f.id = u.factory_id",
        6};
    struct db_num fid;
    const char *p[6] = {db_num(&fid, factory_id), display_name, role, NULL, NULL, NULL};
    PGresult *res;
    int r;

    if ((unsigned)ch > CHANNEL_WHATSAPP)
        return -EINVAL;
    p[3 + ch] = ext_id;
    r = db_query(db, &st, p, &res);
    if (r < 0)
        return r;
    user_from(a, res, 0, ret);
    PQclear(res);
    return 0;
}

int db_user_by_name(struct db *db, struct arena *a, int64_t factory_id, const char *name,
                    struct user *ret)
{
    static const struct db_stmt st = {
        "user_by_name",
        USER_SELECT "WHERE u.factory_id = $1 AND lower(u.display_name) = lower($2) AND u.active "
                    "LIMIT 2",
        2};
    struct db_num fid;
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id), name}, &res);
    if (r < 0)
        return r;
    r = PQntuples(res) == 0 ? -ENOENT : PQntuples(res) > 1 ? -EEXIST : 0;
    if (r == 0)
        user_from(a, res, 0, ret);
    PQclear(res);
    return r;
}

const char *db_user_suggest(struct db *db, struct arena *a, int64_t factory_id, const char *name)
{
    static const struct db_stmt st = {
        "user_suggest",
        "SELECT display_name FROM users WHERE factory_id = $1 AND active "
        "AND similarity(lower(display_name), lower($2)) > 0.2 "
        "ORDER BY similarity(lower(display_name), lower($2)) DESC, id LIMIT 1",
        2};
    struct db_num fid;

    return db_first_str(db, a, &st, (const char *[]){db_num(&fid, factory_id), name});
}

int db_user_identities(struct db *db, struct arena *a, int64_t factory_id, int64_t user_id,
                       const char *ids[3])
{
    static const struct db_stmt st = {
        "user_identities",
        "SELECT console_name, telegram_user_id::text, whatsapp_id FROM users "
        "WHERE factory_id = $1 AND id = $2",
        2};
    struct db_num fid, uid;
    PGresult *res;
    int r;

    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id), db_num(&uid, user_id)}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    for (int i = 0; i < 3; i++)
        ids[i] = db_str(a, res, 0, i);
    PQclear(res);
    return 0;
}

int db_user_unlink(struct db *db, int64_t factory_id, int64_t user_id, enum channel ch)
{
    static const struct db_stmt st[] = {
        [CHANNEL_TELEGRAM] = {"user_unlink_telegram",
                              "UPDATE users SET telegram_user_id = NULL WHERE factory_id = $1 "
                              "AND id = $2 AND telegram_user_id IS NOT NULL RETURNING id",
                              2},
        [CHANNEL_WHATSAPP] = {"user_unlink_whatsapp",
                              "UPDATE users SET whatsapp_id = NULL WHERE factory_id = $1 "
                              "AND id = $2 AND whatsapp_id IS NOT NULL RETURNING id",
                              2},
    };
    struct db_num fid, uid;
    PGresult *res;
    int r;

    if (ch != CHANNEL_TELEGRAM && ch != CHANNEL_WHATSAPP)
        return -EINVAL;
    r = db_query(db, &st[ch], (const char *[]){db_num(&fid, factory_id), db_num(&uid, user_id)},
                 &res);
    if (r < 0)
        return r;
    r = PQntuples(res) == 0 ? -ENOENT : 0;
    PQclear(res);
    return r;
}

/* ---- codes people type: invites and link codes ---- */

/* Crockford-like alphabet: no 0/O or 1/I/L to misread on a phone screen. */
static const char code_alphabet[] = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";
#define CODE_ALPHABET_N (sizeof(code_alphabet) - 1)

/* len random letters of the alphabet and a NUL into out. Bytes that would
 * favour the first letters (256 is not a multiple of 31) are drawn again.
 * Returns 0 or -EIO. */
static int code_random(char *out, size_t len)
{
    const unsigned limit = (unsigned)(256 - 256 % CODE_ALPHABET_N);
    unsigned char rnd[32];
    size_t o = 0;

    while (o < len) {
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
            return -EIO;
        for (size_t i = 0; i < sizeof(rnd) && o < len; i++)
            if ((unsigned)rnd[i] < limit)
                out[o++] = code_alphabet[rnd[i] % CODE_ALPHABET_N];
    }
    out[o] = '\0';
    return 0;
}

/* Upper-cases, drops dashes and spaces into out (size > len); -EINVAL when
 * a character is not in the alphabet or the length is not len. */
static int code_normalize(const char *in, char *out, size_t len)
{
    size_t o = 0;

    for (; *in; in++) {
        char c = (char)toupper((unsigned char)*in);
        if (c == '-' || c == ' ')
            continue;
        if (o == len || !strchr(code_alphabet, c) || c == '\0')
            return -EINVAL;
        out[o++] = c;
    }
    out[o] = '\0';
    return o == len ? 0 : -EINVAL;
}

/* ---- invites ---- */

int db_invite_create(struct db *db, int64_t factory_id, const char *role, int uses,
                     long long expires_in_s, char *code_out, size_t n)
{
    static const struct db_stmt st = {
        "invite_create",
        "INSERT INTO invites (factory_id, code_sha256, role, uses_left, expires_at) "
        "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::bigint))",
        5};
    char code[13], hash[65], suses[16], sexp[24];
    struct db_num fid;
    int r;

    if (n < 15)
        return -EINVAL;
    if (code_random(code, 12) < 0)
        return -EIO;
    if (db_sha256_hex(code, hash) < 0)
        return -EIO;
    snprintf(suses, sizeof(suses), "%d", uses);
    snprintf(sexp, sizeof(sexp), "%lld", expires_in_s);
    r = db_query(db, &st, (const char *[]){db_num(&fid, factory_id), hash, role, suses, sexp},
                 NULL);
    if (r < 0)
        return r;
    snprintf(code_out, n, "%.4s-%.4s-%.4s", code, code + 4, code + 8);
    return 0;
}

int db_invite_redeem(struct db *db, struct arena *a, const char *code, int64_t *factory_id,
                     const char **role)
{
    static const struct db_stmt st = {
        "invite_redeem",
        "UPDATE invites SET uses_left = uses_left - 1 "
        "WHERE code_sha256 = $1 AND uses_left > 0 AND expires_at > now() "
        "RETURNING factory_id, role",
        1};
    char norm[13], hash[65];
    PGresult *res;
    int r;

    if (code_normalize(code, norm, 12) < 0)
        return -ENOENT;
    if (db_sha256_hex(norm, hash) < 0)
        return -EIO;
    r = db_query(db, &st, (const char *[]){hash}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    *factory_id = db_i64(res, 0, 0);
    *role = db_str(a, res, 0, 1);
    PQclear(res);
    return 0;
}

/* Where an invite attempt is counted: the channel's sender id, at most
 * INVITE_SENDER_MAX bytes (a longer console name is no one's). */
#define INVITE_SENDER_MAX 256

/* The failed attempts of a sender in the current window, for the limits on
 * guessing codes (link_attempts, invite_attempts): sweep clears a few
 * windows that have passed, take opens or reads the sender's ($1 channel,
 * $2 sender, $3 window in seconds) and returns its failures. */
static int attempts_take(struct db *db, const struct db_stmt *sweep, const struct db_stmt *take,
                         enum channel ch, const char *sender, long long window_s, int *failures)
{
    char swin[24];
    PGresult *res;
    int r;

    if (window_s <= 0)
        return -EINVAL;
    snprintf(swin, sizeof(swin), "%lld", window_s);
    r = db_query(db, sweep, (const char *[]){swin}, NULL);
    if (r < 0)
        return r;
    r = db_query(db, take, (const char *[]){channel_name(ch), sender, swin}, &res);
    if (r < 0)
        return r;
    *failures = db_int(res, 0, 0);
    PQclear(res);
    return 0;
}

int db_invite_attempts(struct db *db, enum channel ch, const char *sender, long long window_s,
                       int *failures)
{
    /* As db_link_attempts(): windows that have passed are cleared a few at
     * a time, skipping rows another transaction holds; the upsert locks the
     * sender's row, so concurrent attempts of one sender take turns. */
    static const struct db_stmt sweep = {
        "invite_attempts_sweep",
        "DELETE FROM invite_attempts WHERE (channel, sender_id) IN "
        "(SELECT channel, sender_id FROM invite_attempts "
        " WHERE window_start <= now() - make_interval(secs => $1::bigint) "
        " LIMIT 100 FOR UPDATE SKIP LOCKED)",
        1};
    static const struct db_stmt take = {
        "invite_attempts_take",
        "INSERT INTO invite_attempts AS t (channel, sender_id) VALUES ($1, $2) "
        "ON CONFLICT (channel, sender_id) DO UPDATE SET "
        "  window_start = CASE WHEN t.window_start <= now() - make_interval(secs => $3::bigint) "
        "    THEN now() ELSE t.window_start END, "
        "  failures = CASE WHEN t.window_start <= now() - make_interval(secs => $3::bigint) "
        "    THEN 0 ELSE t.failures END "
        "RETURNING failures",
        3};
    if ((unsigned)ch > CHANNEL_WHATSAPP || !sender || !*sender ||
        strlen(sender) > INVITE_SENDER_MAX)
        return -EINVAL;
    return attempts_take(db, &sweep, &take, ch, sender, window_s, failures);
}

int db_invite_attempt_failed(struct db *db, enum channel ch, const char *sender)
{
    static const struct db_stmt st = {
        "invite_attempt_failed",
        "UPDATE invite_attempts SET failures = failures + 1, "
        "  window_start = CASE WHEN failures = 0 THEN now() ELSE window_start END "
        "WHERE channel = $1 AND sender_id = $2",
        2};

    if ((unsigned)ch > CHANNEL_WHATSAPP || !sender || !*sender ||
        strlen(sender) > INVITE_SENDER_MAX)
        return -EINVAL;
    return db_query(db, &st, (const char *[]){channel_name(ch), sender}, NULL);
}

/* ---- link codes ---- */

int db_link_create(struct db *db, int64_t factory_id, int64_t user_id, long long ttl_s,
                   char *code_out, size_t n)
{
    /* The user's earlier unused codes go; used ones stay as the record of
     * what was linked when. A new code that happens to hash like a stored
     * one (2^-44) is drawn again. */
    static const struct db_stmt st = {
        "link_create",
        "WITH old AS (DELETE FROM link_codes "
        "  WHERE factory_id = $1 AND user_id = $2 AND used_at IS NULL) "
        "INSERT INTO link_codes (factory_id, user_id, code_sha256, expires_at) "
        "VALUES ($1, $2, $3, now() + make_interval(secs => $4::bigint)) "
        "ON CONFLICT (code_sha256) DO NOTHING RETURNING id",
        4};
    char code[LINK_CODE_CHARS + 1], hash[65], sttl[24];
    struct db_num fid, uid;
    PGresult *res;
    int r = -EIO;

    if (n < LINK_CODE_SIZE || ttl_s <= 0)
        return -EINVAL;
    snprintf(sttl, sizeof(sttl), "%lld", ttl_s);
    for (int tries = 0; tries < 3; tries++) {
        if (code_random(code, LINK_CODE_CHARS) < 0 || db_sha256_hex(code, hash) < 0)
            return -EIO;
        r = db_query(db, &st,
                     (const char *[]){db_num(&fid, factory_id), db_num(&uid, user_id), hash, sttl},
                     &res);
        if (r < 0)
            return r;
        r = PQntuples(res) == 1 ? 0 : -EEXIST;
        PQclear(res);
        if (r == 0)
            break;
    }
    if (r == 0)
        snprintf(code_out, n, "%.3s-%.3s-%.3s", code, code + 3, code + 6);
    return r;
}

/* The hash of a code as typed, or -ENOENT when it cannot be a link code. */
static int link_hash(const char *code, char hash[65])
{
    char norm[LINK_CODE_CHARS + 1];

    if (!code || code_normalize(code, norm, LINK_CODE_CHARS) < 0)
        return -ENOENT;
    return db_sha256_hex(norm, hash) < 0 ? -EIO : 0;
}

int db_link_owner(struct db *db, const char *code, int64_t *factory_id, int64_t *user_id)
{
    static const struct db_stmt st = {
        "link_owner",
        "SELECT factory_id, user_id FROM link_codes "
        "WHERE code_sha256 = $1 AND used_at IS NULL AND expires_at > now()",
        1};
    char hash[65];
    PGresult *res;
    int r;

    r = link_hash(code, hash);
    if (r < 0)
        return r;
    r = db_query(db, &st, (const char *[]){hash}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return -ENOENT;
    }
    *factory_id = db_i64(res, 0, 0);
    *user_id = db_i64(res, 0, 1);
    PQclear(res);
    return 0;
}

/* The code's row and its user's are locked first (k), so that the checks
 * (unused, unexpired, the user active and without an identity on the
 * channel) hold for both updates; a second statement racing for the same
 * code waits, then finds it used. */
#define LINK_REDEEM(col, val)                                                                      \
    "WITH k AS (SELECT l.id, l.factory_id, l.user_id FROM link_codes l "                           \
    "  JOIN users u ON u.factory_id = l.factory_id AND u.id = l.user_id "                          \
    "  WHERE l.code_sha256 = $1 AND l.used_at IS NULL AND l.expires_at > now() "                   \
    "  AND u.active AND u." col " IS NULL FOR UPDATE OF l, u), "                                   \
    "c AS (UPDATE link_codes l SET used_at = now() FROM k "                                        \
    "  WHERE l.id = k.id AND l.factory_id = k.factory_id "                                         \
    "  AND l.used_at IS NULL AND l.expires_at > now() RETURNING l.factory_id, l.user_id), "        \
    "n AS (UPDATE users u SET " col " = " val " FROM c "                                           \
    "  WHERE u.id = c.user_id AND u.factory_id = c.factory_id AND u." col " IS NULL "              \
    "  RETURNING u.id, u.factory_id, u.display_name, u.role, u.active) "                           \
    "SELECT n.id, n.factory_id, n.display_name, n.role, f.name, n.active "                         \
    "FROM n JOIN factories f ON f.id = n.factory_id"

/* Why a valid code could not be used: its user has the channel already. */
#define LINK_TAKEN(col)                                                                            \
    USER_SELECT "JOIN link_codes l ON l.factory_id = u.factory_id AND l.user_id = u.id "           \
                "WHERE l.code_sha256 = $1 AND l.used_at IS NULL AND l.expires_at > now() "         \
                "AND u.active AND u." col " IS NOT NULL"

int db_link_redeem(struct db *db, struct arena *a, const char *code, enum channel ch,
                   const char *ext_id, struct user *ret)
{
    static const struct db_stmt redeem[] = {
        [CHANNEL_TELEGRAM] = {"link_redeem_telegram", LINK_REDEEM("telegram_user_id", "$2::bigint"),
                              2},
        [CHANNEL_WHATSAPP] = {"link_redeem_whatsapp", LINK_REDEEM("whatsapp_id", "$2"), 2},
    };
    static const struct db_stmt taken[] = {
        [CHANNEL_TELEGRAM] = {"link_taken_telegram", LINK_TAKEN("telegram_user_id"), 1},
        [CHANNEL_WHATSAPP] = {"link_taken_whatsapp", LINK_TAKEN("whatsapp_id"), 1},
    };
    char hash[65];
    PGresult *res;
    int r;

    if ((ch != CHANNEL_TELEGRAM && ch != CHANNEL_WHATSAPP) || !ext_id)
        return -EINVAL;
    r = link_hash(code, hash);
    if (r < 0)
        return r;
    r = db_query(db, &redeem[ch], (const char *[]){hash, ext_id}, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) == 1) {
        user_from(a, res, 0, ret);
        PQclear(res);
        return 0;
    }
    PQclear(res);
    r = db_query(db, &taken[ch], (const char *[]){hash}, &res);
    if (r < 0)
        return r;
    r = -ENOENT;
    if (PQntuples(res) == 1) {
        user_from(a, res, 0, ret);
        r = -EALREADY;
    }
    PQclear(res);
    return r;
}

int db_link_attempts(struct db *db, enum channel ch, const char *sender, long long window_s,
                     int *failures)
{
    /* Windows past their hour are cleared a few at a time; rows another
     * transaction holds are skipped, never waited for. */
    static const struct db_stmt sweep = {
        "link_attempts_sweep",
        "DELETE FROM link_attempts WHERE (channel, sender_id) IN "
        "(SELECT channel, sender_id FROM link_attempts "
        " WHERE window_start <= now() - make_interval(secs => $1::bigint) "
        " LIMIT 100 FOR UPDATE SKIP LOCKED)",
        1};
    static const struct db_stmt take = {
        "link_attempts_take",
        "INSERT INTO link_attempts AS t (channel, sender_id) VALUES ($1, $2) "
        "ON CONFLICT (channel, sender_id) DO UPDATE SET "
        "  window_start = CASE WHEN t.window_start <= now() - make_interval(secs => $3::bigint) "
        "    THEN now() ELSE t.window_start END, "
        "  failures = CASE WHEN t.window_start <= now() - make_interval(secs => $3::bigint) "
        "    THEN 0 ELSE t.failures END "
        "RETURNING failures",
        3};
    if ((ch != CHANNEL_TELEGRAM && ch != CHANNEL_WHATSAPP) || !sender)
        return -EINVAL;
    return attempts_take(db, &sweep, &take, ch, sender, window_s, failures);
}

int db_link_attempt_failed(struct db *db, enum channel ch, const char *sender)
{
    static const struct db_stmt st = {
        "link_attempt_failed",
        "UPDATE link_attempts SET failures = failures + 1, "
        "  window_start = CASE WHEN failures = 0 THEN now() ELSE window_start END "
        "WHERE channel = $1 AND sender_id = $2",
        2};

    if ((ch != CHANNEL_TELEGRAM && ch != CHANNEL_WHATSAPP) || !sender)
        return -EINVAL;
    return db_query(db, &st, (const char *[]){channel_name(ch), sender}, NULL);
}
