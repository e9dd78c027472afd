/* The channels' durable queues: inbox, outbox, chats and the poll offset
 * (sql/0003_inbox_outbox.sql), plus LISTEN/NOTIFY and advisory locks, for
 * the threads of `rivet serve`. Same conventions as db.h: 0 or -errno,
 * strings owned by the arena passed in. */
#ifndef RIVET_QUEUE_H
#define RIVET_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

struct arena;
struct db;

/* NOTIFY channels: a worker is woken by new inbox rows, a sender by new
 * outbox rows. */
#define QUEUE_INBOX_EVENT "rivet_inbox"
#define QUEUE_OUTBOX_EVENT "rivet_outbox"

struct inbox_item {
    int64_t id;
    const char *chat_id, *payload;
    int attempts;
};

struct outbox_item {
    int64_t id;
    const char *chat_id, *method, *payload, *chat_kind;
    int attempts;
    double inbound_age_s; /* since the chat's user last wrote; < 0: never */
};

/* The stored poll offset of channel (0 when none). */
int db_poll_offset(struct db *db, const char *channel, long long *ret);

/* In one transaction: stores n updates (duplicates of an external id are
 * ignored), moves the stored offset to new_offset, and notifies workers. */
int db_inbox_store(struct db *db, const char *channel, int n, const char *const *external_ids,
                   const char *const *chat_ids, const char *const *payloads, long long new_offset);

/* Inside the caller's transaction: stores one update (a webhook's). *dup
 * tells whether its external id was stored before (then nothing changed).
 * The caller NOTIFYs QUEUE_INBOX_EVENT (db_inbox_notify) before it commits. */
int db_inbox_add(struct db *db, const char *channel, const char *external_id, const char *chat_id,
                 const char *payload, bool *dup);
int db_inbox_notify(struct db *db);

/* Inside the caller's transaction: claims the oldest unhandled, due update
 * of a chat whose older updates are all handled, locked until the
 * transaction ends. -ENOENT when there is none. */
int db_inbox_claim(struct db *db, struct arena *a, const char *channel, struct inbox_item *ret);
/* The same, passing over the updates whose ids are in skip (n_skip of
 * them, 0 to QUEUE_MAX_SKIP; skip may be NULL when n_skip is 0): a worker
 * that cannot start a photo job now claims past the photos it knows wait
 * for one. -EINVAL for n_skip out of range. */
#define QUEUE_MAX_SKIP 256
int db_inbox_claim_skip(struct db *db, struct arena *a, const char *channel, const int64_t *skip,
                        int n_skip, struct inbox_item *ret);
/* Marks an update handled, in the caller's transaction. */
int db_inbox_done(struct db *db, int64_t id, const char *outcome);
/* After a failed attempt (its own transaction): counts it and holds the
 * update back for delay_ms; the chat's later updates wait behind it. */
int db_inbox_retry_later(struct db *db, int64_t id, int delay_ms);

/* Records a chat's kind (private, group, ...) and that it talks to Rivet. */
int db_chat_seen(struct db *db, const char *channel, const char *chat_id, const char *kind);
/* A chat that answered 403 (blocked, kicked): marked inactive, and its other
 * pending messages fail with error. It becomes active again when its user
 * writes (db_chat_seen). */
int db_chat_blocked(struct db *db, const char *channel, const char *chat_id, const char *error);
/* The chat's user wrote at `at` (Unix seconds: the message's own time, so
 * that a message delivered late does not stretch WhatsApp's 24-hour
 * window; a time in the future counts as now). The recorded time never
 * moves back. */
int db_chat_inbound(struct db *db, const char *channel, const char *chat_id, int64_t at);
/* Inside the caller's transaction: waits until no sender has the chat in
 * hand (a sender's claim locks the chat's row until what it sent is
 * recorded), so that a delivery report Meta sent before the sender recorded
 * the message's id can be looked up again. */
int db_chat_wait_sender(struct db *db, const char *channel, const char *chat_id);
/* A chat that blocked the bot (false) or came back (true). */
int db_chat_set_active(struct db *db, const char *channel, const char *chat_id, bool active);

/* Queues a message for the chat, in the caller's transaction (the sender is
 * notified when it commits). */
int db_outbox_add(struct db *db, const char *channel, const char *chat_id, const char *method,
                  const char *payload, int64_t inbox_id);
/* The same, with what the message shows (struct reply's context, may be
 * NULL); *id (may be NULL) gets the new row's id. */
int db_outbox_add_id(struct db *db, const char *channel, const char *chat_id, const char *method,
                     const char *payload, int64_t inbox_id, const char *context, int64_t *id);
/* The message an earlier row delivered, for an edit of it: its remote id
 * (arena); -EAGAIN while that row is pending, -ENOENT when it failed, is
 * gone or was sent without an id. */
int db_outbox_remote_id(struct db *db, struct arena *a, int64_t id, const char **remote);
/* Inside the caller's transaction: claims the oldest pending message of a
 * chat that may be sent to now (due, and past the chat's next_send_at),
 * locking the message and the chat. -ENOENT when none. */
int db_outbox_claim(struct db *db, struct arena *a, const char *channel, struct outbox_item *ret);
/* Delivered: records the remote id; the chat's next message waits gap_ms. */
int db_outbox_sent(struct db *db, const char *channel, const struct outbox_item *it,
                   const char *remote_id, int gap_ms);
/* Try again after delay_ms (5xx, timeout, connection error). */
int db_outbox_retry(struct db *db, const struct outbox_item *it, int delay_ms, const char *error);
/* 429: nothing goes to this chat for wait_s seconds. */
int db_outbox_chat_wait(struct db *db, const char *channel, const struct outbox_item *it,
                        int wait_s, const char *error);
/* Given up for good (400, 403, too many attempts). */
int db_outbox_failed(struct db *db, const struct outbox_item *it, const char *error);
/* Milliseconds until the next pending message may go out (0: now), or
 * -ENOENT when nothing is pending. */
int db_outbox_next_due(struct db *db, const char *channel, long *ms);
/* A delivery report for the message the channel knows as remote_id:
 * "sent", "delivered", "read" or "failed" (with error), in the caller's
 * transaction. A report never moves a row back (a late "delivered" after
 * "read" changes nothing). *row gets the message (id, chat, payload:
 * arena) when it changed. -ENOENT when no row has that remote id (not
 * recorded yet, or purged); -EALREADY when the row is already further. */
int db_outbox_status(struct db *db, struct arena *a, const char *channel, const char *remote_id,
                     const char *status, const char *error, struct outbox_item *row);
/* The bot-wide send budget of a channel (sql/0011_send_budget.sql), shared
 * by every process on the database: reserves the next slot, one interval of
 * (1000 + SEND_BUDGET_GUARD_MS) / per_second ms after the one before, and
 * sets *wait_ms to how long to wait before sending (0: now). One statement;
 * run it in autocommit, never inside a claim transaction (that would hold
 * the row, and every sender of every process, across the API call). A slot
 * reserved and not used is lost: the budget can be under-spent, never
 * over-spent. */
int db_send_budget_take(struct db *db, const char *channel, int per_second, long *wait_ms);
/* Nothing goes out on the channel, from any process, for ms (WhatsApp's
 * number-wide 130429): the next slot moves past the pause. Autocommit. */
int db_send_budget_pause(struct db *db, const char *channel, long ms);
/* Slack for the way between Rivet and the API (a sender woken late, the
 * network): N messages a second are spread over 1 s + this, so unless one
 * request is delayed this much more than one N slots later, the other end
 * never sees N + 1 in one second. On 2 loaded cores the test saw 42 ms. */
#define SEND_BUDGET_GUARD_MS 100

/* Unhandled updates of a channel. */
int db_inbox_pending(struct db *db, const char *channel, long *ret);
/* Pending messages (not sent, not failed) of a channel. */
int db_outbox_pending(struct db *db, const char *channel, long *ret);

/* Handled inbox rows and delivered or failed outbox rows older than this
 * are deleted: they are history, and Telegram may reuse an update_id. */
#define QUEUE_KEEP_DAYS 7

/* Deletes what QUEUE_KEEP_DAYS allows; *gone gets how many rows. */
int db_queue_purge(struct db *db, const char *channel, int days, long *gone);

/* LISTEN on a notification channel. */
int db_listen(struct db *db, const char *event);
/* Waits up to timeout_ms for a notification: 1 when one came (all pending
 * ones are consumed), 0 on timeout, or -ECONNRESET. */
int db_wait_notify(struct db *db, int timeout_ms);

/* pg_try_advisory_lock(key) on this session: *got tells whether it is ours.
 * A lock taken is held until db_unlock() or the connection ends. */
int db_try_lock(struct db *db, long long key, bool *got);
int db_unlock(struct db *db, long long key);

#endif
