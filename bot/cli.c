/* rivet factory ..., rivet invite ...: admin commands for scripts and people. */
#include "rivet.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarm.h"
#include "arena.h"
#include "db.h"
#include "digest.h"
#include "text.h"

static const char factory_usage[] =
    "Usage: rivet factory create NAME\n"
    "       rivet factory list\n"
    "       rivet factory set NAME KEY=VALUE... [--timezone ZONE] [--digest-time HH:MM|off]\n"
    "\n"
    "A factory is one plant: its people, equipment and work orders are seen by\n"
    "its members only. NAME is shown to users; its slug (\"Plant North\" ->\n"
    "plant-north) names it on the command line and in MQTT topics.\n"
    "\n"
    "Settings (set):\n"
    "  timezone=Europe/Berlin  where rule schedules and times in messages are read\n"
    "  offline=10m             a device silent this long raises an alarm (0: never)\n"
    "  escalate=15m            unacknowledged critical alarms go to supervisors (0: never)\n"
    "  auto_register=on|off    register devices the first time they publish\n"
    "  max_devices=10000       devices a factory may have\n"
    "  digest=07:00|off        local time of the daily digest to supervisors and\n"
    "                          admins (off: none)\n"
    "  --timezone ZONE, --digest-time HH:MM|off  the same as timezone=, digest=\n";

static const char invite_usage[] =
    "Usage: rivet invite create --factory NAME --role ROLE [--uses N] [--expires 7d]\n"
    "                           [--quiet]\n"
    "\n"
    "Prints an invite code. A new user sends '/start CODE' to Rivet to join the\n"
    "factory with that role.\n"
    "\n"
    "  --factory NAME  the factory (name or slug)\n"
    "  --role ROLE     technician, supervisor or admin\n"
    "  --uses N        how many people may use the code (default 1, at most 1000)\n"
    "  --expires DUR   how long it is valid: 30m, 12h, 7d, 2w (default 7d)\n"
    "  --quiet         print only the code\n";

static int parse_help(const char *cmd, const char *usage, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
    }
    return -1;
}

int factory_name_ok(const char *cmd, const char *option, const char *name)
{
    char slug[64], msg[128];
    size_t n = strlen(name);

    if (n == 0 || n > 800 || !utf8_valid(name, n) || text_has_control(name, n) ||
        utf8_chars(name) > 200 || db_slugify(name, slug, sizeof(slug)) < 0) {
        snprintf(msg, sizeof(msg),
                 "%s must be 1 to 200 characters of plain text with a letter or digit", option);
        usage_error(cmd, msg);
        return 0;
    }
    return 1;
}

/* rivet factory set: durations are given as 10m, 2h (or seconds), and
 * stored in seconds. All settings are applied in one transaction, or none. */
static int factory_set(struct db *db, struct arena *a, const char *name, int n, char **kv)
{
    static const struct {
        const char *word, *key;
        bool duration;
    } keys[] = {
        {"timezone", "timezone", false},       {"offline", "offline_s", true},
        {"escalate", "escalate_s", true},      {"auto_register", "auto_register", false},
        {"max_devices", "max_devices", false}, {"digest", "digest_time", false},
    };
    struct factory f;
    int r = db_factory_find(db, a, name, &f);

    if (r == -ENOENT) {
        fprintf(stderr, "rivet: no factory '%s'; see 'rivet factory list'\n", name);
        return 1;
    }
    if (r == 0)
        r = db_begin(db);
    for (int i = 0; r == 0 && i < n; i++) {
        const char *eq = strchr(kv[i], '='), *value = eq + 1, *key = NULL;
        char num[32];
        size_t kl = (size_t)(eq - kv[i]);
        bool duration = false;

        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            if (strlen(keys[k].word) == kl && strncmp(kv[i], keys[k].word, kl) == 0) {
                key = keys[k].key;
                duration = keys[k].duration;
            }
        if (!key) {
            fprintf(stderr, "rivet factory: unknown setting '%.*s'; see rivet factory --help\n",
                    (int)kl, kv[i]);
            db_rollback(db);
            return EXIT_USAGE;
        }
        if (duration) {
            long long s = 0;
            if (strcmp(value, "0") != 0 && config_parse_duration(value, &s) < 0) {
                fprintf(stderr,
                        "rivet factory: %.*s must be a duration such as 90s, 10m or 2h, "
                        "or 0\n",
                        (int)kl, kv[i]);
                db_rollback(db);
                return EXIT_USAGE;
            }
            /* a bare number is seconds here, not days */
            if (value[strspn(value, "0123456789")] == '\0')
                config_parse_int(value, 0, 1LL << 40, &s);
            snprintf(num, sizeof(num), "%lld", s);
            value = num;
        }
        if (strcmp(key, "digest_time") == 0)
            r = db_digest_set_time(db, f.id, value);
        else
            r = db_factory_set(db, f.id, key, value);
        if (r == -EINVAL && strcmp(key, "timezone") == 0) {
            fprintf(stderr,
                    "rivet factory: unknown timezone '%s': give an IANA name such as "
                    "Europe/Berlin or UTC; nothing was changed\n",
                    value);
            db_rollback(db);
            return EXIT_USAGE;
        }
        if (r == -EINVAL && strcmp(key, "digest_time") == 0) {
            fprintf(stderr,
                    "rivet factory: the digest time must be HH:MM (24-hour, local) or off, "
                    "not '%s'; nothing was changed\n",
                    value);
            db_rollback(db);
            return EXIT_USAGE;
        }
        if (r == -EINVAL) {
            fprintf(stderr,
                    "rivet factory: %.*s=%s is not a value Rivet accepts; see rivet "
                    "factory --help\n",
                    (int)kl, kv[i], eq + 1);
            db_rollback(db);
            return EXIT_USAGE;
        }
    }
    if (r == 0)
        r = db_commit(db);
    if (r < 0) {
        db_rollback(db);
        fprintf(stderr, "rivet factory: cannot save the settings: %s\n", db_errmsg(db));
        return 1;
    }
    printf("factory %s: %d setting%s saved\n", f.slug, n, n == 1 ? "" : "s");
    return 0;
}

static void free_words(char **w, int n)
{
    for (int i = 0; w && i < n; i++)
        free(w[i]);
    free(w);
}

/* The settings of `factory set` as KEY=VALUE words (each malloc'd, in a
 * malloc'd array: free_words()): --timezone ZONE and --digest-time HH:MM
 * (or --option=VALUE) stand for timezone=ZONE and digest=HH:MM. Returns 0,
 * or EXIT_USAGE (or 1 out of memory) after saying what is wrong. */
static int set_words(int n, char **in, char ***out, int *n_out)
{
    static const struct {
        const char *opt, *key;
    } opts[] = {{"--timezone", "timezone"}, {"--digest-time", "digest"}};
    char **w = calloc((size_t)n + 1, sizeof(*w));
    int k = 0;

    if (!w)
        return 1;
    for (int i = 0; i < n; i++) {
        const char *key = NULL, *value = NULL;
        size_t ol = 0;

        for (size_t o = 0; o < sizeof(opts) / sizeof(opts[0]); o++) {
            ol = strlen(opts[o].opt);
            if (strncmp(in[i], opts[o].opt, ol) == 0 && (in[i][ol] == '=' || !in[i][ol])) {
                key = opts[o].key;
                break;
            }
        }
        if (!key && strncmp(in[i], "--", 2) == 0) {
            free_words(w, k);
            return usage_error("factory", "unknown option; set takes --timezone, --digest-time "
                                          "and KEY=VALUE");
        }
        if (!key && !strchr(in[i], '=')) {
            free_words(w, k);
            return usage_error("factory", "settings look like KEY=VALUE (offline=10m)");
        }
        if (key && in[i][ol] == '=') {
            value = in[i] + ol + 1;
        } else if (key) {
            if (i + 1 == n) {
                free_words(w, k);
                return usage_error("factory", "--timezone and --digest-time need a value");
            }
            value = in[++i];
        }
        size_t len = key ? strlen(key) + strlen(value) + 2 : 0;
        w[k] = key ? malloc(len) : strdup(in[i]);
        if (!w[k]) {
            free_words(w, k);
            return 1;
        }
        if (key)
            snprintf(w[k], len, "%s=%s", key, value);
        k++;
    }
    *out = w;
    *n_out = k;
    return 0;
}

int cmd_factory(int argc, char **argv)
{
    struct config cfg;
    struct arena *a = NULL;
    struct factory f;
    struct db *db = NULL;
    char **words = NULL;
    int n_words = 0, r;

    r = parse_help("factory", factory_usage, argc, argv);
    if (r >= 0)
        return r;
    if (argc < 2)
        return usage_error("factory", "missing subcommand (create or list)");
    if (strcmp(argv[1], "create") == 0) {
        if (argc != 3)
            return usage_error("factory", "usage: rivet factory create NAME");
        if (!factory_name_ok("factory", "NAME", argv[2]))
            return EXIT_USAGE;
    } else if (strcmp(argv[1], "set") == 0) {
        if (argc < 4)
            return usage_error("factory", "usage: rivet factory set NAME KEY=VALUE...");
        r = set_words(argc - 3, argv + 3, &words, &n_words);
        if (r)
            return r;
    } else if (strcmp(argv[1], "list") != 0 || argc != 2) {
        return usage_error("factory", "unknown subcommand; use create, list or set");
    }

    r = rivet_open_db(&cfg, 1, &db);
    if (r)
        goto out;
    if (arena_new(&a) < 0) {
        r = 1;
        goto out;
    }
    if (strcmp(argv[1], "list") == 0) {
        r = db_factory_list_print(db, stdout);
        if (r < 0)
            fprintf(stderr, "rivet: cannot list factories: %s\n", db_errmsg(db));
        r = r < 0 ? 1 : 0;
        goto out;
    }
    if (strcmp(argv[1], "set") == 0) {
        r = factory_set(db, a, argv[2], n_words, words);
        goto out;
    }
    r = db_factory_create(db, a, argv[2], &f);
    if (r == -EEXIST) {
        char slug[64];
        db_slugify(argv[2], slug, sizeof(slug));
        fprintf(stderr, "rivet: a factory with slug '%s' already exists\n", slug);
        r = 1;
        goto out;
    }
    if (r < 0) {
        fprintf(stderr, "rivet: cannot create the factory: %s\n", db_errmsg(db));
        r = 1;
        goto out;
    }
    printf("created factory %s (slug %s)\n", f.name, f.slug);
    r = 0;
out:
    free_words(words, n_words);
    arena_free(a);
    db_close(db);
    return r;
}

int cmd_invite(int argc, char **argv)
{
    static const struct option opts[] = {
        {"factory", required_argument, NULL, 'f'},
        {"role", required_argument, NULL, 'r'},
        {"uses", required_argument, NULL, 'u'},
        {"expires", required_argument, NULL, 'e'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *factory = NULL, *role = NULL;
    long long uses = 1, expires = 7 * 86400;
    struct config cfg;
    struct arena *a = NULL;
    struct factory f;
    struct db *db = NULL;
    char code[32];
    int c, quiet = 0, r;

    if (argc < 2 || strcmp(argv[1], "create") != 0) {
        r = parse_help("invite", invite_usage, argc, argv);
        return r >= 0 ? r : usage_error("invite", "missing subcommand: create");
    }
    optind = 2;
    while ((c = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            factory = optarg;
            break;
        case 'r':
            role = optarg;
            break;
        case 'u':
            if (config_parse_int(optarg, 1, 1000, &uses) < 0)
                return usage_error("invite", "--uses must be a number from 1 to 1000");
            break;
        case 'e':
            if (config_parse_duration(optarg, &expires) < 0)
                return usage_error("invite", "--expires must be a duration such as 30m, 12h, "
                                             "7d or 2w");
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(invite_usage, stdout);
            return 0;
        default:
            return bad_option("invite", argv);
        }
    }
    if (optind < argc)
        return usage_error("invite", "unexpected argument");
    if (!factory)
        return usage_error("invite", "--factory is required");
    if (!role)
        return usage_error("invite", "--role is required");
    if (strcmp(role, "technician") && strcmp(role, "supervisor") && strcmp(role, "admin"))
        return usage_error("invite", "--role must be technician, supervisor or admin");

    r = rivet_open_db(&cfg, 1, &db);
    if (r)
        return r;
    if (arena_new(&a) < 0) {
        r = 1;
        goto out;
    }
    r = db_factory_find(db, a, factory, &f);
    if (r == -ENOENT) {
        fprintf(stderr, "rivet: no factory '%s'; create it with 'rivet factory create NAME'\n",
                factory);
        r = 1;
        goto out;
    }
    if (r == 0)
        r = db_invite_create(db, f.id, role, (int)uses, expires, code, sizeof(code));
    if (r < 0) {
        fprintf(stderr, "rivet: cannot create the invite: %s\n", db_errmsg(db));
        r = 1;
        goto out;
    }
    if (quiet) {
        printf("%s\n", code);
    } else {
        /* The validity in its largest whole unit: 30 minutes, 12 hours, 7 days. */
        static const struct {
            long long s;
            const char *unit;
        } units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};
        size_t u = 0;
        while (expires % units[u].s)
            u++;
        printf("%s\nInvite for %s as %s, %lld use%s, valid for %lld %s%s.\n"
               "The new user sends: /start %s\n",
               code, f.name, role, uses, uses == 1 ? "" : "s", expires / units[u].s, units[u].unit,
               expires / units[u].s == 1 ? "" : "s", code);
    }
    r = 0;
out:
    arena_free(a);
    db_close(db);
    return r;
}
