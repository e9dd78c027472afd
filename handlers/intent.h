/* Recognises what a technician means by a message in plain words, without
 * an LLM: a fault report on a machine, a question about a machine's or a
 * work order's state, the lists ("my work orders", "what's open",
 * "alarms"), a how-to question for the LLM, or "done". Pure: bytes in,
 * struct out; no database, no network, no logging, so it can be unit-tested
 * and fuzzed. English, German, Spanish, French and Portuguese key words;
 * typos in the key words, abbreviations ("wo", "w/o", "eqp", "pls") and
 * quoted names (" ' “ ” „ ‘ ’ « ») are tolerated. */
#ifndef RIVET_INTENT_H
#define RIVET_INTENT_H

#include <stddef.h>

struct arena;

enum intent_kind {
    INTENT_NONE,
    INTENT_REPORT,   /* a fault on a machine: propose a work order */
    INTENT_STATE,    /* a question about a machine's or a work order's state */
    INTENT_MY_WOS,   /* "my work orders" */
    INTENT_OPEN_WOS, /* "what's open" (optionally on a machine or a location) */
    INTENT_ALARMS,   /* "any alarms?" */
    INTENT_QUESTION, /* how-to / troubleshooting: for the LLM */
    INTENT_DONE,     /* "done", "fixed", "completed" (meaningful in reply to a work order) */
};

struct intent {
    enum intent_kind kind;
    const char *machine;    /* the words naming a machine as typed, quotes removed
                               ("pump 3", "G120", "Main compressor"), or NULL */
    const char *location;   /* "line 2", "hall B" as typed, or NULL */
    const char *eq_number;  /* "EQ-2024-000123" normalised upper-case, or NULL */
    const char *wo_number;  /* "WO-2024-000123" normalised upper-case, or NULL */
    const char *fault_code; /* "F0021", "E-204" (upper-case), or NULL */
    const char *title;      /* a report's work-order title ("Pump 3: leaking (line 2)"),
                               at most 200 bytes, or NULL */
    const char *priority;   /* a report's guessed priority: "critical", "high", "medium",
                               "low"; NULL for the other kinds */
};

/* Classifies text[0..len) (UTF-8; need not be NUL-terminated; only the
 * first 4096 bytes are read). Commands (text starting with '/'), empty text
 * and invalid UTF-8 give INTENT_NONE. Fills *out (all fields) and returns 0,
 * or -ENOMEM (*out then holds INTENT_NONE). The strings are owned by the
 * arena. Thread-safe: the patterns are compiled once, on first use; if they
 * cannot be compiled every message gives INTENT_NONE. */
int intent_parse(struct arena *a, const char *text, size_t len, struct intent *out);

/* "none", "report", "state", "my_wos", "open_wos", "alarms", "question",
 * "done"; "?" for a value outside the enum. */
const char *intent_name(enum intent_kind k);

#endif
