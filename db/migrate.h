/* Forward-only schema migrations, compiled in from sql/NNNN_name.sql. */
#ifndef RIVET_MIGRATE_H
#define RIVET_MIGRATE_H

#include <stddef.h>

struct db;

struct migration {
    int version;
    const char *name; /* "0001_init.sql" */
    const char *sql;
};

/* The built-in list, in version order (generated from sql/). */
extern const struct migration migrations[];
extern const unsigned n_migrations;

struct migrate_report {
    int applied;         /* files applied by this run */
    int current;         /* highest version of the list applied in the database afterwards */
    int unknown_version; /* > 0: the database has a newer migration than this binary */
    char failed[64];     /* the file that failed or whose checksum changed */
};

/* Applies the missing migrations of list[0..n), each in its own transaction,
 * recorded in schema_migrations with its SHA-256. The whole run holds a
 * PostgreSQL advisory lock, so concurrent runs wait for each other and the
 * later finds nothing to do. Returns 0, -EBADMSG when an applied migration's
 * checksum changed (report->failed names it), or a db.h error (report->failed
 * names the file that failed, db_errmsg() says why). */
int migrate_run(struct db *db, const struct migration *list, unsigned n,
                struct migrate_report *report);

#endif
