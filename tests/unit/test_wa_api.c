/* The WhatsApp Graph client (bot/wa_api.c) against a tiny HTTP/1.1 server
 * that runs inside this test on 127.0.0.1: a thread polling a listening
 * socket and its connections, answering each request from a table of
 * canned routes and logging what it got (method, target, Authorization,
 * Content-Type, body). Keep-alive is honoured, so the client's reuse of its
 * connection is visible too. Nothing waits for a fixed time except the
 * timeout and stop cases, which are bounded by the client's own timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "text.h"
#include "wa.h"

#define TOKEN "EAAGtestTOKEN0123456789abcdefXYZ"
#define PNID "1065403522"
#define MAX_CONNS 16
#define MAX_ROUTES 16
#define MAX_LOG 32
#define REQ_MAX (256 * 1024)

/* ---- the server ---- */

enum {
    R_HANG = 1,      /* read the request, never answer */
    R_NO_LENGTH = 2, /* no Content-Length: the body ends when the connection closes */
};

struct route {
    char method[8];
    char path[256]; /* the target without its query */
    int status;
    char *body;
    size_t len;
    int flags;
};

struct logged {
    char method[8];
    char target[512];
    char auth[256];
    char ctype[128];
    char *body;
};

struct conn {
    int fd;
    bool hung;
    size_t len;
    char *buf;
};

static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    int listen_fd;
    int wake[2];
    int port;
    struct route routes[MAX_ROUTES];
    int n_routes;
    struct logged log[MAX_LOG];
    int n_log;
    int accepts;
    struct conn conns[MAX_CONNS];
} srv;

static char base[64];      /* http://127.0.0.1:PORT/v21.0/ */
static char dl_prefix[64]; /* http://127.0.0.1:PORT */

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w <= 0)
            return; /* the client went away (a cap, a timeout): fine */
        p += w;
        n -= (size_t)w;
    }
}

static void header_value(const char *head, const char *name, char *out, size_t n)
{
    size_t len = strlen(name);
    const char *p = head;

    out[0] = '\0';
    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, len) == 0 && p[len] == ':') {
            const char *v = p + len + 1, *e;

            while (*v == ' ')
                v++;
            e = strstr(v, "\r\n");
            snprintf(out, n, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
            return;
        }
    }
}

static void conn_close(struct conn *c)
{
    close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

/* Answers one complete request; false when the connection must close. */
static bool answer(struct conn *c, const char *head, const char *body, size_t body_len)
{
    char method[8] = "", target[512] = "", path[512], hdr[256];
    struct route rt = {.status = 0};
    struct logged *lg;
    bool keep = true;
    int n;

    sscanf(head, "%7s %511s", method, target);
    snprintf(path, sizeof(path), "%s", target);
    path[strcspn(path, "?")] = '\0';
    pthread_mutex_lock(&srv.lock);
    if (srv.n_log < MAX_LOG) {
        lg = &srv.log[srv.n_log++];
        snprintf(lg->method, sizeof(lg->method), "%s", method);
        snprintf(lg->target, sizeof(lg->target), "%s", target);
        header_value(head, "Authorization", lg->auth, sizeof(lg->auth));
        header_value(head, "Content-Type", lg->ctype, sizeof(lg->ctype));
        lg->body = strndup(body, body_len);
    }
    /* A copy: the test may reset the routes while an answer is still
     * being written to a client that went away. */
    for (int i = 0; i < srv.n_routes; i++)
        if (strcmp(srv.routes[i].method, method) == 0 && strcmp(srv.routes[i].path, path) == 0) {
            rt = srv.routes[i];
            rt.body = malloc(rt.len + 1);
            if (!rt.body)
                abort();
            memcpy(rt.body, srv.routes[i].body, rt.len);
            break;
        }
    pthread_mutex_unlock(&srv.lock);
    if (!rt.body) {
        n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                     "Content-Length: 8\r\n\r\nno route");
        send_all(c->fd, hdr, (size_t)n);
        return true;
    }
    if (rt.flags & R_HANG) {
        free(rt.body);
        c->hung = true;
        return true;
    }
    if (rt.flags & R_NO_LENGTH) {
        n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d X\r\nContent-Type: application/octet-stream\r\n"
                     "Connection: close\r\n\r\n",
                     rt.status);
        keep = false;
    } else {
        n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     rt.status, rt.len);
    }
    send_all(c->fd, hdr, (size_t)n);
    send_all(c->fd, rt.body, rt.len);
    free(rt.body);
    return keep;
}

/* Reads what came on c; answers every complete request in it. */
static void conn_read(struct conn *c)
{
    ssize_t got;

    if (c->len == REQ_MAX) {
        conn_close(c);
        return;
    }
    got = recv(c->fd, c->buf + c->len, REQ_MAX - c->len, 0);
    if (got <= 0) {
        conn_close(c);
        return;
    }
    if (c->hung)
        return;
    c->len += (size_t)got;
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4), cl[32], *head;
        size_t head_len, body_len, total;
        bool keep;

        if (!end)
            return;
        head_len = (size_t)(end - c->buf) + 4;
        head = strndup(c->buf, head_len);
        if (!head)
            abort(); /* not cmocka's assert: this is the server's thread */
        header_value(head, "Content-Length", cl, sizeof(cl));
        body_len = cl[0] ? strtoul(cl, NULL, 10) : 0;
        total = head_len + body_len;
        if (total > REQ_MAX) {
            free(head);
            conn_close(c);
            return;
        }
        if (c->len < total) {
            free(head);
            return;
        }
        keep = answer(c, head, c->buf + head_len, body_len);
        free(head);
        memmove(c->buf, c->buf + total, c->len - total);
        c->len -= total;
        if (!keep) {
            conn_close(c);
            return;
        }
        if (c->hung)
            return;
    }
}

static void *serve(void *arg)
{
    for (;;) {
        struct pollfd pfd[MAX_CONNS + 2];
        int idx[MAX_CONNS + 2], n = 0;

        pfd[n] = (struct pollfd){.fd = srv.wake[0], .events = POLLIN};
        idx[n++] = -1;
        pfd[n] = (struct pollfd){.fd = srv.listen_fd, .events = POLLIN};
        idx[n++] = -2;
        for (int i = 0; i < MAX_CONNS; i++)
            if (srv.conns[i].fd >= 0) {
                pfd[n] = (struct pollfd){.fd = srv.conns[i].fd, .events = POLLIN};
                idx[n++] = i;
            }
        if (poll(pfd, (nfds_t)n, -1) < 0)
            continue;
        if (pfd[0].revents)
            break;
        for (int k = 1; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            if (idx[k] == -2) {
                int fd = accept(srv.listen_fd, NULL, NULL), i;

                if (fd < 0)
                    continue;
                for (i = 0; i < MAX_CONNS && srv.conns[i].fd >= 0; i++)
                    ;
                if (i == MAX_CONNS) {
                    close(fd);
                    continue;
                }
                srv.conns[i].fd = fd;
                srv.conns[i].buf = malloc(REQ_MAX);
                if (!srv.conns[i].buf)
                    abort();
                pthread_mutex_lock(&srv.lock);
                srv.accepts++;
                pthread_mutex_unlock(&srv.lock);
            } else {
                conn_read(&srv.conns[idx[k]]);
            }
        }
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (srv.conns[i].fd >= 0)
            conn_close(&srv.conns[i]);
    return arg;
}

static void reset(void)
{
    pthread_mutex_lock(&srv.lock);
    for (int i = 0; i < srv.n_routes; i++)
        free(srv.routes[i].body);
    for (int i = 0; i < srv.n_log; i++)
        free(srv.log[i].body);
    memset(srv.routes, 0, sizeof(srv.routes));
    memset(srv.log, 0, sizeof(srv.log));
    srv.n_routes = srv.n_log = srv.accepts = 0;
    pthread_mutex_unlock(&srv.lock);
}

static void route_bytes(const char *method, const char *path, int status, const void *body,
                        size_t len, int flags)
{
    struct route *rt;

    pthread_mutex_lock(&srv.lock);
    assert_true(srv.n_routes < MAX_ROUTES);
    rt = &srv.routes[srv.n_routes++];
    snprintf(rt->method, sizeof(rt->method), "%s", method);
    snprintf(rt->path, sizeof(rt->path), "%s", path);
    rt->status = status;
    rt->body = malloc(len + 1);
    assert_non_null(rt->body);
    memcpy(rt->body, body, len);
    rt->len = len;
    rt->flags = flags;
    pthread_mutex_unlock(&srv.lock);
}

static void route(const char *method, const char *path, int status, const char *body)
{
    route_bytes(method, path, status, body, strlen(body), 0);
}

static int log_count(void)
{
    int n;

    pthread_mutex_lock(&srv.lock);
    n = srv.n_log;
    pthread_mutex_unlock(&srv.lock);
    return n;
}

/* A copy of logged request i (its body borrowed until reset()). */
static struct logged logged_at(int i)
{
    struct logged l;

    pthread_mutex_lock(&srv.lock);
    assert_true(i < srv.n_log);
    l = srv.log[i];
    pthread_mutex_unlock(&srv.lock);
    return l;
}

static int start_server(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    int one = 1;

    pthread_mutex_init(&srv.lock, NULL);
    for (int i = 0; i < MAX_CONNS; i++)
        srv.conns[i].fd = -1;
    srv.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv.listen_fd < 0 || pipe(srv.wake) < 0)
        return -1;
    setsockopt(srv.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(srv.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(srv.listen_fd, 16) < 0 ||
        getsockname(srv.listen_fd, (struct sockaddr *)&sa, &sl) < 0)
        return -1;
    srv.port = ntohs(sa.sin_port);
    /* A trailing slash: the client must not make "//" of it. */
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/v21.0/", srv.port);
    snprintf(dl_prefix, sizeof(dl_prefix), "http://127.0.0.1:%d", srv.port);
    if (pthread_create(&srv.thread, NULL, serve, NULL) != 0)
        return -1;
    return 0;
}

static int stop_server(void **state)
{
    if (write(srv.wake[1], "x", 1) != 1)
        return -1;
    pthread_join(srv.thread, NULL);
    reset();
    close(srv.listen_fd);
    close(srv.wake[0]);
    close(srv.wake[1]);
    pthread_mutex_destroy(&srv.lock);
    return 0;
}

static int each_setup(void **state)
{
    reset();
    return 0;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static struct wa_api *client(volatile int *stop)
{
    struct wa_api *api = NULL;

    assert_int_equal(wa_api_new(base, PNID, TOKEN, stop, &api), 0);
    assert_non_null(api);
    return api;
}

static json_t *text_body(void)
{
    json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "messaging_product", "whatsapp",
                          "recipient_type", "individual", "to", "491701234567", "type", "text",
                          "text", "body", "Pump P-101: 4.0 kW");

    assert_non_null(b);
    return b;
}

/* Sends text_body() to a route answering status/answer (the routes and the
 * log reset first); returns the client's result. */
static int send_with(int status, const char *answer_body, struct wa_reply *rep)
{
    struct wa_api *api = client(NULL);
    json_t *b = text_body();
    int r;

    reset();
    route("POST", "/v21.0/" PNID "/messages", status, answer_body);
    r = wa_api_send(api, b, 5, rep);
    json_decref(b);
    wa_api_free(api);
    return r;
}

/* ---- wa_api_new ---- */

static void test_new_refuses(void **state)
{
    struct wa_api *api = NULL;

    assert_int_equal(wa_api_new(base, "12/../34", TOKEN, NULL, &api), -EINVAL);
    assert_int_equal(wa_api_new(base, "12?x=1", TOKEN, NULL, &api), -EINVAL);
    assert_int_equal(wa_api_new(base, "", TOKEN, NULL, &api), -EINVAL);
    assert_int_equal(wa_api_new(base, "12%2F3", TOKEN, NULL, &api), -EINVAL);
    assert_int_equal(wa_api_new(base, PNID, "tok\r\nX-Evil: 1", NULL, &api), -EINVAL);
    assert_int_equal(wa_api_new(base, PNID, "", NULL, &api), -EINVAL);
    assert_int_equal(wa_api_new("ftp://127.0.0.1/", PNID, TOKEN, NULL, &api), -EINVAL);
    assert_null(api);
    assert_int_equal(log_count(), 0);
}

/* ---- wa_api_send ---- */

static void test_send_ok(void **state)
{
    struct wa_reply rep;
    struct logged l;
    json_t *sent, *want;

    assert_int_equal(
        send_with(200,
                  "{\"messaging_product\":\"whatsapp\",\"contacts\":[{\"input\":\"491701234567\","
                  "\"wa_id\":\"491701234567\"}],\"messages\":[{\"id\":"
                  "\"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJCOTY3NDc0NDFDRUI3NTA0Q0UA\"}]}",
                  &rep),
        0);
    assert_true(rep.ok);
    assert_int_equal(rep.http_status, 200);
    assert_int_equal(rep.error_code, 0);
    assert_string_equal(rep.message_id,
                        "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJCOTY3NDc0NDFDRUI3NTA0Q0UA");
    assert_int_equal(log_count(), 1);
    l = logged_at(0);
    assert_string_equal(l.method, "POST");
    assert_string_equal(l.target, "/v21.0/" PNID "/messages");
    assert_string_equal(l.auth, "Bearer " TOKEN);
    assert_string_equal(l.ctype, "application/json");
    assert_null(strstr(l.target, TOKEN));
    assert_null(strstr(l.body, TOKEN));
    sent = json_loads(l.body, 0, NULL);
    want = text_body();
    assert_non_null(sent);
    assert_true(json_equal(sent, want));
    json_decref(sent);
    json_decref(want);
}

static void test_send_ok_without_id(void **state)
{
    struct wa_reply rep;

    assert_int_equal(send_with(200, "{\"messaging_product\":\"whatsapp\"}", &rep), 0);
    assert_true(rep.ok);
    assert_string_equal(rep.message_id, "");
}

static void test_send_error_envelopes(void **state)
{
    struct wa_reply rep;

    /* Outside the 24-hour window. */
    assert_int_equal(
        send_with(400,
                  "{\"error\":{\"message\":\"(#131047) Re-engagement message\",\"type\":"
                  "\"OAuthException\",\"code\":131047,\"error_data\":{\"messaging_product\":"
                  "\"whatsapp\",\"details\":\"Message failed to send because more than 24 hours "
                  "have passed since the customer last replied to this number.\"},"
                  "\"fbtrace_id\":\"AbCdEf\"}}",
                  &rep),
        0);
    assert_false(rep.ok);
    assert_int_equal(rep.http_status, 400);
    assert_int_equal(rep.error_code, 131047);
    assert_int_equal(rep.error_subcode, 0);
    assert_string_equal(rep.error_message,
                        "(#131047) Re-engagement message: Message failed to send because more "
                        "than 24 hours have passed since the customer last replied to this "
                        "number.");
    assert_string_equal(rep.message_id, "");

    /* Throughput. */
    assert_int_equal(send_with(429,
                               "{\"error\":{\"message\":\"(#130429) Rate limit hit\",\"type\":"
                               "\"OAuthException\",\"code\":130429,\"error_data\":{"
                               "\"messaging_product\":\"whatsapp\",\"details\":\"Cloud API "
                               "message throughput has been reached.\"},\"fbtrace_id\":\"X\"}}",
                               &rep),
                     0);
    assert_false(rep.ok);
    assert_int_equal(rep.http_status, 429);
    assert_int_equal(rep.error_code, 130429);

    /* A bad parameter, with a subcode, and details equal to the message. */
    assert_int_equal(send_with(400,
                               "{\"error\":{\"message\":\"Invalid parameter\",\"type\":"
                               "\"OAuthException\",\"code\":100,\"error_subcode\":2494010,"
                               "\"error_data\":{\"messaging_product\":\"whatsapp\",\"details\":"
                               "\"Invalid parameter\"},\"fbtrace_id\":\"Y\"}}",
                               &rep),
                     0);
    assert_false(rep.ok);
    assert_int_equal(rep.error_code, 100);
    assert_int_equal(rep.error_subcode, 2494010);
    assert_string_equal(rep.error_message, "Invalid parameter");

    /* An expired token, without error_data. */
    assert_int_equal(send_with(401,
                               "{\"error\":{\"message\":\"Error validating access token: Session "
                               "has expired.\",\"type\":\"OAuthException\",\"code\":190,"
                               "\"error_subcode\":463,\"fbtrace_id\":\"Z\"}}",
                               &rep),
                     0);
    assert_false(rep.ok);
    assert_int_equal(rep.http_status, 401);
    assert_int_equal(rep.error_code, 190);
    assert_int_equal(rep.error_subcode, 463);
    assert_string_equal(rep.error_message, "Error validating access token: Session has expired.");
}

static void test_send_error_message_cut(void **state)
{
    struct wa_reply rep;
    char body[2048], details[700];
    size_t n = 0;

    /* 300 two-byte characters: the cut must fall between two of them. */
    for (int i = 0; i < 300; i++) {
        memcpy(details + n, "\xc3\xa4", 2);
        n += 2;
    }
    details[n] = '\0';
    snprintf(body, sizeof(body),
             "{\"error\":{\"message\":\"x\",\"code\":131000,\"error_data\":{\"details\":\"%s\\n"
             "\"}}}",
             details);
    assert_int_equal(send_with(500, body, &rep), 0);
    assert_false(rep.ok);
    assert_int_equal(rep.error_code, 131000);
    assert_true(strlen(rep.error_message) < sizeof(rep.error_message));
    assert_true(strlen(rep.error_message) > 200);
    assert_true(utf8_valid(rep.error_message, strlen(rep.error_message)));
    assert_null(strchr(rep.error_message, '\n'));

    /* Graph quoting the token back is not passed on. */
    assert_int_equal(send_with(400,
                               "{\"error\":{\"message\":\"bad token " TOKEN
                               "\",\"code\":190,\"type\":\"OAuthException\"}}",
                               &rep),
                     0);
    assert_int_equal(rep.error_code, 190);
    assert_null(strstr(rep.error_message, TOKEN));
    assert_null(strstr(rep.error_message, "EAAG"));
}

static void test_send_not_json(void **state)
{
    struct wa_reply rep;

    assert_int_equal(send_with(502, "<html>Bad Gateway</html>", &rep), -EBADMSG);
    assert_int_equal(rep.http_status, 502);
    assert_int_equal(send_with(200, "ok", &rep), -EBADMSG);
    assert_int_equal(rep.http_status, 200);
    assert_int_equal(send_with(200, "[1,2]", &rep), -EBADMSG);
    /* JSON, but not Graph's error envelope. */
    assert_int_equal(send_with(503, "{\"status\":\"down\"}", &rep), -EBADMSG);
    assert_int_equal(rep.http_status, 503);
    assert_int_equal(send_with(400, "{\"error\":\"nope\"}", &rep), -EBADMSG);
}

static void test_send_too_big(void **state)
{
    struct wa_reply rep;
    struct wa_api *api = client(NULL);
    json_t *b = text_body();
    size_t n = WA_MAX_RESPONSE + 1;
    char *big = malloc(n);

    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    route_bytes("POST", "/v21.0/" PNID "/messages", 200, big, n, 0);
    free(big);
    assert_int_equal(wa_api_send(api, b, 10, &rep), -E2BIG);
    assert_int_equal(rep.http_status, 200);
    json_decref(b);
    wa_api_free(api);
}

static void test_send_timeout(void **state)
{
    struct wa_reply rep;
    struct wa_api *api = client(NULL);
    json_t *b = text_body();
    long t0;

    route_bytes("POST", "/v21.0/" PNID "/messages", 200, "", 0, R_HANG);
    t0 = now_ms();
    assert_int_equal(wa_api_send(api, b, 1, &rep), -ETIMEDOUT);
    assert_true(now_ms() - t0 < 5000);
    json_decref(b);
    wa_api_free(api);
}

static void test_send_refused(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    struct wa_api *api = NULL;
    struct wa_reply rep;
    json_t *b = text_body();
    char url[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* A port that was free a moment ago and has no listener now. */
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v21.0", ntohs(sa.sin_port));
    assert_int_equal(wa_api_new(url, PNID, TOKEN, NULL, &api), 0);
    assert_int_equal(wa_api_send(api, b, 5, &rep), -ECONNREFUSED);
    assert_int_equal(rep.http_status, 0);
    json_decref(b);
    wa_api_free(api);
}

static volatile int stop_flag;

static void *raise_stop(void *arg)
{
    struct timespec ts = {0, 300 * 1000000L};

    nanosleep(&ts, NULL);
    __atomic_store_n(&stop_flag, 1, __ATOMIC_RELEASE);
    return arg;
}

static void test_send_stop(void **state)
{
    struct wa_reply rep;
    struct wa_api *api;
    json_t *b = text_body();
    pthread_t t;
    long t0;

    /* Already set: nothing is sent. */
    stop_flag = 1;
    api = client(&stop_flag);
    assert_int_equal(wa_api_send(api, b, 5, &rep), -ECANCELED);
    assert_int_equal(log_count(), 0);

    /* Set during a transfer that hangs. */
    stop_flag = 0;
    route_bytes("POST", "/v21.0/" PNID "/messages", 200, "", 0, R_HANG);
    assert_int_equal(pthread_create(&t, NULL, raise_stop, NULL), 0);
    t0 = now_ms();
    assert_int_equal(wa_api_send(api, b, 20, &rep), -ECANCELED);
    assert_true(now_ms() - t0 < 5000);
    pthread_join(t, NULL);
    json_decref(b);
    wa_api_free(api);
}

static void test_send_keeps_alive(void **state)
{
    struct wa_api *api = client(NULL);
    struct wa_reply rep;
    json_t *b = text_body();

    route("POST", "/v21.0/" PNID "/messages", 200, "{\"messages\":[{\"id\":\"wamid.1\"}]}");
    route("GET", "/v21.0/" PNID, 200, "{\"id\":\"" PNID "\"}");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wa_api_send(api, b, 5, &rep), 0);
        assert_string_equal(rep.message_id, "wamid.1");
        assert_int_equal(wa_api_hello(api, 5, &rep), 0);
        assert_true(rep.ok);
    }
    assert_int_equal(log_count(), 6);
    assert_string_equal(logged_at(1).method, "GET");
    assert_string_equal(logged_at(1).body, "");
    pthread_mutex_lock(&srv.lock);
    assert_int_equal(srv.accepts, 1);
    pthread_mutex_unlock(&srv.lock);
    json_decref(b);
    wa_api_free(api);
}

/* ---- wa_api_hello ---- */

static void test_hello(void **state)
{
    struct wa_api *api = client(NULL);
    struct wa_reply rep;
    struct logged l;

    route("GET", "/v21.0/" PNID, 200,
          "{\"id\":\"" PNID "\",\"display_phone_number\":\"+1 555 0100\"}");
    assert_int_equal(wa_api_hello(api, 5, &rep), 0);
    assert_true(rep.ok);
    l = logged_at(0);
    assert_string_equal(l.method, "GET");
    assert_string_equal(l.target, "/v21.0/" PNID "?fields=id,display_phone_number");
    assert_string_equal(l.auth, "Bearer " TOKEN);
    assert_null(strstr(l.target, TOKEN));

    reset();
    route("GET", "/v21.0/" PNID, 401,
          "{\"error\":{\"message\":\"Invalid OAuth access token.\",\"type\":\"OAuthException\","
          "\"code\":190,\"fbtrace_id\":\"A\"}}");
    assert_int_equal(wa_api_hello(api, 5, &rep), 0);
    assert_false(rep.ok);
    assert_int_equal(rep.error_code, 190);
    wa_api_free(api);
}

/* ---- wa_api_get_media ---- */

static const unsigned char jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J',  'F',  'I',
                                     'F',  0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0xff, 0xd9};

/* The metadata of media 4490 with the given file_size (a JSON value, or
 * NULL for none) and url. */
static void media_meta(const char *file_size, const char *url)
{
    char body[1024];

    snprintf(body, sizeof(body),
             "{\"messaging_product\":\"whatsapp\",\"url\":\"%s\",\"mime_type\":\"image/jpeg\","
             "\"sha256\":\"abc\",%s%s%s\"id\":\"4490\"}",
             url, file_size ? "\"file_size\":" : "", file_size ? file_size : "",
             file_size ? "," : "");
    route("GET", "/v21.0/4490", 200, body);
}

static char *dl_url(void)
{
    char *u;

    assert_true(asprintf(&u, "%s/lookaside/4490?ext=1&hash=ATv", dl_prefix) > 0);
    return u;
}

static void test_media_ok(void **state)
{
    struct wa_api *api = client(NULL);
    struct buf out;
    const char *why = NULL;
    char *u = dl_url(), size[16];
    struct logged l;

    buf_init(&out, 0);
    snprintf(size, sizeof(size), "%zu", sizeof(jpeg));
    media_meta(size, u);
    route_bytes("GET", "/lookaside/4490", 200, jpeg, sizeof(jpeg), 0);
    assert_int_equal(wa_api_get_media(api, "4490", 5, 1000, &out, &why), 0);
    assert_int_equal(out.len, sizeof(jpeg));
    assert_memory_equal(out.p, jpeg, sizeof(jpeg));
    assert_int_equal(log_count(), 2);
    l = logged_at(0);
    assert_string_equal(l.target, "/v21.0/4490");
    assert_string_equal(l.auth, "Bearer " TOKEN);
    l = logged_at(1);
    assert_string_equal(l.method, "GET");
    assert_string_equal(l.target, "/lookaside/4490?ext=1&hash=ATv");
    assert_string_equal(l.auth, "Bearer " TOKEN);
    buf_free(&out);

    /* file_size as a string, as some versions send it; no file_size. */
    reset();
    media_meta("\"18\"", u);
    route_bytes("GET", "/lookaside/4490", 200, jpeg, sizeof(jpeg), 0);
    assert_int_equal(wa_api_get_media(api, "4490", 5, 1000, &out, &why), 0);
    assert_int_equal(out.len, sizeof(jpeg));
    buf_free(&out);
    reset();
    media_meta(NULL, u);
    route_bytes("GET", "/lookaside/4490", 200, jpeg, sizeof(jpeg), R_NO_LENGTH);
    assert_int_equal(wa_api_get_media(api, "4490", 5, 1000, &out, &why), 0);
    assert_memory_equal(out.p, jpeg, sizeof(jpeg));
    buf_free(&out);
    free(u);
    wa_api_free(api);
}

static void test_media_too_big(void **state)
{
    struct wa_api *api = client(NULL);
    struct buf out;
    const char *why = NULL;
    char *u = dl_url();

    buf_init(&out, 0);
    /* file_size says so: no second GET. */
    media_meta("5000000", u);
    route_bytes("GET", "/lookaside/4490", 200, jpeg, sizeof(jpeg), 0);
    assert_int_equal(wa_api_get_media(api, "4490", 5, 1000, &out, &why), -EFBIG);
    assert_non_null(why);
    assert_int_equal(log_count(), 1);
    assert_int_equal(out.len, 0);

    /* file_size lies; the Content-Length does not. */
    reset();
    media_meta("10", u);
    route_bytes("GET", "/lookaside/4490", 200, jpeg, sizeof(jpeg), 0);
    assert_int_equal(wa_api_get_media(api, "4490", 5, 16, &out, &why), -EFBIG);
    assert_int_equal(log_count(), 2);
    assert_null(out.p);

    /* No file_size, no Content-Length: the buffer's maximum. */
    reset();
    media_meta(NULL, u);
    route_bytes("GET", "/lookaside/4490", 200, jpeg, sizeof(jpeg), R_NO_LENGTH);
    assert_int_equal(wa_api_get_media(api, "4490", 5, 16, &out, &why), -EFBIG);
    assert_null(out.p);
    free(u);
    wa_api_free(api);
}

static void test_media_errors(void **state)
{
    static const struct {
        int status;
        const char *body;
        int want;
    } cases[] = {
        {400,
         "{\"error\":{\"message\":\"Unsupported get request. Object with ID '4490' does not "
         "exist\",\"type\":\"GraphMethodException\",\"code\":100,\"error_subcode\":33,"
         "\"fbtrace_id\":\"A\"}}",
         -ENOENT},
        {404, "Not Found", -ENOENT},
        {401,
         "{\"error\":{\"message\":\"Error validating access token\",\"type\":\"OAuthException\","
         "\"code\":190,\"fbtrace_id\":\"B\"}}",
         -EACCES},
        {429, "{\"error\":{\"message\":\"Too many calls\",\"code\":4}}", -EAGAIN},
        {500, "<html>oops</html>", -EAGAIN},
        {503, "{\"error\":{\"message\":\"Service unavailable\",\"code\":2}}", -EAGAIN},
        {200, "not json", -EBADMSG},
        {200, "{\"messaging_product\":\"whatsapp\",\"id\":\"4490\"}", -EBADMSG}, /* no url */
        {200, "{\"url\":\"file:///etc/passwd\",\"id\":\"4490\"}", -EBADMSG},
        {200, "{\"url\":\"ftp://127.0.0.1/x\",\"id\":\"4490\"}", -EBADMSG},
        {200, "{\"url\":\"http://127.0.0.1/a b\",\"id\":\"4490\"}", -EBADMSG},
        {200, "{\"url\":\"http://127.0.0.1/x\",\"file_size\":-1}", -EBADMSG},
    };
    struct wa_api *api = client(NULL);
    struct buf out;

    buf_init(&out, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = NULL;
        int r;

        reset();
        route("GET", "/v21.0/4490", cases[i].status, cases[i].body);
        r = wa_api_get_media(api, "4490", 5, 1000, &out, &why);
        if (r != cases[i].want)
            fail_msg("case %zu (HTTP %d): got %d, want %d", i, cases[i].status, r, cases[i].want);
        assert_non_null(why);
        assert_null(strstr(why, TOKEN));
        assert_int_equal(log_count(), 1);
        assert_null(out.p);
    }
    wa_api_free(api);
}

static void test_media_download_errors(void **state)
{
    static const struct {
        int status;
        int want;
    } cases[] = {{404, -ENOENT}, {403, -EACCES}, {401, -EACCES},
                 {503, -EAGAIN}, {429, -EAGAIN}, {400, -EIO}};
    struct wa_api *api = client(NULL);
    char *u = dl_url();
    struct buf out;

    buf_init(&out, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = NULL;
        int r;

        reset();
        media_meta("18", u);
        route("GET", "/lookaside/4490", cases[i].status, "{\"error\":\"gone\"}");
        r = wa_api_get_media(api, "4490", 5, 1000, &out, &why);
        if (r != cases[i].want)
            fail_msg("case %zu (HTTP %d): got %d, want %d", i, cases[i].status, r, cases[i].want);
        assert_int_equal(log_count(), 2);
        assert_null(out.p);
    }
    free(u);
    wa_api_free(api);
}

static void test_media_bad_id(void **state)
{
    static const char *ids[] = {"../x", "4490/../../" PNID, "4490?fields=x", "44%2F90",
                                "",     "4490#x",           "44 90",         "4490\r\n"};
    struct wa_api *api = client(NULL);
    struct buf out;
    char long_id[200];

    buf_init(&out, 0);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        const char *why = NULL;

        assert_int_equal(wa_api_get_media(api, ids[i], 5, 1000, &out, &why), -ENOENT);
        assert_non_null(why);
    }
    memset(long_id, '1', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    {
        const char *why = NULL;

        assert_int_equal(wa_api_get_media(api, long_id, 5, 1000, &out, &why), -ENOENT);
    }
    assert_int_equal(log_count(), 0);
    wa_api_free(api);
}

static void test_media_timeout(void **state)
{
    struct wa_api *api = client(NULL);
    struct buf out;
    const char *why = NULL;
    char *u = dl_url();
    long t0;

    buf_init(&out, 0);
    media_meta("18", u);
    route_bytes("GET", "/lookaside/4490", 200, "", 0, R_HANG);
    t0 = now_ms();
    assert_int_equal(wa_api_get_media(api, "4490", 1, 1000, &out, &why), -ETIMEDOUT);
    assert_true(now_ms() - t0 < 5000);
    assert_non_null(why);
    assert_null(out.p);
    free(u);
    wa_api_free(api);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_new_refuses, each_setup),
        cmocka_unit_test_setup(test_send_ok, each_setup),
        cmocka_unit_test_setup(test_send_ok_without_id, each_setup),
        cmocka_unit_test_setup(test_send_error_envelopes, each_setup),
        cmocka_unit_test_setup(test_send_error_message_cut, each_setup),
        cmocka_unit_test_setup(test_send_not_json, each_setup),
        cmocka_unit_test_setup(test_send_too_big, each_setup),
        cmocka_unit_test_setup(test_send_timeout, each_setup),
        cmocka_unit_test_setup(test_send_refused, each_setup),
        cmocka_unit_test_setup(test_send_stop, each_setup),
        cmocka_unit_test_setup(test_send_keeps_alive, each_setup),
        cmocka_unit_test_setup(test_hello, each_setup),
        cmocka_unit_test_setup(test_media_ok, each_setup),
        cmocka_unit_test_setup(test_media_too_big, each_setup),
        cmocka_unit_test_setup(test_media_errors, each_setup),
        cmocka_unit_test_setup(test_media_download_errors, each_setup),
        cmocka_unit_test_setup(test_media_bad_id, each_setup),
        cmocka_unit_test_setup(test_media_timeout, each_setup),
    };
    int r;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    r = cmocka_run_group_tests_name("wa_api", tests, start_server, stop_server);
    curl_global_cleanup();
    return r;
}
