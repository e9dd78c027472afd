/* /stats: the plant at a glance. */
#include "internal.h"

#include "alarm.h"

int cmd_stats(struct hctx *ctx, struct args *args)
{
    struct plant_stats s;
    int alarms[4]; /* open: low, medium, high, critical */
    struct rb rb;
    int r;

    if (args->n > 0) {
        reply(ctx, "Usage: /stats");
        return 0;
    }
    r = db_stats(ctx->db, ctx->a, ctx->user.factory_id, &s);
    if (r == 0)
        r = db_alarm_counts(ctx->db, ctx->user.factory_id, alarms);
    if (r < 0)
        return reply_db_error(ctx, r);
    rb_init(&rb);
    rb_addf(&rb, "📊 %s\n", ctx->user.factory_name);
    rb_addf(&rb, "Equipment: %d\n", s.equipment);
    rb_addf(
        &rb,
        "Work orders: 🟢 open %d · 🟡 in progress %d · ⏸ on hold %d · ✅ completed %d · "
        "🔴 cancelled %d\n",
        s.by_status[0], s.by_status[1], s.by_status[2], s.by_status[3], s.by_status[4]);
    rb_addf(&rb,
            "Open by priority: 🔴 critical %d · 🟠 high %d · 🟡 medium %d · 🔵 low %d\n",
            s.by_priority[3], s.by_priority[2], s.by_priority[1], s.by_priority[0]);
    rb_addf(&rb, "Open for more than 7 days: %d\n", s.open_older_7d);
    if (s.top_equipment_number)
        rb_addf(&rb, "Most open work orders: %s %s (%d)\n", s.top_equipment_number,
                clip(ctx, s.top_equipment_label, 60), s.top_equipment_open);
    if (alarms[0] + alarms[1] + alarms[2] + alarms[3] == 0)
        rb_addf(&rb, "🚨 No open alarms\n");
    else
        rb_addf(
            &rb,
            "🚨 Alarms open: 🔴 %d critical · 🟠 %d high · 🟡 %d medium · 🔵 %d low\n",
            alarms[3], alarms[2], alarms[1], alarms[0]);
    rb_send(ctx, &rb);
    return 0;
}
