/* rivet factory ..., rivet invite ...: admin commands for scripts and people. */
#include "rivet.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "db.h"
#include "text.h"

static const char factory_usage[] =
    "Usage: rivet factory create NAME\n"
    "       rivet factory list\n"
    "\n"
    "A factory is one plant: its people, equipment and work orders are seen by\n"
    "its members only. NAME is shown to users; its slug (\"Plant North\" ->\n"
    "plant-north) names it on the command line and in MQTT topics.\n";

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

int cmd_factory(int argc, char **argv)
{
    struct config cfg;
    struct arena *a = NULL;
    struct factory f;
    struct db *db = NULL;
    int r;

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
    } else if (strcmp(argv[1], "list") != 0 || argc != 2) {
        return usage_error("factory", "unknown subcommand; use create or list");
    }

    r = rivet_open_db(&cfg, 1, &db);
    if (r)
        return r;
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
