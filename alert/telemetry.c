/* Topics and telemetry payloads (alert.h). Every message from the broker
 * passes through here, at tens of thousands a second, so the parse is one
 * jansson load and one arena allocation per metric, and nothing is
 * formatted unless an alarm needs it. */
#include "alert.h"
#include "alert_internal.h"

#include "arena.h"
#include "text.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- names ---- */

static const char *const severity_names[SEV_COUNT] = {"low", "medium", "high", "critical"};

const char *severity_name(enum severity s)
{
    return (unsigned)s < SEV_COUNT ? severity_names[s] : "unknown";
}

int severity_parse(const char *s, enum severity *ret)
{
    if (!s)
        return -EINVAL;
    for (int i = 0; i < SEV_COUNT; i++) {
        if (!strcasecmp(s, severity_names[i])) {
            *ret = (enum severity)i;
            return 0;
        }
    }
    return -EINVAL;
}

static const char *const drop_names[DROP_REASON_COUNT] = {
    [DROP_NONE] = "none",
    [DROP_TOPIC] = "topic",
    [DROP_TOO_BIG] = "too_big",
    [DROP_NOT_JSON] = "not_json",
    [DROP_NOT_OBJECT] = "not_object",
    [DROP_METRICS] = "metrics",
    [DROP_VALUE] = "value",
    [DROP_TOO_MANY] = "too_many",
    [DROP_NAME] = "name",
    [DROP_TIMESTAMP] = "timestamp",
    [DROP_FUTURE] = "future",
    [DROP_ALARM] = "alarm",
    [DROP_UNKNOWN_FACTORY] = "unknown_factory",
    [DROP_UNKNOWN_DEVICE] = "unknown_device",
    [DROP_DEVICE_LIMIT] = "device_limit",
    [DROP_DATABASE] = "database",
};

const char *drop_reason_name(enum drop_reason r)
{
    return (unsigned)r < DROP_REASON_COUNT && drop_names[r] ? drop_names[r] : "unknown";
}

/* ---- topics ---- */

static bool slug_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

/* Length of the slug at s (up to the next '/' or the end), or 0 when it is
 * not one. Stops early, so a megabyte of topic costs nothing. */
static size_t slug_span(const char *s)
{
    size_t n = 0;

    if (s[0] == '-')
        return 0;
    while (n <= SLUG_MAX && slug_char(s[n]))
        n++;
    return n <= SLUG_MAX ? n : 0;
}

static size_t key_span(const char *s)
{
    size_t n = 0;

    while (n <= DEVICE_KEY_MAX && key_char(s[n]))
        n++;
    return n <= DEVICE_KEY_MAX ? n : 0;
}

bool device_key_valid(const char *key)
{
    size_t n;

    if (!key)
        return false;
    n = key_span(key);
    return n > 0 && key[n] == '\0';
}

int topic_parse(const char *topic, char slug[SLUG_MAX + 1], char key[DEVICE_KEY_MAX + 1],
                enum topic_kind *kind)
{
    static const char factories[] = "factories/", devices[] = "devices/";
    const char *s, *k, *p;
    size_t ns, nk;
    enum topic_kind kd;

    if (!topic || strncmp(topic, factories, sizeof(factories) - 1))
        return -EINVAL;
    s = topic + sizeof(factories) - 1;
    ns = slug_span(s);
    if (ns == 0 || s[ns] != '/')
        return -EINVAL;
    p = s + ns + 1;
    if (strncmp(p, devices, sizeof(devices) - 1))
        return -EINVAL;
    k = p + sizeof(devices) - 1;
    nk = key_span(k);
    if (nk == 0 || k[nk] != '/')
        return -EINVAL;
    p = k + nk + 1;
    if (!strcmp(p, "telemetry"))
        kd = TOPIC_TELEMETRY;
    else if (!strcmp(p, "alarm"))
        kd = TOPIC_ALARM;
    else
        return -EINVAL;
    memcpy(slug, s, ns);
    slug[ns] = '\0';
    memcpy(key, k, nk);
    key[nk] = '\0';
    *kind = kd;
    return 0;
}

/* ---- time ---- */

static bool leap_year(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

bool alert_date_valid(int y, int m, int d)
{
    return y >= 0 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

/* Days from 0000-01-01 to the first of January of year y (0 to 9999). Year
 * 0 is a leap year in the proleptic Gregorian calendar. */
static int64_t days_before_year(int64_t y)
{
    int64_t p = y - 1;

    return 365 * y + (y > 0 ? p / 4 - p / 100 + p / 400 + 1 : 0);
}

int64_t alert_days_from_civil(int y, int m, int d)
{
    static const int before_month[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int64_t days = days_before_year(y) + before_month[m - 1] + (m > 2 && leap_year(y)) + d - 1;

    return days - days_before_year(1970);
}

/* n decimal digits at s into *ret. Stops at the first non-digit, so it
 * never reads past a NUL. */
static bool digits(const char *s, int n, int *ret)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *ret = v;
    return true;
}

int time_parse_rfc3339(const char *s, double *ret)
{
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
    double frac = 0, scale = 0.1;
    const char *p;

    if (!s || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d))
        return -EINVAL;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return -EINVAL;
    if (!digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return -EINVAL;
    p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
            frac += (*p - '0') * scale;
            scale /= 10;
        }
    }
    /* Without an offset the time could be any zone's: a device that sends
     * local time must say so, or its alarms would be off by hours. */
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om))
            return -EINVAL;
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p || !alert_date_valid(y, mo, d) || h > 23 || mi > 59 || sec > 60 || oh > 23 || om > 59)
        return -EINVAL;
    *ret = (double)alert_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
           sign * (oh * 3600 + om * 60) + frac;
    return 0;
}

/* ---- formatting ---- */

size_t alert_num(char out[ALERT_NUM_MAX], double v)
{
    int n;

    if (v == 0) {
        memcpy(out, "0", 2);
        return 1;
    }
    if (fabs(v) < 1e15 && v == trunc(v)) {
        n = snprintf(out, ALERT_NUM_MAX, "%.0f", v);
    } else {
        /* 15 significant digits read back exactly for most values people
         * write (3.2, 82.5); the rest need 17. */
        n = snprintf(out, ALERT_NUM_MAX, "%.15g", v);
        if (strtod(out, NULL) != v)
            n = snprintf(out, ALERT_NUM_MAX, "%.17g", v);
    }
    return n > 0 ? (size_t)n : 0;
}

size_t alert_json_escaped_len(const char *s, size_t n)
{
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\')
            len += 2;
        else if (c < 0x20)
            len += 6;
        else
            len++;
    }
    return len;
}

size_t alert_json_escape(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            out[len++] = '\\';
            out[len++] = (char)c;
        } else if (c < 0x20) {
            memcpy(out + len, "\\u00", 4);
            out[len + 4] = hex[c >> 4];
            out[len + 5] = hex[c & 15];
            len += 6;
        } else {
            out[len++] = (char)c;
        }
    }
    return len;
}

/* ---- payloads ---- */

bool metric_name_valid(const char *name, size_t len)
{
    if (!name || len == 0 || len > METRIC_NAME_MAX)
        return false;
    /* text_has_control lets tab and newline through (they belong in
     * messages); a name has no use for them. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20)
            return false;
    return utf8_valid(name, len) && !text_has_control(name, len);
}

/* A string field of an alarm: 1..max (bytes, or characters when chars),
 * no control characters at all. */
static bool alarm_text_valid(json_t *v, size_t max, bool chars)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);

    if (!s || n == 0)
        return false;
    if ((chars ? utf8_chars(s) : n) > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return false;
    return !text_has_control(s, n);
}

static enum drop_reason read_timestamp(json_t *root, double now, struct telemetry *t)
{
    json_t *v = json_object_get(root, "timestamp");
    double ts;

    /* A device without a clock may send null; that is no timestamp. */
    if (!v || json_is_null(v)) {
        t->ts = now;
        t->has_ts = false;
        return DROP_NONE;
    }
    /* Numbers are refused: seconds or milliseconds, nobody can tell. */
    if (!json_is_string(v) || json_string_length(v) > 64 ||
        time_parse_rfc3339(json_string_value(v), &ts) < 0)
        return DROP_TIMESTAMP;
    if (ts > now + TELEMETRY_MAX_FUTURE_S)
        return DROP_FUTURE;
    t->ts = ts;
    t->has_ts = true;
    return DROP_NONE;
}

static enum drop_reason read_alarm(json_t *root, struct telemetry *t)
{
    json_t *sev = json_object_get(root, "severity");
    json_t *code = json_object_get(root, "code");
    json_t *msg = json_object_get(root, "message");

    if (!json_is_string(sev) || severity_parse(json_string_value(sev), &t->severity) < 0)
        return DROP_ALARM;
    if (json_is_null(code))
        code = NULL;
    if (json_is_null(msg))
        msg = NULL;
    if (!code && !msg)
        return DROP_ALARM;
    if (code && !alarm_text_valid(code, ALARM_CODE_MAX, false))
        return DROP_ALARM;
    if (msg && !alarm_text_valid(msg, ALARM_MESSAGE_MAX, true))
        return DROP_ALARM;
    /* Still jansson's strings: telemetry_parse() copies them to the arena. */
    t->code = code ? json_string_value(code) : NULL;
    t->message = msg ? json_string_value(msg) : NULL;
    return DROP_NONE;
}

static int metric_cmp(const void *a, const void *b)
{
    return strcmp(((const struct metric *)a)->name, ((const struct metric *)b)->name);
}

/* The hash table over t's metrics (telemetry_get_hashed()). At most half
 * full: a lookup that misses (most do: a rule naming a metric this device
 * does not send) ends at an empty slot soon. */
static int index_metrics(struct arena *a, struct telemetry *t)
{
    t->mask = 7;
    while (t->mask + 1 < 2 * (uint32_t)t->n_metrics)
        t->mask = t->mask * 2 + 1;
    t->slots = arena_alloc(a, (t->mask + 1) * sizeof(*t->slots));
    if (!t->slots)
        return -ENOMEM;
    memset(t->slots, 0, (t->mask + 1) * sizeof(*t->slots));
    for (int i = 0; i < t->n_metrics; i++) {
        uint32_t s = (uint32_t)metric_hash(t->metrics[i].name) & t->mask;
        while (t->slots[s])
            s = (s + 1) & t->mask;
        t->slots[s] = (uint16_t)(i + 1);
    }
    return 0;
}

/* Fills t->metrics from the object m. Returns 0, -EINVAL with *why, or
 * -ENOMEM. */
static int read_metrics(struct arena *a, json_t *m, struct telemetry *t, enum drop_reason *why)
{
    size_t n = json_object_size(m), i = 0;
    struct metric *out;

    if (n > TELEMETRY_MAX_METRICS) {
        *why = DROP_TOO_MANY;
        return -EINVAL;
    }
    /* Checked before anything is copied: most bad payloads cost no arena. */
    for (void *it = json_object_iter(m); it; it = json_object_iter_next(m, it)) {
        json_t *v = json_object_iter_value(it);

        if (!metric_name_valid(json_object_iter_key(it), json_object_iter_key_len(it))) {
            *why = DROP_NAME;
            return -EINVAL;
        }
        if (!json_is_number(v) && !json_is_boolean(v)) {
            *why = DROP_VALUE;
            return -EINVAL;
        }
        /* jansson produces no NaN or infinity, but the struct promises
         * finite numbers whatever parses them. */
        if (json_is_number(v) && !isfinite(json_number_value(v))) {
            *why = DROP_VALUE;
            return -EINVAL;
        }
    }
    t->metrics = NULL;
    t->n_metrics = 0;
    t->slots = NULL;
    t->mask = 0;
    if (n == 0)
        return 0;
    out = arena_alloc(a, n * sizeof(*out));
    if (!out)
        return -ENOMEM;
    for (void *it = json_object_iter(m); it; it = json_object_iter_next(m, it), i++) {
        json_t *v = json_object_iter_value(it);

        out[i].name = arena_strndup(a, json_object_iter_key(it), json_object_iter_key_len(it));
        if (!out[i].name)
            return -ENOMEM;
        out[i].is_bool = json_is_boolean(v);
        out[i].value = out[i].is_bool ? (json_is_true(v) ? 1 : 0) : json_number_value(v);
    }
    /* jansson kept one value per name (the last), so the names are
     * unique; sorted, telemetry_get() can bisect. */
    qsort(out, n, sizeof(*out), metric_cmp);
    t->metrics = out;
    t->n_metrics = (int)n;
    return index_metrics(a, t);
}

uint64_t metric_hash(const char *name)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 1099511628211ULL;
    return h;
}

const struct metric *telemetry_get_hashed(const struct telemetry *t, const char *name,
                                          uint64_t hash)
{
    if (!t || !name)
        return NULL;
    if (!t->slots)
        return telemetry_get(t, name);
    for (uint32_t s = (uint32_t)hash & t->mask; t->slots[s]; s = (s + 1) & t->mask) {
        const struct metric *m = &t->metrics[t->slots[s] - 1];
        if (strcmp(m->name, name) == 0)
            return m;
    }
    return NULL;
}

/* ---- the common message, without a tree ----
 *
 * Nearly every message is {"timestamp": "...", "metrics": {"name": number
 * or true or false, ...}}. Reading that into a jansson tree was a fifth of
 * the alert thread's time (docs/benchmarks.md), so it is scanned here
 * directly. The scan accepts only what the full reading below accepts and
 * reads it the same way (numbers with strtod, as jansson does), and it
 * declines everything else: escapes in strings, other keys, nested values,
 * null, duplicate names, an invalid or future timestamp, too many metrics.
 * A declined message goes the full way, which reads it or names what is
 * wrong. Bytes outside strings are JSON's own ASCII; names are checked as
 * metric names (UTF-8 included) and the timestamp by its parser, so
 * nothing the full path would refuse as JSON gets through. */

struct scan {
    const char *p, *end;
};

static void scan_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool scan_char(struct scan *s, char c)
{
    scan_ws(s);
    if (s->p >= s->end || *s->p != c)
        return false;
    s->p++;
    return true;
}

/* A string without escapes or control bytes: *str and *n, unterminated. */
static bool scan_string(struct scan *s, const char **str, size_t *n)
{
    const char *b;

    scan_ws(s);
    if (s->p >= s->end || *s->p != '"')
        return false;
    b = ++s->p;
    while (s->p < s->end && *s->p != '"') {
        if (*s->p == '\\' || (unsigned char)*s->p < 0x20)
            return false;
        s->p++;
    }
    if (s->p >= s->end)
        return false;
    *str = b;
    *n = (size_t)(s->p - b);
    s->p++;
    return true;
}

static bool scan_digits(struct scan *s)
{
    const char *b = s->p;

    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > b;
}

/* A number by JSON's grammar, or true or false. */
static bool scan_value(struct scan *s, struct metric *m)
{
    const char *b;
    char buf[40], *stop;

    scan_ws(s);
    b = s->p;
    if ((size_t)(s->end - s->p) >= 4 && memcmp(s->p, "true", 4) == 0) {
        s->p += 4;
        m->value = 1;
        m->is_bool = true;
        return true;
    }
    if ((size_t)(s->end - s->p) >= 5 && memcmp(s->p, "false", 5) == 0) {
        s->p += 5;
        m->value = 0;
        m->is_bool = true;
        return true;
    }
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (s->p >= s->end || *s->p < '1' || *s->p > '9' || !scan_digits(s))
        return false;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!scan_digits(s))
            return false;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!scan_digits(s))
            return false;
    }
    if ((size_t)(s->p - b) >= sizeof(buf))
        return false;
    memcpy(buf, b, (size_t)(s->p - b));
    buf[s->p - b] = '\0';
    errno = 0;
    m->value = strtod(buf, &stop);
    m->is_bool = false;
    /* all of it read (a locale with a decimal comma would stop at '.') */
    return stop == buf + (s->p - b) && errno == 0 && isfinite(m->value);
}

/* Returns 1 when it read the message into *t, 0 when it declines, or
 * -ENOMEM. */
static int scan_telemetry(struct arena *a, const char *payload, size_t len, double now,
                          struct telemetry *t)
{
    struct scan s = {payload, payload + len};
    struct metric *m = NULL;
    bool have_ts = false, have_metrics = false;
    int n = 0, cap = 0;

    t->ts = now;
    t->has_ts = false;
    if (!scan_char(&s, '{'))
        return 0;
    do {
        const char *k;
        size_t kl;

        if (!scan_string(&s, &k, &kl) || !scan_char(&s, ':'))
            return 0;
        if (kl == 9 && memcmp(k, "timestamp", 9) == 0 && !have_ts) {
            const char *v;
            size_t vl;
            char buf[65];
            double ts;

            if (!scan_string(&s, &v, &vl) || vl >= sizeof(buf))
                return 0;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            if (time_parse_rfc3339(buf, &ts) < 0 || ts > now + TELEMETRY_MAX_FUTURE_S)
                return 0;
            t->ts = ts;
            t->has_ts = have_ts = true;
        } else if (kl == 7 && memcmp(k, "metrics", 7) == 0 && !have_metrics) {
            have_metrics = true;
            if (!scan_char(&s, '{'))
                return 0;
            do {
                const char *name;
                size_t nl;

                if (!scan_string(&s, &name, &nl) || !metric_name_valid(name, nl) ||
                    !scan_char(&s, ':'))
                    return 0;
                if (n == cap) {
                    struct metric *more;
                    cap = cap ? cap * 2 : 16;
                    if (cap > TELEMETRY_MAX_METRICS)
                        return 0;
                    if (!(more = arena_alloc(a, (size_t)cap * sizeof(*more))))
                        return -ENOMEM;
                    if (n)
                        memcpy(more, m, (size_t)n * sizeof(*more));
                    m = more;
                }
                if (!scan_value(&s, &m[n]))
                    return 0;
                if (!(m[n].name = arena_strndup(a, name, nl)))
                    return -ENOMEM;
                n++;
            } while (scan_char(&s, ','));
            if (!scan_char(&s, '}'))
                return 0;
        } else {
            return 0;
        }
    } while (scan_char(&s, ','));
    if (!scan_char(&s, '}'))
        return 0;
    scan_ws(&s);
    if (s.p != s.end || n == 0)
        return 0;
    qsort(m, (size_t)n, sizeof(*m), metric_cmp);
    for (int i = 1; i < n; i++)
        if (strcmp(m[i - 1].name, m[i].name) == 0)
            return 0; /* jansson keeps the last one: the full path knows which */
    t->metrics = m;
    t->n_metrics = n;
    return index_metrics(a, t) < 0 ? -ENOMEM : 1;
}

int telemetry_parse(struct arena *a, enum topic_kind kind, const void *payload, size_t len,
                    double now, struct telemetry *out, enum drop_reason *why)
{
    struct telemetry t = {0};
    enum drop_reason reason = DROP_NONE;
    json_t *root = NULL, *m;
    json_error_t jerr;
    int r = -EINVAL;

    if (len > TELEMETRY_MAX_BYTES) {
        reason = DROP_TOO_BIG;
        goto out;
    }
    if (kind == TOPIC_TELEMETRY && payload) {
        r = scan_telemetry(a, payload, len, now, &t);
        if (r == 1) {
            *out = t;
            if (why)
                *why = DROP_NONE;
            return 0;
        }
        if (r < 0)
            goto out;
        t = (struct telemetry){0};
        r = -EINVAL;
    }
    /* Whole numbers as doubles: a 20-digit counter is a value, not an
     * error. Duplicate names keep the last value (jansson's default). */
    root =
        json_loadb(payload ? payload : "", len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!root) {
        reason = DROP_NOT_JSON;
        goto out;
    }
    if (!json_is_object(root)) {
        reason = DROP_NOT_OBJECT;
        goto out;
    }
    reason = read_timestamp(root, now, &t);
    if (reason != DROP_NONE)
        goto out;
    if (kind == TOPIC_ALARM) {
        reason = read_alarm(root, &t);
        if (reason != DROP_NONE)
            goto out;
    }
    m = json_object_get(root, "metrics");
    if (kind == TOPIC_ALARM && (!m || json_is_null(m))) {
        /* An alarm may come without metrics. */
    } else if (!json_is_object(m) || (kind == TOPIC_TELEMETRY && json_object_size(m) == 0)) {
        reason = DROP_METRICS;
        goto out;
    } else {
        r = read_metrics(a, m, &t, &reason);
        if (r < 0)
            goto out;
    }
    if (t.code && !(t.code = arena_strdup(a, t.code))) {
        r = -ENOMEM;
        goto out;
    }
    if (t.message && !(t.message = arena_strdup(a, t.message))) {
        r = -ENOMEM;
        goto out;
    }
    *out = t;
    r = 0;
out:
    if (r == -ENOMEM)
        reason = DROP_NONE;
    else if (reason != DROP_NONE)
        r = -EINVAL;
    if (why)
        *why = reason;
    json_decref(root);
    return r;
}

const struct metric *telemetry_get(const struct telemetry *t, const char *name)
{
    int lo = 0, hi;

    if (!t || !name)
        return NULL;
    hi = t->n_metrics;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, t->metrics[mid].name);

        if (c == 0)
            return &t->metrics[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

char *telemetry_snapshot(struct arena *a, const struct telemetry *t)
{
    char num[ALERT_NUM_MAX];
    size_t size = 3, len = 0;
    char *s;

    /* Measured first, so the arena holds exactly the text. */
    for (int i = 0; i < t->n_metrics; i++) {
        const struct metric *m = &t->metrics[i];

        size += alert_json_escaped_len(m->name, strlen(m->name)) + 4;
        size += m->is_bool ? 5 : alert_num(num, m->value);
    }
    s = arena_alloc(a, size);
    if (!s)
        return NULL;
    s[len++] = '{';
    for (int i = 0; i < t->n_metrics; i++) {
        const struct metric *m = &t->metrics[i];

        if (i > 0)
            s[len++] = ',';
        s[len++] = '"';
        len += alert_json_escape(s + len, m->name, strlen(m->name));
        s[len++] = '"';
        s[len++] = ':';
        if (m->is_bool) {
            const char *b = m->value != 0 ? "true" : "false";

            memcpy(s + len, b, strlen(b));
            len += strlen(b);
        } else {
            size_t n = alert_num(num, m->value);

            memcpy(s + len, num, n);
            len += n;
        }
    }
    s[len++] = '}';
    s[len] = '\0';
    return s;
}
