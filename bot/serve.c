/* Shared by the threads of `rivet serve` (serve.h). */
#include "serve.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "db.h"
#include "log.h"

long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

double now_epoch(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The stop flags are set by one thread and read by others: atomic loads
 * (acquire, pairing with the setter's release store). */
static int flag_is_set(volatile int *flag)
{
    return __atomic_load_n(flag, __ATOMIC_ACQUIRE);
}

void nap(volatile int *flag, long ms)
{
    long until = now_ms() + ms;

    while (!flag_is_set(flag) && now_ms() < until) {
        long left = until - now_ms();
        struct timespec ts = {0, (left > 50 ? 50 : left) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

long backoff_ms(int attempt, long base, long cap)
{
    static __thread unsigned seed;
    long d = base;

    if (!seed)
        seed = (unsigned)now_ms() ^ (unsigned)(uintptr_t)&seed;
    for (int i = 0; i < attempt && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    return d * 3 / 4 + (long)(rand_r(&seed) % (unsigned)(d / 2 + 1));
}

int serve_db_connect(const struct config *cfg, const char *who, volatile int *stop, struct db **ret)
{
    char *err = NULL, ev[32];

    snprintf(ev, sizeof(ev), "%s.db_connect", who);
    for (int attempt = 0; !flag_is_set(stop); attempt++) {
        int r = db_connect(cfg->database_url, cfg->statement_timeout_ms, ret, &err);
        if (r == 0)
            return 0;
        if (attempt == 0 || attempt % 10 == 0) {
            char q[300];
            log_warn(ev, "err=%s detail=%s attempt=%d", strerror(-r),
                     log_quote(q, sizeof(q), err ? err : ""), attempt + 1);
        }
        free(err);
        err = NULL;
        nap(stop, backoff_ms(attempt, 500, 10000));
    }
    return -ECANCELED;
}
