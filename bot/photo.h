/* Reading a nameplate photo: the image checked and decoded, read locally
 * (ocr.h), and the vision LLM asked only when the local read is weak
 * (llm.h). A reader belongs to one thread: it owns a Tesseract engine
 * (created at its first photo, then reused) and an LLM client. The console,
 * the channels' workers and `rivet ocr` all read photos through it. */
#ifndef RIVET_PHOTO_H
#define RIVET_PHOTO_H

#include <stdbool.h>
#include <stddef.h>

#include "llm.h"
#include "nameplate.h"
#include "ocr.h"

struct photo_reader;

/* providers (copied; n may be 0: local reads only). stop, when not NULL,
 * cuts an LLM call short once set. Returns 0 and *ret, or -ENOMEM. */
int photo_reader_new(const struct llm_provider *providers, int n, volatile int *stop,
                     struct photo_reader **ret);
void photo_reader_free(struct photo_reader *pr);

struct photo_result {
    struct nameplate np;
    char sha256[65];      /* of the file's bytes, hex */
    int width, height;    /* of the photo */
    const char *format;   /* "jpeg", "png", ...; static */
    struct ocr_stats ocr; /* the local read */
    bool llm_asked;       /* the local read was weak and an LLM is configured */
    bool llm_used;        /* an LLM answered and its read was merged */
    int llm_error;        /* 0, or what llm_read_nameplate() returned */
    char llm_detail[160]; /* a line for the log when llm_error, no secrets */
    struct llm_usage usage;
    long total_ms;
    char engine[64]; /* "tesseract 5.3.0" */
    char text[8192]; /* the OCR text the fields came from, cut to fit */
};

/* Reads the photo in bytes. allow_llm false keeps it local. Returns 0 and
 * fills out (a read with no fields is still 0); or an ocr_image_load()
 * error with *why a sentence for the user; or -ENOENT when Tesseract's
 * language data is missing, -ENOMEM, -EIO. out->sha256 is set whenever
 * the bytes could be hashed. */
int photo_read(struct photo_reader *pr, const void *bytes, size_t len, bool allow_llm,
               struct photo_result *out, const char **why);

/* The SHA-256 of bytes as 64 hex digits and a NUL into hex. */
void photo_sha256(const void *bytes, size_t len, char hex[65]);

#endif
