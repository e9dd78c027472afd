/* The daily digest thread (digest_thread.h). */
#include "digest_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alarm.h"
#include "arena.h"
#include "channels.h"
#include "config.h"
#include "db.h"
#include "digest.h"
#include "digest_reply.h"
#include "handlers.h"
#include "log.h"
#include "serve.h"

/* Factories that failed in one round are passed over until the next, so
 * one that cannot be summed up does not hold up the others. */
#define SKIP_MAX 64

struct digests {
    const struct config *cfg;
    volatile int stop;
    pthread_t thread;
    struct db *db;
    struct arena *a;
};

static int stopping(struct digests *dg)
{
    return __atomic_load_n(&dg->stop, __ATOMIC_ACQUIRE);
}

/* One factory's digest, in one transaction: the claim, the digest and a
 * message per recipient chat. *claimed gets the factory (0 when none was
 * due: -ENOENT). */
static int send_one(struct digests *dg, double now, const int64_t *skip, int n_skip,
                    int64_t *claimed)
{
    struct arena *a = dg->a;
    struct alarm_recipient *rc = NULL;
    struct digest_claim c = {0};
    struct digest d;
    struct reply rep;
    int r, n = 0, queued = 0;
    long t0 = now_ms();

    *claimed = 0;
    arena_reset(a);
    r = db_begin(dg->db);
    if (r == 0)
        r = db_digest_claim(dg->db, a, now, skip, n_skip, &c);
    if (r == 0) {
        *claimed = c.factory_id;
        r = db_digest_collect(dg->db, a, c.factory_id, NULL, now, &d);
    }
    if (r == 0)
        r = digest_reply(a, &d, &rep);
    if (r == 0)
        r = db_digest_recipients(dg->db, a, c.factory_id, &rc, &n);
    for (int i = 0; r == 0 && i < n; i++) {
        enum channel ch;
        if (channel_parse(rc[i].channel, &ch) < 0)
            continue;
        r = channel_queue(dg->db, a, ch, rc[i].chat_id, &rep, NULL);
        if (r == -ENOTSUP)
            r = 0;
        else if (r == 0)
            queued++;
    }
    if (r == 0)
        r = db_commit(dg->db);
    if (r < 0) {
        db_rollback(dg->db);
        return r;
    }
    log_info("digest.sent", "factory=%s date=%s recipients=%d messages=%d ms=%ld", c.slug, d.date,
             n, queued, now_ms() - t0);
    return 0;
}

/* Every factory due now, each once. */
static void round_of(struct digests *dg)
{
    int64_t skip[SKIP_MAX];
    int n_skip = 0;

    while (!stopping(dg)) {
        int64_t id;
        int r = send_one(dg, now_epoch(), skip, n_skip, &id);

        if (r == -ENOENT)
            return;
        if (r < 0) {
            char q[300];
            log_warn("digest.failed", "factory_id=%lld err=%s detail=%s", (long long)id,
                     strerror(-r), log_quote(q, sizeof(q), db_errmsg(dg->db)));
            /* a claim that failed: the connection, or PostgreSQL, is in
             * trouble; the next round tries again */
            if (id == 0 || n_skip == SKIP_MAX)
                return;
            skip[n_skip++] = id;
        }
    }
}

static void *digest_main(void *arg)
{
    struct digests *dg = arg;

    log_set_thread("digest");
    if (serve_db_connect(dg->cfg, "digest", &dg->stop, &dg->db) < 0)
        return NULL;
    log_info("digest.ready", "check_s=%d", dg->cfg->digest_check_s);
    while (!stopping(dg)) {
        round_of(dg);
        nap(&dg->stop, dg->cfg->digest_check_s * 1000L);
    }
    return NULL;
}

int digests_start(const struct config *cfg, struct digests **ret)
{
    struct digests *dg = calloc(1, sizeof(*dg));
    int r;

    if (!dg)
        return -ENOMEM;
    dg->cfg = cfg;
    r = arena_new(&dg->a);
    if (r == 0)
        r = -pthread_create(&dg->thread, NULL, digest_main, dg);
    if (r < 0) {
        arena_free(dg->a);
        free(dg);
        return r;
    }
    *ret = dg;
    return 0;
}

void digests_stop(struct digests *dg)
{
    if (!dg)
        return;
    __atomic_store_n(&dg->stop, 1, __ATOMIC_RELEASE);
    pthread_join(dg->thread, NULL);
    db_close(dg->db);
    arena_free(dg->a);
    free(dg);
}
