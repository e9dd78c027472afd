/* Shared by the handler files: the context of one message and the reply
 * helpers. */
#ifndef RIVET_HANDLERS_INTERNAL_H
#define RIVET_HANDLERS_INTERNAL_H

#include "handlers.h"

#include "args.h"
#include "buf.h"

struct hctx {
    struct db *db;
    struct arena *a;
    const struct msg *msg;
    struct replies *out;
    struct user user; /* the sender; valid when known */
    bool known;
    int error; /* the first database error, returned by handle_message() */
};

/* Field limits, in characters, shared with the schema's CHECKs. */
#define FIELD_MAX_CHARS 200
#define NOTE_MAX_CHARS 2000
#define LIST_PAGE 10

/* ---- replies ---- */

/* Builds one reply of at most REPLY_MAX_BYTES; what does not fit is cut at a
 * line and ends with "…". */
#define RB_MAX_BUTTONS 16

struct rb {
    struct buf b;
    bool full;
    struct button buttons[RB_MAX_BUTTONS];
    int n_buttons, row;
    const char *context; /* struct reply's: what the message shows, or NULL */
};

void rb_init(struct rb *rb);
void rb_addf(struct rb *rb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds a button on the current row (text and data are copied). Data over
 * BUTTON_DATA_MAX bytes, or past RB_MAX_BUTTONS, is left out. */
void rb_button(struct hctx *ctx, struct rb *rb, const char *text, const char *data);
/* Starts a new row of buttons. */
void rb_row(struct rb *rb);

/* What a message shows, for struct reply's context:
 * "KIND:FACTORY:VALUE" ("wo:12:WO-2026-000001") (arena). The factory is
 * checked when a reply to the message comes back. */
const char *reply_context(struct arena *a, int64_t factory_id, const char *kind, const char *value);

/* Appends the reply to ctx's list and frees the builder. */
void rb_send(struct hctx *ctx, struct rb *rb);

/* Starts the reply of one page of a list: "TITLE (TOTAL) · page P of N".
 * *pages gets the number of pages. When the page is past the end (n == 0),
 * replies so and returns false. */
bool rb_page(struct hctx *ctx, struct rb *rb, const char *title, int total, int n, long long page,
             int *pages);

/* args_options() for a handler: replies when an option is given twice
 * (returns false), or records -ENOMEM as reply_db_error() does. */
bool options_ok(struct hctx *ctx, struct args *args, int from, const char *const *keys,
                const bool *absorbs, int nkeys, const char **vals);

/* A row of ◀ / ▶ buttons under page `page` of `pages` of the list that
 * `cmd PAGE` shows; pressing one replaces the message with that page. */
void rb_pager(struct hctx *ctx, struct rb *rb, const char *cmd, long long page, int pages);

/* "Usage: ..." with the usage line that starts with prefix ("/wo new"). */
void reply_usage(struct hctx *ctx, const char *prefix);

/* A one-line reply. */
void reply(struct hctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records a database error r, replies with a short apology, returns r.
 * -ENOMEM is passed on the same way. */
int reply_db_error(struct hctx *ctx, int r);

/* ---- words ---- */

const char *status_emoji(const char *status);
const char *status_label(const char *status); /* "in progress" */
const char *priority_emoji(const char *priority);
/* Maps what a user typed to a status ("done" -> "completed"), or NULL. */
const char *status_parse(const char *s);
/* "low" "medium" "high" "critical" (and "med", "crit", "urgent"), or NULL. */
const char *priority_parse(const char *s);

/* True when s looks like EQ-YYYY-NNNNNN (prefix "EQ") or WO-... */
bool number_valid(const char *prefix, const char *s);

/* True when s holds nothing but spaces, tabs, newlines and no-break spaces. */
bool text_blank(const char *s);

/* Checks a free-text field: at most max characters, not blank. Replies with
 * what is wrong (naming the field) and returns false. */
bool field_ok(struct hctx *ctx, const char *field, const char *value, size_t max);

/* s cut to max characters with an ellipsis (arena). */
const char *clip(struct hctx *ctx, const char *s, size_t max);

/* ---- roles (start.c) ---- */

/* True when the sender is a supervisor or an admin: for the buttons and
 * hints only they can use. What each role may run is decided once, before
 * a command runs (permissions[] in start.c); this never grants anything. */
bool role_supervises(const struct hctx *ctx);

/* ---- commands ---- */
int cmd_start(struct hctx *ctx, struct args *args);
int cmd_help(struct hctx *ctx, struct args *args);
/* /link (a code), /link CODE (strangers too), /unlink telegram|whatsapp:
 * handlers/link.c */
int cmd_link(struct hctx *ctx, struct args *args);
int cmd_unlink(struct hctx *ctx, struct args *args);
int cmd_equip(struct hctx *ctx, struct args *args);
int cmd_wo(struct hctx *ctx, struct args *args);
int cmd_stats(struct hctx *ctx, struct args *args);
int cmd_photo(struct hctx *ctx, struct args *args);
int cmd_alerts(struct hctx *ctx, struct args *args);
int cmd_ack(struct hctx *ctx, struct args *args);
int cmd_resolve(struct hctx *ctx, struct args *args);
int cmd_subscribe(struct hctx *ctx, struct args *args);
int cmd_unsubscribe(struct hctx *ctx, struct args *args);
int cmd_mute(struct hctx *ctx, struct args *args);
int cmd_rules(struct hctx *ctx, struct args *args);

/* ---- alarms (alerts.c) ---- */

/* "12" or "#12" -> 12. */
bool alarm_id_parse(const char *s, int64_t *id);
/* The alarm named by word i, the last word, of the sender's factory
 * (locked with for_update). Returns 1; 0 after a reply (usage, not a
 * number, "No alarm #ID."); or a db error. cmd ("/ack") names the usage
 * line and the example. */
int alarm_find(struct hctx *ctx, struct args *args, int i, const char *cmd, bool for_update,
               struct alarm *al);
/* Every delivered copy of the alarm as it stands now, as replies that
 * replace those messages in their chats, into edits (arena), for the caller
 * to add after its own answer with replies_add(). Returns 0, or a db error
 * after the apology. */
int alarm_copies(struct hctx *ctx, int64_t alarm_id, struct replies *edits);
/* The open alarms of one machine, with ✅ buttons (plain words: "any
 * alarms on chiller 1"). Returns 0 or a db error after the apology. */
int alarms_of_machine(struct hctx *ctx, const struct equipment *e);
/* Moves the replies of more to the end of ctx's. */
void replies_add(struct hctx *ctx, struct replies *more);

/* ---- plain words (plain.c) ---- */

/* A message that is not a command, from a known user: text is trimmed. */
int plain_words(struct hctx *ctx, char *text);
/* A photo sent in reply to one of Rivet's messages: 1 when its context
 * took it (attached to a work order), 0 when it is an ordinary photo, or
 * a db error. */
int plain_photo(struct hctx *ctx, const char *caption);
/* /wo draft ID create|cancel|edit|none|eq EQ-NUMBER|priority P: the buttons
 * under a proposed work order. */
int wo_draft(struct hctx *ctx, struct args *args);
/* "✅ Opened …" with the buttons that move it along; view: and one that
 * shows it (wo.c). */
void wo_opened(struct hctx *ctx, const struct work_order *w, bool view);

/* A message with a photo (ctx->msg->photo); caption may be NULL. */
int photo_received(struct hctx *ctx, const char *caption);

/* One machine: its fields, nameplate ratings and open work orders, with
 * buttons; headline goes before its number ("🏭 "). */
void equip_card(struct hctx *ctx, const char *headline, const struct equipment *e);

/* The ratings of stored nameplate fields (JSON text) on one line
 * ("460 V · 12.4 A · 10 HP"), "" when none. */
const char *nameplate_ratings(struct hctx *ctx, const char *fields);

/* "No equipment NUMBER." with the closest number, if any; returns 0. */
int reply_no_equipment(struct hctx *ctx, const char *number);

/* The usage lines of a command ("/equip"), NULL when unknown. */
const char *help_usage(const char *cmd);
/* The known command nearest to cmd, or NULL. */
const char *help_suggest(const char *cmd);

#endif
