/* The Bot API over libcurl: one handle per thread, kept alive between calls,
 * a timeout on every call, a cap on every answer, and non-200 answers read
 * as carefully as 200s (409, 429 with retry_after, 5xx all differ). */
#include "tg.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "curl_errno.h"

struct tg_api {
    CURL *curl;
    struct curl_slist *headers;
    char *base;      /* {api_url}/bot{token}/ : secret, never logged */
    char *file_base; /* {api_url}/file/bot{token}/ : the same */
    struct buf body;
    volatile int *stop;
    int sock; /* the connection's socket, for tg_api_interrupt() */
};

static int on_sockopt(void *userdata, curl_socket_t fd, curlsocktype purpose)
{
    struct tg_api *api = userdata;

    __atomic_store_n(&api->sock, (int)fd, __ATOMIC_RELAXED);
    return CURL_SOCKOPT_OK;
}

void tg_api_interrupt(struct tg_api *api)
{
    int fd = __atomic_load_n(&api->sock, __ATOMIC_RELAXED);

    /* The transfer in progress sees the connection end at once; the stop
     * flag then turns that into -ECANCELED. */
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct tg_api *api = userdata;

    if (buf_add(&api->body, ptr, size * nmemb) < 0)
        return 0; /* over TG_MAX_RESPONSE: curl ends the transfer */
    return size * nmemb;
}

static size_t on_file_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    if (buf_add(userdata, ptr, size * nmemb) < 0)
        return 0; /* over the cap: curl ends the transfer */
    return size * nmemb;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct tg_api *api = userdata;

    return api->stop && __atomic_load_n(api->stop, __ATOMIC_ACQUIRE) ? 1 : 0;
}

int tg_api_new(const char *api_url, const char *token, volatile int *stop, struct tg_api **ret)
{
    struct tg_api *api = calloc(1, sizeof(*api));
    size_t n;

    if (!api)
        return -ENOMEM;
    n = strlen(api_url);
    while (n && api_url[n - 1] == '/')
        n--;
    if (asprintf(&api->base, "%.*s/bot%s/", (int)n, api_url, token) < 0) {
        api->base = NULL;
        goto fail;
    }
    if (asprintf(&api->file_base, "%.*s/file/bot%s/", (int)n, api_url, token) < 0) {
        api->file_base = NULL;
        goto fail;
    }
    api->curl = curl_easy_init();
    if (!api->curl)
        goto fail;
    api->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!api->headers)
        goto fail;
    buf_init(&api->body, TG_MAX_RESPONSE);
    api->stop = stop;
    api->sock = -1;
    curl_easy_setopt(api->curl, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    curl_easy_setopt(api->curl, CURLOPT_SOCKOPTDATA, api);
    curl_easy_setopt(api->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(api->curl, CURLOPT_HTTPHEADER, api->headers);
    curl_easy_setopt(api->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(api->curl, CURLOPT_WRITEDATA, api);
    curl_easy_setopt(api->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(api->curl, CURLOPT_XFERINFODATA, api);
    curl_easy_setopt(api->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(api->curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(api->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(api->curl, CURLOPT_USERAGENT, "rivet");
    curl_easy_setopt(api->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    *ret = api;
    return 0;
fail:
    tg_api_free(api);
    return -ENOMEM;
}

void tg_api_free(struct tg_api *api)
{
    if (!api)
        return;
    if (api->curl)
        curl_easy_cleanup(api->curl);
    curl_slist_free_all(api->headers);
    if (api->base) {
        explicit_bzero(api->base, strlen(api->base));
        free(api->base);
    }
    if (api->file_base) {
        explicit_bzero(api->file_base, strlen(api->file_base));
        free(api->file_base);
    }
    buf_free(&api->body);
    free(api);
}

void tg_reply_clear(struct tg_reply *rep)
{
    json_decref(rep->result);
    memset(rep, 0, sizeof(*rep));
}

/* Reads {"ok":true,"result":...} or {"ok":false,"error_code":N,
 * "description":"...","parameters":{"retry_after":N}}. */
static int parse_answer(struct tg_api *api, struct tg_reply *rep)
{
    json_error_t jerr;
    json_t *root, *ok, *v, *params;

    /* \u0000 inside a text is Telegram's to send and the handlers' to refuse:
     * it must not make the whole page unreadable. */
    root = json_loadb(api->body.p ? api->body.p : "", api->body.len, JSON_ALLOW_NUL, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return -EBADMSG;
    }
    ok = json_object_get(root, "ok");
    if (!json_is_boolean(ok)) {
        json_decref(root);
        return -EBADMSG;
    }
    rep->ok = json_is_true(ok);
    if (rep->ok) {
        rep->result = json_incref(json_object_get(root, "result"));
    } else {
        v = json_object_get(root, "error_code");
        rep->error_code = json_is_integer(v) ? (int)json_integer_value(v) : (int)rep->http_status;
        v = json_object_get(root, "description");
        snprintf(rep->description, sizeof(rep->description), "%s",
                 json_is_string(v) ? json_string_value(v) : "");
        params = json_object_get(root, "parameters");
        v = params ? json_object_get(params, "retry_after") : NULL;
        if (json_is_integer(v) && json_integer_value(v) > 0)
            rep->retry_after = json_integer_value(v) > 86400 ? 86400 : (int)json_integer_value(v);
    }
    json_decref(root);
    return 0;
}

int tg_api_call(struct tg_api *api, const char *method, json_t *params, long timeout_s,
                struct tg_reply *rep)
{
    char *url = NULL, *body = NULL;
    CURLcode c;
    int r;

    memset(rep, 0, sizeof(*rep));
    buf_free(&api->body);
    buf_init(&api->body, TG_MAX_RESPONSE);
    if (asprintf(&url, "%s%s", api->base, method) < 0)
        return -ENOMEM;
    body = params ? json_dumps(params, JSON_COMPACT) : strdup("{}");
    if (!body) {
        r = -ENOMEM;
        goto out;
    }
    curl_easy_setopt(api->curl, CURLOPT_URL, url);
    curl_easy_setopt(api->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(api->curl, CURLOPT_TIMEOUT, timeout_s);
    c = curl_easy_perform(api->curl);
    if (c != CURLE_OK && api->stop && __atomic_load_n(api->stop, __ATOMIC_ACQUIRE))
        c = CURLE_ABORTED_BY_CALLBACK;
    curl_easy_getinfo(api->curl, CURLINFO_RESPONSE_CODE, &rep->http_status);
    rep->body = buf_str(&api->body);
    rep->body_len = api->body.len;
    r = curl_errno(c);
    if (r < 0)
        goto out;
    r = parse_answer(api, rep);
    if (r == 0 && !rep->ok && rep->error_code == 0)
        rep->error_code = (int)rep->http_status;
out:
    if (url) {
        explicit_bzero(url, strlen(url));
        free(url);
    }
    free(body);
    return r;
}

/* A file_path as Telegram gives them ("photos/file_12.jpg"): plain
 * characters that need no escaping in a URL path, no "..". */
static bool file_path_ok(const char *p)
{
    size_t n = strlen(p);

    if (n == 0 || n > 256 || strstr(p, "..") || p[0] == '/')
        return false;
    for (; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("/._-", *p)))
            return false;
    return true;
}

int tg_api_get_file(struct tg_api *api, const char *file_id, long timeout_s, size_t max,
                    struct buf *out, const char **why)
{
    struct tg_reply rep;
    json_t *p = json_pack("{s:s}", "file_id", file_id), *v;
    char *url = NULL, *path = NULL;
    long status = 0;
    CURLcode c;
    int r;

    *why = "Rivet could not download that photo from Telegram; please send it again.";
    if (!p)
        return -ENOMEM;
    r = tg_api_call(api, "getFile", p, timeout_s, &rep);
    json_decref(p);
    if (r < 0)
        goto out;
    if (!rep.ok) {
        /* "Bad Request: file is too big" for files over the Bot API's 20 MB. */
        if (strstr(rep.description, "too big")) {
            *why = "The image is larger than 20 MB.";
            r = -EFBIG;
        } else {
            r = rep.error_code == 429 || rep.error_code >= 500 ? -EAGAIN : -EIO;
        }
        goto out;
    }
    v = json_object_get(rep.result, "file_size");
    if (json_is_integer(v) && (json_integer_value(v) < 0 || (size_t)json_integer_value(v) > max)) {
        *why = "The image is larger than 20 MB.";
        r = -EFBIG;
        goto out;
    }
    v = json_object_get(rep.result, "file_path");
    if (!json_is_string(v) || !file_path_ok(json_string_value(v))) {
        r = -EBADMSG;
        goto out;
    }
    path = strdup(json_string_value(v));
    if (!path || asprintf(&url, "%s%s", api->file_base, path) < 0) {
        url = NULL;
        r = -ENOMEM;
        goto out;
    }
    buf_free(out);
    buf_init(out, max);
    curl_easy_setopt(api->curl, CURLOPT_URL, url);
    curl_easy_setopt(api->curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(api->curl, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(api->curl, CURLOPT_WRITEFUNCTION, on_file_data);
    curl_easy_setopt(api->curl, CURLOPT_TIMEOUT, timeout_s);
    c = curl_easy_perform(api->curl);
    /* Back to the Bot API calls' set-up. */
    curl_easy_setopt(api->curl, CURLOPT_WRITEDATA, api);
    curl_easy_setopt(api->curl, CURLOPT_WRITEFUNCTION, on_data);
    if (c != CURLE_OK && api->stop && __atomic_load_n(api->stop, __ATOMIC_ACQUIRE))
        c = CURLE_ABORTED_BY_CALLBACK;
    r = curl_errno(c);
    if (r == -E2BIG)
        *why = "The image is larger than 20 MB.";
    if (r < 0)
        goto out;
    curl_easy_getinfo(api->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200)
        r = status == 429 || status >= 500 ? -EAGAIN : -EIO;
out:
    tg_reply_clear(&rep);
    if (url) {
        explicit_bzero(url, strlen(url));
        free(url);
    }
    free(path);
    if (r < 0)
        buf_free(out);
    return r;
}
