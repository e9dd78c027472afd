#include "ocr.h"

#include <leptonica/allheaders.h>
#include <stdio.h>
#include <stdlib.h>
#include <tesseract/capi.h>

void ocr_versions(char *buf, size_t n)
{
    char *lept = getLeptonicaVersion(); /* "leptonica-1.82.0", caller frees */

    snprintf(buf, n, "tesseract %s, %s", TessVersion(), lept ? lept : "leptonica ?");
    free(lept);
}
