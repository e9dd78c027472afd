/* Cases that once failed: a cut reply ending inside a character or a line,
 * key="quoted value" options, and size limits at SIZE_MAX. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
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

/* reply.c reply(): a reply cut at REPLY_MAX_BYTES ends on a whole character. */
static void test_reply_long_cut_on_character(void **state)
{
    struct fixture *f = *state;
    char s[1 + 2 * 2048 + 1];

    s[0] = 'a'; /* shifts every é by one byte: byte 4096 is the middle of one */
    for (int i = 0; i < 2048; i++)
        memcpy(s + 1 + 2 * i, "\xc3\xa9", 2);
    s[sizeof(s) - 1] = '\0';
    reply(&f->ctx, "%s", s);
    const char *r = f->out.head->text;
    assert_true(strlen(r) <= REPLY_MAX_BYTES);
    assert_true(utf8_valid(r, strlen(r)));
    assert_int_equal(strlen(r), 4095);
}

/* reply.c rb_addf(): one line per rb_addf, the reply cut at a whole line. */
static void test_rb_cut_at_whole_line(void **state)
{
    struct fixture *f = *state;
    char want[64];
    struct rb rb;

    rb_init(&rb);
    for (int i = 0; i < 1000; i++)
        rb_addf(&rb, "%03d 🟡 WO-2026-%06d Pump station check ✅\n", i, i);
    rb_send(&f->ctx, &rb);

    const char *s = f->out.head->text;
    size_t n = strlen(s);
    assert_true(n <= REPLY_MAX_BYTES);
    assert_memory_equal(s + n - CUT_LEN, CUT, CUT_LEN);
    int lines = 0;
    for (const char *p = s; p < s + n - CUT_LEN; lines++) {
        const char *nl = strchr(p, '\n');
        snprintf(want, sizeof(want), "%03d 🟡 WO-2026-%06d Pump station check ✅", lines, lines);
        if ((size_t)(nl - p) != strlen(want) || memcmp(p, want, strlen(want)) != 0)
            fail_msg("line %d is \"%.*s\"", lines, (int)(nl - p), p);
        p = nl + 1;
    }
}

/* args.c args_options(): key="value with spaces", as the bot itself suggests. */
static void test_options_quoted_value_with_spaces(void **state)
{
    static const char *const keys[] = {"location", "model"};
    static const bool absorbs[] = {true, false};
    struct fixture *f = *state;
    const char *vals[2], *bad = NULL;
    struct args args;

    assert_int_equal(args_parse(f->a, "/equip edit EQ-2026-000001 location=\"Line 3\"", &args), 0);
    assert_int_equal(args_options(f->a, &args, 2, keys, absorbs, 2, vals, &bad), 0);
    assert_string_equal(vals[0], "Line 3");
    assert_int_equal(args.n, 2);

    assert_int_equal(args_parse(f->a, "/equip edit EQ-2026-000001 model=\"G120C PN\"", &args), 0);
    assert_int_equal(args_options(f->a, &args, 2, keys, absorbs, 2, vals, &bad), 0);
    assert_string_equal(vals[1], "G120C PN");
    assert_int_equal(args.n, 2);

    assert_int_equal(
        args_parse(f->a, "/equip edit EQ-2026-000001 location=“Line 3” model='X 1'", &args), 0);
    assert_int_equal(args_options(f->a, &args, 2, keys, absorbs, 2, vals, &bad), 0);
    assert_string_equal(vals[0], "Line 3");
    assert_string_equal(vals[1], "X 1");
    assert_int_equal(args.n, 2);
}

/* An absorbing option with nothing after '=' takes the next words, without
 * the space between; a line of lone quotes is split as plain words. */
static void test_options_empty_value_then_words(void **state)
{
    static const char *const keys[] = {"location"};
    static const bool absorbs[] = {true};
    struct fixture *f = *state;
    const char *vals[1], *bad = NULL;
    struct args args;
    char line[4096];
    size_t o = 0;

    assert_int_equal(args_parse(f->a, "/equip edit EQ-2026-000001 location= Line 3", &args), 0);
    assert_int_equal(args_options(f->a, &args, 2, keys, absorbs, 1, vals, &bad), 0);
    assert_string_equal(vals[0], "Line 3");

    while (o + 3 < sizeof(line) - 1) {
        memcpy(line + o, "\"q ", 3);
        o += 3;
    }
    line[o] = '\0';
    assert_int_equal(args_parse(f->a, line, &args), 0);
    assert_int_equal(args.n, (int)(o / 3));
    assert_string_equal(args.tok[0].text, "\"q");
    assert_false(args.tok[args.n - 1].quoted);
}

/* text.c utf8_prefix(): SIZE_MAX as "no limit". */
static void test_utf8_prefix_size_max(void **state)
{
    assert_int_equal(utf8_prefix("h\xc3\xa9llo", SIZE_MAX), 6);
}

/* buf.c: a buffer whose maximum is SIZE_MAX. */
static void test_buf_max_size_max(void **state)
{
    struct buf b;

    buf_init(&b, SIZE_MAX);
    assert_int_equal(buf_adds(&b, "abc"), 0);
    assert_string_equal(buf_str(&b), "abc");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reply_long_cut_on_character, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_rb_cut_at_whole_line, ctx_setup, ctx_teardown),
        cmocka_unit_test_setup_teardown(test_options_quoted_value_with_spaces, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test_setup_teardown(test_options_empty_value_then_words, ctx_setup,
                                        ctx_teardown),
        cmocka_unit_test(test_utf8_prefix_size_max),
        cmocka_unit_test(test_buf_max_size_max),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
