/* Reply text -> Telegram message: HTML escaping, splitting at Telegram's
 * length limit, and inline keyboards. */
#include "tg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "handlers.h"
#include "queue.h"

char *tg_html_escape(struct arena *a, const char *text)
{
    struct buf b;
    char *s;
    int r = 0;

    buf_init(&b, strlen(text) * 5 + 1);
    for (const char *p = text; *p && r == 0; p++) {
        switch (*p) {
        case '<':
            r = buf_adds(&b, "&lt;");
            break;
        case '>':
            r = buf_adds(&b, "&gt;");
            break;
        case '&':
            r = buf_adds(&b, "&amp;");
            break;
        default:
            r = buf_add(&b, p, 1);
        }
    }
    s = r == 0 ? arena_strdup(a, buf_str(&b)) : NULL;
    buf_free(&b);
    return s;
}

/* UTF-16 code units of the UTF-8 character starting with byte c. */
static size_t units(unsigned char c)
{
    if ((c & 0xc0) == 0x80)
        return 0; /* continuation byte */
    return c >= 0xf0 ? 2 : 1;
}

int tg_split(struct arena *a, const char *text, size_t max, const char ***parts)
{
    size_t len = strlen(text), cap = 4, n = 0, start = 0;
    const char **v = arena_alloc(a, sizeof(*v) * cap);

    if (!v)
        return -ENOMEM;
    while (start < len || n == 0) {
        size_t i = start, used = 0, cut = 0, last_nl = 0;

        /* Walk as far as max units allows, remembering the last newline. */
        while (i < len) {
            size_t u = units((unsigned char)text[i]);
            if (used + u > max)
                break;
            used += u;
            if (text[i] == '\n')
                last_nl = i;
            i++;
        }
        while (i < len && ((unsigned char)text[i] & 0xc0) == 0x80)
            i--; /* never end inside a character */
        if (i >= len)
            cut = len;
        else if (last_nl > start)
            cut = last_nl;
        else
            cut = i > start ? i : start + 1;
        if (n == cap) {
            const char **bigger = arena_alloc(a, sizeof(*v) * cap * 2);
            if (!bigger)
                return -ENOMEM;
            memcpy(bigger, v, sizeof(*v) * cap);
            v = bigger;
            cap *= 2;
        }
        v[n] = arena_strndup(a, text + start, cut - start);
        if (!v[n])
            return -ENOMEM;
        n++;
        start = cut;
        if (start < len && text[start] == '\n')
            start++; /* the newline the piece ended at */
        if (len == 0)
            break;
    }
    *parts = v;
    return (int)n;
}

json_t *tg_keyboard(const struct reply *rep)
{
    json_t *rows, *row = NULL, *markup;
    int current = -1;

    if (rep->n_buttons == 0)
        return NULL;
    rows = json_array();
    for (int i = 0; i < rep->n_buttons; i++) {
        const struct button *b = &rep->buttons[i];

        if (strlen(b->data) > BUTTON_DATA_MAX)
            continue;
        if (!row || b->row != current) {
            row = json_array();
            json_array_append_new(rows, row);
            current = b->row;
        }
        json_array_append_new(row,
                              json_pack("{s:s, s:s}", "text", b->text, "callback_data", b->data));
    }
    markup = json_pack("{s:o}", "inline_keyboard", rows);
    return markup;
}

int tg_queue_reply(struct db *db, struct arena *a, const char *chat, const struct reply *rep,
                   int64_t edit_id, int64_t inbox_id, int64_t *outbox_id)
{
    const char **parts;
    int n = tg_split(a, rep->text, 4096, &parts), r = 0;

    if (n < 0)
        return n;
    for (int i = 0; i < n && r == 0; i++) {
        const char *html = tg_html_escape(a, parts[i]);
        json_t *p, *kb = i == n - 1 ? tg_keyboard(rep) : NULL;
        char *dump;
        bool edit = i == 0 && (edit_id > 0 || rep->edit_outbox > 0);

        if (!html) {
            json_decref(kb);
            return -ENOMEM;
        }
        p = json_pack("{s:s, s:s, s:s, s:s}", "chat_id", chat, "text", html, "parse_mode", "HTML",
                      "rivet_plain", parts[i]);
        if (!p) {
            json_decref(kb);
            return -ENOMEM;
        }
        if (edit && edit_id > 0)
            json_object_set_new(p, "message_id", json_integer(edit_id));
        else if (edit) /* the sender looks the message up when it gets there */
            json_object_set_new(p, "rivet_edit_outbox", json_integer(rep->edit_outbox));
        if (kb)
            json_object_set_new(p, "reply_markup", kb);
        dump = json_dumps(p, JSON_COMPACT);
        json_decref(p);
        if (!dump)
            return -ENOMEM;
        r = db_outbox_add_id(db, "telegram", chat, edit ? "editMessageText" : "sendMessage", dump,
                             inbox_id, rep->context, outbox_id);
        free(dump);
    }
    return r;
}
