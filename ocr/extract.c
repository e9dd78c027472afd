/* placeholder: PCRE2 field extraction */
#include "nameplate.h"
#include <string.h>

int np_extract(const char *text, size_t len, const struct ocr_word *words, size_t n_words,
               struct nameplate *out)
{
    (void)text; (void)len; (void)words; (void)n_words;
    memset(out, 0, sizeof(*out));
    return 0;
}

const char *np_manufacturer_canonical(const char *name)
{
    (void)name;
    return NULL;
}
