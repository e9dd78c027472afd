/* Unit tests for bot/config.c: numbers, durations, the env file and
 * config_load() from the environment. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define DAY 86400LL

/* ---- config_parse_int ---- */

static void test_parse_int_ok(void **state)
{
    long long v = -1;

    assert_int_equal(config_parse_int("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(config_parse_int("10", 0, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(config_parse_int("-5", -10, 10, &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(config_parse_int("007", 0, 10, &v), 0); /* decimal, not octal */
    assert_int_equal(v, 7);
    assert_int_equal(config_parse_int("9223372036854775807", 0, LLONG_MAX, &v), 0);
    assert_true(v == LLONG_MAX);
    assert_int_equal(config_parse_int("-9223372036854775808", LLONG_MIN, 0, &v), 0);
    assert_true(v == LLONG_MIN);
}

static void test_parse_int_bad(void **state)
{
    const char *bad[] = {"",
                         " 5",
                         "5 ",
                         "\t5",
                         "5\n",
                         "abc",
                         "5x",
                         "1e3",
                         "0x10",
                         "1.5",
                         "--1",
                         "+",
                         "-",
                         "1 2",
                         "٣",
                         "5\xc2\xa0",
                         "9223372036854775808",
                         "-9223372036854775809",
                         "99999999999999999999999"};
    long long v = 42;

    assert_int_equal(config_parse_int(NULL, 0, 10, &v), -EINVAL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_parse_int(bad[i], LLONG_MIN, LLONG_MAX, &v) != -EINVAL)
            fail_msg("\"%s\" was accepted", bad[i]);
    }
    assert_int_equal(v, 42); /* *ret untouched on error */
}

static void test_parse_int_range(void **state)
{
    long long v = 42;

    assert_int_equal(config_parse_int("99", 100, 600000, &v), -EINVAL);
    assert_int_equal(config_parse_int("600001", 100, 600000, &v), -EINVAL);
    assert_int_equal(config_parse_int("-1", 0, 10, &v), -EINVAL);
    assert_int_equal(v, 42);
    assert_int_equal(config_parse_int("100", 100, 600000, &v), 0);
    assert_int_equal(v, 100);
    assert_int_equal(config_parse_int("600000", 100, 600000, &v), 0);
    assert_int_equal(v, 600000);
}

/* ---- config_parse_duration ---- */

static void test_duration_units(void **state)
{
    long long v = 0;

    assert_int_equal(config_parse_duration("90s", &v), 0);
    assert_int_equal(v, 90);
    assert_int_equal(config_parse_duration("30m", &v), 0);
    assert_int_equal(v, 30 * 60);
    assert_int_equal(config_parse_duration("12h", &v), 0);
    assert_int_equal(v, 12 * 3600);
    assert_int_equal(config_parse_duration("7d", &v), 0);
    assert_int_equal(v, 7 * DAY);
    assert_int_equal(config_parse_duration("2w", &v), 0);
    assert_int_equal(v, 14 * DAY);
    assert_int_equal(config_parse_duration("7", &v), 0); /* a bare number is days */
    assert_int_equal(v, 7 * DAY);
    assert_int_equal(config_parse_duration("7D", &v), 0);
    assert_int_equal(v, 7 * DAY);
    assert_int_equal(config_parse_duration("1s", &v), 0); /* the shortest */
    assert_int_equal(v, 1);
}

static void test_duration_bounds(void **state)
{
    const long long ten_years = 10 * 366 * DAY;
    long long v = 0;

    assert_int_equal(config_parse_duration("3660d", &v), 0);
    assert_int_equal(v, ten_years);
    assert_int_equal(config_parse_duration("3660", &v), 0);
    assert_int_equal(config_parse_duration("87840h", &v), 0);
    assert_int_equal(v, ten_years);
    assert_int_equal(config_parse_duration("316224000s", &v), 0);
    assert_int_equal(v, ten_years);
    assert_int_equal(config_parse_duration("522w", &v), 0);
    assert_int_equal(v, 522 * 7 * DAY);

    v = 42;
    assert_int_equal(config_parse_duration("3661d", &v), -EINVAL);
    assert_int_equal(config_parse_duration("3661", &v), -EINVAL);
    assert_int_equal(config_parse_duration("523w", &v), -EINVAL);
    assert_int_equal(config_parse_duration("87841h", &v), -EINVAL);
    assert_int_equal(config_parse_duration("316224001s", &v), -EINVAL);
    /* Big enough to overflow seconds if multiplied before the check. */
    assert_int_equal(config_parse_duration("9223372036854775807w", &v), -EINVAL);
    assert_int_equal(config_parse_duration("106751991167301d", &v), -EINVAL);
    assert_int_equal(v, 42);
}

static void test_duration_bad(void **state)
{
    const char *bad[] = {"",    "0",        "0s",
                         "0d",  "-1d",      "-7",
                         "d",   "s",        "7y",
                         "7dd", "7 d",      " 7d",
                         "7d ", "1.5h",     "7days",
                         "h7",  "7µ",       "0x7",
                         "1e3", "\xc3\xa9", "1234567890123456789012345678901234567890d"};
    long long v = 42;

    assert_int_equal(config_parse_duration(NULL, &v), -EINVAL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_parse_duration(bad[i], &v) != -EINVAL)
            fail_msg("\"%s\" was accepted", bad[i]);
    }
    assert_int_equal(v, 42);
}

/* ---- config_load_env_file ---- */

struct envfile {
    char path[64];
};

/* Writes text into a new temporary file; its path in f->path. */
static void envfile_write(struct envfile *f, const char *text, size_t n)
{
    int fd;

    snprintf(f->path, sizeof(f->path), "/tmp/rivet-unit-env-XXXXXX");
    fd = mkstemp(f->path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    assert_int_equal(close(fd), 0);
}

static void envfile_remove(struct envfile *f)
{
    unlink(f->path);
}

static const char *const test_vars[] = {
    "RIVET_UT_PLAIN", "RIVET_UT_EXPORT", "RIVET_UT_DQ",    "RIVET_UT_SQ",    "RIVET_UT_EQ",
    "RIVET_UT_EMPTY", "RIVET_UT_CRLF",   "RIVET_UT_SET",   "RIVET_UT_SPACE", "RIVET_UT_HALF",
    "RIVET_UT_LAST",  "RIVET_UT_BEFORE", "RIVET_UT_AFTER", "RIVET_UT_LONG",  "RIVET_UT_HASH",
};

static int env_clean(void **state)
{
    for (size_t i = 0; i < sizeof(test_vars) / sizeof(test_vars[0]); i++)
        unsetenv(test_vars[i]);
    return 0;
}

static void assert_env(const char *name, const char *want)
{
    const char *v = getenv(name);

    if (!want) {
        if (v)
            fail_msg("%s is set to \"%s\"", name, v);
        return;
    }
    if (!v)
        fail_msg("%s is not set", name);
    assert_string_equal(v, want);
}

static void test_env_file_ok(void **state)
{
    static const char text[] = "# Rivet settings\n"
                               "\n"
                               "   \t\n"
                               "   # an indented comment\n"
                               "RIVET_UT_PLAIN=plain value\n"
                               "export RIVET_UT_EXPORT=exported\n"
                               "RIVET_UT_DQ=\"double quoted\"\n"
                               "RIVET_UT_SQ='single quoted'\n"
                               "RIVET_UT_EQ=postgresql://rivet@db/rivet?sslmode=require&a=b\n"
                               "RIVET_UT_EMPTY=\n"
                               "RIVET_UT_CRLF=windows\r\n"
                               "  RIVET_UT_SPACE=indented\n"
                               "RIVET_UT_HALF=\"unbalanced\n"
                               "RIVET_UT_HASH=a#b\n"
                               "RIVET_UT_LAST=no newline at the end";
    struct envfile f;
    char err[256] = "";

    envfile_write(&f, text, sizeof(text) - 1);
    assert_int_equal(config_load_env_file(f.path, err, sizeof(err)), 0);
    envfile_remove(&f);

    assert_env("RIVET_UT_PLAIN", "plain value");
    assert_env("RIVET_UT_EXPORT", "exported");
    assert_env("RIVET_UT_DQ", "double quoted");
    assert_env("RIVET_UT_SQ", "single quoted");
    assert_env("RIVET_UT_EQ", "postgresql://rivet@db/rivet?sslmode=require&a=b");
    assert_env("RIVET_UT_EMPTY", "");
    assert_env("RIVET_UT_CRLF", "windows");
    assert_env("RIVET_UT_SPACE", "indented");
    assert_env("RIVET_UT_HALF", "\"unbalanced");
    assert_env("RIVET_UT_HASH", "a#b");
    assert_env("RIVET_UT_LAST", "no newline at the end");
}

static void test_env_file_environment_wins(void **state)
{
    static const char text[] = "RIVET_UT_SET=from file\nRIVET_UT_PLAIN=from file\n";
    struct envfile f;
    char err[256] = "";

    setenv("RIVET_UT_SET", "from environment", 1);
    envfile_write(&f, text, sizeof(text) - 1);
    assert_int_equal(config_load_env_file(f.path, err, sizeof(err)), 0);
    envfile_remove(&f);
    assert_env("RIVET_UT_SET", "from environment");
    assert_env("RIVET_UT_PLAIN", "from file");
}

static void test_env_file_missing(void **state)
{
    char err[256] = "";
    int r;

    r = config_load_env_file("/nonexistent/rivet-unit/.env", err, sizeof(err));
    assert_int_equal(r, -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/rivet-unit/.env"));
}

/* A bad line fails the whole file with an error naming the file and line;
 * lines before it may have been applied, lines after it are not. */
static void check_bad_line(const char *bad_line)
{
    struct envfile f;
    char text[512], err[256] = "", want[96];
    int r;

    snprintf(text, sizeof(text), "RIVET_UT_BEFORE=1\n# comment\n%s\nRIVET_UT_AFTER=1\n", bad_line);
    envfile_write(&f, text, strlen(text));
    r = config_load_env_file(f.path, err, sizeof(err));
    if (r != -EINVAL)
        fail_msg("line \"%s\": got %d", bad_line, r);
    snprintf(want, sizeof(want), "%s:3:", f.path);
    if (!strstr(err, want))
        fail_msg("line \"%s\": error \"%s\" does not name %s", bad_line, err, want);
    envfile_remove(&f);
    assert_env("RIVET_UT_AFTER", NULL);
    env_clean(NULL);
}

static void test_env_file_bad_lines(void **state)
{
    check_bad_line("JUST_A_WORD");
    check_bad_line("=value");
    check_bad_line("export =value");
    check_bad_line("BAD-NAME=1");
    check_bad_line("BAD NAME=1");
    check_bad_line("RIVET_UT_SPACE =1");
    check_bad_line("RIVET.UT=1");
    check_bad_line("KÄY=1");
}

static void test_env_file_long_line(void **state)
{
    /* ENV_LINE_MAX is 8192: 8190 bytes of text plus "\n" fit, more do not. */
    const size_t ok_len = 8190;
    size_t n = strlen("RIVET_UT_LONG=");
    char *text = malloc(3 * 9000);
    struct envfile f;
    char err[256] = "";

    assert_non_null(text);
    memcpy(text, "RIVET_UT_LONG=", n);
    memset(text + n, 'v', ok_len - n);
    text[ok_len] = '\n';
    envfile_write(&f, text, ok_len + 1);
    assert_int_equal(config_load_env_file(f.path, err, sizeof(err)), 0);
    envfile_remove(&f);
    assert_int_equal(strlen(getenv("RIVET_UT_LONG")), ok_len - n);
    unsetenv("RIVET_UT_LONG");

    /* One byte longer, on line 2: refused, and the rest is not applied. */
    memcpy(text, "# first\n", 8);
    memcpy(text + 8, "RIVET_UT_LONG=", n);
    memset(text + 8 + n, 'v', ok_len + 1 - n);
    memcpy(text + 8 + ok_len + 1, "\nRIVET_UT_AFTER=1\n", 18);
    envfile_write(&f, text, 8 + ok_len + 1 + 18);
    assert_int_equal(config_load_env_file(f.path, err, sizeof(err)), -EINVAL);
    envfile_remove(&f);
    assert_non_null(strstr(err, ":2:"));
    assert_env("RIVET_UT_LONG", NULL);
    assert_env("RIVET_UT_AFTER", NULL);
    free(text);
}

/* ---- config_load ---- */

static int cfg_env_clean(void **state)
{
    unsetenv("DATABASE_URL");
    unsetenv("RIVET_LOG_LEVEL");
    unsetenv("RIVET_STATEMENT_TIMEOUT_MS");
    return 0;
}

static void test_config_defaults(void **state)
{
    struct config cfg;
    char err[256] = "";

    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_null(cfg.database_url);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_int_equal(cfg.statement_timeout_ms, 5000);

    /* Empty values count as unset. */
    setenv("DATABASE_URL", "", 1);
    setenv("RIVET_LOG_LEVEL", "", 1);
    setenv("RIVET_STATEMENT_TIMEOUT_MS", "", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_null(cfg.database_url);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_int_equal(cfg.statement_timeout_ms, 5000);
}

static void test_config_database_url(void **state)
{
    struct config cfg;
    char err[256] = "";

    assert_int_equal(config_load(&cfg, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "DATABASE_URL"));

    setenv("DATABASE_URL", "", 1);
    err[0] = '\0';
    assert_int_equal(config_load(&cfg, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "DATABASE_URL"));

    setenv("DATABASE_URL", "postgresql://rivet@localhost/rivet", 1);
    assert_int_equal(config_load(&cfg, 1, err, sizeof(err)), 0);
    assert_string_equal(cfg.database_url, "postgresql://rivet@localhost/rivet");

    setenv("DATABASE_URL", "host=localhost dbname=rivet user=rivet", 1);
    assert_int_equal(config_load(&cfg, 1, err, sizeof(err)), 0);
    assert_string_equal(cfg.database_url, "host=localhost dbname=rivet user=rivet");
}

static void test_config_database_url_invalid(void **state)
{
    const char *bad[] = {
        "password=hunter2secret host",           /* keyword without = */
        "password=hunter2secret nosuchoption=1", /* unknown keyword */
        "postgresql://rivet:hunter2secret@localhost/rivet?nosuchoption=1",
        "password='hunter2secret", /* unterminated quote */
    };
    struct config cfg;
    char err[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("DATABASE_URL", bad[i], 1);
        err[0] = '\0';
        if (config_load(&cfg, 1, err, sizeof(err)) != -EINVAL)
            fail_msg("DATABASE_URL \"%s\" was accepted", bad[i]);
        assert_non_null(strstr(err, "DATABASE_URL"));
        /* The error never repeats the password. */
        assert_null(strstr(err, "hunter2"));
        /* Also checked when the database is not needed. */
        assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), -EINVAL);
    }
}

static void test_config_log_level(void **state)
{
    struct config cfg;
    char err[256] = "";

    setenv("RIVET_LOG_LEVEL", "debug", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    setenv("RIVET_LOG_LEVEL", "WARNING", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.log_level, LOG_WARN);
    setenv("RIVET_LOG_LEVEL", "off", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.log_level, LOG_OFF);

    setenv("RIVET_LOG_LEVEL", "verbose", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "RIVET_LOG_LEVEL"));
}

static void test_config_statement_timeout(void **state)
{
    const char *bad[] = {"99", "600001", "5s", "-1", "0", " 5000", "5000 ", "abc", "1e4"};
    struct config cfg;
    char err[256] = "";

    setenv("RIVET_STATEMENT_TIMEOUT_MS", "100", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.statement_timeout_ms, 100);
    setenv("RIVET_STATEMENT_TIMEOUT_MS", "600000", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.statement_timeout_ms, 600000);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("RIVET_STATEMENT_TIMEOUT_MS", bad[i], 1);
        err[0] = '\0';
        if (config_load(&cfg, 0, err, sizeof(err)) != -EINVAL)
            fail_msg("RIVET_STATEMENT_TIMEOUT_MS=\"%s\" was accepted", bad[i]);
        assert_non_null(strstr(err, "RIVET_STATEMENT_TIMEOUT_MS"));
    }
}

/* ---- the HTTP server, the Telegram webhook, WhatsApp ---- */

static const char *const web_vars[] = {
    "HTTP_LISTEN",           "TELEGRAM_BOT_TOKEN",      "TELEGRAM_WEBHOOK_URL",
    "WHATSAPP_TOKEN",        "WHATSAPP_APP_SECRET",     "WHATSAPP_PHONE_NUMBER_ID",
    "WHATSAPP_VERIFY_TOKEN", "TELEGRAM_WEBHOOK_SECRET",
};

static int web_env_clean(void **state)
{
    cfg_env_clean(state);
    for (size_t i = 0; i < sizeof(web_vars) / sizeof(web_vars[0]); i++)
        unsetenv(web_vars[i]);
    return 0;
}

/* config_load refuses, naming want in err and never echoing secret. */
static void assert_refused(const char *want, const char *secret)
{
    struct config cfg;
    char err[256] = "";

    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), -EINVAL);
    if (!strstr(err, want))
        fail_msg("expected %s in \"%s\"", want, err);
    if (secret && strstr(err, secret))
        fail_msg("the secret is in \"%s\"", err);
}

static void test_config_http_listen(void **state)
{
    static const char *const bad[] = {"8080",     "127.0.0.1", "127.0.0.1:",     "127.0.0.1:70000",
                                      "::1:8080", "[::1]8080", "example.com:80", "1.2.3:80"};
    struct config cfg;
    char err[256] = "";

    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_string_equal(cfg.http_listen, "127.0.0.1:8080");
    assert_null(cfg.whatsapp_token);
    setenv("HTTP_LISTEN", "off", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_null(cfg.http_listen);
    setenv("HTTP_LISTEN", "[::1]:0", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("HTTP_LISTEN", bad[i], 1);
        assert_refused("HTTP_LISTEN", NULL);
    }
}

static void test_config_whatsapp(void **state)
{
    struct config cfg;
    char err[256] = "";

    setenv("WHATSAPP_TOKEN", "EAAGsecretTOKEN", 1);
    assert_refused("WHATSAPP_PHONE_NUMBER_ID", "EAAGsecretTOKEN");
    setenv("WHATSAPP_PHONE_NUMBER_ID", "106540352242922", 1);
    assert_refused("WHATSAPP_APP_SECRET", "EAAGsecretTOKEN");
    setenv("WHATSAPP_APP_SECRET", "appSECRET", 1);
    setenv("WHATSAPP_VERIFY_TOKEN", "verifySECRET", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_string_equal(cfg.whatsapp_api_url, "https://graph.facebook.com/v21.0");
    assert_string_equal(cfg.whatsapp_template, "rivet_alarm");
    setenv("WHATSAPP_PHONE_NUMBER_ID", "1065/../me", 1);
    assert_refused("WHATSAPP_PHONE_NUMBER_ID", "1065/../me");
    setenv("WHATSAPP_PHONE_NUMBER_ID", "106540352242922", 1);
    setenv("WHATSAPP_TOKEN", "with space", 1);
    assert_refused("WHATSAPP_TOKEN", "with space");
    setenv("WHATSAPP_TOKEN", "EAAGsecretTOKEN", 1);
    setenv("HTTP_LISTEN", "off", 1);
    assert_refused("HTTP_LISTEN is off", "EAAGsecretTOKEN");
}

static void test_config_telegram_webhook(void **state)
{
    setenv("TELEGRAM_WEBHOOK_URL", "https://rivet.example.com/webhook/telegram", 1);
    assert_refused("TELEGRAM_BOT_TOKEN", NULL);
    setenv("TELEGRAM_BOT_TOKEN", "123456:ABCsecret", 1);
    setenv("TELEGRAM_WEBHOOK_SECRET", "has space", 1);
    assert_refused("TELEGRAM_WEBHOOK_SECRET", "has space");
    unsetenv("TELEGRAM_WEBHOOK_SECRET");
    setenv("TELEGRAM_WEBHOOK_URL", "ftp://rivet.example.com/", 1);
    assert_refused("TELEGRAM_WEBHOOK_URL", "ABCsecret");
}

/* ---- the troubleshooting assistant ---- */

static const char *const assist_vars[] = {"ASSIST_TIMEOUT_S", "ASSIST_MAX_CHARS",
                                          "ASSIST_USER_PER_HOUR", "ASSIST_FACTORY_PER_HOUR",
                                          "ASSIST_MONTHLY_BUDGET_USD"};

static int assist_env_clean(void **state)
{
    cfg_env_clean(state);
    for (size_t i = 0; i < sizeof(assist_vars) / sizeof(assist_vars[0]); i++)
        unsetenv(assist_vars[i]);
    return 0;
}

static void test_config_assist(void **state)
{
    static const char *const bad_budget[] = {"ten", "-1", "1e7", "5 USD", "nan", "inf"};
    struct config cfg;
    char err[256] = "";

    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.assist_timeout_s, 20);
    assert_int_equal(cfg.assist_max_chars, 1500);
    assert_int_equal(cfg.assist_user_per_hour, 10);
    assert_int_equal(cfg.assist_factory_per_hour, 100);
    assert_true(cfg.assist_budget_usd == 20);
    setenv("ASSIST_MONTHLY_BUDGET_USD", "2.50", 1);
    setenv("ASSIST_USER_PER_HOUR", "0", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_true(cfg.assist_budget_usd == 2.5);
    assert_int_equal(cfg.assist_user_per_hour, 0);
    for (size_t i = 0; i < sizeof(bad_budget) / sizeof(bad_budget[0]); i++) {
        setenv("ASSIST_MONTHLY_BUDGET_USD", bad_budget[i], 1);
        assert_refused("ASSIST_MONTHLY_BUDGET_USD", NULL);
    }
    unsetenv("ASSIST_MONTHLY_BUDGET_USD");
    setenv("ASSIST_MAX_CHARS", "100", 1);
    assert_refused("ASSIST_MAX_CHARS", NULL);
    setenv("ASSIST_MAX_CHARS", "3500", 1);
    setenv("ASSIST_TIMEOUT_S", "0", 1);
    assert_refused("ASSIST_TIMEOUT_S", NULL);
}

static const char *const limits_vars[] = {"RIVET_WORKERS", "OCR_MAX_JOBS", "LLM_MAX_IN_FLIGHT"};

static int limits_env_clean(void **state)
{
    cfg_env_clean(state);
    for (size_t i = 0; i < sizeof(limits_vars) / sizeof(limits_vars[0]); i++)
        unsetenv(limits_vars[i]);
    return 0;
}

static void test_config_limits(void **state)
{
    static const char *const bad[] = {"0", "-1", "65", "two", "1.5", " 2"};
    struct config cfg;
    char err[256] = "";

    /* The defaults: one worker kept for text, 4 LLM requests. */
    setenv("RIVET_WORKERS", "4", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.ocr_max_jobs, 3);
    assert_int_equal(cfg.llm_max_in_flight, 4);
    setenv("RIVET_WORKERS", "2", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.ocr_max_jobs, 1);
    setenv("RIVET_WORKERS", "1", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.ocr_max_jobs, 1);
    unsetenv("RIVET_WORKERS");
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_true(cfg.ocr_max_jobs >= 1);
    assert_true(cfg.workers == 1 || cfg.ocr_max_jobs == cfg.workers - 1);

    /* Set: within 1 to 64, and below RIVET_WORKERS. */
    setenv("RIVET_WORKERS", "8", 1);
    setenv("OCR_MAX_JOBS", "2", 1);
    setenv("LLM_MAX_IN_FLIGHT", "256", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.ocr_max_jobs, 2);
    assert_int_equal(cfg.llm_max_in_flight, 256);
    setenv("OCR_MAX_JOBS", "7", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.ocr_max_jobs, 7);
    setenv("OCR_MAX_JOBS", "8", 1);
    assert_refused("OCR_MAX_JOBS must be less than RIVET_WORKERS (8)", NULL);
    setenv("RIVET_WORKERS", "1", 1);
    setenv("OCR_MAX_JOBS", "1", 1);
    assert_int_equal(config_load(&cfg, 0, err, sizeof(err)), 0);
    setenv("OCR_MAX_JOBS", "2", 1);
    assert_refused("OCR_MAX_JOBS must be 1 when RIVET_WORKERS is 1", NULL);
    setenv("RIVET_WORKERS", "64", 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("OCR_MAX_JOBS", bad[i], 1);
        assert_refused("OCR_MAX_JOBS must be a number of photo jobs, 1 to 64", NULL);
    }
    unsetenv("OCR_MAX_JOBS");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (strcmp(bad[i], "65") == 0)
            continue; /* allowed here */
        setenv("LLM_MAX_IN_FLIGHT", bad[i], 1);
        assert_refused("LLM_MAX_IN_FLIGHT must be a number of requests, 1 to 256", NULL);
    }
    setenv("LLM_MAX_IN_FLIGHT", "257", 1);
    assert_refused("LLM_MAX_IN_FLIGHT", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_int_ok),
        cmocka_unit_test(test_parse_int_bad),
        cmocka_unit_test(test_parse_int_range),
        cmocka_unit_test(test_duration_units),
        cmocka_unit_test(test_duration_bounds),
        cmocka_unit_test(test_duration_bad),
        cmocka_unit_test_setup_teardown(test_env_file_ok, env_clean, env_clean),
        cmocka_unit_test_setup_teardown(test_env_file_environment_wins, env_clean, env_clean),
        cmocka_unit_test(test_env_file_missing),
        cmocka_unit_test_setup_teardown(test_env_file_bad_lines, env_clean, env_clean),
        cmocka_unit_test_setup_teardown(test_env_file_long_line, env_clean, env_clean),
        cmocka_unit_test_setup_teardown(test_config_defaults, cfg_env_clean, cfg_env_clean),
        cmocka_unit_test_setup_teardown(test_config_database_url, cfg_env_clean, cfg_env_clean),
        cmocka_unit_test_setup_teardown(test_config_database_url_invalid, cfg_env_clean,
                                        cfg_env_clean),
        cmocka_unit_test_setup_teardown(test_config_log_level, cfg_env_clean, cfg_env_clean),
        cmocka_unit_test_setup_teardown(test_config_statement_timeout, cfg_env_clean,
                                        cfg_env_clean),
        cmocka_unit_test_setup_teardown(test_config_http_listen, web_env_clean, web_env_clean),
        cmocka_unit_test_setup_teardown(test_config_whatsapp, web_env_clean, web_env_clean),
        cmocka_unit_test_setup_teardown(test_config_telegram_webhook, web_env_clean, web_env_clean),
        cmocka_unit_test_setup_teardown(test_config_assist, assist_env_clean, assist_env_clean),
        cmocka_unit_test_setup_teardown(test_config_limits, limits_env_clean, limits_env_clean),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
