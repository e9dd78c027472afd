/* Benchmark of plain words, run by scripts/bench-plain (not a test).
 *
 * Loads the fixture factory of tests/fixtures/intents/factory.tsv, plus
 * --extra generated machines, into a new factory of the database it is
 * given, then for --rounds rounds sends every phrase of heldout.tsv as a
 * console user through handle_message() in one transaction each (as a
 * channel worker does) and, in the same rounds, a baseline command that
 * does a comparable database lookup (/equip search WORDS with the phrase's
 * machine words, or /equip list). Prints, as Markdown:
 *   - the parser alone (intent_parse), microseconds per phrase;
 *   - handle_message + commit for the phrases and for the baseline,
 *     median, p90 and p99 in milliseconds, and their ratio;
 *   - the intent accuracy on the table (the machine accuracy is
 *     integration-plain's).
 *
 *   plain_bench DATABASE_URL FIXTURES_DIR [--rounds R] [--extra N]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "arena.h"
#include "config.h"
#include "db.h"
#include "handlers.h"
#include "intent.h"

#define MAX_PHRASES 1024
/* The console user, one per factory (console names are unique). */
static char user_id[64];

struct phrase {
    char *text, *kind;
    char *search; /* the baseline's command */
};

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1))) {
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
        }
    }
    fclose(f);
    return buf;
}

/* The table's data lines, split on tabs into at most max columns each. */
static int rows(char *table, char *(*col)[8], int max_rows, int ncol)
{
    int n = 0;

    for (char *line = table, *next; line && *line && n < max_rows; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (*line == '#' || !*line)
            continue;
        for (int c = 0; c < ncol; c++) {
            if (!line) {
                fprintf(stderr, "plain_bench: a table line has fewer than %d columns\n", ncol);
                exit(1);
            }
            col[n][c] = line;
            line = strchr(line, '\t');
            if (line)
                *line++ = '\0';
        }
        n++;
    }
    return n;
}

static int die(const char *what, int r, struct db *db)
{
    fprintf(stderr, "plain_bench: %s: %s (%s)\n", what, strerror(-r), db ? db_errmsg(db) : "");
    exit(1);
}

static int cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double pct(double *v, int n, double p)
{
    int i = (int)(p * (n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* One message through handle_message in a transaction; its time in ms. */
static double say(struct db *db, const char *text)
{
    struct msg m = {.channel = CHANNEL_CONSOLE,
                    .sender_id = user_id,
                    .sender_name = user_id,
                    .text = text,
                    .text_len = strlen(text)};
    struct arena *a = NULL;
    struct replies out;
    double t0 = now_ms();
    int r;

    if (arena_new(&a) < 0)
        die("arena", -ENOMEM, NULL);
    replies_init(&out);
    r = db_begin(db);
    if (r == 0)
        r = handle_message(db, a, &m, &out);
    if (r == 0)
        r = db_commit(db);
    else
        db_rollback(db);
    if (r < 0)
        die(text, r, db);
    arena_free(a);
    return now_ms() - t0;
}

int main(int argc, char **argv)
{
    static struct phrase ph[MAX_PHRASES];
    static char *col[MAX_PHRASES][8];
    static double parse_us[MAX_PHRASES * 64], plain_ms[MAX_PHRASES * 64], base_ms[MAX_PHRASES * 64];
    const char *url, *fixtures;
    char path[4096], name[64], *table;
    int rounds = 5, extra = 0, n, nm, np = 0, nb = 0, npar = 0, kind_ok = 0;
    struct factory fac;
    struct user u;
    struct arena *a = NULL;
    struct db *db;
    int r;

    if (argc < 3) {
        fprintf(stderr, "usage: plain_bench DATABASE_URL FIXTURES_DIR [--rounds R] [--extra N]\n");
        return 2;
    }
    url = argv[1];
    fixtures = argv[2];
    for (int i = 3; i + 1 < argc; i += 2) {
        long long v;

        if (config_parse_int(argv[i + 1], 0, 10000000, &v) < 0) {
            fprintf(stderr, "plain_bench: %s takes a number\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--rounds") == 0)
            rounds = (int)v;
        else if (strcmp(argv[i], "--extra") == 0)
            extra = (int)v;
    }
    if (rounds < 1 || rounds > 64 || extra < 0) {
        fprintf(stderr, "plain_bench: --rounds 1 to 64, --extra >= 0\n");
        return 2;
    }
    r = db_connect(url, 60000, &db, NULL);
    if (r < 0)
        die("connect", r, NULL);
    if (arena_new(&a) < 0)
        die("arena", -ENOMEM, NULL);

    /* The factory: the fixture machines, then the generated ones. */
    snprintf(name, sizeof(name), "Bench Plain %ld", (long)getpid());
    if ((r = db_begin(db)) < 0 || (r = db_factory_create(db, a, name, &fac)) < 0)
        die("factory", r, db);
    snprintf(user_id, sizeof(user_id), "bench-tech-%lld", (long long)fac.id);
    r = db_user_create(db, a, fac.id, CHANNEL_CONSOLE, user_id, "Bench Tech", "technician", &u);
    if (r < 0)
        die("user", r, db);
    snprintf(path, sizeof(path), "%s/intents/factory.tsv", fixtures);
    table = slurp(path);
    if (!table)
        die(path, -errno, NULL);
    nm = rows(table, col, MAX_PHRASES, 7);
    for (int i = 0; i < nm; i++) {
        struct equipment e;
        struct equipment_fields f = {
            .name = strcmp(col[i][1], "-") ? col[i][1] : NULL,
            .manufacturer = col[i][2],
            .model = col[i][3],
            .serial = strcmp(col[i][4], "-") ? col[i][4] : NULL,
            .location = strcmp(col[i][5], "-") ? col[i][5] : NULL,
        };
        if ((r = db_equipment_add(db, a, fac.id, u.id, &f, &e)) < 0)
            die("equipment", r, db);
    }
    {
        static const char *const kinds[] = {"Pump",  "Motor", "Fan",     "Conveyor", "Valve",
                                            "Mixer", "Press", "Chiller", "Robot",    "Oven"};
        for (int i = 0; i < extra; i++) {
            char nm_[64], model[32], serial[32], loc[32];
            struct equipment e;
            struct equipment_fields f = {.name = nm_,
                                         .manufacturer = "Acme",
                                         .model = model,
                                         .serial = serial,
                                         .location = loc};

            snprintf(nm_, sizeof(nm_), "%s %d", kinds[i % 10], 100 + i);
            snprintf(model, sizeof(model), "X%d", 1000 + i % 97);
            snprintf(serial, sizeof(serial), "SN%08d", i);
            snprintf(loc, sizeof(loc), "Line %d", 10 + i % 40);
            if ((r = db_equipment_add(db, a, fac.id, u.id, &f, &e)) < 0)
                die("equipment", r, db);
            if (i % 1000 == 999) {
                if ((r = db_commit(db)) < 0 || (r = db_begin(db)) < 0)
                    die("commit", r, db);
                arena_reset(a);
            }
        }
    }
    if ((r = db_commit(db)) < 0)
        die("commit", r, db);
    free(table);
    {
        /* Fresh statistics, as autovacuum would give a loaded table: the
         * plans measured are the ones a running plant gets. */
        PGconn *c = PQconnectdb(url);
        PGresult *res = PQexec(c, "ANALYZE equipment");

        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            fprintf(stderr, "plain_bench: ANALYZE: %s", PQerrorMessage(c));
        PQclear(res);
        PQfinish(c);
    }

    /* The phrases, with their baseline. */
    snprintf(path, sizeof(path), "%s/intents/heldout.tsv", fixtures);
    table = slurp(path);
    if (!table)
        die(path, -errno, NULL);
    n = rows(table, col, MAX_PHRASES, 4);
    for (int i = 0; i < n; i++) {
        struct intent in;

        ph[i].text = col[i][0];
        ph[i].kind = col[i][1];
        if (intent_parse(a, ph[i].text, strlen(ph[i].text), &in) < 0)
            die("intent_parse", -ENOMEM, NULL);
        kind_ok += strcmp(intent_name(in.kind), ph[i].kind) == 0;
        ph[i].search = NULL;
        if (in.machine && asprintf(&ph[i].search, "/equip search %s", in.machine) < 0)
            die("asprintf", -ENOMEM, NULL);
    }
    arena_reset(a);

    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < n; i++) {
            struct intent in;
            double t0 = now_ms();

            intent_parse(a, ph[i].text, strlen(ph[i].text), &in);
            parse_us[npar++] = (now_ms() - t0) * 1e3;
            arena_reset(a);
            /* Alternate the order, so neither side always runs warm. */
            if ((i + round) % 2) {
                plain_ms[np++] = say(db, ph[i].text);
                base_ms[nb++] = say(db, ph[i].search ? ph[i].search : "/equip list");
            } else {
                base_ms[nb++] = say(db, ph[i].search ? ph[i].search : "/equip list");
                plain_ms[np++] = say(db, ph[i].text);
            }
        }
    }
    qsort(parse_us, (size_t)npar, sizeof(double), cmp);
    qsort(plain_ms, (size_t)np, sizeof(double), cmp);
    qsort(base_ms, (size_t)nb, sizeof(double), cmp);

    printf("## Plain words: %d phrases × %d rounds, %d machines (%d fixture + %d generated)\n\n", n,
           rounds, nm + extra, nm, extra);
    printf("| what | median | p90 | p99 |\n| --- | ---: | ---: | ---: |\n");
    printf("| parser alone (intent_parse), µs | %.1f | %.1f | %.1f |\n", pct(parse_us, npar, 0.5),
           pct(parse_us, npar, 0.9), pct(parse_us, npar, 0.99));
    printf("| a plain-words message (parse, find the machine, reply, commit), ms | %.2f | %.2f | "
           "%.2f |\n",
           pct(plain_ms, np, 0.5), pct(plain_ms, np, 0.9), pct(plain_ms, np, 0.99));
    printf("| baseline: /equip search with the same machine words (or /equip list), ms | %.2f | "
           "%.2f | %.2f |\n",
           pct(base_ms, nb, 0.5), pct(base_ms, nb, 0.9), pct(base_ms, nb, 0.99));
    printf("| ratio plain / baseline | %.2f | %.2f | %.2f |\n\n",
           pct(plain_ms, np, 0.5) / pct(base_ms, nb, 0.5),
           pct(plain_ms, np, 0.9) / pct(base_ms, nb, 0.9),
           pct(plain_ms, np, 0.99) / pct(base_ms, nb, 0.99));
    printf("Intent recognised (parser alone) on the held-out table: %d of %d (%.1f %%).\n", kind_ok,
           n, 100.0 * kind_ok / n);
    for (int i = 0; i < n; i++)
        free(ph[i].search);
    free(table);
    arena_free(a);
    db_close(db);
    return 0;
}
