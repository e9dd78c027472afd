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

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "arena.h"
#include "channels.h"
#include "chat.h"
#include "serve.h"
#include "config.h"
#include "db.h"
#include "handlers.h"
#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "photo.h"
#include "queue.h"
#include "text.h"
#include "tg.h"

#define CHANNEL "telegram"
/* pg_advisory_lock key of the one poller per database: "RVTG" */
#define POLL_LOCK 1381389383LL
/* A poll that came back empty at once waits this long before the next. */
#define MIN_POLL_INTERVAL_MS 250

struct telegram {
    const struct config *cfg;
    volatile int *stop_main; /* the process is stopping */
    volatile int stop_poll;
    volatile int *abort_send; /* the senders' stop-at-once flag (chat.c's) */
    char username[64];        /* the bot's, for /cmd@username in groups */

    pthread_t poller;
    pthread_mutex_t poll_lock; /* guards poll_api */
    struct tg_api *poll_api;
    bool poller_started;
    struct chat_threads *threads;

    /* For /healthz (now_ms() values; written by one thread, read by any). */
    volatile long poll_ok_at, poll_failing_since, token_refused_at;
    volatile int polling; /* this process holds the poll lock */
    long poll_loop_at;    /* the poller's last turn, for telegram_alive() */

    /* The bot-wide send budget (TELEGRAM_GLOBAL_PER_SECOND) is a row in
     * the database that every process's senders reserve slots from, on a
     * connection of its own in autocommit (see take_token). */
    pthread_mutex_t budget_lock; /* guards budget_db */
    struct db *budget_db;
};

/* ---- small helpers ---- */

/* ---- the poller ---- */

/* The updates Rivet asks for, by getUpdates or by webhook. */
static json_t *allowed_updates(void)
{
    return json_pack("[s,s,s,s]", "message", "edited_message", "callback_query", "my_chat_member");
}

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
 * stored, or -errno; *dups counts the updates the inbox already had (given
 * again after a crash before the offset confirmed them, or to a new leader,
 * which starts at offset 0). */
static int store_page(struct db *db, struct arena *a, const json_t *updates, long long *offset,
                      int *dups)
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
    /* The page in one transaction, the offset after it: the poller does
     * not start from the stored offset (see poller_main), so a crash in
     * between loses nothing. */
    *dups = 0;
    r = db_begin(db);
    for (int i = 0; r == 0 && i < k; i++) {
        bool dup = false;

        r = db_inbox_add(db, CHANNEL, ids[i], chats[i], payloads[i], &dup);
        if (r == 0 && dup)
            (*dups)++;
    }
    if (r == 0 && k > *dups)
        r = db_inbox_notify(db);
    if (r == 0)
        r = db_commit(db);
    else
        db_rollback(db);
    if (r == 0)
        r = db_inbox_store(db, CHANNEL, 0, NULL, NULL, NULL, next);
    if (r < 0)
        return r;
    *offset = next;
    return k - *dups;
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

    log_set_thread("tg-poll");
    if (tg_api_new(cfg->telegram_api_url, cfg->telegram_token, &t->stop_poll, &api) < 0)
        goto out;
    pthread_mutex_lock(&t->poll_lock);
    t->poll_api = api;
    pthread_mutex_unlock(&t->poll_lock);
    if (serve_db_connect(cfg, "tg", &t->stop_poll, &db) < 0)
        goto out;

    while (!__atomic_load_n(&t->stop_poll, __ATOMIC_ACQUIRE)) {
        struct tg_reply rep;
        struct arena *a = NULL;
        long started;
        json_t *params;
        bool got;
        int r, n = 0, dups = 0;

        __atomic_store_n(&t->poll_loop_at, now_ms(), __ATOMIC_RELAXED); /* telegram_alive() */

        /* Re-taking the lock each round also notices a reconnected
         * session that lost it (advisory locks are re-entrant). */
        r = db_try_lock(db, POLL_LOCK, &got);
        if (r < 0 || !got) {
            if (leader)
                log_warn("tg.poll_standby", "reason=%s",
                         r < 0 ? "database" : "another process polls");
            leader = false;
            __atomic_store_n(&t->polling, 0, __ATOMIC_RELAXED);
            nap(&t->stop_poll, 2000);
            continue;
        }
        if (!leader) {
            log_info("tg.poll_leader", "msg=\"this process polls Telegram\"");
            offset = 0;
            __atomic_store_n(&t->poll_ok_at, now_ms(), __ATOMIC_RELAXED);
        }
        leader = true;
        __atomic_store_n(&t->polling, 1, __ATOMIC_RELAXED);
        params = json_pack("{s:I, s:i, s:i, s:o}", "offset", (json_int_t)offset, "timeout",
                           limit > 1 ? cfg->telegram_poll_timeout_s : 0, "limit", limit,
                           "allowed_updates", allowed_updates());
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
            else if (rep.error_code == 401 || rep.error_code == 404) {
                __atomic_store_n(&t->token_refused_at, now_ms(), __ATOMIC_RELAXED);
                log_error("tg.poll_refused", "status=%d msg=\"TELEGRAM_BOT_TOKEN refused\"",
                          rep.error_code);
            } else
                log_warn("tg.poll_failed", "status=%d detail=%s", rep.error_code,
                         log_quote(q, sizeof(q), rep.description));
            tg_reply_clear(&rep);
            failures++;
            nap(&t->stop_poll, wait);
            continue;
        }
        failures = 0;
        __atomic_store_n(&t->poll_ok_at, now_ms(), __ATOMIC_RELAXED);
        if (limit == 1 && json_array_size(rep.result) == 0)
            limit = 100; /* the unreadable update is gone: back to whole pages */
        if (json_is_array(rep.result) && json_array_size(rep.result) > 0) {
            if (arena_new(&a) == 0) {
                n = store_page(db, a, rep.result, &offset, &dups);
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
                if (n)
                    metric_add("rivet_updates_received_total", n, "channel", "telegram", "outcome",
                               "stored", NULL);
                if (dups)
                    metric_add("rivet_updates_received_total", dups, "channel", "telegram",
                               "outcome", "duplicate", NULL);
                log_debug("tg.polled", "updates=%d duplicates=%d offset=%lld", n, dups, offset);
            }
        }
        tg_reply_clear(&rep);
        /* A server that answers at once with nothing must not make us spin. */
        if (n == 0 && now_ms() - started < MIN_POLL_INTERVAL_MS)
            nap(&t->stop_poll, MIN_POLL_INTERVAL_MS - (now_ms() - started));
    }
out:
    __atomic_store_n(&t->polling, 0, __ATOMIC_RELAXED);
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

/* Handles one inbox row inside the caller's transaction. Returns 0, or a
 * database error for the caller to roll back and retry. */
static int handle_update(void *ch, void *ws, struct chat_photo *wp, struct db *db, struct arena *a,
                         const struct inbox_item *it, struct chat_handled *h)
{
    struct telegram *t = ch;
    struct msg_photo photo;
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
        chat_photo_attach(wp, it->id, &photo);
        m.photo = &photo;
    }
    if (u.kind == TG_MESSAGE && u.reply_to > 0) {
        r = chat_context(db, a, CHANNEL, chat, arena_printf(a, "%lld", (long long)u.reply_to),
                         &m.context);
        if (r < 0)
            return r;
    }
    m.ask = chat_ask(wp);
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

/* What a worker keeps: a client for downloads and answering presses. */
static int worker_new(void *ch, void **ws)
{
    struct telegram *t = ch;

    return tg_api_new(t->cfg->telegram_api_url, t->cfg->telegram_token, NULL, (struct tg_api **)ws);
}

static void worker_free(void *ws)
{
    tg_api_free(ws);
}

/* Seconds a photo's download may take. */
#define PHOTO_DOWNLOAD_S 60

static int download(void *ws, const char *file_id, struct buf *out, const char **why)
{
    return tg_api_get_file(ws, file_id, PHOTO_DOWNLOAD_S, TG_MAX_FILE, out, why);
}

/* A button press is answered once its row is settled. */
static void handled(void *ws, const struct chat_handled *h, bool ok)
{
    if (h->callback_id)
        answer_callback(ws, h->callback_id,
                        ok ? h->callback_text : "Sorry, that did not work. Try again.");
}

/* ---- senders ---- */

/* Waits for a slot of the bot-wide budget (TELEGRAM_GLOBAL_PER_SECOND
 * across every process on the database). The slot is reserved on the
 * budget's own connection in autocommit, because the caller holds its claim
 * transaction across the API call: taken on the sender's connection, the
 * budget row would stay locked until then. One short statement per send;
 * the process's senders take turns on the connection for it, not for the
 * wait. Returns 0 when the message may go, -ECANCELED when the senders
 * stop (the slot is lost), or a database error: then nothing is sent. */
static int take_token(struct telegram *t, volatile int *abort)
{
    char *err = NULL, q[300];
    long wait_ms = 0;
    int r = 0;

    pthread_mutex_lock(&t->budget_lock);
    if (!t->budget_db)
        r = db_connect(t->cfg->database_url, t->cfg->statement_timeout_ms, &t->budget_db, &err);
    if (r == 0)
        r = db_send_budget_take(t->budget_db, CHANNEL, t->cfg->telegram_global_per_s, &wait_ms);
    if (r < 0)
        log_warn("tg.budget_error", "err=%s detail=%s", strerror(-r),
                 log_quote(q, sizeof(q),
                           err            ? err
                           : t->budget_db ? db_errmsg(t->budget_db)
                                          : ""));
    pthread_mutex_unlock(&t->budget_lock);
    free(err);
    if (r < 0)
        return r;
    if (wait_ms > 0)
        nap(abort, wait_ms);
    return abort && __atomic_load_n(abort, __ATOMIC_ACQUIRE) ? -ECANCELED : 0;
}

/* The gap before a chat's next message: 1 s in private chats, 3 s in
 * groups (20 a minute), as configured. */
static int chat_gap_ms(const struct telegram *t, const char *kind)
{
    if (strcmp(kind, "private") == 0)
        return t->cfg->telegram_chat_gap_ms;
    return 60000 / t->cfg->telegram_group_per_min;
}

/* Delivers one claimed message. Writes what happened to the outbox row in
 * the caller's transaction. */
static enum chat_sent deliver(void *ch, void *ss, struct db *db, struct arena *a,
                              const struct outbox_item *it, int *status)
{
    struct telegram *t = ch;
    struct tg_api *api = ss;
    json_error_t jerr;
    json_t *p = json_loads(it->payload, JSON_ALLOW_NUL, &jerr), *plain, *ref;
    const char *method = it->method;
    struct tg_reply rep;
    char err[300];
    enum chat_sent s;
    int r;

    *status = 0;
    if (!p) {
        db_outbox_failed(db, it, "payload is not JSON");
        return CHAT_FAILED;
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
            return CHAT_RETRY;
        }
        if (r < 0) {
            json_decref(p);
            db_outbox_failed(db, it, "the message to edit was never delivered");
            return CHAT_FAILED;
        }
        json_object_set_new(p, "message_id", json_integer(strtoll(remote, NULL, 10)));
        json_object_del(p, "rivet_edit_outbox");
    }
    plain = json_incref(json_object_get(p, "rivet_plain"));
    json_object_del(p, "rivet_plain");
    memset(&rep, 0, sizeof(rep)); /* read below also when nothing was sent */
    r = take_token(t, __atomic_load_n(&t->abort_send, __ATOMIC_RELAXED));
    if (r == 0)
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
        /* Another message as far as the budget knows. */
        r = take_token(t, __atomic_load_n(&t->abort_send, __ATOMIC_RELAXED));
        if (r == 0)
            r = tg_api_call(api, method, p, 15, &rep);
    }
    json_decref(plain);
    json_decref(p);

    if (r < 0) {
        snprintf(err, sizeof(err), "%s", strerror(-r));
        s = it->attempts + 1 >= CHAT_MAX_SEND_ATTEMPTS ? CHAT_FAILED : CHAT_RETRY;
    } else if (rep.ok || (rep.error_code == 400 && strcasestr(rep.description, "not modified"))) {
        const json_t *id =
            json_is_object(rep.result) ? json_object_get(rep.result, "message_id") : NULL;
        char remote[32] = "";

        /* In webhook mode, the only sign the token works. */
        __atomic_store_n(&t->token_refused_at, 0, __ATOMIC_RELAXED);
        if (json_is_integer(id))
            snprintf(remote, sizeof(remote), "%lld", (long long)json_integer_value(id));
        *status = 200;
        db_outbox_sent(db, CHANNEL, it, remote[0] ? remote : NULL, chat_gap_ms(t, it->chat_kind));
        tg_reply_clear(&rep);
        return CHAT_SENT;
    } else {
        *status = rep.error_code;
        snprintf(err, sizeof(err), "%d %s", rep.error_code, rep.description);
        if (rep.error_code == 401 || rep.error_code == 404)
            __atomic_store_n(&t->token_refused_at, now_ms(), __ATOMIC_RELAXED);
        if (rep.error_code == 429)
            s = CHAT_WAIT;
        else if (rep.error_code >= 500 || rep.error_code == 401 || rep.error_code == 404)
            s = it->attempts + 1 >= CHAT_MAX_SEND_ATTEMPTS ? CHAT_FAILED : CHAT_RETRY;
        else
            s = CHAT_FAILED; /* 400, 403: this message will never go through */
    }
    switch (s) {
    case CHAT_WAIT:
        db_outbox_chat_wait(db, CHANNEL, it, rep.retry_after > 0 ? rep.retry_after : 1, err);
        break;
    case CHAT_RETRY:
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

static int sender_new(void *ch, volatile int *abort, void **ss)
{
    struct telegram *t = ch;
    struct tg_api *api;
    int r = tg_api_new(t->cfg->telegram_api_url, t->cfg->telegram_token, abort, &api);

    if (r < 0)
        return r;
    __atomic_store_n(&t->abort_send, abort, __ATOMIC_RELAXED);
    *ss = api;
    return 0;
}

static void sender_free(void *ss)
{
    tg_api_free(ss);
}

static const struct chat_ops tg_ops = {
    .channel = CHANNEL,
    .prefix = "tg",
    .worker_new = worker_new,
    .worker_free = worker_free,
    .download = download,
    .handle = handle_update,
    .handled = handled,
    .sender_new = sender_new,
    .sender_free = sender_free,
    .deliver = deliver,
};

/* ---- start and stop ---- */

static const char *const menu[][2] = {
    {"equip", "Equipment: list, search, view, add"},
    {"wo", "Work orders: list, view, new, status, note"},
    {"stats", "The plant at a glance"},
    {"help", "All commands with examples"},
    {"start", "Join with an invite code"},
    {"link", "Use Rivet from WhatsApp too"},
};

/* getMe until it answers: the bot's username, and a token check. */
static int hello(struct telegram *t, struct tg_api *api)
{
    for (int attempt = 0; !__atomic_load_n(t->stop_main, __ATOMIC_ACQUIRE); attempt++) {
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

/* Webhook mode: setWebhook until Telegram takes it (retrying while the Bot
 * API is unreachable). The URL is not logged: it may carry a path secret. */
static int set_webhook(struct telegram *t, struct tg_api *api)
{
    char secret[300];
    json_t *p;
    int r = -ECANCELED;

    telegram_webhook_secret(t->cfg, secret, sizeof(secret));
    p = json_pack("{s:s, s:s, s:o, s:i}", "url", t->cfg->telegram_webhook_url, "secret_token",
                  secret, "allowed_updates", allowed_updates(), "max_connections",
                  t->cfg->http_threads * 2 < 100 ? t->cfg->http_threads * 2 : 100);
    if (!p)
        return -ENOMEM;
    for (int attempt = 0; !__atomic_load_n(t->stop_main, __ATOMIC_ACQUIRE); attempt++) {
        struct tg_reply rep;
        char q[300];
        long wait;

        r = tg_api_call(api, "setWebhook", p, 15, &rep);
        if (r == 0 && rep.ok) {
            log_info("tg.webhook_set", "msg=\"Telegram posts updates to TELEGRAM_WEBHOOK_URL\"");
            tg_reply_clear(&rep);
            break;
        }
        if (r == 0 && rep.error_code == 400) {
            log_error("tg.webhook_refused", "status=400 detail=%s",
                      log_quote(q, sizeof(q), rep.description));
            tg_reply_clear(&rep);
            r = -EINVAL;
            break;
        }
        log_warn("tg.webhook_retry", "err=%s status=%d attempt=%d",
                 r < 0 ? strerror(-r) : "refused", r == 0 ? rep.error_code : 0, attempt + 1);
        /* A 429 says when: sooner would only be refused again. */
        wait = r == 0 && rep.retry_after > 0 ? rep.retry_after * 1000L
                                             : backoff_ms(attempt, 1000, 30000);
        tg_reply_clear(&rep);
        r = -ECANCELED;
        nap(t->stop_main, wait);
    }
    json_decref(p);
    return r;
}

/* Poll mode after webhook mode: getUpdates answers 409 while a webhook is
 * set, so a webhook left behind is removed (its pending updates kept).
 * Retried like setWebhook while the Bot API fails (a network error, 429,
 * 5xx): given up, every getUpdates would be a 409 for good. Another refusal
 * is logged and the poller carries on. Returns 0, or -ECANCELED when the
 * process stops first. */
static int drop_webhook(struct telegram *t, struct tg_api *api)
{
    for (int attempt = 0; !__atomic_load_n(t->stop_main, __ATOMIC_ACQUIRE); attempt++) {
        struct tg_reply rep;
        const char *step = "getWebhookInfo";
        const json_t *url;
        long wait;
        bool set;
        int r = tg_api_call(api, step, NULL, 15, &rep);

        if (r == 0 && rep.ok) {
            url = json_object_get(rep.result, "url");
            set = json_is_string(url) && json_string_length(url) > 0;
            tg_reply_clear(&rep);
            if (!set)
                return 0;
            step = "deleteWebhook";
            r = tg_api_call(api, step, NULL, 15, &rep);
            if (r == 0 && rep.ok) {
                tg_reply_clear(&rep);
                log_warn("tg.webhook_deleted",
                         "msg=\"a webhook was set for this bot; polling replaces it (set "
                         "TELEGRAM_WEBHOOK_URL for webhook mode)\"");
                return 0;
            }
        }
        if (r == 0 && rep.error_code != 429 && rep.error_code < 500) {
            char q[300];
            log_error("tg.webhook_delete_refused", "method=%s status=%d detail=%s", step,
                      rep.error_code, log_quote(q, sizeof(q), rep.description));
            tg_reply_clear(&rep);
            return 0;
        }
        log_warn("tg.webhook_delete_retry", "method=%s err=%s status=%d attempt=%d", step,
                 r < 0 ? strerror(-r) : "refused", r == 0 ? rep.error_code : 0, attempt + 1);
        wait = r == 0 && rep.retry_after > 0 ? rep.retry_after * 1000L
                                             : backoff_ms(attempt, 1000, 30000);
        tg_reply_clear(&rep);
        nap(t->stop_main, wait);
    }
    return -ECANCELED;
}

int telegram_health(const struct telegram *t, const char **why)
{
    long now = now_ms();

    long refused_at = __atomic_load_n(&t->token_refused_at, __ATOMIC_RELAXED),
         ok_at = __atomic_load_n(&t->poll_ok_at, __ATOMIC_RELAXED);

    if (refused_at && refused_at >= ok_at) {
        *why = "Telegram refuses TELEGRAM_BOT_TOKEN";
        return -1;
    }
    if (__atomic_load_n(&t->polling, __ATOMIC_RELAXED) &&
        now - ok_at > (t->cfg->telegram_poll_timeout_s + 60) * 1000L) {
        *why = "getUpdates has been failing";
        return -1;
    }
    return 0;
}

long telegram_alive(const struct telegram *t)
{
    if (!t->poller_started)
        return -1;
    return __atomic_load_n(&t->poll_loop_at, __ATOMIC_RELAXED);
}

void telegram_webhook_secret(const struct config *cfg, char *out, size_t n)
{
    static const char label[] = "rivet telegram webhook";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (cfg->telegram_webhook_secret) {
        snprintf(out, n, "%s", cfg->telegram_webhook_secret);
        return;
    }
    HMAC(EVP_sha256(), cfg->telegram_token, (int)strlen(cfg->telegram_token),
         (const unsigned char *)label, sizeof(label) - 1, mac, &len);
    out[0] = '\0';
    for (unsigned int i = 0; i < len && 2 * i + 2 < n; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

int telegram_webhook_store(struct db *db, const char *body, size_t len, bool *dup)
{
    json_error_t jerr;
    json_t *u = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
    char id[32], chat[32], *dump;
    int64_t uid;
    int r;

    if (!json_is_object(u) || tg_update_id(u, &uid) < 0 || uid < 0 || uid >= TG_MAX_UPDATE_ID) {
        json_decref(u);
        return -EBADMSG;
    }
    tg_update_chat(u, chat, sizeof(chat));
    dump = json_dumps(u, JSON_COMPACT);
    json_decref(u);
    if (!dump)
        return -ENOMEM;
    snprintf(id, sizeof(id), "%lld", (long long)uid);
    r = db_begin(db);
    if (r == 0)
        r = db_inbox_add(db, CHANNEL, id, chat, dump, dup);
    if (r == 0 && !*dup)
        r = db_inbox_notify(db);
    if (r == 0)
        r = db_commit(db);
    else
        db_rollback(db);
    free(dump);
    return r;
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
    pthread_mutex_init(&t->budget_lock, NULL);
    pthread_mutex_init(&t->poll_lock, NULL);
    r = tg_api_new(cfg->telegram_api_url, cfg->telegram_token, stop, &api);
    if (r < 0)
        goto fail;
    r = hello(t, api);
    if (r < 0)
        goto fail;
    set_menu(api);
    if (cfg->telegram_webhook_url) {
        r = set_webhook(t, api);
        if (r < 0)
            goto fail;
    } else {
        r = drop_webhook(t, api);
        if (r < 0)
            goto fail;
    }
    tg_api_free(api);
    api = NULL;

    if (!cfg->telegram_webhook_url) {
        r = -pthread_create(&t->poller, NULL, poller_main, t);
        if (r < 0)
            goto fail;
        t->poller_started = true;
    }
    r = chat_threads_start(cfg, &tg_ops, t, cfg->workers, cfg->telegram_senders, &t->threads);
    if (r < 0)
        goto fail;
    log_info("tg.ready", "bot=%s workers=%d senders=%d mode=%s poll_timeout_s=%d", t->username,
             cfg->workers, cfg->telegram_senders, cfg->telegram_webhook_url ? "webhook" : "poll",
             cfg->telegram_poll_timeout_s);
    *ret = t;
    return 0;
fail:
    tg_api_free(api);
    telegram_stop(t);
    return r;
}

void telegram_stop(struct telegram *t)
{
    if (!t)
        return;
    /* A long poll is cut short. */
    __atomic_store_n(&t->stop_poll, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&t->poll_lock);
    if (t->poll_api)
        tg_api_interrupt(t->poll_api);
    pthread_mutex_unlock(&t->poll_lock);
    if (t->poller_started)
        pthread_join(t->poller, NULL);
    /* Workers finish the update in hand; senders deliver what is due. */
    chat_threads_stop(t->threads, t->cfg->telegram_flush_s);
    log_info("tg.stopped", "msg=\"polling stopped, workers finished, outbox flushed\"");
    db_close(t->budget_db);
    pthread_mutex_destroy(&t->budget_lock);
    pthread_mutex_destroy(&t->poll_lock);
    free(t);
}
