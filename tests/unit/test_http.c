/* The HTTP server (bot/http.c) over loopback: libcurl, or a raw socket
 * where curl would be too polite (a malformed request line, a client that
 * trickles its headers), against test routes on 127.0.0.1, port 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "http.h"
#include "log.h"

#define MAX_BODY 4096

/* ---- the routes ---- */

static atomic_int calls; /* handler calls, all routes */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char seen_method[16]; /* what /both was called with */

/* For the drain test: /slow says it has started, then takes 300 ms. */
static pthread_mutex_t slow_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slow_cond = PTHREAD_COND_INITIALIZER;
static bool slow_entered;

static void h_hello(void *ctx, const struct http_request *req, struct http_response *res)
{
    (void)ctx;
    (void)req;
    calls++;
    buf_adds(&res->body, "{\"hello\":\"world\"}");
}

/* The body back, as it came, with 201; 500 if it is not NUL-terminated. */
static void h_echo(void *ctx, const struct http_request *req, struct http_response *res)
{
    (void)ctx;
    calls++;
    res->status = req->body[req->body_len] == '\0' ? 201 : 500;
    res->content_type = "application/octet-stream";
    buf_add(&res->body, req->body, req->body_len);
}

/* The method it saw, as text. */
static void h_both(void *ctx, const struct http_request *req, struct http_response *res)
{
    (void)ctx;
    calls++;
    pthread_mutex_lock(&seen_lock);
    snprintf(seen_method, sizeof(seen_method), "%s", req->method);
    pthread_mutex_unlock(&seen_lock);
    res->content_type = "text/plain";
    buf_adds(&res->body, req->method);
}

static const char *or_null(const char *s)
{
    return s ? s : "(null)";
}

static void h_lookup(void *ctx, const struct http_request *req, struct http_response *res)
{
    (void)ctx;
    calls++;
    res->content_type = "text/plain; charset=utf-8";
    buf_addf(&res->body, "q=%s Q=%s flag=%s none=%s h=%s path=%s", or_null(http_query(req, "q")),
             or_null(http_query(req, "Q")), or_null(http_query(req, "flag")),
             or_null(http_query(req, "none")), or_null(http_header(req, "x-test")), req->path);
}

static void h_teapot(void *ctx, const struct http_request *req, struct http_response *res)
{
    (void)ctx;
    (void)req;
    calls++;
    res->status = 418;
    res->content_type = "text/plain";
    buf_adds(&res->body, "short and stout");
}

static void h_bad_status(void *ctx, const struct http_request *req, struct http_response *res)
{
    (void)ctx;
    (void)req;
    calls++;
    res->status = 99;
}

static void h_bad_type(void *ctx, const struct http_request *req, struct http_response *res)
{
    (void)ctx;
    (void)req;
    calls++;
    res->content_type = "text/plain\r\nX-Evil: 1";
    buf_adds(&res->body, "evil");
}

static void h_slow(void *ctx, const struct http_request *req, struct http_response *res)
{
    struct timespec ts = {0, 300 * 1000000L};

    (void)ctx;
    (void)req;
    calls++;
    pthread_mutex_lock(&slow_lock);
    slow_entered = true;
    pthread_cond_broadcast(&slow_cond);
    pthread_mutex_unlock(&slow_lock);
    nanosleep(&ts, NULL); /* the work in hand when the server stops */
    buf_adds(&res->body, "done");
}

static const struct http_route routes[] = {
    {"/hello", "GET", NULL, h_hello},       {"/echo", "POST", "application/json", h_echo},
    {"/both", "GET,POST", NULL, h_both},    {"/lookup", "GET", NULL, h_lookup},
    {"/teapot", "GET", NULL, h_teapot},     {"/bad-status", "GET", NULL, h_bad_status},
    {"/bad-type", "GET", NULL, h_bad_type}, {"/slow", "GET", NULL, h_slow},
};
#define N_ROUTES ((int)(sizeof(routes) / sizeof(routes[0])))

/* ---- helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct http_server *start(const char *listen, int threads, int timeout_s)
{
    struct http_options opt = {
        .listen = listen,
        .threads = threads,
        .timeout_s = timeout_s,
        .max_body = MAX_BODY,
        .max_connections = 256,
    };
    struct http_server *s = NULL;
    int r = http_start(&opt, routes, N_ROUTES, NULL, &s);

    if (r != 0)
        fail_msg("http_start(%s): %d", listen, r);
    assert_true(http_port(s) > 0);
    return s;
}

struct reply {
    long status;
    struct buf body;
    struct buf headers;
    long connects; /* new connections curl made */
};

static void reply_init(struct reply *rep)
{
    rep->status = 0;
    rep->connects = -1;
    buf_init(&rep->body, 1 << 20);
    buf_init(&rep->headers, 1 << 16);
}

static void reply_free(struct reply *rep)
{
    buf_free(&rep->body);
    buf_free(&rep->headers);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    return buf_add(arg, p, size * n) == 0 ? size * n : 0;
}

/* A chunked body: `left` bytes of 'x', 700 at a time. */
struct source {
    size_t left;
};

static size_t on_read(char *p, size_t size, size_t n, void *arg)
{
    struct source *src = arg;
    size_t k = size * n;

    if (k > 700)
        k = 700;
    if (k > src->left)
        k = src->left;
    memset(p, 'x', k);
    src->left -= k;
    return k;
}

/* The value of a response header (first, case-insensitive name), or "". */
static const char *header(const struct reply *rep, const char *name, char *dst, size_t n)
{
    const char *p = buf_str(&rep->headers);
    size_t nl = strlen(name);

    dst[0] = '\0';
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);

        if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            size_t vl = len - nl - 1;

            while (vl && *v == ' ') {
                v++;
                vl--;
            }
            snprintf(dst, n, "%.*s", (int)vl, v);
            return dst;
        }
        p += len;
        if (*p)
            p += 2;
    }
    return dst;
}

/* Sets up a request on curl (reused by the caller for keep-alive). */
static struct curl_slist *prepare(CURL *c, struct reply *rep, const char *base, const char *method,
                                  const char *path, const char *const *hdrs, const char *body,
                                  size_t len, struct source *chunked)
{
    struct curl_slist *list = NULL;
    char url[256];

    snprintf(url, sizeof(url), "%s%s", base, path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 8000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &rep->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &rep->headers);
    for (; hdrs && *hdrs; hdrs++)
        list = curl_slist_append(list, *hdrs);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (chunked) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, chunked);
        list = curl_slist_append(list, "Transfer-Encoding: chunked");
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    else if (strcmp(method, "GET") == 0 && (body || chunked))
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "GET");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    return list;
}

static void perform(CURL *c, struct reply *rep)
{
    CURLcode rc = curl_easy_perform(c);

    if (rc != CURLE_OK)
        fail_msg("curl: %s", curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rep->status);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &rep->connects);
}

static void request_on(const char *base, const char *method, const char *path,
                       const char *const *hdrs, const char *body, size_t len,
                       struct source *chunked, struct reply *rep)
{
    CURL *c = curl_easy_init();
    struct curl_slist *list;

    assert_non_null(c);
    reply_init(rep);
    list = prepare(c, rep, base, method, path, hdrs, body, len, chunked);
    perform(c, rep);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
}

static struct http_server *srv; /* the group's server: 4 threads, timeout 5 s */
static char srv_base[64];

static void request(const char *method, const char *path, const char *const *hdrs, const char *body,
                    size_t len, struct reply *rep)
{
    request_on(srv_base, method, path, hdrs, body, len, NULL, rep);
}

static void expect(const struct reply *rep, long status, const char *body)
{
    if (rep->status != status)
        fail_msg("status %ld, want %ld (body %s)", rep->status, status, buf_str(&rep->body));
    if (body && strcmp(buf_str(&rep->body), body) != 0)
        fail_msg("body %s, want %s", buf_str(&rep->body), body);
}

static void expect_header(const struct reply *rep, const char *name, const char *want)
{
    char v[256];

    header(rep, name, v, sizeof(v));
    if (strcmp(v, want) != 0)
        fail_msg("%s: \"%s\", want \"%s\"", name, v, want);
}

static int raw_connect(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void raw_send(int fd, const char *s)
{
    size_t n = strlen(s);

    assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads until the server closes or ms pass; NUL-terminates. Returns
 * whether it closed. */
static bool raw_read(int fd, char *dst, size_t n, int ms)
{
    int64_t end = now_ms() + ms;
    size_t o = 0;

    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int64_t left = end - now_ms();
        ssize_t k;

        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        k = recv(fd, dst + o, n - 1 - o, 0);
        if (k <= 0) {
            dst[o] = '\0';
            return true;
        }
        o += (size_t)k;
        if (o == n - 1)
            break;
    }
    dst[o] = '\0';
    return false;
}

/* Sends s one byte every 200 ms (the deliberate trickle) until the server
 * hangs up; returns the milliseconds that took, or -1 if it never did
 * within 5 s. Whatever the server says is collected in got. */
static int64_t trickle(int fd, const char *s, char *got, size_t n)
{
    int64_t t0 = now_ms();
    size_t o = 0;

    got[0] = '\0';
    for (size_t i = 0; s[i] && now_ms() - t0 < 5000; i++) {
        struct pollfd p = {fd, POLLIN, 0};

        if (send(fd, s + i, 1, MSG_NOSIGNAL) != 1)
            return now_ms() - t0;
        if (poll(&p, 1, 200) > 0) {
            ssize_t k = recv(fd, got + o, n - 1 - o, 0);

            if (k <= 0)
                return now_ms() - t0;
            o += (size_t)k;
            got[o] = '\0';
        }
    }
    return -1;
}

/* ---- tests ---- */

static void test_get(void **state)
{
    struct reply rep;
    int before = calls;

    (void)state;
    request("GET", "/hello", NULL, NULL, 0, &rep);
    expect(&rep, 200, "{\"hello\":\"world\"}");
    expect_header(&rep, "Content-Type", "application/json");
    expect_header(&rep, "Cache-Control", "no-store");
    expect_header(&rep, "X-Content-Type-Options", "nosniff");
    assert_int_equal(calls, before + 1);
    reply_free(&rep);

    request("GET", "/teapot", NULL, NULL, 0, &rep);
    expect(&rep, 418, "short and stout");
    expect_header(&rep, "Content-Type", "text/plain");
    reply_free(&rep);

    request("GET", "/both", NULL, NULL, 0, &rep);
    expect(&rep, 200, "GET");
    reply_free(&rep);
}

static void test_post(void **state)
{
    const char *json[] = {"Content-Type: application/json", NULL};
    struct reply rep;

    (void)state;
    request("POST", "/echo", json, "{\"a\":1}", 7, &rep);
    expect(&rep, 201, "{\"a\":1}");
    expect_header(&rep, "Content-Type", "application/octet-stream");
    expect_header(&rep, "Cache-Control", "no-store");
    reply_free(&rep);

    /* An empty body: the handler gets "". */
    request("POST", "/echo", json, "", 0, &rep);
    expect(&rep, 201, "");
    reply_free(&rep);

    request("POST", "/both", NULL, "anything", 8, &rep);
    expect(&rep, 200, "POST");
    reply_free(&rep);
}

static void test_query_and_headers(void **state)
{
    const char *hdrs[] = {"X-Test: Hello there", NULL};
    struct reply rep;

    (void)state;
    request("GET", "/lookup?q=a%20b&Q=up&flag", hdrs, NULL, 0, &rep);
    expect(&rep, 200, "q=a b Q=up flag= none=(null) h=Hello there path=/lookup");
    expect_header(&rep, "Content-Type", "text/plain; charset=utf-8");
    reply_free(&rep);

    request("GET", "/lookup", NULL, NULL, 0, &rep);
    expect(&rep, 200, "q=(null) Q=(null) flag=(null) none=(null) h=(null) path=/lookup");
    reply_free(&rep);
}

static void test_not_found(void **state)
{
    struct reply rep;
    int before = calls;

    (void)state;
    request("GET", "/nope", NULL, NULL, 0, &rep);
    expect(&rep, 404, "{\"error\":\"not found\"}");
    expect_header(&rep, "Content-Type", "application/json");
    expect_header(&rep, "Cache-Control", "no-store");
    expect_header(&rep, "X-Content-Type-Options", "nosniff");
    reply_free(&rep);

    /* Exact paths only. */
    request("GET", "/hello/", NULL, NULL, 0, &rep);
    expect(&rep, 404, NULL);
    reply_free(&rep);
    request("GET", "/hell", NULL, NULL, 0, &rep);
    expect(&rep, 404, NULL);
    reply_free(&rep);
    request("POST", "/", NULL, "x", 1, &rep);
    expect(&rep, 404, NULL);
    reply_free(&rep);
    assert_int_equal(calls, before);
}

static void test_method_not_allowed(void **state)
{
    const char *json[] = {"Content-Type: application/json", NULL};
    struct reply rep;
    int before = calls;

    (void)state;
    request("POST", "/hello", json, "{}", 2, &rep);
    expect(&rep, 405, "{\"error\":\"method not allowed\"}");
    expect_header(&rep, "Allow", "GET, HEAD");
    expect_header(&rep, "Cache-Control", "no-store");
    reply_free(&rep);

    request("DELETE", "/both", NULL, NULL, 0, &rep);
    expect(&rep, 405, NULL);
    expect_header(&rep, "Allow", "GET, HEAD, POST");
    reply_free(&rep);

    request("GET", "/echo", NULL, NULL, 0, &rep);
    expect(&rep, 405, NULL);
    expect_header(&rep, "Allow", "POST");
    reply_free(&rep);

    request("HEAD", "/echo", NULL, NULL, 0, &rep);
    expect(&rep, 405, "");
    reply_free(&rep);
    assert_int_equal(calls, before);
}

static void test_head(void **state)
{
    struct reply rep;
    int before = calls;

    (void)state;
    request("HEAD", "/both", NULL, NULL, 0, &rep);
    expect(&rep, 200, "");
    expect_header(&rep, "Content-Length", "3");
    expect_header(&rep, "Cache-Control", "no-store");
    assert_int_equal(calls, before + 1);
    pthread_mutex_lock(&seen_lock);
    assert_string_equal(seen_method, "GET");
    pthread_mutex_unlock(&seen_lock);
    reply_free(&rep);
}

static void test_content_type(void **state)
{
    const char *plain[] = {"Content-Type: text/plain", NULL};
    const char *none[] = {"Content-Type:", NULL};
    const char *charset[] = {"Content-Type: application/json; charset=utf-8", NULL};
    const char *upper[] = {"Content-Type: Application/JSON", NULL};
    const char *prefix[] = {"Content-Type: application/jsonx", NULL};
    struct reply rep;
    int before = calls;

    (void)state;
    request("POST", "/echo", plain, "{}", 2, &rep);
    expect(&rep, 415, "{\"error\":\"unsupported content type\"}");
    reply_free(&rep);
    request("POST", "/echo", none, "{}", 2, &rep);
    expect(&rep, 415, NULL);
    reply_free(&rep);
    request("POST", "/echo", prefix, "{}", 2, &rep);
    expect(&rep, 415, NULL);
    reply_free(&rep);
    /* curl's default, application/x-www-form-urlencoded */
    request("POST", "/echo", NULL, "{}", 2, &rep);
    expect(&rep, 415, NULL);
    reply_free(&rep);
    assert_int_equal(calls, before);

    request("POST", "/echo", charset, "{}", 2, &rep);
    expect(&rep, 201, "{}");
    reply_free(&rep);
    request("POST", "/echo", upper, "{}", 2, &rep);
    expect(&rep, 201, "{}");
    reply_free(&rep);
    assert_int_equal(calls, before + 2);
}

static void test_too_big_content_length(void **state)
{
    const char *json[] = {"Content-Type: application/json", NULL};
    const char *expect100[] = {"Content-Type: application/json", "Expect: 100-continue", NULL};
    char *big = malloc(MAX_BODY * 4);
    char got[1024];
    struct reply rep;
    int before = calls, fd;
    int64_t t0;

    (void)state;
    assert_non_null(big);
    memset(big, 'x', MAX_BODY * 4);
    request("POST", "/echo", json, big, MAX_BODY + 1, &rep);
    expect(&rep, 413, "{\"error\":\"body too large\"}");
    expect_header(&rep, "Cache-Control", "no-store");
    reply_free(&rep);

    /* Asked before sending: 413 instead of 100 Continue. */
    request("POST", "/echo", expect100, big, MAX_BODY * 4, &rep);
    expect(&rep, 413, NULL);
    reply_free(&rep);
    assert_int_equal(calls, before);
    free(big);

    /* Announced and never sent: the answer comes at once. */
    fd = raw_connect(http_port(srv));
    t0 = now_ms();
    raw_send(fd, "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 "Content-Length: 1000000000\r\n\r\n");
    raw_read(fd, got, sizeof(got), 3000);
    if (strncmp(got, "HTTP/1.1 413 ", 13) != 0)
        fail_msg("got: %s", got);
    assert_true(now_ms() - t0 < 2000);
    close(fd);
    assert_int_equal(calls, before);
}

static void test_chunked(void **state)
{
    struct source src = {3000};
    struct reply rep;
    int before = calls;
    const char *json[] = {"Content-Type: application/json", NULL};

    (void)state;
    request_on(srv_base, "POST", "/echo", json, NULL, 0, &src, &rep);
    expect(&rep, 201, NULL);
    assert_int_equal(rep.body.len, 3000);
    reply_free(&rep);
    assert_int_equal(calls, before + 1);

    src.left = MAX_BODY * 3 + 5;
    request_on(srv_base, "POST", "/echo", json, NULL, 0, &src, &rep);
    expect(&rep, 413, "{\"error\":\"body too large\"}");
    reply_free(&rep);

    src.left = MAX_BODY + 1;
    request_on(srv_base, "POST", "/echo", json, NULL, 0, &src, &rep);
    expect(&rep, 413, NULL);
    reply_free(&rep);
    assert_int_equal(calls, before + 1);

    /* Far past the cap (1 MiB is read and dropped): cut off unanswered. */
    {
        CURL *c = curl_easy_init();
        struct curl_slist *list;
        long status = 0;
        CURLcode rc;

        assert_non_null(c);
        src.left = (size_t)4 << 20;
        reply_init(&rep);
        list = prepare(c, &rep, srv_base, "POST", "/echo", json, NULL, 0, &src);
        rc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (rc == CURLE_OK)
            fail_msg("answered %ld", status);
        assert_true(src.left > 0);
        curl_slist_free_all(list);
        curl_easy_cleanup(c);
        reply_free(&rep);
    }
    assert_int_equal(calls, before + 1);

    /* The server still answers. */
    request("GET", "/hello", NULL, NULL, 0, &rep);
    expect(&rep, 200, NULL);
    reply_free(&rep);
}

static void test_body_at_cap(void **state)
{
    const char *json[] = {"Content-Type: application/json", NULL};
    char *body = malloc(MAX_BODY);
    struct reply rep;
    struct source src = {MAX_BODY};

    (void)state;
    assert_non_null(body);
    for (size_t i = 0; i < MAX_BODY; i++)
        body[i] = (char)('a' + i % 26);
    request("POST", "/echo", json, body, MAX_BODY, &rep);
    expect(&rep, 201, NULL);
    assert_int_equal(rep.body.len, MAX_BODY);
    assert_memory_equal(rep.body.p, body, MAX_BODY);
    reply_free(&rep);
    free(body);

    request_on(srv_base, "POST", "/echo", json, NULL, 0, &src, &rep);
    expect(&rep, 201, NULL);
    assert_int_equal(rep.body.len, MAX_BODY);
    reply_free(&rep);
}

static void test_body_with_nul(void **state)
{
    const char *json[] = {"Content-Type: application/json", NULL};
    static const char body[] = "a\0b\0\0c";
    struct reply rep;

    (void)state;
    request("POST", "/echo", json, body, sizeof(body) - 1, &rep);
    expect(&rep, 201, NULL);
    assert_int_equal(rep.body.len, sizeof(body) - 1);
    assert_memory_equal(rep.body.p, body, sizeof(body) - 1);
    reply_free(&rep);
}

static void test_get_with_body(void **state)
{
    struct reply rep;
    struct source src = {10};
    int before = calls;

    (void)state;
    request("GET", "/hello", NULL, "x=1", 3, &rep);
    expect(&rep, 400, "{\"error\":\"a GET request has no body\"}");
    reply_free(&rep);
    request_on(srv_base, "GET", "/hello", NULL, NULL, 0, &src, &rep);
    expect(&rep, 400, NULL);
    reply_free(&rep);
    assert_int_equal(calls, before);

    /* Content-Length: 0 is no body. */
    const char *zero[] = {"Content-Length: 0", NULL};
    request("GET", "/hello", zero, NULL, 0, &rep);
    expect(&rep, 200, NULL);
    reply_free(&rep);
}

static void test_bad_handler_answer(void **state)
{
    struct reply rep;

    (void)state;
    request("GET", "/bad-status", NULL, NULL, 0, &rep);
    expect(&rep, 500, "{\"error\":\"internal error\"}");
    reply_free(&rep);
    request("GET", "/bad-type", NULL, NULL, 0, &rep);
    expect(&rep, 500, "{\"error\":\"internal error\"}");
    expect_header(&rep, "X-Evil", "");
    reply_free(&rep);
}

static void test_slow_headers(void **state)
{
    struct http_server *s = start("127.0.0.1:0", 2, 1);
    char got[512];
    int fd = raw_connect(http_port(s));
    int64_t ms;
    int before = calls;

    (void)state;
    ms = trickle(fd,
                 "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
                 got, sizeof(got));
    close(fd);
    if (ms < 900 || ms > 2500)
        fail_msg("disconnected after %lld ms (want about 1000)", (long long)ms);
    assert_int_equal(calls, before);
    http_stop(s);
}

static void test_slow_body(void **state)
{
    struct http_server *s = start("127.0.0.1:0", 2, 1);
    char got[512];
    int fd = raw_connect(http_port(s));
    int64_t ms;
    int before = calls;

    (void)state;
    raw_send(fd, "POST /both HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n");
    ms = trickle(fd,
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxx",
                 got, sizeof(got));
    close(fd);
    if (ms < 800 || ms > 2500)
        fail_msg("disconnected after %lld ms (want about 1000)", (long long)ms);
    assert_int_equal(calls, before);
    http_stop(s);
}

/* Requests on one connection, each well within timeout_s, the whole
 * beyond it: the deadline restarts after every answer. */
static void test_keep_alive(void **state)
{
    struct http_server *s = start("127.0.0.1:0", 1, 1);
    char base[64];
    CURL *c = curl_easy_init();
    struct curl_slist *list;
    struct reply rep;

    (void)state;
    assert_non_null(c);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", http_port(s));
    for (int i = 0; i < 3; i++) {
        struct timespec ts = {0, 500 * 1000000L};

        if (i)
            nanosleep(&ts, NULL); /* the pacing under test, not synchronisation */
        reply_init(&rep);
        list = prepare(c, &rep, base, "GET", "/hello", NULL, NULL, 0, NULL);
        perform(c, &rep);
        curl_slist_free_all(list);
        expect(&rep, 200, NULL);
        assert_int_equal(rep.connects, i == 0 ? 1 : 0);
        reply_free(&rep);
    }
    curl_easy_cleanup(c);
    http_stop(s);
}

/* What MHD answers itself, before any handler: the server goes on. */
static void raw_exchange(const char *req, char *got, size_t n)
{
    int fd = raw_connect(http_port(srv));

    raw_send(fd, req);
    if (!raw_read(fd, got, n, 3000))
        fail_msg("%s: still open", req);
    close(fd);
}

static void test_malformed_request(void **state)
{
    char got[1024];
    struct reply rep;
    int before = calls;

    (void)state;
    raw_exchange("GET /hello HTTP/1.1 extra\r\nHost: x\r\n\r\n", got, sizeof(got));
    if (strncmp(got, "HTTP/1.1 400 ", 13) != 0)
        fail_msg("got: %s", got);
    raw_exchange("GET /hello HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", got, sizeof(got));
    if (strncmp(got, "HTTP/1.1 400 ", 13) != 0)
        fail_msg("got: %s", got);
    raw_exchange("GET /hello HTTP/9.9\r\nHost: x\r\n\r\n", got, sizeof(got));
    if (strncmp(got, "HTTP/1.1 505 ", 13) != 0)
        fail_msg("got: %s", got);
    /* No spaces at all: MHD 0.9.75 hangs up without a word. */
    raw_exchange("GARBAGE\r\n\r\n", got, sizeof(got));
    if (got[0] && strncmp(got, "HTTP/1.1 400 ", 13) != 0)
        fail_msg("got: %s", got);
    assert_int_equal(calls, before);

    request("GET", "/hello", NULL, NULL, 0, &rep);
    expect(&rep, 200, "{\"hello\":\"world\"}");
    reply_free(&rep);
}

static void test_concurrent(void **state)
{
    enum { N = 100 };
    CURLM *m = curl_multi_init();
    CURL *c[N];
    struct reply rep[N];
    int running = 1, done = 0;
    int64_t t0 = now_ms();

    (void)state;
    assert_non_null(m);
    for (int i = 0; i < N; i++) {
        char path[64];

        snprintf(path, sizeof(path), "/lookup?q=%d", i);
        c[i] = curl_easy_init();
        assert_non_null(c[i]);
        reply_init(&rep[i]);
        prepare(c[i], &rep[i], srv_base, "GET", path, NULL, NULL, 0, NULL);
        curl_easy_setopt(c[i], CURLOPT_FRESH_CONNECT, 1L);
        curl_multi_add_handle(m, c[i]);
    }
    while (running && now_ms() - t0 < 9000) {
        assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
        if (running)
            curl_multi_poll(m, NULL, 0, 200, NULL);
    }
    assert_int_equal(running, 0);
    for (int i = 0; i < N; i++) {
        char want[128];

        curl_easy_getinfo(c[i], CURLINFO_RESPONSE_CODE, &rep[i].status);
        snprintf(want, sizeof(want), "q=%d Q=(null) flag=(null) none=(null) h=(null) path=/lookup",
                 i);
        if (rep[i].status == 200 && strcmp(buf_str(&rep[i].body), want) == 0)
            done++;
        curl_multi_remove_handle(m, c[i]);
        curl_easy_cleanup(c[i]);
        reply_free(&rep[i]);
    }
    curl_multi_cleanup(m);
    assert_int_equal(done, N);
}

static void test_parse_listen(void **state)
{
    static const struct {
        const char *in;
        const char *host;
        int port;
    } good[] = {
        {"127.0.0.1:8080", "127.0.0.1", 8080},
        {"[::1]:8080", "::1", 8080},
        {"0.0.0.0:8080", "0.0.0.0", 8080},
        {":8080", "0.0.0.0", 8080},
        {"localhost:8080", "127.0.0.1", 8080},
        {"LocalHost:1", "127.0.0.1", 1},
        {"[::]:443", "::", 443},
        {"[::ffff:127.0.0.1]:80", "::ffff:127.0.0.1", 80},
        {"10.1.2.3:0", "10.1.2.3", 0},
        {"127.0.0.1:65535", "127.0.0.1", 65535},
        {"127.0.0.1:00080", "127.0.0.1", 80},
    };
    static const char *const bad[] = {
        NULL,
        "",
        "8080",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1: 80",
        "127.0.0.1:80 ",
        "127.0.0.1:8o",
        "127.0.0.1:123456",
        "::1:8080",
        "[::1]",
        "[::1]8080",
        "[::1:8080",
        "[]:8080",
        "[127.0.0.1]:8080",
        "[fe80::1%eth0]:80",
        "256.0.0.1:80",
        "1.2.3:80",
        "01.2.3.4:80",
        " 127.0.0.1:80",
        "example.com:80",
        "localhostx:80",
        "http://127.0.0.1:80",
    };
    char host[64];
    int port;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        port = -1;
        host[0] = '\0';
        if (config_parse_listen(good[i].in, host, sizeof(host), &port) != 0)
            fail_msg("%s: refused", good[i].in);
        if (strcmp(host, good[i].host) != 0 || port != good[i].port)
            fail_msg("%s: %s %d", good[i].in, host, port);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_parse_listen(bad[i], host, sizeof(host), &port) != -EINVAL)
            fail_msg("%s: accepted", bad[i] ? bad[i] : "(null)");
    }
    /* A check only; a host buffer too small. */
    assert_int_equal(config_parse_listen("[::1]:80", NULL, 0, NULL), 0);
    assert_int_equal(config_parse_listen("127.0.0.1:80", host, 9, &port), -EINVAL);
}

static void test_start_errors(void **state)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    struct http_options opt = {"127.0.0.1:0", 1, 5, MAX_BODY, 16};
    struct http_server *s = NULL;
    char addr[64];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    (void)state;
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    opt.listen = addr;
    assert_int_equal(http_start(&opt, routes, N_ROUTES, NULL, &s), -EADDRINUSE);
    assert_null(s);
    close(fd);

    opt.listen = "127.0.0.1";
    assert_int_equal(http_start(&opt, routes, N_ROUTES, NULL, &s), -EINVAL);
    opt.listen = "127.0.0.1:0";
    opt.threads = 0;
    assert_int_equal(http_start(&opt, routes, N_ROUTES, NULL, &s), -EINVAL);
    opt.threads = 1;
    opt.timeout_s = 0;
    assert_int_equal(http_start(&opt, routes, N_ROUTES, NULL, &s), -EINVAL);
    assert_null(s);
}

static void test_ipv6(void **state)
{
    struct sockaddr_in6 sa;
    struct http_server *s;
    struct reply rep;
    char base[64];
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

    (void)state;
    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_loopback;
    ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok)
        skip();
    s = start("[::1]:0", 1, 5);
    snprintf(base, sizeof(base), "http://[::1]:%d", http_port(s));
    request_on(base, "GET", "/hello", NULL, NULL, 0, NULL, &rep);
    expect(&rep, 200, "{\"hello\":\"world\"}");
    reply_free(&rep);
    http_stop(s);
}

struct slow_client {
    char base[64];
    struct reply rep;
};

static void *slow_client_main(void *arg)
{
    struct slow_client *sc = arg;

    request_on(sc->base, "GET", "/slow", NULL, NULL, 0, NULL, &sc->rep);
    return NULL;
}

/* http_stop() lets the request in hand finish, then stops. */
static void test_stop_drains(void **state)
{
    struct http_server *s = start("127.0.0.1:0", 2, 3);
    struct slow_client sc;
    struct timespec ts;
    pthread_t t;
    int port = http_port(s), fd, r = 0;

    (void)state;
    snprintf(sc.base, sizeof(sc.base), "http://127.0.0.1:%d", port);
    slow_entered = false;
    assert_int_equal(pthread_create(&t, NULL, slow_client_main, &sc), 0);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&slow_lock);
    while (!slow_entered && r == 0)
        r = pthread_cond_timedwait(&slow_cond, &slow_lock, &ts);
    pthread_mutex_unlock(&slow_lock);
    assert_int_equal(r, 0);
    http_stop(s);
    pthread_join(t, NULL);
    expect(&sc.rep, 200, "done");
    expect_header(&sc.rep, "Connection", "close");
    reply_free(&sc.rep);

    /* Nothing listens any more. */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    {
        struct sockaddr_in sa;

        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), -1);
        assert_int_equal(errno, ECONNREFUSED);
    }
    close(fd);
}

static void test_stop_null(void **state)
{
    (void)state;
    http_stop(NULL);
}

/* The debug line of a request has method, path, status, bytes and time;
 * never the query string or a header's value. */
static void test_request_log(void **state)
{
    const char *hdrs[] = {"X-Test: header-secret", NULL};
    struct reply rep;
    FILE *tmp = tmpfile();
    char line[4096];
    size_t n;
    int saved;

    (void)state;
    assert_non_null(tmp);
    fflush(stderr);
    saved = dup(2);
    assert_true(saved >= 0);
    dup2(fileno(tmp), 2);
    log_threshold = LOG_DEBUG;
    request("GET", "/lookup?hub.verify_token=query-secret&q=1", hdrs, NULL, 0, &rep);
    log_threshold = LOG_INFO;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    expect(&rep, 200, NULL);
    reply_free(&rep);

    rewind(tmp);
    n = fread(line, 1, sizeof(line) - 1, tmp);
    line[n] = '\0';
    fclose(tmp);
    if (!strstr(line, "ev=http.request method=\"GET\" path=\"/lookup\" status=200 bytes=") ||
        !strstr(line, " ms="))
        fail_msg("log: %s", line);
    if (strstr(line, "secret") || strstr(line, "verify_token"))
        fail_msg("log shows the query or a header: %s", line);
}

static int group_setup(void **state)
{
    (void)state;
    srv = start("127.0.0.1:0", 4, 5);
    snprintf(srv_base, sizeof(srv_base), "http://127.0.0.1:%d", http_port(srv));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    http_stop(srv);
    srv = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_post),
        cmocka_unit_test(test_query_and_headers),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_too_big_content_length),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_body_at_cap),
        cmocka_unit_test(test_body_with_nul),
        cmocka_unit_test(test_get_with_body),
        cmocka_unit_test(test_bad_handler_answer),
        cmocka_unit_test(test_slow_headers),
        cmocka_unit_test(test_slow_body),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_malformed_request),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_parse_listen),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_stop_drains),
        cmocka_unit_test(test_stop_null),
        cmocka_unit_test(test_request_log),
    };
    int r;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    r = cmocka_run_group_tests(tests, group_setup, group_teardown);
    curl_global_cleanup();
    return r;
}
