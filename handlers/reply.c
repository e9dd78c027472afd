/* Reply building and the words shared by the handlers. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "text.h"

void replies_init(struct replies *out)
{
    out->head = NULL;
    out->tail = &out->head;
    out->n = 0;
    out->command = NULL;
}

static struct reply *push(struct hctx *ctx, const char *text)
{
    struct reply *r;

    if (!text)
        return NULL;
    r = arena_alloc(ctx->a, sizeof(*r));
    if (!r)
        return NULL;
    r->text = text;
    *ctx->out->tail = r;
    ctx->out->tail = &r->next;
    ctx->out->n++;
    return r;
}

/* Room kept for the "\n…" that marks a cut reply. */
#define CUT_MARK "\n…"

const char *reply_context(struct arena *a, int64_t factory_id, const char *kind, const char *value)
{
    return arena_printf(a, "%s:%lld:%s", kind, (long long)factory_id, value);
}

void rb_init(struct rb *rb)
{
    buf_init(&rb->b, REPLY_MAX_BYTES - (sizeof(CUT_MARK) - 1));
    rb->full = false;
    rb->n_buttons = 0;
    rb->row = 0;
    rb->context = NULL;
}

void rb_button(struct hctx *ctx, struct rb *rb, const char *text, const char *data)
{
    struct button *b;

    if (!text || !data || rb->n_buttons == RB_MAX_BUTTONS || strlen(data) > BUTTON_DATA_MAX)
        return;
    b = &rb->buttons[rb->n_buttons];
    b->text = clip(ctx, text, 40);
    b->data = arena_strdup(ctx->a, data);
    b->row = rb->row;
    if (b->data)
        rb->n_buttons++;
}

void rb_row(struct rb *rb)
{
    if (rb->n_buttons > 0 && rb->buttons[rb->n_buttons - 1].row == rb->row)
        rb->row++;
}

void rb_addf(struct rb *rb, const char *fmt, ...)
{
    char tmp[REPLY_MAX_BYTES];
    va_list ap;
    int n;

    if (rb->full)
        return;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(tmp) || buf_add(&rb->b, tmp, (size_t)n) < 0) {
        /* Keep what fits, up to the last whole line. */
        const char *nl;
        size_t room = rb->b.max - rb->b.len;
        size_t take = utf8_prefix(tmp, room < (size_t)n ? room : (size_t)n);

        tmp[take] = '\0';
        nl = strrchr(tmp, '\n');
        if (nl) {
            take = (size_t)(nl - tmp);
        } else if (rb->b.len && (nl = memrchr(rb->b.p, '\n', rb->b.len))) {
            /* No whole line in this piece: end at the last one already held. */
            rb->b.len = (size_t)(nl - rb->b.p);
            rb->b.p[rb->b.len] = '\0';
            take = 0;
        }
        buf_add(&rb->b, tmp, take);
        rb->full = true;
    }
}

void rb_send(struct hctx *ctx, struct rb *rb)
{
    const char *s = buf_str(&rb->b);
    size_t n = rb->b.len;
    struct reply *r;

    while (n && s[n - 1] == '\n')
        n--;
    if (rb->full)
        r = push(ctx, arena_printf(ctx->a, "%.*s%s", (int)n, s, CUT_MARK));
    else
        r = push(ctx, arena_strndup(ctx->a, s, n));
    buf_free(&rb->b);
    if (r)
        r->context = rb->context;
    if (r && rb->n_buttons > 0) {
        struct button *b = arena_alloc(ctx->a, sizeof(*b) * (size_t)rb->n_buttons);
        if (b) {
            memcpy(b, rb->buttons, sizeof(*b) * (size_t)rb->n_buttons);
            r->buttons = b;
            r->n_buttons = rb->n_buttons;
        }
    }
}

bool rb_page(struct hctx *ctx, struct rb *rb, const char *title, int total, int n, long long page,
             int *pages)
{
    *pages = (total + LIST_PAGE - 1) / LIST_PAGE;
    if (n == 0) {
        reply(ctx, "There is no page %lld; the list has %d page%s.", page, *pages,
              *pages == 1 ? "" : "s");
        return false;
    }
    rb_init(rb);
    rb_addf(rb, "%s (%d)", title, total);
    if (*pages > 1)
        rb_addf(rb, " · page %lld of %d", page, *pages);
    rb_addf(rb, "\n");
    return true;
}

bool options_ok(struct hctx *ctx, struct args *args, int from, const char *const *keys,
                const bool *absorbs, int nkeys, const char **vals)
{
    const char *bad = NULL;
    int r = args_options(ctx->a, args, from, keys, absorbs, nkeys, vals, &bad);

    if (r == -EINVAL)
        reply(ctx, "%s is given twice.", clip(ctx, bad, 40));
    else if (r < 0)
        reply_db_error(ctx, r);
    return r == 0;
}

void rb_pager(struct hctx *ctx, struct rb *rb, const char *cmd, long long page, int pages)
{
    rb_row(rb);
    if (page > 1)
        rb_button(ctx, rb, "◀ Previous",
                  arena_printf(ctx->a, "%c%s %lld", REPLY_EDIT_MARK, cmd, page - 1));
    if (page < pages)
        rb_button(ctx, rb, "Next ▶",
                  arena_printf(ctx->a, "%c%s %lld", REPLY_EDIT_MARK, cmd, page + 1));
}

void reply_usage(struct hctx *ctx, const char *prefix)
{
    const char *u = help_usage(prefix);
    reply(ctx, "Usage: %s", u ? u : prefix);
}

void reply(struct hctx *ctx, const char *fmt, ...)
{
    char tmp[REPLY_MAX_BYTES + 2]; /* one byte past the limit shows a cut character */
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > REPLY_MAX_BYTES)
        tmp[utf8_prefix(tmp, REPLY_MAX_BYTES)] = '\0';
    push(ctx, arena_strdup(ctx->a, tmp));
}

int reply_db_error(struct hctx *ctx, int r)
{
    if (!ctx->error)
        ctx->error = r;
    reply(ctx, "Sorry, Rivet could not reach its database just now. Nothing was changed; "
               "please try again in a minute.");
    return r;
}

static const struct {
    const char *status, *emoji, *label;
} statuses[] = {
    {"open", "🟢", "open"},        {"in_progress", "🟡", "in progress"},
    {"on_hold", "⏸", "on hold"},   {"completed", "✅", "completed"},
    {"cancelled", "🔴", "cancelled"},
};

static const struct {
    const char *word, *status;
} status_words[] = {
    {"open", "open"},
    {"reopen", "open"},
    {"in_progress", "in_progress"},
    {"in-progress", "in_progress"},
    {"inprogress", "in_progress"},
    {"progress", "in_progress"},
    {"started", "in_progress"},
    {"start", "in_progress"},
    {"on_hold", "on_hold"},
    {"on-hold", "on_hold"},
    {"onhold", "on_hold"},
    {"hold", "on_hold"},
    {"completed", "completed"},
    {"complete", "completed"},
    {"done", "completed"},
    {"closed", "completed"},
    {"close", "completed"},
    {"cancelled", "cancelled"},
    {"canceled", "cancelled"},
    {"cancel", "cancelled"},
};

static const struct {
    const char *priority, *emoji;
} priorities[] = {
    {"low", "🔵"},
    {"medium", "🟡"},
    {"high", "🟠"},
    {"critical", "🔴"},
};

const char *status_emoji(const char *status)
{
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (status && strcmp(status, statuses[i].status) == 0)
            return statuses[i].emoji;
    return "•";
}

const char *status_label(const char *status)
{
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (status && strcmp(status, statuses[i].status) == 0)
            return statuses[i].label;
    return status ? status : "?";
}

const char *priority_emoji(const char *priority)
{
    for (size_t i = 0; i < sizeof(priorities) / sizeof(priorities[0]); i++)
        if (priority && strcmp(priority, priorities[i].priority) == 0)
            return priorities[i].emoji;
    return "•";
}

const char *status_parse(const char *s)
{
    for (size_t i = 0; i < sizeof(status_words) / sizeof(status_words[0]); i++)
        if (strcasecmp(s, status_words[i].word) == 0)
            return status_words[i].status;
    return NULL;
}

const char *priority_parse(const char *s)
{
    static const struct {
        const char *word, *priority;
    } words[] = {{"low", "low"},       {"medium", "medium"},  {"med", "medium"},
                 {"normal", "medium"}, {"high", "high"},      {"critical", "critical"},
                 {"crit", "critical"}, {"urgent", "critical"}};

    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(s, words[i].word) == 0)
            return words[i].priority;
    return NULL;
}

bool number_valid(const char *prefix, const char *s)
{
    size_t digits = 0;

    /* PP-YYYY-NNNNNN, with six or more digits at the end. */
    if (strlen(s) < 14 || strncasecmp(s, prefix, 2) != 0 || s[2] != '-')
        return false;
    for (int i = 3; i < 7; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    if (s[7] != '-')
        return false;
    for (const char *p = s + 8; *p; p++, digits++)
        if (!isdigit((unsigned char)*p))
            return false;
    return digits >= 6 && digits <= 12;
}

bool text_blank(const char *s)
{
    while (*s) {
        if (*s == ' ' || *s == '\t' || *s == '\n')
            s++;
        else if ((unsigned char)s[0] == 0xc2 && (unsigned char)s[1] == 0xa0)
            s += 2; /* U+00A0 no-break space */
        else
            return false;
    }
    return true;
}

bool field_ok(struct hctx *ctx, const char *field, const char *value, size_t max)
{
    size_t chars;

    if (!value || text_blank(value)) {
        reply(ctx, "The %s is empty.", field);
        return false;
    }
    chars = utf8_chars(value);
    if (chars > max) {
        reply(ctx, "The %s is too long (%zu characters; at most %zu).", field, chars, max);
        return false;
    }
    return true;
}

const char *clip(struct hctx *ctx, const char *s, size_t max)
{
    const char *c = text_ellipsize(ctx->a, s ? s : "", max);
    return c ? c : "";
}
