/* A provider's chat.completion answer, as the LLM client reads it:
 * llm_parse_answer (nameplate fields from a JSON object in the content)
 * and llm_parse_text (the assistant's plain text, cleaned and cut to the
 * caller's buffer), with buffers from the smallest allowed up. The text's
 * promises are checked: NUL-terminated in its buffer, valid UTF-8, no
 * control character but newline and tab, no \r, at most two blank lines in
 * a row, nothing blank around it. */
#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "llm.h"
#include "text.h"

static void check_text(const char *out, size_t outn)
{
    size_t n;

    FUZZ_CHECK(memchr(out, '\0', outn));
    n = strlen(out);
    FUZZ_CHECK(n > 0);
    FUZZ_CHECK(utf8_valid(out, n));
    FUZZ_CHECK(!text_has_control(out, n));
    FUZZ_CHECK(!strchr(out, '\r'));
    FUZZ_CHECK(!strstr(out, "\n\n\n\n"));
    FUZZ_CHECK(out[0] != ' ' && out[0] != '\n' && out[0] != '\t');
    FUZZ_CHECK(out[n - 1] != ' ' && out[n - 1] != '\n' && out[n - 1] != '\t');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    static const size_t sizes[] = {LLM_MIN_ANSWER, LLM_MIN_ANSWER + 1, 13, 64, 4096};
    struct llm_usage usage;
    struct nameplate np;
    char *out;

    memset(&usage, 0, sizeof(usage));
    if (llm_parse_answer(body, size, &np, &usage) == 0) {
        for (int i = 0; i < NP_FIELD_COUNT; i++) {
            size_t n = strnlen(np.f[i].value, NP_VALUE_MAX);

            FUZZ_CHECK(n < NP_VALUE_MAX);
            FUZZ_CHECK(utf8_valid(np.f[i].value, n));
            FUZZ_CHECK(!text_has_control(np.f[i].value, n));
            FUZZ_CHECK(np.f[i].confidence >= 0 && np.f[i].confidence <= 1);
        }
        FUZZ_CHECK(np.confidence >= 0 && np.confidence <= 1);
    }
    llm_parse_answer(body, size, &np, NULL);

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        /* Exactly the size given, so a write past it is caught. */
        out = malloc(sizes[k]);
        if (!out)
            return 0;
        memset(&usage, 0, sizeof(usage));
        if (llm_parse_text(body, size, out, sizes[k], &usage) == 0)
            check_text(out, sizes[k]);
        free(out);
    }
    /* A buffer picked by the input's last byte, and one too small. */
    if (size) {
        size_t outn = LLM_MIN_ANSWER + data[size - 1];

        out = malloc(outn);
        if (out && llm_parse_text(body, size, out, outn, NULL) == 0)
            check_text(out, outn);
        free(out);
    }
    {
        char tiny[LLM_MIN_ANSWER - 1];
        FUZZ_CHECK(llm_parse_text(body, size, tiny, sizeof(tiny), NULL) == -EINVAL);
    }
    return 0;
}
