/* Factory isolation through handle_message and the db layer: a member of
 * Plant Alpha cannot list, view, search, edit, assign, note, move or guess
 * Plant Beta's equipment and work orders ("No equipment …", "No work order
 * …"), and Beta's rows stay as they were. Strangers are refused everything
 * but /start with a valid invite code. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "handlers.h"
#include "pgtest.h"

#define NOT_REGISTERED "Rivet doesn't know you yet"
#define BAD_CODE "That invite code is not valid"

struct fixture {
    struct pgtest_db d;
    PGconn *c;
    struct db *db;
    struct arena *a;
    int year;
    int64_t alpha, beta;
    int64_t alice, anton, bob, bertram;
    int64_t alpha_eq[2], beta_eq[5];
    int64_t alpha_wo[1], beta_wo[4];
    char eq[6][32], wo[6][32]; /* EQ-YYYY-00000N, WO-YYYY-00000N by N (1..5) */
};

/* What only Beta has: none of it may appear in a reply to Alice. */
static const char *const beta_secrets[] = {
    "Grundfos",         "KSB",          "Yaskawa",       "Danfoss",     "SEW",
    "CR 10-4",          "Etanorm",      "GA700",         "FC-302",      "MOVIMOT",
    "Boiler feed pump", "Boiler house", "BETA-SN",       "Beta secret", "Bertram",
    "Bob Beta",         "Plant Beta",   "Cooling tower",
};

static int64_t make_wo(struct fixture *f, int64_t factory, int64_t user, int64_t machine,
                       const char *title, const char *priority)
{
    struct work_order wo;
    int r = db_wo_create(f->db, f->a, factory, user, machine, title, priority, &wo);

    if (r < 0)
        fail_msg("db_wo_create: %s (%s)", strerror(-r), db_errmsg(f->db));
    return wo.id;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    static const struct {
        const char *mf, *model, *name, *serial, *loc;
    } beta_machines[5] = {
        {"Grundfos", "CR 10-4", "Boiler feed pump", "BETA-SN-0001", "Boiler house"},
        {"KSB", "Etanorm 065-040-250", "Cooling water pump", "BETA-SN-0002", "Cooling tower"},
        {"Yaskawa", "GA700", "Mixer drive", "BETA-SN-0003", "Batch room"},
        {"Danfoss", "FC-302", "Extruder drive", "BETA-SN-0004", "Extrusion"},
        {"SEW-Eurodrive", "MOVIMOT MM22", "Conveyor 7", "BETA-SN-0005", "Packaging hall"},
    };

    assert_non_null(f);
    pgtest_db_create(&f->d);
    f->db = pgtest_connect(&f->d);
    f->c = pgtest_pq(&f->d);
    assert_int_equal(arena_new(&f->a), 0);
    pgtest_migrate(f->db);
    f->year = (int)pgtest_qint(f->c, "SELECT extract(year FROM now())::int", NULL);
    for (int i = 1; i <= 5; i++) {
        snprintf(f->eq[i], sizeof(f->eq[i]), "EQ-%04d-%06d", f->year, i);
        snprintf(f->wo[i], sizeof(f->wo[i]), "WO-%04d-%06d", f->year, i);
    }

    f->alpha = pgtest_factory(f->db, f->a, "Plant Alpha");
    f->beta = pgtest_factory(f->db, f->a, "Plant Beta");
    f->alice = pgtest_user(f->db, f->a, f->alpha, "alice", "Alice Alpha", "admin");
    f->anton = pgtest_user(f->db, f->a, f->alpha, "anton", "Anton Alpha", "technician");
    f->bob = pgtest_user(f->db, f->a, f->beta, "bob", "Bob Beta", "admin");
    f->bertram = pgtest_user(f->db, f->a, f->beta, "bertram", "Bertram Beta", "technician");

    f->alpha_eq[0] = pgtest_equipment(f->db, f->a, f->alpha, f->alice, "Siemens", "G120C",
                                      "Main drive", "XAJ123", "Line 1", NULL);
    f->alpha_eq[1] = pgtest_equipment(f->db, f->a, f->alpha, f->alice, "ABB", "ACS580", "Fan drive",
                                      "ABB-77", "Paint shop", NULL);
    for (int i = 0; i < 5; i++)
        f->beta_eq[i] = pgtest_equipment(f->db, f->a, f->beta, f->bob, beta_machines[i].mf,
                                         beta_machines[i].model, beta_machines[i].name,
                                         beta_machines[i].serial, beta_machines[i].loc, NULL);

    f->alpha_wo[0] = make_wo(f, f->alpha, f->alice, f->alpha_eq[0], "Replace fan belt", NULL);
    f->beta_wo[0] = make_wo(f, f->beta, f->bob, f->beta_eq[0], "Beta secret: seal leak", "high");
    f->beta_wo[1] = make_wo(f, f->beta, f->bob, f->beta_eq[1], "Beta secret: bearing noise", NULL);
    f->beta_wo[2] = make_wo(f, f->beta, f->bob, f->beta_eq[2], "Beta secret: VFD fault", NULL);
    f->beta_wo[3] =
        make_wo(f, f->beta, f->bob, f->beta_eq[4], "Beta secret: gearbox oil", "critical");
    assert_int_equal(
        db_wo_assign(f->db, f->beta, f->beta_wo[1], f->bob, f->bertram, "Bertram Beta"), 0);
    assert_int_equal(db_wo_add_note(f->db, f->beta, f->beta_wo[3], f->bob, "Beta secret note"), 0);
    assert_int_equal(db_wo_set_status(f->db, f->beta, f->beta_wo[2], f->bob, "open", "in_progress"),
                     0);
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

/* reply, with the first echo of what Alice typed taken out, names nothing
 * of Beta's. */
static void assert_no_beta(const char *reply, const char *typed)
{
    char *copy = strdup(reply), *at;

    assert_non_null(copy);
    if (typed && *typed && (at = strstr(copy, typed)))
        memmove(at, at + strlen(typed), strlen(at + strlen(typed)) + 1);
    for (size_t i = 0; i < sizeof(beta_secrets) / sizeof(beta_secrets[0]); i++)
        if (strstr(copy, beta_secrets[i]))
            fail_msg("Beta's \"%s\" leaked to Alice:\n%s", beta_secrets[i], reply);
    free(copy);
    /* Nor a Beta-only number as a suggestion. */
    for (const char *const *n = (const char *const[]){"000003", "000004", "000005", NULL}; *n;
         n++) {
        const char *p = reply;
        int seen = 0;
        while ((p = strstr(p, *n))) {
            seen++;
            p++;
        }
        if (seen > (typed && strstr(typed, *n) ? 1 : 0))
            fail_msg("a Beta-only number ending %s appears in:\n%s", *n, reply);
    }
}

/* Alice says text; the reply starts with want and names nothing of Beta's
 * beyond echoing echo. */
static void alice_expect(struct fixture *f, const char *text, const char *want, const char *echo)
{
    const char *reply = pgtest_say(f->db, "alice", text);

    pgtest_assert_starts_with(reply, want);
    assert_no_beta(reply, echo);
}

static void test_alpha_cannot_reach_beta(void **state)
{
    struct fixture *f = *state;
    struct pgtest_snap snap;
    char cmd[256], want[256], *s;
    const char *reply;

    pgtest_snap_take(f->c, &snap);

    /* Lists and statistics count Alpha's rows only. */
    reply = pgtest_say(f->db, "alice", "/equip list");
    pgtest_assert_contains(reply, "Equipment (2)");
    pgtest_assert_contains(reply, "Siemens G120C");
    assert_no_beta(reply, NULL);
    assert_no_beta(pgtest_say(f->db, "alice", "/equip"), NULL);
    assert_no_beta(pgtest_say(f->db, "alice", "/equip list 2"), NULL);
    for (const char *const *l =
             (const char *const[]){"/wo list", "/wo list all", "/wo list mine",
                                   "/wo list in_progress", "/wo list open", "/wo list 2", NULL};
         *l; l++)
        assert_no_beta(pgtest_say(f->db, "alice", *l), NULL);
    reply = pgtest_say(f->db, "alice", "/wo list all");
    pgtest_assert_contains(reply, "All work orders (1)");
    pgtest_assert_contains(reply, "Replace fan belt");
    reply = pgtest_say(f->db, "alice", "/wo list in_progress");
    pgtest_assert_starts_with(reply, "No work orders are");
    reply = pgtest_say(f->db, "alice", "/stats");
    pgtest_assert_contains(reply, "Equipment: 2\n");
    pgtest_assert_contains(reply, "open 1 ");
    pgtest_assert_contains(reply, "in progress 0 ");
    assert_no_beta(reply, NULL);

    /* Search by anything Beta's rows hold: manufacturer, model, name,
     * serial, location. */
    for (const char *const *q =
             (const char *const[]){"grundfos", "Grundfos CR 10-4", "grundfoss cr10",
                                   "Boiler feed pump", "BETA-SN-0001", "beta-sn", "Etanorm",
                                   "yaskawa ga700", "Packaging hall", "movimot", NULL};
         *q; q++) {
        snprintf(cmd, sizeof(cmd), "/equip search %s", *q);
        snprintf(want, sizeof(want), "No equipment matches \"%s\"", *q);
        alice_expect(f, cmd, want, *q);
        snprintf(cmd, sizeof(cmd), "/equip view %s", *q);
        snprintf(want, sizeof(want), "No equipment %s", *q);
        alice_expect(f, cmd, want, *q);
        snprintf(cmd, sizeof(cmd), "/equip %s", *q);
        snprintf(want, sizeof(want), "No equipment matches \"%s\"", *q);
        alice_expect(f, cmd, want, *q);
    }

    /* Guessing numbers Beta has and Alpha does not. */
    for (int n = 3; n <= 5; n++) {
        char lower[32];

        snprintf(cmd, sizeof(cmd), "/equip view %s", f->eq[n]);
        snprintf(want, sizeof(want), "No equipment %s", f->eq[n]);
        alice_expect(f, cmd, want, f->eq[n]);
        snprintf(cmd, sizeof(cmd), "/equip %s", f->eq[n]);
        alice_expect(f, cmd, want, f->eq[n]);
        snprintf(lower, sizeof(lower), "eq-%04d-%06d", f->year, n);
        snprintf(cmd, sizeof(cmd), "/equip view %s", lower);
        snprintf(want, sizeof(want), "No equipment %s", lower);
        alice_expect(f, cmd, want, lower);

        snprintf(cmd, sizeof(cmd), "/equip edit %s location=Hacked by Alpha", f->eq[n]);
        snprintf(want, sizeof(want), "No equipment %s", f->eq[n]);
        alice_expect(f, cmd, want, f->eq[n]);
        snprintf(cmd, sizeof(cmd), "/equip edit %s name=Mine criticality=low", f->eq[n]);
        alice_expect(f, cmd, want, f->eq[n]);
        snprintf(cmd, sizeof(cmd), "/wo new %s Alpha works on Beta priority=critical", f->eq[n]);
        alice_expect(f, cmd, want, f->eq[n]);
    }
    for (int n = 2; n <= 4; n++) {
        const char *const forms[] = {"/wo view %s",
                                     "/wo %s",
                                     "/wo status %s done",
                                     "/wo status %s cancelled",
                                     "/wo note %s Alpha was here",
                                     "/wo assign %s me",
                                     "/wo assign %s Bertram Beta",
                                     "/wo assign %s Alice Alpha"};
        snprintf(want, sizeof(want), "No work order %s", f->wo[n]);
        for (size_t k = 0; k < sizeof(forms) / sizeof(forms[0]); k++) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            snprintf(cmd, sizeof(cmd), forms[k], f->wo[n]);
#pragma GCC diagnostic pop
            reply = pgtest_say(f->db, "alice", cmd);
            pgtest_assert_starts_with(reply, want);
            /* The echo of "Bertram Beta" in the command is not in the reply. */
            assert_no_beta(reply, f->wo[n]);
        }
    }

    /* Numbers both factories have mean Alpha's own rows to Alice. */
    reply =
        pgtest_say(f->db, "alice", (snprintf(cmd, sizeof(cmd), "/equip view %s", f->eq[1]), cmd));
    pgtest_assert_contains(reply, "Siemens G120C");
    assert_no_beta(reply, NULL);
    reply = pgtest_say(f->db, "alice", (snprintf(cmd, sizeof(cmd), "/wo view %s", f->wo[1]), cmd));
    pgtest_assert_contains(reply, "Replace fan belt");
    assert_no_beta(reply, NULL);

    /* Beta's people cannot be given Alpha's work, nor suggested. */
    snprintf(cmd, sizeof(cmd), "/wo assign %s Bertram Beta", f->wo[1]);
    reply = pgtest_say(f->db, "alice", cmd);
    pgtest_assert_starts_with(reply, "No one called \"Bertram Beta\" here.");
    pgtest_assert_not_contains(reply, "Did you mean");
    snprintf(cmd, sizeof(cmd), "/wo assign %s bob beta", f->wo[1]);
    reply = pgtest_say(f->db, "alice", cmd);
    pgtest_assert_starts_with(reply, "No one called \"bob beta\" here.");
    pgtest_assert_not_contains(reply, "Did you mean");

    pgtest_assert_unchanged(f->c, &snap, "Alice's attempts on Plant Beta");
    pgtest_snap_free(&snap);

    /* And, spelled out, Beta's rows as Bob left them. */
    s = pgtest_qstr(f->c,
                    "SELECT location FROM equipment WHERE number = $1 AND factory_id = "
                    "(SELECT id FROM factories WHERE name = 'Plant Beta')",
                    f->eq[5], NULL);
    assert_string_equal(s, "Packaging hall");
    free(s);
    s = pgtest_qstr(
        f->c,
        "SELECT string_agg(number || ':' || status || ':' || coalesce(assignee_id::text, "
        "'-'), ',' ORDER BY number) FROM work_orders WHERE factory_id = "
        "(SELECT id FROM factories WHERE name = 'Plant Beta')",
        NULL);
    snprintf(want, sizeof(want), "%s:open:-,%s:open:%lld,%s:in_progress:-,%s:open:-", f->wo[1],
             f->wo[2], (long long)f->bertram, f->wo[3], f->wo[4]);
    assert_string_equal(s, want);
    free(s);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM work_order_events e JOIN factories f ON "
                                 "f.id = e.factory_id WHERE f.name = 'Plant Beta'",
                                 NULL),
                     4 + 3);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM work_order_events e JOIN users u ON "
                                 "u.id = e.user_id WHERE u.console_name = 'alice'",
                                 NULL),
                     1); /* her own "created" in setup */
}

/* The db layer refuses too, with Alpha's factory id and Beta's row ids. */
static void test_db_layer_filters_by_factory(void **state)
{
    struct fixture *f = *state;
    struct pgtest_snap snap;
    struct equipment e, *ev;
    struct work_order wo, *wv;
    struct wo_event *events;
    struct arena *a;
    int n, total;

    assert_int_equal(arena_new(&a), 0);
    pgtest_snap_take(f->c, &snap);

    assert_int_equal(db_equipment_get(f->db, a, f->alpha, f->eq[5], &e), -ENOENT);
    assert_int_equal(db_equipment_update(f->db, a, f->alpha, f->eq[5],
                                         &(struct equipment_fields){.location = "Hacked"}, &e),
                     -ENOENT);
    assert_int_equal(db_equipment_search(f->db, a, f->alpha, "grundfos", 10, &ev, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(db_equipment_list(f->db, a, f->alpha, 0, 100, &ev, &n, &total), 0);
    assert_int_equal(total, 2);
    for (int i = 0; i < n; i++)
        assert_true(ev[i].id == f->alpha_eq[0] || ev[i].id == f->alpha_eq[1]);
    for (int i = 3; i <= 5; i++) {
        const char *sug = db_equipment_suggest(f->db, a, f->alpha, f->eq[i]);
        assert_true(!sug || strcmp(sug, f->eq[1]) == 0 || strcmp(sug, f->eq[2]) == 0);
        sug = db_wo_suggest(f->db, a, f->alpha, f->wo[i - 1]);
        assert_true(!sug || strcmp(sug, f->wo[1]) == 0);
    }

    assert_int_equal(db_wo_get(f->db, a, f->alpha, f->wo[4], &wo), -ENOENT);
    assert_int_equal(db_wo_list(f->db, a, f->alpha, WO_ALL, NULL, 0, 0, 100, &wv, &n, &total), 0);
    assert_int_equal(total, 1);
    assert_int_equal(n, 1);
    assert_true(wv[0].id == f->alpha_wo[0]);
    assert_int_equal(db_wo_list_equipment(f->db, a, f->alpha, f->beta_eq[0], 10, &wv, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(db_wo_events(f->db, a, f->alpha, f->beta_wo[3], 10, &events, &n, &total), 0);
    assert_int_equal(n, 0);
    assert_int_equal(total, 0);

    /* Writes naming Beta's rows under Alpha's id fail and change nothing. */
    assert_int_equal(
        db_wo_set_status(f->db, f->alpha, f->beta_wo[0], f->alice, "open", "completed"), -ESTALE);
    assert_int_equal(db_wo_assign(f->db, f->alpha, f->beta_wo[0], f->alice, f->alice, "Alice"),
                     -ENOENT);
    /* Alpha's own work order cannot be given to Beta's Bertram. */
    assert_int_equal(
        db_wo_assign(f->db, f->alpha, f->alpha_wo[0], f->alice, f->bertram, "Bertram Beta"),
        -ENOENT);
    assert_int_equal(db_begin(f->db), 0);
    assert_true(db_wo_add_note(f->db, f->alpha, f->beta_wo[0], f->alice, "x") < 0);
    assert_int_equal(db_rollback(f->db), 0);
    assert_int_equal(db_begin(f->db), 0);
    assert_true(db_wo_create(f->db, a, f->alpha, f->alice, f->beta_eq[0], "x", NULL, &wo) < 0);
    assert_int_equal(db_rollback(f->db), 0);
    assert_int_equal(db_stats(f->db, a, f->alpha, &(struct plant_stats){0}), 0);

    pgtest_assert_unchanged(f->c, &snap, "db calls with Alpha's id on Beta's rows");
    pgtest_snap_free(&snap);
    arena_free(a);
}

static void test_stranger_refused(void **state)
{
    struct fixture *f = *state;
    struct pgtest_snap snap;
    char cmd[128];
    const char *const forms[] = {
        "/start",
        "/help",
        "/help wo",
        "/equip",
        "/equip list",
        "/equip search siemens",
        "/equip view %s",
        "/equip %s",
        "/equip add Siemens G120C serial=X1 location=Line 9",
        "/equip edit %s location=Nowhere",
        "/wo",
        "/wo list all",
        "/wo view WO-2026-000001",
        "/wo new %s Stranger danger",
        "/wo status WO-2026-000001 completed",
        "/wo note WO-2026-000001 hi",
        "/wo assign WO-2026-000001 me",
        "/stats",
        "/frobnicate",
        "hello",
        "EQ-2026-000001",
        "/START",
        "/equip@RivetBot list",
    };

    pgtest_snap_take(f->c, &snap);
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        const char *reply;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(cmd, sizeof(cmd), forms[i], f->eq[1]);
#pragma GCC diagnostic pop
        reply = pgtest_say(f->db, "mallory", cmd);
        pgtest_assert_starts_with(reply, NOT_REGISTERED);
        pgtest_assert_not_contains(reply, "Siemens");
        pgtest_assert_not_contains(reply, "Grundfos");
    }
    /* Codes that do not exist. */
    for (const char *const *c = (const char *const[]){"/start NOPE", "/start AAAA-BBBB-CCCC",
                                                      "/start 2345-6789-ABCD-EFGH",
                                                      "/start '; DROP TABLE invites; --", NULL};
         *c; c++)
        pgtest_assert_starts_with(pgtest_say(f->db, "mallory", *c), BAD_CODE);
    pgtest_assert_unchanged(f->c, &snap, "a stranger's commands");
    pgtest_snap_free(&snap);
}

/* An invite as typed: its code, lower-cased when lower. */
static void invite(struct fixture *f, int64_t factory, const char *role, int uses, bool lower,
                   char *cmd, size_t n, char *code)
{
    char c[16];

    assert_int_equal(db_invite_create(f->db, factory, role, uses, 3600, c, sizeof(c)), 0);
    assert_int_equal(strlen(c), 14);
    if (lower)
        for (char *p = c; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    snprintf(cmd, n, "/start %s", c);
    if (code)
        memcpy(code, c, sizeof(c));
}

static void test_invites(void **state)
{
    struct fixture *f = *state;
    struct pgtest_snap snap;
    char cmd[64], cmd2[64], code[16], norm[16], *s;
    const char *reply;
    size_t k = 0;

    /* A one-use technician invite to Beta. */
    invite(f, f->beta, "technician", 1, false, cmd, sizeof(cmd), code);
    pgtest_snap_take(f->c, &snap);
    reply = pgtest_say(f->db, "mallory", cmd);
    pgtest_assert_starts_with(reply, "👋 Welcome to Rivet, mallory! You joined Plant Beta as "
                                     "technician.");
    pgtest_assert_delta(f->c, &snap,
                        &(struct pgtest_delta){.added[PT_USERS] = 1, .changed[PT_INVITES] = 1},
                        "joining with an invite");
    pgtest_snap_free(&snap);
    s = pgtest_qstr(f->c,
                    "SELECT f.name || '/' || u.role || '/' || u.display_name FROM users u JOIN "
                    "factories f ON f.id = u.factory_id WHERE u.console_name = 'mallory'",
                    NULL);
    assert_string_equal(s, "Plant Beta/technician/mallory");
    free(s);
    for (const char *p = code; *p; p++)
        if (*p != '-')
            norm[k++] = *p;
    norm[k] = '\0';
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT uses_left FROM invites WHERE code_sha256 = "
                                 "encode(sha256(convert_to($1, 'UTF8')), 'hex')",
                                 norm, NULL),
                     0);
    /* Only the hash is kept: the code itself is nowhere in the table. */
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM invites i WHERE strpos(i::text, $1) > 0",
                                 norm, NULL),
                     0);

    /* The new member sees Beta, and only Beta. */
    reply = pgtest_say(f->db, "mallory", "/equip list");
    pgtest_assert_contains(reply, "Equipment (5)");
    pgtest_assert_contains(reply, "Grundfos CR 10-4");
    pgtest_assert_not_contains(reply, "Siemens");

    /* Used up: the next holder is refused and nothing changes. A member
     * with another code is told so, and the code is not spent. */
    invite(f, f->alpha, "admin", 1, false, cmd2, sizeof(cmd2), NULL);
    pgtest_snap_take(f->c, &snap);
    pgtest_assert_starts_with(pgtest_say(f->db, "trudy", cmd), BAD_CODE);
    pgtest_assert_starts_with(pgtest_say(f->db, "trudy", "/equip list"), NOT_REGISTERED);
    pgtest_assert_starts_with(pgtest_say(f->db, "mallory", cmd2),
                              "You are already a member of Plant Beta.");
    pgtest_assert_unchanged(f->c, &snap, "a used-up code and a member's /start");
    pgtest_snap_free(&snap);

    /* A two-use supervisor invite, typed in lower case. */
    invite(f, f->alpha, "supervisor", 2, true, cmd, sizeof(cmd), NULL);
    pgtest_assert_starts_with(pgtest_say(f->db, "peggy", cmd),
                              "👋 Welcome to Rivet, peggy! You joined Plant Alpha as supervisor.");
    pgtest_assert_starts_with(pgtest_say(f->db, "victor", cmd),
                              "👋 Welcome to Rivet, victor! You joined Plant Alpha as supervisor.");
    pgtest_snap_take(f->c, &snap);
    pgtest_assert_starts_with(pgtest_say(f->db, "walter", cmd), BAD_CODE);
    pgtest_assert_unchanged(f->c, &snap, "a third use of a two-use code");
    pgtest_snap_free(&snap);
    reply = pgtest_say(f->db, "victor", "/equip list");
    pgtest_assert_contains(reply, "Equipment (2)");
    assert_no_beta(reply, NULL);

    /* Expired: refused like a wrong code. */
    invite(f, f->beta, "admin", 5, false, cmd, sizeof(cmd), code);
    k = 0;
    for (const char *p = code; *p; p++)
        if (*p != '-')
            norm[k++] = *p;
    norm[k] = '\0';
    PQclear(pgtest_q(f->c,
                     "UPDATE invites SET expires_at = now() - interval '1 minute' "
                     "WHERE code_sha256 = encode(sha256(convert_to($1, 'UTF8')), 'hex')",
                     norm, NULL));
    pgtest_snap_take(f->c, &snap);
    pgtest_assert_starts_with(pgtest_say(f->db, "oscar", cmd), BAD_CODE);
    pgtest_assert_starts_with(pgtest_say(f->db, "oscar", "/stats"), NOT_REGISTERED);
    pgtest_assert_unchanged(f->c, &snap, "an expired code");
    pgtest_snap_free(&snap);
}

#define RACERS 8
#define RACE_USES 3

struct racer {
    struct db *db;
    pthread_barrier_t *start;
    const char *cmd;
    char sender[32];
    int r;
    bool joined, refused;
    char err[256];
};

/* One stranger's /start, in its own transaction on its own connection. */
static void *redeem(void *arg)
{
    struct racer *x = arg;
    struct arena *a = NULL;
    struct replies out;
    struct msg m = {.channel = CHANNEL_CONSOLE,
                    .sender_id = x->sender,
                    .sender_name = x->sender,
                    .text = x->cmd,
                    .text_len = strlen(x->cmd)};

    pthread_barrier_wait(x->start);
    if (arena_new(&a) < 0) {
        x->r = -ENOMEM;
        return NULL;
    }
    replies_init(&out);
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
    if (out.head) {
        x->joined =
            strncmp(out.head->text, "👋 Welcome to Rivet", strlen("👋 Welcome to Rivet")) == 0;
        x->refused = strncmp(out.head->text, BAD_CODE, strlen(BAD_CODE)) == 0;
    }
    arena_free(a);
    return NULL;
}

/* Strangers racing for a three-use code: exactly three get in. */
static void test_invite_race(void **state)
{
    struct fixture *f = *state;
    struct racer x[RACERS];
    pthread_t th[RACERS];
    pthread_barrier_t start;
    char cmd[64], code[16], norm[16];
    int joined = 0, refused = 0;
    size_t k = 0;

    invite(f, f->beta, "technician", RACE_USES, false, cmd, sizeof(cmd), code);
    for (const char *p = code; *p; p++)
        if (*p != '-')
            norm[k++] = *p;
    norm[k] = '\0';
    assert_int_equal(pthread_barrier_init(&start, NULL, RACERS), 0);
    for (int i = 0; i < RACERS; i++) {
        memset(&x[i], 0, sizeof(x[i]));
        x[i].db = pgtest_connect(&f->d);
        x[i].start = &start;
        x[i].cmd = cmd;
        snprintf(x[i].sender, sizeof(x[i].sender), "racer-%d", i);
    }
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, redeem, &x[i]), 0);
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < RACERS; i++) {
        if (x[i].r != 0)
            fail_msg("%s: %s (%s)", x[i].sender, strerror(-x[i].r), x[i].err);
        assert_true(x[i].joined != x[i].refused);
        joined += x[i].joined;
        refused += x[i].refused;
        db_close(x[i].db);
    }
    assert_int_equal(joined, RACE_USES);
    assert_int_equal(refused, RACERS - RACE_USES);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT count(*) FROM users u JOIN factories f ON "
                                 "f.id = u.factory_id WHERE u.console_name LIKE 'racer-%' "
                                 "AND f.name = 'Plant Beta' AND u.role = 'technician'",
                                 NULL),
                     RACE_USES);
    assert_int_equal(pgtest_qint(f->c,
                                 "SELECT uses_left FROM invites WHERE code_sha256 = "
                                 "encode(sha256(convert_to($1, 'UTF8')), 'hex')",
                                 norm, NULL),
                     0);
}

/* A switched-off member is refused, and cannot come back with a code. */
static void test_deactivated_member(void **state)
{
    struct fixture *f = *state;
    struct pgtest_snap snap;
    char cmd[64];

    invite(f, f->alpha, "technician", 1, false, cmd, sizeof(cmd), NULL);
    PQclear(pgtest_q(f->c, "UPDATE users SET active = false WHERE console_name = 'anton'", NULL));
    pgtest_snap_take(f->c, &snap);
    for (const char *const *t =
             (const char *const[]){"/equip list", "/wo list all", "/stats", cmd, NULL};
         *t; t++) {
        const char *reply = pgtest_say(f->db, "anton", *t);
        pgtest_assert_starts_with(reply, "Your access to Rivet is switched off.");
        pgtest_assert_not_contains(reply, "Siemens");
    }
    pgtest_assert_unchanged(f->c, &snap, "a switched-off member's commands");
    pgtest_snap_free(&snap);
    PQclear(pgtest_q(f->c, "UPDATE users SET active = true WHERE console_name = 'anton'", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpha_cannot_reach_beta),
        cmocka_unit_test(test_db_layer_filters_by_factory),
        cmocka_unit_test(test_stranger_refused),
        cmocka_unit_test(test_invites),
        cmocka_unit_test(test_invite_race),
        cmocka_unit_test(test_deactivated_member),
    };
    int status;

    if (!pgtest_init(&status))
        return status;
    return cmocka_run_group_tests_name("integration-isolation", tests, setup, teardown);
}
