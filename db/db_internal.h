/* Shared by the files of db/: statements, results, parameters. */
#ifndef RIVET_DB_INTERNAL_H
#define RIVET_DB_INTERNAL_H

#include "db.h"

#include <inttypes.h>
#include <libpq-fe.h>

/* A statement prepared once per connection, on first use. Declare each as a
 * static const object next to the function that runs it; name is unique. */
struct db_stmt {
    const char *name;
    const char *sql;
    int nparams;
};

/* Runs st with params (NULL entries are SQL NULL). On success *ret (when not
 * NULL) holds the result: PQclear() it. Errors are mapped as in db.h. */
int db_query(struct db *db, const struct db_stmt *st, const char *const *params, PGresult **ret);

/* Runs parameterless SQL of Rivet's own (migrations, BEGIN/COMMIT). */
int db_exec(struct db *db, const char *sql);

/* Runs st and returns the first column of its first row as an arena
 * string; NULL when there is no row or on any error (for best-effort
 * lookups such as "did you mean"). */
const char *db_first_str(struct db *db, struct arena *a, const struct db_stmt *st,
                         const char *const *params);

/* Column value as an arena string, or NULL for SQL NULL. */
const char *db_str(struct arena *a, const PGresult *res, int row, int col);
int64_t db_i64(const PGresult *res, int row, int col);
int db_int(const PGresult *res, int row, int col);

/* Formats an id as a parameter. */
struct db_num {
    char s[24];
};
static inline const char *db_num(struct db_num *b, int64_t v)
{
    snprintf(b->s, sizeof(b->s), "%" PRId64, v);
    return b->s;
}

/* The SHA-256 of s as 64 hex digits and a NUL. Returns 0 or -EIO. */
int db_sha256_hex(const char *s, char out[65]);

/* The chats a user can be reached in, for statements FROM users u: the
 * Telegram private chat (its id is the user's) and the WhatsApp number,
 * each only when the chats table has it active: the outbox delivers to no
 * other. Selects u.id, c.channel, c.chat_id. */
#define USER_CHATS                                                                                 \
    "CROSS JOIN LATERAL (VALUES ('telegram', u.telegram_user_id::text), "                          \
    "  ('whatsapp', u.whatsapp_id)) AS ch(channel, chat_id) "                                      \
    "JOIN chats c ON c.channel = ch.channel AND c.chat_id = ch.chat_id AND c.active "

struct alarm_recipient;

/* Runs st, whose rows are (user id, channel, chat id), into *ret (arena
 * memory, *n rows; at least one element is allocated). Returns 0 or a
 * db.h error. */
int db_recipients_query(struct db *db, struct arena *a, const struct db_stmt *st,
                        const char *const *params, struct alarm_recipient **ret, int *n);

/* Sets db_errmsg() to a message of Rivet's own. */
void db_set_error(struct db *db, const char *msg);

#endif
