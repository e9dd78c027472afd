/* Shared by the threads of `rivet serve` (serve.h). */
#include "serve.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

/* Whether host:port accepts a TCP connection within timeout_ms: 0, -ENOENT
 * when the name does not resolve, or another -errno. */
int tcp_reachable(const char *host, int port, int timeout_ms)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
    char ps[8];
    int r = -EHOSTUNREACH;

    snprintf(ps, sizeof(ps), "%d", port);
    if (getaddrinfo(host, ps, &hints, &res) != 0)
        return -ENOENT;
    for (ai = res; ai && r < 0; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            r = 0;
        } else if (errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int err = 0;
            socklen_t l = sizeof(err);
            if (poll(&p, 1, timeout_ms) != 1)
                r = -ETIMEDOUT;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0)
                r = err ? -err : 0;
        } else {
            r = -errno;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return r;
}
