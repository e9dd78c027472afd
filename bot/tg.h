/* Telegram Bot API: the HTTP client (tg_api.c), the update parser
 * (tg_update.c) and message formatting (tg_format.c). The channel's threads
 * live in telegram.c. The bot token is part of every URL path, so no URL
 * is ever logged or put in an error message. */
#ifndef RIVET_TG_H
#define RIVET_TG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct buf;
struct db;
struct reply;

/* ---- the client ---- */

/* The largest answer Rivet reads from the Bot API (a full getUpdates page
 * is far below it). */
#define TG_MAX_RESPONSE (16u << 20)

struct tg_api;

/* A client for {api_url}/bot{token}/{method}. stop, when not NULL, is
 * checked during transfers: a call in progress ends with -ECANCELED once
 * *stop is set. One per thread. Returns 0 and *ret, or -ENOMEM. */
int tg_api_new(const char *api_url, const char *token, volatile int *stop, struct tg_api **ret);
void tg_api_free(struct tg_api *api);
/* From another thread: cuts the connection of the call in progress, which
 * then ends with -ECANCELED if the client's stop flag is set. */
void tg_api_interrupt(struct tg_api *api);

struct tg_reply {
    long http_status;
    bool ok;
    int error_code;        /* when !ok */
    char description[256]; /* when !ok: Telegram's text */
    int retry_after;       /* parameters.retry_after, 0 when absent */
    json_t *result;        /* when ok: owned, freed by tg_reply_clear() */
    const char *body;      /* the raw answer, valid until the next call */
    size_t body_len;
};

void tg_reply_clear(struct tg_reply *rep);

/* POSTs params (borrowed; NULL for none) as JSON to method, waiting at most
 * timeout_s. Returns 0 when the Bot API answered (see rep->ok), or
 * -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET (connection lost), -E2BIG (answer
 * over TG_MAX_RESPONSE), -EBADMSG (answer is not the Bot API's JSON, e.g.
 * an HTML page from a proxy; rep->body has it), -ECANCELED, -EIO. */
int tg_api_call(struct tg_api *api, const char *method, json_t *params, long timeout_s,
                struct tg_reply *rep);

/* Downloads a file the bot received: getFile, then GET of its file_path,
 * into out (reset first; at most max bytes). Returns 0; or -EFBIG (over max
 * or Telegram's 20 MB), -EAGAIN (Telegram busy: 429 or 5xx), -EIO, -EBADMSG,
 * -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -ECANCELED, with *why a sentence
 * for the user. */
int tg_api_get_file(struct tg_api *api, const char *file_id, long timeout_s, size_t max,
                    struct buf *out, const char **why);

/* ---- updates ---- */

enum tg_kind {
    TG_MESSAGE,      /* a message (text or not) in a chat */
    TG_EDITED,       /* an edited message: deliberately not acted on */
    TG_CALLBACK,     /* a button press */
    TG_MEMBER,       /* my_chat_member: the bot was blocked, unblocked, added, removed */
    TG_CHANNEL_POST, /* posts in channels: ignored */
    TG_OTHER,        /* anything else Telegram may add */
};

struct tg_update {
    int64_t update_id;
    enum tg_kind kind;
    int64_t chat_id;       /* 0 when the update has no chat */
    const char *chat_type; /* "private", "group", "supergroup", "channel" */
    int64_t from_id;
    bool from_bot;
    const char *from_name; /* first and last name */
    int64_t message_id;    /* the message, or the one whose button was pressed */
    int64_t reply_to;      /* the message this one replies to (reply_to_message), or 0 */
    const char *text;      /* text, or a caption; NULL when none */
    size_t text_len;
    const char *media; /* "photo", "document", "sticker", "voice", ... or NULL */
    /* A photo (its largest size under TG_MAX_FILE) or a document: */
    const char *file_id;
    int64_t file_size;     /* 0 when Telegram did not say */
    bool file_too_big;     /* every size is over TG_MAX_FILE: file_id is NULL */
    const char *mime_type; /* of a document, or NULL */
    const char *callback_id, *callback_data;
    const char *member_status; /* my_chat_member: the bot's new status */
};

/* Reads one Update object. Strings are owned by the arena. Returns 0, or
 * -EBADMSG when a field Rivet needs is missing or of the wrong type. */
int tg_update_parse(struct arena *a, const json_t *u, struct tg_update *out);

/* The Bot API downloads files up to 20 MB. */
#define TG_MAX_FILE (20u << 20)

/* update_ids are far below this; a larger one is refused as malformed, so
 * that the offset past it stays a sane number. */
#define TG_MAX_UPDATE_ID (1LL << 53)

/* The update_id of an Update object, or -EBADMSG. */
int tg_update_id(const json_t *u, int64_t *ret);

/* The chat an Update belongs to, as text ("" when none): the inbox keeps
 * each chat in order by it. Written to buf (size >= 24). */
void tg_update_chat(const json_t *u, char *buf, size_t n);

/* ---- formatting ---- */

/* text with <, > and & escaped for parse_mode HTML (arena), or NULL. */
char *tg_html_escape(struct arena *a, const char *text);

/* Splits text into pieces of at most max UTF-16 code units (Telegram's
 * measure), on line boundaries where a line fits, else on character
 * boundaries. *parts (arena) gets the pieces. Returns their count, or
 * -ENOMEM. */
int tg_split(struct arena *a, const char *text, size_t max, const char ***parts);

/* The inline_keyboard of a reply's buttons as a reply_markup object (new
 * reference), or NULL when it has none. Buttons whose data is over 64
 * bytes are left out. */
json_t *tg_keyboard(const struct reply *rep);

/* Queues one reply for a chat in the caller's transaction: split to
 * Telegram's length, escaped for HTML, with its buttons under the last
 * piece. The plain text rides along for the sender's fallback when Telegram
 * cannot parse the HTML. The first piece replaces a message instead of
 * being sent when edit_id (a message id: the page of a list) or
 * rep->edit_outbox (an outbox row: the sender finds the message it
 * delivered) is set. *outbox_id (may be NULL) gets the row of the last
 * piece, the one with the buttons. */
int tg_queue_reply(struct db *db, struct arena *a, const char *chat, const struct reply *rep,
                   int64_t edit_id, int64_t inbox_id, int64_t *outbox_id);

#endif
