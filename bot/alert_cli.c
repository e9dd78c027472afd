/* rivet rule ..., rivet device ...: alert rules and MQTT devices from the
 * command line. Rules are checked by the same compiler the alert thread
 * uses, so what `rivet rule add` accepts, `rivet serve` runs. */
#include "rivet.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarm.h"
#include "alert.h"
#include "arena.h"
#include "db.h"
#include "serve.h"

static const char rule_usage[] =
    "Usage: rivet rule add --factory F [--replace] FILE.json\n"
    "       rivet rule list --factory F\n"
    "       rivet rule disable|enable --factory F ID\n"
    "       rivet rule test --factory F --device KEY '{\"metrics\": {...}}'\n"
    "\n"
    "Alert rules of a factory: when a device's telemetry meets a rule's\n"
    "condition, Rivet records an alarm and sends it to the people subscribed.\n"
    "FILE.json holds one rule ('-' reads it from standard input):\n"
    "\n"
    "  {\"name\": \"Spindle hot\", \"severity\": \"high\",\n"
    "   \"condition\": {\"operator\": \"AND\", \"conditions\": [\n"
    "     {\"parameter\": \"spindle_temp\", \"operator\": \"gt\", \"threshold\": 80},\n"
    "     {\"parameter\": \"coolant_flow\", \"operator\": \"lt\", \"threshold\": 5}]},\n"
    "   \"devices\": [\"cnc-1\"], \"cooldown_minutes\": 15,\n"
    "   \"schedule\": {\"type\": \"window\", \"days\": [\"mon\", \"tue\"],\n"
    "                \"start\": \"22:00\", \"end\": \"06:00\"}}\n"
    "\n"
    "Operators: gt gte lt lte eq neq; groups AND and OR nest. devices, cooldown\n"
    "(15 minutes) and schedule (always) are optional; see docs/alerts.md.\n"
    "A running rivet serve picks up a change within seconds.\n"
    "\n"
    "  --replace  replace the factory's rule of the same name\n"
    "  test       shows which rules would fire for that message, and why\n";

static const char device_usage[] =
    "Usage: rivet device list --factory F\n"
    "       rivet device link --factory F KEY EQ-NUMBER|none\n"
    "\n"
    "Devices publish telemetry on factories/SLUG/devices/KEY/telemetry and are\n"
    "registered when first heard from. Linking one to a machine makes its\n"
    "alarms name that machine.\n";

/* Reads a whole rule file (at most 256 KB), or standard input for "-". */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t cap = 256 * 1024, n;
    char *buf;

    if (!f)
        return NULL;
    buf = malloc(cap + 1);
    n = buf ? fread(buf, 1, cap + 1, f) : 0;
    if (f != stdin)
        fclose(f);
    if (!buf || n > cap) {
        free(buf);
        errno = buf ? EFBIG : ENOMEM;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

struct cli {
    const char *factory, *device;
    int replace;
    int argi; /* first argument after the options */
};

static int parse_opts(const char *cmd, int argc, char **argv, struct cli *c)
{
    static const struct option opts[] = {
        {"factory", required_argument, NULL, 'f'},
        {"device", required_argument, NULL, 'd'},
        {"replace", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int o;

    optind = 2;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'f':
            c->factory = optarg;
            break;
        case 'd':
            c->device = optarg;
            break;
        case 'r':
            c->replace = 1;
            break;
        case 'h':
            fputs(strcmp(cmd, "rule") == 0 ? rule_usage : device_usage, stdout);
            return 0;
        default:
            return bad_option(cmd, argv);
        }
    }
    if (!c->factory)
        return usage_error(cmd, "--factory is required");
    c->argi = optind;
    return -1;
}

/* Opens the database and finds the factory. Returns 0 or an exit code. */
static int open_factory(const char *factory, struct db **db, struct arena **a, struct factory *f)
{
    struct config cfg;
    int r = rivet_open_db(&cfg, 1, db);

    if (r)
        return r;
    if (arena_new(a) < 0)
        return 1;
    r = db_factory_find(*db, *a, factory, f);
    if (r == -ENOENT) {
        fprintf(stderr, "rivet: no factory '%s'; see 'rivet factory list'\n", factory);
        return 1;
    }
    if (r < 0) {
        fprintf(stderr, "rivet: cannot read factories: %s\n", db_errmsg(*db));
        return 1;
    }
    return 0;
}

static int rule_add(struct db *db, const struct factory *f, const char *path, int replace)
{
    struct rule *rule;
    char err[512], desc[512], *text, *json;
    int64_t id = 0;
    size_t len;
    int r;

    if (!(text = read_file(path, &len))) {
        fprintf(stderr, "rivet rule: cannot read %s: %s\n", path,
                errno == EFBIG ? "larger than 256 KB" : strerror(errno));
        return 1;
    }
    r = rule_compile(text, len, &rule, err, sizeof(err));
    free(text);
    if (r < 0) {
        fprintf(stderr, "rivet rule: %s: %s\n", path, r == -ENOMEM ? "out of memory" : err);
        return 1;
    }
    json = rule_json(rule);
    r = json ? db_rule_save(db, f->id, rule_name(rule), severity_name(rule_severity(rule)), json,
                            replace, &id)
             : -ENOMEM;
    free(json);
    if (r == -EEXIST)
        fprintf(stderr,
                "rivet rule: factory %s has a rule named \"%s\" already; use --replace to "
                "replace it\n",
                f->slug, rule_name(rule));
    else if (r < 0)
        fprintf(stderr, "rivet rule: cannot save the rule: %s\n", db_errmsg(db));
    else {
        rule_describe(rule, desc, sizeof(desc));
        printf("%s rule %lld \"%s\" (%s): %s\n", replace ? "saved" : "added", (long long)id,
               rule_name(rule), severity_name(rule_severity(rule)), desc);
    }
    rule_free(rule);
    return r < 0 ? 1 : 0;
}

static int rule_list(struct db *db, struct arena *a, const struct factory *f)
{
    struct alert_rule *rs;
    int n, r = db_rule_list(db, a, f->id, false, &rs, &n);

    if (r < 0) {
        fprintf(stderr, "rivet rule: cannot list rules: %s\n", db_errmsg(db));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        struct rule *rule;
        char err[256], desc[512];

        if (rule_compile(rs[i].definition, strlen(rs[i].definition), &rule, err, sizeof(err)) ==
            0) {
            rule_describe(rule, desc, sizeof(desc));
            rule_free(rule);
        } else {
            snprintf(desc, sizeof(desc), "(does not compile: %s)", err);
        }
        printf("%lld\t%s\t%s\t%s\t%s\n", (long long)rs[i].id, rs[i].active ? "active" : "disabled",
               rs[i].severity, rs[i].name, desc);
    }
    if (n == 0)
        fprintf(stderr, "factory %s has no alert rules; add one with 'rivet rule add'\n", f->slug);
    return 0;
}

static int rule_switch(struct db *db, const struct factory *f, const char *arg, bool on)
{
    long long id;
    int r;

    if (config_parse_int(arg[0] == '#' ? arg + 1 : arg, 1, INT64_MAX, &id) < 0)
        return usage_error("rule", "ID must be a rule number (see rivet rule list)");
    r = db_rule_set_active(db, f->id, id, on);
    if (r == -ENOENT) {
        fprintf(stderr, "rivet rule: factory %s has no rule %lld\n", f->slug, id);
        return 1;
    }
    if (r < 0) {
        fprintf(stderr, "rivet rule: cannot change the rule: %s\n", db_errmsg(db));
        return 1;
    }
    printf("rule %lld %s\n", id, on ? "enabled" : "disabled");
    return 0;
}

/* Runs one message through the factory's rules as the alert thread would,
 * and says for each rule what it would do. */
static int rule_test(struct db *db, struct arena *a, const struct factory *f, const char *device,
                     const char *payload)
{
    struct alert_rule *rs;
    struct telemetry t;
    enum drop_reason why;
    int n, offset, fired = 0, r;

    if (!device_key_valid(device))
        return usage_error("rule", "--device must be 1 to 64 of A-Z a-z 0-9 _ . : -");
    if (telemetry_parse(a, TOPIC_TELEMETRY, payload, strlen(payload), now_epoch(), &t, &why) < 0) {
        fprintf(stderr, "rivet rule: the alert thread would drop this message: %s\n",
                drop_reason_name(why));
        return 1;
    }
    r = db_rule_list(db, a, f->id, false, &rs, &n);
    if (r == 0)
        r = db_factory_utc_offset(db, f->id, t.ts, &offset);
    if (r < 0) {
        fprintf(stderr, "rivet rule: cannot read the rules: %s\n", db_errmsg(db));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        struct rule *rule;
        char text[600];
        const char *verdict;

        if (rule_compile(rs[i].definition, strlen(rs[i].definition), &rule, text, sizeof(text)) <
            0) {
            verdict = "broken";
        } else if (!rs[i].active) {
            verdict = "disabled";
            snprintf(text, sizeof(text), "the rule is disabled");
        } else if (!rule_applies(rule, device)) {
            verdict = "skipped";
            snprintf(text, sizeof(text), "not a rule for device %s", device);
        } else if (!rule_scheduled(rule, t.ts, offset)) {
            verdict = "skipped";
            snprintf(text, sizeof(text), "outside its schedule");
        } else if (rule_eval(rule, &t, text, sizeof(text))) {
            verdict = "FIRES";
            fired++;
        } else {
            verdict = "quiet";
        }
        if (verdict[0] != 'b')
            rule_free(rule);
        printf("%-8s #%lld %s (%s): %s\n", verdict, (long long)rs[i].id, rs[i].name, rs[i].severity,
               text);
    }
    printf("%d of %d rules would fire\n", fired, n);
    return 0;
}

int cmd_rule(int argc, char **argv)
{
    struct cli c = {0};
    struct arena *a = NULL;
    struct factory f;
    struct db *db = NULL;
    const char *sub = argc > 1 ? argv[1] : "";
    int r, need;

    if (argc < 2 || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        fputs(rule_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(sub, "add") == 0 || strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0 ||
        strcmp(sub, "test") == 0)
        need = 1;
    else if (strcmp(sub, "list") == 0)
        need = 0;
    else
        return usage_error("rule", "unknown subcommand; use add, list, disable, enable or test");
    r = parse_opts("rule", argc, argv, &c);
    if (r >= 0)
        return r;
    if (argc - c.argi != need)
        return usage_error("rule", need ? "expected one argument after the options"
                                        : "unexpected argument");
    if (strcmp(sub, "test") == 0 && !c.device)
        return usage_error("rule", "test needs --device KEY");
    r = open_factory(c.factory, &db, &a, &f);
    if (r == 0) {
        if (strcmp(sub, "add") == 0)
            r = rule_add(db, &f, argv[c.argi], c.replace);
        else if (strcmp(sub, "list") == 0)
            r = rule_list(db, a, &f);
        else if (strcmp(sub, "test") == 0)
            r = rule_test(db, a, &f, c.device, argv[c.argi]);
        else
            r = rule_switch(db, &f, argv[c.argi], strcmp(sub, "enable") == 0);
    }
    arena_free(a);
    db_close(db);
    return r;
}

int cmd_device(int argc, char **argv)
{
    struct cli c = {0};
    struct arena *a = NULL;
    struct factory f;
    struct db *db = NULL;
    const char *sub = argc > 1 ? argv[1] : "";
    int r, need;

    if (argc < 2 || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        fputs(device_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(sub, "list") == 0)
        need = 0;
    else if (strcmp(sub, "link") == 0)
        need = 2;
    else
        return usage_error("device", "unknown subcommand; use list or link");
    r = parse_opts("device", argc, argv, &c);
    if (r >= 0)
        return r;
    if (argc - c.argi != need)
        return usage_error("device", need ? "usage: rivet device link --factory F KEY EQ-NUMBER"
                                          : "unexpected argument");
    r = open_factory(c.factory, &db, &a, &f);
    if (r == 0 && need == 0) {
        struct device *ds;
        int n, total;
        r = db_device_list(db, a, f.id, 0, 100000, &ds, &n, &total);
        if (r < 0) {
            fprintf(stderr, "rivet device: cannot list devices: %s\n", db_errmsg(db));
            r = 1;
        }
        for (int i = 0; r == 0 && i < n; i++)
            printf("%s\t%s\t%s\t%s\n", ds[i].key,
                   ds[i].equipment_number ? ds[i].equipment_number : "-",
                   ds[i].last_seen ? ds[i].last_seen : "never",
                   ds[i].parameters && *ds[i].parameters ? ds[i].parameters : "-");
    } else if (r == 0) {
        const char *key = argv[c.argi], *number = argv[c.argi + 1];
        struct equipment e = {0};
        bool unlink = strcmp(number, "none") == 0 || strcmp(number, "-") == 0;

        r = unlink ? 0 : db_equipment_get(db, a, f.id, number, &e);
        if (r == 0)
            r = db_device_link(db, f.id, key, unlink ? 0 : e.id);
        if (r == -ENOENT) {
            fprintf(stderr, "rivet device: factory %s has no %s %s\n", f.slug,
                    e.id || unlink ? "device" : "equipment", e.id || unlink ? key : number);
            r = 1;
        } else if (r < 0) {
            fprintf(stderr, "rivet device: cannot link: %s\n", db_errmsg(db));
            r = 1;
        } else {
            printf(unlink ? "device %s unlinked\n" : "device %s linked to %s\n", key, number);
        }
    }
    arena_free(a);
    db_close(db);
    return r;
}
