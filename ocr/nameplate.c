/* The nameplate record: field names, setting a value, merging reads. The
 * text patterns that fill it live in extract.c. */
#include "nameplate.h"

#include <ctype.h>
#include <string.h>

static const struct {
    const char *name, *label;
} fields[NP_FIELD_COUNT] = {
    [NP_MANUFACTURER] = {"manufacturer", "Manufacturer"},
    [NP_MODEL] = {"model", "Model"},
    [NP_SERIAL] = {"serial", "Serial"},
    [NP_VOLTS] = {"volts", "Volts"},
    [NP_AMPS] = {"amps", "Amps"},
    [NP_HP] = {"hp", "HP"},
    [NP_KW] = {"kw", "kW"},
    [NP_RPM] = {"rpm", "RPM"},
    [NP_HZ] = {"hz", "Hz"},
    [NP_PHASE] = {"phase", "Phase"},
    [NP_FRAME] = {"frame", "Frame"},
    [NP_ENCLOSURE] = {"enclosure", "Enclosure"},
    [NP_SERVICE_FACTOR] = {"service_factor", "S.F."},
    [NP_INSULATION] = {"insulation_class", "Insulation"},
    [NP_EFFICIENCY] = {"efficiency", "Efficiency"},
    [NP_YEAR] = {"year", "Year"},
};

const char *np_field_name(enum np_field f)
{
    return (unsigned)f < NP_FIELD_COUNT ? fields[f].name : NULL;
}

const char *np_field_label(enum np_field f)
{
    return (unsigned)f < NP_FIELD_COUNT ? fields[f].label : NULL;
}

int np_field_by_name(const char *name)
{
    for (int i = 0; i < NP_FIELD_COUNT; i++)
        if (strcmp(fields[i].name, name) == 0)
            return i;
    return -1;
}

const char *np_source_name(enum np_source s)
{
    switch (s) {
    case NP_SRC_OCR:
        return "ocr";
    case NP_SRC_LLM:
        return "llm";
    case NP_SRC_USER:
        return "user";
    default:
        return "";
    }
}

void np_set(struct nameplate *np, enum np_field f, const char *value, float confidence,
            enum np_source source)
{
    struct np_value *v;
    size_t n;

    if ((unsigned)f >= NP_FIELD_COUNT)
        return;
    v = &np->f[f];
    while (*value == ' ' || *value == '\t')
        value++;
    n = strlen(value);
    if (n > NP_VALUE_MAX - 1) {
        n = NP_VALUE_MAX - 1;
        while (n > 0 && ((unsigned char)value[n] & 0xC0) == 0x80)
            n--; /* do not split a character */
    }
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    memcpy(v->value, value, n);
    v->value[n] = '\0';
    if (n == 0) {
        v->confidence = 0;
        v->source = NP_SRC_NONE;
        return;
    }
    v->confidence = confidence < 0 ? 0 : confidence > 1 ? 1 : confidence;
    v->source = source;
}

/* The whole read is as sure as its weakest key field, lifted a little by the
 * ratings around it: a plate whose manufacturer, model and serial read well
 * is a good read even when its efficiency did not. */
void np_score(struct nameplate *np)
{
    float key = 1, rest = 0;
    int n_rest = 0;

    for (int i = 0; i < NP_FIELD_COUNT; i++) {
        float c = np->f[i].value[0] ? np->f[i].confidence : 0;

        if (i <= NP_SERIAL) {
            if (c < key)
                key = c;
        } else if (np->f[i].value[0]) {
            rest += c;
            n_rest++;
        }
    }
    np->confidence = n_rest ? 0.8f * key + 0.2f * (rest / (float)n_rest) : key;
}

bool np_confident(const struct nameplate *np)
{
    for (int i = NP_MANUFACTURER; i <= NP_SERIAL; i++)
        if (!np->f[i].value[0] || np->f[i].confidence < NP_CONFIDENT)
            return false;
    return true;
}

void np_merge(struct nameplate *local, const struct nameplate *llm)
{
    for (int i = 0; i < NP_FIELD_COUNT; i++) {
        struct np_value *l = &local->f[i];
        const struct np_value *o = &llm->f[i];

        if (!o->value[0])
            continue;
        if (l->value[0] && l->confidence >= NP_CONFIDENT)
            continue; /* a confident local value stands */
        *l = *o;
        l->source = NP_SRC_LLM;
    }
    np_score(local);
}

void np_serial_normalize(const char *serial, char *out, size_t n)
{
    size_t k = 0;

    if (n == 0)
        return;
    for (const char *p = serial; *p && k + 1 < n; p++) {
        unsigned char c = (unsigned char)*p;

        if (!isascii(c) || !isalnum(c))
            continue;
        c = (unsigned char)toupper(c);
        out[k++] = c == 'O' ? '0' : (char)c;
    }
    out[k] = '\0';
}
