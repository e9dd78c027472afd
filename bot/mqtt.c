/* The alert thread (mqtt.h). One thread owns everything here: the
 * libmosquitto client, a PostgreSQL connection, the compiled rules and the
 * device cache, so nothing needs a lock but the counters others read.
 *
 * A message is handled inside libmosquitto's callback, before the library
 * acknowledges it (PUBACK): when Rivet dies half-way the broker, which keeps
 * the session (clean start off), delivers the message again, and the
 * database's unique keys make sure a second delivery records nothing twice.
 * libmosquitto 2.0.11 (Debian 12) queues the PUBACK before it calls back;
 * it writes it at once unless told the client is run from a thread of the
 * application's (mosquitto_threaded_set), and then only in the next
 * mosquitto_loop(), after the callback returned. Without that, a kill during
 * the callback lost the message: the test of it found one in 200.
 * What a message costs on the hot path is a JSON parse and the rules, in
 * memory; the database is touched for new devices and alarms, and for
 * last_seen once a second for every device at once. */
#include "mqtt.h"

#include <errno.h>
#include <math.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "channels.h"
#include "config.h"
#include "db.h"
#include "alarm.h"
#include "handlers.h"
#include "log.h"
#include "queue.h"
#include "serve.h"

/* How long the broker keeps Rivet's session, and the messages for it,
 * while Rivet is away (an upgrade, a crash, a weekend). */
#define SESSION_EXPIRY_S (7 * 24 * 3600)
/* QoS 1 messages the broker may have in flight to Rivet at once. */
#define RECEIVE_MAXIMUM 1000
/* A chat gets this many alarm messages in a storm window one by one; what
 * comes after them inside the window goes out as one summary at its end. */
#define STORM_BURST 3
#define FLUSH_MS 1000     /* last_seen and parameters */
#define ESCALATE_MS 2000  /* unacknowledged critical alarms */
#define OFFLINE_MS 5000   /* silent devices */
#define RELOAD_MS 60000   /* rules and settings, besides the NOTIFY */
#define STATS_MS 60000    /* the counters, in the log */
#define DROP_LOG_MS 10000 /* at most one line per drop reason this often */
#define MAX_PARAMS 256    /* metric names kept per device */

/* ---- a small string-keyed hash map ---- */

struct slot {
    uint64_t hash;
    char *key; /* owned by the map */
    void *val;
};

struct map {
    struct slot *slots;
    size_t cap, n; /* cap: a power of two */
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct slot *map_find(const struct map *m, const char *key, uint64_t h)
{
    if (!m->cap)
        return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct slot *s = &m->slots[i];
        if (!s->key)
            return s;
        if (s->hash == h && strcmp(s->key, key) == 0)
            return s;
    }
}

static void *map_get(const struct map *m, const char *key)
{
    struct slot *s = map_find(m, key, fnv1a(key));

    return s && s->key ? s->val : NULL;
}

/* Adds or replaces; the old value is the caller's. Returns 0 or -ENOMEM. */
static int map_put(struct map *m, const char *key, void *val)
{
    uint64_t h = fnv1a(key);
    struct slot *s;

    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct slot *old = m->slots, *ns = calloc(cap, sizeof(*ns));
        size_t oldcap = m->cap;

        if (!ns)
            return -ENOMEM;
        m->slots = ns;
        m->cap = cap;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].key)
                *map_find(m, old[i].key, old[i].hash) = old[i];
        free(old);
    }
    s = map_find(m, key, h);
    if (!s->key) {
        if (!(s->key = strdup(key)))
            return -ENOMEM;
        s->hash = h;
        m->n++;
    }
    s->val = val;
    return 0;
}

static void free_ptr(void *p)
{
    free(p);
}

/* Frees the keys, and each value with free_val (may be NULL). */
static void map_clear(struct map *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) {
            free(m->slots[i].key);
            if (free_val)
                free_val(m->slots[i].val);
        }
    free(m->slots);
    *m = (struct map){0};
}

/* ---- state ---- */

struct factory_rules {
    struct alert_factory f; /* strings owned by the load's arena */
    struct rule **rules;
    int64_t *rule_ids;
    int n_rules;
};

struct device_state {
    int64_t id, factory_id;
    /* The rules that watch this device (indexes into its factory's), as of
     * rules_gen: worked out once per load, not per message. */
    int *rules, n_rules;
    unsigned rules_gen;
    double last_seen; /* newest timestamp seen */
    char **params;    /* names known, sorted; the first n_flushed are in the database */
    int n_params, n_new;
    char **fresh; /* names not yet flushed */
    bool dirty;
};

/* A rule's rest on one device. */
struct cooldown {
    double last;  /* observed time of the last alarm this process recorded; 0: none */
    double quiet; /* wall clock: another process's alarm, do not ask before */
    double keep;  /* wall clock after which the entry says nothing any more */
};

/* A device this process need not ask the database about again soon. */
struct unknown_device {
    double until; /* wall clock */
    enum drop_reason why;
};

struct chat_burst {
    double sent[STORM_BURST]; /* when the last alarm messages went, a ring */
    int next;
};

struct alerts {
    const struct config *cfg;
    pthread_t thread;
    volatile int stop;
    struct db *db;
    struct mosquitto *mosq;
    struct arena *msg_arena;  /* one message at a time */
    struct arena *load_arena; /* factories of the last load */

    struct factory_rules *factories;
    int n_factories;
    unsigned rules_gen;   /* bumped at every load */
    struct map by_slug;   /* slug -> struct factory_rules * */
    struct map devices;   /* "factory_id/key" -> struct device_state * */
    struct map cooldowns; /* "rule_id/device_id" -> struct cooldown * */
    struct map bursts;    /* "channel/chat" -> struct chat_burst * */
    struct map unknown;   /* "factory_id/key" -> struct unknown_device * */

    /* A message handled only part way (the database was away when Rivet
     * was asked to stop): its PUBACK must not go out. */
    bool unacked;
    int db_failures;    /* periodic work that failed in a row */
    long db_wait_until; /* monotonic ms: periodic work waits for the database */

    bool connected, v311, refused;
    double connected_since; /* epoch; 0 while not connected */
    int connect_failures;
    long next_connect, next_flush, next_escalate, next_offline, next_reload, next_stats, next_tick;
    long unknown_slug_reload; /* monotonic ms of the last load an unknown slug asked for */
    long drop_logged[DROP_REASON_COUNT];
    unsigned long drop_quiet[DROP_REASON_COUNT];

    pthread_mutex_t lock; /* guards counters */
    struct alert_counters counters;

    /* Between threads, __atomic only: set by alerts_reload(), taken by
     * tick(); the loop's last turn (now_ms()), for alerts_alive(). */
    int reload_asked;
    long loop_at;
};

#define COUNT(al, field, n)                                                                        \
    do {                                                                                           \
        pthread_mutex_lock(&(al)->lock);                                                           \
        (al)->counters.field += (n);                                                               \
        pthread_mutex_unlock(&(al)->lock);                                                         \
    } while (0)

void alerts_counters(struct alerts *al, struct alert_counters *out)
{
    pthread_mutex_lock(&al->lock);
    *out = al->counters;
    pthread_mutex_unlock(&al->lock);
}

static void free_device(void *p)
{
    struct device_state *d = p;

    for (int i = 0; i < d->n_params; i++)
        free(d->params[i]);
    free(d->params);
    free(d->fresh);
    free(d->rules);
    free(d);
}

static void free_factories(struct alerts *al)
{
    for (int i = 0; i < al->n_factories; i++) {
        for (int j = 0; j < al->factories[i].n_rules; j++)
            rule_free(al->factories[i].rules[j]);
        free(al->factories[i].rules);
        free(al->factories[i].rule_ids);
    }
    free(al->factories);
    al->factories = NULL;
    al->n_factories = 0;
    map_clear(&al->by_slug, NULL);
}

/* A dropped message: counted always, logged once per reason every
 * DROP_LOG_MS with how many went unlogged since. */
static void drop(struct alerts *al, enum drop_reason why, const char *topic)
{
    long now = now_ms();

    COUNT(al, dropped[why], 1);
    if (now - al->drop_logged[why] < DROP_LOG_MS && al->drop_logged[why]) {
        al->drop_quiet[why]++;
        return;
    }
    char q[160];
    log_warn("mqtt.dropped", "reason=%s topic=%s unlogged=%lu", drop_reason_name(why),
             log_quote(q, sizeof(q), topic ? topic : ""), al->drop_quiet[why]);
    al->drop_logged[why] = now;
    al->drop_quiet[why] = 0;
}

/* ---- loading rules and settings ---- */

/* Reads every factory's settings and active rules, compiles them, and
 * swaps them in. A rule that no longer compiles (saved by an older rivet)
 * is skipped with a log line; the others work. */
static int load_rules(struct alerts *al)
{
    struct arena *a = NULL;
    struct alert_factory *fs;
    struct alert_rule *rs;
    struct factory_rules *nf;
    int nfs, nrs, r;

    if ((r = arena_new(&a)) < 0)
        return r;
    if ((r = db_alert_factories(al->db, a, &fs, &nfs)) < 0 ||
        (r = db_rule_list(al->db, a, 0, true, &rs, &nrs)) < 0) {
        arena_free(a);
        return r;
    }
    nf = calloc(nfs ? (size_t)nfs : 1, sizeof(*nf));
    if (!nf) {
        arena_free(a);
        return -ENOMEM;
    }
    for (int i = 0; i < nfs; i++)
        nf[i].f = fs[i];
    for (int j = 0; j < nrs; j++) {
        struct factory_rules *fr = NULL;
        struct rule *rule;
        char err[256];

        for (int i = 0; i < nfs && !fr; i++)
            if (nf[i].f.id == rs[j].factory_id)
                fr = &nf[i];
        if (!fr)
            continue;
        if (rule_compile(rs[j].definition, strlen(rs[j].definition), &rule, err, sizeof(err)) < 0) {
            char q[300];
            log_error("mqtt.rule_invalid", "rule=%lld err=%s", (long long)rs[j].id,
                      log_quote(q, sizeof(q), err));
            continue;
        }
        struct rule **nr = realloc(fr->rules, sizeof(*nr) * (size_t)(fr->n_rules + 1));
        int64_t *ni = realloc(fr->rule_ids, sizeof(*ni) * (size_t)(fr->n_rules + 1));
        if (nr)
            fr->rules = nr;
        if (ni)
            fr->rule_ids = ni;
        if (!nr || !ni) {
            rule_free(rule);
            continue;
        }
        fr->rules[fr->n_rules] = rule;
        fr->rule_ids[fr->n_rules++] = rs[j].id;
    }
    free_factories(al);
    arena_free(al->load_arena);
    al->load_arena = a;
    al->factories = nf;
    al->n_factories = nfs;
    al->rules_gen++;
    for (int i = 0; i < nfs; i++)
        if (map_put(&al->by_slug, nf[i].f.slug, &nf[i]) < 0)
            return -ENOMEM;
    /* A factory's settings may have changed (auto_register, max_devices):
     * keys refused before are asked about again. */
    map_clear(&al->unknown, free_ptr);
    log_info("mqtt.rules_loaded", "factories=%d rules=%d", nfs, nrs);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct device_state *device_add(struct alerts *al, int64_t factory_id, const char *key,
                                       int64_t id, double last_seen)
{
    struct device_state *d = calloc(1, sizeof(*d));
    char k[96];

    if (!d)
        return NULL;
    d->id = id;
    d->factory_id = factory_id;
    d->last_seen = last_seen;
    snprintf(k, sizeof(k), "%lld/%s", (long long)factory_id, key);
    if (map_put(&al->devices, k, d) < 0) {
        free(d);
        return NULL;
    }
    return d;
}

static int load_devices(struct alerts *al)
{
    struct arena *a = NULL;
    struct device *ds;
    int n, r;

    if ((r = arena_new(&a)) < 0)
        return r;
    r = db_devices_load(al->db, a, &ds, &n);
    for (int i = 0; r == 0 && i < n; i++) {
        char k[96];
        snprintf(k, sizeof(k), "%lld/%s", (long long)ds[i].factory_id, ds[i].key);
        if (map_get(&al->devices, k))
            continue;
        struct device_state *d =
            device_add(al, ds[i].factory_id, ds[i].key, ds[i].id, ds[i].last_seen_epoch);
        if (!d) {
            r = -ENOMEM;
            break;
        }
        /* Known names, so that only new ones are written. */
        for (const char *p = ds[i].parameters; p && *p;) {
            size_t l = strcspn(p, ",");
            char *name = strndup(p, l);
            char **np = realloc(d->params, sizeof(*np) * (size_t)(d->n_params + 1));
            if (!name || !np) {
                free(name);
                if (np)
                    d->params = np;
                break;
            }
            d->params = np;
            d->params[d->n_params++] = name;
            p += l;
            while (*p == ',' || *p == ' ')
                p++;
        }
        if (d->n_params > 1)
            qsort(d->params, (size_t)d->n_params, sizeof(char *), cmp_str);
    }
    arena_free(a);
    return r;
}

/* ---- the database, patiently ---- */

/* Whether a message's database work is worth another attempt: always
 * while the database is away (the broker holds the message meanwhile), for a
 * while after another error, which may be a passing one (a deadlock, a
 * failover) or may come back every time; then the message is dropped
 * rather than block every device behind it. */
static bool retry_db(int r, int attempt)
{
    if (r == -ECONNRESET || r == -ETIMEDOUT)
        return true;
    return r == -EIO && attempt < 5;
}

/* ---- delivering alarms ---- */

static struct chat_burst *burst_of(struct alerts *al, const char *channel, const char *chat)
{
    char k[160];
    struct chat_burst *b;

    snprintf(k, sizeof(k), "%s/%s", channel, chat);
    b = map_get(&al->bursts, k);
    if (!b && (b = calloc(1, sizeof(*b))) && map_put(&al->bursts, k, b) < 0) {
        free(b);
        b = NULL;
    }
    return b;
}

/* Whether a chat may get one more alarm message now, or is in a storm. */
static bool burst_room(const struct chat_burst *b, double now, int window_s)
{
    return !b || now - b->sent[b->next] >= window_s;
}

/* The chats that got an alarm message in a transaction, counted in their
 * rings once it committed. */
struct sent_list {
    struct chat_burst **b;
    int n, held;
};

static void count_sent(struct alerts *al, const struct sent_list *s, double now)
{
    for (int i = 0; i < s->n; i++) {
        s->b[i]->sent[s->b[i]->next] = now;
        s->b[i]->next = (s->b[i]->next + 1) % STORM_BURST;
    }
    COUNT(al, deliveries, (unsigned long)s->n);
    COUNT(al, held, (unsigned long)s->held);
}

/* Queues an alarm for everyone who should get it, in the caller's
 * transaction: one message each, or held for the storm summary when the
 * chat had STORM_BURST alarm messages inside the window already. sent
 * gathers the chats that got a message (arena), to count after the
 * commit. */
static int fan_out(struct alerts *al, struct arena *a, int64_t factory_id, int64_t alarm_id,
                   double now, struct sent_list *sent)
{
    struct alarm_recipient *rc;
    struct reply rep;
    bool have_reply = false;
    int n, r;

    r = db_alarm_recipients(al->db, a, factory_id, alarm_id, &rc, &n);
    if (r == 0 && n > 0) {
        struct chat_burst **more = arena_alloc(a, sizeof(*more) * (size_t)(sent->n + n));
        if (!more)
            return -ENOMEM;
        if (sent->n)
            memcpy(more, sent->b, sizeof(*more) * (size_t)sent->n);
        sent->b = more;
    }
    for (int i = 0; r == 0 && i < n; i++) {
        struct chat_burst *b = burst_of(al, rc[i].channel, rc[i].chat_id);
        enum channel ch;
        int64_t outbox = 0;

        if (channel_parse(rc[i].channel, &ch) < 0)
            continue;
        if (!burst_room(b, now, al->cfg->alarm_storm_window_s)) {
            r = db_alarm_delivery_add(al->db, factory_id, alarm_id, rc[i].user_id, "alarm",
                                      rc[i].channel, rc[i].chat_id, "held", 0);
            sent->held++;
        } else {
            if (!have_reply) {
                r = alarm_reply(al->db, a, factory_id, alarm_id, false, &rep);
                if (r < 0)
                    break;
                have_reply = true;
            }
            r = channel_queue(al->db, a, ch, rc[i].chat_id, &rep, &outbox);
            if (r == -ENOTSUP) {
                r = 0;
                continue;
            }
            if (r == 0)
                r = db_alarm_delivery_add(al->db, factory_id, alarm_id, rc[i].user_id, "alarm",
                                          rc[i].channel, rc[i].chat_id, "queued", outbox);
            if (r == 0 && b)
                sent->b[sent->n++] = b;
        }
        if (r == -EEXIST) /* delivered before (a message seen twice) */
            r = 0;
    }
    return r;
}

/* Records an alarm and queues it, in one transaction, retrying while the
 * database is away. Returns 0, -EEXIST (a repeat: nothing new), or -errno
 * when it gave up. */
static int raise_alarm(struct alerts *al, struct arena *a, const struct alarm_new *an)
{
    int64_t id = 0;
    int r;

    for (int attempt = 0;; attempt++) {
        struct sent_list sent = {0};
        double now = now_epoch();

        r = db_begin(al->db);
        if (r == 0)
            r = db_alarm_raise(al->db, an, &id);
        if (r == 0)
            r = fan_out(al, a, an->factory_id, id, now, &sent);
        if (r == 0)
            r = db_commit(al->db);
        if (r == 0) {
            count_sent(al, &sent, now);
            log_info("mqtt.alarm",
                     "alarm=%lld factory=%lld device=%lld severity=%s messages=%d "
                     "held=%d",
                     (long long)id, (long long)an->factory_id, (long long)an->device_id,
                     an->severity, sent.n, sent.held);
            return 0;
        }
        db_rollback(al->db);
        if (r == -EEXIST)
            return r;
        COUNT(al, db_errors, 1);
        if (!retry_db(r, attempt) || __atomic_load_n(&al->stop, __ATOMIC_ACQUIRE)) {
            char q[300];
            log_error("mqtt.alarm_failed", "err=%s detail=%s attempts=%d", strerror(-r),
                      log_quote(q, sizeof(q), db_errmsg(al->db)), attempt + 1);
            if (__atomic_load_n(&al->stop, __ATOMIC_ACQUIRE) && retry_db(r, attempt))
                al->unacked = true; /* the broker gives it to the next Rivet */
            return r;
        }
        if (attempt == 0 || attempt % 10 == 0) {
            char q[300];
            log_warn("mqtt.db_retry", "err=%s detail=%s attempt=%d", strerror(-r),
                     log_quote(q, sizeof(q), db_errmsg(al->db)), attempt + 1);
        }
        /* The broker waits: this message is not acknowledged yet. */
        nap(&al->stop, backoff_ms(attempt, 200, 5000));
    }
}

/* ---- one message ---- */

static struct device_state *device_for(struct alerts *al, struct arena *a,
                                       const struct factory_rules *fr, const char *key,
                                       const char *topic)
{
    struct device_state *d;
    struct device dev;
    char k[96];
    int r;

    struct unknown_device *u;
    double now = now_epoch();

    snprintf(k, sizeof(k), "%lld/%s", (long long)fr->f.id, key);
    if ((d = map_get(&al->devices, k)))
        return d;
    /* A key refused a moment ago is refused again without asking: a
     * gateway making up keys does not get the database's attention for
     * each message. */
    if ((u = map_get(&al->unknown, k)) && u->until > now) {
        drop(al, u->why, topic);
        return NULL;
    }
    /* Registered by another process, or new. */
    for (int attempt = 0;; attempt++) {
        r = fr->f.auto_register
                ? db_device_register(al->db, a, fr->f.id, key, fr->f.max_devices, &dev)
                : db_device_get(al->db, a, fr->f.id, key, &dev);
        if (r == 0 || !retry_db(r, attempt) || __atomic_load_n(&al->stop, __ATOMIC_ACQUIRE))
            break;
        COUNT(al, db_errors, 1);
        nap(&al->stop, backoff_ms(attempt, 200, 5000));
    }
    if (r == -ENOENT || r == -ENOSPC) {
        enum drop_reason why = r == -ENOENT ? DROP_UNKNOWN_DEVICE : DROP_DEVICE_LIMIT;
        if (al->unknown.n >= 10000)
            map_clear(&al->unknown, free_ptr);
        if (!u && (u = calloc(1, sizeof(*u))) && map_put(&al->unknown, k, u) < 0) {
            free(u);
            u = NULL;
        }
        if (u) {
            u->until = now + 60;
            u->why = why;
        }
        drop(al, why, topic);
        return NULL;
    }
    if (r < 0) {
        if (__atomic_load_n(&al->stop, __ATOMIC_ACQUIRE) && retry_db(r, 0))
            al->unacked = true;
        else
            drop(al, DROP_DATABASE, topic);
        return NULL;
    }
    if (!(d = device_add(al, fr->f.id, key, dev.id, dev.last_seen_epoch)))
        return NULL;
    log_info("mqtt.device_new", "factory=%s device=%s id=%lld", fr->f.slug, key, (long long)dev.id);
    return d;
}

/* Notes that the device spoke, and any metric names it has not shown
 * before. Liveness is when the message arrived, not the device's own
 * clock: a device whose clock lags, or a gateway's backlog, is not
 * "offline". */
static void device_seen(struct device_state *d, const struct telemetry *t, double now)
{
    if (now > d->last_seen) {
        d->last_seen = now;
        d->dirty = true;
    }
    for (int i = 0; i < t->n_metrics && d->n_params < MAX_PARAMS; i++) {
        const char *name = t->metrics[i].name;
        char *copy, **np, **nf;

        if (d->n_params && bsearch(&name, d->params, (size_t)d->n_params, sizeof(char *), cmp_str))
            continue;
        copy = strdup(name);
        np = realloc(d->params, sizeof(*np) * (size_t)(d->n_params + 1));
        if (np)
            d->params = np;
        nf = np ? realloc(d->fresh, sizeof(*nf) * (size_t)(d->n_new + 1)) : NULL;
        if (nf)
            d->fresh = nf;
        if (!copy || !np || !nf) {
            free(copy);
            return;
        }
        d->params[d->n_params++] = copy;
        qsort(d->params, (size_t)d->n_params, sizeof(char *), cmp_str);
        d->fresh[d->n_new++] = copy;
        d->dirty = true;
    }
}

/* The rules of fr that watch device d, worked out again after a load. */
static int device_rules(struct alerts *al, const struct factory_rules *fr, struct device_state *d,
                        const char *key)
{
    int *v = NULL, n = 0;

    if (d->rules_gen == al->rules_gen && (d->rules || fr->n_rules == 0))
        return 0;
    if (fr->n_rules && !(v = malloc(sizeof(*v) * (size_t)fr->n_rules)))
        return -ENOMEM;
    for (int i = 0; i < fr->n_rules; i++)
        if (rule_applies(fr->rules[i], key))
            v[n++] = i;
    free(d->rules);
    d->rules = v;
    d->n_rules = n;
    d->rules_gen = al->rules_gen;
    return 0;
}

static void evaluate(struct alerts *al, struct arena *a, const struct factory_rules *fr,
                     struct device_state *d, const char *key, const struct telemetry *t)
{
    char why[ALARM_MESSAGE_MAX + 1];

    COUNT(al, evaluated, 1);
    if (device_rules(al, fr, d, key) < 0)
        return;
    for (int j = 0; j < d->n_rules; j++) {
        int i = d->rules[j];
        const struct rule *rule = fr->rules[i];
        struct cooldown *cd;
        char k[48];

        if (!rule_scheduled(rule, t->ts, fr->f.utc_offset_s))
            continue;
        if (!rule_eval(rule, t, NULL, 0)) /* the words only for a rule that fires */
            continue;
        snprintf(k, sizeof(k), "%lld/%lld", (long long)fr->rule_ids[i], (long long)d->id);
        cd = map_get(&al->cooldowns, k);
        if (cd && ((cd->last && fabs(t->ts - cd->last) < rule_cooldown_s(rule)) ||
                   now_epoch() < cd->quiet)) {
            COUNT(al, repeats, 1);
            continue;
        }
        rule_eval(rule, t, why, sizeof(why));
        struct alarm_new an = {
            .factory_id = fr->f.id,
            .device_id = d->id,
            .rule_id = fr->rule_ids[i],
            .source = ALARM_RULE,
            .severity = severity_name(rule_severity(rule)),
            .message = why,
            .snapshot = telemetry_snapshot(a, t),
            .observed_at = t->ts,
            .cooldown_s = rule_cooldown_s(rule),
        };
        int r = raise_alarm(al, a, &an);
        if (r == 0)
            COUNT(al, alarms[rule_severity(rule)], 1);
        else if (r == -EEXIST)
            COUNT(al, repeats, 1);
        /* The rule rests for this device: around our own alarm for its
         * cooldown; after another's (another process, a redelivery), whose
         * time the database did not say, the database is asked again in
         * 10 s at the latest. */
        if (!cd && (cd = calloc(1, sizeof(*cd))) && map_put(&al->cooldowns, k, cd) < 0) {
            free(cd);
            cd = NULL;
        }
        if (cd && r == 0)
            cd->last = t->ts;
        else if (cd && r == -EEXIST)
            cd->quiet = now_epoch() + (rule_cooldown_s(rule) < 10 ? rule_cooldown_s(rule) : 10);
        if (cd)
            cd->keep = now_epoch() + 2.0 * rule_cooldown_s(rule) + 10;
    }
}

static void device_alarm(struct alerts *al, struct arena *a, const struct factory_rules *fr,
                         const struct device_state *d, const struct telemetry *t)
{
    /* The code is recorded on its own, and shown beside the message. */
    const char *msg = t->message ? t->message : t->code;
    struct alarm_new an = {
        .factory_id = fr->f.id,
        .device_id = d->id,
        .source = ALARM_DEVICE,
        .code = t->code,
        .severity = severity_name(t->severity),
        .message = msg,
        .snapshot = telemetry_snapshot(a, t),
        .observed_at = t->ts,
    };
    int r = raise_alarm(al, a, &an);

    if (r == 0)
        COUNT(al, alarms[t->severity], 1);
    else if (r == -EEXIST)
        COUNT(al, repeats, 1);
}

static void handle(struct alerts *al, const struct mosquitto_message *m)
{
    char slug[SLUG_MAX + 1], key[DEVICE_KEY_MAX + 1];
    const struct factory_rules *fr;
    struct device_state *d;
    enum topic_kind kind;
    enum drop_reason why = DROP_NONE;
    struct telemetry t;
    struct arena *a = al->msg_arena;

    COUNT(al, received, 1);
    arena_reset(a);
    if (topic_parse(m->topic, slug, key, &kind) < 0) {
        drop(al, DROP_TOPIC, m->topic);
        return;
    }
    if (!(fr = map_get(&al->by_slug, slug)) && now_ms() >= al->db_wait_until) {
        /* A factory created since the last load: load again when its
         * NOTIFY is waiting (a factory created just now), or else at most
         * every 5 s however many made-up slugs come. */
        bool notified = db_wait_notify(al->db, 0) > 0;

        if (notified || now_ms() - al->unknown_slug_reload > 5000) {
            if (!notified)
                al->unknown_slug_reload = now_ms();
            if (load_rules(al) == 0)
                fr = map_get(&al->by_slug, slug);
        }
    }
    if (!fr) {
        drop(al, DROP_UNKNOWN_FACTORY, m->topic);
        return;
    }
    if (m->payloadlen < 0 || (size_t)m->payloadlen > TELEMETRY_MAX_BYTES) {
        drop(al, DROP_TOO_BIG, m->topic);
        return;
    }
    if (telemetry_parse(a, kind, m->payload, (size_t)m->payloadlen, now_epoch(), &t, &why) < 0) {
        drop(al, why, m->topic);
        return;
    }
    if (!(d = device_for(al, a, fr, key, m->topic)))
        return;
    device_seen(d, &t, now_epoch());
    if (kind == TOPIC_ALARM)
        device_alarm(al, a, fr, d, &t);
    else
        evaluate(al, a, fr, d, key, &t);
}

/* ---- periodic work ---- */

/* The other copies of alarms that changed without anyone pressing a button
 * (a device back online): each recipient's message is edited. */
static int edit_copies(struct alerts *al, struct arena *a, int64_t factory_id, int64_t alarm_id)
{
    struct alarm_delivery *dl;
    int n, r = db_alarm_deliveries(al->db, a, factory_id, alarm_id, &dl, &n);

    for (int i = 0; r == 0 && i < n; i++) {
        struct reply rep;
        enum channel ch;

        if (strcmp(dl[i].state, "queued") != 0 || dl[i].outbox_id <= 0 ||
            channel_parse(dl[i].channel, &ch) < 0)
            continue;
        r = alarm_reply(al->db, a, factory_id, alarm_id, strcmp(dl[i].kind, "escalation") == 0,
                        &rep);
        if (r < 0)
            break;
        rep.edit_outbox = dl[i].outbox_id;
        r = channel_queue(al->db, a, ch, dl[i].chat_id, &rep, NULL);
        if (r == -ENOTSUP)
            r = 0;
    }
    return r;
}

static int flush_devices(struct alerts *al)
{
    struct arena *a = al->msg_arena;
    struct device_seen *s;
    int64_t *back, *facs;
    int n = 0, n_back = 0, r;

    arena_reset(a);
    s = arena_alloc(a, sizeof(*s) * (al->devices.n + 1));
    if (!s)
        return -ENOMEM;
    for (size_t i = 0; i < al->devices.cap; i++) {
        struct device_state *d = al->devices.slots[i].key ? al->devices.slots[i].val : NULL;
        if (!d || !d->dirty)
            continue;
        s[n++] = (struct device_seen){.device_id = d->id,
                                      .last_seen = d->last_seen,
                                      .params = (const char *const *)d->fresh,
                                      .n_params = d->n_new};
    }
    if (n == 0)
        return 0;
    r = db_begin(al->db);
    if (r == 0)
        r = db_devices_seen(al->db, a, s, n, &back, &facs, &n_back);
    for (int i = 0; r == 0 && i < n_back; i++)
        r = edit_copies(al, a, facs[i], back[i]);
    if (r == 0)
        r = db_commit(al->db);
    if (r < 0) {
        char q[300];
        db_rollback(al->db);
        COUNT(al, db_errors, 1);
        log_warn("mqtt.flush_failed", "devices=%d err=%s detail=%s", n, strerror(-r),
                 log_quote(q, sizeof(q), db_errmsg(al->db)));
        return r; /* still dirty: the next flush tries again */
    }
    for (size_t i = 0; i < al->devices.cap; i++) {
        struct device_state *d = al->devices.slots[i].key ? al->devices.slots[i].val : NULL;
        if (d && d->dirty) {
            d->dirty = false;
            d->n_new = 0;
        }
    }
    if (n_back) {
        COUNT(al, back_online, (unsigned long)n_back);
        log_info("mqtt.back_online", "alarms=%d", n_back);
    }
    return 0;
}

/* Alarms that went quiet devices raised: one transaction per alarm. */
static int check_offline(struct alerts *al)
{
    struct arena *a = al->msg_arena;
    struct sent_list sent = {0};
    double now = now_epoch();
    int64_t *ids, *facs;
    int n = 0, r;

    if (!al->connected_since)
        return 0;
    /* What the cache saw first: a device whose news is still in memory is
     * not offline. */
    r = flush_devices(al);
    if (r < 0)
        return r;
    arena_reset(a);
    r = db_begin(al->db);
    if (r == 0)
        r = db_devices_offline(al->db, a, now - al->connected_since, &ids, &facs, &n);
    /* A switch that fails takes many devices with it: their alarms go
     * through the storm rules like any others. */
    for (int i = 0; r == 0 && i < n; i++)
        r = fan_out(al, a, facs[i], ids[i], now, &sent);
    if (r == 0)
        r = db_commit(al->db);
    if (r < 0) {
        char q[300];
        db_rollback(al->db);
        COUNT(al, db_errors, 1);
        log_warn("mqtt.offline_failed", "err=%s detail=%s", strerror(-r),
                 log_quote(q, sizeof(q), db_errmsg(al->db)));
        return r;
    }
    count_sent(al, &sent, now);
    if (n) {
        COUNT(al, alarms[SEV_HIGH], (unsigned long)n);
        log_info("mqtt.offline", "alarms=%d messages=%d held=%d", n, sent.n, sent.held);
    }
    return 0;
}

static int escalate(struct alerts *al)
{
    struct arena *a = al->msg_arena;
    struct alarm *due;
    int n, r;

    arena_reset(a);
    r = db_begin(al->db);
    if (r == 0)
        r = db_alarm_escalations_due(al->db, a, 20, &due, &n);
    for (int i = 0; r == 0 && i < n; i++) {
        struct alarm_recipient *sv;
        struct reply rep;
        int ns;

        r = db_alarm_supervisors(al->db, a, due[i].factory_id, &sv, &ns);
        if (r == 0)
            r = alarm_reply(al->db, a, due[i].factory_id, due[i].id, true, &rep);
        for (int j = 0; r == 0 && j < ns; j++) {
            enum channel ch;
            int64_t outbox = 0;
            if (channel_parse(sv[j].channel, &ch) < 0)
                continue;
            r = channel_queue(al->db, a, ch, sv[j].chat_id, &rep, &outbox);
            if (r == -ENOTSUP) {
                r = 0;
                continue;
            }
            if (r == 0)
                r = db_alarm_delivery_add(al->db, due[i].factory_id, due[i].id, sv[j].user_id,
                                          "escalation", sv[j].channel, sv[j].chat_id, "queued",
                                          outbox);
            if (r == -EEXIST)
                r = 0;
        }
        if (r == 0)
            r = db_alarm_escalated(al->db, due[i].factory_id, due[i].id);
        if (r == 0)
            log_info("mqtt.escalated", "alarm=%lld supervisors=%d", (long long)due[i].id, ns);
    }
    if (r == 0)
        r = db_commit(al->db);
    if (r < 0) {
        char q[300];
        db_rollback(al->db);
        COUNT(al, db_errors, 1);
        log_warn("mqtt.escalate_failed", "err=%s detail=%s", strerror(-r),
                 log_quote(q, sizeof(q), db_errmsg(al->db)));
    } else if (n) {
        COUNT(al, escalations, (unsigned long)n);
    }
    return r;
}

/* Storm summaries: each chat whose held alarms waited a whole window gets
 * them in one message. */
static int summarize(struct alerts *al)
{
    struct arena *a = al->msg_arena;
    struct held_chat *hc;
    int n, r;

    arena_reset(a);
    r = db_alarm_held_due(al->db, a, al->cfg->alarm_storm_window_s, &hc, &n);
    for (int i = 0; r == 0 && i < n; i++) {
        struct alarm *alarms;
        struct reply rep;
        enum channel ch;
        int64_t outbox = 0;
        int na;

        if (channel_parse(hc[i].channel, &ch) < 0)
            continue;
        r = db_begin(al->db);
        if (r == 0)
            r = db_alarm_held_take(al->db, a, hc[i].channel, hc[i].chat_id, &alarms, &na);
        if (r == 0 && na > 0) {
            /* A storm of one is that alarm's own card, which acknowledging
             * edits like any other. */
            if (na == 1)
                r = alarm_reply(al->db, a, alarms[0].factory_id, alarms[0].id, false, &rep);
            else
                r = alarm_storm_reply(a, alarms, na, &rep);
            if (r == 0)
                r = channel_queue(al->db, a, ch, hc[i].chat_id, &rep, &outbox);
            if (r == -ENOTSUP) /* a channel this process cannot send on: let them go */
                r = db_alarm_held_done(al->db, hc[i].channel, hc[i].chat_id, 0, "summarized");
            else if (r == 0)
                r = db_alarm_held_done(al->db, hc[i].channel, hc[i].chat_id, outbox,
                                       na == 1 ? "queued" : "summarized");
        }
        if (r == 0)
            r = db_commit(al->db);
        if (r < 0) {
            db_rollback(al->db);
            break;
        }
        if (na > 0) {
            COUNT(al, summaries, 1);
            log_info("mqtt.storm_summary", "channel=%s alarms=%d", hc[i].channel, na);
        }
    }
    if (r < 0) {
        char q[300];
        COUNT(al, db_errors, 1);
        log_warn("mqtt.summary_failed", "err=%s detail=%s", strerror(-r),
                 log_quote(q, sizeof(q), db_errmsg(al->db)));
    }
    return r;
}

static void log_stats(struct alerts *al)
{
    struct alert_counters c;
    unsigned long dropped = 0, alarms = 0;

    alerts_counters(al, &c);
    for (int i = 0; i < DROP_REASON_COUNT; i++)
        dropped += c.dropped[i];
    for (int i = 0; i < SEV_COUNT; i++)
        alarms += c.alarms[i];
    log_info("mqtt.stats",
             "connected=%s received=%lu evaluated=%lu dropped=%lu alarms=%lu repeats=%lu "
             "messages=%lu held=%lu summaries=%lu escalations=%lu devices=%zu",
             al->connected ? "yes" : "no", c.received, c.evaluated, dropped, alarms, c.repeats,
             c.deliveries, c.held, c.summaries, c.escalations, al->devices.n);
}

/* Forgets rests that are over, when there are many: the map would
 * otherwise grow to rules × devices. */
static void prune_cooldowns(struct alerts *al)
{
    struct map keep = {0};
    double now = now_epoch();

    if (al->cooldowns.n < 100000)
        return;
    for (size_t i = 0; i < al->cooldowns.cap; i++) {
        struct slot *s = &al->cooldowns.slots[i];
        struct cooldown *cd = s->val;
        if (!s->key)
            continue;
        if (cd->keep > now && map_put(&keep, s->key, cd) == 0)
            s->val = NULL; /* moved */
    }
    map_clear(&al->cooldowns, free_ptr);
    al->cooldowns = keep;
}

static void tick(struct alerts *al)
{
    long now = now_ms();
    int r;

    /* Between messages at full speed, at most every 50 ms. */
    if (now < al->next_tick)
        return;
    al->next_tick = now + 50;
    /* A NOTIFY from `rivet rule` or `rivet factory set`: reload now. So
     * after the connection came back (it listens again, but what was said
     * meanwhile is gone). */
    if (now < al->db_wait_until)
        return;
    r = db_wait_notify(al->db, 0);
    if (__atomic_exchange_n(&al->reload_asked, 0, __ATOMIC_ACQ_REL))
        r = 1; /* SIGHUP */
    if (r > 0 || now >= al->next_reload) {
        r = load_rules(al);
        if (r < 0) {
            char q[300];
            log_warn("mqtt.reload_failed", "err=%s detail=%s", strerror(-r),
                     log_quote(q, sizeof(q), db_errmsg(al->db)));
        }
        al->next_reload = now + (r < 0 ? 5000 : RELOAD_MS);
    }
    if (r == 0 && now >= al->next_flush) {
        r = flush_devices(al);
        if (r == 0)
            r = summarize(al);
        al->next_flush = now + FLUSH_MS;
    }
    if (r == 0 && now >= al->next_escalate) {
        r = escalate(al);
        al->next_escalate = now + ESCALATE_MS;
    }
    if (r == 0 && now >= al->next_offline) {
        r = check_offline(al);
        al->next_offline = now + OFFLINE_MS;
    }
    if (now >= al->next_stats) {
        if (al->next_stats)
            log_stats(al);
        prune_cooldowns(al);
        al->next_stats = now + STATS_MS;
    }
    /* The database away: the periodic work waits, with backoff, rather
     * than try (and log) every tick; a message that needs the database
     * waits in its own retries, and the broker holds the rest. */
    if (r < 0) {
        al->db_wait_until = now + backoff_ms(al->db_failures++, 1000, 30000);
        al->next_reload = 0; /* reload once it is back: NOTIFYs were lost */
    } else {
        al->db_failures = 0;
    }
}

/* ---- the MQTT client ---- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    struct alerts *al = obj;
    char *subs[2], buf[2][160];
    const char *share = al->cfg->mqtt_shared_group;
    int r;

    (void)props;
    if (rc != 0) {
        if (!al->v311 && (rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION || rc == 1)) {
            /* A broker that speaks MQTT 3.1.1 only. */
            log_warn("mqtt.protocol", "msg=\"the broker refused MQTT 5; using 3.1.1\"");
            al->v311 = true;
        } else {
            log_warn("mqtt.refused", "reason=%d detail=\"%s\" attempt=%d", rc,
                     mosquitto_reason_string(rc), al->connect_failures + 1);
        }
        al->refused = true; /* the broker said why: no second line for it */
        return;
    }
    for (int i = 0; i < 2; i++) {
        snprintf(buf[i], sizeof(buf[i]), "%s%s%sfactories/+/devices/+/%s", share ? "$share/" : "",
                 share ? share : "", share ? "/" : "", i == 0 ? "telemetry" : "alarm");
        subs[i] = buf[i];
    }
    r = mosquitto_subscribe_multiple(mosq, NULL, 2, subs, 1, 0, NULL);
    if (r != MOSQ_ERR_SUCCESS)
        log_warn("mqtt.subscribe_failed", "err=\"%s\"", mosquitto_strerror(r));
    al->connected = true;
    al->connected_since = now_epoch();
    al->connect_failures = 0;
    pthread_mutex_lock(&al->lock);
    al->counters.connects++;
    al->counters.connected = 1;
    pthread_mutex_unlock(&al->lock);
    log_info("mqtt.connected", "host=%s port=%d protocol=%s session_present=%s shared=%s",
             al->cfg->mqtt_host, al->cfg->mqtt_port, al->v311 ? "3.1.1" : "5",
             flags & 1 ? "yes" : "no", share ? share : "-");
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                          const mosquitto_property *props)
{
    struct alerts *al = obj;

    (void)mosq;
    (void)props;
    if (al->connected)
        log_warn("mqtt.disconnected", "reason=%d detail=\"%s\"", rc,
                 rc ? mosquitto_strerror(rc) : "asked");
    al->connected = false;
    al->connected_since = 0;
    pthread_mutex_lock(&al->lock);
    al->counters.connected = 0;
    pthread_mutex_unlock(&al->lock);
}

/* libmosquitto's own errors and warnings (a TLS handshake's reason from
 * OpenSSL, a protocol error) into Rivet's log, at most 5 lines every 10 s:
 * a broker refusing every attempt must not flood it. */
static void on_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
    static __thread long window;
    static __thread int lines;
    long now = now_ms();
    char q[300];

    (void)mosq;
    (void)obj;
    if (!(level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)))
        return;
    if (now - window > 10000) {
        window = now;
        lines = 0;
    }
    if (lines++ < 5)
        log_warn("mqtt.library", "detail=%s", log_quote(q, sizeof(q), str));
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m,
                       const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    handle(obj, m);
}

static int client_new(struct alerts *al)
{
    const struct config *cfg = al->cfg;
    char id[160];
    int r;

    if (cfg->mqtt_client_id) {
        snprintf(id, sizeof(id), "%s", cfg->mqtt_client_id);
    } else {
        /* Stable across restarts, so the broker keeps the session. */
        char host[64] = "";
        gethostname(host, sizeof(host) - 1);
        snprintf(id, sizeof(id), "rivet-%s", host[0] ? host : "local");
    }
    al->mosq = mosquitto_new(id, false, al);
    if (!al->mosq)
        return -ENOMEM;
    mosquitto_int_option(al->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         al->v311 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5);
    mosquitto_int_option(al->mosq, MOSQ_OPT_RECEIVE_MAXIMUM, RECEIVE_MAXIMUM);
    mosquitto_threaded_set(al->mosq, true); /* the PUBACK after the callback: see the top */
    mosquitto_connect_v5_callback_set(al->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(al->mosq, on_disconnect);
    mosquitto_message_v5_callback_set(al->mosq, on_message);
    mosquitto_log_callback_set(al->mosq, on_log);
    if (cfg->mqtt_username &&
        (r = mosquitto_username_pw_set(al->mosq, cfg->mqtt_username, cfg->mqtt_password)) !=
            MOSQ_ERR_SUCCESS)
        return -EINVAL;
    if (cfg->mqtt_tls) {
        r = mosquitto_tls_set(al->mosq, cfg->mqtt_ca_file,
                              cfg->mqtt_ca_file ? NULL : "/etc/ssl/certs", NULL, NULL, NULL);
        if (r != MOSQ_ERR_SUCCESS) {
            log_error("mqtt.tls", "err=\"%s\"", mosquitto_strerror(r));
            return -EINVAL;
        }
    }
    log_info("mqtt.client", "client_id=%s", id);
    return 0;
}

/* Starts a connection; the CONNACK comes through the loop, to
 * on_connect(). Returns whether the socket is up. */
static bool try_connect(struct alerts *al)
{
    mosquitto_property *props = NULL;
    bool v311 = al->v311;
    /* mosquitto_connect() blocks in connect(2), for minutes when a
     * firewall drops packets, and the thread's other work (escalations,
     * storm summaries) must not wait that long. */
    int r = tcp_reachable(al->cfg->mqtt_host, al->cfg->mqtt_port, 3000);

    if (r < 0) {
        if (al->connect_failures == 0 || al->connect_failures % 10 == 0)
            log_warn("mqtt.connect_failed", "host=%s port=%d err=\"%s\" attempt=%d",
                     al->cfg->mqtt_host, al->cfg->mqtt_port,
                     r == -ENOENT ? "the host name does not resolve" : strerror(-r),
                     al->connect_failures + 1);
        al->next_connect = now_ms() + backoff_ms(al->connect_failures++, 500, 30000);
        return false;
    }
    if (!al->v311)
        mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, SESSION_EXPIRY_S);
    mosquitto_int_option(al->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         v311 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5);
    r = mosquitto_connect_bind_v5(al->mosq, al->cfg->mqtt_host, al->cfg->mqtt_port,
                                  al->cfg->mqtt_keepalive_s, NULL, props);
    mosquitto_property_free_all(&props);
    if (r == MOSQ_ERR_SUCCESS) {
        al->next_connect = now_ms() + 10000; /* the CONNACK's deadline */
        return true;
    }
    if (al->connect_failures == 0 || al->connect_failures % 10 == 0)
        log_warn("mqtt.connect_failed", "host=%s port=%d err=\"%s\" attempt=%d", al->cfg->mqtt_host,
                 al->cfg->mqtt_port, r == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(r),
                 al->connect_failures + 1);
    al->next_connect = now_ms() + backoff_ms(al->connect_failures++, 500, 30000);
    return false;
}

static void *alerts_main(void *arg)
{
    struct alerts *al = arg;
    bool socket_up = false;

    log_set_thread("mqtt");
    if (serve_db_connect(al->cfg, "mqtt", &al->stop, &al->db) < 0)
        return NULL;
    while (!__atomic_load_n(&al->stop, __ATOMIC_ACQUIRE)) {
        int r = db_listen(al->db, ALERT_RULES_EVENT);
        if (r == 0)
            r = load_rules(al);
        if (r == 0)
            r = load_devices(al);
        if (r == 0)
            break;
        char q[300];
        log_warn("mqtt.load_failed", "err=%s detail=%s", strerror(-r),
                 log_quote(q, sizeof(q), db_errmsg(al->db)));
        nap(&al->stop, 2000);
    }
    al->next_reload = now_ms() + RELOAD_MS;
    while (!__atomic_load_n(&al->stop, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&al->loop_at, now_ms(), __ATOMIC_RELAXED);
        if (!socket_up && now_ms() >= al->next_connect)
            socket_up = try_connect(al);
        if (socket_up) {
            bool was_v311 = al->v311;
            int r = mosquitto_loop(al->mosq, 100, 1);

            /* While messages keep coming, read on without the select() and
             * the housekeeping of a whole mosquitto_loop() for each: a read
             * that found nothing ends with EAGAIN. Their PUBACKs go out
             * together afterwards, after their callbacks, as before. */
            for (int i = 0; r == MOSQ_ERR_SUCCESS && al->connected && i < 200; i++) {
                errno = 0;
                r = mosquitto_loop_read(al->mosq, 1);
                if (r != MOSQ_ERR_SUCCESS || errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
            }
            if (r == MOSQ_ERR_SUCCESS && al->connected)
                r = mosquitto_loop_write(al->mosq, 1);
            if (r != MOSQ_ERR_SUCCESS || al->v311 != was_v311) {
                /* Once when a connection that worked is lost, then every
                 * tenth failed attempt, as for connect_failed. */
                if (al->v311 == was_v311 && !al->refused &&
                    (al->connected || al->connect_failures % 10 == 0))
                    log_warn("mqtt.connection_lost", "err=\"%s\" attempt=%d",
                             r == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(r),
                             al->connect_failures + 1);
                al->refused = false;
                on_disconnect(al->mosq, al, r, NULL);
                mosquitto_disconnect(al->mosq);
                socket_up = false;
                al->next_connect = al->v311 != was_v311
                                       ? now_ms()
                                       : now_ms() + backoff_ms(al->connect_failures++, 500, 30000);
            } else if (!al->connected && now_ms() > al->next_connect) {
                /* No CONNACK in time. */
                mosquitto_disconnect(al->mosq);
                socket_up = false;
                al->next_connect = now_ms() + backoff_ms(al->connect_failures++, 500, 30000);
            }
        } else {
            nap(&al->stop, 100);
        }
        tick(al);
    }
    flush_devices(al);
    if (socket_up && !al->unacked) {
        mosquitto_disconnect(al->mosq);
        mosquitto_loop(al->mosq, 100, 1);
    } else if (al->unacked) {
        /* Its PUBACK is queued: closing without a loop keeps it unsent,
         * and the broker delivers the message to the next Rivet. */
        log_warn("mqtt.unacked", "msg=\"stopping with a message not recorded (the database "
                                 "is away); the broker will deliver it again\"");
    }
    log_stats(al);
    return NULL;
}

void alerts_reload(struct alerts *al)
{
    __atomic_store_n(&al->reload_asked, 1, __ATOMIC_RELEASE);
}

long alerts_alive(struct alerts *al)
{
    return __atomic_load_n(&al->loop_at, __ATOMIC_RELAXED);
}

int alerts_start(const struct config *cfg, struct alerts **ret)
{
    struct alerts *al = calloc(1, sizeof(*al));
    int r;

    if (!al)
        return -ENOMEM;
    al->cfg = cfg;
    pthread_mutex_init(&al->lock, NULL);
    if ((r = arena_new(&al->msg_arena)) < 0 || (r = client_new(al)) < 0)
        goto fail;
    r = -pthread_create(&al->thread, NULL, alerts_main, al);
    if (r < 0)
        goto fail;
    *ret = al;
    return 0;
fail:
    if (al->mosq)
        mosquitto_destroy(al->mosq);
    arena_free(al->msg_arena);
    pthread_mutex_destroy(&al->lock);
    free(al);
    return r;
}

void alerts_stop(struct alerts *al)
{
    if (!al)
        return;
    __atomic_store_n(&al->stop, 1, __ATOMIC_RELEASE);
    pthread_join(al->thread, NULL);
    mosquitto_destroy(al->mosq);
    db_close(al->db);
    free_factories(al);
    map_clear(&al->devices, free_device);
    map_clear(&al->cooldowns, free_ptr);
    map_clear(&al->bursts, free_ptr);
    arena_free(al->msg_arena);
    arena_free(al->load_arena);
    pthread_mutex_destroy(&al->lock);
    free(al);
}
