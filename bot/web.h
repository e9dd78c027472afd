/* What `rivet serve` answers over HTTP (HTTP_LISTEN): the WhatsApp and
 * Telegram webhooks, GET /healthz and GET /metrics. The server starts
 * before the channels, so webhooks are stored and /healthz answers (503,
 * "starting") while they come up; web_attach() then tells it which parts
 * run. */
#ifndef RIVET_WEB_H
#define RIVET_WEB_H

struct alerts;
struct config;
struct telegram;
struct whatsapp;
struct web;

/* Binds HTTP_LISTEN and serves. cfg must outlive it. Returns 0 and *ret;
 * or -errno from http_start() (logged). */
int web_start(const struct config *cfg, struct web **ret);

/* The parts that run (each may be NULL: off); health and metrics read
 * them from now on. */
void web_attach(struct web *w, struct telegram *tg, struct whatsapp *wa, struct alerts *al);

/* The port bound (HTTP_LISTEN may say 0). */
int web_port(const struct web *w);

/* Stops serving (requests in hand finish), closes the database
 * connections, frees; accepts NULL. Call it before stopping the parts. */
void web_stop(struct web *w);

#endif
