/* Plain words: intent_parse over the input as a message's text (not
 * NUL-terminated: handed over in a buffer of exactly its size), and what
 * intent.h promises of the result. */
#include <stdbool.h>

#include "arena.h"
#include "fuzz.h"
#include "intent.h"
#include "text.h"

static void valid_utf8(const char *s)
{
    if (s)
        FUZZ_CHECK(utf8_valid(s, strlen(s)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena *a = NULL;
    struct intent in;
    char *text = malloc(size ? size : 1);

    if (!text || arena_new(&a) < 0)
        goto out;
    if (size)
        memcpy(text, data, size);
    if (intent_parse(a, text, size, &in) == 0) {
        FUZZ_CHECK(in.kind >= INTENT_NONE && in.kind <= INTENT_DONE);
        FUZZ_CHECK(strcmp(intent_name(in.kind), "?") != 0);
        valid_utf8(in.machine);
        valid_utf8(in.location);
        valid_utf8(in.fault_code);
        valid_utf8(in.title);
        if (in.title)
            FUZZ_CHECK(strlen(in.title) <= 200);
        if (in.kind != INTENT_REPORT)
            FUZZ_CHECK(!in.priority);
        if (in.priority)
            FUZZ_CHECK(strcmp(in.priority, "critical") == 0 || strcmp(in.priority, "high") == 0 ||
                       strcmp(in.priority, "medium") == 0 || strcmp(in.priority, "low") == 0);
        for (const char *p = in.eq_number; p && *p; p++)
            FUZZ_CHECK(!(*p >= 'a' && *p <= 'z'));
        for (const char *p = in.wo_number; p && *p; p++)
            FUZZ_CHECK(!(*p >= 'a' && *p <= 'z'));
        if (size && data[0] == '/')
            FUZZ_CHECK(in.kind == INTENT_NONE);
    } else {
        FUZZ_CHECK(in.kind == INTENT_NONE);
    }
out:
    arena_free(a);
    free(text);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct arena *a = NULL;
    struct intent in;

    /* intent.c compiles its patterns on first use: once, here. */
    if (arena_new(&a) == 0) {
        intent_parse(a, "pump 3 is leaking", 17, &in);
        arena_free(a);
    }
    return 0;
}
