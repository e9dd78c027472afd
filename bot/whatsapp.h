/* The WhatsApp channel of `rivet serve`: the Cloud API webhook (served by
 * the HTTP server, web.c) writes messages to the inbox; WHATSAPP_WORKERS
 * workers handle them with the same handlers as Telegram; WHATSAPP_SENDERS
 * senders deliver the outbox within WhatsApp's rules (the 24-hour window
 * with the alarm template outside it, per-user and per-number pacing). */
#ifndef RIVET_WHATSAPP_H
#define RIVET_WHATSAPP_H

#include <stddef.h>

struct arena;
struct config;
struct db;
struct whatsapp;

/* Checks the token and number with the Graph API (retrying while it is
 * unreachable, until *stop) and starts the threads. cfg must outlive the
 * channel. Returns 0 and *ret; -EACCES when Meta refuses the token or the
 * number; -ECANCELED when stopped first; or -errno. Logs the reason. */
int whatsapp_start(const struct config *cfg, volatile int *stop, struct whatsapp **ret);

/* Lets each worker finish, gives the senders TELEGRAM_FLUSH_S seconds to
 * deliver what is due, joins and frees; accepts NULL. */
void whatsapp_stop(struct whatsapp *w);

/* What one webhook POST came to. */
struct wa_received {
    int stored, duplicates, rejected; /* messages */
    int statuses;                     /* delivery reports recorded */
    int errors;                       /* value.errors[] entries (logged) */
    int skipped;                      /* malformed messages and statuses, other fields */
};

/* Stores a webhook body whose signature was checked: its messages into the
 * inbox (each message id once), the users' 24-hour windows, the delivery
 * reports on their outbox rows (a failed free-form alarm outside the
 * window is queued again as the template). One transaction. Returns 0;
 * -EBADMSG when the body is not a WhatsApp webhook (nothing stored); or a
 * database error (nothing stored: the caller answers 5xx and Meta sends it
 * again). Needs no running channel: cfg names the business number. */
int whatsapp_webhook(const struct config *cfg, struct db *db, struct arena *a, const char *body,
                     size_t len, struct wa_received *out);

/* Whether the channel works: 0, or -1 and *why (static) when Meta refused
 * the token lately or sends keep failing. */
int whatsapp_health(const struct whatsapp *w, const char **why);

#endif
