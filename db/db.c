#include "db_internal.h"
#include "queue.h"

#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

#define DB_MAX_PREPARED 128

struct db {
    PGconn *conn;
    char *conninfo;
    int statement_timeout_ms;
    const struct db_stmt *prepared[DB_MAX_PREPARED];
    size_t n_prepared;
    bool in_tx;               /* between db_begin() and db_commit()/db_rollback() */
    const char *listening[4]; /* LISTENed events, renewed on reconnect */
    size_t n_listening;
    char err[512];
};

void db_set_error(struct db *db, const char *msg)
{
    snprintf(db->err, sizeof(db->err), "%s", msg);
}

/* libpq's connection messages span lines: fold them into one. */
static void set_conn_error(struct db *db)
{
    const char *m = PQerrorMessage(db->conn);
    size_t n;

    snprintf(db->err, sizeof(db->err), "%s", m && *m ? m : "connection failed");
    for (char *p = db->err; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    n = strlen(db->err);
    while (n && db->err[n - 1] == ' ')
        db->err[--n] = '\0';
}

/* Keeps SQLSTATE and the primary message only: the DETAIL of a unique
 * violation quotes the value, which may be an invite code. */
static void set_result_error(struct db *db, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    if (!msg) {
        set_conn_error(db);
        return;
    }
    snprintf(db->err, sizeof(db->err), "%s (SQLSTATE %s)", msg, state ? state : "?");
}

static int map_result(struct db *db, const PGresult *res)
{
    const char *state;

    if (!res) {
        set_conn_error(db);
        return PQstatus(db->conn) == CONNECTION_OK ? -EIO : -ECONNRESET;
    }
    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
        return 0;
    default:
        break;
    }
    set_result_error(db, res);
    if (PQstatus(db->conn) != CONNECTION_OK)
        return -ECONNRESET;
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (!state)
        return -EIO;
    if (strcmp(state, "23505") == 0)
        return -EEXIST;
    if (strcmp(state, "23514") == 0 || strcmp(state, "22001") == 0 || strcmp(state, "23502") == 0)
        return -EINVAL;
    if (strcmp(state, "23503") == 0)
        return -ENOENT;
    if (strcmp(state, "57014") == 0)
        return -ETIMEDOUT;
    if (strncmp(state, "08", 2) == 0)
        return -ECONNRESET;
    return -EIO;
}

/* Server notices ("relation already exists, skipping") are not errors. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int session_setup(struct db *db)
{
    char sql[160];
    int r;

    /* Fuzzy search: a lower word-similarity threshold than pg_trgm's 0.6
     * so that one or two typos in a word still match. */
    snprintf(sql, sizeof(sql),
             "SET statement_timeout = %d; SET pg_trgm.word_similarity_threshold = 0.45",
             db->statement_timeout_ms);
    r = db_exec(db, sql);
    for (size_t i = 0; r == 0 && i < db->n_listening; i++) {
        snprintf(sql, sizeof(sql), "LISTEN %s", db->listening[i]);
        r = db_exec(db, sql);
    }
    return r;
}

int db_connect(const char *conninfo, int statement_timeout_ms, struct db **ret, char **err_out)
{
    struct db *db;
    int r;

    db = calloc(1, sizeof(*db));
    if (!db)
        return -ENOMEM;
    db->statement_timeout_ms = statement_timeout_ms > 0 ? statement_timeout_ms : 5000;
    db->conninfo = strdup(conninfo);
    if (!db->conninfo) {
        r = -ENOMEM;
        goto fail;
    }
    /* Defaults that DATABASE_URL may override (it is expanded in the place
     * of dbname, after them): never wait forever for an unreachable host,
     * and notice a dead peer within a minute. */
    static const char *const keys[] = {"connect_timeout",
                                       "keepalives_idle",
                                       "keepalives_interval",
                                       "keepalives_count",
                                       "tcp_user_timeout",
                                       "dbname",
                                       NULL};
    const char *values[] = {"10", "30", "10", "3", "60000", conninfo, NULL};

    db->conn = PQconnectdbParams(keys, values, 1);
    if (!db->conn) {
        r = -ENOMEM;
        goto fail;
    }
    if (PQstatus(db->conn) != CONNECTION_OK) {
        set_conn_error(db);
        r = -ECONNREFUSED;
        goto fail;
    }
    PQsetNoticeProcessor(db->conn, quiet_notice, NULL);
    r = session_setup(db);
    if (r < 0)
        goto fail;
    *ret = db;
    return 0;
fail:
    if (err_out)
        *err_out = strdup(db->err[0] ? db->err : strerror(-r));
    db_close(db);
    return r;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    if (db->conn)
        PQfinish(db->conn);
    free(db->conninfo);
    free(db);
}

const char *db_errmsg(const struct db *db)
{
    return db->err;
}

/* A lost connection is reset before the next statement; statements prepared
 * on the old one are gone with it. */
static int ensure_connected(struct db *db)
{
    if (PQstatus(db->conn) == CONNECTION_OK)
        return 0;
    /* Inside a transaction the work so far is lost with the connection:
     * carrying on in autocommit on a new one would save half of it. */
    if (db->in_tx) {
        set_conn_error(db);
        return -ECONNRESET;
    }
    PQreset(db->conn);
    db->n_prepared = 0;
    if (PQstatus(db->conn) != CONNECTION_OK) {
        set_conn_error(db);
        return -ECONNRESET;
    }
    return session_setup(db);
}

int db_listen(struct db *db, const char *event)
{
    char sql[96];
    int r;

    if (db->n_listening == sizeof(db->listening) / sizeof(db->listening[0]))
        return -E2BIG;
    /* event is one of Rivet's own constants, never user text */
    snprintf(sql, sizeof(sql), "LISTEN %s", event);
    r = db_exec(db, sql);
    if (r == 0)
        db->listening[db->n_listening++] = event;
    return r;
}

static int drain_notifies(struct db *db)
{
    PGnotify *n;
    int got = 0;

    while ((n = PQnotifies(db->conn))) {
        got = 1;
        PQfreemem(n);
    }
    return got;
}

int db_wait_notify(struct db *db, int timeout_ms)
{
    struct pollfd p;
    int k;

    if (PQstatus(db->conn) != CONNECTION_OK) {
        /* reconnects (and LISTENs again) on the next statement */
        return ensure_connected(db) < 0 ? -ECONNRESET : 1;
    }
    if (drain_notifies(db))
        return 1;
    p = (struct pollfd){.fd = PQsocket(db->conn), .events = POLLIN};
    k = poll(&p, 1, timeout_ms);
    if (k < 0)
        return errno == EINTR ? 0 : -errno;
    if (k == 0)
        return 0;
    if (!PQconsumeInput(db->conn)) {
        set_conn_error(db);
        return -ECONNRESET;
    }
    return drain_notifies(db);
}

int db_exec(struct db *db, const char *sql)
{
    PGresult *res;
    int r;

    r = ensure_connected(db);
    if (r < 0)
        return r;
    res = PQexec(db->conn, sql);
    r = map_result(db, res);
    PQclear(res);
    return r;
}

int db_ping(struct db *db)
{
    return db_exec(db, "SELECT 1");
}

static int prepare(struct db *db, const struct db_stmt *st)
{
    PGresult *res;
    int r;

    for (size_t i = 0; i < db->n_prepared; i++)
        if (db->prepared[i] == st)
            return 1;
    if (db->n_prepared == DB_MAX_PREPARED)
        return 0; /* run it unprepared */
    res = PQprepare(db->conn, st->name, st->sql, st->nparams, NULL);
    r = map_result(db, res);
    PQclear(res);
    if (r < 0)
        return r;
    db->prepared[db->n_prepared++] = st;
    return 1;
}

int db_query(struct db *db, const struct db_stmt *st, const char *const *params, PGresult **ret)
{
    PGresult *res;
    int r;

    r = ensure_connected(db);
    if (r < 0)
        return r;
    r = prepare(db, st);
    if (r < 0)
        return r;
    if (r == 1)
        res = PQexecPrepared(db->conn, st->name, st->nparams, params, NULL, NULL, 0);
    else
        res = PQexecParams(db->conn, st->sql, st->nparams, NULL, params, NULL, NULL, 0);
    r = map_result(db, res);
    if (r < 0 || !ret) {
        PQclear(res);
        return r;
    }
    *ret = res;
    return 0;
}

int db_begin(struct db *db)
{
    int r;

    db->err[0] = '\0';
    r = db_exec(db, "BEGIN");
    db->in_tx = r == 0;
    return r;
}

int db_commit(struct db *db)
{
    PGresult *res;
    int r;

    db->in_tx = false;
    res = PQexec(db->conn, "COMMIT");
    r = map_result(db, res);
    /* COMMIT of a transaction that hit an error answers ROLLBACK; the error
     * that caused it, if any, is kept for the log. */
    if (r == 0 && strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
        if (!db->err[0])
            db_set_error(db, "the transaction had failed and was rolled back");
        r = -EIO;
    }
    PQclear(res);
    return r;
}

int db_rollback(struct db *db)
{
    db->in_tx = false;
    if (PQstatus(db->conn) != CONNECTION_OK)
        return 0; /* the server rolled it back when the connection dropped */
    if (PQtransactionStatus(db->conn) == PQTRANS_IDLE)
        return 0;
    return db_exec(db, "ROLLBACK");
}

int db_sha256_hex(const char *s, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (!EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL) || len != 32)
        return -EIO;
    for (unsigned i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int db_savepoint(struct db *db, const char *name)
{
    char sql[80];

    snprintf(sql, sizeof(sql), "SAVEPOINT %s", name);
    return db_exec(db, sql);
}

int db_rollback_to(struct db *db, const char *name)
{
    char sql[96];

    snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT %s", name);
    return db_exec(db, sql);
}

const char *db_first_str(struct db *db, struct arena *a, const struct db_stmt *st,
                         const char *const *params)
{
    const char *s = NULL;
    PGresult *res;

    if (db_query(db, st, params, &res) < 0)
        return NULL;
    if (PQntuples(res) > 0 && PQnfields(res) > 0)
        s = db_str(a, res, 0, 0);
    PQclear(res);
    return s;
}

const char *db_str(struct arena *a, const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    return arena_strdup(a, PQgetvalue(res, row, col));
}

int64_t db_i64(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

int db_int(const PGresult *res, int row, int col)
{
    return (int)db_i64(res, row, col);
}
