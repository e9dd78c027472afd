/* Leptonica and Tesseract: from image bytes to a nameplate. */
#include "ocr.h"

#include <errno.h>
#include <leptonica/allheaders.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tesseract/capi.h>
#include <time.h>

struct ocr_image {
    PIX *pix;
    int format;
};

struct ocr_engine {
    TessBaseAPI *api;
    TessBaseAPI *osd; /* orientation detection, created when first needed */
    char *datapath;   /* NULL: Tesseract's default */
};

/* Sizes Tesseract reads best at: the longer side of the page it gets. Small
 * photos are enlarged (Tesseract wants capital letters 20 to 40 pixels
 * tall), large ones reduced (time grows with pixels, and a 12-megapixel
 * photo's text is far larger than it needs). */
#define READ_MIN_SIDE 1800
#define READ_MAX_SIDE 2400
#define UPSCALE_MAX 3.0f
/* The longest one Tesseract pass may take. */
#define OCR_PASS_MS 6000

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static char *dict_vars[] = {"load_system_dawg", "load_freq_dawg"};
static char *dict_off[] = {"0", "0"};

void ocr_global_init(void)
{
    TessBaseAPI *api;

    setMsgSeverity(L_SEVERITY_NONE);
    /* Tesseract's warnings ("Estimating resolution as ...") go to stderr
     * unless debug_file names a file. It is one setting for the whole
     * process, shared by every engine, so it is set once, here, before any
     * thread creates one. */
    api = TessBaseAPICreate();
    if (api) {
        TessBaseAPISetVariable(api, "debug_file", "/dev/null");
        TessBaseAPIDelete(api);
    }
}

void ocr_versions(char *buf, size_t n)
{
    char *lept = getLeptonicaVersion(); /* "leptonica-1.82.0", caller frees */

    snprintf(buf, n, "tesseract %s, %s", TessVersion(), lept ? lept : "leptonica ?");
    free(lept);
}

/* ---- images ---- */

static const char *format_name(int format)
{
    switch (format) {
    case IFF_JFIF_JPEG:
        return "jpeg";
    case IFF_PNG:
        return "png";
    case IFF_WEBP:
        return "webp";
    case IFF_BMP:
        return "bmp";
    case IFF_TIFF:
    case IFF_TIFF_PACKBITS:
    case IFF_TIFF_RLE:
    case IFF_TIFF_G3:
    case IFF_TIFF_G4:
    case IFF_TIFF_LZW:
    case IFF_TIFF_ZIP:
    case IFF_TIFF_JPEG:
        return "tiff";
    default:
        return NULL;
    }
}

/* Whether a JPEG's end-of-image marker (FF D9) is in its last bytes; some
 * cameras write padding after it. */
static bool jpeg_has_end(const unsigned char *p, size_t len)
{
    size_t from = len > 4096 ? len - 4096 : 0;

    for (size_t i = len - 1; i > from; i--)
        if (p[i] == 0xD9 && p[i - 1] == 0xFF)
            return true;
    return false;
}

int ocr_image_load(const void *bytes, size_t len, struct ocr_image **ret, const char **why)
{
    const char *unused;
    struct ocr_image *img;
    l_int32 format = IFF_UNKNOWN, w = 0, h = 0, bps, spp, iscmap, reduction = 1;
    PIX *pix;

    if (!why)
        why = &unused;
    if (len == 0) {
        *why = "The file is empty.";
        return -ENODATA;
    }
    if (len > OCR_MAX_BYTES) {
        *why = "The image is larger than 20 MB.";
        return -EFBIG;
    }
    if (len < 12 || findFileFormatBuffer(bytes, &format) != 0 || !format_name(format)) {
        *why = "That is not a photo Rivet can read: send a JPEG, PNG, WebP or TIFF image.";
        return -ENOTSUP;
    }
    if (pixReadHeaderMem(bytes, len, &format, &w, &h, &bps, &spp, &iscmap) != 0 || w <= 0 ||
        h <= 0) {
        *why = "The image is damaged or cut short; please send it again.";
        return -EBADMSG;
    }
    if (w < OCR_MIN_SIDE || h < OCR_MIN_SIDE || w > 16 * h || h > 16 * w) {
        *why = "The image is too small to read a nameplate from; send a larger photo.";
        return -EDOM;
    }
    if ((long)w * (long)h > OCR_MAX_PIXELS) {
        *why = "The image has more than 50 megapixels; send a smaller photo.";
        return -E2BIG;
    }
    /* A JPEG cut short (an interrupted upload) ends without its EOI marker;
     * libjpeg would decode it with a grey bottom and a warning on stderr. */
    if (format == IFF_JFIF_JPEG && !jpeg_has_end(bytes, len)) {
        *why = "The image is damaged or cut short; please send it again.";
        return -EBADMSG;
    }
    /* A large JPEG is decoded at half or quarter size: the page Tesseract
     * reads is at most READ_MAX_SIDE across anyway, and a 48-megapixel photo
     * decoded whole would take 190 MB. */
    if (format == IFF_JFIF_JPEG && (long)w * h > 16000000L) {
        reduction = (long)w * h > 64000000L ? 4 : 2;
        pix = pixReadMemJpeg(bytes, len, 0, reduction, NULL, 0);
    } else {
        pix = pixReadMem(bytes, len);
    }
    if (!pix || pixGetWidth(pix) != (w + reduction - 1) / reduction ||
        pixGetHeight(pix) != (h + reduction - 1) / reduction) {
        pixDestroy(&pix);
        /* A JPEG or PNG that does not decode is damaged; a TIFF or WebP may
         * be a variant Leptonica does not read (16-bit gray with alpha). */
        if (format == IFF_JFIF_JPEG || format == IFF_PNG)
            *why = "The image is damaged or cut short; please send it again.";
        else
            *why = "Rivet cannot decode this kind of image; send it as a JPEG or PNG photo.";
        return -EBADMSG;
    }
    img = calloc(1, sizeof(*img));
    if (!img) {
        pixDestroy(&pix);
        *why = "Out of memory.";
        return -ENOMEM;
    }
    img->pix = pix;
    img->format = format;
    *ret = img;
    return 0;
}

void ocr_image_free(struct ocr_image *img)
{
    if (!img)
        return;
    pixDestroy(&img->pix);
    free(img);
}

void ocr_image_info(const struct ocr_image *img, int *w, int *h, const char **format)
{
    if (w)
        *w = pixGetWidth(img->pix);
    if (h)
        *h = pixGetHeight(img->pix);
    if (format)
        *format = format_name(img->format);
}

/* img scaled by f; 1-bpp and colormapped images are first made 8 or 32 bpp
 * so the scaling smooths. Returns a new PIX or NULL. */
static PIX *scaled(PIX *pix, float f)
{
    PIX *src, *out;

    if (pixGetColormap(pix) || pixGetDepth(pix) < 8)
        src = pixConvertTo32(pix);
    else
        src = pixClone(pix);
    if (!src)
        return NULL;
    out = fabsf(f - 1.0f) < 0.01f ? pixClone(src) : pixScale(src, f, f);
    pixDestroy(&src);
    return out;
}

int ocr_image_jpeg(const struct ocr_image *img, int max_side, unsigned char **ret, size_t *len)
{
    int w = pixGetWidth(img->pix), h = pixGetHeight(img->pix), side = w > h ? w : h;
    float f = side > max_side ? (float)max_side / (float)side : 1.0f;
    l_uint8 *data = NULL;
    size_t n = 0;
    PIX *pix, *rgb;
    int r;

    pix = scaled(img->pix, f);
    if (!pix)
        return -ENOMEM;
    /* JPEG takes 8-bit gray or 24-bit colour; drop any alpha. */
    rgb = pixGetDepth(pix) == 32 ? pixRemoveAlpha(pix) : pixConvertTo8(pix, 0);
    pixDestroy(&pix);
    if (!rgb)
        return -ENOMEM;
    r = pixWriteMemJpeg(&data, &n, rgb, 85, 0) == 0 ? 0 : -EIO;
    pixDestroy(&rgb);
    if (r < 0) {
        free(data);
        return r;
    }
    *ret = data;
    *len = n;
    return 0;
}

/* ---- engines ---- */

int ocr_engine_new(const char *datapath, struct ocr_engine **ret)
{
    struct ocr_engine *e = calloc(1, sizeof(*e));

    if (!e)
        return -ENOMEM;
    e->api = TessBaseAPICreate();
    if (!e->api) {
        free(e);
        return -ENOMEM;
    }
    if (datapath && !(e->datapath = strdup(datapath))) {
        ocr_engine_free(e);
        return -ENOMEM;
    }
    /* A nameplate is not prose: the dictionaries pull serials and model
     * codes toward English words. They can only be left out at init. */
    if (TessBaseAPIInit4(e->api, datapath, "eng", OEM_DEFAULT, NULL, 0, dict_vars, dict_off, 2,
                         0) != 0) {
        ocr_engine_free(e);
        return -ENOENT;
    }
    *ret = e;
    return 0;
}

void ocr_engine_free(struct ocr_engine *e)
{
    if (!e)
        return;
    if (e->api) {
        TessBaseAPIEnd(e->api);
        TessBaseAPIDelete(e->api);
    }
    if (e->osd) {
        TessBaseAPIEnd(e->osd);
        TessBaseAPIDelete(e->osd);
    }
    free(e->datapath);
    free(e);
}

/* ---- preprocessing ---- */

/* Finding the plate in a photo of a machine. The plate is usually the
 * largest bright, compact region: a label or a metal plate on a darker
 * housing. On a grayscale copy about 400 pixels across: Otsu's threshold,
 * bright as foreground, a closing that fills the plate's dark text and an
 * opening that removes thin bright lines (ribs, reflections); then the
 * largest component. Cropping to it keeps Tesseract from reading ribs,
 * bolts and shadows as hundreds of words (one test photo took 30 s
 * uncropped). NULL when no region is a convincing plate: the whole photo
 * is read then. */
#define PLATE_SCAN_SIDE 400

static BOX *find_plate(PIX *gray)
{
    int w = pixGetWidth(gray), h = pixGetHeight(gray), side = w > h ? w : h;
    float f = side > PLATE_SCAN_SIDE ? (float)PLATE_SCAN_SIDE / (float)side : 1.0f;
    PIX *small = NULL, *bin = NULL, *mask = NULL, *part = NULL;
    BOXA *boxa = NULL;
    BOX *found = NULL;
    int thresh = 0, best = -1, sw, sh, bx, by, bw, bh;
    long best_area = 0, area;
    l_int32 on = 0;

    small = f < 1.0f ? pixScaleAreaMap(gray, f, f) : pixClone(gray);
    if (!small || pixSplitDistributionFgBg(small, 0.1f, 1, &thresh, NULL, NULL, NULL) != 0)
        goto out;
    sw = pixGetWidth(small);
    sh = pixGetHeight(small);
    bin = pixThresholdToBinary(small, thresh); /* dark is 1 */
    if (!bin)
        goto out;
    pixInvert(bin, bin); /* bright is 1 */
    mask = pixCloseBrick(NULL, bin, 9, 9);
    if (!mask)
        goto out;
    pixOpenBrick(mask, mask, 15, 15);
    boxa = pixConnCompBB(mask, 8);
    for (int i = 0; boxa && i < boxaGetCount(boxa); i++) {
        boxaGetBoxGeometry(boxa, i, &bx, &by, &bw, &bh);
        area = (long)bw * bh;
        if (area > best_area) {
            best_area = area;
            best = i;
        }
    }
    /* A plate fills 4 % to 75 % of the photo, and most of its own box. */
    if (best < 0 || best_area < (long)sw * sh / 25 || best_area > (long)sw * sh * 3 / 4)
        goto out;
    boxaGetBoxGeometry(boxa, best, &bx, &by, &bw, &bh);
    {
        BOX *b = boxCreate(bx, by, bw, bh);

        part = b ? pixClipRectangle(mask, b, NULL) : NULL;
        boxDestroy(&b);
    }
    if (!part || pixCountPixels(part, &on, NULL) != 0 || on < best_area * 6 / 10)
        goto out;
    /* Back to the photo's pixels, with a margin of a twentieth each side. */
    {
        int mx = bw / 20 + 2, my = bh / 20 + 2;
        int x0 = (int)((float)(bx - mx) / f), y0 = (int)((float)(by - my) / f);
        int x1 = (int)((float)(bx + bw + mx) / f), y1 = (int)((float)(by + bh + my) / f);

        x0 = x0 < 0 ? 0 : x0;
        y0 = y0 < 0 ? 0 : y0;
        x1 = x1 > w ? w : x1;
        y1 = y1 > h ? h : y1;
        found = boxCreate(x0, y0, x1 - x0, y1 - y0);
    }
out:
    pixDestroy(&part);
    boxaDestroy(&boxa);
    pixDestroy(&mask);
    pixDestroy(&bin);
    pixDestroy(&small);
    return found;
}

/* The grayscale page Tesseract reads: the plate's region of gray (all of it
 * when box is NULL), scaled, deskewed. Tesseract binarizes it itself. Tried
 * and left out, measured on the generated plates (manufacturer, model and
 * serial all exact): evening out the background with
 * pixBackgroundNormSimple (16 of 30 without it, 4 with it, as it left text
 * faint on textured metal), a contrast stretch, local contrast
 * normalization (better on one set, worse on another), unsharp masking,
 * Sauvola binarization (7 of 30), painting a table's lines white (1 of 30:
 * it took strokes of the text too), and a second sparse pass at half size
 * for logos (one plate more, one other field wrong). Returns a new PIX or
 * NULL. */
static PIX *prepare(PIX *gray, BOX *box)
{
    PIX *region = box ? pixClipRectangle(gray, box, NULL) : pixClone(gray);
    int w, h, side;
    float f = 1.0f;
    PIX *pix, *straight;

    if (!region)
        return NULL;
    w = pixGetWidth(region);
    h = pixGetHeight(region);
    side = w > h ? w : h;
    if (side < READ_MIN_SIDE) {
        f = (float)READ_MIN_SIDE / (float)side;
        if (f > UPSCALE_MAX)
            f = UPSCALE_MAX;
    } else if (side > READ_MAX_SIDE) {
        f = (float)READ_MAX_SIDE / (float)side;
    }
    if (fabsf(f - 1.0f) < 0.01f)
        pix = pixClone(region);
    else if (f < 1.0f)
        pix = pixScaleAreaMap(region, f, f);
    else
        pix = pixScaleGrayLI(region, f, f);
    pixDestroy(&region);
    if (!pix)
        return NULL;
    straight = pixDeskew(pix, 0);
    if (straight) {
        pixDestroy(&pix);
        pix = straight;
    }
    return pix;
}

/* ---- reading ---- */

struct word {
    int x0, y0, x1, y1;
    float conf;
    char *text;
};

struct page {
    struct word *w;
    size_t n, cap;
    float conf_sum;
};

static void page_clear(struct page *p)
{
    for (size_t i = 0; i < p->n; i++)
        TessDeleteText(p->w[i].text);
    free(p->w);
    memset(p, 0, sizeof(*p));
}

/* Runs Tesseract over the page set on the engine and collects its words. */
static int recognize(struct ocr_engine *e, int psm, struct page *out)
{
    TessResultIterator *it;
    ETEXT_DESC *monitor;
    int r = 0, rc;

    TessBaseAPISetPageSegMode(e->api, (TessPageSegMode)psm);
    /* A photo of mostly texture (ribs, gravel, noise) can keep Tesseract busy
     * for tens of seconds finding "words" in it: each pass gets a deadline,
     * after which the words read so far are used. */
    monitor = TessMonitorCreate();
    if (monitor)
        TessMonitorSetDeadlineMSecs(monitor, OCR_PASS_MS);
    rc = TessBaseAPIRecognize(e->api, monitor);
    TessMonitorDelete(monitor);
    if (rc != 0 && !monitor)
        return -EIO;
    it = TessBaseAPIGetIterator(e->api);
    if (!it)
        return 0; /* nothing on the page */
    do {
        const TessPageIterator *pi = TessResultIteratorGetPageIteratorConst(it);
        struct word w = {0};

        w.text = TessResultIteratorGetUTF8Text(it, RIL_WORD);
        if (!w.text)
            continue;
        if (!w.text[0] || !TessPageIteratorBoundingBox(pi, RIL_WORD, &w.x0, &w.y0, &w.x1, &w.y1)) {
            TessDeleteText(w.text);
            continue;
        }
        w.conf = TessResultIteratorConfidence(it, RIL_WORD);
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 128;
            struct word *nw = cap < 100000 ? realloc(out->w, cap * sizeof(*nw)) : NULL;

            if (!nw) {
                TessDeleteText(w.text);
                r = -ENOMEM;
                break;
            }
            out->w = nw;
            out->cap = cap;
        }
        out->w[out->n++] = w;
        out->conf_sum += w.conf;
    } while (TessResultIteratorNext(it, RIL_WORD));
    TessResultIteratorDelete(it);
    return r;
}

static int by_top(const void *a, const void *b)
{
    const struct word *x = a, *y = b;
    int cx = (x->y0 + x->y1) / 2, cy = (y->y0 + y->y1) / 2;

    return cx != cy ? (cx > cy) - (cx < cy) : (x->x0 > y->x0) - (x->x0 < y->x0);
}

static int by_left(const void *a, const void *b)
{
    const struct word *x = a, *y = b;

    return (x->x0 > y->x0) - (x->x0 < y->x0);
}

/* Lays the words out as text, one line per row of the plate whatever the
 * segmentation mode found: words whose middles sit close to a row's are on
 * that row, left to right. A wide gap between
 * two words becomes two spaces, so a table's columns stay apart. The
 * ocr_word offsets point into the text. */
static int layout(struct page *p, char **text, struct ocr_word **words)
{
    size_t cap = 64, len = 0;
    char *t;
    struct ocr_word *ow;

    for (size_t i = 0; i < p->n; i++)
        cap += strlen(p->w[i].text) + 2;
    t = malloc(cap);
    ow = calloc(p->n ? p->n : 1, sizeof(*ow));
    if (!t || !ow) {
        free(t);
        free(ow);
        return -ENOMEM;
    }
    if (p->n > 1)
        qsort(p->w, p->n, sizeof(*p->w), by_top);
    for (size_t i = 0; i < p->n;) {
        size_t j = i + 1;
        int mid = (p->w[i].y0 + p->w[i].y1) / 2, hgt = p->w[i].y1 - p->w[i].y0;

        long sum = mid;

        /* A word joins the row when its middle is within 0.7 of the first
         * word's height of the row's average middle: a label set a little
         * lower than its neighbours (a table's header) stays on their line.
         * 0.5 and 0.6 read a few plates fewer (scripts/eval-ocr). */
        while (j < p->n) {
            int m = (p->w[j].y0 + p->w[j].y1) / 2;
            int avg = (int)(sum / (long)(j - i));

            if (m - avg > (hgt > 4 ? hgt * 7 / 10 : 2))
                break;
            sum += m;
            j++;
        }
        if (j - i > 1)
            qsort(p->w + i, j - i, sizeof(*p->w), by_left);
        if (len)
            t[len++] = '\n';
        for (size_t k = i; k < j; k++) {
            size_t n = strlen(p->w[k].text);

            if (k > i) {
                int gap = p->w[k].x0 - p->w[k - 1].x1;

                t[len++] = ' ';
                if (gap > 2 * hgt)
                    t[len++] = ' ';
            }
            ow[k].start = len;
            memcpy(t + len, p->w[k].text, n);
            len += n;
            ow[k].end = len;
            ow[k].conf = p->w[k].conf;
        }
        i = j;
    }
    t[len] = '\0';
    *text = t;
    *words = ow;
    return 0;
}

/* Keeps, field by field, the more confident of two reads. */
static void keep_best(struct nameplate *best, const struct nameplate *other)
{
    for (int i = 0; i < NP_FIELD_COUNT; i++)
        if (other->f[i].value[0] && other->f[i].confidence > best->f[i].confidence)
            best->f[i] = other->f[i];
    np_score(best);
}

/* How many of manufacturer, model and serial were read at all. */
static int key_found(const struct nameplate *np)
{
    int n = 0;

    for (int i = NP_MANUFACTURER; i <= NP_SERIAL; i++)
        n += np->f[i].value[0] != '\0';
    return n;
}

static int key_fields(const struct nameplate *np)
{
    int n = 0;

    for (int i = NP_MANUFACTURER; i <= NP_SERIAL; i++)
        n += np->f[i].value[0] && np->f[i].confidence >= NP_CONFIDENT;
    return n;
}

/* One pass: recognize in mode psm, lay out, extract. */
static int pass(struct ocr_engine *e, int psm, struct nameplate *np, struct ocr_stats *st,
                char **text)
{
    struct page p = {0};
    struct ocr_word *words = NULL;
    char *t = NULL;
    long t0 = now_ms(), t1;
    int r;

    r = recognize(e, psm, &p);
    t1 = now_ms();
    st->ocr_ms += t1 - t0;
    st->passes++;
    if (r < 0)
        goto out;
    r = layout(&p, &t, &words);
    if (r < 0)
        goto out;
    r = np_extract(t, strlen(t), words, p.n, np);
    st->extract_ms += now_ms() - t1;
    if (r < 0)
        goto out;
    if ((int)p.n > st->words) {
        st->words = (int)p.n;
        st->mean_conf = p.n ? p.conf_sum / (float)p.n : 0;
    }
    *text = t;
    t = NULL;
out:
    free(t);
    free(words);
    page_clear(&p);
    return r;
}

/* Sparse-text mode (11) finds labels and values scattered over a plate;
 * block mode (6) reads dense, aligned plates better. The first pass that
 * reads manufacturer, model and serial confidently ends the read;
 * otherwise the best value of each field over the passes is kept. */
static const int psms[] = {PSM_SPARSE_TEXT, PSM_SINGLE_BLOCK};

/* How good a read is, to choose between two: key fields first, then the
 * whole read's confidence, then how sure Tesseract was of its words. */
static float read_score(const struct nameplate *np, float mean_conf)
{
    return (float)key_fields(np) * 10.0f + np->confidence + mean_conf / 1000.0f;
}

/* The passes over one page: the first that reads manufacturer, model and
 * serial confidently ends them; otherwise each field keeps its best value
 * over the passes. */
static int read_page(struct ocr_engine *e, PIX *page, struct nameplate *out, struct ocr_stats *st,
                     char **text)
{
    struct nameplate best = {0};
    char *best_text = NULL;
    int r = 0, best_keys = -1;

    TessBaseAPISetImage2(e->api, page);
    /* Tesseract's own estimate of the resolution lost large text (logos)
     * on the test plates; 200 and 300 read equally well, 400 worse. */
    TessBaseAPISetSourceResolution(e->api, 300);
    for (size_t i = 0; i < sizeof(psms) / sizeof(psms[0]); i++) {
        struct nameplate np;
        char *t = NULL;
        int keys;

        r = pass(e, psms[i], &np, st, &t);
        if (r < 0)
            break;
        keys = key_fields(&np);
        if (keys > best_keys) {
            free(best_text);
            best_text = t;
            t = NULL;
            st->psm = psms[i];
            best_keys = keys;
        }
        free(t);
        if (i == 0)
            best = np;
        else
            keep_best(&best, &np);
        if (np_confident(&best))
            break;
    }
    *out = best;
    *text = best_text;
    return r;
}

/* Which way up the page is, by Tesseract's orientation detection: the
 * clockwise quarter turns that make it upright, or 0 when it is upright or
 * the detection is unsure. */
static int upright_turns(struct ocr_engine *e, PIX *page)
{
    const char *script = NULL;
    float conf = 0, sconf = 0;
    int deg = 0;
    BOOL ok;

    /* Orientation needs Tesseract's "osd" data, in an engine of its own. */
    if (!e->osd) {
        e->osd = TessBaseAPICreate();
        if (!e->osd)
            return 0;
        if (TessBaseAPIInit3(e->osd, e->datapath, "osd") != 0) {
            TessBaseAPIDelete(e->osd);
            e->osd = NULL;
            return 0;
        }
    }
    TessBaseAPISetPageSegMode(e->osd, PSM_OSD_ONLY);
    TessBaseAPISetImage2(e->osd, page);
    TessBaseAPISetSourceResolution(e->osd, 300);
    ok = TessBaseAPIDetectOrientationScript(e->osd, &deg, &conf, &script, &sconf);
    TessBaseAPIClear(e->osd);
    if (!ok)
        return 0;
    /* script points into the engine's unicharset (despite capi.h's comment,
     * Tesseract 5 does not allocate it): not freed. */
    if (conf < 0.5f || deg % 90 != 0 || deg < 0 || deg >= 360)
        return 0;
    return (4 - deg / 90) % 4;
}

/* Reads one page, and when the read is nonsense, asks Tesseract which way
 * up the page is and reads it turned. */
static int read_upright(struct ocr_engine *e, PIX *page, struct nameplate *out,
                        struct ocr_stats *st, char **text)
{
    struct nameplate best = {0};
    char *best_text = NULL;
    PIX *turned = NULL;
    int r, turns;

    r = read_page(e, page, &best, st, &best_text);
    if (r < 0)
        goto out;
    /* A plate on its side or upside down reads as nonsense: none of
     * manufacturer, model and serial, or words Tesseract is unsure of. */
    if (!np_confident(&best) && (key_found(&best) == 0 || st->mean_conf < 50)) {
        long t1 = now_ms();

        turns = upright_turns(e, page);
        st->ocr_ms += now_ms() - t1;
        if (turns) {
            struct nameplate np;
            char *t = NULL;
            int words0 = st->words;
            float conf0 = st->mean_conf;

            turned = pixRotateOrth(page, turns);
            if (!turned) {
                r = -ENOMEM;
                goto out;
            }
            st->words = 0;
            st->mean_conf = 0;
            r = read_page(e, turned, &np, st, &t);
            if (r < 0)
                goto out;
            if (read_score(&np, st->mean_conf) > read_score(&best, conf0)) {
                best = np;
                free(best_text);
                best_text = t;
                t = NULL;
                st->rotation = 90 * turns;
            } else {
                st->words = words0;
                st->mean_conf = conf0;
            }
            free(t);
        }
    }
out:
    pixDestroy(&turned);
    *out = best;
    *text = best_text;
    return r;
}

int ocr_read(struct ocr_engine *e, const struct ocr_image *img, struct nameplate *out,
             struct ocr_stats *stats, char **text)
{
    struct ocr_stats st = {0};
    struct nameplate best = {0};
    char *best_text = NULL;
    long t0 = now_ms();
    PIX *gray = NULL, *page = NULL;
    BOX *plate = NULL;
    int r = 0;

    gray = pixConvertTo8(img->pix, 0);
    if (!gray) {
        r = -ENOMEM;
        goto out;
    }
    plate = find_plate(gray);
    page = prepare(gray, plate);
    if (!page) {
        r = -ENOMEM;
        goto out;
    }
    st.prep_ms = now_ms() - t0;
    st.width = pixGetWidth(page);
    st.height = pixGetHeight(page);
    st.cropped = plate != NULL;
    r = read_upright(e, page, &best, &st, &best_text);
    /* A crop that found none of the key fields may have cut the plate:
     * the whole photo is read, and the better read kept. */
    if (r == 0 && plate && key_found(&best) == 0) {
        struct ocr_stats whole = st;
        struct nameplate np;
        char *t = NULL;

        pixDestroy(&page);
        page = prepare(gray, NULL);
        if (!page) {
            r = -ENOMEM;
            goto out;
        }
        whole.words = 0;
        whole.mean_conf = 0;
        r = read_upright(e, page, &np, &whole, &t);
        if (r == 0 && read_score(&np, whole.mean_conf) > read_score(&best, st.mean_conf)) {
            best = np;
            free(best_text);
            best_text = t;
            t = NULL;
            whole.cropped = false;
            whole.width = pixGetWidth(page);
            whole.height = pixGetHeight(page);
            st = whole;
        } else {
            st.passes = whole.passes;
            st.ocr_ms = whole.ocr_ms;
            st.extract_ms = whole.extract_ms;
        }
        free(t);
    }
    if (r < 0)
        goto out;
    *out = best;
    if (text) {
        *text = best_text;
        best_text = NULL;
    }
out:
    TessBaseAPIClear(e->api);
    boxDestroy(&plate);
    pixDestroy(&page);
    pixDestroy(&gray);
    free(best_text);
    st.total_ms = now_ms() - t0;
    if (stats)
        *stats = st;
    return r;
}
