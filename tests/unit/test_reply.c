/* Unit tests for handlers/reply.c: the words (status, priority, numbers)
 * and reply building within REPLY_MAX_BYTES. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "internal.h"
#include "text.h"

#define CUT "\n…"
#define CUT_LEN (sizeof(CUT) - 1)

struct fixture {
    struct arena *a;
    struct replies out;
    struct hctx ctx;
};

static int ctx_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f || arena_new(&f->a) < 0) {
        free(f);
        return -1;
    }
    replies_init(&f->out);
    f->ctx.a = f->a;
    f->ctx.out = &f->out;
    *state = f;
    return 0;
}

static int ctx_teardown(void **state)
{
    struct fixture *f = *state;

    arena_free(f->a);
    free(f);
    return 0;
}

/* The i-th reply (0-based). */
static const char *reply_text(const struct fixture *f, int i)
{
    const struct reply *r = f->out.head;

    assert_true(i < f->out.n);
    while (i-- > 0)
        r = r->next;
    assert_non_null(r);
    return r->text;
}

static bool ends_with_cut(const char *s)
{
    size_t n = strlen(s);
    return n >= CUT_LEN && memcmp(s + n - CUT_LEN, CUT, CUT_LEN) == 0;
}

/* What every reply must be: within the limit and valid UTF-8. */
static void assert_reply_ok(const char *s)
{
    size_t n = strlen(s);

    if (n > REPLY_MAX_BYTES)
        fail_msg("reply of %zu bytes", n);
    if (!utf8_valid(s, n))
        fail_msg("reply is not valid UTF-8 (%zu bytes, ends %02x %02x %02x)", n,
                 n > 2 ? (unsigned char)s[n - 3] : 0, n > 1 ? (unsigned char)s[n - 2] : 0,
                 n > 0 ? (unsigned char)s[n - 1] : 0);
}

/* ---- status and priority words ---- */

static void test_status_parse(void **state)
{
    static const struct {
        const char *in, *want;
    } ok[] = {
        {"open", "open"},
        {"reopen", "open"},
        {"OPEN", "open"},
        {"in_progress", "in_progress"},
        {"In-Progress", "in_progress"},
        {"inprogress", "in_progress"},
        {"progress", "in_progress"},
        {"started", "in_progress"},
        {"start", "in_progress"},
        {"on_hold", "on_hold"},
        {"on-hold", "on_hold"},
        {"OnHold", "on_hold"},
        {"hold", "on_hold"},
        {"completed", "completed"},
        {"complete", "completed"},
        {"done", "completed"},
        {"DONE", "completed"},
        {"closed", "completed"},
        {"close", "completed"},
        {"cancelled", "cancelled"},
        {"canceled", "cancelled"},
        {"cancel", "cancelled"},
    };
    static const char *const bad[] = {"",      "opened", "in progress", "don",  "done.",
                                      " done", "hold ",  "finished",    "ðone", "completedd"};

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        const char *s = status_parse(ok[i].in);
        if (!s)
            fail_msg("\"%s\" not understood", ok[i].in);
        assert_string_equal(s, ok[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (status_parse(bad[i]))
            fail_msg("\"%s\" understood as %s", bad[i], status_parse(bad[i]));
}

static void test_status_words(void **state)
{
    static const char *const statuses[] = {"open", "in_progress", "on_hold", "completed",
                                           "cancelled"};
    const char *seen[5];

    /* Every status has its own emoji and a label. */
    for (size_t i = 0; i < 5; i++) {
        seen[i] = status_emoji(statuses[i]);
        assert_string_not_equal(seen[i], "•");
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(seen[i], seen[k]);
        assert_non_null(status_label(statuses[i]));
    }
    assert_string_equal(status_label("in_progress"), "in progress");
    assert_string_equal(status_label("on_hold"), "on hold");
    assert_string_equal(status_label("open"), "open");
    assert_string_equal(status_emoji("completed"), "✅");
    /* Unknown: a neutral bullet, the word itself, never a crash on NULL. */
    assert_string_equal(status_emoji("weird"), "•");
    assert_string_equal(status_emoji(NULL), "•");
    assert_string_equal(status_emoji("OPEN"), "•"); /* stored values are lower case */
    assert_string_equal(status_label("weird"), "weird");
    assert_string_equal(status_label(NULL), "?");
}

static void test_priority(void **state)
{
    static const struct {
        const char *in, *want;
    } ok[] = {
        {"low", "low"},         {"LOW", "low"},           {"medium", "medium"},
        {"med", "medium"},      {"normal", "medium"},     {"high", "high"},
        {"High", "high"},       {"critical", "critical"}, {"crit", "critical"},
        {"urgent", "critical"}, {"URGENT", "critical"},
    };
    static const char *const bad[] = {"", "lo", "highest", "p1", " high", "critical!", "1"};
    static const char *const prios[] = {"low", "medium", "high", "critical"};

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        const char *p = priority_parse(ok[i].in);
        if (!p)
            fail_msg("\"%s\" not understood", ok[i].in);
        assert_string_equal(p, ok[i].want);
        assert_string_not_equal(priority_emoji(p), "•");
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (priority_parse(bad[i]))
            fail_msg("\"%s\" understood", bad[i]);
    for (size_t i = 0; i < 4; i++)
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(priority_emoji(prios[i]), priority_emoji(prios[k]));
    assert_string_equal(priority_emoji("critical"), "🔴");
    assert_string_equal(priority_emoji("urgent"), "•"); /* takes stored values only */
    assert_string_equal(priority_emoji(NULL), "•");
}

/* ---- number_valid ---- */

static void test_number_valid(void **state)
{
    static const char *const eq_ok[] = {
        "EQ-2026-000001",       "EQ-1999-999999", "EQ-2026-1234567",
        "EQ-2026-123456789012", "eq-2026-000001", /* typed on a phone */
    };
    static const char *const eq_bad[] = {
        "",
        "EQ",
        "EQ-",
        "EQ-2026",
        "EQ-2026-",
        "EQ-2026-00001", /* five digits */
        "EQ-2026-1234567890123",
        /* thirteen */ "EQ-2026-00000a",
        "EQ-2026-000001 ",
        " EQ-2026-000001",
        "EQ-26-00000001",
        "EQ-202a-000001",
        "EQ_2026-000001",
        "EQ-2026_000001",
        "EQ-2026--00001",
        "EQ-2026-+00001",
        "EQ-2026-0000\xd9\xa3",
        "WO-2026-000001",
        "EQX2026-000001",
        "QE-2026-000001",
        "EQ-20260-00001",
        "EQ2026-0000001",
        "E-2026-0000001",
    };

    for (size_t i = 0; i < sizeof(eq_ok) / sizeof(eq_ok[0]); i++)
        if (!number_valid("EQ", eq_ok[i]))
            fail_msg("\"%s\" refused", eq_ok[i]);
    for (size_t i = 0; i < sizeof(eq_bad) / sizeof(eq_bad[0]); i++)
        if (number_valid("EQ", eq_bad[i]))
            fail_msg("\"%s\" accepted", eq_bad[i]);
    assert_true(number_valid("WO", "WO-2026-000001"));
    assert_true(number_valid("WO", "wo-2026-000042"));
    assert_false(number_valid("WO", "EQ-2026-000001"));
    assert_false(number_valid("WO", "WO-2026-00001"));
}

/* ---- rb_*: building one reply ---- */

static void test_rb_small(void **state)
{
    struct fixture *f = *state;
    struct rb rb;

    rb_init(&rb);
    rb_addf(&rb, "%s %s\n", "🟢", "EQ-2026-000001");
    rb_addf(&rb, "Line %d\n\n", 2);
    rb_send(&f->ctx, &rb);
    assert_int_equal(f->out.n, 1);
    /* Trailing newlines go; nothing is marked as cut. */
    assert_string_equal(reply_text(f, 0), "🟢 EQ-2026-000001\nLine 2");

    rb_init(&rb);
    rb_addf(&rb, "second");
    rb_send(&f->ctx, &rb);
    assert_int_equal(f->out.n, 2);
    assert_string_equal(reply_text(f, 0), "🟢 EQ-2026-000001\nLine 2");
    assert_string_equal(reply_text(f, 1), "second");
    assert_null(f->out.head->next->next);
}

static void test_rb_fits_not_cut(void **state)
{
    struct fixture *f = *state;
    char line[101];
    struct rb rb;

    memset(line, 'x', 99);
    line[99] = '\n';
    line[100] = '\0';
    rb_init(&rb);
    for (int i = 0; i < 40; i++) /* 4000 bytes */
        rb_addf(&rb, "%s", line);
    rb_send(&f->ctx, &rb);
    const char *s = reply_text(f, 0);
    assert_int_equal(strlen(s), 4000 - 1);
    assert_false(ends_with_cut(s));
}

/* Many short lines: the limit kept, the mark appended, the lines in order.
 * (Whether the last line before the mark is whole is not checked here: see
 * the report on rb_addf, which keeps a part of the line that did not fit.) */
static void test_rb_many_lines(void **state)
{
    struct fixture *f = *state;
    char want[64];
    struct rb rb;

    rb_init(&rb);
    for (int i = 0; i < 1000; i++)
        rb_addf(&rb, "%03d 🟡 WO-2026-%06d Pump station check ✅\n", i, i);
    rb_send(&f->ctx, &rb);

    const char *s = reply_text(f, 0);
    size_t n = strlen(s);
    assert_reply_ok(s);
    assert_true(ends_with_cut(s));
    assert_true(n > REPLY_MAX_BYTES - 100); /* not cut much earlier than needed */

    /* Every line before the mark is the one written, in order. */
    const char *end = s + n - CUT_LEN;
    int lines = 0;
    for (const char *p = s; p < end; lines++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        snprintf(want, sizeof(want), "%03d 🟡 WO-2026-%06d Pump station check ✅", lines, lines);
        if (nl ? len != strlen(want) : len > strlen(want))
            fail_msg("line %d is \"%.*s\"", lines, (int)len, p);
        assert_memory_equal(p, want, len);
        p += len + (nl ? 1 : 0);
    }
    assert_true(lines > 50);
}

/* After the cut, nothing more is added, not even a short line. */
static void test_rb_full_ignores_more(void **state)
{
    struct fixture *f = *state;
    char big[3000];
    struct rb rb;

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rb_init(&rb);
    rb_addf(&rb, "first line\n");
    rb_addf(&rb, "%s\n", big);
    rb_addf(&rb, "%s\n", big); /* does not fit: the reply is cut here */
    rb_addf(&rb, "late\n");
    rb_send(&f->ctx, &rb);

    const char *s = reply_text(f, 0);
    assert_reply_ok(s);
    assert_true(ends_with_cut(s));
    assert_null(strstr(s, "late"));
    assert_memory_equal(s, "first line\n", 11);
}

/* One line with no newline and multibyte characters: cut on a character. */
static void test_rb_long_line_utf8(void **state)
{
    struct fixture *f = *state;
    const char *chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x94\xa7"};

    for (size_t c = 0; c < 3; c++) {
        for (size_t shift = 0; shift < 4; shift++) {
            size_t cl = strlen(chars[c]);
            char *s = malloc(shift + 3000 * cl + 1);
            struct rb rb;

            assert_non_null(s);
            memset(s, 'x', shift);
            for (size_t i = 0; i < 3000; i++)
                memcpy(s + shift + i * cl, chars[c], cl);
            s[shift + 3000 * cl] = '\0';

            rb_init(&rb);
            rb_addf(&rb, "%s", s);
            rb_send(&f->ctx, &rb);
            const char *r = reply_text(f, f->out.n - 1);
            assert_reply_ok(r);
            assert_true(ends_with_cut(r));
            size_t body = strlen(r) - CUT_LEN;
            assert_memory_equal(r, s, body); /* a prefix of what was written */
            /* Not cut earlier than the character that did not fit. */
            assert_true(body + CUT_LEN + cl > REPLY_MAX_BYTES);
            free(s);
        }
    }
}

/* Small pieces with no newline at all, crossing the limit inside a piece. */
static void test_rb_pieces_no_newline(void **state)
{
    struct fixture *f = *state;
    struct rb rb;

    rb_init(&rb);
    for (int i = 0; i < 2000; i++)
        rb_addf(&rb, "é%d€", i % 10);
    rb_send(&f->ctx, &rb);
    const char *s = reply_text(f, 0);
    assert_reply_ok(s);
    assert_true(ends_with_cut(s));
}

/* One piece bigger than the whole reply, with lines in it. */
static void test_rb_one_huge_piece(void **state)
{
    struct fixture *f = *state;
    const size_t n = 20000;
    char *s = malloc(n + 1);
    struct rb rb;

    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (i % 50 == 49) ? '\n' : (char)('a' + i % 26);
    s[n] = '\0';
    rb_init(&rb);
    rb_addf(&rb, "head\n");
    rb_addf(&rb, "%s", s);
    rb_send(&f->ctx, &rb);

    const char *r = reply_text(f, 0);
    size_t rn = strlen(r);
    assert_reply_ok(r);
    assert_true(ends_with_cut(r));
    assert_memory_equal(r, "head\n", 5);
    /* Cut at a line: the body is whole 50-byte lines of s. */
    size_t body = rn - CUT_LEN - 5;
    assert_int_equal((body + 1) % 50, 0);
    assert_memory_equal(r + 5, s, body);
    assert_true(rn > REPLY_MAX_BYTES - 60);
    free(s);
}

static void test_rb_exactly_full(void **state)
{
    struct fixture *f = *state;
    char *s = malloc(REPLY_MAX_BYTES + 1);
    struct rb rb;

    assert_non_null(s);
    /* Whatever fits exactly is sent as it is; a byte more is cut. */
    for (size_t len = REPLY_MAX_BYTES - 8; len <= REPLY_MAX_BYTES; len++) {
        memset(s, 'y', len);
        s[len] = '\0';
        rb_init(&rb);
        rb_addf(&rb, "%s", s);
        rb_send(&f->ctx, &rb);
        const char *r = reply_text(f, f->out.n - 1);
        assert_reply_ok(r);
        if (!ends_with_cut(r))
            assert_string_equal(r, s);
        else
            assert_memory_equal(r, s, strlen(r) - CUT_LEN);
    }
    free(s);
}

/* ---- reply(): one line ---- */

static void test_reply_short(void **state)
{
    struct fixture *f = *state;

    reply(&f->ctx, "%s is given twice.", "serial=b");
    reply(&f->ctx, "Usage: %s", "/wo new EQ-NUMBER TITLE");
    assert_int_equal(f->out.n, 2);
    assert_string_equal(reply_text(f, 0), "serial=b is given twice.");
    assert_string_equal(reply_text(f, 1), "Usage: /wo new EQ-NUMBER TITLE");
}

static void test_reply_long(void **state)
{
    struct fixture *f = *state;
    const size_t n = 9000;
    char *s = malloc(n + 1);

    assert_non_null(s);
    memset(s, 'z', n);
    s[n] = '\0';
    reply(&f->ctx, "%s", s);
    assert_reply_ok(reply_text(f, 0));
    assert_int_equal(strlen(reply_text(f, 0)), REPLY_MAX_BYTES);

    /* Characters that end exactly on the limit. */
    for (size_t i = 0; i + 2 <= n; i += 2)
        memcpy(s + i, "\xc3\xa9", 2);
    reply(&f->ctx, "%s", s);
    assert_reply_ok(reply_text(f, 1));
    assert_int_equal(strlen(reply_text(f, 1)), REPLY_MAX_BYTES);
    free(s);
}

/* ---- field_ok and clip ---- */

static void test_field_ok(void **state)
{
    struct fixture *f = *state;
    char s[801];

    assert_true(field_ok(&f->ctx, "title", "Coolant leak", 200));
    assert_int_equal(f->out.n, 0);

    assert_false(field_ok(&f->ctx, "title", "", 200));
    assert_false(field_ok(&f->ctx, "title", NULL, 200));
    assert_int_equal(f->out.n, 2);
    assert_non_null(strstr(reply_text(f, 0), "title"));

    /* The limit is in characters: 200 two-byte characters fit. */
    for (int i = 0; i < 200; i++)
        memcpy(s + 2 * i, "\xc3\xa9", 2);
    s[400] = '\0';
    assert_true(field_ok(&f->ctx, "name", s, 200));
    assert_int_equal(f->out.n, 2);
    memcpy(s + 400, "x", 2);
    assert_false(field_ok(&f->ctx, "name", s, 200));
    assert_int_equal(f->out.n, 3);
    assert_non_null(strstr(reply_text(f, 2), "name"));
    assert_non_null(strstr(reply_text(f, 2), "201"));
}

static void test_clip(void **state)
{
    struct fixture *f = *state;

    assert_string_equal(clip(&f->ctx, NULL, 10), "");
    assert_string_equal(clip(&f->ctx, "short", 10), "short");
    assert_string_equal(clip(&f->ctx, "Grundfos CR 10-3", 8), "Grundfo…");
    assert_int_equal(utf8_chars(clip(&f->ctx, "ééééééééééé", 5)), 5);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, ctx_setup, ctx_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_parse),
        cmocka_unit_test(test_status_words),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_number_valid),
        T(test_rb_small),
        T(test_rb_fits_not_cut),
        T(test_rb_many_lines),
        T(test_rb_full_ignores_more),
        T(test_rb_long_line_utf8),
        T(test_rb_pieces_no_newline),
        T(test_rb_one_huge_piece),
        T(test_rb_exactly_full),
        T(test_reply_short),
        T(test_reply_long),
        T(test_field_ok),
        T(test_clip),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
