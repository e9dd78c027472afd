/* Unit tests for bot/buf.c: the bounded growable buffer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static void test_buf_empty(void **state)
{
    struct buf b;

    buf_init(&b, 16);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.max, 16);
    assert_string_equal(buf_str(&b), "");
    buf_free(&b);
    buf_free(&b); /* an empty buffer is fine, twice too */
    assert_string_equal(buf_str(&b), "");
}

static void test_buf_add(void **state)
{
    struct buf b;

    buf_init(&b, 100);
    assert_int_equal(buf_adds(&b, "Pump"), 0);
    assert_int_equal(buf_add(&b, " 3 and more", 2), 0);
    assert_int_equal(buf_addf(&b, ": %d bar, %s", 2, "ok"), 0);
    assert_string_equal(buf_str(&b), "Pump 3: 2 bar, ok");
    assert_int_equal(b.len, strlen("Pump 3: 2 bar, ok"));
    assert_int_equal(buf_add(&b, "", 0), 0);
    assert_int_equal(buf_adds(&b, ""), 0);
    assert_int_equal(b.len, strlen("Pump 3: 2 bar, ok"));
    buf_free(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");
}

static void test_buf_binary(void **state)
{
    struct buf b;

    buf_init(&b, 10);
    assert_int_equal(buf_add(&b, "a\0b", 3), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.p, "a\0b", 4); /* and NUL-terminated */
    buf_free(&b);
}

static void test_buf_exact_max(void **state)
{
    struct buf b;

    buf_init(&b, 8);
    assert_int_equal(buf_adds(&b, "12345678"), 0);
    assert_int_equal(b.len, 8);
    assert_string_equal(buf_str(&b), "12345678");
    /* Full: one more byte fails and changes nothing. */
    assert_int_equal(buf_add(&b, "9", 1), -E2BIG);
    assert_int_equal(buf_addf(&b, "%d", 9), -E2BIG);
    assert_int_equal(b.len, 8);
    assert_string_equal(buf_str(&b), "12345678");
    /* Adding nothing still works on a full buffer. */
    assert_int_equal(buf_add(&b, "", 0), 0);
    buf_free(&b);
}

static void test_buf_too_big_leaves_buffer(void **state)
{
    struct buf b;

    buf_init(&b, 10);
    assert_int_equal(buf_adds(&b, "abcdef"), 0);
    assert_int_equal(buf_adds(&b, "ghijk"), -E2BIG);
    assert_int_equal(b.len, 6);
    assert_string_equal(buf_str(&b), "abcdef");
    assert_int_equal(buf_addf(&b, "%s", "0123456789"), -E2BIG);
    assert_string_equal(buf_str(&b), "abcdef");
    /* What still fits goes in. */
    assert_int_equal(buf_adds(&b, "ghij"), 0);
    assert_string_equal(buf_str(&b), "abcdefghij");
    buf_free(&b);
}

static void test_buf_huge_length(void **state)
{
    struct buf b;

    buf_init(&b, 100);
    assert_int_equal(buf_adds(&b, "x"), 0);
    /* Lengths that would wrap len + n must be refused, not wrapped. */
    assert_int_equal(buf_add(&b, "y", SIZE_MAX), -E2BIG);
    assert_int_equal(buf_add(&b, "y", SIZE_MAX - 1), -E2BIG);
    assert_int_equal(buf_add(&b, "y", 100), -E2BIG);
    assert_int_equal(b.len, 1);
    assert_string_equal(buf_str(&b), "x");
    buf_free(&b);
}

static void test_buf_zero_max(void **state)
{
    struct buf b;

    buf_init(&b, 0);
    assert_int_equal(buf_add(&b, "", 0), 0);
    assert_string_equal(buf_str(&b), "");
    assert_int_equal(buf_adds(&b, "a"), -E2BIG);
    assert_int_equal(buf_addf(&b, "%s", ""), 0);
    assert_int_equal(buf_addf(&b, "%c", 'a'), -E2BIG);
    assert_string_equal(buf_str(&b), "");
    buf_free(&b);
}

static void test_buf_grows(void **state)
{
    const size_t max = 100000;
    struct buf b;

    buf_init(&b, max);
    for (size_t i = 0; i < max; i++)
        assert_int_equal(buf_add(&b, &"0123456789"[i % 10], 1), 0);
    assert_int_equal(b.len, max);
    assert_true(b.cap >= max + 1);
    for (size_t i = 0; i < max; i++)
        if (b.p[i] != (char)('0' + i % 10))
            fail_msg("byte %zu is %c", i, b.p[i]);
    assert_int_equal(b.p[max], '\0');
    assert_int_equal(buf_adds(&b, "x"), -E2BIG);
    buf_free(&b);
}

static void test_buf_addf_long(void **state)
{
    struct buf b;
    char big[5000];

    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_init(&b, 20000);
    assert_int_equal(buf_adds(&b, "<"), 0);
    assert_int_equal(buf_addf(&b, "%s|%s", big, big), 0);
    assert_int_equal(b.len, 1 + 2 * (sizeof(big) - 1) + 1);
    assert_int_equal(b.p[0], '<');
    assert_int_equal(b.p[sizeof(big)], '|');
    assert_int_equal(b.p[b.len], '\0');
    buf_free(&b);
}

static void test_buf_steal(void **state)
{
    struct buf b;
    char *s;

    buf_init(&b, 50);
    s = buf_steal(&b); /* empty: a fresh "" */
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);

    assert_int_equal(buf_adds(&b, "work order"), 0);
    s = buf_steal(&b);
    assert_string_equal(s, "work order");
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");
    /* The buffer is usable again, with the same maximum. */
    assert_int_equal(buf_adds(&b, "again"), 0);
    assert_string_equal(buf_str(&b), "again");
    char pad[46];
    memset(pad, '.', sizeof(pad));
    assert_int_equal(buf_add(&b, pad, 46), -E2BIG);
    assert_int_equal(buf_add(&b, pad, 45), 0);
    assert_int_equal(b.len, 50);
    free(s);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_empty),
        cmocka_unit_test(test_buf_add),
        cmocka_unit_test(test_buf_binary),
        cmocka_unit_test(test_buf_exact_max),
        cmocka_unit_test(test_buf_too_big_leaves_buffer),
        cmocka_unit_test(test_buf_huge_length),
        cmocka_unit_test(test_buf_zero_max),
        cmocka_unit_test(test_buf_grows),
        cmocka_unit_test(test_buf_addf_long),
        cmocka_unit_test(test_buf_steal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
