/* mqtt_load: the plant side of scripts/bench-mqtt. It plays D devices of one
 * factory publishing telemetry on factories/{slug}/devices/{key}/telemetry
 * over K connections (one thread each, devices shared out round-robin so
 * that each device keeps its messages in order on one connection), as fast
 * as the broker takes them or at a given rate, QoS 0 or 1.
 *
 * Normal messages carry M metrics whose values stay between 10 and 90, under
 * every threshold the benchmark's rules use. Two kinds of message cross one:
 *   - probes (--probe-ms): every P ms one message from a probe device, on a
 *     connection of its own, with probe_level 1000 and probe_seq N; its
 *     timestamp is its publish time to the microsecond, and each probe's
 *     publish time goes to --probes-out, so the bench can tell how long the
 *     alarm took to reach Telegram;
 *   - the trigger (--trigger KEY): one message published after every other
 *     message was acknowledged by the broker, so an alarm from it means the
 *     subscriber has handled everything before it.
 *
 * It prints what it sent as one JSON line on stdout and exits 0 when every
 * message was sent (and, with QoS 1, acknowledged), 1 otherwise. Traffic goes
 * where --host says; the bench gives it 127.0.0.1. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 64
#define MAX_METRICS 32
#define MAX_DEVICES 1000000
#define TOPIC_MAX 256
#define PAYLOAD_MAX 4096
/* How long the end waits for the last acknowledgements. */
#define DRAIN_TIMEOUT_S 300
#define CONNECT_TIMEOUT_S 10

/* What the rules of scripts/bench-mqtt know the metrics by. */
static const char *const metric_names[MAX_METRICS] = {
    "temp",    "pressure",  "vibration",    "current",    "rpm",       "flow",  "humidity",
    "voltage", "power",     "torque",       "oil_temp",   "coolant",   "noise", "speed",
    "level",   "ph",        "load",         "frequency",  "position",  "feed",  "strain",
    "density", "viscosity", "conductivity", "turbidity",  "dew_point", "co2",   "o2",
    "nox",     "dust",      "cycle_time",   "scrap_rate",
};

struct opts {
    const char *host, *factory, *prefix, *device_prefix, *probe_prefix, *trigger, *probes_out;
    const char *client_prefix;
    int port, qos, connections, devices, metrics, probe_devices, v5;
    long long messages;
    double rate, duration, probe_ms;
    long inflight;
    unsigned seed;
};

struct conn {
    int idx;
    const struct opts *o;
    struct mosquitto *mosq;
    pthread_t thread;

    /* Owned by the thread that drives the connection (by main before it
     * starts and after it ends). */
    long inflight; /* published, not acknowledged (QoS 0: not yet written) */
    unsigned long long acked;
    int connected;                 /* 1 up, -1 refused or lost */
    int first_device, device_step; /* devices first, first + step, ... below o->devices */
    long long quota;               /* messages to send; -1: until the deadline */
    double rate;                   /* per second, 0: as fast as possible */
    unsigned long long sent, failed, bytes;
    uint64_t rng;
    double t_first, t_last;
    int error;
};

struct probe {
    long seq;
    int device;
    double t_pub; /* epoch seconds, as the payload says */
};

/* The probe thread's log, read after it ended. */
static struct probe *probes;
static long n_probes, cap_probes;
static double t_deadline; /* epoch; 0: none; set before the threads start */
static atomic_int stop;   /* a thread could not start: the others end */

static double now_epoch(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until_mono(double t)
{
    struct timespec ts = {.tv_sec = (time_t)t, .tv_nsec = (long)((t - floor(t)) * 1e9)};

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Writes "2026-02-19T10:30:00.123456Z" for t (epoch seconds) into out. */
static void format_time(double t, char out[32])
{
    time_t s = (time_t)t;
    int us = (int)lround((t - (double)s) * 1e6);
    struct tm tm;
    size_t n;

    if (us >= 1000000) {
        s++;
        us -= 1000000;
    }
    if (us < 0)
        us = 0;
    gmtime_r(&s, &tm);
    n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06dZ", us % 1000000);
}

static int topic_of(const struct opts *o, const char *dev_prefix, int dev, char out[TOPIC_MAX])
{
    int n = snprintf(out, TOPIC_MAX, "%s/%s/devices/%s%04d/telemetry", o->prefix, o->factory,
                     dev_prefix, dev);

    return n > 0 && n < TOPIC_MAX ? 0 : -ENAMETOOLONG;
}

/* A normal message: every metric between 10 and 90. extra (may be NULL) is
 * appended inside "metrics". Returns the length, or -1 when it does not fit. */
static int payload_of(const struct opts *o, uint64_t *rng, double t, const char *extra,
                      char out[PAYLOAD_MAX])
{
    char ts[32];
    int n, k;

    format_time(t, ts);
    n = snprintf(out, PAYLOAD_MAX, "{\"timestamp\": \"%s\", \"metrics\": {", ts);
    for (int i = 0; i < o->metrics && n > 0 && n < PAYLOAD_MAX; i++) {
        double v = 10 + (double)(xorshift(rng) % 8000000) / 100000.0;
        k = snprintf(out + n, PAYLOAD_MAX - (size_t)n, "%s\"%s\": %.2f", i ? ", " : "",
                     metric_names[i], v);
        n = k < 0 ? -1 : n + k;
    }
    if (n > 0 && n < PAYLOAD_MAX) {
        k = snprintf(out + n, PAYLOAD_MAX - (size_t)n, "%s%s}}", extra && o->metrics ? ", " : "",
                     extra ? extra : "");
        n = k < 0 ? -1 : n + k;
    }
    return n > 0 && n < PAYLOAD_MAX ? n : -1;
}

/* ---- callbacks: inside mosquitto_loop(), on the connection's own thread ---- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    struct conn *c = obj;

    (void)mosq;
    c->connected = rc == 0 ? 1 : -1;
    if (rc)
        c->error = rc;
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    struct conn *c = obj;

    (void)mosq;
    if (rc) {
        c->connected = -1;
        c->error = rc;
    }
}

/* QoS 1: the PUBACK came. QoS 0: the message was written to the socket. */
static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    struct conn *c = obj;

    (void)mosq;
    (void)mid;
    c->inflight--;
    c->acked++;
}

/* ---- connections ----
 *
 * Each connection is driven by one thread with mosquitto_loop(), not by
 * mosquitto_loop_start(): a publish is then written from the publishing
 * thread at once and the acknowledgements are read in batches, where the
 * library's own thread would cost a wake-up and a hand-over per message (on
 * two cores shared with the broker and the subscriber, that was the
 * bottleneck). */

static int conn_open(struct conn *c, int idx, const struct opts *o)
{
    char id[64];
    int r;

    c->idx = idx;
    c->o = o;
    snprintf(id, sizeof(id), "%s-%d-%d", o->client_prefix, (int)getpid(), idx);
    c->mosq = mosquitto_new(id, true, c);
    if (!c->mosq)
        return -ENOMEM;
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         o->v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    /* Our own window (--inflight) is what limits us, never the library's
     * default of 20 messages in flight. */
    mosquitto_int_option(c->mosq, MOSQ_OPT_SEND_MAXIMUM, 65535);
    mosquitto_int_option(c->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_callback_set(c->mosq, on_connect);
    mosquitto_disconnect_callback_set(c->mosq, on_disconnect);
    mosquitto_publish_callback_set(c->mosq, on_publish);
    r = mosquitto_connect(c->mosq, o->host, o->port, 60);
    if (r != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "mqtt_load: connect to %s:%d: %s\n", o->host, o->port,
                r == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(r));
        return -ECONNREFUSED;
    }
    return 0;
}

/* Runs the connection's network for at most timeout_ms (reads what came,
 * writes what waits, keeps it alive). Returns 0 or -ECONNRESET. */
static int conn_pump(struct conn *c, int timeout_ms)
{
    int r = mosquitto_loop(c->mosq, timeout_ms, 1);

    if (r != MOSQ_ERR_SUCCESS || c->connected < 0) {
        if (!c->error)
            c->error = r;
        c->connected = -1;
        return -ECONNRESET;
    }
    return 0;
}

static int conn_wait_connected(struct conn *c)
{
    double until = now_mono() + CONNECT_TIMEOUT_S;

    while (c->connected == 0 && now_mono() < until)
        if (conn_pump(c, 50) < 0)
            break;
    if (c->connected == 1)
        return 0;
    fprintf(stderr, "mqtt_load: connection %d was not accepted (%s)\n", c->idx,
            c->error ? mosquitto_connack_string(c->error) : "no CONNACK in time");
    return -ECONNREFUSED;
}

/* Runs the network until at most max messages are in flight. Returns 0,
 * or -ETIMEDOUT after timeout_s, or -ECONNRESET when the connection is
 * lost. */
static int conn_wait_window(struct conn *c, long max, double timeout_s)
{
    double until = now_mono() + timeout_s;

    while (c->inflight > max) {
        if (now_mono() >= until)
            return -ETIMEDOUT;
        if (conn_pump(c, 100) < 0)
            return -ECONNRESET;
    }
    return 0;
}

/* Runs the network until the monotonic time t (acknowledgements keep being
 * read meanwhile). */
static int conn_wait_until(struct conn *c, double t)
{
    for (double now = now_mono(); now < t; now = now_mono()) {
        int ms = (int)((t - now) * 1000);
        if (ms < 1) {
            sleep_until_mono(t);
            break;
        }
        if (conn_pump(c, ms) < 0)
            return -ECONNRESET;
    }
    return 0;
}

/* Publishes one message, counting it in flight first (a QoS 0 message's
 * callback runs before mosquitto_publish returns). Returns 0 or -EIO. */
static int conn_publish(struct conn *c, const char *topic, const char *payload, int len)
{
    int r;

    c->inflight++;
    r = mosquitto_publish(c->mosq, NULL, topic, len, payload, c->o->qos, false);
    if (r != MOSQ_ERR_SUCCESS) {
        c->inflight--;
        c->failed++;
        if (!c->error)
            c->error = r;
        return -EIO;
    }
    c->sent++;
    c->bytes += (unsigned long long)len;
    return 0;
}

static void conn_close(struct conn *c)
{
    if (!c->mosq)
        return;
    if (c->connected == 1) {
        mosquitto_disconnect(c->mosq);
        mosquitto_loop(c->mosq, 100, 1);
    }
    mosquitto_destroy(c->mosq);
    c->mosq = NULL;
}

/* ---- publishers ---- */

/* The pacing of one connection: message n goes at start + n / rate, and a
 * late sender catches up at most 50 ms worth of messages at once. Every 64
 * messages the acknowledgements that came are read without waiting. */
static void *publisher(void *arg)
{
    struct conn *c = arg;
    const struct opts *o = c->o;
    char topic[TOPIC_MAX], payload[PAYLOAD_MAX];
    double start = now_mono(), next = start, burst = c->rate > 0 ? 0.05 : 0;
    int dev = c->first_device;

    for (long long n = 0; c->quota < 0 || n < c->quota; n++) {
        double now;
        int len;

        if (c->rate > 0) {
            now = now_mono();
            if (next < now - burst)
                next = now - burst;
            if (next > now && conn_wait_until(c, next) < 0)
                break;
            next += 1.0 / c->rate;
        }
        if (atomic_load(&stop) || (t_deadline && now_epoch() >= t_deadline))
            break;
        if (conn_wait_window(c, o->inflight - 1, DRAIN_TIMEOUT_S) < 0) {
            fprintf(stderr, "mqtt_load: connection %d: the broker stopped acknowledging\n", c->idx);
            break;
        }
        if (topic_of(o, o->device_prefix, dev, topic) < 0)
            break;
        now = now_epoch();
        len = payload_of(o, &c->rng, now, NULL, payload);
        if (len < 0 || conn_publish(c, topic, payload, len) < 0)
            break;
        if ((n & 63) == 63 && conn_pump(c, 0) < 0)
            break;
        if (!c->t_first)
            c->t_first = now;
        c->t_last = now;
        dev += c->device_step;
        if (dev >= o->devices)
            dev = c->first_device;
    }
    if (conn_wait_window(c, 0, DRAIN_TIMEOUT_S) < 0)
        fprintf(stderr, "mqtt_load: connection %d: %ld messages never acknowledged\n", c->idx,
                c->inflight);
    return NULL;
}

/* One probe every probe_ms from probe devices in turn, on its own
 * connection, until the deadline. */
static void *prober(void *arg)
{
    struct conn *c = arg;
    const struct opts *o = c->o;
    char topic[TOPIC_MAX], payload[PAYLOAD_MAX], extra[96];
    double next = now_mono() + o->probe_ms / 1000.0;

    for (long seq = 1;; seq++) {
        int dev = (int)((seq - 1) % o->probe_devices), len;
        double t;

        if (conn_wait_until(c, next) < 0)
            break;
        next += o->probe_ms / 1000.0;
        if (atomic_load(&stop) || (t_deadline && now_epoch() >= t_deadline))
            break;
        if (n_probes == cap_probes) {
            long cap = cap_probes ? cap_probes * 2 : 1024;
            struct probe *np = realloc(probes, sizeof(*np) * (size_t)cap);
            if (!np)
                break;
            probes = np;
            cap_probes = cap;
        }
        if (topic_of(o, o->probe_prefix, dev, topic) < 0)
            break;
        snprintf(extra, sizeof(extra), "\"probe_level\": 1000, \"probe_seq\": %ld", seq);
        t = now_epoch();
        len = payload_of(o, &c->rng, t, extra, payload);
        if (len < 0 || conn_publish(c, topic, payload, len) < 0)
            break;
        probes[n_probes++] = (struct probe){.seq = seq, .device = dev, .t_pub = t};
        if (!c->t_first)
            c->t_first = t;
        c->t_last = t;
    }
    if (conn_wait_window(c, 0, DRAIN_TIMEOUT_S) < 0)
        fprintf(stderr, "mqtt_load: the probes' connection: %ld messages never acknowledged\n",
                c->inflight);
    return NULL;
}

/* ---- options ---- */

static const char usage[] =
    "Usage: mqtt_load --port P --factory SLUG [OPTIONS]\n"
    "\n"
    "  --host H            broker (default 127.0.0.1)\n"
    "  --port P            broker port (required)\n"
    "  --factory SLUG      factories/SLUG/devices/KEY/telemetry\n"
    "  --prefix P          first topic level instead of \"factories\" (a topic Rivet does\n"
    "                      not read, for the broker's own ceiling)\n"
    "  --devices D         devices dev-0000 ... (default 1000)\n"
    "  --device-prefix S   their key prefix (default dev-)\n"
    "  --messages N        normal messages in all (default 100000)\n"
    "  --duration S        publish for S seconds instead of counting messages\n"
    "  --rate R            messages/s in all, 0: as fast as possible (default 0)\n"
    "  --qos 0|1           (default 1)\n"
    "  --connections K     publisher connections, one thread each (default 2)\n"
    "  --inflight W        unacknowledged messages per connection (default 1000)\n"
    "  --metrics M         metrics per message, at most 32 (default 8)\n"
    "  --probe-ms P        a probe every P ms, on a connection of its own (needs --duration)\n"
    "  --probe-devices N   probe devices probe-0000 ... used in turn (default 10)\n"
    "  --probe-prefix S    their key prefix (default probe-)\n"
    "  --probes-out FILE   one line per probe: seq device_key publish_epoch\n"
    "  --trigger KEY       after everything was acknowledged, one message from device\n"
    "                      KEY with trigger_level 1000\n"
    "  --client-id S       client id prefix (default mqtt-load)\n"
    "  --v5                MQTT 5 (default 3.1.1)\n"
    "  --seed N            values' random seed (default 1)\n";

static int num(const char *name, const char *s, double min, double max, double *ret)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max)) {
        fprintf(stderr, "mqtt_load: --%s must be a number from %g to %g\n", name, min, max);
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

static int parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"factory", required_argument, NULL, 'f'},
        {"prefix", required_argument, NULL, 'P'},
        {"devices", required_argument, NULL, 'd'},
        {"device-prefix", required_argument, NULL, 'D'},
        {"messages", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 't'},
        {"rate", required_argument, NULL, 'r'},
        {"qos", required_argument, NULL, 'q'},
        {"connections", required_argument, NULL, 'k'},
        {"inflight", required_argument, NULL, 'w'},
        {"metrics", required_argument, NULL, 'm'},
        {"probe-ms", required_argument, NULL, 'b'},
        {"probe-devices", required_argument, NULL, 'B'},
        {"probe-prefix", required_argument, NULL, 'x'},
        {"probes-out", required_argument, NULL, 'o'},
        {"trigger", required_argument, NULL, 'T'},
        {"client-id", required_argument, NULL, 'c'},
        {"v5", no_argument, NULL, '5'},
        {"seed", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    double v;
    int ch;

    *o = (struct opts){.host = "127.0.0.1",
                       .prefix = "factories",
                       .device_prefix = "dev-",
                       .probe_prefix = "probe-",
                       .client_prefix = "mqtt-load",
                       .qos = 1,
                       .connections = 2,
                       .devices = 1000,
                       .metrics = 8,
                       .probe_devices = 10,
                       .messages = 100000,
                       .inflight = 1000,
                       .seed = 1};
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        int r = 0;
        switch (ch) {
        case 'H':
            o->host = optarg;
            break;
        case 'p':
            r = num("port", optarg, 1, 65535, &v);
            o->port = (int)v;
            break;
        case 'f':
            o->factory = optarg;
            break;
        case 'P':
            o->prefix = optarg;
            break;
        case 'd':
            r = num("devices", optarg, 1, MAX_DEVICES, &v);
            o->devices = (int)v;
            break;
        case 'D':
            o->device_prefix = optarg;
            break;
        case 'n':
            r = num("messages", optarg, 0, 1e12, &v);
            o->messages = (long long)v;
            break;
        case 't':
            r = num("duration", optarg, 0.001, 86400, &o->duration);
            break;
        case 'r':
            r = num("rate", optarg, 0, 1e7, &o->rate);
            break;
        case 'q':
            r = num("qos", optarg, 0, 1, &v);
            o->qos = (int)v;
            break;
        case 'k':
            r = num("connections", optarg, 1, MAX_CONNECTIONS, &v);
            o->connections = (int)v;
            break;
        case 'w':
            r = num("inflight", optarg, 1, 65535, &v);
            o->inflight = (long)v;
            break;
        case 'm':
            r = num("metrics", optarg, 0, MAX_METRICS, &v);
            o->metrics = (int)v;
            break;
        case 'b':
            r = num("probe-ms", optarg, 1, 3600000, &o->probe_ms);
            break;
        case 'B':
            r = num("probe-devices", optarg, 1, 10000, &v);
            o->probe_devices = (int)v;
            break;
        case 'x':
            o->probe_prefix = optarg;
            break;
        case 'o':
            o->probes_out = optarg;
            break;
        case 'T':
            o->trigger = optarg;
            break;
        case 'c':
            o->client_prefix = optarg;
            break;
        case '5':
            o->v5 = 1;
            break;
        case 's':
            r = num("seed", optarg, 0, 4294967295.0, &v);
            o->seed = (unsigned)v;
            break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default:
            fputs(usage, stderr);
            return -EINVAL;
        }
        if (r < 0)
            return r;
    }
    if (optind != argc || !o->port || !o->factory) {
        fputs(usage, stderr);
        return -EINVAL;
    }
    if (o->probe_ms > 0 && !o->duration) {
        fprintf(stderr, "mqtt_load: --probe-ms needs --duration\n");
        return -EINVAL;
    }
    if (o->metrics == 0 && !o->probe_ms && !o->trigger) {
        fprintf(stderr, "mqtt_load: a message needs at least one metric\n");
        return -EINVAL;
    }
    return 0;
}

/* ---- main ---- */

static void print_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

int main(int argc, char **argv)
{
    struct opts o;
    struct conn *cs = NULL, *probe_conn = NULL;
    int n_conns = 0, started = 0, rc = 1;
    double t_acked = 0, t_trigger = 0;
    unsigned long long sent = 0, failed = 0, bytes = 0, acked = 0;
    double t_first = 0, t_last = 0;
    bool drained = true;

    if (parse(argc, argv, &o) < 0)
        return 2;
    mosquitto_lib_init();
    cs = calloc((size_t)o.connections + 1, sizeof(*cs));
    if (!cs) {
        fprintf(stderr, "mqtt_load: out of memory\n");
        goto out;
    }
    for (int i = 0; i < o.connections + (o.probe_ms > 0); i++) {
        if (conn_open(&cs[i], i, &o) < 0)
            goto out;
        n_conns++;
    }
    for (int i = 0; i < n_conns; i++)
        if (conn_wait_connected(&cs[i]) < 0)
            goto out;
    if (o.probe_ms > 0)
        probe_conn = &cs[o.connections];

    if (o.duration)
        t_deadline = now_epoch() + o.duration;
    for (int i = 0; i < n_conns; i++) {
        struct conn *c = &cs[i];
        long long share = o.messages / o.connections + (i < o.messages % o.connections);
        c->first_device = i < o.devices ? i : i % o.devices;
        c->device_step = o.connections;
        c->quota = o.duration ? -1 : share;
        c->rate = o.rate / o.connections;
        c->rng = ((uint64_t)o.seed << 32 | (uint64_t)(i + 1)) * 0x9E3779B97F4A7C15ULL | 1;
        if (pthread_create(&c->thread, NULL, c == probe_conn ? prober : publisher, c) != 0) {
            fprintf(stderr, "mqtt_load: cannot start a thread\n");
            /* The ones running stop at once; their connections are joined
             * before they are closed. */
            atomic_store(&stop, 1);
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(cs[i].thread, NULL);
    if (started < n_conns)
        goto out;

    /* Every message acknowledged (QoS 1) or written (QoS 0). */
    for (int i = 0; i < n_conns; i++)
        if (conn_wait_window(&cs[i], 0, DRAIN_TIMEOUT_S) < 0) {
            fprintf(stderr, "mqtt_load: connection %d: %ld messages never acknowledged\n", i,
                    cs[i].inflight);
            drained = false;
        }
    t_acked = now_epoch();

    /* The totals leave the trigger out. */
    for (int i = 0; i < n_conns; i++) {
        if (&cs[i] == probe_conn)
            continue;
        sent += cs[i].sent;
        failed += cs[i].failed;
        bytes += cs[i].bytes;
        acked += cs[i].acked;
        if (cs[i].t_first && (!t_first || cs[i].t_first < t_first))
            t_first = cs[i].t_first;
        if (cs[i].t_last > t_last)
            t_last = cs[i].t_last;
    }
    if (o.trigger && drained) {
        char topic[TOPIC_MAX], payload[PAYLOAD_MAX];
        int len, n;

        n = snprintf(topic, sizeof(topic), "%s/%s/devices/%s/telemetry", o.prefix, o.factory,
                     o.trigger);
        t_trigger = now_epoch();
        len = payload_of(&o, &cs[0].rng, t_trigger, "\"trigger_level\": 1000", payload);
        if (n <= 0 || n >= (int)sizeof(topic) || len < 0 ||
            conn_publish(&cs[0], topic, payload, len) < 0 ||
            conn_wait_window(&cs[0], 0, DRAIN_TIMEOUT_S) < 0) {
            fprintf(stderr, "mqtt_load: the trigger was not acknowledged\n");
            drained = false;
        }
    }

    if (o.probes_out && probe_conn) {
        FILE *f = fopen(o.probes_out, "w");
        if (!f) {
            fprintf(stderr, "mqtt_load: %s: %s\n", o.probes_out, strerror(errno));
            drained = false;
        } else {
            for (long i = 0; i < n_probes; i++)
                fprintf(f, "%ld %s%04d %.6f\n", probes[i].seq, o.probe_prefix, probes[i].device,
                        probes[i].t_pub);
            if (fclose(f) != 0)
                drained = false;
        }
    }

    {
        double span = t_last > t_first ? t_last - t_first : 0;
        double span_acked = t_acked > t_first ? t_acked - t_first : 0;

        printf("{\"tool\": \"mqtt_load\", \"factory\": ");
        print_json_str(o.factory);
        printf(", \"prefix\": ");
        print_json_str(o.prefix);
        printf(", \"qos\": %d, \"connections\": %d, \"devices\": %d, \"metrics\": %d, "
               "\"rate_target\": %.1f, \"sent\": %llu, \"acked\": %llu, \"failed\": %llu, "
               "\"payload_bytes_avg\": %.1f, \"probes\": %ld, \"t_first\": %.6f, "
               "\"t_last_publish\": %.6f, \"t_all_acked\": %.6f, \"t_trigger\": %.6f, "
               "\"publish_s\": %.6f, \"acked_s\": %.6f, \"rate_published\": %.1f, "
               "\"rate_acked\": %.1f, \"complete\": %s}\n",
               o.qos, o.connections, o.devices, o.metrics, o.rate, sent, acked, failed,
               sent ? (double)bytes / (double)sent : 0.0, n_probes, t_first, t_last, t_acked,
               t_trigger, span, span_acked, span > 0 ? (double)sent / span : 0.0,
               span_acked > 0 ? (double)sent / span_acked : 0.0,
               drained && !failed ? "true" : "false");
        fflush(stdout);
    }
    rc = drained && !failed ? 0 : 1;
out:
    for (int i = 0; cs && i < n_conns; i++)
        conn_close(&cs[i]);
    free(cs);
    free(probes);
    mosquitto_lib_cleanup();
    return rc;
}
