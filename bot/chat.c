/* The workers and senders of a chat channel (chat.h). */
#include "chat.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "assist.h"
#include "channels.h"
#include "config.h"
#include "db.h"
#include "handlers.h"
#include "llm.h"
#include "log.h"
#include "metrics.h"
#include "photo.h"
#include "plain.h"
#include "serve.h"

struct chat_threads {
    const struct config *cfg;
    const struct chat_ops *ops;
    void *ch;
    volatile int stop_work, stop_send, abort_send;
    long flush_deadline; /* now_ms() by which senders stop, once stop_send */
    pthread_t *workers, *senders;
    int n_workers, n_senders;
    int size;     /* workers asked for */
    int ocr_busy; /* this channel's photo jobs (jobs.lock) */
    int worker_seq, sender_seq;
};

const char *chat_log_id(const char *channel, const char *chat, char *buf, size_t n)
{
    size_t len;

    if (!chat || !chat[0])
        return "-";
    if (strcmp(channel, "whatsapp") != 0 || n == 0)
        return chat;
    len = strlen(chat);
    if (len >= n)
        len = n - 1;
    for (size_t i = 0; i < len; i++)
        buf[i] = i + 4 < len ? '*' : chat[i];
    buf[len] = '\0';
    return buf;
}

/* ---- photo jobs: the cap, per process ---- */

#define NOTICE_CHATS 256

/* Everything here is guarded by lock; the counts are this process's. */
static struct {
    pthread_mutex_t lock;
    int max;  /* OCR_MAX_JOBS; 0 (no channel started) is no cap */
    int busy; /* photo jobs in progress, every channel */
    /* Photo rows found waiting for a job, in the order found: a worker that
     * cannot start a job claims past them. A row leaves when a worker of
     * this process is done with it, or, the list full, the oldest is
     * forgotten (found again if it still waits). */
    int n_waiting;
    int64_t waiting[QUEUE_MAX_SKIP];
    /* Chats told that their photo waits, and when (now_ms()). */
    struct told {
        char key[80]; /* "channel:chat" */
        long at;
    } told[NOTICE_CHATS];
} jobs = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Whether a worker of t may start a photo job now: under the process's cap,
 * and one worker of the channel left for text. Needs jobs.lock. */
static bool job_free(const struct chat_threads *t)
{
    return (jobs.max == 0 || jobs.busy < jobs.max) && (t->size < 2 || t->ocr_busy < t->size - 1);
}

/* Takes a photo job for the row in hand, unless the worker has one: true
 * when it has one, else the row is marked deferred. */
static bool job_take(struct chat_photo *wp)
{
    if (wp->job)
        return true;
    pthread_mutex_lock(&jobs.lock);
    if (job_free(wp->t)) {
        jobs.busy++;
        wp->t->ocr_busy++;
        wp->job = true;
    }
    pthread_mutex_unlock(&jobs.lock);
    if (!wp->job)
        wp->deferred = true;
    return wp->job;
}

/* Ends the worker's photo job, if it has one. Workers waiting for a
 * notification are woken when photos wait for the job let go (outside a
 * transaction: the NOTIFY goes at once). */
static void job_end(struct chat_photo *wp, struct db *db)
{
    int waiting;

    if (!wp->job)
        return;
    pthread_mutex_lock(&jobs.lock);
    jobs.busy--;
    wp->t->ocr_busy--;
    waiting = jobs.n_waiting;
    pthread_mutex_unlock(&jobs.lock);
    wp->job = false;
    if (waiting > 0)
        db_inbox_notify(db);
}

/* Needs jobs.lock. */
static int waiting_find(int64_t id)
{
    for (int i = 0; i < jobs.n_waiting; i++)
        if (jobs.waiting[i] == id)
            return i;
    return -1;
}

/* Remembers a photo row that waits for a job; returns how many photos are
 * ahead of it (jobs in progress, and rows found waiting that came first). */
static int waiting_add(int64_t id)
{
    int ahead;

    pthread_mutex_lock(&jobs.lock);
    if (waiting_find(id) < 0) {
        if (jobs.n_waiting == QUEUE_MAX_SKIP) {
            memmove(jobs.waiting, jobs.waiting + 1, sizeof(jobs.waiting[0]) * --jobs.n_waiting);
        }
        jobs.waiting[jobs.n_waiting++] = id;
    }
    ahead = jobs.busy;
    for (int i = 0; i < jobs.n_waiting; i++)
        if (jobs.waiting[i] < id)
            ahead++;
    pthread_mutex_unlock(&jobs.lock);
    return ahead;
}

static void waiting_remove(int64_t id)
{
    int i;

    pthread_mutex_lock(&jobs.lock);
    i = waiting_find(id);
    if (i >= 0) {
        jobs.n_waiting--;
        memmove(jobs.waiting + i, jobs.waiting + i + 1,
                sizeof(jobs.waiting[0]) * (size_t)(jobs.n_waiting - i));
    }
    pthread_mutex_unlock(&jobs.lock);
}

/* Whether the chat may be told now that its photo waits: not told in the
 * last CHAT_NOTICE_EVERY_S. Records the telling. */
static bool notice_due(const char *channel, const char *chat)
{
    char key[sizeof(jobs.told[0].key)];
    long now = now_ms();
    struct told *slot = NULL;
    bool due = true;

    snprintf(key, sizeof(key), "%s:%s", channel, chat);
    pthread_mutex_lock(&jobs.lock);
    for (int i = 0; i < NOTICE_CHATS; i++) {
        struct told *s = &jobs.told[i];

        if (strcmp(s->key, key) == 0) {
            slot = s;
            due = now - s->at >= CHAT_NOTICE_EVERY_S * 1000L;
            break;
        }
        if (!slot || s->at < slot->at)
            slot = s; /* else the slot told longest ago is reused */
    }
    if (due) {
        memcpy(slot->key, key, sizeof(key));
        slot->at = now;
    }
    pthread_mutex_unlock(&jobs.lock);
    return due;
}

/* The row in hand wanted a photo job and found none: it was rolled back
 * untouched; remember it, and tell its chat when the wait is long. */
static void photo_wait(struct chat_threads *t, struct db *db, struct arena *a,
                       const struct inbox_item *it)
{
    int ahead = waiting_add(it->id);
    char cid[CHAT_LOG_ID_MAX];
    const char *who = chat_log_id(t->ops->channel, it->chat_id, cid, sizeof(cid));
    enum channel ch;

    metric_inc("rivet_ocr_deferred_total", NULL);
    log_debug("chat.photo_waits", "channel=%s inbox=%lld chat=%s ahead=%d", t->ops->channel,
              (long long)it->id, who, ahead);
    if (ahead >= CHAT_NOTICE_AHEAD && it->chat_id[0] && channel_parse(t->ops->channel, &ch) == 0 &&
        notice_due(t->ops->channel, it->chat_id)) {
        struct reply rep = {.text = arena_printf(a,
                                                 "Rivet is reading other photos first: %d ahead "
                                                 "of yours. It answers yours as soon as it can.",
                                                 ahead)};

        if (rep.text && db_begin(db) == 0) {
            if (channel_queue(db, a, ch, it->chat_id, &rep, NULL) == 0 && db_commit(db) == 0)
                log_info("chat.photo_queued", "channel=%s inbox=%lld chat=%s ahead=%d",
                         t->ops->channel, (long long)it->id, who, ahead);
            else
                db_rollback(db);
        }
    }
}

/* Copies the caps and their use into /metrics (metrics_on_render()). */
static void jobs_metrics(void)
{
    struct llm_flight f;
    int busy, max, waiting;

    pthread_mutex_lock(&jobs.lock);
    busy = jobs.busy;
    max = jobs.max;
    waiting = jobs.n_waiting;
    pthread_mutex_unlock(&jobs.lock);
    llm_flight_stats(&f);
    metric_set("rivet_ocr_jobs", busy, NULL);
    metric_set("rivet_ocr_max_jobs", max, NULL);
    metric_set("rivet_ocr_waiting", waiting, NULL);
    metric_set("rivet_llm_in_flight", f.in_flight, NULL);
    metric_set("rivet_llm_max_in_flight", f.max, NULL);
    metric_set("rivet_llm_waits_total", (double)(f.waited - f.busy), "result", "waited", NULL);
    metric_set("rivet_llm_waits_total", (double)f.busy, "result", "busy", NULL);
}

/* ---- photos ---- */

/* Seconds a photo's download may take is the channel's business; this is
 * what the worker keeps of one. */
static int photo_download(struct chat_photo *wp, const char **why)
{
    int r = wp->ops->download(wp->ws, wp->file_id, &wp->bytes, why);

    if (r < 0) {
        log_warn("photo.download", "channel=%s err=%s", wp->ops->channel, strerror(-r));
        return r;
    }
    if (wp->bytes.len == 0) {
        *why = "The file is empty.";
        return -ENODATA;
    }
    return 0;
}

static int photo_fetch(void *ctx, char sha256[65], const char **why)
{
    struct chat_photo *wp = ctx;
    int r;

    if (wp->memo_inbox == wp->inbox && wp->memo_sha[0]) {
        memcpy(sha256, wp->memo_sha, 65);
        return 0; /* a retry: downloaded before */
    }
    if (wp->too_big) {
        *why = "The image is larger than 20 MB.";
        return -EFBIG;
    }
    if (!wp->file_id) {
        *why = "Rivet could not get that file; please send it again.";
        return -EBADMSG;
    }
    if (wp->mime_type && strncmp(wp->mime_type, "image/", 6) != 0) {
        *why = "Rivet reads photos of nameplates: send a photo or an image file (JPEG, PNG, "
               "WebP or TIFF).";
        return -ENOTSUP;
    }
    if (!job_take(wp)) {
        *why = "Rivet is busy with other photos.";
        return -EBUSY; /* the worker puts the row back */
    }
    r = photo_download(wp, why);
    if (r < 0)
        return r;
    photo_sha256(wp->bytes.p, wp->bytes.len, sha256);
    wp->memo_inbox = wp->inbox;
    memcpy(wp->memo_sha, sha256, 65);
    wp->memo_read = false;
    return 0;
}

static int photo_read_cb(void *ctx, struct photo_result *out, const char **why)
{
    struct chat_photo *wp = ctx;
    int r;

    if (wp->memo_inbox == wp->inbox && wp->memo_read) {
        *out = *wp->memo;
        return 0; /* a retry: read before */
    }
    if (!job_take(wp)) {
        *why = "Rivet is busy with other photos.";
        return -EBUSY; /* the worker puts the row back */
    }
    if (wp->bytes.len == 0) { /* a retry that found no read stored */
        r = photo_download(wp, why);
        if (r < 0)
            return r;
    }
    r = photo_read(wp->pr, wp->bytes.p, wp->bytes.len, true, out, why);
    if (r == 0 && wp->memo_inbox == wp->inbox &&
        (wp->memo || (wp->memo = malloc(sizeof(*wp->memo))))) {
        *wp->memo = *out;
        wp->memo_read = true;
    }

    if (r == 0) {
        char q[400];

        metric_inc("rivet_ocr_reads_total", "result", "read", NULL);
        metric_observe("rivet_ocr_seconds", out->ocr.total_ms / 1000.0, NULL);
        if (out->llm_asked)
            metric_inc("rivet_llm_fallbacks_total", "result", out->llm_used ? "used" : "failed",
                       NULL);
        log_info("photo.read", "ms=%ld ocr_ms=%ld passes=%d confidence=%.2f llm=%s%s%s%s%s",
                 out->total_ms, out->ocr.total_ms, out->ocr.passes, (double)out->np.confidence,
                 out->llm_used    ? "used"
                 : out->llm_asked ? "failed"
                                  : "no",
                 out->llm_error ? " llm_err=" : "", out->llm_error ? strerror(-out->llm_error) : "",
                 out->llm_error ? " detail=" : "",
                 out->llm_error ? log_quote(q, sizeof(q), out->llm_detail) : "");
    } else {
        metric_inc("rivet_ocr_reads_total", "result", "unreadable", NULL);
        log_info("photo.unreadable", "err=%s", strerror(-r));
    }
    return r;
}

void chat_photo_attach(struct chat_photo *wp, int64_t inbox_id, struct msg_photo *p)
{
    wp->inbox = inbox_id;
    *p = (struct msg_photo){
        .fetch = photo_fetch, .read = photo_read_cb, .ctx = wp, .file_id = wp->file_id};
}

/* ---- workers ---- */

/* A row that failed CHAT_MAX_HANDLE_ATTEMPTS times: marked done with an
 * apology, so the chat's later messages are not stuck behind it. */
static int give_up(struct chat_threads *t, struct db *db, struct arena *a,
                   const struct inbox_item *it)
{
    struct reply rep = {.text = "Sorry, Rivet could not handle that message. Please send it "
                                "again in a minute."};
    enum channel ch;
    int r = 0;

    /* Even if the apology cannot be stored, the row is let go. */
    if (it->chat_id[0] && channel_parse(t->ops->channel, &ch) == 0 &&
        db_savepoint(db, "apology") == 0 && channel_queue(db, a, ch, it->chat_id, &rep, NULL) < 0)
        r = db_rollback_to(db, "apology");
    return r < 0 ? r : db_inbox_done(db, it->id, "gave_up");
}

const struct msg_ask *chat_ask(struct chat_photo *wp)
{
    return assist_msg(wp->assist);
}

int chat_context(struct db *db, struct arena *a, const char *channel, const char *chat,
                 const char *remote_id, const char **context)
{
    int r = db_outbox_context(db, a, channel, chat, remote_id, context);

    if (r == -ENOENT) {
        *context = NULL;
        return 0;
    }
    return r;
}

static void *worker_main(void *arg)
{
    struct chat_threads *t = arg;
    const struct chat_ops *ops = t->ops;
    struct chat_photo wp = {.ops = ops, .t = t};
    struct db *db = NULL;
    void *ws = NULL;
    char name[24], ev_update[24], ev_failed[32], cid[CHAT_LOG_ID_MAX];
    int64_t skip[QUEUE_MAX_SKIP];
    int deferrals = 0; /* rows put back in a row */

    snprintf(name, sizeof(name), "%s-work-%d", ops->prefix,
             __atomic_add_fetch(&t->worker_seq, 1, __ATOMIC_RELAXED));
    snprintf(ev_update, sizeof(ev_update), "%s.update", ops->prefix);
    snprintf(ev_failed, sizeof(ev_failed), "%s.update_failed", ops->prefix);
    log_set_thread(name);
    if ((ops->worker_new && ops->worker_new(t->ch, &ws) < 0) ||
        photo_reader_new(t->cfg->llm, t->cfg->n_llm, NULL, &wp.pr) < 0 ||
        assist_new(t->cfg, t->cfg->llm, t->cfg->n_llm, &wp.assist) < 0 ||
        serve_db_connect(t->cfg, ops->prefix, &t->stop_work, &db) < 0 ||
        db_listen(db, QUEUE_INBOX_EVENT) < 0)
        goto out;
    wp.ws = ws;
    buf_init(&wp.bytes, 20u << 20);

    while (!__atomic_load_n(&t->stop_work, __ATOMIC_ACQUIRE)) {
        struct chat_handled h = {0};
        struct inbox_item it;
        bool retried = false;
        struct arena *a = NULL;
        long started = now_ms();
        int r, n_skip = 0;

        if (arena_new(&a) < 0) {
            nap(&t->stop_work, 100);
            continue;
        }
        /* No photo job free: claim past the photos known to wait for one. */
        pthread_mutex_lock(&jobs.lock);
        if (!job_free(t)) {
            n_skip = jobs.n_waiting;
            memcpy(skip, jobs.waiting, sizeof(skip[0]) * (size_t)n_skip);
        }
        pthread_mutex_unlock(&jobs.lock);
        r = db_begin(db);
        if (r == 0)
            r = db_inbox_claim_skip(db, a, ops->channel, skip, n_skip, &it);
        if (r == -ENOENT) {
            db_rollback(db);
            arena_free(a);
            db_wait_notify(db, 500);
            continue;
        }
        if (r < 0) {
            char q[300];
            db_rollback(db);
            metric_inc("rivet_db_errors_total", "component", "worker", NULL);
            log_warn("chat.claim_error", "channel=%s err=%s detail=%s", ops->channel, strerror(-r),
                     log_quote(q, sizeof(q), db_errmsg(db)));
            arena_free(a);
            nap(&t->stop_work, 1000);
            continue;
        }
        if (it.attempts >= CHAT_MAX_HANDLE_ATTEMPTS) {
            r = give_up(t, db, a, &it);
            h.outcome = "gave_up";
        } else {
            /* A savepoint, so that a failed handler's work is undone while
             * the row stays locked for recording the failed attempt: no
             * other worker takes it up before its backoff. */
            r = db_savepoint(db, "handler");
            assist_row(wp.assist, it.id);
            if (r == 0)
                r = ops->handle(t->ch, ws, &wp, db, a, &it, &h);
            buf_free(&wp.bytes);
            wp.file_id = wp.mime_type = NULL;
            wp.too_big = false;
            if (wp.deferred) {
                /* Its photo waits for a job: the row goes back as it was
                 * (no attempt counted), and the worker claims past it. */
                wp.deferred = false;
                db_rollback(db);
                photo_wait(t, db, a, &it);
                arena_free(a);
                /* Only rows put back, as many as can be remembered: the
                 * list cannot hold them all; wait for a job to end. */
                if (++deferrals >= QUEUE_MAX_SKIP) {
                    deferrals = 0;
                    db_wait_notify(db, 500);
                }
                continue;
            }
            if (r == 0)
                r = db_inbox_done(db, it.id, h.outcome);
        }
        deferrals = 0;
        if (r == 0) {
            r = db_commit(db);
        } else if (db_rollback_to(db, "handler") == 0 &&
                   db_inbox_retry_later(db, it.id, (int)backoff_ms(it.attempts, 1000, 30000)) ==
                       0 &&
                   db_commit(db) == 0) {
            retried = true; /* the failure is recorded with the lock held */
        } else {
            db_rollback(db);
        }
        if (r < 0) {
            char q[300];
            metric_inc("rivet_db_errors_total", "component", "worker", NULL);
            metric_inc("rivet_updates_handled_total", "channel", ops->channel, "outcome", "error",
                       NULL);
            log_error(ev_failed, "inbox=%lld chat=%s err=%s detail=%s attempt=%d", (long long)it.id,
                      chat_log_id(ops->channel, it.chat_id, cid, sizeof(cid)), strerror(-r),
                      log_quote(q, sizeof(q), db_errmsg(db)), it.attempts + 1);
            /* The connection is gone with the transaction: count the
             * attempt in a transaction of its own; the row stays pending. */
            if (!retried)
                db_inbox_retry_later(db, it.id, (int)backoff_ms(it.attempts, 1000, 30000));
        } else {
            long ms = now_ms() - started;

            metric_inc("rivet_updates_handled_total", "channel", ops->channel, "outcome",
                       h.outcome ? h.outcome : "ok", NULL);
            metric_observe("rivet_handler_seconds", ms / 1000.0, "channel", ops->channel, NULL);
            log_info(ev_update, "inbox=%lld chat=%s handler=%s outcome=%s ms=%ld", (long long)it.id,
                     chat_log_id(ops->channel, it.chat_id, cid, sizeof(cid)),
                     h.command ? h.command : "-", h.outcome ? h.outcome : "ok", ms);
        }
        job_end(&wp, db);
        waiting_remove(it.id);
        if (ops->handled)
            ops->handled(ws, &h, r == 0);
        arena_free(a);
    }
out:
    db_close(db);
    photo_reader_free(wp.pr);
    assist_free(wp.assist);
    free(wp.memo);
    if (ops->worker_free)
        ops->worker_free(ws);
    return NULL;
}

/* ---- senders ---- */

static void *sender_main(void *arg)
{
    static const char *const names[] = {"sent", "retry", "wait", "failed"};
    static const char *const results[] = {"sent", "retry", "rate_limited", "failed"};
    struct chat_threads *t = arg;
    const struct chat_ops *ops = t->ops;
    struct db *db = NULL;
    void *ss = NULL;
    char name[24], ev_sent[24], cid[CHAT_LOG_ID_MAX];
    int seq = __atomic_add_fetch(&t->sender_seq, 1, __ATOMIC_RELAXED);
    bool first = seq == 1;
    long last_purge = -3600 * 1000L;

    snprintf(name, sizeof(name), "%s-send-%d", ops->prefix, seq);
    snprintf(ev_sent, sizeof(ev_sent), "%s.sent", ops->prefix);
    log_set_thread(name);
    if ((ops->sender_new && ops->sender_new(t->ch, &t->abort_send, &ss) < 0) ||
        serve_db_connect(t->cfg, ops->prefix, &t->abort_send, &db) < 0 ||
        db_listen(db, QUEUE_OUTBOX_EVENT) < 0)
        goto out;

    while (!__atomic_load_n(&t->abort_send, __ATOMIC_ACQUIRE)) {
        struct outbox_item it;
        struct arena *a = NULL;
        long started = now_ms(), due;
        enum chat_sent s;
        int r, status;

        /* The first sender of each process deletes the channel's history
         * hourly (another process doing the same meanwhile only finds
         * less to delete). */
        if (first && started - last_purge > 3600 * 1000L) {
            long gone = 0;
            if (db_queue_purge(db, ops->channel, QUEUE_KEEP_DAYS, &gone) == 0 && gone > 0)
                log_info("chat.purged", "channel=%s rows=%ld days=%d", ops->channel, gone,
                         QUEUE_KEEP_DAYS);
            /* Proposals nobody decided: every channel's sender may find some. */
            if (db_drafts_purge(db, QUEUE_KEEP_DAYS, &gone) == 0 && gone > 0)
                log_info("chat.drafts_purged", "rows=%ld days=%d", gone, QUEUE_KEEP_DAYS);
            last_purge = started;
        }

        if (arena_new(&a) < 0) {
            nap(&t->abort_send, 100);
            continue;
        }
        r = db_begin(db);
        if (r == 0)
            r = db_outbox_claim(db, a, ops->channel, &it);
        if (r < 0) {
            db_rollback(db);
            arena_free(a);
            if (r != -ENOENT) {
                metric_inc("rivet_db_errors_total", "component", "sender", NULL);
                log_warn("chat.outbox_error", "channel=%s err=%s", ops->channel, strerror(-r));
                nap(&t->abort_send, 1000);
                continue;
            }
            if (db_outbox_next_due(db, ops->channel, &due) < 0)
                due = -1; /* nothing pending */
            /* At shutdown: done when nothing more can go out in time. */
            if (__atomic_load_n(&t->stop_send, __ATOMIC_ACQUIRE) &&
                (due < 0 || now_ms() + due > t->flush_deadline))
                break;
            /* Due now but not claimable means another sender has that
             * chat in hand: look again shortly, or when notified. */
            if (due < 0 || due > 1000)
                due = 1000;
            else if (due < 20)
                due = 20;
            db_wait_notify(db, (int)due);
            continue;
        }
        s = ops->deliver(t->ch, ss, db, a, &it, &status);
        r = db_commit(db);
        if (r < 0) {
            metric_inc("rivet_db_errors_total", "component", "sender", NULL);
            log_error("chat.outbox_error", "channel=%s outbox=%lld err=%s", ops->channel,
                      (long long)it.id, strerror(-r));
        }
        metric_inc("rivet_messages_sent_total", "channel", ops->channel, "result", results[s],
                   NULL);
        log_info(ev_sent, "outbox=%lld chat=%s method=%s outcome=%s status=%d attempt=%d ms=%ld",
                 (long long)it.id, chat_log_id(ops->channel, it.chat_id, cid, sizeof(cid)),
                 it.method, names[s], status, it.attempts + 1, now_ms() - started);
        arena_free(a);
    }
out:
    db_close(db);
    if (ops->sender_free)
        ops->sender_free(ss);
    return NULL;
}

/* ---- start and stop ---- */

int chat_threads_start(const struct config *cfg, const struct chat_ops *ops, void *ch,
                       int n_workers, int n_senders, struct chat_threads **ret)
{
    struct chat_threads *t = calloc(1, sizeof(*t));

    if (!t)
        return -ENOMEM;
    t->cfg = cfg;
    t->ops = ops;
    t->ch = ch;
    t->size = n_workers;
    pthread_mutex_lock(&jobs.lock);
    jobs.max = cfg->ocr_max_jobs;
    pthread_mutex_unlock(&jobs.lock);
    llm_set_max_in_flight(cfg->llm_max_in_flight);
    metrics_on_render(jobs_metrics);
    t->workers = calloc((size_t)n_workers + 1, sizeof(pthread_t));
    t->senders = calloc((size_t)n_senders + 1, sizeof(pthread_t));
    if (!t->workers || !t->senders) {
        free(t->workers);
        free(t->senders);
        free(t);
        return -ENOMEM;
    }
    for (; t->n_workers < n_workers; t->n_workers++)
        if (pthread_create(&t->workers[t->n_workers], NULL, worker_main, t) != 0)
            break;
    for (; t->n_senders < n_senders; t->n_senders++)
        if (pthread_create(&t->senders[t->n_senders], NULL, sender_main, t) != 0)
            break;
    if (t->n_workers < n_workers || t->n_senders < n_senders) {
        chat_threads_stop(t, 0);
        return -EAGAIN;
    }
    *ret = t;
    return 0;
}

void chat_threads_stop(struct chat_threads *t, int flush_s)
{
    long deadline;

    if (!t)
        return;
    __atomic_store_n(&t->stop_work, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < t->n_workers; i++)
        pthread_join(t->workers[i], NULL);
    /* Deliver what is due, for a few seconds at most. */
    deadline = now_ms() + flush_s * 1000L;
    t->flush_deadline = deadline;
    __atomic_store_n(&t->stop_send, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < t->n_senders; i++) {
        struct timespec ts;
        long left = deadline - now_ms();

        clock_gettime(CLOCK_REALTIME, &ts);
        if (left > 0) {
            ts.tv_sec += left / 1000;
            ts.tv_nsec += (left % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
        }
        if (left <= 0 || pthread_timedjoin_np(t->senders[i], NULL, &ts) != 0) {
            __atomic_store_n(&t->abort_send, 1, __ATOMIC_RELEASE);
            pthread_join(t->senders[i], NULL);
        }
    }
    free(t->workers);
    free(t->senders);
    free(t);
}
