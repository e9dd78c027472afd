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
#include <stdint.h>

#include "db.h"

/* The largest message Rivet reads, and the largest reply it writes (the
 * smaller of Telegram's 4096 characters and WhatsApp's 4096). Counted in
 * bytes, which is never fewer than Telegram's UTF-16 units. */
#define MSG_MAX_BYTES 4096
#define REPLY_MAX_BYTES 4096

struct arena;
struct photo_result;

/* A photo that came with a message. The handler decides whether it is
 * worth reading (a known user; a photo the factory has not had read
 * before) and calls back into the channel, which did the I/O:
 *   fetch  gets the image and its SHA-256 (hex) into sha256;
 *   read   reads the fetched image (photo_read() in bot/photo.h).
 * Each returns 0, or -errno with *why a sentence for the user. */
struct msg_photo {
    int (*fetch)(void *ctx, char sha256[65], const char **why);
    int (*read)(void *ctx, struct photo_result *out, const char **why);
    void *ctx;
    const char *file_id; /* the channel's id of the file; NULL on the console */
};

/* What the troubleshooting assistant answered. */
struct ask_answer {
    const char *text;             /* arena; NULL when it did not answer */
    bool truncated;               /* cut at the length limit */
    const char *provider, *model; /* "" when none answered */
    long ms;
    int prompt_tokens, completion_tokens;
    double cost_usd; /* estimated; 0 when the prices are not set */
};

/* The troubleshooting assistant (an LLM), offered by the channel, which
 * does the I/O; NULL in struct msg when no LLM is configured. ask puts a
 * question with a system prompt to it: 0 and out filled; or -errno
 * (-ETIMEDOUT, -EAGAIN when every provider is failing, -EIO, ...) with
 * out's usage filled as far as known. The handler keeps to the limits. */
struct msg_ask {
    int (*ask)(void *ctx, struct arena *a, const char *system, const char *question,
               struct ask_answer *out);
    void *ctx;
    int max_chars;                       /* of an answer (ASSIST_MAX_CHARS) */
    int user_per_hour, factory_per_hour; /* questions (ASSIST_*_PER_HOUR) */
    double budget_usd;                   /* a factory's month (ASSIST_MONTHLY_BUDGET_USD) */
};

struct msg {
    enum channel channel;
    const char *sender_id;   /* the channel's id of the sender (console: the name) */
    const char *sender_name; /* the name the channel shows, for new users */
    const char *text;        /* as received; need not be valid UTF-8 */
    size_t text_len;
    const struct msg_photo *photo; /* with a photo: text is its caption */
    /* The message is a reply to one of Rivet's: what that one showed (its
     * reply's context, looked up by the channel), or NULL. */
    const char *context;
    /* The troubleshooting assistant, NULL when no LLM is configured. */
    const struct msg_ask *ask;
};

/* A button under a reply. data is a command as a user would type it
 * ("/wo view WO-2026-000001"): a press runs it as the person who pressed,
 * with their rights, so a forged or stale button can do no more than
 * typing could. data starting with REPLY_EDIT_MARK asks that the answer
 * replace the message the button is on (the pages of a list). */
#define REPLY_EDIT_MARK '~'
#define BUTTON_DATA_MAX 64

struct button {
    const char *text, *data;
    int row; /* buttons with the same row sit side by side */
};

struct reply {
    const char *text;
    const struct button *buttons;
    int n_buttons;
    /* A message for another chat than the conversation's (the other copies
     * of an alarm someone acknowledged): chat_id on channel; NULL: this
     * conversation. edit_outbox: replace the message that this outbox row
     * delivered there, rather than send a new one. */
    enum channel channel;
    const char *chat_id;
    int64_t edit_outbox;
    /* An alarm, its escalation or a storm summary: a channel that may only
     * send approved templates to some users (WhatsApp outside its 24-hour
     * window) sends these as its alarm template. */
    bool alarm;
    /* What the message shows ("wo:12:WO-2026-000012": kind, factory,
     * value; reply_context()), recorded with it: a reply to it is read in
     * this context (msg.context). NULL: nothing in particular. */
    const char *context;
    struct reply *next;
};

struct replies {
    struct reply *head, **tail;
    int n;
    const char *command; /* what was run ("/equip", "text", "refused"), for logs */
};

void replies_init(struct replies *out);

/* Handles one message: checks it, finds the sender, runs the command and
 * appends the replies (owned by the arena) to out. Run it inside a
 * transaction: commit on 0, roll back on error.
 * Returns 0; or a db.h error after a short apology was appended, for the
 * caller to log (db_errmsg()) and roll back; or -ENOMEM. */
int handle_message(struct db *db, struct arena *a, const struct msg *m, struct replies *out);

/* ---- alarms, for the alert thread (handlers/alerts.c) ---- */
struct alarm;

/* The chat message of an alarm as it stands now: severity, machine, what
 * crossed which threshold, when; acknowledged or resolved by whom; with
 * the buttons that still make sense (Acknowledge, Work order, Mute 1h,
 * Resolve). escalation: worded for a supervisor ("not acknowledged for N
 * min"). Fills *out (arena). Returns 0 or a db.h error. */
int alarm_reply(struct db *db, struct arena *a, int64_t factory_id, int64_t alarm_id,
                bool escalation, struct reply *out);
/* One message for a storm: how many alarms by severity and the first few
 * (alarms as db_alarm_held_take() gives them), with a button to /alerts. */
int alarm_storm_reply(struct arena *a, const struct alarm *alarms, int n, struct reply *out);

#endif
