/* Nameplate reading: Leptonica preprocessing, Tesseract, PCRE2 field
 * extraction. The photo pipeline itself arrives with the photo issue; for
 * now the module reports which engine versions it was built with. */
#ifndef RIVET_OCR_H
#define RIVET_OCR_H

#include <stddef.h>

/* Writes "tesseract X, leptonica Y" into buf (size n). */
void ocr_versions(char *buf, size_t n);

#endif
