#include "text.h"

#include "arena.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

bool utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        uint32_t cp;
        size_t len;

        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
            return false; /* overlong */
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

bool text_has_control(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;

    for (size_t i = 0; i < n; i++) {
        if ((s[i] < 0x20 && s[i] != '\t' && s[i] != '\n') || s[i] == 0x7f)
            return true;
        /* U+0080..U+009F are encoded as C2 80..C2 9F. */
        if (s[i] == 0xc2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
            return true;
        /* Bidirectional overrides and isolates (U+202A..U+202E, U+2066..U+2069)
         * make stored text display as something else; U+FEFF is invisible. */
        if (i + 2 < n &&
            ((s[i] == 0xe2 && s[i + 1] == 0x80 && s[i + 2] >= 0xaa && s[i + 2] <= 0xae) ||
             (s[i] == 0xe2 && s[i + 1] == 0x81 && s[i + 2] >= 0xa6 && s[i + 2] <= 0xa9) ||
             (s[i] == 0xef && s[i + 1] == 0xbb && s[i + 2] == 0xbf)))
            return true;
    }
    return false;
}

size_t utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

size_t utf8_prefix(const char *s, size_t max)
{
    size_t len = max < SIZE_MAX ? strnlen(s, max + 1) : strlen(s);

    if (len <= max)
        return len;
    len = max;
    /* Step back over continuation bytes to the start of the cut character. */
    while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
        len--;
    return len;
}

char *text_ellipsize(struct arena *a, const char *s, size_t max_chars)
{
    size_t chars = 0, i = 0;

    if (!s)
        return NULL;
    if (max_chars == 0)
        return arena_strdup(a, "");
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (chars == max_chars)
                break;
            chars++;
        }
    }
    if (!s[i])
        return arena_strdup(a, s);
    /* Too long: keep max_chars - 1 characters and add the ellipsis. */
    chars = 0;
    for (i = 0; s[i]; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (chars == max_chars - 1)
                break;
            chars++;
        }
    }
    return arena_printf(a, "%.*s…", (int)i, s);
}

int text_distance(const char *a, const char *b)
{
    unsigned char row[65];
    size_t la = strnlen(a, 64), lb = strnlen(b, 64);

    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned char)(j > 255 ? 255 : j);
    for (size_t i = 1; i <= la; i++) {
        unsigned prev = row[0];
        row[0] = (unsigned char)(i > 255 ? 255 : i);
        for (size_t j = 1; j <= lb; j++) {
            unsigned cur = row[j];
            unsigned cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            unsigned best = prev + cost;
            if (row[j] + 1u < best)
                best = row[j] + 1u;
            if (row[j - 1] + 1u < best)
                best = row[j - 1] + 1u;
            row[j] = (unsigned char)(best > 255 ? 255 : best);
            prev = cur;
        }
    }
    return row[lb];
}

char *text_trim(char *s)
{
    size_t n = strlen(s);
    size_t start = 0;

    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    while (s[start] && isspace((unsigned char)s[start]))
        start++;
    if (start)
        memmove(s, s + start, n - start + 1);
    return s;
}

bool text_json_depth_ok(const char *s, size_t n, int max)
{
    bool in_str = false, esc = false;
    int depth = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                return false;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return true;
}
