/* The integration tests' shared helpers: see pgtest.h. */
#include "pgtest.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "arena.h"
#include "handlers.h"
#include "migrate.h"

#define MAX_DBS 64
#define MAX_PARAMS 16

static const char *admin_url;
static char *live[MAX_DBS]; /* names of the databases not dropped yet */
static unsigned next_db;
static char *last_reply;
static char last_said[160]; /* the start of the last message, for failures */

/* ---- the cluster ---- */

static void drop_by_name(const char *name)
{
    PGconn *c;
    PGresult *res;
    char *ident, sql[160];

    c = PQconnectdb(admin_url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "# pgtest: cannot drop %s: %s", name, PQerrorMessage(c));
        PQfinish(c);
        return;
    }
    ident = PQescapeIdentifier(c, name, strlen(name));
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", ident);
    PQfreemem(ident);
    res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fprintf(stderr, "# pgtest: %s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
}

static void forget(const char *name)
{
    for (unsigned i = 0; i < MAX_DBS; i++) {
        if (live[i] && strcmp(live[i], name) == 0) {
            free(live[i]);
            live[i] = NULL;
        }
    }
}

/* Drops what a failed test left behind, and frees the helpers' memory so
 * that LeakSanitizer reports only real leaks. */
static void cleanup(void)
{
    for (unsigned i = 0; i < MAX_DBS; i++) {
        if (live[i]) {
            drop_by_name(live[i]);
            free(live[i]);
            live[i] = NULL;
        }
    }
    free(last_reply);
    last_reply = NULL;
}

bool pgtest_init(int *exit_status)
{
    const char *out = getenv("CMOCKA_MESSAGE_OUTPUT");

    admin_url = getenv("RIVET_TEST_PG_URL");
    if (!admin_url || !*admin_url) {
        printf("1..0 # SKIP RIVET_TEST_PG_URL not set\n");
        fflush(stdout);
        *exit_status = out && strcasecmp(out, "TAP") == 0 ? 0 : 77;
        return false;
    }
    atexit(cleanup);
    return true;
}

/* admin_url with its database replaced by name, as key='value' pairs. */
static char *conninfo_for(const char *name)
{
    PQconninfoOption *opts;
    char *err = NULL, *s;
    size_t cap = 1024, len = 0;

    opts = PQconninfoParse(admin_url, &err);
    if (!opts) {
        fprintf(stderr, "# pgtest: RIVET_TEST_PG_URL: %s\n", err ? err : "out of memory");
        PQfreemem(err);
        return NULL;
    }
    s = malloc(cap);
    if (!s)
        goto out;
    s[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = strcmp(o->keyword, "dbname") == 0 ? name : o->val;
        if (!v)
            continue;
        /* key='value' with \ and ' escaped: at most twice the value. */
        while (len + strlen(o->keyword) + 2 * strlen(v) + 8 > cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) {
                free(s);
                s = NULL;
                goto out;
            }
            s = t;
        }
        len += (size_t)snprintf(s + len, cap - len, "%s%s='", len ? " " : "", o->keyword);
        for (const char *p = v; *p; p++) {
            if (*p == '\\' || *p == '\'')
                s[len++] = '\\';
            s[len++] = *p;
        }
        s[len++] = '\'';
        s[len] = '\0';
    }
out:
    PQconninfoFree(opts);
    return s;
}

void pgtest_db_create(struct pgtest_db *d)
{
    PGconn *c;
    PGresult *res;
    char sql[128];
    unsigned slot;

    assert_non_null(admin_url);
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "rivet_it_%ld_%u", (long)getpid(), next_db++);
    for (slot = 0; slot < MAX_DBS && live[slot]; slot++)
        ;
    assert_true(slot < MAX_DBS);

    c = PQconnectdb(admin_url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to RIVET_TEST_PG_URL: %s", PQerrorMessage(c));
    /* template0: nothing a developer added to template1 leaks in. */
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8'", d->name);
    res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
    live[slot] = strdup(d->name);
    assert_non_null(live[slot]);
    d->conninfo = conninfo_for(d->name);
    assert_non_null(d->conninfo);
}

void pgtest_db_drop(struct pgtest_db *d)
{
    if (!d->name[0])
        return;
    drop_by_name(d->name);
    forget(d->name);
    free(d->conninfo);
    memset(d, 0, sizeof(*d));
}

struct db *pgtest_connect(const struct pgtest_db *d)
{
    struct db *db = NULL;
    char *err = NULL;
    int r;

    r = db_connect(d->conninfo, 30000, &db, &err);
    if (r < 0)
        fail_msg("db_connect %s: %s (%s)", d->name, strerror(-r), err ? err : "?");
    free(err);
    return db;
}

PGconn *pgtest_pq(const struct pgtest_db *d)
{
    PGconn *c = PQconnectdb(d->conninfo);

    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect %s: %s", d->name, PQerrorMessage(c));
    return c;
}

void pgtest_migrate(struct db *db)
{
    struct migrate_report rep;
    int r;

    r = migrate_run(db, migrations, n_migrations, &rep);
    if (r < 0)
        fail_msg("migrate_run: %s (%s: %s)", strerror(-r), rep.failed, db_errmsg(db));
    assert_int_equal(rep.applied, n_migrations);
}

/* ---- checks in SQL ---- */

static PGresult *vq(PGconn *c, const char *sql, va_list ap)
{
    const char *p[MAX_PARAMS];
    int n = 0;
    PGresult *res;
    const char *v;

    while ((v = va_arg(ap, const char *)) != NULL) {
        assert_true(n < MAX_PARAMS);
        p[n++] = v;
    }
    res = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "# pgtest: %s\n# %s", sql, PQerrorMessage(c));
        PQclear(res);
        fail_msg("query failed");
    }
    return res;
}

PGresult *pgtest_q(PGconn *c, const char *sql, ...)
{
    PGresult *res;
    va_list ap;

    va_start(ap, sql);
    res = vq(c, sql, ap);
    va_end(ap);
    return res;
}

long long pgtest_qint(PGconn *c, const char *sql, ...)
{
    PGresult *res;
    long long v;
    va_list ap;

    va_start(ap, sql);
    res = vq(c, sql, ap);
    va_end(ap);
    if (PQntuples(res) < 1 || PQgetisnull(res, 0, 0)) {
        PQclear(res);
        fail_msg("no number from: %s", sql);
    }
    v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

char *pgtest_qstr(PGconn *c, const char *sql, ...)
{
    PGresult *res;
    char *s = NULL;
    va_list ap;

    va_start(ap, sql);
    res = vq(c, sql, ap);
    va_end(ap);
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
        s = strdup(PQgetvalue(res, 0, 0));
        assert_non_null(s);
    }
    PQclear(res);
    return s;
}

/* ---- fixtures ---- */

int64_t pgtest_factory(struct db *db, struct arena *a, const char *name)
{
    struct factory f;
    int r = db_factory_create(db, a, name, &f);

    if (r < 0)
        fail_msg("db_factory_create %s: %s (%s)", name, strerror(-r), db_errmsg(db));
    return f.id;
}

int64_t pgtest_user(struct db *db, struct arena *a, int64_t factory_id, const char *console_name,
                    const char *display_name, const char *role)
{
    struct user u;
    int r =
        db_user_create(db, a, factory_id, CHANNEL_CONSOLE, console_name, display_name, role, &u);

    if (r < 0)
        fail_msg("db_user_create %s: %s (%s)", console_name, strerror(-r), db_errmsg(db));
    return u.id;
}

int64_t pgtest_equipment(struct db *db, struct arena *a, int64_t factory_id, int64_t user_id,
                         const char *manufacturer, const char *model, const char *name,
                         const char *serial, const char *location, const char **number)
{
    struct equipment_fields f = {.name = name,
                                 .manufacturer = manufacturer,
                                 .model = model,
                                 .serial = serial,
                                 .location = location};
    struct equipment e;
    int r = db_equipment_add(db, a, factory_id, user_id, &f, &e);

    if (r < 0)
        fail_msg("db_equipment_add %s %s: %s (%s)", manufacturer, model, strerror(-r),
                 db_errmsg(db));
    if (number)
        *number = e.number;
    return e.id;
}

/* ---- the conversation ---- */

int pgtest_handle(struct db *db, struct arena *a, const struct msg *m, struct replies *out)
{
    int r = db_begin(db);

    if (r < 0)
        return r;
    r = handle_message(db, a, m, out);
    if (r == 0)
        return db_commit(db);
    db_rollback(db);
    return r;
}

const char *pgtest_say_n(struct db *db, const char *sender, const char *text, size_t len)
{
    struct arena *a = NULL;
    struct replies out;
    struct msg m = {.channel = CHANNEL_CONSOLE,
                    .sender_id = sender,
                    .sender_name = sender,
                    .text = text,
                    .text_len = len};
    size_t total = 1;
    int r;

    snprintf(last_said, sizeof(last_said), "%.*s", len > 150 ? 150 : (int)len, text);
    assert_int_equal(arena_new(&a), 0);
    replies_init(&out);
    r = pgtest_handle(db, a, &m, &out);
    free(last_reply);
    for (struct reply *rep = out.head; rep; rep = rep->next)
        total += strlen(rep->text) + 2;
    last_reply = malloc(total);
    assert_non_null(last_reply);
    last_reply[0] = '\0';
    for (struct reply *rep = out.head; rep; rep = rep->next) {
        if (rep != out.head)
            strcat(last_reply, "\n\n");
        strcat(last_reply, rep->text);
    }
    arena_free(a);
    if (r < 0)
        fail_msg("handle_message(%.*s) from %s: %s (%s); replied: %s", len > 80 ? 80 : (int)len,
                 text, sender, strerror(-r), db_errmsg(db), last_reply);
    return last_reply;
}

const char *pgtest_say(struct db *db, const char *sender, const char *text)
{
    return pgtest_say_n(db, sender, text, strlen(text));
}

void pgtest_assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("expected \"%s\" in:\n%s\n(the last message sent: %s)", needle, haystack,
                 last_said);
}

void pgtest_assert_not_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle))
        fail_msg("did not expect \"%s\" in:\n%s\n(the last message sent: %s)", needle, haystack,
                 last_said);
}

void pgtest_assert_starts_with(const char *s, const char *prefix)
{
    if (strncmp(s, prefix, strlen(prefix)) != 0)
        fail_msg("expected a reply starting \"%s\", got:\n%s\n(the last message sent: %s)", prefix,
                 s, last_said);
}

/* ---- snapshots ---- */

static const struct {
    const char *name, *key;
} tables[PT_N] = {
    [PT_FACTORIES] = {"factories", "id::text"},
    [PT_USERS] = {"users", "id::text"},
    [PT_INVITES] = {"invites", "id::text"},
    [PT_NUMBER_SEQUENCES] = {"number_sequences", "factory_id || '/' || kind || '/' || year"},
    [PT_EQUIPMENT] = {"equipment", "id::text"},
    [PT_WORK_ORDERS] = {"work_orders", "id::text"},
    [PT_WORK_ORDER_EVENTS] = {"work_order_events", "id::text"},
    [PT_SCHEMA_MIGRATIONS] = {"schema_migrations", "version::text"},
};

void pgtest_snap_take(PGconn *c, struct pgtest_snap *s)
{
    PGresult *res;
    char sql[512];
    char *schema;

    memset(s, 0, sizeof(*s));
    /* Tables, columns and indexes; constraints; triggers; functions. */
    schema = pgtest_qstr(
        c,
        "SELECT md5(coalesce((SELECT string_agg(c.relname || '.' || a.attname || ':' || "
        "  a.atttypid::text || ':' || c.relkind::text, ',' ORDER BY c.relname, a.attnum) "
        "  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
        "  WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 "
        "  AND NOT a.attisdropped), '') || '|' || "
        "coalesce((SELECT string_agg(conname || ':' || conrelid::text || contype::text || "
        "  conkey::text, ',' ORDER BY conname) FROM pg_constraint "
        "  WHERE connamespace = 'public'::regnamespace), '') || '|' || "
        "(SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "  WHERE c.relnamespace = 'public'::regnamespace) || '|' || "
        "(SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace))",
        NULL);
    assert_non_null(schema);
    snprintf(s->schema, sizeof(s->schema), "%s", schema);
    free(schema);
    for (int t = 0; t < PT_N; t++) {
        struct pgtest_rows *rows = &s->t[t];
        snprintf(sql, sizeof(sql),
                 "SELECT (%s), md5(x::text), md5((to_jsonb(x) - 'updated_at')::text) FROM %s x "
                 "ORDER BY (%s) COLLATE \"C\"",
                 tables[t].key, tables[t].name, tables[t].key);
        res = pgtest_q(c, sql, NULL);
        rows->n = PQntuples(res);
        rows->key = calloc((size_t)rows->n + 1, sizeof(char *));
        rows->full = calloc((size_t)rows->n + 1, sizeof(char *));
        rows->body = calloc((size_t)rows->n + 1, sizeof(char *));
        assert_true(rows->key && rows->full && rows->body);
        for (int i = 0; i < rows->n; i++) {
            rows->key[i] = strdup(PQgetvalue(res, i, 0));
            rows->full[i] = strdup(PQgetvalue(res, i, 1));
            rows->body[i] = strdup(PQgetvalue(res, i, 2));
            assert_true(rows->key[i] && rows->full[i] && rows->body[i]);
        }
        PQclear(res);
    }
}

void pgtest_snap_free(struct pgtest_snap *s)
{
    for (int t = 0; t < PT_N; t++) {
        struct pgtest_rows *rows = &s->t[t];
        for (int i = 0; i < rows->n; i++) {
            free(rows->key[i]);
            free(rows->full[i]);
            free(rows->body[i]);
        }
        free(rows->key);
        free(rows->full);
        free(rows->body);
    }
    memset(s, 0, sizeof(*s));
}

static void diff(const struct pgtest_snap *a, const struct pgtest_snap *b, struct pgtest_delta *d)
{
    memset(d, 0, sizeof(*d));
    d->schema = strcmp(a->schema, b->schema) != 0;
    for (int t = 0; t < PT_N; t++) {
        const struct pgtest_rows *x = &a->t[t], *y = &b->t[t];
        int i = 0, k = 0;

        while (i < x->n || k < y->n) {
            int c = i == x->n ? 1 : k == y->n ? -1 : strcmp(x->key[i], y->key[k]);
            if (c < 0) {
                d->removed[t]++;
                i++;
            } else if (c > 0) {
                d->added[t]++;
                k++;
            } else {
                if (strcmp(x->body[i], y->body[k]) != 0)
                    d->changed[t]++;
                else if (strcmp(x->full[i], y->full[k]) != 0)
                    d->touched[t]++;
                i++;
                k++;
            }
        }
    }
}

static bool delta_equal(const struct pgtest_delta *a, const struct pgtest_delta *b)
{
    if (a->schema != b->schema)
        return false;
    for (int t = 0; t < PT_N; t++)
        if (a->added[t] != b->added[t] || a->removed[t] != b->removed[t] ||
            a->changed[t] != b->changed[t] || a->touched[t] != b->touched[t])
            return false;
    return true;
}

static void print_delta(const char *label, const struct pgtest_delta *d)
{
    fprintf(stderr, "# %s:%s", label, d->schema ? " schema changed;" : "");
    for (int t = 0; t < PT_N; t++)
        if (d->added[t] || d->removed[t] || d->changed[t] || d->touched[t])
            fprintf(stderr, " %s +%d -%d ~%d ^%d;", tables[t].name, d->added[t], d->removed[t],
                    d->changed[t], d->touched[t]);
    fprintf(stderr, "\n");
}

void pgtest_assert_delta(PGconn *c, const struct pgtest_snap *before,
                         const struct pgtest_delta *want, const char *what)
{
    struct pgtest_snap after;
    struct pgtest_delta got;

    pgtest_snap_take(c, &after);
    diff(before, &after, &got);
    pgtest_snap_free(&after);
    if (!delta_equal(&got, want)) {
        fprintf(stderr, "# after %s:\n", what);
        print_delta("expected (+added -removed ~changed ^updated_at only)", want);
        print_delta("got", &got);
        fail_msg("the database changed other than expected after %s", what);
    }
}

void pgtest_assert_unchanged(PGconn *c, const struct pgtest_snap *before, const char *what)
{
    struct pgtest_delta none;

    memset(&none, 0, sizeof(none));
    pgtest_assert_delta(c, before, &none, what);
}
