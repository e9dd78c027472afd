/* Alert rules as `rivet rule add` and the alert thread compile them:
 * rule_compile of the input; for a refused rule, the error sentence; for a
 * compiled one, its summary (rule_describe, into buffers small and large),
 * its canonical JSON (rule_json), which is what is stored and must compile
 * again to the same JSON, and the rule applied to a device, scheduled at a
 * few instants and offsets, and evaluated against two fixed messages (one
 * with high readings, one with low) with its explanation. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>

#include "alert.h"
#include "arena.h"
#include "fuzz.h"
#include "text.h"

#define NOW 1771502400.0 /* 2026-02-19T12:00:00Z, a Thursday */

static const char *const messages[] = {
    "{\"timestamp\": \"2026-02-19T03:30:00Z\", \"metrics\": {\"spindle_temp\": 95.5, "
    "\"coolant_flow\": 1.2, \"rpm\": 12000, \"door_open\": true, \"pressure\": 7.25, \"t\": 100, "
    "\"a\": 1, \"b\": 2, \"x\": -3, \"y\": 1e300, \"temp\": 80, \"vibration\": 12.5, "
    "\"level\": 0}}",
    "{\"metrics\": {\"spindle_temp\": -40, \"coolant_flow\": 9, \"rpm\": 0, \"door_open\": "
    "false, \"pressure\": 0.5, \"t\": -100, \"a\": 0, \"b\": 0, \"x\": 3, \"y\": -1e-300, "
    "\"temp\": 80.0000001}}",
};
#define N_MESSAGES (sizeof(messages) / sizeof(messages[0]))
static struct arena *msg_arena;
static struct telemetry msgs[N_MESSAGES];

static void text_check(const char *s, size_t n)
{
    size_t len;

    FUZZ_CHECK(memchr(s, '\0', n));
    len = strlen(s);
    FUZZ_CHECK(utf8_valid(s, len));
}

static void compiled(struct rule *r)
{
    static const size_t sizes[] = {1, 5, 17, 64, 512, 4096};
    static const double at[] = {NOW, NOW + 11 * 3600, NOW - 86400 * 40, 0, 4102444800.0};
    static const int offsets[] = {0, 3600, -3600, 5 * 3600 + 1800, -12 * 3600, 14 * 3600};
    struct rule *again = NULL;
    char err[256], *json, *json2;

    FUZZ_CHECK(rule_name(r) && rule_name(r)[0]);
    FUZZ_CHECK(strlen(rule_name(r)) <= RULE_NAME_MAX);
    FUZZ_CHECK((int)rule_severity(r) >= 0 && rule_severity(r) < SEV_COUNT);
    FUZZ_CHECK(rule_cooldown_s(r) >= 0 && rule_cooldown_s(r) <= 10080 * 60);
    rule_active(r);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        char *out = malloc(sizes[k]);
        if (!out)
            return;
        rule_describe(r, out, sizes[k]);
        text_check(out, sizes[k]);
        free(out);
    }
    json = rule_json(r);
    if (json) {
        FUZZ_CHECK(rule_compile(json, strlen(json), &again, err, sizeof(err)) == 0);
        json2 = rule_json(again);
        FUZZ_CHECK(!json2 || strcmp(json, json2) == 0);
        free(json2);
        rule_free(again);
        free(json);
    }
    rule_applies(r, "cnc-1");
    rule_applies(r, "");
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
        for (size_t k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++)
            rule_scheduled(r, at[i], offsets[k]);
    for (size_t m = 0; m < N_MESSAGES; m++) {
        bool fires = rule_eval(r, &msgs[m], NULL, 0);

        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            char *why = malloc(sizes[k]);
            if (!why)
                return;
            FUZZ_CHECK(rule_eval(r, &msgs[m], why, sizes[k]) == fires);
            text_check(why, sizes[k]);
            free(why);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rule *r = NULL;
    char err[256], small[8];
    /* Exactly size bytes: rule_compile must not read past them. */
    char *json = malloc(size ? size : 1);
    int rc;

    if (!json)
        return 0;
    if (size)
        memcpy(json, data, size);
    rc = rule_compile(json, size, &r, err, sizeof(err));
    if (rc == 0) {
        compiled(r);
        rule_free(r);
    } else {
        FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
        if (rc == -EINVAL)
            FUZZ_CHECK(memchr(err, '\0', sizeof(err)) && err[0]);
        /* A small error buffer is cut, not overrun. */
        rc = rule_compile(json, size, &r, small, sizeof(small));
        FUZZ_CHECK(rc < 0);
        if (rc == -EINVAL)
            FUZZ_CHECK(memchr(small, '\0', sizeof(small)));
    }
    free(json);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    enum drop_reason why;

    if (arena_new(&msg_arena) < 0)
        abort();
    for (size_t i = 0; i < N_MESSAGES; i++) {
        if (telemetry_parse(msg_arena, TOPIC_TELEMETRY, messages[i], strlen(messages[i]), NOW,
                            &msgs[i], &why) < 0) {
            fprintf(stderr, "fuzz_rule: message %zu: %s\n", i, drop_reason_name(why));
            abort();
        }
    }
    return 0;
}
