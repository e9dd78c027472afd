/* What every fuzz target of tests/fuzz shares: the libFuzzer entry points
 * (declared here so -Wmissing-prototypes is content) and a few helpers.
 * A target is pure: bytes in, the parser's work checked, everything it
 * allocated freed before it returns, so ASan's leak check sees a leak as
 * one. Under -Dfuzz=true libFuzzer calls the entry points; otherwise
 * replay.c does, over the target's corpus (tests/fuzz/README.md). */
#ifndef RIVET_FUZZ_H
#define RIVET_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property the parser promised does not hold: print it and abort, which
 * libFuzzer records as a crash (and the replay test as a failure). */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* data[0..size) as a NUL-terminated string (malloc'd, exactly size + 1
 * bytes, so ASan sees a read past its end), or NULL when out of memory.
 * NUL bytes inside stay: the string ends at the first one. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (!s)
        return NULL;
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Touches every byte of a string the parser handed out, so a string that
 * is not NUL-terminated or points into freed memory shows up here, where
 * the stack trace names the field. */
static inline size_t fuzz_touch(const char *s)
{
    return s ? strlen(s) : 0;
}

#endif
