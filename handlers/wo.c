/* /wo: list, view, new, status, note, assign, and a work order for an alarm. */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "alarm.h"
#include "arena.h"
#include "config.h"
#include "plain.h"

static int not_found(struct hctx *ctx, const char *number)
{
    const char *s = db_wo_suggest(ctx->db, ctx->a, ctx->user.factory_id, number);

    if (s)
        reply(ctx, "No work order %s. Did you mean %s?", clip(ctx, number, 40), s);
    else
        reply(ctx, "No work order %s. See /wo list.", clip(ctx, number, 40));
    return 0;
}

/* Looks up the work order named by word i, replying when it cannot.
 * Returns 1 when found, 0 when a reply was given, or a db error. */
static int find_wo(struct hctx *ctx, struct args *args, int i, const char *sub,
                   struct work_order *wo)
{
    int r;

    if (args->n <= i || !number_valid("WO", args->tok[i].text)) {
        reply_usage(ctx, sub);
        return 0;
    }
    r = db_wo_get(ctx->db, ctx->a, ctx->user.factory_id, args->tok[i].text, wo);
    if (r == -ENOENT)
        return not_found(ctx, args->tok[i].text);
    if (r < 0)
        return reply_db_error(ctx, r);
    return 1;
}

static int wo_list(struct hctx *ctx, struct args *args)
{
    static const struct {
        const char *word;
        enum wo_filter filter;
        const char *title;
    } filters[] = {
        {"open", WO_OPEN, "Open work orders"},
        {"mine", WO_MINE, "Your open work orders"},
        {"my", WO_MINE, "Your open work orders"},
        {"all", WO_ALL, "All work orders"},
    };
    enum wo_filter filter = WO_OPEN;
    const char *status = NULL, *title = "Open work orders", *word = NULL;
    struct work_order *v;
    long long page = 1;
    int i = 1, n, total, pages, r;
    struct rb rb;

    if (i < args->n && config_parse_int(args->tok[i].text, 1, 100000, &page) < 0) {
        const char *w = word = args->tok[i].text;
        size_t k;
        for (k = 0; k < sizeof(filters) / sizeof(filters[0]); k++)
            if (strcasecmp(w, filters[k].word) == 0)
                break;
        if (k < sizeof(filters) / sizeof(filters[0])) {
            filter = filters[k].filter;
            title = filters[k].title;
        } else if ((status = status_parse(w))) {
            filter = WO_STATUS;
            title = arena_printf(ctx->a, "Work orders %s %s", status_emoji(status),
                                 status_label(status));
        } else {
            reply_usage(ctx, "/wo list");
            return 0;
        }
        i++;
        if (i < args->n && config_parse_int(args->tok[i].text, 1, 100000, &page) < 0) {
            reply_usage(ctx, "/wo list");
            return 0;
        }
    }
    if (i < args->n)
        i++; /* the page number */
    if (i < args->n) {
        reply_usage(ctx, "/wo list");
        return 0;
    }
    r = db_wo_list(ctx->db, ctx->a, ctx->user.factory_id, filter, status, ctx->user.id,
                   (int)(page - 1) * LIST_PAGE, LIST_PAGE, &v, &n, &total);
    if (r < 0)
        return reply_db_error(ctx, r);
    if (total == 0) {
        if (filter == WO_MINE)
            reply(ctx, "No open work orders are assigned to you.");
        else if (filter == WO_OPEN)
            reply(ctx, "No open work orders. 🎉");
        else if (filter == WO_STATUS)
            reply(ctx, "No work orders are %s %s.", status_emoji(status), status_label(status));
        else
            reply(ctx, "No work orders here yet. Open one: /wo new EQ-NUMBER TITLE");
        return 0;
    }
    if (!rb_page(ctx, &rb, arena_printf(ctx->a, "🛠 %s", title), total, n, page, &pages))
        return 0;
    for (int k = 0; k < n; k++) {
        const struct work_order *w = &v[k];
        rb_button(ctx, &rb, arena_printf(ctx->a, "🛠 %s %s", w->number, w->title),
                  arena_printf(ctx->a, "/wo view %s", w->number));
        rb_row(&rb);
        rb_addf(&rb, "%s %s %s %s · %s %s · %dd%s%s\n", priority_emoji(w->priority), w->number,
                status_emoji(w->status), clip(ctx, w->title, 50), w->equipment_number,
                clip(ctx, w->equipment_label, 40), w->age_days, w->assignee ? " → " : "",
                w->assignee ? clip(ctx, w->assignee, 30) : "");
    }
    if (page < pages)
        rb_addf(&rb, "Next: /wo list %s%s%lld\n", word ? word : "", word ? " " : "", page + 1);
    rb_pager(ctx, &rb, word ? arena_printf(ctx->a, "/wo list %s", word) : "/wo list", page, pages);
    rb_send(ctx, &rb);
    return 0;
}

static void event_line(struct hctx *ctx, struct rb *rb, const struct wo_event *ev)
{
    const char *who = ev->user ? clip(ctx, ev->user, 30) : "Rivet";

    if (strcmp(ev->kind, "created") == 0)
        rb_addf(rb, "%s %s: opened\n", ev->created_at, who);
    else if (strcmp(ev->kind, "status") == 0)
        rb_addf(rb, "%s %s: %s → %s %s\n", ev->created_at, who, status_label(ev->old_value),
                status_emoji(ev->new_value), status_label(ev->new_value));
    else if (strcmp(ev->kind, "note") == 0)
        rb_addf(rb, "%s %s: 📝 %s\n", ev->created_at, who, clip(ctx, ev->new_value, 300));
    else if (strcmp(ev->kind, "photo") == 0)
        rb_addf(rb, "%s %s: 📎 %s\n", ev->created_at, who, clip(ctx, ev->new_value, 100));
    else if (strcmp(ev->kind, "assign") == 0)
        rb_addf(rb, "%s %s: assigned to %s\n", ev->created_at, who, clip(ctx, ev->new_value, 30));
    else
        rb_addf(rb, "%s %s: %s\n", ev->created_at, who, ev->kind);
}

/* What a technician taps next on a work order: the statuses it can move
 * to, and taking it. */
static void status_buttons(struct hctx *ctx, struct rb *rb, const struct work_order *w)
{
    static const struct {
        const char *status, *label;
    } moves[] = {
        {"in_progress", "▶ Start"},
        {"on_hold", "⏸ Hold"},
        {"completed", "✅ Complete"},
    };
    bool closed = strcmp(w->status, "completed") == 0 || strcmp(w->status, "cancelled") == 0;

    if (closed) {
        /* Reopening is for supervisors and admins: no button others would
         * be refused. */
        if (role_supervises(ctx))
            rb_button(ctx, rb, "↩ Reopen", arena_printf(ctx->a, "/wo status %s open", w->number));
    } else {
        for (size_t i = 0; i < sizeof(moves) / sizeof(moves[0]); i++)
            if (strcmp(w->status, moves[i].status) != 0)
                rb_button(ctx, rb, moves[i].label,
                          arena_printf(ctx->a, "/wo status %s %s", w->number, moves[i].status));
    }
    if (!closed && w->assignee_id != ctx->user.id) {
        rb_row(rb);
        rb_button(ctx, rb, "👷 Take it", arena_printf(ctx->a, "/wo assign %s me", w->number));
    }
}

static int wo_card(struct hctx *ctx, const char *headline, const struct work_order *w)
{
    struct wo_event *ev;
    struct rb rb;
    int n, total, photos = 0, r;

    r = db_wo_events(ctx->db, ctx->a, ctx->user.factory_id, w->id, 10, &ev, &n, &total);
    if (r == 0)
        r = db_wo_photo_count(ctx->db, ctx->user.factory_id, w->id, &photos);
    if (r < 0)
        return reply_db_error(ctx, r);
    rb_init(&rb);
    rb_addf(&rb, "%s%s · %s\n", headline, w->number, w->title);
    rb.context = reply_context(ctx->a, ctx->user.factory_id, "wo", w->number);
    rb_addf(&rb, "Status: %s %s · Priority: %s %s\n", status_emoji(w->status),
            status_label(w->status), priority_emoji(w->priority), w->priority);
    rb_addf(&rb, "Equipment: %s %s\n", w->equipment_number, w->equipment_label);
    rb_addf(&rb, "Assigned to: %s\n", w->assignee ? w->assignee : "nobody");
    rb_addf(&rb, "Opened %s%s%s\n", w->created_at, w->created_by ? " by " : "",
            w->created_by ? w->created_by : "");
    if (w->completed_at)
        rb_addf(&rb, "Completed %s%s%s\n", w->completed_at, w->completed_by ? " by " : "",
                w->completed_by ? w->completed_by : "");
    if (w->description)
        rb_addf(&rb, "\n%s\n", w->description);
    if (photos > 0)
        rb_addf(&rb, "📎 %d photo%s\n", photos, photos == 1 ? "" : "s");
    status_buttons(ctx, &rb, w);
    if (n > 0) {
        if (total > n)
            rb_addf(&rb, "\nHistory (last %d of %d):\n", n, total);
        else
            rb_addf(&rb, "\nHistory:\n");
        for (int i = 0; i < n; i++)
            event_line(ctx, &rb, &ev[i]);
    }
    rb_send(ctx, &rb);
    return 0;
}

void wo_opened(struct hctx *ctx, const struct work_order *w, bool view)
{
    struct rb rb;

    rb_init(&rb);
    rb_addf(&rb,
            "✅ Opened %s %s %s · %s\nEquipment: %s %s\nMove it along: /wo status %s "
            "in_progress",
            priority_emoji(w->priority), w->number, w->priority, w->title, w->equipment_number,
            w->equipment_label, w->number);
    rb.context = reply_context(ctx->a, ctx->user.factory_id, "wo", w->number);
    status_buttons(ctx, &rb, w);
    if (view) {
        rb_row(&rb);
        rb_button(ctx, &rb, arena_printf(ctx->a, "🛠 View %s", w->number),
                  arena_printf(ctx->a, "/wo view %s", w->number));
    }
    rb_send(ctx, &rb);
}

static int wo_view(struct hctx *ctx, struct args *args)
{
    struct work_order w;
    int r;

    if (args->n != 2) {
        reply_usage(ctx, "/wo view");
        return 0;
    }
    r = find_wo(ctx, args, 1, "/wo view", &w);
    if (r <= 0)
        return r;
    return wo_card(ctx, "🛠 ", &w);
}

const char *const wo_option_keys[1] = {"priority"};

static int wo_new(struct hctx *ctx, struct args *args)
{
    const char *vals[1], *title, *priority = NULL, *number;
    struct equipment e;
    struct work_order w;
    int r;

    if (args->n < 2 || !number_valid("EQ", args->tok[1].text)) {
        reply_usage(ctx, "/wo new");
        if (args->n >= 2)
            reply(ctx, "A work order names its machine first, e.g. /wo new EQ-2026-000001 "
                       "Coolant leak. Find the number with /equip search TEXT.");
        return 0;
    }
    number = args->tok[1].text;
    if (!options_ok(ctx, args, 2, wo_option_keys, NULL, 1, vals))
        return 0;
    if (vals[0] && !(priority = priority_parse(vals[0]))) {
        reply(ctx, "Priority must be low, medium, high or critical.");
        return 0;
    }
    title = args_rest(ctx->a, args, 2);
    if (!*title) {
        reply_usage(ctx, "/wo new");
        return 0;
    }
    if (!field_ok(ctx, "title", title, FIELD_MAX_CHARS))
        return 0;
    r = db_equipment_get(ctx->db, ctx->a, ctx->user.factory_id, number, &e);
    if (r == -ENOENT)
        return reply_no_equipment(ctx, number);
    if (r < 0)
        return reply_db_error(ctx, r);
    r = db_wo_create(ctx->db, ctx->a, ctx->user.factory_id, ctx->user.id, e.id, title, priority,
                     &w);
    if (r < 0)
        return reply_db_error(ctx, r);
    wo_opened(ctx, &w, false);
    return 0;
}

/* /wo alarm ID: the 🛠 Work order button of an alarm. The work order goes
 * on the machine the alarm's device is linked to, as urgent as the alarm. */
static int wo_alarm(struct hctx *ctx, struct args *args)
{
    struct replies edits;
    struct work_order w;
    struct alarm al;
    char *title;
    struct rb rb;
    int r;

    /* Locked: two people pressing Work order at once open one. */
    r = alarm_find(ctx, args, 1, "/wo alarm", true, &al);
    if (r <= 0)
        return r;
    if (al.work_order_number) {
        rb_init(&rb);
        rb_addf(&rb, "Alarm #%lld already has work order %s.", (long long)al.id,
                al.work_order_number);
        rb_button(ctx, &rb, arena_printf(ctx->a, "🛠 %s", al.work_order_number),
                  arena_printf(ctx->a, "/wo view %s", al.work_order_number));
        rb_send(ctx, &rb);
        return 0;
    }
    if (!al.equipment_id) {
        if (role_supervises(ctx))
            reply(ctx,
                  "Device %s is not linked to a machine. Link it with /equip edit EQ-NUMBER "
                  "device=%s, then press Work order again.",
                  al.device_key, al.device_key);
        else
            reply(ctx,
                  "Device %s is not linked to a machine. Ask a supervisor to link it "
                  "(/equip edit EQ-NUMBER device=%s), then press Work order again.",
                  al.device_key, al.device_key);
        return 0;
    }
    title = arena_strdup(
        ctx->a, clip(ctx,
                     arena_printf(ctx->a, "Alarm #%lld: %s", (long long)al.id,
                                  al.code && strcmp(al.source, "device") == 0
                                      ? arena_printf(ctx->a, "Code %s · %s", al.code, al.message)
                                      : al.message),
                     FIELD_MAX_CHARS));
    if (!title)
        return reply_db_error(ctx, -ENOMEM);
    /* The title holds the device's text: one line, like every title typed. */
    for (char *p = title; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    r = db_wo_create(ctx->db, ctx->a, ctx->user.factory_id, ctx->user.id, al.equipment_id, title,
                     priority_parse(al.severity), &w);
    if (r == 0)
        r = db_alarm_set_work_order(ctx->db, ctx->user.factory_id, al.id, w.id);
    if (r < 0)
        return reply_db_error(ctx, r);
    /* Every copy of the alarm now shows the work order instead of the
     * button that opened it. */
    r = alarm_copies(ctx, al.id, &edits);
    if (r < 0)
        return r;
    wo_opened(ctx, &w, true);
    replies_add(ctx, &edits);
    return 0;
}

static int wo_status(struct hctx *ctx, struct args *args)
{
    const char *status;
    struct work_order w;
    int r;

    if (args->n != 3) {
        reply_usage(ctx, "/wo status");
        return 0;
    }
    if (!(status = status_parse(args->tok[2].text))) {
        reply(ctx,
              "Unknown status \"%s\". Use open, in_progress, on_hold, completed or "
              "cancelled.",
              clip(ctx, args->tok[2].text, 30));
        return 0;
    }
    r = find_wo(ctx, args, 1, "/wo status", &w);
    if (r <= 0)
        return r;
    r = db_wo_set_status(ctx->db, ctx->user.factory_id, w.id, ctx->user.id, w.status, status);
    if (r == -EALREADY) {
        reply(ctx, "%s is already %s %s.", w.number, status_emoji(status), status_label(status));
        return 0;
    }
    if (r == -ESTALE) {
        reply(ctx, "%s was changed by someone else just now. Check it with /wo view %s.", w.number,
              w.number);
        return 0;
    }
    if (r < 0)
        return reply_db_error(ctx, r);
    if (strcmp(status, "completed") == 0)
        reply(ctx, "✅ %s completed by %s. (It was %s.)", w.number, ctx->user.display_name,
              status_label(w.status));
    else
        reply(ctx, "%s %s is now %s. (It was %s.)", status_emoji(status), w.number,
              status_label(status), status_label(w.status));
    return 0;
}

static int wo_note(struct hctx *ctx, struct args *args)
{
    struct work_order w;
    const char *text;
    int r;

    if (args->n < 3) {
        reply_usage(ctx, "/wo note");
        return 0;
    }
    text = args_rest(ctx->a, args, 2);
    if (!field_ok(ctx, "note", text, NOTE_MAX_CHARS))
        return 0;
    r = find_wo(ctx, args, 1, "/wo note", &w);
    if (r <= 0)
        return r;
    r = db_wo_add_note(ctx->db, ctx->user.factory_id, w.id, ctx->user.id, text);
    if (r < 0)
        return reply_db_error(ctx, r);
    reply(ctx, "📝 Note added to %s.", w.number);
    return 0;
}

static int wo_assign(struct hctx *ctx, struct args *args)
{
    struct work_order w;
    struct user u;
    const char *who;
    int r;

    if (args->n < 3) {
        reply_usage(ctx, "/wo assign");
        return 0;
    }
    who = args_rest(ctx->a, args, 2);
    r = find_wo(ctx, args, 1, "/wo assign", &w);
    if (r <= 0)
        return r;
    if (strcasecmp(who, "me") == 0) {
        u = ctx->user;
    } else {
        r = db_user_by_name(ctx->db, ctx->a, ctx->user.factory_id, who, &u);
        if (r == -ENOENT) {
            const char *s = db_user_suggest(ctx->db, ctx->a, ctx->user.factory_id, who);
            if (s)
                reply(ctx, "No one called \"%s\" here. Did you mean %s?", clip(ctx, who, 40), s);
            else
                reply(ctx, "No one called \"%s\" here.", clip(ctx, who, 40));
            return 0;
        }
        if (r == -EEXIST) {
            reply(ctx, "More than one person is called \"%s\"; ask an admin to tell them apart.",
                  clip(ctx, who, 40));
            return 0;
        }
        if (r < 0)
            return reply_db_error(ctx, r);
    }
    if (w.assignee_id == u.id) {
        reply(ctx, "%s is already assigned to %s.", w.number, u.display_name);
        return 0;
    }
    r = db_wo_assign(ctx->db, ctx->user.factory_id, w.id, ctx->user.id, u.id, u.display_name);
    if (r < 0)
        return reply_db_error(ctx, r);
    reply(ctx, "👷 %s is assigned to %s.", w.number, u.display_name);
    return 0;
}

int cmd_wo(struct hctx *ctx, struct args *args)
{
    const char *sub = args->n > 0 ? args->tok[0].text : "list";

    if (strcasecmp(sub, "list") == 0)
        return wo_list(ctx, args);
    if (strcasecmp(sub, "view") == 0 || strcasecmp(sub, "show") == 0)
        return wo_view(ctx, args);
    if (strcasecmp(sub, "new") == 0 || strcasecmp(sub, "add") == 0)
        return wo_new(ctx, args);
    if (strcasecmp(sub, "status") == 0)
        return wo_status(ctx, args);
    if (strcasecmp(sub, "note") == 0)
        return wo_note(ctx, args);
    if (strcasecmp(sub, "assign") == 0)
        return wo_assign(ctx, args);
    if (strcasecmp(sub, "alarm") == 0)
        return wo_alarm(ctx, args);
    if (strcasecmp(sub, "draft") == 0)
        return wo_draft(ctx, args);
    if (number_valid("WO", sub) && args->n == 1) {
        struct work_order w;
        int r = find_wo(ctx, args, 0, "/wo view", &w);
        return r <= 0 ? r : wo_card(ctx, "🛠 ", &w);
    }
    reply(ctx, "Unknown /wo action \"%s\". Send /help wo.", clip(ctx, sub, 30));
    return 0;
}
