/* What telemetry.c and rule.c share and nobody else needs: number
 * formatting, JSON string escaping and calendar arithmetic. */
#ifndef RIVET_ALERT_INTERNAL_H
#define RIVET_ALERT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for any number alert_num() writes, with its NUL. */
#define ALERT_NUM_MAX 32

/* v (finite) in the shortest of a few printf forms that reads back as the
 * same double: "80", "82.5", "3.2", "1e+20". A whole number below 1e15 is
 * written without exponent, -0 as "0". Valid JSON. Returns the length. */
size_t alert_num(char out[ALERT_NUM_MAX], double v);

/* The bytes s[0..n) take inside a JSON string, without the quotes. */
size_t alert_json_escaped_len(const char *s, size_t n);
/* Writes s[0..n) escaped for a JSON string (no quotes) to out, which has
 * room for alert_json_escaped_len() bytes; returns that length. */
size_t alert_json_escape(char *out, const char *s, size_t n);

/* Whether y-m-d is a date of the proleptic Gregorian calendar (year 0 to
 * 9999). */
bool alert_date_valid(int y, int m, int d);
/* Days from 1970-01-01 to y-m-d (negative before). */
int64_t alert_days_from_civil(int y, int m, int d);

#endif
