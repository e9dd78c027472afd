/* Reply -> WhatsApp Cloud API message bodies: WhatsApp's text style,
 * splitting at its length limit, reply buttons and list messages, and the
 * alarm template that stands in for a reply outside the 24-hour window.
 * Everything is counted in code points, WhatsApp's measure. */
#include "wa.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "buf.h"
#include "handlers.h"
#include "queue.h"
#include "text.h"

#define WA_LIST_BUTTON "Choose"    /* the button that opens a list (<= 20 characters) */
#define WA_SECTION_TITLE "Options" /* its one section (<= 24 characters) */
#define WA_ROW_DESC_MAX 72         /* characters of a row's description */
#define WA_PROMPT "Choose:"        /* the body of buttons that follow a long text */
#define WA_PARAM_MAX 1024          /* characters of a template's body parameter */
#define WA_PAYLOAD_MAX 128         /* bytes of a quick-reply payload */
#define WA_ALARM_PAYLOAD "/alerts" /* a template button without a reply button behind it */
#define WA_ALARM_TEXT "Alarm"      /* a template parameter with nothing else to say */

static bool is_lead(unsigned char c)
{
    return (c & 0xc0) != 0x80;
}

/* Code points in s[0..n). */
static size_t chars_n(const char *s, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += is_lead((unsigned char)s[i]);
    return k;
}

/* s when it is valid UTF-8; else a copy (arena) with every byte that does
 * not start a well-formed character replaced by U+FFFD. NULL when out of
 * memory. Handlers should never produce invalid text, but JSON cannot
 * carry it. */
static const char *utf8_clean(struct arena *a, const char *s)
{
    size_t n = strlen(s), o = 0;
    char *out;

    if (utf8_valid(s, n))
        return s;
    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    out = arena_alloc(a, n * 3 + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;

        if (len > 0 && len <= n - i && utf8_valid(s + i, len)) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

int wa_split(struct arena *a, const char *text, size_t max, const char ***parts)
{
    size_t len = strlen(text), cap = 4, n = 0, start = 0;
    const char **v = arena_alloc(a, sizeof(*v) * cap);

    if (!v)
        return -ENOMEM;
    if (max == 0)
        max = 1;
    while (start < len) {
        size_t i = start, used = 0, cut, last_nl = start;
        bool blank;

        /* Walk as far as max characters allow, remembering the last
         * newline; i stops on the first byte of a character. */
        while (i < len) {
            if (is_lead((unsigned char)text[i])) {
                if (used == max)
                    break;
                used++;
            }
            if (text[i] == '\n')
                last_nl = i;
            i++;
        }
        if (i >= len || text[i] == '\n')
            cut = i; /* the rest fits, or its line ends right there */
        else if (last_nl > start)
            cut = last_nl;
        else
            cut = i; /* one line longer than max: cut between characters */
        blank = true;
        for (size_t k = start; k < cut && blank; k++)
            blank = strchr(" \t\r\n", text[k]) != NULL;
        if (n == cap) {
            const char **bigger = arena_alloc(a, sizeof(*v) * cap * 2);
            if (!bigger)
                return -ENOMEM;
            memcpy(bigger, v, sizeof(*v) * cap);
            v = bigger;
            cap *= 2;
        }
        if (!blank) { /* WhatsApp would refuse a message of nothing */
            v[n] = arena_strndup(a, text + start, cut - start);
            if (!v[n])
                return -ENOMEM;
            n++;
        }
        start = cut;
        if (start < len && text[start] == '\n')
            start++; /* the newline the piece ended at */
    }
    *parts = v;
    return (int)n;
}

/* The text in WhatsApp's style: the first line in *bold* when more lines
 * follow and it holds none of WhatsApp's markup characters (the asterisks
 * go around it without its surrounding blanks, or WhatsApp would not show
 * them as bold). NULL when out of memory. */
static const char *styled(struct arena *a, const char *text)
{
    const char *nl = strchr(text, '\n');
    size_t n, lead = 0, end;

    if (!nl || strspn(nl, " \t\r\n") == strlen(nl))
        return text; /* a single line */
    n = (size_t)(nl - text);
    for (size_t i = 0; i < n; i++)
        if (strchr("*_~`", text[i]))
            return text;
    while (lead < n && (text[lead] == ' ' || text[lead] == '\t'))
        lead++;
    end = n;
    while (end > lead && strchr(" \t\r", text[end - 1]))
        end--;
    if (end == lead || chars_n(text, n) + 2 > WA_TEXT_MAX)
        return text; /* an empty first line; or one the split would cut */
    return arena_printf(a, "%.*s*%.*s*%s", (int)lead, text, (int)(end - lead), text + lead,
                        text + end);
}

/* A button as WhatsApp shows it. */
struct item {
    const char *data;  /* the command, without REPLY_EDIT_MARK */
    const char *title; /* the button's text */
    const char *shown; /* title cut to fit, distinct from the others */
    bool cut;          /* shown is not the whole title */
};

/* The reply's usable buttons into *ret (arena): data over BUTTON_DATA_MAX
 * (as tg_keyboard) or empty is left out, and so is a repeat of an earlier
 * button's data (WhatsApp wants distinct ids; both would run the same).
 * Returns the count or -ENOMEM. */
static int collect(struct arena *a, const struct reply *rep, struct item **ret)
{
    struct item *it;
    int n = 0;

    *ret = NULL;
    if (rep->n_buttons <= 0 || !rep->buttons)
        return 0;
    it = arena_alloc(a, sizeof(*it) * (size_t)rep->n_buttons);
    if (!it)
        return -ENOMEM;
    for (int i = 0; i < rep->n_buttons; i++) {
        const struct button *b = &rep->buttons[i];
        const char *d;
        bool seen = false;

        if (!b->data || strlen(b->data) > BUTTON_DATA_MAX || !utf8_valid(b->data, strlen(b->data)))
            continue;
        d = b->data[0] == REPLY_EDIT_MARK ? b->data + 1 : b->data;
        if (!*d)
            continue;
        for (int k = 0; k < n && !seen; k++)
            seen = strcmp(it[k].data, d) == 0;
        if (seen)
            continue;
        it[n].data = d;
        it[n].title = b->text && *b->text ? utf8_clean(a, b->text) : d;
        if (!it[n].title)
            return -ENOMEM;
        n++;
    }
    *ret = it;
    return n;
}

/* s cut to at most max characters (arena): when too long, its first
 * max - 1 characters without trailing blanks and "…". */
static const char *cut_title(struct arena *a, const char *s, size_t max)
{
    size_t chars = 0, i = 0;

    for (; s[i]; i++) {
        if (is_lead((unsigned char)s[i]) && chars++ == max)
            break;
    }
    if (!s[i])
        return s;
    chars = 0;
    for (i = 0; s[i]; i++) {
        if (is_lead((unsigned char)s[i]) && chars++ == max - 1)
            break;
    }
    while (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'))
        i--;
    return arena_printf(a, "%.*s…", (int)i, s);
}

static bool title_taken(const struct item *it, int n, const char *t)
{
    for (int k = 0; k < n; k++)
        if (strcasecmp(it[k].shown, t) == 0)
            return true;
    return false;
}

/* Titles cut to max (>= 2) characters with "…", each distinct (ignoring ASCII
 * case, as WhatsApp refuses look-alike titles) from the ones before it: a
 * repeat ends in " 2", " 3"... instead. 0 or -ENOMEM. */
static int fit_titles(struct arena *a, struct item *it, int n, size_t max)
{
    for (int i = 0; i < n; i++) {
        const char *t = cut_title(a, it[i].title, max);

        if (!t)
            return -ENOMEM;
        it[i].cut = strcmp(t, it[i].title) != 0;
        /* At most i titles to avoid, so this ends by k = i + 2. */
        for (int k = 2; title_taken(it, i, t); k++) {
            char suffix[16];
            const char *base;

            snprintf(suffix, sizeof(suffix), " %d", k);
            base = cut_title(a, it[i].title, max - strlen(suffix));
            t = base ? arena_printf(a, "%s%s", base, suffix) : NULL;
            if (!t)
                return -ENOMEM;
        }
        it[i].shown = t;
    }
    return 0;
}

/* The text with the buttons a list cannot hold written out as commands
 * to type. NULL when out of memory. */
static const char *with_rest(struct arena *a, const char *text, const struct item *rest, int n)
{
    const char *s = arena_printf(a, "%s%sOr type:", text, *text ? "\n\n" : "");

    for (int i = 0; i < n && s; i++)
        s = arena_printf(a, "%s\n%s: %s", s, rest[i].title, rest[i].data);
    return s;
}

static json_t *new_body(const char *to, const char *type)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "messaging_product", "whatsapp", "recipient_type",
                     "individual", "to", to, "type", type);
}

static json_t *text_body(const char *to, const char *text)
{
    json_t *b = new_body(to, "text");

    if (b && json_object_set_new(b, "text",
                                 json_pack("{s:s, s:b}", "body", text, "preview_url", 0)) < 0) {
        json_decref(b);
        return NULL;
    }
    return b;
}

/* Reply buttons (list false) or a list message with text as its body. */
static json_t *interactive_body(struct arena *a, const char *to, const char *text,
                                const struct item *it, int n, bool list)
{
    json_t *b = new_body(to, "interactive"), *arr = json_array(), *action, *inter;

    if (!b || !arr)
        goto fail;
    for (int i = 0; i < n; i++) {
        json_t *e;

        if (!list)
            e = json_pack("{s:s, s:{s:s, s:s}}", "type", "reply", "reply", "id", it[i].data,
                          "title", it[i].shown);
        else if (it[i].cut) /* the whole title, as far as a description goes */
            e = json_pack("{s:s, s:s, s:s}", "id", it[i].data, "title", it[i].shown, "description",
                          cut_title(a, it[i].title, WA_ROW_DESC_MAX));
        else
            e = json_pack("{s:s, s:s}", "id", it[i].data, "title", it[i].shown);
        if (json_array_append_new(arr, e) < 0)
            goto fail;
    }
    if (list)
        action = json_pack("{s:s, s:[{s:s, s:o}]}", "button", WA_LIST_BUTTON, "sections", "title",
                           WA_SECTION_TITLE, "rows", arr);
    else
        action = json_pack("{s:o}", "buttons", arr);
    arr = NULL; /* stolen by json_pack, even when it failed */
    inter = json_pack("{s:s, s:{s:s}, s:o}", "type", list ? "list" : "button", "body", "text", text,
                      "action", action);
    if (json_object_set_new(b, "interactive", inter) < 0)
        goto fail;
    return b;
fail:
    json_decref(arr);
    json_decref(b);
    return NULL;
}

/* The reply's lines that are not blank, joined with " · ": what the alarm
 * template says in its one parameter (wa_template_body() cuts it to
 * WhatsApp's length), so that someone outside the window still learns the
 * machine and what crossed which threshold, not only the severity. */
static const char *summary(struct arena *a, const char *text)
{
    struct buf b;
    const char *p = text, *out;
    int r = 0;

    buf_init(&b, strlen(text) * 2 + 1);
    while (*p && r == 0) {
        size_t n = strcspn(p, "\n"), lead = strspn(p, " \t\r"), end = n;

        while (end > lead && strchr(" \t\r", p[end - 1]))
            end--;
        if (end > lead)
            r = buf_adds(&b, b.len ? " · " : "");
        if (end > lead && r == 0)
            r = buf_add(&b, p + lead, end - lead);
        p += n + (p[n] == '\n');
    }
    out = r == 0 ? arena_strdup(a, buf_str(&b)) : NULL;
    buf_free(&b);
    return out;
}

/* "rivet_alarm": its summary and the data of its first two buttons. */
static json_t *alarm_meta(struct arena *a, const char *text, const struct item *it, int n)
{
    const char *line = summary(a, text);

    if (!line)
        return NULL;
    return json_pack("{s:s, s:[s, s]}", "text", line, "payloads",
                     n > 0 ? it[0].data : WA_ALARM_PAYLOAD, n > 1 ? it[1].data : WA_ALARM_PAYLOAD);
}

int wa_reply_bodies(struct arena *a, const char *to, const struct reply *rep, json_t **bodies)
{
    const char *plain, *text, **parts;
    struct item *items;
    json_t *arr = NULL, *carrier = NULL, *b;
    int n_items, n_shown, n_parts, r = -ENOMEM;
    bool list;

    *bodies = NULL;
    plain = utf8_clean(a, rep->text ? rep->text : "");
    if (!plain)
        return -ENOMEM;
    n_items = collect(a, rep, &items);
    if (n_items < 0)
        return n_items;
    n_shown = n_items < WA_LIST_ROWS_MAX ? n_items : WA_LIST_ROWS_MAX;
    list = n_items > WA_BUTTONS_MAX;
    for (int i = 0; i < n_shown && !list; i++)
        list = utf8_chars(items[i].title) > WA_BUTTON_TITLE_MAX;
    if (fit_titles(a, items, n_shown, list ? WA_ROW_TITLE_MAX : WA_BUTTON_TITLE_MAX) < 0)
        return -ENOMEM;

    text = styled(a, plain);
    if (text && n_items > n_shown)
        text = with_rest(a, text, items + n_shown, n_items - n_shown);
    if (!text)
        return -ENOMEM;
    n_parts = wa_split(a, text, WA_TEXT_MAX, &parts);
    if (n_parts < 0)
        return n_parts;

    arr = json_array();
    if (!arr)
        goto out;
    for (int i = 0; i < n_parts; i++) {
        /* The buttons go on the last piece when it fits an interactive
         * message's body; else they follow it under a short prompt. */
        if (i == n_parts - 1 && n_shown > 0 && utf8_chars(parts[i]) <= WA_BODY_MAX)
            b = carrier = interactive_body(a, to, parts[i], items, n_shown, list);
        else
            b = text_body(to, parts[i]);
        if (json_array_append_new(arr, b) < 0)
            goto out;
    }
    if (n_shown > 0 && !carrier) {
        carrier = interactive_body(a, to, WA_PROMPT, items, n_shown, list);
        if (json_array_append_new(arr, carrier) < 0)
            goto out;
    }
    /* An alarm may have to go as a template (outside the 24-hour window);
     * an edit of an alarm's other copies is news to no one and does not. */
    if (rep->alarm && rep->edit_outbox == 0 && json_array_size(arr) > 0) {
        b = carrier ? carrier : json_array_get(arr, json_array_size(arr) - 1);
        if (json_object_set_new(b, "rivet_alarm", alarm_meta(a, plain, items, n_items)) < 0)
            goto out;
    }
    *bodies = arr;
    arr = NULL;
    r = (int)json_array_size(*bodies);
out:
    json_decref(arr);
    return r;
}

/* text as a template's body parameter (malloc'd): no newlines, tabs or
 * other control characters (each becomes a space), no more than 4 spaces
 * in a row, no blanks at either end, at most WA_PARAM_MAX characters (cut
 * with "…"), never empty. NULL when out of memory. */
static char *template_param(const char *text)
{
    size_t len = strlen(text), o = 0, chars = 0;
    int spaces = 0;
    bool cut = false;
    char *out = malloc(len + sizeof(WA_ALARM_TEXT) + 4);

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];

        if (c < 0x20 || c == 0x7f)
            c = ' ';
        if (c == ' ') {
            if (o == 0 || ++spaces > 4)
                continue;
        } else {
            spaces = 0;
        }
        if (is_lead(c) && chars++ == WA_PARAM_MAX) {
            cut = true;
            break;
        }
        out[o++] = (char)c;
    }
    if (cut) { /* drop the last character for the ellipsis */
        while (o > 0 && !is_lead((unsigned char)out[o - 1]))
            o--;
        if (o > 0)
            o--;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    if (cut) {
        memcpy(out + o, "…", strlen("…"));
        o += strlen("…");
    }
    if (o == 0) {
        memcpy(out, WA_ALARM_TEXT, strlen(WA_ALARM_TEXT));
        o = strlen(WA_ALARM_TEXT);
    }
    out[o] = '\0';
    return out;
}

json_t *wa_template_body(const char *to, const char *name, const char *language,
                         const json_t *rivet_alarm)
{
    const json_t *text = json_object_get(rivet_alarm, "text");
    const json_t *payloads = json_object_get(rivet_alarm, "payloads");
    const char *p[2] = {WA_ALARM_PAYLOAD, WA_ALARM_PAYLOAD};
    char *param;
    json_t *b;

    if (!to || !name || !language || !json_is_string(text) || !json_is_array(payloads))
        return NULL;
    for (size_t i = 0; i < 2 && i < json_array_size(payloads); i++) {
        const json_t *v = json_array_get(payloads, i);

        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > WA_PAYLOAD_MAX)
            return NULL;
        p[i] = json_string_value(v);
    }
    param = template_param(json_string_value(text));
    if (!param)
        return NULL;
    b = json_pack("{s:s, s:s, s:s, s:{s:s, s:{s:s}, s:["
                  "{s:s, s:[{s:s, s:s}]},"
                  "{s:s, s:s, s:s, s:[{s:s, s:s}]},"
                  "{s:s, s:s, s:s, s:[{s:s, s:s}]}]}}",
                  "messaging_product", "whatsapp", "to", to, "type", "template", "template", "name",
                  name, "language", "code", language, "components", "type", "body", "parameters",
                  "type", "text", "text", param, "type", "button", "sub_type", "quick_reply",
                  "index", "0", "parameters", "type", "payload", "payload", p[0], "type", "button",
                  "sub_type", "quick_reply", "index", "1", "parameters", "type", "payload",
                  "payload", p[1]);
    free(param);
    return b;
}

int wa_queue_reply(struct db *db, struct arena *a, const char *to, const struct reply *rep,
                   int64_t inbox_id, int64_t *outbox_id)
{
    json_t *bodies;
    int n = wa_reply_bodies(a, to, rep, &bodies), r = 0;

    if (n < 0)
        return n;
    for (int i = 0; i < n && r == 0; i++) {
        char *dump = json_dumps(json_array_get(bodies, (size_t)i), JSON_COMPACT);

        if (!dump) {
            r = -ENOMEM;
            break;
        }
        r = db_outbox_add_id(db, "whatsapp", to, "messages", dump, inbox_id, rep->context,
                             outbox_id);
        free(dump);
    }
    json_decref(bodies);
    return r;
}
