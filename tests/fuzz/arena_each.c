/* bot/arena.h for the fuzz targets: the same interface and limits, but each
 * allocation is a malloc of its own instead of a slice of a shared chunk.
 * bot/arena.c packs allocations together, so a read one byte past an
 * arena string lands in its neighbour and AddressSanitizer cannot tell;
 * here it lands in a redzone and is reported with the line that did it.
 * Linked into every target before rivet_util (tests/fuzz/meson.build), so
 * the linker takes these definitions and never pulls bot/arena.o. */
#include "arena.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bot/arena.c's cap. */
#define ARENA_MAX (64u << 20)

struct block {
    struct block *next;
    max_align_t data[];
};

struct arena {
    struct block *head;
    size_t total;
};

int arena_new(struct arena **ret)
{
    struct arena *a = calloc(1, sizeof(*a));

    if (!a)
        return -ENOMEM;
    *ret = a;
    return 0;
}

void arena_reset(struct arena *a)
{
    struct block *b, *next;

    for (b = a->head; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
    a->total = 0;
}

void arena_free(struct arena *a)
{
    if (!a)
        return;
    arena_reset(a);
    free(a);
}

void *arena_alloc(struct arena *a, size_t size)
{
    struct block *b;

    if (size > ARENA_MAX || a->total + size > ARENA_MAX)
        return NULL;
    /* Exactly size bytes after the header: the redzone starts at data + size. */
    b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    memset(b->data, 0, size);
    b->next = a->head;
    a->head = b;
    /* As bot/arena.c counts: at least an aligned slot per allocation. */
    a->total += size ? size : sizeof(max_align_t);
    return b->data;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p;

    if (!s)
        return NULL;
    p = arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    p = arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
