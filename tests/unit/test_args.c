/* Unit tests for handlers/args.c: splitting a typed command line into
 * words, the rest of the line, and key=value options. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "arena.h"
#include "args.h"

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

/* Parses src and checks the command (NULL: none) and the words. */
static void check_words(struct arena *a, const char *src, const char *cmd, int n,
                        const char *const *words, struct args *out)
{
    struct args args;

    assert_int_equal(args_parse(a, src, &args), 0);
    assert_ptr_equal(args.src, src);
    if (cmd) {
        if (!args.cmd)
            fail_msg("\"%s\": no command, expected \"%s\"", src, cmd);
        assert_string_equal(args.cmd, cmd);
    } else if (args.cmd) {
        fail_msg("\"%s\": unexpected command \"%s\"", src, args.cmd);
    }
    if (args.n != n)
        fail_msg("\"%s\": %d words, expected %d", src, args.n, n);
    for (int i = 0; i < n; i++)
        if (strcmp(args.tok[i].text, words[i]) != 0)
            fail_msg("\"%s\": word %d is \"%s\", expected \"%s\"", src, i, args.tok[i].text,
                     words[i]);
    if (out)
        *out = args;
}

#define WORDS(...) ((const char *const[]){__VA_ARGS__})
#define NWORDS(...) ((int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)))
#define CHECK(a, src, cmd, ...)                                                                    \
    check_words(a, src, cmd, NWORDS(__VA_ARGS__), WORDS(__VA_ARGS__), NULL)
#define CHECK0(a, src, cmd) check_words(a, src, cmd, 0, NULL, NULL)

/* ---- args_parse ---- */

static void test_parse_empty(void **state)
{
    struct arena *a = *state;

    CHECK0(a, "", NULL);
    CHECK0(a, " ", NULL);
    CHECK0(a, " \t\r\n\v\f ", NULL);
    CHECK0(a, "\xc2\xa0\xc2\xa0", NULL); /* only no-break spaces */
}

static void test_parse_command(void **state)
{
    struct arena *a = *state;

    CHECK(a, "/equip list 2", "/equip", "list", "2");
    CHECK0(a, "/equip", "/equip");
    CHECK0(a, "/EQUIP", "/equip");
    CHECK(a, "/Equip@RivetBot search pump", "/equip", "search", "pump");
    CHECK0(a, "/wo@rivet_bot", "/wo");
    CHECK0(a, "/wo@", "/wo");
    CHECK0(a, "/start@Rivet_Bot", "/start");
    CHECK(a, "  /help   wo ", "/help", "wo");
    /* Case is kept in the words, only the command is folded. */
    CHECK(a, "/EQUIP Search SIEMENS", "/equip", "Search", "SIEMENS");
    /* Not commands. */
    CHECK(a, "equip list", NULL, "equip", "list");
    CHECK(a, "hello /equip", NULL, "hello", "/equip");
    CHECK(a, "\"/equip\" list", NULL, "/equip", "list");
}

static void test_parse_spaces(void **state)
{
    struct arena *a = *state;
    struct args args;

    CHECK(a, "  /equip   add  Siemens\t\tG120C  ", "/equip", "add", "Siemens", "G120C");
    CHECK(a, "/equip\nsearch\r\npump", "/equip", "search", "pump");
    /* U+00A0, which phone keyboards put after a command. */
    CHECK(a, "/equip\xc2\xa0search\xc2\xa0\xc2\xa0pump\xc2\xa0", "/equip", "search", "pump");
    CHECK(a,
          "a\xc2\xa0 \xc2\xa0"
          "b",
          NULL, "a", "b");
    /* Other characters that start with C2 are not spaces. */
    CHECK(a,
          "x\xc2\xb0"
          "C 40\xc2\xb0",
          NULL,
          "x\xc2\xb0"
          "C",
          "40\xc2\xb0");
    /* Offsets are those of the words as typed. */
    check_words(a, "/wo  new\xc2\xa0x", "/wo", 2, WORDS("new", "x"), &args);
    assert_int_equal(args.tok[0].start, 5);
    assert_int_equal(args.tok[0].end, 8);
    assert_int_equal(args.tok[1].start, 10);
    assert_int_equal(args.tok[1].end, 11);
    assert_false(args.tok[0].quoted);
}

static void test_parse_ascii_quotes(void **state)
{
    struct arena *a = *state;
    struct args args;

    check_words(a, "/equip add Grundfos \"CR 10-3\" x", "/equip", 4,
                WORDS("add", "Grundfos", "CR 10-3", "x"), &args);
    assert_true(args.tok[2].quoted);
    assert_false(args.tok[1].quoted);
    assert_int_equal(args.tok[2].start, 20); /* the quotes are part of the word as typed */
    assert_int_equal(args.tok[2].end, 29);

    CHECK(a, "'Line 2 bay 4' next", NULL, "Line 2 bay 4", "next");
    CHECK(a, "\"a  b\"", NULL, "a  b");
    CHECK(a, "\"\" x", NULL, "", "x");
    CHECK(a, "x \"\"", NULL, "x", "");
    CHECK(a, "\"it's\"", NULL, "it's");
    CHECK(a, "'say \"hi\"'", NULL, "say \"hi\"");
    /* The closing quote may be followed by a no-break space. */
    CHECK(a,
          "\"a b\"\xc2\xa0"
          "c",
          NULL, "a b", "c");
    /* A quote inside the word does not close it: only one followed by a space. */
    CHECK(a, "\"a \"b c\" d", NULL, "a \"b c", "d");
}

static void test_parse_unicode_quotes(void **state)
{
    struct arena *a = *state;
    struct args args;

    check_words(a,
                "/equip add Grundfos \xe2\x80\x9c"
                "CR 10-3\xe2\x80\x9d",
                "/equip", 3, WORDS("add", "Grundfos", "CR 10-3"), &args);
    assert_true(args.tok[2].quoted);
    assert_int_equal(args.tok[2].start, 20);
    assert_int_equal(args.tok[2].end, strlen(args.src));
    CHECK(a,
          "\xc2\xab"
          "Line 2\xc2\xbb x",
          NULL, "Line 2", "x"); /* « » */
    CHECK(a,
          "\xe2\x80\x98"
          "a b\xe2\x80\x99",
          NULL, "a b"); /* ‘ ’ */
    CHECK(a,
          "\xe2\x80\x9e"
          "a b\xe2\x80\x9c",
          NULL, "a b"); /* „ “ */
    CHECK(a,
          "\xe2\x80\x9d"
          "a b\xe2\x80\x9d",
          NULL, "a b"); /* ” ” */
    /* Mixed-up pairs do not match. */
    CHECK(a,
          "\xc2\xab"
          "a b\"",
          NULL,
          "\xc2\xab"
          "a",
          "b\"");
    CHECK(a, "\"a b\xe2\x80\x9d", NULL, "\"a", "b\xe2\x80\x9d");
}

static void test_parse_apostrophes(void **state)
{
    struct arena *a = *state;

    CHECK(a, "/wo note WO-2026-000001 don't restart, it's the seal", "/wo", "note",
          "WO-2026-000001", "don't", "restart,", "it's", "the", "seal");
    CHECK(a, "O'Brien's pump", NULL, "O'Brien's", "pump");
    CHECK(a, "it\xe2\x80\x99s fine", NULL, "it\xe2\x80\x99s", "fine"); /* ’ inside */
    /* A leading apostrophe without its pair is a plain character. */
    CHECK(a, "'tis fine", NULL, "'tis", "fine");
    CHECK(a, "it's 'a b' ok", NULL, "it's", "a b", "ok");
    /* A quote that closes mid-word does not end the word. */
    CHECK(a, "'rock'n'roll' band", NULL, "rock'n'roll", "band");
}

static void test_parse_unbalanced(void **state)
{
    struct arena *a = *state;
    struct args args;

    check_words(a, "/equip add \"Line 2", "/equip", 3, WORDS("add", "\"Line", "2"), &args);
    assert_false(args.tok[1].quoted);
    CHECK(a, "Line 2\"", NULL, "Line", "2\"");
    CHECK(a, "\"", NULL, "\"");
    CHECK(a, "\" \"", NULL, " ");
    CHECK(a, "\"\"\"", NULL, "\"");
    CHECK(a,
          "\xe2\x80\x9c"
          "Line 2",
          NULL,
          "\xe2\x80\x9c"
          "Line",
          "2");
    CHECK(a, "\xc2\xab", NULL, "\xc2\xab");
    CHECK(a, "\"a b\"c d", NULL, "\"a", "b\"c", "d");
    CHECK(a, "\"a b\"c d\"", NULL, "a b\"c d");
}

static void test_parse_invalid_utf8(void **state)
{
    struct arena *a = *state;

    CHECK(a, "\xff\xfe abc", NULL, "\xff\xfe", "abc");
    CHECK(a, "abc \xc2", NULL, "abc", "\xc2"); /* lone lead byte at the end */
    CHECK(a, "\xe2\x80", NULL, "\xe2\x80");    /* a cut quote character */
    CHECK(a, "\xc0\xa0x", NULL, "\xc0\xa0x");  /* overlong space is no space */
}

static void test_parse_long_line(void **state)
{
    struct arena *a = *state;
    const size_t n = 10240;
    char *s = malloc(n + 1);
    struct args args;

    assert_non_null(s);
    /* 5120 one-letter words: the most words a line of this size holds. */
    for (size_t i = 0; i < n; i += 2) {
        s[i] = (char)('a' + (i / 2) % 26);
        s[i + 1] = ' ';
    }
    s[n] = '\0';
    assert_int_equal(args_parse(a, s, &args), 0);
    assert_null(args.cmd);
    assert_int_equal(args.n, (int)(n / 2));
    for (int i = 0; i < args.n; i++) {
        assert_int_equal(args.tok[i].start, (size_t)i * 2);
        assert_int_equal(args.tok[i].end, (size_t)i * 2 + 1);
        assert_int_equal(args.tok[i].text[0], 'a' + i % 26);
        assert_int_equal(args.tok[i].text[1], '\0');
    }
    /* No trailing space: the same count. */
    s[n - 1] = 'z';
    assert_int_equal(args_parse(a, s, &args), 0);
    assert_int_equal(args.n, (int)(n / 2));

    /* One 10 KB word. */
    memset(s, 'w', n);
    s[0] = '/';
    assert_int_equal(args_parse(a, s, &args), 0);
    assert_non_null(args.cmd);
    assert_int_equal(strlen(args.cmd), n);
    assert_int_equal(args.n, 0);

    /* 10 KB of quote characters: one quoted word of the inner ones. */
    memset(s, '"', n);
    assert_int_equal(args_parse(a, s, &args), 0);
    assert_int_equal(args.n, 1);
    assert_true(args.tok[0].quoted);
    assert_int_equal(strlen(args.tok[0].text), n - 2);

    /* Many unbalanced quotes, each word a plain one. Every word searches the
     * rest of the line for its closing quote, so this is the slow case: a
     * message-sized line (4 KB) keeps it quick under the sanitizers. */
    const size_t m = 4096;
    for (size_t i = 0; i + 3 <= m; i += 3) {
        s[i] = '"';
        s[i + 1] = 'q';
        s[i + 2] = ' ';
    }
    s[m - (m % 3)] = '\0';
    assert_int_equal(args_parse(a, s, &args), 0);
    assert_int_equal(args.n, (int)(m / 3));
    assert_string_equal(args.tok[0].text, "\"q");
    assert_string_equal(args.tok[args.n - 1].text, "\"q");
    free(s);
}

/* ---- args_rest ---- */

static void test_rest(void **state)
{
    struct arena *a = *state;
    struct args args;

    check_words(a, "/wo new EQ-2026-000001 Coolant  leak at pump  ", "/wo", 6,
                WORDS("new", "EQ-2026-000001", "Coolant", "leak", "at", "pump"), &args);
    assert_string_equal(args_rest(a, &args, 2), "Coolant  leak at pump"); /* as typed, trimmed */
    assert_string_equal(args_rest(a, &args, 5), "pump");
    assert_string_equal(args_rest(a, &args, 0), "new EQ-2026-000001 Coolant  leak at pump");
    assert_string_equal(args_rest(a, &args, 6), "");
    assert_string_equal(args_rest(a, &args, 100), "");

    /* A single quoted word loses its quotes; several keep them. */
    check_words(a, "/equip view \"Main drive\"", "/equip", 2, WORDS("view", "Main drive"), &args);
    assert_string_equal(args_rest(a, &args, 1), "Main drive");
    check_words(a, "/equip search \"Main drive\"  2", "/equip", 3,
                WORDS("search", "Main drive", "2"), &args);
    assert_string_equal(args_rest(a, &args, 1), "\"Main drive\"  2");

    /* No-break spaces between words stay as typed. */
    check_words(a,
                "/wo note WO-2026-000001 a\xc2\xa0"
                "b",
                "/wo", 4, WORDS("note", "WO-2026-000001", "a", "b"), &args);
    assert_string_equal(args_rest(a, &args, 2), "a\xc2\xa0"
                                                "b");

    /* Nothing after the command. */
    check_words(a, "/stats", "/stats", 0, NULL, &args);
    assert_string_equal(args_rest(a, &args, 0), "");
}

/* ---- args_options ---- */

enum { K_NAME, K_SERIAL, K_LOCATION, K_CRIT, N_KEYS };
static const char *const keys[N_KEYS] = {"name", "serial", "location", "criticality"};
static const bool absorbs[N_KEYS] = {true, false, true, false};

static int options(struct arena *a, const char *src, struct args *args, int from, const char **vals,
                   const char **bad)
{
    assert_int_equal(args_parse(a, src, args), 0);
    return args_options(a, args, from, keys, absorbs, N_KEYS, vals, bad);
}

static void assert_words(const struct args *args, int n, const char *const *words)
{
    if (args->n != n)
        fail_msg("\"%s\": %d words left, expected %d", args->src, args->n, n);
    for (int i = 0; i < n; i++)
        if (strcmp(args->tok[i].text, words[i]) != 0)
            fail_msg("\"%s\": word %d is \"%s\", expected \"%s\"", args->src, i, args->tok[i].text,
                     words[i]);
}

static void test_options_plain(void **state)
{
    struct arena *a = *state;
    const char *vals[N_KEYS], *bad = NULL;
    struct args args;

    assert_int_equal(
        options(a, "/equip add Siemens G120C serial=XAJ123 criticality=high", &args, 1, vals, &bad),
        0);
    assert_string_equal(vals[K_SERIAL], "XAJ123");
    assert_string_equal(vals[K_CRIT], "high");
    assert_null(vals[K_NAME]);
    assert_null(vals[K_LOCATION]);
    assert_words(&args, 3, WORDS("add", "Siemens", "G120C"));

    /* Options anywhere; the other words keep their order. */
    assert_int_equal(
        options(a, "/equip add serial=1 Siemens criticality=low G120C", &args, 1, vals, &bad), 0);
    assert_string_equal(vals[K_SERIAL], "1");
    assert_string_equal(vals[K_CRIT], "low");
    assert_words(&args, 3, WORDS("add", "Siemens", "G120C"));

    /* No options at all: every value NULL, nothing moves. */
    for (int k = 0; k < N_KEYS; k++)
        vals[k] = "stale";
    assert_int_equal(options(a, "/equip add Siemens G120C", &args, 1, vals, &bad), 0);
    for (int k = 0; k < N_KEYS; k++)
        assert_null(vals[k]);
    assert_words(&args, 3, WORDS("add", "Siemens", "G120C"));
}

static void test_options_absorbing(void **state)
{
    struct arena *a = *state;
    const char *vals[N_KEYS], *bad = NULL;
    struct args args;

    assert_int_equal(options(a, "/equip add Siemens G120C serial=XAJ123 location=Line 2 bay 4",
                             &args, 1, vals, &bad),
                     0);
    assert_string_equal(vals[K_LOCATION], "Line 2 bay 4");
    assert_string_equal(vals[K_SERIAL], "XAJ123");
    assert_words(&args, 3, WORDS("add", "Siemens", "G120C"));

    /* Absorbing stops at the next option. */
    assert_int_equal(options(a,
                             "/equip add Siemens G120C location=Line 2 bay 4 serial=X1 "
                             "name=Main  drive criticality=high",
                             &args, 1, vals, &bad),
                     0);
    assert_string_equal(vals[K_LOCATION], "Line 2 bay 4");
    assert_string_equal(vals[K_SERIAL], "X1");
    assert_string_equal(vals[K_NAME], "Main  drive"); /* spaces as typed */
    assert_string_equal(vals[K_CRIT], "high");
    assert_words(&args, 3, WORDS("add", "Siemens", "G120C"));

    /* ... and at a quoted word, which stays a word. */
    assert_int_equal(options(a, "/equip add location=Line 2 \"Main drive\"", &args, 1, vals, &bad),
                     0);
    assert_string_equal(vals[K_LOCATION], "Line 2");
    assert_words(&args, 2, WORDS("add", "Main drive"));

    /* A single word absorbs nothing more. */
    assert_int_equal(options(a, "/equip edit EQ-2026-000001 location=Hall3", &args, 2, vals, &bad),
                     0);
    assert_string_equal(vals[K_LOCATION], "Hall3");
    assert_words(&args, 2, WORDS("edit", "EQ-2026-000001"));

    /* Unicode and no-break spaces inside an absorbed value are kept. */
    assert_int_equal(options(a,
                             "/equip add location=Halle\xc2\xa0"
                             "3 \xc3\xbc"
                             "ber",
                             &args, 1, vals, &bad),
                     0);
    assert_string_equal(vals[K_LOCATION], "Halle\xc2\xa0"
                                          "3 \xc3\xbc"
                                          "ber");
    assert_words(&args, 1, WORDS("add"));
}

static void test_options_quoted_value(void **state)
{
    struct arena *a = *state;
    const char *vals[N_KEYS], *bad = NULL;
    struct args args;

    assert_int_equal(
        options(a, "/equip add serial=\"XAJ123\" criticality='high'", &args, 1, vals, &bad), 0);
    assert_string_equal(vals[K_SERIAL], "XAJ123");
    assert_string_equal(vals[K_CRIT], "high");
    assert_int_equal(options(a, "/equip edit EQ-2026-000001 serial=\"\"", &args, 2, vals, &bad), 0);
    assert_string_equal(vals[K_SERIAL], "");
    /* An empty value clears a field: it is "" and not NULL. */
    assert_int_equal(options(a, "/equip edit EQ-2026-000001 serial=", &args, 2, vals, &bad), 0);
    assert_non_null(vals[K_SERIAL]);
    assert_string_equal(vals[K_SERIAL], "");
    assert_words(&args, 2, WORDS("edit", "EQ-2026-000001"));
}

static void test_options_case_and_from(void **state)
{
    struct arena *a = *state;
    const char *vals[N_KEYS], *bad = NULL;
    struct args args;

    /* Phone keyboards capitalise: Serial= is serial=. */
    assert_int_equal(options(a, "/equip add Siemens G120C Serial=abc", &args, 1, vals, &bad), 0);
    assert_string_equal(vals[K_SERIAL], "abc");
    assert_words(&args, 3, WORDS("add", "Siemens", "G120C"));

    /* Words before from are never options. */
    assert_int_equal(options(a, "/x serial=a b serial=c", &args, 1, vals, &bad), 0);
    assert_string_equal(vals[K_SERIAL], "c");
    assert_words(&args, 2, WORDS("serial=a", "b"));
}

static void test_options_duplicate(void **state)
{
    struct arena *a = *state;
    const char *vals[N_KEYS], *bad = NULL;
    struct args args;

    assert_int_equal(options(a, "/equip add serial=a x serial=b", &args, 1, vals, &bad), -EINVAL);
    assert_non_null(bad);
    assert_string_equal(bad, "serial=b");

    bad = NULL;
    assert_int_equal(options(a, "/equip add serial=a SERIAL=b", &args, 1, vals, &bad), -EINVAL);
    assert_string_equal(bad, "SERIAL=b");

    bad = NULL;
    assert_int_equal(options(a, "/equip add location=Line 2 location=Line 3", &args, 1, vals, &bad),
                     -EINVAL);
    assert_string_equal(bad, "location=Line");

    /* An empty first value still counts. */
    bad = NULL;
    assert_int_equal(options(a, "/equip add serial= serial=b", &args, 1, vals, &bad), -EINVAL);
    assert_string_equal(bad, "serial=b");
}

static void test_options_unknown_stay_words(void **state)
{
    struct arena *a = *state;
    const char *vals[N_KEYS], *bad = NULL;
    struct args args;

    assert_int_equal(options(a,
                             "/equip add Siemens other=thing seria=1 serialnumber=2 =3 "
                             "a=b=c \"serial=4\"",
                             &args, 1, vals, &bad),
                     0);
    for (int k = 0; k < N_KEYS; k++)
        assert_null(vals[k]);
    assert_words(&args, 8,
                 WORDS("add", "Siemens", "other=thing", "seria=1", "serialnumber=2", "=3", "a=b=c",
                       "serial=4"));

    /* An unknown key=value word is absorbed like any plain word. */
    assert_int_equal(options(a, "/equip add location=Line 2 other=x", &args, 1, vals, &bad), 0);
    assert_string_equal(vals[K_LOCATION], "Line 2 other=x");
    assert_words(&args, 1, WORDS("add"));

    /* A value may itself hold '='. */
    assert_int_equal(options(a, "/equip add serial=A=B", &args, 1, vals, &bad), 0);
    assert_string_equal(vals[K_SERIAL], "A=B");
}

static void test_options_no_absorbs_and_rest(void **state)
{
    static const char *const wo_keys[] = {"priority"};
    struct arena *a = *state;
    const char *vals[1], *bad = NULL;
    struct args args;

    /* As /wo new uses it: no absorbing keys, then the rest is the title. */
    assert_int_equal(
        args_parse(a, "/wo new EQ-2026-000001 Coolant leak at pump priority=high", &args), 0);
    assert_int_equal(args_options(a, &args, 2, wo_keys, NULL, 1, vals, &bad), 0);
    assert_string_equal(vals[0], "high");
    assert_string_equal(args_rest(a, &args, 2), "Coolant leak at pump");

    /* An option taken from the middle leaves one space in its place. */
    assert_int_equal(args_parse(a, "/wo new EQ-2026-000001 Coolant priority=high  leak", &args), 0);
    assert_int_equal(args_options(a, &args, 2, wo_keys, NULL, 1, vals, &bad), 0);
    assert_string_equal(vals[0], "high");
    assert_string_equal(args_rest(a, &args, 2), "Coolant leak");

    /* Only an option after the number: no title left. */
    assert_int_equal(args_parse(a, "/wo new EQ-2026-000001 priority=low", &args), 0);
    assert_int_equal(args_options(a, &args, 2, wo_keys, NULL, 1, vals, &bad), 0);
    assert_string_equal(args_rest(a, &args, 2), "");
    assert_int_equal(args.n, 2);

    /* A start past the last word takes nothing and adds no word (found by
     * fuzz_args: the count grew by one, a word without text). */
    assert_int_equal(args_parse(a, "x", &args), 0);
    assert_int_equal(args_options(a, &args, 3, wo_keys, NULL, 1, vals, &bad), 0);
    assert_int_equal(args.n, 1);
    assert_null(vals[0]);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, arena_setup, arena_teardown)
    const struct CMUnitTest tests[] = {
        T(test_parse_empty),
        T(test_parse_command),
        T(test_parse_spaces),
        T(test_parse_ascii_quotes),
        T(test_parse_unicode_quotes),
        T(test_parse_apostrophes),
        T(test_parse_unbalanced),
        T(test_parse_invalid_utf8),
        T(test_parse_long_line),
        T(test_rest),
        T(test_options_plain),
        T(test_options_absorbing),
        T(test_options_quoted_value),
        T(test_options_case_and_from),
        T(test_options_duplicate),
        T(test_options_unknown_stay_words),
        T(test_options_no_absorbs_and_rest),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
