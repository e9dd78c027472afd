/* One person, one user across Telegram and WhatsApp: /link and /unlink
 * through handle_message() as the channels call it (struct msg with
 * CHANNEL_TELEGRAM or CHANNEL_WHATSAPP and the sender's id), against
 * PostgreSQL.
 *
 * A member's /link gives a one-time code (only its SHA-256 stored); a
 * stranger on the other app sends /link CODE and becomes that member, with
 * the same work orders and subscriptions. Expired, used, unknown and
 * replaced codes look alike; a member never merges into another user and
 * never uses up a code; guessing stops after 5 failures an hour per sender,
 * counted in the database (so across connections), and one sender's
 * failures do not hold back another. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "handlers.h"
#include "pgtest.h"

#define NOT_REGISTERED "Rivet doesn't know you yet"
#define BAD_CODE                                                                                   \
    "That link code is not valid. Send /link on the channel you already use to get a new one."
#define TOO_MANY "Too many attempts; try again later."
#define MAX_SAID 16
#define LINK_GUESSES_BEFORE_RACE 4

struct fixture {
    struct pgtest_db d;
    PGconn *c;
    struct db *db, *db2; /* two connections: as two Rivet processes */
    struct arena *a;
    int64_t alpha, beta, machine;
};

/* ---- the conversation ---- */

struct said_reply {
    char *text;
    char *chat_id; /* NULL: this conversation */
    enum channel channel;
};

static struct said {
    int n;
    struct said_reply r[MAX_SAID];
    char here[8192]; /* the conversation's replies, joined with "\n\n" */
} said;

static void said_free(void)
{
    for (int i = 0; i < said.n; i++) {
        free(said.r[i].text);
        free(said.r[i].chat_id);
    }
    memset(&said, 0, sizeof(said));
}

/* Sends text from sender on ch through db, in one transaction as a channel
 * does (committed when handle_message() returns 0); keeps every reply with
 * where it goes. Returns the conversation's replies. */
static const char *say_on(struct db *db, enum channel ch, const char *sender, const char *text)
{
    struct msg m = {.channel = ch,
                    .sender_id = sender,
                    .sender_name = "Phone Name",
                    .text = text,
                    .text_len = strlen(text)};
    struct arena *a = NULL;
    struct replies out;
    size_t len = 0;
    int r;

    said_free();
    assert_int_equal(arena_new(&a), 0);
    replies_init(&out);
    r = pgtest_handle(db, a, &m, &out);
    for (struct reply *rep = out.head; rep && said.n < MAX_SAID; rep = rep->next) {
        struct said_reply *s = &said.r[said.n++];

        s->text = strdup(rep->text);
        assert_non_null(s->text);
        s->chat_id = rep->chat_id ? strdup(rep->chat_id) : NULL;
        s->channel = rep->channel;
        if (!rep->chat_id)
            len += (size_t)snprintf(said.here + len, sizeof(said.here) - len, "%s%s",
                                    len ? "\n\n" : "", rep->text);
        assert_true(len < sizeof(said.here));
    }
    arena_free(a);
    if (r < 0)
        fail_msg("handle_message(%s) from %s: %s (%s)", text, sender, strerror(-r), db_errmsg(db));
    return said.here;
}

static const char *say(struct fixture *f, enum channel ch, const char *sender, const char *text)
{
    return say_on(f->db, ch, sender, text);
}

static const char *sayf(struct fixture *f, enum channel ch, const char *sender, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));
static const char *sayf(struct fixture *f, enum channel ch, const char *sender, const char *fmt,
                        ...)
{
    char text[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    return say(f, ch, sender, text);
}

/* The reply to chat_id on ch (another chat than the conversation), or NULL. */
static const char *said_to(enum channel ch, const char *chat_id)
{
    for (int i = 0; i < said.n; i++)
        if (said.r[i].chat_id && said.r[i].channel == ch && strcmp(said.r[i].chat_id, chat_id) == 0)
            return said.r[i].text;
    return NULL;
}

static int said_elsewhere(void)
{
    int n = 0;

    for (int i = 0; i < said.n; i++)
        n += said.r[i].chat_id != NULL;
    return n;
}

/* The code in a /link reply ("… send: /link K7Q-M3X-HPR — …") into code. */
static void code_from(const char *reply, char code[LINK_CODE_SIZE])
{
    const char *p = strstr(reply, "send: /link ");

    if (!p)
        fail_msg("no code in:\n%s", reply);
    else
        snprintf(code, LINK_CODE_SIZE, "%.*s", LINK_CODE_SIZE - 1, p + strlen("send: /link "));
    assert_int_equal(strlen(code), 11);
    assert_true(code[3] == '-' && code[7] == '-');
    for (int i = 0; i < 11; i++) {
        if (i == 3 || i == 7)
            continue;
        if (!strchr("23456789ABCDEFGHJKMNPQRSTUVWXYZ", code[i]))
            fail_msg("code %s has a character outside the alphabet", code);
    }
}

/* /link from a member on ch: their code. On Telegram it goes to the
 * member's private chat only (a group must not see it). */
static void new_code(struct fixture *f, enum channel ch, const char *sender, const char *where,
                     char code[LINK_CODE_SIZE])
{
    const char *text;
    char want[64];

    say(f, ch, sender, "/link");
    if (ch == CHANNEL_TELEGRAM) {
        assert_string_equal(said.here, "");
        assert_int_equal(said.n, 1);
        text = said_to(CHANNEL_TELEGRAM, sender);
        assert_non_null(text);
    } else {
        assert_int_equal(said_elsewhere(), 0);
        text = said.here;
    }
    snprintf(want, sizeof(want), "On %s, send: /link ", where);
    pgtest_assert_starts_with(text, want);
    pgtest_assert_contains(text, " — the code works once, for 10 minutes.");
    code_from(text, code);
}

/* ---- fixtures ---- */

static int64_t user_on(struct fixture *f, int64_t factory, enum channel ch, const char *id,
                       const char *name, const char *role)
{
    struct user u;
    int r = db_user_create(f->db, f->a, factory, ch, id, name, role, &u);

    if (r < 0)
        fail_msg("db_user_create %s: %s (%s)", name, strerror(-r), db_errmsg(f->db));
    return u.id;
}

/* A number from SQL with text parameters. */
#define qint(f, ...) pgtest_qint((f)->c, __VA_ARGS__, NULL)

/* Runs SQL with text parameters, for set-up. */
#define exec(f, ...) PQclear(pgtest_q((f)->c, __VA_ARGS__, NULL))

static long long users_count(struct fixture *f)
{
    return qint(f, "SELECT count(*) FROM users");
}

static const char *id_text(int64_t id)
{
    static char s[4][24];
    static int k;

    k = (k + 1) % 4;
    snprintf(s[k], sizeof(s[k]), "%" PRId64, id);
    return s[k];
}

/* Whether the user's code (the plain code as shown) is still unused. */
static bool code_unused(struct fixture *f, const char *code)
{
    char norm[16];
    size_t n = 0;

    for (const char *p = code; *p; p++)
        if (*p != '-')
            norm[n++] = *p;
    norm[n] = '\0';
    return qint(f,
                "SELECT count(*) FROM link_codes WHERE used_at IS NULL AND "
                "code_sha256 = encode(sha256(convert_to($1, 'UTF8')), 'hex')",
                norm) == 1;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    pgtest_db_create(&f->d);
    f->db = pgtest_connect(&f->d);
    f->db2 = pgtest_connect(&f->d);
    f->c = pgtest_pq(&f->d);
    assert_int_equal(arena_new(&f->a), 0);
    pgtest_migrate(f->db);
    f->alpha = pgtest_factory(f->db, f->a, "Plant Alpha");
    f->beta = pgtest_factory(f->db, f->a, "Plant Beta");
    {
        int64_t admin = pgtest_user(f->db, f->a, f->alpha, "admin", "Alpha Admin", "admin");
        f->machine = pgtest_equipment(f->db, f->a, f->alpha, admin, "Siemens", "G120C",
                                      "Main drive", "XAJ123", "Line 1", NULL);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    said_free();
    PQfinish(f->c);
    db_close(f->db);
    db_close(f->db2);
    arena_free(f->a);
    pgtest_db_drop(&f->d);
    free(f);
    return 0;
}

/* ---- tests ---- */

/* Telegram member links WhatsApp: the WhatsApp chat is then the same user,
 * with the same work orders and subscription row. */
static void test_telegram_to_whatsapp(void **state)
{
    struct fixture *f = *state;
    struct work_order wo;
    char code[LINK_CODE_SIZE];
    const char *reply, *note;
    int64_t tanya;
    long long users;

    tanya = user_on(f, f->alpha, CHANNEL_TELEGRAM, "1001", "Tanya Tech", "technician");
    assert_int_equal(
        db_wo_create(f->db, f->a, f->alpha, tanya, f->machine, "Tanya's coolant leak", "high", &wo),
        0);
    assert_int_equal(db_wo_assign(f->db, f->alpha, wo.id, tanya, tanya, "Tanya Tech"), 0);
    pgtest_assert_starts_with(say(f, CHANNEL_TELEGRAM, "1001", "/subscribe medium"), "🔔");
    users = users_count(f);

    /* Before: the WhatsApp number is a stranger. */
    pgtest_assert_starts_with(say(f, CHANNEL_WHATSAPP, "4915550101", "/wo list mine"),
                              NOT_REGISTERED);

    new_code(f, CHANNEL_TELEGRAM, "1001", "WhatsApp", code);
    assert_true(code_unused(f, code));
    assert_int_equal(qint(f,
                          "SELECT count(*) FROM link_codes WHERE factory_id = $1 AND user_id = $2 "
                          "AND expires_at BETWEEN now() + interval '9 minutes' "
                          "AND now() + interval '10 minutes'",
                          id_text(f->alpha), id_text(tanya)),
                     1);

    reply = sayf(f, CHANNEL_WHATSAPP, "4915550101", "/link %s", code);
    assert_string_equal(reply, "Linked: this WhatsApp number is now Tanya Tech at Plant Alpha. "
                               "Your work orders, alarms and subscriptions are the same on both.");
    /* Her Telegram chat is told, in case it was not her. */
    note = said_to(CHANNEL_TELEGRAM, "1001");
    assert_non_null(note);
    pgtest_assert_contains(note, "WhatsApp number +4915550101");
    pgtest_assert_contains(note, "/unlink whatsapp");
    assert_false(code_unused(f, code));

    /* One user, both identities. */
    assert_int_equal(users_count(f), users);
    assert_int_equal(qint(f,
                          "SELECT count(*) FROM users WHERE id = $1 AND telegram_user_id = 1001 "
                          "AND whatsapp_id = $2",
                          id_text(tanya), "4915550101"),
                     1);

    /* The same work orders and subscriptions from WhatsApp. */
    reply = say(f, CHANNEL_WHATSAPP, "4915550101", "/wo list mine");
    pgtest_assert_contains(reply, "Tanya's coolant leak");
    reply = say(f, CHANNEL_WHATSAPP, "4915550101", "/subscribe");
    pgtest_assert_contains(reply, "Every device: medium, high and critical alarms");
    pgtest_assert_starts_with(say(f, CHANNEL_WHATSAPP, "4915550101", "/subscribe critical"), "🔔");
    assert_int_equal(qint(f,
                          "SELECT count(*) FROM alarm_subscriptions WHERE user_id = $1 "
                          "AND min_severity = 'critical' AND device_id IS NULL",
                          id_text(tanya)),
                     1);
    pgtest_assert_contains(say(f, CHANNEL_TELEGRAM, "1001", "/subscribe"),
                           "Every device: critical alarms");
    pgtest_assert_starts_with(say(f, CHANNEL_WHATSAPP, "4915550101", "/start"),
                              "👋 Welcome back, Tanya Tech. You are technician at Plant Alpha.");

    /* Used: the same code does nothing for anyone else. */
    reply = sayf(f, CHANNEL_WHATSAPP, "4915550102", "/link %s", code);
    assert_string_equal(reply, BAD_CODE);
    reply = sayf(f, CHANNEL_TELEGRAM, "1002", "/link %s", code);
    assert_string_equal(reply, BAD_CODE);
    assert_int_equal(users_count(f), users);

    /* Every app linked: /link says so and how to unlink. */
    reply = say(f, CHANNEL_WHATSAPP, "4915550101", "/link");
    pgtest_assert_contains(reply, "both linked already");
    pgtest_assert_contains(reply, "/unlink telegram");
    reply = say(f, CHANNEL_TELEGRAM, "1001", "/link");
    assert_int_equal(said.n, 1);
    pgtest_assert_contains(reply, "/unlink whatsapp");
}

/* WhatsApp member links Telegram; the code in the WhatsApp chat itself,
 * typed back in lower case without dashes. */
static void test_whatsapp_to_telegram(void **state)
{
    struct fixture *f = *state;
    char code[LINK_CODE_SIZE], typed[LINK_CODE_SIZE];
    const char *reply, *note;
    int64_t walt;
    size_t n = 0;

    walt = user_on(f, f->alpha, CHANNEL_WHATSAPP, "4915550201", "Walt Welder", "supervisor");
    new_code(f, CHANNEL_WHATSAPP, "4915550201", "Telegram", code);
    for (const char *p = code; *p; p++)
        if (*p != '-')
            typed[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    typed[n] = '\0';

    reply = sayf(f, CHANNEL_TELEGRAM, "1201", "/link %s", typed);
    assert_string_equal(reply, "Linked: this Telegram account is now Walt Welder at Plant Alpha. "
                               "Your work orders, alarms and subscriptions are the same on both.");
    note = said_to(CHANNEL_WHATSAPP, "4915550201");
    assert_non_null(note);
    pgtest_assert_contains(note, "Telegram account 1201");
    assert_int_equal(qint(f,
                          "SELECT count(*) FROM users WHERE id = $1 AND telegram_user_id = 1201 "
                          "AND whatsapp_id = $2",
                          id_text(walt), "4915550201"),
                     1);
    pgtest_assert_starts_with(say(f, CHANNEL_TELEGRAM, "1201", "/start"),
                              "👋 Welcome back, Walt Welder. You are supervisor at Plant Alpha.");
}

/* Spaces, dashes and case do not matter; anything else is no code. */
static void test_code_as_typed(void **state)
{
    struct fixture *f = *state;
    char code[LINK_CODE_SIZE], spaced[32];
    const char *reply;

    user_on(f, f->alpha, CHANNEL_TELEGRAM, "1301", "Cora Case", "technician");
    new_code(f, CHANNEL_TELEGRAM, "1301", "WhatsApp", code);
    /* "k7q m3x-hpr" */
    snprintf(spaced, sizeof(spaced), "%.3s %.3s-%.3s", code, code + 4, code + 8);
    for (char *p = spaced; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    /* Not codes: too short, too long, a letter outside the alphabet. */
    assert_string_equal(sayf(f, CHANNEL_WHATSAPP, "4915550301", "/link %.10s", code), BAD_CODE);
    assert_string_equal(sayf(f, CHANNEL_WHATSAPP, "4915550301", "/link %sA", code), BAD_CODE);
    assert_true(code_unused(f, code));
    reply = sayf(f, CHANNEL_WHATSAPP, "4915550301", "/link  %s ", spaced);
    pgtest_assert_starts_with(reply,
                              "Linked: this WhatsApp number is now Cora Case at Plant Alpha.");
}

/* Expired codes and replaced codes look like unknown ones. */
static void test_expired_and_replaced(void **state)
{
    struct fixture *f = *state;
    char old[LINK_CODE_SIZE], code[LINK_CODE_SIZE];
    int64_t eve;
    long long users = users_count(f);

    eve = user_on(f, f->alpha, CHANNEL_TELEGRAM, "1401", "Eve Expiry", "technician");
    users++;
    new_code(f, CHANNEL_TELEGRAM, "1401", "WhatsApp", code);
    exec(f, "UPDATE link_codes SET expires_at = now() - interval '1 second' WHERE user_id = $1",
         id_text(eve));
    assert_string_equal(sayf(f, CHANNEL_WHATSAPP, "4915550401", "/link %s", code), BAD_CODE);
    assert_int_equal(users_count(f), users);
    assert_int_equal(
        qint(f, "SELECT count(*) FROM users WHERE id = $1 AND whatsapp_id IS NULL", id_text(eve)),
        1);

    /* A new code replaces the unused one. */
    new_code(f, CHANNEL_TELEGRAM, "1401", "WhatsApp", old);
    new_code(f, CHANNEL_TELEGRAM, "1401", "WhatsApp", code);
    assert_string_not_equal(old, code);
    assert_int_equal(qint(f,
                          "SELECT count(*) FROM link_codes WHERE user_id = $1 AND used_at IS NULL",
                          id_text(eve)),
                     1);
    assert_string_equal(sayf(f, CHANNEL_WHATSAPP, "4915550401", "/link %s", old), BAD_CODE);
    /* Switched off meanwhile: the code is no good either. */
    exec(f, "UPDATE users SET active = false WHERE id = $1", id_text(eve));
    assert_string_equal(sayf(f, CHANNEL_WHATSAPP, "4915550401", "/link %s", code), BAD_CODE);
    exec(f, "UPDATE users SET active = true WHERE id = $1", id_text(eve));
    pgtest_assert_starts_with(sayf(f, CHANNEL_WHATSAPP, "4915550401", "/link %s", code),
                              "Linked: this WhatsApp number is now Eve Expiry");
}

/* Another factory's code links its own user, there, once. */
static void test_other_factory(void **state)
{
    struct fixture *f = *state;
    char code[LINK_CODE_SIZE];
    const char *reply;
    int64_t bella, alf;

    bella = user_on(f, f->beta, CHANNEL_TELEGRAM, "2001", "Bella Beta", "technician");
    alf = user_on(f, f->alpha, CHANNEL_WHATSAPP, "4915550501", "Alf Alpha", "admin");
    new_code(f, CHANNEL_TELEGRAM, "2001", "WhatsApp", code);

    /* An Alpha member's WhatsApp chat: refused, code kept. */
    reply = sayf(f, CHANNEL_WHATSAPP, "4915550501", "/link %s", code);
    assert_string_equal(reply, "This WhatsApp number is already Rivet user Alf Alpha. One person, "
                               "one identity: ask an admin to remove the other user first.");
    assert_true(code_unused(f, code));
    assert_int_equal(
        qint(f,
             "SELECT count(*) FROM users WHERE id = $1 AND factory_id = $2 AND whatsapp_id = "
             "'4915550501' AND telegram_user_id IS NULL",
             id_text(alf), id_text(f->alpha)),
        1);

    /* A stranger becomes Bella, in Beta, and sees Beta only. */
    reply = sayf(f, CHANNEL_WHATSAPP, "4915550502", "/link %s", code);
    assert_string_equal(reply, "Linked: this WhatsApp number is now Bella Beta at Plant Beta. "
                               "Your work orders, alarms and subscriptions are the same on both.");
    assert_int_equal(qint(f,
                          "SELECT count(*) FROM users WHERE whatsapp_id = '4915550502' "
                          "AND id = $1 AND factory_id = $2",
                          id_text(bella), id_text(f->beta)),
                     1);
    reply = say(f, CHANNEL_WHATSAPP, "4915550502", "/equip list");
    pgtest_assert_starts_with(reply, "No equipment yet.");
    /* Once. */
    assert_string_equal(sayf(f, CHANNEL_WHATSAPP, "4915550503", "/link %s", code), BAD_CODE);
    pgtest_assert_starts_with(say(f, CHANNEL_WHATSAPP, "4915550503", "/wo list"), NOT_REGISTERED);
}

/* A user with the app already: refused, nothing changes, the code keeps. */
static void test_user_has_that_app(void **state)
{
    struct fixture *f = *state;
    char code[LINK_CODE_SIZE];
    const char *reply;
    int64_t vera;
    long long users;

    /* Vera has the console and WhatsApp; her code is meant for Telegram. */
    vera = pgtest_user(f->db, f->a, f->alpha, "vera", "Vera Both", "technician");
    exec(f, "UPDATE users SET whatsapp_id = '4915550601' WHERE id = $1", id_text(vera));
    new_code(f, CHANNEL_CONSOLE, "vera", "Telegram", code);
    users = users_count(f);

    reply = sayf(f, CHANNEL_WHATSAPP, "4915550602", "/link %s", code);
    assert_string_equal(
        reply,
        "Vera Both already has a WhatsApp number linked; send /unlink whatsapp there first.");
    assert_true(code_unused(f, code));
    assert_int_equal(users_count(f), users);
    assert_int_equal(qint(f, "SELECT count(*) FROM users WHERE id = $1 AND whatsapp_id = $2",
                          id_text(vera), "4915550601"),
                     1);
    assert_int_equal(qint(f, "SELECT count(*) FROM users WHERE whatsapp_id = $1", "4915550602"), 0);
    /* Not a guess: the sender has every attempt left. */
    assert_int_equal(qint(f,
                          "SELECT coalesce(sum(failures), 0) FROM link_attempts "
                          "WHERE channel = $1 AND sender_id = $2",
                          "whatsapp", "4915550602"),
                     0);

    /* On Telegram, as meant. */
    pgtest_assert_starts_with(sayf(f, CHANNEL_TELEGRAM, "1601", "/link %s", code),
                              "Linked: this Telegram account is now Vera Both at Plant Alpha.");
    /* The WhatsApp chat is told; the console has no chat to tell. */
    assert_non_null(said_to(CHANNEL_WHATSAPP, "4915550601"));
    assert_int_equal(said_elsewhere(), 1);
}

/* A member sending a code: never merged, never used up. */
static void test_member_sends_code(void **state)
{
    struct fixture *f = *state;
    char code[LINK_CODE_SIZE];
    const char *reply;

    user_on(f, f->alpha, CHANNEL_TELEGRAM, "1701", "Mia Member", "technician");
    user_on(f, f->alpha, CHANNEL_WHATSAPP, "4915550701", "Xavier Other", "technician");
    new_code(f, CHANNEL_TELEGRAM, "1701", "WhatsApp", code);

    /* Her own code in her own chat. */
    assert_string_equal(sayf(f, CHANNEL_TELEGRAM, "1701", "/link %s", code), "Already linked.");
    assert_true(code_unused(f, code));
    /* A different user's chat. */
    reply = sayf(f, CHANNEL_WHATSAPP, "4915550701", "/link %s", code);
    assert_string_equal(reply,
                        "This WhatsApp number is already Rivet user Xavier Other. One person, one "
                        "identity: ask an admin to remove the other user first.");
    assert_true(code_unused(f, code));
    assert_int_equal(qint(f,
                          "SELECT count(*) FROM users WHERE whatsapp_id = $1 AND display_name = $2",
                          "4915550701", "Xavier Other"),
                     1);
    /* Still good for the number it was meant for. */
    pgtest_assert_starts_with(sayf(f, CHANNEL_WHATSAPP, "4915550702", "/link %s", code),
                              "Linked: this WhatsApp number is now Mia Member");
}

/* 5 failures an hour per sender; the 6th attempt is refused even with a
 * valid code; other senders are not held back; counted in the database,
 * so two processes share the count. */
static void test_guessing_limit(void **state)
{
    struct fixture *f = *state;
    char code[LINK_CODE_SIZE];
    const char *reply;

    user_on(f, f->alpha, CHANNEL_TELEGRAM, "1801", "Gus Guarded", "technician");
    new_code(f, CHANNEL_TELEGRAM, "1801", "WhatsApp", code);

    for (int i = 0; i < 5; i++) {
        /* alternating between two connections, as two Rivet processes */
        reply = say_on(i % 2 ? f->db2 : f->db, CHANNEL_WHATSAPP, "4915550801",
                       i == 4 ? "/link not a code" : "/link 222-333-444");
        assert_string_equal(reply, BAD_CODE);
    }
    assert_int_equal(qint(f,
                          "SELECT failures FROM link_attempts WHERE channel = $1 "
                          "AND sender_id = $2",
                          "whatsapp", "4915550801"),
                     5);
    reply = sayf(f, CHANNEL_WHATSAPP, "4915550801", "/link %s", code);
    assert_string_equal(reply, TOO_MANY);
    reply = say_on(f->db2, CHANNEL_WHATSAPP, "4915550801", "/link 222-333-444");
    assert_string_equal(reply, TOO_MANY);
    assert_true(code_unused(f, code));
    pgtest_assert_starts_with(say(f, CHANNEL_WHATSAPP, "4915550801", "/wo list"), NOT_REGISTERED);

    /* The same id on the other app, and other senders, are not held back. */
    assert_string_equal(say(f, CHANNEL_TELEGRAM, "4915550801", "/link 222-333-444"), BAD_CODE);
    assert_string_equal(say(f, CHANNEL_WHATSAPP, "4915550802", "/link 222-333-444"), BAD_CODE);

    /* Members too: a member's chat cannot try codes out either. */
    for (int i = 0; i < 5; i++)
        assert_string_equal(say(f, CHANNEL_TELEGRAM, "1801", "/link 222-333-444"), BAD_CODE);
    assert_string_equal(sayf(f, CHANNEL_TELEGRAM, "1801", "/link %s", code), TOO_MANY);

    /* An hour later the sender may try again. */
    exec(f,
         "UPDATE link_attempts SET window_start = now() - interval '61 minutes' "
         "WHERE channel = 'whatsapp' AND sender_id = $1",
         "4915550801");
    reply = sayf(f, CHANNEL_WHATSAPP, "4915550801", "/link %s", code);
    pgtest_assert_starts_with(reply, "Linked: this WhatsApp number is now Gus Guarded");
}

static void test_unlink(void **state)
{
    struct fixture *f = *state;
    int64_t uma;
    const char *reply;

    uma = user_on(f, f->alpha, CHANNEL_TELEGRAM, "1901", "Uma Unlink", "technician");
    exec(f, "UPDATE users SET whatsapp_id = '4915550901' WHERE id = $1", id_text(uma));

    /* Not the app one writes from. */
    reply = say(f, CHANNEL_WHATSAPP, "4915550901", "/unlink whatsapp");
    pgtest_assert_contains(reply, "would lock you out");
    pgtest_assert_contains(reply, "/unlink whatsapp from Telegram");
    assert_int_equal(qint(f, "SELECT count(*) FROM users WHERE id = $1 AND whatsapp_id = $2",
                          id_text(uma), "4915550901"),
                     1);
    pgtest_assert_starts_with(say(f, CHANNEL_WHATSAPP, "4915550901", "/unlink"), "Usage: /unlink ");
    pgtest_assert_starts_with(say(f, CHANNEL_WHATSAPP, "4915550901", "/unlink console"),
                              "Usage: /unlink telegram|whatsapp");

    reply = say(f, CHANNEL_WHATSAPP, "4915550901", "/unlink Telegram");
    assert_string_equal(reply, "Telegram unlinked: that Telegram account is no longer you in "
                               "Rivet. To link one again, send /link.");
    assert_int_equal(
        qint(f,
             "SELECT count(*) FROM users WHERE id = $1 AND telegram_user_id IS NULL AND "
             "whatsapp_id = $2",
             id_text(uma), "4915550901"),
        1);
    pgtest_assert_starts_with(say(f, CHANNEL_TELEGRAM, "1901", "/wo list"), NOT_REGISTERED);
    pgtest_assert_starts_with(say(f, CHANNEL_TELEGRAM, "1901", "/unlink whatsapp"), NOT_REGISTERED);
    assert_string_equal(say(f, CHANNEL_WHATSAPP, "4915550901", "/unlink telegram"),
                        "You have no Telegram account linked.");
    /* The only app left: kept. */
    pgtest_assert_contains(say(f, CHANNEL_WHATSAPP, "4915550901", "/unlink whatsapp"),
                           "the only way Rivet knows you");
    /* And linked again. */
    {
        char code[LINK_CODE_SIZE];
        new_code(f, CHANNEL_WHATSAPP, "4915550901", "Telegram", code);
        pgtest_assert_starts_with(sayf(f, CHANNEL_TELEGRAM, "1902", "/link %s", code),
                                  "Linked: this Telegram account is now Uma Unlink");
    }
}

/* Strangers may /link but nothing else new; the console does not link;
 * /help lists both commands. */
static void test_strangers_console_help(void **state)
{
    struct fixture *f = *state;
    char code[LINK_CODE_SIZE];
    const char *reply;

    reply = say(f, CHANNEL_WHATSAPP, "4915551001", "/link");
    pgtest_assert_contains(reply, "send /link in your chat with Rivet on Telegram");
    pgtest_assert_contains(reply, "/start CODE");
    reply = say(f, CHANNEL_TELEGRAM, "11001", "/link");
    pgtest_assert_contains(reply, "on WhatsApp");
    assert_int_equal(said_elsewhere(), 0);

    /* The console: its users may make a code for both apps, but codes are
     * not sent there. */
    pgtest_user(f->db, f->a, f->alpha, "carl", "Carl Console", "admin");
    new_code(f, CHANNEL_CONSOLE, "carl", "Telegram or WhatsApp", code);
    reply = sayf(f, CHANNEL_CONSOLE, "carl", "/link %s", code);
    pgtest_assert_starts_with(reply, "Linking is for Telegram and WhatsApp");
    reply = sayf(f, CHANNEL_CONSOLE, "stranger", "/link %s", code);
    pgtest_assert_starts_with(reply, "Linking is for Telegram and WhatsApp");
    assert_true(code_unused(f, code));

    reply = pgtest_say(f->db, "carl", "/help");
    pgtest_assert_contains(reply, "\n/link\n");
    pgtest_assert_contains(reply, "\n/link CODE\n");
    pgtest_assert_contains(reply, "e.g. /unlink whatsapp");
    reply = pgtest_say(f->db, "carl", "/help link");
    pgtest_assert_starts_with(reply, "How to use /link:");
    reply = pgtest_say(f->db, "carl", "/lnk");
    pgtest_assert_contains(reply, "Did you mean /link?");
}

/* Of every code handed out in these tests, link_codes holds only hashes:
 * no plain code, with or without dashes, in any column. */
static void test_only_hashes(void **state)
{
    struct fixture *f = *state;
    char code[LINK_CODE_SIZE], bare[LINK_CODE_CHARS + 1];
    size_t n = 0;

    user_on(f, f->alpha, CHANNEL_TELEGRAM, "12001", "Hal Hash", "technician");
    new_code(f, CHANNEL_TELEGRAM, "12001", "WhatsApp", code);
    for (const char *p = code; *p; p++)
        if (*p != '-')
            bare[n++] = *p;
    bare[n] = '\0';
    assert_int_equal(qint(f,
                          "SELECT count(*) FROM link_codes l WHERE strpos(upper(l::text), $1) > 0 "
                          "OR strpos(upper(l::text), $2) > 0",
                          code, bare),
                     0);
    assert_int_equal(qint(f,
                          "SELECT count(*) FROM link_codes WHERE code_sha256 = "
                          "encode(sha256(convert_to($1, 'UTF8')), 'hex')",
                          bare),
                     1);
    assert_int_equal(
        qint(f, "SELECT count(*) FROM link_codes WHERE code_sha256 !~ '^[0-9a-f]{64}$'"), 0);
    /* The schema refuses anything else. */
    {
        PGresult *res = PQexecParams(f->c,
                                     "INSERT INTO link_codes (factory_id, user_id, code_sha256, "
                                     "expires_at) SELECT factory_id, id, $1, now() FROM users "
                                     "LIMIT 1",
                                     1, NULL, (const char *[]){bare}, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
        PQclear(res);
    }
}

/* ---- races: each racer its own connection, as separate processes ---- */

#define RACERS 4

struct racer {
    struct db *db;
    pthread_barrier_t *start;
    enum channel ch;
    char sender[32], text[64];
    int r;
    char reply[512], err[256];
};

static void *race(void *arg)
{
    struct racer *x = arg;
    struct msg m = {.channel = x->ch,
                    .sender_id = x->sender,
                    .sender_name = x->sender,
                    .text = x->text,
                    .text_len = strlen(x->text)};
    struct arena *a = NULL;
    struct replies out;

    replies_init(&out);
    if ((x->r = arena_new(&a)) < 0)
        return NULL;
    pthread_barrier_wait(x->start);
    x->r = db_begin(x->db);
    if (x->r == 0) {
        x->r = handle_message(x->db, a, &m, &out);
        if (x->r == 0)
            x->r = db_commit(x->db);
        else
            db_rollback(x->db);
    }
    if (x->r < 0)
        snprintf(x->err, sizeof(x->err), "%s", db_errmsg(x->db));
    if (out.head)
        snprintf(x->reply, sizeof(x->reply), "%s", out.head->text);
    arena_free(a);
    return NULL;
}

/* Runs the racers at once; asserts each handled its message. */
static void race_all(struct fixture *f, struct racer *x)
{
    pthread_barrier_t start;
    pthread_t th[RACERS];

    assert_int_equal(pthread_barrier_init(&start, NULL, RACERS), 0);
    for (int i = 0; i < RACERS; i++) {
        x[i].db = pgtest_connect(&f->d);
        x[i].start = &start;
    }
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race, &x[i]), 0);
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < RACERS; i++) {
        db_close(x[i].db);
        if (x[i].r != 0)
            fail_msg("%s: %s (%s)", x[i].sender, strerror(-x[i].r), x[i].err);
    }
}

/* Strangers racing with one code: one gets it. One sender racing with
 * guesses at 4 failures: one more failure, then the limit. */
static void test_races(void **state)
{
    struct fixture *f = *state;
    struct racer x[RACERS];
    char code[LINK_CODE_SIZE];
    int linked = 0, bad = 0, limited = 0;
    int64_t rita;

    rita = user_on(f, f->alpha, CHANNEL_TELEGRAM, "13001", "Rita Race", "technician");
    new_code(f, CHANNEL_TELEGRAM, "13001", "WhatsApp", code);
    memset(x, 0, sizeof(x));
    for (int i = 0; i < RACERS; i++) {
        x[i].ch = CHANNEL_WHATSAPP;
        snprintf(x[i].sender, sizeof(x[i].sender), "49155513%03d", i);
        snprintf(x[i].text, sizeof(x[i].text), "/link %s", code);
    }
    race_all(f, x);
    for (int i = 0; i < RACERS; i++) {
        linked += strncmp(x[i].reply, "Linked: ", 8) == 0;
        bad += strcmp(x[i].reply, BAD_CODE) == 0;
    }
    assert_int_equal(linked, 1);
    assert_int_equal(bad, RACERS - 1);
    assert_int_equal(qint(f, "SELECT count(*) FROM users WHERE whatsapp_id LIKE '49155513%'"), 1);
    assert_int_equal(qint(f,
                          "SELECT count(*) FROM users WHERE id = $1 AND whatsapp_id LIKE "
                          "'49155513%'",
                          id_text(rita)),
                     1);

    for (int i = 0; i < LINK_GUESSES_BEFORE_RACE; i++)
        assert_string_equal(say(f, CHANNEL_TELEGRAM, "13999", "/link 222-333-444"), BAD_CODE);
    memset(x, 0, sizeof(x));
    for (int i = 0; i < RACERS; i++) {
        x[i].ch = CHANNEL_TELEGRAM;
        snprintf(x[i].sender, sizeof(x[i].sender), "13999");
        snprintf(x[i].text, sizeof(x[i].text), "/link 222-333-44%d", 5 + i);
    }
    race_all(f, x);
    bad = 0;
    for (int i = 0; i < RACERS; i++) {
        bad += strcmp(x[i].reply, BAD_CODE) == 0;
        limited += strcmp(x[i].reply, TOO_MANY) == 0;
    }
    assert_int_equal(bad, 1);
    assert_int_equal(limited, RACERS - 1);
    assert_int_equal(qint(f,
                          "SELECT failures FROM link_attempts WHERE channel = 'telegram' "
                          "AND sender_id = $1",
                          "13999"),
                     5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_telegram_to_whatsapp),
        cmocka_unit_test(test_whatsapp_to_telegram),
        cmocka_unit_test(test_code_as_typed),
        cmocka_unit_test(test_expired_and_replaced),
        cmocka_unit_test(test_other_factory),
        cmocka_unit_test(test_user_has_that_app),
        cmocka_unit_test(test_member_sends_code),
        cmocka_unit_test(test_guessing_limit),
        cmocka_unit_test(test_unlink),
        cmocka_unit_test(test_strangers_console_help),
        cmocka_unit_test(test_only_hashes),
        cmocka_unit_test(test_races),
    };
    int status;

    if (!pgtest_init(&status))
        return status;
    return cmocka_run_group_tests_name("integration-link", tests, setup, teardown);
}
