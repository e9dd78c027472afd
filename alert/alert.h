/* The alert engine: pure functions, no I/O, no globals. It reads MQTT
 * topics and telemetry payloads, compiles alert rules from their JSON, and
 * tells whether a rule fires for a message and why. The alert thread
 * (bot/mqtt.c), `rivet rule` and the tests use it; it lives in a folder of
 * its own because none of the channels, handlers or database code needs its
 * insides (docs/alerts.md). */
#ifndef RIVET_ALERT_H
#define RIVET_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;

enum severity { SEV_LOW, SEV_MEDIUM, SEV_HIGH, SEV_CRITICAL };
#define SEV_COUNT 4

/* "low" "medium" "high" "critical" */
const char *severity_name(enum severity s);
/* Parses those four words (case-insensitive). Returns 0 or -EINVAL. */
int severity_parse(const char *s, enum severity *ret);

/* ---- topics ---- */

enum topic_kind { TOPIC_TELEMETRY, TOPIC_ALARM };

/* A factory slug is at most 63 bytes; a device key 1-64 of A-Z a-z 0-9 _ . : -
 * (sql/0005_alerts.sql checks the same). */
#define SLUG_MAX 63
#define DEVICE_KEY_MAX 64

/* Splits factories/{slug}/devices/{key}/telemetry (or .../alarm) into slug
 * and key. Returns 0, or -EINVAL for any other topic or a slug or key out
 * of bounds. */
int topic_parse(const char *topic, char slug[SLUG_MAX + 1], char key[DEVICE_KEY_MAX + 1],
                enum topic_kind *kind);
bool device_key_valid(const char *key);

/* ---- telemetry ---- */

#define TELEMETRY_MAX_BYTES 65536
#define TELEMETRY_MAX_METRICS 256
#define METRIC_NAME_MAX 64
/* A timestamp further ahead than this (a device clock gone wrong) is
 * refused; one in the past is accepted as it is. */
#define TELEMETRY_MAX_FUTURE_S 300
#define ALARM_CODE_MAX 64
#define ALARM_MESSAGE_MAX 500

/* Why a message was dropped: counted by reason, logged (rate-limited). */
enum drop_reason {
    DROP_NONE,
    DROP_TOPIC,           /* not factories/{slug}/devices/{key}/telemetry|alarm */
    DROP_TOO_BIG,         /* over TELEMETRY_MAX_BYTES */
    DROP_NOT_JSON,        /* not JSON, or not UTF-8 */
    DROP_NOT_OBJECT,      /* JSON, but not an object */
    DROP_METRICS,         /* metrics missing (telemetry), not an object, or empty */
    DROP_VALUE,           /* a metric that is not a finite number or a boolean */
    DROP_TOO_MANY,        /* over TELEMETRY_MAX_METRICS */
    DROP_NAME,            /* a metric name empty, too long or with control characters */
    DROP_TIMESTAMP,       /* not an RFC 3339 / ISO 8601 time */
    DROP_FUTURE,          /* more than TELEMETRY_MAX_FUTURE_S ahead */
    DROP_ALARM,           /* alarm topic: severity, code or message missing or wrong */
    DROP_UNKNOWN_FACTORY, /* the slug is no factory's */
    DROP_UNKNOWN_DEVICE,  /* a new device where the factory does not register them */
    DROP_DEVICE_LIMIT,    /* the factory has max_devices already */
    DROP_DATABASE,        /* the database refused, after retries */
    DROP_REASON_COUNT
};
/* "too_big", "not_json", ... for logs and metrics. */
const char *drop_reason_name(enum drop_reason r);

struct metric {
    const char *name;
    double value; /* booleans are 1 and 0 */
    bool is_bool;
};

struct telemetry {
    double ts; /* seconds since the epoch, UTC; now when the message had none */
    bool has_ts;
    struct metric *metrics; /* sorted by name, names unique */
    int n_metrics;
    /* A hash table over metrics for telemetry_get_hashed(): slot i holds
     * a metric's index + 1, or 0; mask + 1 slots, a power of two. */
    uint16_t *slots;
    uint32_t mask;
    /* Alarm topic only: */
    enum severity severity;
    const char *code, *message; /* code may be NULL */
};

/* Reads one payload of the given topic kind. now: the time to use when the
 * message has no timestamp, and to judge one in the future. Strings are
 * owned by the arena. Returns 0, or -EINVAL with *why set, or -ENOMEM (the
 * arena is full; *why is DROP_NONE); never reads past len (the payload
 * need not be NUL-terminated). A metric name given twice
 * keeps its last value. Alarm payloads: severity (required), code and
 * message (at least one), metrics optional. */
int telemetry_parse(struct arena *a, enum topic_kind kind, const void *payload, size_t len,
                    double now, struct telemetry *out, enum drop_reason *why);
/* Whether name[0..len) may name a metric (and a rule's parameter): 1 to
 * METRIC_NAME_MAX bytes of valid UTF-8 without control characters (tab and
 * newline included). */
bool metric_name_valid(const char *name, size_t len);
/* The metric named name, or NULL. */
const struct metric *telemetry_get(const struct telemetry *t, const char *name);
/* The same, with hash = metric_hash(name) computed once beforehand: the
 * rules look up the same names in every message. */
uint64_t metric_hash(const char *name);
const struct metric *telemetry_get_hashed(const struct telemetry *t, const char *name,
                                          uint64_t hash);
/* The metrics as a JSON object (arena), for the alarm's snapshot. */
char *telemetry_snapshot(struct arena *a, const struct telemetry *t);

/* Parses "2026-02-19T10:30:00Z", with optional fraction and a Z or +hh:mm
 * offset (also a space for T). Returns 0 and seconds since the epoch, or
 * -EINVAL. */
int time_parse_rfc3339(const char *s, double *ret);

/* ---- rules ---- */

/* A rule file (and the rule as stored):
 *   {"name": "Spindle hot", "severity": "high",
 *    "devices": ["cnc-1", "cnc-2"],          optional: every device
 *    "condition": {"operator": "AND", "conditions": [
 *        {"parameter": "spindle_temp", "operator": "gt", "threshold": 80},
 *        {"operator": "OR", "conditions": [...]}]},
 *    "cooldown_minutes": 15,                 optional: 15; 0 to 10080
 *    "schedule": {"type": "always"}          optional: always
 *              | {"type": "window", "days": ["mon", "tue", ...], optional: every day
 *                 "start": "22:00", "end": "06:00"}   end <= start: crosses midnight
 *              | {"type": "dates", "from": "2026-12-01", "to": "2026-12-31"},
 *    "active": true}                         optional: true
 * A leaf's threshold is a number (or true/false for eq and neq). */
#define RULE_MAX_DEPTH 8
#define RULE_MAX_CONDITIONS 64
#define RULE_MAX_DEVICES 1000
#define RULE_NAME_MAX 200
/* A rule's JSON: 1000 device keys fit with room to spare. */
#define RULE_MAX_BYTES (256 * 1024)

struct rule;

/* Parses and checks a rule. Returns 0 and *ret (free with rule_free()), or
 * -EINVAL with err one sentence saying where and what is wrong
 * ("condition.conditions[1].operator: unknown operator \"gtt\"; use gt, gte,
 * lt, lte, eq or neq"), or -ENOMEM. */
int rule_compile(const char *json, size_t len, struct rule **ret, char *err, size_t errlen);
void rule_free(struct rule *r);

const char *rule_name(const struct rule *r);
enum severity rule_severity(const struct rule *r);
int rule_cooldown_s(const struct rule *r);
bool rule_active(const struct rule *r);
/* The rule as canonical JSON (malloc'd): what is stored. */
char *rule_json(const struct rule *r);
/* A one-line summary: "spindle_temp > 80 AND (a < 1 OR b = true) · 22:00-06:00 mon-fri". */
void rule_describe(const struct rule *r, char *out, size_t n);

/* Whether the rule watches this device. */
bool rule_applies(const struct rule *r, const char *device_key);
/* Whether the rule's schedule is on at utc (seconds since the epoch) in a
 * timezone that is utc_offset_s ahead of UTC at that instant. */
bool rule_scheduled(const struct rule *r, double utc, int utc_offset_s);

/* Evaluates the condition on a message. Returns true when it holds. why
 * (may be NULL) gets, when it holds, the conditions that made it so with
 * their values ("spindle_temp 82.5 > 80 AND coolant_flow 3.2 < 5"), and
 * when it does not, the first reason ("spindle_temp 75 is not > 80",
 * "coolant_flow is missing"). A missing parameter makes its condition
 * false. Cut to n bytes on a UTF-8 boundary. */
bool rule_eval(const struct rule *r, const struct telemetry *t, char *why, size_t n);

#endif
