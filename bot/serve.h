/* What the threads of `rivet serve` share: clocks, naps that end when asked
 * to stop, backoff, and a database connection that waits for PostgreSQL. */
#ifndef RIVET_SERVE_H
#define RIVET_SERVE_H

struct config;
struct db;

/* Milliseconds on the monotonic clock. */
long now_ms(void);
/* Seconds since the epoch, with a fraction (the wall clock). */
double now_epoch(void);

/* Sleeps up to ms, returning early once *flag is set. */
void nap(volatile int *flag, long ms);

/* Exponential backoff with ±25 % jitter: base·2^attempt, at most cap. */
long backoff_ms(int attempt, long base, long cap);

/* Whether host:port accepts a TCP connection within timeout_ms: 0, -ENOENT
 * when the name does not resolve, or another -errno. For a bounded check
 * before a library call that would block in connect(2). */
int tcp_reachable(const char *host, int port, int timeout_ms);

/* Connects to DATABASE_URL, retrying with backoff (and a log line now and
 * then, its event prefixed with who) until it works or *stop is set.
 * Returns 0 and *ret, or -ECANCELED. */
int serve_db_connect(const struct config *cfg, const char *who, volatile int *stop,
                     struct db **ret);

#endif
