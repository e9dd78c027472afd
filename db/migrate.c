#include "migrate.h"

#include "db_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* pg_advisory_lock key: "RIVT" */
#define MIGRATE_LOCK "1380538964"

static int apply_one(struct db *db, const struct migration *m, const char *sum)
{
    static const struct db_stmt record = {
        "migrate_record",
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", 3};
    char ver[16];
    int r;

    snprintf(ver, sizeof(ver), "%d", m->version);
    r = db_begin(db);
    if (r < 0)
        return r;
    r = db_exec(db, "SET LOCAL statement_timeout = 0");
    if (r < 0)
        goto fail;
    r = db_exec(db, m->sql);
    if (r < 0)
        goto fail;
    r = db_query(db, &record, (const char *[]){ver, m->name, sum}, NULL);
    if (r < 0)
        goto fail;
    return db_commit(db);
fail:
    db_rollback(db);
    return r;
}

int migrate_run(struct db *db, const struct migration *list, unsigned n,
                struct migrate_report *report)
{
    static const struct db_stmt applied = {
        "migrate_applied", "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
        0};
    PGresult *res = NULL;
    int r, rows;

    memset(report, 0, sizeof(*report));
    /* Waiting for another migrating process, or a long index build, must
     * not hit RIVET_STATEMENT_TIMEOUT_MS. The session lock outlives the
     * transaction that takes it. */
    r = db_exec(db, "BEGIN; SET LOCAL statement_timeout = 0; "
                    "SELECT pg_advisory_lock(" MIGRATE_LOCK "); COMMIT");
    if (r < 0)
        return r;
    r = db_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY,"
                    " name text NOT NULL,"
                    " checksum text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())");
    if (r < 0)
        goto out;
    r = db_query(db, &applied, NULL, &res);
    if (r < 0)
        goto out;
    rows = PQntuples(res);

    for (unsigned i = 0; i < n; i++) {
        const struct migration *m = &list[i];
        const char *have = NULL;
        char sum[65];

        r = db_sha256_hex(m->sql, sum);
        if (r < 0)
            goto out;
        for (int k = 0; k < rows; k++)
            if (db_int(res, k, 0) == m->version)
                have = PQgetvalue(res, k, 2);
        if (have) {
            if (strcmp(have, sum) != 0) {
                snprintf(report->failed, sizeof(report->failed), "%s", m->name);
                r = -EBADMSG;
                goto out;
            }
            report->current = m->version;
            continue;
        }
        r = apply_one(db, m, sum);
        if (r < 0) {
            snprintf(report->failed, sizeof(report->failed), "%s", m->name);
            goto out;
        }
        report->applied++;
        report->current = m->version;
    }
    for (int k = 0; k < rows; k++)
        if (db_int(res, k, 0) > report->current)
            report->unknown_version = db_int(res, k, 0);
    r = 0;
out:
    PQclear(res);
    /* The lock goes with the session too, should the unlock fail. */
    db_exec(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")");
    return r;
}
