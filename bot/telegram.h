/* The Telegram channel of `rivet serve`: one poller (whichever process holds
 * the PostgreSQL advisory lock), RIVET_WORKERS workers and
 * TELEGRAM_SENDERS senders, all sharing the inbox and outbox tables. */
#ifndef RIVET_TELEGRAM_H
#define RIVET_TELEGRAM_H

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

#endif
