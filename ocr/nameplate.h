/* What a nameplate says: the fields Rivet reads off a rating plate, each
 * with a confidence and where it came from (the local read or a vision LLM).
 * Plain data with fixed-size values, so a struct nameplate can be copied,
 * zeroed and passed between threads without owning anything.
 *
 * np_extract() turns OCR text into fields (PCRE2, tolerant of OCR noise and
 * of labels in English, German, Spanish, Portuguese and French);
 * np_merge() combines a local read with an LLM's. Both are pure functions
 * of their input, so they can be unit-tested and fuzzed. */
#ifndef RIVET_NAMEPLATE_H
#define RIVET_NAMEPLATE_H

#include <stdbool.h>
#include <stddef.h>

enum np_field {
    NP_MANUFACTURER,
    NP_MODEL,  /* model, type, cat. no. */
    NP_SERIAL, /* S/N, ser. no. */
    NP_VOLTS,  /* "460", "208-230", "230/460" */
    NP_AMPS,   /* full-load amps */
    NP_HP,
    NP_KW,
    NP_RPM,
    NP_HZ,
    NP_PHASE, /* "1" or "3" */
    NP_FRAME,
    NP_ENCLOSURE, /* "TEFC", "IP55" */
    NP_SERVICE_FACTOR,
    NP_INSULATION, /* insulation class: "F" */
    NP_EFFICIENCY, /* percent, "95.4" */
    NP_YEAR,       /* year of manufacture or date code */
    NP_FIELD_COUNT
};

/* The longest value kept (bytes, with the NUL); longer text is cut at a
 * character boundary. */
#define NP_VALUE_MAX 96

enum np_source { NP_SRC_NONE, NP_SRC_OCR, NP_SRC_LLM, NP_SRC_USER /* typed by a person */ };

struct np_value {
    char value[NP_VALUE_MAX]; /* UTF-8, "" when not read */
    float confidence;         /* 0..1; 0 when not read */
    enum np_source source;
};

struct nameplate {
    struct np_value f[NP_FIELD_COUNT];
    float confidence; /* of the whole read, 0..1 */
};

/* A field below this confidence is shown with a mark and, for
 * manufacturer, model and serial, makes Rivet ask the LLM. */
#define NP_CONFIDENT 0.70f

/* "manufacturer", "model", "serial", "volts", "amps", "hp", "kw", "rpm",
 * "hz", "phase", "frame", "enclosure", "service_factor",
 * "insulation_class", "efficiency", "year": the names used in JSON (the
 * CLI, the LLM schema, equipment.nameplate). NULL when out of range. */
const char *np_field_name(enum np_field f);
/* The field with that JSON name, or -1. */
int np_field_by_name(const char *name);
/* Short labels for replies: "Manufacturer", "Model", "Serial", "Volts", ... */
const char *np_field_label(enum np_field f);
/* "ocr", "llm", "user" or "" */
const char *np_source_name(enum np_source s);

/* Sets a field: copies value (cut to fit at a UTF-8 boundary, surrounding
 * spaces trimmed). An empty value clears the field. */
void np_set(struct nameplate *np, enum np_field f, const char *value, float confidence,
            enum np_source source);

/* A word as the OCR engine read it: the bytes [start, end) of the text it
 * came with, and the engine's confidence (0..100). */
struct ocr_word {
    size_t start, end;
    float conf;
};

/* Reads the fields from OCR text (any bytes; not NUL-terminated; invalid
 * UTF-8 is tolerated). words (sorted by start, may be NULL when the text has
 * no confidences, e.g. a recorded text) give each field's confidence
 * together with how well its pattern fit. out is cleared first; its
 * confidence is set from the fields found. Returns 0, or -ENOMEM. */
int np_extract(const char *text, size_t len, const struct ocr_word *words, size_t n_words,
               struct nameplate *out);

/* Recomputes np->confidence from its fields: the weakest of manufacturer,
 * model and serial, lifted a little by the ratings read with them. */
void np_score(struct nameplate *np);

/* Whether the read is good enough without an LLM: manufacturer, model and
 * serial all present at NP_CONFIDENT or above. */
bool np_confident(const struct nameplate *np);

/* Folds an LLM's read into the local one: a field the local read missed or
 * is unsure of (below NP_CONFIDENT) takes the LLM's value; a confident local
 * value is kept even when the LLM disagrees. Recomputes local->confidence. */
void np_merge(struct nameplate *local, const struct nameplate *llm);

/* The canonical name of a manufacturer ("allen bradley", "A-B", "Rockwell
 * Automation" -> "Allen-Bradley"), or NULL when the alias table does not
 * know it. Case, spaces, dots and dashes do not matter. */
const char *np_manufacturer_canonical(const char *name);

/* A serial number for comparison: upper case, letter O read as zero, only
 * letters and digits kept. Writes into out (size n). */
void np_serial_normalize(const char *serial, char *out, size_t n);

#endif
