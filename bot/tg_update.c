/* Telegram Update objects -> struct tg_update. Pure: JSON in, struct out,
 * so it can be unit-tested and fuzzed. Missing optional fields are fine;
 * a missing or mistyped field Rivet relies on makes the update -EBADMSG. */
#include "tg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arena.h"

static const char *str(struct arena *a, const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? arena_strndup(a, json_string_value(v), json_string_length(v)) : NULL;
}

static bool int_of(const json_t *o, const char *key, int64_t *ret)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_integer(v))
        return false;
    *ret = (int64_t)json_integer_value(v);
    return true;
}

int tg_update_id(const json_t *u, int64_t *ret)
{
    if (!json_is_object(u) || !int_of(u, "update_id", ret) || *ret < 0 || *ret >= TG_MAX_UPDATE_ID)
        return -EBADMSG;
    return 0;
}

/* The message-like object of an update and its kind. */
static const json_t *message_of(const json_t *u, enum tg_kind *kind)
{
    static const struct {
        const char *key;
        enum tg_kind kind;
    } kinds[] = {
        {"message", TG_MESSAGE},           {"edited_message", TG_EDITED},
        {"channel_post", TG_CHANNEL_POST}, {"edited_channel_post", TG_CHANNEL_POST},
        {"callback_query", TG_CALLBACK},   {"my_chat_member", TG_MEMBER},
    };

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        const json_t *m = json_object_get(u, kinds[i].key);
        if (json_is_object(m)) {
            *kind = kinds[i].kind;
            return m;
        }
    }
    *kind = TG_OTHER;
    return NULL;
}

void tg_update_chat(const json_t *u, char *buf, size_t n)
{
    enum tg_kind kind;
    const json_t *m = message_of(u, &kind), *chat;
    int64_t id;

    buf[0] = '\0';
    if (!m)
        return;
    if (kind == TG_CALLBACK)
        m = json_object_get(m, "message");
    chat = json_is_object(m) ? json_object_get(m, "chat") : NULL;
    if (json_is_object(chat) && int_of(chat, "id", &id))
        snprintf(buf, n, "%lld", (long long)id);
}

static int read_user(struct arena *a, const json_t *from, struct tg_update *out)
{
    const char *first, *last;

    if (!json_is_object(from) || !int_of(from, "id", &out->from_id))
        return -EBADMSG;
    out->from_bot = json_is_true(json_object_get(from, "is_bot"));
    first = str(a, from, "first_name");
    last = str(a, from, "last_name");
    if (first && last)
        out->from_name = arena_printf(a, "%s %s", first, last);
    else
        out->from_name = first ? first : last ? last : str(a, from, "username");
    return 0;
}

static int read_chat(struct arena *a, const json_t *chat, struct tg_update *out)
{
    if (!json_is_object(chat) || !int_of(chat, "id", &out->chat_id))
        return -EBADMSG;
    out->chat_type = str(a, chat, "type");
    if (!out->chat_type)
        return -EBADMSG;
    return 0;
}

/* The largest size of a photo that Telegram lets a bot download. */
static void read_photo(struct arena *a, const json_t *sizes, struct tg_update *out)
{
    long long best = -1;
    size_t i;
    const json_t *ps;

    json_array_foreach(sizes, i, ps)
    {
        const json_t *id = json_object_get(ps, "file_id"), *fs = json_object_get(ps, "file_size");
        const json_t *w = json_object_get(ps, "width"), *h = json_object_get(ps, "height");
        long long area, size = json_is_integer(fs) ? json_integer_value(fs) : 0;

        if (!json_is_string(id) || !json_is_integer(w) || !json_is_integer(h))
            continue;
        if (size > (long long)TG_MAX_FILE && !out->file_id)
            out->file_too_big = true;
        if (size < 0 || size > (long long)TG_MAX_FILE || json_integer_value(w) < 0 ||
            json_integer_value(h) < 0 || json_integer_value(w) > 1000000 ||
            json_integer_value(h) > 1000000)
            continue;
        area = json_integer_value(w) * json_integer_value(h);
        if (area > best) {
            best = area;
            out->file_id = arena_strdup(a, json_string_value(id));
            out->file_size = size;
            out->file_too_big = false;
        }
    }
}

static void read_document(struct arena *a, const json_t *doc, struct tg_update *out)
{
    const json_t *fs = json_object_get(doc, "file_size");

    out->file_id = str(a, doc, "file_id");
    out->mime_type = str(a, doc, "mime_type");
    out->file_size = json_is_integer(fs) ? json_integer_value(fs) : 0;
    out->file_too_big = out->file_size > (int64_t)TG_MAX_FILE;
}

int tg_update_parse(struct arena *a, const json_t *u, struct tg_update *out)
{
    static const char *const media[] = {"photo",   "document",   "sticker",   "voice",    "audio",
                                        "video",   "video_note", "animation", "location", "venue",
                                        "contact", "poll",       "dice"};
    const json_t *m, *v;
    int r;

    memset(out, 0, sizeof(*out));
    r = tg_update_id(u, &out->update_id);
    if (r < 0)
        return r;
    m = message_of(u, &out->kind);
    if (!m)
        return 0; /* a kind Rivet does not handle: nothing more to read */

    if (out->kind == TG_CALLBACK) {
        out->callback_id = str(a, m, "id");
        out->callback_data = str(a, m, "data");
        if (!out->callback_id)
            return -EBADMSG;
        r = read_user(a, json_object_get(m, "from"), out);
        if (r < 0)
            return r;
        v = json_object_get(m, "message");
        /* Without its message (too old) a press has no chat to answer in. */
        if (json_is_object(v)) {
            int_of(v, "message_id", &out->message_id);
            r = read_chat(a, json_object_get(v, "chat"), out);
            if (r < 0)
                return r;
        }
        return 0;
    }

    r = read_chat(a, json_object_get(m, "chat"), out);
    if (r < 0)
        return r;
    if (out->kind == TG_MEMBER) {
        v = json_object_get(m, "new_chat_member");
        out->member_status = json_is_object(v) ? str(a, v, "status") : NULL;
        return read_user(a, json_object_get(m, "from"), out);
    }
    int_of(m, "message_id", &out->message_id);
    if (out->kind == TG_CHANNEL_POST)
        return 0;
    v = json_object_get(m, "reply_to_message");
    if (json_is_object(v))
        int_of(v, "message_id", &out->reply_to);
    /* Messages in groups on behalf of a channel or anonymous admins may
     * have no "from": they are not from a person Rivet knows. */
    if (json_object_get(m, "from")) {
        r = read_user(a, json_object_get(m, "from"), out);
        if (r < 0)
            return r;
    }
    v = json_object_get(m, "text");
    if (!v)
        v = json_object_get(m, "caption");
    if (v && !json_is_string(v))
        return -EBADMSG;
    if (v) {
        out->text_len = json_string_length(v);
        out->text = arena_strndup(a, json_string_value(v), out->text_len);
    }
    for (size_t i = 0; i < sizeof(media) / sizeof(media[0]); i++) {
        if (json_object_get(m, media[i])) {
            out->media = media[i];
            break;
        }
    }
    if (out->media && strcmp(out->media, "photo") == 0)
        read_photo(a, json_object_get(m, "photo"), out);
    else if (out->media && strcmp(out->media, "document") == 0)
        read_document(a, json_object_get(m, "document"), out);
    return 0;
}
