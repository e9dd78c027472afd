/* Command lines as typed: args_parse (words, quotes of six kinds,
 * /cmd@bot), args_rest from the first and the last words (each call copies
 * the rest of the line: from every word it would be quadratic), and
 * args_options with the option tables the handlers use (/equip add and
 * edit, /wo new, /photo edit). The text ends at the first NUL, as a
 * message's does once it is a C string. */
#include <errno.h>
#include <stdbool.h>

#include "args.h"
#include "arena.h"
#include "fuzz.h"

/* What args_parse promises about its words. */
static void check_words(const char *src, const struct args *args)
{
    size_t len = strlen(src), prev_end = 0;

    FUZZ_CHECK(args->n >= 0);
    FUZZ_CHECK(args->src == src);
    if (args->cmd) {
        FUZZ_CHECK(args->cmd[0] == '/');
        FUZZ_CHECK(!strchr(args->cmd, '@'));
    }
    for (int i = 0; i < args->n; i++) {
        const struct token *t = &args->tok[i];

        FUZZ_CHECK(t->text);
        FUZZ_CHECK(t->start < t->end && t->end <= len);
        FUZZ_CHECK(t->start >= prev_end);
        prev_end = t->end;
        if (!t->quoted) {
            /* A plain word is the bytes as typed. */
            FUZZ_CHECK(strlen(t->text) == t->end - t->start);
            FUZZ_CHECK(memcmp(t->text, src + t->start, t->end - t->start) == 0);
        } else {
            /* A quoted word is inside its quotes. */
            FUZZ_CHECK(strlen(t->text) < t->end - t->start);
            FUZZ_CHECK(strstr(src + t->start, t->text));
        }
    }
}

static void options(struct arena *a, const char *src, int from, const char *const *keys,
                    const bool *absorbs, int nkeys)
{
    const char *vals[16], *bad = NULL;
    struct args args;
    int n, r;

    if (args_parse(a, src, &args) < 0)
        return;
    n = args.n;
    r = args_options(a, &args, from, keys, absorbs, nkeys, vals, &bad);
    if (r == -EINVAL) {
        FUZZ_CHECK(bad);
        fuzz_touch(bad);
        return;
    }
    if (r < 0)
        return;
    FUZZ_CHECK(args.n <= n);
    for (int k = 0; k < nkeys; k++)
        fuzz_touch(vals[k]);
    for (int i = 0; i < args.n; i++) {
        FUZZ_CHECK(args.tok[i].end <= strlen(src));
        fuzz_touch(args.tok[i].text);
    }
    for (int i = 0; i <= args.n; i++)
        if (i < 3 || i >= args.n - 2)
            fuzz_touch(args_rest(a, &args, i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena *a = NULL;
    struct args args;
    char *src = fuzz_strndup(data, size);

    if (!src || arena_new(&a) < 0)
        goto out;
    if (args_parse(a, src, &args) == 0) {
        check_words(src, &args);
        for (int i = 0; i <= args.n + 1; i++) {
            const char *rest;

            if (i >= 3 && i < args.n - 2)
                continue;
            rest = args_rest(a, &args, i);
            FUZZ_CHECK(rest);
            FUZZ_CHECK(i < args.n || rest[0] == '\0');
        }
    }
    options(a, src, 1, equip_option_keys, equip_option_absorbs, EQUIP_FIELDS_N);
    options(a, src, 2, equip_option_keys, equip_option_absorbs, EQUIP_KEYS_N);
    options(a, src, 2, wo_option_keys, NULL, 1);
    options(a, src, 2, photo_option_keys, photo_option_absorbs, PHOTO_KEYS_N);
    options(a, src, 0, photo_option_keys, NULL, PHOTO_KEYS_N);
out:
    arena_free(a);
    free(src);
    return 0;
}
