/* The vision-LLM fallback for nameplates (OpenAI-compatible
 * /v1/chat/completions over libcurl) lands with the photo issue. For now
 * the module reports the HTTP client it is built on. */
#ifndef RIVET_LLM_H
#define RIVET_LLM_H

/* "libcurl X (TLS library)"; a static buffer, not thread-safe. */
const char *llm_http_version(void);

#endif
