/* The Telegram channel of `rivet serve`: one poller (whichever process holds
 * the PostgreSQL advisory lock), RIVET_WORKERS workers and
 * TELEGRAM_SENDERS senders, all sharing the inbox and outbox tables. */
#ifndef RIVET_TELEGRAM_H
#define RIVET_TELEGRAM_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct telegram;

/* Checks the token with getMe (retrying while the Bot API is unreachable,
 * until *stop), sets the command menu and starts the threads. cfg must
 * outlive the channel. Returns 0 and *ret; -EACCES when Telegram refuses
 * the token; -ECANCELED when stopped first; or -errno. Logs the reason. */
int telegram_start(const struct config *cfg, volatile int *stop, struct telegram **ret);

/* Stops polling, lets each worker finish the update in hand, gives the
 * senders up to TELEGRAM_FLUSH_S seconds to deliver what is due, joins
 * every thread and frees the channel; accepts NULL. */
void telegram_stop(struct telegram *t);

/* Whether the channel works: 0, or -1 and *why (static) when Telegram
 * refused the token, or this process polls and getUpdates has been failing
 * for longer than a long poll and a minute. */
int telegram_health(const struct telegram *t, const char **why);

/* When the poller's loop last turned (now_ms()), for the watchdog; 0
 * before its first turn, -1 without a poller (webhook mode). A turn takes
 * at most the long poll (TELEGRAM_POLL_TIMEOUT_S + 15 s) and a backoff (30
 * s, or the retry_after Telegram asks for), whether Telegram answers or
 * not. */
long telegram_alive(const struct telegram *t);

/* ---- webhook mode (TELEGRAM_WEBHOOK_URL) ---- */
struct db;

/* The secret Telegram sends in X-Telegram-Bot-Api-Secret-Token:
 * TELEGRAM_WEBHOOK_SECRET, or else the hex HMAC-SHA256 of a fixed label
 * keyed with the bot token, so that every process behind a load balancer
 * agrees without another setting. out: at least 257 bytes. */
void telegram_webhook_secret(const struct config *cfg, char *out, size_t n);

/* Stores one Update POSTed to /webhook/telegram (its own transaction).
 * Returns 0 (*dup: it was stored before), -EBADMSG when the body is not an
 * Update, or a database error. */
int telegram_webhook_store(struct db *db, const char *body, size_t len, bool *dup);

#endif
