#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <strings.h>
#include <stdbool.h>
#include <stddef.h>
#include <unistd.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENV_LINE_MAX 8192

int config_parse_int(const char *s, long long min, long long max, long long *ret)
{
    char *end;
    long long v;

    if (!s || !*s || isspace((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -EINVAL;
    *ret = v;
    return 0;
}

int config_parse_duration(const char *s, long long *ret)
{
    static const struct {
        char unit;
        long long seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
    char num[32];
    size_t n;
    long long v, mult = 86400;

    if (!s)
        return -EINVAL;
    n = strlen(s);
    if (n == 0 || n >= sizeof(num))
        return -EINVAL;
    memcpy(num, s, n + 1);
    if (isalpha((unsigned char)num[n - 1])) {
        size_t i;
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (tolower((unsigned char)num[n - 1]) == units[i].unit)
                break;
        if (i == sizeof(units) / sizeof(units[0]))
            return -EINVAL;
        mult = units[i].seconds;
        num[n - 1] = '\0';
    }
    if (config_parse_int(num, 1, 10LL * 366 * 86400, &v) < 0)
        return -EINVAL;
    if (v > 10LL * 366 * 86400 / mult)
        return -EINVAL;
    *ret = v * mult;
    return 0;
}

static char *unquote(char *v)
{
    size_t n = strlen(v);

    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        v[n - 1] = '\0';
        return v + 1;
    }
    return v;
}

/* Reads KEY=VALUE lines from path and calls set(key, value, ctx) for each;
 * a set() that fails (-errno) stops the read. Returns 0, or -errno with a
 * line naming the file and line in err (never a value). */
static int env_file_parse(const char *path, int (*set)(const char *key, const char *val, void *ctx),
                          void *ctx, char *err, size_t errlen)
{
    char line[ENV_LINE_MAX];
    FILE *f;
    int lineno = 0, r = 0;

    f = fopen(path, "re");
    if (!f) {
        r = -errno;
        snprintf(err, errlen, "cannot read env file %s: %s", path, strerror(errno));
        return r;
    }
    while (fgets(line, sizeof(line), f)) {
        char *p = line, *eq, *key, *val;
        size_t n = strlen(line);

        lineno++;
        if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
            snprintf(err, errlen, "%s:%d: line longer than %d bytes", path, lineno,
                     ENV_LINE_MAX - 2);
            r = -EINVAL;
            goto out;
        }
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        while (isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#')
            continue;
        if (strncmp(p, "export ", 7) == 0)
            p += 7;
        eq = strchr(p, '=');
        if (!eq || eq == p) {
            snprintf(err, errlen, "%s:%d: expected KEY=VALUE", path, lineno);
            r = -EINVAL;
            goto out;
        }
        *eq = '\0';
        key = p;
        for (char *k = key; *k; k++) {
            if (!(isalnum((unsigned char)*k) || *k == '_')) {
                snprintf(err, errlen, "%s:%d: invalid variable name", path, lineno);
                r = -EINVAL;
                goto out;
            }
        }
        val = unquote(eq + 1);
        r = set(key, val, ctx);
        if (r < 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, strerror(-r));
            goto out;
        }
    }
    if (ferror(f)) {
        r = -EIO;
        snprintf(err, errlen, "cannot read env file %s", path);
    }
out:
    fclose(f);
    return r;
}

/* What the env files given at start set, for config_reload(): their
 * paths, and the names they set (those not in the environment already).
 * Written by the main thread before any other starts; read-only after. */
#define ENV_FILES_MAX 8
#define ENV_KEYS_MAX 512
static char *env_files[ENV_FILES_MAX];
static int n_env_files;
static char *env_keys[ENV_KEYS_MAX];
static int n_env_keys;

static bool env_key_from_file(const char *key)
{
    for (int i = 0; i < n_env_keys; i++)
        if (strcmp(env_keys[i], key) == 0)
            return true;
    return false;
}

static int env_set_start(const char *key, const char *val, void *ctx)
{
    (void)ctx;
    if (getenv(key))
        return 0; /* the environment wins */
    if (setenv(key, val, 0) < 0)
        return -errno;
    if (n_env_keys < ENV_KEYS_MAX && !env_key_from_file(key)) {
        char *k = strdup(key);
        if (!k)
            return -ENOMEM;
        env_keys[n_env_keys++] = k;
    }
    return 0;
}

int config_load_env_file(const char *path, char *err, size_t errlen)
{
    int r = env_file_parse(path, env_set_start, NULL, err, errlen);

    if (r == 0 && n_env_files < ENV_FILES_MAX) {
        /* an absolute path, so a reload finds it from any directory */
        char *abs = realpath(path, NULL);
        if (abs)
            env_files[n_env_files++] = abs;
    }
    return r;
}

/* ---- SIGHUP: the env files again ---- */

int config_env_files(void)
{
    return n_env_files;
}

/* The settings of a reload: name=value pairs as the files say them now,
 * the first line and file that names a setting winning (as at start). */
struct env_new {
    char *names[ENV_KEYS_MAX];
    char *values[ENV_KEYS_MAX];
    int n;
};

static int env_set_new(const char *key, const char *val, void *ctx)
{
    struct env_new *e = ctx;

    for (int i = 0; i < e->n; i++)
        if (strcmp(e->names[i], key) == 0)
            return 0; /* the first one counts, as at start */
    if (e->n == ENV_KEYS_MAX)
        return -E2BIG;
    e->names[e->n] = strdup(key);
    e->values[e->n] = strdup(val);
    if (!e->names[e->n] || !e->values[e->n]) {
        free(e->names[e->n]);
        free(e->values[e->n]);
        return -ENOMEM;
    }
    e->n++;
    return 0;
}

static void env_new_clear(struct env_new *e)
{
    for (int i = 0; i < e->n; i++) {
        free(e->names[i]);
        free(e->values[i]);
    }
    e->n = 0;
}

/* The value key has after the reload (NULL: unset), and whether a file may
 * change it: a name that was in the environment before the files were read
 * keeps its value. */
static const char *env_new_get(const struct env_new *e, const char *key, bool *from_file)
{
    *from_file = env_key_from_file(key) || !getenv(key);
    if (!*from_file)
        return getenv(key);
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->names[i], key) == 0)
            return e->values[i][0] ? e->values[i] : NULL;
    return NULL;
}

static void list_add(char *list, size_t len, const char *name)
{
    size_t used = strlen(list);

    snprintf(list + used, len - used, "%s%s", used ? "," : "", name);
}

int config_reload(struct config_live *live, char *restart, size_t restart_len, char *err,
                  size_t errlen)
{
    struct env_new e = {.n = 0};
    const char *v;
    bool from_file;
    int r = 0;

    restart[0] = '\0';
    err[0] = '\0';
    live->changed = 0;
    if (n_env_files == 0)
        return 0;
    for (int i = 0; i < n_env_files && r == 0; i++)
        r = env_file_parse(env_files[i], env_set_new, &e, err, errlen);
    if (r < 0)
        goto out;

    /* Applied at once. */
    v = env_new_get(&e, "RIVET_LOG_LEVEL", &from_file);
    if (from_file) {
        enum log_level lvl = LOG_INFO;
        if (v && log_level_parse(v, &lvl) < 0) {
            snprintf(err, errlen,
                     "RIVET_LOG_LEVEL must be one of debug, info, warn, error, off; kept %s",
                     log_level_name(live->log_level));
            r = -EINVAL;
            goto out;
        }
        if (lvl != live->log_level) {
            live->log_level = lvl;
            live->changed |= CONFIG_LIVE_LOG_LEVEL;
        }
    }

    /* Everything else a file set, or sets now, is read at start only. */
    for (int pass = 0; pass < 2; pass++) {
        int n = pass == 0 ? n_env_keys : e.n;
        for (int i = 0; i < n; i++) {
            const char *key = pass == 0 ? env_keys[i] : e.names[i], *now;
            if (strcmp(key, "RIVET_LOG_LEVEL") == 0 || (pass == 1 && env_key_from_file(key)))
                continue;
            v = env_new_get(&e, key, &from_file);
            if (!from_file)
                continue;
            now = getenv(key);
            if (now && !*now)
                now = NULL;
            if ((v == NULL) != (now == NULL) || (v && strcmp(v, now) != 0))
                list_add(restart, restart_len, key);
        }
    }
out:
    env_new_clear(&e);
    return r;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* MQTT_URL and the settings that go with it. Credentials belong in
 * MQTT_USERNAME and MQTT_PASSWORD, never in the URL: the URL is logged. */
int config_parse_listen(const char *listen, char *host, size_t host_len, int *port)
{
    char h[INET6_ADDRSTRLEN];
    unsigned char addr[sizeof(struct in6_addr)];
    const char *colon, *p;
    size_t hl;
    long v = 0;

    if (!listen)
        return -EINVAL;
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');

        if (!end || end[1] != ':')
            return -EINVAL;
        hl = (size_t)(end - listen - 1);
        if (hl == 0 || hl >= sizeof(h))
            return -EINVAL;
        memcpy(h, listen + 1, hl);
        h[hl] = '\0';
        if (inet_pton(AF_INET6, h, addr) != 1)
            return -EINVAL;
        colon = end + 1;
    } else {
        /* One colon only: a bare IPv6 address must be bracketed. */
        colon = strchr(listen, ':');
        if (!colon || strchr(colon + 1, ':'))
            return -EINVAL;
        hl = (size_t)(colon - listen);
        if (hl == 0) {
            snprintf(h, sizeof(h), "0.0.0.0");
        } else if (hl == 9 && strncasecmp(listen, "localhost", 9) == 0) {
            snprintf(h, sizeof(h), "127.0.0.1");
        } else {
            if (hl >= sizeof(h))
                return -EINVAL;
            memcpy(h, listen, hl);
            h[hl] = '\0';
            if (inet_pton(AF_INET, h, addr) != 1)
                return -EINVAL;
        }
    }
    p = colon + 1;
    if (*p == '\0' || strlen(p) > 5)
        return -EINVAL;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v > 65535)
        return -EINVAL;
    if (host) {
        if (strlen(h) >= host_len)
            return -EINVAL;
        memcpy(host, h, strlen(h) + 1);
    }
    if (port)
        *port = (int)v;
    return 0;
}

/* A URL setting: http:// or https://, nothing else. */
static bool http_url(const char *v)
{
    return strncmp(v, "http://", 7) == 0 || strncmp(v, "https://", 8) == 0;
}

/* A secret that travels in headers or HMAC keys: printable ASCII, no
 * blanks, at most max bytes. */
static bool secret_ok(const char *v, size_t max)
{
    size_t n = strlen(v);

    if (n == 0 || n > max)
        return false;
    for (; *v; v++)
        if (*v <= ' ' || *v > '~')
            return false;
    return true;
}

/* The HTTP server, the Telegram webhook and WhatsApp. No secret is ever
 * echoed in err. */
static int web_load(struct config *cfg, char *err, size_t errlen)
{
    static const char *const wa_needs[] = {"WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_APP_SECRET",
                                           "WHATSAPP_VERIFY_TOKEN"};
    const char *v;

    cfg->http_listen = env("HTTP_LISTEN");
    if (!cfg->http_listen)
        cfg->http_listen = "127.0.0.1:8080";
    if (strcmp(cfg->http_listen, "off") == 0) {
        cfg->http_listen = NULL;
    } else {
        if (config_parse_listen(cfg->http_listen, NULL, 0, NULL) < 0) {
            snprintf(err, errlen,
                     "HTTP_LISTEN must be HOST:PORT (127.0.0.1:8080, [::1]:8080, :8080) or off");
            return -EINVAL;
        }
    }

    cfg->telegram_webhook_url = env("TELEGRAM_WEBHOOK_URL");
    if (cfg->telegram_webhook_url && !http_url(cfg->telegram_webhook_url)) {
        snprintf(err, errlen,
                 "TELEGRAM_WEBHOOK_URL must be the public https:// URL of /webhook/telegram");
        return -EINVAL;
    }
    if (cfg->telegram_webhook_url && !cfg->telegram_token) {
        snprintf(err, errlen, "TELEGRAM_WEBHOOK_URL needs TELEGRAM_BOT_TOKEN");
        return -EINVAL;
    }
    if (cfg->telegram_webhook_url && !cfg->http_listen) {
        snprintf(err, errlen, "TELEGRAM_WEBHOOK_URL needs the HTTP server: HTTP_LISTEN is off");
        return -EINVAL;
    }
    cfg->telegram_webhook_secret = env("TELEGRAM_WEBHOOK_SECRET");
    if (cfg->telegram_webhook_secret) {
        bool bad = strlen(cfg->telegram_webhook_secret) > 256;
        for (v = cfg->telegram_webhook_secret; *v && !bad; v++)
            bad = !((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
                    (*v >= '0' && *v <= '9') || *v == '_' || *v == '-');
        if (bad || !cfg->telegram_webhook_secret[0]) {
            snprintf(err, errlen,
                     "TELEGRAM_WEBHOOK_SECRET must be 1 to 256 of A-Z a-z 0-9 _ - (Telegram's "
                     "rule)");
            return -EINVAL;
        }
    }

    cfg->whatsapp_api_url = env("WHATSAPP_API_URL");
    if (!cfg->whatsapp_api_url)
        cfg->whatsapp_api_url = "https://graph.facebook.com/v21.0";
    if (!http_url(cfg->whatsapp_api_url)) {
        snprintf(err, errlen, "WHATSAPP_API_URL must start with http:// or https://");
        return -EINVAL;
    }
    cfg->whatsapp_template = env("WHATSAPP_ALARM_TEMPLATE");
    if (!cfg->whatsapp_template)
        cfg->whatsapp_template = "rivet_alarm";
    cfg->whatsapp_template_lang = env("WHATSAPP_ALARM_TEMPLATE_LANGUAGE");
    if (!cfg->whatsapp_template_lang)
        cfg->whatsapp_template_lang = "en";
    if (!secret_ok(cfg->whatsapp_template, 512) || !secret_ok(cfg->whatsapp_template_lang, 16)) {
        snprintf(err, errlen,
                 "WHATSAPP_ALARM_TEMPLATE and WHATSAPP_ALARM_TEMPLATE_LANGUAGE must be a "
                 "template's name and language code (en, en_US, de, ...)");
        return -EINVAL;
    }
    cfg->whatsapp_token = env("WHATSAPP_TOKEN");
    if (!cfg->whatsapp_token)
        return 0;
    if (!secret_ok(cfg->whatsapp_token, 1024)) {
        snprintf(err, errlen, "WHATSAPP_TOKEN is not an access token (printable, no spaces)");
        return -EINVAL;
    }
    cfg->whatsapp_phone_number_id = env("WHATSAPP_PHONE_NUMBER_ID");
    cfg->whatsapp_app_secret = env("WHATSAPP_APP_SECRET");
    cfg->whatsapp_verify_token = env("WHATSAPP_VERIFY_TOKEN");
    for (size_t i = 0; i < sizeof(wa_needs) / sizeof(wa_needs[0]); i++) {
        v = env(wa_needs[i]);
        if (!v || !secret_ok(v, 512)) {
            snprintf(err, errlen, "%s must be set (printable, no spaces) when WHATSAPP_TOKEN is",
                     wa_needs[i]);
            return -EINVAL;
        }
    }
    for (v = cfg->whatsapp_phone_number_id; *v; v++)
        if (*v < '0' || *v > '9' || v - cfg->whatsapp_phone_number_id > 32) {
            snprintf(err, errlen,
                     "WHATSAPP_PHONE_NUMBER_ID must be the number's id (digits), from the "
                     "WhatsApp Manager");
            return -EINVAL;
        }
    if (!cfg->http_listen) {
        snprintf(err, errlen, "WhatsApp needs the HTTP server for its webhook: HTTP_LISTEN is off");
        return -EINVAL;
    }
    return 0;
}

static int mqtt_load(struct config *cfg, char *err, size_t errlen)
{
    const char *u = env("MQTT_URL"), *host, *end, *colon;
    long long port;
    size_t hl;

    cfg->mqtt_username = env("MQTT_USERNAME");
    cfg->mqtt_password = env("MQTT_PASSWORD");
    cfg->mqtt_ca_file = env("MQTT_CA_FILE");
    cfg->mqtt_client_id = env("MQTT_CLIENT_ID");
    cfg->mqtt_shared_group = env("MQTT_SHARED_GROUP");
    if (!u)
        return 0;
    if (strncmp(u, "mqtt://", 7) == 0) {
        host = u + 7;
        cfg->mqtt_port = 1883;
    } else if (strncmp(u, "mqtts://", 8) == 0) {
        host = u + 8;
        cfg->mqtt_port = 8883;
        cfg->mqtt_tls = 1;
    } else {
        snprintf(err, errlen, "MQTT_URL must look like mqtt://host:1883 or mqtts://host:8883");
        return -EINVAL;
    }
    end = host + strcspn(host, "/?#");
    if (*end && strcmp(end, "/") != 0) {
        snprintf(err, errlen, "MQTT_URL must name a host and port only (mqtt://host:1883)");
        return -EINVAL;
    }
    if (memchr(host, '@', (size_t)(end - host))) {
        snprintf(err, errlen,
                 "MQTT_URL must not hold credentials: set MQTT_USERNAME and "
                 "MQTT_PASSWORD instead");
        return -EINVAL;
    }
    if (*host == '[') { /* [::1]:1883 */
        const char *rb = memchr(host, ']', (size_t)(end - host));
        if (!rb) {
            snprintf(err, errlen, "MQTT_URL has an IPv6 address without its closing ]");
            return -EINVAL;
        }
        host++;
        hl = (size_t)(rb - host);
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(host, ':', (size_t)(end - host));
        hl = (size_t)((colon ? colon : end) - host);
    }
    if (hl == 0 || hl >= sizeof(cfg->mqtt_host)) {
        snprintf(err, errlen, "MQTT_URL has no host");
        return -EINVAL;
    }
    memcpy(cfg->mqtt_host, host, hl);
    cfg->mqtt_host[hl] = '\0';
    if (colon) {
        char num[8] = "";
        size_t pl = (size_t)(end - colon - 1);
        if (pl == 0 || pl >= sizeof(num)) {
            snprintf(err, errlen, "MQTT_URL has a port that is not a number, 1 to 65535");
            return -EINVAL;
        }
        memcpy(num, colon + 1, pl);
        if (config_parse_int(num, 1, 65535, &port) < 0) {
            snprintf(err, errlen, "MQTT_URL has a port that is not a number, 1 to 65535");
            return -EINVAL;
        }
        cfg->mqtt_port = (int)port;
    }
    cfg->mqtt_url = u;
    if (cfg->mqtt_password && !cfg->mqtt_username) {
        snprintf(err, errlen, "MQTT_PASSWORD is set without MQTT_USERNAME");
        return -EINVAL;
    }
    if (cfg->mqtt_client_id &&
        (strlen(cfg->mqtt_client_id) > 128 || strpbrk(cfg->mqtt_client_id, "/+# \t\n"))) {
        snprintf(err, errlen, "MQTT_CLIENT_ID must be 1 to 128 characters without / + # or spaces");
        return -EINVAL;
    }
    if (cfg->mqtt_shared_group &&
        (strlen(cfg->mqtt_shared_group) > 64 || strpbrk(cfg->mqtt_shared_group, "/+# \t\n"))) {
        snprintf(err, errlen,
                 "MQTT_SHARED_GROUP must be 1 to 64 characters without / + # or spaces");
        return -EINVAL;
    }
    if (cfg->mqtt_shared_group && !cfg->mqtt_client_id) {
        /* Processes sharing the stream each keep a session at the broker;
         * a made-up id would leave an orphan session collecting messages
         * at every restart, and one default id would make them take over
         * each other's session. */
        snprintf(err, errlen,
                 "MQTT_SHARED_GROUP needs MQTT_CLIENT_ID, stable and different for "
                 "each process");
        return -EINVAL;
    }
    if (cfg->mqtt_ca_file && !cfg->mqtt_tls) {
        snprintf(err, errlen, "MQTT_CA_FILE is set, but MQTT_URL is not mqtts:// (TLS)");
        return -EINVAL;
    }
    if (cfg->mqtt_ca_file && access(cfg->mqtt_ca_file, R_OK) != 0) {
        snprintf(err, errlen, "MQTT_CA_FILE %.200s cannot be read", cfg->mqtt_ca_file);
        return -EINVAL;
    }
    return 0;
}

int config_load(struct config *cfg, int need_db, char *err, size_t errlen)
{
    const char *v;
    long long n;

    memset(cfg, 0, sizeof(*cfg));

    v = env("RIVET_LOG_LEVEL");
    cfg->log_level = LOG_INFO;
    if (v && log_level_parse(v, &cfg->log_level) < 0) {
        snprintf(err, errlen, "RIVET_LOG_LEVEL must be one of debug, info, warn, error, off");
        return -EINVAL;
    }

    cfg->statement_timeout_ms = 5000;
    v = env("RIVET_STATEMENT_TIMEOUT_MS");
    if (v) {
        if (config_parse_int(v, 100, 600000, &n) < 0) {
            snprintf(err, errlen,
                     "RIVET_STATEMENT_TIMEOUT_MS must be a number of milliseconds, 100 to 600000");
            return -EINVAL;
        }
        cfg->statement_timeout_ms = (int)n;
    }

    {
        static const struct {
            const char *name;
            long long def, min, max;
            size_t offset;
            const char *what;
        } ints[] = {
            {"RIVET_WORKERS", 0, 1, 64, offsetof(struct config, workers), "a number of threads"},
            {"OCR_MAX_JOBS", 0, 1, 64, offsetof(struct config, ocr_max_jobs),
             "a number of photo jobs"},
            {"LLM_MAX_IN_FLIGHT", 4, 1, 256, offsetof(struct config, llm_max_in_flight),
             "a number of requests"},
            {"TELEGRAM_SENDERS", 2, 1, 16, offsetof(struct config, telegram_senders),
             "a number of threads"},
            {"TELEGRAM_POLL_TIMEOUT_S", 30, 0, 50, offsetof(struct config, telegram_poll_timeout_s),
             "seconds"},
            {"TELEGRAM_CHAT_INTERVAL_MS", 1000, 0, 60000,
             offsetof(struct config, telegram_chat_gap_ms), "milliseconds"},
            {"TELEGRAM_GROUP_PER_MINUTE", 20, 1, 6000,
             offsetof(struct config, telegram_group_per_min), "messages a minute"},
            {"TELEGRAM_GLOBAL_PER_SECOND", 30, 1, 10000,
             offsetof(struct config, telegram_global_per_s), "messages a second"},
            {"TELEGRAM_FLUSH_S", 5, 0, 60, offsetof(struct config, telegram_flush_s), "seconds"},
            {"MQTT_KEEPALIVE_S", 30, 5, 600, offsetof(struct config, mqtt_keepalive_s), "seconds"},
            {"ALARM_STORM_WINDOW_S", 10, 1, 600, offsetof(struct config, alarm_storm_window_s),
             "seconds"},
            {"DIGEST_CHECK_S", 30, 1, 3600, offsetof(struct config, digest_check_s), "seconds"},
            {"WHATSAPP_WORKERS", 0, 1, 64, offsetof(struct config, whatsapp_workers),
             "a number of threads"},
            {"WHATSAPP_SENDERS", 2, 1, 16, offsetof(struct config, whatsapp_senders),
             "a number of threads"},
            {"WHATSAPP_USER_INTERVAL_MS", 1000, 0, 60000,
             offsetof(struct config, whatsapp_user_gap_ms), "milliseconds"},
            {"WHATSAPP_PER_SECOND", 80, 1, 1000, offsetof(struct config, whatsapp_per_s),
             "messages a second"},
            {"HTTP_THREADS", 4, 1, 64, offsetof(struct config, http_threads),
             "a number of threads"},
            {"HTTP_TIMEOUT_S", 10, 1, 600, offsetof(struct config, http_timeout_s), "seconds"},
            {"HTTP_MAX_BODY_BYTES", 1 << 20, 1024, 64 << 20, offsetof(struct config, http_max_body),
             "bytes"},
            {"ASSIST_TIMEOUT_S", 20, 1, 300, offsetof(struct config, assist_timeout_s), "seconds"},
            {"ASSIST_MAX_CHARS", 1500, 200, 3500, offsetof(struct config, assist_max_chars),
             "characters"},
            {"ASSIST_USER_PER_HOUR", 10, 0, 10000, offsetof(struct config, assist_user_per_hour),
             "questions an hour"},
            {"ASSIST_FACTORY_PER_HOUR", 100, 0, 100000,
             offsetof(struct config, assist_factory_per_hour), "questions an hour"},
        };
        for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
            int *field = (int *)((char *)cfg + ints[i].offset);
            v = env(ints[i].name);
            *field = (int)ints[i].def;
            if (!v)
                continue;
            if (config_parse_int(v, ints[i].min, ints[i].max, &n) < 0) {
                snprintf(err, errlen, "%s must be %s, %lld to %lld", ints[i].name, ints[i].what,
                         ints[i].min, ints[i].max);
                return -EINVAL;
            }
            *field = (int)n;
        }
        if (cfg->workers == 0) {
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            cfg->workers = cores < 1 ? 1 : cores > 64 ? 64 : (int)cores;
        }
        if (cfg->whatsapp_workers == 0)
            cfg->whatsapp_workers = cfg->workers;
        /* Photos may keep every worker but one busy: text is always
         * answered by the one left. */
        if (cfg->ocr_max_jobs == 0) {
            cfg->ocr_max_jobs = cfg->workers > 1 ? cfg->workers - 1 : 1;
        } else if (cfg->workers > 1 && cfg->ocr_max_jobs >= cfg->workers) {
            snprintf(err, errlen,
                     "OCR_MAX_JOBS must be less than RIVET_WORKERS (%d), so that a worker is "
                     "always free for text",
                     cfg->workers);
            return -EINVAL;
        } else if (cfg->workers == 1 && cfg->ocr_max_jobs > 1) {
            snprintf(err, errlen, "OCR_MAX_JOBS must be 1 when RIVET_WORKERS is 1");
            return -EINVAL;
        }
    }

    cfg->telegram_token = env("TELEGRAM_BOT_TOKEN");
    if (cfg->telegram_token) {
        size_t tl = strlen(cfg->telegram_token);
        bool bad = tl > 256;
        for (const char *p = cfg->telegram_token; *p && !bad; p++)
            bad = *p <= ' ' || *p == '/' || *p == '?' || *p == '#' || *p == '%' || *p > '~';
        if (bad) {
            /* never echo the token */
            snprintf(err, errlen,
                     "TELEGRAM_BOT_TOKEN is not a bot token (it looks like "
                     "123456:ABC-DEF..., from @BotFather)");
            return -EINVAL;
        }
    }
    cfg->telegram_api_url = env("TELEGRAM_API_URL");
    if (!cfg->telegram_api_url)
        cfg->telegram_api_url = "https://api.telegram.org";
    if (strncmp(cfg->telegram_api_url, "http://", 7) != 0 &&
        strncmp(cfg->telegram_api_url, "https://", 8) != 0) {
        snprintf(err, errlen, "TELEGRAM_API_URL must start with http:// or https://");
        return -EINVAL;
    }

    if (mqtt_load(cfg, err, errlen) < 0 || web_load(cfg, err, errlen) < 0)
        return -EINVAL;

    cfg->assist_budget_usd = 20;
    v = env("ASSIST_MONTHLY_BUDGET_USD");
    if (v) {
        char *end;
        double d;

        errno = 0;
        d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= 0 && d <= 1e6)) {
            snprintf(err, errlen, "ASSIST_MONTHLY_BUDGET_USD must be US dollars, 0 to 1000000");
            return -EINVAL;
        }
        cfg->assist_budget_usd = d;
    }

    cfg->database_url = env("DATABASE_URL");
    if (need_db && !cfg->database_url) {
        snprintf(err, errlen,
                 "DATABASE_URL is not set (a libpq connection string, e.g. "
                 "postgresql://rivet@localhost/rivet)");
        return -EINVAL;
    }
    if (cfg->database_url) {
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(cfg->database_url, &perr);
        if (!opts) {
            /* libpq's message may quote the string, which can hold a password:
             * name the setting only. */
            snprintf(err, errlen, "DATABASE_URL is not a valid libpq connection string or URI");
            PQfreemem(perr);
            return -EINVAL;
        }
        PQconninfoFree(opts);
    }
    return 0;
}
