/* Splits a command line typed on a phone into words. Pure: bytes in,
 * tokens out, so it can be unit-tested and fuzzed. */
#ifndef RIVET_ARGS_H
#define RIVET_ARGS_H

#include <stdbool.h>
#include <stddef.h>

struct arena;

struct token {
    const char *text; /* the word, quotes removed (arena) */
    size_t start;     /* byte offsets of the word as typed, quotes included */
    size_t end;
    bool quoted;
};

struct args {
    const char *src;   /* the text parsed (borrowed) */
    const char *cmd;   /* "/equip": lower-case, "@botname" dropped; NULL when the
                          text is not a command */
    struct token *tok; /* the words after the command */
    int n;
};

/* Splits src on white space. A word that starts with a quote (" ' “ ‘ «)
 * runs to the matching closing quote (" ' ” ’ ») followed by white space or
 * the end; an unmatched quote is kept as a plain character. Returns 0, or
 * -ENOMEM. The tokens are owned by the arena. */
int args_parse(struct arena *a, const char *src, struct args *out);

/* The text from word i to the end as typed (trimmed); when that is a single
 * quoted word, the word without its quotes. "" when i >= n. */
const char *args_rest(struct arena *a, const struct args *args, int i);

/* key=value options. keys lists the accepted names; a word "key=value"
 * whose key is in the list is taken out, the others stay as words. When
 * absorbs[k] is true, the plain words that follow key k's word, up to the
 * next option, are added to its value ("location=Line 2 bay 4").
 * vals[k] gets the value (NULL when absent). The words left over are moved
 * to the front of args->tok and args->n shrinks; "other=thing" with a key
 * not in the list stays a word. Returns 0, -ENOMEM, or -EINVAL with *bad
 * set to the offending word when an option is given twice. */
int args_options(struct arena *a, struct args *args, int from, const char *const *keys,
                 const bool *absorbs, int nkeys, const char **vals, const char **bad);

/* The KEY=VALUE options the handlers give args_options(), here so that
 * the fuzz targets (tests/fuzz) try the very same tables. /equip add takes
 * the first EQUIP_FIELDS_N keys, /equip edit all EQUIP_KEYS_N ("device"
 * last); /wo new takes "priority"; /photo edit the nameplate's fields. */
#define EQUIP_FIELDS_N 6
#define EQUIP_KEYS_N 7
extern const char *const equip_option_keys[EQUIP_KEYS_N];
extern const bool equip_option_absorbs[EQUIP_KEYS_N];
extern const char *const wo_option_keys[1];
#define PHOTO_KEYS_N 16
extern const char *const photo_option_keys[PHOTO_KEYS_N];
extern const bool photo_option_absorbs[PHOTO_KEYS_N];

#endif
