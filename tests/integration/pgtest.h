/* pgtest: what the integration tests share. Each test binary makes its own
 * throwaway databases on the cluster named by RIVET_TEST_PG_URL (a URI of
 * the cluster's "postgres" database, as a superuser), so binaries can run
 * in parallel; every database made here is dropped at exit.
 *
 * The functions assert with cmocka: call them from the test thread (or a
 * group setup), never from worker threads. Worker threads use db.h
 * directly and report what they saw back to the test thread. */
#ifndef RIVET_PGTEST_H
#define RIVET_PGTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "db.h"

struct arena;
struct msg;
struct replies;

/* ---- the cluster and throwaway databases ---- */

/* Reads RIVET_TEST_PG_URL. Returns true when it is set. Otherwise prints
 * the TAP plan "1..0 # SKIP RIVET_TEST_PG_URL not set" and returns false
 * with the status main() should exit with: 0 under TAP
 * (CMOCKA_MESSAGE_OUTPUT=TAP, where meson counts a "1..0 # SKIP" plan as
 * skipped but exit status 77 as an error), 77 otherwise (the GNU skip). */
bool pgtest_init(int *exit_status);

struct pgtest_db {
    char name[64];  /* rivet_it_<pid>_<n> */
    char *conninfo; /* libpq conninfo of it (owned) */
};

/* Creates an empty database; asserts on failure. Drop it with
 * pgtest_db_drop() (which pgtest_init's exit handler also does). */
void pgtest_db_create(struct pgtest_db *d);
/* Drops the database (closing whatever is still connected to it) and frees
 * its conninfo; accepts a database never created. */
void pgtest_db_drop(struct pgtest_db *d);

/* A Rivet connection to d; asserts. Close it with db_close(). */
struct db *pgtest_connect(const struct pgtest_db *d);
/* A raw libpq connection to d for checks; asserts. Close it with PQfinish(). */
PGconn *pgtest_pq(const struct pgtest_db *d);
/* Applies the built-in migrations; asserts that they all applied. */
void pgtest_migrate(struct db *db);

/* ---- checks in SQL (raw libpq, parameters NULL-terminated) ---- */

/* Runs sql, asserting success; PQclear() the result. */
PGresult *pgtest_q(PGconn *c, const char *sql, ...) __attribute__((sentinel));
/* The first column of the first row as a number; asserts there is a row. */
long long pgtest_qint(PGconn *c, const char *sql, ...) __attribute__((sentinel));
/* The first column of the first row (malloc'd; free() it), or NULL for SQL
 * NULL or no row. */
char *pgtest_qstr(PGconn *c, const char *sql, ...) __attribute__((sentinel));

/* ---- fixtures ---- */

int64_t pgtest_factory(struct db *db, struct arena *a, const char *name);
/* A member with console identity console_name. */
int64_t pgtest_user(struct db *db, struct arena *a, int64_t factory_id, const char *console_name,
                    const char *display_name, const char *role);
/* Adds a machine; *number (when not NULL) gets its EQ number (arena). */
int64_t pgtest_equipment(struct db *db, struct arena *a, int64_t factory_id, int64_t user_id,
                         const char *manufacturer, const char *model, const char *name,
                         const char *serial, const char *location, const char **number);

/* ---- the conversation ---- */

/* Sends text (len bytes, need not be a C string) as console user sender,
 * the way `rivet chat` does: in one transaction, committed when
 * handle_message() returns 0 and rolled back otherwise; asserts that
 * handle_message() and the commit returned 0. Returns the replies joined
 * with "\n\n"; valid until the next call. */
/* Runs m through handle_message() in one transaction, as a channel does:
 * committed when it returns 0, rolled back otherwise. Its result, or the
 * commit's. */
int pgtest_handle(struct db *db, struct arena *a, const struct msg *m, struct replies *out);
const char *pgtest_say_n(struct db *db, const char *sender, const char *text, size_t len);
const char *pgtest_say(struct db *db, const char *sender, const char *text);
/* Asserts that haystack contains needle, printing both when not. */
void pgtest_assert_contains(const char *haystack, const char *needle);
void pgtest_assert_not_contains(const char *haystack, const char *needle);
void pgtest_assert_starts_with(const char *s, const char *prefix);

/* ---- "nothing changed": snapshots of every table ---- */

enum pgtest_table {
    PT_FACTORIES,
    PT_USERS,
    PT_INVITES,
    PT_NUMBER_SEQUENCES,
    PT_EQUIPMENT,
    PT_WORK_ORDERS,
    PT_WORK_ORDER_EVENTS,
    PT_SCHEMA_MIGRATIONS,
    PT_N
};

struct pgtest_rows {
    int n;
    char **key, **full, **body; /* per row: key, md5 of the row, md5 without updated_at */
};

struct pgtest_snap {
    char schema[33]; /* md5 of tables, columns, indexes, constraints, triggers, functions */
    struct pgtest_rows t[PT_N];
};

/* What changed between two snapshots, per table: rows added, removed,
 * changed (other than updated_at), and touched (only updated_at moved). */
struct pgtest_delta {
    int added[PT_N], removed[PT_N], changed[PT_N], touched[PT_N];
    bool schema;
};

void pgtest_snap_take(PGconn *c, struct pgtest_snap *s);
void pgtest_snap_free(struct pgtest_snap *s);
/* Asserts that the database differs from before by exactly want; prints
 * the difference (and what) when not. */
void pgtest_assert_delta(PGconn *c, const struct pgtest_snap *before,
                         const struct pgtest_delta *want, const char *what);
/* Asserts that nothing changed at all. */
void pgtest_assert_unchanged(PGconn *c, const struct pgtest_snap *before, const char *what);

#endif
