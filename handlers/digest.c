/* The daily digest's text (digest_reply.h). */
#include "digest_reply.h"

#include <errno.h>
#include <stdio.h>

#include "digest.h" /* db/ */
#include "internal.h"

void digest_duration(double seconds, char *out, size_t n)
{
    long s = seconds < 0 ? 0 : (long)(seconds + 0.5), m = (s + 30) / 60, h = (s + 1800) / 3600;

    if (s < 60)
        snprintf(out, n, "%ld s", s);
    else if (m < 60)
        snprintf(out, n, "%ld min", m);
    else if (m < 24 * 60)
        snprintf(out, n, "%ld h %02ld min", m / 60, m % 60);
    else
        snprintf(out, n, "%ld d %ld h", h / 24, h % 24);
}

int digest_reply(struct arena *a, const struct digest *d, struct reply *out)
{
    static const char *const sev[4] = {"low", "medium", "high", "critical"};
    struct replies tmp;
    struct hctx ctx = {.a = a, .out = &tmp};
    int n_alarms = d->alarms[0] + d->alarms[1] + d->alarms[2] + d->alarms[3];
    const char *sep = "";
    struct rb rb;

    replies_init(&tmp);
    rb_init(&rb);
    rb_addf(&rb, "📰 Daily digest · %s\n", clip(&ctx, d->factory_name, 60));
    rb_addf(&rb, "%s %s (%s)\n\n", d->weekday, d->date, d->timezone);
    if (n_alarms == 0 && d->wo_opened == 0 && d->wo_completed == 0) {
        rb_addf(&rb, "😴 A quiet day: no alarms, no work orders opened or completed.\n");
    } else {
        if (n_alarms == 0) {
            rb_addf(&rb, "🚨 Alarms: none\n");
        } else {
            rb_addf(&rb, "🚨 Alarms: %d — ", n_alarms);
            for (int k = 3; k >= 0; k--) {
                if (!d->alarms[k])
                    continue;
                rb_addf(&rb, "%s%s %d %s", sep, priority_emoji(sev[k]), d->alarms[k], sev[k]);
                sep = " · ";
            }
            rb_addf(&rb, "\n");
            if (d->acknowledged == 0 || d->mean_ack_s < 0) {
                rb_addf(&rb, "⏱ None acknowledged yet\n");
            } else {
                char dur[32];
                digest_duration(d->mean_ack_s, dur, sizeof(dur));
                rb_addf(&rb, "⏱ Mean time to acknowledge: %s (%d of %d acknowledged)\n", dur,
                        d->acknowledged, n_alarms);
            }
        }
        rb_addf(&rb, "🛠 Work orders: %d opened · %d completed\n", d->wo_opened,
                d->wo_completed);
    }
    if (d->overdue == 0) {
        rb_addf(&rb, "⏰ Nothing overdue\n");
    } else {
        rb_addf(&rb, "⏰ Overdue (open more than %d days): %d\n", DIGEST_OVERDUE_DAYS, d->overdue);
        for (int i = 0; i < d->n_oldest; i++)
            rb_addf(&rb, "%s %s %s · %d days · %s\n", priority_emoji(d->oldest[i].priority),
                    d->oldest[i].number, clip(&ctx, d->oldest[i].title, 60), d->oldest[i].age_days,
                    status_label(d->oldest[i].status));
        if (d->overdue > d->n_oldest)
            rb_addf(&rb, "… and %d more (/wo list)\n", d->overdue - d->n_oldest);
    }
    rb_send(&ctx, &rb);
    if (!tmp.head)
        return -ENOMEM;
    *out = *tmp.head;
    out->next = NULL;
    return 0;
}
