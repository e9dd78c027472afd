/* The troubleshooting assistant as a channel offers it to the handlers
 * (struct msg_ask): the LLM providers asked through llm_chat(), with
 * ASSIST_TIMEOUT_S as their timeout, each call measured in /metrics and
 * logged without the question. One per thread: it owns an LLM client.
 * The chat workers and the console chat use it. */
#ifndef RIVET_ASSIST_H
#define RIVET_ASSIST_H

#include "handlers.h"

struct config;
struct llm_provider;
struct assist;

/* An assistant over providers (n may be 0: *ret is then NULL, no
 * assistant) within cfg's ASSIST_* limits. Returns 0, or -ENOMEM. */
int assist_new(const struct config *cfg, const struct llm_provider *providers, int n,
               struct assist **ret);
void assist_free(struct assist *as);

/* For struct msg: NULL when as is NULL. */
const struct msg_ask *assist_msg(const struct assist *as);

/* The inbox row being handled (0: none, the console). When the handler of
 * the same row asks the same question again (a retry after a database
 * error), the answer it already got is given again rather than paid for
 * twice. Accepts NULL. */
void assist_row(struct assist *as, int64_t inbox_id);

#endif
