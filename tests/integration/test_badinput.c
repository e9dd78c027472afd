/* Bad input through handle_message: SQL-looking text in every free-text
 * argument, 10 KB messages, control characters and invalid UTF-8 get a
 * clear reply and change nothing; where a command stores the text, it is
 * stored literally and nothing else changed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "handlers.h"
#include "pgtest.h"

#define USER "tess"
#define TOO_LONG "That message is too long ("
#define NOT_UTF8 "That message is not valid UTF-8 text. Nothing was changed."
#define CONTROL                                                                                    \
    "That message contains control characters. Please send plain text; nothing was changed."

struct fixture {
    struct pgtest_db d;
    PGconn *c;
    struct db *db;
    struct arena *a;
    const char *eq, *wo; /* the plant's first machine and work order */
    char fid[24];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct work_order wo;
    int64_t plant, other, tess, ole, oscar, eq;

    assert_non_null(f);
    pgtest_db_create(&f->d);
    f->db = pgtest_connect(&f->d);
    f->c = pgtest_pq(&f->d);
    assert_int_equal(arena_new(&f->a), 0);
    pgtest_migrate(f->db);

    plant = pgtest_factory(f->db, f->a, "Bad Input Plant");
    snprintf(f->fid, sizeof(f->fid), "%lld", (long long)plant);
    /* A supervisor, so that every free-text slot (equipment edits and
     * assigning to others included) reaches its handler; bad input is
     * refused before any role is looked at. */
    tess = pgtest_user(f->db, f->a, plant, USER, "Tess Tech", "supervisor");
    ole = pgtest_user(f->db, f->a, plant, "ole", "Ole Olsen", "supervisor");
    eq = pgtest_equipment(f->db, f->a, plant, tess, "Siemens", "G120C", "Main drive", "XAJ123",
                          "Line 1", &f->eq);
    assert_int_equal(db_wo_create(f->db, f->a, plant, tess, eq, "Coolant leak", "high", &wo), 0);
    f->wo = wo.number;
    assert_int_equal(db_wo_assign(f->db, plant, wo.id, tess, ole, "Ole Olsen"), 0);
    /* A second factory whose rows must never move either. */
    other = pgtest_factory(f->db, f->a, "Bystander Plant");
    oscar = pgtest_user(f->db, f->a, other, "oscar", "Oscar", "admin");
    eq = pgtest_equipment(f->db, f->a, other, oscar, "Grundfos", "CR 10-4", NULL, NULL, NULL, NULL);
    assert_int_equal(db_wo_create(f->db, f->a, other, oscar, eq, "Seal", NULL, &wo), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    PQfinish(f->c);
    db_close(f->db);
    arena_free(f->a);
    pgtest_db_drop(&f->d);
    free(f);
    return 0;
}

/* Text that would do damage if it were ever pasted into SQL. None starts
 * with a quote that the argument parser pairs up, so each arrives as typed. */
static const char *const sqlish[] = {
    "'; DROP TABLE equipment; --",
    "' OR 1=1 --",
    "1' OR '1'='1",
    "Robert'); DROP TABLE users;--",
    "x\"; DELETE FROM work_orders WHERE \"1\"=\"1",
    "%' UNION SELECT code FROM invites --",
    "\\'; SELECT pg_sleep(10); --",
    "$1 $2 ::text); TRUNCATE factories CASCADE; --",
    "admin' WHERE ('a'='a'); UPDATE users SET role='admin",
    "0x27; COMMIT; DROP SCHEMA public CASCADE; BEGIN; --",
};
#define N_SQLISH (sizeof(sqlish) / sizeof(sqlish[0]))

/* Builds a message from tmpl: {EQ} and {WO} become the fixture's numbers,
 * {X} the n bytes of x (which may hold NUL). Returns the length. */
static size_t compose(const struct fixture *f, const char *tmpl, const char *x, size_t n, char *out,
                      size_t cap)
{
    size_t len = 0;

    for (const char *p = tmpl; *p;) {
        const char *put = NULL;
        size_t put_len = 0, skip = 1;

        if (strncmp(p, "{EQ}", 4) == 0)
            put = f->eq, put_len = strlen(f->eq), skip = 4;
        else if (strncmp(p, "{WO}", 4) == 0)
            put = f->wo, put_len = strlen(f->wo), skip = 4;
        else if (strncmp(p, "{X}", 3) == 0)
            put = x, put_len = n, skip = 3;
        else
            put = p, put_len = 1;
        assert_true(len + put_len < cap);
        memcpy(out + len, put, put_len);
        len += put_len;
        p += skip;
    }
    out[len] = '\0';
    return len;
}

/* The value without its white space, for options that take one word. */
static void squeeze(const char *s, char *out, size_t cap)
{
    size_t o = 0;

    for (; *s && o + 1 < cap; s++)
        if (*s != ' ')
            out[o++] = *s;
    out[o] = '\0';
}

/* Says msg; asserts the reply starts with want. Callers check that
 * nothing changed around a group of these. */
static const char *refused(struct fixture *f, const char *msg, size_t len, const char *want)
{
    const char *reply = pgtest_say_n(f->db, USER, msg, len);

    pgtest_assert_starts_with(reply, want);
    return reply;
}

/* s as the handlers show it: cut to max characters with an ellipsis. */
static const char *clip(const char *s, size_t max, char *out, size_t cap)
{
    size_t chars = 0, i;

    for (i = 0; s[i]; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80 && ++chars > max)
            break;
    if (!s[i])
        snprintf(out, cap, "%s", s);
    else {
        /* keep max - 1 characters */
        size_t keep = 0, k = 0;
        for (; s[keep]; keep++)
            if (((unsigned char)s[keep] & 0xc0) != 0x80 && k++ == max - 1)
                break;
        snprintf(out, cap, "%.*s…", (int)keep, s);
    }
    return out;
}

/* The free-text slots of every command, for input that must be refused. */
static const char *const slots[] = {
    "/equip search {X}",
    "/equip view {X}",
    "/equip {X}",
    "/equip add {X} G120C",
    "/equip add Siemens {X}",
    "/equip add Siemens G120C serial={X}",
    "/equip add Siemens G120C location={X}",
    "/equip add Siemens G120C name={X} location=Line 2",
    "/equip edit {EQ} location={X}",
    "/equip edit {EQ} name={X}",
    "/equip edit {EQ} model={X}",
    "/wo new {EQ} {X}",
    "/wo new {EQ} Leak {X} priority=high",
    "/wo note {WO} {X}",
    "/wo assign {WO} {X}",
    "/wo status {WO} {X}",
    "/wo view {X}",
    "/wo list {X}",
    "/help {X}",
    "/start {X}",
    "{X}",
};
#define N_SLOTS (sizeof(slots) / sizeof(slots[0]))

/* SQL-looking text where it is only read: a search, a lookup, a name, a
 * status, a command. The reply quotes it as typed; nothing changes. */
static void test_sql_text_in_lookups(void **state)
{
    struct fixture *f = *state;
    char msg[512], want[512], word[128], c40[128], c60[128];

    for (size_t i = 0; i < N_SQLISH; i++) {
        const char *p = sqlish[i];
        struct pgtest_snap snap;

        pgtest_snap_take(f->c, &snap);
        clip(p, 40, c40, sizeof(c40));
        clip(p, 60, c60, sizeof(c60));
        snprintf(want, sizeof(want), "No equipment matches \"%s\". Try fewer words", c60);
        compose(f, "/equip search {X}", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), want);
        compose(f, "/equip {X}", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), want);
        snprintf(want, sizeof(want), "No equipment %s. ", c40);
        compose(f, "/equip view {X}", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), want);
        snprintf(want, sizeof(want), "No one called \"%s\" here", c40);
        compose(f, "/wo assign {WO} {X}", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), want);

        compose(f, "/wo view {X}", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "Usage: /wo view WO-NUMBER");
        compose(f, "/wo {X}", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "Unknown /wo action");
        compose(f, "/wo list {X}", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "Usage: /wo list");
        compose(f, "/equip list {X}", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "Usage: /equip list");
        compose(f, "/equip edit {X} location=Line 3", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "Usage: /equip edit");
        compose(f, "/wo new {X} Leak", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "Usage: /wo new");
        compose(f, "/stats {X}", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "Usage: /stats");
        compose(f, "/help {X}", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "There is no command");
        compose(f, "/start {X}", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "You are already a member of Bad Input Plant.");
        /* As plain words: read as words, answered, nothing done. */
        pgtest_assert_not_contains(pgtest_say_n(f->db, USER, p, strlen(p)), "Sorry");
        compose(f, "/{X}", p, strlen(p), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "Unknown command /");

        /* One-word values of options and statuses. */
        squeeze(p, word, sizeof(word));
        compose(f, "/wo status {WO} {X}", word, strlen(word), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "Unknown status \"");
        compose(f, "/equip edit {EQ} criticality={X}", word, strlen(word), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "Criticality must be low, medium, high or critical.");
        compose(f, "/equip add Siemens G120C criticality={X}", word, strlen(word), msg,
                sizeof(msg));
        refused(f, msg, strlen(msg), "Criticality must be low, medium, high or critical.");
        compose(f, "/wo new {EQ} Leak priority={X}", word, strlen(word), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "Priority must be low, medium, high or critical.");
        compose(f, "/wo status {X} done", word, strlen(word), msg, sizeof(msg));
        refused(f, msg, strlen(msg), "Usage: /wo status");

        pgtest_assert_unchanged(f->c, &snap, p);
        pgtest_snap_free(&snap);
    }
}

/* Says msg, asserts the reply starts with want and that the database
 * changed by exactly delta. */
static const char *stores(struct fixture *f, const char *msg, const char *want,
                          const struct pgtest_delta *delta)
{
    struct pgtest_snap snap;
    const char *reply;

    pgtest_snap_take(f->c, &snap);
    reply = pgtest_say(f->db, USER, msg);
    pgtest_assert_starts_with(reply, want);
    pgtest_assert_delta(f->c, &snap, delta, msg);
    pgtest_snap_free(&snap);
    return reply;
}

/* SQL-looking text where a command stores it: stored byte for byte, one
 * row added or changed, nothing else. Each message carries the text in one
 * slot, as its last argument (or quoted, for manufacturer and model). */
static void test_sql_text_stored_literally(void **state)
{
    struct fixture *f = *state;
    static const char eq_row[] =
        "SELECT concat_ws('|', manufacturer, model, coalesce(name, '\\N'), "
        "coalesce(serial, '\\N'), coalesce(location, '\\N'), criticality) FROM equipment "
        "WHERE number = $1";
    const struct pgtest_delta added_eq = {.added[PT_EQUIPMENT] = 1,
                                          .changed[PT_NUMBER_SEQUENCES] = 1};
    const struct pgtest_delta edited_eq = {.changed[PT_EQUIPMENT] = 1};
    const struct pgtest_delta added_wo = {.added[PT_WORK_ORDERS] = 1,
                                          .added[PT_WORK_ORDER_EVENTS] = 1,
                                          .changed[PT_NUMBER_SEQUENCES] = 1};
    const struct pgtest_delta noted = {.added[PT_WORK_ORDER_EVENTS] = 1,
                                       .touched[PT_WORK_ORDERS] = 1};
    char msg[1024], want[1024], word[128], *got, *number;
    const char *reply;

    for (size_t i = 0; i < N_SQLISH; i++) {
        const char *p = sqlish[i];

        squeeze(p, word, sizeof(word));

        /* /equip add with the text as manufacturer and model (quoted). */
        snprintf(msg, sizeof(msg), "/equip add «%s» «%s»", p, p);
        reply = stores(f, msg, "✅ Added EQ-", &added_eq);
        number = pgtest_qstr(f->c, "SELECT number FROM equipment ORDER BY id DESC LIMIT 1", NULL);
        assert_non_null(number);
        pgtest_assert_contains(reply, number);
        got = pgtest_qstr(f->c, eq_row, number, NULL);
        snprintf(want, sizeof(want), "%s|%s|\\N|\\N|\\N|medium", p, p);
        assert_string_equal(got, want);
        free(got);

        /* ...then as its location, name and serial, one at a time. */
        snprintf(msg, sizeof(msg), "/equip edit %s location=%s", number, p);
        stores(f, msg, "✏️ Updated ", &edited_eq);
        snprintf(msg, sizeof(msg), "/equip edit %s name=%s", number, p);
        stores(f, msg, "✏️ Updated ", &edited_eq);
        snprintf(msg, sizeof(msg), "/equip edit %s serial=%s", number, word);
        stores(f, msg, "✏️ Updated ", &edited_eq);
        got = pgtest_qstr(f->c, eq_row, number, NULL);
        snprintf(want, sizeof(want), "%s|%s|%s|%s|%s|medium", p, p, p, word, p);
        assert_string_equal(got, want);
        free(got);
        free(number);

        /* /equip add with the text in an option. */
        snprintf(msg, sizeof(msg), "/equip add Siemens G120C location=%s", p);
        stores(f, msg, "✅ Added EQ-", &added_eq);
        got = pgtest_qstr(f->c, "SELECT location FROM equipment ORDER BY id DESC LIMIT 1", NULL);
        assert_string_equal(got, p);
        free(got);

        /* /wo new: the title. */
        snprintf(msg, sizeof(msg), "/wo new %s %s", f->eq, p);
        stores(f, msg, "✅ Opened ", &added_wo);
        got = pgtest_qstr(f->c, "SELECT title FROM work_orders ORDER BY id DESC LIMIT 1", NULL);
        assert_string_equal(got, p);
        free(got);
        got = pgtest_qstr(f->c,
                          "SELECT new_value FROM work_order_events WHERE kind = 'created' "
                          "ORDER BY id DESC LIMIT 1",
                          NULL);
        assert_string_equal(got, p);
        free(got);

        /* /wo note: the note, on the plant's first work order. */
        snprintf(msg, sizeof(msg), "/wo note %s %s", f->wo, p);
        snprintf(want, sizeof(want), "📝 Note added to %s.", f->wo);
        reply = stores(f, msg, want, &noted);
        assert_string_equal(reply, want);
        got = pgtest_qstr(f->c,
                          "SELECT new_value FROM work_order_events WHERE kind = 'note' "
                          "ORDER BY id DESC LIMIT 1",
                          NULL);
        assert_string_equal(got, p);
        free(got);

        /* And the card shows it back as typed. */
        snprintf(msg, sizeof(msg), "/wo view %s", f->wo);
        reply = pgtest_say(f->db, USER, msg);
        pgtest_assert_contains(reply, p);
    }
    /* Whatever was typed, the other factory and the roles are intact. */
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM equipment e JOIN factories f ON "
                                 "f.id = e.factory_id WHERE f.name = 'Bystander Plant'",
                                 NULL),
                     1);
    assert_int_equal(pgtest_qint(f->c, "SELECT count(*) FROM users WHERE role = 'admin'", NULL), 1);
}

/* Text that goes through as typed: tabs and line breaks inside a note, and
 * characters from far outside ASCII. */
static void test_unusual_but_valid_text_stored(void **state)
{
    struct fixture *f = *state;
    static const char *const notes[] = {
        "line one\nline two\tafter a tab",
        "🔧 Ölwechsel erledigt, Lager geprüft — 12 Nm",
        "שמן הוחלף, המסנן נוקה",
        "e\xcc\x81\xcc\x81\xcc\x81 zero\xe2\x80\x8bwidth joiner\xe2\x80\x8d",
        "%s%n%x %p {X} ${HOME} $(reboot) `id`",
        "<b>bold</b> &amp; <script>alert(1)</script>",
    };
    char msg[512], want[128], *got;

    for (size_t i = 0; i < sizeof(notes) / sizeof(notes[0]); i++) {
        snprintf(msg, sizeof(msg), "/wo note %s %s", f->wo, notes[i]);
        snprintf(want, sizeof(want), "📝 Note added to %s.", f->wo);
        assert_string_equal(stores(f, msg, want,
                                   &(struct pgtest_delta){.added[PT_WORK_ORDER_EVENTS] = 1,
                                                          .touched[PT_WORK_ORDERS] = 1}),
                            want);
        got = pgtest_qstr(f->c,
                          "SELECT new_value FROM work_order_events WHERE kind = 'note' "
                          "ORDER BY id DESC LIMIT 1",
                          NULL);
        assert_string_equal(got, notes[i]);
        free(got);
    }
}

/* Text that looks like SQL or like a channel's markup (Telegram HTML,
 * WhatsApp's *bold* _italic_ ~strike~ `code`, an HTML entity). */
static const char *const markupish[] = {
    "'; DROP TABLE equipment; --",
    "<b>x</b>",
    "*x*",
    "_x_",
    "`x`",
    "&amp;",
    "<a href='https://example.invalid/'>tap</a> ~x~ ```x```",
};
#define N_MARKUPISH (sizeof(markupish) / sizeof(markupish[0]))

/* One message as sender, shown as name (a new user's display name), in
 * reply to context (may be NULL); committed as a channel does. The replies
 * joined (static buffer). */
static const char *say_as(struct fixture *f, const char *sender, const char *name, const char *text,
                          const char *context)
{
    static char joined[8192];
    struct arena *a = NULL;
    struct replies out;
    struct msg m = {.channel = CHANNEL_CONSOLE,
                    .sender_id = sender,
                    .sender_name = name,
                    .text = text,
                    .text_len = strlen(text),
                    .context = context};
    size_t len = 0;
    int r;

    assert_int_equal(arena_new(&a), 0);
    replies_init(&out);
    r = pgtest_handle(f->db, a, &m, &out);
    joined[0] = '\0';
    for (struct reply *rep = out.head; rep && len < sizeof(joined); rep = rep->next)
        len += (size_t)snprintf(joined + len, sizeof(joined) - len, "%s%s",
                                rep == out.head ? "" : "\n\n", rep->text);
    arena_free(a);
    if (r < 0)
        fail_msg("%s: %s (%s)", text, strerror(-r), db_errmsg(f->db));
    return joined;
}

/* SQL-looking and markup-looking text in every free-text field: machine
 * manufacturer, model, name, serial and location (added and edited), work
 * order title, note and description, a new member's name (from the
 * channel), and plain words (a note in reply to a work order, a fault
 * reported in a sentence): stored byte for byte, and shown back as typed.
 * Replies are plain text; the channels escape them (Telegram:
 * tg_html_escape, tests/unit/test_telegram.c; WhatsApp has no markup to
 * escape and sends previews off, tests/unit/test_whatsapp.c). */
static void test_markup_and_sql_stored_verbatim(void **state)
{
    struct fixture *f = *state;
    static const char eq_row[] =
        "SELECT concat_ws('|', manufacturer, model, name, serial, location) FROM equipment "
        "WHERE number = $1";
    char msg[1024], want[1200], word[128], ctx[96], code[16], sender[32], *got, *number, *wo;
    const char *reply;

    for (size_t i = 0; i < N_MARKUPISH; i++) {
        const char *p = markupish[i];

        squeeze(p, word, sizeof(word));
        /* A machine with the text in every field (the serial one word). */
        snprintf(msg, sizeof(msg), "/equip add «%s» «%s» name=%s serial=%s location=%s", p, p, p,
                 word, p);
        reply = pgtest_say(f->db, USER, msg);
        pgtest_assert_starts_with(reply, "✅ Added EQ-");
        number = pgtest_qstr(f->c, "SELECT number FROM equipment ORDER BY id DESC LIMIT 1", NULL);
        got = pgtest_qstr(f->c, eq_row, number, NULL);
        snprintf(want, sizeof(want), "%s|%s|%s|%s|%s", p, p, p, word, p);
        assert_string_equal(got, want);
        free(got);
        snprintf(want, sizeof(want), "\n%s %s\nName: %s\nSerial: %s\nLocation: %s\n", p, p, p, word,
                 p);
        pgtest_assert_contains(reply, want);
        /* ...edited to it again, from something else. */
        snprintf(msg, sizeof(msg), "/equip edit %s name=plain location=plain", number);
        pgtest_assert_starts_with(pgtest_say(f->db, USER, msg), "✏️ Updated ");
        snprintf(msg, sizeof(msg), "/equip edit %s name=%s location=%s", number, p, p);
        reply = pgtest_say(f->db, USER, msg);
        pgtest_assert_starts_with(reply, "✏️ Updated ");
        got = pgtest_qstr(f->c, eq_row, number, NULL);
        snprintf(want, sizeof(want), "%s|%s|%s|%s|%s", p, p, p, word, p);
        assert_string_equal(got, want);
        free(got);
        snprintf(msg, sizeof(msg), "/equip view %s", number);
        snprintf(want, sizeof(want), "Name: %s\n", p);
        pgtest_assert_contains(pgtest_say(f->db, USER, msg), want);

        /* A work order titled with it, and a note. */
        snprintf(msg, sizeof(msg), "/wo new %s %s", number, p);
        reply = pgtest_say(f->db, USER, msg);
        pgtest_assert_starts_with(reply, "✅ Opened ");
        pgtest_assert_contains(reply, p);
        wo = pgtest_qstr(f->c, "SELECT number FROM work_orders ORDER BY id DESC LIMIT 1", NULL);
        got = pgtest_qstr(f->c, "SELECT title FROM work_orders WHERE number = $1", wo, NULL);
        assert_string_equal(got, p);
        free(got);
        snprintf(msg, sizeof(msg), "/wo note %s %s", wo, p);
        pgtest_assert_starts_with(pgtest_say(f->db, USER, msg), "📝 Note added");
        /* A note in plain words, in reply to the work order's message. */
        snprintf(ctx, sizeof(ctx), "wo:%s:%s", f->fid, wo);
        reply = say_as(f, USER, USER, p, ctx);
        pgtest_assert_starts_with(reply, "📝 Note added to ");
        got = pgtest_qstr(f->c,
                          "SELECT string_agg(new_value, '|' ORDER BY id) FROM work_order_events "
                          "WHERE kind = 'note' AND work_order_id = (SELECT id FROM work_orders "
                          "WHERE number = $1)",
                          wo, NULL);
        snprintf(want, sizeof(want), "%s|%s", p, p);
        assert_string_equal(got, want);
        free(got);
        snprintf(msg, sizeof(msg), "/wo view %s", wo);
        reply = pgtest_say(f->db, USER, msg);
        snprintf(want, sizeof(want), "%s · %s\n", wo, p);
        pgtest_assert_contains(reply, want);
        snprintf(want, sizeof(want), ": 📝 %s\n", p);
        pgtest_assert_contains(reply, want);

        /* A new member named so by their channel, then given work by
         * that name. */
        assert_int_equal(db_invite_create(f->db, (int64_t)strtoll(f->fid, NULL, 10), "technician",
                                          1, 3600, code, sizeof(code)),
                         0);
        snprintf(sender, sizeof(sender), "newcomer-%zu", i);
        snprintf(msg, sizeof(msg), "/start %s", code);
        reply = say_as(f, sender, p, msg, NULL);
        snprintf(want, sizeof(want), "👋 Welcome to Rivet, %s! You joined", p);
        pgtest_assert_starts_with(reply, want);
        got = pgtest_qstr(f->c, "SELECT display_name FROM users WHERE console_name = $1", sender,
                          NULL);
        assert_string_equal(got, p);
        free(got);
        snprintf(msg, sizeof(msg), "/wo assign %s %s", wo, p);
        snprintf(want, sizeof(want), "👷 %s is assigned to %s.", wo, p);
        assert_string_equal(pgtest_say(f->db, USER, msg), want);
        free(wo);
        free(number);

        /* A fault in a sentence: the proposal keeps the sentence as the
         * description of the work order it becomes. */
        snprintf(msg, sizeof(msg), "the main drive is leaking oil %s", p);
        reply = say_as(f, USER, USER, msg, NULL);
        pgtest_assert_starts_with(reply, "📝 New work order?");
        got = pgtest_qstr(f->c, "SELECT description FROM wo_drafts ORDER BY id DESC LIMIT 1", NULL);
        assert_string_equal(got, msg);
        free(got);
        {
            char create[64];
            long long id =
                pgtest_qint(f->c, "SELECT id FROM wo_drafts ORDER BY id DESC LIMIT 1", NULL);
            snprintf(create, sizeof(create), "/wo draft %lld create", id);
            pgtest_assert_starts_with(pgtest_say(f->db, USER, create), "✅ Opened ");
        }
        got =
            pgtest_qstr(f->c, "SELECT description FROM work_orders ORDER BY id DESC LIMIT 1", NULL);
        assert_string_equal(got, msg);
        free(got);
        wo = pgtest_qstr(f->c, "SELECT number FROM work_orders ORDER BY id DESC LIMIT 1", NULL);
        snprintf(ctx, sizeof(ctx), "/wo view %s", wo);
        snprintf(want, sizeof(want), "\n%s\n", msg);
        pgtest_assert_contains(pgtest_say(f->db, USER, ctx), want);
        free(wo);
    }
    /* The tables are all still there, and the other factory untouched. */
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM equipment e JOIN factories f ON "
                                 "f.id = e.factory_id WHERE f.name = 'Bystander Plant'",
                                 NULL),
                     1);
}

/* 10 KB in every free-text slot, and more: refused before anything is
 * looked up, saying how long it was. */
static void test_long_messages(void **state)
{
    struct fixture *f = *state;
    static const size_t sizes[] = {10 * 1024, 64 * 1024};
    size_t cap = 70 * 1024;
    char *filler = malloc(cap), *msg = malloc(cap + 256), want[160];
    struct pgtest_snap snap;

    assert_true(filler && msg);
    pgtest_snap_take(f->c, &snap);
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        for (int kind = 0; kind < 3; kind++) {
            size_t n = 0;
            /* ASCII, three-byte characters, and SQL text repeated. */
            while (n < sizes[s]) {
                const char *unit = kind == 0 ? "A" : kind == 1 ? "€" : sqlish[n % N_SQLISH];
                size_t ul = strlen(unit);
                if (n + ul > sizes[s])
                    break;
                memcpy(filler + n, unit, ul);
                n += ul;
            }
            for (size_t i = 0; i < N_SLOTS; i++) {
                size_t len = compose(f, slots[i], filler, n, msg, cap + 256);
                snprintf(want, sizeof(want),
                         "That message is too long (%zu bytes; the limit is 4096). Nothing was "
                         "changed.",
                         len);
                assert_string_equal(refused(f, msg, len, TOO_LONG), want);
            }
        }
    }
    /* A stranger too. */
    memset(filler, 'x', 10240);
    pgtest_assert_starts_with(pgtest_say_n(f->db, "nobody", filler, 10240), TOO_LONG);
    pgtest_assert_unchanged(f->c, &snap, "long messages");
    pgtest_snap_free(&snap);
    free(filler);
    free(msg);
}

/* Just under the message limit but over a field's: the field is named. */
static void test_field_limits(void **state)
{
    struct fixture *f = *state;
    char x[4200], msg[4400], *got;
    struct pgtest_snap snap;
    size_t len;

    /* A message of exactly 4096 bytes passes the size check... */
    pgtest_snap_take(f->c, &snap);
    len = compose(f, "/wo note {WO} ", "", 0, msg, sizeof(msg));
    memset(x, 'n', 4096 - len);
    len = compose(f, "/wo note {WO} {X}", x, 4096 - len, msg, sizeof(msg));
    assert_int_equal(len, 4096);
    refused(f, msg, len, "The note is too long (");
    /* ...and 4097 does not. */
    len = compose(f, "/wo note {WO} {X}", x, 4096 - strlen("/wo note ") - strlen(f->wo), msg,
                  sizeof(msg));
    assert_int_equal(len, 4097);
    refused(f, msg, len, TOO_LONG);

    memset(x, 't', 201);
    len = compose(f, "/wo new {EQ} {X}", x, 201, msg, sizeof(msg));
    refused(f, msg, len, "The title is too long (201 characters; at most 200).");
    len = compose(f, "/equip search {X}", x, 201, msg, sizeof(msg));
    refused(f, msg, len, "The search text is too long (201 characters; at most 200).");
    len = compose(f, "/equip view {X}", x, 201, msg, sizeof(msg));
    refused(f, msg, len, "The search text is too long (201 characters; at most 200).");
    len = compose(f, "/equip add Siemens {X}", x, 201, msg, sizeof(msg));
    refused(f, msg, len, "The model is too long (201 characters; at most 200).");
    len = compose(f, "/equip edit {EQ} location={X}", x, 201, msg, sizeof(msg));
    refused(f, msg, len, "The location is too long (201 characters; at most 200).");
    memset(x, 'n', 2001);
    len = compose(f, "/wo note {WO} {X}", x, 2001, msg, sizeof(msg));
    refused(f, msg, len, "The note is too long (2001 characters; at most 2000).");
    pgtest_assert_unchanged(f->c, &snap, "fields over their limits");
    pgtest_snap_free(&snap);

    /* Limits count characters, not bytes: 200 three-byte characters fit. */
    for (int i = 0; i < 200; i++)
        memcpy(x + 3 * i, "€", 3);
    x[600] = '\0';
    pgtest_snap_take(f->c, &snap);
    len = compose(f, "/wo new {EQ} {X}", x, 600, msg, sizeof(msg));
    pgtest_assert_starts_with(pgtest_say_n(f->db, USER, msg, len), "✅ Opened ");
    pgtest_assert_delta(f->c, &snap,
                        &(struct pgtest_delta){.added[PT_WORK_ORDERS] = 1,
                                               .added[PT_WORK_ORDER_EVENTS] = 1,
                                               .changed[PT_NUMBER_SEQUENCES] = 1},
                        "a 200-character title");
    pgtest_snap_free(&snap);
    got = pgtest_qstr(f->c, "SELECT title FROM work_orders ORDER BY id DESC LIMIT 1", NULL);
    assert_string_equal(got, x);
    free(got);
}

static void test_control_characters(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *bytes;
        size_t len;
    } controls[] = {
        {"\x00", 1},          /* NUL */
        {"\x01", 1},          /* SOH */
        {"\x07", 1},          /* BEL */
        {"\x08", 1},          /* backspace */
        {"\r", 1},            /* carriage return inside a line */
        {"\x1b[2J\x1b[H", 7}, /* a terminal escape */
        {"\x7f", 1},          /* DEL */
        {"\xc2\x85", 2},      /* NEL, C1 */
        {"\xc2\x9b"
         "31m",
         5},                 /* CSI, C1 */
        {"\xe2\x80\xae", 3}, /* right-to-left override */
        {"\xe2\x81\xa6", 3}, /* left-to-right isolate */
        {"\xef\xbb\xbf", 3}, /* byte order mark */
    };
    char x[64], msg[256];
    struct pgtest_snap snap;

    pgtest_snap_take(f->c, &snap);
    for (size_t c = 0; c < sizeof(controls) / sizeof(controls[0]); c++) {
        size_t n = 0;

        memcpy(x, "ok", 2);
        n = 2;
        memcpy(x + n, controls[c].bytes, controls[c].len);
        n += controls[c].len;
        memcpy(x + n, "'; DROP TABLE users; --", 23);
        n += 23;
        for (size_t i = 0; i < N_SLOTS; i++) {
            size_t len = compose(f, slots[i], x, n, msg, sizeof(msg));
            const char *reply = refused(f, msg, len, CONTROL);
            assert_string_equal(reply, CONTROL);
        }
    }
    pgtest_assert_unchanged(f->c, &snap, "control characters");
    pgtest_snap_free(&snap);
}

static void test_invalid_utf8(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "\xff",                 /* never valid */
        "\x80",                 /* a lone continuation byte */
        "\xc3\x28",             /* a broken two-byte sequence */
        "\xc0\xaf",             /* an overlong '/' */
        "\xe0\x80\xaf",         /* an overlong '/' in three bytes */
        "\xed\xa0\x80",         /* a UTF-16 surrogate */
        "\xf4\x90\x80\x80",     /* above U+10FFFF */
        "\xf8\x88\x80\x80\x80", /* a five-byte form */
        "Stra\xdf"
        "e",        /* Latin-1, as an old terminal sends it */
        "\xe2\x82", /* cut short at the end */
    };
    char msg[256];
    struct pgtest_snap snap;

    pgtest_snap_take(f->c, &snap);
    for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
        for (size_t i = 0; i < N_SLOTS; i++) {
            size_t len = compose(f, slots[i], bad[b], strlen(bad[b]), msg, sizeof(msg));
            assert_string_equal(refused(f, msg, len, NOT_UTF8), NOT_UTF8);
        }
    }
    pgtest_assert_unchanged(f->c, &snap, "invalid UTF-8");
    pgtest_snap_free(&snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sql_text_in_lookups),
        cmocka_unit_test(test_sql_text_stored_literally),
        cmocka_unit_test(test_unusual_but_valid_text_stored),
        cmocka_unit_test(test_markup_and_sql_stored_verbatim),
        cmocka_unit_test(test_long_messages),
        cmocka_unit_test(test_field_limits),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_invalid_utf8),
    };
    int status;

    if (!pgtest_init(&status))
        return status;
    return cmocka_run_group_tests_name("integration-badinput", tests, setup, teardown);
}
