/* Plant alarms in the database (sql/0005_alerts.sql): devices, alert rules,
 * alarms, their recipients and deliveries, subscriptions and mutes. Same
 * conventions as db.h: 0 or -errno, every function that touches tenant data
 * takes the factory id, strings owned by the arena passed in. Times shown to
 * people are formatted in the factory's timezone by PostgreSQL. */
#ifndef RIVET_DB_ALARM_H
#define RIVET_DB_ALARM_H

#include <stdbool.h>
#include <stdint.h>

struct arena;
struct db;

/* NOTIFY channel: rules or a factory's alert settings changed; the alert
 * thread reloads. Sent by the functions below that change them. */
#define ALERT_RULES_EVENT "rivet_rules"

/* ---- factories, as the alert thread sees them ---- */
struct alert_factory {
    int64_t id;
    const char *slug, *timezone;
    int utc_offset_s; /* of timezone, now (refreshed with every load) */
    bool auto_register;
    int offline_s, escalate_s, max_devices; /* 0: off (offline, escalation) */
    int n_devices;
};

/* Every factory with its alert settings. */
int db_alert_factories(struct db *db, struct arena *a, struct alert_factory **ret, int *n);
/* The UTC offset, in seconds, of the factory's timezone at the instant
 * utc (seconds since the epoch): for `rivet rule test` and for telemetry
 * with an old timestamp. */
int db_factory_utc_offset(struct db *db, int64_t factory_id, double utc, int *ret);

/* Sets one alert setting of a factory and notifies ALERT_RULES_EVENT.
 * key: "auto_register" (value "on"/"off"), "offline_s", "escalate_s",
 * "max_devices" (integers, 0 turns offline and escalation off), "timezone"
 * (a name PostgreSQL knows). -EINVAL with a bad key or value. */
int db_factory_set(struct db *db, int64_t factory_id, const char *key, const char *value);

/* ---- devices ---- */
struct device {
    int64_t id, factory_id, equipment_id; /* equipment_id 0: not linked */
    const char *key;
    const char *equipment_number, *equipment_label; /* NULL when not linked */
    const char *parameters;                         /* "a, b, c" */
    const char *last_seen;                          /* local "YYYY-MM-DD HH:MM", NULL: never */
    double last_seen_epoch;                         /* 0: never */
    bool offline;                                   /* has an open offline alarm */
};

/* Every device of every factory (the alert thread's cache at start). */
int db_devices_load(struct db *db, struct arena *a, struct device **ret, int *n);
/* A factory's devices by key, a page; *total gets how many. */
int db_device_list(struct db *db, struct arena *a, int64_t factory_id, int offset, int limit,
                   struct device **ret, int *n, int *total);
int db_device_get(struct db *db, struct arena *a, int64_t factory_id, const char *key,
                  struct device *ret);
/* Registers a device seen for the first time (or returns the one another
 * process registered meanwhile). -ENOSPC when the factory has max_devices
 * already. */
int db_device_register(struct db *db, struct arena *a, int64_t factory_id, const char *key,
                       int max_devices, struct device *ret);
/* Links a device to a machine (equipment_id 0: unlinks). -ENOENT when the
 * device is unknown. */
int db_device_link(struct db *db, int64_t factory_id, const char *key, int64_t equipment_id);
/* Unlinks every device of a machine; *keys (arena) gets their keys,
 * comma-separated, or NULL when none was linked. */
int db_device_unlink_all(struct db *db, struct arena *a, int64_t factory_id, int64_t equipment_id,
                         const char **keys);

/* What the alert thread saw of a device since its last flush. */
struct device_seen {
    int64_t device_id;
    double last_seen;          /* seconds since the epoch */
    const char *const *params; /* new metric names, may be NULL */
    int n_params;
};

/* In one statement: moves each device's last_seen forward (never back),
 * adds the parameter names (sorted, at most 256 kept), and resolves the
 * open offline alarms of these devices ("back online"). *back (arena) gets
 * those alarms' ids and *factories their factory ids. */
int db_devices_seen(struct db *db, struct arena *a, const struct device_seen *s, int n,
                    int64_t **back, int64_t **factories, int *n_back);

/* Raises an offline alarm (severity high) for every device silent longer
 * than its factory's offline_s that has none open, skipping factories whose
 * offline_s is longer than listening_s (Rivet has not listened long enough
 * to know). *ids and *factories (arena) get the new alarms. */
int db_devices_offline(struct db *db, struct arena *a, double listening_s, int64_t **ids,
                       int64_t **factories, int *n);

/* ---- rules ---- */
struct alert_rule {
    int64_t id, factory_id;
    const char *name, *severity, *definition; /* definition: the rule's JSON */
    bool active;
    const char *updated_at; /* local "YYYY-MM-DD HH:MM" */
};

/* Stores a rule (definition is the whole rule as JSON, already checked by
 * rule_compile()). replace: a rule of the same name is replaced, else
 * -EEXIST. *id gets its id. Notifies ALERT_RULES_EVENT. */
int db_rule_save(struct db *db, int64_t factory_id, const char *name, const char *severity,
                 const char *definition, bool replace, int64_t *id);
/* -ENOENT when the factory has no such rule. Notifies. */
int db_rule_set_active(struct db *db, int64_t factory_id, int64_t id, bool active);
/* Rules by name; factory_id 0: every factory's (the alert thread);
 * active_only: only the active ones. */
int db_rule_list(struct db *db, struct arena *a, int64_t factory_id, bool active_only,
                 struct alert_rule **ret, int *n);

/* ---- alarms ---- */
enum alarm_source { ALARM_RULE, ALARM_DEVICE, ALARM_OFFLINE };

struct alarm_new {
    int64_t factory_id, device_id, rule_id; /* rule_id with ALARM_RULE */
    enum alarm_source source;
    const char *code;     /* ALARM_DEVICE: the device's code, may be NULL */
    const char *severity; /* low, medium, high, critical */
    const char *message;  /* what crossed which threshold */
    const char *snapshot; /* JSON object of the metrics, NULL: {} */
    double observed_at;   /* seconds since the epoch */
    int cooldown_s;       /* ALARM_RULE: nothing new within this of the last one */
};

/* Records an alarm. -EEXIST when it is a repeat: for a rule, an alarm of
 * the same rule and device observed less than cooldown_s before (or at
 * the same instant: a redelivered message); for a device code or offline,
 * an open alarm of the same device and code. *id gets the new alarm. */
int db_alarm_raise(struct db *db, const struct alarm_new *n, int64_t *id);

struct alarm {
    int64_t id, factory_id, device_id, rule_id, equipment_id, work_order_id;
    const char *source, *code, *severity, *message, *snapshot;
    const char *device_key, *rule_name;             /* rule_name NULL unless a rule */
    const char *equipment_number, *equipment_label; /* NULL when the device is not linked */
    const char *work_order_number;                  /* NULL when none */
    const char *observed_at;                        /* local "YYYY-MM-DD HH:MM" */
    const char *acknowledged_at, *acknowledged_by;  /* local "HH:MM", name; NULL when not */
    const char *resolved_at, *resolved_by;          /* resolved_by NULL: by Rivet */
    bool acknowledged, resolved, escalated;
};

/* for_update: the alarm is locked until the transaction ends (two people
 * pressing Acknowledge at once take turns). */
int db_alarm_get(struct db *db, struct arena *a, int64_t factory_id, int64_t id, bool for_update,
                 struct alarm *ret);
/* A page of alarms, newest first: open_only leaves out resolved ones.
 * *total gets how many. */
int db_alarm_list(struct db *db, struct arena *a, int64_t factory_id, bool open_only, int offset,
                  int limit, struct alarm **ret, int *n, int *total);
/* The open alarms of one machine (from the devices linked to it), newest
 * first, at most limit. */
int db_alarm_list_equipment(struct db *db, struct arena *a, int64_t factory_id,
                            int64_t equipment_id, int limit, struct alarm **ret, int *n);
/* -EALREADY when already acknowledged (or resolved), -ENOENT. */
int db_alarm_ack(struct db *db, int64_t factory_id, int64_t id, int64_t user_id);
/* Resolves (acknowledging too when it was not). -EALREADY, -ENOENT. */
int db_alarm_resolve(struct db *db, int64_t factory_id, int64_t id, int64_t user_id);
int db_alarm_set_work_order(struct db *db, int64_t factory_id, int64_t id, int64_t wo_id);
/* Open alarms by severity: low, medium, high, critical. */
int db_alarm_counts(struct db *db, int64_t factory_id, int by_severity[4]);

/* ---- recipients and deliveries ---- */
struct alarm_recipient {
    int64_t user_id;
    const char *channel, *chat_id; /* an active chat of the user */
};

/* Who gets the alarm: active users of its factory with an active chat whose
 * subscription covers the alarm's device and severity (no subscription:
 * high and critical of every device) and who have not muted the device. */
int db_alarm_recipients(struct db *db, struct arena *a, int64_t factory_id, int64_t alarm_id,
                        struct alarm_recipient **ret, int *n);
/* Escalation: the factory's supervisors, or its admins when no supervisor
 * has an active chat (mutes and subscriptions do not apply). */
int db_alarm_supervisors(struct db *db, struct arena *a, int64_t factory_id,
                         struct alarm_recipient **ret, int *n);

struct alarm_delivery {
    int64_t id, alarm_id, user_id, outbox_id; /* outbox_id 0: none (held, or purged) */
    const char *kind, *channel, *chat_id, *state;
};

/* Records that the alarm went (state "queued", with outbox_id) or will go
 * in a storm summary ("held", outbox_id 0) to a user. -EEXIST when that
 * user already has it (of this kind, on this channel). */
int db_alarm_delivery_add(struct db *db, int64_t factory_id, int64_t alarm_id, int64_t user_id,
                          const char *kind, const char *channel, const char *chat_id,
                          const char *state, int64_t outbox_id);
/* The alarm's deliveries, oldest first. */
int db_alarm_deliveries(struct db *db, struct arena *a, int64_t factory_id, int64_t alarm_id,
                        struct alarm_delivery **ret, int *n);

/* Chats with held deliveries of which the oldest is older than window_s. */
struct held_chat {
    const char *channel, *chat_id;
};
int db_alarm_held_due(struct db *db, struct arena *a, double window_s, struct held_chat **ret,
                      int *n);
/* Locks a chat's held deliveries (SKIP LOCKED: another process has them)
 * and returns their alarms, most severe first, then newest. */
int db_alarm_held_take(struct db *db, struct arena *a, const char *channel, const char *chat_id,
                       struct alarm **ret, int *n);
/* Marks the deliveries db_alarm_held_take() locked as sent by the outbox
 * row: state "summarized" (a summary), or "queued" when the row is the one
 * alarm's own card (a storm of one), which acknowledging then edits. */
int db_alarm_held_done(struct db *db, const char *channel, const char *chat_id, int64_t outbox_id,
                       const char *state);

/* Critical alarms nobody acknowledged within their factory's escalate_s,
 * not yet escalated, locked (SKIP LOCKED); at most limit. */
int db_alarm_escalations_due(struct db *db, struct arena *a, int limit, struct alarm **ret, int *n);
int db_alarm_escalated(struct db *db, int64_t factory_id, int64_t id);

/* ---- subscriptions and mutes ---- */
struct alarm_subscription {
    const char *device_key; /* NULL: every device */
    const char *min_severity;
    const char *muted_until; /* of a mute row: local "YYYY-MM-DD HH:MM"; else NULL */
};

/* device_id 0: every device. min_severity low..critical or "off". Setting
 * it for every device clears the user's per-device rows. */
int db_subscription_set(struct db *db, int64_t factory_id, int64_t user_id, int64_t device_id,
                        const char *min_severity);
/* The user's subscription rows, then mute rows still running. */
int db_subscription_list(struct db *db, struct arena *a, int64_t factory_id, int64_t user_id,
                         struct alarm_subscription **ret, int *n);
/* Mutes a device (0: all) for seconds; 0 seconds unmutes. */
int db_mute_set(struct db *db, int64_t factory_id, int64_t user_id, int64_t device_id,
                long long seconds);

#endif
