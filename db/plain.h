/* What plain words need from the database (handlers/plain.c): proposed
 * work orders, photos attached to work orders, the context of Rivet's own
 * messages, and the troubleshooting assistant's calls. Every query is
 * scoped by factory. */
#ifndef RIVET_DB_PLAIN_H
#define RIVET_DB_PLAIN_H

#include <stdbool.h>
#include <stdint.h>

struct arena;
struct db;

/* A proposal lives this long; after that its buttons say it expired. */
#define DRAFT_TTL_S (24 * 3600)

struct wo_draft {
    int64_t id, user_id, equipment_id; /* equipment_id 0 while not chosen */
    const char *title, *priority, *description;
    const char *status;           /* proposed, created, cancelled */
    const char *wo_number;        /* when created */
    const char *equipment_number; /* NULL while not chosen */
    bool expired;
};

/* Records a proposal; *id gets its number. equipment_id may be 0. */
int db_draft_add(struct db *db, int64_t factory_id, int64_t user_id, int64_t equipment_id,
                 const char *title, const char *priority, const char *description, int64_t *id);
/* The proposal, locked until the transaction ends (two taps take turns).
 * -ENOENT when the factory has none of that number. */
int db_draft_get(struct db *db, struct arena *a, int64_t factory_id, int64_t id,
                 struct wo_draft *ret);
/* Changes a proposal: equipment_id 0, title NULL or priority NULL keep
 * what it has. */
int db_draft_set(struct db *db, int64_t factory_id, int64_t id, int64_t equipment_id,
                 const char *title, const char *priority);
/* Records what became of it: "created" with the work order, or "cancelled". */
int db_draft_decide(struct db *db, int64_t factory_id, int64_t id, const char *status,
                    int64_t wo_id);

/* Deletes the proposals nobody decided, or that were cancelled, more than
 * days ago (a created one stays: it records how its work order began);
 * *gone gets how many. Every factory's: run by the hourly purge. */
int db_drafts_purge(struct db *db, int days, long *gone);

/* Sets a work order's description (the message it was reported with). */
int db_wo_set_description(struct db *db, int64_t factory_id, int64_t wo_id,
                          const char *description);
/* Attaches a photo (the channel's file id) to a work order, with a 'photo'
 * event in its history. */
int db_wo_add_photo(struct db *db, int64_t factory_id, int64_t wo_id, int64_t user_id,
                    const char *channel, const char *file_id, const char *caption);
/* How many photos a work order has. */
int db_wo_photo_count(struct db *db, int64_t factory_id, int64_t wo_id, int *n);

/* A machine's recent past for the assistant: its last limit work orders
 * (any status) and alarms, one a line, newest first, into *text (arena;
 * "" when none). */
int db_machine_history(struct db *db, struct arena *a, int64_t factory_id, int64_t equipment_id,
                       int limit, const char **text);

/* What the message remote_id that Rivet sent to the chat was about (the
 * context its outbox row recorded: "wo:WO-…"), into *context (arena).
 * -ENOENT when Rivet recorded none (or the row was purged). */
int db_outbox_context(struct db *db, struct arena *a, const char *channel, const char *chat_id,
                      const char *remote_id, const char **context);

/* The assistant's use: the user's and the factory's calls in the last
 * hour, and what the factory's calls cost this calendar month (UTC). */
struct llm_use {
    int user_hour, factory_hour;
    double factory_month_usd;
};
int db_llm_use(struct db *db, int64_t factory_id, int64_t user_id, struct llm_use *ret);
/* Records one call (ok or not): provider and model may be NULL. */
int db_llm_call_add(struct db *db, int64_t factory_id, int64_t user_id, bool ok,
                    const char *provider, const char *model, long ms, int prompt_tokens,
                    int completion_tokens, double cost_usd);

#endif
