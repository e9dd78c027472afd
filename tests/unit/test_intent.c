/* Unit tests for handlers/intent.c: the phrase table
 * tests/fixtures/intents/phrases.tsv (see its README), the numbers and
 * codes, commands and input that must not crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "intent.h"

#define PHRASES FIXTURES "/intents/phrases.tsv"
#define MAX_PHRASES 1024
/* The share of the table that must be recognised in full (kind, machine,
 * location, priority). */
#define MIN_ACCURACY 0.95
#define N_KINDS (INTENT_DONE + 1)

struct phrase {
    char *text;
    enum intent_kind kind;
    char *machine, *location, *priority; /* NULL for "-" */
};

static struct phrase phrases[MAX_PHRASES];
static int n_phrases;
static char *table;

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else if (buf) {
            buf[n] = '\0';
        }
    }
    fclose(f);
    return buf;
}

static int kind_of(const char *name)
{
    for (int k = 0; k < N_KINDS; k++)
        if (strcmp(intent_name((enum intent_kind)k), name) == 0)
            return k;
    return -1;
}

static char *dash_null(char *s)
{
    return strcmp(s, "-") == 0 ? NULL : s;
}

/* Splits the table in place into phrases[]. */
static int load_phrases(void **state)
{
    char *line, *next;

    table = read_file(PHRASES);
    if (!table)
        return -1;
    for (line = table; line && *line; line = next) {
        char *col[5];
        int n = 0, k;

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        col[n++] = line;
        for (char *p = line; *p && n < 5; p++)
            if (*p == '\t') {
                *p = '\0';
                col[n++] = p + 1;
            }
        if (n != 5 || (k = kind_of(col[1])) < 0 || n_phrases == MAX_PHRASES) {
            fprintf(stderr, "bad line in %s: %s\n", PHRASES, line);
            return -1;
        }
        phrases[n_phrases++] = (struct phrase){col[0], (enum intent_kind)k, dash_null(col[2]),
                                               dash_null(col[3]), dash_null(col[4])};
    }
    return 0;
}

static int free_phrases(void **state)
{
    free(table);
    return 0;
}

static bool same(const char *want, const char *got)
{
    if (!want || !got)
        return want == got;
    return strcasecmp(want, got) == 0;
}

static bool hit(const struct phrase *p, const struct intent *in)
{
    return in->kind == p->kind && same(p->machine, in->machine) &&
           same(p->location, in->location) &&
           (p->kind != INTENT_REPORT || same(p->priority, in->priority));
}

/* ---- the table ---- */

static void test_table(void **state)
{
    int total[N_KINDS] = {0}, kind_ok[N_KINDS] = {0}, full_ok[N_KINDS] = {0};
    int all_kind = 0, all_full = 0;
    struct arena *a = NULL;

    assert_true(n_phrases >= 120);
    assert_int_equal(arena_new(&a), 0);
    for (int i = 0; i < n_phrases; i++) {
        const struct phrase *p = &phrases[i];
        struct intent in;

        arena_reset(a);
        assert_int_equal(intent_parse(a, p->text, strlen(p->text), &in), 0);
        total[p->kind]++;
        if (in.kind == p->kind) {
            kind_ok[p->kind]++;
            all_kind++;
        }
        if (hit(p, &in)) {
            full_ok[p->kind]++;
            all_full++;
        } else {
            printf("# miss: \"%s\": want %s/%s/%s/%s, got %s/%s/%s/%s\n", p->text,
                   intent_name(p->kind), p->machine ? p->machine : "-",
                   p->location ? p->location : "-", p->priority ? p->priority : "-",
                   intent_name(in.kind), in.machine ? in.machine : "-",
                   in.location ? in.location : "-", in.priority ? in.priority : "-");
        }
    }
    for (int k = 0; k < N_KINDS; k++)
        if (total[k])
            printf("# %-9s %3d phrases: kind %5.1f%%, all fields %5.1f%%\n",
                   intent_name((enum intent_kind)k), total[k], 100.0 * kind_ok[k] / total[k],
                   100.0 * full_ok[k] / total[k]);
    printf("# overall   %3d phrases: kind %5.1f%%, all fields %5.1f%% (threshold %.0f%%)\n",
           n_phrases, 100.0 * all_kind / n_phrases, 100.0 * all_full / n_phrases,
           100.0 * MIN_ACCURACY);
    arena_free(a);
    assert_true(all_full >= MIN_ACCURACY * n_phrases);
}

/* ---- details ---- */

static struct intent parse(struct arena *a, const char *text)
{
    struct intent in;

    assert_int_equal(intent_parse(a, text, strlen(text), &in), 0);
    return in;
}

static void test_numbers(void **state)
{
    struct arena *a = *state;
    struct intent in;

    in = parse(a, "status wo-2024-000123");
    assert_string_equal(in.wo_number, "WO-2024-000123");
    in = parse(a, "w/o 2024 123 done?");
    assert_string_equal(in.wo_number, "WO-2024-000123");
    in = parse(a, "eq-2023-45 is leaking");
    assert_string_equal(in.eq_number, "EQ-2023-000045");
    assert_int_equal(in.kind, INTENT_REPORT);
    assert_null(in.machine);
    in = parse(a, "how do I reset fault F0021 on a Siemens G120C?");
    assert_string_equal(in.fault_code, "F0021");
    assert_string_equal(in.machine, "Siemens G120C");
    in = parse(a, "drive fault e-204 on conveyor 6");
    assert_string_equal(in.fault_code, "E-204");
    in = parse(a, "pump 3 leaking");
    assert_null(in.fault_code);
    assert_null(in.wo_number);
    assert_null(in.eq_number);
}

static void test_title(void **state)
{
    struct arena *a = *state;
    struct intent in;
    char long_text[1200];

    in = parse(a, "pump 3 on line 2 is leaking again");
    assert_int_equal(in.kind, INTENT_REPORT);
    assert_string_equal(in.title, "Pump 3: leaking (line 2)");
    in = parse(a, "line 3 is down");
    assert_string_equal(in.title, "Is down (line 3)");
    in = parse(a, "status of pump 3");
    assert_null(in.title);
    assert_null(in.priority);

    memset(long_text, 0, sizeof(long_text));
    strcpy(long_text, "\"");
    for (int i = 0; i < 70; i++)
        strcat(long_text, "é");
    strcat(long_text, "\" ");
    for (int i = 0; i < 100; i++)
        strcat(long_text, "leaking ");
    in = parse(a, long_text);
    assert_int_equal(in.kind, INTENT_REPORT);
    assert_non_null(in.title);
    assert_true(strlen(in.title) <= 200);
}

static void test_quotes(void **state)
{
    struct arena *a = *state;
    struct intent in;

    in = parse(a, "„Alte Presse“ undicht");
    assert_string_equal(in.machine, "Alte Presse");
    in = parse(a, "'Line feeder' is jammed");
    assert_string_equal(in.machine, "Line feeder");
    in = parse(a, "« Pompe 2 » fuit");
    assert_string_equal(in.machine, "Pompe 2");
    in = parse(a, "the pump won't start, it's 'stuck'");
    assert_int_equal(in.kind, INTENT_REPORT);
}

static void test_none(void **state)
{
    struct arena *a = *state;
    static const char *const texts[] = {
        "",   "   ", "/wo", " /equip pump 3", "\xff\xfe leaking", "\"", "'", "«", "“", "?",
        "#3", "nr.", "wo-", "\xe2\x80"};
    struct intent in;

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        in = parse(a, texts[i]);
        if (i < 5)
            assert_int_equal(in.kind, INTENT_NONE);
    }
    assert_int_equal(intent_parse(a, NULL, 0, &in), 0);
    assert_int_equal(in.kind, INTENT_NONE);
    /* not NUL-terminated: only len bytes are read */
    assert_int_equal(intent_parse(a, "pump 3 leakingXXXX", 14, &in), 0);
    assert_int_equal(in.kind, INTENT_REPORT);
    /* half a character at the end of an unterminated buffer is dropped
     * without reading past it (found by fuzz_intent; ASan checks the read) */
    {
        char *cut = malloc(16);

        assert_non_null(cut);
        memcpy(cut, "pump 3 leaking\xc3", 15);
        assert_int_equal(intent_parse(a, cut, 15, &in), 0);
        assert_int_equal(in.kind, INTENT_REPORT);
        free(cut);
    }
    assert_string_equal(intent_name(INTENT_OPEN_WOS), "open_wos");
    assert_string_equal(intent_name((enum intent_kind)99), "?");
}

/* Every prefix of every phrase, and a long text: nothing crashes. */
static void test_prefixes(void **state)
{
    struct arena *a = *state;
    struct intent in;
    char *big;

    for (int i = 0; i < n_phrases; i++) {
        size_t n = strlen(phrases[i].text);

        for (size_t k = 0; k <= n; k++) {
            arena_reset(a);
            assert_int_equal(intent_parse(a, phrases[i].text, k, &in), 0);
        }
    }
    big = malloc(100000);
    assert_non_null(big);
    for (int i = 0; i < 100000; i++)
        big[i] = "pump 3 leaking \"x' "[i % 19];
    arena_reset(a);
    assert_int_equal(intent_parse(a, big, 100000, &in), 0);
    free(big);
}

/* The patterns are compiled once, from whichever thread comes first. */
static void *worker(void *arg)
{
    struct arena *a = NULL;
    long bad = 0;

    if (arena_new(&a) < 0)
        return (void *)1;
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < n_phrases; i++) {
            struct intent in;

            arena_reset(a);
            if (intent_parse(a, phrases[i].text, strlen(phrases[i].text), &in) < 0)
                bad++;
        }
    arena_free(a);
    return (void *)bad;
}

static void test_threads(void **state)
{
    pthread_t t[4];

    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *ret;

        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
}

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_table),
        cmocka_unit_test_setup_teardown(test_numbers, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_title, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_quotes, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_none, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_prefixes, arena_setup, arena_teardown),
    };

    return cmocka_run_group_tests(tests, load_phrases, free_phrases);
}
