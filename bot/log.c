#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum log_level log_threshold = LOG_INFO;

static __thread char thread_name[16] = "main";

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

/* syslog priorities of the levels: LOG_DEBUG 7, LOG_INFO 6, LOG_WARNING 4,
 * LOG_ERR 3 */
static const char *const level_prio[] = {"<7>", "<6>", "<4>", "<3>", "<3>"};

static pthread_once_t journal_once = PTHREAD_ONCE_INIT;
static int journal; /* stderr is the journal: written once, under journal_once */

/* systemd sets JOURNAL_STREAM=DEV:INODE when it connects stderr to the
 * journal; a stderr redirected since (to a file, a pipe) has another
 * device and inode. */
static void journal_detect(void)
{
    const char *v = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    int end = 0;

    if (!v || sscanf(v, "%llu:%llu%n", &dev, &ino, &end) != 2 || v[end] != '\0')
        return;
    if (fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
        (unsigned long long)st.st_ino == ino)
        journal = 1;
}

void log_set_threshold(enum log_level lvl)
{
    __atomic_store_n(&log_threshold, lvl, __ATOMIC_RELAXED);
}

const char *log_level_name(enum log_level lvl)
{
    return level_names[lvl <= LOG_OFF ? lvl : LOG_OFF];
}

int log_level_parse(const char *s, enum log_level *ret)
{
    if (!s)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *ret = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *ret = LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

void log_set_thread(const char *name)
{
    snprintf(thread_name, sizeof(thread_name), "%s", name);
}

void log_emit(enum log_level lvl, const char *ev, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int k;
    size_t start;
    va_list ap;

    pthread_once(&journal_once, journal_detect);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = 0;
    if (journal) {
        memcpy(line, level_prio[lvl < LOG_OFF ? lvl : LOG_ERROR], 3);
        n = 3;
    }
    start = n;
    n += strftime(line + n, sizeof(line) - n, "ts=%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, sizeof(line) - n, ".%03ldZ lvl=%s thr=%s ev=%s", ts.tv_nsec / 1000000,
                 level_names[lvl < LOG_OFF ? lvl : LOG_ERROR], thread_name, ev);
    if (k > 0)
        n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
    if (fmt && fmt[0] && n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_start(ap, fmt);
        k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        if (k > 0)
            n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
    }
    for (size_t i = start; i < n; i++) /* one event, one line */
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    /* One write per line so lines from several threads do not interleave. */
    fwrite(line, 1, n, stderr);
}

char *log_quote(char *dst, size_t n, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (n < 3) {
        if (n)
            dst[0] = '\0';
        return dst;
    }
    dst[o++] = '"';
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[4];
        size_t len = 0;

        if (c == '"' || c == '\\') {
            esc[len++] = '\\';
            esc[len++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            esc[len++] = '\\';
            esc[len++] = 'x';
            esc[len++] = hex[c >> 4];
            esc[len++] = hex[c & 15];
        } else {
            esc[len++] = (char)c;
        }
        if (o + len + 2 > n)
            break;
        memcpy(dst + o, esc, len);
        o += len;
    }
    dst[o++] = '"';
    dst[o] = '\0';
    return dst;
}
