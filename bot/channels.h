/* Messages Rivet starts rather than answers (alarms, their edits, storm
 * summaries) and replies addressed to other chats: each goes to the outbox
 * of its channel, formatted the channel's way. */
#ifndef RIVET_CHANNELS_H
#define RIVET_CHANNELS_H

#include <stdint.h>

#include "db.h"

struct arena;
struct reply;
struct replies;

/* Queues rep for chat on channel, in the caller's transaction. *outbox_id
 * (may be NULL) gets the row that carries its buttons. -ENOTSUP for the
 * console, which has no outbox. */
int channel_queue(struct db *db, struct arena *a, enum channel ch, const char *chat,
                  const struct reply *rep, int64_t *outbox_id);

/* Queues the replies of a handler that address another chat
 * (rep->chat_id set); the others are the caller's to deliver. */
int channel_queue_others(struct db *db, struct arena *a, const struct replies *out);

#endif
