/* rivet ocr: reads nameplate photos from files, for people, scripts and
 * the evaluation (scripts/eval-ocr). No database. */
#include "rivet.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "photo.h"

static const char ocr_usage[] =
    "Usage: rivet ocr [--json] [--no-llm] [--text] FILE...\n"
    "\n"
    "Reads the nameplate in each photo and prints its fields with their\n"
    "confidence and source (ocr: Tesseract on this machine; llm: the vision LLM,\n"
    "asked only when the local read is weak and LLM_URL or LLM_PROVIDERS is set).\n"
    "\n"
    "  --json    one JSON object per file and line:\n"
    "            {\"file\", \"fields\": {NAME: {\"value\", \"confidence\", \"source\"}},\n"
    "             \"confidence\", \"llm_used\", \"ms\": {...}} or {\"file\", \"error\"}\n"
    "  --no-llm  never ask the LLM\n"
    "  --text    FILE is OCR text already: only extract the fields from it\n"
    "  --show-text  print the OCR text too (JSON: member \"text\")\n"
    "\n"
    "Exits 1 when a file could not be read, after reading the others.\n";

/* Reads a whole file of at most max bytes (one more is read to tell a
 * larger file). *ret is malloc'd. Returns 0, -EFBIG, or -errno. */
static int slurp(const char *path, size_t max, char **ret, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (!f)
        return -errno;
    buf = malloc(max + 2);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    n = fread(buf, 1, max + 1, f);
    if (ferror(f)) {
        fclose(f);
        free(buf);
        return -EIO;
    }
    fclose(f);
    if (n > max) {
        free(buf);
        return -EFBIG;
    }
    buf[n] = '\0';
    *ret = buf;
    *len = n;
    return 0;
}

static json_t *fields_json(const struct nameplate *np)
{
    json_t *o = json_object();

    for (int i = 0; i < NP_FIELD_COUNT; i++) {
        const struct np_value *v = &np->f[i];

        if (!v->value[0])
            continue;
        json_object_set_new(o, np_field_name(i),
                            json_pack("{s:s, s:f, s:s}", "value", v->value, "confidence",
                                      (double)((int)(v->confidence * 100 + 0.5f)) / 100.0, "source",
                                      np_source_name(v->source)));
    }
    return o;
}

static void print_text(const char *file, const struct photo_result *res, bool text_only)
{
    printf("%s\n", file);
    for (int i = 0; i < NP_FIELD_COUNT; i++) {
        const struct np_value *v = &res->np.f[i];

        if (v->value[0])
            printf("  %-16s %-28s %.2f %s\n", np_field_name(i), v->value, (double)v->confidence,
                   np_source_name(v->source));
    }
    printf("  confidence %.2f", (double)res->np.confidence);
    if (!text_only)
        printf(", %ld ms (prepare %ld, tesseract %ld in %d passes, psm %d, %d words at %.0f%%%s%s)",
               res->total_ms, res->ocr.prep_ms, res->ocr.ocr_ms, res->ocr.passes, res->ocr.psm,
               res->ocr.words, (double)res->ocr.mean_conf, res->ocr.rotation ? ", turned" : "",
               res->ocr.cropped ? ", cropped" : "");
    if (res->llm_used)
        printf(", llm %s %ld ms", res->usage.provider, res->usage.ms);
    else if (res->llm_asked)
        printf(", llm failed: %s", res->llm_detail);
    printf("\n");
    if (res->text[0])
        printf("  text:\n%s\n", res->text);
}

static void print_json(const char *file, const struct photo_result *res, bool text_only)
{
    json_t *o =
        json_pack("{s:s, s:o, s:f, s:b, s:b}", "file", file, "fields", fields_json(&res->np),
                  "confidence", (double)((int)(res->np.confidence * 100 + 0.5f)) / 100.0,
                  "llm_used", res->llm_used, "llm_asked", res->llm_asked);
    char *s;

    if (!text_only) {
        json_object_set_new(
            o, "ms",
            json_pack("{s:I, s:I, s:I, s:I, s:I}", "total", (json_int_t)res->total_ms, "prepare",
                      (json_int_t)res->ocr.prep_ms, "tesseract", (json_int_t)res->ocr.ocr_ms,
                      "extract", (json_int_t)res->ocr.extract_ms, "llm",
                      (json_int_t)res->usage.ms));
        json_object_set_new(o, "engine", json_string(res->engine));
        json_object_set_new(o, "passes", json_integer(res->ocr.passes));
        json_object_set_new(o, "psm", json_integer(res->ocr.psm));
        json_object_set_new(o, "rotation", json_integer(res->ocr.rotation));
        json_object_set_new(o, "cropped", json_boolean(res->ocr.cropped));
        json_object_set_new(o, "words", json_integer(res->ocr.words));
        json_object_set_new(o, "word_confidence", json_real((double)res->ocr.mean_conf));
        json_object_set_new(o, "image",
                            json_pack("{s:i, s:i, s:s}", "width", res->width, "height", res->height,
                                      "format", res->format ? res->format : ""));
        json_object_set_new(o, "sha256", json_string(res->sha256));
    }
    if (res->text[0])
        json_object_set_new(o, "text", json_string(res->text));
    if (res->llm_asked) {
        json_object_set_new(o, "llm",
                            json_pack("{s:s, s:s, s:i, s:i, s:f}", "provider", res->usage.provider,
                                      "model", res->usage.model, "prompt_tokens",
                                      res->usage.prompt_tokens, "completion_tokens",
                                      res->usage.completion_tokens, "cost_usd",
                                      res->usage.cost_usd));
        if (res->llm_error)
            json_object_set_new(o, "llm_error", json_string(res->llm_detail));
    }
    s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(o);
}

static void print_error(const char *file, const char *why, bool as_json)
{
    if (as_json) {
        json_t *o = json_pack("{s:s, s:s}", "file", file, "error", why);
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

        if (s)
            puts(s);
        free(s);
        json_decref(o);
    } else {
        fprintf(stderr, "rivet ocr: %s: %s\n", file, why);
    }
}

int cmd_ocr(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"no-llm", no_argument, NULL, 'n'},
        {"text", no_argument, NULL, 't'}, {"show-text", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'}, {0},
    };
    struct llm_provider providers[LLM_MAX_PROVIDERS];
    struct photo_reader *pr = NULL;
    bool as_json = false, no_llm = false, text_only = false, show_text = false;
    int c, n_providers = 0, failed = 0, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            as_json = true;
            break;
        case 'n':
            no_llm = true;
            break;
        case 't':
            text_only = true;
            break;
        case 's':
            show_text = true;
            break;
        case 'h':
            fputs(ocr_usage, stdout);
            return 0;
        default:
            return bad_option("ocr", argv);
        }
    }
    if (optind >= argc)
        return usage_error("ocr", "name at least one FILE");
    if (!no_llm && !text_only) {
        r = rivet_llm_config(providers, &n_providers);
        if (r)
            return r;
    }
    if (photo_reader_new(providers, n_providers, NULL, &pr) < 0) {
        fprintf(stderr, "rivet ocr: out of memory\n");
        return 1;
    }
    for (int i = optind; i < argc; i++) {
        struct photo_result res;
        const char *why = NULL;
        char *buf = NULL;
        size_t len = 0;

        r = slurp(argv[i], text_only ? (1u << 20) : OCR_MAX_BYTES, &buf, &len);
        if (r < 0) {
            print_error(argv[i],
                        r == -EFBIG ? (text_only ? "larger than 1 MB" : "larger than 20 MB")
                                    : strerror(-r),
                        as_json);
            failed++;
            continue;
        }
        if (text_only) {
            memset(&res, 0, sizeof(res));
            r = np_extract(buf, len, NULL, 0, &res.np);
            why = "out of memory";
        } else {
            r = photo_read(pr, buf, len, true, &res, &why);
        }
        free(buf);
        if (r < 0) {
            print_error(argv[i], why ? why : strerror(-r), as_json);
            failed++;
            if (r == -ENOENT || r == -ENOMEM)
                break; /* the next file will not fare better */
            continue;
        }
        if (!show_text || text_only)
            res.text[0] = '\0';
        if (as_json)
            print_json(argv[i], &res, text_only);
        else
            print_text(argv[i], &res, text_only);
    }
    photo_reader_free(pr);
    return failed ? 1 : 0;
}
