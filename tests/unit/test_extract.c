/* Unit tests for ocr/extract.c: the fields read from recorded OCR texts
 * (tests/fixtures/ocr-text, see its README), the manufacturer alias table,
 * confidences, and input that must neither crash nor make fields up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "nameplate.h"

#define TEXTS FIXTURES "/ocr-text"
#define MAX_TEXTS 512
#define WANT_MAX 256

/* ---- helpers ---- */

/* The whole file, NUL-terminated (the caller frees), or NULL. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else if (buf) {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

static struct nameplate extract(const char *text)
{
    struct nameplate np;

    assert_int_equal(np_extract(text, strlen(text), NULL, 0, &np), 0);
    return np;
}

static const char *field(const struct nameplate *np, enum np_field f)
{
    return np->f[f].value;
}

static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        size_t n = *p < 0x80         ? 1
                   : (*p >> 5) == 6  ? 2
                   : (*p >> 4) == 14 ? 3
                   : (*p >> 3) == 30 ? 4
                                     : 0;

        if (!n || (n == 2 && *p < 0xC2))
            return false;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

/* ---- expected fields: a flat JSON object of strings ---- */

struct want {
    char v[NP_FIELD_COUNT][WANT_MAX]; /* "" when the plate does not print it */
};

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    return p;
}

/* A JSON string at p into out (size n); returns the byte after it or NULL. */
static const char *json_string(const char *p, char *out, size_t n)
{
    size_t k = 0;

    if (*p++ != '"')
        return NULL;
    while (*p && *p != '"') {
        unsigned code = (unsigned char)*p++;

        if (code == '\\') {
            char e = *p++;

            if (e == 'u') {
                char hex[5] = {0};

                for (int i = 0; i < 4 && *p; i++)
                    hex[i] = *p++;
                code = (unsigned)strtoul(hex, NULL, 16);
                if (code >= 0x800 && k + 3 < n) {
                    out[k++] = (char)(0xE0 | code >> 12);
                    out[k++] = (char)(0x80 | ((code >> 6) & 0x3F));
                    out[k++] = (char)(0x80 | (code & 0x3F));
                } else if (code >= 0x80 && k + 2 < n) {
                    out[k++] = (char)(0xC0 | code >> 6);
                    out[k++] = (char)(0x80 | (code & 0x3F));
                } else if (k + 1 < n) {
                    out[k++] = (char)code;
                }
                continue;
            }
            code = (unsigned char)(e == 'n' ? '\n' : e == 't' ? '\t' : e);
        }
        if (k + 1 < n)
            out[k++] = (char)code;
    }
    out[k] = '\0';
    return *p == '"' ? p + 1 : NULL;
}

static bool parse_want(const char *s, struct want *w)
{
    const char *p = skip_ws(s);
    char key[64], val[WANT_MAX];

    memset(w, 0, sizeof(*w));
    if (*p++ != '{')
        return false;
    for (p = skip_ws(p); *p != '}';) {
        int f;

        if (!(p = json_string(p, key, sizeof(key))))
            return false;
        p = skip_ws(p);
        if (*p++ != ':')
            return false;
        if (!(p = json_string(skip_ws(p), val, sizeof(val))))
            return false;
        f = np_field_by_name(key);
        if (f < 0)
            return false;
        snprintf(w->v[f], sizeof(w->v[f]), "%s", val);
        p = skip_ws(p);
        if (*p == ',')
            p = skip_ws(p + 1);
        else if (*p != '}')
            return false;
    }
    return true;
}

/* A value as compared: a decimal comma as a point ("7,5" as printed on a
 * European plate is Rivet's "7.5"). */
static void norm_number(const char *s, char *out, size_t n)
{
    snprintf(out, n, "%s", s);
    for (char *p = out; *p; p++)
        if (*p == ',')
            *p = '.';
}

/* Whether got is want or one of its alternates ("21.8|1.2"): model and
 * serial as np_serial_normalize compares them, manufacturers by canonical
 * name, numbers with a decimal point. */
static bool same_value(enum np_field f, const char *got, const char *want)
{
    char alt[WANT_MAX], a[WANT_MAX], b[WANT_MAX];
    const char *p = want;

    while (*p) {
        size_t n = strcspn(p, "|");

        snprintf(alt, sizeof(alt), "%.*s", (int)n, p);
        p += n + (p[n] == '|');
        if (f == NP_MODEL || f == NP_SERIAL) {
            np_serial_normalize(got, a, sizeof(a));
            np_serial_normalize(alt, b, sizeof(b));
        } else if (f == NP_MANUFACTURER) {
            const char *ca = np_manufacturer_canonical(got), *cb = np_manufacturer_canonical(alt);

            snprintf(a, sizeof(a), "%s", ca ? ca : got);
            snprintf(b, sizeof(b), "%s", cb ? cb : alt);
            if (!strcasecmp(a, b))
                return true;
            continue;
        } else {
            norm_number(got, a, sizeof(a));
            norm_number(alt, b, sizeof(b));
        }
        if (!strcmp(a, b))
            return true;
    }
    return false;
}

/* ---- the recorded texts ---- */

struct sample {
    char name[256];
    char *text;
    size_t len;
    struct want want;
};

static struct sample samples[MAX_TEXTS];
static size_t n_samples;

static int cmp_sample(const void *a, const void *b)
{
    return strcmp(((const struct sample *)a)->name, ((const struct sample *)b)->name);
}

static int load_samples(void **state)
{
    DIR *d = opendir(TEXTS);
    struct dirent *de;

    (void)state;
    if (!d)
        return -1;
    while ((de = readdir(d)) && n_samples < MAX_TEXTS) {
        struct sample *s = &samples[n_samples];
        size_t n = strlen(de->d_name), jl;
        char path[1024];
        char *json;

        if (n < 5 || strcmp(de->d_name + n - 4, ".txt"))
            continue;
        snprintf(s->name, sizeof(s->name), "%.*s", (int)(n - 4), de->d_name);
        snprintf(path, sizeof(path), "%s/%s", TEXTS, de->d_name);
        s->text = read_file(path, &s->len);
        snprintf(path, sizeof(path), "%s/%s.json", TEXTS, s->name);
        json = read_file(path, &jl);
        if (!s->text || !json || !parse_want(json, &s->want)) {
            fprintf(stderr, "bad fixture %s\n", s->name);
            free(json);
            closedir(d);
            return -1;
        }
        free(json);
        n_samples++;
    }
    closedir(d);
    qsort(samples, n_samples, sizeof(samples[0]), cmp_sample);
    return 0;
}

static int free_samples(void **state)
{
    (void)state;
    for (size_t i = 0; i < n_samples; i++)
        free(samples[i].text);
    n_samples = 0;
    return 0;
}

static bool is_hand(const struct sample *s)
{
    return !strncmp(s->name, "hand-", 5);
}

static struct nameplate extract_sample(const struct sample *s)
{
    struct nameplate np;

    assert_int_equal(np_extract(s->text, s->len, NULL, 0, &np), 0);
    return np;
}

/* Hand-written texts, one per language and noise case: every field exact,
 * nothing more. */
static void test_hand_texts(void **state)
{
    size_t n = 0, bad = 0;

    (void)state;
    for (size_t i = 0; i < n_samples; i++) {
        const struct sample *s = &samples[i];
        struct nameplate np;

        if (!is_hand(s))
            continue;
        n++;
        np = extract_sample(s);
        for (int f = 0; f < NP_FIELD_COUNT; f++) {
            const char *got = field(&np, (enum np_field)f), *want = s->want.v[f];

            if (*want ? same_value((enum np_field)f, got, want) : !*got)
                continue;
            printf("# %s: %s is \"%s\", want \"%s\"\n", s->name, np_field_name((enum np_field)f),
                   got, want);
            bad++;
        }
    }
    assert_true(n >= 10);
    assert_int_equal(bad, 0);
}

/* Texts Tesseract read from rendered plates: the OCR misreads some values,
 * so these are held to rates. Extraction must find most of what the text
 * still holds, must not put a value where the plate prints none, and a
 * wrong value is rare (an OCR misread passed through as printed). */
static void test_recorded_texts(void **state)
{
    size_t want[NP_FIELD_COUNT] = {0}, ok[NP_FIELD_COUNT] = {0}, wrong[NP_FIELD_COUNT] = {0},
           extra[NP_FIELD_COUNT] = {0}, n = 0, tw = 0, tok = 0, twrong = 0, textra = 0;

    (void)state;
    for (size_t i = 0; i < n_samples; i++) {
        const struct sample *s = &samples[i];
        struct nameplate np;

        if (is_hand(s))
            continue;
        n++;
        np = extract_sample(s);
        for (int f = 0; f < NP_FIELD_COUNT; f++) {
            const char *got = field(&np, (enum np_field)f), *w = s->want.v[f];

            if (!*w) {
                if (*got) {
                    extra[f]++;
                    printf("# %s: %s \"%s\" is not on the plate\n", s->name,
                           np_field_name((enum np_field)f), got);
                }
                continue;
            }
            want[f]++;
            if (!*got)
                continue;
            if (same_value((enum np_field)f, got, w))
                ok[f]++;
            else
                wrong[f]++;
        }
    }
    printf("# %zu recorded texts\n# %-17s %5s %5s %5s %5s\n", n, "field", "of", "ok", "wrong",
           "extra");
    for (int f = 0; f < NP_FIELD_COUNT; f++) {
        printf("# %-17s %5zu %5zu %5zu %5zu  (%.0f%%)\n", np_field_name((enum np_field)f), want[f],
               ok[f], wrong[f], extra[f], want[f] ? 100.0 * (double)ok[f] / (double)want[f] : 0);
        tw += want[f];
        tok += ok[f];
        twrong += wrong[f];
        textra += extra[f];
    }
    printf("# all fields: %zu of %zu (%.1f%%), %zu wrong, %zu not on the plate\n", tok, tw,
           100.0 * (double)tok / (double)tw, twrong, textra);
    assert_true(n >= 30);
    assert_true(tok * 100 >= tw * 60);   /* measured: 63% */
    assert_true(twrong * 100 <= tw * 4); /* measured: 3.5%, OCR misreads passed through */
    assert_true(textra <= 1);
    /* the key fields, on which Rivet decides whether to ask the LLM */
    assert_true(ok[NP_MANUFACTURER] * 100 >= want[NP_MANUFACTURER] * 75);
    assert_true(wrong[NP_MANUFACTURER] <= 1);
}

/* The same texts read from many threads at once give the same fields. */
struct thread_arg {
    size_t from;
    int mismatches;
};

static void *reader(void *p)
{
    struct thread_arg *a = p;

    for (size_t k = 0; k < n_samples; k++) {
        const struct sample *s = &samples[(a->from + k) % n_samples];
        struct nameplate np, again;

        if (np_extract(s->text, s->len, NULL, 0, &np) ||
            np_extract(s->text, s->len, NULL, 0, &again) || memcmp(&np, &again, sizeof(np)))
            a->mismatches++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t th[8];
    struct thread_arg args[8];

    (void)state;
    for (int i = 0; i < 8; i++) {
        args[i] = (struct thread_arg){.from = (size_t)i * 7};
        assert_int_equal(pthread_create(&th[i], NULL, reader, &args[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].mismatches, 0);
    }
}

/* ---- the alias table ---- */

static void test_canonical(void **state)
{
    (void)state;
    assert_string_equal(np_manufacturer_canonical("Allen-Bradley"), "Allen-Bradley");
    assert_string_equal(np_manufacturer_canonical("allen bradley"), "Allen-Bradley");
    assert_string_equal(np_manufacturer_canonical("A-B"), "Allen-Bradley");
    assert_string_equal(np_manufacturer_canonical("A.B."), "Allen-Bradley");
    assert_string_equal(np_manufacturer_canonical("ROCKWELL AUTOMATION"), "Allen-Bradley");
    assert_string_equal(np_manufacturer_canonical("Square D"), "Schneider Electric");
    assert_string_equal(np_manufacturer_canonical("square-d"), "Schneider Electric");
    assert_string_equal(np_manufacturer_canonical("T\xc3\xa9l\xc3\xa9m\xc3\xa9"
                                                  "canique"),
                        "Schneider Electric");
    assert_string_equal(np_manufacturer_canonical("TELEMECANIQUE"), "Schneider Electric");
    assert_string_equal(np_manufacturer_canonical("baldor"), "Baldor-Reliance");
    assert_string_equal(np_manufacturer_canonical("Reliance Electric"), "Baldor-Reliance");
    assert_string_equal(np_manufacturer_canonical("BALDOR  RELIANCE"), "Baldor-Reliance");
    assert_string_equal(np_manufacturer_canonical("Cutler Hammer"), "Eaton");
    assert_string_equal(np_manufacturer_canonical("general electric"), "GE");
    assert_string_equal(np_manufacturer_canonical("G.E."), "GE");
    assert_string_equal(np_manufacturer_canonical("sew eurodrive"), "SEW-Eurodrive");
    assert_string_equal(np_manufacturer_canonical("Marathon Electric"), "Marathon");
    assert_string_equal(np_manufacturer_canonical("Regal Rexnord"), "Marathon");
    assert_string_equal(np_manufacturer_canonical("Goulds Pumps"), "Goulds");
    assert_string_equal(np_manufacturer_canonical("johnson controls"), "York");
    assert_string_equal(np_manufacturer_canonical("U.S. Motors"), "Emerson");
    assert_string_equal(np_manufacturer_canonical("leroy somer"), "Leroy-Somer");
    assert_string_equal(np_manufacturer_canonical("Mitsubishi"), "Mitsubishi Electric");
    assert_string_equal(np_manufacturer_canonical(" weg "), "WEG");
    assert_string_equal(np_manufacturer_canonical("Teco Westinghouse"), "Teco-Westinghouse");
    assert_null(np_manufacturer_canonical("Acme Pump Works"));
    assert_null(np_manufacturer_canonical("Electric"));
    assert_null(np_manufacturer_canonical(""));
    assert_null(np_manufacturer_canonical("---"));
    assert_null(np_manufacturer_canonical(NULL));
}

/* ---- values ---- */

static void test_values_normalized(void **state)
{
    struct nameplate np;

    (void)state;
    np = extract("460V 3PH 60Hz 12.4A 1755rpm 7.5kW 10HP\n");
    assert_string_equal(field(&np, NP_VOLTS), "460");
    assert_string_equal(field(&np, NP_PHASE), "3");
    assert_string_equal(field(&np, NP_HZ), "60");
    assert_string_equal(field(&np, NP_AMPS), "12.4");
    assert_string_equal(field(&np, NP_RPM), "1755");
    assert_string_equal(field(&np, NP_KW), "7.5");
    assert_string_equal(field(&np, NP_HP), "10");

    np = extract("VOLTS 460  AMPS 12.4  HZ 60\nRPM 1,755   IP 54   S.F. 1.15\n");
    assert_string_equal(field(&np, NP_VOLTS), "460");
    assert_string_equal(field(&np, NP_AMPS), "12.4");
    assert_string_equal(field(&np, NP_HZ), "60");
    assert_string_equal(field(&np, NP_RPM), "1755");
    assert_string_equal(field(&np, NP_ENCLOSURE), "IP54");
    assert_string_equal(field(&np, NP_SERVICE_FACTOR), "1.15");

    /* O read for 0 inside numbers; an O among letters stays */
    np = extract("SER. NO. 48210663O5\nMODEL 38AUZA-OBOCO\nV0LTS 46O\n");
    assert_string_equal(field(&np, NP_SERIAL), "4821066305");
    assert_string_equal(field(&np, NP_MODEL), "38AUZA-OBOCO");
    assert_string_equal(field(&np, NP_VOLTS), "460");

    /* a list of voltages, a range, a decimal comma */
    np = extract("Tension: 220-240/380-415 V  Courant: 9,5/5,5 A  Fr\xc3\xa9quence: 50/60 Hz\n");
    assert_string_equal(field(&np, NP_VOLTS), "220-240/380-415");
    assert_string_equal(field(&np, NP_AMPS), "9.5/5.5");
    assert_string_equal(field(&np, NP_HZ), "50/60");

    /* "3~", an insulation class as a temperature, a date code */
    np = extract("3~ Mot.  W\xc3\xa4rmeklasse 155 (F)  Baujahr 05.2019\n");
    assert_string_equal(field(&np, NP_PHASE), "3");
    assert_string_equal(field(&np, NP_INSULATION), "F");
    assert_string_equal(field(&np, NP_YEAR), "05.2019");

    /* HP as "haute pression": a pressure, no horsepower */
    np = extract("Pression d'essai: HP 650 PSIG  BP 250 PSIG\n");
    assert_string_equal(field(&np, NP_HP), "");
    np = extract("TEST PRESSURE  HIGH SIDE 650  LOW SIDE 250\nHP 3\n");
    assert_string_equal(field(&np, NP_HP), "3");

    /* implausible values are left out: 460 Hz, phase 2, S.F. 11.15 */
    np = extract("HZ 460   PH 2   S.F. 11.15\n");
    assert_string_equal(field(&np, NP_HZ), "");
    assert_string_equal(field(&np, NP_PHASE), "");
    assert_string_equal(field(&np, NP_SERVICE_FACTOR), "");
    /* faster than two poles at 60 Hz: a box edge read as a 1 */
    np = extract("HZ 60   RPM 11745\n");
    assert_string_equal(field(&np, NP_HZ), "60");
    assert_string_equal(field(&np, NP_RPM), "");
    np = extract("HZ 60   RPM 1745\n");
    assert_string_equal(field(&np, NP_RPM), "1745");
}

/* The manufacturer: alias anywhere, labelled text, a company line. */
static void test_manufacturer(void **state)
{
    struct nameplate np;

    (void)state;
    np = extract("INDUCTION MOTOR\nsquare d company\nMODEL X12\n");
    assert_string_equal(field(&np, NP_MANUFACTURER), "Schneider Electric");
    assert_true(np.f[NP_MANUFACTURER].confidence >= NP_CONFIDENT);

    np = extract("MFD BY: ACME PUMP WORKS, SPRINGFIELD\nMODEL AP-200\n");
    assert_string_equal(field(&np, NP_MANUFACTURER), "Acme Pump Works");

    np = extract("Hersteller: Muster Antriebe GmbH\n");
    assert_string_equal(field(&np, NP_MANUFACTURER), "Muster Antriebe GmbH");

    np = extract("HEAT PUMP\nNorthwind Climate Systems, Inc.\n");
    assert_string_equal(field(&np, NP_MANUFACTURER), "Northwind Climate Systems, Inc.");
    assert_true(np.f[NP_MANUFACTURER].confidence < NP_CONFIDENT); /* a guess: ask the LLM */

    /* OCR confusions in a known name */
    np = extract("S1EMEN5\nTyp 1LE1001-1DB23-4AA4\n");
    assert_string_equal(field(&np, NP_MANUFACTURER), "Siemens");

    /* a parent company in a tag line is not the maker */
    np = extract("A Member of the ABB Group\nCAT. NO. EM3770T\n");
    assert_string_equal(field(&np, NP_MANUFACTURER), "");

    /* a common word that is also a brand needs a line of its own */
    np = extract("CONNECT IN DELTA FOR 230 V\n");
    assert_string_equal(field(&np, NP_MANUFACTURER), "");

    /* a logo's emblem read as a letter: a guess, for the LLM to confirm */
    np = extract("\xc2\xa9 ODAIKIN\nMODEL NO. RZQ71L9V1\n");
    assert_string_equal(field(&np, NP_MANUFACTURER), "Daikin");
    assert_true(np.f[NP_MANUFACTURER].confidence < NP_CONFIDENT);
    np = extract("FOR ODAIKIN UNITS SEE MANUAL\n");
    assert_string_equal(field(&np, NP_MANUFACTURER), "");

    /* under a "MFR" label, a row of other labels is no name */
    np = extract("MFR\nPLANT  DATE  SHIFT\n");
    assert_string_equal(field(&np, NP_MANUFACTURER), "");
}

/* ---- confidence ---- */

/* Words for a text: one per run of non-blank bytes, each with conf(i). */
static size_t make_words(const char *text, struct ocr_word *w, size_t max, float low,
                         size_t low_from, size_t low_to)
{
    size_t n = 0, i = 0, len = strlen(text);

    while (i < len && n < max) {
        size_t s;

        while (i < len && (text[i] == ' ' || text[i] == '\n'))
            i++;
        if (i >= len)
            break;
        s = i;
        while (i < len && text[i] != ' ' && text[i] != '\n')
            i++;
        w[n].start = s;
        w[n].end = i;
        w[n].conf = (s >= low_from && s < low_to) ? low : 95;
        n++;
    }
    return n;
}

static void test_confidence_from_words(void **state)
{
    const char *text = "SIEMENS\nMODEL 1LE1001-1DB23\nSERIAL NO. E0918/1234567\nVOLTS 400\n";
    size_t m = (size_t)(strstr(text, "1LE1001") - text);
    struct ocr_word w[32];
    struct nameplate hi, lo, none;
    size_t n;

    (void)state;
    n = make_words(text, w, 32, 95, 0, 0);
    assert_int_equal(np_extract(text, strlen(text), w, n, &hi), 0);
    n = make_words(text, w, 32, 20, m, m + 1); /* the model's word read badly */
    assert_int_equal(np_extract(text, strlen(text), w, n, &lo), 0);
    assert_int_equal(np_extract(text, strlen(text), NULL, 0, &none), 0);

    assert_string_equal(field(&hi, NP_MODEL), "1LE1001-1DB23");
    assert_string_equal(field(&lo, NP_MODEL), "1LE1001-1DB23");
    assert_true(hi.f[NP_MODEL].confidence >= 0.9f);
    assert_true(lo.f[NP_MODEL].confidence < 0.3f);
    /* the other fields keep theirs */
    assert_true(lo.f[NP_SERIAL].confidence >= 0.9f);
    assert_true(lo.f[NP_MANUFACTURER].confidence >= 0.85f);
    /* without words, 0.9 for every word */
    assert_true(none.f[NP_MODEL].confidence > 0.85f && none.f[NP_MODEL].confidence < 0.95f);
    /* the whole read is as sure as its weakest key field */
    assert_true(hi.confidence >= NP_CONFIDENT && np_confident(&hi));
    assert_true(lo.confidence < NP_CONFIDENT && !np_confident(&lo));
    assert_true(none.f[NP_MODEL].source == NP_SRC_OCR);
}

static float conf_of(const char *text, enum np_field f)
{
    struct nameplate np = extract(text);

    assert_true(np.f[f].value[0] != '\0');
    return np.f[f].confidence;
}

/* An exact label fits best; a label read with confusions, a value on the
 * next line, a bare unit or a guessed company line less. */
static void test_confidence_by_fit(void **state)
{
    float exact = conf_of("VOLTS 460\n", NP_VOLTS);

    (void)state;
    assert_true(exact > conf_of("V0LTS 460\n", NP_VOLTS));
    assert_true(exact > conf_of("VOLTS\n460\n", NP_VOLTS));
    assert_true(conf_of("460 VOLTS\n", NP_VOLTS) > conf_of("460V\n", NP_VOLTS));
    assert_true(conf_of("460V\n", NP_VOLTS) < NP_CONFIDENT);
    assert_true(conf_of("SERIAL NO. AB12345\n", NP_SERIAL) >
                conf_of("5ER1AL N0. AB12345\n", NP_SERIAL));
    assert_true(conf_of("ENCL TEFC\n", NP_ENCLOSURE) > conf_of("TEFC\n", NP_ENCLOSURE));
    assert_true(conf_of("Manufacturer: Acme Pumps\n", NP_MANUFACTURER) >
                conf_of("Acme Pumps Inc.\n", NP_MANUFACTURER));
}

/* ---- nothing made up ---- */

static void assert_no_key_fields(const struct nameplate *np)
{
    assert_string_equal(field(np, NP_MANUFACTURER), "");
    assert_string_equal(field(np, NP_MODEL), "");
    assert_string_equal(field(np, NP_SERIAL), "");
}

static void assert_empty(const struct nameplate *np)
{
    for (int f = 0; f < NP_FIELD_COUNT; f++)
        if (np->f[f].value[0]) {
            printf("# unexpected %s \"%s\"\n", np_field_name((enum np_field)f), np->f[f].value);
            fail();
        }
    assert_true(np->confidence == 0);
}

static void test_no_invention(void **state)
{
    static const char shopping[] = "Shopping list\n"
                                   "2 lbs apples\n12 eggs\nmilk 1 gal\n"
                                   "bread, 2 loaves\ncoffee 500 g\n3 cans tomatoes\n"
                                   "batteries AA x 8\nlight bulbs 60 W (2)\n";
    static const char prose[] =
        "The crew met at seven and walked the line before the shift started. Nobody "
        "had touched the north conveyor since Tuesday, and the belt still squealed on "
        "the second pulley. We agreed to grease it after lunch, check the guards, and "
        "write up what we found for the night team. The forklift is due for its annual "
        "inspection next month; call the dealer about a date.\n";
    struct nameplate np;
    uint32_t x = 2463534242u;
    char buf[4096];

    (void)state;
    np = extract(shopping);
    assert_empty(&np);
    np = extract(prose);
    assert_empty(&np);
    np = extract("");
    assert_empty(&np);
    /* random bytes: nothing to read, and whatever is read is valid UTF-8 */
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof(buf); i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[i] = (char)(round & 1 ? (x & 0xFF) : 0x20 + (x % 0x5F));
        }
        assert_int_equal(np_extract(buf, sizeof(buf), NULL, 0, &np), 0);
        assert_no_key_fields(&np);
        for (int f = 0; f < NP_FIELD_COUNT; f++)
            assert_true(utf8_ok(np.f[f].value));
    }
}

/* The output is cleared first. */
static void test_clears_output(void **state)
{
    struct nameplate np;

    (void)state;
    memset(&np, 0xAB, sizeof(np));
    assert_int_equal(np_extract("", 0, NULL, 0, &np), 0);
    assert_empty(&np);
    memset(&np, 0xAB, sizeof(np));
    assert_int_equal(np_extract(NULL, 0, NULL, 0, &np), 0);
    assert_empty(&np);
}

/* ---- limits ---- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_bounded_input(void **state)
{
    static const char plate[] = "BALDOR\nCAT. NO. EM3770T  SER. NO. Z1804150261\nVOLTS 460\n";
    size_t big = 1 << 20;
    char *buf = malloc(big);
    struct nameplate np;
    double t0;

    (void)state;
    assert_non_null(buf);
    /* a plate, then a megabyte of labels and numbers without end */
    memcpy(buf, plate, sizeof(plate) - 1);
    for (size_t i = sizeof(plate) - 1; i < big; i++)
        buf[i] = "MODEL SERIAL 460V 12A HZ |: 0x\n"[i % 31];
    t0 = now_s();
    assert_int_equal(np_extract(buf, big, NULL, 0, &np), 0);
    assert_true(now_s() - t0 < 10); /* about 0.1 s; sanitizers are slower */
    assert_string_equal(field(&np, NP_MANUFACTURER), "Baldor-Reliance");
    assert_string_equal(field(&np, NP_MODEL), "EM3770T");
    assert_string_equal(field(&np, NP_SERIAL), "Z1804150261");

    /* only the first 64 KB are read: a plate after them is not */
    memset(buf, ' ', big);
    memcpy(buf + 100 * 1024, plate, sizeof(plate) - 1);
    assert_int_equal(np_extract(buf, big, NULL, 0, &np), 0);
    assert_no_key_fields(&np);

    /* a megabyte of line breaks, of one long line, of one long word */
    memset(buf, '\n', big);
    assert_int_equal(np_extract(buf, big, NULL, 0, &np), 0);
    memset(buf, ' ', big);
    memcpy(buf + big - 20, "SERIAL NO 123456", 16);
    assert_int_equal(np_extract(buf, big, NULL, 0, &np), 0);
    memset(buf, '7', big);
    t0 = now_s();
    assert_int_equal(np_extract(buf, big, NULL, 0, &np), 0);
    assert_true(now_s() - t0 < 10);
    free(buf);
}

/* NUL bytes inside the text are spaces; nothing past len is read. */
static void test_nul_bytes(void **state)
{
    static const char text[] = "SERIAL NO.\0XY12345\nMODEL AB-9\0001\nVOLTS\0 460";
    char *exact;
    struct nameplate np;

    (void)state;
    assert_int_equal(np_extract(text, sizeof(text) - 1, NULL, 0, &np), 0);
    assert_string_equal(field(&np, NP_SERIAL), "XY12345");
    assert_string_equal(field(&np, NP_MODEL), "AB-9");
    assert_string_equal(field(&np, NP_VOLTS), "460");

    /* not NUL-terminated, and the bytes after len are not the plate's */
    exact = malloc(12);
    assert_non_null(exact);
    memcpy(exact, "MODEL X12345", 12);
    assert_int_equal(np_extract(exact, 9, NULL, 0, &np), 0); /* "MODEL X12" */
    assert_string_equal(field(&np, NP_MODEL), "X12");
    assert_int_equal(np_extract(exact, 5, NULL, 0, &np), 0);
    assert_string_equal(field(&np, NP_MODEL), "");
    free(exact);
}

/* Invalid UTF-8 is read around; a name printed with it comes out valid. */
static void test_invalid_utf8(void **state)
{
    static const char text[] = "Manufacturer: Soci\xc3\xa9t\xc3\xa9 \xff\xfeG\xe9n\xe9rale Pompes\n"
                               "N\xc2\xb0 de s\xc3\xa9rie \xc3 4589022113\nMODEL X-12 \xe8\xff\n";
    struct nameplate np = extract(text);

    (void)state;
    for (int f = 0; f < NP_FIELD_COUNT; f++)
        assert_true(utf8_ok(np.f[f].value));
    assert_string_equal(field(&np, NP_MANUFACTURER), "Soci\xc3\xa9t\xc3\xa9 Gnrale Pompes");
    assert_string_equal(field(&np, NP_MODEL), "X-12");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_texts),
        cmocka_unit_test(test_recorded_texts),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_values_normalized),
        cmocka_unit_test(test_manufacturer),
        cmocka_unit_test(test_confidence_from_words),
        cmocka_unit_test(test_confidence_by_fit),
        cmocka_unit_test(test_no_invention),
        cmocka_unit_test(test_clears_output),
        cmocka_unit_test(test_bounded_input),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_invalid_utf8),
    };

    return cmocka_run_group_tests(tests, load_samples, free_samples);
}
