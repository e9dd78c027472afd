/* Nameplate reading on the server: an image is checked and decoded with
 * Leptonica (limits first, from the header), the plate found in the photo,
 * prepared for Tesseract (grayscale, scaled so text is a readable size,
 * deskewed, turned upright when needed), read by Tesseract in one or two
 * page segmentation modes, and the fields are extracted (nameplate.h).
 *
 * An engine is one Tesseract instance: about 20 MB and a few hundred
 * milliseconds to create, so each worker thread creates one and reuses it.
 * Engines are not shared between threads. Call ocr_global_init() once in
 * main before any thread starts. */
#ifndef RIVET_OCR_H
#define RIVET_OCR_H

#include <stdbool.h>
#include <stddef.h>

#include "nameplate.h"

/* What Rivet accepts: bytes of the file, and pixels, read from the header
 * before anything is decoded. */
#define OCR_MAX_BYTES (20u << 20)
#define OCR_MAX_PIXELS 50000000L
/* Smaller than this on either side (or longer than 16 times its width),
 * no plate is legible. */
#define OCR_MIN_SIDE 64

/* Quiets Leptonica's and Tesseract's own messages on stderr (a corrupt
 * photo is the user's problem, reported in the reply, not a log line from
 * a library). Call once, before threads. OMP_THREAD_LIMIT=1 must be in
 * the environment before the program starts (libgomp reads it when it is
 * loaded); rivet's main() sees to that. */
void ocr_global_init(void);

/* Writes "tesseract X, leptonica Y" into buf (size n). */
void ocr_versions(char *buf, size_t n);

/* ---- images ---- */

struct ocr_image;

/* Checks and decodes an image (JPEG, PNG, WebP, TIFF, BMP: what Leptonica
 * reads). Returns 0 and *ret; or -ENODATA (zero bytes), -EFBIG (over
 * OCR_MAX_BYTES), -E2BIG (over OCR_MAX_PIXELS), -EDOM (under OCR_MIN_SIDE
 * pixels on a side), -ENOTSUP (not an image
 * format Rivet reads), -EBADMSG (corrupt or truncated), -ENOMEM. *why,
 * when not NULL, gets a sentence for the user on failure (static). */
int ocr_image_load(const void *bytes, size_t len, struct ocr_image **ret, const char **why);
void ocr_image_free(struct ocr_image *img);
/* The image's size in pixels as decoded (a JPEG over 16 megapixels is
 * decoded at half or quarter size), and its format ("jpeg", "png", ...). */
void ocr_image_info(const struct ocr_image *img, int *w, int *h, const char **format);

/* The image as a JPEG whose longer side is at most max_side (for the LLM).
 * *ret is malloc'd; free() it. Returns 0, or -ENOMEM, -EIO. */
int ocr_image_jpeg(const struct ocr_image *img, int max_side, unsigned char **ret, size_t *len);

/* ---- reading ---- */

struct ocr_engine;

/* Creates a Tesseract engine for English (the label words of the other
 * languages Rivet knows are in Latin script). datapath NULL means
 * Tesseract's default tessdata. Returns 0 and *ret, or -ENOENT when the
 * language data is missing, -ENOMEM. */
int ocr_engine_new(const char *datapath, struct ocr_engine **ret);
void ocr_engine_free(struct ocr_engine *e);

struct ocr_stats {
    long prep_ms, ocr_ms, extract_ms, total_ms;
    int passes;        /* Tesseract passes run (page segmentation modes, turns) */
    int rotation;      /* degrees the image was turned to read upright */
    bool cropped;      /* the plate was found in the photo and read alone */
    int psm;           /* the page segmentation mode whose read was used */
    int width, height; /* of the image Tesseract saw */
    int words;         /* words read */
    float mean_conf;   /* Tesseract's mean word confidence, 0..100 */
};

/* Reads the nameplate in img into out. text, when not NULL, gets the OCR
 * text of the pass used (malloc'd; free() it). Returns 0 (a plate with no
 * fields is still 0: out says what was read), or -ENOMEM, -EIO. */
int ocr_read(struct ocr_engine *e, const struct ocr_image *img, struct nameplate *out,
             struct ocr_stats *stats, char **text);

#endif
