/* Settings and the small values people type: each line of the input (up to
 * 64) through config_parse_duration (also /mute's duration),
 * config_parse_int with the ranges the callers use, config_parse_listen
 * (HTTP_LISTEN) and severity_parse; then the whole input as an env file
 * through config_load_env_file, read from a memfd.
 *
 * config_load_env_file puts what it reads into the environment with
 * setenv(). glibc keeps every string ever set, so millions of inputs would
 * grow without bound; this file defines setenv() for the target instead,
 * which checks what it is given and sets nothing. The parsing under test
 * (lines, comments, "export ", quotes, names) is bot/config.c's own. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alert.h"
#include "config.h"
#include "fuzz.h"

static int env_fd = -1;
static char env_path[64];

int setenv(const char *name, const char *value, int overwrite)
{
    /* bot/config.c checks names: letters, digits and '_', not empty. */
    FUZZ_CHECK(name && *name);
    for (const char *p = name; *p; p++)
        FUZZ_CHECK(isalnum((unsigned char)*p) || *p == '_');
    fuzz_touch(value);
    FUZZ_CHECK(overwrite == 0); /* the environment wins over the file */
    return 0;
}

static void value(const char *s)
{
    static const struct {
        long long min, max;
    } ranges[] = {{1, 100000}, {1, INT64_MAX}, {0, 1LL << 40}, {1, 1000}, {LLONG_MIN, LLONG_MAX}};
    char host[INET6_ADDRSTRLEN], tiny[4];
    long long v;
    enum severity sev;
    int port;

    if (config_parse_duration(s, &v) == 0)
        FUZZ_CHECK(v >= 1 && v <= 10LL * 366 * 86400);
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        if (config_parse_int(s, ranges[i].min, ranges[i].max, &v) == 0)
            FUZZ_CHECK(v >= ranges[i].min && v <= ranges[i].max);
    if (config_parse_listen(s, host, sizeof(host), &port) == 0) {
        unsigned char addr[16];

        FUZZ_CHECK(port >= 0 && port <= 65535);
        FUZZ_CHECK(inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1);
    }
    config_parse_listen(s, tiny, sizeof(tiny), &port);
    config_parse_listen(s, NULL, 0, NULL);
    if (severity_parse(s, &sev) == 0) {
        FUZZ_CHECK((int)sev >= 0 && sev < SEV_COUNT);
        FUZZ_CHECK(strcasecmp(severity_name(sev), s) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256], small[8], *s, *line, *next;
    int lines = 0, r;

    s = fuzz_strndup(data, size);
    if (!s)
        return 0;
    for (line = s; line && lines < 64; line = next, lines++) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        value(line);
    }
    free(s);

    if (env_fd < 0 || ftruncate(env_fd, 0) < 0 ||
        (size && pwrite(env_fd, data, size, 0) != (ssize_t)size))
        return 0;
    r = config_load_env_file(env_path, err, sizeof(err));
    FUZZ_CHECK(r == 0 || (r < 0 && memchr(err, '\0', sizeof(err)) && err[0]));
    r = config_load_env_file(env_path, small, sizeof(small));
    FUZZ_CHECK(r == 0 || memchr(small, '\0', sizeof(small)));
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    env_fd = memfd_create("fuzz-env", MFD_CLOEXEC);
    if (env_fd < 0) {
        perror("fuzz_config: memfd_create");
        abort();
    }
    snprintf(env_path, sizeof(env_path), "/proc/self/fd/%d", env_fd);
    return 0;
}
