/* The daily digest thread of `rivet serve`: every DIGEST_CHECK_S seconds it
 * claims each factory whose digest time has come (in the factory's zone)
 * and queues yesterday's digest for its supervisors and admins, the claim
 * and the messages in one transaction. docs/operations.md, "Daily digest". */
#ifndef RIVET_DIGEST_THREAD_H
#define RIVET_DIGEST_THREAD_H

struct config;
struct digests;

/* Starts the thread (it connects to DATABASE_URL on its own, and again
 * after a lost connection). cfg must outlive it. Returns 0 and *ret, or
 * -errno. */
int digests_start(const struct config *cfg, struct digests **ret);

/* Stops the thread (at once: it is asked between two factories or in its
 * nap), joins it and frees; accepts NULL. */
void digests_stop(struct digests *dg);

#endif
