/* Rivet's PostgreSQL access. One struct db per thread: it owns a PGconn and
 * the statements prepared on it. Functions return 0 or -errno:
 *   -ENOENT   no such row (in this factory)
 *   -EEXIST   a unique value is taken
 *   -EINVAL   a value the schema refuses (a CHECK constraint)
 *   -ETIMEDOUT the statement ran past RIVET_STATEMENT_TIMEOUT_MS
 *   -ECONNRESET the connection is gone (the next call reconnects)
 *   -EIO      any other database error; db_errmsg() has libpq's text
 * Nothing here logs: the caller logs db_errmsg() once.
 *
 * Every function that touches tenant data takes the factory id and filters
 * by it. Strings in returned structs are owned by the arena passed in. */
#ifndef RIVET_DB_H
#define RIVET_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct arena;
struct db;

/* Connects with a libpq conninfo string or URI and sets the statement
 * timeout. Returns 0 and *ret, or -errno (db_errmsg() of a failed connection
 * is not available: *err_out, when not NULL, gets a malloc'd copy of libpq's
 * message for the caller to log; free() it). */
int db_connect(const char *conninfo, int statement_timeout_ms, struct db **ret, char **err_out);
/* Closes the connection; accepts NULL. */
void db_close(struct db *db);
/* The last error's detail from libpq, for logs; never shown to users. */
const char *db_errmsg(const struct db *db);

int db_begin(struct db *db);
/* SELECT 1: whether PostgreSQL answers (a lost connection is reset first). */
int db_ping(struct db *db);
int db_commit(struct db *db);
/* Rolls back; safe to call when no transaction is open. */
int db_rollback(struct db *db);
/* SAVEPOINT name / ROLLBACK TO SAVEPOINT name, inside a transaction. name is
 * one of Rivet's own identifiers, never user text. */
int db_savepoint(struct db *db, const char *name);
int db_rollback_to(struct db *db, const char *name);

/* ---- factories ---- */
struct factory {
    int64_t id;
    const char *slug, *name, *timezone;
};

/* Derives a slug ("Plant North 2" -> "plant-north-2") into out (size >= 64);
 * a name without ASCII letters or digits ("Завод") gets "f-" and 8 hex
 * digits of its hash. Returns 0, or -EINVAL when name has neither ASCII
 * letters or digits nor any other letters. */
int db_slugify(const char *name, char *out, size_t n);

int db_factory_create(struct db *db, struct arena *a, const char *name, struct factory *ret);
/* Finds a factory by slug or by name (case-insensitive). */
int db_factory_find(struct db *db, struct arena *a, const char *name, struct factory *ret);
/* Writes one line per factory: "slug<TAB>name<TAB>N users<TAB>N equipment". */
int db_factory_list_print(struct db *db, FILE *out);
/* Finds, or creates when missing. */
int db_factory_ensure(struct db *db, struct arena *a, const char *name, struct factory *ret);

/* ---- users ---- */
enum channel { CHANNEL_CONSOLE, CHANNEL_TELEGRAM, CHANNEL_WHATSAPP };

/* "console", "telegram", "whatsapp": as the channel columns store it. */
const char *channel_name(enum channel ch);
/* The reverse; -EINVAL for anything else. */
int channel_parse(const char *name, enum channel *ret);

struct user {
    int64_t id, factory_id;
    const char *display_name, *role, *factory_name;
    bool active;
};

int db_user_by_identity(struct db *db, struct arena *a, enum channel ch, const char *ext_id,
                        struct user *ret);
int db_user_create(struct db *db, struct arena *a, int64_t factory_id, enum channel ch,
                   const char *ext_id, const char *display_name, const char *role,
                   struct user *ret);
/* A member of the factory by display name (case-insensitive). -ENOENT when
 * none; -EEXIST when two members share the name. */
int db_user_by_name(struct db *db, struct arena *a, int64_t factory_id, const char *name,
                    struct user *ret);
/* The display name closest to name in the factory, or NULL. */
const char *db_user_suggest(struct db *db, struct arena *a, int64_t factory_id, const char *name);

/* The user's identities, indexed by enum channel (console name, Telegram
 * user id as text, WhatsApp id); NULL where the user has none. */
int db_user_identities(struct db *db, struct arena *a, int64_t factory_id, int64_t user_id,
                       const char *ids[3]);
/* Removes the user's identity on ch (Telegram or WhatsApp). -ENOENT when the
 * user has none there; -EINVAL for the console. */
int db_user_unlink(struct db *db, int64_t factory_id, int64_t user_id, enum channel ch);

/* ---- linking a second channel to a user (/link) ---- */

/* A link code: LINK_CODE_CHARS letters of the invite alphabet (44 bits),
 * shown in groups of three ("K7Q-M3X-HPR"); LINK_CODE_SIZE holds that. */
#define LINK_CODE_CHARS 9
#define LINK_CODE_SIZE 12

/* Creates a one-time code for the user, good for ttl_s seconds, and
 * removes their earlier unused codes; only its SHA-256 is stored. code_out
 * (size >= LINK_CODE_SIZE) gets it as shown to users. */
int db_link_create(struct db *db, int64_t factory_id, int64_t user_id, long long ttl_s,
                   char *code_out, size_t n);
/* The user whose valid (unused, unexpired) code this is, without using it.
 * Case, dashes and spaces in code do not matter. -ENOENT when the code is
 * unknown, used or expired. */
int db_link_owner(struct db *db, const char *code, int64_t *factory_id, int64_t *user_id);
/* In one statement: uses the code and gives its user the identity ext_id
 * on ch (Telegram or WhatsApp). Returns 0 with the user in *ret;
 *   -ENOENT   the code is unknown, used or expired, or its user is
 *             switched off (alike to the person holding the code);
 *   -EALREADY the code is valid but its user has an identity on ch already:
 *             nothing changed, and *ret holds that user;
 *   -EEXIST   ext_id is another user's (nothing changed);
 *   -EINVAL   ch is the console. */
int db_link_redeem(struct db *db, struct arena *a, const char *code, enum channel ch,
                   const char *ext_id, struct user *ret);

/* The guessing limit of /link CODE, per channel and sender. Takes the
 * sender's count of failed attempts in their current window of window_s
 * seconds (a window that old starts anew) into *failures, and locks it
 * until the transaction ends, so that concurrent attempts take turns. */
int db_link_attempts(struct db *db, enum channel ch, const char *sender, long long window_s,
                     int *failures);
/* Counts a failed attempt of the sender (after db_link_attempts(), in the
 * same transaction); the first failure starts the window. */
int db_link_attempt_failed(struct db *db, enum channel ch, const char *sender);

/* ---- invites ---- */
/* Creates an invite; code_out (size >= 16) gets its code. */
int db_invite_create(struct db *db, int64_t factory_id, const char *role, int uses,
                     long long expires_in_s, char *code_out, size_t n);
/* Uses one of the invite's uses. -ENOENT when the code is unknown, used up
 * or expired (the three look alike to the person holding the code). */
int db_invite_redeem(struct db *db, struct arena *a, const char *code, int64_t *factory_id,
                     const char **role);
/* Against guessing invite codes, as db_link_attempts() is for link codes:
 * the sender's failed /start CODE attempts (any channel, the console too)
 * within the last window_s seconds into *failures, the sender's row locked
 * until the transaction ends. -EINVAL for an empty sender id or one over
 * 256 bytes. */
int db_invite_attempts(struct db *db, enum channel ch, const char *sender, long long window_s,
                       int *failures);
/* Counts a failed /start CODE of the sender (after db_invite_attempts(), in
 * the same transaction); the first failure starts the window. */
int db_invite_attempt_failed(struct db *db, enum channel ch, const char *sender);

/* ---- equipment ---- */
struct equipment {
    int64_t id;
    const char *number, *name, *manufacturer, *model, *serial, *location, *criticality;
    const char *nameplate; /* JSON text */
    const char *created_at, *created_by;
    int open_work_orders;
    bool substring;    /* from a search: the text appears as typed, not just alike */
    double similarity; /* from db_equipment_similar_model() */
};

/* Fields of an equipment record a user may set; NULL leaves one unchanged
 * (on add: empty). */
struct equipment_fields {
    const char *name, *manufacturer, *model, *serial, *location, *criticality;
};

int db_equipment_add(struct db *db, struct arena *a, int64_t factory_id, int64_t user_id,
                     const struct equipment_fields *f, struct equipment *ret);
int db_equipment_get(struct db *db, struct arena *a, int64_t factory_id, const char *number,
                     struct equipment *ret);
int db_equipment_update(struct db *db, struct arena *a, int64_t factory_id, const char *number,
                        const struct equipment_fields *f, struct equipment *ret);
/* A page of equipment, newest first; *total gets the factory's count. */
int db_equipment_list(struct db *db, struct arena *a, int64_t factory_id, int offset, int limit,
                      struct equipment **ret, int *n, int *total);
/* Fuzzy search over manufacturer, model, name, serial and location, best
 * match first. */
int db_equipment_search(struct db *db, struct arena *a, int64_t factory_id, const char *text,
                        int limit, struct equipment **ret, int *n);
/* The machines that words (what someone called it: "pump 3", "Big Blue",
 * "G120"; may be NULL) and location ("line 2"; may be NULL) may mean, best
 * first, at most limit: found by trigram word similarity or as a
 * substring. similarity gets a score (1 for the words matching a name,
 * model or serial in full, +0.3 when the location matches), substring
 * whether the words appear as typed. With words NULL, the machines at the
 * location. */
int db_equipment_resolve(struct db *db, struct arena *a, int64_t factory_id, const char *words,
                         const char *location, int limit, struct equipment **ret, int *n);
/* The machines whose name, model or make appears in text as whole words
 * ("is big blue running again" -> Big Blue), best first: a name scores 1,
 * a model 0.9, a make 0.6 (in similarity). For a sentence the parser
 * found no machine words in. */
int db_equipment_named_in(struct db *db, struct arena *a, int64_t factory_id, const char *text,
                          int limit, struct equipment **ret, int *n);
/* The factory's equipment number closest to number, or NULL. */
const char *db_equipment_suggest(struct db *db, struct arena *a, int64_t factory_id,
                                 const char *number);

/* Equipment whose serial, normalized (np_serial_normalize()), is
 * serial_norm. */
int db_equipment_by_serial(struct db *db, struct arena *a, int64_t factory_id,
                           const char *serial_norm, int limit, struct equipment **ret, int *n);
/* Equipment whose model is model give or take OCR's misreadings: equal
 * once O I S B Z G are read as 0 1 5 8 2 6 and only letters and digits
 * kept (similarity 1), or one character more or less than that
 * (similarity 0.9); best first. */
int db_equipment_similar_model(struct db *db, struct arena *a, int64_t factory_id,
                               const char *model, int limit, struct equipment **ret, int *n);
/* Sets the machine's nameplate fields (a JSON object, replacing what was
 * there: the caller merges) and records the photo (file_id and sha256 may
 * be NULL to keep the old ones). */
int db_equipment_set_nameplate(struct db *db, int64_t factory_id, int64_t equipment_id,
                               const char *nameplate, const char *file_id, const char *sha256);

/* ---- nameplate reads ---- */
struct nameplate_read {
    int64_t id, equipment_id; /* equipment_id 0 when none */
    const char *sha256, *channel, *file_id, *caption;
    const char *fields; /* JSON text: {"model": {"value", "confidence", "source"}, ...} */
    double confidence;
    const char *status; /* pending, saved, linked, discarded */
    bool llm_used;
    bool llm_failed;              /* the LLM was asked and failed: read again when sent again */
    const char *equipment_number; /* of equipment_id, NULL when none */
};

/* What a new read records besides its fields. */
struct nameplate_read_info {
    /* llm_provider is set when an LLM answered, whether its answer was used
     * (llm_used) or not; its tokens and cost are recorded then. */
    const char *engine, *llm_provider, *llm_model; /* NULL when unknown */
    int width, height, ocr_ms, total_ms, llm_ms, prompt_tokens, completion_tokens;
    bool llm_used, llm_failed;
    double cost_usd;
};

/* The factory's read of the photo with this hash. */
int db_nameplate_find(struct db *db, struct arena *a, int64_t factory_id, const char *sha256,
                      struct nameplate_read *ret);
/* The read, locked until the transaction ends: two people deciding on one
 * read (the same photo sent from two chats) take turns, and the second sees
 * the first's decision. */
int db_nameplate_get(struct db *db, struct arena *a, int64_t factory_id, int64_t id,
                     struct nameplate_read *ret);
/* Records a read; when the factory has one of the same photo already (a
 * race between two messages), that one is returned unchanged. */
int db_nameplate_add(struct db *db, struct arena *a, int64_t factory_id, int64_t user_id,
                     enum channel ch, const char *sha256, const char *file_id, const char *caption,
                     const char *fields, double confidence, const struct nameplate_read_info *info,
                     struct nameplate_read *ret);
/* Replaces a read with a new read of the same photo (the first was made
 * while the LLM was failing); its LLM costs add to the first's. */
int db_nameplate_reread(struct db *db, int64_t factory_id, int64_t id, const char *fields,
                        double confidence, const struct nameplate_read_info *info);
/* Replaces a read's fields (a person corrected them). */
int db_nameplate_set_fields(struct db *db, int64_t factory_id, int64_t id, const char *fields,
                            double confidence);
/* Records what became of a read: status "saved" or "linked" with the
 * machine, "discarded", or "pending" again (the photo was sent anew). */
int db_nameplate_decide(struct db *db, int64_t factory_id, int64_t id, int64_t user_id,
                        const char *status, int64_t equipment_id);

/* ---- work orders ---- */
struct work_order {
    int64_t id, equipment_id, assignee_id;
    const char *number, *title, *description, *status, *priority;
    const char *equipment_number, *equipment_label;
    const char *assignee, *created_by, *created_at, *updated_at, *completed_at, *completed_by;
    int age_days;
};

struct wo_event {
    const char *kind, *user, *old_value, *new_value, *created_at;
};

enum wo_filter { WO_OPEN, WO_MINE, WO_ALL, WO_STATUS };

int db_wo_create(struct db *db, struct arena *a, int64_t factory_id, int64_t user_id,
                 int64_t equipment_id, const char *title, const char *priority,
                 struct work_order *ret);
int db_wo_get(struct db *db, struct arena *a, int64_t factory_id, const char *number,
              struct work_order *ret);
/* A page of work orders, highest priority first, then oldest. status is
 * used with WO_STATUS, user_id with WO_MINE. */
int db_wo_list(struct db *db, struct arena *a, int64_t factory_id, enum wo_filter filter,
               const char *status, int64_t user_id, int offset, int limit, struct work_order **ret,
               int *n, int *total);
/* Open (not completed or cancelled) work orders of one machine. */
int db_wo_list_equipment(struct db *db, struct arena *a, int64_t factory_id, int64_t equipment_id,
                         int limit, struct work_order **ret, int *n);
/* Sets the status and records it; completing records who and when,
 * reopening clears that. -EALREADY when the status is already that. */
int db_wo_set_status(struct db *db, int64_t factory_id, int64_t wo_id, int64_t user_id,
                     const char *old_status, const char *status);
int db_wo_add_note(struct db *db, int64_t factory_id, int64_t wo_id, int64_t user_id,
                   const char *text);
int db_wo_assign(struct db *db, int64_t factory_id, int64_t wo_id, int64_t user_id,
                 int64_t assignee_id, const char *assignee_name);
/* The newest events of a work order, oldest first; *total gets how many it
 * has in all. */
int db_wo_events(struct db *db, struct arena *a, int64_t factory_id, int64_t wo_id, int limit,
                 struct wo_event **ret, int *n, int *total);
const char *db_wo_suggest(struct db *db, struct arena *a, int64_t factory_id, const char *number);

/* ---- statistics ---- */
struct plant_stats {
    int equipment;
    int by_status[5];   /* open, in_progress, on_hold, completed, cancelled */
    int by_priority[4]; /* open work orders: low, medium, high, critical */
    int open_older_7d;
    const char *top_equipment_number, *top_equipment_label;
    int top_equipment_open;
};

int db_stats(struct db *db, struct arena *a, int64_t factory_id, struct plant_stats *ret);

#endif
