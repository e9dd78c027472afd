/* Telegram updates: what getUpdates pages and the webhook bring, parsed as
 * bot/telegram.c does (json_loadb with NULs allowed; a page's "result" is
 * an array of updates, a webhook body one update), then tg_update_id,
 * tg_update_chat and tg_update_parse on each, the inbox's round trip
 * (json_dumps, json_loads, parse again: the same update), and the text
 * found escaped and split as a reply would be. */
#include <jansson.h>
#include <stdbool.h>

#include "arena.h"
#include "fuzz.h"
#include "handlers.h"
#include "text.h"
#include "tg.h"

/* UTF-16 units of valid UTF-8 s[0..n), Telegram's measure. */
static size_t utf16_units(const char *s, size_t n)
{
    size_t u = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xc0) != 0x80)
            u += c >= 0xf0 ? 2 : 1;
    }
    return u;
}

/* tg_split's promise: pieces of at most max units (when every character
 * fits), which put back together, with the newline each piece may have
 * ended at, give the text. */
static void split(struct arena *a, const char *text, size_t max)
{
    const char **parts = NULL;
    size_t len = strlen(text), pos = 0;
    bool valid = utf8_valid(text, len);
    int n = tg_split(a, text, max, &parts);

    if (n < 0)
        return;
    FUZZ_CHECK(n >= 1);
    for (int i = 0; i < n; i++) {
        size_t pl = strlen(parts[i]);

        FUZZ_CHECK(pos + pl <= len);
        FUZZ_CHECK(memcmp(text + pos, parts[i], pl) == 0);
        if (valid && max >= 2)
            FUZZ_CHECK(utf16_units(parts[i], pl) <= max);
        pos += pl;
        if (pos < len && text[pos] == '\n')
            pos++;
    }
    FUZZ_CHECK(pos == len);
}

static void text_work(struct arena *a, const char *text, size_t max)
{
    char *html;

    if (!text)
        return;
    html = tg_html_escape(a, text);
    if (html) {
        FUZZ_CHECK(strlen(html) >= strlen(text));
        FUZZ_CHECK(!strchr(html, '<') && !strchr(html, '>'));
    }
    split(a, text, 4096);
    split(a, text, max);
    if (html)
        split(a, html, max);
}

static void one_update(struct arena *a, const json_t *u, size_t max)
{
    struct tg_update up, again;
    char chat[24], *dump;
    json_t *back;
    int64_t id = -1;
    int r;

    r = tg_update_id(u, &id);
    FUZZ_CHECK(r < 0 || (id >= 0 && id < TG_MAX_UPDATE_ID));
    tg_update_chat(u, chat, sizeof(chat));
    FUZZ_CHECK(strlen(chat) < sizeof(chat));
    r = tg_update_parse(a, u, &up);
    if (r < 0)
        return;
    FUZZ_CHECK(up.update_id == id);
    fuzz_touch(up.chat_type);
    fuzz_touch(up.from_name);
    fuzz_touch(up.media);
    fuzz_touch(up.file_id);
    fuzz_touch(up.mime_type);
    fuzz_touch(up.callback_id);
    fuzz_touch(up.member_status);
    if (up.text) {
        /* text_len counts NULs inside; the arena copy holds all of it. */
        FUZZ_CHECK(strlen(up.text) <= up.text_len);
        if (up.text_len)
            FUZZ_CHECK(up.text[up.text_len] == '\0');
    }
    FUZZ_CHECK(!up.file_too_big || !up.file_id || up.media);
    text_work(a, up.text, max);
    if (up.callback_data) {
        /* bot/telegram.c: data starting with the edit mark pages in place. */
        const char *cmd = up.callback_data;
        if (cmd[0] == REPLY_EDIT_MARK)
            cmd++;
        text_work(a, cmd, max);
    }

    /* The inbox stores json_dumps(u) and the worker parses that. */
    dump = json_dumps(u, JSON_COMPACT);
    if (!dump)
        return;
    back = json_loads(dump, JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(back);
    FUZZ_CHECK(tg_update_parse(a, back, &again) == 0);
    FUZZ_CHECK(again.update_id == up.update_id && again.kind == up.kind &&
               again.chat_id == up.chat_id && again.from_id == up.from_id &&
               again.text_len == up.text_len);
    json_decref(back);
    free(dump);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena *a = NULL;
    json_t *root;
    size_t max = size ? 1 + data[size - 1] % 64 : 16;

    root = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
    if (!root)
        return 0;
    if (arena_new(&a) < 0) {
        json_decref(root);
        return 0;
    }
    if (json_is_array(root)) {
        size_t i;
        json_t *u;

        json_array_foreach(root, i, u) one_update(a, u, max);
    } else {
        /* A getUpdates answer: {"ok": true, "result": [...]}. */
        const json_t *result = json_object_get(root, "result");

        if (json_is_array(result)) {
            size_t i;
            json_t *u;

            json_array_foreach(result, i, u) one_update(a, u, max);
        } else {
            one_update(a, root, max);
        }
    }
    arena_free(a);
    json_decref(root);
    return 0;
}
