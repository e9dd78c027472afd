/* Unit tests for alert/: topics, telemetry payloads (with the catalogue of
 * payloads under tests/fixtures/mqtt, see its README), rule compilation
 * and its error messages, schedules across midnight and timezones, and
 * rule evaluation with its "why" text. The clock is fixed: NOW is
 * 2026-02-19T12:00:00Z, a Thursday. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "arena.h"
#include "text.h"

#define MQTT_FIXTURES FIXTURES "/mqtt"
#define NOW 1771502400.0 /* 2026-02-19T12:00:00Z */

/* ---- helpers ---- */

static int arena_setup(void **state)
{
    struct arena *a = NULL;

    if (arena_new(&a) < 0)
        return -1;
    *state = a;
    return 0;
}

static int arena_teardown(void **state)
{
    arena_free(*state);
    return 0;
}

/* Seconds since the epoch of an RFC 3339 time the test trusts. */
static double at(const char *s)
{
    double t = 0;

    if (time_parse_rfc3339(s, &t) < 0)
        fail_msg("bad time in test: %s", s);
    return t;
}

static struct rule *compile_ok(const char *json)
{
    struct rule *r = NULL;
    char err[256];
    int rc = rule_compile(json, strlen(json), &r, err, sizeof(err));

    if (rc != 0)
        fail_msg("rule_compile failed (%d): %s\n  rule: %s", rc, err, json);
    return r;
}

/* Parses a telemetry payload that must be good, at NOW. */
static struct telemetry tm(struct arena *a, const char *json)
{
    struct telemetry t;
    enum drop_reason why = DROP_NONE;

    if (telemetry_parse(a, TOPIC_TELEMETRY, json, strlen(json), NOW, &t, &why) != 0)
        fail_msg("telemetry_parse refused (%s): %s", drop_reason_name(why), json);
    return t;
}

static enum drop_reason drop(struct arena *a, enum topic_kind kind, const char *json)
{
    struct telemetry t;
    enum drop_reason why = DROP_NONE;
    int rc = telemetry_parse(a, kind, json, strlen(json), NOW, &t, &why);

    if (rc == 0)
        return DROP_NONE;
    assert_int_equal(rc, -EINVAL);
    assert_int_not_equal(why, DROP_NONE);
    return why;
}

/* A rule with one comparison, for the operator tests. */
static struct rule *leaf_rule(const char *param, const char *op, const char *threshold)
{
    char json[512];

    snprintf(json, sizeof(json),
             "{\"name\": \"t\", \"severity\": \"low\", \"condition\": {\"parameter\": \"%s\", "
             "\"operator\": \"%s\", \"threshold\": %s}}",
             param, op, threshold);
    return compile_ok(json);
}

/* Whether r holds for the one-metric payload {"metrics": {name: value}}. */
static bool holds(struct arena *a, const struct rule *r, const char *metrics)
{
    char json[512];
    struct telemetry t;

    snprintf(json, sizeof(json), "{\"metrics\": %s}", metrics);
    t = tm(a, json);
    return rule_eval(r, &t, NULL, 0);
}

/* The whole file (the caller frees), or NULL. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        /* Exactly n bytes, no NUL: the parser must not read past len
         * (ASan tells). One byte for an empty file, so malloc gives a
         * pointer. */
        buf = malloc(n > 0 ? (size_t)n : 1);
        if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return buf;
}

/* ---- names ---- */

static void test_severity(void **state)
{
    enum severity s;

    (void)state;
    assert_string_equal(severity_name(SEV_LOW), "low");
    assert_string_equal(severity_name(SEV_MEDIUM), "medium");
    assert_string_equal(severity_name(SEV_HIGH), "high");
    assert_string_equal(severity_name(SEV_CRITICAL), "critical");
    for (int i = 0; i < SEV_COUNT; i++) {
        assert_int_equal(severity_parse(severity_name((enum severity)i), &s), 0);
        assert_int_equal(s, i);
    }
    assert_int_equal(severity_parse("CRITICAL", &s), 0);
    assert_int_equal(s, SEV_CRITICAL);
    assert_int_equal(severity_parse("High", &s), 0);
    assert_int_equal(s, SEV_HIGH);
    assert_int_equal(severity_parse("urgent", &s), -EINVAL);
    assert_int_equal(severity_parse("", &s), -EINVAL);
    assert_int_equal(severity_parse("hig", &s), -EINVAL);
    assert_int_equal(severity_parse(NULL, &s), -EINVAL);
}

static void test_drop_reason_names(void **state)
{
    (void)state;
    assert_string_equal(drop_reason_name(DROP_NONE), "none");
    assert_string_equal(drop_reason_name(DROP_TOPIC), "topic");
    assert_string_equal(drop_reason_name(DROP_TOO_BIG), "too_big");
    assert_string_equal(drop_reason_name(DROP_NOT_JSON), "not_json");
    assert_string_equal(drop_reason_name(DROP_NOT_OBJECT), "not_object");
    assert_string_equal(drop_reason_name(DROP_METRICS), "metrics");
    assert_string_equal(drop_reason_name(DROP_VALUE), "value");
    assert_string_equal(drop_reason_name(DROP_TOO_MANY), "too_many");
    assert_string_equal(drop_reason_name(DROP_NAME), "name");
    assert_string_equal(drop_reason_name(DROP_TIMESTAMP), "timestamp");
    assert_string_equal(drop_reason_name(DROP_FUTURE), "future");
    assert_string_equal(drop_reason_name(DROP_ALARM), "alarm");
    assert_string_equal(drop_reason_name(DROP_UNKNOWN_FACTORY), "unknown_factory");
    assert_string_equal(drop_reason_name(DROP_UNKNOWN_DEVICE), "unknown_device");
    assert_string_equal(drop_reason_name(DROP_DEVICE_LIMIT), "device_limit");
    assert_string_equal(drop_reason_name(DROP_DATABASE), "database");
    assert_string_equal(drop_reason_name(DROP_REASON_COUNT), "unknown");
    /* Every name distinct and snake_case (they become metric labels). */
    for (int i = 0; i < DROP_REASON_COUNT; i++) {
        const char *n = drop_reason_name((enum drop_reason)i);

        assert_int_equal(strspn(n, "abcdefghijklmnopqrstuvwxyz_"), strlen(n));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(n, drop_reason_name((enum drop_reason)j));
    }
}

/* ---- topics ---- */

static void test_topic_good(void **state)
{
    char slug[SLUG_MAX + 1], key[DEVICE_KEY_MAX + 1], topic[256];
    enum topic_kind kind;
    char long_slug[SLUG_MAX + 1], long_key[DEVICE_KEY_MAX + 1];

    (void)state;
    assert_int_equal(topic_parse("factories/acme/devices/cnc-1/telemetry", slug, key, &kind), 0);
    assert_string_equal(slug, "acme");
    assert_string_equal(key, "cnc-1");
    assert_int_equal(kind, TOPIC_TELEMETRY);
    assert_int_equal(topic_parse("factories/plant-2/devices/PLC_7.a:b-c/alarm", slug, key, &kind),
                     0);
    assert_string_equal(slug, "plant-2");
    assert_string_equal(key, "PLC_7.a:b-c");
    assert_int_equal(kind, TOPIC_ALARM);
    assert_int_equal(topic_parse("factories/0/devices/x/alarm", slug, key, &kind), 0);
    assert_string_equal(slug, "0");

    /* The longest slug and key. */
    memset(long_slug, 'a', SLUG_MAX);
    long_slug[SLUG_MAX] = '\0';
    memset(long_key, 'K', DEVICE_KEY_MAX);
    long_key[DEVICE_KEY_MAX] = '\0';
    snprintf(topic, sizeof(topic), "factories/%s/devices/%s/telemetry", long_slug, long_key);
    assert_int_equal(topic_parse(topic, slug, key, &kind), 0);
    assert_string_equal(slug, long_slug);
    assert_string_equal(key, long_key);
}

static void test_topic_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "factories",
        "factories/acme",
        "factories/acme/devices/cnc-1",
        "factories/acme/devices/cnc-1/",
        "factories/acme/devices/cnc-1/telemetry/",
        "factories/acme/devices/cnc-1/telemetry/extra",
        "/factories/acme/devices/cnc-1/telemetry",
        "factories//devices/cnc-1/telemetry",
        "factories/acme/devices//telemetry",
        "factories/acme/devices/cnc-1/status",
        "factories/acme/devices/cnc-1/Telemetry",
        "factories/acme/device/cnc-1/telemetry",
        "Factories/acme/devices/cnc-1/telemetry",
        "factories/+/devices/cnc-1/telemetry",
        "factories/acme/devices/+/telemetry",
        "factories/acme/devices/#",
        "factories/#",
        "factories/acme/devices/cnc+1/telemetry",
        "factories/Acme/devices/cnc-1/telemetry",   /* slugs are lower case */
        "factories/-acme/devices/cnc-1/telemetry",  /* and start with a letter or digit */
        "factories/ac_me/devices/cnc-1/telemetry",  /* no underscore in a slug */
        "factories/acme/devices/cnc 1/telemetry",   /* no space in a key */
        "factories/acme/devices/cnc/1/telemetry",   /* six levels */
        "factories/acme/devices/cnc-1/telemetry\n", /* trailing bytes */
        "factories/acme/devices/cnc-\xc3\xa9/telemetry",
    };
    char slug[SLUG_MAX + 1] = "unchanged", key[DEVICE_KEY_MAX + 1] = "unchanged", topic[256];
    enum topic_kind kind = TOPIC_ALARM;
    char s[SLUG_MAX + 2], k[DEVICE_KEY_MAX + 2];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (topic_parse(bad[i], slug, key, &kind) != -EINVAL)
            fail_msg("accepted topic \"%s\"", bad[i]);
    assert_int_equal(topic_parse(NULL, slug, key, &kind), -EINVAL);
    /* Nothing written on failure. */
    assert_string_equal(slug, "unchanged");
    assert_string_equal(key, "unchanged");
    assert_int_equal(kind, TOPIC_ALARM);

    /* One byte too long, slug and key. */
    memset(s, 'a', SLUG_MAX + 1);
    s[SLUG_MAX + 1] = '\0';
    snprintf(topic, sizeof(topic), "factories/%s/devices/k/telemetry", s);
    assert_int_equal(topic_parse(topic, slug, key, &kind), -EINVAL);
    memset(k, 'k', DEVICE_KEY_MAX + 1);
    k[DEVICE_KEY_MAX + 1] = '\0';
    snprintf(topic, sizeof(topic), "factories/acme/devices/%s/telemetry", k);
    assert_int_equal(topic_parse(topic, slug, key, &kind), -EINVAL);
}

static void test_device_key_valid(void **state)
{
    char k[DEVICE_KEY_MAX + 2];

    (void)state;
    assert_true(device_key_valid("cnc-1"));
    assert_true(device_key_valid("A.b:c_d-9"));
    assert_false(device_key_valid(""));
    assert_false(device_key_valid(NULL));
    assert_false(device_key_valid("cnc 1"));
    assert_false(device_key_valid("cnc/1"));
    assert_false(device_key_valid("cnc+"));
    assert_false(device_key_valid("caf\xc3\xa9"));
    memset(k, 'k', DEVICE_KEY_MAX);
    k[DEVICE_KEY_MAX] = '\0';
    assert_true(device_key_valid(k));
    k[DEVICE_KEY_MAX] = 'k';
    k[DEVICE_KEY_MAX + 1] = '\0';
    assert_false(device_key_valid(k));
}

/* ---- time ---- */

static void test_time_parse_good(void **state)
{
    static const struct {
        const char *s;
        double want;
    } good[] = {
        {"2026-02-19T12:00:00Z", NOW},
        {"2026-02-19T10:30:00Z", 1771497000},
        {"2026-02-19t12:00:00z", NOW},
        {"2026-02-19 12:00:00Z", NOW},
        {"2026-02-19T13:00:00+01:00", NOW},
        {"2026-02-19T17:30:00+05:30", NOW},
        {"2026-02-19T07:00:00-05:00", NOW},
        {"2026-02-20T02:00:00+14:00", NOW},
        {"2026-02-19T12:00:00-00:00", NOW},
        {"2026-02-19T12:00:00.5Z", NOW + 0.5},
        {"2026-02-19T12:00:00.250+00:00", NOW + 0.25},
        {"1970-01-01T00:00:00Z", 0},
        {"1969-12-31T00:00:00Z", -86400},
        {"2000-02-29T23:59:60Z", 951868800}, /* a leap second reads as the next one */
        {"2024-02-29T00:00:00Z", 1709164800},
        {"2100-03-01T00:00:00Z", 4107542400},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        double t = -1;

        if (time_parse_rfc3339(good[i].s, &t) != 0)
            fail_msg("refused \"%s\"", good[i].s);
        if (t != good[i].want)
            fail_msg("\"%s\": %.3f, want %.3f", good[i].s, t, good[i].want);
    }
}

static void test_time_parse_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "yesterday",
        "2026-02-19",
        "2026-02-19T12:00",
        "2026-02-19T12:00Z",
        "2026-02-19T12:00:00",       /* no offset: refused as ambiguous */
        "2026-13-19T12:00:00Z",      /* month 13 */
        "2026-00-19T12:00:00Z",      /* month 0 */
        "2026-02-30T12:00:00Z",      /* February 30 */
        "2025-02-29T12:00:00Z",      /* not a leap year */
        "2100-02-29T12:00:00Z",      /* nor is 2100 */
        "2026-04-31T12:00:00Z",      /* April has 30 days */
        "2026-02-00T12:00:00Z",      /* day 0 */
        "2026-02-19T24:00:00Z",      /* hour 24 */
        "2026-02-19T12:60:00Z",      /* minute 60 */
        "2026-02-19T12:00:61Z",      /* second 61 */
        "2026-02-19T12:00:00+24:00", /* offset hours */
        "2026-02-19T12:00:00+01:60", /* offset minutes */
        "2026-02-19T12:00:00+0100",  /* offset without colon */
        "2026-02-19T12:00:00+01",
        "2026-02-19T12:00:00.Z", /* a point without digits */
        "2026-02-19T12:00:00Zx", /* trailing bytes */
        "2026-02-19T12:00:00Z ",
        " 2026-02-19T12:00:00Z",
        "2026-02-19X12:00:00Z",
        "2026/02/19T12:00:00Z",
        "26-02-19T12:00:00Z",
        "2026-2-19T12:00:00Z",
        "+2026-02-19T12:00:00Z",
        "2026-02-19T12:00:00,5Z",
        "1771502400",
    };
    double t = 42;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (time_parse_rfc3339(bad[i], &t) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(time_parse_rfc3339(NULL, &t), -EINVAL);
    assert_true(t == 42); /* untouched */
}

/* ---- telemetry ---- */

static void test_telemetry_parse(void **state)
{
    struct arena *a = *state;
    struct telemetry t = tm(a, "{\"timestamp\": \"2026-02-19T10:30:00Z\", \"metrics\": "
                               "{\"spindle_temp\": 82.5, \"coolant_flow\": 3.2, \"rpm\": 12000, "
                               "\"door_open\": true, \"estop\": false, \"b\": -1e-3}}");
    const struct metric *m;

    assert_true(t.has_ts);
    assert_true(t.ts == 1771497000);
    assert_int_equal(t.n_metrics, 6);
    /* Sorted by name. */
    for (int i = 1; i < t.n_metrics; i++)
        assert_true(strcmp(t.metrics[i - 1].name, t.metrics[i].name) < 0);
    m = telemetry_get(&t, "spindle_temp");
    assert_non_null(m);
    assert_true(m->value == 82.5);
    assert_false(m->is_bool);
    m = telemetry_get(&t, "rpm");
    assert_true(m->value == 12000);
    m = telemetry_get(&t, "door_open");
    assert_true(m->is_bool);
    assert_true(m->value == 1);
    m = telemetry_get(&t, "estop");
    assert_true(m->is_bool);
    assert_true(m->value == 0);
    assert_true(telemetry_get(&t, "b")->value == -0.001);
    assert_null(telemetry_get(&t, "spindle"));
    assert_null(telemetry_get(&t, "spindle_temp2"));
    assert_null(telemetry_get(&t, ""));
    assert_null(telemetry_get(&t, NULL));

    /* No timestamp: now. */
    t = tm(a, "{\"metrics\": {\"x\": 1}}");
    assert_false(t.has_ts);
    assert_true(t.ts == NOW);
    t = tm(a, "{\"timestamp\": null, \"metrics\": {\"x\": 1}}");
    assert_false(t.has_ts);
    /* Unknown top-level keys are ignored. */
    t = tm(a, "{\"firmware\": \"2.1\", \"seq\": [1, 2], \"metrics\": {\"x\": 1}}");
    assert_int_equal(t.n_metrics, 1);
    /* Integers past 64 bits are numbers all the same. */
    t = tm(a, "{\"metrics\": {\"counter\": 123456789012345678901234567890}}");
    assert_true(t.metrics[0].value == 1.2345678901234568e29);
}

/* The common message is scanned without jansson; anything unusual goes
 * the full way. An extra top-level key sends the same message the full way
 * (the scan declines keys it does not know), so each payload below is read
 * both ways and must come out the same: accepted or not, and the same
 * metrics, values, kinds and timestamp. */
static void test_telemetry_scan_agrees(void **state)
{
    static const char *const payloads[] = {
        "{\"metrics\": {\"a\": 1}}",
        "{\"timestamp\": \"2026-02-19T10:30:00.123456Z\", \"metrics\": {\"a\": 1.5, \"b\": true}}",
        "  {\n\t\"metrics\" :{ \"z\" : -0 , \"y\":false,\"x\":1E-3 } , \"timestamp\":"
        "\"2026-02-19T11:00:00+02:00\"}\r\n",
        "{\"metrics\": {\"n\": 123456789012345678901234567890, \"m\": 0.1, \"o\": 1e308}}",
        "{\"metrics\": {\"n\": 1e309}}",
        "{\"metrics\": {\"n\": 1e-400}}",
        "{\"metrics\": {\"t\": 70, \"t\": 82.5}}",
        "{\"metrics\": {\"a\\u0062\": 2}}",
        "{\"metrics\": {\"\u00e9t\u00e9\": 2, \"温度\": 21.5}}",
        "{\"metrics\": {\"a\": 01}}",
        "{\"metrics\": {\"a\": .5}}",
        "{\"metrics\": {\"a\": 1.}}",
        "{\"metrics\": {\"a\": +1}}",
        "{\"metrics\": {\"a\": 1,}}",
        "{\"metrics\": {\"a\": 1}} x",
        "{\"metrics\": {\"a\": tru}}",
        "{\"metrics\": {\"a\": null}}",
        "{\"metrics\": {\"a\": \"1\"}}",
        "{\"metrics\": {}}",
        "{\"metrics\": {\"a\": 1}, \"metrics\": {\"b\": 2}}",
        "{\"timestamp\": \"2099-01-01T00:00:00Z\", \"metrics\": {\"a\": 1}}",
        "{\"timestamp\": \"2026-02-19\", \"metrics\": {\"a\": 1}}",
        "{\"timestamp\": 1771502400, \"metrics\": {\"a\": 1}}",
        "{\"metrics\": {\"a\x01\": 1}}",
        "{\"metrics\": {\"\xc3\x28\": 1}}",
        "{\"metrics\": {\"a\": 1}",
    };
    struct arena *a = *state;

    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        const char *p = payloads[i], *brace = strchr(p, '{');
        char slow[512];
        struct telemetry t1, t2;
        enum drop_reason w1, w2;
        int r1, r2;

        size_t head;

        assert_non_null(brace);
        head = (size_t)(brace - p) + 1;
        assert_true(strlen(p) + 10 < sizeof(slow));
        memcpy(slow, p, head);
        strcpy(slow + head, "\"_\": 0, ");
        strcat(slow, brace + 1);
        r1 = telemetry_parse(a, TOPIC_TELEMETRY, p, strlen(p), NOW, &t1, &w1);
        r2 = telemetry_parse(a, TOPIC_TELEMETRY, slow, strlen(slow), NOW, &t2, &w2);
        if (r1 != r2)
            fail_msg("%s: %d (%s) scanned, %d (%s) in full", p, r1, drop_reason_name(w1), r2,
                     drop_reason_name(w2));
        if (r1 < 0)
            continue;
        assert_int_equal(t1.n_metrics, t2.n_metrics);
        assert_true(t1.ts == t2.ts);
        assert_true(t1.has_ts == t2.has_ts);
        for (int j = 0; j < t1.n_metrics; j++) {
            assert_string_equal(t1.metrics[j].name, t2.metrics[j].name);
            assert_true(t1.metrics[j].value == t2.metrics[j].value);
            assert_true(t1.metrics[j].is_bool == t2.metrics[j].is_bool);
            assert_ptr_equal(
                telemetry_get_hashed(&t1, t1.metrics[j].name, metric_hash(t1.metrics[j].name)),
                &t1.metrics[j]);
        }
    }
}

static void test_telemetry_duplicate_name(void **state)
{
    struct arena *a = *state;
    struct telemetry t = tm(a, "{\"metrics\": {\"t\": 70, \"u\": 1, \"t\": 82.5}}");

    assert_int_equal(t.n_metrics, 2);
    assert_true(telemetry_get(&t, "t")->value == 82.5);
}

static void test_telemetry_future(void **state)
{
    struct arena *a = *state;
    struct telemetry t;

    /* Relative to NOW: an hour ahead is refused, five minutes is the
     * tolerance, a year back is kept as it is. */
    assert_int_equal(drop(a, TOPIC_TELEMETRY,
                          "{\"timestamp\": \"2026-02-19T13:00:00Z\", \"metrics\": {\"x\": 1}}"),
                     DROP_FUTURE);
    assert_int_equal(drop(a, TOPIC_TELEMETRY,
                          "{\"timestamp\": \"2026-02-19T12:05:01Z\", \"metrics\": {\"x\": 1}}"),
                     DROP_FUTURE);
    assert_int_equal(drop(a, TOPIC_TELEMETRY,
                          "{\"timestamp\": \"2026-02-19T12:05:00Z\", \"metrics\": {\"x\": 1}}"),
                     DROP_NONE);
    /* The same instant written in another zone. */
    assert_int_equal(
        drop(a, TOPIC_TELEMETRY,
             "{\"timestamp\": \"2026-02-19T18:35:00+05:30\", \"metrics\": {\"x\": 1}}"),
        DROP_FUTURE);
    t = tm(a, "{\"timestamp\": \"2025-02-19T12:00:00Z\", \"metrics\": {\"x\": 1}}");
    assert_true(t.has_ts);
    assert_true(t.ts == NOW - 365 * 86400);
}

static void test_telemetry_limits(void **state)
{
    struct arena *a = *state;
    char json[16384], name[METRIC_NAME_MAX + 2];
    size_t n;
    struct telemetry t;

    /* 256 metrics pass, 257 do not. */
    n = (size_t)snprintf(json, sizeof(json), "{\"metrics\": {");
    for (int i = 0; i < TELEMETRY_MAX_METRICS; i++)
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"m%03d\": %d", i ? ", " : "", i, i);
    snprintf(json + n, sizeof(json) - n, "}}");
    t = tm(a, json);
    assert_int_equal(t.n_metrics, TELEMETRY_MAX_METRICS);
    assert_true(telemetry_get(&t, "m255")->value == 255);
    snprintf(json + n, sizeof(json) - n, ", \"m256\": 1}}");
    assert_int_equal(drop(a, TOPIC_TELEMETRY, json), DROP_TOO_MANY);

    /* A name of 64 bytes passes, 65 does not. */
    memset(name, 'n', METRIC_NAME_MAX);
    name[METRIC_NAME_MAX] = '\0';
    snprintf(json, sizeof(json), "{\"metrics\": {\"%s\": 1}}", name);
    t = tm(a, json);
    assert_string_equal(t.metrics[0].name, name);
    name[METRIC_NAME_MAX] = 'n';
    name[METRIC_NAME_MAX + 1] = '\0';
    snprintf(json, sizeof(json), "{\"metrics\": {\"%s\": 1}}", name);
    assert_int_equal(drop(a, TOPIC_TELEMETRY, json), DROP_NAME);

    assert_true(metric_name_valid("spindle_temp", 12));
    assert_true(metric_name_valid("\xd1\x82", 2));
    assert_false(metric_name_valid("", 0));
    assert_false(metric_name_valid("a\tb", 3));
    assert_false(metric_name_valid("\xd1", 1));
    assert_false(metric_name_valid(NULL, 0));
}

static void test_telemetry_size(void **state)
{
    struct arena *a = *state;
    size_t len = TELEMETRY_MAX_BYTES;
    char *p = malloc(len + 1);
    struct telemetry t;
    enum drop_reason why;
    static const char head[] = "{\"metrics\": {\"x\": 1}, \"pad\": \"";

    /* Exactly the limit passes; one byte more is too big, whatever it is. */
    assert_non_null(p);
    memset(p, 'x', len + 1);
    memcpy(p, head, sizeof(head) - 1);
    memcpy(p + len - 2, "\"}", 2);
    assert_int_equal(telemetry_parse(a, TOPIC_TELEMETRY, p, len, NOW, &t, &why), 0);
    assert_int_equal(why, DROP_NONE);
    memcpy(p + len - 2, "x\"}", 3);
    assert_int_equal(telemetry_parse(a, TOPIC_TELEMETRY, p, len + 1, NOW, &t, &why), -EINVAL);
    assert_int_equal(why, DROP_TOO_BIG);
    free(p);

    /* Only len bytes are read: a good payload followed by garbage. */
    assert_int_equal(
        telemetry_parse(a, TOPIC_TELEMETRY, "{\"metrics\": {\"x\": 1}}garbage", 21, NOW, &t, &why),
        0);
    assert_int_equal(telemetry_parse(a, TOPIC_TELEMETRY, NULL, 0, NOW, &t, &why), -EINVAL);
    assert_int_equal(why, DROP_NOT_JSON);
}

static void test_telemetry_alarm(void **state)
{
    struct arena *a = *state;
    struct telemetry t;
    enum drop_reason why;
    const char *p = "{\"severity\": \"High\", \"code\": \"E042\", \"message\": \"Spindle "
                    "overheat\", \"metrics\": {\"spindle_temp\": 95}}";

    assert_int_equal(telemetry_parse(a, TOPIC_ALARM, p, strlen(p), NOW, &t, &why), 0);
    assert_int_equal(t.severity, SEV_HIGH);
    assert_string_equal(t.code, "E042");
    assert_string_equal(t.message, "Spindle overheat");
    assert_int_equal(t.n_metrics, 1);
    assert_false(t.has_ts);

    p = "{\"severity\": \"low\", \"message\": \"Oil low\"}";
    assert_int_equal(telemetry_parse(a, TOPIC_ALARM, p, strlen(p), NOW, &t, &why), 0);
    assert_null(t.code);
    assert_string_equal(t.message, "Oil low");
    assert_int_equal(t.n_metrics, 0);
    assert_null(telemetry_get(&t, "x"));

    p = "{\"severity\": \"critical\", \"code\": \"E1\", \"message\": null}";
    assert_int_equal(telemetry_parse(a, TOPIC_ALARM, p, strlen(p), NOW, &t, &why), 0);
    assert_null(t.message);

    /* The alarm's fields mean nothing on the telemetry topic. */
    assert_int_equal(drop(a, TOPIC_TELEMETRY, "{\"severity\": \"high\", \"code\": \"E1\"}"),
                     DROP_METRICS);
    /* A message of 500 characters, two bytes each, passes; 501 does not. */
    {
        char msg[1100] = "{\"severity\": \"high\", \"message\": \"";
        size_t n = strlen(msg);

        for (int i = 0; i < ALARM_MESSAGE_MAX; i++, n += 2)
            memcpy(msg + n, "\xd0\x9f", 2);
        memcpy(msg + n, "\"}", 3);
        assert_int_equal(drop(a, TOPIC_ALARM, msg), DROP_NONE);
        memcpy(msg + n, "!\"}", 4);
        assert_int_equal(drop(a, TOPIC_ALARM, msg), DROP_ALARM);
    }
}

static void test_telemetry_snapshot(void **state)
{
    struct arena *a = *state;
    struct telemetry t = tm(a, "{\"metrics\": {\"t\": 82.5, \"flow\": 3.2, \"door\": true, "
                               "\"off\": false, \"big\": 1e20, \"n\": -7, \"q\\\"x\": 0.1, "
                               "\"\xd1\x82\": 12345678901234567}}");
    struct telemetry empty = {0};

    assert_string_equal(telemetry_snapshot(a, &t),
                        "{\"big\":1e+20,\"door\":true,\"flow\":3.2,\"n\":-7,\"off\":false,"
                        "\"q\\\"x\":0.1,\"t\":82.5,\"\xd1\x82\":12345678901234568}");
    assert_string_equal(telemetry_snapshot(a, &empty), "{}");
}

/* ---- the payload catalogue ---- */

/* "NNN-REASON.json" or "NNN-alarm-REASON.json" into the topic kind and
 * the rest of the name (reason or description). */
static bool fixture_name(const char *file, enum topic_kind *kind, char *rest, size_t n)
{
    size_t len = strlen(file);

    if (len < 10 || strcmp(file + len - 5, ".json") || strspn(file, "0123456789") != 3 ||
        file[3] != '-')
        return false;
    file += 4;
    len -= 4 + 5;
    *kind = TOPIC_TELEMETRY;
    if (!strncmp(file, "alarm-", 6)) {
        *kind = TOPIC_ALARM;
        file += 6;
        len -= 6;
    }
    snprintf(rest, n, "%.*s", (int)len, file);
    return true;
}

static int run_fixtures(const char *dir, bool good, int *count)
{
    char path[1024], rest[128];
    DIR *d = opendir(dir);
    struct dirent *de;
    int failures = 0;

    if (!d)
        fail_msg("cannot open %s", dir);
    while ((de = readdir(d))) {
        struct arena *a = NULL;
        struct telemetry t;
        enum drop_reason why = DROP_NONE;
        enum topic_kind kind;
        size_t len = 0;
        char *p;
        int rc;

        if (de->d_name[0] == '.')
            continue;
        if (!fixture_name(de->d_name, &kind, rest, sizeof(rest))) {
            print_message("# %s: name not NNN-[alarm-]WHAT.json\n", de->d_name);
            failures++;
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        p = read_file(path, &len);
        assert_non_null(p);
        assert_int_equal(arena_new(&a), 0);
        rc = telemetry_parse(a, kind, p, len, NOW, &t, &why);
        if (good && rc != 0) {
            print_message("# %s: dropped as %s\n", de->d_name, drop_reason_name(why));
            failures++;
        } else if (good) {
            /* The snapshot of a good message is a JSON object of its
             * metrics. */
            json_t *snap = json_loads(telemetry_snapshot(a, &t), 0, NULL);

            if (!json_is_object(snap) || (int)json_object_size(snap) != t.n_metrics) {
                print_message("# %s: bad snapshot\n", de->d_name);
                failures++;
            }
            json_decref(snap);
        } else if (rc != -EINVAL || strcmp(drop_reason_name(why), rest)) {
            print_message("# %s: %s, want %s\n", de->d_name,
                          rc == 0 ? "accepted" : drop_reason_name(why), rest);
            failures++;
        }
        (*count)++;
        arena_free(a);
        free(p);
    }
    closedir(d);
    return failures;
}

static void test_fixtures_bad(void **state)
{
    int n = 0, failures;

    (void)state;
    failures = run_fixtures(MQTT_FIXTURES "/bad", false, &n);
    assert_int_equal(failures, 0);
    assert_true(n >= 60);
}

static void test_fixtures_good(void **state)
{
    int n = 0, failures;
    struct arena *a = NULL;
    char *p;
    size_t len;
    struct telemetry t;
    enum drop_reason why;

    (void)state;
    failures = run_fixtures(MQTT_FIXTURES "/good", true, &n);
    assert_int_equal(failures, 0);
    assert_true(n >= 10);

    /* The duplicated name keeps its last value. */
    p = read_file(MQTT_FIXTURES "/good/014-telemetry-duplicate-name.json", &len);
    assert_non_null(p);
    assert_int_equal(arena_new(&a), 0);
    assert_int_equal(telemetry_parse(a, TOPIC_TELEMETRY, p, len, NOW, &t, &why), 0);
    assert_true(telemetry_get(&t, "spindle_temp")->value == 82.5);
    arena_free(a);
    free(p);
}

/* ---- rules: evaluation ---- */

static void test_rule_operators(void **state)
{
    struct arena *a = *state;
    static const struct {
        const char *op;
        bool below, at, above; /* value 79.9, 80, 80.1 against 80 */
    } ops[] = {
        {"gt", false, false, true}, {"gte", false, true, true}, {"lt", true, false, false},
        {"lte", true, true, false}, {"eq", false, true, false}, {"neq", true, false, true},
        {"GT", false, false, true}, /* operators are case-insensitive */
    };

    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        struct rule *r = leaf_rule("t", ops[i].op, "80");

        if (holds(a, r, "{\"t\": 79.9}") != ops[i].below ||
            holds(a, r, "{\"t\": 80}") != ops[i].at || holds(a, r, "{\"t\": 80.0}") != ops[i].at ||
            holds(a, r, "{\"t\": 80.1}") != ops[i].above)
            fail_msg("operator %s", ops[i].op);
        rule_free(r);
    }
    /* Negative and fractional thresholds, compared exactly. */
    struct rule *r = leaf_rule("t", "lt", "-0.5");
    assert_true(holds(a, r, "{\"t\": -0.6}"));
    assert_false(holds(a, r, "{\"t\": -0.5}"));
    rule_free(r);
    r = leaf_rule("t", "eq", "0.3");
    assert_true(holds(a, r, "{\"t\": 0.3}"));
    assert_false(holds(a, r, "{\"t\": 0.30000000000000004}"));
    rule_free(r);
}

static void test_rule_booleans(void **state)
{
    struct arena *a = *state;
    struct rule *eq_true = leaf_rule("door", "eq", "true");
    struct rule *neq_true = leaf_rule("door", "neq", "true");
    struct rule *eq_false = leaf_rule("door", "eq", "false");
    struct rule *gt0 = leaf_rule("door", "gt", "0");

    assert_true(holds(a, eq_true, "{\"door\": true}"));
    assert_false(holds(a, eq_true, "{\"door\": false}"));
    assert_false(holds(a, neq_true, "{\"door\": true}"));
    assert_true(holds(a, neq_true, "{\"door\": false}"));
    assert_true(holds(a, eq_false, "{\"door\": false}"));
    assert_false(holds(a, eq_false, "{\"door\": true}"));
    /* A boolean is 1 or 0, so devices that send 1 and 0 work too, and a
     * number compares with a boolean that way. */
    assert_true(holds(a, eq_true, "{\"door\": 1}"));
    assert_false(holds(a, eq_true, "{\"door\": 2}"));
    assert_true(holds(a, eq_false, "{\"door\": 0}"));
    assert_true(holds(a, gt0, "{\"door\": true}"));
    assert_false(holds(a, gt0, "{\"door\": false}"));
    /* Missing: false for eq and for neq alike. */
    assert_false(holds(a, eq_true, "{\"window\": true}"));
    assert_false(holds(a, neq_true, "{\"window\": true}"));
    rule_free(eq_true);
    rule_free(neq_true);
    rule_free(eq_false);
    rule_free(gt0);
}

/* AND(a > 1, OR(b < 2, AND(c = true, d >= 10)), e != 0), three levels. */
static const char nested_rule[] =
    "{\"name\": \"nested\", \"severity\": \"high\", \"condition\": {\"operator\": \"AND\", "
    "\"conditions\": [{\"parameter\": \"a\", \"operator\": \"gt\", \"threshold\": 1}, "
    "{\"operator\": \"OR\", \"conditions\": [{\"parameter\": \"b\", \"operator\": \"lt\", "
    "\"threshold\": 2}, {\"operator\": \"AND\", \"conditions\": [{\"parameter\": \"c\", "
    "\"operator\": \"eq\", \"threshold\": true}, {\"parameter\": \"d\", \"operator\": \"gte\", "
    "\"threshold\": 10}]}]}, {\"parameter\": \"e\", \"operator\": \"neq\", \"threshold\": 0}]}}";

static void test_rule_nesting(void **state)
{
    struct arena *a = *state;
    struct rule *r = compile_ok(nested_rule);
    char payload[256];

    /* Every combination of the five leaves, against a plain C reading. */
    for (int m = 0; m < 32; m++) {
        bool la = m & 1, lb = m & 2, lc = m & 4, ld = m & 8, le = m & 16;
        bool want = la && (lb || (lc && ld)) && le;
        struct telemetry t;

        snprintf(payload, sizeof(payload),
                 "{\"metrics\": {\"a\": %d, \"b\": %d, \"c\": %s, \"d\": %d, \"e\": %d}}",
                 la ? 5 : 0, lb ? 1 : 3, lc ? "true" : "false", ld ? 10 : 9, le ? 7 : 0);
        t = tm(a, payload);
        if (rule_eval(r, &t, NULL, 0) != want)
            fail_msg("combination %d", m);
    }
    rule_free(r);
}

static void test_rule_missing(void **state)
{
    struct arena *a = *state;
    struct rule *r = compile_ok(nested_rule);
    struct rule *any = compile_ok(
        "{\"name\": \"any\", \"severity\": \"low\", \"condition\": {\"operator\": \"OR\", "
        "\"conditions\": [{\"parameter\": \"x\", \"operator\": \"gt\", \"threshold\": 1}, "
        "{\"parameter\": \"y\", \"operator\": \"gt\", \"threshold\": 1}]}}");
    char why[128];
    struct telemetry t;

    /* b missing, but the other branch of the OR holds. */
    t = tm(a, "{\"metrics\": {\"a\": 5, \"c\": true, \"d\": 11, \"e\": 1}}");
    assert_true(rule_eval(r, &t, why, sizeof(why)));
    assert_string_equal(why, "a 5 > 1 AND (c true = true AND d 11 >= 10) AND e 1 != 0");
    /* e missing: the AND fails there. */
    t = tm(a, "{\"metrics\": {\"a\": 5, \"b\": 0}}");
    assert_false(rule_eval(r, &t, why, sizeof(why)));
    assert_string_equal(why, "e is missing");
    t = tm(a, "{\"metrics\": {\"z\": 5}}");
    assert_false(rule_eval(r, &t, why, sizeof(why)));
    assert_string_equal(why, "a is missing");
    /* One side of an OR missing does not matter when the other holds. */
    t = tm(a, "{\"metrics\": {\"y\": 2}}");
    assert_true(rule_eval(any, &t, why, sizeof(why)));
    assert_string_equal(why, "y 2 > 1");
    t = tm(a, "{\"metrics\": {\"y\": 0}}");
    assert_false(rule_eval(any, &t, why, sizeof(why)));
    assert_string_equal(why, "x is missing");
    rule_free(r);
    rule_free(any);
}

static void test_rule_why(void **state)
{
    struct arena *a = *state;
    struct rule *r = compile_ok(
        "{\"name\": \"Spindle hot\", \"severity\": \"high\", \"condition\": {\"operator\": "
        "\"AND\", \"conditions\": [{\"parameter\": \"spindle_temp\", \"operator\": \"gt\", "
        "\"threshold\": 80}, {\"parameter\": \"coolant_flow\", \"operator\": \"lt\", "
        "\"threshold\": 5}]}}");
    struct rule *ored = compile_ok(
        "{\"name\": \"x\", \"severity\": \"high\", \"condition\": {\"operator\": \"AND\", "
        "\"conditions\": [{\"parameter\": \"a\", \"operator\": \"gt\", \"threshold\": 1}, "
        "{\"operator\": \"OR\", \"conditions\": [{\"parameter\": \"b\", \"operator\": \"lt\", "
        "\"threshold\": 2}, {\"parameter\": \"c\", \"operator\": \"eq\", \"threshold\": true}, "
        "{\"parameter\": \"d\", \"operator\": \"lte\", \"threshold\": -1.5}]}]}}");
    char why[256];
    struct telemetry t;

    t = tm(a, "{\"metrics\": {\"spindle_temp\": 82.5, \"coolant_flow\": 3.2}}");
    assert_true(rule_eval(r, &t, why, sizeof(why)));
    assert_string_equal(why, "spindle_temp 82.5 > 80 AND coolant_flow 3.2 < 5");
    t = tm(a, "{\"metrics\": {\"spindle_temp\": 75, \"coolant_flow\": 3.2}}");
    assert_false(rule_eval(r, &t, why, sizeof(why)));
    assert_string_equal(why, "spindle_temp 75 is not > 80");
    t = tm(a, "{\"metrics\": {\"spindle_temp\": 90}}");
    assert_false(rule_eval(r, &t, why, sizeof(why)));
    assert_string_equal(why, "coolant_flow is missing");
    t = tm(a, "{\"metrics\": {\"spindle_temp\": 1e20, \"coolant_flow\": 0.1}}");
    assert_true(rule_eval(r, &t, why, sizeof(why)));
    assert_string_equal(why, "spindle_temp 1e+20 > 80 AND coolant_flow 0.1 < 5");

    /* Only the OR branches that hold are listed; one needs no brackets. */
    t = tm(a, "{\"metrics\": {\"a\": 5, \"b\": 3, \"c\": true, \"d\": 0}}");
    assert_true(rule_eval(ored, &t, why, sizeof(why)));
    assert_string_equal(why, "a 5 > 1 AND c true = true");
    t = tm(a, "{\"metrics\": {\"a\": 5, \"b\": 1, \"c\": true, \"d\": -2}}");
    assert_true(rule_eval(ored, &t, why, sizeof(why)));
    assert_string_equal(why, "a 5 > 1 AND (b 1 < 2 OR c true = true OR d -2 <= -1.5)");
    t = tm(a, "{\"metrics\": {\"a\": 5, \"b\": 3, \"c\": false, \"d\": 0}}");
    assert_false(rule_eval(ored, &t, why, sizeof(why)));
    assert_string_equal(why, "b 3 is not < 2");
    t = tm(a, "{\"metrics\": {\"a\": 1, \"b\": 1}}");
    assert_false(rule_eval(ored, &t, why, sizeof(why)));
    assert_string_equal(why, "a 1 is not > 1");

    /* why is optional, and n = 0 writes nothing. */
    t = tm(a, "{\"metrics\": {\"spindle_temp\": 82.5, \"coolant_flow\": 3.2}}");
    assert_true(rule_eval(r, &t, NULL, 0));
    why[0] = 'X';
    assert_true(rule_eval(r, &t, why, 0));
    assert_int_equal(why[0], 'X');
    /* Cut to n bytes. */
    assert_true(rule_eval(r, &t, why, 13));
    assert_string_equal(why, "spindle_temp");
    rule_free(r);
    rule_free(ored);
}

static void test_rule_why_utf8_cut(void **state)
{
    struct arena *a = *state;
    /* "температура" is 11 letters of 2 bytes. */
    struct rule *r = leaf_rule("\xd1\x82\xd0\xb5\xd0\xbc\xd0\xbf\xd0\xb5\xd1\x80\xd0\xb0\xd1\x82"
                               "\xd1\x83\xd1\x80\xd0\xb0",
                               "gt", "80");
    struct telemetry t = tm(a, "{\"metrics\": {\"\xd1\x82\xd0\xb5\xd0\xbc\xd0\xbf\xd0\xb5\xd1\x80"
                               "\xd0\xb0\xd1\x82\xd1\x83\xd1\x80\xd0\xb0\": 90}}");
    char why[64];

    assert_true(rule_eval(r, &t, why, sizeof(why)));
    assert_string_equal(why, "\xd1\x82\xd0\xb5\xd0\xbc\xd0\xbf\xd0\xb5\xd1\x80\xd0\xb0\xd1\x82"
                             "\xd1\x83\xd1\x80\xd0\xb0 90 > 80");
    for (size_t n = 1; n < 30; n++) {
        assert_true(rule_eval(r, &t, why, n));
        assert_true(strlen(why) < n);
        assert_true(strlen(why) + 2 >= n); /* cut at most one letter short */
        assert_true(utf8_valid(why, strlen(why)));
    }
    assert_true(rule_eval(r, &t, why, 6));
    assert_string_equal(why, "\xd1\x82\xd0\xb5");
    rule_free(r);
}

/* ---- rules: properties ---- */

static void test_rule_defaults(void **state)
{
    struct rule *r = leaf_rule("t", "gt", "80");

    (void)state;
    assert_string_equal(rule_name(r), "t");
    assert_int_equal(rule_severity(r), SEV_LOW);
    assert_int_equal(rule_cooldown_s(r), 15 * 60);
    assert_true(rule_active(r));
    assert_true(rule_applies(r, "any-device"));
    assert_true(rule_scheduled(r, NOW, 0));
    assert_true(rule_scheduled(r, NOW, -43200));
    rule_free(r);
    rule_free(NULL);

    r = compile_ok("{\"name\": \"Quiet\", \"severity\": \"critical\", \"cooldown_minutes\": 0, "
                   "\"active\": false, \"condition\": {\"parameter\": \"t\", \"operator\": "
                   "\"gt\", \"threshold\": 1}}");
    assert_int_equal(rule_cooldown_s(r), 0);
    assert_false(rule_active(r));
    assert_int_equal(rule_severity(r), SEV_CRITICAL);
    rule_free(r);
    r = compile_ok("{\"name\": \"Week\", \"severity\": \"medium\", \"cooldown_minutes\": 10080, "
                   "\"condition\": {\"parameter\": \"t\", \"operator\": \"gt\", \"threshold\": "
                   "1}}");
    assert_int_equal(rule_cooldown_s(r), 10080 * 60);
    rule_free(r);
}

static void test_rule_applies(void **state)
{
    struct rule *r =
        compile_ok("{\"name\": \"x\", \"severity\": \"high\", \"devices\": [\"cnc-2\", "
                   "\"cnc-1\", \"PLC:7\", \"a.b\"], \"condition\": {\"parameter\": "
                   "\"t\", \"operator\": \"gt\", \"threshold\": 1}}");

    (void)state;
    assert_true(rule_applies(r, "cnc-1"));
    assert_true(rule_applies(r, "cnc-2"));
    assert_true(rule_applies(r, "PLC:7"));
    assert_true(rule_applies(r, "a.b"));
    assert_false(rule_applies(r, "cnc-3"));
    assert_false(rule_applies(r, "CNC-1"));
    assert_false(rule_applies(r, "cnc-"));
    assert_false(rule_applies(r, ""));
    assert_false(rule_applies(r, NULL));
    rule_free(r);
}

static void test_rule_top_level_leaf(void **state)
{
    struct arena *a = *state;
    struct rule *r = leaf_rule("spindle_temp", "gte", "80");
    char why[64];
    struct telemetry t = tm(a, "{\"metrics\": {\"spindle_temp\": 80}}");

    assert_true(rule_eval(r, &t, why, sizeof(why)));
    assert_string_equal(why, "spindle_temp 80 >= 80");
    rule_free(r);
}

static void test_rule_limits(void **state)
{
    char json[16384];
    struct rule *r;
    char err[256];
    size_t n;

    (void)state;
    /* 64 comparisons pass, 65 do not. */
    for (int count = RULE_MAX_CONDITIONS; count <= RULE_MAX_CONDITIONS + 1; count++) {
        n = (size_t)snprintf(json, sizeof(json),
                             "{\"name\": \"many\", \"severity\": \"low\", \"condition\": "
                             "{\"operator\": \"OR\", \"conditions\": [");
        for (int i = 0; i < count; i++)
            n += (size_t)snprintf(json + n, sizeof(json) - n,
                                  "%s{\"parameter\": \"p%d\", \"operator\": \"gt\", "
                                  "\"threshold\": %d}",
                                  i ? ", " : "", i, i);
        snprintf(json + n, sizeof(json) - n, "]}}");
        r = NULL;
        if (count == RULE_MAX_CONDITIONS) {
            r = compile_ok(json);
            rule_free(r);
        } else {
            assert_int_equal(rule_compile(json, strlen(json), &r, err, sizeof(err)), -EINVAL);
            assert_non_null(strstr(err, "more than 64 conditions"));
        }
    }
    /* The 64 spread over groups count the same. */
    n = (size_t)snprintf(json, sizeof(json),
                         "{\"name\": \"many\", \"severity\": \"low\", \"condition\": "
                         "{\"operator\": \"OR\", \"conditions\": [");
    for (int g = 0; g < 13; g++) {
        n += (size_t)snprintf(json + n, sizeof(json) - n,
                              "%s{\"operator\": \"AND\", \"conditions\": [", g ? ", " : "");
        for (int i = 0; i < 5; i++)
            n += (size_t)snprintf(json + n, sizeof(json) - n,
                                  "%s{\"parameter\": \"p\", \"operator\": \"gt\", \"threshold\": "
                                  "%d}",
                                  i ? ", " : "", i);
        n += (size_t)snprintf(json + n, sizeof(json) - n, "]}");
    }
    snprintf(json + n, sizeof(json) - n, "]}}");
    assert_int_equal(rule_compile(json, strlen(json), &r, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "more than 64 conditions"));

    /* Depth: the leaf at level 8 passes, at level 9 it does not. */
    for (int depth = RULE_MAX_DEPTH; depth <= RULE_MAX_DEPTH + 1; depth++) {
        n = (size_t)snprintf(json, sizeof(json),
                             "{\"name\": \"deep\", \"severity\": \"low\", \"condition\": ");
        for (int i = 1; i < depth; i++)
            n += (size_t)snprintf(json + n, sizeof(json) - n,
                                  "{\"operator\": \"AND\", \"conditions\": [");
        n += (size_t)snprintf(json + n, sizeof(json) - n,
                              "{\"parameter\": \"t\", \"operator\": \"gt\", \"threshold\": 1}");
        for (int i = 1; i < depth; i++)
            n += (size_t)snprintf(json + n, sizeof(json) - n, "]}");
        snprintf(json + n, sizeof(json) - n, "}");
        r = NULL;
        if (depth == RULE_MAX_DEPTH) {
            r = compile_ok(json);
            rule_free(r);
        } else {
            assert_int_equal(rule_compile(json, strlen(json), &r, err, sizeof(err)), -EINVAL);
            assert_non_null(strstr(err, "nest deeper than 8 levels"));
        }
    }

    /* 1000 devices pass, 1001 do not. */
    {
        size_t cap = 32 * 1024;
        char *big = malloc(cap);

        assert_non_null(big);
        for (int count = RULE_MAX_DEVICES; count <= RULE_MAX_DEVICES + 1; count++) {
            n = (size_t)snprintf(big, cap,
                                 "{\"name\": \"fleet\", \"severity\": \"low\", "
                                 "\"devices\": [");
            for (int i = 0; i < count; i++)
                n += (size_t)snprintf(big + n, cap - n, "%s\"d%d\"", i ? "," : "", i);
            snprintf(big + n, cap - n,
                     "], \"condition\": {\"parameter\": \"t\", \"operator\": \"gt\", "
                     "\"threshold\": 1}}");
            r = NULL;
            if (count == RULE_MAX_DEVICES) {
                r = compile_ok(big);
                assert_true(rule_applies(r, "d999"));
                assert_true(rule_applies(r, "d0"));
                assert_false(rule_applies(r, "d1000"));
                rule_free(r);
            } else {
                assert_int_equal(rule_compile(big, strlen(big), &r, err, sizeof(err)), -EINVAL);
                assert_non_null(strstr(err, "devices: more than 1000 devices"));
            }
        }
        free(big);
    }
}

/* The canonical JSON compiles to the same rule: same JSON again, same
 * description, same answers. */
static void test_rule_roundtrip(void **state)
{
    struct arena *a = *state;
    static const char *const rules[] = {
        nested_rule,
        "{\"active\": false, \"name\": \"Ночная смена \\\"A\\\" \\\\ 2\", \"severity\": "
        "\"CRITICAL\", \"devices\": [\"cnc-2\", \"cnc-1\", \"PLC:7\"], \"cooldown_minutes\": 0, "
        "\"schedule\": {\"end\": \"06:00\", \"start\": \"22:00\", \"days\": [\"fri\", \"Mon\", "
        "\"sun\"], \"type\": \"window\"}, \"condition\": {\"operator\": \"or\", \"conditions\": "
        "[{\"parameter\": \"температура\", \"operator\": \"gt\", \"threshold\": 0.1}, "
        "{\"parameter\": \"b\", \"operator\": \"lte\", \"threshold\": -1e-7}, {\"parameter\": "
        "\"c\", \"operator\": \"eq\", \"threshold\": 12345678901234567890}, {\"parameter\": "
        "\"d\", \"operator\": \"neq\", \"threshold\": false}, {\"parameter\": \"e\", "
        "\"operator\": \"gte\", \"threshold\": 3.3333333333333335}, {\"parameter\": \"f\", "
        "\"operator\": \"lt\", \"threshold\": -0}]}}",
        "{\"name\": \"December\", \"severity\": \"medium\", \"schedule\": {\"type\": \"dates\", "
        "\"from\": \"2026-12-01 08:00\", \"to\": \"2026-12-31\"}, \"condition\": {\"parameter\": "
        "\"t\", \"operator\": \"gt\", \"threshold\": 1}}",
        "{\"name\": \"Always\", \"severity\": \"low\", \"schedule\": {\"type\": \"always\"}, "
        "\"condition\": {\"operator\": \"AND\", \"conditions\": [{\"parameter\": \"t\", "
        "\"operator\": \"gt\", \"threshold\": 1}]}}",
        "{\"name\": \"Day\", \"severity\": \"high\", \"schedule\": {\"type\": \"window\", "
        "\"start\": \"00:00\", \"end\": \"24:00\"}, \"condition\": {\"parameter\": \"t\", "
        "\"operator\": \"lt\", \"threshold\": 1e300}}",
    };
    static const char *const payloads[] = {
        "{\"metrics\": {\"a\": 5, \"b\": 1, \"c\": true, \"d\": 11, \"e\": 1}}",
        "{\"metrics\": {\"a\": 0, \"b\": 3}}",
        "{\"metrics\": {\"температура\": 0.2}}",
        "{\"metrics\": {\"c\": 12345678901234567890, \"d\": true}}",
        "{\"metrics\": {\"e\": 3.3333333333333335, \"f\": -1}}",
        "{\"metrics\": {\"t\": 2}}",
    };

    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        struct rule *r1 = compile_ok(rules[i]), *r2;
        char *j1 = rule_json(r1), *j2;
        char d1[512], d2[512], w1[256], w2[256];

        assert_non_null(j1);
        r2 = compile_ok(j1);
        j2 = rule_json(r2);
        assert_non_null(j2);
        assert_string_equal(j1, j2);
        rule_describe(r1, d1, sizeof(d1));
        rule_describe(r2, d2, sizeof(d2));
        assert_string_equal(d1, d2);
        assert_string_equal(rule_name(r1), rule_name(r2));
        assert_int_equal(rule_severity(r1), rule_severity(r2));
        assert_int_equal(rule_cooldown_s(r1), rule_cooldown_s(r2));
        assert_int_equal(rule_active(r1), rule_active(r2));
        for (size_t k = 0; k < sizeof(payloads) / sizeof(payloads[0]); k++) {
            struct telemetry t = tm(a, payloads[k]);

            assert_int_equal(rule_eval(r1, &t, w1, sizeof(w1)), rule_eval(r2, &t, w2, sizeof(w2)));
            assert_string_equal(w1, w2);
        }
        for (double u = NOW; u < NOW + 14 * 86400; u += 1800)
            assert_int_equal(rule_scheduled(r1, u, 3600), rule_scheduled(r2, u, 3600));
        free(j1);
        free(j2);
        rule_free(r1);
        rule_free(r2);
    }
}

static void test_rule_json_canonical(void **state)
{
    struct rule *r;
    char *j;

    (void)state;
    r = leaf_rule("t", "GT", "80.0");
    j = rule_json(r);
    assert_string_equal(j,
                        "{\"name\": \"t\", \"severity\": \"low\", \"condition\": {\"parameter\": "
                        "\"t\", \"operator\": \"gt\", \"threshold\": 80}, \"cooldown_minutes\": "
                        "15, \"schedule\": {\"type\": \"always\"}, \"active\": true}");
    free(j);
    rule_free(r);

    r = compile_ok("{\"name\": \"Night\", \"severity\": \"High\", \"devices\": [\"b\", \"a\"], "
                   "\"condition\": {\"operator\": \"and\", \"conditions\": [{\"parameter\": "
                   "\"x\", \"operator\": \"eq\", \"threshold\": true}, {\"parameter\": \"y\", "
                   "\"operator\": \"lt\", \"threshold\": 3.2}]}, \"schedule\": {\"type\": "
                   "\"window\", \"start\": \"22:00\", \"end\": \"06:00\"}}");
    j = rule_json(r);
    assert_string_equal(
        j, "{\"name\": \"Night\", \"severity\": \"high\", \"devices\": [\"a\", \"b\"], "
           "\"condition\": {\"operator\": \"AND\", \"conditions\": [{\"parameter\": \"x\", "
           "\"operator\": \"eq\", \"threshold\": true}, {\"parameter\": \"y\", \"operator\": "
           "\"lt\", \"threshold\": 3.2}]}, \"cooldown_minutes\": 15, \"schedule\": {\"type\": "
           "\"window\", \"days\": [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", "
           "\"sun\"], \"start\": \"22:00\", \"end\": \"06:00\"}, \"active\": true}");
    free(j);
    rule_free(r);

    r = compile_ok("{\"name\": \"D\", \"severity\": \"low\", \"schedule\": {\"type\": \"dates\", "
                   "\"from\": \"2026-12-01 08:00\", \"to\": \"2026-12-31\"}, \"condition\": "
                   "{\"parameter\": \"t\", \"operator\": \"gt\", \"threshold\": 1}}");
    j = rule_json(r);
    assert_non_null(strstr(j, "\"schedule\": {\"type\": \"dates\", \"from\": \"2026-12-01T08:00\", "
                              "\"to\": \"2026-12-31\"}"));
    free(j);
    rule_free(r);
}

static void test_rule_describe(void **state)
{
    struct rule *r;
    char d[256];

    (void)state;
    r = compile_ok(
        "{\"name\": \"x\", \"severity\": \"high\", \"condition\": {\"operator\": \"AND\", "
        "\"conditions\": [{\"parameter\": \"spindle_temp\", \"operator\": \"gt\", \"threshold\": "
        "80}, {\"operator\": \"OR\", \"conditions\": [{\"parameter\": \"a\", \"operator\": "
        "\"lt\", \"threshold\": 1}, {\"parameter\": \"b\", \"operator\": \"eq\", \"threshold\": "
        "true}]}]}, \"schedule\": {\"type\": \"window\", \"days\": [\"mon\", \"tue\", \"wed\", "
        "\"thu\", \"fri\"], \"start\": \"22:00\", \"end\": \"06:00\"}}");
    rule_describe(r, d, sizeof(d));
    assert_string_equal(d, "spindle_temp > 80 AND (a < 1 OR b = true) · 22:00-06:00 mon-fri");
    /* Cut on a character boundary: the middle dot is two bytes. */
    rule_describe(r, d, 44);
    assert_string_equal(d, "spindle_temp > 80 AND (a < 1 OR b = true) ");
    rule_describe(r, d, 0);
    rule_free(r);

    r = compile_ok("{\"name\": \"x\", \"severity\": \"high\", \"condition\": {\"parameter\": "
                   "\"t\", \"operator\": \"neq\", \"threshold\": 2.5}, \"schedule\": {\"type\": "
                   "\"window\", \"days\": [\"sun\", \"sat\", \"mon\", \"wed\"], \"start\": "
                   "\"08:00\", \"end\": \"24:00\"}}");
    rule_describe(r, d, sizeof(d));
    assert_string_equal(d, "t != 2.5 · 08:00-24:00 mon,wed,sat,sun");
    rule_free(r);

    r = compile_ok("{\"name\": \"x\", \"severity\": \"high\", \"condition\": {\"parameter\": "
                   "\"t\", \"operator\": \"lte\", \"threshold\": -4}, \"schedule\": {\"type\": "
                   "\"window\", \"start\": \"08:00\", \"end\": \"17:30\"}}");
    rule_describe(r, d, sizeof(d));
    assert_string_equal(d, "t <= -4 · 08:00-17:30");
    rule_free(r);

    r = compile_ok("{\"name\": \"x\", \"severity\": \"high\", \"condition\": {\"parameter\": "
                   "\"t\", \"operator\": \"gte\", \"threshold\": 1}, \"schedule\": {\"type\": "
                   "\"dates\", \"from\": \"2026-12-01T08:00\", \"to\": \"2026-12-31\"}}");
    rule_describe(r, d, sizeof(d));
    assert_string_equal(d, "t >= 1 · 2026-12-01 08:00 to 2026-12-31");
    rule_free(r);

    r = leaf_rule("door", "eq", "false");
    rule_describe(r, d, sizeof(d));
    assert_string_equal(d, "door = false");
    rule_free(r);
}

/* ---- schedules ---- */

static struct rule *window_rule(const char *days, const char *start, const char *end)
{
    char json[512];

    snprintf(json, sizeof(json),
             "{\"name\": \"w\", \"severity\": \"low\", \"condition\": {\"parameter\": \"t\", "
             "\"operator\": \"gt\", \"threshold\": 1}, \"schedule\": {\"type\": \"window\", "
             "%s%s\"start\": \"%s\", \"end\": \"%s\"}}",
             days ? "\"days\": " : "", days ? days : "", start, end);
    return compile_ok(json);
}

static void test_schedule_window_midnight(void **state)
{
    /* 2026-02-16 is a Monday, 2026-02-22 a Sunday. */
    struct rule *mon = window_rule("[\"mon\"], ", "22:00", "06:00");
    struct rule *sun = window_rule("[\"sun\"], ", "22:00", "06:00");

    (void)state;
    assert_true(rule_scheduled(mon, at("2026-02-16T23:00:00Z"), 0));
    assert_true(rule_scheduled(mon, at("2026-02-16T22:00:00Z"), 0));
    assert_true(rule_scheduled(mon, at("2026-02-17T00:00:00Z"), 0));
    assert_true(rule_scheduled(mon, at("2026-02-17T05:59:00Z"), 0));
    assert_true(rule_scheduled(mon, at("2026-02-17T05:59:59.9Z"), 0));
    assert_false(rule_scheduled(mon, at("2026-02-17T06:00:00Z"), 0));
    assert_false(rule_scheduled(mon, at("2026-02-16T21:59:00Z"), 0));
    assert_false(rule_scheduled(mon, at("2026-02-16T21:59:59.9Z"), 0));
    assert_false(rule_scheduled(mon, at("2026-02-15T23:00:00Z"), 0)); /* Sunday night */
    assert_false(rule_scheduled(mon, at("2026-02-16T05:00:00Z"), 0)); /* Monday morning */
    assert_false(rule_scheduled(mon, at("2026-02-17T23:00:00Z"), 0)); /* Tuesday night */
    assert_false(rule_scheduled(mon, at("2026-02-16T12:00:00Z"), 0));
    /* Sunday's window runs into Monday morning: the week wraps. */
    assert_true(rule_scheduled(sun, at("2026-02-22T23:00:00Z"), 0));
    assert_true(rule_scheduled(sun, at("2026-02-23T05:59:00Z"), 0));
    assert_true(rule_scheduled(sun, at("2026-02-16T05:59:00Z"), 0));
    assert_false(rule_scheduled(sun, at("2026-02-23T06:00:00Z"), 0));
    assert_false(rule_scheduled(sun, at("2026-02-23T23:00:00Z"), 0));
    assert_false(rule_scheduled(sun, at("2026-02-21T23:00:00Z"), 0));
    rule_free(mon);
    rule_free(sun);

    /* A window ending at midnight does not spill over. */
    mon = window_rule("[\"mon\"], ", "22:00", "00:00");
    assert_true(rule_scheduled(mon, at("2026-02-16T23:59:59Z"), 0));
    assert_false(rule_scheduled(mon, at("2026-02-17T00:00:00Z"), 0));
    rule_free(mon);
    mon = window_rule("[\"mon\"], ", "22:00", "24:00");
    assert_true(rule_scheduled(mon, at("2026-02-16T23:59:59Z"), 0));
    assert_false(rule_scheduled(mon, at("2026-02-17T00:00:00Z"), 0));
    assert_false(rule_scheduled(mon, at("2026-02-16T21:59:59Z"), 0));
    rule_free(mon);
}

static void test_schedule_window_day(void **state)
{
    struct rule *r =
        window_rule("[\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"], ", "08:00", "17:00");
    struct rule *all = window_rule(NULL, "00:00", "24:00");

    (void)state;
    assert_true(rule_scheduled(r, at("2026-02-19T08:00:00Z"), 0)); /* Thursday */
    assert_true(rule_scheduled(r, at("2026-02-19T16:59:59Z"), 0));
    assert_false(rule_scheduled(r, at("2026-02-19T17:00:00Z"), 0));
    assert_false(rule_scheduled(r, at("2026-02-19T07:59:59Z"), 0));
    assert_false(rule_scheduled(r, at("2026-02-21T12:00:00Z"), 0)); /* Saturday */
    assert_false(rule_scheduled(r, at("2026-02-22T12:00:00Z"), 0)); /* Sunday */
    assert_true(rule_scheduled(r, at("2026-02-23T12:00:00Z"), 0));  /* Monday */
    /* Before 1970 the weekday is right too (1969-12-29 was a Monday). */
    assert_true(rule_scheduled(r, at("1969-12-29T12:00:00Z"), 0));
    assert_false(rule_scheduled(r, at("1969-12-28T12:00:00Z"), 0));
    for (double u = NOW; u < NOW + 7 * 86400; u += 3599)
        assert_true(rule_scheduled(all, u, 0));
    rule_free(r);
    rule_free(all);
}

static void test_schedule_timezones(void **state)
{
    struct rule *mon = window_rule("[\"mon\"], ", "22:00", "06:00");
    struct rule *day = window_rule("[\"thu\"], ", "09:00", "17:00");

    (void)state;
    /* Central Europe in winter, UTC+1: Monday 23:00 local is 22:00 UTC. */
    assert_true(rule_scheduled(mon, at("2026-02-16T22:00:00Z"), 3600));
    assert_false(rule_scheduled(mon, at("2026-02-16T20:59:00Z"), 3600));
    assert_true(rule_scheduled(mon, at("2026-02-16T21:00:00Z"), 3600));
    assert_true(rule_scheduled(mon, at("2026-02-17T04:59:00Z"), 3600));
    assert_false(rule_scheduled(mon, at("2026-02-17T05:00:00Z"), 3600));
    /* New York in winter, UTC-5: Monday 23:00 local is Tuesday 04:00 UTC,
     * Monday 21:00 local (out) is Tuesday 02:00 UTC. */
    assert_true(rule_scheduled(mon, at("2026-02-17T04:00:00Z"), -18000));
    assert_true(rule_scheduled(mon, at("2026-02-17T10:59:00Z"), -18000));
    assert_false(rule_scheduled(mon, at("2026-02-17T11:00:00Z"), -18000));
    assert_false(rule_scheduled(mon, at("2026-02-17T02:00:00Z"), -18000));
    assert_false(rule_scheduled(mon, at("2026-02-16T23:00:00Z"), -18000));
    /* India, UTC+5:30: Monday 22:00 local is 16:30 UTC. */
    assert_false(rule_scheduled(mon, at("2026-02-16T16:29:00Z"), 19800));
    assert_true(rule_scheduled(mon, at("2026-02-16T16:30:00Z"), 19800));
    assert_true(rule_scheduled(mon, at("2026-02-17T00:29:00Z"), 19800));
    assert_false(rule_scheduled(mon, at("2026-02-17T00:30:00Z"), 19800));
    /* The offset moves the weekday too: Thursday 09:00 in Auckland
     * (UTC+13) is Wednesday 20:00 UTC. */
    assert_true(rule_scheduled(day, at("2026-02-18T20:00:00Z"), 13 * 3600));
    assert_false(rule_scheduled(day, at("2026-02-19T09:00:00Z"), 13 * 3600));
    assert_true(rule_scheduled(day, at("2026-02-19T09:00:00Z"), 0));
    rule_free(mon);
    rule_free(day);
}

static void test_schedule_dates(void **state)
{
    struct rule *r = compile_ok(
        "{\"name\": \"Dec\", \"severity\": \"low\", \"condition\": {\"parameter\": \"t\", "
        "\"operator\": \"gt\", \"threshold\": 1}, \"schedule\": {\"type\": \"dates\", \"from\": "
        "\"2026-12-01\", \"to\": \"2026-12-31\"}}");
    struct rule *timed = compile_ok(
        "{\"name\": \"Stop\", \"severity\": \"low\", \"condition\": {\"parameter\": \"t\", "
        "\"operator\": \"gt\", \"threshold\": 1}, \"schedule\": {\"type\": \"dates\", \"from\": "
        "\"2026-12-24T14:00\", \"to\": \"2026-12-26T06:00\"}}");
    struct rule *one = compile_ok(
        "{\"name\": \"One\", \"severity\": \"low\", \"condition\": {\"parameter\": \"t\", "
        "\"operator\": \"gt\", \"threshold\": 1}, \"schedule\": {\"type\": \"dates\", \"from\": "
        "\"2026-12-25\", \"to\": \"2026-12-25\"}}");

    (void)state;
    /* Both ends inclusive, the whole of the last day. */
    assert_false(rule_scheduled(r, at("2026-11-30T23:59:59Z"), 0));
    assert_true(rule_scheduled(r, at("2026-12-01T00:00:00Z"), 0));
    assert_true(rule_scheduled(r, at("2026-12-15T12:00:00Z"), 0));
    assert_true(rule_scheduled(r, at("2026-12-31T23:59:59Z"), 0));
    assert_false(rule_scheduled(r, at("2027-01-01T00:00:00Z"), 0));
    /* Local dates: 2026-12-01 00:30 in UTC+1 is still November in UTC. */
    assert_true(rule_scheduled(r, at("2026-11-30T23:30:00Z"), 3600));
    assert_false(rule_scheduled(r, at("2026-12-31T23:30:00Z"), 3600));
    assert_true(rule_scheduled(r, at("2027-01-01T04:00:00Z"), -18000));
    assert_true(rule_scheduled(r, at("2026-11-30T18:30:00Z"), 19800));
    assert_false(rule_scheduled(r, at("2026-11-30T18:29:00Z"), 19800));
    /* With times: from the minute given up to and with the instant given. */
    assert_false(rule_scheduled(timed, at("2026-12-24T13:59:59Z"), 0));
    assert_true(rule_scheduled(timed, at("2026-12-24T14:00:00Z"), 0));
    assert_true(rule_scheduled(timed, at("2026-12-26T06:00:00Z"), 0));
    assert_false(rule_scheduled(timed, at("2026-12-26T06:00:01Z"), 0));
    assert_true(rule_scheduled(timed, at("2026-12-26T04:00:00Z"), 7200));
    assert_false(rule_scheduled(timed, at("2026-12-26T04:00:01Z"), 7200));
    /* A single day. */
    assert_true(rule_scheduled(one, at("2026-12-25T00:00:00Z"), 0));
    assert_true(rule_scheduled(one, at("2026-12-25T23:59:59Z"), 0));
    assert_false(rule_scheduled(one, at("2026-12-24T23:59:59Z"), 0));
    assert_false(rule_scheduled(one, at("2026-12-26T00:00:00Z"), 0));
    rule_free(r);
    rule_free(timed);
    rule_free(one);
}

/* ---- rules: refusals ---- */

#define RULE_HEAD "{\"name\": \"x\", \"severity\": \"high\", "
#define LEAF "{\"parameter\": \"t\", \"operator\": \"gt\", \"threshold\": 80}"
#define COND "\"condition\": " LEAF
#define WIN(s) RULE_HEAD COND ", \"schedule\": {\"type\": \"window\", " s "}}"
#define DATES(s) RULE_HEAD COND ", \"schedule\": {\"type\": \"dates\", " s "}}"

static const struct {
    const char *json, *want;
} invalid_rules[] = {
    /* JSON itself */
    {"", "line 1, column 0: "},
    {"{\"name\": \"x\",\n \"severity\": ", "line 2, column"},
    {"[]", "the rule must be a JSON object"},
    {"\"rule\"", "the rule must be a JSON object"},
    {"{\"name\": \"x\", \"name\": \"y\"}", "duplicate object key"},
    /* top level */
    {"{\"severity\": \"high\", " COND "}", "name: missing"},
    {"{\"name\": \"\", \"severity\": \"high\", " COND "}", "name: empty"},
    {"{\"name\": 7, \"severity\": \"high\", " COND "}", "name: must be a string"},
    {"{\"name\": \"a\\u0007b\", \"severity\": \"high\", " COND "}", "name: has control characters"},
    {"{\"name\": \"a\\nb\", \"severity\": \"high\", " COND "}", "name: has control characters"},
    {"{\"name\": \"x\", " COND "}", "severity: missing; use low, medium, high or critical"},
    {"{\"name\": \"x\", \"severity\": \"urgent\", " COND "}",
     "severity: unknown severity \"urgent\"; use low, medium, high or critical"},
    {"{\"name\": \"x\", \"severity\": 3, " COND "}", "severity: must be a string"},
    {RULE_HEAD "\"conditon\": " LEAF "}", "conditon: unknown key; did you mean \"condition\"?"},
    {RULE_HEAD COND ", \"cooldown\": 5}", "cooldown: unknown key; use name, severity, devices"},
    {RULE_HEAD COND ", \"colour\": \"red\"}", "colour: unknown key; use name"},
    {RULE_HEAD "\"active\": true}", "condition: missing"},
    {RULE_HEAD COND ", \"active\": \"yes\"}", "active: must be true or false"},
    {RULE_HEAD COND ", \"cooldown_minutes\": -1}",
     "cooldown_minutes: must be a whole number from 0 to 10080"},
    {RULE_HEAD COND ", \"cooldown_minutes\": 10081}", "cooldown_minutes: must be a whole number"},
    {RULE_HEAD COND ", \"cooldown_minutes\": 1.5}", "cooldown_minutes: must be a whole number"},
    {RULE_HEAD COND ", \"cooldown_minutes\": \"15\"}", "cooldown_minutes: must be a whole number"},
    /* devices */
    {RULE_HEAD COND ", \"devices\": []}", "devices: empty; leave \"devices\" out"},
    {RULE_HEAD COND ", \"devices\": \"cnc-1\"}", "devices: must be an array"},
    {RULE_HEAD COND ", \"devices\": [\"cnc-1\", \"cnc 2\"]}",
     "devices[1]: \"cnc 2\" is not a device key"},
    {RULE_HEAD COND ", \"devices\": [\"cnc-1\", 2]}", "devices[1]: must be a string"},
    {RULE_HEAD COND ", \"devices\": [\"cnc-1\", \"cnc-2\", \"cnc-1\"]}",
     "devices: \"cnc-1\" is listed twice"},
    {RULE_HEAD COND ", \"devices\": [\"\"]}", "devices[0]: \"\" is not a device key"},
    /* conditions */
    {RULE_HEAD "\"condition\": {\"operator\": \"AND\", \"conditions\": [" LEAF
               ", {\"parameter\": \"u\", \"operator\": \"gtt\", \"threshold\": 1}]}}",
     "condition.conditions[1].operator: unknown operator \"gtt\"; use gt, gte, lt, lte, eq or "
     "neq"},
    {RULE_HEAD "\"condition\": {\"parameter\": \"t\", \"operator\": \"gt\", \"treshold\": 80}}",
     "condition.treshold: unknown key; did you mean \"threshold\"?"},
    {RULE_HEAD "\"condition\": {\"parameter\": \"t\", \"oprator\": \"gt\", \"threshold\": 80}}",
     "condition.oprator: unknown key; did you mean \"operator\"?"},
    {RULE_HEAD "\"condition\": {\"operator\": \"OR\", \"conditions\": [{\"parameter\": \"t\", "
               "\"operator\": \"gt\", \"threshold\": 80, \"unit\": \"C\"}]}}",
     "condition.conditions[0].unit: unknown key; use operator, conditions, parameter or "
     "threshold"},
    {RULE_HEAD "\"condition\": {\"operator\": \"XOR\", \"conditions\": [" LEAF "]}}",
     "condition.operator: unknown operator \"XOR\"; use AND or OR"},
    {RULE_HEAD "\"condition\": {\"operator\": \">\", \"parameter\": \"t\", \"threshold\": 1}}",
     "condition.operator: unknown operator \">\"; use gt, gte, lt, lte, eq or neq"},
    {RULE_HEAD "\"condition\": {\"parameter\": \"t\", \"threshold\": 1}}",
     "condition.operator: missing"},
    {RULE_HEAD "\"condition\": {\"operator\": 1, \"parameter\": \"t\", \"threshold\": 1}}",
     "condition.operator: must be a string"},
    {RULE_HEAD "\"condition\": {\"operator\": \"AND\", \"conditions\": []}}",
     "condition.conditions: empty; an AND or OR group needs at least one condition"},
    {RULE_HEAD "\"condition\": {\"operator\": \"AND\", \"conditions\": " LEAF "}}",
     "condition.conditions: must be an array"},
    {RULE_HEAD "\"condition\": {\"operator\": \"AND\"}}", "condition.conditions: missing"},
    {RULE_HEAD "\"condition\": {\"operator\": \"AND\", \"conditions\": [" LEAF
               "], \"parameter\": \"t\"}}",
     "condition.parameter: not used by an AND or OR group"},
    {RULE_HEAD "\"condition\": {\"operator\": \"gt\", \"parameter\": \"t\", \"threshold\": 1, "
               "\"conditions\": []}}",
     "condition.conditions: not used by a comparison (gt)"},
    {RULE_HEAD "\"condition\": {\"operator\": \"OR\", \"conditions\": [" LEAF ", 5]}}",
     "condition.conditions[1]: must be an object"},
    {RULE_HEAD "\"condition\": [" LEAF "]}", "condition: must be an object"},
    {RULE_HEAD "\"condition\": {\"operator\": \"AND\", \"conditions\": [{\"operator\": \"OR\", "
               "\"conditions\": []}]}}",
     "condition.conditions[0].conditions: empty"},
    {RULE_HEAD "\"condition\": {\"operator\": \"gt\", \"threshold\": 1}}",
     "condition.parameter: missing"},
    {RULE_HEAD "\"condition\": {\"operator\": \"gt\", \"parameter\": \"\", \"threshold\": 1}}",
     "condition.parameter: \"\" is not a metric name"},
    {RULE_HEAD "\"condition\": {\"operator\": \"gt\", \"parameter\": \"a\\tb\", \"threshold\": "
               "1}}",
     "condition.parameter: \"a?b\" is not a metric name"},
    {RULE_HEAD "\"condition\": {\"operator\": \"gt\", \"parameter\": "
               "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\", "
               "\"threshold\": 1}}",
     "is not a metric name (1 to 64 bytes"},
    {RULE_HEAD "\"condition\": {\"operator\": \"gt\", \"parameter\": 5, \"threshold\": 1}}",
     "condition.parameter: must be a string"},
    {RULE_HEAD "\"condition\": {\"operator\": \"gt\", \"parameter\": \"t\"}}",
     "condition.threshold: missing"},
    {RULE_HEAD "\"condition\": {\"operator\": \"gt\", \"parameter\": \"t\", \"threshold\": "
               "\"80\"}}",
     "condition.threshold: must be a number"},
    {RULE_HEAD "\"condition\": {\"operator\": \"eq\", \"parameter\": \"t\", \"threshold\": "
               "null}}",
     "condition.threshold: must be a number, true or false"},
    {RULE_HEAD "\"condition\": {\"operator\": \"gt\", \"parameter\": \"t\", \"threshold\": "
               "true}}",
     "condition.threshold: true and false only go with eq or neq"},
    /* schedules */
    {RULE_HEAD COND ", \"schedule\": \"always\"}", "schedule: must be an object"},
    {RULE_HEAD COND ", \"schedule\": {}}", "schedule.type: missing"},
    {RULE_HEAD COND ", \"schedule\": {\"type\": \"weekly\"}}",
     "schedule.type: unknown type \"weekly\"; use always, window or dates"},
    {RULE_HEAD COND ", \"schedule\": {\"type\": \"always\", \"days\": [\"mon\"]}}",
     "schedule.days: not used by a \"always\" schedule"},
    {WIN("\"strat\": \"08:00\", \"end\": \"17:00\""),
     "schedule.strat: unknown key; did you mean \"start\"?"},
    {WIN("\"start\": \"08:00\", \"end\": \"08:00\""),
     "schedule: start and end are both 08:00; a window needs two different times"},
    {WIN("\"start\": \"00:00\", \"end\": \"00:00\""), "start and end are both 00:00"},
    {WIN("\"start\": \"25:00\", \"end\": \"06:00\""), "schedule.start: must be a time"},
    {WIN("\"start\": \"24:00\", \"end\": \"06:00\""), "schedule.start: must be a time"},
    {WIN("\"start\": \"8:00\", \"end\": \"17:00\""), "schedule.start: must be a time"},
    {WIN("\"start\": \"08:60\", \"end\": \"17:00\""), "schedule.start: must be a time"},
    {WIN("\"start\": 800, \"end\": \"17:00\""), "schedule.start: must be a time"},
    {WIN("\"start\": \"08:00\", \"end\": \"24:01\""),
     "schedule.end: must be a time \"HH:MM\" from 00:00 to 24:00"},
    {WIN("\"start\": \"08:00\""), "schedule.end: missing"},
    {WIN("\"end\": \"08:00\""), "schedule.start: missing"},
    {WIN("\"days\": [\"mon\", \"tues\"], \"start\": \"08:00\", \"end\": \"17:00\""),
     "schedule.days[1]: unknown day \"tues\"; use mon, tue, wed, thu, fri, sat or sun"},
    {WIN("\"days\": [\"mon\", \"tue\", \"MON\"], \"start\": \"08:00\", \"end\": \"17:00\""),
     "schedule.days[2]: \"mon\" is listed twice"},
    {WIN("\"days\": [], \"start\": \"08:00\", \"end\": \"17:00\""),
     "schedule.days: empty; leave \"days\" out for every day"},
    {WIN("\"days\": \"mon-fri\", \"start\": \"08:00\", \"end\": \"17:00\""),
     "schedule.days: must be an array"},
    {WIN("\"start\": \"08:00\", \"end\": \"17:00\", \"from\": \"2026-01-01\""),
     "schedule.from: not used by a \"window\" schedule"},
    {DATES("\"from\": \"2026-12-31\", \"to\": \"2026-12-01\""),
     "schedule: from 2026-12-31 is after to 2026-12-01"},
    {DATES("\"from\": \"2026-12-01T10:00\", \"to\": \"2026-12-01T09:59\""),
     "schedule: from 2026-12-01T10:00 is after to 2026-12-01T09:59"},
    {DATES("\"from\": \"2026-02-30\", \"to\": \"2026-12-01\""),
     "schedule.from: must be a date \"YYYY-MM-DD\" or \"YYYY-MM-DDTHH:MM\""},
    {DATES("\"from\": \"2026-12-01\", \"to\": \"2026-12-32\""), "schedule.to: must be a date"},
    {DATES("\"from\": \"2026-12-01\", \"to\": \"2026-12-31T24:00\""),
     "schedule.to: must be a date"},
    {DATES("\"from\": \"01.12.2026\", \"to\": \"2026-12-31\""), "schedule.from: must be a date"},
    {DATES("\"from\": \"2026-12-01T08:00:00Z\", \"to\": \"2026-12-31\""),
     "schedule.from: must be a date"},
    {DATES("\"to\": \"2026-12-31\""), "schedule.from: missing"},
    {DATES("\"from\": \"2026-12-01\""), "schedule.to: missing"},
    {DATES("\"from\": \"2026-12-01\", \"to\": \"2026-12-31\", \"start\": \"08:00\""),
     "schedule.start: not used by a \"dates\" schedule"},
};

static void test_rule_invalid(void **state)
{
    char err[512];
    size_t n = sizeof(invalid_rules) / sizeof(invalid_rules[0]);

    (void)state;
    assert_true(n >= 25);
    for (size_t i = 0; i < n; i++) {
        struct rule *r = (struct rule *)0x1;
        int rc = rule_compile(invalid_rules[i].json, strlen(invalid_rules[i].json), &r, err,
                              sizeof(err));

        if (rc != -EINVAL)
            fail_msg("rule %zu compiled (%d): %s", i, rc, invalid_rules[i].json);
        assert_ptr_equal(r, (struct rule *)0x1); /* untouched */
        if (!strstr(err, invalid_rules[i].want))
            fail_msg("rule %zu: error \"%s\", want \"%s\"", i, err, invalid_rules[i].want);
        /* One sentence: no line breaks, valid UTF-8. */
        assert_null(strchr(err, '\n'));
        assert_true(utf8_valid(err, strlen(err)));
    }
}

static void test_rule_invalid_edges(void **state)
{
    struct rule *r = NULL;
    char err[32], name[RULE_NAME_MAX + 64], json[512];
    char *big;

    (void)state;
    /* A short error buffer gets a cut, terminated sentence; none at all is
     * fine. */
    assert_int_equal(rule_compile("[]", 2, &r, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "the rule must be a JSON object");
    assert_int_equal(rule_compile("[]", 2, &r, err, 8), -EINVAL);
    assert_string_equal(err, "the rul");
    assert_int_equal(rule_compile("[]", 2, &r, NULL, 0), -EINVAL);
    assert_int_equal(rule_compile(NULL, 0, &r, NULL, 0), -EINVAL);

    /* A name of 200 bytes passes, 201 does not. */
    memset(name, 'n', RULE_NAME_MAX);
    name[RULE_NAME_MAX] = '\0';
    snprintf(json, sizeof(json), "{\"name\": \"%s\", \"severity\": \"low\", " COND "}", name);
    r = compile_ok(json);
    assert_string_equal(rule_name(r), name);
    rule_free(r);
    snprintf(json, sizeof(json), "{\"name\": \"%sn\", \"severity\": \"low\", " COND "}", name);
    assert_int_equal(rule_compile(json, strlen(json), &r, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "name: longer than 200 bytes");

    /* A quoted user string is cut in the message. */
    {
        char msg[256];

        snprintf(json, sizeof(json),
                 RULE_HEAD "\"condition\": {\"parameter\": \"t\", \"operator\": \"%s\", "
                           "\"threshold\": 1}}",
                 "\xd0\xbe\xd0\xbf\xd0\xb5\xd1\x80\xd0\xb0\xd1\x82\xd0\xbe\xd1\x80 greater than "
                 "or equal to, more or less");
        assert_int_equal(rule_compile(json, strlen(json), &r, msg, sizeof(msg)), -EINVAL);
        assert_non_null(strstr(msg, "…\"; use gt"));
        assert_true(utf8_valid(msg, strlen(msg)));
    }

    /* Too big is refused before parsing. */
    big = malloc(RULE_MAX_BYTES + 2);
    assert_non_null(big);
    memset(big, ' ', RULE_MAX_BYTES + 1);
    big[0] = '{';
    big[RULE_MAX_BYTES] = '}';
    big[RULE_MAX_BYTES + 1] = '\0';
    assert_int_equal(rule_compile(big, RULE_MAX_BYTES + 1, &r, json, sizeof(json)), -EINVAL);
    assert_string_equal(json, "the rule is 262145 bytes; at most 262144 are accepted");
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_severity),
        cmocka_unit_test(test_drop_reason_names),
        cmocka_unit_test(test_topic_good),
        cmocka_unit_test_setup_teardown(test_telemetry_scan_agrees, arena_setup, arena_teardown),
        cmocka_unit_test(test_topic_bad),
        cmocka_unit_test(test_device_key_valid),
        cmocka_unit_test(test_time_parse_good),
        cmocka_unit_test(test_time_parse_bad),
        cmocka_unit_test_setup_teardown(test_telemetry_parse, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_telemetry_duplicate_name, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_telemetry_future, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_telemetry_limits, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_telemetry_size, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_telemetry_alarm, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_telemetry_snapshot, arena_setup, arena_teardown),
        cmocka_unit_test(test_fixtures_bad),
        cmocka_unit_test(test_fixtures_good),
        cmocka_unit_test_setup_teardown(test_rule_operators, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_rule_booleans, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_rule_nesting, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_rule_missing, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_rule_why, arena_setup, arena_teardown),
        cmocka_unit_test_setup_teardown(test_rule_why_utf8_cut, arena_setup, arena_teardown),
        cmocka_unit_test(test_rule_defaults),
        cmocka_unit_test(test_rule_applies),
        cmocka_unit_test_setup_teardown(test_rule_top_level_leaf, arena_setup, arena_teardown),
        cmocka_unit_test(test_rule_limits),
        cmocka_unit_test_setup_teardown(test_rule_roundtrip, arena_setup, arena_teardown),
        cmocka_unit_test(test_rule_json_canonical),
        cmocka_unit_test(test_rule_describe),
        cmocka_unit_test(test_schedule_window_midnight),
        cmocka_unit_test(test_schedule_window_day),
        cmocka_unit_test(test_schedule_timezones),
        cmocka_unit_test(test_schedule_dates),
        cmocka_unit_test(test_rule_invalid),
        cmocka_unit_test(test_rule_invalid_edges),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
