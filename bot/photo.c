/* The photo pipeline: checks, local read, LLM fallback. */
#include "photo.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tesseract/capi.h>
#include <time.h>

/* The longer side of the image sent to an LLM: vision models tile or
 * shrink anything larger, so more only costs upload time and tokens. */
#define LLM_IMAGE_SIDE 1600

struct photo_reader {
    struct ocr_engine *ocr; /* NULL until the first photo */
    struct llm *llm;        /* NULL when no provider is configured */
};

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int photo_reader_new(const struct llm_provider *providers, int n, volatile int *stop,
                     struct photo_reader **ret)
{
    struct photo_reader *pr = calloc(1, sizeof(*pr));

    if (!pr)
        return -ENOMEM;
    if (n > 0 && llm_new(providers, n, stop, &pr->llm) < 0) {
        free(pr);
        return -ENOMEM;
    }
    *ret = pr;
    return 0;
}

void photo_reader_free(struct photo_reader *pr)
{
    if (!pr)
        return;
    ocr_engine_free(pr->ocr);
    llm_free(pr->llm);
    free(pr);
}

void photo_sha256(const void *bytes, size_t len, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    hex[0] = '\0';
    if (!EVP_Digest(bytes, len, md, &n, EVP_sha256(), NULL) || n != 32)
        return;
    for (unsigned i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* Asks the LLM and folds its answer into out->np. Failures are recorded
 * in out, never returned: the local read stands. */
static void ask_llm(struct photo_reader *pr, const struct ocr_image *img, struct photo_result *out)
{
    struct nameplate np;
    unsigned char *jpeg = NULL;
    size_t n = 0;
    int r;

    out->llm_asked = true;
    r = ocr_image_jpeg(img, LLM_IMAGE_SIDE, &jpeg, &n);
    if (r < 0) {
        out->llm_error = r;
        snprintf(out->llm_detail, sizeof(out->llm_detail), "could not encode the image");
        return;
    }
    r = llm_read_nameplate(pr->llm, jpeg, n, "image/jpeg", &np, &out->usage, out->llm_detail,
                           sizeof(out->llm_detail));
    free(jpeg);
    if (r < 0) {
        out->llm_error = r;
        return;
    }
    np_merge(&out->np, &np);
    out->llm_used = true;
}

int photo_read(struct photo_reader *pr, const void *bytes, size_t len, bool allow_llm,
               struct photo_result *out, const char **why)
{
    struct ocr_image *img = NULL;
    char *text = NULL;
    long t0 = now_ms();
    int r;

    memset(out, 0, sizeof(*out));
    snprintf(out->engine, sizeof(out->engine), "tesseract %s", TessVersion());
    if (len > 0 && len <= OCR_MAX_BYTES)
        photo_sha256(bytes, len, out->sha256);
    r = ocr_image_load(bytes, len, &img, why);
    if (r < 0)
        goto out;
    ocr_image_info(img, &out->width, &out->height, &out->format);
    if (!pr->ocr) {
        r = ocr_engine_new(NULL, &pr->ocr);
        if (r < 0) {
            if (why)
                *why = "Rivet cannot read photos right now (its OCR is not installed).";
            goto out;
        }
    }
    r = ocr_read(pr->ocr, img, &out->np, &out->ocr, &text);
    if (text) {
        size_t n = strlen(text);

        if (n >= sizeof(out->text)) {
            n = sizeof(out->text) - 1;
            while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
                n--; /* do not split a character */
        }
        memcpy(out->text, text, n);
        out->text[n] = '\0';
        free(text);
    }
    if (r < 0) {
        if (why)
            *why = "Rivet could not read that photo; please try again.";
        goto out;
    }
    if (allow_llm && pr->llm && !np_confident(&out->np))
        ask_llm(pr, img, out);
out:
    ocr_image_free(img);
    out->total_ms = now_ms() - t0;
    return r;
}
