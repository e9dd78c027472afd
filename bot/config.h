/* Rivet's settings, read from the environment (and an optional env file).
 * Every setting is listed, with its default, in the README's table. */
#ifndef RIVET_CONFIG_H
#define RIVET_CONFIG_H

#include "log.h"

#include <stddef.h>

struct llm_provider;

struct config {
    const char *database_url; /* DATABASE_URL: libpq conninfo or URI; required */
    enum log_level log_level; /* RIVET_LOG_LEVEL */
    int statement_timeout_ms; /* RIVET_STATEMENT_TIMEOUT_MS */
    int workers;              /* RIVET_WORKERS: threads handling messages */
    int ocr_max_jobs;         /* OCR_MAX_JOBS: photo jobs at once, per process */
    int llm_max_in_flight;    /* LLM_MAX_IN_FLIGHT: LLM requests at once, per process */

    /* Telegram; the channel is off without a token. */
    const char *telegram_token;          /* TELEGRAM_BOT_TOKEN: secret */
    const char *telegram_api_url;        /* TELEGRAM_API_URL */
    int telegram_senders;                /* TELEGRAM_SENDERS */
    int telegram_poll_timeout_s;         /* TELEGRAM_POLL_TIMEOUT_S */
    int telegram_chat_gap_ms;            /* TELEGRAM_CHAT_INTERVAL_MS: private chats */
    int telegram_group_per_min;          /* TELEGRAM_GROUP_PER_MINUTE */
    int telegram_global_per_s;           /* TELEGRAM_GLOBAL_PER_SECOND */
    int telegram_flush_s;                /* TELEGRAM_FLUSH_S: delivery time at shutdown */
    const char *telegram_webhook_url;    /* TELEGRAM_WEBHOOK_URL: webhook mode when set */
    const char *telegram_webhook_secret; /* TELEGRAM_WEBHOOK_SECRET: secret; derived from
                                            the token when unset */

    /* WhatsApp Cloud API; the channel is off without a token. */
    const char *whatsapp_token;           /* WHATSAPP_TOKEN: secret */
    const char *whatsapp_phone_number_id; /* WHATSAPP_PHONE_NUMBER_ID */
    const char *whatsapp_app_secret;      /* WHATSAPP_APP_SECRET: secret */
    const char *whatsapp_verify_token;    /* WHATSAPP_VERIFY_TOKEN: secret */
    const char *whatsapp_api_url;         /* WHATSAPP_API_URL */
    const char *whatsapp_template;        /* WHATSAPP_ALARM_TEMPLATE */
    const char *whatsapp_template_lang;   /* WHATSAPP_ALARM_TEMPLATE_LANGUAGE */
    int whatsapp_workers;                 /* WHATSAPP_WORKERS (0: RIVET_WORKERS) */
    int whatsapp_senders;                 /* WHATSAPP_SENDERS */
    int whatsapp_user_gap_ms;             /* WHATSAPP_USER_INTERVAL_MS */
    int whatsapp_per_s;                   /* WHATSAPP_PER_SECOND: per business number */

    /* The HTTP server: webhooks, /healthz, /metrics. */
    const char *http_listen; /* HTTP_LISTEN: HOST:PORT, or "off" */
    int http_threads;        /* HTTP_THREADS */
    int http_timeout_s;      /* HTTP_TIMEOUT_S */
    int http_max_body;       /* HTTP_MAX_BODY_BYTES */

    /* MQTT telemetry and alarms; the alert thread is off without MQTT_URL. */
    const char *mqtt_url;          /* MQTT_URL: mqtt://host[:port] or mqtts://host[:port] */
    char mqtt_host[256];           /* from MQTT_URL */
    int mqtt_port;                 /* from MQTT_URL: 1883 or 8883 by default */
    int mqtt_tls;                  /* mqtts:// */
    const char *mqtt_username;     /* MQTT_USERNAME */
    const char *mqtt_password;     /* MQTT_PASSWORD: secret */
    const char *mqtt_ca_file;      /* MQTT_CA_FILE: PEM; the system's CAs when unset */
    const char *mqtt_client_id;    /* MQTT_CLIENT_ID: stable, one per process */
    const char *mqtt_shared_group; /* MQTT_SHARED_GROUP: subscribe as $share/GROUP/... */
    int mqtt_keepalive_s;          /* MQTT_KEEPALIVE_S */
    int alarm_storm_window_s;      /* ALARM_STORM_WINDOW_S */
    int digest_check_s;            /* DIGEST_CHECK_S: how often the digest thread looks */

    /* The vision-LLM providers (llm_config_load(), set by the command that
     * reads photos); n_llm 0: local reads only. */
    const struct llm_provider *llm;
    int n_llm;

    /* The troubleshooting assistant: questions in plain words go to the
     * same LLM providers, within these bounds. */
    int assist_timeout_s;        /* ASSIST_TIMEOUT_S */
    int assist_max_chars;        /* ASSIST_MAX_CHARS: of an answer */
    int assist_user_per_hour;    /* ASSIST_USER_PER_HOUR */
    int assist_factory_per_hour; /* ASSIST_FACTORY_PER_HOUR */
    double assist_budget_usd;    /* ASSIST_MONTHLY_BUDGET_USD: per factory */
};

/* Reads KEY=VALUE lines from path into the environment. Blank lines and
 * lines starting with # are skipped; "export " before a key is allowed;
 * a value may be wrapped in single or double quotes. Variables already set
 * in the environment win over the file. Returns 0, or -errno with a one-line
 * explanation (naming the file and line) in err. */
int config_load_env_file(const char *path, char *err, size_t errlen);

/* What `rivet serve` changes while it runs, on SIGHUP. */
enum { CONFIG_LIVE_LOG_LEVEL = 1 };
struct config_live {
    enum log_level log_level; /* RIVET_LOG_LEVEL */
    int changed;              /* CONFIG_LIVE_* set by the last config_reload() */
};

/* Reads the env files given at start (config_load_env_file()) again,
 * without touching the environment. A name the environment held before
 * the files were read keeps its value, as at start. live holds the
 * values in force; the new ones that may change at run time are written
 * there (live->changed says which). Names of the other settings whose
 * value in the files differs from the one in force, which need a restart,
 * go into restart, comma-separated. Without env files nothing changes.
 * Returns 0; or -errno (a file that cannot be read) or -EINVAL (a bad
 * value: live is left as it was), with one line in err that names the
 * setting, never a value. Call from one thread at a time. */
int config_reload(struct config_live *live, char *restart, size_t restart_len, char *err,
                  size_t errlen);

/* How many env files were given at start (--env-file). */
int config_env_files(void);

/* Fills cfg from the environment. need_db: DATABASE_URL must be set.
 * Returns 0, or -EINVAL with one line naming the setting in err. The strings
 * in cfg point into the environment. */
int config_load(struct config *cfg, int need_db, char *err, size_t errlen);

/* Parses a duration such as "7d", "12h", "30m", "90s" (a bare number is
 * days), 1 second to 10 years. Returns 0 and seconds in *ret, or -EINVAL. */
int config_parse_duration(const char *s, long long *ret);

/* Parses a decimal integer in [min, max] with nothing after it.
 * Returns 0 and *ret, or -EINVAL. */
int config_parse_int(const char *s, long long min, long long max, long long *ret);

/* Parses listen, "HOST:PORT": HOST an IPv4 literal ("127.0.0.1",
 * "0.0.0.0"), a bracketed IPv6 literal ("[::1]"; "[::]" is IPv6 only, not
 * dual-stack), "localhost" (127.0.0.1) or empty (":8080": 0.0.0.0, every
 * IPv4 interface); PORT decimal 0..65535 (0 picks a free one). Writes the
 * address as a literal without brackets into host (when not NULL) and
 * the port into *port (when not NULL). Returns 0, or -EINVAL (also for a
 * host buffer too small: INET6_ADDRSTRLEN is enough). */
int config_parse_listen(const char *listen, char *host, size_t host_len, int *port);

#endif
