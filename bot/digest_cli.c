/* rivet digest: a factory's daily digest, printed and never sent. */
#include "rivet.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "db.h"
#include "digest.h"
#include "digest_reply.h"
#include "handlers.h"
#include "serve.h"

static const char digest_usage[] =
    "Usage: rivet digest --factory NAME [--date YYYY-MM-DD] [--print]\n"
    "\n"
    "Sums up one local calendar day of a factory the way the daily digest does\n"
    "(alarms by severity, the mean time to acknowledge, work orders opened and\n"
    "completed, the overdue ones), and prints it; nothing is sent and nothing\n"
    "is recorded. rivet serve sends the digest by itself at each factory's\n"
    "digest time (rivet factory set NAME --digest-time 07:00).\n"
    "\n"
    "  --factory NAME     the factory (name or slug)\n"
    "  --date YYYY-MM-DD  the day, in the factory's timezone (default: yesterday)\n"
    "  --print            print the message as supervisors get it, rather than\n"
    "                     one key=value line per figure\n";

/* The figures, for scripts: one key=value per line. */
static void print_figures(const struct digest *d)
{
    printf("date=%s\ntimezone=%s\n", d->date, d->timezone);
    printf("alarms_low=%d\nalarms_medium=%d\nalarms_high=%d\nalarms_critical=%d\n", d->alarms[0],
           d->alarms[1], d->alarms[2], d->alarms[3]);
    printf("acknowledged=%d\n", d->acknowledged);
    if (d->mean_ack_s >= 0)
        printf("mean_ack_s=%.0f\n", d->mean_ack_s);
    else
        printf("mean_ack_s=\n");
    printf("wo_opened=%d\nwo_completed=%d\noverdue=%d\n", d->wo_opened, d->wo_completed,
           d->overdue);
    for (int i = 0; i < d->n_oldest; i++)
        printf("overdue_wo=%s %d\n", d->oldest[i].number, d->oldest[i].age_days);
}

int cmd_digest(int argc, char **argv)
{
    static const struct option opts[] = {
        {"factory", required_argument, NULL, 'f'},
        {"date", required_argument, NULL, 'd'},
        {"print", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *factory = NULL, *date = NULL;
    struct config cfg;
    struct arena *a = NULL;
    struct db *db = NULL;
    struct factory f;
    struct digest d;
    struct reply rep;
    int c, print = 0, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            factory = optarg;
            break;
        case 'd':
            date = optarg;
            break;
        case 'p':
            print = 1;
            break;
        case 'h':
            fputs(digest_usage, stdout);
            return 0;
        default:
            return bad_option("digest", argv);
        }
    }
    if (optind < argc)
        return usage_error("digest", "unexpected argument");
    if (!factory)
        return usage_error("digest", "--factory is required");

    r = rivet_open_db(&cfg, 1, &db);
    if (r)
        return r;
    if (arena_new(&a) < 0) {
        r = 1;
        goto out;
    }
    r = db_factory_find(db, a, factory, &f);
    if (r == -ENOENT) {
        fprintf(stderr, "rivet: no factory '%s'; see 'rivet factory list'\n", factory);
        r = 1;
        goto out;
    }
    if (r == 0)
        r = db_digest_collect(db, a, f.id, date, now_epoch(), &d);
    if (r == -EINVAL) {
        r = usage_error("digest", "--date must be a calendar date written YYYY-MM-DD");
        goto out;
    }
    if (r == 0 && print)
        r = digest_reply(a, &d, &rep);
    if (r < 0) {
        fprintf(stderr, "rivet: cannot sum up the day: %s\n",
                r == -ENOMEM ? strerror(ENOMEM) : db_errmsg(db));
        r = 1;
        goto out;
    }
    if (print)
        printf("%s\n", rep.text);
    else
        print_figures(&d);
    r = 0;
out:
    arena_free(a);
    db_close(db);
    return r;
}
