/* Unit tests for bot/log.c: level names, value quoting, the line format. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* ---- log_level_parse ---- */

static void test_log_level_parse(void **state)
{
    static const struct {
        const char *s;
        enum log_level want;
    } ok[] = {
        {"debug", LOG_DEBUG}, {"info", LOG_INFO},    {"warn", LOG_WARN},   {"warning", LOG_WARN},
        {"error", LOG_ERROR}, {"off", LOG_OFF},      {"DEBUG", LOG_DEBUG}, {"Info", LOG_INFO},
        {"WARN", LOG_WARN},   {"Warning", LOG_WARN}, {"ERROR", LOG_ERROR}, {"OFF", LOG_OFF},
    };
    static const char *const bad[] = {"",      "inf",  "infos", " info", "info ", "err",
                                      "fatal", "none", "trace", "1",     "warn\n"};
    enum log_level lvl;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        lvl = (enum log_level) - 1;
        if (log_level_parse(ok[i].s, &lvl) != 0)
            fail_msg("\"%s\" was refused", ok[i].s);
        assert_int_equal(lvl, ok[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lvl = LOG_ERROR;
        if (log_level_parse(bad[i], &lvl) != -EINVAL)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_int_equal(lvl, LOG_ERROR); /* untouched */
    }
    lvl = LOG_ERROR;
    assert_int_equal(log_level_parse(NULL, &lvl), -EINVAL);
    assert_int_equal(lvl, LOG_ERROR);
}

/* ---- log_quote ---- */

static void test_log_quote_plain(void **state)
{
    char d[64];

    assert_string_equal(log_quote(d, sizeof(d), "Pump 3"), "\"Pump 3\"");
    assert_string_equal(log_quote(d, sizeof(d), ""), "\"\"");
    assert_string_equal(log_quote(d, sizeof(d), NULL), "\"\"");
    assert_ptr_equal(log_quote(d, sizeof(d), "x"), d);
    /* UTF-8 passes through as it is. */
    assert_string_equal(log_quote(d, sizeof(d), "Grüße 🔧"), "\"Grüße 🔧\"");
}

static void test_log_quote_escapes(void **state)
{
    char d[128];

    assert_string_equal(log_quote(d, sizeof(d), "say \"hi\""), "\"say \\\"hi\\\"\"");
    assert_string_equal(log_quote(d, sizeof(d), "C:\\dir"), "\"C:\\\\dir\"");
    assert_string_equal(log_quote(d, sizeof(d), "a\nb"), "\"a\\x0ab\"");
    assert_string_equal(log_quote(d, sizeof(d), "\t\r\x1b\x01\x1f"),
                        "\"\\x09\\x0d\\x1b\\x01\\x1f\"");
    assert_string_equal(log_quote(d, sizeof(d), "del\x7f"), "\"del\\x7f\"");
    /* A forged second log line cannot appear: no raw newline survives. */
    log_quote(d, sizeof(d), "x\nts=2026 lvl=error ev=forged");
    assert_null(strchr(d, '\n'));
}

static void test_log_quote_tiny(void **state)
{
    char d[4] = {'x', 'x', 'x', 'x'};

    assert_ptr_equal(log_quote(d, 0, "abc"), d);
    assert_int_equal(d[0], 'x'); /* n == 0: nothing written */
    log_quote(d, 1, "abc");
    assert_int_equal(d[0], '\0');
    assert_int_equal(d[1], 'x');
    memset(d, 'x', sizeof(d));
    log_quote(d, 2, "abc");
    assert_int_equal(d[0], '\0');
    assert_int_equal(d[2], 'x');
    memset(d, 'x', sizeof(d));
    log_quote(d, 3, "abc");
    assert_string_equal(d, "\"\"");
    assert_int_equal(d[3], 'x');
}

/* Undoes log_quote's escaping of the text between the quotes. */
static size_t unquote(const char *q, char *out)
{
    size_t o = 0, n = strlen(q);

    assert_true(n >= 2);
    assert_int_equal(q[0], '"');
    assert_int_equal(q[n - 1], '"');
    for (size_t i = 1; i < n - 1; i++) {
        if (q[i] == '\\') {
            assert_true(i + 1 < n - 1);
            if (q[i + 1] == 'x') {
                assert_true(i + 3 < n - 1);
                out[o++] = (char)strtol((char[]){q[i + 2], q[i + 3], '\0'}, NULL, 16);
                i += 3;
            } else {
                assert_true(q[i + 1] == '"' || q[i + 1] == '\\');
                out[o++] = q[++i];
            }
        } else {
            assert_true(q[i] != '"');
            out[o++] = q[i];
        }
    }
    out[o] = '\0';
    return o;
}

static void test_log_quote_truncates_whole_escapes(void **state)
{
    const char *s = "a\"b\\c\nd\x7f"
                    "efghij\x01kl\"mn";
    char d[64], back[64];

    for (size_t n = 3; n < sizeof(d); n++) {
        memset(d, '#', sizeof(d));
        log_quote(d, n, s);
        assert_true(strlen(d) <= n - 1);
        if (n < sizeof(d))
            assert_int_equal(d[n], '#'); /* nothing written past n bytes */
        /* What is between the quotes is a whole-escape prefix of s. */
        size_t k = unquote(d, back);
        assert_memory_equal(back, s, k);
    }
    /* Room for everything: all of it. */
    log_quote(d, sizeof(d), s);
    unquote(d, back);
    assert_string_equal(back, s);
}

/* ---- the level check and the line ---- */

static int evaluated;

static int count(void)
{
    return ++evaluated;
}

static void test_log_level_gate(void **state)
{
    enum log_level saved = log_threshold;
    char line[512] = "";
    FILE *tmp = tmpfile();
    int saved_fd;

    assert_non_null(tmp);
    fflush(stderr);
    saved_fd = dup(STDERR_FILENO);
    assert_true(saved_fd >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);

    evaluated = 0;
    log_threshold = LOG_WARN;
    log_debug("unit.skipped", "n=%d", count());
    log_info("unit.skipped", "n=%d", count());
    log_threshold = LOG_OFF;
    log_error("unit.skipped", "n=%d", count());
    assert_int_equal(evaluated, 0); /* arguments not evaluated below the level */

    log_threshold = LOG_WARN;
    log_set_thread("unit-test-thread-name-too-long");
    log_warn("unit.emitted", "n=%d q=%s", count(), "\"x\"");
    log_set_thread("main");
    fflush(stderr);

    assert_true(dup2(saved_fd, STDERR_FILENO) >= 0);
    close(saved_fd);
    log_threshold = saved;
    assert_int_equal(evaluated, 1);

    rewind(tmp);
    assert_non_null(fgets(line, sizeof(line), tmp));
    assert_null(fgets((char[8]){0}, 8, tmp)); /* one line only */
    fclose(tmp);

    /* ts=YYYY-MM-DDTHH:MM:SS.mmmZ lvl=warn thr=<15 bytes> ev=... n=1 ... */
    assert_memory_equal(line, "ts=", 3);
    assert_int_equal(line[7], '-');
    assert_int_equal(line[13], 'T');
    assert_int_equal(line[22], '.');
    assert_int_equal(line[26], 'Z');
    assert_string_equal(line + 27, " lvl=warn thr=unit-test-threa ev=unit.emitted n=1 q=\"x\"\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_log_quote_plain),
        cmocka_unit_test(test_log_quote_escapes),
        cmocka_unit_test(test_log_quote_tiny),
        cmocka_unit_test(test_log_quote_truncates_whole_escapes),
        cmocka_unit_test(test_log_level_gate),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
