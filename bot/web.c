/* The routes of Rivet's HTTP server (web.h). Each thread of the server's
 * pool keeps its own database connection, opened at its first request
 * that needs one and closed by web_stop(). */
#include "web.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "mqtt.h"
#include "queue.h"
#include "rivet.h"
#include "serve.h"
#include "telegram.h"
#include "wa.h"
#include "whatsapp.h"

/* Connections of the pool's threads, at most one each. */
#define MAX_DBS 64
/* After a failed connect, a thread tries again no sooner than this. */
#define RECONNECT_MS 1000

struct web {
    const struct config *cfg;
    struct http_server *http;
    char tg_secret[300];

    pthread_mutex_t lock; /* guards what follows */
    struct telegram *tg;
    struct whatsapp *wa;
    struct alerts *al;
    bool attached;
    struct db *dbs[MAX_DBS];
    int n_dbs;
};

static __thread struct db *thread_db;
static __thread long thread_db_failed_at;

/* The calling pool thread's connection, connected on first use; NULL when
 * PostgreSQL does not answer. */
static struct db *web_db(struct web *w)
{
    char *err = NULL;
    int r;

    if (thread_db)
        return thread_db;
    if (thread_db_failed_at && now_ms() - thread_db_failed_at < RECONNECT_MS)
        return NULL;
    r = db_connect(w->cfg->database_url, w->cfg->statement_timeout_ms, &thread_db, &err);
    if (r < 0) {
        char q[300];
        thread_db_failed_at = now_ms();
        thread_db = NULL;
        metric_inc("rivet_db_errors_total", "component", "http", NULL);
        log_warn("http.db_connect", "err=%s detail=%s", strerror(-r),
                 log_quote(q, sizeof(q), err ? err : ""));
        free(err);
        return NULL;
    }
    pthread_mutex_lock(&w->lock);
    if (w->n_dbs < MAX_DBS) {
        w->dbs[w->n_dbs++] = thread_db;
    } else { /* more threads than the pool has: should not happen */
        pthread_mutex_unlock(&w->lock);
        db_close(thread_db);
        thread_db = NULL;
        return NULL;
    }
    pthread_mutex_unlock(&w->lock);
    return thread_db;
}

static void reply_json(struct http_response *res, int status, const char *json)
{
    res->status = status;
    buf_adds(&res->body, json);
}

static void count_request(const char *path, int status)
{
    char s[8];

    snprintf(s, sizeof(s), "%d", status);
    metric_inc("rivet_webhook_requests_total", "path", path, "status", s, NULL);
}

/* A webhook's answer, counted by path and status. */
static void answer(struct http_response *res, const char *path, int status, const char *json)
{
    count_request(path, status);
    reply_json(res, status, json);
}

/* PostgreSQL did not take a webhook's rows: 503, so the sender retries. */
static void store_failed(struct http_response *res, const char *path, const char *ev, int r,
                         struct db *db)
{
    if (r < 0) {
        char q[300];
        metric_inc("rivet_db_errors_total", "component", "http", NULL);
        log_error(ev, "err=%s detail=%s", strerror(-r), log_quote(q, sizeof(q), db_errmsg(db)));
    }
    answer(res, path, 503, "{\"error\":\"database unavailable; send it again\"}");
}

/* ---- WhatsApp ---- */

/* GET /webhook/whatsapp: Meta's verification of the callback URL. */
static void wa_verify(void *ctx, const struct http_request *req, struct http_response *res)
{
    struct web *w = ctx;
    const char *mode = http_query(req, "hub.mode"), *token = http_query(req, "hub.verify_token"),
               *challenge = http_query(req, "hub.challenge");
    const char *want = w->cfg->whatsapp_verify_token;
    size_t n;

    if (!w->cfg->whatsapp_token) {
        reply_json(res, 404, "{\"error\":\"WhatsApp is not configured\"}");
        return;
    }
    /* The challenge is echoed: only a short token of letters and digits. */
    n = challenge ? strlen(challenge) : 0;
    for (size_t i = 0; i < n; i++)
        if (!((challenge[i] >= '0' && challenge[i] <= '9') ||
              (challenge[i] >= 'a' && challenge[i] <= 'z') ||
              (challenge[i] >= 'A' && challenge[i] <= 'Z') || challenge[i] == '-' ||
              challenge[i] == '_'))
            n = 0;
    if (!mode || strcmp(mode, "subscribe") != 0 || !token || strlen(token) != strlen(want) ||
        CRYPTO_memcmp(token, want, strlen(want)) != 0 || n == 0 || n > 256) {
        log_warn("wa.verify_refused", "mode_ok=%d challenge_ok=%d",
                 mode && strcmp(mode, "subscribe") == 0, n > 0 && n <= 256);
        answer(res, "/webhook/whatsapp", 403, "{\"error\":\"verification refused\"}");
        return;
    }
    log_info("wa.verified", "msg=\"Meta verified the webhook URL\"");
    count_request("/webhook/whatsapp", 200);
    res->content_type = "text/plain";
    buf_adds(&res->body, challenge);
}

/* POST /webhook/whatsapp: messages and delivery reports. */
static void wa_post(void *ctx, const struct http_request *req, struct http_response *res)
{
    struct web *w = ctx;
    struct wa_received got;
    struct arena *a = NULL;
    struct db *db;
    int r;

    if (!w->cfg->whatsapp_token) {
        reply_json(res, 404, "{\"error\":\"WhatsApp is not configured\"}");
        return;
    }
    /* Nothing is parsed before the signature is checked. */
    if (!wa_signature_ok(w->cfg->whatsapp_app_secret, req->body, req->body_len,
                         http_header(req, "X-Hub-Signature-256"))) {
        log_warn("wa.bad_signature", "bytes=%zu present=%d", req->body_len,
                 http_header(req, "X-Hub-Signature-256") != NULL);
        metric_inc("rivet_updates_received_total", "channel", "whatsapp", "outcome", "rejected",
                   NULL);
        answer(res, "/webhook/whatsapp", 401, "{\"error\":\"bad signature\"}");
        return;
    }
    db = web_db(w);
    if (!db || arena_new(&a) < 0) {
        store_failed(res, "/webhook/whatsapp", NULL, 0, NULL);
        return;
    }
    r = whatsapp_webhook(w->cfg, db, a, req->body, req->body_len, &got);
    arena_free(a);
    if (r == -EBADMSG) {
        log_warn("wa.bad_webhook", "bytes=%zu", req->body_len);
        answer(res, "/webhook/whatsapp", 400, "{\"error\":\"not a WhatsApp webhook body\"}");
        return;
    }
    if (r < 0) {
        store_failed(res, "/webhook/whatsapp", "wa.inbox_error", r, db);
        return;
    }
    if (got.stored)
        metric_add("rivet_updates_received_total", got.stored, "channel", "whatsapp", "outcome",
                   "stored", NULL);
    if (got.duplicates)
        metric_add("rivet_updates_received_total", got.duplicates, "channel", "whatsapp", "outcome",
                   "duplicate", NULL);
    if (got.rejected)
        metric_add("rivet_updates_received_total", got.rejected, "channel", "whatsapp", "outcome",
                   "rejected", NULL);
    log_info("wa.webhook",
             "stored=%d duplicates=%d other_number=%d statuses=%d errors=%d skipped=%d", got.stored,
             got.duplicates, got.rejected, got.statuses, got.errors, got.skipped);
    answer(res, "/webhook/whatsapp", 200, "{\"ok\":true}");
}

/* The two methods of the WhatsApp webhook's one path. */
static void wa_hook(void *ctx, const struct http_request *req, struct http_response *res)
{
    if (strcmp(req->method, "GET") == 0)
        wa_verify(ctx, req, res);
    else
        wa_post(ctx, req, res);
}

/* ---- Telegram ---- */

/* POST /webhook/telegram: one Update, in webhook mode. */
static void tg_post(void *ctx, const struct http_request *req, struct http_response *res)
{
    struct web *w = ctx;
    const char *secret = http_header(req, "X-Telegram-Bot-Api-Secret-Token");
    size_t n = strlen(w->tg_secret);
    struct db *db;
    bool dup = false;
    int r;

    if (!w->cfg->telegram_webhook_url) {
        reply_json(res, 404, "{\"error\":\"Telegram webhook mode is off\"}");
        return;
    }
    if (!secret || strlen(secret) != n || CRYPTO_memcmp(secret, w->tg_secret, n) != 0) {
        log_warn("tg.bad_secret", "bytes=%zu present=%d", req->body_len, secret != NULL);
        metric_inc("rivet_updates_received_total", "channel", "telegram", "outcome", "rejected",
                   NULL);
        answer(res, "/webhook/telegram", 401, "{\"error\":\"bad secret token\"}");
        return;
    }
    db = web_db(w);
    if (!db) {
        store_failed(res, "/webhook/telegram", NULL, 0, NULL);
        return;
    }
    r = telegram_webhook_store(db, req->body, req->body_len, &dup);
    if (r == -EBADMSG) {
        log_warn("tg.update_dropped", "reason=unparseable bytes=%zu", req->body_len);
        metric_inc("rivet_updates_received_total", "channel", "telegram", "outcome", "rejected",
                   NULL);
        answer(res, "/webhook/telegram", 400, "{\"error\":\"not a Telegram Update\"}");
        return;
    }
    if (r < 0) {
        store_failed(res, "/webhook/telegram", "tg.inbox_error", r, db);
        return;
    }
    metric_inc("rivet_updates_received_total", "channel", "telegram", "outcome",
               dup ? "duplicate" : "stored", NULL);
    answer(res, "/webhook/telegram", 200, "{\"ok\":true}");
}

/* ---- health ---- */

static void json_field(struct buf *b, const char *key, const char *value, bool *first)
{
    buf_addf(b, "%s\"%s\":\"%s\"", *first ? "" : ",", key, value);
    *first = false;
}

/* GET /healthz: 200 when every part that runs is in a good state. The
 * reasons are Rivet's own words, never a setting's value. */
static void healthz(void *ctx, const struct http_request *req, struct http_response *res)
{
    struct web *w = ctx;
    struct db *db = web_db(w);
    bool ok = true, first = true;
    const char *why;
    struct alert_counters c;

    (void)req;
    buf_adds(&res->body, "{");
    if (!db || db_ping(db) < 0) {
        ok = false;
        json_field(&res->body, "database", "unreachable", &first);
    } else {
        json_field(&res->body, "database", "ok", &first);
    }
    pthread_mutex_lock(&w->lock);
    if (!w->attached) {
        /* A configured part is starting, not off, until web_attach(). */
        ok = false;
        json_field(&res->body, "serve", "starting", &first);
        json_field(&res->body, "telegram", w->cfg->telegram_token ? "starting" : "off", &first);
        json_field(&res->body, "whatsapp", w->cfg->whatsapp_token ? "starting" : "off", &first);
        json_field(&res->body, "mqtt", w->cfg->mqtt_url ? "starting" : "off", &first);
    } else {
        if (w->tg && telegram_health(w->tg, &why) < 0) {
            ok = false;
            json_field(&res->body, "telegram", why, &first);
        } else {
            json_field(&res->body, "telegram", w->tg ? "ok" : "off", &first);
        }
        if (w->wa && whatsapp_health(w->wa, &why) < 0) {
            ok = false;
            json_field(&res->body, "whatsapp", why, &first);
        } else {
            json_field(&res->body, "whatsapp", w->wa ? "ok" : "off", &first);
        }
        if (w->al) {
            alerts_counters(w->al, &c);
            if (!c.connected)
                ok = false;
            json_field(&res->body, "mqtt", c.connected ? "connected" : "disconnected", &first);
        } else {
            json_field(&res->body, "mqtt", "off", &first);
        }
    }
    pthread_mutex_unlock(&w->lock);
    json_field(&res->body, "status", ok ? "ok" : "fail", &first);
    buf_adds(&res->body, "}");
    res->status = ok ? 200 : 503;
}

/* ---- metrics ---- */

/* Copies what others count (queue depths, the alert thread) into the
 * registry, at scrape time. */
static void scrape(struct web *w)
{
    static const char *const channels[] = {"telegram", "whatsapp"};
    struct db *db = web_db(w);
    struct alert_counters c;

    for (size_t i = 0; db && i < sizeof(channels) / sizeof(channels[0]); i++) {
        long in, out;
        if (db_inbox_pending(db, channels[i], &in) == 0 &&
            db_outbox_pending(db, channels[i], &out) == 0) {
            metric_set("rivet_inbox_pending", (double)in, "channel", channels[i], NULL);
            metric_set("rivet_outbox_pending", (double)out, "channel", channels[i], NULL);
        }
    }
    pthread_mutex_lock(&w->lock);
    if (w->al) {
        alerts_counters(w->al, &c);
        metric_set("rivet_mqtt_connected", c.connected, NULL);
        metric_set("rivet_mqtt_messages_received_total", (double)c.received, NULL);
        metric_set("rivet_mqtt_messages_evaluated_total", (double)c.evaluated, NULL);
        for (int i = 0; i < DROP_REASON_COUNT; i++)
            if (c.dropped[i])
                metric_set("rivet_mqtt_messages_dropped_total", (double)c.dropped[i], "reason",
                           drop_reason_name((enum drop_reason)i), NULL);
        for (int i = 0; i < SEV_COUNT; i++)
            metric_set("rivet_alarms_raised_total", (double)c.alarms[i], "severity",
                       severity_name((enum severity)i), NULL);
        metric_set("rivet_alarm_escalations_total", (double)c.escalations, NULL);
        metric_set("rivet_db_errors_total", (double)c.db_errors, "component", "mqtt", NULL);
    }
    pthread_mutex_unlock(&w->lock);
}

static void metrics(void *ctx, const struct http_request *req, struct http_response *res)
{
    (void)req;
    scrape(ctx);
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (metrics_render(&res->body) < 0) {
        res->body.len = 0;
        reply_json(res, 500, "{\"error\":\"out of memory\"}");
        res->content_type = "application/json";
    }
}

/* ---- start and stop ---- */

static const struct http_route routes[] = {
    {"/healthz", "GET", NULL, healthz},
    {"/metrics", "GET", NULL, metrics},
    {"/webhook/whatsapp", "GET,POST", "application/json", wa_hook},
    {"/webhook/telegram", "POST", "application/json", tg_post},
};

int web_start(const struct config *cfg, struct web **ret)
{
    struct http_options opt = {.listen = cfg->http_listen,
                               .threads = cfg->http_threads,
                               .timeout_s = cfg->http_timeout_s,
                               .max_body = (size_t)cfg->http_max_body,
                               .max_connections = 256};
    struct web *w = calloc(1, sizeof(*w));
    int r;

    if (!w)
        return -ENOMEM;
    w->cfg = cfg;
    pthread_mutex_init(&w->lock, NULL);
    if (cfg->telegram_webhook_url)
        telegram_webhook_secret(cfg, w->tg_secret, sizeof(w->tg_secret));
    r = http_start(&opt, routes, (int)(sizeof(routes) / sizeof(routes[0])), w, &w->http);
    if (r < 0) {
        log_error("http.start_failed", "listen=%s err=%s", cfg->http_listen, strerror(-r));
        pthread_mutex_destroy(&w->lock);
        free(w);
        return r;
    }
    *ret = w;
    return 0;
}

void web_attach(struct web *w, struct telegram *tg, struct whatsapp *wa, struct alerts *al)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->tg = tg;
    w->wa = wa;
    w->al = al;
    w->attached = true;
    pthread_mutex_unlock(&w->lock);
}

int web_port(const struct web *w)
{
    return w ? http_port(w->http) : 0;
}

void web_stop(struct web *w)
{
    if (!w)
        return;
    http_stop(w->http);
    for (int i = 0; i < w->n_dbs; i++)
        db_close(w->dbs[i]);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
