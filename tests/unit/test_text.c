/* Unit tests for bot/text.c: UTF-8 checks, prefixes, ellipsis, distance, trim. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "text.h"

/* utf8_valid on a NUL-terminated literal. */
#define VALID(s) utf8_valid((s), strlen(s))

static int arena_setup(void **state)
{
    struct arena *a = NULL;

    if (arena_new(&a) < 0)
        return -1;
    *state = a;
    return 0;
}

static int arena_teardown(void **state)
{
    arena_free(*state);
    return 0;
}

/* ---- utf8_valid ---- */

static void test_utf8_valid_empty_and_ascii(void **state)
{
    assert_true(utf8_valid("", 0));
    assert_true(VALID("Pump 3 leaks at the seal, 2 bar."));
    /* Every ASCII byte, NUL and controls included, is well-formed UTF-8. */
    char all[128];
    for (int i = 0; i < 128; i++)
        all[i] = (char)i;
    assert_true(utf8_valid(all, sizeof(all)));
}

static void test_utf8_valid_well_formed(void **state)
{
    assert_true(VALID("\xc3\xa9"));         /* é U+00E9 */
    assert_true(VALID("\xc2\x80"));         /* U+0080, smallest 2-byte */
    assert_true(VALID("\xdf\xbf"));         /* U+07FF, largest 2-byte */
    assert_true(VALID("\xe0\xa0\x80"));     /* U+0800, smallest 3-byte */
    assert_true(VALID("\xe2\x82\xac"));     /* € U+20AC */
    assert_true(VALID("\xed\x9f\xbf"));     /* U+D7FF, just below the surrogates */
    assert_true(VALID("\xee\x80\x80"));     /* U+E000, just above them */
    assert_true(VALID("\xef\xbf\xbf"));     /* U+FFFF */
    assert_true(VALID("\xf0\x90\x80\x80")); /* U+10000, smallest 4-byte */
    assert_true(VALID("\xf0\x9d\x84\x9e")); /* 𝄞 U+1D11E */
    assert_true(VALID("\xf4\x8f\xbf\xbf")); /* U+10FFFF, the last code point */
    assert_true(VALID("Привет, 世界, 🔧 ok"));
}

static void test_utf8_valid_overlong(void **state)
{
    assert_false(VALID("\xc0\x80"));              /* NUL in two bytes */
    assert_false(VALID("\xc0\xaf"));              /* '/' in two bytes */
    assert_false(VALID("\xc1\xbf"));              /* U+007F in two bytes */
    assert_false(VALID("\xe0\x80\x80"));          /* NUL in three bytes */
    assert_false(VALID("\xe0\x80\xaf"));          /* '/' in three bytes */
    assert_false(VALID("\xe0\x9f\xbf"));          /* U+07FF in three bytes */
    assert_false(VALID("\xf0\x80\x80\x80"));      /* NUL in four bytes */
    assert_false(VALID("\xf0\x8f\xbf\xbf"));      /* U+FFFF in four bytes */
    assert_false(VALID("ok \xc0\xaf then more")); /* in the middle of text */
}

static void test_utf8_valid_surrogates(void **state)
{
    assert_false(VALID("\xed\xa0\x80"));             /* U+D800 */
    assert_false(VALID("\xed\xad\xbf"));             /* U+DB7F */
    assert_false(VALID("\xed\xb0\x80"));             /* U+DC00 */
    assert_false(VALID("\xed\xbf\xbf"));             /* U+DFFF */
    assert_false(VALID("\xed\xa0\xbd\xed\xb4\xa7")); /* CESU-8 pair for U+1F527 */
}

static void test_utf8_valid_above_max(void **state)
{
    assert_false(VALID("\xf4\x90\x80\x80")); /* U+110000 */
    assert_false(VALID("\xf4\xbf\xbf\xbf"));
    assert_false(VALID("\xf5\x80\x80\x80")); /* F5..F7 lead bytes */
    assert_false(VALID("\xf7\xbf\xbf\xbf"));
    assert_false(VALID("\xf8\x88\x80\x80\x80"));     /* old 5-byte form */
    assert_false(VALID("\xfc\x84\x80\x80\x80\x80")); /* old 6-byte form */
    assert_false(VALID("\xfe"));
    assert_false(VALID("\xff"));
}

static void test_utf8_valid_truncated(void **state)
{
    assert_false(VALID("\xc3"));
    assert_false(VALID("\xe2\x82"));
    assert_false(VALID("\xe2"));
    assert_false(VALID("\xf0\x9d\x84"));
    assert_false(VALID("abc\xf0\x9d"));
    /* A sequence cut short by an ASCII byte or a new lead byte. */
    assert_false(VALID("\xe2\x82"
                       "a"));
    assert_false(VALID("\xc3"
                       "a"));
    assert_false(VALID("\xf0\x9d\x84"
                       "\xc3\xa9"));
    /* Lone continuation bytes. */
    assert_false(VALID("\x80"));
    assert_false(VALID("\xbf"));
    assert_false(VALID("a\x80z"));
    assert_false(VALID("\xc3\xa9\xa9"));
    /* n, not the NUL, bounds the check: é cut after its first byte. */
    assert_false(utf8_valid("\xc3\xa9", 1));
    assert_true(utf8_valid("\xc3\xa9", 2));
    /* Embedded NUL bytes are fine when n covers them. */
    assert_true(utf8_valid("a\0\xc3\xa9", 4));
}

static void test_utf8_valid_huge(void **state)
{
    const size_t n = 1u << 20;
    char *s = malloc(n + 1);

    assert_non_null(s);
    /* 4-byte, 3-byte, 2-byte and 1-byte characters, 10 bytes per round. */
    for (size_t i = 0; i + 10 <= n; i += 10)
        memcpy(s + i, "\xf0\x9f\x94\xa7\xe2\x82\xac\xc3\xa9z", 10);
    size_t len = n - n % 10;
    assert_true(utf8_valid(s, len));
    /* One bad byte at the very end is found. */
    s[len - 1] = (char)0x80;
    assert_false(utf8_valid(s, len));
    s[len - 1] = 'z';
    /* A truncated last character is found too. */
    assert_false(utf8_valid(s, len - 7));
    free(s);
}

/* ---- text_has_control ---- */

#define HAS_CONTROL(s) text_has_control((s), strlen(s))

static void test_text_has_control(void **state)
{
    assert_false(text_has_control("", 0));
    assert_false(HAS_CONTROL("Pump 3 leaks"));
    assert_false(HAS_CONTROL("line one\nline two\tcolumn"));
    assert_false(HAS_CONTROL("Grüße, ¡olé! € 🔧"));
    assert_false(HAS_CONTROL("\xc2\xa0"));     /* NBSP U+00A0 is not C1 */
    assert_false(HAS_CONTROL("\xc2\xbf"));     /* ¿ */
    assert_false(HAS_CONTROL("\xc3\x80"));     /* À: 0x80 as a continuation byte */
    assert_false(HAS_CONTROL("\xe2\x80\x9c")); /* “ holds 0x80 too */

    assert_true(HAS_CONTROL("\x01"));
    assert_true(HAS_CONTROL("a\rb")); /* CR */
    assert_true(HAS_CONTROL("esc \x1b[31m"));
    assert_true(HAS_CONTROL("\x1f"));
    assert_true(HAS_CONTROL("del\x7f"));
    assert_true(HAS_CONTROL("\xc2\x80"));     /* U+0080 */
    assert_true(HAS_CONTROL("x\xc2\x85y"));   /* NEL */
    assert_true(HAS_CONTROL("\xc2\x9f"));     /* U+009F */
    assert_true(text_has_control("a\0b", 3)); /* NUL is C0 */
    /* Only the first n bytes are looked at. */
    assert_false(text_has_control("ab\x01", 2));
}

/* ---- utf8_chars ---- */

static void test_utf8_chars(void **state)
{
    assert_int_equal(utf8_chars(""), 0);
    assert_int_equal(utf8_chars("abc"), 3);
    assert_int_equal(utf8_chars("h\xc3\xa9llo"), 5);
    assert_int_equal(utf8_chars("\xe2\x82\xac"), 1);
    assert_int_equal(utf8_chars("\xf0\x9d\x84\x9e\xe2\x82\xac\xc3\xa9 a"), 5);
    assert_int_equal(utf8_chars("Привет"), 6);
}

/* ---- utf8_prefix ---- */

static void test_utf8_prefix(void **state)
{
    const char *s = "h\xc3\xa9llo"; /* h é l l o: 6 bytes */

    assert_int_equal(utf8_prefix("", 0), 0);
    assert_int_equal(utf8_prefix("", 10), 0);
    assert_int_equal(utf8_prefix("abc", 0), 0);
    assert_int_equal(utf8_prefix("abc", 2), 2);
    assert_int_equal(utf8_prefix("abc", 3), 3);
    assert_int_equal(utf8_prefix("abc", 100), 3);
    assert_int_equal(utf8_prefix(s, 1), 1);
    assert_int_equal(utf8_prefix(s, 2), 1); /* would split é */
    assert_int_equal(utf8_prefix(s, 3), 3);
    assert_int_equal(utf8_prefix(s, 6), 6);
    assert_int_equal(utf8_prefix(s, (size_t)1 << 40), 6);
}

static void test_utf8_prefix_four_byte(void **state)
{
    const char *clef = "\xf0\x9d\x84\x9e\xf0\x9d\x84\x9e"; /* 𝄞𝄞 */

    for (size_t max = 0; max < 4; max++)
        assert_int_equal(utf8_prefix(clef, max), 0);
    for (size_t max = 4; max < 8; max++)
        assert_int_equal(utf8_prefix(clef, max), 4);
    assert_int_equal(utf8_prefix(clef, 8), 8);
}

static void test_utf8_prefix_is_always_valid(void **state)
{
    /* Every cut of mixed text is a valid prefix of it, as long as possible. */
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x94\xa7z\xd0\x96";
    size_t n = strlen(s);

    for (size_t max = 0; max <= n + 2; max++) {
        size_t len = utf8_prefix(s, max);
        assert_true(len <= max);
        assert_true(len <= n);
        assert_true(utf8_valid(s, len));
        /* No longer prefix within max is valid. */
        for (size_t k = len + 1; k <= max && k <= n; k++)
            assert_false(utf8_valid(s, k));
    }
}

/* ---- text_ellipsize ---- */

static void test_text_ellipsize_short(void **state)
{
    struct arena *a = *state;

    assert_null(text_ellipsize(a, NULL, 10));
    assert_string_equal(text_ellipsize(a, "", 10), "");
    assert_string_equal(text_ellipsize(a, "", 0), "");
    assert_string_equal(text_ellipsize(a, "hello", 5), "hello");
    assert_string_equal(text_ellipsize(a, "hello", 50), "hello");
    /* Exactly max characters, the last one multibyte: not cut. */
    assert_string_equal(text_ellipsize(a, "abc\xc3\xa9", 4), "abc\xc3\xa9");
    assert_string_equal(text_ellipsize(a, "\xf0\x9f\x94\xa7", 1), "\xf0\x9f\x94\xa7");
}

static void test_text_ellipsize_cut(void **state)
{
    struct arena *a = *state;

    assert_string_equal(text_ellipsize(a, "hello", 4), "hel…");
    assert_string_equal(text_ellipsize(a, "hello", 1), "…");
    assert_string_equal(text_ellipsize(a, "hello", 0), "");
    assert_string_equal(text_ellipsize(a, "h\xc3\xa9llo w\xc3\xb6rld", 6), "h\xc3\xa9llo…");
    assert_string_equal(text_ellipsize(a, "\xc3\xa9\xc3\xa9\xc3\xa9", 2), "\xc3\xa9…");
    assert_string_equal(text_ellipsize(a, "\xf0\x9f\x94\xa7\xf0\x9f\x94\xa7x", 2),
                        "\xf0\x9f\x94\xa7…");
}

static void test_text_ellipsize_bounds(void **state)
{
    struct arena *a = *state;
    const char *s = "Siemens G120C \xe2\x80\x94 Main drive \xc2\xb7 Line 2 \xf0\x9f\x94\xa7";
    size_t chars = utf8_chars(s);

    for (size_t max = 0; max <= chars + 1; max++) {
        const char *e = text_ellipsize(a, s, max);
        assert_non_null(e);
        assert_true(utf8_valid(e, strlen(e)));
        assert_true(utf8_chars(e) <= max);
        if (max >= chars) {
            assert_string_equal(e, s);
        } else if (max > 0) {
            assert_int_equal(utf8_chars(e), max);
            /* ends with the ellipsis and starts with the original */
            size_t el = strlen(e);
            assert_true(el >= 3);
            assert_memory_equal(e + el - 3, "…", 3);
            assert_memory_equal(e, s, el - 3);
        }
    }
}

static void test_text_ellipsize_long(void **state)
{
    struct arena *a = *state;
    size_t n = 100000;
    char *s = malloc(n + 1);

    assert_non_null(s);
    memset(s, 'x', n);
    s[n] = '\0';
    const char *e = text_ellipsize(a, s, 200);
    assert_non_null(e);
    assert_int_equal(utf8_chars(e), 200);
    assert_int_equal(strlen(e), 199 + 3);
    free(s);
}

/* ---- text_distance ---- */

static void test_text_distance(void **state)
{
    assert_int_equal(text_distance("", ""), 0);
    assert_int_equal(text_distance("abc", ""), 3);
    assert_int_equal(text_distance("", "abcd"), 4);
    assert_int_equal(text_distance("pump", "pump"), 0);
    assert_int_equal(text_distance("kitten", "sitting"), 3);
    assert_int_equal(text_distance("sitting", "kitten"), 3);
    assert_int_equal(text_distance("flaw", "lawn"), 2);
    assert_int_equal(text_distance("/equp", "/equip"), 1);
    assert_int_equal(text_distance("/euqip", "/equip"), 2);
    assert_int_equal(text_distance("siemens", "simens"), 1);
    assert_int_equal(text_distance("abc", "xyz"), 3);
}

static void test_text_distance_case_insensitive(void **state)
{
    assert_int_equal(text_distance("PUMP", "pump"), 0);
    assert_int_equal(text_distance("Siemens", "sIEMENS"), 0);
    assert_int_equal(text_distance("/EQUIP", "/equip"), 0);
    /* Only ASCII folds: É and é are different bytes. */
    assert_true(text_distance("\xc3\x89", "\xc3\xa9") > 0);
}

static void test_text_distance_long(void **state)
{
    char a[200], b[200];

    memset(a, 'a', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memset(b, 'b', sizeof(b) - 1);
    b[sizeof(b) - 1] = '\0';
    /* Compared on the first 64 bytes. */
    assert_int_equal(text_distance(a, a), 0);
    assert_int_equal(text_distance(a, b), 64);
    assert_int_equal(text_distance(a, ""), 64);
    assert_int_equal(text_distance("", b), 64);
    /* A difference past byte 64 is not seen. */
    char c[200];
    memcpy(c, a, sizeof(c));
    c[100] = 'z';
    assert_int_equal(text_distance(a, c), 0);
    c[63] = 'z';
    assert_int_equal(text_distance(a, c), 1);
    /* 70 vs 64 characters: equal on the compared part. */
    a[70] = '\0';
    memset(c, 'a', 64);
    c[64] = '\0';
    assert_int_equal(text_distance(a, c), 0);
}

/* ---- text_trim ---- */

static void test_text_trim(void **state)
{
    char s1[] = "  Line 2 bay 4  ";
    char s2[] = "";
    char s3[] = " \t\r\n\v\f ";
    char s4[] = "\t\n x\r\n";
    char s5[] = "nothing";
    char s6[] = "in  side";
    char s7[] = "\xc2\xa0x\xc2\xa0"; /* NBSP is not ASCII white space */

    assert_ptr_equal(text_trim(s1), s1);
    assert_string_equal(s1, "Line 2 bay 4");
    assert_string_equal(text_trim(s2), "");
    assert_string_equal(text_trim(s3), "");
    assert_string_equal(text_trim(s4), "x");
    assert_string_equal(text_trim(s5), "nothing");
    assert_string_equal(text_trim(s6), "in  side");
    assert_string_equal(text_trim(s7), "\xc2\xa0x\xc2\xa0");
}

static void test_json_depth(void **state)
{
    static const char deep[] = "[[[[{\"a\":[1]}]]]]"; /* depth 6 */
    static const char in_strings[] = "{\"a\":\"[[[[[[[[\",\"b\":\"\\\"{{{{{{\"}";

    (void)state;
    assert_true(text_json_depth_ok(deep, strlen(deep), 6));
    assert_false(text_json_depth_ok(deep, strlen(deep), 5));
    /* Brackets in strings, escaped quotes included, do not count. */
    assert_true(text_json_depth_ok(in_strings, strlen(in_strings), 1));
    assert_true(text_json_depth_ok("", 0, 0));
    assert_false(text_json_depth_ok("[", 1, 0));
    /* Only n bytes are read. */
    assert_true(text_json_depth_ok(deep, 2, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_valid_empty_and_ascii),
        cmocka_unit_test(test_utf8_valid_well_formed),
        cmocka_unit_test(test_utf8_valid_overlong),
        cmocka_unit_test(test_utf8_valid_surrogates),
        cmocka_unit_test(test_utf8_valid_above_max),
        cmocka_unit_test(test_utf8_valid_truncated),
        cmocka_unit_test(test_utf8_valid_huge),
        cmocka_unit_test(test_text_has_control),
        cmocka_unit_test(test_utf8_chars),
        cmocka_unit_test(test_utf8_prefix),
        cmocka_unit_test(test_utf8_prefix_four_byte),
        cmocka_unit_test(test_utf8_prefix_is_always_valid),
        cmocka_unit_test_setup_teardown(test_text_ellipsize_short, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_text_ellipsize_cut, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_text_ellipsize_bounds, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_text_ellipsize_long, arena_setup, arena_teardown),
        cmocka_unit_test(test_text_distance),
        cmocka_unit_test(test_text_distance_case_insensitive),
        cmocka_unit_test(test_text_distance_long),
        cmocka_unit_test(test_text_trim),
        cmocka_unit_test(test_json_depth),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
