/* MQTT messages as the alert thread reads them (bot/mqtt.c): the input is
 * the topic and the payload, split at the first NUL or newline (no
 * separator: the whole input is both). topic_parse on the topic,
 * time_parse_rfc3339 on it too, telemetry_parse of the payload as the
 * topic's kind (as both kinds when the topic is not one), and for a
 * payload that parses what the thread does next: every metric looked up by
 * name, the snapshot (must be JSON), and a few fixed rules applied,
 * scheduled and evaluated with their explanation. The clock is fixed. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>

#include "alert.h"
#include "arena.h"
#include "fuzz.h"
#include "text.h"

#define NOW 1771502400.0 /* 2026-02-19T12:00:00Z */

static const char *const rule_src[] = {
    "{\"name\": \"Spindle hot\", \"severity\": \"high\", \"condition\": {\"operator\": \"AND\", "
    "\"conditions\": [{\"parameter\": \"spindle_temp\", \"operator\": \"gt\", \"threshold\": 80}, "
    "{\"operator\": \"OR\", \"conditions\": [{\"parameter\": \"coolant_flow\", \"operator\": "
    "\"lt\", \"threshold\": 5}, {\"parameter\": \"door_open\", \"operator\": \"eq\", "
    "\"threshold\": true}]}]}}",
    "{\"name\": \"Night pressure\", \"severity\": \"critical\", \"devices\": [\"cnc-1\", "
    "\"press-2\"], \"condition\": {\"parameter\": \"pressure\", \"operator\": \"gte\", "
    "\"threshold\": 6.5}, \"schedule\": {\"type\": \"window\", \"days\": [\"mon\", \"tue\", "
    "\"fri\"], \"start\": \"22:00\", \"end\": \"06:00\"}, \"cooldown_minutes\": 0}",
    "{\"name\": \"Any rpm\", \"severity\": \"low\", \"condition\": {\"parameter\": \"rpm\", "
    "\"operator\": \"neq\", \"threshold\": 0}, \"schedule\": {\"type\": \"dates\", \"from\": "
    "\"2026-01-01\", \"to\": \"2026-12-31\"}}",
};
#define N_RULES (sizeof(rule_src) / sizeof(rule_src[0]))
static struct rule *rules[N_RULES];

static void why_check(const char *why, size_t n)
{
    size_t len;

    if (n == 0)
        return;
    FUZZ_CHECK(memchr(why, '\0', n));
    len = strlen(why);
    FUZZ_CHECK(utf8_valid(why, len));
}

static void use(struct arena *a, const struct telemetry *t, const char *key)
{
    static const size_t why_sizes[] = {1, 7, 40, 512};
    char *snap;
    json_t *j;

    FUZZ_CHECK(!isnan(t->ts) && !isinf(t->ts));
    FUZZ_CHECK(t->n_metrics >= 0 && t->n_metrics <= TELEMETRY_MAX_METRICS);
    for (int i = 0; i < t->n_metrics; i++) {
        const struct metric *m = &t->metrics[i];

        FUZZ_CHECK(metric_name_valid(m->name, strlen(m->name)));
        FUZZ_CHECK(isfinite(m->value));
        if (i > 0)
            FUZZ_CHECK(strcmp(t->metrics[i - 1].name, m->name) < 0);
        FUZZ_CHECK(telemetry_get(t, m->name) == m);
        FUZZ_CHECK(telemetry_get_hashed(t, m->name, metric_hash(m->name)) == m);
    }
    FUZZ_CHECK(!telemetry_get(t, "no such metric \x01"));
    fuzz_touch(t->code);
    fuzz_touch(t->message);
    snap = telemetry_snapshot(a, t);
    if (snap) {
        j = json_loads(snap, 0, NULL);
        FUZZ_CHECK(json_is_object(j));
        FUZZ_CHECK(json_object_size(j) == (size_t)t->n_metrics);
        json_decref(j);
    }
    for (size_t r = 0; r < N_RULES; r++) {
        if (!rules[r])
            continue;
        rule_applies(rules[r], key);
        rule_scheduled(rules[r], t->ts, 0);
        rule_scheduled(rules[r], t->ts, -5 * 3600);
        rule_scheduled(rules[r], t->ts, 14 * 3600);
        rule_eval(rules[r], t, NULL, 0);
        for (size_t k = 0; k < sizeof(why_sizes) / sizeof(why_sizes[0]); k++) {
            char *why = malloc(why_sizes[k]);
            if (!why)
                return;
            rule_eval(rules[r], t, why, why_sizes[k]);
            why_check(why, why_sizes[k]);
            free(why);
        }
    }
}

static void payload(struct arena *a, enum topic_kind kind, const uint8_t *p, size_t len,
                    const char *key)
{
    struct telemetry t;
    enum drop_reason why = DROP_NONE;
    /* Exactly len bytes: telemetry_parse must not read past them. */
    uint8_t *copy = malloc(len ? len : 1);
    int r;

    if (!copy)
        return;
    if (len)
        memcpy(copy, p, len);
    r = telemetry_parse(a, kind, copy, len, NOW, &t, &why);
    if (r == 0) {
        FUZZ_CHECK(why == DROP_NONE || why == 0);
        use(a, &t, key);
    } else {
        FUZZ_CHECK(r == -EINVAL || r == -ENOMEM);
        FUZZ_CHECK(r == -ENOMEM || (why > DROP_NONE && why < DROP_REASON_COUNT));
        fuzz_touch(drop_reason_name(why));
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char slug[SLUG_MAX + 1], key[DEVICE_KEY_MAX + 1];
    struct arena *a = NULL;
    enum topic_kind kind;
    const uint8_t *p = data;
    size_t tlen = size, plen = size;
    char *topic;
    double ts;

    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\0' || data[i] == '\n') {
            tlen = i;
            p = data + i + 1;
            plen = size - i - 1;
            break;
        }
    }
    topic = fuzz_strndup(data, tlen);
    if (!topic || arena_new(&a) < 0)
        goto out;
    if (time_parse_rfc3339(topic, &ts) == 0)
        FUZZ_CHECK(isfinite(ts));
    if (topic_parse(topic, slug, key, &kind) == 0) {
        FUZZ_CHECK(strlen(slug) >= 1 && strlen(slug) <= SLUG_MAX);
        FUZZ_CHECK(device_key_valid(key));
        FUZZ_CHECK(kind == TOPIC_TELEMETRY || kind == TOPIC_ALARM);
        payload(a, kind, p, plen, key);
    } else {
        payload(a, TOPIC_TELEMETRY, p, plen, "cnc-1");
        arena_reset(a);
        payload(a, TOPIC_ALARM, p, plen, "cnc-1");
    }
out:
    arena_free(a);
    free(topic);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];

    for (size_t i = 0; i < N_RULES; i++) {
        if (rule_compile(rule_src[i], strlen(rule_src[i]), &rules[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "fuzz_telemetry: rule %zu: %s\n", i, err);
            abort();
        }
    }
    return 0;
}
