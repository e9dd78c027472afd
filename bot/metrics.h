/* Rivet's counters, gauges and histograms, served by GET /metrics in the
 * Prometheus text exposition format (version 0.0.4). Every family is
 * declared once, with its type, help text, label names and (histograms)
 * bucket bounds, in the table in metrics.c. Any thread may update them at
 * any time; each call takes one short mutex. The hot MQTT path keeps its
 * own counters (alerts_counters()) and the HTTP thread copies them in with
 * metric_set() at scrape time.
 *
 * Labels are given as name/value pairs ending with NULL, in the order the
 * table declares them; a family without labels takes just the NULL:
 *     metric_inc("rivet_messages_sent_total", "channel", "telegram", "result", "sent", NULL);
 *     metric_set("rivet_mqtt_connected", 1, NULL);
 * The strings are only read during the call. A label value keeps at most
 * its first 64 bytes (cut on a character boundary), and each byte that is
 * not well-formed UTF-8 becomes '?'. A family keeps at most 64 label
 * combinations; a new one past that is dropped.
 *
 * A family name, label set, call or value that does not match the table is
 * a programming error: it is ignored (and counted in
 * rivet_metrics_misuse_total), never a crash. So is a dropped label
 * combination. */
#ifndef RIVET_METRICS_H
#define RIVET_METRICS_H

struct buf;

/* Adds v to a counter (v finite and >= 0) or to a gauge (v finite, either
 * sign). */
void metric_add(const char *name, double v, ...) __attribute__((sentinel));
#define metric_inc(name, ...) metric_add((name), 1.0, __VA_ARGS__)
/* Sets a gauge (any value, NaN and infinities included), or a counter kept
 * elsewhere (alerts_counters(); v finite and >= 0). */
void metric_set(const char *name, double v, ...) __attribute__((sentinel));
/* Records one observation (seconds, finite) in a histogram: it counts in
 * the first bucket whose bound is >= v. */
void metric_observe(const char *name, double v, ...) __attribute__((sentinel));

/* Appends the families to out as Prometheus text, in table order: a family
 * without labels always (0 until first updated), one with labels once it
 * has a label combination. Each family is a # HELP line (help escaped:
 * \\ \n), a # TYPE line, then its series in creation order (label values
 * escaped: \\ \" \n); a histogram series as cumulative _bucket{le=...}
 * lines ending with le="+Inf", then _sum and _count. Values are integers
 * where integral, otherwise the shortest decimal that reads back exactly;
 * NaN, +Inf, -Inf spelled so. The registry is locked only while the text
 * is built in memory. Returns 0, or -E2BIG past out's maximum or -ENOMEM
 * (as buf_add()), and then leaves out as it was. */
int metrics_render(struct buf *out);

/* Registers fn to run at the start of each metrics_render(), outside the
 * registry's lock, to copy in with metric_set() what another module keeps
 * (a per-process cap and its use). Registering the same fn again changes
 * nothing. Returns 0, or -ENOSPC past 8 hooks. */
int metrics_on_render(void (*fn)(void));

/* Forgets every series and every hook (tests). */
void metrics_reset(void);

#endif
