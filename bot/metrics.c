#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "text.h"

#define MAX_LABELS 2   /* label names per family */
#define MAX_BUCKETS 14 /* upper bounds per histogram, +Inf not counted */
#define MAX_SERIES 64  /* label combinations kept per family */
#define VALUE_MAX 64   /* bytes kept of a label value */

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

static const char *const type_names[] = {"counter", "gauge", "histogram"};

struct family {
    const char *name;
    enum metric_type type;
    const char *help;
    const char *labels[MAX_LABELS]; /* NULL past the last one */
    size_t n_buckets;
    double buckets[MAX_BUCKETS]; /* upper bounds, increasing */
};

#define BUCKETS(...)                                                                               \
    .buckets = {__VA_ARGS__}, .n_buckets = sizeof((double[]){__VA_ARGS__}) / sizeof(double)

/* Every family Rivet exports, in the order they are rendered. A family
 * without labels is always rendered (0 until it is first updated); one
 * with labels only once a label combination has been used. */
static const struct family families[] = {
    {
        .name = "rivet_build_info",
        .type = METRIC_GAUGE,
        .help = "Always 1; the version of the running build is a label.",
        .labels = {"version"},
    },
    {
        .name = "rivet_start_time_seconds",
        .type = METRIC_GAUGE,
        .help = "When the process started, in seconds since the Unix epoch.",
    },
    {
        .name = "rivet_updates_received_total",
        .type = METRIC_COUNTER,
        .help = "Updates and webhook messages offered to the inbox, by outcome "
                "(stored, duplicate, rejected).",
        .labels = {"channel", "outcome"},
    },
    {
        .name = "rivet_webhook_requests_total",
        .type = METRIC_COUNTER,
        .help = "Webhook HTTP requests, by path and response status.",
        .labels = {"path", "status"},
    },
    {
        .name = "rivet_updates_handled_total",
        .type = METRIC_COUNTER,
        .help = "Inbox updates handled, by outcome.",
        .labels = {"channel", "outcome"},
    },
    {
        .name = "rivet_handler_seconds",
        .type = METRIC_HISTOGRAM,
        .help = "Time spent handling one inbox update, in seconds.",
        .labels = {"channel"},
        BUCKETS(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    },
    {
        .name = "rivet_inbox_pending",
        .type = METRIC_GAUGE,
        .help = "Inbox updates waiting to be handled.",
        .labels = {"channel"},
    },
    {
        .name = "rivet_outbox_pending",
        .type = METRIC_GAUGE,
        .help = "Outbox messages waiting to be sent.",
        .labels = {"channel"},
    },
    {
        .name = "rivet_messages_sent_total",
        .type = METRIC_COUNTER,
        .help = "Outbox send attempts, by result (sent, retry, rate_limited, failed, "
                "template).",
        .labels = {"channel", "result"},
    },
    {
        .name = "rivet_message_statuses_total",
        .type = METRIC_COUNTER,
        .help = "Delivery statuses reported back by the channel, by status.",
        .labels = {"channel", "status"},
    },
    {
        .name = "rivet_ocr_reads_total",
        .type = METRIC_COUNTER,
        .help = "Nameplate photos read, by result.",
        .labels = {"result"},
    },
    {
        .name = "rivet_ocr_seconds",
        .type = METRIC_HISTOGRAM,
        .help = "Time spent reading one nameplate photo, in seconds.",
        BUCKETS(0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60),
    },
    {
        .name = "rivet_llm_fallbacks_total",
        .type = METRIC_COUNTER,
        .help = "Nameplate reads handed to the LLM fallback, by result.",
        .labels = {"result"},
    },
    {
        .name = "rivet_ocr_jobs",
        .type = METRIC_GAUGE,
        .help = "Photo jobs (download and read) in progress in this process.",
    },
    {
        .name = "rivet_ocr_max_jobs",
        .type = METRIC_GAUGE,
        .help = "OCR_MAX_JOBS: the photo jobs this process runs at once.",
    },
    {
        .name = "rivet_ocr_waiting",
        .type = METRIC_GAUGE,
        .help = "Photo updates this process found waiting for a free photo job.",
    },
    {
        .name = "rivet_ocr_deferred_total",
        .type = METRIC_COUNTER,
        .help = "Photo updates put back in the inbox because every photo job was taken.",
    },
    {
        .name = "rivet_llm_in_flight",
        .type = METRIC_GAUGE,
        .help = "LLM requests in progress in this process.",
    },
    {
        .name = "rivet_llm_max_in_flight",
        .type = METRIC_GAUGE,
        .help = "LLM_MAX_IN_FLIGHT: the LLM requests this process makes at once.",
    },
    {
        .name = "rivet_llm_waits_total",
        .type = METRIC_COUNTER,
        .help = "LLM calls that found LLM_MAX_IN_FLIGHT requests in flight, by result "
                "(waited: got a slot later, busy: gave up).",
        .labels = {"result"},
    },
    {
        .name = "rivet_assist_requests_total",
        .type = METRIC_COUNTER,
        .help = "Questions for the troubleshooting assistant, by result.",
        .labels = {"result"},
    },
    {
        .name = "rivet_assist_seconds",
        .type = METRIC_HISTOGRAM,
        .help = "Time the LLM took to answer one question, in seconds.",
        BUCKETS(0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60),
    },
    {
        .name = "rivet_assist_cost_usd_total",
        .type = METRIC_COUNTER,
        .help = "Estimated cost of the assistant's LLM calls, in US dollars.",
    },
    {
        .name = "rivet_mqtt_connected",
        .type = METRIC_GAUGE,
        .help = "1 while connected to the MQTT broker, else 0.",
    },
    {
        .name = "rivet_mqtt_messages_received_total",
        .type = METRIC_COUNTER,
        .help = "MQTT messages received.",
    },
    {
        .name = "rivet_mqtt_messages_dropped_total",
        .type = METRIC_COUNTER,
        .help = "MQTT messages dropped before evaluation, by reason.",
        .labels = {"reason"},
    },
    {
        .name = "rivet_mqtt_messages_evaluated_total",
        .type = METRIC_COUNTER,
        .help = "MQTT messages evaluated against the alarm rules.",
    },
    {
        .name = "rivet_alarms_raised_total",
        .type = METRIC_COUNTER,
        .help = "Alarms raised, by severity.",
        .labels = {"severity"},
    },
    {
        .name = "rivet_alarm_escalations_total",
        .type = METRIC_COUNTER,
        .help = "Alarm escalations sent.",
    },
    {
        .name = "rivet_db_errors_total",
        .type = METRIC_COUNTER,
        .help = "Database errors, by component.",
        .labels = {"component"},
    },
    {
        .name = "rivet_metrics_misuse_total",
        .type = METRIC_COUNTER,
        .help = "Metric updates ignored: unknown family, labels not as declared, a call "
                "or value the type does not allow, or the family's limit of 64 label "
                "combinations reached.",
    },
};

#define N_FAMILIES (sizeof(families) / sizeof(families[0]))
#define MISUSE_NAME "rivet_metrics_misuse_total"

/* One label combination of a family. */
struct series {
    char values[MAX_LABELS][VALUE_MAX + 1]; /* as the family's label names */
    double value;                           /* counter, gauge; a histogram's sum */
    uint64_t count;                         /* histogram: observations */
    uint64_t buckets[MAX_BUCKETS];          /* histogram: per bucket, not cumulative */
};

enum metric_op { OP_ADD, OP_SET, OP_OBSERVE };

/* The registry: everything below is guarded by lock. Series are kept in
 * creation order, which is also the order they are rendered in. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct series *series[N_FAMILIES][MAX_SERIES];
static size_t n_series[N_FAMILIES];

static size_t family_n_labels(const struct family *f)
{
    size_t n = 0;

    while (n < MAX_LABELS && f->labels[n])
        n++;
    return n;
}

static const struct family *family_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (strcmp(families[i].name, name) == 0)
            return &families[i];
    return NULL;
}

/* Copies label value s into dst (VALUE_MAX + 1 bytes): at most VALUE_MAX
 * bytes, cut before a character that would not fit, with each byte that is
 * not part of well-formed UTF-8 replaced by '?' (Prometheus refuses a
 * scrape with invalid UTF-8 in it). */
static void value_copy(char *dst, const char *s)
{
    size_t i = 0, o = 0;

    while (s[i]) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
        const char *piece = s + i;

        if (len > 1 && (strnlen(s + i, len) < len || !utf8_valid(s + i, len))) {
            /* Not the start of a well-formed character: one byte becomes '?'. */
            piece = "?";
            len = 1;
        }
        if (o + len > VALUE_MAX)
            break;
        memcpy(dst + o, piece, len);
        o += len;
        i += len;
    }
    dst[o] = '\0';
}

/* Reads the name/value pairs that follow the value of a metric_*() call and
 * copies the values into vals. Stops at the first NULL or at the first
 * difference from the family's label names, so it never reads past the
 * terminating NULL of a well-terminated list. */
static bool labels_parse(const struct family *f, va_list ap, char vals[MAX_LABELS][VALUE_MAX + 1])
{
    size_t n = family_n_labels(f);

    for (size_t i = 0; i < n; i++) {
        const char *k = va_arg(ap, const char *);
        const char *v;

        if (!k || strcmp(k, f->labels[i]) != 0)
            return false;
        v = va_arg(ap, const char *);
        if (!v)
            return false;
        value_copy(vals[i], v);
    }
    return va_arg(ap, const char *) == NULL;
}

static bool op_allowed(const struct family *f, enum metric_op op, double v)
{
    switch (op) {
    case OP_ADD:
        if (f->type == METRIC_COUNTER)
            return isfinite(v) && v >= 0;
        return f->type == METRIC_GAUGE && isfinite(v);
    case OP_SET:
        if (f->type == METRIC_COUNTER)
            return isfinite(v) && v >= 0;
        return f->type == METRIC_GAUGE;
    case OP_OBSERVE:
        return f->type == METRIC_HISTOGRAM && isfinite(v);
    }
    return false;
}

/* The series of family fi with these label values, created if there is
 * room; NULL when the family is full or memory is short. Needs lock. */
static struct series *series_get(size_t fi, char vals[MAX_LABELS][VALUE_MAX + 1])
{
    size_t nl = family_n_labels(&families[fi]);
    struct series *s;

    for (size_t i = 0; i < n_series[fi]; i++) {
        size_t k = 0;

        s = series[fi][i];
        while (k < nl && strcmp(s->values[k], vals[k]) == 0)
            k++;
        if (k == nl)
            return s;
    }
    if (n_series[fi] == MAX_SERIES)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    for (size_t k = 0; k < nl; k++)
        memcpy(s->values[k], vals[k], sizeof(s->values[k]));
    series[fi][n_series[fi]++] = s;
    return s;
}

/* Needs lock. */
static void misuse_count(void)
{
    char none[MAX_LABELS][VALUE_MAX + 1] = {{0}};
    const struct family *f = family_find(MISUSE_NAME);
    struct series *s = series_get((size_t)(f - families), none);

    if (s)
        s->value += 1;
}

static void series_apply(const struct family *f, struct series *s, enum metric_op op, double v)
{
    size_t b = 0;

    switch (op) {
    case OP_ADD:
        s->value += v;
        break;
    case OP_SET:
        s->value = v;
        break;
    case OP_OBSERVE:
        while (b < f->n_buckets && v > f->buckets[b])
            b++;
        if (b < f->n_buckets)
            s->buckets[b]++;
        s->count++;
        s->value += v;
        break;
    }
}

static void metric_update(const char *name, enum metric_op op, double v, va_list ap)
{
    char vals[MAX_LABELS][VALUE_MAX + 1] = {{0}};
    const struct family *f = family_find(name);
    struct series *s = NULL;
    bool ok;

    /* Everything that needs no registry is checked before taking the lock. */
    ok = f && op_allowed(f, op, v) && labels_parse(f, ap, vals);
    pthread_mutex_lock(&lock);
    if (ok)
        s = series_get((size_t)(f - families), vals);
    if (s)
        series_apply(f, s, op, v);
    else
        misuse_count();
    pthread_mutex_unlock(&lock);
}

void metric_add(const char *name, double v, ...)
{
    va_list ap;

    va_start(ap, v);
    metric_update(name, OP_ADD, v, ap);
    va_end(ap);
}

void metric_set(const char *name, double v, ...)
{
    va_list ap;

    va_start(ap, v);
    metric_update(name, OP_SET, v, ap);
    va_end(ap);
}

void metric_observe(const char *name, double v, ...)
{
    va_list ap;

    va_start(ap, v);
    metric_update(name, OP_OBSERVE, v, ap);
    va_end(ap);
}

/* v as Prometheus (Go's ParseFloat) reads it: NaN, +Inf, -Inf, integral
 * values without exponent or fraction up to 2^53, anything else in the
 * fewest digits (at most 17) that read back as the same double. Assumes
 * the C locale for LC_NUMERIC: Rivet never calls setlocale(). */
static void number_format(char *dst, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(dst, n, "NaN");
    } else if (isinf(v)) {
        snprintf(dst, n, "%s", v > 0 ? "+Inf" : "-Inf");
    } else if (v == 0) {
        snprintf(dst, n, "0"); /* -0 too */
    } else if (fabs(v) <= 9007199254740992.0 && v == (double)(int64_t)v) {
        snprintf(dst, n, "%" PRId64, (int64_t)v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(dst, n, "%.*g", prec, v);
            if (strtod(dst, NULL) == v)
                break;
        }
    }
}

/* Appends s with backslash and newline escaped, and also the double quote
 * when quote is set (label values; help text leaves it alone). */
static int escaped_add(struct buf *out, const char *s, bool quote)
{
    const char *run = s;
    int r;

    for (; *s; s++) {
        const char *esc = *s == '\\'           ? "\\\\"
                          : *s == '\n'         ? "\\n"
                          : quote && *s == '"' ? "\\\""
                                               : NULL;

        if (!esc)
            continue;
        r = buf_add(out, run, (size_t)(s - run));
        if (r < 0)
            return r;
        r = buf_adds(out, esc);
        if (r < 0)
            return r;
        run = s + 1;
    }
    return buf_add(out, run, (size_t)(s - run));
}

/* One sample line: name+suffix, the series' labels and le if given, the
 * value. */
static int sample_add(struct buf *out, const struct family *f, const char *suffix,
                      const struct series *s, const char *le, const char *value)
{
    size_t nl = family_n_labels(f);
    int r;

    r = buf_addf(out, "%s%s", f->name, suffix);
    for (size_t k = 0; r == 0 && k < nl; k++) {
        r = buf_addf(out, "%s%s=\"", k ? "," : "{", f->labels[k]);
        if (r == 0)
            r = escaped_add(out, s->values[k], true);
        if (r == 0)
            r = buf_adds(out, "\"");
    }
    if (r == 0 && le)
        r = buf_addf(out, "%sle=\"%s\"", nl ? "," : "{", le);
    if (r == 0 && (nl || le))
        r = buf_adds(out, "}");
    if (r == 0)
        r = buf_addf(out, " %s\n", value);
    return r;
}

static int series_render(struct buf *out, const struct family *f, const struct series *s)
{
    char num[32], le[32];
    uint64_t cum = 0;
    int r;

    if (f->type != METRIC_HISTOGRAM) {
        number_format(num, sizeof(num), s->value);
        return sample_add(out, f, "", s, NULL, num);
    }
    for (size_t b = 0; b < f->n_buckets; b++) {
        cum += s->buckets[b];
        number_format(le, sizeof(le), f->buckets[b]);
        snprintf(num, sizeof(num), "%" PRIu64, cum);
        r = sample_add(out, f, "_bucket", s, le, num);
        if (r < 0)
            return r;
    }
    snprintf(num, sizeof(num), "%" PRIu64, s->count);
    r = sample_add(out, f, "_bucket", s, "+Inf", num);
    if (r < 0)
        return r;
    number_format(num, sizeof(num), s->value);
    r = sample_add(out, f, "_sum", s, NULL, num);
    if (r < 0)
        return r;
    snprintf(num, sizeof(num), "%" PRIu64, s->count);
    return sample_add(out, f, "_count", s, NULL, num);
}

/* Needs lock. */
static int family_render(struct buf *out, size_t fi)
{
    static const struct series zero;
    const struct family *f = &families[fi];
    int r;

    if (n_series[fi] == 0 && family_n_labels(f) > 0)
        return 0;
    r = buf_addf(out, "# HELP %s ", f->name);
    if (r == 0)
        r = escaped_add(out, f->help, false);
    if (r == 0)
        r = buf_addf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
    if (r == 0 && n_series[fi] == 0)
        r = series_render(out, f, &zero);
    for (size_t i = 0; r == 0 && i < n_series[fi]; i++)
        r = series_render(out, f, series[fi][i]);
    return r;
}

#define MAX_HOOKS 8

static pthread_mutex_t hooks_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*hooks[MAX_HOOKS])(void);
static size_t n_hooks;

int metrics_on_render(void (*fn)(void))
{
    int r = 0;

    pthread_mutex_lock(&hooks_lock);
    for (size_t i = 0; i < n_hooks; i++)
        if (hooks[i] == fn)
            goto out;
    if (n_hooks == MAX_HOOKS) {
        r = -ENOSPC;
        goto out;
    }
    hooks[n_hooks++] = fn;
out:
    pthread_mutex_unlock(&hooks_lock);
    return r;
}

int metrics_render(struct buf *out)
{
    void (*run[MAX_HOOKS])(void);
    size_t start = out->len, n;
    int r = 0;

    /* The hooks copy in what others keep, before the registry is locked
     * (they call metric_set()). */
    pthread_mutex_lock(&hooks_lock);
    n = n_hooks;
    memcpy(run, hooks, sizeof(run[0]) * n);
    pthread_mutex_unlock(&hooks_lock);
    for (size_t i = 0; i < n; i++)
        run[i]();
    /* Only memory is touched under the lock; the caller sends the text. */
    pthread_mutex_lock(&lock);
    for (size_t fi = 0; r == 0 && fi < N_FAMILIES; fi++)
        r = family_render(out, fi);
    pthread_mutex_unlock(&lock);
    if (r < 0 && out->p) {
        /* Leave the buffer as it was, as a failed buf_add() does. */
        out->len = start;
        out->p[start] = '\0';
    }
    return r;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&hooks_lock);
    n_hooks = 0;
    pthread_mutex_unlock(&hooks_lock);
    pthread_mutex_lock(&lock);
    for (size_t fi = 0; fi < N_FAMILIES; fi++) {
        for (size_t i = 0; i < n_series[fi]; i++) {
            free(series[fi][i]);
            series[fi][i] = NULL;
        }
        n_series[fi] = 0;
    }
    pthread_mutex_unlock(&lock);
}
