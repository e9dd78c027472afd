/* Nameplate fields from OCR text: np_extract over the input as the OCR
 * engine's text, once without word confidences (a recorded text) and once
 * with one word per run of non-blank bytes, its confidence taken from the
 * input; then np_serial_normalize and np_manufacturer_canonical on what was
 * read and on the raw text, and np_merge of the two reads. */
#include <math.h>
#include <stdbool.h>

#include "fuzz.h"
#include "nameplate.h"

#define MAX_WORDS 4096

static void check(const struct nameplate *np)
{
    FUZZ_CHECK(!isnan(np->confidence) && np->confidence >= 0 && np->confidence <= 1);
    for (int i = 0; i < NP_FIELD_COUNT; i++) {
        const struct np_value *v = &np->f[i];

        FUZZ_CHECK(memchr(v->value, '\0', NP_VALUE_MAX));
        FUZZ_CHECK(!isnan(v->confidence) && v->confidence >= 0 && v->confidence <= 1);
        if (!v->value[0])
            FUZZ_CHECK(v->source == NP_SRC_NONE && v->confidence == 0);
    }
}

static void names(const char *s)
{
    char norm[NP_VALUE_MAX], tiny[4];
    const char *canon;

    np_serial_normalize(s, norm, sizeof(norm));
    FUZZ_CHECK(strlen(norm) < sizeof(norm));
    for (const char *p = norm; *p; p++)
        FUZZ_CHECK((*p >= 'A' && *p <= 'Z' && *p != 'O') || (*p >= '0' && *p <= '9'));
    np_serial_normalize(s, tiny, sizeof(tiny));
    FUZZ_CHECK(strlen(tiny) < sizeof(tiny));
    canon = np_manufacturer_canonical(s);
    if (canon) {
        /* A canonical name is its own canonical name. */
        const char *again = np_manufacturer_canonical(canon);
        FUZZ_CHECK(again && strcmp(again, canon) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ocr_word words[MAX_WORDS];
    struct nameplate plain, scored, merged;
    const char *text = (const char *)data;
    size_t n = 0, i = 0;
    char *s;

    memset(&plain, 0, sizeof(plain));
    if (np_extract(text, size, NULL, 0, &plain) == 0) {
        check(&plain);
        np_score(&plain);
        check(&plain);
        np_confident(&plain);
    }
    while (i < size && n < MAX_WORDS) {
        size_t start;

        while (i < size && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n'))
            i++;
        if (i == size)
            break;
        start = i;
        while (i < size && data[i] != ' ' && data[i] != '\t' && data[i] != '\n')
            i++;
        words[n++] =
            (struct ocr_word){.start = start, .end = i, .conf = (float)(data[start] % 101)};
    }
    if (np_extract(text, size, words, n, &scored) == 0) {
        check(&scored);
        merged = scored;
        np_merge(&merged, &plain);
        check(&merged);
        for (int f = 0; f < NP_FIELD_COUNT; f++)
            names(scored.f[f].value);
    }
    s = fuzz_strndup(data, size);
    if (s) {
        names(s);
        free(s);
    }
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct nameplate np;

    /* extract.c compiles its patterns on first use: once, here. */
    np_extract("Baldor", 6, NULL, 0, &np);
    return 0;
}
