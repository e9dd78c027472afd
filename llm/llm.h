/* The vision-LLM fallback for nameplates: an OpenAI-compatible
 * POST {url}/chat/completions with the photo as a base64 data URL, asking
 * for the nameplate fields as JSON. A chain of providers is tried in order;
 * one that keeps failing is skipped for a while (process-wide, shared by
 * every thread). Serves OpenAI, Groq, Gemini's OpenAI endpoint, Ollama,
 * llama.cpp and vLLM alike.
 *
 * API keys never appear in a log line or an error message. */
#ifndef RIVET_LLM_H
#define RIVET_LLM_H

#include <stddef.h>
#include <stdint.h>

#include "nameplate.h"

/* The largest answer read from a provider; a larger one is an error. */
#define LLM_MAX_RESPONSE (256u << 10)
#define LLM_MAX_PROVIDERS 4
/* The largest image sent (bytes before base64); a larger one is -E2BIG. */
#define LLM_MAX_IMAGE (20u << 20)

struct llm_provider {
    char name[32]; /* for logs and the reads table: "default", "groq", ... */
    char url[512]; /* base URL, "/chat/completions" is appended */
    char model[128];
    char api_key[512]; /* "" for none (a local server) */
    int timeout_ms;
    double usd_per_mtok_in, usd_per_mtok_out; /* for the cost estimate; 0 = unknown */
};

/* The providers, from the environment (see docs/ocr.md):
 *   LLM_URL, LLM_MODEL, LLM_API_KEY, LLM_TIMEOUT_S, LLM_PRICE_IN, LLM_PRICE_OUT
 *     one provider named "default";
 *   LLM_PROVIDERS=a,b  a chain; each NAME (letters, digits, _) reads
 *     LLM_<NAME>_URL, LLM_<NAME>_MODEL, LLM_<NAME>_API_KEY, LLM_<NAME>_TIMEOUT_S,
 *     LLM_<NAME>_PRICE_IN, LLM_<NAME>_PRICE_OUT (NAME upper-cased).
 * getenv_fn is getenv in the program, a table in tests. Returns the count
 * (0: no LLM configured), or -EINVAL with err (size errn) saying which
 * setting is wrong (never its value). */
int llm_config_load(const char *(*getenv_fn)(const char *), struct llm_provider *out, int max,
                    char *err, size_t errn);

struct llm;

/* A client for the chain (copied). One per thread: it owns a CURL handle.
 * stop, when not NULL, ends a call in progress with -ECANCELED once set.
 * Returns 0 and *ret, or -ENOMEM. */
int llm_new(const struct llm_provider *providers, int n, volatile int *stop, struct llm **ret);
void llm_free(struct llm *l);

/* What one call cost. */
struct llm_usage {
    char provider[32]; /* the provider that answered, "" when none did */
    char model[128];
    int prompt_tokens, completion_tokens;
    double cost_usd; /* estimated from the provider's prices; 0 when unknown */
    long ms;         /* wall time of the whole chain */
    int attempts;    /* providers tried */
};

/* Asks the chain to read the nameplate in image (JPEG or PNG bytes, mime
 * "image/jpeg" or "image/png"). Fields the LLM could not read are left
 * empty; every value it gave has source NP_SRC_LLM. Returns 0 and fills
 * out and usage; or -ENOENT when no provider is configured, -EAGAIN when
 * every provider is skipped for failing, -ETIMEDOUT, -ECONNREFUSED,
 * -EBADMSG (an answer that is not the schema), -E2BIG (answer too large),
 * -EIO (an HTTP error from the last provider tried), -ECANCELED. usage is
 * filled in on failure too. err (size errn) gets a line for the log, with
 * no key or URL in it. */
int llm_read_nameplate(struct llm *l, const void *image, size_t len, const char *mime,
                       struct nameplate *out, struct llm_usage *usage, char *err, size_t errn);

/* Parses a provider's chat.completion answer: the first choice's message
 * content must be one JSON object (a ```json fence around it is allowed)
 * whose members are field names (np_field_name) with string, number or null
 * values; unknown members are ignored; values are checked (length, plain
 * text). usage gets the token counts when present. Returns 0, -EBADMSG or
 * -E2BIG. Pure: for unit tests and fuzzing. */
int llm_parse_answer(const char *body, size_t len, struct nameplate *out, struct llm_usage *usage);

/* Forgets which providers failed and are skipped (the process-wide state
 * behind -EAGAIN). For tests. */
void llm_reset_skips(void);

/* "libcurl X (TLS library)"; a static buffer, not thread-safe. */
const char *llm_http_version(void);

#endif
