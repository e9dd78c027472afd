/* The alert thread of `rivet serve`: an MQTT client (libmosquitto) that
 * subscribes to the plant's telemetry, evaluates each factory's rules, records
 * alarms and queues them for the chats of the people who should act.
 * docs/alerts.md tells the whole story. */
#ifndef RIVET_MQTT_H
#define RIVET_MQTT_H

#include "alert.h"

struct config;
struct alerts;

/* Starts the thread (it connects, and reconnects, on its own). cfg must
 * outlive it. Returns 0 and *ret, or -errno. */
int alerts_start(const struct config *cfg, struct alerts **ret);

/* Flushes what it saw of the devices, disconnects, joins the thread and
 * frees; accepts NULL. */
void alerts_stop(struct alerts *al);

/* What the thread has done since it started, for logs and /metrics. */
struct alert_counters {
    unsigned long received;                    /* messages from the broker */
    unsigned long evaluated;                   /* telemetry run through the rules */
    unsigned long dropped[DROP_REASON_COUNT];  /* by reason */
    unsigned long alarms[SEV_COUNT];           /* alarms recorded, by severity */
    unsigned long repeats;                     /* a rule fired inside its cooldown */
    unsigned long deliveries, held, summaries; /* alarm messages queued, held, storm summaries */
    unsigned long escalations, back_online;
    unsigned long connects, db_errors;
    int connected; /* to the broker, now */
};

void alerts_counters(struct alerts *al, struct alert_counters *out);

/* Asks the thread to load the rules again at its next turn (within 50 ms
 * while the database is up), as a NOTIFY does. Safe from any thread. */
void alerts_reload(struct alerts *al);

/* When the thread's loop last turned (now_ms()), 0 before its first turn:
 * a turn takes at most a few seconds (a 3 s connect check, queries under
 * the statement timeout). Safe from any thread. */
long alerts_alive(struct alerts *al);

#endif
