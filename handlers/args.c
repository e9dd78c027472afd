#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "buf.h"

struct quote {
    const char *open, *close;
};

static const struct quote quotes[] = {
    {"\"", "\""},
    {"'", "'"},
    {"\xe2\x80\x9c", "\xe2\x80\x9d"}, /* “ ” */
    {"\xe2\x80\x9e", "\xe2\x80\x9c"}, /* „ “ */
    {"\xe2\x80\x98", "\xe2\x80\x99"}, /* ‘ ’ */
    {"\xc2\xab", "\xc2\xbb"},         /* « » */
    {"\xe2\x80\x9d", "\xe2\x80\x9d"}, /* ” ” */
};

static bool is_space(const char *s, size_t *len)
{
    unsigned char c = (unsigned char)s[0];

    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
        *len = 1;
        return true;
    }
    /* U+00A0 no-break space, which phone keyboards insert. */
    if (c == 0xc2 && (unsigned char)s[1] == 0xa0) {
        *len = 2;
        return true;
    }
    return false;
}

static bool at_space_or_end(const char *s)
{
    size_t len;
    return !*s || is_space(s, &len);
}

int args_parse(struct arena *a, const char *src, struct args *out)
{
    size_t n = strlen(src), i = 0, cap = n / 2 + 2;
    /* Where a search for each closing quote last failed: from there on it
     * fails again, so a line full of lone quotes stays linear. */
    size_t no_close_from[sizeof(quotes) / sizeof(quotes[0])];
    int count = 0;

    for (size_t q = 0; q < sizeof(quotes) / sizeof(quotes[0]); q++)
        no_close_from[q] = SIZE_MAX;

    memset(out, 0, sizeof(*out));
    out->src = src;
    out->tok = arena_alloc(a, sizeof(*out->tok) * cap);
    if (!out->tok)
        return -ENOMEM;

    while (i < n) {
        size_t sp, start, end;
        const char *word = NULL;
        bool quoted = false;

        if (is_space(src + i, &sp)) {
            i += sp;
            continue;
        }
        start = i;
        for (size_t q = 0; q < sizeof(quotes) / sizeof(quotes[0]); q++) {
            size_t ol = strlen(quotes[q].open), cl = strlen(quotes[q].close);
            const char *p, *close = NULL;

            if (strncmp(src + i, quotes[q].open, ol) != 0 || i >= no_close_from[q])
                continue;
            /* The closing quote must end the word. */
            for (p = src + i + ol; (p = strstr(p, quotes[q].close)); p += cl) {
                if (at_space_or_end(p + cl)) {
                    close = p;
                    break;
                }
            }
            if (!close) {
                no_close_from[q] = i;
                continue;
            }
            word = arena_strndup(a, src + i + ol, (size_t)(close - (src + i + ol)));
            if (!word)
                return -ENOMEM;
            end = (size_t)(close - src) + cl;
            quoted = true;
            break;
        }
        if (!word) {
            end = i;
            while (end < n && !is_space(src + end, &sp))
                end++;
            word = arena_strndup(a, src + start, end - start);
            if (!word)
                return -ENOMEM;
        }
        out->tok[count].text = word;
        out->tok[count].start = start;
        out->tok[count].end = end;
        out->tok[count].quoted = quoted;
        count++;
        i = end;
    }
    out->n = count;

    if (count > 0 && out->tok[0].text[0] == '/' && !out->tok[0].quoted) {
        char *cmd = arena_strdup(a, out->tok[0].text);
        char *at;

        if (!cmd)
            return -ENOMEM;
        at = strchr(cmd, '@'); /* "/equip@RivetBot" in Telegram groups */
        if (at)
            *at = '\0';
        for (char *p = cmd; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        out->cmd = cmd;
        out->tok++;
        out->n--;
    }
    return 0;
}

const char *args_rest(struct arena *a, const struct args *args, int i)
{
    struct buf b;
    const char *s;

    if (i >= args->n)
        return "";
    if (i == args->n - 1)
        return args->tok[i].text;
    /* Words as typed, with the space between them kept where they were
     * neighbours and a single space where an option was taken out. */
    buf_init(&b, strlen(args->src));
    for (int k = i; k < args->n; k++) {
        const struct token *t = &args->tok[k];
        if (k > i) {
            const struct token *p = &args->tok[k - 1];
            bool gap_is_space = true;
            size_t sp;
            for (size_t o = p->end; o < t->start; o += sp)
                if (!is_space(args->src + o, &sp)) {
                    gap_is_space = false;
                    break;
                }
            if (gap_is_space && t->start > p->end)
                buf_add(&b, args->src + p->end, t->start - p->end);
            else
                buf_add(&b, " ", 1);
        }
        buf_add(&b, args->src + t->start, t->end - t->start);
    }
    s = arena_strdup(a, buf_str(&b));
    buf_free(&b);
    return s ? s : "";
}

static int key_index(const char *word, const char *const *keys, int nkeys, size_t *klen)
{
    const char *eq = strchr(word, '=');

    if (!eq || eq == word)
        return -1;
    for (int k = 0; k < nkeys; k++) {
        if (strlen(keys[k]) == (size_t)(eq - word) &&
            strncasecmp(word, keys[k], (size_t)(eq - word)) == 0) {
            *klen = (size_t)(eq - word);
            return k;
        }
    }
    return -1;
}

/* key="a quoted value": the index of the word that ends the quote opened
 * at the start of v (i itself for a one-word value), or -1; the lengths of
 * the quotes in *ol and *cl. */
static int quoted_value_end(const struct args *args, int i, const char *v, size_t *ol, size_t *cl)
{
    for (size_t q = 0; q < sizeof(quotes) / sizeof(quotes[0]); q++) {
        size_t o = strlen(quotes[q].open), c = strlen(quotes[q].close);

        if (strncmp(v, quotes[q].open, o) != 0)
            continue;
        for (int j = i; j < args->n && (j == i || !args->tok[j].quoted); j++) {
            const char *w = j == i ? v + o : args->tok[j].text;
            size_t wl = strlen(w);

            if (wl >= c && strcmp(w + wl - c, quotes[q].close) == 0) {
                *ol = o;
                *cl = c;
                return j;
            }
        }
    }
    return -1;
}

int args_options(struct arena *a, struct args *args, int from, const char *const *keys,
                 const bool *absorbs, int nkeys, const char **vals, const char **bad)
{
    int w, k;
    size_t klen;

    /* Words before from are kept as they are; past the end there is
     * nothing to take out, and args->n must not grow. */
    if (from < 0)
        from = 0;
    if (from > args->n)
        from = args->n;
    w = from;
    for (k = 0; k < nkeys; k++)
        vals[k] = NULL;
    for (int i = from; i < args->n; i++) {
        const struct token *t = &args->tok[i];
        size_t ol, cl, vs;
        int last, qend;

        k = t->quoted ? -1 : key_index(t->text, keys, nkeys, &klen);
        if (k < 0) {
            args->tok[w++] = *t;
            continue;
        }
        if (vals[k]) {
            *bad = t->text;
            return -EINVAL;
        }
        vs = t->start + klen + 1; /* where the value starts in src */
        qend = quoted_value_end(args, i, t->text + klen + 1, &ol, &cl);
        if (qend >= 0) {
            /* key="a quoted value", possibly over several words */
            vals[k] = arena_strndup(a, args->src + vs + ol, args->tok[qend].end - cl - vs - ol);
            if (!vals[k])
                return -ENOMEM;
            i = qend;
            continue;
        }
        last = i;
        if (absorbs && absorbs[k]) {
            while (last + 1 < args->n && !args->tok[last + 1].quoted &&
                   key_index(args->tok[last + 1].text, keys, nkeys, &(size_t){0}) < 0)
                last++;
        }
        if (last == i) {
            vals[k] = t->text + klen + 1;
        } else {
            size_t sp;
            /* "location= Line 3": the value starts at the next word. */
            while (vs < args->tok[last].end && is_space(args->src + vs, &sp))
                vs += sp;
            vals[k] = arena_strndup(a, args->src + vs, args->tok[last].end - vs);
            if (!vals[k])
                return -ENOMEM;
        }
        i = last;
    }
    args->n = w;
    return 0;
}
