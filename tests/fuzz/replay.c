/* Replays inputs through a fuzz target without libFuzzer: the main() every
 * target links in the normal build (tests/fuzz/meson.build), so each
 * corpus runs as a test, under the ASan+UBSan build too, and every crash
 * once found stays fixed.
 *
 *   fuzz_x FILE|DIR...
 *
 * Calls LLVMFuzzerInitialize (when the target has one), then
 * LLVMFuzzerTestOneInput on each file given and on each regular file of
 * each directory given (not recursing; names starting with '.' skipped; in
 * name order), each read into a buffer of exactly its size so that a read
 * past the end is caught. Prints TAP: one "ok N - FILE" per input. A crash
 * ends the process, which the test reports as a failure; an input that
 * cannot be read is "not ok". No input at all is a failure too: a corpus
 * that went missing must not pass quietly. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Defined by the targets that need one-time set-up. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Inputs are small; this only keeps a stray argument from eating memory. */
#define REPLAY_MAX_INPUT (64u << 20)

static int n_run, n_failed;

static int read_file(const char *path, uint8_t **ret, size_t *len)
{
    FILE *f = fopen(path, "rbe");
    uint8_t *p = NULL;
    struct stat st;
    int r = 0;

    if (!f)
        return -errno;
    if (fstat(fileno(f), &st) < 0) {
        r = -errno;
        goto out;
    }
    if (st.st_size < 0 || (unsigned long long)st.st_size > REPLAY_MAX_INPUT) {
        r = -EFBIG;
        goto out;
    }
    /* At least one byte, so an empty input still has a distinct address;
     * the target is told its true size. */
    p = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (!p) {
        r = -ENOMEM;
        goto out;
    }
    if (st.st_size && fread(p, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        r = ferror(f) ? -EIO : -ENODATA;
        goto out;
    }
    *ret = p;
    *len = (size_t)st.st_size;
    p = NULL;
out:
    free(p);
    fclose(f);
    return r;
}

static void run_one(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int r = read_file(path, &data, &len);

    n_run++;
    if (r < 0) {
        n_failed++;
        printf("not ok %d - %s # cannot read: %s\n", n_run, path, strerror(-r));
        fflush(stdout);
        return;
    }
    /* The name first, so a crash's output says which input it was. */
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    printf("ok %d - %s\n", n_run, path);
    fflush(stdout);
}

static int by_name(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static void run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (!d) {
        n_run++;
        n_failed++;
        printf("not ok %d - %s # cannot open: %s\n", n_run, dir, strerror(errno));
        return;
    }
    while ((e = readdir(d))) {
        char *path;
        struct stat st;

        if (e->d_name[0] == '.')
            continue;
        if (asprintf(&path, "%s/%s", dir, e->d_name) < 0) {
            perror("replay");
            exit(1);
        }
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            char **more = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof(*names));
            if (!more) {
                perror("replay");
                exit(1);
            }
            names = more;
        }
        names[n++] = path;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; i < n; i++) {
        run_one(names[i]);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            run_dir(argv[i]);
        else
            run_one(argv[i]);
    }
    if (n_run == 0) {
        printf("Bail out! no inputs in");
        for (int i = 1; i < argc; i++)
            printf(" %s", argv[i]);
        printf("\n");
        return 1;
    }
    printf("1..%d\n", n_run);
    return n_failed ? 1 : 0;
}
