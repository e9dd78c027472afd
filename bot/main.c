/* rivet: the command line. */
#include "rivet.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <getopt.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <mosquitto.h>
#include <openssl/crypto.h>
#include <pcre2.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "digest_thread.h"
#include "llm.h"
#include "log.h"
#include "migrate.h"
#include "mqtt.h"
#include "ocr.h"
#include "rivet_config.h"
#include "metrics.h"
#include "serve.h"
#include "telegram.h"
#include "web.h"
#include "whatsapp.h"

static const char main_usage[] =
    "Usage: rivet [--env-file FILE] COMMAND [OPTIONS]\n"
    "\n"
    "Rivet, the maintenance chat bot: equipment, work orders and plant alarms\n"
    "for technicians on Telegram, WhatsApp and the console.\n"
    "\n"
    "Commands:\n"
    "  chat      talk to Rivet in this terminal (the console channel)\n"
    "  serve     run the server: chat channels and plant alarms\n"
    "  migrate   apply database migrations\n"
    "  factory   create, list and set up factories\n"
    "  invite    create invite codes\n"
    "  rule      add, list, switch and try alert rules\n"
    "  device    list MQTT devices and link them to machines\n"
    "  doctor    check the settings, database, APIs and broker before serving\n"
    "  digest    print a factory's daily digest (rivet serve sends it)\n"
    "  ocr       read nameplate photos from files\n"
    "  version   print versions\n"
    "\n"
    "Options:\n"
    "  --env-file FILE  read KEY=VALUE settings from FILE (the environment wins)\n"
    "  -h, --help       this help; 'rivet COMMAND --help' for a command\n"
    "\n"
    "Settings come from the environment: DATABASE_URL, RIVET_LOG_LEVEL,\n"
    "RIVET_STATEMENT_TIMEOUT_MS. See the README for all of them.\n";

int usage_error(const char *cmd, const char *msg)
{
    if (!*cmd)
        fprintf(stderr, "rivet: %s\nTry 'rivet --help'.\n", msg);
    else
        fprintf(stderr, "rivet %s: %s\nTry 'rivet %s --help'.\n", cmd, msg, cmd);
    return EXIT_USAGE;
}

/* Runs the migrations and says what went wrong, once. Returns 0 or 1. */
static int run_migrations(struct db *db, struct migrate_report *rep)
{
    int r = migrate_run(db, migrations, n_migrations, rep);

    if (r == -EBADMSG) {
        fprintf(stderr,
                "rivet: migration %s was changed after it was applied (its checksum differs). "
                "Restore the original file and put the change in a new migration.\n",
                rep->failed);
        return 1;
    }
    if (r < 0) {
        fprintf(stderr, "rivet: migration %s failed: %s\n", rep->failed[0] ? rep->failed : "set-up",
                db_errmsg(db));
        return 1;
    }
    if (rep->applied)
        log_info("migrate.done", "applied=%d version=%d", rep->applied, rep->current);
    if (rep->unknown_version)
        log_warn("migrate.newer_schema",
                 "version=%d known=%d msg=\"the database was migrated by a newer rivet\"",
                 rep->unknown_version, rep->current);
    return 0;
}

int rivet_open_db(struct config *cfg, int migrate, struct db **ret)
{
    struct migrate_report rep;
    struct db *db = NULL;
    char err[256], *dberr = NULL;
    int r;

    if (config_load(cfg, 1, err, sizeof(err)) < 0) {
        fprintf(stderr, "rivet: %s\n", err);
        return EXIT_USAGE;
    }
    log_threshold = cfg->log_level;
    r = db_connect(cfg->database_url, cfg->statement_timeout_ms, &db, &dberr);
    if (r < 0) {
        for (char *p = dberr; p && *p; p++) /* libpq's message spans lines */
            if (*p == '\n' || *p == '\t')
                *p = ' ';
        fprintf(stderr, "rivet: cannot connect to the database (DATABASE_URL): %s\n",
                dberr ? dberr : strerror(-r));
        free(dberr);
        return 1;
    }
    if (migrate && run_migrations(db, &rep)) {
        db_close(db);
        return 1;
    }
    *ret = db;
    return 0;
}

static const char *env_get(const char *name)
{
    return getenv(name);
}

int rivet_llm_config(struct llm_provider *p, int *n)
{
    char err[256];
    int r = llm_config_load(env_get, p, LLM_MAX_PROVIDERS, err, sizeof(err));

    if (r < 0) {
        fprintf(stderr, "rivet: %s\n", err);
        return EXIT_USAGE;
    }
    *n = r;
    return 0;
}

int bad_option(const char *cmd, char **argv)
{
    char msg[160];
    const char *word = optind > 0 ? argv[optind - 1] : "?";

    if (strncmp(word, "--", 2) != 0 && optopt > ' ' && optopt < 127)
        snprintf(msg, sizeof(msg), "option -%c is unknown or needs a value", optopt);
    else
        snprintf(msg, sizeof(msg), "option '%.100s' is unknown or needs a value", word);
    return usage_error(cmd, msg);
}

static int help_only(const char *cmd, int argc, char **argv, const char *usage)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return 0;
        }
        return bad_option(cmd, argv);
    }
    if (optind < argc)
        return usage_error(cmd, "unexpected argument");
    return -1;
}

int cmd_migrate(int argc, char **argv)
{
    static const char usage[] =
        "Usage: rivet migrate\n"
        "\n"
        "Applies the database migrations this rivet carries (sql/NNNN_name.sql), each\n"
        "in its own transaction, recorded in schema_migrations. Safe to run at any\n"
        "time and from several processes at once; rivet chat and rivet serve run it\n"
        "on start too.\n";
    struct migrate_report rep;
    struct config cfg;
    struct db *db;
    int r;

    r = help_only("migrate", argc, argv, usage);
    if (r >= 0)
        return r;
    r = rivet_open_db(&cfg, 0, &db);
    if (r)
        return r;
    r = run_migrations(db, &rep);
    if (r == 0)
        printf("schema at version %d (%d applied now)\n", rep.current, rep.applied);
    db_close(db);
    return r;
}

/* Set by the signal thread; every thread of `rivet serve` reads it (the
 * channels through the pointer they are given). Accessed with __atomic
 * loads and stores only: a plain volatile int is a data race. */
static volatile int serve_stop;

static int stopping(void)
{
    return __atomic_load_n(&serve_stop, __ATOMIC_ACQUIRE);
}

/* What the signal thread of `rivet serve` watches: the parts that run
 * (NULL when off), published by cmd_serve once they are all up. __atomic
 * only. The parts are freed after the signal thread is joined. */
static struct {
    struct telegram *tg;
    struct alerts *al;
    int ready;
} serve_parts;

/* The signal thread's own state: written before it starts, then its own. */
struct serve_signals {
    sigset_t set; /* SIGINT, SIGTERM, SIGHUP: blocked in every thread */
    const struct config *cfg;
    struct config_live live; /* what SIGHUP may change, as in force */
    char status[160];        /* the STATUS= of a ready process */
};

/* A loop that has not turned for this long is stuck (telegram_alive(),
 * alerts_alive()): far beyond its longest wait (the poller's: a long poll,
 * then a retry_after Telegram asked for, which may be minutes). */
#define POLLER_STUCK_MS(cfg) (((cfg)->telegram_poll_timeout_s + 15 + 300) * 1000L)
#define ALERTS_STUCK_MS 120000L

/* Whether every watched loop of a ready process turned lately; else the
 * part that is stuck and how long it has been (seconds). A remote API
 * that fails is not stuck: a restart would not bring it back. */
static const char *serve_stuck(const struct config *cfg, long *age_s)
{
    struct telegram *tg = __atomic_load_n(&serve_parts.tg, __ATOMIC_ACQUIRE);
    struct alerts *al = __atomic_load_n(&serve_parts.al, __ATOMIC_ACQUIRE);
    long now = now_ms(), at;

    if (tg && (at = telegram_alive(tg)) > 0 && now - at > POLLER_STUCK_MS(cfg)) {
        *age_s = (now - at) / 1000;
        return "telegram-poller";
    }
    if (al && (at = alerts_alive(al)) > 0 && now - at > ALERTS_STUCK_MS) {
        *age_s = (now - at) / 1000;
        return "mqtt";
    }
    return NULL;
}

/* One watchdog turn: WATCHDOG=1 while nothing is stuck. A stuck part is
 * logged once when it sticks and once when it comes back. */
static void serve_watchdog(struct serve_signals *s, bool *stuck)
{
    long age_s = 0;
    const char *part;

    if (!__atomic_load_n(&serve_parts.ready, __ATOMIC_ACQUIRE))
        return; /* systemd watches from READY=1 on; TimeoutStartSec= before */
    part = serve_stuck(s->cfg, &age_s);
    if (part) {
        if (!*stuck) {
            log_error("serve.stuck",
                      "part=%s idle_s=%ld msg=\"no more watchdog pings: systemd restarts "
                      "rivet after WatchdogSec\"",
                      part, age_s);
            sd_notifyf(0, "STATUS=stuck: %s has not moved for %ld s", part, age_s);
        }
        *stuck = true;
        return;
    }
    if (*stuck) {
        log_info("serve.unstuck", "msg=\"every part moves again\"");
        sd_notifyf(0, "STATUS=%s", s->status);
    }
    *stuck = false;
    sd_notify(0, "WATCHDOG=1");
}

/* SIGHUP: the env files again (the settings that may change at run time)
 * and the alert rules now. One serve.reload line says what happened. */
static void serve_reload(struct serve_signals *s)
{
    struct alerts *al = __atomic_load_n(&serve_parts.al, __ATOMIC_ACQUIRE);
    struct config_live live = s->live;
    char restart[512], err[256], q[600], lvl[48] = "unchanged";
    struct timespec ts;
    int r;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
               (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    r = config_reload(&live, restart, sizeof(restart), err, sizeof(err));
    if (r < 0) {
        /* Nothing changes: the settings in force stay. */
        log_error("serve.reload_rejected", "err=%s", log_quote(q, sizeof(q), err));
    } else {
        if (live.changed & CONFIG_LIVE_LOG_LEVEL) {
            snprintf(lvl, sizeof(lvl), "%s->%s", log_level_name(s->live.log_level),
                     log_level_name(live.log_level));
            log_set_threshold(live.log_level);
        }
        s->live = live;
    }
    if (al)
        alerts_reload(al);
    /* Said even when RIVET_LOG_LEVEL is now warn or error: it answers
     * the operator's own command. */
    if (__atomic_load_n(&log_threshold, __ATOMIC_RELAXED) < LOG_OFF)
        log_emit(LOG_INFO, "serve.reload", "settings=%s log_level=%s rules=%s restart_needed=%s%s",
                 r < 0                ? "rejected"
                 : config_env_files() ? "reread"
                                      : "no_env_file",
                 lvl, al ? "reloading" : "off", restart[0] ? restart : "none",
                 config_env_files() ? ""
                                    : " msg=\"settings come from the environment: changing them "
                                      "needs a restart\"");
    if (__atomic_load_n(&serve_parts.ready, __ATOMIC_ACQUIRE))
        sd_notifyf(0, "READY=1\nSTATUS=%s", s->status);
}

/* Waits for SIGINT or SIGTERM (blocked in every thread) and asks all of
 * `rivet serve` to stop; meanwhile reloads on SIGHUP and, under a
 * systemd watchdog (WATCHDOG_USEC), pings it every half period while the
 * parts are alive. */
static void *signal_main(void *arg)
{
    struct serve_signals *s = arg;
    uint64_t wd_usec = 0;
    long next_ping = 0;
    bool stuck = false;

    log_set_thread("signal");
    if (sd_watchdog_enabled(0, &wd_usec) <= 0)
        wd_usec = 0;
    if (wd_usec)
        log_info("serve.watchdog", "period_ms=%llu ping_ms=%llu",
                 (unsigned long long)(wd_usec / 1000), (unsigned long long)(wd_usec / 2000));
    for (;;) {
        int sig;

        if (wd_usec) {
            long now = now_ms(), wait;
            struct timespec ts;

            if (now >= next_ping) {
                serve_watchdog(s, &stuck);
                next_ping = now + (long)(wd_usec / 2000);
            }
            wait = next_ping - now;
            ts.tv_sec = wait / 1000;
            ts.tv_nsec = (wait % 1000) * 1000000L;
            sig = sigtimedwait(&s->set, NULL, &ts);
        } else {
            sig = sigwaitinfo(&s->set, NULL);
        }
        if (sig < 0)
            continue; /* EAGAIN: time to ping; EINTR */
        if (sig == SIGHUP) {
            serve_reload(s);
            continue;
        }
        log_info("serve.stopping", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
        sd_notify(0, "STOPPING=1\nSTATUS=stopping: finishing the messages in hand");
        __atomic_store_n(&serve_stop, 1, __ATOMIC_RELEASE);
        return NULL;
    }
}

int cmd_serve(int argc, char **argv)
{
    static const char usage[] =
        "Usage: rivet serve\n"
        "\n"
        "Runs the server: applies migrations, then runs the channels that are\n"
        "configured until SIGINT or SIGTERM. With TELEGRAM_BOT_TOKEN set that is the\n"
        "Telegram channel: a poller, RIVET_WORKERS workers and TELEGRAM_SENDERS\n"
        "senders (or, with TELEGRAM_WEBHOOK_URL, a webhook instead of the poller).\n"
        "With WHATSAPP_TOKEN set, the WhatsApp channel: its webhook, workers and\n"
        "senders. The HTTP server (HTTP_LISTEN, default 127.0.0.1:8080) serves the\n"
        "webhooks, GET /healthz and GET /metrics. With MQTT_URL set, the alert thread\n"
        "subscribes to the plant's telemetry, evaluates the alert rules and sends\n"
        "alarms. Several rivet serve processes may share one database: one polls,\n"
        "all work and send; with MQTT_SHARED_GROUP they split the telemetry. Each\n"
        "factory's daily digest goes out once, at its digest time.\n";
    static struct serve_signals sigs;
    static struct llm_provider providers[LLM_MAX_PROVIDERS];
    struct telegram *tg = NULL;
    struct whatsapp *wa = NULL;
    struct alerts *al = NULL;
    struct digests *dg = NULL;
    struct web *web = NULL;
    struct config cfg;
    pthread_t sig_thread;
    struct db *db;
    int r;

    r = help_only("serve", argc, argv, usage);
    if (r >= 0)
        return r;
    /* Block the signals before any thread starts; one thread waits for them. */
    sigemptyset(&sigs.set);
    sigaddset(&sigs.set, SIGINT);
    sigaddset(&sigs.set, SIGTERM);
    sigaddset(&sigs.set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs.set, NULL);
    sd_notify(0, "STATUS=starting: settings, database, migrations");
    r = rivet_open_db(&cfg, 1, &db);
    if (r)
        return r;
    db_close(db);
    r = rivet_llm_config(providers, &cfg.n_llm);
    if (r)
        return r;
    cfg.llm = providers;
    sigs.cfg = &cfg;
    sigs.live.log_level = cfg.log_level;
    if (pthread_create(&sig_thread, NULL, signal_main, &sigs) != 0) {
        fprintf(stderr, "rivet: cannot start the signal thread\n");
        return 1;
    }
    metric_set("rivet_build_info", 1, "version", RIVET_VERSION, NULL);
    metric_set("rivet_start_time_seconds", now_epoch(), NULL);
    /* The HTTP server first: webhooks are stored, and /healthz says
     * "starting", while the channels come up. */
    if (cfg.http_listen && web_start(&cfg, &web) < 0) {
        fprintf(stderr, "rivet: cannot listen on HTTP_LISTEN=%s (see the log line above)\n",
                cfg.http_listen);
        r = 1;
        goto out;
    }
    /* A channel's start returns -ECANCELED when SIGTERM comes while it waits
     * for its API: nothing more is started, and the process is not ready. */
    if (cfg.telegram_token && !stopping()) {
        sd_notify(0, "STATUS=starting: Telegram (getMe; retried while the Bot API is away)");
        r = telegram_start(&cfg, &serve_stop, &tg);
        if (r == -EACCES) {
            fprintf(stderr, "rivet: Telegram refused TELEGRAM_BOT_TOKEN (401 Unauthorized)\n");
            r = 1;
            goto out;
        }
        if (r < 0 && r != -ECANCELED) {
            fprintf(stderr, "rivet: cannot start the Telegram channel: %s\n", strerror(-r));
            r = 1;
            goto out;
        }
    }
    if (cfg.whatsapp_token && !stopping()) {
        sd_notify(0, "STATUS=starting: WhatsApp (the Graph API is asked for the number)");
        r = whatsapp_start(&cfg, &serve_stop, &wa);
        if (r == -EACCES) {
            fprintf(stderr, "rivet: the WhatsApp Cloud API refused WHATSAPP_TOKEN or "
                            "WHATSAPP_PHONE_NUMBER_ID\n");
            r = 1;
            goto out;
        }
        if (r < 0 && r != -ECANCELED) {
            fprintf(stderr, "rivet: cannot start the WhatsApp channel: %s\n", strerror(-r));
            r = 1;
            goto out;
        }
    }
    if (!cfg.telegram_token && !cfg.whatsapp_token)
        log_warn("serve.no_channels", "msg=\"neither TELEGRAM_BOT_TOKEN nor WHATSAPP_TOKEN is set: "
                                      "no chat channel; try rivet chat\"");
    if (stopping()) {
        r = 0;
        goto out;
    }
    if (cfg.mqtt_url) {
        r = alerts_start(&cfg, &al);
        if (r < 0) {
            fprintf(stderr, "rivet: cannot start the alert thread: %s\n", strerror(-r));
            r = 1;
            goto out;
        }
    }
    /* The daily digest: the database is all it needs. */
    r = digests_start(&cfg, &dg);
    if (r < 0) {
        fprintf(stderr, "rivet: cannot start the digest thread: %s\n", strerror(-r));
        r = 1;
        goto out;
    }
    web_attach(web, tg, wa, al);
    log_info("serve.ready",
             "version=%s telegram=%s whatsapp=%s mqtt=%s http_port=%d llm_providers=%d",
             RIVET_VERSION, tg ? "on" : "off", wa ? "on" : "off", al ? "on" : "off", web_port(web),
             cfg.n_llm);
    snprintf(sigs.status, sizeof(sigs.status), "serving: telegram %s, whatsapp %s, mqtt %s",
             tg ? "on" : "off", wa ? "on" : "off", al ? "on" : "off");
    __atomic_store_n(&serve_parts.tg, tg, __ATOMIC_RELEASE);
    __atomic_store_n(&serve_parts.al, al, __ATOMIC_RELEASE);
    __atomic_store_n(&serve_parts.ready, 1, __ATOMIC_RELEASE);
    sd_notifyf(0, "READY=1\nSTATUS=%s", sigs.status);
    r = 0;
out:
    if (r) /* a failed start: the signal thread is told to finish */
        pthread_kill(sig_thread, SIGTERM);
    pthread_join(sig_thread, NULL);
    /* No more webhooks, then the parts, each flushing what it holds. */
    web_stop(web);
    alerts_stop(al);
    digests_stop(dg);
    whatsapp_stop(wa);
    telegram_stop(tg);
    if (!r)
        log_info("serve.stop", "msg=\"bye\"");
    return r;
}

int cmd_version(int argc, char **argv)
{
    static const char usage[] = "Usage: rivet version\n\nPrints the versions of rivet and of "
                                "the libraries it runs on.\n";
    char ocr[128], pcre[32];
    int r, pq = PQlibVersion();

    r = help_only("version", argc, argv, usage);
    if (r >= 0)
        return r;
    ocr_versions(ocr, sizeof(ocr));
    pcre2_config(PCRE2_CONFIG_VERSION, pcre);
    printf("rivet %s\n", RIVET_VERSION);
    printf("  libpq %d.%d, %s\n", pq / 10000, pq % 100, llm_http_version());
    printf("  jansson %s, libmosquitto %d.%d.%d, libmicrohttpd %s\n", jansson_version_str(),
           LIBMOSQUITTO_MAJOR, LIBMOSQUITTO_MINOR, LIBMOSQUITTO_REVISION, MHD_get_version());
    printf("  %s, pcre2 %s, %s\n", ocr, pcre, OpenSSL_version(OPENSSL_VERSION));
    printf("  schema version %d\n", n_migrations ? migrations[n_migrations - 1].version : 0);
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} commands[] = {
    {"chat", cmd_chat},       {"serve", cmd_serve},   {"migrate", cmd_migrate},
    {"factory", cmd_factory}, {"invite", cmd_invite}, {"version", cmd_version},
    {"ocr", cmd_ocr},         {"rule", cmd_rule},     {"device", cmd_device},
    {"digest", cmd_digest},   {"doctor", cmd_doctor},
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"env-file", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    char err[512];
    int c;

    /* OpenMP reads OMP_THREAD_LIMIT when libgomp is loaded, before main:
     * setting it now would be too late, so Rivet runs itself again with it
     * set. Without the limit each Tesseract read spreads over every core and
     * takes several times longer on a small machine. */
    if (!getenv("OMP_THREAD_LIMIT") && setenv("OMP_THREAD_LIMIT", "1", 0) == 0)
        execv("/proc/self/exe", argv); /* on failure: go on, only slower */

    /* One-time library set-up, before any thread starts. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* libpq waits for the kernel's TCP timeout (minutes) on a database
     * host that drops packets; a thread reconnecting would stall that
     * long. DATABASE_URL's own connect_timeout still wins. */
    setenv("PGCONNECT_TIMEOUT", "10", 0);
    signal(SIGPIPE, SIG_IGN);
    ocr_global_init();
    mosquitto_lib_init();
    opterr = 0; /* bad_option() says it once, in Rivet's words */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "rivet: cannot initialise libcurl\n");
        return 1;
    }

    while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            if (config_load_env_file(optarg, err, sizeof(err)) < 0) {
                fprintf(stderr, "rivet: %s\n", err);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(main_usage, stdout);
            return 0;
        case 'V':
            return cmd_version(1, argv);
        default:
            return bad_option("", argv);
        }
    }
    if (optind >= argc) {
        fputs(main_usage, stderr);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[optind], commands[i].name) == 0)
            return commands[i].fn(argc - optind, argv + optind);
    if (strcmp(argv[optind], "help") == 0) {
        fputs(main_usage, stdout);
        return 0;
    }
    fprintf(stderr, "rivet: unknown command '%s'. Try 'rivet --help'.\n", argv[optind]);
    return EXIT_USAGE;
}
