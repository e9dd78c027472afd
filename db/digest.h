/* The daily digest (sql/0010_digest.sql): what one factory's local
 * calendar day held (alarms, work orders, what is overdue), who gets it,
 * and the claim that makes each factory's digest go once a day however
 * many `rivet serve` processes share the database. Same conventions as
 * db.h: 0 or -errno, strings owned by the arena passed in, nothing logged. */
#ifndef RIVET_DIGEST_DB_H
#define RIVET_DIGEST_DB_H

#include <stdint.h>

struct alarm_recipient;
struct arena;
struct db;

/* A work order still open DIGEST_OVERDUE_DAYS after it was opened is
 * overdue (the "open for more than 7 days" of /stats); a digest lists the
 * oldest DIGEST_OVERDUE_LINES of them. */
#define DIGEST_OVERDUE_DAYS 7
#define DIGEST_OVERDUE_LINES 5

struct digest_wo {
    const char *number, *title, *priority, *status;
    int age_days; /* whole days from its opening to the end of the day */
};

struct digest {
    int64_t factory_id;
    const char *factory_name, *timezone;
    const char *date;    /* the local day reported on, YYYY-MM-DD */
    const char *weekday; /* "Wednesday" */
    int alarms[4];       /* raised that day: low, medium, high, critical */
    int acknowledged;    /* of those, acknowledged by now */
    double mean_ack_s;   /* their mean time to acknowledge; < 0 when none */
    int wo_opened, wo_completed;
    int overdue; /* open now and opened before the day's end less DIGEST_OVERDUE_DAYS */
    const struct digest_wo *oldest; /* the first overdue ones, oldest first */
    int n_oldest;
};

/* The digest of factory_id for the local day date ("YYYY-MM-DD"), or, with
 * date NULL, for the day before the factory's local date at now (Unix
 * seconds). -EINVAL for a date that is not a calendar date from 2000 to
 * 2999; -ENOENT for no such factory. */
int db_digest_collect(struct db *db, struct arena *a, int64_t factory_id, const char *date,
                      double now, struct digest *ret);

struct digest_claim {
    int64_t factory_id;
    const char *slug, *today; /* the factory's local date at now, now claimed */
};

/* Inside the caller's transaction: claims one factory whose digest is due
 * at now (Unix seconds): digest time set and reached in its zone, and not
 * claimed yet for its local today. Its row stays locked, and the claim
 * stands or falls with the transaction, so the caller queues the messages
 * in it. Factories in skip (n_skip of them; skip may be NULL when 0) and
 * those another transaction is claiming are passed over. -ENOENT when none
 * is due. */
int db_digest_claim(struct db *db, struct arena *a, double now, const int64_t *skip, int n_skip,
                    struct digest_claim *ret);

/* Who gets the factory's digest: its active supervisors and admins, each
 * with every active chat (Telegram, WhatsApp) they are linked on. */
int db_digest_recipients(struct db *db, struct arena *a, int64_t factory_id,
                         struct alarm_recipient **ret, int *n);

/* Sets the factory's digest time: "HH:MM" (24-hour, local), or "off".
 * -EINVAL for anything else; -ENOENT for no such factory. */
int db_digest_set_time(struct db *db, int64_t factory_id, const char *value);

/* The factory's digest time as "HH:MM", or NULL when off (arena). */
int db_digest_get_time(struct db *db, struct arena *a, int64_t factory_id, const char **ret);

#endif
