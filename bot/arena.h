/* A region allocator for the life of one request: a handler call, a query
 * result turned into structs. Everything allocated from an arena is freed
 * at once by arena_free(). Allocations never move. */
#ifndef RIVET_ARENA_H
#define RIVET_ARENA_H

#include <stddef.h>

struct arena;

/* Returns 0 and a new arena in *ret, or -ENOMEM. Free it with arena_free(). */
int arena_new(struct arena **ret);
/* Frees the arena and everything allocated from it; accepts NULL. */
void arena_free(struct arena *a);
/* Forgets everything allocated, keeping one chunk for the next use: a
 * loop that handles one item at a time resets instead of freeing. */
void arena_reset(struct arena *a);

/* Zeroed memory owned by the arena, or NULL when out of memory or when the
 * arena already holds its maximum (64 MiB). */
void *arena_alloc(struct arena *a, size_t size);
/* Copies of s (NULL gives NULL) and of its first n bytes, owned by the arena. */
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
/* A formatted string owned by the arena, or NULL. */
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
