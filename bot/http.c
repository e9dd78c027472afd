/* The HTTP server over libmicrohttpd (0.9.75): MHD's internal poll()
 * thread pool accepts, parses and answers; on_request() routes and
 * refuses, gathers the body into a bounded buffer and calls the route's
 * handler once, from the final call of MHD's access handler.
 *
 * MHD's own connection timeout counts idle time only: a client that sends
 * one byte a second never trips it. So every connection also gets a
 * deadline, timeout_s after it was accepted or after its previous request
 * was answered, that runs while a request's headers and body arrive; a
 * watchdog thread shuts the socket of a connection past it (MHD then sees
 * the end of the stream and closes it). The deadline is off from the
 * moment the whole request is in (or a refusal is queued) to the end of
 * that request: a handler that takes long (a slow database) is not the
 * client's doing, and cutting it off would lose an answer whose work is
 * done. MHD's idle timeout alone governs the answer. */
#include "http.h"

#include "config.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Bytes of a refused body read and dropped before the connection is cut
 * without an answer (a chunked body, or one MHD had already buffered). */
#define HTTP_DISCARD_MAX (1u << 20)
/* MHD's memory per connection: headers and the read buffer. */
#define HTTP_CONN_MEMORY ((size_t)64 << 10)
/* How often the watchdog looks at deadlines. */
#define HTTP_WATCH_TICK_MS 100
/* MHD's own messages: at most HTTP_LOG_BURST per window. */
#define HTTP_LOG_WINDOW_MS 60000
#define HTTP_LOG_BURST 20

/* One per TCP connection (MHD's socket_context), in s->conns. */
struct http_conn {
    struct http_conn *prev, *next;
    int fd;
    int64_t deadline_ms; /* CLOCK_MONOTONIC; 0 while a response is on its way */
    bool cut;            /* the watchdog shut it */
};

/* One per request (MHD's con_cls). */
struct http_req {
    const struct http_route *route; /* NULL once refused */
    int64_t start_ms;
    size_t received; /* body bytes seen, kept or not */
    struct buf body;
    bool answered; /* a response is queued */
    bool too_big;
    bool no_memory;
    int status;
    char method[24]; /* quoted, for the log */
    char path[128];
};

struct http_server {
    struct MHD_Daemon *d;
    const struct http_route *routes;
    int n_routes;
    void *ctx;
    size_t max_body;
    int timeout_s;
    int port;

    pthread_mutex_t lock; /* everything below */
    pthread_cond_t watch_cond;
    pthread_cond_t idle_cond;
    struct http_conn *conns;
    int busy; /* requests seen by on_request and not completed */
    bool stopping;
    bool watch_stop;
    pthread_t watch;
    bool watch_started;

    pthread_mutex_t log_lock;
    int64_t log_window_ms;
    int log_count;
    int log_dropped;
};

static const char json_not_found[] = "{\"error\":\"not found\"}";
static const char json_bad_method[] = "{\"error\":\"method not allowed\"}";
static const char json_get_body[] = "{\"error\":\"a GET request has no body\"}";
static const char json_bad_type[] = "{\"error\":\"unsupported content type\"}";
static const char json_too_big[] = "{\"error\":\"body too large\"}";
static const char json_no_memory[] = "{\"error\":\"out of memory\"}";
static const char json_internal[] = "{\"error\":\"internal error\"}";

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the listen address ---- */

/* host is what config_parse_listen() wrote: an IPv4 or IPv6 literal. */
static int make_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof(*in4);
        return 0;
    }
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*in6);
        return 0;
    }
    return -EINVAL;
}

/* MHD_start_daemon() says NULL and no why: a bind of our own, with the
 * options MHD uses (SO_REUSEADDR; IPv6 only for an IPv6 address), tells
 * an address in use from one the host does not have. */
static int bind_check(const struct sockaddr *sa, socklen_t len)
{
    int one = 1, r = 0;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        r = -errno;
        goto out;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (sa->sa_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, sa, len) < 0)
        r = -errno;
    close(fd);
out:
    switch (r) {
    case 0:
    case -EADDRINUSE:
    case -EADDRNOTAVAIL:
    case -EACCES:
    case -ENOMEM:
        return r;
    case -EAFNOSUPPORT:
        return -EADDRNOTAVAIL;
    case -EPERM:
        return -EACCES;
    default:
        return -EIO;
    }
}

/* Names MHD's threads in the log, once per thread. */
static void name_thread(void)
{
    static __thread bool named;

    if (!named) {
        log_set_thread("http");
        named = true;
    }
}

/* ---- connections and their deadlines ---- */

static struct http_conn *conn_record(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci ? ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;
    struct http_conn *c;
    const union MHD_ConnectionInfo *ci;

    name_thread();
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        /* Without a record the connection still has MHD's idle timeout. */
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci)
            return;
        c = calloc(1, sizeof(*c));
        if (!c)
            return;
        c->fd = ci->connect_fd;
        c->deadline_ms = now_ms() + (int64_t)s->timeout_s * 1000;
        pthread_mutex_lock(&s->lock);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        pthread_mutex_unlock(&s->lock);
        *socket_context = c;
        return;
    }
    /* MHD_CONNECTION_NOTIFY_CLOSED comes before MHD closes the socket, so
     * the watchdog never shuts an fd that has been handed out again. */
    c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&s->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&s->lock);
    free(c);
    *socket_context = NULL;
}

static void *watch_main(void *arg)
{
    struct http_server *s = arg;
    struct timespec ts;

    log_set_thread("http-watch");
    pthread_mutex_lock(&s->lock);
    while (!s->watch_stop) {
        int64_t now = now_ms();

        for (struct http_conn *c = s->conns; c; c = c->next) {
            if (c->deadline_ms && !c->cut && now >= c->deadline_ms) {
                c->cut = true;
                shutdown(c->fd, SHUT_RDWR);
                log_debug("http.timeout", "timeout_s=%d", s->timeout_s);
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += HTTP_WATCH_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->watch_cond, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- MHD's messages ---- */

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct http_server *s = cls;
    char msg[256], q[300];
    int64_t now = now_ms();
    int dropped = 0;
    bool emit;
    size_t n;

    pthread_mutex_lock(&s->log_lock);
    if (now - s->log_window_ms >= HTTP_LOG_WINDOW_MS) {
        dropped = s->log_dropped;
        s->log_dropped = 0;
        s->log_count = 0;
        s->log_window_ms = now;
    }
    emit = s->log_count < HTTP_LOG_BURST;
    if (emit)
        s->log_count++;
    else
        s->log_dropped++;
    pthread_mutex_unlock(&s->log_lock);
    if (dropped)
        log_info("http.mhd_suppressed", "count=%d", dropped);
    if (!emit)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    log_info("http.mhd", "msg=%s", log_quote(q, sizeof(q), msg));
}

/* ---- routing ---- */

static const struct http_route *find_route(const struct http_server *s, const char *path)
{
    for (int i = 0; i < s->n_routes; i++) {
        if (strcmp(s->routes[i].path, path) == 0)
            return &s->routes[i];
    }
    return NULL;
}

/* The next token of a "GET,POST" list: *p moves past it. */
static bool next_method(const char **p, const char **tok, size_t *len)
{
    const char *s = *p;

    while (*s == ',' || *s == ' ')
        s++;
    if (!*s)
        return false;
    *tok = s;
    *len = strcspn(s, ", ");
    *p = s + *len;
    return true;
}

static bool has_method(const char *methods, const char *method)
{
    const char *tok;
    size_t len;

    while (next_method(&methods, &tok, &len)) {
        if (len == strlen(method) && strncmp(tok, method, len) == 0)
            return true;
    }
    return false;
}

/* The Allow header of a route: its methods, and HEAD after GET. */
static void allow_header(const char *methods, char *dst, size_t n)
{
    const char *p = methods, *tok;
    bool head = has_method(methods, "HEAD");
    size_t len, o = 0;

    dst[0] = '\0';
    while (next_method(&p, &tok, &len)) {
        int k = snprintf(dst + o, n - o, "%s%.*s%s", o ? ", " : "", (int)len, tok,
                         !head && len == 3 && strncmp(tok, "GET", 3) == 0 ? ", HEAD" : "");

        if (k < 0 || (size_t)k >= n - o)
            return;
        o += (size_t)k;
    }
}

/* Whether a Content-Type header's media type is want's (case-insensitive,
 * parameters ignored on both). */
static bool media_type_is(const char *value, const char *want)
{
    size_t n, w;

    if (!value)
        return false;
    while (*value == ' ' || *value == '\t')
        value++;
    n = strcspn(value, "; \t");
    w = strcspn(want, "; \t");
    return n == w && n > 0 && strncasecmp(value, want, n) == 0;
}

/* ---- answering ---- */

/* Queues status with body (len bytes; owned: malloc'd and taken, else
 * static) and the headers every answer carries. */
static enum MHD_Result respond(struct http_server *s, struct MHD_Connection *conn,
                               struct http_req *rq, int status, const char *ctype, void *body,
                               size_t len, bool owned, const char *allow)
{
    struct MHD_Response *resp;
    struct http_conn *c;
    enum MHD_Result ret;
    bool stopping;

    if (owned)
        resp = MHD_create_response_from_buffer_with_free_callback(len, body, free);
    else
        resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    pthread_mutex_lock(&s->lock);
    stopping = s->stopping;
    c = conn_record(conn);
    if (c)
        c->deadline_ms = 0;
    pthread_mutex_unlock(&s->lock);
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") != MHD_YES ||
        (allow && MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow) != MHD_YES) ||
        (stopping &&
         MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)) {
        MHD_destroy_response(resp);
        if (!owned)
            return MHD_NO;
        /* A handler's content type MHD would not put in a header. */
        log_warn("http.bad_response", "path=%s why=header", rq->path);
        return respond(s, conn, rq, 500, "application/json", (void *)json_internal,
                       sizeof(json_internal) - 1, false, NULL);
    }
    ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    rq->answered = true;
    rq->status = status;
    log_debug("http.request", "method=%s path=%s status=%d bytes=%zu ms=%lld", rq->method, rq->path,
              status, len, (long long)(now_ms() - rq->start_ms));
    return ret;
}

static enum MHD_Result refuse(struct http_server *s, struct MHD_Connection *conn,
                              struct http_req *rq, int status, const char *json, size_t len,
                              const char *allow)
{
    rq->route = NULL;
    buf_free(&rq->body);
    return respond(s, conn, rq, status, "application/json", (void *)json, len, false, allow);
}

#define REFUSE(s, conn, rq, status, json, allow)                                                   \
    refuse((s), (conn), (rq), (status), (json), sizeof(json) - 1, (allow))

/* The first call: headers are in. Refusals that need no body go now,
 * before MHD reads it (or answers Expect: 100-continue). */
static enum MHD_Result request_begin(struct http_server *s, struct MHD_Connection *conn,
                                     const char *url, const char *method, void **con_cls)
{
    const struct http_route *route;
    struct http_req *rq;
    const char *cl, *te, *ct;
    bool is_get, has_body;
    char allow[128];

    name_thread();
    rq = calloc(1, sizeof(*rq));
    if (!rq)
        return MHD_NO;
    rq->start_ms = now_ms();
    buf_init(&rq->body, s->max_body);
    log_quote(rq->method, sizeof(rq->method), method);
    log_quote(rq->path, sizeof(rq->path), url);
    pthread_mutex_lock(&s->lock);
    s->busy++;
    pthread_mutex_unlock(&s->lock);
    *con_cls = rq;

    route = find_route(s, url);
    if (!route)
        return REFUSE(s, conn, rq, 404, json_not_found, NULL);
    is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (!has_method(route->methods, strcmp(method, "HEAD") == 0 ? "GET" : method) &&
        !has_method(route->methods, method)) {
        allow_header(route->methods, allow, sizeof(allow));
        return REFUSE(s, conn, rq, 405, json_bad_method, allow);
    }
    cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    has_body = te || (cl && strspn(cl, " 0") != strlen(cl));
    if (is_get && has_body)
        return REFUSE(s, conn, rq, 400, json_get_body, NULL);
    if (!is_get && route->content_type) {
        ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!media_type_is(ct, route->content_type))
            return REFUSE(s, conn, rq, 415, json_bad_type, NULL);
    }
    if (cl) {
        char *end;
        unsigned long long n;

        errno = 0;
        n = strtoull(cl, &end, 10);
        /* MHD has refused a malformed Content-Length already (400). */
        if (errno == ERANGE || (end != cl && n > s->max_body))
            return REFUSE(s, conn, rq, 413, json_too_big, NULL);
    }
    rq->route = route;
    return MHD_YES;
}

/* A piece of the body. Past max_body it is counted and dropped, so the
 * 413 can go once the client has finished sending; a client that sends
 * far more than that is cut off without an answer. */
static enum MHD_Result request_data(struct http_server *s, struct http_req *rq, const char *data,
                                    size_t n)
{
    size_t limit =
        s->max_body > SIZE_MAX - HTTP_DISCARD_MAX ? SIZE_MAX : s->max_body + HTTP_DISCARD_MAX;

    rq->received = rq->received > SIZE_MAX - n ? SIZE_MAX : rq->received + n;
    if (rq->answered)
        /* Refused at the headers; MHD passes on what it had read. */
        return rq->received > HTTP_DISCARD_MAX ? MHD_NO : MHD_YES;
    if (!rq->too_big && !rq->no_memory) {
        int r = buf_add(&rq->body, data, n);

        if (r == -E2BIG)
            rq->too_big = true;
        else if (r < 0)
            rq->no_memory = true;
        if (r < 0)
            buf_free(&rq->body);
    }
    if (rq->received > limit) {
        log_debug("http.body_cut", "method=%s path=%s received=%zu max=%zu", rq->method, rq->path,
                  rq->received, s->max_body);
        return MHD_NO;
    }
    return MHD_YES;
}

/* The final call: the whole request is in. */
static enum MHD_Result request_end(struct http_server *s, struct MHD_Connection *conn,
                                   struct http_req *rq, const char *url, const char *method)
{
    struct http_request req;
    struct http_response res;
    struct http_conn *c;
    const char *ctype;
    size_t len;
    char *body;

    if (rq->too_big)
        return REFUSE(s, conn, rq, 413, json_too_big, NULL);
    if (rq->no_memory)
        return REFUSE(s, conn, rq, 503, json_no_memory, NULL);
    /* The client has sent everything: its deadline ends here, not when the
     * handler is done. */
    pthread_mutex_lock(&s->lock);
    c = conn_record(conn);
    if (c)
        c->deadline_ms = 0;
    pthread_mutex_unlock(&s->lock);
    memset(&req, 0, sizeof(req));
    req.method = strcmp(method, "HEAD") == 0 ? "GET" : method;
    req.path = url;
    req.body = buf_str(&rq->body);
    req.body_len = rq->body.len;
    req.conn = conn;
    res.status = 200;
    res.content_type = NULL;
    buf_init(&res.body, HTTP_MAX_RESPONSE);
    rq->route->fn(s->ctx, &req, &res);
    buf_free(&rq->body);

    if (res.status < 200 || res.status > 599) {
        log_warn("http.bad_response", "path=%s status=%d", rq->path, res.status);
        buf_free(&res.body);
        return REFUSE(s, conn, rq, 500, json_internal, NULL);
    }
    if (res.status == 204 || res.status == 304)
        buf_free(&res.body);
    ctype = res.content_type ? res.content_type : "application/json";
    len = res.body.len;
    body = buf_steal(&res.body);
    if (!body)
        return REFUSE(s, conn, rq, 503, json_no_memory, NULL);
    return respond(s, conn, rq, res.status, ctype, body, len, true, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct http_req *rq = *con_cls;
    size_t n;

    if (!rq)
        return request_begin(s, conn, url, method, con_cls);
    if (*upload_data_size) {
        n = *upload_data_size;
        *upload_data_size = 0;
        return request_data(s, rq, upload_data, n);
    }
    if (rq->answered)
        return MHD_YES;
    return request_end(s, conn, rq, url, method);
}

static const char *termination_name(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK:
        return "ok";
    case MHD_REQUEST_TERMINATED_WITH_ERROR:
        return "error";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
        return "shutdown";
    case MHD_REQUEST_TERMINATED_READ_ERROR:
        return "read_error";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
        return "client_abort";
    }
    return "other";
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_req *rq = *con_cls;
    struct http_conn *c;

    if (!rq)
        return;
    *con_cls = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        log_debug("http.aborted", "method=%s path=%s status=%d received=%zu why=%s", rq->method,
                  rq->path, rq->answered ? rq->status : 0, rq->received, termination_name(toe));
    pthread_mutex_lock(&s->lock);
    /* The next request on this connection has timeout_s from now. */
    c = conn_record(conn);
    if (c)
        c->deadline_ms = now_ms() + (int64_t)s->timeout_s * 1000;
    if (--s->busy == 0)
        pthread_cond_broadcast(&s->idle_cond);
    pthread_mutex_unlock(&s->lock);
    buf_free(&rq->body);
    free(rq);
}

/* ---- request accessors ---- */

const char *http_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

struct query_find {
    const char *name;
    const char *value;
    bool found;
};

static enum MHD_Result query_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct query_find *f = cls;

    (void)kind;
    if (key && strcmp(key, f->name) == 0) {
        f->value = value ? value : "";
        f->found = true;
        return MHD_NO;
    }
    return MHD_YES;
}

const char *http_query(const struct http_request *req, const char *name)
{
    struct query_find f = {name, NULL, false};

    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_iter, &f);
    return f.found ? f.value : NULL;
}

/* ---- the server ---- */

static void server_free(struct http_server *s)
{
    struct http_conn *c;

    if (s->watch_started) {
        pthread_mutex_lock(&s->lock);
        s->watch_stop = true;
        pthread_cond_broadcast(&s->watch_cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->watch, NULL);
    }
    while ((c = s->conns)) {
        s->conns = c->next;
        free(c);
    }
    pthread_cond_destroy(&s->watch_cond);
    pthread_cond_destroy(&s->idle_cond);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->log_lock);
    free(s);
}

int http_start(const struct http_options *opt, const struct http_route *routes, int n_routes,
               void *ctx, struct http_server **ret)
{
    char host[INET6_ADDRSTRLEN];
    struct sockaddr_storage ss;
    socklen_t sl;
    struct http_server *s = NULL;
    pthread_condattr_t ca;
    const union MHD_DaemonInfo *di;
    struct MHD_OptionItem ops[5];
    unsigned int flags;
    int port, r, n_ops = 0;

    if (!opt || !ret || n_routes < 0 || (n_routes > 0 && !routes) || opt->threads < 1 ||
        opt->timeout_s < 1 || opt->max_connections < 1)
        return -EINVAL;
    for (int i = 0; i < n_routes; i++) {
        if (!routes[i].path || !routes[i].methods || !routes[i].fn)
            return -EINVAL;
    }
    r = config_parse_listen(opt->listen, host, sizeof(host), &port);
    if (r < 0)
        return r;
    r = make_addr(host, port, &ss, &sl);
    if (r < 0)
        return r;
    r = bind_check((const struct sockaddr *)&ss, sl);
    if (r < 0)
        return r;

    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->routes = routes;
    s->n_routes = n_routes;
    s->ctx = ctx;
    s->max_body = opt->max_body;
    s->timeout_s = opt->timeout_s;
    s->log_window_ms = now_ms();
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->log_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->watch_cond, &ca);
    pthread_cond_init(&s->idle_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->watch, NULL, watch_main, s) != 0) {
        r = -ENOMEM;
        goto out;
    }
    s->watch_started = true;

    /* MHD_USE_ITC: MHD_quiesce_daemon() needs it with a thread pool.
     * poll(), not epoll: with epoll, MHD_quiesce_daemon() and a pool thread
     * both take the listening socket out of the epoll set, unlocked, and the
     * loser's EPOLL_CTL_DEL fails with ENOENT, on which MHD aborts the
     * process ("Failed to remove listen FD from epoll set", seen at SIGTERM
     * under ThreadSanitizer's timing). With poll() quiescing only signals the
     * threads. At most max_connections sockets are polled. */
    flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* MHD warns about a pool of 1: no pool then, the polling thread serves. */
    ops[n_ops++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)opt->timeout_s, NULL};
    ops[n_ops++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)opt->max_connections, NULL};
    ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                           (intptr_t)HTTP_CONN_MEMORY, NULL};
    if (opt->threads > 1)
        ops[n_ops++] =
            (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)opt->threads, NULL};
    ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&ss, MHD_OPTION_ARRAY, ops,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
    if (!s->d) {
        /* MHD's reason went to the log through on_mhd_log(). */
        r = -EIO;
        goto out;
    }
    di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di && di->port ? di->port : port;
    log_info("http.listening", "addr=%s port=%d threads=%d", host, s->port, opt->threads);
    *ret = s;
    s = NULL;
    r = 0;
out:
    if (s)
        server_free(s);
    return r;
}

int http_port(const struct http_server *s)
{
    return s ? s->port : -1;
}

void http_stop(struct http_server *s)
{
    MHD_socket fd;
    struct timespec ts;
    int busy;

    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_mutex_unlock(&s->lock);
    fd = MHD_quiesce_daemon(s->d);

    /* Requests in hand get timeout_s to finish; answers from now on carry
     * "Connection: close". Idle keep-alive connections are not waited for. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += s->timeout_s;
    pthread_mutex_lock(&s->lock);
    while (s->busy > 0) {
        if (pthread_cond_timedwait(&s->idle_cond, &s->lock, &ts) == ETIMEDOUT)
            break;
    }
    busy = s->busy;
    pthread_mutex_unlock(&s->lock);
    if (busy)
        log_warn("http.stop_busy", "requests=%d", busy);

    MHD_stop_daemon(s->d);
    /* A quiesced daemon leaves its listening socket to the caller. */
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    log_info("http.stopped", "port=%d", s->port);
    server_free(s);
}
