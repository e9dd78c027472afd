/* The conversation, channel-neutral. A channel turns what arrived into a
 * struct msg, calls handle_message() inside a database transaction, and
 * delivers the replies; handlers do no network I/O of their own.
 *
 * Reply text is plain UTF-8 as users typed it: nothing in it is markup.
 * Each channel escapes it for its own format (Telegram HTML, WhatsApp). */
#ifndef RIVET_HANDLERS_H
#define RIVET_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"

/* The largest message Rivet reads, and the largest reply it writes (the
 * smaller of Telegram's 4096 characters and WhatsApp's 4096). Counted in
 * bytes, which is never fewer than Telegram's UTF-16 units. */
#define MSG_MAX_BYTES 4096
#define REPLY_MAX_BYTES 4096

struct arena;

struct msg {
    enum channel channel;
    const char *sender_id;   /* the channel's id of the sender (console: the name) */
    const char *sender_name; /* the name the channel shows, for new users */
    const char *text;        /* as received; need not be valid UTF-8 */
    size_t text_len;
};

struct reply {
    const char *text;
    struct reply *next;
};

struct replies {
    struct reply *head, **tail;
    int n;
};

void replies_init(struct replies *out);

/* Handles one message: checks it, finds the sender, runs the command and
 * appends the replies (owned by the arena) to out. Run it inside a
 * transaction: commit on 0, roll back on error.
 * Returns 0; or a db.h error after a short apology was appended, for the
 * caller to log (db_errmsg()) and roll back; or -ENOMEM. */
int handle_message(struct db *db, struct arena *a, const struct msg *m, struct replies *out);

#endif
