/* The alarm conversation against PostgreSQL: alarms, their deliveries and
 * the chat commands about them (/alerts, /ack, /resolve, /wo alarm,
 * /subscribe, /unsubscribe, /mute, /rules, /stats), driven through
 * handle_message() as a channel would. What matters most here is what a
 * console transcript cannot show: the replies addressed to other chats
 * (chat_id, channel, edit_outbox) that replace every copy of an alarm when
 * someone acknowledges, resolves or opens a work order for it; and that
 * nobody reaches another factory's alarm. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alarm.h"
#include "arena.h"
#include "handlers.h"
#include "pgtest.h"

#define MAX_SAID 64
#define MAX_SAID_BUTTONS 16

/* A rule as `rivet rule add` stores it. */
#define SPINDLE_RULE                                                                               \
    "{\"name\": \"Spindle overheating\", \"severity\": \"critical\", "                             \
    "\"condition\": {\"operator\": \"AND\", \"conditions\": ["                                     \
    "{\"parameter\": \"spindle_temp\", \"operator\": \"gt\", \"threshold\": 80}, "                 \
    "{\"parameter\": \"coolant_flow\", \"operator\": \"lt\", \"threshold\": 5}]}}"
#define PUMP_RULE                                                                                  \
    "{\"name\": \"Pump dry run\", \"severity\": \"high\", "                                        \
    "\"condition\": {\"parameter\": \"pump_current\", \"operator\": \"lt\", \"threshold\": 2}}"

/* ---- the fixture: a fresh database per test ---- */

struct fixture {
    struct pgtest_db d;
    PGconn *c;
    struct db *db;
    struct arena *a;
    int64_t alpha, beta;
    int64_t alice, sam, tom, bob;  /* alpha: technician, supervisor, technician; beta */
    int64_t press, pump, beta_dev; /* devices: press-3 and pump-1 (alpha), press-3 (beta) */
    int64_t spindle, dry;          /* alpha's rules */
    const char *eq;                /* alpha's machine "Press 3" */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct device dev;

    assert_non_null(f);
    pgtest_db_create(&f->d);
    f->db = pgtest_connect(&f->d);
    f->c = pgtest_pq(&f->d);
    assert_int_equal(arena_new(&f->a), 0);
    pgtest_migrate(f->db);
    f->alpha = pgtest_factory(f->db, f->a, "Plant Alpha");
    f->beta = pgtest_factory(f->db, f->a, "Plant Beta");
    f->alice = pgtest_user(f->db, f->a, f->alpha, "alice", "Alice", "technician");
    f->sam = pgtest_user(f->db, f->a, f->alpha, "sam", "Sam", "supervisor");
    f->tom = pgtest_user(f->db, f->a, f->alpha, "tom", "Tom", "technician");
    f->bob = pgtest_user(f->db, f->a, f->beta, "bob", "Bob", "technician");
    pgtest_equipment(f->db, f->a, f->alpha, f->alice, "Haas", "VF-2", "Press 3", NULL, "Line 1",
                     &f->eq);
    assert_int_equal(db_device_register(f->db, f->a, f->alpha, "press-3", 100, &dev), 0);
    f->press = dev.id;
    assert_int_equal(db_device_register(f->db, f->a, f->alpha, "pump-1", 100, &dev), 0);
    f->pump = dev.id;
    assert_int_equal(db_device_register(f->db, f->a, f->beta, "press-3", 100, &dev), 0);
    f->beta_dev = dev.id;
    assert_int_equal(db_rule_save(f->db, f->alpha, "Spindle overheating", "critical", SPINDLE_RULE,
                                  false, &f->spindle),
                     0);
    assert_int_equal(
        db_rule_save(f->db, f->alpha, "Pump dry run", "high", PUMP_RULE, false, &f->dry), 0);
    assert_int_equal(db_rule_set_active(f->db, f->alpha, f->dry, false), 0);
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

/* v as text, from one of a few rotating buffers. */
static const char *s64(int64_t v)
{
    static char buf[8][24];
    static unsigned k;
    char *b = buf[k++ % 8];

    snprintf(b, sizeof(buf[0]), "%" PRId64, v);
    return b;
}

/* ---- alarms and their deliveries ---- */

static double observed = 1771497000; /* 2026-02-19 10:30 UTC; each alarm a minute later */

static int64_t rule_alarm(struct fixture *f, int64_t factory, int64_t device, int64_t rule,
                          const char *severity, const char *message)
{
    struct alarm_new n = {.factory_id = factory,
                          .device_id = device,
                          .rule_id = rule,
                          .source = ALARM_RULE,
                          .severity = severity,
                          .message = message,
                          .observed_at = observed += 60,
                          .cooldown_s = 0};
    int64_t id;
    int r = db_alarm_raise(f->db, &n, &id);

    if (r < 0)
        fail_msg("db_alarm_raise: %s (%s)", strerror(-r), db_errmsg(f->db));
    return id;
}

static int64_t device_alarm(struct fixture *f, int64_t factory, int64_t device,
                            enum alarm_source src, const char *code, const char *severity,
                            const char *message)
{
    struct alarm_new n = {.factory_id = factory,
                          .device_id = device,
                          .source = src,
                          .code = code,
                          .severity = severity,
                          .message = message,
                          .observed_at = observed += 60};
    int64_t id;
    int r = db_alarm_raise(f->db, &n, &id);

    if (r < 0)
        fail_msg("db_alarm_raise: %s (%s)", strerror(-r), db_errmsg(f->db));
    return id;
}

/* An outbox row, as the alert thread queued the alarm's message to a chat. */
static int64_t outbox_row(struct fixture *f, const char *channel, const char *chat)
{
    return pgtest_qint(f->c,
                       "INSERT INTO outbox (channel, chat_id, method, payload) "
                       "VALUES ($1, $2, 'sendMessage', '{}') RETURNING id",
                       channel, chat, NULL);
}

/* The alarm delivered to user in chat; returns its outbox id (0: held). */
static int64_t deliver(struct fixture *f, int64_t alarm, int64_t user, const char *kind,
                       const char *channel, const char *chat, bool held)
{
    int64_t ob = held ? 0 : outbox_row(f, channel, chat);
    int r = db_alarm_delivery_add(f->db, f->alpha, alarm, user, kind, channel, chat,
                                  held ? "held" : "queued", ob);

    if (r < 0)
        fail_msg("db_alarm_delivery_add: %s (%s)", strerror(-r), db_errmsg(f->db));
    return ob;
}

static char *alarm_col(struct fixture *f, int64_t id, const char *expr)
{
    char sql[256];

    snprintf(sql, sizeof(sql), "SELECT (%s)::text FROM alarms WHERE id = $1", expr);
    return pgtest_qstr(f->c, sql, s64(id), NULL);
}

/* Frees got, also when it fails. */
static void assert_str(char *got, const char *want, const char *what)
{
    static char msg[1024];
    bool ok = (!want && !got) || (want && got && strcmp(got, want) == 0);

    if (!ok)
        snprintf(msg, sizeof(msg), "%s: expected %s, got %s", what, want ? want : "NULL",
                 got ? got : "NULL");
    free(got);
    if (!ok)
        fail_msg("%s", msg);
}

/* ---- what a conversation step said, reply by reply ---- */

struct said_reply {
    char *text;
    char *chat_id; /* NULL: this conversation */
    enum channel channel;
    int64_t edit_outbox;
    int n_buttons;
    char data[MAX_SAID_BUTTONS][BUTTON_DATA_MAX + 1];
};

struct said {
    int n;
    struct said_reply r[MAX_SAID];
    int n_here; /* replies to the conversation itself */
};

static struct said said;

static void said_free(void)
{
    for (int i = 0; i < said.n; i++) {
        free(said.r[i].text);
        free(said.r[i].chat_id);
    }
    memset(&said, 0, sizeof(said));
}

static int said_teardown(void **state)
{
    said_free();
    return teardown(state);
}

/* Sends text as console user sender in one transaction, as `rivet chat`
 * does, and keeps every reply with where it goes. */
static const struct said *say(struct fixture *f, const char *sender, const char *text)
{
    struct msg m = {.channel = CHANNEL_CONSOLE,
                    .sender_id = sender,
                    .sender_name = sender,
                    .text = text,
                    .text_len = strlen(text)};
    struct arena *a = NULL;
    struct replies out;
    int r;

    said_free();
    assert_int_equal(arena_new(&a), 0);
    replies_init(&out);
    r = pgtest_handle(f->db, a, &m, &out);
    for (struct reply *rep = out.head; rep && said.n < MAX_SAID; rep = rep->next) {
        struct said_reply *s = &said.r[said.n++];

        s->text = strdup(rep->text);
        s->chat_id = rep->chat_id ? strdup(rep->chat_id) : NULL;
        s->channel = rep->channel;
        s->edit_outbox = rep->edit_outbox;
        if (!rep->chat_id)
            said.n_here++;
        for (int i = 0; i < rep->n_buttons && i < MAX_SAID_BUTTONS; i++) {
            snprintf(s->data[i], sizeof(s->data[0]), "%s", rep->buttons[i].data);
            s->n_buttons++;
        }
    }
    arena_free(a);
    if (r < 0)
        fail_msg("handle_message from %s: %s (%s)", sender, strerror(-r), db_errmsg(f->db));
    return &said;
}

static const char *sayf(struct fixture *f, const char *sender, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The first reply's text of a formatted message. */
static const char *sayf(struct fixture *f, const char *sender, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    say(f, sender, text);
    assert_true(said.n > 0);
    return said.r[0].text;
}

static bool has_button(const struct said_reply *r, const char *data)
{
    for (int i = 0; i < r->n_buttons; i++)
        if (strcmp(r->data[i], data) == 0)
            return true;
    return false;
}

static void assert_button(const struct said_reply *r, const char *data)
{
    if (!has_button(r, data)) {
        for (int i = 0; i < r->n_buttons; i++)
            fprintf(stderr, "#   button -> %s\n", r->data[i]);
        fail_msg("expected a button \"%s\" under:\n%s", data, r->text);
    }
}

static void assert_no_button(const struct said_reply *r, const char *prefix)
{
    for (int i = 0; i < r->n_buttons; i++)
        if (strncmp(r->data[i], prefix, strlen(prefix)) == 0)
            fail_msg("did not expect a button \"%s…\" under:\n%s", prefix, r->text);
}

static const char *cmdf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A formatted string from one of a few rotating buffers. */
static const char *cmdf(const char *fmt, ...)
{
    static char buf[4][256];
    static unsigned k;
    char *b = buf[k++ % 4];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(b, sizeof(buf[0]), fmt, ap);
    va_end(ap);
    return b;
}

/* The edit reply for outbox row ob, or fails. */
static const struct said_reply *edit_for(int64_t ob)
{
    for (int i = 0; i < said.n; i++)
        if (said.r[i].chat_id && said.r[i].edit_outbox == ob)
            return &said.r[i];
    fail_msg("no reply edits outbox row %lld", (long long)ob);
    return NULL;
}

/* ---- 1. acknowledging edits every copy, once ---- */

static void test_ack_edits_every_copy(void **state)
{
    struct fixture *f = *state;
    const struct said_reply *e;
    int64_t id, ob_alice, ob_sam, ob_esc, ob_wa;

    assert_int_equal(db_device_link(f->db, f->alpha, "press-3",
                                    pgtest_qint(f->c, "SELECT id FROM equipment WHERE number = $1",
                                                f->eq, NULL)),
                     0);
    id = rule_alarm(f, f->alpha, f->press, f->spindle, "critical",
                    "spindle_temp 82.5 > 80 AND coolant_flow 3.2 < 5");
    ob_alice = deliver(f, id, f->alice, "alarm", "telegram", "1001", false);
    ob_sam = deliver(f, id, f->sam, "alarm", "telegram", "2002", false);
    ob_esc = deliver(f, id, f->sam, "escalation", "telegram", "2002", false);
    ob_wa = deliver(f, id, f->tom, "alarm", "whatsapp", "4915100000", false);
    /* Tom's held copy went out in a storm summary: nothing of its own to edit. */
    {
        int64_t other = rule_alarm(f, f->alpha, f->pump, f->dry, "high", "pump_current 1.2 < 2");
        deliver(f, other, f->tom, "alarm", "telegram", "3003", true);
    }

    say(f, "alice", cmdf("/ack %lld", (long long)id));
    assert_int_equal(said.n_here, 1);
    assert_string_equal(said.r[0].text, cmdf("✅ Alarm #%lld acknowledged.", (long long)id));
    assert_null(said.r[0].chat_id);
    assert_int_equal(said.r[0].edit_outbox, 0);
    assert_int_equal(said.n, 5);

    e = edit_for(ob_alice);
    assert_string_equal(e->chat_id, "1001");
    assert_int_equal(e->channel, CHANNEL_TELEGRAM);
    pgtest_assert_starts_with(e->text, cmdf("🔴 CRITICAL · alarm #%lld\n", (long long)id));
    pgtest_assert_contains(e->text, cmdf("\nPress 3 · %s (device press-3)\n", f->eq));
    pgtest_assert_contains(e->text, "\nspindle_temp 82.5 > 80 AND coolant_flow 3.2 < 5\n");
    pgtest_assert_contains(e->text, "\nRule: Spindle overheating · 2026-02-19 10:");
    pgtest_assert_contains(e->text, "\n✅ Acknowledged by Alice ");
    /* What is left to do: resolve it, open a work order. */
    assert_button(e, cmdf("/resolve %lld", (long long)id));
    assert_button(e, cmdf("/wo alarm %lld", (long long)id));
    assert_no_button(e, "/ack");
    assert_no_button(e, "/mute");

    e = edit_for(ob_sam);
    assert_string_equal(e->chat_id, "2002");
    pgtest_assert_starts_with(e->text, "🔴 CRITICAL");
    e = edit_for(ob_esc);
    assert_string_equal(e->chat_id, "2002");
    pgtest_assert_starts_with(e->text, "⏫ ");
    pgtest_assert_contains(e->text, "✅ Acknowledged by Alice ");
    e = edit_for(ob_wa);
    assert_string_equal(e->chat_id, "4915100000");
    assert_int_equal(e->channel, CHANNEL_WHATSAPP);

    assert_str(alarm_col(f, id, "acknowledged_by"), s64(f->alice), "acknowledged_by");
    assert_str(alarm_col(f, id, "resolved_at IS NULL"), "true", "not resolved");

    /* The second press says who was first, and edits nothing. */
    say(f, "sam", cmdf("/ack #%lld", (long long)id));
    assert_int_equal(said.n, 1);
    pgtest_assert_starts_with(
        said.r[0].text, cmdf("Alarm #%lld was already acknowledged by Alice at ", (long long)id));
    assert_str(alarm_col(f, id, "acknowledged_by"), s64(f->alice), "still Alice's");
}

/* ---- 2. resolving ---- */

static void test_resolve(void **state)
{
    struct fixture *f = *state;
    const struct said_reply *e;
    int64_t id, ob;

    id = device_alarm(f, f->alpha, f->press, ALARM_DEVICE, "F0021", "high", "Spindle drive fault");
    ob = deliver(f, id, f->alice, "alarm", "telegram", "1001", false);

    /* Resolving an alarm nobody acknowledged acknowledges it too. */
    say(f, "sam", cmdf("/resolve %lld", (long long)id));
    assert_int_equal(said.n, 2);
    assert_string_equal(said.r[0].text, cmdf("☑️ Alarm #%lld resolved.", (long long)id));
    e = edit_for(ob);
    pgtest_assert_starts_with(e->text, cmdf("🟠 HIGH · alarm #%lld\n", (long long)id));
    pgtest_assert_contains(e->text, "\nCode F0021 · Spindle drive fault\n");
    pgtest_assert_contains(e->text, "\n✅ Acknowledged by Sam ");
    pgtest_assert_contains(e->text, "\n☑️ Resolved by Sam ");
    /* Nothing left to press on a resolved alarm without a work order. */
    assert_int_equal(e->n_buttons, 0);
    assert_str(alarm_col(f, id, "resolved_by"), s64(f->sam), "resolved_by");

    pgtest_assert_starts_with(sayf(f, "alice", "/resolve %lld", (long long)id),
                              cmdf("Alarm #%lld is already resolved (by Sam at ", (long long)id));
    assert_int_equal(said.n, 1);
    pgtest_assert_starts_with(sayf(f, "alice", "/ack %lld", (long long)id),
                              cmdf("Alarm #%lld is already resolved (by Sam at ", (long long)id));
    assert_int_equal(said.n, 1);
}

/* ---- 3. other factories, unknown ids, input that looks like SQL ---- */

static void test_other_factory_and_bad_ids(void **state)
{
    struct fixture *f = *state;
    struct pgtest_snap snap;
    int64_t id;
    char *before, *after;

    id = rule_alarm(f, f->alpha, f->press, f->spindle, "critical", "spindle_temp 90 > 80");
    deliver(f, id, f->alice, "alarm", "telegram", "1001", false);
    before =
        pgtest_qstr(f->c, "SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM alarms x", NULL);
    pgtest_snap_take(f->c, &snap);

    /* Bob of Plant Beta: alpha's alarm is as unknown as one that never was. */
    const char *no = cmdf("No alarm #%lld.", (long long)id);
    assert_string_equal(sayf(f, "bob", "/ack %lld", (long long)id), no);
    assert_int_equal(said.n, 1);
    assert_string_equal(sayf(f, "bob", "/resolve %lld", (long long)id), no);
    assert_string_equal(sayf(f, "bob", "/alerts #%lld", (long long)id), no);
    assert_string_equal(sayf(f, "bob", "/alerts view %lld", (long long)id), no);
    assert_string_equal(sayf(f, "bob", "/wo alarm %lld", (long long)id), no);
    assert_string_equal(sayf(f, "bob", "/mute #%lld 1h", (long long)id), no);
    assert_string_equal(sayf(f, "bob", "/alerts"), "No open alarms. 🎉");
    assert_string_equal(sayf(f, "alice", "/ack 999999"), "No alarm #999999.");
    assert_string_equal(sayf(f, "alice", "/ack #999999999999999"), "No alarm #999999999999999.");

    pgtest_assert_starts_with(sayf(f, "alice", "/ack 1; DROP TABLE alarms"),
                              "\"1;\" is not an alarm number");
    pgtest_assert_contains(said.r[0].text, "Nothing was changed.");
    pgtest_assert_starts_with(sayf(f, "alice", "/ack ' OR 1=1 --"), "\"'\" is not an alarm number");
    pgtest_assert_starts_with(sayf(f, "alice", "/resolve -1"), "\"-1\" is not an alarm number");
    pgtest_assert_starts_with(sayf(f, "alice", "/ack 0x10"), "\"0x10\" is not an alarm number");
    assert_string_equal(sayf(f, "alice", "/ack"), "Usage: /ack ID");
    assert_string_equal(sayf(f, "alice", "/ack %lld please", (long long)id), "Usage: /ack ID");
    assert_string_equal(sayf(f, "alice", "/unsubscribe press-9; DROP TABLE devices"),
                        "No device press-9;. Nothing was changed.");

    pgtest_assert_unchanged(f->c, &snap, "foreign and bad alarm ids");
    pgtest_snap_free(&snap);
    after =
        pgtest_qstr(f->c, "SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM alarms x", NULL);
    assert_string_equal(before, after);
    free(before);
    free(after);
    assert_int_equal(pgtest_qint(f->c, "SELECT count(*) FROM alarm_subscriptions", NULL), 0);
    assert_int_equal(pgtest_qint(f->c, "SELECT count(*) FROM alarm_mutes", NULL), 0);
}

/* ---- 4. a work order from an alarm ---- */

static void test_wo_alarm(void **state)
{
    struct fixture *f = *state;
    const struct said_reply *e;
    int64_t id, ob;
    char *wo;
    char view[64], line[64];

    id = rule_alarm(f, f->alpha, f->press, f->spindle, "critical",
                    "spindle_temp 82.5 > 80 AND coolant_flow 3.2 < 5");
    ob = deliver(f, id, f->alice, "alarm", "telegram", "1001", false);

    /* The device watches no machine yet: Rivet says how to link it (a
     * technician asks a supervisor, who may). */
    assert_string_equal(sayf(f, "alice", "/wo alarm %lld", (long long)id),
                        "Device press-3 is not linked to a machine. Ask a supervisor to link it "
                        "(/equip edit EQ-NUMBER device=press-3), then press Work order again.");
    assert_string_equal(sayf(f, "sam", "/wo alarm %lld", (long long)id),
                        "Device press-3 is not linked to a machine. Link it with /equip edit "
                        "EQ-NUMBER device=press-3, then press Work order again.");
    assert_int_equal(pgtest_qint(f->c, "SELECT count(*) FROM work_orders", NULL), 0);

    /* An unknown device changes nothing, not even the other fields. */
    assert_string_equal(sayf(f, "sam", "/equip edit %s location=Line 9 device=press-9", f->eq),
                        "No device press-9 in your factory. Nothing was changed.");
    assert_int_equal(
        pgtest_qint(f->c, "SELECT count(*) FROM equipment WHERE location = 'Line 9'", NULL), 0);
    /* Beta's press-3 is not alpha's to link. */
    assert_int_equal(
        pgtest_qint(f->c, "SELECT count(*) FROM devices WHERE equipment_id IS NOT NULL", NULL), 0);

    pgtest_assert_starts_with(sayf(f, "sam", "/equip edit %s device=press-3", f->eq),
                              "📡 Device press-3 now reports for ");
    assert_int_equal(said.n, 2);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM devices WHERE factory_id = $1 AND key = "
                                 "'press-3' AND equipment_id IS NOT NULL",
                                 s64(f->alpha), NULL),
                     1);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM devices WHERE factory_id = $1 AND "
                                 "equipment_id IS NOT NULL",
                                 s64(f->beta), NULL),
                     0);

    say(f, "alice", cmdf("/wo alarm %lld", (long long)id));
    pgtest_assert_starts_with(said.r[0].text, "✅ Opened 🔴 WO-");
    pgtest_assert_contains(said.r[0].text,
                           cmdf(" critical · Alarm #%lld: spindle_temp 82.5 > 80 AND "
                                "coolant_flow 3.2 < 5\n",
                                (long long)id));
    wo = alarm_col(f, id, "(SELECT number FROM work_orders w WHERE w.id = work_order_id)");
    assert_non_null(wo);
    snprintf(view, sizeof(view), "/wo view %s", wo);
    assert_button(&said.r[0], view);
    assert_str(pgtest_qstr(f->c, "SELECT priority FROM work_orders WHERE number = $1", wo, NULL),
               "critical", "priority = severity");
    assert_str(pgtest_qstr(f->c,
                           "SELECT e.number FROM work_orders w JOIN equipment e ON e.id = "
                           "w.equipment_id WHERE w.number = $1",
                           wo, NULL),
               f->eq, "on the linked machine");
    /* Every copy shows the work order instead of the button that opened it. */
    e = edit_for(ob);
    snprintf(line, sizeof(line), "\n🛠 %s", wo);
    pgtest_assert_contains(e->text, line);
    assert_button(e, view);
    assert_no_button(e, "/wo alarm");
    assert_button(e, cmdf("/ack %lld", (long long)id));

    /* Pressed again: the work order it has. */
    say(f, "sam", cmdf("/wo alarm %lld", (long long)id));
    assert_int_equal(said.n, 1);
    pgtest_assert_starts_with(said.r[0].text,
                              cmdf("Alarm #%lld already has work order WO-", (long long)id));
    assert_button(&said.r[0], view);
    assert_int_equal(pgtest_qint(f->c, "SELECT count(*) FROM work_orders", NULL), 1);

    /* device=- unlinks. */
    pgtest_assert_starts_with(sayf(f, "sam", "/equip edit %s device=-", f->eq), "📡 Unlinked from ");
    pgtest_assert_contains(said.r[0].text, ": press-3.");
    assert_int_equal(
        pgtest_qint(f->c, "SELECT count(*) FROM devices WHERE equipment_id IS NOT NULL", NULL), 0);
    free(wo);
}

/* ---- 5. the alert thread's messages ---- */

static void test_alarm_reply_and_storm(void **state)
{
    struct fixture *f = *state;
    struct alarm *v;
    struct reply out;
    int64_t id, off;
    int n;
    char want[128];

    id = rule_alarm(f, f->alpha, f->press, f->spindle, "critical", "spindle_temp 90 > 80");
    assert_int_equal(alarm_reply(f->db, f->a, f->alpha, id, false, &out), 0);
    pgtest_assert_starts_with(out.text, cmdf("🔴 CRITICAL · alarm #%lld\n", (long long)id));
    pgtest_assert_contains(out.text, "\nDevice press-3 · not linked to a machine\n");
    assert_null(out.chat_id);
    assert_int_equal(out.edit_outbox, 0);
    assert_int_equal(out.n_buttons, 3);
    assert_string_equal(out.buttons[0].data, cmdf("/ack %lld", (long long)id));
    assert_string_equal(out.buttons[1].data, cmdf("/wo alarm %lld", (long long)id));
    assert_string_equal(out.buttons[2].data, cmdf("/mute #%lld 1h", (long long)id));
    assert_string_equal(out.buttons[0].text, "✅ Acknowledge");
    assert_string_equal(out.buttons[1].text, "🛠 Work order");
    assert_string_equal(out.buttons[2].text, "🔕 Mute 1h");
    for (int i = 0; i < out.n_buttons; i++)
        assert_true(strlen(out.buttons[i].data) <= BUTTON_DATA_MAX);

    assert_int_equal(alarm_reply(f->db, f->a, f->alpha, id, true, &out), 0);
    snprintf(want, sizeof(want), "⏫ Not acknowledged since 10:");
    pgtest_assert_starts_with(out.text, want);
    /* Another factory's alarm is not found. */
    assert_int_equal(alarm_reply(f->db, f->a, f->beta, id, false, &out), -ENOENT);

    /* An offline alarm that came back on its own. */
    off = device_alarm(f, f->alpha, f->pump, ALARM_OFFLINE, NULL, "high", "No data for 10 min");
    PQclear(pgtest_q(f->c, "UPDATE alarms SET resolved_at = now() WHERE id = $1", s64(off), NULL));
    assert_int_equal(alarm_reply(f->db, f->a, f->alpha, off, false, &out), 0);
    pgtest_assert_contains(out.text, "\nNo data for 10 min\n");
    pgtest_assert_contains(out.text, "\n☑️ Resolved: back online ");
    assert_int_equal(out.n_buttons, 0);

    /* A storm: 2 critical and 5 high in one message. */
    for (int i = 0; i < 6; i++)
        rule_alarm(f, f->alpha, f->pump, f->dry, i < 5 ? "high" : "critical", "pump_current 1 < 2");
    assert_int_equal(db_alarm_list(f->db, f->a, f->alpha, true, 0, 10, &v, &n, &(int){0}), 0);
    assert_int_equal(n, 7);
    assert_int_equal(alarm_storm_reply(f->a, v, n, &out), 0);
    pgtest_assert_starts_with(
        out.text, "🚨 7 alarms in the last seconds: 🔴 2 critical · 🟠 5 high\n");
    pgtest_assert_contains(out.text, "\n… and 2 more");
    assert_int_equal(out.n_buttons, 1);
    assert_string_equal(out.buttons[0].data, "/alerts");
    assert_string_equal(out.buttons[0].text, "📋 Open alarms");
}

/* ---- 6. the list ---- */

static void test_alerts_list(void **state)
{
    struct fixture *f = *state;
    int64_t ids[12];
    const struct said_reply *r;

    for (int i = 0; i < 12; i++)
        ids[i] = rule_alarm(f, f->alpha, f->press, f->spindle, i % 2 ? "critical" : "low",
                            "spindle_temp 90 > 80");
    say(f, "sam", cmdf("/ack %lld", (long long)ids[11]));
    /* A resolved alarm is not open. */
    say(f, "sam", cmdf("/resolve %lld", (long long)ids[0]));

    say(f, "alice", "/alerts");
    assert_int_equal(said.n, 1);
    r = &said.r[0];
    pgtest_assert_starts_with(r->text, "🚨 Open alarms (11) · page 1 of 2\n");
    pgtest_assert_contains(r->text, cmdf("\n🔴 #%lld press-3 · spindle_temp 90 > 80 · 2026-02-19 ",
                                         (long long)ids[11]));
    pgtest_assert_contains(r->text, " · ✅ Sam\n");
    pgtest_assert_contains(r->text, "Next: /alerts 2");
    /* The newest first; acknowledged alarms have no ✅ button. */
    assert_no_button(r, cmdf("/ack %lld", (long long)ids[11]));
    assert_button(r, cmdf("/ack %lld", (long long)ids[10]));
    assert_button(r, cmdf("/ack %lld", (long long)ids[2]));
    assert_no_button(r, cmdf("/ack %lld", (long long)ids[1]));
    assert_button(r, "~/alerts 2");
    assert_int_equal(r->n_buttons, 10);

    say(f, "alice", "/alerts 2");
    pgtest_assert_starts_with(said.r[0].text, "🚨 Open alarms (11) · page 2 of 2\n");
    assert_button(&said.r[0], cmdf("/ack %lld", (long long)ids[1]));
    assert_button(&said.r[0], "~/alerts 1");
    assert_string_equal(sayf(f, "alice", "/alerts 3"), "There is no page 3; the list has 2 pages.");

    /* One alarm by #ID, and its card. */
    say(f, "alice", cmdf("/alerts #%lld", (long long)ids[9]));
    pgtest_assert_starts_with(said.r[0].text,
                              cmdf("🔴 CRITICAL · alarm #%lld\n", (long long)ids[9]));
    assert_button(&said.r[0], cmdf("/ack %lld", (long long)ids[9]));
    say(f, "alice", cmdf("/alerts view %lld", (long long)ids[10]));
    pgtest_assert_starts_with(said.r[0].text, cmdf("🔵 LOW · alarm #%lld\n", (long long)ids[10]));
    assert_string_equal(sayf(f, "alice", "/alerts bogus"), "Usage: /alerts [PAGE]");

    /* /stats counts the open ones by severity. */
    say(f, "alice", "/stats");
    pgtest_assert_contains(
        said.r[0].text,
        "\n🚨 Alarms open: 🔴 6 critical · 🟠 0 high · 🟡 0 medium · 🔵 5 low");
    say(f, "bob", "/stats");
    pgtest_assert_contains(said.r[0].text, "\n🚨 No open alarms");
}

/* ---- 7. subscriptions and mutes ---- */

static void test_subscribe_and_mute(void **state)
{
    struct fixture *f = *state;
    int64_t id;

    say(f, "alice", "/subscribe");
    pgtest_assert_contains(said.r[0].text, "Every device: high and critical alarms (the default)");

    assert_string_equal(sayf(f, "alice", "/subscribe high"),
                        "🔔 You will get high and critical alarms from every device.");
    assert_string_equal(sayf(f, "alice", "/subscribe press-3"),
                        "🔔 You will get all alarms from press-3.");
    assert_string_equal(sayf(f, "alice", "/subscribe crit press-3 pump-1"),
                        "🔔 You will get critical alarms from press-3 and pump-1.");
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM alarm_subscriptions WHERE user_id = $1 AND "
                                 "min_severity = 'critical'",
                                 s64(f->alice), NULL),
                     2);
    /* All names are checked before any is changed. */
    assert_string_equal(sayf(f, "alice", "/subscribe low press-3 press-9"),
                        "No device press-9. Nothing was changed.");
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM alarm_subscriptions WHERE user_id = $1 AND "
                                 "min_severity = 'low'",
                                 s64(f->alice), NULL),
                     0);
    say(f, "alice", "/subscribe");
    pgtest_assert_contains(said.r[0].text, "\nEvery device: high and critical alarms\n");
    pgtest_assert_contains(said.r[0].text, "\npress-3: critical alarms\n");

    assert_string_equal(sayf(f, "alice", "/unsubscribe pump-1"),
                        "🔕 You will get no alarms from pump-1. Back on: /subscribe high pump-1.");
    assert_str(pgtest_qstr(f->c,
                           "SELECT min_severity FROM alarm_subscriptions WHERE user_id = $1 AND "
                           "device_id = $2",
                           s64(f->alice), s64(f->pump), NULL),
               "off", "pump-1 off");
    pgtest_assert_starts_with(sayf(f, "alice", "/unsubscribe"), "🔕 You will get no alarms.");
    /* Every device off clears the per-device rows. */
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM alarm_subscriptions WHERE user_id = $1",
                                 s64(f->alice), NULL),
                     1);
    pgtest_assert_contains(sayf(f, "sam", "/unsubscribe all"), "still reach supervisors");

    /* Mutes: a device, an alarm's device, all; off again. */
    pgtest_assert_starts_with(sayf(f, "alice", "/mute press-3 1h"), "🔕 press-3 muted until ");
    assert_int_equal(strlen(said.r[0].text), strlen("🔕 press-3 muted until HH:MM. Unmute: "
                                                    "/mute press-3 off"));
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM alarm_mutes WHERE user_id = $1 AND "
                                 "device_id = $2 AND until BETWEEN now() + interval '59 min' "
                                 "AND now() + interval '61 min'",
                                 s64(f->alice), s64(f->press), NULL),
                     1);
    id = rule_alarm(f, f->alpha, f->pump, f->dry, "high", "pump_current 1 < 2");
    pgtest_assert_starts_with(sayf(f, "alice", "/mute #%lld 2d", (long long)id),
                              "🔕 pump-1 muted until 20");
    pgtest_assert_starts_with(sayf(f, "alice", "/mute all 30m"), "🔕 All devices muted until ");
    assert_int_equal(
        pgtest_qint(f->c,
                    "SELECT count(*) FROM alarm_mutes WHERE user_id = $1 AND device_id IS NULL",
                    s64(f->alice), NULL),
        1);
    say(f, "alice", "/subscribe");
    pgtest_assert_contains(said.r[0].text, "\n🔕 press-3 muted until ");
    pgtest_assert_contains(said.r[0].text, "\n🔕 All devices muted until ");
    /* Unmuting one device says that the mute of all still holds. */
    pgtest_assert_starts_with(sayf(f, "alice", "/mute press-3 off"),
                              "🔔 press-3 unmuted, but all devices stay muted until ");
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM alarm_mutes WHERE user_id = $1 AND "
                                 "device_id = $2 AND until > now()",
                                 s64(f->alice), s64(f->press), NULL),
                     0);
    /* Nothing to lift is said, and nothing changes. */
    assert_string_equal(sayf(f, "alice", "/mute press-3 off"), "press-3 was not muted.");
    /* Durations: a unit, 1m to 30d. */
    pgtest_assert_starts_with(sayf(f, "alice", "/mute press-3 45"), "\"45\" is not a duration");
    pgtest_assert_starts_with(sayf(f, "alice", "/mute press-3 31d"), "\"31d\" is not a duration");
    pgtest_assert_starts_with(sayf(f, "alice", "/mute press-3 30s"), "\"30s\" is not a duration");
    assert_string_equal(sayf(f, "alice", "/mute press-9 1h"),
                        "No device press-9. Nothing was changed.");
    assert_string_equal(sayf(f, "alice", "/mute press-3"),
                        "Usage: /mute DEVICE|all|#ALARM DURATION|off");
    /* Bob's press-3 is his factory's, not alpha's. */
    pgtest_assert_starts_with(sayf(f, "bob", "/mute press-3 1h"), "🔕 press-3 muted until ");
    assert_int_equal(
        pgtest_qint(f->c, "SELECT count(*) FROM alarm_mutes WHERE user_id = $1 AND device_id = $2",
                    s64(f->bob), s64(f->beta_dev), NULL),
        1);
}

/* ---- 8. rules ---- */

static void test_rules(void **state)
{
    struct fixture *f = *state;

    assert_string_equal(sayf(f, "alice", "/rules"),
                        "Only supervisors and admins can see the alert rules.");
    say(f, "sam", "/rules");
    pgtest_assert_starts_with(said.r[0].text, "📏 Alert rules (2, 1 active)\n");
    pgtest_assert_contains(said.r[0].text, "\n○ 🟠 high · Pump dry run\n  pump_current < 2");
    pgtest_assert_contains(said.r[0].text, "\n● 🔴 critical · Spindle overheating\n  spindle_temp");
    assert_string_equal(sayf(f, "bob", "/rules"),
                        "Only supervisors and admins can see the alert rules.");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ack_edits_every_copy, setup, said_teardown),
        cmocka_unit_test_setup_teardown(test_resolve, setup, said_teardown),
        cmocka_unit_test_setup_teardown(test_other_factory_and_bad_ids, setup, said_teardown),
        cmocka_unit_test_setup_teardown(test_wo_alarm, setup, said_teardown),
        cmocka_unit_test_setup_teardown(test_alarm_reply_and_storm, setup, said_teardown),
        cmocka_unit_test_setup_teardown(test_alerts_list, setup, said_teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_and_mute, setup, said_teardown),
        cmocka_unit_test_setup_teardown(test_rules, setup, said_teardown),
    };
    int status;

    if (!pgtest_init(&status))
        return status;
    return cmocka_run_group_tests_name("integration-alerts-chat", tests, NULL, NULL);
}
