/* Fuzzy equipment search over a plant of a few hundred machines, generated
 * deterministically: misspelled manufacturers and models still find the
 * machine in the first three results; nonsense finds nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "pgtest.h"

#define MACHINES 320
#define TOP 3

enum kind { DRIVE, PUMP, MOTOR, PLC, COMPRESSOR, GEARMOTOR };

static const struct model {
    const char *manufacturer, *model;
    enum kind kind;
    const char *serial_prefix;
} catalog[] = {
    {"Siemens", "G120C", DRIVE, "XAJ"},
    {"Siemens", "G110M", DRIVE, "XAL"},
    {"Siemens", "SINAMICS S120", DRIVE, "T-S"},
    {"Siemens", "SINAMICS V20", DRIVE, "T-V"},
    {"Siemens", "SIMATIC S7-1500", PLC, "SVP"},
    {"Siemens", "SIMATIC S7-1200", PLC, "SVP"},
    {"Siemens", "1LE1003-1DB2", MOTOR, "UD"},
    {"ABB", "ACS580", DRIVE, "1S"},
    {"ABB", "ACS880", DRIVE, "1S"},
    {"ABB", "ACS355", DRIVE, "1S"},
    {"ABB", "ACH580", DRIVE, "1S"},
    {"ABB", "M3BP 160MLA", MOTOR, "3G"},
    {"Schneider Electric", "Altivar 320", DRIVE, "8B"},
    {"Schneider Electric", "Altivar 630", DRIVE, "8B"},
    {"Schneider Electric", "Modicon M580", PLC, "21"},
    {"Schneider Electric", "Modicon M241", PLC, "21"},
    {"WEG", "W22", MOTOR, "1"},
    {"WEG", "W21", MOTOR, "1"},
    {"WEG", "CFW500", DRIVE, "10"},
    {"WEG", "CFW11", DRIVE, "10"},
    {"Grundfos", "CR 10-4", PUMP, "P2"},
    {"Grundfos", "CR 15-3", PUMP, "P2"},
    {"Grundfos", "CR 32-2", PUMP, "P2"},
    {"Grundfos", "CM 5-4", PUMP, "P1"},
    {"Grundfos", "NB 65-250", PUMP, "P1"},
    {"Grundfos", "TP 100-250", PUMP, "P1"},
    {"SEW-Eurodrive", "MOVIMOT MM22", GEARMOTOR, "01."},
    {"SEW-Eurodrive", "MOVITRAC LTE-B", DRIVE, "01."},
    {"SEW-Eurodrive", "R47 DRN90L4", GEARMOTOR, "01."},
    {"SEW-Eurodrive", "K77 DRN100LS4", GEARMOTOR, "01."},
    {"Danfoss", "VLT FC-302", DRIVE, "0"},
    {"Danfoss", "VLT FC-102", DRIVE, "0"},
    {"Danfoss", "VLT Micro FC-51", DRIVE, "0"},
    {"Danfoss", "FC-360", DRIVE, "0"},
    {"Allen-Bradley", "PowerFlex 525", DRIVE, "C"},
    {"Allen-Bradley", "PowerFlex 755", DRIVE, "C"},
    {"Allen-Bradley", "CompactLogix 5380", PLC, "D"},
    {"Allen-Bradley", "ControlLogix 5580", PLC, "D"},
    {"Yaskawa", "GA700", DRIVE, "1W"},
    {"Yaskawa", "GA500", DRIVE, "1W"},
    {"Yaskawa", "A1000", DRIVE, "1W"},
    {"Yaskawa", "V1000", DRIVE, "1W"},
    {"KSB", "Etanorm 065-040-250", PUMP, "9"},
    {"KSB", "Movitec VCF 10", PUMP, "9"},
    {"KSB", "Etaline 050-050-160", PUMP, "9"},
    {"KSB", "Multitec 32", PUMP, "9"},
    {"Atlas Copco", "GA 37 VSD", COMPRESSOR, "API"},
    {"Atlas Copco", "GA 75", COMPRESSOR, "API"},
    {"Kaeser", "ASD 40", COMPRESSOR, "1"},
    {"Lenze", "i550", DRIVE, "3"},
    {"Nord", "SK 200E", GEARMOTOR, "4"},
};
#define N_CATALOG (sizeof(catalog) / sizeof(catalog[0]))

static const char *const names[][6] = {
    [DRIVE] = {"Main drive", "Conveyor drive", "Fan drive", "Mixer drive", "Extruder drive",
               "Winder drive"},
    [PUMP] = {"Cooling water pump", "Boiler feed pump", "Condensate pump", "Dosing pump",
              "Fire water pump", "Transfer pump"},
    [MOTOR] = {"Conveyor motor", "Fan motor", "Crusher motor", "Agitator motor", "Hoist motor",
               "Blower motor"},
    [PLC] = {"Line controller", "Packaging PLC", "Filler PLC", "Palletizer PLC", "Utilities PLC",
             "Press PLC"},
    [COMPRESSOR] = {"Air compressor 1", "Air compressor 2", "Standby compressor",
                    "Air compressor 3", "Booster compressor", "Air compressor 4"},
    [GEARMOTOR] = {"Roller conveyor", "Belt conveyor", "Turntable", "Lift table", "Screw conveyor",
                   "Chain conveyor"},
};

static const char *const locations[] = {
    "Line 1",          "Line 2",       "Line 3",          "Line 4",        "Line 5",
    "Line 6",          "Boiler house", "Compressor room", "Paint shop",    "Packaging hall",
    "Water treatment", "Warehouse",    "Press shop",      "Cooling tower", "Tank farm",
};
#define N_LOCATIONS (sizeof(locations) / sizeof(locations[0]))

struct fixture {
    struct pgtest_db d;
    PGconn *c;
    struct db *db;
    struct arena *a;
    int64_t plant, other;
};

/* A fixed sequence, the same on every machine and every run. */
static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffffff;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    uint32_t seed = 20260601u;
    int64_t user, other_user;

    assert_non_null(f);
    pgtest_db_create(&f->d);
    f->db = pgtest_connect(&f->d);
    f->c = pgtest_pq(&f->d);
    assert_int_equal(arena_new(&f->a), 0);
    pgtest_migrate(f->db);
    f->plant = pgtest_factory(f->db, f->a, "Search Plant");
    user = pgtest_user(f->db, f->a, f->plant, "searcher", "Sam Search", "technician");
    f->other = pgtest_factory(f->db, f->a, "Other Plant");
    other_user = pgtest_user(f->db, f->a, f->other, "other", "Olga Other", "admin");

    assert_int_equal(db_begin(f->db), 0);
    for (unsigned i = 0; i < MACHINES; i++) {
        /* Every catalog model once, then a random mix. */
        const struct model *m = &catalog[i < N_CATALOG ? i : lcg(&seed) % N_CATALOG];
        char serial[32];
        const char *name = names[m->kind][lcg(&seed) % 6];
        const char *loc = locations[lcg(&seed) % N_LOCATIONS];

        snprintf(serial, sizeof(serial), "%s%07u", m->serial_prefix, lcg(&seed) % 10000000u);
        pgtest_equipment(f->db, f->a, f->plant, user, m->manufacturer, m->model,
                         lcg(&seed) % 4 ? name : NULL, serial, loc, NULL);
    }
    /* The other factory owns a few of the same machines. */
    for (unsigned i = 0; i < 10; i++)
        pgtest_equipment(f->db, f->a, f->other, other_user, catalog[i].manufacturer,
                         catalog[i].model, "Other plant machine", "OTHER-1", "Line 1", NULL);
    assert_int_equal(db_commit(f->db), 0);
    assert_int_equal(pgtest_qint(f->c, "SELECT count(*) FROM equipment", NULL), MACHINES + 10);
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

/* Searches text in the plant; asserts no row is the other factory's. */
static int search(struct fixture *f, struct arena *a, const char *text, int limit,
                  struct equipment **v)
{
    int n = -1, r;

    r = db_equipment_search(f->db, a, f->plant, text, limit, v, &n);
    if (r < 0)
        fail_msg("db_equipment_search(%s): %s (%s)", text, strerror(-r), db_errmsg(f->db));
    for (int i = 0; i < n; i++)
        if ((*v)[i].name && strcmp((*v)[i].name, "Other plant machine") == 0)
            fail_msg("search \"%s\" returned the other factory's %s", text, (*v)[i].number);
    return n;
}

static void print_results(const char *text, const struct equipment *v, int n)
{
    fprintf(stderr, "# \"%s\" found %d:\n", text, n);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "#   %d. %s %s %s | %s | %s | %s\n", i + 1, v[i].number, v[i].manufacturer,
                v[i].model, v[i].name ? v[i].name : "-", v[i].serial ? v[i].serial : "-",
                v[i].location ? v[i].location : "-");
}

static const struct typo {
    const char *query;
    const char *manufacturer, *model; /* what one of the first three must be */
} typos[] = {
    {"simens g120", "Siemens", "G120C"},
    {"grundfoss cr10", "Grundfos", "CR 10-4"},
    {"grundfos cr 10", "Grundfos", "CR 10-4"},
    {"schnieder altivar 320", "Schneider Electric", "Altivar 320"},
    {"schneider electirc altivar 630", "Schneider Electric", "Altivar 630"},
    {"danfos fc 302", "Danfoss", "VLT FC-302"},
    {"alen bradley powerflex 525", "Allen-Bradley", "PowerFlex 525"},
    {"allen bradly powerflx 755", "Allen-Bradley", "PowerFlex 755"},
    {"yaskava ga700", "Yaskawa", "GA700"},
    {"sew eurodrvie movimot", "SEW-Eurodrive", "MOVIMOT MM22"},
    {"ksb etanrom", "KSB", "Etanorm 065-040-250"},
    {"abb acss580", "ABB", "ACS580"},
    {"abb acs-580", "ABB", "ACS580"},
    {"weg w22 motr", "WEG", "W22"},
    {"seimens s7-1500", "Siemens", "SIMATIC S7-1500"},
    {"siemens simatc s7 1200", "Siemens", "SIMATIC S7-1200"},
    {"atlas copko ga 37", "Atlas Copco", "GA 37 VSD"},
    {"SIEMENS G120C", "Siemens", "G120C"},
};

static void test_misspellings_find_the_machine(void **state)
{
    struct fixture *f = *state;
    int failed = 0;

    for (size_t i = 0; i < sizeof(typos) / sizeof(typos[0]); i++) {
        const struct typo *t = &typos[i];
        struct arena *a;
        struct equipment *v;
        bool found = false;
        int n;

        assert_int_equal(arena_new(&a), 0);
        n = search(f, a, t->query, 10, &v);
        for (int k = 0; k < n && k < TOP; k++)
            found |= strcmp(v[k].manufacturer, t->manufacturer) == 0 &&
                     strcmp(v[k].model, t->model) == 0;
        if (!found) {
            fprintf(stderr, "# expected %s %s in the first %d\n", t->manufacturer, t->model, TOP);
            print_results(t->query, v, n);
            failed++;
        }
        arena_free(a);
    }
    assert_int_equal(failed, 0);
}

/* Misspelled names and locations: every one of the first three is right. */
static void test_misspelled_name_and_location(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *query, *name, *location;
    } cases[] = {
        {"compresor room", NULL, "Compressor room"},
        {"packagng hall", NULL, "Packaging hall"},
        {"boiler feed pmup", "Boiler feed pump", NULL},
        {"coolng water pump", "Cooling water pump", NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct arena *a;
        struct equipment *v;
        int n;

        assert_int_equal(arena_new(&a), 0);
        n = search(f, a, cases[i].query, 10, &v);
        if (n < TOP) {
            print_results(cases[i].query, v, n);
            fail_msg("\"%s\": fewer than %d results", cases[i].query, TOP);
        }
        for (int k = 0; k < TOP; k++) {
            bool ok = cases[i].name
                          ? v[k].name && strcmp(v[k].name, cases[i].name) == 0
                          : v[k].location && strcmp(v[k].location, cases[i].location) == 0;
            if (!ok) {
                print_results(cases[i].query, v, n);
                fail_msg("\"%s\": result %d is not %s", cases[i].query, k + 1,
                         cases[i].name ? cases[i].name : cases[i].location);
            }
        }
        arena_free(a);
    }
}

/* Exact serials and equipment fragments match as substrings, first. */
static void test_substring_first(void **state)
{
    struct fixture *f = *state;
    struct arena *a;
    struct equipment *v;
    char *serial;
    int n;

    assert_int_equal(arena_new(&a), 0);
    serial = pgtest_qstr(f->c,
                         "SELECT serial FROM equipment e JOIN factories f ON f.id = e.factory_id "
                         "WHERE f.name = 'Search Plant' AND model = 'GA700' ORDER BY e.id LIMIT 1",
                         NULL);
    assert_non_null(serial);
    n = search(f, a, serial, 10, &v);
    assert_true(n >= 1);
    assert_string_equal(v[0].serial, serial);
    /* Lower case finds it too. */
    for (char *p = serial; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    n = search(f, a, serial, 10, &v);
    assert_true(n >= 1);
    assert_int_equal(strcasecmp(v[0].serial, serial), 0);
    free(serial);

    /* A model every S7 has: all hits first, none of them anything else. */
    n = search(f, a, "S7-1", 50, &v);
    assert_true(n >= 2);
    for (int k = 0; k < n; k++)
        if (strncmp(v[k].model, "SIMATIC S7-1", 12) != 0) {
            /* Fuzzy hits may follow, but only after every substring hit. */
            for (int j = k; j < n; j++)
                assert_false(strstr(v[j].model, "S7-1") != NULL);
            break;
        }
    arena_free(a);
}

static void test_nonsense_finds_nothing(void **state)
{
    struct fixture *f = *state;
    /* % and _ are literal characters, not LIKE wildcards; \ is not an
     * escape. */
    const char *const queries[] = {
        "zzqx vvkkw", "qqqqqqqq", "xylophone quartz",           "%", "_", "%%%", "_ _ _",
        "\\",         "%\\_",     "Other plant machine OTHER-1"};

    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        struct arena *a;
        struct equipment *v;
        int n;

        assert_int_equal(arena_new(&a), 0);
        n = search(f, a, queries[i], 10, &v);
        if (n != 0) {
            print_results(queries[i], v, n);
            fail_msg("\"%s\" should find nothing", queries[i]);
        }
        arena_free(a);
    }
}

/* The same through the conversation. */
static void test_search_command(void **state)
{
    struct fixture *f = *state;
    struct pgtest_snap snap;
    const char *reply;

    pgtest_snap_take(f->c, &snap);
    reply = pgtest_say(f->db, "searcher", "/equip search simens g120");
    pgtest_assert_starts_with(reply, "🔎 10 matches for \"simens g120\" (best first):");
    pgtest_assert_contains(reply, "Siemens G120C");
    reply = pgtest_say(f->db, "searcher", "/equip grundfoss cr 10");
    pgtest_assert_contains(reply, "Grundfos CR 10-4");
    reply = pgtest_say(f->db, "searcher", "/equip search zzqx vvkkw");
    pgtest_assert_starts_with(reply, "No equipment matches \"zzqx vvkkw\". Try fewer words");
    reply = pgtest_say(f->db, "searcher", "/equip search %");
    pgtest_assert_starts_with(reply, "No equipment matches \"%\"");
    reply = pgtest_say(f->db, "searcher", "/equip view atlas copko ga 37");
    pgtest_assert_contains(reply, "Atlas Copco GA 37 VSD");
    pgtest_assert_unchanged(f->c, &snap, "searches");
    pgtest_snap_free(&snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_misspellings_find_the_machine),
        cmocka_unit_test(test_misspelled_name_and_location),
        cmocka_unit_test(test_substring_first),
        cmocka_unit_test(test_nonsense_finds_nothing),
        cmocka_unit_test(test_search_command),
    };
    int status;

    if (!pgtest_init(&status))
        return status;
    return cmocka_run_group_tests_name("integration-search", tests, setup, teardown);
}
