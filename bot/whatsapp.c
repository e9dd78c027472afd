/* The WhatsApp channel (whatsapp.h): the webhook's store, the workers'
 * handling and the senders' delivery rules. */
#include "whatsapp.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "channels.h"
#include "chat.h"
#include "config.h"
#include "db.h"
#include "handlers.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "serve.h"
#include "wa.h"

#define CHANNEL "whatsapp"
/* Free-form messages may go for 24 hours after the user's last message;
 * Rivet stops a minute early rather than race the edge. */
#define WINDOW_S (24 * 3600 - 60)
/* Seconds a media download or a send may take. */
#define MEDIA_S 60
#define SEND_S 15
/* Meta's error codes (Cloud API error codes page). */
#define WA_ERR_WINDOW 131047      /* re-engagement: outside the 24-hour window */
#define WA_ERR_NUMBER_RATE 130429 /* the business number's throughput */
#define WA_ERR_PAIR_RATE 131056   /* too many messages to one user */
#define WA_ERR_TOKEN 190          /* access token expired or invalid */
/* A user who keeps hitting the pair rate limit waits this long, doubled per
 * attempt up to a minute. */
#define PAIR_WAIT_S 6
#define PAIR_WAIT_MAX_S 60
/* A budget slot further away than this (another process paused the number
 * after a 130429) is not waited for holding the claim. */
#define BUDGET_HOLD_MAX_MS 2000

struct whatsapp {
    const struct config *cfg;
    volatile int *stop_main;
    volatile int *abort_send;
    struct chat_threads *threads;

    /* The number's send budget (WHATSAPP_PER_SECOND) is a row in the
     * database shared by every process (see take_token). */
    pthread_mutex_t budget_lock; /* guards budget_db */
    struct db *budget_db;

    pthread_mutex_t lock; /* guards what follows */
    long paused_until;    /* now_ms(): 130429 stops every sender of this process,
                             and the budget row every other process's */
    int number_hits;      /* 130429s in a row, for the backoff */
    long token_refused_at, last_ok_at, failing_since;
};

/* ---- the webhook ---- */

/* A failed free-form alarm (131047 reported in a status): queued again as
 * the template, which may go outside the window. */
static int requeue_as_template(struct db *db, const struct outbox_item *row)
{
    json_error_t jerr;
    json_t *p = json_loads(row->payload, 0, &jerr), *alarm, *q;
    char *dump;
    int r = 0;

    alarm = p ? json_object_get(p, "rivet_alarm") : NULL;
    if (!json_is_object(alarm)) {
        json_decref(p);
        return 0; /* not an alarm: nothing stands in for it */
    }
    q = json_pack("{s:O}", "rivet_template", alarm);
    dump = q ? json_dumps(q, JSON_COMPACT) : NULL;
    if (dump)
        r = db_outbox_add(db, CHANNEL, row->chat_id, "messages", dump, 0);
    else
        r = -ENOMEM;
    free(dump);
    json_decref(q);
    json_decref(p);
    return r;
}

int whatsapp_webhook(const struct config *cfg, struct db *db, struct arena *a, const char *body,
                     size_t len, struct wa_received *out)
{
    struct wa_webhook wh;
    int r;

    *out = (struct wa_received){0};
    r = wa_webhook_parse(a, body, len, &wh);
    if (r < 0)
        return r;
    r = db_begin(db);
    if (r < 0)
        return r;
    for (int i = 0; i < wh.n_messages; i++) {
        const struct wa_message *m = &wh.messages[i];
        bool dup;

        /* Another number of the same business account is not Rivet's. */
        if (m->phone_number_id && cfg->whatsapp_phone_number_id &&
            strcmp(m->phone_number_id, cfg->whatsapp_phone_number_id) != 0) {
            out->rejected++;
            continue;
        }
        r = db_inbox_add(db, CHANNEL, m->id, m->from, m->raw, &dup);
        if (r == 0 && !dup)
            r = db_chat_inbound(db, CHANNEL, m->from, m->timestamp);
        if (r < 0)
            goto fail;
        if (dup)
            out->duplicates++;
        else
            out->stored++;
    }
    for (int i = 0; i < wh.n_statuses; i++) {
        const struct wa_status *s = &wh.statuses[i];
        struct outbox_item row;
        char err[300] = "";

        /* Meta may add statuses ("deleted", "warning"): only these four
         * are recorded. */
        if (strcmp(s->status, "sent") != 0 && strcmp(s->status, "delivered") != 0 &&
            strcmp(s->status, "read") != 0 && strcmp(s->status, "failed") != 0)
            continue;
        if (s->error_code || s->error)
            snprintf(err, sizeof(err), "%d %s", s->error_code, s->error ? s->error : "");
        r = db_outbox_status(db, a, CHANNEL, s->id, s->status, err[0] ? err : NULL, &row);
        if (r == -ENOENT && s->recipient) {
            /* Meta may report a message before the sender that sent it has
             * recorded its id (or while it commits it): a sender holds the
             * chat from its claim until then, so wait for the chat and look
             * again. */
            r = db_chat_wait_sender(db, CHANNEL, s->recipient);
            if (r == 0)
                r = db_outbox_status(db, a, CHANNEL, s->id, s->status, err[0] ? err : NULL, &row);
        }
        if (r == -ENOENT || r == -EALREADY) {
            r = 0;
            continue;
        }
        if (r < 0)
            goto fail;
        out->statuses++;
        metric_inc("rivet_message_statuses_total", "channel", CHANNEL, "status", s->status, NULL);
        if (strcmp(s->status, "failed") == 0 && s->error_code == WA_ERR_WINDOW) {
            r = requeue_as_template(db, &row);
            if (r < 0)
                goto fail;
        }
        if (strcmp(s->status, "failed") == 0) {
            char q[300], cid[CHAT_LOG_ID_MAX];
            log_warn("wa.delivery_failed", "outbox=%lld chat=%s code=%d detail=%s",
                     (long long)row.id, chat_log_id(CHANNEL, row.chat_id, cid, sizeof(cid)),
                     s->error_code, log_quote(q, sizeof(q), s->error ? s->error : ""));
        }
    }
    out->errors = wh.n_errors;
    out->skipped = wh.skipped;
    if (wh.n_errors) {
        char q[300];
        log_warn("wa.webhook_errors", "count=%d code=%d detail=%s", wh.n_errors, wh.error_code,
                 log_quote(q, sizeof(q), wh.error ? wh.error : ""));
    }
    if (out->stored) {
        r = db_inbox_notify(db);
        if (r < 0)
            goto fail;
    }
    return db_commit(db);
fail:
    db_rollback(db);
    *out = (struct wa_received){0};
    return r;
}

/* ---- workers ---- */

static int worker_new(void *ch, void **ws)
{
    struct whatsapp *w = ch;

    return wa_api_new(w->cfg->whatsapp_api_url, w->cfg->whatsapp_phone_number_id,
                      w->cfg->whatsapp_token, NULL, (struct wa_api **)ws);
}

static void worker_free(void *ws)
{
    wa_api_free(ws);
}

static int download(void *ws, const char *media_id, struct buf *out, const char **why)
{
    return wa_api_get_media(ws, media_id, MEDIA_S, WA_MAX_MEDIA, out, why);
}

/* Message types a person sends that Rivet has nothing to say to but this. */
static const char unsupported[] =
    "Rivet reads text, commands, button presses and photos of nameplates. Send /help for "
    "the commands.";

static int handle_update(void *ch, void *ws, struct chat_photo *wp, struct db *db, struct arena *a,
                         const struct inbox_item *it, struct chat_handled *h)
{
    struct msg_photo photo;
    struct wa_message wm;
    struct replies out;
    struct msg m;
    bool media;
    int r;

    if (wa_message_parse(a, it->payload, &wm) < 0) {
        h->outcome = "bad_update";
        return 0;
    }
    r = db_chat_seen(db, CHANNEL, wm.from, "private");
    if (r < 0)
        return r;
    media = wm.media_id && (strcmp(wm.type, "image") == 0 || strcmp(wm.type, "document") == 0);
    if (!wm.text && !media) {
        struct reply rep = {.text = unsupported};
        h->outcome = "unsupported";
        return wa_queue_reply(db, a, wm.from, &rep, it->id, NULL);
    }
    m = (struct msg){.channel = CHANNEL_WHATSAPP,
                     .sender_id = wm.from,
                     .sender_name = wm.name ? wm.name : wm.from,
                     .text = wm.text,
                     .text_len = wm.text ? strlen(wm.text) : 0};
    if (media) {
        wp->file_id = wm.media_id;
        wp->mime_type = wm.mime_type;
        chat_photo_attach(wp, it->id, &photo);
        m.photo = &photo;
    }
    if (wm.context_id && !wm.pressed) {
        r = chat_context(db, a, CHANNEL, wm.from, wm.context_id, &m.context);
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
        r = wa_queue_reply(db, a, wm.from, rep, it->id, NULL);
        if (r < 0)
            return r;
    }
    r = channel_queue_others(db, a, &out);
    if (r < 0)
        return r;
    h->outcome = "ok";
    return 0;
}

/* ---- senders ---- */

static int sender_new(void *ch, volatile int *abort, void **ss)
{
    struct whatsapp *w = ch;

    __atomic_store_n(&w->abort_send, abort, __ATOMIC_RELAXED);
    return wa_api_new(w->cfg->whatsapp_api_url, w->cfg->whatsapp_phone_number_id,
                      w->cfg->whatsapp_token, abort, (struct wa_api **)ss);
}

static void sender_free(void *ss)
{
    wa_api_free(ss);
}

/* Milliseconds left of the pause a 130429 imposed on the whole process. */
static long paused_ms(struct whatsapp *w)
{
    long left;

    pthread_mutex_lock(&w->lock);
    left = w->paused_until - now_ms();
    pthread_mutex_unlock(&w->lock);
    return left > 0 ? left : 0;
}

/* Opens the budget's own connection at its first use (db.c resets it after
 * a loss). Called with budget_lock held. */
static int budget_db(struct whatsapp *w)
{
    char *err = NULL, q[300];
    int r;

    if (w->budget_db)
        return 0;
    r = db_connect(w->cfg->database_url, w->cfg->statement_timeout_ms, &w->budget_db, &err);
    if (r < 0)
        log_warn("wa.budget_error", "err=%s detail=%s", strerror(-r),
                 log_quote(q, sizeof(q), err ? err : ""));
    free(err);
    return r;
}

/* Waits for a slot of the number's budget (WHATSAPP_PER_SECOND across every
 * process on the database), reserved in autocommit on the budget's own
 * connection: the caller holds its claim transaction across the send, and
 * the budget row must not stay locked that long. Returns 0 when the message
 * may go; -EAGAIN with *later (ms) when the slot is further away than
 * BUDGET_HOLD_MAX_MS (a 130429 pause of another process); -ECANCELED when
 * the senders stop; or a database error: then nothing is sent. */
static int take_token(struct whatsapp *w, long *later)
{
    volatile int *abort = __atomic_load_n(&w->abort_send, __ATOMIC_RELAXED);
    long wait_ms = 0;
    char q[300];
    int r;

    pthread_mutex_lock(&w->budget_lock);
    r = budget_db(w);
    if (r == 0) {
        r = db_send_budget_take(w->budget_db, CHANNEL, w->cfg->whatsapp_per_s, &wait_ms);
        if (r < 0)
            log_warn("wa.budget_error", "err=%s detail=%s", strerror(-r),
                     log_quote(q, sizeof(q), db_errmsg(w->budget_db)));
    }
    pthread_mutex_unlock(&w->budget_lock);
    if (r < 0)
        return r;
    if (wait_ms > BUDGET_HOLD_MAX_MS) {
        *later = wait_ms;
        return -EAGAIN;
    }
    if (wait_ms > 0)
        nap(abort, wait_ms);
    return __atomic_load_n(abort, __ATOMIC_ACQUIRE) ? -ECANCELED : 0;
}

/* A 130429: every process's senders wait ms (best effort: this process
 * pauses anyway). */
static void budget_pause(struct whatsapp *w, long ms)
{
    char q[300];

    pthread_mutex_lock(&w->budget_lock);
    if (budget_db(w) == 0 && db_send_budget_pause(w->budget_db, CHANNEL, ms) < 0)
        log_warn("wa.budget_error", "err=pause detail=%s",
                 log_quote(q, sizeof(q), db_errmsg(w->budget_db)));
    pthread_mutex_unlock(&w->budget_lock);
}

/* Notes how a send went, for /healthz and the number-wide pause. */
static void note_result(struct whatsapp *w, int r, const struct wa_reply *rep)
{
    long now = now_ms(), pause = 0;

    pthread_mutex_lock(&w->lock);
    if (r == 0 && rep->ok) {
        w->last_ok_at = now;
        w->number_hits = 0;
    }
    /* Failing: no answer from Meta, or its 5xx; any other answer means the
     * Graph API works (a refused message is the message's problem). */
    if (r < 0 || rep->http_status >= 500) {
        if (!w->failing_since)
            w->failing_since = now;
    } else {
        w->failing_since = 0;
    }
    if (r == 0 && !rep->ok && (rep->error_code == WA_ERR_TOKEN || rep->http_status == 401))
        w->token_refused_at = now;
    if (r == 0 && !rep->ok && rep->error_code == WA_ERR_NUMBER_RATE) {
        pause = backoff_ms(w->number_hits++, 1000, 60000);
        w->paused_until = now + pause;
    }
    pthread_mutex_unlock(&w->lock);
    if (pause > 0)
        budget_pause(w, pause);
}

/* The body to post for a claimed row: as queued, or the alarm template.
 * *alarm (borrowed from *p) is the row's template data, or NULL. */
static json_t *body_of(struct whatsapp *w, const struct outbox_item *it, json_t *p, bool outside,
                       bool *template, const char **why)
{
    const json_t *alarm = json_object_get(p, "rivet_alarm");
    const json_t *tmpl = json_object_get(p, "rivet_template");
    json_t *body;
    const char *key;
    json_t *v;
    void *tmp;

    *template = false;
    if (tmpl || (outside && alarm)) {
        *template = true;
        body = wa_template_body(it->chat_id, w->cfg->whatsapp_template,
                                w->cfg->whatsapp_template_lang, tmpl ? tmpl : alarm);
        if (!body)
            *why = "the alarm's template data is malformed";
        return body;
    }
    if (outside) {
        *why = "outside the 24-hour window: only templates may go, and this is no alarm";
        return NULL;
    }
    body = json_deep_copy(p);
    if (!body) {
        *why = "out of memory";
        return NULL;
    }
    json_object_foreach_safe(body, tmp, key, v)
    {
        if (strncmp(key, "rivet_", 6) == 0)
            json_object_del(body, key);
    }
    return body;
}

static enum chat_sent deliver(void *ch, void *ss, struct db *db, struct arena *a,
                              const struct outbox_item *it, int *status)
{
    struct whatsapp *w = ch;
    struct wa_api *api = ss;
    json_error_t jerr;
    json_t *p = json_loads(it->payload, 0, &jerr), *body;
    bool outside = it->inbound_age_s < 0 || it->inbound_age_s > WINDOW_S, template;
    struct wa_reply rep;
    const char *why = NULL;
    char err[400];
    enum chat_sent s;
    long pause, later = 0;
    int r;

    (void)a;
    memset(&rep, 0, sizeof(rep)); /* read below also when nothing was sent */
    *status = 0;
    if (!json_is_object(p)) {
        json_decref(p);
        db_outbox_failed(db, it, "payload is not a JSON object");
        return CHAT_FAILED;
    }
    body = body_of(w, it, p, outside, &template, &why);
    if (!body) {
        json_decref(p);
        db_outbox_failed(db, it, why);
        return CHAT_FAILED;
    }
    pause = paused_ms(w);
    if (pause > 0) {
        /* The claim locks the chat, and a webhook's status lookup may wait
         * for it: the pause is not slept through holding it. */
        json_decref(body);
        json_decref(p);
        db_outbox_retry(db, it, (int)pause + 1, "130429: the number is paused");
        return CHAT_WAIT;
    }
    r = take_token(w, &later);
    if (r == -EAGAIN) {
        json_decref(body);
        json_decref(p);
        db_outbox_retry(db, it, (int)later + 1, "130429: the number is paused");
        return CHAT_WAIT;
    }
    if (r == 0) {
        r = wa_api_send(api, body, SEND_S, &rep);
        note_result(w, r, &rep);
    }
    if (r == 0 && !rep.ok && rep.error_code == WA_ERR_WINDOW && !template &&
        json_is_object(json_object_get(p, "rivet_alarm"))) {
        /* Meta's clock says the window closed: the alarm goes as the
         * template. */
        json_decref(body);
        body = wa_template_body(it->chat_id, w->cfg->whatsapp_template,
                                w->cfg->whatsapp_template_lang, json_object_get(p, "rivet_alarm"));
        template = true;
        if (body) {
            r = take_token(w, &later);
            if (r == -EAGAIN)
                r = -EBUSY; /* the send is retried like a failed one */
            if (r == 0) {
                r = wa_api_send(api, body, SEND_S, &rep);
                note_result(w, r, &rep);
            }
        }
    }
    json_decref(body);
    json_decref(p);

    if (r < 0) {
        snprintf(err, sizeof(err), "%s", strerror(-r));
        s = it->attempts + 1 >= CHAT_MAX_SEND_ATTEMPTS ? CHAT_FAILED : CHAT_RETRY;
    } else if (rep.ok) {
        *status = (int)rep.http_status;
        if (template)
            metric_inc("rivet_messages_sent_total", "channel", CHANNEL, "result", "template", NULL);
        db_outbox_sent(db, CHANNEL, it, rep.message_id[0] ? rep.message_id : NULL,
                       w->cfg->whatsapp_user_gap_ms);
        return CHAT_SENT;
    } else {
        *status = rep.error_code ? rep.error_code : (int)rep.http_status;
        snprintf(err, sizeof(err), "%d %s", rep.error_code, rep.error_message);
        if (rep.error_code == WA_ERR_PAIR_RATE || rep.error_code == WA_ERR_NUMBER_RATE ||
            rep.http_status == 429)
            s = CHAT_WAIT;
        else if (rep.http_status >= 500 || rep.error_code == WA_ERR_TOKEN ||
                 rep.http_status == 401 || rep.error_code == 1 || rep.error_code == 2)
            s = it->attempts + 1 >= CHAT_MAX_SEND_ATTEMPTS ? CHAT_FAILED : CHAT_RETRY;
        else
            s = CHAT_FAILED; /* 100, 131047 of a non-alarm, 131026: will never go */
    }
    switch (s) {
    case CHAT_WAIT:
        if (rep.error_code == WA_ERR_PAIR_RATE) {
            int shift = it->attempts < 4 ? it->attempts : 4;
            int wait_s = PAIR_WAIT_S << shift;

            db_outbox_chat_wait(db, CHANNEL, it,
                                wait_s < PAIR_WAIT_MAX_S ? wait_s : PAIR_WAIT_MAX_S, err);
        } else {
            /* The number's limit: every chat waits (take_token), this row too. */
            db_outbox_retry(db, it, (int)backoff_ms(it->attempts, 1000, 60000), err);
        }
        break;
    case CHAT_RETRY:
        db_outbox_retry(db, it, (int)backoff_ms(it->attempts, 500, 30000), err);
        break;
    default:
        db_outbox_failed(db, it, err);
        break;
    }
    return s;
}

static const struct chat_ops wa_ops = {
    .channel = CHANNEL,
    .prefix = "wa",
    .worker_new = worker_new,
    .worker_free = worker_free,
    .download = download,
    .handle = handle_update,
    .sender_new = sender_new,
    .sender_free = sender_free,
    .deliver = deliver,
};

/* ---- start and stop ---- */

/* Asks the Graph API about the number until it answers: a token check. */
static int hello(struct whatsapp *w)
{
    struct wa_api *api;
    int r = wa_api_new(w->cfg->whatsapp_api_url, w->cfg->whatsapp_phone_number_id,
                       w->cfg->whatsapp_token, w->stop_main, &api);

    if (r < 0)
        return r;
    for (int attempt = 0; !__atomic_load_n(w->stop_main, __ATOMIC_ACQUIRE); attempt++) {
        struct wa_reply rep;

        r = wa_api_hello(api, 15, &rep);
        if (r == 0 && rep.ok) {
            wa_api_free(api);
            return 0;
        }
        if (r == 0 &&
            (rep.http_status == 401 || rep.error_code == WA_ERR_TOKEN || rep.error_code == 100)) {
            log_error("wa.token_refused",
                      "status=%ld code=%d msg=\"the Graph API refused WHATSAPP_TOKEN or "
                      "WHATSAPP_PHONE_NUMBER_ID\"",
                      rep.http_status, rep.error_code);
            wa_api_free(api);
            return -EACCES;
        }
        log_warn("wa.unreachable", "err=%s status=%ld attempt=%d", r < 0 ? strerror(-r) : "refused",
                 r == 0 ? rep.http_status : 0L, attempt + 1);
        nap(w->stop_main, backoff_ms(attempt, 1000, 30000));
    }
    wa_api_free(api);
    return -ECANCELED;
}

int whatsapp_start(const struct config *cfg, volatile int *stop, struct whatsapp **ret)
{
    struct whatsapp *w = calloc(1, sizeof(*w));
    int r;

    if (!w)
        return -ENOMEM;
    w->cfg = cfg;
    w->stop_main = stop;
    w->abort_send = stop;
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->budget_lock, NULL);
    r = hello(w);
    if (r == 0)
        r = chat_threads_start(cfg, &wa_ops, w, cfg->whatsapp_workers, cfg->whatsapp_senders,
                               &w->threads);
    if (r < 0) {
        whatsapp_stop(w);
        return r;
    }
    log_info("wa.ready", "workers=%d senders=%d template=%s", cfg->whatsapp_workers,
             cfg->whatsapp_senders, cfg->whatsapp_template);
    *ret = w;
    return 0;
}

void whatsapp_stop(struct whatsapp *w)
{
    if (!w)
        return;
    chat_threads_stop(w->threads, w->cfg->telegram_flush_s);
    if (w->threads)
        log_info("wa.stopped", "msg=\"workers finished, outbox flushed\"");
    db_close(w->budget_db);
    pthread_mutex_destroy(&w->budget_lock);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

int whatsapp_health(const struct whatsapp *w, const char **why)
{
    struct whatsapp *mw = (struct whatsapp *)w;
    long now = now_ms();
    int r = 0;

    pthread_mutex_lock(&mw->lock);
    if (mw->token_refused_at && mw->token_refused_at > mw->last_ok_at) {
        *why = "the Graph API refuses WHATSAPP_TOKEN";
        r = -1;
    } else if (mw->failing_since && now - mw->failing_since > 60000) {
        *why = "sends have been failing for over a minute";
        r = -1;
    }
    pthread_mutex_unlock(&mw->lock);
    return r;
}
