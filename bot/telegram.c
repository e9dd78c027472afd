/* The Telegram channel: a poller that writes updates to the inbox before it
 * confirms them, workers that turn inbox rows into outbox rows in one
 * transaction with the change the handler made, and senders that deliver
 * the outbox within Telegram's limits. Any of them may die at any moment
 * (kill -9, a lost network, a database restart): nothing is lost, and
 * nothing is answered twice, except a message Telegram accepted in the
 * instant before its delivery was recorded. */
#include "telegram.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "arena.h"
#include "channels.h"
#include "serve.h"
#include "config.h"
#include "db.h"
#include "handlers.h"
#include "buf.h"
#include "log.h"
#include "photo.h"
#include "queue.h"
#include "text.h"
#include "tg.h"

#define CHANNEL "telegram"
/* pg_advisory_lock key of the one poller per database: "RVTG" */
#define POLL_LOCK 1381389383LL
/* Tries before an update that keeps failing is given up (with an apology). */
#define MAX_HANDLE_ATTEMPTS 5
/* Tries before a message that keeps failing to send is given up. */
#define MAX_SEND_ATTEMPTS 50
/* A poll that came back empty at once waits this long before the next. */
#define MIN_POLL_INTERVAL_MS 250

struct telegram {
    const struct config *cfg;
    volatile int *stop_main; /* the process is stopping */
    volatile int stop_poll, stop_work, stop_send, abort_send;
    long flush_deadline; /* now_ms() by which senders stop, once stop_send */
    char username[64];   /* the bot's, for /cmd@username in groups */

    pthread_t poller;
    pthread_mutex_t poll_lock; /* guards poll_api */
    struct tg_api *poll_api;
    pthread_t *workers, *senders;
    int n_workers, n_senders;
    bool poller_started;

    pthread_mutex_t rate_lock; /* the process-wide send budget */
    double tokens;
    struct timespec refilled;
};

/* ---- small helpers ---- */

/* ---- the poller ---- */

/* After a page that is not JSON: finds each "update_id":N in the raw body so
 * the poller can step past it instead of asking for it forever. */
static long long last_update_id_in(const char *body, size_t len)
{
    static const char key[] = "\"update_id\"";
    long long best = -1;

    for (const char *p = body; p && (size_t)(p - body) < len;) {
        p = memmem(p, len - (size_t)(p - body), key, sizeof(key) - 1);
        if (!p)
            break;
        p += sizeof(key) - 1;
        while ((size_t)(p - body) < len && (*p == ' ' || *p == ':'))
            p++;
        if ((size_t)(p - body) < len && *p >= '0' && *p <= '9') {
            long long v = strtoll(p, NULL, 10); /* LLONG_MAX on overflow */
            if (v > best)
                best = v;
        }
    }
    return best;
}

/* Stores one page of updates and the offset past it. Returns the number
 * stored, or -errno. */
static int store_page(struct db *db, struct arena *a, const json_t *updates, long long *offset)
{
    size_t n = json_array_size(updates);
    const char **ids = arena_alloc(a, sizeof(char *) * (n + 1));
    const char **chats = arena_alloc(a, sizeof(char *) * (n + 1));
    const char **payloads = arena_alloc(a, sizeof(char *) * (n + 1));
    long long next = *offset;
    int k = 0, r;

    if (!ids || !chats || !payloads)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *u = json_array_get(updates, i);
        char chat[32], *dump;
        int64_t id;

        if (tg_update_id(u, &id) < 0) {
            log_warn("tg.update_dropped", "reason=no_update_id");
            continue;
        }
        if (id + 1 > next)
            next = id + 1;
        tg_update_chat(u, chat, sizeof(chat));
        dump = json_dumps(u, JSON_COMPACT);
        if (!dump)
            return -ENOMEM;
        ids[k] = arena_printf(a, "%lld", (long long)id);
        chats[k] = arena_strdup(a, chat);
        payloads[k] = arena_strdup(a, dump);
        free(dump);
        if (!ids[k] || !chats[k] || !payloads[k])
            return -ENOMEM;
        k++;
    }
    r = db_inbox_store(db, CHANNEL, k, ids, chats, payloads, next);
    if (r < 0)
        return r;
    *offset = next;
    return k;
}

static void *poller_main(void *arg)
{
    struct telegram *t = arg;
    const struct config *cfg = t->cfg;
    struct tg_api *api = NULL;
    struct db *db = NULL;
    bool leader = false;
    int failures = 0;
    /* The offset this process asks with. It starts at 0 rather than at the
     * stored one: Telegram keeps what was not confirmed, whatever its ids,
     * and after a week without updates it restarts update_id at a random
     * value, which a stored high offset would confirm unseen. Updates
     * stored before but never confirmed come again and are ignored by the
     * inbox's unique key. */
    long long offset = 0;
    int limit = 100; /* 1 while stepping through a page that would not parse */
    time_t last_purge = 0;

    log_set_thread("tg-poll");
    if (tg_api_new(cfg->telegram_api_url, cfg->telegram_token, &t->stop_poll, &api) < 0)
        goto out;
    pthread_mutex_lock(&t->poll_lock);
    t->poll_api = api;
    pthread_mutex_unlock(&t->poll_lock);
    if (serve_db_connect(cfg, "tg", &t->stop_poll, &db) < 0)
        goto out;

    while (!t->stop_poll) {
        struct tg_reply rep;
        struct arena *a = NULL;
        long started;
        json_t *params;
        bool got;
        int r, n = 0;

        /* Re-taking the lock each round also notices a reconnected
         * session that lost it (advisory locks are re-entrant). */
        r = db_try_lock(db, POLL_LOCK, &got);
        if (r < 0 || !got) {
            if (leader)
                log_warn("tg.poll_standby", "reason=%s",
                         r < 0 ? "database" : "another process polls");
            leader = false;
            nap(&t->stop_poll, 2000);
            continue;
        }
        if (!leader) {
            log_info("tg.poll_leader", "msg=\"this process polls Telegram\"");
            offset = 0;
        }
        leader = true;
        if (time(NULL) - last_purge > 3600) {
            long gone = 0;
            if (db_queue_purge(db, CHANNEL, QUEUE_KEEP_DAYS, &gone) == 0 && gone > 0)
                log_info("tg.purged", "rows=%ld days=%d", gone, QUEUE_KEEP_DAYS);
            last_purge = time(NULL);
        }
        params = json_pack("{s:I, s:i, s:i, s:[s,s,s,s]}", "offset", (json_int_t)offset, "timeout",
                           limit > 1 ? cfg->telegram_poll_timeout_s : 0, "limit", limit,
                           "allowed_updates", "message", "edited_message", "callback_query",
                           "my_chat_member");
        started = now_ms();
        r = tg_api_call(api, "getUpdates", params, cfg->telegram_poll_timeout_s + 15L, &rep);
        json_decref(params);
        if (r == -ECANCELED)
            break;
        if (r == -EBADMSG) {
            long long last = last_update_id_in(rep.body, rep.body_len);

            log_warn("tg.poll_bad_page", "status=%ld bytes=%zu limit=%d", rep.http_status,
                     rep.body_len, limit);
            tg_reply_clear(&rep);
            if (limit > 1 && last >= 0) {
                /* Ask for one update at a time: the good ones before the
                 * bad one are not lost with it. */
                limit = 1;
                continue;
            }
            /* One update nobody can read: step past it, if its id is sane. */
            if (last >= offset && last < TG_MAX_UPDATE_ID &&
                db_inbox_store(db, CHANNEL, 0, NULL, NULL, NULL, last + 1) == 0) {
                log_warn("tg.update_dropped", "reason=unparseable update=%lld", last);
                offset = last + 1;
                limit = 100;
                continue;
            }
            nap(&t->stop_poll, backoff_ms(failures++, 500, 5000));
            continue;
        }
        if (r < 0) {
            log_warn("tg.poll_error", "err=%s attempt=%d", strerror(-r), failures + 1);
            tg_reply_clear(&rep);
            nap(&t->stop_poll, backoff_ms(failures++, 500, 30000));
            continue;
        }
        if (!rep.ok) {
            char q[300];
            long wait =
                rep.retry_after > 0 ? rep.retry_after * 1000L : backoff_ms(failures, 1000, 30000);
            if (rep.error_code == 409)
                log_warn("tg.poll_conflict",
                         "status=409 detail=%s msg=\"another getUpdates or a webhook is "
                         "active for this token; retrying\"",
                         log_quote(q, sizeof(q), rep.description));
            else if (rep.error_code == 401 || rep.error_code == 404)
                log_error("tg.poll_refused", "status=%d msg=\"TELEGRAM_BOT_TOKEN refused\"",
                          rep.error_code);
            else
                log_warn("tg.poll_failed", "status=%d detail=%s", rep.error_code,
                         log_quote(q, sizeof(q), rep.description));
            tg_reply_clear(&rep);
            failures++;
            nap(&t->stop_poll, wait);
            continue;
        }
        failures = 0;
        if (limit == 1 && json_array_size(rep.result) == 0)
            limit = 100; /* the unreadable update is gone: back to whole pages */
        if (json_is_array(rep.result) && json_array_size(rep.result) > 0) {
            if (arena_new(&a) == 0) {
                n = store_page(db, a, rep.result, &offset);
                arena_free(a);
            } else {
                n = -ENOMEM;
            }
            if (n < 0) {
                char q[300];
                log_error("tg.inbox_error", "err=%s detail=%s", strerror(-n),
                          log_quote(q, sizeof(q), db_errmsg(db)));
                nap(&t->stop_poll, backoff_ms(failures++, 500, 10000));
            } else {
                log_debug("tg.polled", "updates=%d offset=%lld", n, offset);
            }
        }
        tg_reply_clear(&rep);
        /* A server that answers at once with nothing must not make us spin. */
        if (n == 0 && now_ms() - started < MIN_POLL_INTERVAL_MS)
            nap(&t->stop_poll, MIN_POLL_INTERVAL_MS - (now_ms() - started));
    }
out:
    if (leader && db)
        db_unlock(db, POLL_LOCK);
    db_close(db);
    pthread_mutex_lock(&t->poll_lock);
    t->poll_api = NULL;
    pthread_mutex_unlock(&t->poll_lock);
    tg_api_free(api);
    return NULL;
}

/* ---- workers ---- */

/* "/equip@RivetBot list" in a group: addressed to this bot? Commands for
 * other bots in the same group are none of Rivet's business. */
static bool for_this_bot(const struct telegram *t, const char *text)
{
    const char *at, *end;

    if (!text || text[0] != '/')
        return false;
    end = text + strcspn(text, " \t\n");
    at = memchr(text, '@', (size_t)(end - text));
    if (!at)
        return true;
    return (size_t)(end - at - 1) == strlen(t->username) &&
           strncasecmp(at + 1, t->username, (size_t)(end - at - 1)) == 0;
}

struct handled {
    const char *outcome;
    const char *command;
    const char *callback_id; /* to answer after the commit */
    const char *callback_text;
};

/* What a worker needs to fetch and read a photo for the handler. */
struct worker_photo {
    struct tg_api *api;
    struct photo_reader *pr;
    const char *file_id, *mime_type;
    bool too_big; /* Telegram said the file is over 20 MB */
    struct buf bytes;
    /* The photo work of the inbox row being handled (inbox), kept when the
     * row's transaction fails so that its retry by this worker neither
     * downloads nor reads (nor pays an LLM) again. */
    int64_t inbox, memo_inbox;
    char memo_sha[65];
    struct photo_result *memo; /* malloc'd; valid when memo_read */
    bool memo_read;
};

/* Seconds a photo's download may take. */
#define PHOTO_DOWNLOAD_S 60

/* Downloads the photo into wp->bytes. */
static int photo_download(struct worker_photo *wp, const char **why)
{
    int r = tg_api_get_file(wp->api, wp->file_id, PHOTO_DOWNLOAD_S, TG_MAX_FILE, &wp->bytes, why);

    if (r < 0) {
        log_warn("tg.photo_download", "err=%s", strerror(-r));
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
    struct worker_photo *wp = ctx;
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
        *why = "Rivet could not get that file from Telegram; please send it again.";
        return -EBADMSG;
    }
    if (wp->mime_type && strncmp(wp->mime_type, "image/", 6) != 0) {
        *why = "Rivet reads photos of nameplates: send a photo or an image file (JPEG, PNG, "
               "WebP or TIFF).";
        return -ENOTSUP;
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
    struct worker_photo *wp = ctx;
    int r;

    if (wp->memo_inbox == wp->inbox && wp->memo_read) {
        *out = *wp->memo;
        return 0; /* a retry: read before */
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

        log_info("photo.read", "ms=%ld ocr_ms=%ld passes=%d confidence=%.2f llm=%s%s%s%s%s",
                 out->total_ms, out->ocr.total_ms, out->ocr.passes, (double)out->np.confidence,
                 out->llm_used    ? "used"
                 : out->llm_asked ? "failed"
                                  : "no",
                 out->llm_error ? " llm_err=" : "", out->llm_error ? strerror(-out->llm_error) : "",
                 out->llm_error ? " detail=" : "",
                 out->llm_error ? log_quote(q, sizeof(q), out->llm_detail) : "");
    } else
        log_info("photo.unreadable", "err=%s", strerror(-r));
    return r;
}

/* Handles one inbox row inside the caller's transaction. Returns 0, or a
 * database error for the caller to roll back and retry. */
static int handle_update(struct telegram *t, struct db *db, struct arena *a,
                         struct worker_photo *wp, const struct inbox_item *it, struct handled *h)
{
    struct msg_photo photo = {.fetch = photo_fetch, .read = photo_read_cb, .ctx = wp};
    struct tg_update u;
    struct replies out;
    struct msg m;
    json_error_t jerr;
    json_t *root;
    const char *text, *chat;
    int64_t edit_id = 0;
    bool group;
    int r;

    root = json_loads(it->payload, JSON_ALLOW_NUL, &jerr);
    r = root ? tg_update_parse(a, root, &u) : -EBADMSG;
    json_decref(root);
    if (r < 0) {
        h->outcome = "bad_update";
        return 0;
    }
    chat = u.chat_id ? arena_printf(a, "%lld", (long long)u.chat_id) : NULL;
    if (u.kind == TG_CALLBACK) {
        h->callback_id = u.callback_id;
        if (!chat || !u.callback_data) {
            h->outcome = "stale_button";
            h->callback_text = "This button no longer works.";
            return 0;
        }
    }
    switch (u.kind) {
    case TG_EDITED:
    case TG_CHANNEL_POST:
    case TG_OTHER:
        /* Acting on an edit could open a second work order: ignored. */
        h->outcome = "ignored";
        return 0;
    case TG_MEMBER:
        h->outcome = "member";
        if (!chat || !u.member_status)
            return 0;
        return db_chat_set_active(db, CHANNEL, chat,
                                  strcmp(u.member_status, "kicked") != 0 &&
                                      strcmp(u.member_status, "left") != 0);
    default:
        break;
    }
    if (!chat || !u.from_id || u.from_bot) {
        h->outcome = "ignored";
        return 0;
    }
    if (strcmp(u.chat_type, "channel") == 0) {
        h->outcome = "ignored";
        return 0;
    }
    /* A chat type Telegram may add later is paced like a group. */
    if (strcmp(u.chat_type, "private") != 0 && strcmp(u.chat_type, "group") != 0 &&
        strcmp(u.chat_type, "supergroup") != 0)
        u.chat_type = "group";
    group = strcmp(u.chat_type, "private") != 0;
    text = u.kind == TG_CALLBACK ? u.callback_data : u.text;
    if (u.kind == TG_CALLBACK && text[0] == REPLY_EDIT_MARK) {
        text++;
        edit_id = u.message_id;
    }
    /* In a group Rivet answers commands for it, not the conversation (a
     * photo there needs a caption such as /photo@bot). */
    if (group && u.kind != TG_CALLBACK && (!text || !for_this_bot(t, text))) {
        h->outcome = "ignored";
        return 0;
    }
    r = db_chat_seen(db, CHANNEL, chat, u.chat_type);
    if (r < 0)
        return r;

    m = (struct msg){.channel = CHANNEL_TELEGRAM,
                     .sender_id = arena_printf(a, "%lld", (long long)u.from_id),
                     .sender_name = u.from_name,
                     .text = text,
                     .text_len = text ? strlen(text) : 0};
    if (text && u.kind != TG_CALLBACK)
        m.text_len = u.text_len; /* may hold a NUL: handle_message refuses it */
    if (u.kind == TG_MESSAGE && u.media &&
        (strcmp(u.media, "photo") == 0 || strcmp(u.media, "document") == 0)) {
        wp->file_id = u.file_id;
        wp->mime_type = u.mime_type;
        wp->too_big = u.file_too_big;
        wp->inbox = it->id;
        photo.file_id = u.file_id;
        m.photo = &photo;
    }
    replies_init(&out);
    r = handle_message(db, a, &m, &out);
    h->command = out.command;
    if (r < 0)
        return r;
    for (const struct reply *rep = out.head; rep; rep = rep->next) {
        if (rep->chat_id) /* another chat's: below */
            continue;
        r = tg_queue_reply(db, a, chat, rep, edit_id, it->id, NULL);
        if (r < 0)
            return r;
        edit_id = 0;
    }
    r = channel_queue_others(db, a, &out);
    if (r < 0)
        return r;
    h->outcome = "ok";
    return 0;
}

static void answer_callback(struct tg_api *api, const char *id, const char *text)
{
    struct tg_reply rep;
    json_t *p = text ? json_pack("{s:s, s:s}", "callback_query_id", id, "text", text)
                     : json_pack("{s:s}", "callback_query_id", id);
    int r = tg_api_call(api, "answerCallbackQuery", p, 10, &rep);

    if (r < 0 || !rep.ok)
        log_warn("tg.callback_answer", "err=%s status=%d", r < 0 ? strerror(-r) : "refused",
                 rep.error_code);
    json_decref(p);
    tg_reply_clear(&rep);
}

/* An update that failed MAX_HANDLE_ATTEMPTS times: marked done with an
 * apology, so the chat's later messages are not stuck behind it. */
static int give_up(struct db *db, struct arena *a, const struct inbox_item *it)
{
    struct reply rep = {.text = "Sorry, Rivet could not handle that message. Please send it "
                                "again in a minute."};
    int r = 0;

    /* Even if the apology cannot be stored, the update is let go. */
    if (it->chat_id[0] && db_savepoint(db, "apology") == 0 &&
        tg_queue_reply(db, a, it->chat_id, &rep, 0, it->id, NULL) < 0)
        r = db_rollback_to(db, "apology");
    return r < 0 ? r : db_inbox_done(db, it->id, "gave_up");
}

static void *worker_main(void *arg)
{
    struct telegram *t = arg;
    struct worker_photo wp = {0};
    struct tg_api *api = NULL;
    struct db *db = NULL;
    char name[16];
    static int counter;

    snprintf(name, sizeof(name), "worker-%d", __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
    log_set_thread(name);
    if (tg_api_new(t->cfg->telegram_api_url, t->cfg->telegram_token, NULL, &api) < 0 ||
        photo_reader_new(t->cfg->llm, t->cfg->n_llm, NULL, &wp.pr) < 0 ||
        serve_db_connect(t->cfg, "tg", &t->stop_work, &db) < 0 ||
        db_listen(db, QUEUE_INBOX_EVENT) < 0)
        goto out;
    wp.api = api;
    buf_init(&wp.bytes, TG_MAX_FILE);

    while (!t->stop_work) {
        struct handled h = {0};
        struct inbox_item it;
        bool retried = false;
        struct arena *a = NULL;
        long started = now_ms();
        int r;

        if (arena_new(&a) < 0) {
            nap(&t->stop_work, 100);
            continue;
        }
        r = db_begin(db);
        if (r == 0)
            r = db_inbox_claim(db, a, CHANNEL, &it);
        if (r == -ENOENT) {
            db_rollback(db);
            arena_free(a);
            db_wait_notify(db, 500);
            continue;
        }
        if (r < 0) {
            char q[300];
            db_rollback(db);
            log_warn("tg.claim_error", "err=%s detail=%s", strerror(-r),
                     log_quote(q, sizeof(q), db_errmsg(db)));
            arena_free(a);
            nap(&t->stop_work, 1000);
            continue;
        }
        if (it.attempts >= MAX_HANDLE_ATTEMPTS) {
            r = give_up(db, a, &it);
            h.outcome = "gave_up";
        } else {
            /* A savepoint, so that a failed handler's work is undone while
             * the row stays locked for recording the failed attempt: no
             * other worker takes it up before its backoff. */
            r = db_savepoint(db, "handler");
            if (r == 0)
                r = handle_update(t, db, a, &wp, &it, &h);
            buf_free(&wp.bytes);
            wp.file_id = wp.mime_type = NULL;
            wp.too_big = false;
            if (r == 0)
                r = db_inbox_done(db, it.id, h.outcome);
        }
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
            log_error("tg.update_failed", "inbox=%lld chat=%s err=%s detail=%s attempt=%d",
                      (long long)it.id, it.chat_id, strerror(-r),
                      log_quote(q, sizeof(q), db_errmsg(db)), it.attempts + 1);
            /* The connection is gone with the transaction: count the
             * attempt in a transaction of its own; the row stays pending. */
            if (!retried)
                db_inbox_retry_later(db, it.id, (int)backoff_ms(it.attempts, 1000, 30000));
            if (h.callback_id)
                answer_callback(api, h.callback_id, "Sorry, that did not work. Try again.");
        } else {
            log_info("tg.update", "inbox=%lld chat=%s handler=%s outcome=%s ms=%ld",
                     (long long)it.id, it.chat_id[0] ? it.chat_id : "-",
                     h.command ? h.command : "-", h.outcome, now_ms() - started);
            if (h.callback_id)
                answer_callback(api, h.callback_id, h.callback_text);
        }
        arena_free(a);
    }
out:
    db_close(db);
    photo_reader_free(wp.pr);
    free(wp.memo);
    tg_api_free(api);
    return NULL;
}

/* ---- senders ---- */

/* Waits for the process-wide budget (TELEGRAM_GLOBAL_PER_SECOND). */
static void take_token(struct telegram *t)
{
    for (;;) {
        struct timespec now;
        double wait_s;

        pthread_mutex_lock(&t->rate_lock);
        clock_gettime(CLOCK_MONOTONIC, &now);
        t->tokens += ((double)(now.tv_sec - t->refilled.tv_sec) +
                      (double)(now.tv_nsec - t->refilled.tv_nsec) / 1e9) *
                     t->cfg->telegram_global_per_s;
        if (t->tokens > t->cfg->telegram_global_per_s)
            t->tokens = t->cfg->telegram_global_per_s;
        t->refilled = now;
        if (t->tokens >= 1) {
            t->tokens -= 1;
            pthread_mutex_unlock(&t->rate_lock);
            return;
        }
        wait_s = (1 - t->tokens) / t->cfg->telegram_global_per_s;
        pthread_mutex_unlock(&t->rate_lock);
        nap(&t->abort_send, (long)(wait_s * 1000) + 1);
        if (t->abort_send)
            return;
    }
}

/* The gap before a chat's next message: 1 s in private chats, 3 s in
 * groups (20 a minute), as configured. */
static int chat_gap_ms(const struct telegram *t, const char *kind)
{
    if (strcmp(kind, "private") == 0)
        return t->cfg->telegram_chat_gap_ms;
    return 60000 / t->cfg->telegram_group_per_min;
}

enum sent { SENT, RETRY, WAIT, FAILED };

/* Delivers one claimed message. Writes what happened to the outbox row in
 * the caller's transaction. */
static enum sent deliver(struct telegram *t, struct db *db, struct arena *a, struct tg_api *api,
                         const struct outbox_item *it, int *status)
{
    json_error_t jerr;
    json_t *p = json_loads(it->payload, JSON_ALLOW_NUL, &jerr), *plain, *ref;
    const char *method = it->method;
    struct tg_reply rep;
    char err[300];
    enum sent s;
    int r;

    *status = 0;
    if (!p) {
        db_outbox_failed(db, it, "payload is not JSON");
        return FAILED;
    }
    ref = json_object_get(p, "rivet_edit_outbox");
    if (json_is_integer(ref)) {
        /* An edit of a message another row delivered (the copies of an
         * alarm): that row went first, the chat's rows going in order. */
        const char *remote;
        r = db_outbox_remote_id(db, a, json_integer_value(ref), &remote);
        if (r < 0 && r != -ENOENT) {
            json_decref(p);
            db_outbox_retry(db, it, 1000,
                            r == -EAGAIN ? "the message to edit is not sent yet" : db_errmsg(db));
            return RETRY;
        }
        if (r < 0) {
            json_decref(p);
            db_outbox_failed(db, it, "the message to edit was never delivered");
            return FAILED;
        }
        json_object_set_new(p, "message_id", json_integer(strtoll(remote, NULL, 10)));
        json_object_del(p, "rivet_edit_outbox");
    }
    plain = json_incref(json_object_get(p, "rivet_plain"));
    json_object_del(p, "rivet_plain");
    take_token(t);
    r = tg_api_call(api, method, p, 15, &rep);
    for (int again = 0; r == 0 && !rep.ok && rep.error_code == 400 && again < 2; again++) {
        if (strcasestr(rep.description, "can't parse entities") && json_is_string(plain)) {
            /* Send the text as it is, without HTML. */
            json_object_set(p, "text", plain);
            json_object_del(p, "parse_mode");
        } else if (strcmp(method, "editMessageText") == 0 &&
                   (strcasestr(rep.description, "message to edit not found") ||
                    strcasestr(rep.description, "message can't be edited"))) {
            /* The page to replace is gone: send it as a new message. */
            method = "sendMessage";
            json_object_del(p, "message_id");
        } else {
            break;
        }
        tg_reply_clear(&rep);
        r = tg_api_call(api, method, p, 15, &rep);
    }
    json_decref(plain);
    json_decref(p);

    if (r < 0) {
        snprintf(err, sizeof(err), "%s", strerror(-r));
        s = it->attempts + 1 >= MAX_SEND_ATTEMPTS ? FAILED : RETRY;
    } else if (rep.ok || (rep.error_code == 400 && strcasestr(rep.description, "not modified"))) {
        const json_t *id =
            json_is_object(rep.result) ? json_object_get(rep.result, "message_id") : NULL;
        char remote[32] = "";
        if (json_is_integer(id))
            snprintf(remote, sizeof(remote), "%lld", (long long)json_integer_value(id));
        *status = 200;
        db_outbox_sent(db, CHANNEL, it, remote[0] ? remote : NULL, chat_gap_ms(t, it->chat_kind));
        tg_reply_clear(&rep);
        return SENT;
    } else {
        *status = rep.error_code;
        snprintf(err, sizeof(err), "%d %s", rep.error_code, rep.description);
        if (rep.error_code == 429)
            s = WAIT;
        else if (rep.error_code >= 500 || rep.error_code == 401 || rep.error_code == 404)
            s = it->attempts + 1 >= MAX_SEND_ATTEMPTS ? FAILED : RETRY;
        else
            s = FAILED; /* 400, 403: this message will never go through */
    }
    switch (s) {
    case WAIT:
        db_outbox_chat_wait(db, CHANNEL, it, rep.retry_after > 0 ? rep.retry_after : 1, err);
        break;
    case RETRY:
        db_outbox_retry(db, it, (int)backoff_ms(it->attempts, 500, 30000), err);
        break;
    default:
        db_outbox_failed(db, it, err);
        if (rep.error_code == 403) /* blocked, kicked: nothing more goes there */
            db_chat_blocked(db, CHANNEL, it->chat_id, err);
        break;
    }
    tg_reply_clear(&rep);
    return s;
}

static void *sender_main(void *arg)
{
    static const char *const names[] = {"sent", "retry", "wait", "failed"};
    struct telegram *t = arg;
    struct tg_api *api = NULL;
    struct db *db = NULL;
    char name[16];
    static int counter;

    snprintf(name, sizeof(name), "sender-%d", __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
    log_set_thread(name);
    if (tg_api_new(t->cfg->telegram_api_url, t->cfg->telegram_token, &t->abort_send, &api) < 0 ||
        serve_db_connect(t->cfg, "tg", &t->abort_send, &db) < 0 ||
        db_listen(db, QUEUE_OUTBOX_EVENT) < 0)
        goto out;

    while (!t->abort_send) {
        struct outbox_item it;
        struct arena *a = NULL;
        long started = now_ms(), due;
        enum sent s;
        int r, status;

        if (arena_new(&a) < 0) {
            nap(&t->abort_send, 100);
            continue;
        }
        r = db_begin(db);
        if (r == 0)
            r = db_outbox_claim(db, a, CHANNEL, &it);
        if (r < 0) {
            db_rollback(db);
            arena_free(a);
            if (r != -ENOENT) {
                log_warn("tg.outbox_error", "err=%s", strerror(-r));
                nap(&t->abort_send, 1000);
                continue;
            }
            if (db_outbox_next_due(db, CHANNEL, &due) < 0)
                due = -1; /* nothing pending */
            /* At shutdown: done when nothing more can go out in time. */
            if (t->stop_send && (due < 0 || now_ms() + due > t->flush_deadline))
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
        s = deliver(t, db, a, api, &it, &status);
        r = db_commit(db);
        if (r < 0)
            log_error("tg.outbox_error", "outbox=%lld err=%s", (long long)it.id, strerror(-r));
        log_info("tg.sent", "outbox=%lld chat=%s method=%s outcome=%s status=%d attempt=%d ms=%ld",
                 (long long)it.id, it.chat_id, it.method, names[s], status, it.attempts + 1,
                 now_ms() - started);
        arena_free(a);
    }
out:
    db_close(db);
    tg_api_free(api);
    return NULL;
}

/* ---- start and stop ---- */

static const char *const menu[][2] = {
    {"equip", "Equipment: list, search, view, add"},
    {"wo", "Work orders: list, view, new, status, note"},
    {"stats", "The plant at a glance"},
    {"help", "All commands with examples"},
    {"start", "Join with an invite code"},
};

/* getMe until it answers: the bot's username, and a token check. */
static int hello(struct telegram *t, struct tg_api *api)
{
    for (int attempt = 0; !*t->stop_main; attempt++) {
        struct tg_reply rep;
        int r = tg_api_call(api, "getMe", NULL, 15, &rep);

        if (r == 0 && rep.ok) {
            const json_t *u = json_object_get(rep.result, "username");
            snprintf(t->username, sizeof(t->username), "%s",
                     json_is_string(u) ? json_string_value(u) : "");
            tg_reply_clear(&rep);
            return 0;
        }
        if (r == 0 && (rep.error_code == 401 || rep.error_code == 404)) {
            log_error("tg.token_refused",
                      "status=%d msg=\"Telegram refused TELEGRAM_BOT_TOKEN; check it with "
                      "@BotFather\"",
                      rep.error_code);
            tg_reply_clear(&rep);
            return -EACCES;
        }
        log_warn("tg.unreachable", "err=%s status=%d attempt=%d", r < 0 ? strerror(-r) : "refused",
                 r == 0 ? rep.error_code : 0, attempt + 1);
        tg_reply_clear(&rep);
        nap(t->stop_main, backoff_ms(attempt, 1000, 30000));
    }
    return -ECANCELED;
}

static void set_menu(struct tg_api *api)
{
    struct tg_reply rep;
    json_t *cmds = json_array(), *p;
    int r;

    for (size_t i = 0; i < sizeof(menu) / sizeof(menu[0]); i++)
        json_array_append_new(
            cmds, json_pack("{s:s, s:s}", "command", menu[i][0], "description", menu[i][1]));
    p = json_pack("{s:o}", "commands", cmds);
    r = tg_api_call(api, "setMyCommands", p, 15, &rep);
    if (r < 0 || !rep.ok)
        log_warn("tg.menu", "err=%s status=%d", r < 0 ? strerror(-r) : "refused",
                 r == 0 ? rep.error_code : 0);
    json_decref(p);
    tg_reply_clear(&rep);
}

int telegram_start(const struct config *cfg, volatile int *stop, struct telegram **ret)
{
    struct telegram *t = calloc(1, sizeof(*t));
    struct tg_api *api = NULL;
    int r;

    if (!t)
        return -ENOMEM;
    t->cfg = cfg;
    t->stop_main = stop;
    pthread_mutex_init(&t->rate_lock, NULL);
    pthread_mutex_init(&t->poll_lock, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t->refilled);
    t->tokens = 1;
    r = tg_api_new(cfg->telegram_api_url, cfg->telegram_token, stop, &api);
    if (r < 0)
        goto fail;
    r = hello(t, api);
    if (r < 0)
        goto fail;
    set_menu(api);
    tg_api_free(api);
    api = NULL;

    t->workers = calloc((size_t)cfg->workers, sizeof(pthread_t));
    t->senders = calloc((size_t)cfg->telegram_senders, sizeof(pthread_t));
    if (!t->workers || !t->senders) {
        r = -ENOMEM;
        goto fail;
    }
    r = -pthread_create(&t->poller, NULL, poller_main, t);
    if (r < 0)
        goto fail;
    t->poller_started = true;
    for (; t->n_workers < cfg->workers; t->n_workers++)
        if (pthread_create(&t->workers[t->n_workers], NULL, worker_main, t) != 0)
            break;
    for (; t->n_senders < cfg->telegram_senders; t->n_senders++)
        if (pthread_create(&t->senders[t->n_senders], NULL, sender_main, t) != 0)
            break;
    log_info("tg.ready", "bot=%s workers=%d senders=%d poll_timeout_s=%d", t->username,
             t->n_workers, t->n_senders, cfg->telegram_poll_timeout_s);
    *ret = t;
    return 0;
fail:
    tg_api_free(api);
    telegram_stop(t);
    return r;
}

void telegram_stop(struct telegram *t)
{
    long deadline;

    if (!t)
        return;
    /* Polling and working stop together; a long poll is cut short. */
    t->stop_poll = 1;
    t->stop_work = 1;
    pthread_mutex_lock(&t->poll_lock);
    if (t->poll_api)
        tg_api_interrupt(t->poll_api);
    pthread_mutex_unlock(&t->poll_lock);
    if (t->poller_started)
        pthread_join(t->poller, NULL);
    for (int i = 0; i < t->n_workers; i++)
        pthread_join(t->workers[i], NULL);
    /* Deliver what is due, for a few seconds at most. */
    deadline = now_ms() + t->cfg->telegram_flush_s * 1000L;
    t->flush_deadline = deadline;
    t->stop_send = 1;
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
            t->abort_send = 1;
            pthread_join(t->senders[i], NULL);
        }
    }
    log_info("tg.stopped", "msg=\"polling stopped, workers finished, outbox flushed\"");
    pthread_mutex_destroy(&t->rate_lock);
    pthread_mutex_destroy(&t->poll_lock);
    free(t->workers);
    free(t->senders);
    free(t);
}
