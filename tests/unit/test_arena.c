/* Unit tests for bot/arena.c: the per-request region allocator. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "arena.h"

#define ARENA_LIMIT (64u << 20) /* the maximum documented in arena.h */

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

static void test_arena_new_free(void **state)
{
    struct arena *a = NULL;

    assert_int_equal(arena_new(&a), 0);
    assert_non_null(a);
    arena_free(a);
    arena_free(NULL); /* accepted */
}

static void test_arena_alloc_zeroed_aligned(void **state)
{
    struct arena *a = *state;
    const size_t sizes[] = {1, 3, 7, 8, 15, 16, 17, 100, 4000, 8191, 8192, 8193, 20000, 1};
    struct arena *dirty = NULL;

    /* Dirty some heap first, so that reused memory is not zero by luck. */
    assert_int_equal(arena_new(&dirty), 0);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        void *p = arena_alloc(dirty, sizes[i]);
        assert_non_null(p);
        memset(p, 0xff, sizes[i]);
    }
    arena_free(dirty);

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *p = arena_alloc(a, sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
        for (size_t k = 0; k < sizes[i]; k++)
            if (p[k] != 0)
                fail_msg("size %zu: byte %zu not zeroed", sizes[i], k);
        memset(p, 0xa5, sizes[i]); /* writable to the end (ASan checks) */
    }
    /* Zero bytes still gives a distinct, usable pointer. */
    void *z1 = arena_alloc(a, 0), *z2 = arena_alloc(a, 0);
    assert_non_null(z1);
    assert_non_null(z2);
    assert_ptr_not_equal(z1, z2);
}

/* Many allocations of mixed sizes, big ones between small ones: each keeps
 * its own bytes (no overlap, nothing moves). */
static void test_arena_no_overlap(void **state)
{
    struct arena *a = *state;
    enum { N = 600 };
    unsigned char *p[N];
    size_t sz[N];

    for (int i = 0; i < N; i++) {
        sz[i] = (i % 50 == 0) ? 9000 + (size_t)i : (size_t)(i % 97) + 1;
        p[i] = arena_alloc(a, sz[i]);
        assert_non_null(p[i]);
        memset(p[i], i & 0xff, sz[i]);
    }
    for (int i = 0; i < N; i++)
        for (size_t k = 0; k < sz[i]; k++)
            if (p[i][k] != (unsigned char)(i & 0xff))
                fail_msg("allocation %d (size %zu) overwritten at %zu", i, sz[i], k);
}

static void test_arena_limit(void **state)
{
    struct arena *a = *state;
    size_t total = 0;
    int n = 0;

    assert_null(arena_alloc(a, SIZE_MAX));
    assert_null(arena_alloc(a, SIZE_MAX - 8));
    assert_null(arena_alloc(a, (size_t)ARENA_LIMIT + 1));
    /* 1 MiB at a time until the arena says no: it stops at 64 MiB. */
    for (;;) {
        void *p = arena_alloc(a, 1u << 20);
        if (!p)
            break;
        total += 1u << 20;
        assert_true(total <= ARENA_LIMIT);
        n++;
    }
    assert_true(n >= 60);
    assert_true(total <= ARENA_LIMIT);
    /* Still refused afterwards, also for a string that needs a new chunk. */
    assert_null(arena_alloc(a, 1u << 20));
}

static void test_arena_strdup(void **state)
{
    struct arena *a = *state;
    const char *src = "Siemens G120C";
    char *s;

    assert_null(arena_strdup(a, NULL));
    assert_null(arena_strndup(a, NULL, 3));
    s = arena_strdup(a, src);
    assert_non_null(s);
    assert_ptr_not_equal(s, src);
    assert_string_equal(s, src);
    assert_string_equal(arena_strdup(a, ""), "");
    assert_string_equal(arena_strndup(a, src, 7), "Siemens");
    assert_string_equal(arena_strndup(a, src, 0), "");
    /* strndup copies n bytes exactly, NULs included, and terminates. */
    s = arena_strndup(a, "a\0b", 3);
    assert_memory_equal(s, "a\0b\0", 4);
}

static void test_arena_printf(void **state)
{
    struct arena *a = *state;
    char *s;

    s = arena_printf(a, "%s-%04d-%06d", "EQ", 2026, 1);
    assert_string_equal(s, "EQ-2026-000001");
    assert_string_equal(arena_printf(a, "%s", ""), "");
    /* Longer than a chunk. */
    char *big = malloc(30001);
    assert_non_null(big);
    memset(big, 'z', 30000);
    big[30000] = '\0';
    s = arena_printf(a, "[%s]", big);
    assert_non_null(s);
    assert_int_equal(strlen(s), 30002);
    assert_int_equal(s[0], '[');
    assert_int_equal(s[30001], ']');
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_new_free),
        cmocka_unit_test_setup_teardown(test_arena_alloc_zeroed_aligned, arena_setup,
                                        arena_teardown),
        cmocka_unit_test_setup_teardown(test_arena_no_overlap, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_arena_limit, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_arena_strdup, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_arena_printf, arena_setup, arena_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
