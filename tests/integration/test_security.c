/* What docs/SECURITY.md promises about who may do what, checked through
 * handle_message() against PostgreSQL:
 *
 *  - the role matrix: every command and subcommand (and the forms whose
 *    role depends on their words) sent by a technician, a supervisor and an
 *    admin, each in a fresh plant; a refused one names the role it takes
 *    and leaves every table as it was; no technician is shown a button
 *    that would be refused;
 *  - strangers, on the console, Telegram and WhatsApp, get the access
 *    explanation for every command and every button payload, and nothing
 *    changes;
 *  - another factory's equipment, work orders, alarms, rules, devices,
 *    photo reads, work order photos and proposals, named in every command
 *    and as a reply's context, are answered exactly as in a database where
 *    they do not exist at all (two databases, the same plant, one with a
 *    second factory), and nothing changes;
 *  - invite codes: their shape and spread, one factory each, and at most 5
 *    failed /start CODE per sender in 15 minutes, counted in the database;
 *  - buttons pressed twice, on closed, deleted or expired objects, and
 *    garbage: answered, nothing changed.
 *
 * "Nothing changed" is a checksum of every row of every table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarm.h"
#include "arena.h"
#include "handlers.h"
#include "pgtest.h"
#include "plain.h"

#define NOT_REGISTERED                                                                             \
    "Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:\n"    \
    "/start CODE"
#define BAD_INVITE "That invite code is not valid: it may be mistyped, used up or expired."
#define TOO_MANY_INVITES "Too many invite codes tried from here."
#define ONLY_SUPERVISORS "Only supervisors and admins can "

#define SPINDLE_RULE                                                                               \
    "{\"name\": \"Spindle overheating\", \"severity\": \"critical\", "                             \
    "\"condition\": {\"parameter\": \"spindle_temp\", \"operator\": \"gt\", \"threshold\": 80}}"
#define BETA_RULE                                                                                  \
    "{\"name\": \"Beta secret rule\", \"severity\": \"high\", "                                    \
    "\"condition\": {\"parameter\": \"boiler_pressure\", \"operator\": \"gt\", \"threshold\": 9}}"

#define N_WO 8
#define N_READS 5
#define MAX_BUTTONS 512

enum { TECH, SUPER, ADMIN, N_ROLES };
static const char *const role_name[N_ROLES] = {"technician", "supervisor", "admin"};
static const char *const console_name[N_ROLES] = {"tina", "sven", "ada"};
static const char *const display_name[N_ROLES] = {"Tina Tech", "Sven Super", "Ada Admin"};

/* One plant, Alpha, always built the same way (so its ids and numbers are
 * the same in every database); Beta, another factory, only when asked. */
struct world {
    struct pgtest_db d;
    PGconn *c;
    struct db *db, *db2; /* db2: a second connection, as a second process */
    struct arena *a;
    int year;
    int64_t alpha, beta;
    int64_t user[N_ROLES], theo, bob;
    int64_t eq_id[2];
    char eq[2][32];
    int64_t wo_id[N_WO];
    char wo[N_WO][32];
    int64_t alarm[4];
    int64_t draft[N_ROLES];
    int64_t read[N_READS];
    /* Beta's, when there is a Beta: numbers Alpha does not have */
    char beq[32], bwo[32];
    int64_t balarm, bdraft, bread;
};

/* ---- building the plants ---- */

static int64_t make_wo(struct world *w, int64_t factory, int64_t user, int64_t machine,
                       const char *title, char *number, size_t n)
{
    struct work_order wo;
    int r = db_wo_create(w->db, w->a, factory, user, machine, title, NULL, &wo);

    if (r < 0)
        fail_msg("db_wo_create: %s (%s)", strerror(-r), db_errmsg(w->db));
    if (number)
        snprintf(number, n, "%s", wo.number);
    return wo.id;
}

static int64_t make_alarm(struct world *w, int64_t factory, int64_t device, int64_t rule,
                          enum alarm_source src, const char *code, const char *severity,
                          const char *message, double at)
{
    struct alarm_new n = {.factory_id = factory,
                          .device_id = device,
                          .rule_id = rule,
                          .source = src,
                          .code = code,
                          .severity = severity,
                          .message = message,
                          .observed_at = at};
    int64_t id;
    int r = db_alarm_raise(w->db, &n, &id);

    if (r < 0)
        fail_msg("db_alarm_raise: %s (%s)", strerror(-r), db_errmsg(w->db));
    return id;
}

static int64_t make_read(struct world *w, int64_t factory, int64_t user, unsigned n, const char *mf,
                         const char *model, const char *serial)
{
    struct nameplate_read_info info = {.engine = "test-ocr"};
    struct nameplate_read rd;
    char sha[65], fields[512];
    int r;

    snprintf(sha, sizeof(sha), "%064x", n);
    snprintf(fields, sizeof(fields),
             "{\"manufacturer\":{\"value\":\"%s\",\"confidence\":0.95,\"source\":\"ocr\"},"
             "\"model\":{\"value\":\"%s\",\"confidence\":0.95,\"source\":\"ocr\"},"
             "\"serial\":{\"value\":\"%s\",\"confidence\":0.95,\"source\":\"ocr\"}}",
             mf, model, serial);
    r = db_nameplate_add(w->db, w->a, factory, user, CHANNEL_TELEGRAM, sha, "tg-file-id", NULL,
                         fields, 0.95, &info, &rd);
    if (r < 0)
        fail_msg("db_nameplate_add: %s (%s)", strerror(-r), db_errmsg(w->db));
    return rd.id;
}

static void build(struct world *w, bool with_beta)
{
    struct device dev;
    int64_t press, pump, rule, boiler, beta_press, beta_rule;
    struct work_order wo;

    memset(w, 0, sizeof(*w));
    pgtest_db_create(&w->d);
    w->c = pgtest_pq(&w->d);
    {
        /* A thousand small commits: not waiting for each to reach the disk
         * changes nothing a test here looks at. */
        char sql[128];
        snprintf(sql, sizeof(sql), "ALTER DATABASE \"%s\" SET synchronous_commit = off", w->d.name);
        PQclear(pgtest_q(w->c, sql, NULL));
    }
    w->db = pgtest_connect(&w->d);
    w->db2 = pgtest_connect(&w->d);
    assert_int_equal(arena_new(&w->a), 0);
    pgtest_migrate(w->db);
    w->year = (int)pgtest_qint(w->c, "SELECT extract(year FROM now())::int", NULL);

    /* Plant Alpha: every id below is the same in every world. */
    w->alpha = pgtest_factory(w->db, w->a, "Plant Alpha");
    for (int r = 0; r < N_ROLES; r++)
        w->user[r] =
            pgtest_user(w->db, w->a, w->alpha, console_name[r], display_name[r], role_name[r]);
    w->theo = pgtest_user(w->db, w->a, w->alpha, "theo", "Theo Tech", "technician");
    {
        const char *n0, *n1;
        w->eq_id[0] = pgtest_equipment(w->db, w->a, w->alpha, w->user[ADMIN], "Siemens", "G120C",
                                       "Main drive", "XAJ123", "Line 1", &n0);
        w->eq_id[1] = pgtest_equipment(w->db, w->a, w->alpha, w->user[ADMIN], "ABB", "ACS580",
                                       "Fan drive", "ABB-77", "Paint shop", &n1);
        snprintf(w->eq[0], sizeof(w->eq[0]), "%s", n0);
        snprintf(w->eq[1], sizeof(w->eq[1]), "%s", n1);
    }
    for (int i = 0; i < N_WO; i++) {
        char title[64];
        snprintf(title, sizeof(title), "Alpha job %d", i);
        w->wo_id[i] =
            make_wo(w, w->alpha, w->user[ADMIN], w->eq_id[0], title, w->wo[i], sizeof(w->wo[i]));
    }
    /* WO 5 in progress, WO 6 completed: the targets of "open". */
    assert_int_equal(
        db_wo_set_status(w->db, w->alpha, w->wo_id[5], w->user[ADMIN], "open", "in_progress"), 0);
    assert_int_equal(
        db_wo_set_status(w->db, w->alpha, w->wo_id[6], w->user[ADMIN], "open", "completed"), 0);
    assert_int_equal(db_wo_add_photo(w->db, w->alpha, w->wo_id[0], w->user[TECH], "telegram",
                                     "tg-photo-a", NULL),
                     0);
    assert_int_equal(db_device_register(w->db, w->a, w->alpha, "press-3", 100, &dev), 0);
    press = dev.id;
    assert_int_equal(db_device_register(w->db, w->a, w->alpha, "pump-1", 100, &dev), 0);
    pump = dev.id;
    assert_int_equal(db_device_link(w->db, w->alpha, "press-3", w->eq_id[0]), 0);
    assert_int_equal(db_rule_save(w->db, w->alpha, "Spindle overheating", "critical", SPINDLE_RULE,
                                  false, &rule),
                     0);
    w->alarm[0] = make_alarm(w, w->alpha, press, rule, ALARM_RULE, NULL, "critical",
                             "spindle_temp 82.5 > 80", 1771497000);
    w->alarm[1] = make_alarm(w, w->alpha, press, 0, ALARM_DEVICE, "F0021", "high",
                             "Spindle drive fault", 1771497060);
    w->alarm[2] = make_alarm(w, w->alpha, pump, 0, ALARM_OFFLINE, NULL, "medium",
                             "No data for 10 min", 1771497120);
    w->alarm[3] = make_alarm(w, w->alpha, press, 0, ALARM_DEVICE, "F0030", "low", "Lubrication low",
                             1771497180);
    for (int r = 0; r < N_ROLES; r++)
        assert_int_equal(db_draft_add(w->db, w->alpha, w->user[r], w->eq_id[0],
                                      "Main drive leaking", "high", "the main drive is leaking",
                                      &w->draft[r]),
                         0);
    for (unsigned i = 0; i < N_READS; i++) {
        char serial[32];
        snprintf(serial, sizeof(serial), "GF-%u", 1000 + i);
        w->read[i] =
            make_read(w, w->alpha, w->user[TECH], 0xa000 + i, "Grundfos", "CR 5-10", serial);
    }
    if (!with_beta)
        return;

    /* Plant Beta: more of everything than Alpha, so that some of its
     * numbers are ones Alpha does not have. */
    w->beta = pgtest_factory(w->db, w->a, "Plant Beta");
    w->bob = pgtest_user(w->db, w->a, w->beta, "bob", "Bob Beta", "admin");
    pgtest_user(w->db, w->a, w->beta, "bertram", "Bertram Beta", "technician");
    {
        const char *n = NULL;
        int64_t e0 = pgtest_equipment(w->db, w->a, w->beta, w->bob, "Grundfos", "CR 10-4",
                                      "Boiler feed pump", "BETA-SN-1", "Boiler house", NULL);
        pgtest_equipment(w->db, w->a, w->beta, w->bob, "KSB", "Etanorm", "Cooling water pump",
                         "BETA-SN-2", "Cooling tower", NULL);
        pgtest_equipment(w->db, w->a, w->beta, w->bob, "Yaskawa", "GA700", "Mixer drive",
                         "BETA-SN-3", "Batch room", &n);
        snprintf(w->beq, sizeof(w->beq), "%s", n);
        for (int i = 0; i < N_WO + 2; i++)
            make_wo(w, w->beta, w->bob, e0, "Beta secret job", w->bwo, sizeof(w->bwo));
        assert_int_equal(
            db_wo_create(w->db, w->a, w->beta, w->bob, e0, "Beta secret last", NULL, &wo), 0);
        snprintf(w->bwo, sizeof(w->bwo), "%s", wo.number);
        assert_int_equal(
            db_wo_add_photo(w->db, w->beta, wo.id, w->bob, "telegram", "tg-photo-b", "Beta"), 0);
        assert_int_equal(db_device_register(w->db, w->a, w->beta, "press-3", 100, &dev), 0);
        beta_press = dev.id;
        assert_int_equal(db_device_register(w->db, w->a, w->beta, "boiler-7", 100, &dev), 0);
        boiler = dev.id;
        assert_int_equal(db_device_link(w->db, w->beta, "boiler-7", e0), 0);
        assert_int_equal(
            db_rule_save(w->db, w->beta, "Beta secret rule", "high", BETA_RULE, false, &beta_rule),
            0);
        make_alarm(w, w->beta, beta_press, 0, ALARM_DEVICE, "B1", "high", "Beta secret fault",
                   1771497240);
        w->balarm = make_alarm(w, w->beta, boiler, beta_rule, ALARM_RULE, NULL, "critical",
                               "boiler_pressure 9.5 > 9", 1771497300);
        assert_int_equal(db_draft_add(w->db, w->beta, w->bob, e0, "Beta secret proposal", "high",
                                      "Beta secret description", &w->bdraft),
                         0);
        w->bread = make_read(w, w->beta, w->bob, 0xb000, "Yaskawa", "GA700", "BETA-SN-9");
    }
}

static void destroy(struct world *w)
{
    PQfinish(w->c);
    db_close(w->db);
    db_close(w->db2);
    arena_free(w->a);
    pgtest_db_drop(&w->d);
}

/* ---- "nothing changed": every row of every table ---- */

/* A checksum of each table ("name md5" lines, malloc'd), the tables named
 * in except (" name " words) left out. */
static char *db_state(PGconn *c, const char *except)
{
    PGresult *tables = pgtest_q(c,
                                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                "ORDER BY tablename",
                                NULL),
             *sums;
    size_t qcap = 256 * (size_t)PQntuples(tables) + 64, qlen = 0, cap, len = 0;
    char *q = malloc(qcap), *out;

    assert_non_null(q);
    q[0] = '\0';
    /* One statement: a row per table, name and checksum. */
    for (int i = 0; i < PQntuples(tables); i++) {
        const char *t = PQgetvalue(tables, i, 0);
        char word[80];

        snprintf(word, sizeof(word), " %s ", t);
        if (except && strstr(except, word))
            continue;
        qlen += (size_t)snprintf(q + qlen, qcap - qlen,
                                 "%sSELECT '%s', count(*) || ':' || coalesce(md5(string_agg("
                                 "t::text, '|' ORDER BY t::text)), '-') FROM \"%s\" t",
                                 qlen ? " UNION ALL " : "", t, t);
        assert_true(qlen < qcap);
    }
    PQclear(tables);
    sums = pgtest_q(c, q, NULL);
    free(q);
    cap = 128 * (size_t)PQntuples(sums) + 1;
    out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (int i = 0; i < PQntuples(sums); i++)
        len += (size_t)snprintf(out + len, cap - len, "%s %s\n", PQgetvalue(sums, i, 0),
                                PQgetvalue(sums, i, 1));
    PQclear(sums);
    return out;
}

static void assert_same_state(const char *before, const char *after, const char *what)
{
    if (strcmp(before, after) != 0)
        fail_msg("the database changed after %s:\nbefore:\n%s\nafter:\n%s", what, before, after);
}

/* ---- the conversation ---- */

struct said {
    char text[16384]; /* the replies joined with "\n\n" */
    int n_buttons;
    char data[32][BUTTON_DATA_MAX + 1];
};

static struct said said;

/* Every button payload seen (as a press sends it: the edit mark taken
 * off), for replaying. */
static char seen[MAX_BUTTONS][BUTTON_DATA_MAX + 1];
static int n_seen;

static void remember(const char *data)
{
    if (data[0] == REPLY_EDIT_MARK)
        data++;
    for (int i = 0; i < n_seen; i++)
        if (strcmp(seen[i], data) == 0)
            return;
    if (n_seen < MAX_BUTTONS)
        snprintf(seen[n_seen++], sizeof(seen[0]), "%s", data);
}

static int fetch_fails(void *ctx, char sha256[65], const char **why)
{
    (void)ctx;
    (void)sha256;
    *why = "The test does not download photos.";
    return -EIO;
}

static int read_never(void *ctx, struct photo_result *out, const char **why)
{
    (void)ctx;
    (void)out;
    *why = "not read";
    return -EIO;
}

/* Sends text from sender on ch, in one transaction as a channel does
 * (committed when handle_message() returns 0); with context, as a reply
 * to a message that showed it; with photo, as a photo captioned text.
 * Buttons are recorded in said and remembered. */
static const struct said *talk(struct db *db, enum channel ch, const char *sender, const char *text,
                               const char *context, bool photo)
{
    struct msg_photo mp = {.fetch = fetch_fails, .read = read_never, .file_id = "tg-file-x"};
    struct msg m = {.channel = ch,
                    .sender_id = sender,
                    .sender_name = sender,
                    .text = text,
                    .text_len = text ? strlen(text) : 0,
                    .context = context,
                    .photo = photo ? &mp : NULL};
    struct arena *a = NULL;
    struct replies out;
    size_t len = 0;
    int r;

    memset(&said, 0, sizeof(said));
    assert_int_equal(arena_new(&a), 0);
    replies_init(&out);
    r = pgtest_handle(db, a, &m, &out);
    for (struct reply *rep = out.head; rep; rep = rep->next) {
        len += (size_t)snprintf(said.text + len, sizeof(said.text) - len, "%s%s",
                                rep == out.head ? "" : "\n\n", rep->text);
        if (len >= sizeof(said.text))
            len = sizeof(said.text) - 1;
        for (int i = 0; i < rep->n_buttons; i++) {
            if (said.n_buttons < 32)
                snprintf(said.data[said.n_buttons++], sizeof(said.data[0]), "%s",
                         rep->buttons[i].data);
            remember(rep->buttons[i].data);
        }
    }
    arena_free(a);
    if (r < 0)
        fail_msg("handle_message(%s) from %s: %s (%s); replied: %s", text ? text : "(photo)",
                 sender, strerror(-r), db_errmsg(db), said.text);
    return &said;
}

static const char *say(struct world *w, const char *sender, const char *text)
{
    return talk(w->db, CHANNEL_CONSOLE, sender, text, NULL, false)->text;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* tmpl with the world's names put in: {EQ} {EQ1} {WO0}..{WO7} {AL0}..{AL3}
 * {R0}..{R4} {D} (the sender's own proposal) {ME} (the sender's name)
 * {BEQ} {BWO} {BAL} {BD} {BR} (Beta's). */
static void expand(const struct world *w, int role, const char *tmpl, char *out, size_t cap)
{
    size_t o = 0;

    for (const char *p = tmpl; *p;) {
        char v[64] = "";
        size_t skip = 0;

        if (*p == '{') {
            const char *end = strchr(p, '}');
            char key[16];
            int i;

            assert_non_null(end);
            snprintf(key, sizeof(key), "%.*s", (int)(end - p - 1), p + 1);
            skip = (size_t)(end - p) + 1;
            if (strcmp(key, "EQ") == 0)
                snprintf(v, sizeof(v), "%s", w->eq[0]);
            else if (strcmp(key, "EQ1") == 0)
                snprintf(v, sizeof(v), "%s", w->eq[1]);
            else if (sscanf(key, "WO%d", &i) == 1 && i >= 0 && i < N_WO)
                snprintf(v, sizeof(v), "%s", w->wo[i]);
            else if (sscanf(key, "AL%d", &i) == 1 && i >= 0 && i < 4)
                snprintf(v, sizeof(v), "%" PRId64, w->alarm[i]);
            else if (sscanf(key, "R%d", &i) == 1 && i >= 0 && i < N_READS)
                snprintf(v, sizeof(v), "%" PRId64, w->read[i]);
            else if (strcmp(key, "D") == 0)
                snprintf(v, sizeof(v), "%" PRId64, w->draft[role]);
            else if (strcmp(key, "ME") == 0)
                snprintf(v, sizeof(v), "%s", display_name[role]);
            else if (strcmp(key, "BEQ") == 0)
                snprintf(v, sizeof(v), "%s", w->beq);
            else if (strcmp(key, "BWO") == 0)
                snprintf(v, sizeof(v), "%s", w->bwo);
            else if (strcmp(key, "BAL") == 0)
                snprintf(v, sizeof(v), "%" PRId64, w->balarm);
            else if (strcmp(key, "BD") == 0)
                snprintf(v, sizeof(v), "%" PRId64, w->bdraft);
            else if (strcmp(key, "BR") == 0)
                snprintf(v, sizeof(v), "%" PRId64, w->bread);
            else
                fail_msg("unknown placeholder {%s}", key);
        } else {
            v[0] = *p;
            skip = 1;
        }
        assert_true(o + strlen(v) < cap);
        memcpy(out + o, v, strlen(v));
        o += strlen(v);
        p += skip;
    }
    out[o] = '\0';
}

/* ---- 1. the role matrix ---- */

/* Every command and subcommand a member can send, with the least role
 * that may run it; docs/SECURITY.md has the same table. */
static const struct form {
    const char *text;
    int min; /* TECH, SUPER or ADMIN */
} forms[] = {
    {"/help", TECH},
    {"/help wo", TECH},
    {"/start", TECH},
    {"/start K7QM-3XHP-RT2A", TECH},
    {"/link", TECH},
    {"/unlink whatsapp", TECH},
    {"/equip", TECH},
    {"/equip list", TECH},
    {"/equip list 1", TECH},
    {"/equip search siemens", TECH},
    {"/equip find main drive", TECH},
    {"/equip view {EQ}", TECH},
    {"/equip show {EQ1}", TECH},
    {"/equip {EQ}", TECH},
    {"/equip g120", TECH},
    {"/equip add Siemens S120 serial=SX-1 location=Line 4", TECH},
    {"/equip new ABB ACS880 name=Spare drive", TECH},
    {"/equip edit {EQ} location=Line 9", SUPER},
    {"/equip edit {EQ1} name=Renamed criticality=high", SUPER},
    {"/equip edit {EQ1} device=pump-1", SUPER},
    {"/equip edit {EQ} device=-", SUPER},
    {"/EQUIP EDIT {EQ1} serial=X", SUPER},
    {"/equip@RivetBot edit {EQ1} model=Y", SUPER},
    {"/equip edit", SUPER},
    {"/wo", TECH},
    {"/wo list", TECH},
    {"/wo list mine", TECH},
    {"/wo list all 1", TECH},
    {"/wo list cancelled", TECH},
    {"/wo view {WO0}", TECH},
    {"/wo show {WO0}", TECH},
    {"/wo {WO0}", TECH},
    {"/wo new {EQ} Bearing noise priority=high", TECH},
    {"/wo add {EQ1} Filter change", TECH},
    {"/wo note {WO0} Checked the seal", TECH},
    {"/wo status {WO1} in_progress", TECH},
    {"/wo status {WO2} on_hold", TECH},
    {"/wo status {WO3} completed", TECH},
    {"/wo status {WO7} done", TECH},
    {"/wo status {WO4} cancelled", SUPER},
    {"/wo status {WO4} cancel", SUPER},
    {"/wo STATUS {WO4} CANCELED", SUPER},
    {"/wo status {WO5} open", SUPER},
    {"/wo status {WO6} reopen", SUPER},
    {"/wo status {WO6} open", SUPER},
    {"/wo status {WO1}", TECH}, /* usage: no status, nothing to refuse */
    {"/wo assign {WO0} me", TECH},
    {"/wo assign {WO0} ME", TECH},
    {"/wo assign {WO1} {ME}", TECH},
    {"/wo assign {WO2} Theo Tech", SUPER},
    {"/wo assign {WO2} \"Theo Tech\"", SUPER},
    {"/wo assign {WO2} Nobody Here", SUPER},
    {"/wo alarm {AL0}", TECH},
    {"/wo draft {D} edit", TECH},
    {"/wo draft {D} priority low", TECH},
    {"/wo draft {D} create", TECH},
    {"/wo frobnicate", TECH},
    {"/stats", TECH},
    {"/photo", TECH},
    {"/photo edit {R0} serial=GF-9999", TECH},
    {"/photo save {R0}", TECH},
    {"/photo link {R1} {EQ1}", TECH},
    {"/photo wo {R2}", TECH},
    {"/photo discard {R3}", TECH},
    {"/alerts", TECH},
    {"/alerts 1", TECH},
    {"/alerts #{AL1}", TECH},
    {"/alerts view {AL2}", TECH},
    {"/ack {AL1}", TECH},
    {"/resolve {AL1}", TECH},
    {"/subscribe", TECH},
    {"/subscribe high", TECH},
    {"/subscribe medium press-3", TECH},
    {"/unsubscribe pump-1", TECH},
    {"/unsubscribe all", TECH},
    {"/mute press-3 1h", TECH},
    {"/mute #{AL3} 2h", TECH},
    {"/mute all off", TECH},
    {"/rules", SUPER},
    {"/frobnicate", TECH}, /* unknown: told so, whatever the role */
};
#define N_FORMS (sizeof(forms) / sizeof(forms[0]))

static void run_matrix(int role)
{
    struct world w;
    char text[256], what[320];
    int allowed = 0, refused = 0;

    build(&w, false);
    n_seen = 0;
    for (size_t i = 0; i < N_FORMS; i++) {
        bool refuse = role < forms[i].min;
        char *before = refuse ? db_state(w.c, NULL) : NULL, *after;
        const char *reply;

        expand(&w, role, forms[i].text, text, sizeof(text));
        reply = say(&w, console_name[role], text);
        after = refuse ? db_state(w.c, NULL) : NULL;
        snprintf(what, sizeof(what), "%s from a %s", text, role_name[role]);
        if (!refuse) {
            if (starts_with(reply, "Only ") || strstr(reply, "Your role"))
                fail_msg("%s was refused:\n%s", what, reply);
            if (strstr(reply, "Sorry"))
                fail_msg("%s failed:\n%s", what, reply);
            allowed++;
        } else {
            if (!starts_with(reply, ONLY_SUPERVISORS))
                fail_msg("%s was not refused:\n%s", what, reply);
            assert_same_state(before, after, what);
            refused++;
        }
        free(before);
        free(after);
    }
    print_message("# %s: %d commands allowed, %d refused, each refusal changing nothing\n",
                  role_name[role], allowed, refused);
    /* Buttons are commands: none of those shown to this role is one it
     * would be refused. */
    {
        char copy[MAX_BUTTONS][BUTTON_DATA_MAX + 1];
        int n = n_seen;

        memcpy(copy, seen, sizeof(copy));
        assert_true(n > 20);
        for (int i = 0; i < n; i++) {
            const char *reply = say(&w, console_name[role], copy[i]);
            if (starts_with(reply, "Only ") || strstr(reply, "Your role"))
                fail_msg("a %s was shown the button \"%s\" and refused it:\n%s", role_name[role],
                         copy[i], reply);
        }
        print_message("# %s: %d buttons shown and pressed, none refused\n", role_name[role], n);
    }
    destroy(&w);
}

static void test_matrix_technician(void **state)
{
    (void)state;
    run_matrix(TECH);
}

static void test_matrix_supervisor(void **state)
{
    (void)state;
    run_matrix(SUPER);
}

static void test_matrix_admin(void **state)
{
    (void)state;
    run_matrix(ADMIN);
}

/* The refusal names the role, and the same words come for the typed
 * command and for its button (a press runs the text as typed). */
static void test_refusal_wording(void **state)
{
    struct world w;
    char cmd[128];
    const char *reply;

    (void)state;
    build(&w, false);
    snprintf(cmd, sizeof(cmd), "/wo status %s open", w.wo[6]);
    reply = say(&w, "tina", cmd);
    assert_string_equal(reply,
                        "Only supervisors and admins can cancel or reopen work orders. Nothing "
                        "was changed.");
    snprintf(cmd, sizeof(cmd), "/equip edit %s location=Line 9", w.eq[0]);
    assert_string_equal(say(&w, "tina", cmd), "Only supervisors and admins can edit equipment or "
                                              "link its devices. Nothing was changed.");
    snprintf(cmd, sizeof(cmd), "/wo assign %s Theo Tech", w.wo[0]);
    assert_string_equal(say(&w, "tina", cmd),
                        "Only supervisors and admins can assign work orders to someone else "
                        "(take one yourself with /wo assign WO-NUMBER me). Nothing was changed.");
    assert_string_equal(say(&w, "tina", "/rules"),
                        "Only supervisors and admins can see the alert rules.");
    /* A closed work order offers Reopen to those who may, and only them. */
    snprintf(cmd, sizeof(cmd), "/wo view %s", w.wo[6]);
    talk(w.db, CHANNEL_CONSOLE, "tina", cmd, NULL, false);
    for (int i = 0; i < said.n_buttons; i++)
        assert_null(strstr(said.data[i], " open"));
    talk(w.db, CHANNEL_CONSOLE, "sven", cmd, NULL, false);
    {
        bool reopen = false;
        char want[64];
        snprintf(want, sizeof(want), "/wo status %s open", w.wo[6]);
        for (int i = 0; i < said.n_buttons; i++)
            reopen |= strcmp(said.data[i], want) == 0;
        assert_true(reopen);
    }
    /* A role Rivet does not know may run nothing (the schema allows none,
     * so one is put in as an older or newer Rivet might have). */
    PQclear(pgtest_q(w.c, "ALTER TABLE users DROP CONSTRAINT IF EXISTS users_role_check", NULL));
    PQclear(pgtest_q(w.c, "UPDATE users SET role = 'visitor' WHERE console_name = 'theo'", NULL));
    {
        char *before = db_state(w.c, NULL), *after;
        for (const char *const *t = (const char *const[]){"/equip list", "/wo list", "/help",
                                                          "/stats", "/ack 1", NULL};
             *t; t++)
            pgtest_assert_starts_with(say(&w, "theo", *t), "Your role (visitor) may not use ");
        after = db_state(w.c, NULL);
        assert_same_state(before, after, "a visitor's commands");
        free(before);
        free(after);
    }
    destroy(&w);
}

/* ---- 2. strangers ---- */

static void test_strangers(void **state)
{
    static const struct {
        enum channel ch;
        const char *id;
    } strangers[] = {
        {CHANNEL_CONSOLE, "mallory"},
        {CHANNEL_TELEGRAM, "987654321"},
        {CHANNEL_WHATSAPP, "4915550000999"},
    };
    struct world w;
    char text[256], *before, *after;
    int sent = 0;

    (void)state;
    build(&w, true);
    /* What the admin sees, with its buttons, to press as a stranger. */
    n_seen = 0;
    for (size_t i = 0; i < N_FORMS; i++) {
        expand(&w, ADMIN, forms[i].text, text, sizeof(text));
        say(&w, "ada", text);
    }
    assert_true(n_seen > 20);

    before = db_state(w.c, NULL);
    for (size_t s = 0; s < sizeof(strangers) / sizeof(strangers[0]); s++) {
        for (size_t i = 0; i < N_FORMS + (size_t)n_seen; i++) {
            const char *reply;

            if (i < N_FORMS)
                expand(&w, ADMIN, forms[i].text, text, sizeof(text));
            else
                snprintf(text, sizeof(text), "%s", seen[i - N_FORMS]);
            /* /start and /link are for strangers: below. */
            if (starts_with(text, "/start") || starts_with(text, "/link"))
                continue;
            reply = talk(w.db, strangers[s].ch, strangers[s].id, text, NULL, false)->text;
            if (strcmp(reply, NOT_REGISTERED) != 0 || said.n_buttons != 0)
                fail_msg("%s from a stranger on %s was answered:\n%s", text,
                         channel_name(strangers[s].ch), reply);
            sent++;
        }
        /* Plain words, a photo, and a reply to one of Alpha's messages. */
        assert_string_equal(
            talk(w.db, strangers[s].ch, strangers[s].id, "main drive leaking", NULL, false)->text,
            NOT_REGISTERED);
        snprintf(text, sizeof(text), "wo:%" PRId64 ":%s", w.alpha, w.wo[0]);
        assert_string_equal(talk(w.db, strangers[s].ch, strangers[s].id, "done", text, false)->text,
                            NOT_REGISTERED);
        assert_string_equal(
            talk(w.db, strangers[s].ch, strangers[s].id, "Line 2", text, true)->text,
            NOT_REGISTERED);
    }
    after = db_state(w.c, NULL);
    assert_same_state(before, after, "strangers' commands and button presses");
    free(before);
    free(after);
    print_message("# %d commands and button payloads from strangers on 3 channels: each got the "
                  "access explanation only\n",
                  sent);

    /* /start and /link: the explanation, or the code refused; only the
     * counts of failed attempts move. */
    before = db_state(w.c, " invite_attempts link_attempts ");
    for (size_t s = 0; s < sizeof(strangers) / sizeof(strangers[0]); s++) {
        enum channel ch = strangers[s].ch;
        const char *id = strangers[s].id;

        assert_string_equal(talk(w.db, ch, id, "/start", NULL, false)->text, NOT_REGISTERED);
        pgtest_assert_starts_with(talk(w.db, ch, id, "/start AAAA-BBBB-CCCC", NULL, false)->text,
                                  BAD_INVITE);
        pgtest_assert_starts_with(talk(w.db, ch, id, "/link", NULL, false)->text,
                                  ch == CHANNEL_CONSOLE ? "Linking is for Telegram and WhatsApp"
                                                        : "To use Rivet here as the user");
        pgtest_assert_starts_with(talk(w.db, ch, id, "/link 222-333-444", NULL, false)->text,
                                  ch == CHANNEL_CONSOLE ? "Linking is for Telegram and WhatsApp"
                                                        : "That link code is not valid.");
    }
    after = db_state(w.c, " invite_attempts link_attempts ");
    assert_same_state(before, after, "strangers' /start and /link");
    free(before);
    free(after);
    destroy(&w);
}

/* ---- 3. another factory's objects: as if they did not exist ---- */

/* s with every "YYYY-MM-DD HH:MM" and "HH:MM" masked (the two databases
 * were filled a moment apart). */
static void mask_times(const char *s, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; s[i] && o + 6 < cap;) {
        const char *p = s + i;
        if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) && p[2] == ':' &&
            isdigit((unsigned char)p[3]) && isdigit((unsigned char)p[4])) {
            memcpy(out + o, "HH:MM", 5);
            o += 5;
            i += 5;
        } else if (strlen(p) >= 10 && isdigit((unsigned char)p[0]) && p[4] == '-' && p[7] == '-' &&
                   isdigit((unsigned char)p[9])) {
            memcpy(out + o, "DATE", 4);
            o += 4;
            i += 10;
        } else {
            out[o++] = s[i++];
        }
    }
    out[o] = '\0';
}

/* Everything Alpha's admin can name of Beta's, and the reply contexts of
 * Beta's messages. */
static const char *const probes[] = {
    "/equip view {BEQ}",
    "/equip {BEQ}",
    "/equip edit {BEQ} location=Hacked",
    "/equip edit {EQ} device=boiler-7",
    "/wo new {BEQ} Alpha works on Beta",
    "/equip search Grundfos CR 10-4",
    "/equip search boiler",
    "/equip view Boiler feed pump",
    "/equip BETA-SN-1",
    "/wo view {BWO}",
    "/wo {BWO}",
    "/wo status {BWO} completed",
    "/wo status {BWO} cancelled",
    "/wo note {BWO} Alpha was here",
    "/wo assign {BWO} me",
    "/wo assign {WO0} Bob Beta",
    "/wo assign {WO0} Bertram Beta",
    "/alerts #{BAL}",
    "/alerts view {BAL}",
    "/ack {BAL}",
    "/resolve {BAL}",
    "/wo alarm {BAL}",
    "/mute #{BAL} 1h",
    "/mute boiler-7 1h",
    "/mute boiler-7 off",
    "/subscribe boiler-7",
    "/subscribe high boiler-7",
    "/unsubscribe boiler-7",
    "/photo save {BR}",
    "/photo edit {BR} serial=X1",
    "/photo link {BR} {EQ}",
    "/photo wo {BR}",
    "/photo discard {BR}",
    "/wo draft {BD} create",
    "/wo draft {BD} cancel",
    "/wo draft {BD} edit",
    "/wo draft {BD} none",
    "/wo draft {BD} eq {EQ}",
    "/wo draft {BD} priority low",
    "/rules",
    "/alerts",
    "/equip list",
    "/wo list all",
    "/stats",
    "/subscribe",
    "/wo view {WO0}",
    "what is open on the boiler feed pump",
    "any alarms on the mixer drive",
};
#define N_PROBES (sizeof(probes) / sizeof(probes[0]))

static void one_probe(struct world *w, const char *text, const char *context, bool photo, char *out,
                      size_t cap)
{
    size_t len;

    talk(w->db, CHANNEL_CONSOLE, "ada", text, context, photo);
    mask_times(said.text, out, cap);
    len = strlen(out);
    for (int i = 0; i < said.n_buttons && len + 80 < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "\n[%s]", said.data[i]);
}

static void test_other_factory_is_missing(void **state)
{
    static struct world with, without;
    static char a[20000], b[20000];
    char text[256], context[128], *before_with, *before_without, *after;
    int n = 0;

    (void)state;
    build(&with, true);
    build(&without, false);
    /* Alpha is the same in both. */
    assert_string_equal(with.eq[1], without.eq[1]);
    assert_string_equal(with.wo[N_WO - 1], without.wo[N_WO - 1]);
    assert_true(with.alarm[3] == without.alarm[3] && with.read[4] == without.read[4]);
    /* Beta's identifiers, none of them Alpha's. */
    assert_true(with.balarm > with.alarm[3] && with.bread > with.read[4] &&
                with.bdraft > with.draft[ADMIN]);
    memcpy(without.beq, with.beq, sizeof(with.beq));
    memcpy(without.bwo, with.bwo, sizeof(with.bwo));
    without.balarm = with.balarm;
    without.bdraft = with.bdraft;
    without.bread = with.bread;
    assert_true(strcmp(with.beq, with.eq[1]) > 0 && strcmp(with.bwo, with.wo[N_WO - 1]) > 0);

    before_with = db_state(with.c, NULL);
    before_without = db_state(without.c, NULL);
    for (size_t i = 0; i < N_PROBES; i++) {
        expand(&with, ADMIN, probes[i], text, sizeof(text));
        one_probe(&with, text, NULL, false, a, sizeof(a));
        one_probe(&without, text, NULL, false, b, sizeof(b));
        if (strcmp(a, b) != 0)
            fail_msg("\"%s\" is answered differently when Beta exists:\n%s\n---- without Beta:\n%s",
                     text, a, b);
        for (const char *const *secret = (const char *const[]){"Beta", "Grundfos CR 10-4", "KSB",
                                                               "Yaskawa", "boiler_pressure", NULL};
             *secret; secret++)
            if (strstr(a, *secret) && !strstr(text, *secret))
                fail_msg("\"%s\" reveals Beta's \"%s\":\n%s", text, *secret, a);
        n++;
    }
    /* Replies to Beta's messages: its context with Beta's factory id, and
     * Beta's values under Alpha's id (a forged context). */
    {
        const struct {
            const char *kind;
            bool beta_id;
            const char *text;
            bool photo;
        } replies[] = {
            {"wo", true, "done", false},
            {"wo", true, "Seal replaced", false},
            {"wo", false, "done", false},
            {"wo", false, "Seal replaced", false},
            {"wo", false, "", true},
            {"wo", true, "caption", true},
            {"alarm", false, "done", false},
            {"alarm", true, "done", false},
            {"eq", false, "what's open", false},
            {"eq", true, "any alarms", false},
            {"draft", false, "New title", false},
            {"draft", true, "New title", false},
        };
        for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
            const char *k = replies[i].kind;
            char value[40];

            if (strcmp(k, "wo") == 0)
                snprintf(value, sizeof(value), "%s", with.bwo);
            else if (strcmp(k, "eq") == 0)
                snprintf(value, sizeof(value), "%s", with.beq);
            else if (strcmp(k, "alarm") == 0)
                snprintf(value, sizeof(value), "%" PRId64, with.balarm);
            else
                snprintf(value, sizeof(value), "%" PRId64, with.bdraft);
            snprintf(context, sizeof(context), "%s:%" PRId64 ":%s", k,
                     replies[i].beta_id ? with.beta : with.alpha, value);
            one_probe(&with, replies[i].text, context, replies[i].photo, a, sizeof(a));
            one_probe(&without, replies[i].text, context, replies[i].photo, b, sizeof(b));
            if (strcmp(a, b) != 0)
                fail_msg("a reply \"%s\" to %s is answered differently when Beta exists:\n%s\n"
                         "---- without Beta:\n%s",
                         replies[i].text, context, a, b);
            assert_null(strstr(a, "Beta"));
            n++;
        }
    }
    after = db_state(with.c, NULL);
    assert_same_state(before_with, after, "Alpha's attempts on Beta");
    free(after);
    after = db_state(without.c, NULL);
    assert_same_state(before_without, after, "the same attempts without Beta");
    free(after);
    free(before_with);
    free(before_without);
    print_message("# %d commands and replies naming Beta's equipment, work orders, alarms, rules, "
                  "devices, photo reads, photos and proposals: answered as if Beta did not exist, "
                  "nothing changed\n",
                  n);
    destroy(&with);
    destroy(&without);
}

/* ---- 4. invite codes ---- */

static void invite_code(struct world *w, int64_t factory, const char *role, int uses, char *code)
{
    assert_int_equal(db_invite_create(w->db, factory, role, uses, 3600, code, 16), 0);
}

static void test_invite_codes(void **state)
{
    static const char alphabet[] = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";
    enum { N = 300 };
    static char codes[N][16];
    struct world w;
    int count[32] = {0};
    char cmd[64];

    (void)state;
    build(&w, true);
    /* Long and random: 12 letters of 31 (about 59 bits), each letter about
     * as likely as any other, no two alike. */
    for (int i = 0; i < N; i++) {
        invite_code(&w, w.alpha, "technician", 1, codes[i]);
        assert_int_equal(strlen(codes[i]), 14);
        assert_true(codes[i][4] == '-' && codes[i][9] == '-');
        for (int k = 0; k < 14; k++) {
            const char *at;
            if (k == 4 || k == 9)
                continue;
            at = strchr(alphabet, codes[i][k]);
            assert_non_null(at);
            count[at - alphabet]++;
        }
        for (int j = 0; j < i; j++)
            assert_string_not_equal(codes[i], codes[j]);
    }
    /* 3600 letters, 116 expected of each: far outside 60..180 is a broken
     * generator (the odds of a fair one landing there are below 1e-6). */
    for (int k = 0; k < 31; k++)
        if (count[k] < 60 || count[k] > 180)
            fail_msg("the letter %c came %d times in 3600", alphabet[k], count[k]);
    /* One factory each: Alpha's code makes a member of Alpha, Beta's of
     * Beta, whoever sends it. */
    snprintf(cmd, sizeof(cmd), "/start %s", codes[0]);
    pgtest_assert_starts_with(say(&w, "newbie", cmd), "👋 Welcome to Rivet, newbie! You joined "
                                                      "Plant Alpha as technician.");
    invite_code(&w, w.beta, "supervisor", 1, codes[1]);
    snprintf(cmd, sizeof(cmd), "/start %s", codes[1]);
    pgtest_assert_starts_with(say(&w, "newbeta", cmd), "👋 Welcome to Rivet, newbeta! You joined "
                                                       "Plant Beta as supervisor.");
    destroy(&w);
}

/* At most 5 failed /start CODE per sender in 15 minutes, on every channel,
 * counted in the database; past that, a valid code gets the same answer as
 * a wrong one and is not used. */
static void test_invite_guessing_limit(void **state)
{
    struct world w;
    char code[16], cmd[64], *before, *after;
    const char *reply;

    (void)state;
    build(&w, false);
    invite_code(&w, w.alpha, "admin", 1, code);
    snprintf(cmd, sizeof(cmd), "/start %s", code);
    for (int i = 0; i < 5; i++) {
        /* two connections in turn, as two Rivet processes */
        reply = talk(i % 2 ? w.db2 : w.db, CHANNEL_WHATSAPP, "4915550000101",
                     i == 4 ? "/start not a code" : "/start AAAA-BBBB-CCCC", NULL, false)
                    ->text;
        pgtest_assert_starts_with(reply, BAD_INVITE);
    }
    assert_int_equal(pgtest_qint(w.c,
                                 "SELECT failures FROM invite_attempts WHERE channel = 'whatsapp' "
                                 "AND sender_id = '4915550000101'",
                                 NULL),
                     5);
    /* The sixth: a wrong code and the valid one get the same answer, and
     * the valid one stays unused. */
    before = db_state(w.c, NULL);
    reply =
        talk(w.db, CHANNEL_WHATSAPP, "4915550000101", "/start AAAA-BBBB-CCCD", NULL, false)->text;
    pgtest_assert_starts_with(reply, TOO_MANY_INVITES);
    {
        char *wrong_answer = strdup(reply);
        assert_non_null(wrong_answer);
        reply = talk(w.db2, CHANNEL_WHATSAPP, "4915550000101", cmd, NULL, false)->text;
        assert_string_equal(reply, wrong_answer);
        free(wrong_answer);
    }
    after = db_state(w.c, NULL);
    assert_same_state(before, after, "/start past the limit");
    free(before);
    free(after);
    assert_string_equal(talk(w.db, CHANNEL_WHATSAPP, "4915550000101", "/stats", NULL, false)->text,
                        NOT_REGISTERED);

    /* The same id on another channel, and other senders, are not held
     * back; the console is limited too. */
    pgtest_assert_starts_with(
        talk(w.db, CHANNEL_TELEGRAM, "4915550000101", "/start AAAA-BBBB-CCCC", NULL, false)->text,
        BAD_INVITE);
    pgtest_assert_starts_with(
        talk(w.db, CHANNEL_WHATSAPP, "4915550000102", "/start AAAA-BBBB-CCCC", NULL, false)->text,
        BAD_INVITE);
    for (int i = 0; i < 5; i++)
        pgtest_assert_starts_with(say(&w, "guesser", "/start AAAA-BBBB-CCCC"), BAD_INVITE);
    pgtest_assert_starts_with(say(&w, "guesser", cmd), TOO_MANY_INVITES);

    /* A member's /start CODE neither counts nor uses the code. */
    for (int i = 0; i < 7; i++)
        pgtest_assert_starts_with(say(&w, "tina", cmd), "You are already a member of Plant Alpha.");
    assert_int_equal(
        pgtest_qint(w.c, "SELECT count(*) FROM invite_attempts WHERE sender_id = 'tina'", NULL), 0);

    /* 15 minutes after the first failure the sender may try again. */
    PQclear(pgtest_q(w.c,
                     "UPDATE invite_attempts SET window_start = now() - interval '16 minutes' "
                     "WHERE channel = 'whatsapp' AND sender_id = '4915550000101'",
                     NULL));
    reply = talk(w.db, CHANNEL_WHATSAPP, "4915550000101", cmd, NULL, false)->text;
    pgtest_assert_starts_with(reply, "👋 Welcome to Rivet, 4915550000101! You joined Plant Alpha "
                                     "as admin.");
    destroy(&w);
}

/* ---- 5. buttons pressed twice, stale, forged ---- */

/* Says text as sender and asserts the reply starts with want and that
 * nothing changed. */
static void harmless(struct world *w, const char *sender, const char *text, const char *want)
{
    char *before = db_state(w->c, NULL), *after;
    const char *reply = say(w, sender, text);

    if (want && !starts_with(reply, want))
        fail_msg("%s from %s: expected a reply starting \"%s\", got:\n%s", text, sender, want,
                 reply);
    if (strstr(reply, "Sorry"))
        fail_msg("%s from %s failed:\n%s", text, sender, reply);
    after = db_state(w->c, NULL);
    assert_same_state(before, after, text);
    free(before);
    free(after);
}

static void test_stale_and_replayed_buttons(void **state)
{
    struct world w;
    char cmd[128], want[128];

    (void)state;
    build(&w, true);

    /* Pressed twice: the second press changes nothing. */
    snprintf(cmd, sizeof(cmd), "/ack %" PRId64, w.alarm[0]);
    pgtest_assert_starts_with(say(&w, "tina", cmd), "✅ Alarm #");
    snprintf(want, sizeof(want), "Alarm #%" PRId64 " was already acknowledged by Tina Tech",
             w.alarm[0]);
    harmless(&w, "sven", cmd, want);
    snprintf(cmd, sizeof(cmd), "/wo alarm %" PRId64, w.alarm[0]);
    pgtest_assert_starts_with(say(&w, "tina", cmd), "✅ Opened");
    snprintf(want, sizeof(want), "Alarm #%" PRId64 " already has work order WO-", w.alarm[0]);
    harmless(&w, "tina", cmd, want);
    snprintf(cmd, sizeof(cmd), "/wo status %s completed", w.wo[0]);
    pgtest_assert_starts_with(say(&w, "tina", cmd), "✅ ");
    snprintf(want, sizeof(want), "%s is already ✅ completed.", w.wo[0]);
    harmless(&w, "tina", cmd, want);
    snprintf(cmd, sizeof(cmd), "/wo assign %s me", w.wo[1]);
    pgtest_assert_starts_with(say(&w, "tina", cmd), "👷 ");
    harmless(&w, "tina", cmd, NULL);
    snprintf(cmd, sizeof(cmd), "/wo draft %" PRId64 " create", w.draft[TECH]);
    pgtest_assert_starts_with(say(&w, "tina", cmd), "✅ Opened");
    harmless(&w, "tina", cmd, "Already created: WO-");
    snprintf(cmd, sizeof(cmd), "/photo save %" PRId64, w.read[0]);
    pgtest_assert_starts_with(say(&w, "tina", cmd), "✅ Saved as EQ-");
    harmless(&w, "tina", cmd, "That photo is already registered as EQ-");
    snprintf(cmd, sizeof(cmd), "/photo link %" PRId64 " %s", w.read[0], w.eq[1]);
    harmless(&w, "tina", cmd, "That photo is already registered as EQ-");

    /* A closed object's buttons. */
    snprintf(cmd, sizeof(cmd), "/resolve %" PRId64, w.alarm[1]);
    pgtest_assert_starts_with(say(&w, "tina", cmd), "☑️ Alarm #");
    snprintf(want, sizeof(want), "Alarm #%" PRId64 " is already resolved", w.alarm[1]);
    harmless(&w, "tina", cmd, want);
    snprintf(cmd, sizeof(cmd), "/ack %" PRId64, w.alarm[1]);
    harmless(&w, "tina", cmd, want);
    snprintf(cmd, sizeof(cmd), "/photo discard %" PRId64, w.read[1]);
    pgtest_assert_starts_with(say(&w, "tina", cmd), "❌ Discarded");
    snprintf(cmd, sizeof(cmd), "/photo save %" PRId64, w.read[1]);
    harmless(&w, "tina", cmd, "That photo read was discarded.");
    snprintf(cmd, sizeof(cmd), "/wo draft %" PRId64 " cancel", w.draft[SUPER]);
    pgtest_assert_starts_with(say(&w, "sven", cmd), "❌ Cancelled");
    snprintf(cmd, sizeof(cmd), "/wo draft %" PRId64 " create", w.draft[SUPER]);
    harmless(&w, "sven", cmd, "That proposal was cancelled.");

    /* Older than its validity: a proposal lasts a day. */
    PQclear(pgtest_q(w.c,
                     "UPDATE wo_drafts SET created_at = now() - interval '25 hours' "
                     "WHERE id = $1",
                     (snprintf(want, sizeof(want), "%" PRId64, w.draft[ADMIN]), want), NULL));
    snprintf(cmd, sizeof(cmd), "/wo draft %" PRId64 " create", w.draft[ADMIN]);
    harmless(&w, "ada", cmd, "That proposal expired");
    snprintf(cmd, sizeof(cmd), "/wo draft %" PRId64 " priority low", w.draft[ADMIN]);
    harmless(&w, "ada", cmd, "That proposal expired");

    /* Deleted objects: a purged proposal, a read gone. */
    PQclear(pgtest_q(w.c, "DELETE FROM wo_drafts WHERE id = $1", want, NULL));
    harmless(&w, "ada", cmd, "That proposal is not yours to decide.");
    snprintf(want, sizeof(want), "%" PRId64, w.read[2]);
    PQclear(pgtest_q(w.c, "DELETE FROM nameplate_reads WHERE id = $1", want, NULL));
    snprintf(cmd, sizeof(cmd), "/photo save %" PRId64, w.read[2]);
    snprintf(want, sizeof(want), "There is no photo read %" PRId64 ".", w.read[2]);
    harmless(&w, "tina", cmd, want);

    /* Someone else's proposal, another factory's ids, garbage. */
    snprintf(cmd, sizeof(cmd), "/wo draft %" PRId64 " create", w.draft[ADMIN] - 1);
    harmless(&w, "tina", cmd, "That proposal is not yours to decide.");
    snprintf(cmd, sizeof(cmd), "/ack %" PRId64, w.balarm);
    snprintf(want, sizeof(want), "No alarm #%" PRId64 ".", w.balarm);
    harmless(&w, "tina", cmd, want);
    snprintf(cmd, sizeof(cmd), "/wo status %s completed", w.bwo);
    snprintf(want, sizeof(want), "No work order %s", w.bwo);
    harmless(&w, "tina", cmd, want);
    for (const char *const *g = (const char *const[]){"/ack",
                                                      "/ack abc",
                                                      "/ack 0",
                                                      "/ack -1",
                                                      "/ack 1 2",
                                                      "/ack 99999999999999999999999",
                                                      "/ack #",
                                                      "/resolve 1e3",
                                                      "/wo draft",
                                                      "/wo draft x create",
                                                      "/wo draft 1",
                                                      "/wo draft 999999 create",
                                                      "/wo draft -5 create",
                                                      "/wo status",
                                                      "/wo status WO-2026-999999 completed",
                                                      "/wo status WO-2026 completed",
                                                      "/wo assign",
                                                      "/wo alarm",
                                                      "/wo alarm 0x10",
                                                      "/photo save",
                                                      "/photo save -1",
                                                      "/photo save 9223372036854775807",
                                                      "/photo link 1",
                                                      "/mute #0 1h",
                                                      "/mute # 1h",
                                                      "/equip view EQ-0000-000000",
                                                      "/",
                                                      "//",
                                                      "/ ",
                                                      "~",
                                                      "~/wo list 999",
                                                      "/wo list 999",
                                                      "/equip list 0",
                                                      "/alerts 100000",
                                                      "\xe2\x80\x8b/ack 1",
                                                      NULL};
         *g; g++)
        harmless(&w, "tina", *g, NULL);
    destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix_technician),
        cmocka_unit_test(test_matrix_supervisor),
        cmocka_unit_test(test_matrix_admin),
        cmocka_unit_test(test_refusal_wording),
        cmocka_unit_test(test_strangers),
        cmocka_unit_test(test_other_factory_is_missing),
        cmocka_unit_test(test_invite_codes),
        cmocka_unit_test(test_invite_guessing_limit),
        cmocka_unit_test(test_stale_and_replayed_buttons),
    };
    int status;

    if (!pgtest_init(&status))
        return status;
    return cmocka_run_group_tests_name("integration-security", tests, NULL, NULL);
}
