/* The HTTP server of `rivet serve` (libmicrohttpd): a routing table of
 * exact paths, each with its methods and the request body it accepts.
 * Everything about HTTP that is not a route's business is refused here,
 * with a short JSON body {"error":"..."}: unknown path 404, wrong method
 * 405 (with Allow), a GET or HEAD with a body 400, a body of the wrong
 * Content-Type 415, a body over max_body 413 (refused from Content-Length
 * before it is read when it is announced; a chunked one is counted as it
 * arrives, dropped past max_body and refused once it has ended, or cut off
 * unanswered 1 MiB further). A client that takes more than timeout_s to
 * send a request (headers and body, idle time before it included) is
 * disconnected. HEAD is served wherever GET is: the handler sees "GET" and
 * the body is not sent. Malformed HTTP is MHD's to answer (400, 505...).
 * Handlers run on the server's thread pool, with the whole body in memory.
 * Every answer carries "Cache-Control: no-store" and
 * "X-Content-Type-Options: nosniff". Requests are logged at debug level
 * (method, path, status, bytes, ms), never the query string or a header. */
#ifndef RIVET_HTTP_H
#define RIVET_HTTP_H

#include <stddef.h>

#include "buf.h"

struct MHD_Connection;
struct http_server;

struct http_request {
    const char *method; /* "GET" (for HEAD too), "POST", ... */
    const char *path;   /* without the query string */
    const char *body;   /* NUL-terminated (may hold NULs); "" when none */
    size_t body_len;
    struct MHD_Connection *conn;
};

/* A request header (case-insensitive name), or NULL. Valid during the
 * handler call. */
const char *http_header(const struct http_request *req, const char *name);
/* A query-string argument (case-sensitive name; the first of several),
 * decoded; "" for one without "="; NULL when absent. Valid during the
 * handler call. */
const char *http_query(const struct http_request *req, const char *name);

/* The most a handler may put in http_response.body (appends past it fail
 * with -E2BIG). */
#define HTTP_MAX_RESPONSE (8u << 20)

struct http_response {
    int status;               /* 200 unless the handler sets it; outside 200..599: 500 */
    const char *content_type; /* "application/json" unless set; one MHD refuses
                                 as a header value (CR, LF): 500 */
    struct buf body;          /* the handler appends; freed by the server */
};

typedef void (*http_handler_fn)(void *ctx, const struct http_request *req,
                                struct http_response *res);

struct http_route {
    const char *path;         /* exact match */
    const char *methods;      /* "GET", "POST" or "GET,POST" */
    const char *content_type; /* the media type a POST's body must have
                                 (case-insensitive, parameters ignored; checked
                                 for every method but GET and HEAD), or NULL for
                                 any */
    http_handler_fn fn;
};

struct http_options {
    const char *listen;  /* see config_parse_listen() */
    int threads;         /* >= 1; 1: MHD's polling thread serves alone */
    int timeout_s;       /* >= 1: to send a request, idle time included; and
                            MHD's idle timeout, answers included */
    size_t max_body;     /* bytes */
    int max_connections; /* >= 1; MHD closes the ones past it at once */
};

/* Binds and starts serving routes (borrowed; must outlive the server) with
 * ctx passed to every handler, and logs http.listening. Returns 0 and
 * *ret; -EADDRINUSE, -EADDRNOTAVAIL, -EACCES, -EINVAL (bad listen or
 * options), -ENOMEM, -EIO (MHD refused to start; its reason is logged). */
int http_start(const struct http_options *opt, const struct http_route *routes, int n_routes,
               void *ctx, struct http_server **ret);
/* The port bound (useful with port 0); -1 for NULL. */
int http_port(const struct http_server *s);
/* Stops accepting, lets the requests in hand finish (at most timeout_s;
 * their answers say "Connection: close"), closes the other connections,
 * joins the pool and frees; accepts NULL. */
void http_stop(struct http_server *s);

#endif
