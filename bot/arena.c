#include "arena.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK 8192
#define ARENA_MAX (64u << 20)

struct chunk {
    struct chunk *next;
    size_t used, size;
    max_align_t data[];
};

struct arena {
    struct chunk *head;
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

void arena_free(struct arena *a)
{
    struct chunk *c, *next;

    if (!a)
        return;
    for (c = a->head; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

void *arena_alloc(struct arena *a, size_t size)
{
    const size_t align = sizeof(max_align_t);
    struct chunk *c = a->head;
    size_t need, csize;
    void *p;

    if (size > ARENA_MAX)
        return NULL;
    need = (size + align - 1) & ~(align - 1);
    if (need == 0)
        need = align;
    if (!c || c->size - c->used < need) {
        csize = need > ARENA_CHUNK ? need : ARENA_CHUNK;
        if (a->total + csize > ARENA_MAX)
            return NULL;
        c = malloc(sizeof(*c) + csize);
        if (!c)
            return NULL;
        c->used = 0;
        c->size = csize;
        a->total += csize;
        /* A big allocation gets its own chunk behind the current one, so the
         * space left in the current chunk is not wasted. */
        if (a->head && need > ARENA_CHUNK) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    p = (char *)c->data + c->used;
    c->used += need;
    memset(p, 0, size);
    return p;
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

void arena_reset(struct arena *a)
{
    struct chunk *c, *next, *keep = NULL;

    for (c = a->head; c; c = next) {
        next = c->next;
        if (!keep && c->size == ARENA_CHUNK) {
            keep = c;
            continue;
        }
        free(c);
    }
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
    a->total = keep ? keep->size : 0;
}
