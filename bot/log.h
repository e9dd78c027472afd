/* Structured logging: one line per event on stderr,
 *   ts=2026-11-26T02:10:00.123Z lvl=info thr=main ev=migrate.applied file=0001_init.sql
 * The level is checked before any argument is evaluated. Library-like code
 * (db/, handlers/, ocr/, llm/) does not log: it returns an error and its
 * caller logs once. User text goes through log_quote(); secrets and URLs
 * that carry tokens are never passed here. */
#ifndef RIVET_LOG_H
#define RIVET_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

/* The level below which lines are dropped. Written before threads start,
 * or with log_set_threshold() (SIGHUP in rivet serve); read atomically. */
extern enum log_level log_threshold;

/* Changes log_threshold while other threads log. */
void log_set_threshold(enum log_level lvl);

/* The name of a level ("debug", "info", ...). */
const char *log_level_name(enum log_level lvl);

/* Parses "debug", "info", "warn" (or "warning"), "error", "off".
 * Returns 0 and writes *ret, or -EINVAL. */
int log_level_parse(const char *s, enum log_level *ret);

/* Names the calling thread in its log lines; the name is copied (15 bytes kept). */
void log_set_thread(const char *name);

/* Writes one line; fmt holds the key=value pairs after ev=. A line break
 * inside becomes a space: one event is one line. When stderr is the
 * journal (JOURNAL_STREAM names it), the line starts with the syslog
 * priority, "<3>" error, "<4>" warn, "<6>" info, "<7>" debug, which journald
 * takes as the level (sd-daemon.h's convention). */
void log_emit(enum log_level lvl, const char *ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes s into dst (size n >= 3) as a double-quoted value with \", \\ and
 * control bytes escaped, truncated to fit. Returns dst. */
char *log_quote(char *dst, size_t n, const char *s);

#define log_at(lvl, ev, ...)                                                                       \
    do {                                                                                           \
        if ((lvl) >= __atomic_load_n(&log_threshold, __ATOMIC_RELAXED))                            \
            log_emit((lvl), (ev), __VA_ARGS__);                                                    \
    } while (0)
#define log_debug(ev, ...) log_at(LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...) log_at(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_at(LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_at(LOG_ERROR, ev, __VA_ARGS__)

#endif
