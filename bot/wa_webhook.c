/* WhatsApp Cloud API webhooks: the X-Hub-Signature-256 check and the
 * parser of {"object":"whatsapp_business_account","entry":[...]} bodies
 * into struct wa_webhook. Pure: bytes in, structs out, so both can be
 * unit-tested and fuzzed. A malformed message or status is skipped and
 * counted; only a body that is not a webhook at all is -EBADMSG. */
#include "wa.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "arena.h"
#include "text.h"

/* Limits on what Meta sends. The HTTP server already caps the body; the
 * rest keeps one odd field from costing more than it should. */
#define WA_BODY_BYTES_MAX (1u << 20) /* a webhook body */
#define WA_DEPTH_MAX 32              /* nesting of objects and arrays (Meta's is ~10) */
#define WA_ID_MAX 256                /* wamid, media id */
#define WA_WAID_MAX 32               /* a wa_id: the digits of a phone number */
#define WA_TOKEN_MAX 64              /* type, status, phone_number_id, mime type */
#define WA_NAME_MAX 256              /* a profile name, in bytes */
#define WA_ERROR_MAX 512             /* an error's title and message, in bytes */
/* An incoming text is kept as sent up to this many bytes (cut on a
 * character boundary past it): handle_message() refuses anything over
 * MSG_MAX_BYTES with a sentence for the user, so it needs to see it. */
#define WA_IN_TEXT_MAX (64u << 10)

/* ---- the signature ---- */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool wa_signature_ok(const char *app_secret, const char *body, size_t len, const char *header)
{
    static const char prefix[] = "sha256=";
    const size_t plen = sizeof(prefix) - 1;
    unsigned char want[32], got[EVP_MAX_MD_SIZE];
    unsigned int got_len = 0;
    size_t secret_len;
    bool ok;

    if (!app_secret || !*app_secret || !header || (!body && len > 0))
        return false;
    if (strncmp(header, prefix, plen) != 0 || strnlen(header, plen + 65) != plen + 64)
        return false;
    for (size_t i = 0; i < sizeof(want); i++) {
        int hi = hex_digit(header[plen + 2 * i]), lo = hex_digit(header[plen + 2 * i + 1]);

        if (hi < 0 || lo < 0)
            return false;
        want[i] = (unsigned char)(hi << 4 | lo);
    }
    secret_len = strlen(app_secret);
    if (secret_len > INT_MAX)
        return false;
    if (!HMAC(EVP_sha256(), app_secret, (int)secret_len, (const unsigned char *)(body ? body : ""),
              len, got, &got_len) ||
        got_len != sizeof(want))
        return false;
    ok = CRYPTO_memcmp(want, got, sizeof(want)) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return ok;
}

/* ---- field checks ---- */

/* A string of 1..max bytes of printable ASCII without spaces: ids, types. */
static bool is_token(const json_t *v, size_t max)
{
    const char *s;
    size_t n;

    if (!json_is_string(v))
        return false;
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* A string without "\u0000" in it: the body is parsed with NUL characters
 * allowed (one odd string must not cost the whole body), and what Rivet
 * reads as text is a C string. */
static bool is_text(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

/* A string of 1..max ASCII digits. */
static bool is_digits(const json_t *v, size_t max)
{
    const char *s;
    size_t n;

    if (!json_is_string(v))
        return false;
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* A timestamp in seconds: Meta sends a string of digits; an integer is
 * taken too. At most 18 digits, so it cannot overflow. */
static bool read_time(const json_t *v, int64_t *ret)
{
    int64_t t = 0;

    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return false;
        *ret = (int64_t)json_integer_value(v);
        return true;
    }
    if (!is_digits(v, 18))
        return false;
    for (const char *s = json_string_value(v); *s; s++)
        t = t * 10 + (*s - '0');
    *ret = t;
    return true;
}

/* An arena copy of a JSON string, cut to at most max bytes on a character
 * boundary (jansson only hands out valid UTF-8). NULL when v is not a
 * string; *oom set when the arena is full. */
static const char *dup_cut(struct arena *a, const json_t *v, size_t max, bool *oom)
{
    const char *s;
    char *p;

    if (!json_is_string(v))
        return NULL;
    s = json_string_value(v);
    p = arena_strndup(a, s, utf8_prefix(s, max));
    if (!p)
        *oom = true;
    return p;
}

/* ---- messages ---- */

/* The profile name of wa_id in value.contacts[], or NULL. */
static const char *contact_name(struct arena *a, const json_t *contacts, const char *wa_id,
                                bool *oom)
{
    size_t i;
    const json_t *c;

    json_array_foreach(contacts, i, c)
    {
        const json_t *id = json_object_get(c, "wa_id");
        const json_t *name = json_object_get(json_object_get(c, "profile"), "name");

        if (!json_is_string(id) || strcmp(json_string_value(id), wa_id) != 0)
            continue;
        if (!is_text(name) || json_string_length(name) == 0)
            return NULL;
        return dup_cut(a, name, WA_NAME_MAX, oom);
    }
    return NULL;
}

static int put_str(json_t *o, const char *key, const char *s)
{
    if (!s)
        return 0;
    return json_object_set_new(o, key, json_string(s)) == 0 ? 0 : -ENOMEM;
}

/* The compact JSON object the inbox stores for a message (arena), read
 * back by wa_message_parse(). Absent fields are left out. */
static const char *message_raw(struct arena *a, const struct wa_message *m)
{
    json_t *o = json_object();
    char *dump = NULL;
    const char *ret = NULL;

    if (!o)
        return NULL;
    if (put_str(o, "id", m->id) < 0 || put_str(o, "from", m->from) < 0 ||
        put_str(o, "name", m->name) < 0 || put_str(o, "phone_number_id", m->phone_number_id) < 0 ||
        json_object_set_new(o, "timestamp", json_integer(m->timestamp)) < 0 ||
        put_str(o, "type", m->type) < 0 || put_str(o, "text", m->text) < 0 ||
        json_object_set_new(o, "pressed", json_boolean(m->pressed)) < 0 ||
        put_str(o, "media_id", m->media_id) < 0 || put_str(o, "mime_type", m->mime_type) < 0 ||
        put_str(o, "context_id", m->context_id) < 0)
        goto out;
    dump = json_dumps(o, JSON_COMPACT);
    if (dump)
        ret = arena_strdup(a, dump);
out:
    free(dump);
    json_decref(o);
    return ret;
}

/* The text a message carries, by type: a text's body, a press's command,
 * a media file's caption. -EBADMSG when its type's object is malformed. */
static int read_content(struct arena *a, const json_t *m, struct wa_message *out, bool *oom)
{
    const char *type = out->type;
    const json_t *o = json_object_get(m, type), *v;

    if (strcmp(type, "text") == 0) {
        v = json_object_get(o, "body");
        if (!is_text(v))
            return -EBADMSG;
        out->text = dup_cut(a, v, WA_IN_TEXT_MAX, oom);
    } else if (strcmp(type, "interactive") == 0) {
        const json_t *kind = json_object_get(o, "type");
        const char *k = json_is_string(kind) ? json_string_value(kind) : "";

        if (strcmp(k, "button_reply") != 0 && strcmp(k, "list_reply") != 0)
            return 0; /* a flow's reply and the like: nothing Rivet runs */
        v = json_object_get(json_object_get(o, k), "id");
        if (!is_text(v) || json_string_length(v) > WA_ID_MAX)
            return -EBADMSG;
        out->text = dup_cut(a, v, WA_ID_MAX, oom);
        out->pressed = true;
    } else if (strcmp(type, "button") == 0) {
        /* A template's quick-reply button: the payload Rivet gave it. */
        v = json_object_get(o, "payload");
        if (!is_text(v) || json_string_length(v) > WA_ID_MAX)
            return -EBADMSG;
        out->text = dup_cut(a, v, WA_ID_MAX, oom);
        out->pressed = true;
    } else if (strcmp(type, "image") == 0 || strcmp(type, "document") == 0) {
        if (!json_is_object(o))
            return -EBADMSG;
        v = json_object_get(o, "id");
        if (is_token(v, WA_ID_MAX))
            out->media_id = dup_cut(a, v, WA_ID_MAX, oom);
        v = json_object_get(o, "mime_type");
        if (json_is_string(v) && json_string_length(v) <= WA_TOKEN_MAX)
            out->mime_type = dup_cut(a, v, WA_TOKEN_MAX, oom);
        v = json_object_get(o, "caption");
        if (v && !is_text(v))
            return -EBADMSG;
        out->text = dup_cut(a, v, WA_IN_TEXT_MAX, oom);
    }
    return 0;
}

/* One of value.messages[]. -EBADMSG when malformed, -ENOMEM. */
static int read_message(struct arena *a, const json_t *m, const char *phone_number_id,
                        const json_t *contacts, struct wa_message *out)
{
    const json_t *id, *from, *type, *ctx;
    bool oom = false;
    int r;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(m) || !phone_number_id)
        return -EBADMSG;
    id = json_object_get(m, "id");
    from = json_object_get(m, "from");
    type = json_object_get(m, "type");
    if (!is_token(id, WA_ID_MAX) || !is_digits(from, WA_WAID_MAX) ||
        !is_token(type, WA_TOKEN_MAX) ||
        !read_time(json_object_get(m, "timestamp"), &out->timestamp))
        return -EBADMSG;
    out->id = dup_cut(a, id, WA_ID_MAX, &oom);
    out->from = dup_cut(a, from, WA_WAID_MAX, &oom);
    out->type = dup_cut(a, type, WA_TOKEN_MAX, &oom);
    out->phone_number_id = phone_number_id;
    if (oom)
        return -ENOMEM;
    out->name = contact_name(a, contacts, out->from, &oom);
    r = read_content(a, m, out, &oom);
    if (r < 0)
        return r;
    ctx = json_object_get(json_object_get(m, "context"), "id");
    if (is_token(ctx, WA_ID_MAX))
        out->context_id = dup_cut(a, ctx, WA_ID_MAX, &oom);
    if (oom)
        return -ENOMEM;
    out->raw = message_raw(a, out);
    return out->raw ? 0 : -ENOMEM;
}

/* ---- statuses ---- */

/* errors[0] of a status or of value.errors: its code, and its title with
 * the message when that says more. */
static int read_error(struct arena *a, const json_t *errors, int *code, const char **text)
{
    const json_t *e = json_array_get(errors, 0), *c, *title, *msg;
    const char *t, *m;
    char *s;

    if (!json_is_object(e))
        return 0;
    c = json_object_get(e, "code");
    if (json_is_integer(c) && json_integer_value(c) >= INT_MIN && json_integer_value(c) <= INT_MAX)
        *code = (int)json_integer_value(c);
    title = json_object_get(e, "title");
    msg = json_object_get(e, "message");
    t = json_is_string(title) && json_string_length(title) > 0 ? json_string_value(title) : NULL;
    m = json_is_string(msg) && json_string_length(msg) > 0 ? json_string_value(msg) : NULL;
    if (t && m && strcmp(t, m) != 0)
        s = arena_printf(a, "%s: %s", t, m);
    else if (t || m)
        s = arena_strdup(a, t ? t : m);
    else
        return 0;
    if (!s)
        return -ENOMEM;
    s[utf8_prefix(s, WA_ERROR_MAX)] = '\0';
    *text = s;
    return 0;
}

/* One of value.statuses[]. -EBADMSG when malformed, -ENOMEM. */
static int read_status(struct arena *a, const json_t *s, struct wa_status *out)
{
    const json_t *id, *status, *recipient, *ts;
    bool oom = false;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(s))
        return -EBADMSG;
    id = json_object_get(s, "id");
    status = json_object_get(s, "status");
    recipient = json_object_get(s, "recipient_id");
    ts = json_object_get(s, "timestamp");
    if (!is_token(id, WA_ID_MAX) || !is_token(status, WA_TOKEN_MAX) ||
        (recipient && !is_token(recipient, WA_TOKEN_MAX)) ||
        (ts && !read_time(ts, &out->timestamp)))
        return -EBADMSG;
    out->id = dup_cut(a, id, WA_ID_MAX, &oom);
    out->status = dup_cut(a, status, WA_TOKEN_MAX, &oom);
    out->recipient = dup_cut(a, recipient, WA_TOKEN_MAX, &oom);
    if (oom)
        return -ENOMEM;
    return read_error(a, json_object_get(s, "errors"), &out->error_code, &out->error);
}

/* ---- the body ---- */

/* The value of a change Rivet reads (field "messages"), or NULL. */
static const json_t *messages_value(const json_t *change)
{
    const json_t *field = json_object_get(change, "field"), *value;

    if (!json_is_string(field) || strcmp(json_string_value(field), "messages") != 0)
        return NULL;
    value = json_object_get(change, "value");
    return json_is_object(value) ? value : NULL;
}

static int read_value(struct arena *a, const json_t *value, struct wa_webhook *out)
{
    const json_t *pnid = json_object_get(json_object_get(value, "metadata"), "phone_number_id");
    const json_t *contacts = json_object_get(value, "contacts");
    const json_t *list, *v;
    const char *phone_number_id = NULL;
    size_t i;
    int r;

    if (is_token(pnid, WA_TOKEN_MAX)) {
        phone_number_id = arena_strdup(a, json_string_value(pnid));
        if (!phone_number_id)
            return -ENOMEM;
    }
    list = json_object_get(value, "messages");
    if (list && !json_is_array(list))
        out->skipped++;
    json_array_foreach(list, i, v)
    {
        r = read_message(a, v, phone_number_id, contacts, &out->messages[out->n_messages]);
        if (r == -ENOMEM)
            return r;
        if (r < 0)
            out->skipped++;
        else
            out->n_messages++;
    }
    list = json_object_get(value, "statuses");
    if (list && !json_is_array(list))
        out->skipped++;
    json_array_foreach(list, i, v)
    {
        r = read_status(a, v, &out->statuses[out->n_statuses]);
        if (r == -ENOMEM)
            return r;
        if (r < 0)
            out->skipped++;
        else
            out->n_statuses++;
    }
    list = json_object_get(value, "errors");
    if (json_is_array(list) && json_array_size(list) > 0) {
        if (out->n_errors == 0) {
            r = read_error(a, list, &out->error_code, &out->error);
            if (r < 0)
                return r;
        }
        out->n_errors += (int)json_array_size(list);
    }
    return 0;
}

int wa_webhook_parse(struct arena *a, const char *body, size_t len, struct wa_webhook *out)
{
    const json_t *object, *entries, *entry, *changes, *change, *value;
    size_t n_messages = 0, n_statuses = 0, i, k;
    json_error_t err;
    json_t *root = NULL;
    int r = -EBADMSG;

    memset(out, 0, sizeof(*out));
    if (!body || len == 0 || len > WA_BODY_BYTES_MAX ||
        !text_json_depth_ok(body, len, WA_DEPTH_MAX))
        return -EBADMSG;
    /* Meta never repeats a key; a body that does is not Meta's. A "\u0000"
     * in a string makes only the message that holds it malformed. */
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!root)
        return json_error_code(&err) == json_error_out_of_memory ? -ENOMEM : -EBADMSG;
    object = json_object_get(root, "object");
    entries = json_object_get(root, "entry");
    if (!json_is_object(root) || !json_is_string(object) ||
        strcmp(json_string_value(object), "whatsapp_business_account") != 0 ||
        !json_is_array(entries))
        goto out;

    /* Count first, so the arrays are allocated once. */
    json_array_foreach(entries, i, entry)
    {
        json_array_foreach(json_object_get(entry, "changes"), k, change)
        {
            value = messages_value(change);
            n_messages += json_array_size(json_object_get(value, "messages"));
            n_statuses += json_array_size(json_object_get(value, "statuses"));
        }
    }
    r = -ENOMEM;
    if (n_messages > 0 && !(out->messages = arena_alloc(a, n_messages * sizeof(*out->messages))))
        goto out;
    if (n_statuses > 0 && !(out->statuses = arena_alloc(a, n_statuses * sizeof(*out->statuses))))
        goto out;

    json_array_foreach(entries, i, entry)
    {
        changes = json_object_get(entry, "changes");
        if (!json_is_object(entry) || !json_is_array(changes)) {
            out->skipped++;
            continue;
        }
        json_array_foreach(changes, k, change)
        {
            value = messages_value(change);
            if (!value) {
                out->skipped++; /* another field, or not a change at all */
                continue;
            }
            r = read_value(a, value, out);
            if (r < 0)
                goto out;
        }
    }
    r = 0;
out:
    json_decref(root);
    if (r < 0)
        memset(out, 0, sizeof(*out));
    return r;
}

int wa_message_parse(struct arena *a, const char *raw, struct wa_message *out)
{
    const json_t *id, *from, *pnid, *type, *name, *text, *pressed, *media, *mime, *ctx;
    json_error_t err;
    json_t *o;
    bool oom = false;
    int r = -EBADMSG;

    memset(out, 0, sizeof(*out));
    if (!raw)
        return -EBADMSG;
    o = json_loads(raw, JSON_REJECT_DUPLICATES, &err);
    if (!o)
        return json_error_code(&err) == json_error_out_of_memory ? -ENOMEM : -EBADMSG;
    id = json_object_get(o, "id");
    from = json_object_get(o, "from");
    pnid = json_object_get(o, "phone_number_id");
    type = json_object_get(o, "type");
    name = json_object_get(o, "name");
    text = json_object_get(o, "text");
    pressed = json_object_get(o, "pressed");
    media = json_object_get(o, "media_id");
    mime = json_object_get(o, "mime_type");
    ctx = json_object_get(o, "context_id");
    if (!json_is_object(o) || !is_token(id, WA_ID_MAX) || !is_digits(from, WA_WAID_MAX) ||
        !is_token(pnid, WA_TOKEN_MAX) || !is_token(type, WA_TOKEN_MAX) ||
        !read_time(json_object_get(o, "timestamp"), &out->timestamp) ||
        (name && (!json_is_string(name) || json_string_length(name) > WA_NAME_MAX)) ||
        (text && (!json_is_string(text) || json_string_length(text) > WA_IN_TEXT_MAX)) ||
        (pressed && !json_is_boolean(pressed)) || (media && !is_token(media, WA_ID_MAX)) ||
        (mime && (!json_is_string(mime) || json_string_length(mime) > WA_TOKEN_MAX)) ||
        (ctx && !is_token(ctx, WA_ID_MAX)))
        goto out;
    out->id = dup_cut(a, id, WA_ID_MAX, &oom);
    out->from = dup_cut(a, from, WA_WAID_MAX, &oom);
    out->phone_number_id = dup_cut(a, pnid, WA_TOKEN_MAX, &oom);
    out->type = dup_cut(a, type, WA_TOKEN_MAX, &oom);
    out->name = dup_cut(a, name, WA_NAME_MAX, &oom);
    out->text = dup_cut(a, text, WA_IN_TEXT_MAX, &oom);
    out->pressed = json_is_true(pressed);
    out->media_id = dup_cut(a, media, WA_ID_MAX, &oom);
    out->mime_type = dup_cut(a, mime, WA_TOKEN_MAX, &oom);
    out->context_id = dup_cut(a, ctx, WA_ID_MAX, &oom);
    out->raw = arena_strdup(a, raw);
    r = oom || !out->raw ? -ENOMEM : 0;
out:
    json_decref(o);
    if (r < 0)
        memset(out, 0, sizeof(*out));
    return r;
}
