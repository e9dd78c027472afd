/* Rivet's LLM client (llm/llm.c) against the fake OpenAI-compatible server
 * (fake_llm.py here): the request it sends, the answers and faults it gets
 * back, the provider chain and its skipping, timeouts and cancelling, for
 * nameplate reads (llm_read_nameplate) and text questions (llm_chat).
 *
 * The group setup starts the fake on a free port of 127.0.0.1 (FAKE_LLM,
 * run with PYTHON3) and waits for its port file; each test resets the fake
 * and the process-wide skip table; the teardown stops the fake. Nothing
 * waits for a fixed time: the test asks the fake (/control/wait) or polls
 * with a bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "assist.h"
#include "config.h"
#include "llm.h"

#ifndef FAKE_LLM
#error "FAKE_LLM must name fake_llm.py"
#endif
#ifndef PYTHON3
#define PYTHON3 "python3"
#endif

#define KEY "sk-rivet-test-0123456789"

extern char **environ;

static pid_t fake_pid = -1;
static char fake_dir[64];
static char base[64]; /* http://127.0.0.1:PORT */
static unsigned char jpeg[6000], png[3000];

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* ---- the fake's control API ---- */

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    char **buf = userdata;
    size_t old = *buf ? strlen(*buf) : 0, n = size * nmemb;
    char *p = realloc(*buf, old + n + 1);

    if (!p)
        return 0;
    memcpy(p + old, ptr, n);
    p[old + n] = '\0';
    *buf = p;
    return n;
}

/* POST (body given) or GET /control/<path>; returns the parsed answer of a
 * 200, failing the test otherwise. */
static json_t *control(const char *path, const char *body)
{
    CURL *c = curl_easy_init();
    char url[128], *out = NULL;
    long status = 0;
    json_error_t jerr;
    json_t *j;

    assert_non_null(c);
    snprintf(url, sizeof(url), "%s/control/%s", base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (status != 200)
        fail_msg("control %s: HTTP %ld %s", path, status, out ? out : "");
    j = json_loads(out ? out : "", 0, &jerr);
    free(out);
    assert_non_null(j);
    return j;
}

static void control_ok(const char *path, const char *body)
{
    json_decref(control(path, body));
}

static void answers(const char *list)
{
    char *body;

    assert_true(asprintf(&body, "{\"answers\": %s}", list) > 0);
    control_ok("answers", body);
    free(body);
}

static json_t *requests(void)
{
    return control("requests", NULL);
}

static int request_count(void)
{
    json_t *r = requests();
    int n = (int)json_integer_value(json_object_get(r, "count"));

    json_decref(r);
    return n;
}

/* Member key of the last request the fake logged, as a string ("" for
 * null, a number printed). The caller frees it. */
static char *last(const char *key)
{
    json_t *r = requests(), *list = json_object_get(r, "requests");
    json_t *v = json_object_get(json_array_get(list, json_array_size(list) - 1), key);
    char *s;

    if (json_is_string(v))
        s = strdup(json_string_value(v));
    else if (json_is_integer(v))
        assert_true(asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) > 0);
    else
        s = strdup("");
    json_decref(r);
    assert_non_null(s);
    return s;
}

static void assert_last(const char *key, const char *want)
{
    char *got = last(key);

    if (strcmp(got, want) != 0)
        fail_msg("last request %s: got \"%s\", want \"%s\"", key, got, want);
    free(got);
}

/* ---- starting and stopping the fake ---- */

static int start_fake(void **state)
{
    char port_file[96], port_arg[8] = "0";
    char *argv[] = {PYTHON3,   FAKE_LLM, "--port", port_arg, "--port-file",
                    port_file, "--key",  KEY,      NULL};
    posix_spawn_file_actions_t fa;
    long deadline = now_ms() + 20000;
    int port = 0, status;

    snprintf(fake_dir, sizeof(fake_dir), "/tmp/rivet-fake-llm-XXXXXX");
    if (!mkdtemp(fake_dir))
        return -1;
    snprintf(port_file, sizeof(port_file), "%s/port", fake_dir);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&fake_pid, PYTHON3, &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        fake_pid = -1;
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    while (now_ms() < deadline) {
        FILE *f = fopen(port_file, "r");

        if (f) {
            int ok = fscanf(f, "%d", &port) == 1;

            fclose(f);
            if (ok && port > 0)
                break;
        }
        if (waitpid(fake_pid, &status, WNOHANG) == fake_pid) {
            fake_pid = -1;
            fprintf(stderr, "# the fake LLM exited before listening\n");
            return -1;
        }
        nap_ms(20);
    }
    unlink(port_file);
    rmdir(fake_dir);
    if (port <= 0) {
        fprintf(stderr, "# the fake LLM did not start within 20 s\n");
        return -1;
    }
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    for (size_t i = 0; i < sizeof(jpeg); i++)
        jpeg[i] = (unsigned char)(i * 7 + 3);
    memcpy(jpeg, "\xff\xd8\xff\xe0\x00\x10JFIF", 10);
    for (size_t i = 0; i < sizeof(png); i++)
        png[i] = (unsigned char)(i * 13 + 1);
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    return 0;
}

static int stop_fake(void **state)
{
    long deadline = now_ms() + 10000;
    int status;

    if (fake_pid <= 0)
        return 0;
    kill(fake_pid, SIGTERM);
    while (waitpid(fake_pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(fake_pid, SIGKILL);
            waitpid(fake_pid, &status, 0);
            break;
        }
        nap_ms(20);
    }
    fake_pid = -1;
    return 0;
}

static int reset(void **state)
{
    control_ok("reset", "{}");
    llm_reset_skips();
    return 0;
}

/* ---- clients ---- */

/* A provider on the fake under path (e.g. "/a/v1"). */
static struct llm_provider provider(const char *name, const char *path, const char *key,
                                    int timeout_ms)
{
    struct llm_provider p;

    memset(&p, 0, sizeof(p));
    snprintf(p.name, sizeof(p.name), "%s", name);
    snprintf(p.url, sizeof(p.url), "%s%s", base, path);
    snprintf(p.model, sizeof(p.model), "vision-%s", name);
    snprintf(p.api_key, sizeof(p.api_key), "%s", key);
    p.timeout_ms = timeout_ms;
    return p;
}

static struct llm *client1(const char *key, int timeout_ms)
{
    struct llm_provider p = provider("a", "/a/v1", key, timeout_ms);
    struct llm *l = NULL;

    assert_int_equal(llm_new(&p, 1, NULL, &l), 0);
    return l;
}

static struct llm *client2(void)
{
    struct llm_provider p[2] = {provider("a", "/a/v1", KEY, 5000),
                                provider("b", "/b/v1", KEY, 5000)};
    struct llm *l = NULL;

    assert_int_equal(llm_new(p, 2, NULL, &l), 0);
    return l;
}

struct call {
    int r;
    struct nameplate np;
    struct llm_usage u;
    char err[160];
    long wall_ms;
};

static struct call read_plate(struct llm *l)
{
    struct call c;
    long t0 = now_ms();

    memset(&c, 0, sizeof(c));
    c.r =
        llm_read_nameplate(l, jpeg, sizeof(jpeg), "image/jpeg", &c.np, &c.u, c.err, sizeof(c.err));
    c.wall_ms = now_ms() - t0;
    /* whatever happened, err names no secret and no URL */
    assert_null(strstr(c.err, KEY));
    assert_null(strstr(c.err, "SECRET"));
    assert_null(strstr(c.err, "127.0.0.1"));
    assert_null(strstr(c.err, "http"));
    return c;
}

static const char *val(const struct call *c, enum np_field f)
{
    return c->np.f[f].value;
}

/* ---- the tests ---- */

static void test_success(void **state)
{
    struct llm_provider p = provider("a", "/a/v1", KEY, 5000);
    struct llm *l = NULL;
    struct call c;
    json_t *r, *rq;
    const char *sys;

    p.usd_per_mtok_in = 2.5;
    p.usd_per_mtok_out = 10;
    assert_int_equal(llm_new(&p, 1, NULL, &l), 0);
    c = read_plate(l);
    assert_int_equal(c.r, 0);
    assert_string_equal(val(&c, NP_MANUFACTURER), "Baldor Electric");
    assert_string_equal(val(&c, NP_MODEL), "EM3615T");
    assert_string_equal(val(&c, NP_SERIAL), "F1802231234");
    assert_string_equal(val(&c, NP_VOLTS), "230/460");
    assert_string_equal(val(&c, NP_SERVICE_FACTOR), "1.15");
    assert_string_equal(val(&c, NP_YEAR), "");
    assert_int_equal(c.np.f[NP_MODEL].source, NP_SRC_LLM);
    assert_float_equal(c.np.f[NP_MODEL].confidence, 0.8, 1e-6);
    assert_int_equal(c.np.f[NP_YEAR].source, NP_SRC_NONE);
    assert_true(c.np.confidence > 0.7f);
    assert_string_equal(c.u.provider, "a");
    assert_string_equal(c.u.model, "vision-a");
    assert_int_equal(c.u.attempts, 1);
    assert_int_equal(c.u.prompt_tokens, 1105 + (int)sizeof(jpeg) / 750);
    assert_true(c.u.completion_tokens > 0);
    assert_float_equal(c.u.cost_usd, (c.u.prompt_tokens * 2.5 + c.u.completion_tokens * 10.0) / 1e6,
                       1e-12);
    assert_true(c.u.ms >= 0 && c.u.ms <= c.wall_ms + 1);
    assert_string_equal(c.err, "");

    /* what the fake received */
    r = requests();
    assert_int_equal(json_integer_value(json_object_get(r, "count")), 1);
    rq = json_array_get(json_object_get(r, "requests"), 0);
    assert_string_equal(json_string_value(json_object_get(rq, "path")), "/a/v1/chat/completions");
    assert_string_equal(json_string_value(json_object_get(rq, "model")), "vision-a");
    assert_string_equal(json_string_value(json_object_get(rq, "auth")), "ok");
    assert_int_equal(json_integer_value(json_object_get(rq, "image_bytes")), sizeof(jpeg));
    assert_string_equal(json_string_value(json_object_get(rq, "image_kind")), "jpeg");
    assert_string_equal(json_string_value(json_object_get(rq, "image_mime")), "image/jpeg");
    assert_string_equal(json_string_value(json_object_get(rq, "detail")), "high");
    assert_string_equal(json_string_value(json_object_get(rq, "response_format")), "json_object");
    assert_string_equal(json_string_value(json_object_get(rq, "content_type")), "application/json");
    assert_int_equal(json_integer_value(json_object_get(rq, "temperature")), 0);
    assert_int_equal(json_integer_value(json_object_get(rq, "max_tokens")), 600);
    assert_string_equal(json_string_value(json_array_get(json_object_get(rq, "text"), 0)),
                        "Read this equipment nameplate.");
    sys = json_string_value(json_object_get(rq, "system"));
    assert_non_null(sys);
    assert_non_null(strstr(sys, "JSON"));
    for (int i = 0; i < NP_FIELD_COUNT; i++)
        assert_non_null(strstr(sys, np_field_name((enum np_field)i)));
    json_decref(r);
    llm_free(l);
}

static void test_value_types_and_merge(void **state)
{
    struct llm *l = client1(KEY, 5000);
    struct nameplate local;
    struct call c;

    answers("[{\"fields\": {\"manufacturer\": \"  ABB  \", \"model\": \"M3BP 160\", "
            "\"volts\": 460, \"hp\": 7.5, \"amps\": 12.0, \"rpm\": null, \"hz\": \"N/A\", "
            "\"phase\": \"unknown\", \"frame\": \"\", \"efficiency\": 95.4, "
            "\"serial\": \"3GZF\\u00e9-01\", \"colour\": \"blue\"}},"
            " {\"content\": \"```json\\n{\\\"model\\\": \\\"X1\\\", \\\"kw\\\": 5.5}\\n```\\n\"}]");
    c = read_plate(l);
    assert_int_equal(c.r, 0);
    assert_string_equal(val(&c, NP_MANUFACTURER), "ABB");
    assert_string_equal(val(&c, NP_VOLTS), "460");
    assert_string_equal(val(&c, NP_HP), "7.5");
    assert_string_equal(val(&c, NP_AMPS), "12");
    assert_string_equal(val(&c, NP_EFFICIENCY), "95.4");
    assert_string_equal(val(&c, NP_SERIAL), "3GZF\xc3\xa9-01");
    assert_string_equal(val(&c, NP_RPM), "");
    assert_string_equal(val(&c, NP_HZ), "");
    assert_string_equal(val(&c, NP_PHASE), "");
    assert_string_equal(val(&c, NP_FRAME), "");

    /* a confident local value stands, an unsure one takes the LLM's */
    memset(&local, 0, sizeof(local));
    np_set(&local, NP_MANUFACTURER, "ABB Motors", 0.9f, NP_SRC_OCR);
    np_set(&local, NP_MODEL, "M3BP 1B0", 0.4f, NP_SRC_OCR);
    np_merge(&local, &c.np);
    assert_string_equal(local.f[NP_MANUFACTURER].value, "ABB Motors");
    assert_int_equal(local.f[NP_MANUFACTURER].source, NP_SRC_OCR);
    assert_string_equal(local.f[NP_MODEL].value, "M3BP 160");
    assert_int_equal(local.f[NP_MODEL].source, NP_SRC_LLM);
    assert_string_equal(local.f[NP_SERIAL].value, "3GZF\xc3\xa9-01");

    /* a fenced answer */
    c = read_plate(l);
    assert_int_equal(c.r, 0);
    assert_string_equal(val(&c, NP_MODEL), "X1");
    assert_string_equal(val(&c, NP_KW), "5.5");
    assert_string_equal(val(&c, NP_MANUFACTURER), "");
    llm_free(l);
}

static void test_png(void **state)
{
    struct llm *l = client1(KEY, 5000);
    struct nameplate np;
    struct llm_usage u;
    char err[160];

    assert_int_equal(
        llm_read_nameplate(l, png, sizeof(png), "image/png", &np, &u, err, sizeof(err)), 0);
    assert_last("image_kind", "png");
    assert_last("image_mime", "image/png");
    assert_last("image_bytes", "3000");
    /* not an image type the client sends: refused before any request */
    assert_int_equal(
        llm_read_nameplate(l, png, sizeof(png), "image/gif", &np, &u, err, sizeof(err)), -EINVAL);
    assert_int_equal(request_count(), 1);
    llm_free(l);
}

static void test_no_key(void **state)
{
    struct llm *l = client1("", 5000);
    struct call c = read_plate(l);

    assert_int_equal(c.r, -EIO);
    assert_non_null(strstr(c.err, "401"));
    assert_non_null(strstr(c.err, "a:"));
    assert_last("auth", "none");
    assert_string_equal(c.u.provider, "a"); /* it answered, with an error */
    llm_free(l);
}

static void test_wrong_key(void **state)
{
    struct llm *l = client1("sk-wrong-SECRET-77", 5000);
    struct call c;

    for (int i = 0; i < 4; i++) {
        c = read_plate(l);
        assert_int_equal(c.r, -EIO);
        assert_non_null(strstr(c.err, "HTTP 401"));
        assert_non_null(strstr(c.err, "invalid_api_key"));
    }
    /* a 4xx is the request's fault, not the provider's: never skipped */
    assert_int_equal(request_count(), 4);
    assert_last("auth", "wrong");
    llm_free(l);
}

static void test_429_then_next_provider(void **state)
{
    struct llm *l = client2(), *la = client1(KEY, 5000);
    struct call c;

    answers("[{\"fault\": \"429\", \"retry_after\": 30, \"model\": \"vision-a\"}]");
    c = read_plate(l);
    assert_int_equal(c.r, 0);
    assert_string_equal(c.u.provider, "b");
    assert_string_equal(c.u.model, "vision-b");
    assert_int_equal(c.u.attempts, 2);
    assert_string_equal(val(&c, NP_MODEL), "EM3615T");
    assert_int_equal(request_count(), 2);
    assert_last("path", "/b/v1/chat/completions");

    /* a said Retry-After: 30, so the next call goes straight to b */
    c = read_plate(l);
    assert_int_equal(c.r, 0);
    assert_int_equal(c.u.attempts, 1);
    assert_string_equal(c.u.provider, "b");
    assert_int_equal(request_count(), 3);
    assert_last("path", "/b/v1/chat/completions");

    /* and a client with only a has nothing to ask */
    c = read_plate(la);
    assert_int_equal(c.r, -EAGAIN);
    assert_int_equal(c.u.attempts, 0);
    assert_string_equal(c.u.provider, "");
    assert_non_null(strstr(c.err, "skipped"));
    assert_int_equal(request_count(), 3);
    llm_free(l);
    llm_free(la);
}

static void test_server_errors(void **state)
{
    struct llm *l = client1(KEY, 5000);
    struct call c;

    answers("[{\"fault\": \"500\"}, {\"fault\": \"503\"}]");
    c = read_plate(l);
    assert_int_equal(c.r, -EIO);
    assert_non_null(strstr(c.err, "HTTP 500"));
    c = read_plate(l);
    assert_int_equal(c.r, -EIO);
    assert_non_null(strstr(c.err, "HTTP 503"));
    c = read_plate(l); /* two failures: not yet skipped */
    assert_int_equal(c.r, 0);
    assert_int_equal(request_count(), 3);

    /* a 503 with Retry-After is believed at once */
    answers("[{\"fault\": \"503\", \"retry_after\": 20}]");
    c = read_plate(l);
    assert_int_equal(c.r, -EIO);
    c = read_plate(l);
    assert_int_equal(c.r, -EAGAIN);
    assert_non_null(strstr(c.err, "a: skipped for "));
    assert_int_equal(request_count(), 4);
    llm_free(l);
}

static void test_chain_all_fail(void **state)
{
    struct llm *l = client2();
    struct call c;

    answers("[{\"fault\": \"500\"}, {\"fault\": \"error\", \"status\": 400, \"code\": "
            "\"bad_thing\"}]");
    c = read_plate(l);
    assert_int_equal(c.r, -EIO);
    assert_int_equal(c.u.attempts, 2);
    assert_non_null(strstr(c.err, "a: HTTP 500"));
    assert_non_null(strstr(c.err, "b: HTTP 400 bad_thing"));
    assert_string_equal(c.u.provider, "b");
    llm_free(l);
}

static void test_slow_within_timeout(void **state)
{
    struct llm *l = client1(KEY, 5000);
    struct call c;

    answers("[{\"fault\": \"slow\", \"ms\": 300, \"fields\": {\"model\": \"SLOW-1\"}}]");
    c = read_plate(l);
    assert_int_equal(c.r, 0);
    assert_string_equal(val(&c, NP_MODEL), "SLOW-1");
    assert_true(c.u.ms >= 290);
    assert_true(c.wall_ms < 5000);
    llm_free(l);
}

static void test_timeout(void **state)
{
    struct llm *l = client1(KEY, 300);
    struct call c;

    answers("[{\"fault\": \"timeout\"}]");
    c = read_plate(l);
    assert_int_equal(c.r, -ETIMEDOUT);
    assert_true(c.wall_ms >= 250);
    assert_true(c.wall_ms < 3000);
    assert_non_null(strstr(c.err, "a: timed out"));
    assert_string_equal(c.u.provider, "");
    assert_int_equal(c.u.attempts, 1);
    /* the same client goes on working on a new connection */
    c = read_plate(l);
    assert_int_equal(c.r, 0);
    llm_free(l);
}

static void test_bad_answers(void **state)
{
    static const struct {
        const char *fault;
        int r;
    } cases[] = {
        {"broken_json", -EBADMSG},   {"not_schema", -EBADMSG}, {"wrong_types", -EBADMSG},
        {"empty_choices", -EBADMSG}, {"oversized", -E2BIG},
    };
    struct llm *l = client1(KEY, 5000);
    struct call c;
    char list[128];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        llm_reset_skips();
        snprintf(list, sizeof(list), "[{\"fault\": \"%s\"}]", cases[i].fault);
        answers(list);
        c = read_plate(l);
        if (c.r != cases[i].r)
            fail_msg("%s: got %d, want %d (%s)", cases[i].fault, c.r, cases[i].r, c.err);
        assert_string_equal(val(&c, NP_MODEL), "");
        if (strcmp(cases[i].fault, "not_schema") == 0)
            assert_true(c.u.prompt_tokens > 0); /* the tokens were spent all the same */
    }
    c = read_plate(l); /* and a good answer after all that */
    assert_int_equal(c.r, 0);
    llm_free(l);
}

static void test_drop(void **state)
{
    struct llm *l = client1(KEY, 5000);
    struct call c;

    answers("[{\"fault\": \"drop\"}]");
    c = read_plate(l);
    assert_int_equal(c.r, -EIO);
    c = read_plate(l);
    assert_int_equal(c.r, 0);
    llm_free(l);
}

static void test_skip_after_three(void **state)
{
    struct llm *la = client1(KEY, 5000), *l = client2();
    struct call c;

    answers("[{\"fault\": \"500\", \"times\": 3}]");
    for (int i = 0; i < 3; i++) {
        c = read_plate(la);
        assert_int_equal(c.r, -EIO);
    }
    assert_int_equal(request_count(), 3);
    c = read_plate(la);
    assert_int_equal(c.r, -EAGAIN);
    assert_int_equal(c.u.attempts, 0);
    assert_int_equal(request_count(), 3); /* nothing reached the fake */

    /* in a chain, a is passed over and b answers */
    c = read_plate(l);
    assert_int_equal(c.r, 0);
    assert_int_equal(c.u.attempts, 1);
    assert_string_equal(c.u.provider, "b");
    assert_int_equal(request_count(), 4);
    assert_last("path", "/b/v1/chat/completions");
    llm_free(la);
    llm_free(l);
}

static void test_success_resets_failures(void **state)
{
    struct llm *l = client1(KEY, 5000);
    struct call c;

    answers("[{\"fault\": \"500\", \"times\": 2}, {\"fields\": {\"model\": \"OK\"}}, "
            "{\"fault\": \"broken_json\", \"times\": 2}]");
    for (int i = 0; i < 5; i++) {
        c = read_plate(l);
        assert_int_equal(c.r, i == 2 ? 0 : i < 2 ? -EIO : -EBADMSG);
    }
    c = read_plate(l); /* 2 failures since the success: still asked */
    assert_int_equal(c.r, 0);
    assert_int_equal(request_count(), 6);
    llm_free(l);
}

static void test_refused(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(sa);
    struct llm_provider p;
    struct llm *l = NULL;
    struct call c;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* a port that was free a moment ago and has no listener */
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &n), 0);
    close(fd);
    p = provider("gone", "", KEY, 3000);
    snprintf(p.url, sizeof(p.url), "http://127.0.0.1:%d/v1", ntohs(sa.sin_port));
    assert_int_equal(llm_new(&p, 1, NULL, &l), 0);
    c = read_plate(l);
    assert_int_equal(c.r, -ECONNREFUSED);
    assert_non_null(strstr(c.err, "gone: could not connect"));
    assert_true(c.wall_ms < 3000);
    llm_free(l);
}

struct canceller {
    volatile int *stop;
    long set_ms; /* when the flag was set */
};

static void *cancel_when_asked(void *arg)
{
    struct canceller *cn = arg;
    json_t *w = control("wait", "{\"count\": 1, \"timeout_ms\": 20000}");

    json_decref(w);
    __atomic_store_n(&cn->set_ms, now_ms(), __ATOMIC_SEQ_CST);
    __atomic_store_n(cn->stop, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_cancel(void **state)
{
    struct llm_provider p = provider("a", "/a/v1", KEY, 20000);
    volatile int stop = 0;
    struct canceller cn = {&stop, 0};
    struct llm *l = NULL;
    struct call c;
    pthread_t th;
    long done_ms;

    assert_int_equal(llm_new(&p, 1, &stop, &l), 0);
    answers("[{\"fault\": \"timeout\"}]");
    assert_int_equal(pthread_create(&th, NULL, cancel_when_asked, &cn), 0);
    c = read_plate(l);
    done_ms = now_ms();
    pthread_join(th, NULL);
    assert_int_equal(c.r, -ECANCELED);
    assert_non_null(strstr(c.err, "cancelled"));
    /* the call ends soon after the flag is set, not at the 20 s timeout */
    assert_true(cn.set_ms > 0);
    if (done_ms - cn.set_ms > 2000)
        fail_msg("cancelled %ld ms after the flag was set", done_ms - cn.set_ms);
    assert_int_equal(request_count(), 1);

    /* set before the call: nothing is sent */
    c = read_plate(l);
    assert_int_equal(c.r, -ECANCELED);
    assert_int_equal(request_count(), 1);
    llm_free(l);
}

static void test_response_format_refused(void **state)
{
    struct llm *l = client1(KEY, 5000);
    struct call c;
    json_t *r;

    control_ok("options", "{\"reject_response_format\": true}");
    c = read_plate(l);
    assert_int_equal(c.r, 0);
    assert_int_equal(c.u.attempts, 1);
    r = requests();
    assert_int_equal(json_integer_value(json_object_get(r, "count")), 2);
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(json_object_get(r, "requests"), 0), "status")),
                     400);
    json_decref(r);
    assert_last("response_format", "");
    /* remembered: the next call asks without it at once */
    c = read_plate(l);
    assert_int_equal(c.r, 0);
    assert_int_equal(request_count(), 3);
    assert_last("status", "200");
    llm_free(l);
}

static void test_keep_alive(void **state)
{
    struct llm *l = client1(KEY, 5000);
    char *first, *second;

    assert_int_equal(read_plate(l).r, 0);
    first = last("conn");
    assert_int_equal(read_plate(l).r, 0);
    second = last("conn");
    assert_string_equal(first, second);
    free(first);
    free(second);
    llm_free(l);
}

static void test_no_provider(void **state)
{
    struct llm *l = NULL;
    struct call c;

    assert_int_equal(llm_new(NULL, 0, NULL, &l), 0);
    c = read_plate(l);
    assert_int_equal(c.r, -ENOENT);
    assert_int_equal(c.u.attempts, 0);
    assert_int_equal(request_count(), 0);
    llm_free(l);
}

/* ---- llm_chat ---- */

#define CHAT_SYSTEM                                                                                \
    "You help maintenance technicians troubleshoot industrial equipment. Answer briefly, in "      \
    "plain text, in the language of the question."
/* UTF-8, quotes, a backslash, a tab and newlines: all must arrive as sent */
#define CHAT_USER                                                                                  \
    "Der Motor (M3BP 160, 400 V) l\xc3\xa4uft hei\xc3\x9f und l\xc3\xb6st nach 10 min aus.\n"      \
    "Display: \"F0011\" \\ overload?\tWhat do I check first? \xf0\x9f\x94\xa7"

struct chat {
    int r;
    char answer[512];
    struct llm_usage u;
    char err[200];
    long wall_ms;
};

static struct chat ask_chat(struct llm *l, const char *system, const char *user, size_t answer_size)
{
    struct chat c;
    long t0 = now_ms();

    memset(&c, 0, sizeof(c));
    assert_true(answer_size <= sizeof(c.answer));
    c.r = llm_chat(l, system, user, 300, c.answer, answer_size, &c.u, c.err, sizeof(c.err));
    c.wall_ms = now_ms() - t0;
    /* whatever happened, err names no secret, no URL and no prompt text */
    assert_null(strstr(c.err, KEY));
    assert_null(strstr(c.err, "SECRET"));
    assert_null(strstr(c.err, "sk-"));
    assert_null(strstr(c.err, "127.0.0.1"));
    assert_null(strstr(c.err, "http"));
    assert_null(strstr(c.err, "Motor"));
    assert_null(strstr(c.err, "technicians"));
    return c;
}

/* The last request the fake logged (borrowed from *root, which the caller
 * json_decrefs). */
static json_t *last_request(json_t **root)
{
    json_t *list;

    *root = requests();
    list = json_object_get(*root, "requests");
    assert_true(json_array_size(list) > 0);
    return json_array_get(list, json_array_size(list) - 1);
}

static void test_chat_success(void **state)
{
    struct llm_provider p = provider("a", "/a/v1", KEY, 5000);
    struct llm *l = NULL;
    struct chat c;
    json_t *root, *rq, *text, *roles;

    p.usd_per_mtok_in = 2.5;
    p.usd_per_mtok_out = 10;
    assert_int_equal(llm_new(&p, 1, NULL, &l), 0);
    answers(
        "[{\"content\": \"\\n  Check the overload setting against the nameplate FLA.\\n\\n\\n\\n"
        "Then measure the current on each phase.\\u0007  \", "
        "\"usage\": {\"prompt_tokens\": 120, \"completion_tokens\": 30}}]");
    c = ask_chat(l, CHAT_SYSTEM, CHAT_USER, sizeof(c.answer));
    assert_int_equal(c.r, 0);
    assert_string_equal(c.answer, "Check the overload setting against the nameplate FLA.\n\n\n"
                                  "Then measure the current on each phase.");
    assert_string_equal(c.err, "");
    assert_string_equal(c.u.provider, "a");
    assert_string_equal(c.u.model, "vision-a");
    assert_int_equal(c.u.attempts, 1);
    assert_int_equal(c.u.prompt_tokens, 120);
    assert_int_equal(c.u.completion_tokens, 30);
    assert_float_equal(c.u.cost_usd, (120 * 2.5 + 30 * 10.0) / 1e6, 1e-12);
    assert_false(c.u.truncated);
    assert_true(c.u.ms >= 0 && c.u.ms <= c.wall_ms + 1);

    /* what the fake received: the prompt as sent, no image, no response_format */
    rq = last_request(&root);
    assert_int_equal(json_integer_value(json_object_get(root, "count")), 1);
    assert_string_equal(json_string_value(json_object_get(rq, "path")), "/a/v1/chat/completions");
    assert_string_equal(json_string_value(json_object_get(rq, "model")), "vision-a");
    assert_string_equal(json_string_value(json_object_get(rq, "auth")), "ok");
    assert_int_equal(json_integer_value(json_object_get(rq, "status")), 200);
    assert_string_equal(json_string_value(json_object_get(rq, "system")), CHAT_SYSTEM);
    text = json_object_get(rq, "text");
    assert_int_equal(json_array_size(text), 1);
    assert_string_equal(json_string_value(json_array_get(text, 0)), CHAT_USER);
    roles = json_object_get(rq, "roles");
    assert_int_equal(json_array_size(roles), 2);
    assert_string_equal(json_string_value(json_array_get(roles, 0)), "system");
    assert_string_equal(json_string_value(json_array_get(roles, 1)), "user");
    assert_int_equal(json_integer_value(json_object_get(rq, "max_tokens")), 300);
    assert_true(json_is_real(json_object_get(rq, "temperature")));
    assert_float_equal(json_real_value(json_object_get(rq, "temperature")), 0.2, 1e-9);
    assert_true(json_is_null(json_object_get(rq, "response_format")));
    assert_int_equal(json_integer_value(json_object_get(rq, "images")), 0);
    assert_string_equal(json_string_value(json_object_get(rq, "content_type")), "application/json");
    json_decref(root);

    /* without a system prompt only the user message goes */
    answers("[{\"content\": \"Yes.\"}]");
    c = ask_chat(l, NULL, "Is a 10 % voltage drop normal?", sizeof(c.answer));
    assert_int_equal(c.r, 0);
    assert_string_equal(c.answer, "Yes.");
    rq = last_request(&root);
    assert_true(json_is_null(json_object_get(rq, "system")));
    assert_int_equal(json_array_size(json_object_get(rq, "roles")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(rq, "text"), 0)),
                        "Is a 10 % voltage drop normal?");
    json_decref(root);
    llm_free(l);
}

static void test_chat_truncated(void **state)
{
    struct llm *l = client1(KEY, 5000);
    struct chat c;

    /* cut by the client to fit the buffer, at a sentence end */
    answers("[{\"content\": \"Check the fuse first. Then reset the drive and watch the current "
            "for ten minutes.\"}, "
            "{\"content\": \"Check the fuse. Then\", \"finish_reason\": \"length\"}]");
    c = ask_chat(l, CHAT_SYSTEM, "Drive trips?", 40);
    assert_int_equal(c.r, 0);
    assert_string_equal(c.answer, "Check the fuse first.\xe2\x80\xa6");
    assert_true(c.u.truncated);
    /* cut by the provider at max_tokens */
    c = ask_chat(l, CHAT_SYSTEM, "Drive trips?", sizeof(c.answer));
    assert_int_equal(c.r, 0);
    assert_string_equal(c.answer, "Check the fuse. Then");
    assert_true(c.u.truncated);
    llm_free(l);
}

static void test_chat_429_then_next_provider(void **state)
{
    struct llm *l = client2();
    struct chat c;
    struct call n;

    answers("[{\"fault\": \"429\", \"retry_after\": 30, \"model\": \"vision-a\"}, "
            "{\"content\": \"Answer from b.\"}]");
    c = ask_chat(l, CHAT_SYSTEM, CHAT_USER, sizeof(c.answer));
    assert_int_equal(c.r, 0);
    assert_string_equal(c.answer, "Answer from b.");
    assert_string_equal(c.u.provider, "b");
    assert_string_equal(c.u.model, "vision-b");
    assert_int_equal(c.u.attempts, 2);
    assert_string_equal(c.err, "");
    assert_int_equal(request_count(), 2);
    assert_last("path", "/b/v1/chat/completions");

    /* the skip is shared: a nameplate read goes straight to b too */
    n = read_plate(l);
    assert_int_equal(n.r, 0);
    assert_int_equal(n.u.attempts, 1);
    assert_string_equal(n.u.provider, "b");
    assert_int_equal(request_count(), 3);
    llm_free(l);
}

static void test_chat_timeout(void **state)
{
    struct llm *l = client1(KEY, 300);
    struct chat c;

    answers("[{\"fault\": \"timeout\"}]");
    c = ask_chat(l, CHAT_SYSTEM, CHAT_USER, sizeof(c.answer));
    assert_int_equal(c.r, -ETIMEDOUT);
    assert_true(c.wall_ms >= 250);
    assert_true(c.wall_ms < 3000);
    assert_non_null(strstr(c.err, "a: timed out"));
    assert_string_equal(c.u.provider, "");
    assert_int_equal(c.u.attempts, 1);
    assert_string_equal(c.answer, ""); /* untouched */
    /* the same client goes on working */
    answers("[{\"content\": \"Fine now.\"}]");
    c = ask_chat(l, CHAT_SYSTEM, CHAT_USER, sizeof(c.answer));
    assert_int_equal(c.r, 0);
    assert_string_equal(c.answer, "Fine now.");
    llm_free(l);
}

static void test_chat_bad_answers(void **state)
{
    static const struct {
        const char *answer;
        int r;
        const char *err;
    } cases[] = {
        {"{\"fault\": \"500\"}", -EIO, "a: HTTP 500"},
        {"{\"fault\": \"503\"}", -EIO, "a: HTTP 503"},
        {"{\"fault\": \"broken_json\"}", -EBADMSG, "a: answer has no text"},
        {"{\"fault\": \"empty_choices\"}", -EBADMSG, "a: answer has no text"},
        {"{\"content\": \" \\n\\t \"}", -EBADMSG, "a: answer has no text"},
        {"{\"fault\": \"oversized\"}", -E2BIG, "a: answer over"},
        {"{\"fault\": \"drop\"}", -EIO, "a: connection failed"},
    };
    struct llm *l = client1(KEY, 5000);
    struct chat c;
    char list[128];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        llm_reset_skips();
        snprintf(list, sizeof(list), "[%s]", cases[i].answer);
        answers(list);
        c = ask_chat(l, CHAT_SYSTEM, CHAT_USER, sizeof(c.answer));
        if (c.r != cases[i].r || !strstr(c.err, cases[i].err))
            fail_msg("%s: got %d \"%s\", want %d \"%s\"", cases[i].answer, c.r, c.err, cases[i].r,
                     cases[i].err);
        assert_string_equal(c.answer, "");
    }
    /* three failures in a row: skipped, for nameplates too */
    llm_reset_skips();
    answers("[{\"fault\": \"500\", \"times\": 3}]");
    for (int i = 0; i < 3; i++)
        assert_int_equal(ask_chat(l, CHAT_SYSTEM, CHAT_USER, sizeof(c.answer)).r, -EIO);
    c = ask_chat(l, CHAT_SYSTEM, CHAT_USER, sizeof(c.answer));
    assert_int_equal(c.r, -EAGAIN);
    assert_non_null(strstr(c.err, "a: skipped for "));
    assert_int_equal(read_plate(l).r, -EAGAIN);
    llm_free(l);
}

static void test_chat_wrong_key(void **state)
{
    struct llm *l = client1("sk-wrong-SECRET-77", 5000);
    struct chat c;

    for (int i = 0; i < 4; i++) {
        c = ask_chat(l, CHAT_SYSTEM, CHAT_USER, sizeof(c.answer));
        assert_int_equal(c.r, -EIO);
        assert_non_null(strstr(c.err, "a: HTTP 401 invalid_api_key"));
    }
    /* a 4xx is the request's fault, not the provider's: never skipped */
    assert_int_equal(request_count(), 4);
    assert_last("auth", "wrong");
    llm_free(l);
}

static void test_chat_cancel(void **state)
{
    struct llm_provider p = provider("a", "/a/v1", KEY, 20000);
    volatile int stop = 0;
    struct canceller cn = {&stop, 0};
    struct llm *l = NULL;
    struct chat c;
    pthread_t th;
    long done_ms;

    assert_int_equal(llm_new(&p, 1, &stop, &l), 0);
    answers("[{\"fault\": \"timeout\"}]");
    assert_int_equal(pthread_create(&th, NULL, cancel_when_asked, &cn), 0);
    c = ask_chat(l, CHAT_SYSTEM, CHAT_USER, sizeof(c.answer));
    done_ms = now_ms();
    pthread_join(th, NULL);
    assert_int_equal(c.r, -ECANCELED);
    assert_non_null(strstr(c.err, "cancelled"));
    assert_true(cn.set_ms > 0);
    if (done_ms - cn.set_ms > 2000)
        fail_msg("cancelled %ld ms after the flag was set", done_ms - cn.set_ms);
    /* set before the call: nothing is sent */
    c = ask_chat(l, CHAT_SYSTEM, CHAT_USER, sizeof(c.answer));
    assert_int_equal(c.r, -ECANCELED);
    assert_int_equal(request_count(), 1);
    llm_free(l);
}

/* ---- the assistant (bot/assist.c) over the client ---- */

static double wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_assist(void **state)
{
    struct config cfg = {.assist_timeout_s = 1,
                         .assist_max_chars = 300,
                         .assist_user_per_hour = 10,
                         .assist_factory_per_hour = 100,
                         .assist_budget_usd = 5};
    /* The provider allows 30 s; ASSIST_TIMEOUT_S (1 s) wins. */
    struct llm_provider p = provider("a", "/a/v1", KEY, 30000);
    const struct msg_ask *ask;
    struct ask_answer ans;
    struct assist *as = NULL;
    struct arena *a = NULL;
    double t0;

    assert_int_equal(assist_new(&cfg, &p, 0, &as), 0);
    assert_null(as);
    assert_null(assist_msg(as));
    assert_int_equal(assist_new(&cfg, &p, 1, &as), 0);
    ask = assist_msg(as);
    assert_non_null(ask);
    assert_int_equal(ask->max_chars, 300);
    assert_int_equal(arena_new(&a), 0);

    answers("[{\"content\": \"First answer.\"}, {\"content\": \"Second answer.\"}]");
    assist_row(as, 41);
    assert_int_equal(ask->ask(ask->ctx, a, "Be careful.", "Why does it trip?", &ans), 0);
    assert_string_equal(ans.text, "First answer.");
    assert_string_equal(ans.provider, "a");
    /* The same row handled again (a retry): the answer it got, not a new call. */
    assert_int_equal(ask->ask(ask->ctx, a, "Be careful.", "Why does it trip?", &ans), 0);
    assert_string_equal(ans.text, "First answer.");
    assert_int_equal(request_count(), 1);
    /* Another row asks. */
    assist_row(as, 42);
    assert_int_equal(ask->ask(ask->ctx, a, "Be careful.", "Why does it trip?", &ans), 0);
    assert_string_equal(ans.text, "Second answer.");
    assert_int_equal(request_count(), 2);

    /* A provider that never answers: cut at ASSIST_TIMEOUT_S. */
    answers("[{\"fault\": \"timeout\"}]");
    assist_row(as, 43);
    t0 = wall_ms();
    assert_int_equal(ask->ask(ask->ctx, a, "Be careful.", "And now?", &ans), -ETIMEDOUT);
    assert_null(ans.text);
    assert_true(wall_ms() - t0 < 5000);
    assist_free(as);

    /* Two providers that never answer: the question's 1 s is for both,
     * not 1 s each; the second is not tried. */
    {
        struct llm_provider two[2] = {provider("a", "/a/v1", KEY, 30000),
                                      provider("b", "/b/v1", KEY, 30000)};
        int before;

        llm_reset_skips();
        assert_int_equal(assist_new(&cfg, two, 2, &as), 0);
        ask = assist_msg(as);
        answers("[{\"fault\": \"timeout\", \"times\": 2}]");
        before = request_count();
        t0 = wall_ms();
        assert_int_equal(ask->ask(ask->ctx, a, "Be careful.", "Still there?", &ans), -ETIMEDOUT);
        assert_true(wall_ms() - t0 < 1900);
        assert_int_equal(request_count() - before, 1);
        assist_free(as);
    }
    arena_free(a);
}

/* Last: the fake itself saw nothing it could not handle. */
static void test_fake_had_no_errors(void **state)
{
    json_t *r = requests();

    assert_int_equal(json_integer_value(json_object_get(r, "internal_errors")), 0);
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_success, reset),
        cmocka_unit_test_setup(test_value_types_and_merge, reset),
        cmocka_unit_test_setup(test_png, reset),
        cmocka_unit_test_setup(test_no_key, reset),
        cmocka_unit_test_setup(test_wrong_key, reset),
        cmocka_unit_test_setup(test_429_then_next_provider, reset),
        cmocka_unit_test_setup(test_server_errors, reset),
        cmocka_unit_test_setup(test_chain_all_fail, reset),
        cmocka_unit_test_setup(test_slow_within_timeout, reset),
        cmocka_unit_test_setup(test_timeout, reset),
        cmocka_unit_test_setup(test_bad_answers, reset),
        cmocka_unit_test_setup(test_drop, reset),
        cmocka_unit_test_setup(test_skip_after_three, reset),
        cmocka_unit_test_setup(test_success_resets_failures, reset),
        cmocka_unit_test_setup(test_refused, reset),
        cmocka_unit_test_setup(test_cancel, reset),
        cmocka_unit_test_setup(test_response_format_refused, reset),
        cmocka_unit_test_setup(test_keep_alive, reset),
        cmocka_unit_test_setup(test_no_provider, reset),
        cmocka_unit_test_setup(test_chat_success, reset),
        cmocka_unit_test_setup(test_chat_truncated, reset),
        cmocka_unit_test_setup(test_chat_429_then_next_provider, reset),
        cmocka_unit_test_setup(test_chat_timeout, reset),
        cmocka_unit_test_setup(test_chat_bad_answers, reset),
        cmocka_unit_test_setup(test_chat_wrong_key, reset),
        cmocka_unit_test_setup(test_chat_cancel, reset),
        cmocka_unit_test_setup(test_assist, reset),
        cmocka_unit_test(test_fake_had_no_errors),
    };
    int r;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    r = cmocka_run_group_tests_name("llm-client", tests, start_fake, stop_fake);
    curl_global_cleanup();
    return r;
}
