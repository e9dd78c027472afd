/* UTF-8 text helpers shared by the channels and the handlers. Pure
 * functions of their input: no allocation unless an arena is passed. */
#ifndef RIVET_TEXT_H
#define RIVET_TEXT_H

#include <stdbool.h>
#include <stddef.h>

struct arena;

/* True when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
bool utf8_valid(const char *s, size_t n);

/* True when s holds a control character other than tab and newline: C0,
 * DEL, C1 (U+0080..U+009F), a bidirectional override or isolate
 * (U+202A..U+202E, U+2066..U+2069) or U+FEFF. s must be valid UTF-8. */
bool text_has_control(const char *s, size_t n);

/* Number of code points in valid UTF-8 s. */
size_t utf8_chars(const char *s);

/* The longest prefix of valid UTF-8 s, at most max bytes, that ends on a
 * character boundary: its length in bytes. */
size_t utf8_prefix(const char *s, size_t max);

/* s shortened to at most max_chars code points, with "…" as the last one
 * when it was cut; owned by the arena. NULL gives NULL. */
char *text_ellipsize(struct arena *a, const char *s, size_t max_chars);

/* Case-insensitive (ASCII) Levenshtein distance, capped at 255; strings
 * longer than 64 bytes are compared on their first 64. */
int text_distance(const char *a, const char *b);

/* Strips leading and trailing ASCII white space in place; returns s. */
char *text_trim(char *s);

/* Whether the JSON text nests objects and arrays no deeper than max,
 * counted without parsing (brackets inside strings skipped), so that a
 * hostile body cannot make jansson's recursive parser go deep. */
bool text_json_depth_ok(const char *s, size_t n, int max);

#endif
