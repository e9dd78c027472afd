/* rivet doctor: checks, one line each, what `rivet serve` needs: the
 * settings, the database and its schema, the chat APIs, the broker, the
 * LLM and the HTTP port. Every network call is bounded (DOCTOR_TIMEOUT_S);
 * no secret (token, key, password, DATABASE_URL) is ever printed. */
#include "rivet.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "llm.h"
#include "migrate.h"
#include "serve.h"
#include "tg.h"
#include "wa.h"

#define DOCTOR_TIMEOUT_S 5
/* The topic rivet serve subscribes to (mqtt.c), without a shared group. */
#define TELEMETRY_TOPIC "factories/+/devices/+/telemetry"

static const char doctor_usage[] =
    "Usage: rivet doctor\n"
    "\n"
    "Checks, in order, what rivet serve needs and prints one line for each:\n"
    "  settings    the same checks rivet serve makes at start\n"
    "  database    DATABASE_URL connects; the server's version; pg_trgm\n"
    "  migrations  the schema against the migrations this rivet carries\n"
    "  telegram    getMe: Telegram accepts TELEGRAM_BOT_TOKEN\n"
    "  whatsapp    the Graph API accepts WHATSAPP_TOKEN and the phone number id\n"
    "  mqtt        the broker of MQTT_URL: connect and subscribe\n"
    "  llm         each LLM provider answers and accepts its key (no tokens spent)\n"
    "  http        the HTTP_LISTEN port is free\n"
    "Each line says ok, warn, FAIL or skip (not configured), why, and what to do.\n"
    "Every network call gives up after 5 seconds. No secret is printed.\n"
    "Exit status: 0 when nothing failed, 1 otherwise, 2 on wrong usage.\n";

struct doctor {
    int failed, warned;
};

/* One check's line: "STATUS  CHECK       what, and what to do". */
static void say(struct doctor *d, const char *status, const char *check, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void say(struct doctor *d, const char *status, const char *check, const char *fmt, ...)
{
    char msg[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) /* libpq's messages span lines */
        if (*p == '\n' || *p == '\t' || *p == '\r')
            *p = ' ';
    /* one space between words, none before a ';' or at the end */
    for (char *r = msg, *w = msg;; r++) {
        if (*r == ' ' && (w == msg || w[-1] == ' ' || r[1] == ';' || r[1] == ' ' || !r[1]))
            continue;
        *w++ = *r;
        if (!*r)
            break;
    }
    if (strcmp(status, "FAIL") == 0)
        d->failed++;
    else if (strcmp(status, "warn") == 0)
        d->warned++;
    printf("%-4s  %-10s  %s\n", status, check, msg);
}

static const char *env_get(const char *name)
{
    return getenv(name);
}

/* ---- database and migrations ---- */

/* The first column of the first row of sql, or NULL (*failed on an error). */
static char *query_value(PGconn *c, const char *sql, bool *failed)
{
    PGresult *res = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
    char *v = NULL;

    *failed = PQresultStatus(res) != PGRES_TUPLES_OK;
    if (!*failed && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    out[0] = '\0';
    if (!EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL))
        return;
    for (unsigned i = 0; i < len && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static PGconn *check_database(struct doctor *d, const struct config *cfg)
{
    PGconn *c = PQconnectdb(cfg->database_url);
    char *v;
    bool failed;
    int ver;

    if (PQstatus(c) != CONNECTION_OK) {
        say(d, "FAIL", "database",
            "cannot connect with DATABASE_URL: %s; check the host, port, user, password and "
            "database name in it, and that PostgreSQL runs",
            c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return NULL;
    }
    PQclear(PQexec(c, "SET statement_timeout = 5000"));
    ver = PQserverVersion(c);
    v = query_value(c, "SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'", &failed);
    if (failed) {
        say(d, "FAIL", "database", "connected, but a query failed: %s", PQerrorMessage(c));
    } else if (v) {
        say(d, "ok", "database", "PostgreSQL %d.%d, database %s on %s:%s, pg_trgm %s", ver / 10000,
            ver % 100, PQdb(c), PQhost(c), PQport(c), v);
    } else {
        char *avail = query_value(
            c, "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_trgm'",
            &failed);
        if (avail)
            say(d, "warn", "database",
                "PostgreSQL %d.%d, database %s: pg_trgm is not created in it yet; rivet "
                "migrate creates it (as the database owner or a superuser)",
                ver / 10000, ver % 100, PQdb(c));
        else
            say(d, "FAIL", "database",
                "PostgreSQL %d.%d: the pg_trgm extension is not installed on the server; "
                "install postgresql-contrib (Debian: postgresql-contrib) there",
                ver / 10000, ver % 100);
        free(avail);
    }
    free(v);
    return c;
}

static void check_migrations(struct doctor *d, PGconn *c)
{
    static const char *const applied_sql =
        "SELECT version, name, checksum FROM schema_migrations ORDER BY version";
    const struct migration *last = n_migrations ? &migrations[n_migrations - 1] : NULL;
    int pending = 0, newest = 0, changed = 0;
    const char *first_pending = NULL, *first_changed = NULL;
    PGresult *res;
    bool failed;
    char *v;

    if (!c) {
        say(d, "skip", "migrations", "no database to look at");
        return;
    }
    v = query_value(c, "SELECT to_regclass('schema_migrations') IS NOT NULL", &failed);
    if (failed || !v) {
        say(d, "FAIL", "migrations", "cannot read the schema: %s", PQerrorMessage(c));
        free(v);
        return;
    }
    if (strcmp(v, "t") != 0) {
        free(v);
        say(d, "FAIL", "migrations",
            "the database has no Rivet schema yet (%u migrations pending); run rivet migrate "
            "(rivet serve also applies them when it starts)",
            n_migrations);
        return;
    }
    free(v);
    res = PQexecParams(c, applied_sql, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        say(d, "FAIL", "migrations", "cannot read schema_migrations: %s", PQerrorMessage(c));
        PQclear(res);
        return;
    }
    for (unsigned i = 0; i < n_migrations; i++) {
        bool found = false;
        for (int row = 0; row < PQntuples(res) && !found; row++) {
            char sum[65];
            if (atoi(PQgetvalue(res, row, 0)) != migrations[i].version)
                continue;
            found = true;
            sha256_hex(migrations[i].sql, sum);
            if (strcmp(sum, PQgetvalue(res, row, 2)) != 0 && !changed++)
                first_changed = migrations[i].name;
        }
        if (!found && !pending++)
            first_pending = migrations[i].name;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        int ver = atoi(PQgetvalue(res, row, 0));
        if (last && ver > last->version && ver > newest)
            newest = ver;
    }
    PQclear(res);
    if (changed)
        say(d, "FAIL", "migrations",
            "%s was changed after it was applied (its checksum differs): rivet serve will "
            "refuse to start; put the original file back and the change in a new migration",
            first_changed);
    else if (pending)
        say(d, "FAIL", "migrations",
            "%d migration%s pending (first %s); run rivet migrate (rivet serve also applies "
            "them when it starts)",
            pending, pending == 1 ? "" : "s", first_pending);
    else if (newest)
        say(d, "warn", "migrations",
            "the database is at version %d, newer than this rivet knows (%d): it was "
            "migrated by a newer rivet; run that one",
            newest, last ? last->version : 0);
    else
        say(d, "ok", "migrations", "schema at version %d, all %u migrations of this rivet applied",
            last ? last->version : 0, n_migrations);
}

/* ---- the chat APIs ---- */

static void check_telegram(struct doctor *d, const struct config *cfg)
{
    struct tg_api *api = NULL;
    struct tg_reply rep;
    int r;

    if (!cfg->telegram_token) {
        say(d, "skip", "telegram", "TELEGRAM_BOT_TOKEN is not set: no Telegram channel");
        return;
    }
    if (tg_api_new(cfg->telegram_api_url, cfg->telegram_token, NULL, &api) < 0) {
        say(d, "FAIL", "telegram", "cannot set up the Bot API client (out of memory?)");
        return;
    }
    memset(&rep, 0, sizeof(rep));
    r = tg_api_call(api, "getMe", NULL, DOCTOR_TIMEOUT_S, &rep);
    if (r < 0) {
        say(d, "FAIL", "telegram",
            "cannot reach the Telegram Bot API (TELEGRAM_API_URL): %s; check the network, "
            "DNS and any proxy",
            strerror(-r));
    } else if (rep.ok) {
        json_t *u = json_object_get(rep.result, "username");
        say(d, "ok", "telegram", "Telegram accepts TELEGRAM_BOT_TOKEN: the bot is @%s%s",
            json_is_string(u) ? json_string_value(u) : "?",
            cfg->telegram_webhook_url ? " (webhook mode)" : "");
    } else if (rep.error_code == 401 || rep.error_code == 404) {
        say(d, "FAIL", "telegram",
            "TELEGRAM_BOT_TOKEN is refused by Telegram (%d); copy the token from @BotFather "
            "again (/mybots, API Token)",
            rep.error_code);
    } else {
        say(d, "FAIL", "telegram", "getMe failed: Telegram answered %d (%.100s)", rep.error_code,
            rep.description);
    }
    tg_reply_clear(&rep);
    tg_api_free(api);
}

static void check_whatsapp(struct doctor *d, const struct config *cfg)
{
    struct wa_api *api = NULL;
    struct wa_reply rep;
    int r;

    if (!cfg->whatsapp_token) {
        say(d, "skip", "whatsapp", "WHATSAPP_TOKEN is not set: no WhatsApp channel");
        return;
    }
    if (wa_api_new(cfg->whatsapp_api_url, cfg->whatsapp_phone_number_id, cfg->whatsapp_token, NULL,
                   &api) < 0) {
        say(d, "FAIL", "whatsapp", "cannot set up the Graph API client (out of memory?)");
        return;
    }
    memset(&rep, 0, sizeof(rep));
    r = wa_api_hello(api, DOCTOR_TIMEOUT_S, &rep);
    if (r < 0)
        say(d, "FAIL", "whatsapp",
            "cannot reach the Graph API (WHATSAPP_API_URL): %s; check the network, DNS and "
            "any proxy",
            strerror(-r));
    else if (rep.ok)
        say(d, "ok", "whatsapp",
            "the Graph API accepts WHATSAPP_TOKEN and knows WHATSAPP_PHONE_NUMBER_ID");
    else if (rep.http_status == 401 || rep.error_code == 190)
        say(d, "FAIL", "whatsapp",
            "WHATSAPP_TOKEN is refused by the Graph API (%ld, code %d); make a new system "
            "user token in Meta's Business Manager",
            rep.http_status, rep.error_code);
    else if (rep.error_code == 100)
        say(d, "FAIL", "whatsapp",
            "the Graph API does not know WHATSAPP_PHONE_NUMBER_ID, or the token may not see "
            "it (code 100); copy the id from the WhatsApp Manager");
    else
        say(d, "FAIL", "whatsapp", "the Graph API answered %ld (code %d)", rep.http_status,
            rep.error_code);
    wa_api_free(api);
}

/* ---- the broker ---- */

struct mqtt_probe {
    int connack; /* -1 until the CONNACK */
    int suback;  /* -1 until the SUBACK; else the granted QoS (0x80: refused) */
};

static void probe_connect(struct mosquitto *m, void *obj, int rc)
{
    ((struct mqtt_probe *)obj)->connack = rc;
}

static void probe_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted)
{
    ((struct mqtt_probe *)obj)->suback = n > 0 ? granted[0] : 0x80;
}

static long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static void check_mqtt(struct doctor *d, const struct config *cfg)
{
    struct mqtt_probe st = {-1, -1};
    struct mosquitto *m = NULL;
    char id[64];
    long deadline;
    int r;

    if (!cfg->mqtt_url) {
        say(d, "skip", "mqtt", "MQTT_URL is not set: no alert thread");
        return;
    }
    r = tcp_reachable(cfg->mqtt_host, cfg->mqtt_port, 3000);
    if (r < 0) {
        say(d, "FAIL", "mqtt",
            "cannot reach the broker at %s:%d (MQTT_URL): %s; check that it runs and that "
            "the port is open",
            cfg->mqtt_host, cfg->mqtt_port,
            r == -ENOENT ? "the host name does not resolve" : strerror(-r));
        return;
    }
    snprintf(id, sizeof(id), "rivet-doctor-%ld", (long)getpid());
    m = mosquitto_new(id, true, &st);
    if (!m) {
        say(d, "FAIL", "mqtt", "cannot set up the MQTT client (out of memory?)");
        return;
    }
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(m, probe_connect);
    mosquitto_subscribe_callback_set(m, probe_subscribe);
    if (cfg->mqtt_username)
        mosquitto_username_pw_set(m, cfg->mqtt_username, cfg->mqtt_password);
    if (cfg->mqtt_tls &&
        mosquitto_tls_set(m, cfg->mqtt_ca_file, cfg->mqtt_ca_file ? NULL : "/etc/ssl/certs", NULL,
                          NULL, NULL) != MOSQ_ERR_SUCCESS) {
        say(d, "FAIL", "mqtt", "cannot set up TLS for MQTT_URL (MQTT_CA_FILE)");
        goto out;
    }
    r = mosquitto_connect(m, cfg->mqtt_host, cfg->mqtt_port, 30);
    if (r != MOSQ_ERR_SUCCESS) {
        say(d, "FAIL", "mqtt", "cannot connect to the broker at %s:%d: %s", cfg->mqtt_host,
            cfg->mqtt_port, r == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(r));
        goto out;
    }
    deadline = mono_ms() + DOCTOR_TIMEOUT_S * 1000L;
    while (mono_ms() < deadline && (st.connack != 0 || st.suback < 0)) {
        int before = st.connack;

        r = mosquitto_loop(m, 100, 1);
        if (r != MOSQ_ERR_SUCCESS && st.connack <= 0)
            break;
        if (st.connack > 0)
            break; /* refused */
        if (before != 0 && st.connack == 0 &&
            mosquitto_subscribe(m, NULL, TELEMETRY_TOPIC, 1) != MOSQ_ERR_SUCCESS)
            break;
    }
    if (st.connack > 0)
        say(d, "FAIL", "mqtt",
            "the broker at %s:%d refused the connection: %s; check MQTT_USERNAME and MQTT_PASSWORD",
            cfg->mqtt_host, cfg->mqtt_port, mosquitto_connack_string(st.connack));
    else if (st.connack < 0)
        say(d, "FAIL", "mqtt",
            "the broker at %s:%d did not answer the MQTT connect within %d s%s%s; is it an "
            "MQTT broker, and is MQTT_URL mqtt:// or mqtts:// as it expects?",
            cfg->mqtt_host, cfg->mqtt_port, DOCTOR_TIMEOUT_S, r != MOSQ_ERR_SUCCESS ? ": " : "",
            r == MOSQ_ERR_SUCCESS ? ""
            : r == MOSQ_ERR_ERRNO ? strerror(errno)
                                  : mosquitto_strerror(r));
    else if (st.suback < 0)
        say(d, "FAIL", "mqtt", "connected to %s:%d, but the subscription got no answer within %d s",
            cfg->mqtt_host, cfg->mqtt_port, DOCTOR_TIMEOUT_S);
    else if (st.suback >= 0x80)
        say(d, "FAIL", "mqtt",
            "connected to %s:%d, but the broker refused the subscription to " TELEMETRY_TOPIC
            "; allow it in the broker's ACL for MQTT_USERNAME",
            cfg->mqtt_host, cfg->mqtt_port);
    else
        say(d, "ok", "mqtt", "connected to %s:%d%s and subscribed to " TELEMETRY_TOPIC,
            cfg->mqtt_host, cfg->mqtt_port, cfg->mqtt_tls ? " (TLS)" : "");
    mosquitto_disconnect(m);
out:
    mosquitto_destroy(m);
}

/* ---- the LLM and HTTP ---- */

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    size_t *total = ctx;

    *total += size * n;
    return *total > (64u << 10) ? 0 : size * n; /* enough: stop reading */
}

/* A request that a provider answers without spending a token: a chat
 * completion with no messages. The key is checked first (401/403); a 400
 * or 422 then says the endpoint and key are fine. */
static void check_llm_one(struct doctor *d, const struct llm_provider *p)
{
    char url[600], auth[600], setting[64], url_setting[64];
    struct curl_slist *h = NULL;
    CURL *c = curl_easy_init();
    CURLcode cr;
    json_t *req;
    char *js = NULL;
    size_t got = 0;
    long status = 0;

    if (strcmp(p->name, "default") == 0) {
        snprintf(setting, sizeof(setting), "LLM_API_KEY");
        snprintf(url_setting, sizeof(url_setting), "LLM_URL");
    } else {
        char up[32];
        size_t i;
        for (i = 0; p->name[i] && i < sizeof(up) - 1; i++)
            up[i] = (char)(p->name[i] >= 'a' && p->name[i] <= 'z' ? p->name[i] - 32 : p->name[i]);
        up[i] = '\0';
        snprintf(setting, sizeof(setting), "LLM_%s_API_KEY", up);
        snprintf(url_setting, sizeof(url_setting), "LLM_%s_URL", up);
    }
    req = json_pack("{s:s, s:[]}", "model", p->model, "messages");
    js = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!c || !js) {
        say(d, "FAIL", "llm", "%s: out of memory", p->name);
        goto out;
    }
    snprintf(url, sizeof(url), "%s%schat/completions", p->url,
             p->url[0] && p->url[strlen(p->url) - 1] == '/' ? "" : "/");
    h = curl_slist_append(h, "Content-Type: application/json");
    if (p->api_key[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", p->api_key);
        h = curl_slist_append(h, auth);
        memset(auth, 0, sizeof(auth));
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 3L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)DOCTOR_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, js);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    cr = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (cr != CURLE_OK && cr != CURLE_WRITE_ERROR) {
        say(d, "FAIL", "llm", "%s: cannot reach the provider (%s): %s; check the URL and network",
            p->name, url_setting, curl_easy_strerror(cr));
    } else if (status == 401 || status == 403) {
        say(d, "FAIL", "llm", "%s: the provider refuses %s (%ld)%s", p->name, setting, status,
            p->api_key[0] ? "; make a new key" : ": it needs a key, and none is set");
    } else if (status == 404) {
        say(d, "FAIL", "llm",
            "%s: %ld: no chat/completions at %s, or the model %.100s is unknown there; the URL "
            "usually ends in /v1",
            p->name, status, url_setting, p->model);
    } else if (status == 429) {
        say(d, "warn", "llm", "%s: the provider accepts %s but limits the rate now (429)", p->name,
            p->api_key[0] ? setting : "the request");
    } else if (status >= 500) {
        say(d, "warn", "llm",
            "%s: the provider answers %ld (a fault on its side); photos fall "
            "back to local reading meanwhile",
            p->name, status);
    } else if (status >= 200 && status < 500) {
        say(d, "ok", "llm", "%s: the provider answers, model %.100s%s", p->name, p->model,
            p->api_key[0] ? ", key accepted" : "");
    } else {
        say(d, "FAIL", "llm", "%s: an unexpected answer (%ld)", p->name, status);
    }
out:
    curl_slist_free_all(h); /* the key's header is freed with it */
    free(js);
    if (c)
        curl_easy_cleanup(c);
}

static void check_llm(struct doctor *d, const struct llm_provider *p, int n)
{
    if (n == 0) {
        say(d, "skip", "llm", "LLM_URL is not set: nameplates are read locally only, no assistant");
        return;
    }
    for (int i = 0; i < n; i++)
        check_llm_one(d, &p[i]);
}

/* Whether a Rivet answers GET /healthz at host:port (it is probably this
 * installation's own rivet serve). */
static bool rivet_answers(const char *host, int port, bool v6)
{
    char url[128];
    CURL *c = curl_easy_init();
    size_t got = 0;
    long status = 0;

    if (!c)
        return false;
    snprintf(url, sizeof(url), v6 ? "http://[%s]:%d/healthz" : "http://%s:%d/healthz", host, port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 2L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status == 200 || status == 503;
}

static void check_http(struct doctor *d, const struct config *cfg)
{
    char host[INET6_ADDRSTRLEN];
    struct sockaddr_storage ss;
    socklen_t len;
    bool v6;
    int port, fd, one = 1, err;

    if (!cfg->http_listen) {
        say(d, "skip", "http", "HTTP_LISTEN is off: no webhooks, /healthz or /metrics");
        return;
    }
    if (config_parse_listen(cfg->http_listen, host, sizeof(host), &port) < 0) {
        say(d, "FAIL", "http", "HTTP_LISTEN is not HOST:PORT");
        return;
    }
    if (port == 0) {
        say(d, "ok", "http", "HTTP_LISTEN port 0: rivet serve picks a free port at start");
        return;
    }
    memset(&ss, 0, sizeof(ss));
    v6 = strchr(host, ':') != NULL;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, host, &a->sin6_addr);
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, host, &a->sin_addr);
        len = sizeof(*a);
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        say(d, "FAIL", "http", "cannot open a socket: %s", strerror(errno));
        return;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (v6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    err = bind(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : errno;
    close(fd);
    if (err == 0) {
        say(d, "ok", "http", "%s%s%s:%d is free for rivet serve", v6 ? "[" : "", host,
            v6 ? "]" : "", port);
    } else if (err == EADDRINUSE) {
        const char *probe = strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1"
                            : strcmp(host, "::") == 0    ? "::1"
                                                         : host;
        if (rivet_answers(probe, port, v6))
            say(d, "warn", "http",
                "a rivet serve already listens on port %d: fine if it is this installation's; "
                "stop it before starting another",
                port);
        else
            say(d, "FAIL", "http",
                "port %d of %s is taken by another program; stop it or choose another "
                "HTTP_LISTEN",
                port, host);
    } else if (err == EADDRNOTAVAIL) {
        say(d, "FAIL", "http", "%s is not an address of this machine; fix HTTP_LISTEN", host);
    } else if (err == EACCES) {
        say(d, "FAIL", "http",
            "port %d needs privileges; use a port above 1023 (and a reverse proxy) or grant "
            "CAP_NET_BIND_SERVICE",
            port);
    } else {
        say(d, "FAIL", "http", "cannot bind HTTP_LISTEN: %s", strerror(err));
    }
}

int cmd_doctor(int argc, char **argv)
{
    static struct llm_provider providers[LLM_MAX_PROVIDERS];
    static const char *const later[] = {"database", "migrations", "telegram", "whatsapp",
                                        "mqtt",     "llm",        "http"};
    struct doctor d = {0, 0};
    struct config cfg;
    char err[256];
    PGconn *c;
    int n_llm;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(doctor_usage, stdout);
            return 0;
        }
        return usage_error("doctor", "unexpected argument");
    }
    /* libpq's connect gives up within DOCTOR_TIMEOUT_S (DATABASE_URL's
     * connect_timeout still wins). */
    setenv("PGCONNECT_TIMEOUT", "5", 1);
    if (config_load(&cfg, 1, err, sizeof(err)) < 0 ||
        (n_llm = llm_config_load(env_get, providers, LLM_MAX_PROVIDERS, err, sizeof(err))) < 0) {
        say(&d, "FAIL", "settings", "%s", err);
        for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++)
            say(&d, "skip", later[i], "not checked: fix the settings first");
        return 1;
    }
    say(&d, "ok", "settings",
        "as rivet serve reads them: telegram %s, whatsapp %s, mqtt %s, %d LLM provider%s, "
        "HTTP %s",
        cfg.telegram_token ? "on" : "off", cfg.whatsapp_token ? "on" : "off",
        cfg.mqtt_url ? "on" : "off", n_llm, n_llm == 1 ? "" : "s",
        cfg.http_listen ? cfg.http_listen : "off");
    c = check_database(&d, &cfg);
    check_migrations(&d, c);
    PQfinish(c);
    check_telegram(&d, &cfg);
    check_whatsapp(&d, &cfg);
    check_mqtt(&d, &cfg);
    check_llm(&d, providers, n_llm);
    check_http(&d, &cfg);
    printf("%s: %d failed, %d warning%s\n", d.failed ? "FAIL" : "ok", d.failed, d.warned,
           d.warned == 1 ? "" : "s");
    return d.failed ? 1 : 0;
}
