/* Alert rules: compile, schedule, evaluate (alert.h). A rule is compiled
 * once, when the alert thread loads it, into flat arrays; evaluating it on
 * a message then reads no JSON, allocates nothing and formats nothing
 * unless the caller asks why. Compiling is where people meet the rules, so
 * every refusal names the JSON path and says what would be right. */
#include "alert.h"
#include "alert_internal.h"

#include "buf.h"
#include "text.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define COOLDOWN_DEFAULT_MIN 15
#define COOLDOWN_MAX_MIN 10080
/* "condition" and RULE_MAX_DEPTH times ".conditions[NN]" fit easily. */
#define PATH_LEN 192
/* Groups without leaves cannot exist (every group has a child), so a rule
 * has at most RULE_MAX_CONDITIONS * RULE_MAX_DEPTH nodes; this only guards
 * the arithmetic. */
#define MAX_NODES 4096
#define RULE_JSON_MAX (4u << 20)
/* User text quoted in an error is cut to this many bytes. */
#define SHOWN_MAX 40

enum node_kind { NODE_LEAF, NODE_AND, NODE_OR };
enum op { OP_GT, OP_GTE, OP_LT, OP_LTE, OP_EQ, OP_NEQ, OP_COUNT };

static const char *const op_names[OP_COUNT] = {"gt", "gte", "lt", "lte", "eq", "neq"};
/* ASCII, so the text reads the same in a log line, a terminal and a chat. */
static const char *const op_symbols[OP_COUNT] = {">", ">=", "<", "<=", "=", "!="};

struct node {
    uint8_t kind;
    uint8_t op;       /* leaf */
    bool is_bool;     /* leaf: the threshold was written true or false */
    uint8_t param;    /* leaf: index into rule->params */
    uint16_t first;   /* group: children are nodes[first .. first + n) */
    uint16_t n;       /* group */
    double threshold; /* leaf: true is 1, false 0 */
};

enum sched_type { SCHED_ALWAYS, SCHED_WINDOW, SCHED_DATES, SCHED_COUNT };

static const char *const sched_names[SCHED_COUNT] = {"always", "window", "dates"};
static const char *const day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
#define ALL_DAYS 0x7f

/* Dates are kept as the local clock read as if it were UTC: comparing them
 * with utc + offset needs no timezone database. */
struct schedule {
    enum sched_type type;
    uint8_t days;              /* window: bit 0 is monday, bit 6 sunday */
    int start, end;            /* window: minutes of the day; end may be 1440 */
    int64_t from, to;          /* dates: local seconds; to is the start of its day without a time */
    bool to_time;              /* dates: to was given with a time of day */
    char from_s[17], to_s[17]; /* dates: as given, canonical ("2026-12-01" or "...T08:00") */
};

struct rule {
    char *name;
    enum severity severity;
    int cooldown_min;
    bool active;
    char **devices; /* sorted, unique; NULL: every device */
    int n_devices;
    struct node *nodes; /* nodes[0] is the condition's root */
    int n_nodes, cap_nodes, n_leaves;
    char *params[RULE_MAX_CONDITIONS]; /* each parameter name once */
    uint64_t param_hash[RULE_MAX_CONDITIONS];
    int n_params;
    struct schedule sched;
};

/* ---- errors ---- */

struct compile {
    char *err;
    size_t errlen;
};

static int fail(struct compile *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct compile *c, const char *fmt, ...)
{
    va_list ap;

    if (c->err && c->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
        c->err[utf8_prefix(c->err, c->errlen - 1)] = '\0';
    }
    return -EINVAL;
}

static int fail_nomem(struct compile *c)
{
    fail(c, "out of memory");
    return -ENOMEM;
}

/* s (valid UTF-8, from jansson) fit to quote in an error: at most
 * SHOWN_MAX bytes, control bytes as '?'. Returns out. */
static const char *shown(const char *s, char out[SHOWN_MAX + 4])
{
    size_t n = utf8_prefix(s, SHOWN_MAX);

    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (s[n]) {
        memcpy(out + n, "…", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* Refuses a key of obj that is not in known (NULL-terminated): a typo such
 * as "treshold" would otherwise leave a rule quietly doing something else. */
static int check_keys(struct compile *c, json_t *obj, const char *path, const char *const *known,
                      const char *list)
{
    const char *key;
    json_t *v;
    char buf[SHOWN_MAX + 4];

    json_object_foreach(obj, key, v)
    {
        const char *best = NULL;
        int best_d = 3;
        bool found = false;

        for (size_t i = 0; known[i] && !found; i++) {
            int d = text_distance(key, known[i]);

            found = !strcmp(key, known[i]);
            if (d < best_d && 2 * d < (int)strlen(known[i])) {
                best = known[i];
                best_d = d;
            }
        }
        if (found)
            continue;
        if (best)
            return fail(c, "%s%s%s: unknown key; did you mean \"%s\"?", path, *path ? "." : "",
                        shown(key, buf), best);
        return fail(c, "%s%s%s: unknown key; use %s", path, *path ? "." : "", shown(key, buf),
                    list);
    }
    return 0;
}

/* ---- compiling: the condition ---- */

static int reserve_nodes(struct rule *r, int n, int *first)
{
    struct node *p;
    int cap;

    if (r->n_nodes + n > MAX_NODES)
        return -E2BIG;
    if (r->n_nodes + n > r->cap_nodes) {
        cap = r->cap_nodes ? r->cap_nodes : 16;
        while (cap < r->n_nodes + n)
            cap *= 2;
        p = realloc(r->nodes, (size_t)cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        r->nodes = p;
        r->cap_nodes = cap;
    }
    memset(r->nodes + r->n_nodes, 0, (size_t)n * sizeof(*r->nodes));
    *first = r->n_nodes;
    r->n_nodes += n;
    return 0;
}

/* The index of name in r->params, added when new; -ENOMEM. */
static int intern_param(struct rule *r, const char *name)
{
    for (int i = 0; i < r->n_params; i++)
        if (!strcmp(r->params[i], name))
            return i;
    /* At most one parameter per leaf, and leaves are counted before. */
    r->params[r->n_params] = strdup(name);
    if (!r->params[r->n_params])
        return -ENOMEM;
    r->param_hash[r->n_params] = metric_hash(name);
    return r->n_params++;
}

static int compile_cond(struct compile *c, struct rule *r, json_t *obj, const char *path, int depth,
                        int slot);

static int compile_group(struct compile *c, struct rule *r, json_t *obj, const char *path,
                         int depth, int slot, enum node_kind kind)
{
    json_t *conds = json_object_get(obj, "conditions");
    char cpath[PATH_LEN];
    size_t n, i;
    int first, rc;

    if (json_object_get(obj, "parameter") || json_object_get(obj, "threshold"))
        return fail(c, "%s.%s: not used by an AND or OR group; put comparisons in \"conditions\"",
                    path, json_object_get(obj, "parameter") ? "parameter" : "threshold");
    if (!conds)
        return fail(c, "%s.conditions: missing; an AND or OR group lists its conditions", path);
    if (!json_is_array(conds))
        return fail(c, "%s.conditions: must be an array of conditions", path);
    n = json_array_size(conds);
    if (n == 0)
        return fail(c, "%s.conditions: empty; an AND or OR group needs at least one condition",
                    path);
    if (n > RULE_MAX_CONDITIONS)
        return fail(c, "%s.conditions: more than %d conditions", path, RULE_MAX_CONDITIONS);
    rc = reserve_nodes(r, (int)n, &first);
    if (rc == -ENOMEM)
        return fail_nomem(c);
    if (rc < 0)
        return fail(c, "condition: more than %d conditions", RULE_MAX_CONDITIONS);
    r->nodes[slot].kind = (uint8_t)kind;
    r->nodes[slot].first = (uint16_t)first;
    r->nodes[slot].n = (uint16_t)n;
    for (i = 0; i < n; i++) {
        snprintf(cpath, sizeof(cpath), "%s.conditions[%zu]", path, i);
        rc = compile_cond(c, r, json_array_get(conds, i), cpath, depth + 1, first + (int)i);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int compile_leaf(struct compile *c, struct rule *r, json_t *obj, const char *path, int slot,
                        enum op op)
{
    json_t *p = json_object_get(obj, "parameter"), *th = json_object_get(obj, "threshold");
    bool eq = op == OP_EQ || op == OP_NEQ;
    struct node *nd;
    char buf[SHOWN_MAX + 4];
    int param;

    if (json_object_get(obj, "conditions"))
        return fail(c,
                    "%s.conditions: not used by a comparison (%s); group conditions with AND or OR",
                    path, op_names[op]);
    if (!p)
        return fail(c, "%s.parameter: missing; name the metric to compare", path);
    if (!json_is_string(p))
        return fail(c, "%s.parameter: must be a string, the name of a metric", path);
    if (!metric_name_valid(json_string_value(p), json_string_length(p)))
        return fail(
            c, "%s.parameter: \"%s\" is not a metric name (1 to %d bytes, no control characters)",
            path, shown(json_string_value(p), buf), METRIC_NAME_MAX);
    if (!th)
        return fail(c, "%s.threshold: missing; give the value to compare with", path);
    if (json_is_boolean(th) && !eq)
        return fail(c, "%s.threshold: true and false only go with eq or neq", path);
    if (!json_is_boolean(th) && (!json_is_number(th) || !isfinite(json_number_value(th))))
        return fail(c, "%s.threshold: must be a number%s", path, eq ? ", true or false" : "");
    if (++r->n_leaves > RULE_MAX_CONDITIONS)
        return fail(c, "condition: more than %d conditions", RULE_MAX_CONDITIONS);
    param = intern_param(r, json_string_value(p));
    if (param < 0)
        return fail_nomem(c);
    nd = &r->nodes[slot];
    nd->kind = NODE_LEAF;
    nd->op = (uint8_t)op;
    nd->param = (uint8_t)param;
    nd->is_bool = json_is_boolean(th);
    nd->threshold = nd->is_bool ? (json_is_true(th) ? 1 : 0) : json_number_value(th);
    if (nd->threshold == 0)
        nd->threshold = 0; /* -0 reads and prints as 0 */
    return 0;
}

static int compile_cond(struct compile *c, struct rule *r, json_t *obj, const char *path, int depth,
                        int slot)
{
    static const char *const keys[] = {"operator", "conditions", "parameter", "threshold", NULL};
    json_t *opv;
    const char *op;
    char buf[SHOWN_MAX + 4];
    int rc;

    if (!json_is_object(obj))
        return fail(c, "%s: must be an object, a comparison or an AND or OR group", path);
    if (depth > RULE_MAX_DEPTH)
        return fail(c, "%s: conditions nest deeper than %d levels", path, RULE_MAX_DEPTH);
    rc = check_keys(c, obj, path, keys, "operator, conditions, parameter or threshold");
    if (rc < 0)
        return rc;
    opv = json_object_get(obj, "operator");
    if (!opv)
        return fail(c,
                    "%s.operator: missing; use AND or OR with \"conditions\", or gt, gte, lt, "
                    "lte, eq or neq with \"parameter\" and \"threshold\"",
                    path);
    if (!json_is_string(opv))
        return fail(c, "%s.operator: must be a string", path);
    op = json_string_value(opv);
    if (!strcasecmp(op, "AND"))
        return compile_group(c, r, obj, path, depth, slot, NODE_AND);
    if (!strcasecmp(op, "OR"))
        return compile_group(c, r, obj, path, depth, slot, NODE_OR);
    for (int i = 0; i < OP_COUNT; i++)
        if (!strcasecmp(op, op_names[i]))
            return compile_leaf(c, r, obj, path, slot, (enum op)i);
    if (json_object_get(obj, "conditions"))
        return fail(c, "%s.operator: unknown operator \"%s\"; use AND or OR", path, shown(op, buf));
    return fail(c, "%s.operator: unknown operator \"%s\"; use gt, gte, lt, lte, eq or neq", path,
                shown(op, buf));
}

/* ---- compiling: the rest ---- */

static int compile_name(struct compile *c, struct rule *r, json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);

    if (!v)
        return fail(c, "name: missing; give the rule a name");
    if (!s)
        return fail(c, "name: must be a string");
    if (n == 0)
        return fail(c, "name: empty; give the rule a name");
    if (n > RULE_NAME_MAX)
        return fail(c, "name: longer than %d bytes", RULE_NAME_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return fail(c, "name: has control characters");
    if (text_has_control(s, n))
        return fail(c, "name: has control characters");
    r->name = strdup(s);
    return r->name ? 0 : fail_nomem(c);
}

static int compile_severity(struct compile *c, struct rule *r, json_t *v)
{
    char buf[SHOWN_MAX + 4];

    if (!v)
        return fail(c, "severity: missing; use low, medium, high or critical");
    if (!json_is_string(v))
        return fail(c, "severity: must be a string: low, medium, high or critical");
    if (severity_parse(json_string_value(v), &r->severity) < 0)
        return fail(c, "severity: unknown severity \"%s\"; use low, medium, high or critical",
                    shown(json_string_value(v), buf));
    return 0;
}

static int str_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int compile_devices(struct compile *c, struct rule *r, json_t *v)
{
    char buf[SHOWN_MAX + 4];
    size_t n;

    if (!v)
        return 0;
    if (!json_is_array(v))
        return fail(c, "devices: must be an array of device keys; leave it out to watch every "
                       "device");
    n = json_array_size(v);
    if (n == 0)
        return fail(c, "devices: empty; leave \"devices\" out to watch every device");
    if (n > RULE_MAX_DEVICES)
        return fail(c, "devices: more than %d devices", RULE_MAX_DEVICES);
    r->devices = calloc(n, sizeof(*r->devices));
    if (!r->devices)
        return fail_nomem(c);
    for (size_t i = 0; i < n; i++) {
        const char *key = json_string_value(json_array_get(v, i));

        if (!key)
            return fail(c, "devices[%zu]: must be a string, a device key", i);
        if (!device_key_valid(key))
            return fail(c,
                        "devices[%zu]: \"%s\" is not a device key (1 to %d of A-Z a-z 0-9 _ . : -)",
                        i, shown(key, buf), DEVICE_KEY_MAX);
        r->devices[i] = strdup(key);
        if (!r->devices[i])
            return fail_nomem(c);
        r->n_devices++;
    }
    /* Sorted, rule_applies() can bisect, and rule_json() is canonical. */
    qsort(r->devices, n, sizeof(*r->devices), str_ptr_cmp);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(r->devices[i - 1], r->devices[i]))
            return fail(c, "devices: \"%s\" is listed twice", r->devices[i]);
    return 0;
}

static int compile_cooldown(struct compile *c, struct rule *r, json_t *v)
{
    if (!v)
        return 0;
    /* Numbers arrive as doubles (see rule_compile); 15.0 is 15. */
    if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > COOLDOWN_MAX_MIN ||
        json_number_value(v) != trunc(json_number_value(v)))
        return fail(c, "cooldown_minutes: must be a whole number from 0 to %d (a week)",
                    COOLDOWN_MAX_MIN);
    r->cooldown_min = (int)json_number_value(v);
    return 0;
}

static int compile_active(struct compile *c, struct rule *r, json_t *v)
{
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return fail(c, "active: must be true or false");
    r->active = json_is_true(v);
    return 0;
}

/* "HH:MM" into minutes of the day; "24:00" (1440) only when end. */
static int parse_hhmm(const char *s, bool end)
{
    int h, m;

    if (!s || strlen(s) != 5 || s[2] != ':')
        return -1;
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[3] < '0' || s[3] > '9' ||
        s[4] < '0' || s[4] > '9')
        return -1;
    h = (s[0] - '0') * 10 + (s[1] - '0');
    m = (s[3] - '0') * 10 + (s[4] - '0');
    if (end && h == 24 && m == 0)
        return 1440;
    if (h > 23 || m > 59)
        return -1;
    return h * 60 + m;
}

/* "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM" (a space for the T too) into local
 * seconds and its canonical text. Returns 0 or -1. */
static int parse_day(const char *s, int64_t *secs, bool *has_time, char canon[17])
{
    size_t n = s ? strlen(s) : 0;
    int y = 0, mo, d, min = 0;

    if (n != 10 && n != 16)
        return -1;
    for (int i = 0; i < 10; i++) {
        bool dash = i == 4 || i == 7;

        if (dash ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return -1;
    }
    for (int i = 0; i < 4; i++)
        y = y * 10 + (s[i] - '0');
    mo = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
    if (!alert_date_valid(y, mo, d))
        return -1;
    if (n == 16) {
        if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
            return -1;
        min = parse_hhmm(s + 11, false);
        if (min < 0)
            return -1;
    }
    *secs = alert_days_from_civil(y, mo, d) * 86400 + min * 60;
    *has_time = n == 16;
    memcpy(canon, s, n);
    if (n == 16)
        canon[10] = 'T';
    canon[n] = '\0';
    return 0;
}

static int compile_window(struct compile *c, struct schedule *sc, json_t *v)
{
    json_t *days = json_object_get(v, "days");
    const char *start = json_string_value(json_object_get(v, "start"));
    const char *end = json_string_value(json_object_get(v, "end"));
    char buf[SHOWN_MAX + 4];

    if (days) {
        if (!json_is_array(days))
            return fail(c, "schedule.days: must be an array of days (mon, tue, wed, thu, fri, "
                           "sat, sun); leave it out for every day");
        if (json_array_size(days) == 0)
            return fail(c, "schedule.days: empty; leave \"days\" out for every day");
        sc->days = 0;
        for (size_t i = 0; i < json_array_size(days); i++) {
            const char *d = json_string_value(json_array_get(days, i));
            int k = 0;

            if (!d)
                return fail(c, "schedule.days[%zu]: must be a string such as \"mon\"", i);
            while (k < 7 && strcasecmp(d, day_names[k]))
                k++;
            if (k == 7)
                return fail(c,
                            "schedule.days[%zu]: unknown day \"%s\"; use mon, tue, wed, thu, "
                            "fri, sat or sun",
                            i, shown(d, buf));
            if (sc->days & (1u << k))
                return fail(c, "schedule.days[%zu]: \"%s\" is listed twice", i, day_names[k]);
            sc->days |= (uint8_t)(1u << k);
        }
    }
    if (!json_object_get(v, "start"))
        return fail(c, "schedule.start: missing; a window needs a start and an end (\"HH:MM\")");
    sc->start = parse_hhmm(start, false);
    if (sc->start < 0)
        return fail(c, "schedule.start: must be a time \"HH:MM\" from 00:00 to 23:59");
    if (!json_object_get(v, "end"))
        return fail(c, "schedule.end: missing; a window needs a start and an end (\"HH:MM\")");
    sc->end = parse_hhmm(end, true);
    if (sc->end < 0)
        return fail(c, "schedule.end: must be a time \"HH:MM\" from 00:00 to 24:00");
    if (sc->start == sc->end)
        return fail(c, "schedule: start and end are both %s; a window needs two different times",
                    start);
    return 0;
}

static int compile_dates(struct compile *c, struct schedule *sc, json_t *v)
{
    const char *from = json_string_value(json_object_get(v, "from"));
    const char *to = json_string_value(json_object_get(v, "to"));
    bool from_time;

    if (!json_object_get(v, "from"))
        return fail(c, "schedule.from: missing; a dates schedule needs \"from\" and \"to\"");
    if (parse_day(from, &sc->from, &from_time, sc->from_s) < 0)
        return fail(c, "schedule.from: must be a date \"YYYY-MM-DD\" or \"YYYY-MM-DDTHH:MM\"");
    if (!json_object_get(v, "to"))
        return fail(c, "schedule.to: missing; a dates schedule needs \"from\" and \"to\"");
    if (parse_day(to, &sc->to, &sc->to_time, sc->to_s) < 0)
        return fail(c, "schedule.to: must be a date \"YYYY-MM-DD\" or \"YYYY-MM-DDTHH:MM\"");
    /* A "to" without a time takes in its whole day. */
    if (sc->from > sc->to + (sc->to_time ? 0 : 86399))
        return fail(c, "schedule: from %s is after to %s", sc->from_s, sc->to_s);
    return 0;
}

static int compile_schedule(struct compile *c, struct rule *r, json_t *v)
{
    static const char *const keys[] = {"type", "days", "start", "end", "from", "to", NULL};
    static const char *const uses[SCHED_COUNT][5] = {
        {"type", NULL},
        {"type", "days", "start", "end", NULL},
        {"type", "from", "to", NULL},
    };
    json_t *type;
    const char *key;
    json_t *x;
    char buf[SHOWN_MAX + 4];
    int t = 0, rc;

    if (!v)
        return 0;
    if (!json_is_object(v))
        return fail(c, "schedule: must be an object with a \"type\": always, window or dates");
    rc = check_keys(c, v, "schedule", keys, "type, days, start, end, from or to");
    if (rc < 0)
        return rc;
    type = json_object_get(v, "type");
    if (!type)
        return fail(c, "schedule.type: missing; use always, window or dates");
    if (!json_is_string(type))
        return fail(c, "schedule.type: must be a string: always, window or dates");
    while (t < SCHED_COUNT && strcasecmp(json_string_value(type), sched_names[t]))
        t++;
    if (t == SCHED_COUNT)
        return fail(c, "schedule.type: unknown type \"%s\"; use always, window or dates",
                    shown(json_string_value(type), buf));
    json_object_foreach(v, key, x)
    {
        bool used = false;

        for (int i = 0; uses[t][i] && !used; i++)
            used = !strcmp(key, uses[t][i]);
        if (!used)
            return fail(c, "schedule.%s: not used by a \"%s\" schedule", key, sched_names[t]);
    }
    r->sched.type = (enum sched_type)t;
    if (t == SCHED_WINDOW)
        return compile_window(c, &r->sched, v);
    if (t == SCHED_DATES)
        return compile_dates(c, &r->sched, v);
    return 0;
}

int rule_compile(const char *json, size_t len, struct rule **ret, char *err, size_t errlen)
{
    static const char *const keys[] = {
        "name", "severity", "devices", "condition", "cooldown_minutes", "schedule", "active", NULL};
    struct compile c = {.err = err, .errlen = errlen};
    struct rule *r = NULL;
    json_t *root = NULL;
    json_error_t jerr;
    int rc, first;

    if (err && errlen > 0)
        err[0] = '\0';
    if (len > RULE_MAX_BYTES) {
        rc = fail(&c, "the rule is %zu bytes; at most %d are accepted", len, RULE_MAX_BYTES);
        goto out;
    }
    /* A key given twice in a rule is a mistake, not an update. Whole
     * numbers as doubles, as in telemetry: a threshold may be as large as
     * any value a device sends. */
    root = json_loadb(json ? json : "", json ? len : 0,
                      JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!root) {
        rc = fail(&c, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = fail(&c, "the rule must be a JSON object");
        goto out;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        rc = fail_nomem(&c);
        goto out;
    }
    r->cooldown_min = COOLDOWN_DEFAULT_MIN;
    r->active = true;
    r->sched.type = SCHED_ALWAYS;
    r->sched.days = ALL_DAYS;
    rc = check_keys(&c, root, "", keys,
                    "name, severity, devices, condition, cooldown_minutes, schedule or active");
    if (rc < 0)
        goto out;
    rc = compile_name(&c, r, json_object_get(root, "name"));
    if (rc < 0)
        goto out;
    rc = compile_severity(&c, r, json_object_get(root, "severity"));
    if (rc < 0)
        goto out;
    rc = compile_devices(&c, r, json_object_get(root, "devices"));
    if (rc < 0)
        goto out;
    if (!json_object_get(root, "condition")) {
        rc = fail(&c, "condition: missing; say when the rule fires");
        goto out;
    }
    rc = reserve_nodes(r, 1, &first);
    if (rc < 0) {
        rc = fail_nomem(&c);
        goto out;
    }
    rc = compile_cond(&c, r, json_object_get(root, "condition"), "condition", 1, first);
    if (rc < 0)
        goto out;
    rc = compile_cooldown(&c, r, json_object_get(root, "cooldown_minutes"));
    if (rc < 0)
        goto out;
    rc = compile_schedule(&c, r, json_object_get(root, "schedule"));
    if (rc < 0)
        goto out;
    rc = compile_active(&c, r, json_object_get(root, "active"));
    if (rc < 0)
        goto out;
    *ret = r;
    r = NULL;
    rc = 0;
out:
    rule_free(r);
    json_decref(root);
    return rc;
}

void rule_free(struct rule *r)
{
    if (!r)
        return;
    free(r->name);
    for (int i = 0; i < r->n_devices; i++)
        free(r->devices[i]);
    free(r->devices);
    for (int i = 0; i < r->n_params; i++)
        free(r->params[i]);
    free(r->nodes);
    free(r);
}

/* ---- accessors ---- */

const char *rule_name(const struct rule *r)
{
    return r->name;
}

enum severity rule_severity(const struct rule *r)
{
    return r->severity;
}

int rule_cooldown_s(const struct rule *r)
{
    return r->cooldown_min * 60;
}

bool rule_active(const struct rule *r)
{
    return r->active;
}

bool rule_applies(const struct rule *r, const char *device_key)
{
    int lo = 0, hi;

    if (!r || !device_key)
        return false;
    if (!r->devices)
        return true;
    hi = r->n_devices;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int cmp = strcmp(device_key, r->devices[mid]);

        if (cmp == 0)
            return true;
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return false;
}

/* ---- schedule ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

bool rule_scheduled(const struct rule *r, double utc, int utc_offset_s)
{
    const struct schedule *sc = &r->sched;
    double local = utc + utc_offset_s;
    int64_t secs, day;
    int sod, dow, yesterday;

    if (sc->type == SCHED_ALWAYS)
        return true;
    if (!isfinite(local) || fabs(local) > 1e12)
        return false;
    if (sc->type == SCHED_DATES) {
        if (local < (double)sc->from)
            return false;
        return sc->to_time ? local <= (double)sc->to : local < (double)(sc->to + 86400);
    }
    secs = (int64_t)floor(local);
    day = floor_div(secs, 86400);
    sod = (int)(secs - day * 86400);
    /* 1970-01-01 was a Thursday: day 0 is dow 3 counting from Monday. */
    dow = (int)((day % 7 + 7 + 3) % 7);
    yesterday = (dow + 6) % 7;
    if (sc->end > sc->start)
        return (sc->days >> dow & 1) && sod >= sc->start * 60 && sod < sc->end * 60;
    /* Across midnight: the evening belongs to a listed day, the morning
     * after it to the same shift. */
    return ((sc->days >> dow & 1) && sod >= sc->start * 60) ||
           ((sc->days >> yesterday & 1) && sod < sc->end * 60);
}

/* ---- text out ---- */

/* Bytes written into a caller's buffer, always NUL-terminated, cut on a
 * UTF-8 boundary; once a piece is cut nothing more goes in, so the text
 * never has a hole in the middle. */
struct text {
    char *p;
    size_t n, len;
    bool full;
};

static void text_init(struct text *o, char *p, size_t n)
{
    o->p = p;
    o->n = n;
    o->len = 0;
    o->full = !p || n == 0;
    if (!o->full)
        p[0] = '\0';
}

static void text_add(struct text *o, const char *s, size_t len)
{
    size_t room;

    if (o->full)
        return;
    room = o->n - 1 - o->len;
    if (len > room) {
        while (room > 0 && ((unsigned char)s[room] & 0xc0) == 0x80)
            room--;
        len = room;
        o->full = true;
    }
    memcpy(o->p + o->len, s, len);
    o->len += len;
    o->p[o->len] = '\0';
}

static void text_adds(struct text *o, const char *s)
{
    text_add(o, s, strlen(s));
}

static void text_value(struct text *o, double v, bool is_bool)
{
    char num[ALERT_NUM_MAX];

    if (is_bool)
        text_adds(o, v != 0 ? "true" : "false");
    else
        text_add(o, num, alert_num(num, v));
}

static void text_leaf(struct text *o, const struct rule *r, const struct node *nd)
{
    text_adds(o, r->params[nd->param]);
    text_adds(o, " ");
    text_adds(o, op_symbols[nd->op]);
    text_adds(o, " ");
    text_value(o, nd->threshold, nd->is_bool);
}

static void text_cond(struct text *o, const struct rule *r, const struct node *nd)
{
    if (nd->kind == NODE_LEAF) {
        text_leaf(o, r, nd);
        return;
    }
    for (int i = 0; i < nd->n; i++) {
        const struct node *ch = &r->nodes[nd->first + i];
        bool parens;

        /* A group of one is its member. */
        while (ch->kind != NODE_LEAF && ch->n == 1)
            ch = &r->nodes[ch->first];
        parens = ch->kind != NODE_LEAF;

        if (i > 0)
            text_adds(o, nd->kind == NODE_AND ? " AND " : " OR ");
        if (parens)
            text_adds(o, "(");
        text_cond(o, r, ch);
        if (parens)
            text_adds(o, ")");
    }
}

static void text_days(struct text *o, uint8_t days)
{
    bool first = true;

    for (int i = 0; i < 7; i++) {
        int j = i;

        if (!(days >> i & 1))
            continue;
        while (j + 1 < 7 && (days >> (j + 1) & 1))
            j++;
        if (!first)
            text_adds(o, ",");
        first = false;
        text_adds(o, day_names[i]);
        if (j > i)
            text_adds(o, j - i >= 2 ? "-" : ",");
        if (j > i)
            text_adds(o, day_names[j]);
        i = j;
    }
}

static void hhmm(char out[6], int min)
{
    unsigned h = (unsigned)min / 60 % 100, m = (unsigned)min % 60;

    out[0] = (char)('0' + h / 10);
    out[1] = (char)('0' + h % 10);
    out[2] = ':';
    out[3] = (char)('0' + m / 10);
    out[4] = (char)('0' + m % 10);
    out[5] = '\0';
}

void rule_describe(const struct rule *r, char *out, size_t n)
{
    const struct schedule *sc = &r->sched;
    const struct node *root;
    struct text o;
    char a[6], b[6];

    text_init(&o, out, n);
    root = &r->nodes[0];
    while (root->kind != NODE_LEAF && root->n == 1)
        root = &r->nodes[root->first];
    text_cond(&o, r, root);
    if (sc->type == SCHED_WINDOW) {
        hhmm(a, sc->start);
        hhmm(b, sc->end);
        text_adds(&o, " · ");
        text_adds(&o, a);
        text_adds(&o, "-");
        text_adds(&o, b);
        if (sc->days != ALL_DAYS) {
            text_adds(&o, " ");
            text_days(&o, sc->days);
        }
    } else if (sc->type == SCHED_DATES) {
        char from[17], to[17];

        /* For people: "2026-12-01 08:00", not the T of the JSON. */
        memcpy(from, sc->from_s, sizeof(from));
        memcpy(to, sc->to_s, sizeof(to));
        if (from[10] == 'T')
            from[10] = ' ';
        if (to[10] == 'T')
            to[10] = ' ';
        text_adds(&o, " · ");
        text_adds(&o, from);
        text_adds(&o, " to ");
        text_adds(&o, to);
    }
}

/* ---- evaluation ---- */

/* Metric lookups of one evaluation, each parameter at most once. */
struct lookup {
    const struct telemetry *t;
    uint64_t done; /* bit i: params[i] looked up */
    const struct metric *m[RULE_MAX_CONDITIONS];
};

static const struct metric *lookup(const struct rule *r, struct lookup *lk, int param)
{
    if (!(lk->done >> param & 1)) {
        lk->m[param] = telemetry_get_hashed(lk->t, r->params[param], r->param_hash[param]);
        lk->done |= UINT64_C(1) << param;
    }
    return lk->m[param];
}

static bool compare(enum op op, double v, double th)
{
    switch (op) {
    case OP_GT:
        return v > th;
    case OP_GTE:
        return v >= th;
    case OP_LT:
        return v < th;
    case OP_LTE:
        return v <= th;
    case OP_EQ:
        return v == th;
    case OP_NEQ:
        return v != th;
    default:
        return false;
    }
}

static bool eval_node(const struct rule *r, const struct node *nd, struct lookup *lk)
{
    const struct metric *m;

    switch (nd->kind) {
    case NODE_LEAF:
        m = lookup(r, lk, nd->param);
        return m && compare((enum op)nd->op, m->value, nd->threshold);
    case NODE_AND:
        for (int i = 0; i < nd->n; i++)
            if (!eval_node(r, &r->nodes[nd->first + i], lk))
                return false;
        return true;
    case NODE_OR:
        for (int i = 0; i < nd->n; i++)
            if (eval_node(r, &r->nodes[nd->first + i], lk))
                return true;
        return false;
    default:
        return false;
    }
}

/* How many leaves why_true() lists for nd (which holds). */
static int why_count(const struct rule *r, const struct node *nd, struct lookup *lk)
{
    int n = 0;

    if (nd->kind == NODE_LEAF)
        return 1;
    for (int i = 0; i < nd->n; i++) {
        const struct node *ch = &r->nodes[nd->first + i];

        if (nd->kind == NODE_AND || eval_node(r, ch, lk))
            n += why_count(r, ch, lk);
    }
    return n;
}

/* The node why_true() really lists for nd: a group that lists a single
 * branch is that branch, so no brackets pile up around it. */
static const struct node *why_shown(const struct rule *r, const struct node *nd, struct lookup *lk)
{
    while (nd->kind != NODE_LEAF) {
        const struct node *only = NULL;
        int shown = 0;

        for (int i = 0; i < nd->n; i++) {
            const struct node *ch = &r->nodes[nd->first + i];

            if (nd->kind == NODE_AND || eval_node(r, ch, lk)) {
                only = ch;
                shown++;
            }
        }
        if (shown != 1)
            break;
        nd = only;
    }
    return nd;
}

/* "spindle_temp 82.5 > 80 AND (a 0 < 1 OR b true = true)": every leaf of
 * an AND, the branches of an OR that hold. */
static void why_true(struct text *o, const struct rule *r, const struct node *nd, struct lookup *lk)
{
    bool first = true;

    if (nd->kind == NODE_LEAF) {
        const struct metric *m = lookup(r, lk, nd->param);

        text_adds(o, r->params[nd->param]);
        text_adds(o, " ");
        text_value(o, m->value, m->is_bool);
        text_adds(o, " ");
        text_adds(o, op_symbols[nd->op]);
        text_adds(o, " ");
        text_value(o, nd->threshold, nd->is_bool);
        return;
    }
    for (int i = 0; i < nd->n; i++) {
        const struct node *ch = &r->nodes[nd->first + i];
        bool parens;

        if (nd->kind == NODE_OR && !eval_node(r, ch, lk))
            continue;
        if (!first)
            text_adds(o, nd->kind == NODE_AND ? " AND " : " OR ");
        first = false;
        ch = why_shown(r, ch, lk);
        parens = ch->kind != NODE_LEAF && why_count(r, ch, lk) > 1;
        if (parens)
            text_adds(o, "(");
        why_true(o, r, ch, lk);
        if (parens)
            text_adds(o, ")");
    }
}

/* The first reason nd (which does not hold) fails: the first failing
 * condition of an AND, the first branch of an OR. */
static void why_false(struct text *o, const struct rule *r, const struct node *nd,
                      struct lookup *lk)
{
    const struct metric *m;

    if (nd->kind == NODE_AND) {
        for (int i = 0; i < nd->n; i++) {
            if (!eval_node(r, &r->nodes[nd->first + i], lk)) {
                why_false(o, r, &r->nodes[nd->first + i], lk);
                return;
            }
        }
        return;
    }
    if (nd->kind == NODE_OR) {
        why_false(o, r, &r->nodes[nd->first], lk);
        return;
    }
    m = lookup(r, lk, nd->param);
    text_adds(o, r->params[nd->param]);
    if (!m) {
        text_adds(o, " is missing");
        return;
    }
    text_adds(o, " ");
    text_value(o, m->value, m->is_bool);
    text_adds(o, " is not ");
    text_adds(o, op_symbols[nd->op]);
    text_adds(o, " ");
    text_value(o, nd->threshold, nd->is_bool);
}

bool rule_eval(const struct rule *r, const struct telemetry *t, char *why, size_t n)
{
    struct lookup lk;
    struct text o;
    bool hit;

    lk.t = t;
    lk.done = 0;
    text_init(&o, why, n);
    if (!r || !t)
        return false;
    hit = eval_node(r, &r->nodes[0], &lk);
    if (why && n > 0) {
        if (hit)
            why_true(&o, r, why_shown(r, &r->nodes[0], &lk), &lk);
        else
            why_false(&o, r, &r->nodes[0], &lk);
    }
    return hit;
}

/* ---- canonical JSON ---- */

/* A JSON text being written; the first failure sticks and the rest is
 * skipped. */
struct jw {
    struct buf b;
    int err;
};

static void jw_raw(struct jw *w, const char *s)
{
    if (!w->err)
        w->err = buf_adds(&w->b, s);
}

static void jw_str(struct jw *w, const char *s)
{
    size_t n = strlen(s), len = alert_json_escaped_len(s, n);
    char *p;

    jw_raw(w, "\"");
    if (w->err)
        return;
    if (len == n) {
        jw_raw(w, s);
    } else {
        p = malloc(len);
        if (!p) {
            w->err = -ENOMEM;
            return;
        }
        alert_json_escape(p, s, n);
        w->err = buf_add(&w->b, p, len);
        free(p);
    }
    jw_raw(w, "\"");
}

static void jw_key(struct jw *w, const char *key, bool first)
{
    if (!first)
        jw_raw(w, ", ");
    jw_str(w, key);
    jw_raw(w, ": ");
}

static void jw_num(struct jw *w, double v)
{
    char num[ALERT_NUM_MAX];

    alert_num(num, v);
    jw_raw(w, num);
}

static void jw_cond(struct jw *w, const struct rule *r, const struct node *nd)
{
    if (nd->kind == NODE_LEAF) {
        jw_key(w, "parameter", true);
        jw_str(w, r->params[nd->param]);
        jw_key(w, "operator", false);
        jw_str(w, op_names[nd->op]);
        jw_key(w, "threshold", false);
        if (nd->is_bool)
            jw_raw(w, nd->threshold != 0 ? "true" : "false");
        else
            jw_num(w, nd->threshold);
        return;
    }
    jw_key(w, "operator", true);
    jw_str(w, nd->kind == NODE_AND ? "AND" : "OR");
    jw_key(w, "conditions", false);
    jw_raw(w, "[");
    for (int i = 0; i < nd->n; i++) {
        if (i > 0)
            jw_raw(w, ", ");
        jw_raw(w, "{");
        jw_cond(w, r, &r->nodes[nd->first + i]);
        jw_raw(w, "}");
    }
    jw_raw(w, "]");
}

char *rule_json(const struct rule *r)
{
    const struct schedule *sc = &r->sched;
    struct jw w = {.err = 0};
    char t[16];
    bool first = true;

    buf_init(&w.b, RULE_JSON_MAX);
    jw_raw(&w, "{");
    jw_key(&w, "name", true);
    jw_str(&w, r->name);
    jw_key(&w, "severity", false);
    jw_str(&w, severity_name(r->severity));
    if (r->devices) {
        jw_key(&w, "devices", false);
        jw_raw(&w, "[");
        for (int i = 0; i < r->n_devices; i++) {
            if (i > 0)
                jw_raw(&w, ", ");
            jw_str(&w, r->devices[i]);
        }
        jw_raw(&w, "]");
    }
    jw_key(&w, "condition", false);
    jw_raw(&w, "{");
    jw_cond(&w, r, &r->nodes[0]);
    jw_raw(&w, "}");
    jw_key(&w, "cooldown_minutes", false);
    snprintf(t, sizeof(t), "%d", r->cooldown_min);
    jw_raw(&w, t);
    jw_key(&w, "schedule", false);
    jw_raw(&w, "{");
    jw_key(&w, "type", true);
    jw_str(&w, sched_names[sc->type]);
    if (sc->type == SCHED_WINDOW) {
        jw_key(&w, "days", false);
        jw_raw(&w, "[");
        for (int i = 0; i < 7; i++) {
            if (!(sc->days >> i & 1))
                continue;
            if (!first)
                jw_raw(&w, ", ");
            first = false;
            jw_str(&w, day_names[i]);
        }
        jw_raw(&w, "]");
        jw_key(&w, "start", false);
        hhmm(t, sc->start);
        jw_str(&w, t);
        jw_key(&w, "end", false);
        hhmm(t, sc->end);
        jw_str(&w, t);
    } else if (sc->type == SCHED_DATES) {
        jw_key(&w, "from", false);
        jw_str(&w, sc->from_s);
        jw_key(&w, "to", false);
        jw_str(&w, sc->to_s);
    }
    jw_raw(&w, "}");
    jw_key(&w, "active", false);
    jw_raw(&w, r->active ? "true" : "false");
    jw_raw(&w, "}");
    if (w.err) {
        buf_free(&w.b);
        return NULL;
    }
    return buf_steal(&w.b);
}
