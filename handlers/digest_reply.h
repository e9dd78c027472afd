/* The daily digest as a chat message (handlers/digest.c; the queries are
 * db/digest.h). */
#ifndef RIVET_DIGEST_REPLY_H
#define RIVET_DIGEST_REPLY_H

#include <stddef.h>

struct arena;
struct digest;
struct reply;

/* A duration the way the digest says it: "45 s", "12 min", "3 h 05 min",
 * "2 d 4 h". */
void digest_duration(double seconds, char *out, size_t n);

/* The digest d as one plain-text message (at most REPLY_MAX_BYTES): the
 * day, alarms by severity and the mean time to acknowledge, work orders
 * opened and completed, the overdue count and the oldest of them; a day
 * with none of that says so. Fills *out (arena), with no chat set: the
 * caller addresses it. Returns 0 or -ENOMEM. */
int digest_reply(struct arena *a, const struct digest *d, struct reply *out);

#endif
