/* The threads every chat channel of `rivet serve` runs on the inbox and
 * outbox tables: workers that turn an inbox row into outbox rows in one
 * transaction with the change its handler made, and senders that deliver
 * the outbox within the channel's limits. A channel (telegram.c,
 * whatsapp.c) fills in struct chat_ops; how its updates reach the inbox
 * (a poller, a webhook) is its own business.
 *
 * Any thread may die at any moment (kill -9, a lost network, a database
 * restart): nothing is lost, and nothing is answered twice, except a
 * message the remote API accepted in the instant before its delivery was
 * recorded. */
#ifndef RIVET_CHAT_H
#define RIVET_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "handlers.h"
#include "queue.h"

struct arena;
struct config;
struct db;
struct assist;
struct msg_photo;
struct photo_reader;
struct photo_result;

/* What handling one inbox row came to, for the log and the channel's
 * after-commit step (Telegram answers a button press there). */
struct chat_handled {
    const char *outcome; /* "ok", "ignored", "bad_update", ... */
    const char *command; /* what ran, or NULL */
    const char *callback_id, *callback_text;
};

/* The photo of the inbox row in hand, per worker. The channel's handle()
 * sets file_id (its id of the file), mime_type, too_big and max, then
 * chat_photo_attach() gives the handler fetch and read callbacks that
 * download through ops->download and read with the worker's reader. A
 * retry of the same row by the same worker neither downloads nor reads
 * (nor pays an LLM) again. */
struct chat_photo {
    const char *file_id, *mime_type;
    bool too_big; /* the channel already knows it is over its limit */
    /* private to chat.c */
    const struct chat_ops *ops;
    struct chat_threads *t;
    bool job;      /* holds one of the process's photo jobs (OCR_MAX_JOBS) */
    bool deferred; /* wanted a photo job and found none free */
    void *ws;
    struct photo_reader *pr;
    struct buf bytes;
    int64_t inbox, memo_inbox;
    char memo_sha[65];
    struct photo_result *memo;
    bool memo_read;
    /* The worker's troubleshooting assistant (chat_ask()): NULL without an
     * LLM. It lives here because this is the worker's state the channel
     * passes to its handler. */
    struct assist *assist;
};

/* Fills *p so that a handler can fetch and read the worker's photo. */
void chat_photo_attach(struct chat_photo *wp, int64_t inbox_id, struct msg_photo *p);

/* The worker's troubleshooting assistant for struct msg, or NULL when no
 * LLM is configured. */
const struct msg_ask *chat_ask(struct chat_photo *wp);

/* What the message remote_id, which Rivet sent to chat, was about (its
 * reply's context) into *context, NULL when nothing is recorded. Returns 0
 * or a database error. */
int chat_context(struct db *db, struct arena *a, const char *channel, const char *chat,
                 const char *remote_id, const char **context);

enum chat_sent { CHAT_SENT, CHAT_RETRY, CHAT_WAIT, CHAT_FAILED, CHAT_SENT_COUNT };

struct chat_ops {
    const char *channel; /* "telegram": the channel column of the queues */
    const char *prefix;  /* "tg": of the log events */
    /* Per worker thread: state (a client for downloads), or NULL. */
    int (*worker_new)(void *ch, void **ws);
    void (*worker_free)(void *ws);
    /* Downloads a file the handler asked for into out (at most max bytes).
     * 0, or -errno with *why a sentence for the user. */
    int (*download)(void *ws, const char *file_id, struct buf *out, const char **why);
    /* Handles one inbox row inside the caller's transaction. 0, or a
     * database error for the caller to roll back and retry. */
    int (*handle)(void *ch, void *ws, struct chat_photo *wp, struct db *db, struct arena *a,
                  const struct inbox_item *it, struct chat_handled *h);
    /* After the row's transaction: ok tells whether it committed. May be
     * NULL. */
    void (*handled)(void *ws, const struct chat_handled *h, bool ok);

    /* Per sender thread. abort is set when the sender must stop at once. */
    int (*sender_new)(void *ch, volatile int *abort, void **ss);
    void (*sender_free)(void *ss);
    /* Delivers one claimed message; records what happened on the row in the
     * caller's transaction (db_outbox_sent, _retry, _chat_wait, _failed).
     * *status: the remote answer (HTTP or API code), 0 when none. */
    enum chat_sent (*deliver)(void *ch, void *ss, struct db *db, struct arena *a,
                              const struct outbox_item *it, int *status);
};

struct chat_threads;

/* A chat id as log lines show it. A WhatsApp chat id is the user's phone
 * number, which no log line carries: all but its last four characters are
 * masked ("********4321"), enough to follow one chat through a log. Other
 * channels' ids are returned as they are. "-" for an empty id. */
#define CHAT_LOG_ID_MAX 64
const char *chat_log_id(const char *channel, const char *chat, char *buf, size_t n);

/* Starts n_workers workers and n_senders senders for the channel ch (passed
 * to every op). cfg and ops must outlive the threads. 0 and *ret, or
 * -errno.
 *
 * Photo jobs (a photo's download and read, its LLM fallback included) are
 * capped per process, every channel together, at cfg->ocr_max_jobs, and a
 * channel with two workers or more keeps one of them out of photo jobs, so
 * text is always answered. A worker that finds no job free when its handler
 * asks for the photo puts the row back untouched, remembers it (at most
 * QUEUE_MAX_SKIP rows, oldest forgotten first) and claims past it until a
 * job is free. The chat of a photo that waits behind CHAT_NOTICE_AHEAD
 * others is told so, at most once in CHAT_NOTICE_EVERY_S. cfg->llm_max_in_flight is set as the
 * process's LLM cap (llm_set_max_in_flight()). */
int chat_threads_start(const struct config *cfg, const struct chat_ops *ops, void *ch,
                       int n_workers, int n_senders, struct chat_threads **ret);

/* Lets each worker finish the row in hand, gives the senders up to flush_s
 * seconds to deliver what is due, joins every thread and frees; accepts
 * NULL. */
void chat_threads_stop(struct chat_threads *t, int flush_s);

/* Tries before a row that keeps failing is given up (with an apology), and
 * before a message that keeps failing to send is. */
#define CHAT_MAX_HANDLE_ATTEMPTS 5
/* "Rivet is reading other photos first: N ahead of yours": for N at least
 * this, at most once a chat in this many seconds (per process). */
#define CHAT_NOTICE_AHEAD 3
#define CHAT_NOTICE_EVERY_S 600
#define CHAT_MAX_SEND_ATTEMPTS 50

#endif
