/* The LLM client: an OpenAI-compatible chat completion, either with the
 * photo as a base64 data URL, read back as nameplate fields
 * (llm_read_nameplate), or a plain-text question read back as text
 * (llm_chat). Both are one `struct request` run through the same provider
 * chain (run_chain, ask).
 *
 * One CURL easy handle per struct llm, kept alive between calls and driven
 * through a multi handle so that the stop flag is seen within
 * STOP_POLL_MS even while a provider says nothing. Every answer is capped at
 * LLM_MAX_RESPONSE, every call has the provider's timeout.
 *
 * Which providers are skipped is process-wide state (all threads share it):
 * a provider that fails SKIP_AFTER times in a row (no answer, 429, 5xx, an
 * answer that is not what was asked for), nameplate reads and chats
 * counted together, is left out for SKIP_MS; a 429 or 503 with Retry-After
 * is left out for that long at once (at most an hour). A success forgets
 * its failures. After the pause it is tried again, and one more failure
 * pauses it again. */
#include "llm.h"

#include "text.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LLM_CONFIDENCE 0.8f
#define LLM_VALUE_REFUSE 200 /* a longer value makes the whole answer suspect */
#define LLM_JSON_DEPTH 32    /* nesting allowed in the envelope */
#define LLM_CONTENT_DEPTH 4  /* and in the content (unknown members may nest a little) */
#define LLM_MAX_TOKENS 600
#define LLM_CHAT_TEMPERATURE 0.2
#define LLM_TIMEOUT_DEFAULT_S 30
#define LLM_TIMEOUT_MAX_S 300
#define LLM_CONNECT_TIMEOUT_MS 10000L

#define SKIP_AFTER 3
#define SKIP_MS 60000
#define SKIP_RETRY_AFTER_MAX_S 3600
#define SKIP_SLOTS 64

#define STOP_POLL_MS 100

struct llm {
    struct llm_provider p[LLM_MAX_PROVIDERS];
    uint64_t key[LLM_MAX_PROVIDERS];   /* skip-table key of name and URL */
    bool no_format[LLM_MAX_PROVIDERS]; /* refused response_format once */
    int n;
    volatile int *stop;
    CURL *curl;
    CURLM *multi;
    char *body; /* the provider's answer, at most LLM_MAX_RESPONSE bytes + NUL */
    size_t body_len, body_cap;
    bool too_big;
    long retry_after; /* seconds, from the answer's Retry-After; 0 when none */
    int total_ms;     /* llm_set_total_timeout(); 0: none */
    int64_t deadline; /* now_ms() by which the call in progress ends; 0: none */
};

/* With a total timeout, a provider is tried only with this much time left. */
#define LLM_MIN_TRY_MS 200

/* ---- time and small text helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool stopped(const struct llm *l)
{
    return l->stop && __atomic_load_n(l->stop, __ATOMIC_ACQUIRE);
}

/* Appends a formatted note to err (size errn), separated by "; ". */
static void err_add(char *err, size_t errn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_add(char *err, size_t errn, const char *fmt, ...)
{
    size_t used;
    va_list ap;

    if (!err || errn == 0)
        return;
    used = strnlen(err, errn);
    if (used >= errn - 1)
        return;
    if (used > 0) {
        snprintf(err + used, errn - used, "; ");
        used = strnlen(err, errn);
        if (used >= errn - 1)
            return;
    }
    va_start(ap, fmt);
    vsnprintf(err + used, errn - used, fmt, ap);
    va_end(ap);
}

static void err_set(char *err, size_t errn, const char *what)
{
    if (err && errn)
        snprintf(err, errn, "%s", what);
}

/* Whether s (n bytes) is well-formed UTF-8 without control characters (C0,
 * DEL, C1), line or paragraph separators, bidirectional overrides or
 * U+FEFF: what handle_message() refuses in typed text (text_has_control). */
static bool text_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;

    while (p < end) {
        uint32_t c = *p;
        size_t k;

        if (c < 0x80) {
            if (c < 0x20 || c == 0x7F)
                return false;
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            c &= 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            c &= 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            c &= 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) <= k)
            return false;
        for (size_t i = 1; i <= k; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            c = (c << 6) | (p[i] & 0x3F);
        }
        if ((k == 2 && c < 0x800) || (k == 3 && (c < 0x10000 || c > 0x10FFFF)) ||
            (c >= 0xD800 && c <= 0xDFFF))
            return false; /* overlong, out of range or a surrogate */
        if ((c >= 0x80 && c <= 0x9F) || c == 0x2028 || c == 0x2029 ||
            (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069) || c == 0xFEFF)
            return false;
        p += k + 1;
    }
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void trim(const char **p, size_t *n)
{
    while (*n && is_space(**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n && is_space((*p)[*n - 1]))
        (*n)--;
}

/* Strips surrounding whitespace and one ```json ... ``` fence. */
static int unfence(const char **p, size_t *n)
{
    const char *s, *nl;
    size_t k;

    trim(p, n);
    if (*n < 3 || memcmp(*p, "```", 3) != 0)
        return 0;
    s = *p + 3;
    nl = memchr(s, '\n', *n - 3);
    if (!nl)
        return -EBADMSG;
    /* the info string: nothing or "json" */
    k = (size_t)(nl - s);
    while (k && is_space(s[k - 1]))
        k--;
    if (k != 0 && !(k == 4 && strncasecmp(s, "json", 4) == 0))
        return -EBADMSG;
    *n -= (size_t)(nl + 1 - *p);
    *p = nl + 1;
    trim(p, n);
    if (*n < 3 || memcmp(*p + *n - 3, "```", 3) != 0)
        return -EBADMSG;
    *n -= 3;
    trim(p, n);
    return 0;
}

static bool means_unread(const char *s)
{
    static const char *const words[] = {"", "null", "n/a", "unknown", "none"};

    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(s, words[i]) == 0)
            return true;
    return false;
}

/* ---- the answer ---- */

static int clamp_tokens(json_t *v)
{
    json_int_t x;

    if (!json_is_integer(v))
        return 0;
    x = json_integer_value(v);
    return x < 0 ? 0 : x > INT_MAX ? INT_MAX : (int)x;
}

/* One member of the content object into np. */
static int parse_value(struct nameplate *np, enum np_field f, json_t *v)
{
    char num[64], text[LLM_VALUE_REFUSE + 1];
    const char *s;
    size_t n;

    switch (json_typeof(v)) {
    case JSON_NULL:
        return 0;
    case JSON_INTEGER:
        if (json_integer_value(v) < 0)
            return -EBADMSG;
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        np_set(np, f, num, LLM_CONFIDENCE, NP_SRC_LLM);
        return 0;
    case JSON_REAL:
        if (!isfinite(json_real_value(v)) || json_real_value(v) < 0)
            return -EBADMSG;
        snprintf(num, sizeof(num), "%.15g", json_real_value(v)); /* 7.5, 460, 95.4 */
        np_set(np, f, num, LLM_CONFIDENCE, NP_SRC_LLM);
        return 0;
    case JSON_STRING:
        s = json_string_value(v);
        n = json_string_length(v);
        if (strlen(s) != n || !text_ok(s, n))
            return -EBADMSG;
        trim(&s, &n);
        if (n > LLM_VALUE_REFUSE)
            return -EBADMSG;
        memcpy(text, s, n);
        text[n] = '\0';
        if (means_unread(text))
            return 0;
        np_set(np, f, text, LLM_CONFIDENCE, NP_SRC_LLM); /* cut to NP_VALUE_MAX */
        return 0;
    default:
        return -EBADMSG; /* true, false, arrays and objects are not values */
    }
}

/* The message content: one JSON object of fields. */
static int parse_content(const char *text, size_t len, struct nameplate *np)
{
    json_error_t jerr;
    json_t *root = NULL, *v;
    const char *key;
    int r;

    r = unfence(&text, &len);
    if (r < 0)
        return r;
    if (len == 0 || text[0] != '{' || !text_json_depth_ok(text, len, LLM_CONTENT_DEPTH))
        return -EBADMSG;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        r = -EBADMSG;
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        int f = np_field_by_name(key);

        if (f < 0)
            continue; /* unknown members are ignored */
        r = parse_value(np, (enum np_field)f, v);
        if (r < 0)
            goto out;
    }
    np_score(np);
    r = 0;
out:
    json_decref(root);
    return r;
}

/* The envelope of a chat.completion. usage gets the token counts, and
 * truncated when the provider stopped at max_tokens, as soon as the
 * envelope is read, so an answer that is not what was asked for still
 * counts what it cost. flags go to json_loadb. On success *root_ret is the
 * parsed body (the caller json_decrefs it) and *content_ret the first
 * choice's message content, a string owned by *root_ret. */
static int read_envelope(const char *body, size_t len, size_t flags, struct llm_usage *usage,
                         json_t **root_ret, json_t **content_ret)
{
    json_error_t jerr;
    json_t *root, *choices, *choice, *msg, *content, *u, *finish;

    if (len > LLM_MAX_RESPONSE)
        return -E2BIG;
    if (!body || !text_json_depth_ok(body, len, LLM_JSON_DEPTH))
        return -EBADMSG;
    root = json_loadb(body, len, flags, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return -EBADMSG;
    }
    u = json_object_get(root, "usage");
    if (usage && json_is_object(u)) {
        usage->prompt_tokens = clamp_tokens(json_object_get(u, "prompt_tokens"));
        usage->completion_tokens = clamp_tokens(json_object_get(u, "completion_tokens"));
    }
    choices = json_object_get(root, "choices");
    choice = json_array_get(choices, 0);
    finish = json_object_get(choice, "finish_reason");
    if (usage && json_is_string(finish) && strcmp(json_string_value(finish), "length") == 0)
        usage->truncated = true;
    msg = json_object_get(choice, "message");
    content = json_object_get(msg, "content");
    if (!json_is_array(choices) || !json_is_object(msg) || !json_is_string(content)) {
        json_decref(root);
        return -EBADMSG;
    }
    *root_ret = root;
    *content_ret = content;
    return 0;
}

/* out is written only on success. */
int llm_parse_answer(const char *body, size_t len, struct nameplate *out, struct llm_usage *usage)
{
    struct nameplate np;
    json_t *root = NULL, *content;
    int r;

    r = read_envelope(body, len, 0, usage, &root, &content);
    if (r < 0)
        return r;
    memset(&np, 0, sizeof(np));
    r = parse_content(json_string_value(content), json_string_length(content), &np);
    if (r < 0)
        goto out;
    *out = np;
out:
    json_decref(root);
    return r;
}

/* ---- the answer as text ---- */

/* Bytes in the UTF-8 character that starts with lead byte c. */
static size_t utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* Cleans s (n bytes of valid UTF-8) into t (room for n bytes): control
 * characters other than \n and \t dropped (C0 with \r, DEL, C1,
 * bidirectional overrides and isolates, U+FEFF), U+2028 and U+2029 made
 * \n, lines of only spaces and tabs emptied, more than two blank lines in
 * a row cut to two, white space around the whole trimmed. Returns the
 * length; never more than n. */
static size_t clean_text(const char *s, size_t n, char *t)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t m = 0, w = 0, start = 0;
    int blank = 0;

    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        size_t k = utf8_len(c);

        if (k > n - i)
            break; /* cannot happen with valid UTF-8 */
        if (c == '\n' || c == '\t') {
            t[m++] = (char)c;
            i++;
            continue;
        }
        if (c < 0x20 || c == 0x7F || (c == 0xC2 && u[i + 1] <= 0x9F)) {
            i += k; /* C0, DEL, C1 */
            continue;
        }
        if (k == 3) {
            uint32_t cp = (uint32_t)(c & 0x0F) << 12 | (uint32_t)(u[i + 1] & 0x3F) << 6 |
                          (uint32_t)(u[i + 2] & 0x3F);

            if (cp == 0x2028 || cp == 0x2029) {
                t[m++] = '\n';
                i += 3;
                continue;
            }
            if ((cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF) {
                i += 3;
                continue;
            }
        }
        memcpy(t + m, s + i, k);
        m += k;
        i += k;
    }
    /* line by line, in place: the output never overtakes the input */
    for (size_t i = 0; i < m;) {
        const char *nl = memchr(t + i, '\n', m - i);
        size_t end = nl ? (size_t)(nl - t) : m, j = i;

        while (j < end && (t[j] == ' ' || t[j] == '\t'))
            j++;
        if (j == end) {
            if (++blank <= 2 && nl)
                t[w++] = '\n';
        } else {
            blank = 0;
            memmove(t + w, t + i, end - i);
            w += end - i;
            if (nl)
                t[w++] = '\n';
        }
        i = end + 1;
    }
    while (w > 0 && is_space(t[w - 1]))
        w--;
    while (start < w && is_space(t[start]))
        start++;
    memmove(t, t + start, w - start);
    return w - start;
}

/* Whether t[0..i) ends a line or a sentence: t[i] is a newline, or a space
 * after . ! ? (not the "2." of a numbered list), or t[0..i) ends with an
 * ideographic full stop or a full-width ! or ?. t[i] starts a character. */
static bool line_or_sentence_end(const char *t, size_t i)
{
    char c = i > 0 ? t[i - 1] : '\0', b = i > 1 ? t[i - 2] : '\0';

    if (t[i] == '\n')
        return true;
    if ((t[i] == ' ' || t[i] == '\t') &&
        ((c == '.' && !isdigit((unsigned char)b)) || c == '!' || c == '?'))
        return true;
    return i >= 3 && (memcmp(t + i - 3, "\xE3\x80\x82", 3) == 0 || /* 。 */
                      memcmp(t + i - 3, "\xEF\xBC\x81", 3) == 0 || /* ！ */
                      memcmp(t + i - 3, "\xEF\xBC\x9F", 3) == 0);  /* ？ */
}

/* Copies t (n bytes of clean text) into out (size outn >= LLM_MIN_ANSWER),
 * NUL-terminated. Text that does not fit is cut, within its last half, at
 * the last line or sentence end, else the last space, else at a character
 * boundary, and "…" is appended. Returns whether it was cut. */
static bool fit_text(const char *t, size_t n, char *out, size_t outn)
{
    static const char ellipsis[] = "\xE2\x80\xA6"; /* … */
    size_t cut, k, lo;

    if (n < outn) {
        memcpy(out, t, n);
        out[n] = '\0';
        return false;
    }
    cut = outn - sizeof(ellipsis); /* room for the ellipsis and the NUL */
    while (cut > 0 && ((unsigned char)t[cut] & 0xC0) == 0x80)
        cut--;
    lo = cut / 2;
    for (k = cut; k > lo; k--)
        if (((unsigned char)t[k] & 0xC0) != 0x80 && line_or_sentence_end(t, k))
            break;
    if (k == lo) {
        for (k = cut; k > lo; k--)
            if (t[k] == ' ' || t[k] == '\t')
                break;
        if (k == lo)
            k = cut;
    }
    while (k > 0 && is_space(t[k - 1]))
        k--;
    if (k == 0)
        k = cut;
    memcpy(out, t, k);
    memcpy(out + k, ellipsis, sizeof(ellipsis)); /* with its NUL */
    return true;
}

int llm_parse_text(const char *body, size_t len, char *out, size_t outn, struct llm_usage *usage)
{
    json_t *root = NULL, *content;
    char *text = NULL;
    size_t n;
    int r;

    if (!out || outn < LLM_MIN_ANSWER)
        return -EINVAL;
    /* a \u0000 in the text is a control character like any other: dropped */
    r = read_envelope(body, len, JSON_ALLOW_NUL, usage, &root, &content);
    if (r < 0)
        return r;
    n = json_string_length(content);
    if (!utf8_valid(json_string_value(content), n)) {
        r = -EBADMSG;
        goto out;
    }
    text = malloc(n + 1);
    if (!text) {
        r = -ENOMEM;
        goto out;
    }
    n = clean_text(json_string_value(content), n, text);
    if (n == 0) {
        r = -EBADMSG;
        goto out;
    }
    if (fit_text(text, n, out, outn) && usage)
        usage->truncated = true;
    r = 0;
out:
    free(text);
    json_decref(root);
    return r;
}

/* ---- configuration ---- */

static bool name_ok(const char *s, size_t n)
{
    if (n < 1 || n > 31)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isascii((unsigned char)s[i]) || !(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* Printable ASCII without spaces: safe in a header and a URL. */
static bool token_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7F)
            return false;
    return true;
}

static const char *env(const char *(*getenv_fn)(const char *), const char *name)
{
    const char *v = getenv_fn(name);

    return v && *v ? v : NULL;
}

/* The variable name for setting of provider prefix ("LLM_" or
 * "LLM_GROQ_"). */
static void var_name(char *out, size_t n, const char *prefix, const char *setting)
{
    snprintf(out, n, "%s%s", prefix, setting);
}

static int load_one(const char *(*getenv_fn)(const char *), const char *prefix, const char *name,
                    struct llm_provider *p, char *err, size_t errn)
{
    char var[64];
    const char *v;
    size_t n;

    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);

    var_name(var, sizeof(var), prefix, "URL");
    v = env(getenv_fn, var);
    if (!v)
        goto missing;
    n = strlen(v);
    while (n && v[n - 1] == '/')
        n--;
    if (!((n > 7 && strncasecmp(v, "http://", 7) == 0) ||
          (n > 8 && strncasecmp(v, "https://", 8) == 0)))
        goto bad_url;
    if (n >= sizeof(p->url))
        goto too_long;
    memcpy(p->url, v, n);
    p->url[n] = '\0';
    if (!token_ok(p->url))
        goto bad_url;

    var_name(var, sizeof(var), prefix, "MODEL");
    v = env(getenv_fn, var);
    if (!v)
        goto missing;
    if (strlen(v) >= sizeof(p->model))
        goto too_long;
    if (!text_ok(v, strlen(v)))
        goto invalid;
    snprintf(p->model, sizeof(p->model), "%s", v);

    var_name(var, sizeof(var), prefix, "API_KEY");
    v = env(getenv_fn, var);
    if (v) {
        if (strlen(v) >= sizeof(p->api_key))
            goto too_long;
        if (!token_ok(v))
            goto invalid;
        snprintf(p->api_key, sizeof(p->api_key), "%s", v);
    }

    var_name(var, sizeof(var), prefix, "TIMEOUT_S");
    v = env(getenv_fn, var);
    p->timeout_ms = LLM_TIMEOUT_DEFAULT_S * 1000;
    if (v) {
        char *end;
        long s;

        errno = 0;
        s = strtol(v, &end, 10);
        if (errno || end == v || *end || s < 1 || s > LLM_TIMEOUT_MAX_S) {
            snprintf(err, errn, "%s must be a number of seconds from 1 to %d", var,
                     LLM_TIMEOUT_MAX_S);
            return -EINVAL;
        }
        p->timeout_ms = (int)s * 1000;
    }

    for (int i = 0; i < 2; i++) {
        double *price = i ? &p->usd_per_mtok_out : &p->usd_per_mtok_in;
        char *end;

        var_name(var, sizeof(var), prefix, i ? "PRICE_OUT" : "PRICE_IN");
        v = env(getenv_fn, var);
        if (!v)
            continue;
        errno = 0;
        *price = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(*price) || *price < 0 || *price > 1e6) {
            *price = 0;
            snprintf(err, errn, "%s must be a price in USD per million tokens", var);
            return -EINVAL;
        }
    }
    return 0;

missing:
    snprintf(err, errn, "%s is not set", var);
    return -EINVAL;
bad_url:
    snprintf(err, errn, "%s must start with http:// or https:// and have no spaces", var);
    return -EINVAL;
too_long:
    snprintf(err, errn, "%s is too long", var);
    return -EINVAL;
invalid:
    snprintf(err, errn, "%s has characters that are not allowed", var);
    return -EINVAL;
}

int llm_config_load(const char *(*getenv_fn)(const char *), struct llm_provider *out, int max,
                    char *err, size_t errn)
{
    char dummy[1], names[LLM_MAX_PROVIDERS][32];
    const char *list, *s;
    int n = 0, r;

    if (!err || errn == 0) {
        err = dummy;
        errn = sizeof(dummy);
    }
    if (max > LLM_MAX_PROVIDERS)
        max = LLM_MAX_PROVIDERS;
    list = env(getenv_fn, "LLM_PROVIDERS");
    if (!list) {
        if (!env(getenv_fn, "LLM_URL") && !env(getenv_fn, "LLM_MODEL"))
            return 0;
        if (max < 1) {
            snprintf(err, errn, "no room for the LLM provider");
            return -EINVAL;
        }
        r = load_one(getenv_fn, "LLM_", "default", &out[0], err, errn);
        return r < 0 ? r : 1;
    }
    /* the whole list first, so that a wrong list is reported as such */
    for (s = list;;) {
        const char *end = strchr(s, ','), *name = s;
        size_t k = end ? (size_t)(end - s) : strlen(s);

        trim(&name, &k);
        if (!name_ok(name, k)) {
            snprintf(err, errn,
                     "LLM_PROVIDERS: names are 1 to 31 letters, digits or _, separated by commas");
            return -EINVAL;
        }
        if (n >= max) {
            snprintf(err, errn, "LLM_PROVIDERS: more than %d providers", max);
            return -EINVAL;
        }
        memcpy(names[n], name, k);
        names[n][k] = '\0';
        for (int i = 0; i < n; i++) {
            if (strcasecmp(names[i], names[n]) == 0) {
                snprintf(err, errn, "LLM_PROVIDERS: %s is named twice", names[n]);
                return -EINVAL;
            }
        }
        n++;
        if (!end)
            break;
        s = end + 1;
    }
    for (int i = 0; i < n; i++) {
        char prefix[48];

        snprintf(prefix, sizeof(prefix), "LLM_%.31s_", names[i]);
        for (char *c = prefix; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        r = load_one(getenv_fn, prefix, names[i], &out[i], err, errn);
        if (r < 0)
            return r;
    }
    return n;
}

/* ---- the skip table ---- */

static pthread_mutex_t skip_lock = PTHREAD_MUTEX_INITIALIZER;
static struct skip_slot {
    uint64_t key;
    bool used;
    int fails;        /* in a row */
    int64_t until_ms; /* skipped before this time */
    int64_t last_ms;  /* last touched, to reuse the oldest slot */
} skips[SKIP_SLOTS];

static uint64_t skip_key(const struct llm_provider *p)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over name, NUL, url */

    for (const char *s = p->name; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h *= 1099511628211ull;
    for (const char *s = p->url; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot of key; with create, a new one (an unused slot, or else the one
 * touched longest ago) when there is none. Call with skip_lock held. */
static struct skip_slot *skip_find(uint64_t key, bool create, int64_t now)
{
    struct skip_slot *victim = NULL;

    for (int i = 0; i < SKIP_SLOTS; i++) {
        struct skip_slot *s = &skips[i];

        if (s->used && s->key == key)
            return s;
        if (!victim || (victim->used && (!s->used || s->last_ms < victim->last_ms)))
            victim = s;
    }
    if (!create)
        return NULL;
    memset(victim, 0, sizeof(*victim));
    victim->used = true;
    victim->key = key;
    victim->last_ms = now;
    return victim;
}

/* Milliseconds the provider is still skipped for, or 0. */
static int64_t skip_remaining(uint64_t key, int64_t now)
{
    struct skip_slot *s;
    int64_t left = 0;

    pthread_mutex_lock(&skip_lock);
    s = skip_find(key, false, now);
    if (s && s->until_ms > now)
        left = s->until_ms - now;
    pthread_mutex_unlock(&skip_lock);
    return left;
}

static void skip_failed(uint64_t key, int64_t now, long retry_after_s)
{
    struct skip_slot *s;

    pthread_mutex_lock(&skip_lock);
    s = skip_find(key, true, now);
    s->last_ms = now;
    if (s->fails < INT_MAX)
        s->fails++;
    if (retry_after_s > 0) {
        if (retry_after_s > SKIP_RETRY_AFTER_MAX_S)
            retry_after_s = SKIP_RETRY_AFTER_MAX_S;
        s->until_ms = now + (int64_t)retry_after_s * 1000;
    } else if (s->fails >= SKIP_AFTER) {
        s->until_ms = now + SKIP_MS;
    }
    pthread_mutex_unlock(&skip_lock);
}

static void skip_ok(uint64_t key, int64_t now)
{
    struct skip_slot *s;

    pthread_mutex_lock(&skip_lock);
    s = skip_find(key, false, now);
    if (s) {
        s->fails = 0;
        s->until_ms = 0;
        s->last_ms = now;
    }
    pthread_mutex_unlock(&skip_lock);
}

void llm_reset_skips(void)
{
    pthread_mutex_lock(&skip_lock);
    memset(skips, 0, sizeof(skips));
    pthread_mutex_unlock(&skip_lock);
}

/* ---- the cap on requests in flight (process-wide) ---- */

static pthread_mutex_t flight_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t flight_cond = PTHREAD_COND_INITIALIZER;
static int flight_max; /* 0: no cap */
static int flight_now;
static uint64_t flight_waited, flight_busy;

void llm_set_max_in_flight(int n)
{
    pthread_mutex_lock(&flight_lock);
    flight_max = n > 0 ? n : 0;
    pthread_cond_broadcast(&flight_cond);
    pthread_mutex_unlock(&flight_lock);
}

void llm_flight_stats(struct llm_flight *out)
{
    pthread_mutex_lock(&flight_lock);
    *out = (struct llm_flight){
        .in_flight = flight_now, .max = flight_max, .waited = flight_waited, .busy = flight_busy};
    pthread_mutex_unlock(&flight_lock);
}

/* Takes a slot, waiting while the cap is reached: until until_ms (now_ms()
 * time), or until l's stop flag is set. 0, -EBUSY or -ECANCELED. */
static int flight_take(const struct llm *l, int64_t until_ms)
{
    bool counted = false;
    int r = 0;

    pthread_mutex_lock(&flight_lock);
    while (flight_max > 0 && flight_now >= flight_max) {
        int64_t left = until_ms - now_ms();
        struct timespec ts;

        if (!counted) {
            flight_waited++;
            counted = true;
        }
        if (stopped(l)) {
            r = -ECANCELED;
            break;
        }
        if (left <= 0) {
            flight_busy++;
            r = -EBUSY;
            break;
        }
        /* In steps, so that the stop flag is seen. */
        if (left > STOP_POLL_MS)
            left = STOP_POLL_MS;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(left % 1000) * 1000000L;
        ts.tv_sec += (time_t)(left / 1000) + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&flight_cond, &flight_lock, &ts);
    }
    if (r == 0)
        flight_now++;
    pthread_mutex_unlock(&flight_lock);
    return r;
}

static void flight_release(void)
{
    pthread_mutex_lock(&flight_lock);
    flight_now--;
    pthread_cond_signal(&flight_cond);
    pthread_mutex_unlock(&flight_lock);
}

/* ---- the client ---- */

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct llm *l = userdata;
    size_t n = size * nmemb;

    if (n > LLM_MAX_RESPONSE - l->body_len) {
        l->too_big = true;
        return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
    }
    if (l->body_len + n + 1 > l->body_cap) {
        size_t cap = l->body_cap ? l->body_cap : 16384;
        char *p;

        while (cap < l->body_len + n + 1)
            cap *= 2;
        if (cap > LLM_MAX_RESPONSE + 1)
            cap = LLM_MAX_RESPONSE + 1;
        p = realloc(l->body, cap);
        if (!p)
            return 0;
        l->body = p;
        l->body_cap = cap;
    }
    memcpy(l->body + l->body_len, ptr, n);
    l->body_len += n;
    l->body[l->body_len] = '\0';
    return n;
}

/* Retry-After: seconds or an HTTP date. */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    static const char name[] = "retry-after:";
    struct llm *l = userdata;
    size_t n = size * nmemb, k = sizeof(name) - 1;
    char v[64];

    if (n > k && n - k < sizeof(v) && strncasecmp(ptr, name, k) == 0) {
        memcpy(v, ptr + k, n - k);
        v[n - k] = '\0';
        const char *p = v;
        size_t len = strlen(v);
        char *end;
        long s;

        trim(&p, &len);
        v[(size_t)(p - v) + len] = '\0';
        errno = 0;
        s = strtol(p, &end, 10);
        if (end != p && !*end && !errno && s > 0) {
            l->retry_after = s;
        } else if (!isdigit((unsigned char)*p)) {
            time_t t = curl_getdate(p, NULL);

            if (t > 0 && t > time(NULL))
                l->retry_after = (long)(t - time(NULL));
        }
        if (l->retry_after > SKIP_RETRY_AFTER_MAX_S)
            l->retry_after = SKIP_RETRY_AFTER_MAX_S;
    }
    return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    return stopped(userdata) ? 1 : 0;
}

int llm_new(const struct llm_provider *providers, int n, volatile int *stop, struct llm **ret)
{
    struct llm *l;

    if (n < 0 || n > LLM_MAX_PROVIDERS || (n > 0 && !providers))
        return -EINVAL;
    l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    if (n > 0)
        memcpy(l->p, providers, (size_t)n * sizeof(*providers));
    l->n = n;
    for (int i = 0; i < n; i++) {
        l->p[i].name[sizeof(l->p[i].name) - 1] = '\0';
        l->p[i].url[sizeof(l->p[i].url) - 1] = '\0';
        l->p[i].model[sizeof(l->p[i].model) - 1] = '\0';
        l->p[i].api_key[sizeof(l->p[i].api_key) - 1] = '\0';
        l->key[i] = skip_key(&l->p[i]);
    }
    l->stop = stop;
    l->curl = curl_easy_init();
    l->multi = curl_multi_init();
    if (!l->curl || !l->multi) {
        llm_free(l);
        return -ENOMEM;
    }
    curl_easy_setopt(l->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(l->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(l->curl, CURLOPT_WRITEDATA, l);
    curl_easy_setopt(l->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(l->curl, CURLOPT_HEADERDATA, l);
    curl_easy_setopt(l->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(l->curl, CURLOPT_XFERINFODATA, l);
    curl_easy_setopt(l->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(l->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(l->curl, CURLOPT_USERAGENT, "rivet");
    curl_easy_setopt(l->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(l->curl, CURLOPT_FOLLOWLOCATION, 0L);
    *ret = l;
    return 0;
}

void llm_set_total_timeout(struct llm *l, int ms)
{
    if (l)
        l->total_ms = ms > 0 ? ms : 0;
}

void llm_free(struct llm *l)
{
    if (!l)
        return;
    if (l->curl)
        curl_easy_cleanup(l->curl);
    if (l->multi)
        curl_multi_cleanup(l->multi);
    explicit_bzero(l->p, sizeof(l->p));
    free(l->body);
    free(l);
}

/* The system prompt, with the field names from the nameplate record. */
static char *prompt_text(void)
{
    static const char head[] =
        "You read equipment nameplates (motor and machine rating plates) from photos. "
        "Answer with exactly one JSON object and nothing else, with these keys: ";
    static const char tail[] =
        ". Each value is a string copied exactly as printed on the plate, or null when the "
        "field is not on the plate or not legible. Never guess, infer or complete a value. "
        "Leave units out: volts \"460\" not \"460 V\", amps \"12.5\", hp \"10\", kw \"7.5\", "
        "rpm \"1765\", hz \"60\", efficiency \"95.4\" not \"95.4 %\". When the plate gives "
        "several values, copy them as printed, e.g. volts \"230/460\". phase is \"1\" or \"3\"; "
        "insulation_class is the class letter, e.g. \"F\"; enclosure as printed, e.g. \"TEFC\" "
        "or \"IP55\"; year is the year of manufacture or the date code.";
    size_t n = sizeof(head) + sizeof(tail);
    char *s, *p;

    for (int i = 0; i < NP_FIELD_COUNT; i++)
        n += strlen(np_field_name((enum np_field)i)) + 2;
    s = malloc(n);
    if (!s)
        return NULL;
    p = s + snprintf(s, n, "%s", head);
    for (int i = 0; i < NP_FIELD_COUNT; i++)
        p += snprintf(p, n - (size_t)(p - s), "%s%s", i ? ", " : "",
                      np_field_name((enum np_field)i));
    snprintf(p, n - (size_t)(p - s), "%s", tail);
    return s;
}

/* What a call asks every provider of the chain, and where the answer
 * goes. Borrowed from the caller for the length of the call. */
struct request {
    enum { REQ_NAMEPLATE, REQ_CHAT } kind;
    const char *bad_answer; /* err text for an answer that is not what was asked */
    /* REQ_NAMEPLATE: the image already in base64; np is written on success */
    const char *mime, *b64;
    size_t b64_len;
    struct nameplate *np;
    /* REQ_CHAT: the prompt; answer is written on success */
    const char *system, *user;
    int max_tokens;
    char *answer;
    size_t answer_size;
};

/* The nameplate request body for provider p. Returns a malloc'ed string
 * (the caller frees it) and its length, or NULL. */
static char *nameplate_body(const struct llm_provider *p, bool with_format, const char *mime,
                            const char *b64, size_t b64_len, size_t *len)
{
    char prefix[64], *prompt = NULL, *dump = NULL, *body = NULL, *at, *needle = NULL;
    json_t *req = NULL;
    size_t head, dump_len;

    snprintf(prefix, sizeof(prefix), "data:%s;base64,", mime);
    prompt = prompt_text();
    if (!prompt)
        goto out;
    req = json_pack("{s:s, s:i, s:i, s:[{s:s, s:s}, {s:s, s:[{s:s, s:s}, {s:s, s:{s:s, s:s}}]}]}",
                    "model", p->model, "temperature", 0, "max_tokens", LLM_MAX_TOKENS, "messages",
                    "role", "system", "content", prompt, "role", "user", "content", "type", "text",
                    "text", "Read this equipment nameplate.", "type", "image_url", "image_url",
                    "url", prefix, "detail", "high");
    if (!req)
        goto out;
    if (with_format &&
        json_object_set_new(req, "response_format", json_pack("{s:s}", "type", "json_object")) < 0)
        goto out;
    dump = json_dumps(req, JSON_COMPACT);
    if (!dump || asprintf(&needle, "\"url\":\"%s\"", prefix) < 0) {
        needle = NULL;
        goto out;
    }
    /* The base64 text needs no escaping: splice it into the URL rather
     * than copy megabytes through the JSON encoder. */
    at = strstr(dump, needle);
    if (!at)
        goto out;
    head = (size_t)(at - dump) + strlen(needle) - 1; /* up to the closing quote */
    dump_len = strlen(dump);
    body = malloc(dump_len + b64_len + 1);
    if (!body)
        goto out;
    memcpy(body, dump, head);
    memcpy(body + head, b64, b64_len);
    memcpy(body + head + b64_len, dump + head, dump_len - head + 1);
    *len = dump_len + b64_len;
out:
    free(prompt);
    free(dump);
    free(needle);
    json_decref(req);
    return body;
}

/* The chat request body for provider p: the system message (when there is
 * one) and the user message as plain strings. Returns a malloc'ed string
 * (the caller frees it) and its length, or NULL. */
static char *chat_body(const struct llm_provider *p, const struct request *q, size_t *len)
{
    json_t *req = NULL, *msgs;
    char *body = NULL;

    req = json_pack("{s:s, s:f, s:i}", "model", p->model, "temperature", LLM_CHAT_TEMPERATURE,
                    "max_tokens", q->max_tokens);
    msgs = json_array();
    if (!req) {
        json_decref(msgs);
        goto out;
    }
    if (json_object_set_new(req, "messages", msgs) < 0)
        goto out;
    if (q->system && q->system[0] &&
        json_array_append_new(msgs,
                              json_pack("{s:s, s:s}", "role", "system", "content", q->system)) < 0)
        goto out;
    if (json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", q->user)) <
        0)
        goto out;
    /* 0.2, not 0.20000000000000001 */
    body = json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(6));
    if (body)
        *len = strlen(body);
out:
    json_decref(req);
    return body;
}

static char *request_body(const struct llm_provider *p, const struct request *q, bool with_format,
                          size_t *len)
{
    if (q->kind == REQ_CHAT)
        return chat_body(p, q, len);
    return nameplate_body(p, with_format, q->mime, q->b64, q->b64_len, len);
}

/* Reads a 2xx answer into the request's result (written on success only). */
static int parse_reply(const struct request *q, const char *body, size_t len, struct llm_usage *u)
{
    if (q->kind == REQ_CHAT)
        return llm_parse_text(body, len, q->answer, q->answer_size, u);
    return llm_parse_answer(body, len, q->np, u);
}

/* What one HTTP exchange gave. */
struct exchange {
    int r;            /* 0: an HTTP answer is in l->body; <0: no answer */
    long status;      /* 0 when none */
    long retry_after; /* seconds, 0 when not given */
};

static int map_curl(CURLcode c, bool too_big)
{
    switch (c) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -ECONNREFUSED;
    case CURLE_WRITE_ERROR:
        return too_big ? -E2BIG : -ENOMEM;
    case CURLE_ABORTED_BY_CALLBACK:
        return -ECANCELED;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

/* Runs the transfer set up on l->curl, watching the stop flag. */
static CURLcode perform(struct llm *l)
{
    CURLcode c = CURLE_OK;
    CURLMsg *msg;
    int running = 1, left;
    bool done = false;

    if (curl_multi_add_handle(l->multi, l->curl) != CURLM_OK)
        return CURLE_OUT_OF_MEMORY;
    while (running) {
        if (curl_multi_perform(l->multi, &running) != CURLM_OK) {
            c = CURLE_RECV_ERROR;
            break;
        }
        while ((msg = curl_multi_info_read(l->multi, &left))) {
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == l->curl) {
                c = msg->data.result;
                done = true;
            }
        }
        if (done || !running)
            break;
        if (stopped(l)) {
            c = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        if (curl_multi_poll(l->multi, NULL, 0, STOP_POLL_MS, NULL) != CURLM_OK) {
            c = CURLE_RECV_ERROR;
            break;
        }
    }
    curl_multi_remove_handle(l->multi, l->curl);
    return c;
}

static struct exchange post(struct llm *l, const struct llm_provider *p, const char *body,
                            size_t len)
{
    struct exchange x = {0};
    struct curl_slist *headers = NULL, *h;
    char *url = NULL, *auth = NULL;
    long timeout = p->timeout_ms > 0 ? p->timeout_ms : LLM_TIMEOUT_DEFAULT_S * 1000;
    CURLcode c;

    if (l->deadline) { /* what is left of the whole call's time */
        int64_t left = l->deadline - now_ms();
        if (left <= 0) {
            x.r = -ETIMEDOUT;
            return x;
        }
        if (left < timeout)
            timeout = (long)left;
    }
    x.r = -ENOMEM;
    if (asprintf(&url, "%s/chat/completions", p->url) < 0) {
        url = NULL;
        goto out;
    }
    if (p->api_key[0] && asprintf(&auth, "Authorization: Bearer %s", p->api_key) < 0) {
        auth = NULL;
        goto out;
    }
    /* "Expect:" turns off curl's 100-continue wait before a large body */
    const char *lines[] = {"Content-Type: application/json", "Accept: application/json",
                           "Expect:", auth};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]) && lines[i]; i++) {
        h = curl_slist_append(headers, lines[i]);
        if (!h)
            goto out;
        headers = h;
    }
    l->body_len = 0;
    l->too_big = false;
    l->retry_after = 0;
    if (l->body)
        l->body[0] = '\0';
    curl_easy_setopt(l->curl, CURLOPT_URL, url);
    curl_easy_setopt(l->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(l->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(l->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(l->curl, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(l->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout < LLM_CONNECT_TIMEOUT_MS ? timeout : LLM_CONNECT_TIMEOUT_MS);
    c = perform(l);
    if (c != CURLE_OK && stopped(l))
        c = CURLE_ABORTED_BY_CALLBACK;
    curl_easy_getinfo(l->curl, CURLINFO_RESPONSE_CODE, &x.status);
    x.retry_after = l->retry_after;
    x.r = map_curl(c, l->too_big);
    /* An error status with a huge body is still that error status. */
    if (x.r == -E2BIG && x.status >= 300)
        x.r = 0;
    if (x.r < 0 && x.r != -E2BIG)
        x.status = 0;
out:
    curl_easy_setopt(l->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(l->curl, CURLOPT_POSTFIELDS, NULL);
    for (h = headers; h; h = h->next)
        explicit_bzero(h->data, strlen(h->data));
    curl_slist_free_all(headers);
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    free(url);
    return x;
}

/* The error object of a non-2xx answer: {"error": {"message", "type",
 * "param", "code"}}. Copies a short code or type (letters, digits, _ . -
 * only) into what, and says whether the answer is about response_format. */
static bool error_detail(const char *body, size_t len, char *what, size_t n)
{
    json_error_t jerr;
    json_t *root, *e, *v;
    bool about_format = false;

    what[0] = '\0';
    if (!body || !text_json_depth_ok(body, len, LLM_JSON_DEPTH))
        return false;
    root = json_loadb(body, len, 0, &jerr);
    e = json_object_get(root, "error");
    if (json_is_object(e)) {
        v = json_object_get(e, "code");
        if (!json_is_string(v))
            v = json_object_get(e, "type");
        if (json_is_string(v)) {
            const char *s = json_string_value(v);
            size_t k = 0;

            for (; s[k] && k + 1 < n && k < 40; k++) {
                if (!isascii((unsigned char)s[k]) ||
                    !(isalnum((unsigned char)s[k]) || strchr("_.-", s[k])))
                    break;
                what[k] = s[k];
            }
            what[s[k] ? 0 : k] = '\0';
        }
        v = json_object_get(e, "param");
        if (json_is_string(v) && strcmp(json_string_value(v), "response_format") == 0)
            about_format = true;
        v = json_object_get(e, "message");
        if (json_is_string(v) && strcasestr(json_string_value(v), "response_format"))
            about_format = true;
    } else if (json_is_string(e) && strcasestr(json_string_value(e), "response_format")) {
        about_format = true; /* {"error": "..."} as some local servers answer */
    }
    json_decref(root);
    return about_format;
}

/* What one provider made of the request. */
struct attempt {
    int r;
    bool answered;    /* an HTTP answer came back */
    bool counts;      /* a failure that counts towards skipping the provider */
    long retry_after; /* from a 429 */
};

/* Asks provider i, once, or twice when it refuses response_format. */
static struct attempt ask(struct llm *l, int i, const struct request *q, struct llm_usage *usage,
                          char *err, size_t errn)
{
    const struct llm_provider *p = &l->p[i];
    struct attempt a = {0};
    struct exchange x;
    char *body = NULL, what[48];
    size_t len = 0;

    for (int round = 0; round < 2; round++) {
        bool with_format = q->kind == REQ_NAMEPLATE && !l->no_format[i];
        struct llm_usage u = {0};

        free(body);
        body = request_body(p, q, with_format, &len);
        if (!body) {
            a.r = -ENOMEM;
            err_add(err, errn, "%s: out of memory", p->name);
            goto out;
        }
        x = post(l, p, body, len);
        a.answered = x.status != 0;
        if (x.r == -ECANCELED) {
            a.r = x.r;
            err_add(err, errn, "%s: cancelled", p->name);
            goto out;
        }
        if (x.r == -ETIMEDOUT || x.r == -ECONNREFUSED || x.r == -EIO || x.r == -ENOMEM) {
            a.r = x.r;
            a.counts = x.r != -ENOMEM;
            err_add(err, errn, "%s: %s", p->name,
                    x.r == -ETIMEDOUT      ? "timed out"
                    : x.r == -ECONNREFUSED ? "could not connect"
                    : x.r == -ENOMEM       ? "out of memory"
                                           : "connection failed");
            goto out;
        }
        if (x.r == -E2BIG) {
            a.r = -E2BIG;
            a.counts = true;
            err_add(err, errn, "%s: answer over %u bytes", p->name, LLM_MAX_RESPONSE);
            goto out;
        }
        if (x.status >= 200 && x.status < 300) {
            a.r = parse_reply(q, l->body, l->body_len, &u);
            usage->prompt_tokens += u.prompt_tokens;
            usage->completion_tokens += u.completion_tokens;
            usage->cost_usd += ((double)u.prompt_tokens * p->usd_per_mtok_in +
                                (double)u.completion_tokens * p->usd_per_mtok_out) /
                               1e6;
            if (a.r == 0) {
                usage->truncated = u.truncated;
            } else {
                /* A chat answer without text is the model's doing (a
                 * refusal, max_tokens spent on reasoning): the provider is
                 * up, and nameplate reads must not be held back for it. */
                a.counts = a.r != -ENOMEM && q->kind != REQ_CHAT;
                err_add(err, errn, "%s: %s", p->name,
                        a.r == -E2BIG    ? "answer too large"
                        : a.r == -ENOMEM ? "out of memory"
                                         : q->bad_answer);
            }
            goto out;
        }
        bool about_format = error_detail(l->body, l->body_len, what, sizeof(what));
        if (x.status == 400 && with_format && about_format && round == 0) {
            l->no_format[i] = true; /* this provider does not take it: ask without */
            continue;
        }
        if (strlen(what) >= 8 && strstr(p->api_key, what))
            what[0] = '\0'; /* never a piece of the key, however unlikely */
        a.r = -EIO;
        a.counts = x.status == 429 || x.status >= 500;
        a.retry_after = x.status == 429 || x.status == 503 ? x.retry_after : 0;
        err_add(err, errn, "%s: HTTP %ld%s%s", p->name, x.status, what[0] ? " " : "", what);
        goto out;
    }
out:
    free(body);
    return a;
}

static char *base64(const void *data, size_t len, size_t *out_len)
{
    size_t n = 4 * ((len + 2) / 3);
    unsigned char *s = malloc(n + 1);
    int k;

    if (!s)
        return NULL;
    k = EVP_EncodeBlock(s, data, (int)len);
    if (k < 0 || (size_t)k != n) {
        free(s);
        return NULL;
    }
    *out_len = n;
    return (char *)s;
}

/* Starts a call: usage and err emptied. */
static void call_begin(struct llm_usage *usage, char *err, size_t errn)
{
    memset(usage, 0, sizeof(*usage));
    if (err && errn)
        err[0] = '\0';
}

/* Providers are asked in order until one gives what was asked for. Any
 * failure moves on to the next provider (a 4xx too: another provider may
 * take the request), except a cancel or running out of memory. usage sums
 * the tokens and cost of every answer, good or not; its provider and model
 * are those of the last provider that answered over HTTP. err gets one
 * "name: what happened" per provider tried or skipped, separated by "; ",
 * and is emptied on success. Returns what the last provider tried gave, or
 * -EAGAIN when every one was skipped. */
static int run_chain(struct llm *l, const struct request *q, struct llm_usage *usage, char *err,
                     size_t errn)
{
    int r = -EAGAIN; /* stays so when every provider is skipped */
    int64_t wait_until;

    l->deadline = l->total_ms > 0 ? now_ms() + l->total_ms : 0;
    /* A slot under LLM_MAX_IN_FLIGHT: waited for within the call's own
     * time (its total timeout, else the longest provider timeout). */
    wait_until = l->deadline;
    if (!wait_until) {
        int longest = 0;

        for (int i = 0; i < l->n; i++)
            if (l->p[i].timeout_ms > longest)
                longest = l->p[i].timeout_ms;
        wait_until = now_ms() + longest;
    }
    r = flight_take(l, wait_until);
    if (r < 0) {
        err_add(err, errn,
                r == -EBUSY ? "no slot: LLM_MAX_IN_FLIGHT requests in flight" : "cancelled");
        return r;
    }
    r = -EAGAIN;
    for (int i = 0; i < l->n; i++) {
        const struct llm_provider *p = &l->p[i];
        int64_t left = skip_remaining(l->key[i], now_ms());
        struct attempt a;

        if (stopped(l)) {
            r = -ECANCELED;
            err_add(err, errn, "cancelled");
            break;
        }
        if (left > 0) {
            err_add(err, errn, "%s: skipped for %lld s more", p->name,
                    (long long)((left + 999) / 1000));
            continue;
        }
        /* Too little time left for a provider to answer: not tried. */
        if (l->deadline && l->deadline - now_ms() < LLM_MIN_TRY_MS) {
            r = -ETIMEDOUT;
            err_add(err, errn, "%s: not tried, out of time", p->name);
            break;
        }
        usage->attempts++;
        a = ask(l, i, q, usage, err, errn);
        r = a.r;
        if (a.answered) {
            snprintf(usage->provider, sizeof(usage->provider), "%s", p->name);
            snprintf(usage->model, sizeof(usage->model), "%s", p->model);
        }
        if (r == 0) {
            skip_ok(l->key[i], now_ms());
            if (err && errn)
                err[0] = '\0';
            break;
        }
        if (a.counts)
            skip_failed(l->key[i], now_ms(), a.retry_after);
        if (r == -ECANCELED || r == -ENOMEM)
            break;
    }
    flight_release();
    return r;
}

int llm_read_nameplate(struct llm *l, const void *image, size_t len, const char *mime,
                       struct nameplate *out, struct llm_usage *usage, char *err, size_t errn)
{
    struct llm_usage dummy;
    struct nameplate np;
    struct request q = {
        .kind = REQ_NAMEPLATE, .bad_answer = "answer is not the nameplate schema", .np = &np};
    int64_t t0 = now_ms();
    char *b64 = NULL;
    int r;

    if (!usage)
        usage = &dummy;
    call_begin(usage, err, errn);
    memset(&np, 0, sizeof(np));
    if (!l || l->n == 0) {
        r = -ENOENT;
        err_set(err, errn, "no LLM provider is configured");
        goto out;
    }
    if (!image || len == 0 || !mime ||
        (strcmp(mime, "image/jpeg") != 0 && strcmp(mime, "image/png") != 0)) {
        r = -EINVAL;
        err_set(err, errn, "not a JPEG or PNG image");
        goto out;
    }
    if (len > LLM_MAX_IMAGE) {
        r = -E2BIG;
        err_set(err, errn, "image too large for the LLM");
        goto out;
    }
    if (stopped(l)) {
        r = -ECANCELED;
        err_set(err, errn, "cancelled");
        goto out;
    }
    b64 = base64(image, len, &q.b64_len);
    if (!b64) {
        r = -ENOMEM;
        err_set(err, errn, "out of memory");
        goto out;
    }
    q.b64 = b64;
    q.mime = mime;
    r = run_chain(l, &q, usage, err, errn);
    if (r == 0)
        *out = np;
out:
    free(b64);
    usage->ms = (long)(now_ms() - t0);
    return r;
}

int llm_chat(struct llm *l, const char *system, const char *user, int max_tokens, char *answer,
             size_t answer_size, struct llm_usage *usage, char *err, size_t errn)
{
    struct llm_usage dummy;
    struct request q = {.kind = REQ_CHAT,
                        .bad_answer = "answer has no text",
                        .system = system,
                        .user = user,
                        .max_tokens = max_tokens,
                        .answer = answer,
                        .answer_size = answer_size};
    int64_t t0 = now_ms();
    size_t sys_len = system ? strlen(system) : 0, user_len = user ? strlen(user) : 0;
    int r;

    if (!usage)
        usage = &dummy;
    call_begin(usage, err, errn);
    if (!l || l->n == 0) {
        r = -ENOENT;
        err_set(err, errn, "no LLM provider is configured");
        goto out;
    }
    if (!answer || answer_size < LLM_MIN_ANSWER || max_tokens < 1 ||
        max_tokens > LLM_MAX_CHAT_TOKENS) {
        r = -EINVAL;
        err_set(err, errn, "bad arguments");
        goto out;
    }
    if (user_len == 0) {
        r = -EINVAL;
        err_set(err, errn, "no question");
        goto out;
    }
    if (sys_len > LLM_MAX_PROMPT || user_len > LLM_MAX_PROMPT - sys_len) {
        r = -E2BIG;
        err_set(err, errn, "prompt too large for the LLM");
        goto out;
    }
    if (!utf8_valid(user, user_len) || (system && !utf8_valid(system, sys_len))) {
        r = -EINVAL;
        err_set(err, errn, "prompt is not UTF-8 text");
        goto out;
    }
    if (stopped(l)) {
        r = -ECANCELED;
        err_set(err, errn, "cancelled");
        goto out;
    }
    r = run_chain(l, &q, usage, err, errn);
out:
    usage->ms = (long)(now_ms() - t0);
    return r;
}

const char *llm_http_version(void)
{
    static char v[96];
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);

    snprintf(v, sizeof(v), "libcurl %s (%s)", info->version,
             info->ssl_version ? info->ssl_version : "no TLS");
    return v;
}
