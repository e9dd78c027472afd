/* The LLM client: an OpenAI-compatible POST {url}/chat/completions.
 * llm_read_nameplate is the vision fallback for nameplates (the photo as a
 * base64 data URL, the fields asked for as JSON); llm_chat asks a plain-text
 * question (troubleshooting help for technicians). Both go through the same
 * chain of providers, tried in order;
 * one that keeps failing is skipped for a while (process-wide, shared by
 * every thread). Serves OpenAI, Groq, Gemini's OpenAI endpoint, Ollama,
 * llama.cpp and vLLM alike.
 *
 * API keys never appear in a log line or an error message. */
#ifndef RIVET_LLM_H
#define RIVET_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nameplate.h"

/* The largest answer read from a provider; a larger one is an error. */
#define LLM_MAX_RESPONSE (256u << 10)
#define LLM_MAX_PROVIDERS 4
/* The largest image sent (bytes before base64); a larger one is -E2BIG. */
#define LLM_MAX_IMAGE (20u << 20)
/* The largest prompt of llm_chat (system and user text together, bytes);
 * a larger one is -E2BIG. */
#define LLM_MAX_PROMPT (64u << 10)
/* max_tokens of llm_chat: from 1 to this. */
#define LLM_MAX_CHAT_TOKENS 16384
/* The smallest answer buffer llm_chat and llm_parse_text take. */
#define LLM_MIN_ANSWER 8

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

/* Bounds every later call through l, the whole chain together, to ms (0:
 * no bound beyond each provider's own timeout): a provider gets what is
 * left, and one not tried in time gives -ETIMEDOUT. */
void llm_set_total_timeout(struct llm *l, int ms);

/* What one call cost. */
struct llm_usage {
    char provider[32]; /* the provider that answered, "" when none did */
    char model[128];
    int prompt_tokens, completion_tokens;
    double cost_usd; /* estimated from the provider's prices; 0 when unknown */
    long ms;         /* wall time of the whole chain */
    int attempts;    /* providers tried */
    bool truncated;  /* the answer was cut: by the provider (finish_reason
                        "length") or, by llm_chat, to fit the caller's buffer */
};

/* Asks the chain to read the nameplate in image (JPEG or PNG bytes, mime
 * "image/jpeg" or "image/png"). Fields the LLM could not read are left
 * empty; every value it gave has source NP_SRC_LLM. Returns 0 and fills
 * out and usage; or -ENOENT when no provider is configured, -EINVAL (not a
 * JPEG or PNG), -EAGAIN when every provider is skipped for failing,
 * -ETIMEDOUT, -ECONNREFUSED, -EBADMSG (an answer that is not the schema),
 * -E2BIG (an image over LLM_MAX_IMAGE, or an answer too large), -EIO (an
 * HTTP error from the last provider tried), -EBUSY (no slot under
 * llm_set_max_in_flight() in time), -ECANCELED, -ENOMEM. out is
 * written only on success; usage is filled in on failure too. err (size
 * errn) gets a line for the log, with no key or URL in it. */
int llm_read_nameplate(struct llm *l, const void *image, size_t len, const char *mime,
                       struct nameplate *out, struct llm_usage *usage, char *err, size_t errn);

/* Asks the chain a plain-text question: messages [{system}, {user}] (the
 * system message left out when system is NULL or ""), max_tokens as given,
 * temperature 0.2, no response_format. Same chain (the next provider on
 * any failure but a cancel), skipping, timeouts, cancelling and cost
 * estimate as llm_read_nameplate; a failure here counts towards skipping
 * the provider for nameplates too, and the other way round, except an
 * answer without text (a refusal, a model that spent max_tokens thinking):
 * the provider is up.
 *
 * system and user are borrowed, valid UTF-8, together at most
 * LLM_MAX_PROMPT bytes; user is not empty. The answer (llm_parse_text: the
 * first choice's text, cleaned) is copied into answer (size answer_size, at
 * least LLM_MIN_ANSWER), NUL-terminated; when it does not fit it is cut at
 * the last line or sentence end that fits (else a space, else a character
 * boundary; never more than half the room lost to that) and "…" is
 * appended, and usage->truncated is set, as it is when the provider stopped
 * at max_tokens (finish_reason "length").
 *
 * Returns 0; or -ENOENT when no provider is configured, -EINVAL (NULL or
 * empty user, text that is not UTF-8, max_tokens outside 1 to
 * LLM_MAX_CHAT_TOKENS, answer NULL or smaller than LLM_MIN_ANSWER), -EAGAIN
 * when every provider is skipped for failing, -ETIMEDOUT, -ECONNREFUSED,
 * -EBADMSG (an answer with no text), -E2BIG (a prompt over LLM_MAX_PROMPT,
 * or an answer over LLM_MAX_RESPONSE), -EIO (an HTTP error from the last
 * provider tried), -EBUSY (no slot under llm_set_max_in_flight() in time),
 * -ECANCELED, -ENOMEM. answer is written only on success;
 * usage (may be NULL) is filled in on failure too. err (size errn) gets a
 * line for the log ("name: what happened" per provider), with no key, URL
 * or prompt text in it. */
int llm_chat(struct llm *l, const char *system, const char *user, int max_tokens, char *answer,
             size_t answer_size, struct llm_usage *usage, char *err, size_t errn);

/* Parses a provider's chat.completion answer: the first choice's message
 * content must be one JSON object (a ```json fence around it is allowed)
 * whose members are field names (np_field_name) with string, number or null
 * values; unknown members are ignored; values are checked (length, plain
 * text). usage gets the token counts when present, and truncated when the
 * provider stopped at max_tokens. Returns 0, -EBADMSG or -E2BIG. Pure: for
 * unit tests and fuzzing. */
int llm_parse_answer(const char *body, size_t len, struct nameplate *out, struct llm_usage *usage);

/* Parses a provider's chat.completion answer as text: the first choice's
 * message content must be a string of valid UTF-8 that is not empty once
 * trimmed. It is cleaned: control characters other than \n and \t are
 * dropped (C0, DEL, C1, bidirectional overrides and isolates, U+FEFF; \r
 * too), U+2028 and U+2029 become \n, lines of only spaces and tabs become
 * empty, more than two blank lines in a row become two, and white space
 * around the whole is trimmed. Fences and other markup are kept as they
 * are. The text is copied into out (size outn, at least LLM_MIN_ANSWER),
 * NUL-terminated, cut as llm_chat describes when it does not fit. usage
 * (may be NULL) gets the token counts and truncated (finish_reason
 * "length") as soon as the envelope is read, and truncated also when the
 * text was cut here. Returns 0, -EBADMSG, -E2BIG (body over
 * LLM_MAX_RESPONSE), -EINVAL (out NULL or outn under LLM_MIN_ANSWER) or
 * -ENOMEM; out is written only on success. Pure: for unit tests and
 * fuzzing. */
int llm_parse_text(const char *body, size_t len, char *out, size_t outn, struct llm_usage *usage);

/* Caps the LLM requests in flight across the process, every struct llm
 * together, at n (LLM_MAX_IN_FLIGHT; 0, the default, is no cap). A call
 * (llm_read_nameplate, llm_chat) that finds n in flight waits for a slot
 * within its own time (its total timeout when one is set, else the longest
 * timeout of its providers), then gives -EBUSY with nothing sent; a stop
 * flag set meanwhile gives -ECANCELED. Safe from any thread. */
void llm_set_max_in_flight(int n);

/* The cap's state: requests in flight, the cap (0: none), calls that had
 * to wait for a slot and calls that gave up waiting (-EBUSY), since the
 * process started. */
struct llm_flight {
    int in_flight, max;
    uint64_t waited, busy;
};
void llm_flight_stats(struct llm_flight *out);

/* Forgets which providers failed and are skipped (the process-wide state
 * behind -EAGAIN). For tests. */
void llm_reset_skips(void);

/* "libcurl X (TLS library)"; a static buffer, not thread-safe. */
const char *llm_http_version(void);

#endif
