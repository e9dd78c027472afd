/* The troubleshooting assistant (assist.h). */
#include "assist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "config.h"
#include "llm.h"
#include "log.h"
#include "metrics.h"

struct assist {
    struct llm *llm;
    struct msg_ask ask;
    int64_t row;
    /* The last answer, for a retry of its row (assist_row()). */
    int64_t memo_row;
    char *memo_question, *memo_text;
    struct llm_usage memo_usage;
};

static void memo_clear(struct assist *as)
{
    free(as->memo_question);
    free(as->memo_text);
    as->memo_question = as->memo_text = NULL;
    as->memo_row = 0;
}

void assist_row(struct assist *as, int64_t inbox_id)
{
    if (as)
        as->row = inbox_id;
}

static void answer_from(struct arena *a, const char *text, const struct llm_usage *u,
                        struct ask_answer *out)
{
    *out = (struct ask_answer){.text = text,
                               .truncated = u->truncated,
                               .provider = arena_strdup(a, u->provider),
                               .model = arena_strdup(a, u->model),
                               .ms = u->ms,
                               .prompt_tokens = u->prompt_tokens,
                               .completion_tokens = u->completion_tokens,
                               .cost_usd = u->cost_usd};
}

/* struct msg_ask's ask: one question to the LLM chain, measured. */
static int ask(void *ctx, struct arena *a, const char *system, const char *question,
               struct ask_answer *out)
{
    struct assist *as = ctx;
    /* An answer of max_chars characters, at most 4 bytes each. */
    size_t cap = (size_t)as->ask.max_chars * 4 + 1;
    char *text = arena_alloc(a, cap), err[200] = "", q[300];
    struct llm_usage u = {0};
    const char *result;
    int r;

    if (!text)
        return -ENOMEM;
    if (as->row && as->memo_row == as->row && as->memo_question &&
        strcmp(as->memo_question, question) == 0) {
        answer_from(a, arena_strdup(a, as->memo_text), &as->memo_usage, out);
        log_info("assist.again", "inbox=%lld memo=1", (long long)as->row);
        return out->text ? 0 : -ENOMEM;
    }
    /* About 3 characters a token in English, 2 in Cyrillic or Greek: room
     * for those, with a closing sentence; the answer is cut to max_chars. */
    r = llm_chat(as->llm, system, question, as->ask.max_chars / 2 + 64, text, cap, &u, err,
                 sizeof(err));
    answer_from(a, r == 0 ? text : NULL, &u, out);
    if (r == 0 && as->row) {
        memo_clear(as);
        as->memo_question = strdup(question);
        as->memo_text = strdup(text);
        if (as->memo_question && as->memo_text) {
            as->memo_row = as->row;
            as->memo_usage = u;
        }
    }
    result = r == 0 ? "ok" : r == -ETIMEDOUT ? "timeout" : "failed";
    metric_inc("rivet_assist_requests_total", "result", result, NULL);
    metric_observe("rivet_assist_seconds", u.ms / 1000.0, NULL);
    if (u.cost_usd > 0)
        metric_add("rivet_assist_cost_usd_total", u.cost_usd, NULL);
    if (r == 0)
        log_info("assist.answer", "provider=%s ms=%ld tokens_in=%d tokens_out=%d cost_usd=%.6f%s",
                 u.provider, u.ms, u.prompt_tokens, u.completion_tokens, u.cost_usd,
                 u.truncated ? " truncated=1" : "");
    else
        log_warn("assist.failed", "err=%s ms=%ld attempts=%d detail=%s", strerror(-r), u.ms,
                 u.attempts, log_quote(q, sizeof(q), err));
    return r;
}

int assist_new(const struct config *cfg, const struct llm_provider *providers, int n,
               struct assist **ret)
{
    struct llm_provider p[LLM_MAX_PROVIDERS];
    struct assist *as;

    *ret = NULL;
    if (n <= 0)
        return 0;
    if (n > LLM_MAX_PROVIDERS)
        n = LLM_MAX_PROVIDERS;
    memcpy(p, providers, sizeof(p[0]) * (size_t)n);
    for (int i = 0; i < n; i++)
        if (p[i].timeout_ms > cfg->assist_timeout_s * 1000)
            p[i].timeout_ms = cfg->assist_timeout_s * 1000;
    as = calloc(1, sizeof(*as));
    if (!as || llm_new(p, n, NULL, &as->llm) < 0) {
        free(as);
        return -ENOMEM;
    }
    /* The question's whole wait, however many providers are tried. */
    llm_set_total_timeout(as->llm, cfg->assist_timeout_s * 1000);
    as->ask = (struct msg_ask){.ask = ask,
                               .ctx = as,
                               .max_chars = cfg->assist_max_chars,
                               .user_per_hour = cfg->assist_user_per_hour,
                               .factory_per_hour = cfg->assist_factory_per_hour,
                               .budget_usd = cfg->assist_budget_usd};
    *ret = as;
    return 0;
}

void assist_free(struct assist *as)
{
    if (!as)
        return;
    memo_clear(as);
    llm_free(as->llm);
    free(as);
}

const struct msg_ask *assist_msg(const struct assist *as)
{
    return as ? &as->ask : NULL;
}
