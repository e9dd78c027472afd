/* The WhatsApp Cloud (Graph) API over libcurl, modelled on tg_api.c: one
 * handle per thread kept alive between calls, a timeout on every call, a
 * cap on every answer, and non-2xx answers read for Meta's error envelope
 * {"error":{"message","type","code","error_subcode","error_data":{"details"},
 * "fbtrace_id"}}. The access token lives only in the Authorization header
 * list: never in a URL, a log line or an error text. This file logs nothing;
 * its callers log once. */
#include "wa.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "curl_errno.h"
#include "text.h"

#define AUTH_PREFIX "Authorization: Bearer "
#define ID_MAX 128     /* a phone number id or a media id, in bytes */
#define TOKEN_MAX 4096 /* Meta's tokens are a few hundred bytes */
#define MEDIA_URL_MAX 4096

struct wa_api {
    CURL *curl;
    struct curl_slist *auth; /* the Authorization header alone (GETs) */
    struct curl_slist *json; /* the same plus Content-Type and Expect: (POSTs) */
    char *messages_url;      /* {api_url}/{phone_number_id}/messages */
    char *hello_url;         /* {api_url}/{phone_number_id}?fields=... */
    char *base;              /* {api_url} without trailing slashes */
    bool base_https;
    struct buf body; /* the Graph API's answers */
    volatile int *stop;
};

/* Where a transfer's bytes go: the buffer, and why an append failed. */
struct sink {
    struct wa_api *api;
    struct buf *b;
    int err;          /* buf_add()'s -E2BIG or -ENOMEM; 0 */
    bool bad_status;  /* a media download answered non-2xx: body dropped */
    bool status_gate; /* refuse the body of a non-2xx answer */
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct sink *s = userdata;
    size_t n = size * nmemb;
    int r;

    if (s->status_gate) {
        long status = 0;

        curl_easy_getinfo(s->api->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 300 && status <= 399)
            return n; /* a redirect's own body, not kept */
        if (status < 200 || status > 299) {
            /* An error page is not the file: end the transfer, the status
             * says what happened. */
            s->bad_status = true;
            return 0;
        }
    }
    r = buf_add(s->b, ptr, n);
    if (r < 0) {
        s->err = r; /* over the cap (or out of memory): curl ends the transfer */
        return 0;
    }
    return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct wa_api *api = userdata;

    return api->stop && __atomic_load_n(api->stop, __ATOMIC_ACQUIRE) ? 1 : 0;
}

static bool stopping(const struct wa_api *api)
{
    return api->stop && __atomic_load_n(api->stop, __ATOMIC_ACQUIRE);
}

/* An id that can go into a URL path as it is: letters, digits, '_' and
 * '-', 1 to ID_MAX bytes. Graph's ids are digits; nothing here can climb a
 * path ("..", "/"), start a query ('?', '#') or be decoded ('%'). */
static bool id_plain(const char *s)
{
    size_t n;

    if (!s)
        return false;
    for (n = 0; s[n]; n++) {
        if (n >= ID_MAX)
            return false;
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
              (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '-'))
            return false;
    }
    return n > 0;
}

/* A token that fits in a header line: visible ASCII, no space, no CR/LF. */
static bool token_plain(const char *s)
{
    size_t n;

    if (!s)
        return false;
    for (n = 0; s[n]; n++)
        if (n >= TOKEN_MAX || s[n] <= 0x20 || s[n] >= 0x7f)
            return false;
    return n > 0;
}

static bool scheme_http(const char *url, bool *https)
{
    if (strncmp(url, "https://", 8) == 0) {
        *https = true;
        return true;
    }
    if (strncmp(url, "http://", 7) == 0) {
        *https = false;
        return true;
    }
    return false;
}

static void free_secret_list(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p; p = p->next)
        explicit_bzero(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

int wa_api_new(const char *api_url, const char *phone_number_id, const char *token,
               volatile int *stop, struct wa_api **ret)
{
    struct wa_api *api;
    char *line = NULL;
    struct curl_slist *l;
    size_t n;
    int r = -ENOMEM;

    if (!api_url || !id_plain(phone_number_id) || !token_plain(token))
        return -EINVAL;
    api = calloc(1, sizeof(*api));
    if (!api)
        return -ENOMEM;
    buf_init(&api->body, WA_MAX_RESPONSE);
    api->stop = stop;
    if (!scheme_http(api_url, &api->base_https) || strpbrk(api_url, " \t\r\n?#")) {
        r = -EINVAL;
        goto fail;
    }
    n = strlen(api_url);
    while (n && api_url[n - 1] == '/')
        n--;
    api->base = strndup(api_url, n);
    if (!api->base)
        goto fail;
    if (asprintf(&api->messages_url, "%s/%s/messages", api->base, phone_number_id) < 0) {
        api->messages_url = NULL;
        goto fail;
    }
    if (asprintf(&api->hello_url, "%s/%s?fields=id,display_phone_number", api->base,
                 phone_number_id) < 0) {
        api->hello_url = NULL;
        goto fail;
    }
    if (asprintf(&line, "%s%s", AUTH_PREFIX, token) < 0) {
        line = NULL;
        goto fail;
    }
    /* Two lists built once; curl copies nothing, so they live as long as
     * the handle. */
    l = curl_slist_append(NULL, line);
    if (!l)
        goto fail;
    api->auth = l;
    l = curl_slist_append(NULL, line);
    if (!l)
        goto fail;
    api->json = l;
    if (!curl_slist_append(api->json, "Content-Type: application/json") ||
        !curl_slist_append(api->json, "Expect:"))
        goto fail;
    api->curl = curl_easy_init();
    if (!api->curl)
        goto fail;
    curl_easy_setopt(api->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(api->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(api->curl, CURLOPT_XFERINFODATA, api);
    curl_easy_setopt(api->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(api->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(api->curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(api->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(api->curl, CURLOPT_USERAGENT, "rivet");
    curl_easy_setopt(api->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(api->curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(api->curl, CURLOPT_FOLLOWLOCATION, 0L);
    explicit_bzero(line, strlen(line));
    free(line);
    *ret = api;
    return 0;
fail:
    if (line) {
        explicit_bzero(line, strlen(line));
        free(line);
    }
    wa_api_free(api);
    return r;
}

void wa_api_free(struct wa_api *api)
{
    if (!api)
        return;
    if (api->curl)
        curl_easy_cleanup(api->curl);
    free_secret_list(api->auth);
    free_secret_list(api->json);
    free(api->messages_url);
    free(api->hello_url);
    free(api->base);
    buf_free(&api->body);
    free(api);
}

/* A caller's timeout in seconds as curl's milliseconds, within sense. */
static long ms_of(long timeout_s)
{
    if (timeout_s <= 0)
        return 1;
    return (timeout_s > 86400 ? 86400 : timeout_s) * 1000L;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* One transfer on the kept-alive handle: GET url, or POST body (borrowed)
 * as JSON when body is not NULL. The answer goes into *s; *status gets the
 * HTTP status (0 when none came). Returns 0 or the mapped curl error. */
static int perform(struct wa_api *api, const char *url, const char *body, long timeout_ms,
                   struct sink *s, long *status)
{
    CURLcode c;
    int r;

    *status = 0;
    if (stopping(api))
        return -ECANCELED;
    curl_easy_setopt(api->curl, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(api->curl, CURLOPT_HTTPHEADER, api->json);
        curl_easy_setopt(api->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(api->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    } else {
        curl_easy_setopt(api->curl, CURLOPT_HTTPHEADER, api->auth);
        curl_easy_setopt(api->curl, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(api->curl, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(api->curl, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    c = curl_easy_perform(api->curl);
    if (body) {
        /* body is the caller's: leave no pointer to it behind. */
        curl_easy_setopt(api->curl, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(api->curl, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_getinfo(api->curl, CURLINFO_RESPONSE_CODE, status);
    if (c != CURLE_OK && stopping(api))
        return -ECANCELED;
    r = curl_errno(c);
    if (c == CURLE_WRITE_ERROR && s->err)
        r = s->err;
    return r;
}

/* Copies s into dst (size n) cut on a character boundary, with control
 * characters turned into spaces: the text is Meta's, it goes to a log. */
static void copy_text(char *dst, size_t n, const char *s)
{
    size_t len = utf8_prefix(s, n - 1);

    memcpy(dst, s, len);
    dst[len] = '\0';
    for (char *p = dst; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

static int json_int(const json_t *v)
{
    json_int_t i;

    if (!json_is_integer(v))
        return 0;
    i = json_integer_value(v);
    return i > 0x7fffffff || i < -0x7fffffff ? 0 : (int)i;
}

/* The Graph answer in api->body: a 2xx object is ok (message_id from
 * messages[0].id); any other status must carry Meta's error envelope.
 * Returns 0, or -EBADMSG when the answer is not Graph's JSON. */
static int parse_reply(struct wa_api *api, struct wa_reply *rep, json_t **root_ret)
{
    json_error_t jerr;
    json_t *root, *err, *v, *data;
    const char *msg, *details;
    char text[sizeof(rep->error_message) * 2];
    const char *token = api->auth->data + strlen(AUTH_PREFIX);

    root = json_loadb(buf_str(&api->body), api->body.len, JSON_ALLOW_NUL, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return -EBADMSG;
    }
    if (rep->http_status >= 200 && rep->http_status <= 299) {
        rep->ok = true;
        v = json_object_get(json_array_get(json_object_get(root, "messages"), 0), "id");
        /* A wamid is at most 128 characters; a longer one is not cut into
         * an id that names nothing. */
        if (json_is_string(v) && json_string_length(v) < sizeof(rep->message_id))
            memcpy(rep->message_id, json_string_value(v), json_string_length(v) + 1);
        goto out;
    }
    err = json_object_get(root, "error");
    if (!json_is_object(err)) {
        json_decref(root);
        return -EBADMSG;
    }
    rep->ok = false;
    rep->error_code = json_int(json_object_get(err, "code"));
    rep->error_subcode = json_int(json_object_get(err, "error_subcode"));
    v = json_object_get(err, "message");
    msg = json_is_string(v) ? json_string_value(v) : "";
    data = json_object_get(err, "error_data");
    v = json_is_object(data) ? json_object_get(data, "details") : NULL;
    details = json_is_string(v) ? json_string_value(v) : "";
    /* text is twice error_message: a cut by snprintf lies past the cut
     * copy_text() makes on a character boundary. */
    if (strstr(msg, token) || strstr(details, token))
        snprintf(text, sizeof(text), "(Graph's error message held the access token: dropped)");
    else if (*details && strcmp(details, msg) != 0)
        snprintf(text, sizeof(text), "%s%s%s", msg, *msg ? ": " : "", details);
    else
        snprintf(text, sizeof(text), "%s", msg);
    copy_text(rep->error_message, sizeof(rep->error_message), text);
out:
    if (root_ret)
        *root_ret = root;
    else
        json_decref(root);
    return 0;
}

/* A Graph call: the transfer, then its answer. */
static int graph_call(struct wa_api *api, const char *url, const char *body, long timeout_ms,
                      struct wa_reply *rep, json_t **root)
{
    struct sink s = {.api = api, .b = &api->body};
    int r;

    memset(rep, 0, sizeof(*rep));
    if (root)
        *root = NULL;
    buf_free(&api->body);
    buf_init(&api->body, WA_MAX_RESPONSE);
    r = perform(api, url, body, timeout_ms, &s, &rep->http_status);
    if (r == 0)
        r = parse_reply(api, rep, root);
    buf_free(&api->body);
    return r;
}

int wa_api_send(struct wa_api *api, json_t *body, long timeout_s, struct wa_reply *rep)
{
    char *text;
    int r;

    memset(rep, 0, sizeof(*rep));
    text = json_dumps(body, JSON_COMPACT);
    if (!text)
        return -ENOMEM;
    r = graph_call(api, api->messages_url, text, ms_of(timeout_s), rep, NULL);
    free(text);
    return r;
}

int wa_api_hello(struct wa_api *api, long timeout_s, struct wa_reply *rep)
{
    return graph_call(api, api->hello_url, NULL, ms_of(timeout_s), rep, NULL);
}

/* The Graph answer about a media id, as an errno. */
static int media_error(const struct wa_reply *rep)
{
    long st = rep->http_status;
    int code = rep->error_code;

    if (st == 404 || code == 100 || code == 803)
        return -ENOENT; /* no such object, or not one this token may see */
    if (st == 401 || code == 190 || code == 102)
        return -EACCES; /* the token is expired or revoked */
    if (st == 429 || st >= 500 || code == 4 || code == 80007 || code == 130429 || code == 2 ||
        code == 1)
        return -EAGAIN;
    if (st == 403 || code == 10 || code == 200)
        return -EACCES;
    return -EIO;
}

static int status_error(long st)
{
    if (st == 404 || st == 410)
        return -ENOENT; /* the url's 5 minutes have passed, or the file is gone */
    if (st == 401 || st == 403)
        return -EACCES;
    if (st == 429 || st >= 500)
        return -EAGAIN;
    return -EIO;
}

/* file_size: a number, or a string of digits as some API versions send. */
static int file_size_of(const json_t *v, size_t *size)
{
    unsigned long long n = 0;
    const char *s;

    if (!v)
        return -ENOENT;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return -EBADMSG;
        *size = (unsigned long long)json_integer_value(v) > SIZE_MAX
                    ? SIZE_MAX
                    : (size_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 19)
        return -EBADMSG;
    for (s = json_string_value(v); *s; s++) {
        if (*s < '0' || *s > '9')
            return -EBADMSG;
        n = n * 10 + (unsigned long long)(*s - '0');
    }
    *size = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
    return 0;
}

/* The download url: http or https (https only when the Graph API itself is
 * reached over https: the token goes with it), no white space or control
 * characters, bounded. */
static bool media_url_ok(const struct wa_api *api, const char *url)
{
    bool https;

    if (!scheme_http(url, &https) || (api->base_https && !https))
        return false;
    for (size_t n = 0; url[n]; n++)
        if (n >= MEDIA_URL_MAX || (unsigned char)url[n] <= 0x20 || url[n] == 0x7f)
            return false;
    return true;
}

static const char *media_why(int r)
{
    switch (r) {
    case -ENOENT:
        return "WhatsApp would not give Rivet that photo; please send it again.";
    case -EFBIG:
        return "That file is larger than Rivet accepts; please send a smaller photo.";
    case -EAGAIN:
        return "WhatsApp is busy right now; please send the photo again in a minute.";
    case -EACCES:
        return "Rivet is not allowed to fetch photos from WhatsApp right now; please tell "
               "the administrator.";
    case -ETIMEDOUT:
        return "WhatsApp took too long to hand over that photo; please send it again.";
    case -ECANCELED:
        return "Rivet is restarting; please send the photo again in a minute.";
    default:
        return "Rivet could not download that photo from WhatsApp; please send it again.";
    }
}

int wa_api_get_media(struct wa_api *api, const char *media_id, long timeout_s, size_t max,
                     struct buf *out, const char **why)
{
    struct wa_reply rep;
    struct sink s = {.api = api, .b = out, .status_gate = true};
    json_t *root = NULL, *v;
    char *meta_url = NULL, *url = NULL;
    long deadline = now_ms() + ms_of(timeout_s), status = 0;
    size_t size;
    bool https;
    int r;

    memset(&rep, 0, sizeof(rep));
    *why = media_why(-EIO);
    buf_free(out);
    buf_init(out, max);
    if (!id_plain(media_id)) {
        r = -ENOENT; /* nothing Graph could know: no request is made */
        goto out;
    }
    if (asprintf(&meta_url, "%s/%s", api->base, media_id) < 0) {
        meta_url = NULL;
        r = -ENOMEM;
        goto out;
    }
    r = graph_call(api, meta_url, NULL, ms_of(timeout_s), &rep, &root);
    if (r == -E2BIG)
        r = -EBADMSG; /* a megabyte about one media id is not Graph's answer */
    if (r == -EBADMSG && (rep.http_status < 200 || rep.http_status > 299))
        r = status_error(rep.http_status);
    if (r < 0)
        goto out;
    if (!rep.ok) {
        r = media_error(&rep);
        goto out;
    }
    r = file_size_of(json_object_get(root, "file_size"), &size);
    if (r == 0 && size > max) {
        r = -EFBIG;
        goto out;
    }
    if (r < 0 && r != -ENOENT) /* no file_size: the download's cap decides */
        goto out;
    v = json_object_get(root, "url");
    if (!json_is_string(v) || !media_url_ok(api, json_string_value(v))) {
        r = -EBADMSG;
        goto out;
    }
    url = strdup(json_string_value(v));
    if (!url) {
        r = -ENOMEM;
        goto out;
    }
    json_decref(root);
    root = NULL;

    /* The file, with the same token (Meta asks for it), at most max bytes:
     * MAXFILESIZE refuses a Content-Length over it at once, the buffer's own
     * maximum stops a body that says nothing. A redirect may be followed
     * only to https, or to http when the url itself was http; curl drops
     * the Authorization header on a redirect to another host. */
    scheme_http(url, &https);
    curl_easy_setopt(api->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
    curl_easy_setopt(api->curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(api->curl, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(api->curl, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
    r = perform(api, url, NULL, deadline - now_ms(), &s, &status);
    curl_easy_setopt(api->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)0);
    curl_easy_setopt(api->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(api->curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    if (s.bad_status ||
        (status && (status < 200 || status > 299) && (r == 0 || r == -EFBIG || r == -E2BIG))) {
        r = status_error(status);
        goto out;
    }
    if (r == -E2BIG)
        r = -EFBIG; /* the buffer's maximum: the body was longer than max */
    if (r == 0 && (status < 200 || status > 299))
        r = -EIO; /* a redirect not followed, or no status at all */
out:
    json_decref(root);
    free(meta_url);
    if (url) {
        explicit_bzero(url, strlen(url)); /* a signed, short-lived capability */
        free(url);
    }
    if (r < 0) {
        buf_free(out);
        *why = media_why(r);
    }
    return r;
}
