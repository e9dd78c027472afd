/* A growable byte buffer with a maximum size, always NUL-terminated.
 * An append that would pass the maximum fails with -E2BIG and leaves the
 * buffer as it was, so the caller decides whether to truncate or give up. */
#ifndef RIVET_BUF_H
#define RIVET_BUF_H

#include <stddef.h>

struct buf {
    char *p;    /* NULL until the first append; "" is returned by buf_str() */
    size_t len; /* bytes held, without the terminating NUL */
    size_t cap;
    size_t max; /* the most bytes it may hold */
};

void buf_init(struct buf *b, size_t max);
/* Frees what the buffer holds and makes it empty; accepts an empty buffer. */
void buf_free(struct buf *b);
/* 0, -E2BIG past the maximum, or -ENOMEM. */
int buf_add(struct buf *b, const void *data, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents; valid until the next append or buf_free(). */
const char *buf_str(const struct buf *b);
/* Hands the contents to the caller (free() them) and empties the buffer. */
char *buf_steal(struct buf *b);

#endif
