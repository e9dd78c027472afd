/* The console channel: `rivet chat` reads one message per line from standard
 * input and prints Rivet's replies, through the same handlers as Telegram
 * and WhatsApp. Piped input works, so scripts and tests can hold a
 * conversation. */
#include "rivet.h"

#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "assist.h"
#include "channels.h"
#include "db.h"
#include "handlers.h"
#include "buf.h"
#include "llm.h"
#include "log.h"
#include "photo.h"
#include "text.h"

/* A line longer than this is cut here (and then refused as too long by the
 * handlers); the rest of it is read and dropped. */
#define CONSOLE_LINE_MAX (64 * 1024)

static const char chat_usage[] =
    "Usage: rivet chat [--factory NAME] [--user NAME] [--echo] [--buttons]\n"
    "\n"
    "Talk to Rivet in this terminal: one message per line, replies printed below.\n"
    "Reads standard input to its end, so a conversation can be piped in.\n"
    "\n"
    "  --factory NAME  the factory whose admin you speak as (default: demo;\n"
    "                  created when missing)\n"
    "  --user NAME     speak as console user NAME instead: a member, or a stranger\n"
    "                  who can join with '/start CODE'\n"
    "  --echo          print each message before its replies (for transcripts)\n"
    "  --buttons       print the buttons under each reply, with what they send:\n"
    "                  [ Next ▶ | ~/equip list 2 ] (a leading ~ means the page is\n"
    "                  replaced in place on Telegram)\n"
    "\n"
    "'/photo PATH [CAPTION]' sends the image file at PATH as a photo, as a\n"
    "technician would from a phone; CAPTION is kept as the machine's location.\n";

/* A photo sent with /photo PATH: the file read from disk. */
struct console_photo {
    struct photo_reader *pr;
    char path[4096];
    struct buf bytes;
};

static int console_fetch(void *ctx, char sha256[65], const char **why)
{
    struct console_photo *cp = ctx;
    char chunk[65536];
    size_t n;
    FILE *f = fopen(cp->path, "rb");
    int r = 0;

    buf_free(&cp->bytes);
    buf_init(&cp->bytes, OCR_MAX_BYTES);
    if (!f) {
        *why = "Rivet cannot open that file. Give the path of an image: /photo PATH [caption]";
        return -ENOENT;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        r = buf_add(&cp->bytes, chunk, n);
        if (r < 0) {
            *why = r == -E2BIG ? "The image is larger than 20 MB." : "Out of memory.";
            break;
        }
    }
    if (r == 0 && ferror(f)) {
        *why = "Rivet could not read that file (is it a folder?).";
        r = -EIO;
    }
    fclose(f);
    if (r == 0 && cp->bytes.len == 0) {
        *why = "The file is empty.";
        r = -ENODATA;
    }
    if (r < 0)
        return r;
    photo_sha256(cp->bytes.p, cp->bytes.len, sha256);
    return 0;
}

static int console_read(void *ctx, struct photo_result *out, const char **why)
{
    struct console_photo *cp = ctx;
    int r = photo_read(cp->pr, cp->bytes.p, cp->bytes.len, true, out, why);

    if (r == 0)
        log_debug("photo.read", "ms=%ld passes=%d confidence=%.2f llm=%s", out->total_ms,
                  out->ocr.passes, (double)out->np.confidence,
                  out->llm_used    ? "used"
                  : out->llm_asked ? "failed"
                                   : "no");
    return r;
}

/* "/photo PATH [caption]" (not one of /photo's own subcommands): sets up m
 * as a photo message. Returns whether it was one. */
static bool console_photo_msg(struct console_photo *cp, struct msg *m, struct msg_photo *ph)
{
    static const char *const subs[] = {"save", "link", "edit", "wo", "discard"};
    const char *p = m->text, *end = m->text + m->text_len, *w;

    if (!m->text || m->text_len < 7 || strncasecmp(p, "/photo", 6) != 0 ||
        (p[6] != ' ' && p[6] != '\t'))
        return false;
    for (p += 6; p < end && (*p == ' ' || *p == '\t'); p++)
        ;
    for (w = p; p < end && *p != ' ' && *p != '\t'; p++)
        ;
    if (p == w)
        return false;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if ((size_t)(p - w) == strlen(subs[i]) && strncasecmp(w, subs[i], (size_t)(p - w)) == 0)
            return false;
    if ((size_t)(p - w) >= sizeof(cp->path))
        return false; /* the handler answers /photo's usage */
    memcpy(cp->path, w, (size_t)(p - w));
    cp->path[p - w] = '\0';
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    *ph = (struct msg_photo){.fetch = console_fetch, .read = console_read, .ctx = cp};
    m->photo = ph;
    m->text = p;
    m->text_len = (size_t)(end - p);
    return true;
}

/* Reads one line into buf (size CONSOLE_LINE_MAX + 1) without its newline.
 * Returns its length (bytes kept), or -1 at end of input. */
static long read_line(FILE *in, char *buf)
{
    size_t n = 0;
    int c, any = 0;

    while ((c = getc(in)) != EOF) {
        any = 1;
        if (c == '\n')
            break;
        if (n < CONSOLE_LINE_MAX)
            buf[n++] = (char)c;
    }
    if (!any)
        return -1;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return (long)n;
}

/* One message, in one transaction: the handler's changes and its replies
 * stand or fall together. */
static void print_reply(const struct reply *rep, int buttons)
{
    printf("%s\n", rep->text);
    for (int i = 0; buttons && i < rep->n_buttons; i++) {
        const struct button *b = &rep->buttons[i];
        bool last_of_row = i + 1 == rep->n_buttons || rep->buttons[i + 1].row != b->row;
        printf("[ %s | %s ]%s", b->text, b->data, last_of_row ? "\n" : " ");
    }
    printf("\n");
}

static void converse(struct db *db, const struct msg *m, int echo, int buttons)
{
    struct arena *a = NULL;
    struct replies out;
    struct timespec t0, t1;
    int r;

    if (echo)
        printf("> %.*s\n", (int)m->text_len, m->text);
    if (arena_new(&a) < 0) {
        printf("Sorry, Rivet is out of memory.\n\n");
        return;
    }
    replies_init(&out);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = db_begin(db);
    /* A connection lost while idle (a database restart) is found by BEGIN,
     * before anything was done: reconnect and try once more. */
    if (r == -ECONNRESET) {
        char q[600];
        log_warn("chat.db_reconnect", "detail=%s", log_quote(q, sizeof(q), db_errmsg(db)));
        r = db_begin(db);
    }
    if (r == 0) {
        r = handle_message(db, a, m, &out);
        if (r == 0) /* the other chats' copies of an alarm someone acknowledged */
            r = channel_queue_others(db, a, &out);
        if (r == 0) {
            r = db_commit(db);
            if (r < 0)
                replies_init(&out); /* nothing was stored: no "✅ Added" */
        } else {
            db_rollback(db);
        }
    }
    if (r < 0) {
        char q[600];
        log_error("chat.db_error", "err=%s detail=%s", strerror(-r),
                  log_quote(q, sizeof(q), db_errmsg(db)));
        if (out.n == 0)
            printf("Sorry, Rivet could not reach its database just now. Nothing was changed; "
                   "please try again in a minute.\n\n");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    log_debug("chat.handled", "bytes=%zu replies=%d ms=%.1f ok=%s", m->text_len, out.n,
              (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
              r < 0 ? "no" : "yes");
    for (struct reply *rep = out.head; rep; rep = rep->next)
        if (!rep->chat_id)
            print_reply(rep, buttons);
    fflush(stdout);
    arena_free(a);
}

/* Finds the factory's console admin, creating both when missing. */
static int console_admin(struct db *db, struct arena *a, const char *factory, char *ext_id,
                         size_t n)
{
    struct factory f;
    struct user u;
    int r;

    r = db_factory_ensure(db, a, factory, &f);
    if (r < 0) {
        fprintf(stderr, "rivet: cannot open factory %s: %s\n", factory, db_errmsg(db));
        return 1;
    }
    snprintf(ext_id, n, "admin@%s", f.slug);
    r = db_user_by_identity(db, a, CHANNEL_CONSOLE, ext_id, &u);
    if (r == -ENOENT) {
        r = db_user_create(db, a, f.id, CHANNEL_CONSOLE, ext_id, "Admin", "admin", &u);
        if (r == -EEXIST) /* another chat created it just now */
            r = db_user_by_identity(db, a, CHANNEL_CONSOLE, ext_id, &u);
    }
    if (r < 0) {
        fprintf(stderr, "rivet: cannot set up the console user: %s\n", db_errmsg(db));
        return 1;
    }
    return 0;
}

int cmd_chat(int argc, char **argv)
{
    static const struct option opts[] = {
        {"factory", required_argument, NULL, 'f'}, {"user", required_argument, NULL, 'u'},
        {"echo", no_argument, NULL, 'E'},          {"buttons", no_argument, NULL, 'B'},
        {"help", no_argument, NULL, 'h'},          {0},
    };
    const char *factory = "demo", *user = NULL;
    char ext_id[128], *line = NULL;
    struct arena *a = NULL;
    struct llm_provider providers[LLM_MAX_PROVIDERS];
    struct console_photo cp = {0};
    struct assist *as = NULL;
    struct config cfg;
    struct db *db = NULL;
    int c, echo = 0, buttons = 0, tty, r, n_providers = 0;
    long len;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            factory = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'E':
            echo = 1;
            break;
        case 'B':
            buttons = 1;
            break;
        case 'h':
            fputs(chat_usage, stdout);
            return 0;
        default:
            return bad_option("chat", argv);
        }
    }
    if (optind < argc)
        return usage_error("chat", "unexpected argument");
    if (!factory_name_ok("chat", "--factory", factory))
        return EXIT_USAGE;
    if (user && (!*user || strlen(user) > 100 || !utf8_valid(user, strlen(user)) ||
                 text_has_control(user, strlen(user))))
        return usage_error("chat", "--user must be 1 to 100 bytes of text");

    r = rivet_open_db(&cfg, 1, &db);
    if (r)
        return r;
    r = rivet_llm_config(providers, &n_providers);
    if (r)
        goto out;
    buf_init(&cp.bytes, OCR_MAX_BYTES);
    if (photo_reader_new(providers, n_providers, NULL, &cp.pr) < 0 ||
        assist_new(&cfg, providers, n_providers, &as) < 0 || arena_new(&a) < 0 ||
        !(line = malloc(CONSOLE_LINE_MAX + 1))) {
        r = 1;
        goto out;
    }
    if (user) {
        snprintf(ext_id, sizeof(ext_id), "%s", user);
    } else {
        r = console_admin(db, a, factory, ext_id, sizeof(ext_id));
        if (r)
            goto out;
    }

    tty = isatty(STDIN_FILENO);
    if (tty)
        printf("Rivet console chat: speaking as %s%s. Type /help; Ctrl-D quits.\n\n",
               user ? user : "the admin of factory ", user ? "" : factory);
    for (;;) {
        struct msg_photo ph;
        struct msg m;

        if (tty) {
            printf("› ");
            fflush(stdout);
        }
        len = read_line(stdin, line);
        if (len < 0)
            break;
        m = (struct msg){.channel = CHANNEL_CONSOLE,
                         .sender_id = ext_id,
                         .sender_name = user ? user : "Admin",
                         .text = line,
                         .text_len = (size_t)len,
                         .ask = assist_msg(as)};
        if (console_photo_msg(&cp, &m, &ph) && echo) {
            printf("> %s\n", line);
            echo = 2; /* the line was echoed as typed */
        }
        converse(db, &m, echo == 1, buttons);
        if (echo == 2)
            echo = 1;
        buf_free(&cp.bytes);
    }
    r = 0;
out:
    free(line);
    arena_free(a);
    buf_free(&cp.bytes);
    photo_reader_free(cp.pr);
    assist_free(as);
    db_close(db);
    return r;
}
