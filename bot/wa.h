/* WhatsApp Cloud API: the Graph client (wa_api.c), the webhook parser and
 * signature check (wa_webhook.c) and message formatting (wa_format.c).
 * The channel's threads live in whatsapp.c. The access token travels only
 * in the Authorization header and the app secret only into HMAC: neither is
 * ever logged or put in an error message. */
#ifndef RIVET_WA_H
#define RIVET_WA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct buf;
struct db;
struct reply;

/* ---- the client ---- */

/* The largest answer Rivet reads from the Graph API, and the largest
 * media file it downloads (WhatsApp's own caps: images 5 MB, documents
 * 100 MB; a nameplate photo is far below). */
#define WA_MAX_RESPONSE (1u << 20)
#define WA_MAX_MEDIA (20u << 20)

struct wa_api;

/* A client for {api_url}/{phone_number_id}/messages and {api_url}/{media-id}
 * with "Authorization: Bearer {token}". stop, when not NULL, is checked
 * during transfers (-ECANCELED). One per thread. 0 and *ret, or -ENOMEM, or
 * -EINVAL (api_url not http(s); phone_number_id not plain: letters, digits,
 * '_', '-', at most 128 bytes; token empty or not visible ASCII). */
int wa_api_new(const char *api_url, const char *phone_number_id, const char *token,
               volatile int *stop, struct wa_api **ret);
void wa_api_free(struct wa_api *api);

struct wa_reply {
    long http_status;
    bool ok;                 /* 2xx with a JSON object */
    int error_code;          /* error.code when !ok (131047, 130429, 131056, 100, 190...) */
    int error_subcode;       /* error.error_subcode, 0 when absent */
    char error_message[256]; /* error.message (and error_data.details), for logs */
    char message_id[160];    /* messages[0].id of a send ("wamid...."), "" when none */
};

/* POSTs body (borrowed) as JSON to {phone_number_id}/messages, waiting at
 * most timeout_s. Returns 0 when the Graph API answered (see rep->ok), or
 * -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -E2BIG, -EBADMSG (not Graph's
 * JSON), -ECANCELED, -EIO. */
int wa_api_send(struct wa_api *api, json_t *body, long timeout_s, struct wa_reply *rep);

/* GET {phone_number_id} (fields id): a token check at start. Same returns. */
int wa_api_hello(struct wa_api *api, long timeout_s, struct wa_reply *rep);

/* Downloads a media file: GET {media_id} for its url (valid 5 minutes),
 * then GET that url with the same token, into out (reset first; at most
 * max bytes). *mime (arena-free: static or NULL) is not set. Returns 0;
 * or -EFBIG (over max, from file_size or while reading), -ENOENT (unknown
 * media id, a media id that is not plain (no request then), or a download
 * url that answers 404/410), -EAGAIN (429 or 5xx), -EACCES (token refused), -EIO,
 * -EBADMSG, -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -ECANCELED, with *why
 * a sentence for the user. */
int wa_api_get_media(struct wa_api *api, const char *media_id, long timeout_s, size_t max,
                     struct buf *out, const char **why);

/* ---- the webhook ---- */

/* X-Hub-Signature-256 is "sha256=" and the lower- or upper-case hex
 * HMAC-SHA256 of the raw body keyed with the app secret. Compared in
 * constant time (CRYPTO_memcmp). false for a missing or malformed header. */
bool wa_signature_ok(const char *app_secret, const char *body, size_t len, const char *header);

/* One user message from value.messages[]. */
struct wa_message {
    const char *id;              /* "wamid...." */
    const char *from;            /* the sender's wa_id (digits) */
    const char *name;            /* contacts[].profile.name of from, or NULL */
    const char *phone_number_id; /* value.metadata: which business number */
    int64_t timestamp;           /* seconds */
    const char *type;            /* "text", "image", "interactive", "button", "document",
                                    "sticker", "audio", "location", "unsupported", ... */
    const char *text;            /* text.body; a press's command (button_reply.id,
                                    list_reply.id, button.payload); an image's caption;
                                    NULL when none */
    bool pressed;                /* text came from a button or a list row */
    const char *media_id;        /* image or document */
    const char *mime_type;       /* of media_id */
    const char *context_id;      /* the message this one replies to, or NULL */
    const char *raw;             /* what the inbox stores: a compact JSON object that
                                    wa_message_parse() reads back */
};

/* One delivery report from value.statuses[]. */
struct wa_status {
    const char *id;        /* the wamid Rivet's send got */
    const char *status;    /* "sent", "delivered", "read", "failed" (others kept as is) */
    const char *recipient; /* wa_id */
    int64_t timestamp;
    int error_code;    /* errors[0].code of a failure, else 0 */
    const char *error; /* errors[0].title (and message), or NULL */
};

struct wa_webhook {
    struct wa_message *messages;
    int n_messages;
    struct wa_status *statuses;
    int n_statuses;
    int n_errors;      /* value.errors[] entries */
    int error_code;    /* the first one's code */
    const char *error; /* the first one's title, or NULL */
    int skipped;       /* entries and changes Rivet does not read (other fields,
                          malformed messages), counted for logs */
};

/* Parses a webhook body: {"object":"whatsapp_business_account","entry":[{"changes":
 * [{"field":"messages","value":{...}}]}]}. Strings are owned by the arena.
 * A malformed message or status is skipped (counted), the rest kept.
 * Returns 0, or -EBADMSG when the body is not JSON of that shape, or
 * -ENOMEM. */
int wa_webhook_parse(struct arena *a, const char *body, size_t len, struct wa_webhook *out);

/* Reads a wa_message back from its raw form (the inbox payload).
 * Returns 0, -EBADMSG or -ENOMEM. */
int wa_message_parse(struct arena *a, const char *raw, struct wa_message *out);

/* ---- formatting ---- */

/* WhatsApp's limits. */
#define WA_TEXT_MAX 4096       /* characters of a text message */
#define WA_BODY_MAX 1024       /* characters of an interactive message's body */
#define WA_BUTTONS_MAX 3       /* reply buttons */
#define WA_BUTTON_TITLE_MAX 20 /* characters */
#define WA_LIST_ROWS_MAX 10
#define WA_ROW_TITLE_MAX 24

/* Splits text into pieces of at most max characters (code points), on line
 * boundaries where a line fits, else between characters; pieces of only
 * blanks are left out (empty text gives none). *parts (arena). Returns the
 * count or -ENOMEM. */
int wa_split(struct arena *a, const char *text, size_t max, const char ***parts);

/* The Graph API bodies of one reply to wa_id `to`, in order: the text in
 * WhatsApp's style (plain, the first line bold when the reply has several),
 * split under WA_TEXT_MAX; the buttons on the last piece as up to 3 reply
 * buttons, or as a list message (up to 10 rows) when there are more, or
 * when a title would not fit; a body over WA_BODY_MAX goes as text first
 * and the buttons follow under a short body. REPLY_EDIT_MARK is dropped
 * from button data (WhatsApp cannot replace a message: a page or an
 * updated alarm comes as a new message). Past 10 buttons, the rest are
 * written under the text as commands to type. An alarm (rep->alarm, not
 * an edit) also carries "rivet_alarm": {"text": its first line,
 * "payloads": [the first two buttons' data, "/alerts" for a missing one]}
 * on the body with the buttons (else the last) for the sender's template
 * fallback. *bodies gets a new reference (array of objects, empty when
 * there is nothing to send). Returns the count, or -ENOMEM. */
int wa_reply_bodies(struct arena *a, const char *to, const struct reply *rep, json_t **bodies);

/* The template message standing in for an alarm outside the 24-hour
 * window: template name and language, its first line as body parameter
 * {{1}} (newlines and tabs turned into spaces, at most 1024 characters),
 * and the payloads as quick-reply buttons 0 and 1. New reference, or NULL
 * when rivet_alarm is malformed. */
json_t *wa_template_body(const char *to, const char *name, const char *language,
                         const json_t *rivet_alarm);

/* Queues a reply's bodies in the caller's transaction (outbox method
 * "messages"). *outbox_id (may be NULL) gets the last row. */
int wa_queue_reply(struct db *db, struct arena *a, const char *to, const struct reply *rep,
                   int64_t inbox_id, int64_t *outbox_id);

#endif
