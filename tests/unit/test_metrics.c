/* Unit tests for bot/metrics.c: the registry, its refusals and limits, and
 * the Prometheus text it renders (checked line by line against the 0.0.4
 * syntax by check_exposition() below). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"
#include "text.h"

/* ---- helpers ---- */

static int reset(void **state)
{
    metrics_reset();
    return 0;
}

/* The whole exposition; free() it. */
static char *render(void)
{
    struct buf b;

    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(&b), 0);
    return buf_steal(&b);
}

/* True when text holds this exact line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

/* Lines of text that start with prefix. */
static size_t count_lines(const char *text, const char *prefix)
{
    size_t n = 0, len = strlen(prefix);

    for (const char *p = text; *p; p = strchr(p, '\n') + 1)
        if (strncmp(p, prefix, len) == 0)
            n++;
    return n;
}

/* The value of the sample whose name and labels are series, e.g.
 * "rivet_mqtt_connected" or "x{a=\"b\"}"; fails the test when absent. */
static double sample_value(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; *p; p = strchr(p, '\n') + 1)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    fail_msg("no sample %s in:\n%s", series, text);
    return NAN;
}

/* p past prefix, which it must start with. */
static const char *after_prefix(const char *p, const char *prefix)
{
    size_t n = strlen(prefix);

    if (strncmp(p, prefix, n) != 0)
        fail_msg("want %s\ngot  %.*s", prefix, (int)strcspn(p, "\n"), p);
    return p + n;
}

static double misuse(void)
{
    char *t = render();
    double v = sample_value(t, "rivet_metrics_misuse_total");

    free(t);
    return v;
}

/* ---- the format checker ---- */

#define NAME_RE "[a-zA-Z_:][a-zA-Z0-9_:]*"
#define LNAME_RE "[a-zA-Z_][a-zA-Z0-9_]*"
#define LVALUE_RE "\"([^\"\\\\]|\\\\[\\\\\"n])*\""
#define LABEL_RE LNAME_RE "=" LVALUE_RE
#define NUMBER_RE "(NaN|[+-]Inf|-?[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?)"

static const char sample_re[] =
    "^(" NAME_RE ")(\\{" LABEL_RE "(," LABEL_RE ")*\\})? " NUMBER_RE "$";
static const char help_re[] = "^# HELP (" NAME_RE ") ([^\\\\]|\\\\[\\\\n])*$";
static const char type_re[] = "^# TYPE (" NAME_RE ") (counter|gauge|histogram|summary|untyped)$";

/* What the checker remembers of the family being read. */
struct check {
    char family[128];
    char type[16];
    char seen[64][128]; /* families already typed */
    size_t n_seen;
    /* The histogram series being read: its labels without le, the last
     * bound and cumulative count, whether +Inf / _sum came. */
    char hlabels[1024];
    double last_le, last_count;
    int hstate; /* 0 between series, 1 in buckets, 2 after +Inf, 3 after _sum */
};

static bool match(const char *re, const char *line, regmatch_t *m, size_t nm)
{
    regex_t rx;
    bool ok;

    assert_int_equal(regcomp(&rx, re, REG_EXTENDED), 0);
    ok = regexec(&rx, line, nm, m, 0) == 0;
    regfree(&rx);
    return ok;
}

/* Takes le="..." out of labels (in place); its value in le. */
static bool take_le(char *labels, char *le, size_t n)
{
    char *p = strstr(labels, "le=\"");
    char *end;

    if (!p || (p != labels + 1 && p[-1] != ','))
        return false;
    end = strchr(p + 4, '"');
    if (!end || (size_t)(end - p - 4) >= n)
        return false;
    memcpy(le, p + 4, (size_t)(end - p - 4));
    le[end - p - 4] = '\0';
    /* Drop the label and the comma before it, or after it when first. */
    end++;
    if (p[-1] == ',')
        p--;
    else if (*end == ',')
        end++;
    memmove(p, end, strlen(end) + 1);
    if (strcmp(labels, "{}") == 0)
        labels[0] = '\0'; /* as on _sum and _count */
    return true;
}

static bool has_suffix(const char *s, const char *family, const char *suffix)
{
    size_t n = strlen(family);

    return strncmp(s, family, n) == 0 && strcmp(s + n, suffix) == 0;
}

/* One sample line of a histogram family. */
static const char *check_histogram(struct check *c, const char *name, char *labels, double v)
{
    char le[32];

    if (has_suffix(name, c->family, "_bucket")) {
        double bound;

        if (!take_le(labels, le, sizeof(le)))
            return "_bucket without le";
        bound = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
        if (c->hstate == 0 || c->hstate == 3) {
            c->hstate = 1;
            c->last_le = -INFINITY;
            c->last_count = 0;
            snprintf(c->hlabels, sizeof(c->hlabels), "%s", labels);
        } else if (c->hstate != 1 || strcmp(labels, c->hlabels) != 0) {
            return "_bucket out of place";
        }
        if (!(bound > c->last_le))
            return "le not increasing";
        if (v < c->last_count || v != (double)(int64_t)v)
            return "bucket counts not cumulative";
        c->last_le = bound;
        c->last_count = v;
        if (isinf(bound))
            c->hstate = 2;
        return NULL;
    }
    if (strstr(labels, "le=\""))
        return "le on _sum or _count";
    if (strcmp(labels, c->hlabels) != 0)
        return "_sum or _count labels differ from the buckets'";
    if (has_suffix(name, c->family, "_sum")) {
        if (c->hstate != 2)
            return "_sum not after le=\"+Inf\"";
        c->hstate = 3;
        return NULL;
    }
    if (has_suffix(name, c->family, "_count")) {
        if (c->hstate != 3)
            return "_count not after _sum";
        if (v != c->last_count)
            return "_count differs from le=\"+Inf\"";
        c->hstate = 0;
        return NULL;
    }
    return "sample name not of its family";
}

static const char *check_line(struct check *c, const char *line)
{
    regmatch_t m[4];
    char name[128], labels[1024];
    double v;

    if (line[0] == '#') {
        if (match(help_re, line, m, 2))
            return NULL; /* (the TYPE line below checks the name is new) */
        if (!match(type_re, line, m, 3))
            return "comment neither HELP nor TYPE";
        if (c->hstate == 1 || c->hstate == 2 || c->hstate == 3)
            return "histogram series not finished";
        snprintf(c->family, sizeof(c->family), "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
                 line + m[1].rm_so);
        snprintf(c->type, sizeof(c->type), "%.*s", (int)(m[2].rm_eo - m[2].rm_so),
                 line + m[2].rm_so);
        for (size_t i = 0; i < c->n_seen; i++)
            if (strcmp(c->seen[i], c->family) == 0)
                return "family typed twice";
        assert_true(c->n_seen < 64);
        memcpy(c->seen[c->n_seen++], c->family, sizeof(c->family));
        return NULL;
    }
    if (!match(sample_re, line, m, 3))
        return "not a 0.0.4 sample line";
    if (!c->family[0])
        return "sample before any # TYPE";
    snprintf(name, sizeof(name), "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
    if (m[2].rm_so >= 0)
        snprintf(labels, sizeof(labels), "%.*s", (int)(m[2].rm_eo - m[2].rm_so), line + m[2].rm_so);
    else
        labels[0] = '\0';
    v = strtod(strrchr(line, ' ') + 1, NULL);
    if (strcmp(c->type, "histogram") == 0)
        return check_histogram(c, name, labels, v);
    if (strcmp(name, c->family) != 0)
        return "sample name not of its family";
    if (strcmp(c->type, "counter") == 0 && !(v >= 0))
        return "counter negative or NaN";
    return NULL;
}

/* 0 when text is a well-formed exposition, else -1 with the reason and the
 * line in why. */
static int check_exposition(const char *text, char *why, size_t n)
{
    struct check c = {0};
    char line[2048];
    const char *p = text, *nl, *err = NULL;

    if (!*text || text[strlen(text) - 1] != '\n') {
        snprintf(why, n, "empty, or no final newline");
        return -1;
    }
    if (!utf8_valid(text, strlen(text))) {
        snprintf(why, n, "not UTF-8");
        return -1;
    }
    for (; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (nl == p)
            err = "empty line";
        else if ((size_t)(nl - p) >= sizeof(line))
            err = "line too long for the checker";
        if (err)
            break;
        memcpy(line, p, (size_t)(nl - p));
        line[nl - p] = '\0';
        err = check_line(&c, line);
        if (err)
            break;
    }
    if (!err && c.hstate != 0)
        err = "histogram series not finished";
    if (err) {
        snprintf(why, n, "%s: %.*s", err, (int)strcspn(p, "\n"), p);
        return -1;
    }
    return 0;
}

static void assert_exposition(const char *text)
{
    char why[256];

    if (check_exposition(text, why, sizeof(why)) != 0)
        fail_msg("%s\n--- in:\n%s", why, text);
}

/* The checker itself: it passes a good exposition and refuses bad ones. */
static void test_checker(void **state)
{
    static const char good[] =
        "# HELP a_total Help with \\\\ and \\n.\n"
        "# TYPE a_total counter\n"
        "a_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 3\n"
        "a_total{x=\"\"} 1.5e-07\n"
        "# TYPE g gauge\n"
        "g NaN\ng -Inf\ng -2.5\n"
        "# TYPE h histogram\n"
        "h_bucket{c=\"t\",le=\"0.5\"} 1\nh_bucket{c=\"t\",le=\"+Inf\"} 2\n"
        "h_sum{c=\"t\"} 7\nh_count{c=\"t\"} 2\n"
        "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n";
    static const char *const bad[] = {
        "",
        "# TYPE a counter\na 1",
        "a 1\n",
        "# TYPE a counter\n\na 1\n",
        "# TYPE a counter\na 1.\n",
        "# TYPE a counter\na +1\n",
        "# TYPE a counter\na inf\n",
        "# TYPE a counter\na  1\n",
        "# TYPE a counter\na -1\n",
        "# TYPE a counter\na{x=\"b\\q\"} 1\n",
        "# TYPE a counter\na{x=\"b\"c\"} 1\n",
        "# TYPE a counter\na{x=\"b\",} 1\n",
        "# TYPE a counter\na{x=b} 1\n",
        "# TYPE a counter\na{1x=\"b\"} 1\n",
        "# TYPE a counter\nb 1\n",
        "# TYPE a counter\n# TYPE a counter\n",
        "# TYPE a sum\n",
        "# HELP a bad \\t escape\n",
        "# a comment\n",
        "# TYPE a gauge\na{x=\"\xff\"} 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"0.5\"} 3\n"
        "h_bucket{le=\"+Inf\"} 3\nh_sum 1\nh_count 3\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n",
        "# TYPE h histogram\nh_bucket{a=\"1\",le=\"+Inf\"} 2\nh_sum{a=\"2\"} 1\nh_count{a=\"1\"} "
        "2\n",
    };
    char why[256];

    if (check_exposition(good, why, sizeof(why)) != 0)
        fail_msg("good text refused: %s", why);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (check_exposition(bad[i], why, sizeof(why)) == 0)
            fail_msg("bad text %zu accepted:\n%s", i, bad[i]);
}

/* ---- counters and gauges ---- */

static void test_empty(void **state)
{
    char *t = render();

    assert_exposition(t);
    /* Families without labels show 0; labelled ones nothing at all. */
    assert_true(has_line(t, "# TYPE rivet_mqtt_connected gauge"));
    assert_true(has_line(t, "rivet_mqtt_connected 0"));
    assert_true(has_line(t, "rivet_start_time_seconds 0"));
    assert_true(has_line(t, "rivet_mqtt_messages_received_total 0"));
    assert_true(has_line(t, "rivet_metrics_misuse_total 0"));
    assert_null(strstr(t, "rivet_build_info"));
    assert_null(strstr(t, "rivet_messages_sent_total"));
    assert_null(strstr(t, "rivet_handler_seconds"));
    after_prefix(t, "# HELP rivet_start_time_seconds ");
    free(t);
}

static void test_counter_labels(void **state)
{
    char *t;

    metric_inc("rivet_messages_sent_total", "channel", "telegram", "result", "sent", NULL);
    metric_inc("rivet_messages_sent_total", "channel", "whatsapp", "result", "sent", NULL);
    metric_add("rivet_messages_sent_total", 2.0, "channel", "telegram", "result", "sent", NULL);
    metric_inc("rivet_messages_sent_total", "channel", "telegram", "result", "retry", NULL);
    metric_add("rivet_messages_sent_total", 0.0, "channel", "whatsapp", "result", "failed", NULL);
    metric_inc("rivet_mqtt_messages_received_total", NULL);
    t = render();
    assert_exposition(t);
    assert_true(has_line(t, "# HELP rivet_messages_sent_total Outbox send attempts, by result "
                            "(sent, retry, rate_limited, failed, template)."));
    assert_true(has_line(t, "# TYPE rivet_messages_sent_total counter"));
    /* Creation order. */
    assert_non_null(strstr(t, "rivet_messages_sent_total{channel=\"telegram\",result=\"sent\"} 3\n"
                              "rivet_messages_sent_total{channel=\"whatsapp\",result=\"sent\"} 1\n"
                              "rivet_messages_sent_total{channel=\"telegram\",result=\"retry\"} 1\n"
                              "rivet_messages_sent_total{channel=\"whatsapp\",result=\"failed\"} "
                              "0\n"));
    assert_int_equal(count_lines(t, "rivet_messages_sent_total{"), 4);
    assert_true(has_line(t, "rivet_mqtt_messages_received_total 1"));
    assert_true(has_line(t, "rivet_metrics_misuse_total 0"));
    /* Table order: the families before and after keep their places. */
    assert_true(strstr(t, "rivet_messages_sent_total") < strstr(t, "rivet_mqtt_connected"));
    assert_true(strstr(t, "rivet_start_time_seconds") < strstr(t, "rivet_messages_sent_total"));
    free(t);
}

static void test_gauges(void **state)
{
    char *t;

    metric_set("rivet_build_info", 1, "version", "0.1.0", NULL);
    metric_set("rivet_start_time_seconds", 1700000000, NULL);
    metric_set("rivet_inbox_pending", 5, "channel", "telegram", NULL);
    metric_add("rivet_inbox_pending", -2, "channel", "telegram", NULL);
    metric_inc("rivet_outbox_pending", "channel", "telegram", NULL);
    metric_add("rivet_outbox_pending", -1.5, "channel", "telegram", NULL);
    metric_set("rivet_mqtt_connected", 1, NULL);
    metric_set("rivet_mqtt_messages_evaluated_total", 123456789012, NULL); /* copied in */
    t = render();
    assert_exposition(t);
    assert_true(has_line(t, "rivet_build_info{version=\"0.1.0\"} 1"));
    assert_true(has_line(t, "rivet_start_time_seconds 1700000000"));
    assert_true(has_line(t, "rivet_inbox_pending{channel=\"telegram\"} 3"));
    assert_true(has_line(t, "rivet_outbox_pending{channel=\"telegram\"} -0.5"));
    assert_true(has_line(t, "rivet_mqtt_connected 1"));
    assert_true(has_line(t, "rivet_mqtt_messages_evaluated_total 123456789012"));
    assert_true(has_line(t, "rivet_metrics_misuse_total 0"));
    free(t);
}

static void test_numbers(void **state)
{
    static const struct {
        double v;
        const char *want; /* NULL: any text that reads back as v */
    } cases[] = {
        {0.1, "0.1"},
        {-0.0, "0"},
        {-2, "-2"},
        {1700000000.5, "1700000000.5"},
        {9007199254740992.0, "9007199254740992"},
        {1e300, "1e+300"},
        {2.5e-7, "2.5e-07"},
        {1.0 / 3.0, "0.3333333333333333"},
        {0.1 + 0.7, "0.7999999999999999"},
        {1e21, "1e+21"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {1152921504606846976.0, NULL},
        {0.1 + 0.2, NULL},
        {-123.456, "-123.456"},
    };
    char want[128];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t;
        const char *line, *num;

        metrics_reset();
        metric_set("rivet_inbox_pending", cases[i].v, "channel", "x", NULL);
        t = render();
        assert_exposition(t);
        line = strstr(t, "\nrivet_inbox_pending{channel=\"x\"} ");
        assert_non_null(line);
        num = strchr(line, '}') + 2;
        if (cases[i].want) {
            snprintf(want, sizeof(want), "rivet_inbox_pending{channel=\"x\"} %s", cases[i].want);
            if (!has_line(t, want))
                fail_msg("%.17g: want \"%s\", got \"%.*s\"", cases[i].v, cases[i].want,
                         (int)strcspn(num, "\n"), num);
        } else {
            assert_true(strtod(num, NULL) == cases[i].v);
            assert_true(strcspn(num, "\n") <= 23); /* at most 17 digits */
        }
        free(t);
    }
}

/* ---- label values ---- */

static void test_escaping(void **state)
{
    char *t;

    metric_inc("rivet_webhook_requests_total", "path", "/a\"b\\c\nd", "status", "200", NULL);
    metric_inc("rivet_webhook_requests_total", "path", "\\\\\"\"\n\n", "status", "", NULL);
    metric_inc("rivet_webhook_requests_total", "path", "Grüße 🔧\ttab", "status", "200", NULL);
    t = render();
    assert_exposition(t);
    assert_true(
        has_line(t, "rivet_webhook_requests_total{path=\"/a\\\"b\\\\c\\nd\",status=\"200\"} 1"));
    assert_true(
        has_line(t, "rivet_webhook_requests_total{path=\"\\\\\\\\\\\"\\\"\\n\\n\",status=\"\"} 1"));
    assert_true(
        has_line(t, "rivet_webhook_requests_total{path=\"Grüße 🔧\ttab\",status=\"200\"} 1"));
    free(t);
}

static void test_bad_utf8(void **state)
{
    char *t;

    metric_inc("rivet_db_errors_total", "component",
               "\xff\xfe"
               "ab",
               NULL);
    metric_inc("rivet_db_errors_total", "component", "x\xe2\x82", NULL);    /* cut short */
    metric_inc("rivet_db_errors_total", "component", "\xc0\xaf", NULL);     /* overlong */
    metric_inc("rivet_db_errors_total", "component", "\xed\xa0\x80", NULL); /* surrogate */
    metric_inc("rivet_db_errors_total", "component",
               "\x80"
               "a\xe2\x82\xac",
               NULL);
    t = render();
    assert_exposition(t);
    assert_true(has_line(t, "rivet_db_errors_total{component=\"??ab\"} 1"));
    assert_true(has_line(t, "rivet_db_errors_total{component=\"x??\"} 1"));
    assert_true(has_line(t, "rivet_db_errors_total{component=\"??\"} 1"));
    assert_true(has_line(t, "rivet_db_errors_total{component=\"???\"} 1"));
    assert_true(has_line(t, "rivet_db_errors_total{component=\"?a€\"} 1"));
    free(t);
}

static void test_truncation(void **state)
{
    char v64[65], v70[71], want[256], v_e[66];
    char *t;

    memset(v64, 'a', 64);
    v64[64] = '\0';
    memset(v70, 'a', 70);
    v70[70] = '\0';
    /* 63 bytes and a 2-byte character: the character does not fit. */
    memset(v_e, 'b', 63);
    memcpy(v_e + 63, "é", 3);
    metric_inc("rivet_alarms_raised_total", "severity", v64, NULL);
    metric_inc("rivet_alarms_raised_total", "severity", v70, NULL); /* same first 64 bytes */
    metric_inc("rivet_alarms_raised_total", "severity", v_e, NULL);
    t = render();
    assert_exposition(t);
    assert_int_equal(count_lines(t, "rivet_alarms_raised_total{"), 2);
    snprintf(want, sizeof(want), "rivet_alarms_raised_total{severity=\"%s\"} 2", v64);
    assert_true(has_line(t, want));
    snprintf(want, sizeof(want), "rivet_alarms_raised_total{severity=\"%.63s\"} 1", v_e);
    assert_true(has_line(t, want));
    free(t);
}

/* ---- histograms ---- */

static void test_histogram(void **state)
{
    static const char *const le[] = {"0.001", "0.0025", "0.005", "0.01", "0.025",
                                     "0.05",  "0.1",    "0.25",  "0.5",  "1",
                                     "2.5",   "5",      "10",    "30",   "+Inf"};
    static const int cum[] = {2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5};
    static const double obs[] = {0.0005, 0.001, 0.003, 0.3, 100};
    char line[256];
    char *t;
    const char *p;

    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        metric_observe("rivet_handler_seconds", obs[i], "channel", "telegram", NULL);
    metric_observe("rivet_handler_seconds", 0.02, "channel", "whatsapp", NULL);
    t = render();
    assert_exposition(t);
    assert_true(has_line(t, "# TYPE rivet_handler_seconds histogram"));
    /* The buckets in order, cumulative, then _sum and _count. */
    p = strstr(t, "\nrivet_handler_seconds_bucket{channel=\"telegram\",le=\"0.001\"}");
    assert_non_null(p);
    p++;
    for (size_t i = 0; i < sizeof(le) / sizeof(le[0]); i++) {
        snprintf(line, sizeof(line),
                 "rivet_handler_seconds_bucket{channel=\"telegram\",le=\"%s\"} %d\n", le[i],
                 cum[i]);
        p = after_prefix(p, line);
    }
    p = after_prefix(p, "rivet_handler_seconds_sum{channel=\"telegram\"} ");
    assert_true(fabs(strtod(p, NULL) - 100.3045) < 1e-9);
    p = strchr(p, '\n') + 1;
    p = after_prefix(p, "rivet_handler_seconds_count{channel=\"telegram\"} 5\n");
    /* The second series follows. */
    after_prefix(p, "rivet_handler_seconds_bucket{channel=\"whatsapp\",le=\"0.001\"} 0\n");
    assert_true(has_line(t, "rivet_handler_seconds_bucket{channel=\"whatsapp\",le=\"0.025\"} 1"));
    assert_true(has_line(t, "rivet_handler_seconds_sum{channel=\"whatsapp\"} 0.02"));
    assert_true(has_line(t, "rivet_handler_seconds_count{channel=\"whatsapp\"} 1"));
    assert_int_equal(count_lines(t, "rivet_handler_seconds_bucket{"), 30);
    free(t);
}

static void test_histogram_unlabelled(void **state)
{
    char *t = render();

    /* Before any observation: every bucket at 0. */
    assert_true(has_line(t, "rivet_ocr_seconds_bucket{le=\"0.1\"} 0"));
    assert_true(has_line(t, "rivet_ocr_seconds_bucket{le=\"60\"} 0"));
    assert_true(has_line(t, "rivet_ocr_seconds_bucket{le=\"+Inf\"} 0"));
    assert_true(has_line(t, "rivet_ocr_seconds_sum 0"));
    assert_true(has_line(t, "rivet_ocr_seconds_count 0"));
    assert_int_equal(count_lines(t, "rivet_ocr_seconds_bucket{"), 13);
    free(t);

    metric_observe("rivet_ocr_seconds", 0.25, NULL);
    metric_observe("rivet_ocr_seconds", 0.5, NULL);
    metric_observe("rivet_ocr_seconds", 2, NULL);
    metric_observe("rivet_ocr_seconds", 100, NULL);
    metric_observe("rivet_ocr_seconds", -1, NULL); /* a clock step: first bucket */
    t = render();
    assert_exposition(t);
    assert_true(has_line(t, "rivet_ocr_seconds_bucket{le=\"0.1\"} 1"));
    assert_true(has_line(t, "rivet_ocr_seconds_bucket{le=\"0.25\"} 2"));
    assert_true(has_line(t, "rivet_ocr_seconds_bucket{le=\"0.5\"} 3"));
    assert_true(has_line(t, "rivet_ocr_seconds_bucket{le=\"1\"} 3"));
    assert_true(has_line(t, "rivet_ocr_seconds_bucket{le=\"2\"} 4"));
    assert_true(has_line(t, "rivet_ocr_seconds_bucket{le=\"60\"} 4"));
    assert_true(has_line(t, "rivet_ocr_seconds_bucket{le=\"+Inf\"} 5"));
    assert_true(has_line(t, "rivet_ocr_seconds_sum 101.75"));
    assert_true(has_line(t, "rivet_ocr_seconds_count 5"));
    assert_int_equal(count_lines(t, "rivet_ocr_seconds_bucket{"), 13);
    free(t);
}

/* ---- misuse ---- */

static void test_misuse(void **state)
{
    double n = 0;
    char *t;

#define MISUSED(call)                                                                              \
    do {                                                                                           \
        call;                                                                                      \
        n++;                                                                                       \
        if (misuse() != n)                                                                         \
            fail_msg("not counted as misuse: %s", #call);                                          \
    } while (0)

    MISUSED(metric_inc("rivet_no_such_family", NULL));
    MISUSED(metric_inc(NULL, NULL));
    MISUSED(metric_inc("rivet_messages_sent", "channel", "x", "result", "sent", NULL));
    /* Labels missing, misnamed, out of order, extra, NULL value. */
    MISUSED(metric_inc("rivet_messages_sent_total", NULL));
    MISUSED(metric_inc("rivet_messages_sent_total", "channel", "x", NULL));
    MISUSED(metric_inc("rivet_messages_sent_total", "channel", "x", "status", "sent", NULL));
    MISUSED(metric_inc("rivet_messages_sent_total", "result", "sent", "channel", "x", NULL));
    MISUSED(metric_inc("rivet_messages_sent_total", "channel", "x", "result", "sent", "extra", "y",
                       NULL));
    MISUSED(metric_inc("rivet_messages_sent_total", "channel", NULL, NULL));
    MISUSED(metric_inc("rivet_mqtt_messages_received_total", "channel", "x", NULL));
    MISUSED(metric_inc("rivet_handler_seconds", "CHANNEL", "x", NULL));
    /* Calls the type does not allow. */
    MISUSED(metric_observe("rivet_db_errors_total", 1, "component", "db", NULL));
    MISUSED(metric_observe("rivet_mqtt_connected", 1, NULL));
    MISUSED(metric_set("rivet_ocr_seconds", 1, NULL));
    MISUSED(metric_add("rivet_ocr_seconds", 1, NULL));
    MISUSED(metric_inc("rivet_handler_seconds", "channel", "x", NULL));
    /* Values the type does not allow. */
    MISUSED(metric_add("rivet_db_errors_total", -1, "component", "db", NULL));
    MISUSED(metric_add("rivet_alarm_escalations_total", NAN, NULL));
    MISUSED(metric_add("rivet_alarm_escalations_total", INFINITY, NULL));
    MISUSED(metric_set("rivet_alarm_escalations_total", -3, NULL));
    MISUSED(metric_set("rivet_alarm_escalations_total", NAN, NULL));
    MISUSED(metric_add("rivet_mqtt_connected", NAN, NULL));
    MISUSED(metric_add("rivet_mqtt_connected", -INFINITY, NULL));
    MISUSED(metric_observe("rivet_ocr_seconds", NAN, NULL));
    MISUSED(metric_observe("rivet_ocr_seconds", INFINITY, NULL));
#undef MISUSED

    /* Nothing of that left a trace but the count. */
    t = render();
    assert_exposition(t);
    assert_null(strstr(t, "rivet_messages_sent_total"));
    assert_null(strstr(t, "rivet_db_errors_total"));
    assert_null(strstr(t, "rivet_handler_seconds"));
    assert_true(has_line(t, "rivet_alarm_escalations_total 0"));
    assert_true(has_line(t, "rivet_mqtt_connected 0"));
    assert_true(has_line(t, "rivet_ocr_seconds_count 0"));
    free(t);

    /* Allowed: a gauge goes down, a counter kept elsewhere is set (even
     * lower: a reset), the misuse counter itself can be bumped. */
    metric_add("rivet_mqtt_connected", -1, NULL);
    metric_set("rivet_alarm_escalations_total", 7, NULL);
    metric_set("rivet_alarm_escalations_total", 2, NULL);
    metric_set("rivet_mqtt_connected", NAN, NULL);
    assert_true(misuse() == n);
    metric_inc("rivet_metrics_misuse_total", NULL);
    assert_true(misuse() == n + 1);
}

/* ---- limits ---- */

static void test_series_cap(void **state)
{
    char path[32];
    char *t;

    for (int i = 0; i < 64; i++) {
        snprintf(path, sizeof(path), "/p%d", i);
        metric_inc("rivet_webhook_requests_total", "path", path, "status", "200", NULL);
    }
    assert_true(misuse() == 0);
    /* Hostile paths: dropped, counted, whatever their number. */
    for (int i = 64; i < 1000; i++) {
        snprintf(path, sizeof(path), "/p%d", i);
        metric_inc("rivet_webhook_requests_total", "path", path, "status", "200", NULL);
    }
    assert_true(misuse() == 936);
    /* The 64 kept series still count, and other families still grow. */
    metric_inc("rivet_webhook_requests_total", "path", "/p0", "status", "200", NULL);
    metric_inc("rivet_webhook_requests_total", "path", "/p63", "status", "200", NULL);
    metric_inc("rivet_db_errors_total", "component", "inbox", NULL);
    t = render();
    assert_exposition(t);
    assert_int_equal(count_lines(t, "rivet_webhook_requests_total{"), 64);
    assert_true(has_line(t, "rivet_webhook_requests_total{path=\"/p0\",status=\"200\"} 2"));
    assert_true(has_line(t, "rivet_webhook_requests_total{path=\"/p63\",status=\"200\"} 2"));
    assert_null(strstr(t, "/p64\""));
    assert_true(has_line(t, "rivet_db_errors_total{component=\"inbox\"} 1"));
    assert_true(has_line(t, "rivet_metrics_misuse_total 936"));
    free(t);
    /* A reset frees the room. */
    metrics_reset();
    metric_inc("rivet_webhook_requests_total", "path", "/p999", "status", "200", NULL);
    assert_true(misuse() == 0);
}

static void test_render_limits(void **state)
{
    struct buf b;
    size_t full;
    char *t;

    metric_inc("rivet_messages_sent_total", "channel", "telegram", "result", "sent", NULL);
    t = render();
    full = strlen(t);

    /* Appends to what the buffer holds. */
    buf_init(&b, full + 3);
    assert_int_equal(buf_adds(&b, "abc"), 0);
    assert_int_equal(metrics_render(&b), 0);
    assert_int_equal(b.len, full + 3);
    assert_int_equal(strncmp(buf_str(&b), "abc", 3), 0);
    assert_string_equal(buf_str(&b) + 3, t);
    buf_free(&b);

    /* One byte short: -E2BIG and the buffer as it was. */
    buf_init(&b, full + 2);
    assert_int_equal(buf_adds(&b, "abc"), 0);
    assert_int_equal(metrics_render(&b), -E2BIG);
    assert_int_equal(b.len, 3);
    assert_string_equal(buf_str(&b), "abc");
    buf_free(&b);

    buf_init(&b, 10);
    assert_int_equal(metrics_render(&b), -E2BIG);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");
    buf_free(&b);

    buf_init(&b, 0);
    assert_int_equal(metrics_render(&b), -E2BIG);
    assert_string_equal(buf_str(&b), "");
    buf_free(&b);
    free(t);
}

/* ---- threads ---- */

#define THREADS 4
#define ROUNDS 50000

static void *hammer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char channel[16];

    snprintf(channel, sizeof(channel), "t%d", id);
    for (int i = 0; i < ROUNDS; i++) {
        metric_inc("rivet_messages_sent_total", "channel", "telegram", "result", "sent", NULL);
        metric_inc("rivet_updates_handled_total", "channel", channel, "outcome", "ok", NULL);
        metric_observe("rivet_ocr_seconds", 1, NULL);
        metric_add("rivet_outbox_pending", 1, "channel", "telegram", NULL);
        metric_add("rivet_outbox_pending", -1, "channel", "telegram", NULL);
        if (i % 10000 == 0) {
            struct buf b;

            buf_init(&b, 1 << 20);
            if (metrics_render(&b) != 0)
                abort();
            buf_free(&b);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t th[THREADS];
    char series[128];
    char *t;

    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    t = render();
    assert_exposition(t);
    assert_true(
        sample_value(t, "rivet_messages_sent_total{channel=\"telegram\",result=\"sent\"}") ==
        THREADS * ROUNDS);
    for (int i = 0; i < THREADS; i++) {
        snprintf(series, sizeof(series),
                 "rivet_updates_handled_total{channel=\"t%d\",outcome=\"ok\"}", i);
        assert_true(sample_value(t, series) == ROUNDS);
    }
    assert_true(sample_value(t, "rivet_ocr_seconds_count") == THREADS * ROUNDS);
    assert_true(sample_value(t, "rivet_ocr_seconds_bucket{le=\"1\"}") == THREADS * ROUNDS);
    assert_true(sample_value(t, "rivet_ocr_seconds_sum") == THREADS * ROUNDS);
    assert_true(sample_value(t, "rivet_outbox_pending{channel=\"telegram\"}") == 0);
    assert_true(sample_value(t, "rivet_metrics_misuse_total") == 0);
    free(t);
}

/* ---- hooks ---- */

static int hook_calls;

static void hook_a(void)
{
    hook_calls++;
    metric_set("rivet_ocr_jobs", hook_calls, NULL);
}

static void hook_b(void)
{
    metric_set("rivet_llm_in_flight", 7, NULL);
}

#define NOP_HOOK(n)                                                                                \
    static void hook_nop##n(void)                                                                  \
    {                                                                                              \
    }
NOP_HOOK(1)
NOP_HOOK(2)
NOP_HOOK(3)
NOP_HOOK(4)
NOP_HOOK(5)
NOP_HOOK(6)
NOP_HOOK(7)

static void test_render_hooks(void **state)
{
    void (*nops[])(void) = {hook_nop1, hook_nop2, hook_nop3, hook_nop4,
                            hook_nop5, hook_nop6, hook_nop7};
    char *t;

    hook_calls = 0;
    assert_int_equal(metrics_on_render(hook_a), 0);
    assert_int_equal(metrics_on_render(hook_a), 0); /* once only */
    assert_int_equal(metrics_on_render(hook_b), 0);
    t = render();
    assert_int_equal(hook_calls, 1);
    assert_true(has_line(t, "rivet_ocr_jobs 1"));
    assert_true(has_line(t, "rivet_llm_in_flight 7"));
    assert_exposition(t);
    free(t);
    t = render();
    assert_true(has_line(t, "rivet_ocr_jobs 2"));
    free(t);
    /* At most 8 hooks: 2 registered, 6 more fit, the 9th does not. */
    for (int i = 0; i < 6; i++)
        assert_int_equal(metrics_on_render(nops[i]), 0);
    assert_int_equal(metrics_on_render(nops[6]), -ENOSPC);
    assert_int_equal(metrics_on_render(hook_b), 0); /* already there */
    /* Reset forgets the hooks. */
    metrics_reset();
    t = render();
    assert_int_equal(hook_calls, 2); /* not called */
    assert_true(has_line(t, "rivet_ocr_jobs 0"));
    free(t);
}

/* ---- the whole exposition ---- */

static void test_format_all_families(void **state)
{
    char *t;

    metric_set("rivet_build_info", 1, "version", "0.1.0", NULL);
    metric_set("rivet_start_time_seconds", 1700000000.25, NULL);
    metric_inc("rivet_updates_received_total", "channel", "telegram", "outcome", "stored", NULL);
    metric_inc("rivet_updates_received_total", "channel", "whatsapp", "outcome", "duplicate", NULL);
    metric_inc("rivet_webhook_requests_total", "path", "/wa\"\\\n", "status", "403", NULL);
    metric_inc("rivet_updates_handled_total", "channel", "telegram", "outcome", "ok", NULL);
    metric_observe("rivet_handler_seconds", 0.042, "channel", "telegram", NULL);
    metric_observe("rivet_handler_seconds", 31, "channel", "whatsapp", NULL);
    metric_set("rivet_inbox_pending", 3, "channel", "telegram", NULL);
    metric_set("rivet_outbox_pending", NAN, "channel", "telegram", NULL);
    metric_set("rivet_outbox_pending", -INFINITY, "channel", "whatsapp", NULL);
    metric_inc("rivet_messages_sent_total", "channel", "whatsapp", "result", "template", NULL);
    metric_inc("rivet_message_statuses_total", "channel", "whatsapp", "status", "read", NULL);
    metric_inc("rivet_ocr_reads_total", "result", "ok", NULL);
    metric_observe("rivet_ocr_seconds", 4.2, NULL);
    metric_inc("rivet_llm_fallbacks_total", "result", "timeout", NULL);
    metric_set("rivet_ocr_jobs", 1, NULL);
    metric_set("rivet_ocr_max_jobs", 1, NULL);
    metric_set("rivet_ocr_waiting", 17, NULL);
    metric_inc("rivet_ocr_deferred_total", NULL);
    metric_set("rivet_llm_in_flight", 2, NULL);
    metric_set("rivet_llm_max_in_flight", 4, NULL);
    metric_set("rivet_llm_waits_total", 3, "result", "waited", NULL);
    metric_inc("rivet_assist_requests_total", "result", "ok", NULL);
    metric_observe("rivet_assist_seconds", 1.5, NULL);
    metric_add("rivet_assist_cost_usd_total", 0.0004, NULL);
    metric_set("rivet_mqtt_connected", 1, NULL);
    metric_set("rivet_mqtt_messages_received_total", 1e16, NULL);
    metric_inc("rivet_mqtt_messages_dropped_total", "reason", "payload \xff too big", NULL);
    metric_inc("rivet_mqtt_messages_evaluated_total", NULL);
    metric_inc("rivet_alarms_raised_total", "severity", "critical", NULL);
    metric_inc("rivet_alarm_escalations_total", NULL);
    metric_add("rivet_db_errors_total", 0.5, "component", "", NULL);
    metric_inc("rivet_bogus", NULL);
    t = render();
    assert_exposition(t);
    /* Every family once, with HELP and TYPE, in table order. */
    assert_int_equal(count_lines(t, "# HELP "), 31);
    assert_int_equal(count_lines(t, "# TYPE "), 31);
    assert_true(strstr(t, "# TYPE rivet_build_info gauge\n") == t + strcspn(t, "\n") + 1);
    assert_true(strstr(t, "# TYPE rivet_db_errors_total counter") <
                strstr(t, "# TYPE rivet_metrics_misuse_total counter"));
    assert_true(has_line(t, "rivet_metrics_misuse_total 1"));
    assert_true(has_line(t, "rivet_outbox_pending{channel=\"telegram\"} NaN"));
    assert_true(has_line(t, "rivet_outbox_pending{channel=\"whatsapp\"} -Inf"));
    assert_true(has_line(t, "rivet_mqtt_messages_received_total 1e+16"));
    assert_true(has_line(t, "rivet_mqtt_messages_dropped_total{reason=\"payload ? too big\"} 1"));
    assert_true(has_line(t, "rivet_handler_seconds_bucket{channel=\"whatsapp\",le=\"30\"} 0"));
    assert_true(has_line(t, "rivet_handler_seconds_bucket{channel=\"whatsapp\",le=\"+Inf\"} 1"));
    assert_true(has_line(t, "rivet_db_errors_total{component=\"\"} 0.5"));
    assert_true(has_line(t, "rivet_ocr_waiting 17"));
    assert_true(has_line(t, "rivet_llm_waits_total{result=\"waited\"} 3"));
    assert_true(t[strlen(t) - 1] == '\n');
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker),
        cmocka_unit_test_setup(test_empty, reset),
        cmocka_unit_test_setup(test_counter_labels, reset),
        cmocka_unit_test_setup(test_gauges, reset),
        cmocka_unit_test_setup(test_numbers, reset),
        cmocka_unit_test_setup(test_escaping, reset),
        cmocka_unit_test_setup(test_bad_utf8, reset),
        cmocka_unit_test_setup(test_truncation, reset),
        cmocka_unit_test_setup(test_histogram, reset),
        cmocka_unit_test_setup(test_histogram_unlabelled, reset),
        cmocka_unit_test_setup(test_misuse, reset),
        cmocka_unit_test_setup(test_series_cap, reset),
        cmocka_unit_test_setup(test_render_limits, reset),
        cmocka_unit_test_setup(test_threads, reset),
        cmocka_unit_test_setup(test_format_all_families, reset),
        cmocka_unit_test_setup(test_render_hooks, reset),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);

    metrics_reset(); /* frees the series, for LeakSanitizer */
    return r;
}
