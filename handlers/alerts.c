/* /alerts, /ack, /resolve, /subscribe, /unsubscribe, /mute, /rules and alarm messages.
 *
 * An alarm goes to many chats at once (db_alarm_deliveries() knows which
 * outbox row carried each copy). Whoever acknowledges or resolves it gets a
 * short answer, and every copy is replaced by the alarm as it stands now, so
 * nobody walks to a machine someone else is already at. */
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "alarm.h"
#include "alert.h"
#include "arena.h"
#include "config.h"

/* A /subscribe or /unsubscribe names at most this many devices. */
#define DEVICES_MAX 20
/* A mute lasts from a minute to a month: long enough for a shift or a
 * repair, short enough that a forgotten mute comes undone. */
#define MUTE_MIN_S 60
#define MUTE_MAX_S (30 * 86400)
/* The alarms a storm message shows by name. */
#define STORM_LINES 5

static const char *const severities[SEV_COUNT] = {"low", "medium", "high", "critical"};

static int severity_index(const char *s)
{
    for (int i = 0; i < SEV_COUNT; i++)
        if (s && strcmp(s, severities[i]) == 0)
            return i;
    return -1;
}

static const char *upper(struct hctx *ctx, const char *s)
{
    char *u = arena_strdup(ctx->a, s ? s : "?");

    if (!u)
        return "";
    for (char *p = u; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    return u;
}

/* s on one line, cut to max characters: device messages are the device's
 * own text. */
static const char *one_line(struct hctx *ctx, const char *s, size_t max)
{
    char *c = arena_strdup(ctx->a, clip(ctx, s, max));

    if (!c)
        return "";
    for (char *p = c; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    return c;
}

/* "HH:MM" of a local "YYYY-MM-DD HH:MM". */
static const char *hhmm(const char *ts)
{
    return ts && strlen(ts) >= 16 ? ts + 11 : ts ? ts : "?";
}

/* Appends a reply built elsewhere (an alarm card) to the conversation's. */
static void reply_append(struct hctx *ctx, struct reply *r)
{
    r->next = NULL;
    *ctx->out->tail = r;
    ctx->out->tail = &r->next;
    ctx->out->n++;
}

bool alarm_id_parse(const char *s, int64_t *id)
{
    long long v;

    if (s[0] == '#')
        s++;
    if (config_parse_int(s, 1, INT64_MAX, &v) < 0 || s[0] == '+' || s[0] == '-')
        return false;
    *id = v;
    return true;
}

/* The sender's factory's alarm id: 1, 0 after "No alarm #ID.", or a db
 * error. */
static int alarm_get(struct hctx *ctx, int64_t id, bool for_update, struct alarm *al)
{
    int r = db_alarm_get(ctx->db, ctx->a, ctx->user.factory_id, id, for_update, al);

    /* Another factory's alarm is as unknown as one that never was. */
    if (r == -ENOENT) {
        reply(ctx, "No alarm #%lld.", (long long)id);
        return 0;
    }
    if (r < 0)
        return reply_db_error(ctx, r);
    return 1;
}

int alarm_find(struct hctx *ctx, struct args *args, int i, const char *cmd, bool for_update,
               struct alarm *al)
{
    int64_t id;

    if (args->n <= i) {
        reply_usage(ctx, cmd);
        return 0;
    }
    if (!alarm_id_parse(args->tok[i].text, &id)) {
        reply(ctx, "\"%s\" is not an alarm number: for alarm #12, send %s 12. Nothing was changed.",
              clip(ctx, args->tok[i].text, 30), cmd);
        return 0;
    }
    if (args->n > i + 1) {
        reply_usage(ctx, cmd);
        return 0;
    }
    return alarm_get(ctx, id, for_update, al);
}

/* What happened, on one line: the rule's reading, or the device's code and
 * message, or the offline notice. */
static const char *alarm_what(struct hctx *ctx, const struct alarm *al, size_t max)
{
    if (strcmp(al->source, "device") == 0 && al->code)
        return one_line(ctx, arena_printf(ctx->a, "Code %s · %s", al->code, al->message), max);
    return one_line(ctx, al->message, max);
}

/* "Siemens G120C (Press 3) EQ-2026-000004", or the device key when the
 * device is not linked to a machine. */
static const char *alarm_machine(struct hctx *ctx, const struct alarm *al)
{
    if (al->equipment_number)
        return arena_printf(ctx->a, "%s %s", clip(ctx, al->equipment_label, 40),
                            al->equipment_number);
    return al->device_key;
}

/* One line of a list: "🔴 #12 Press 3 EQ-… · spindle_temp 82.5 > 80 · 2026-02-19 14:32 · ✅ Ana" */
static const char *alarm_line(struct hctx *ctx, const struct alarm *al)
{
    return arena_printf(ctx->a, "%s #%lld %s · %s · %s%s%s", priority_emoji(al->severity),
                        (long long)al->id, alarm_machine(ctx, al), alarm_what(ctx, al, 60),
                        al->observed_at, al->acknowledged ? " · ✅ " : "",
                        al->acknowledged ? clip(ctx, al->acknowledged_by, 30) : "");
}

/* The alarm card as a reply of its own (arena), not yet in any list. */
static struct reply *alarm_card(struct hctx *ctx, const struct alarm *al, bool escalation)
{
    struct replies tmp;
    struct hctx c = {.db = ctx->db, .a = ctx->a, .out = &tmp};
    struct rb rb;
    long long id = (long long)al->id;

    replies_init(&tmp);
    rb_init(&rb);
    if (escalation && !al->acknowledged && !al->resolved)
        rb_addf(&rb, "⏫ Not acknowledged since %s\n", hhmm(al->observed_at));
    else if (escalation)
        rb_addf(&rb, "⏫ Escalated to the supervisors\n");
    rb_addf(&rb, "%s %s · alarm #%lld\n", priority_emoji(al->severity), upper(&c, al->severity),
            id);
    rb.context = reply_context(c.a, al->factory_id, "alarm", arena_printf(c.a, "%lld", id));
    if (al->equipment_number)
        rb_addf(&rb, "%s · %s (device %s)\n", clip(&c, al->equipment_label, 60),
                al->equipment_number, al->device_key);
    else
        rb_addf(&rb, "Device %s · not linked to a machine\n", al->device_key);
    rb_addf(&rb, "%s\n", alarm_what(&c, al, 300));
    if (strcmp(al->source, "rule") == 0)
        rb_addf(&rb, "Rule: %s · %s\n", clip(&c, al->rule_name ? al->rule_name : "?", 60),
                al->observed_at);
    else if (strcmp(al->source, "device") == 0)
        rb_addf(&rb, "From the device · %s\n", al->observed_at);
    else
        rb_addf(&rb, "%s\n", al->observed_at);
    if (al->acknowledged)
        rb_addf(&rb, "✅ Acknowledged by %s %s\n",
                clip(&c, al->acknowledged_by ? al->acknowledged_by : "someone", 30),
                hhmm(al->acknowledged_at));
    if (al->resolved && al->resolved_by)
        rb_addf(&rb, "☑️ Resolved by %s %s\n", clip(&c, al->resolved_by, 30),
                hhmm(al->resolved_at));
    else if (al->resolved && strcmp(al->source, "offline") == 0)
        rb_addf(&rb, "☑️ Resolved: back online %s\n", hhmm(al->resolved_at));
    else if (al->resolved)
        rb_addf(&rb, "☑️ Resolved by Rivet %s\n", hhmm(al->resolved_at));
    if (al->work_order_number)
        rb_addf(&rb, "🛠 %s\n", al->work_order_number);

    /* Only the buttons that still make sense: a resolved alarm keeps just
     * the way to its work order. */
    if (!al->resolved && !al->acknowledged)
        rb_button(&c, &rb, "✅ Acknowledge", arena_printf(c.a, "/ack %lld", id));
    else if (!al->resolved)
        rb_button(&c, &rb, "☑️ Resolve", arena_printf(c.a, "/resolve %lld", id));
    rb_row(&rb);
    if (al->work_order_number)
        rb_button(&c, &rb, arena_printf(c.a, "🛠 %s", al->work_order_number),
                  arena_printf(c.a, "/wo view %s", al->work_order_number));
    else if (!al->resolved)
        rb_button(&c, &rb, "🛠 Work order", arena_printf(c.a, "/wo alarm %lld", id));
    if (!al->resolved && !al->acknowledged)
        rb_button(&c, &rb, "🔕 Mute 1h", arena_printf(c.a, "/mute #%lld 1h", id));
    rb_send(&c, &rb);
    return tmp.head;
}

int alarm_reply(struct db *db, struct arena *a, int64_t factory_id, int64_t alarm_id,
                bool escalation, struct reply *out)
{
    struct hctx ctx = {.db = db, .a = a};
    struct alarm al;
    struct reply *r;
    int ret;

    ret = db_alarm_get(db, a, factory_id, alarm_id, false, &al);
    if (ret < 0)
        return ret;
    r = alarm_card(&ctx, &al, escalation);
    if (!r)
        return -ENOMEM;
    *out = *r;
    out->alarm = true;
    out->next = NULL;
    return 0;
}

int alarm_storm_reply(struct arena *a, const struct alarm *alarms, int n, struct reply *out)
{
    struct replies tmp;
    struct hctx ctx = {.a = a, .out = &tmp};
    int by[SEV_COUNT] = {0};
    const char *sep = "";
    struct rb rb;

    replies_init(&tmp);
    for (int i = 0; i < n; i++) {
        int k = severity_index(alarms[i].severity);
        if (k >= 0)
            by[k]++;
    }
    rb_init(&rb);
    rb_addf(&rb, "🚨 %d alarm%s in the last seconds: ", n, n == 1 ? "" : "s");
    for (int k = SEV_COUNT - 1; k >= 0; k--) {
        if (!by[k])
            continue;
        rb_addf(&rb, "%s%s %d %s", sep, priority_emoji(severities[k]), by[k], severities[k]);
        sep = " · ";
    }
    rb_addf(&rb, "\n");
    for (int i = 0; i < n && i < STORM_LINES; i++)
        rb_addf(&rb, "%s\n", alarm_line(&ctx, &alarms[i]));
    if (n > STORM_LINES)
        rb_addf(&rb, "… and %d more\n", n - STORM_LINES);
    rb_button(&ctx, &rb, "📋 Open alarms", "/alerts");
    rb_send(&ctx, &rb);
    if (!tmp.head)
        return -ENOMEM;
    *out = *tmp.head;
    out->alarm = true;
    out->next = NULL;
    return 0;
}

/* ---- the copies of an alarm ---- */

int alarm_copies(struct hctx *ctx, int64_t alarm_id, struct replies *edits)
{
    struct reply *card[2] = {NULL, NULL}; /* as an alarm, as an escalation */
    struct alarm_delivery *d;
    struct alarm al;
    int n, r;

    replies_init(edits);
    r = db_alarm_get(ctx->db, ctx->a, ctx->user.factory_id, alarm_id, false, &al);
    if (r == 0)
        r = db_alarm_deliveries(ctx->db, ctx->a, ctx->user.factory_id, alarm_id, &d, &n);
    if (r < 0)
        return reply_db_error(ctx, r);
    for (int i = 0; i < n; i++) {
        bool esc = strcmp(d[i].kind, "escalation") == 0;
        struct reply *e;
        enum channel ch;

        /* Held for, or sent in, a storm summary (which must not turn into
         * one alarm's card), or purged from the outbox: no message of its
         * own to replace. */
        if (d[i].outbox_id <= 0 || strcmp(d[i].state, "queued") != 0 ||
            channel_parse(d[i].channel, &ch) < 0)
            continue;
        if (!card[esc] && !(card[esc] = alarm_card(ctx, &al, esc)))
            return reply_db_error(ctx, -ENOMEM);
        e = arena_alloc(ctx->a, sizeof(*e));
        if (!e)
            return reply_db_error(ctx, -ENOMEM);
        *e = *card[esc];
        e->channel = ch;
        e->chat_id = d[i].chat_id;
        e->edit_outbox = d[i].outbox_id;
        e->next = NULL;
        *edits->tail = e;
        edits->tail = &e->next;
        edits->n++;
    }
    return 0;
}

void replies_add(struct hctx *ctx, struct replies *more)
{
    struct reply *next;

    for (struct reply *r = more->head; r; r = next) {
        next = r->next;
        reply_append(ctx, r);
    }
    replies_init(more);
}

/* ---- /alerts ---- */

static int alerts_list(struct hctx *ctx, long long page)
{
    struct alarm *v;
    int n, total, pages, r;
    struct rb rb;

    r = db_alarm_list(ctx->db, ctx->a, ctx->user.factory_id, true, (int)(page - 1) * LIST_PAGE,
                      LIST_PAGE, &v, &n, &total);
    if (r < 0)
        return reply_db_error(ctx, r);
    if (total == 0) {
        reply(ctx, "No open alarms. 🎉");
        return 0;
    }
    if (!rb_page(ctx, &rb, "🚨 Open alarms", total, n, page, &pages))
        return 0;
    for (int i = 0, k = 0; i < n; i++) {
        rb_addf(&rb, "%s\n", alarm_line(ctx, &v[i]));
        if (v[i].acknowledged)
            continue;
        /* Acknowledge straight from the list, three to a row. */
        if (k > 0 && k % 3 == 0)
            rb_row(&rb);
        rb_button(ctx, &rb, arena_printf(ctx->a, "✅ #%lld", (long long)v[i].id),
                  arena_printf(ctx->a, "/ack %lld", (long long)v[i].id));
        k++;
    }
    if (page < pages)
        rb_addf(&rb, "Next: /alerts %lld\n", page + 1);
    rb_addf(&rb, "One alarm: /alerts #ID\n");
    rb_pager(ctx, &rb, "/alerts", page, pages);
    rb_send(ctx, &rb);
    return 0;
}

int alarms_of_machine(struct hctx *ctx, const struct equipment *e)
{
    struct alarm *v;
    struct rb rb;
    int n, r;

    r = db_alarm_list_equipment(ctx->db, ctx->a, ctx->user.factory_id, e->id, LIST_PAGE, &v, &n);
    if (r < 0)
        return reply_db_error(ctx, r);
    if (n == 0) {
        reply(ctx, "No open alarms on %s %s. 🎉", e->number,
              clip(ctx, e->name ? e->name : e->model, 40));
        return 0;
    }
    rb_init(&rb);
    rb.context = reply_context(ctx->a, ctx->user.factory_id, "eq", e->number);
    rb_addf(&rb, "🚨 Open alarms on %s %s\n", e->number,
            clip(ctx, e->name ? e->name : e->model, 40));
    for (int i = 0, k = 0; i < n; i++) {
        rb_addf(&rb, "%s\n", alarm_line(ctx, &v[i]));
        if (v[i].acknowledged)
            continue;
        if (k > 0 && k % 3 == 0) /* three to a row, as in /alerts */
            rb_row(&rb);
        rb_button(ctx, &rb, arena_printf(ctx->a, "✅ #%lld", (long long)v[i].id),
                  arena_printf(ctx->a, "/ack %lld", (long long)v[i].id));
        k++;
    }
    if (n == LIST_PAGE)
        rb_addf(&rb, "…the newest %d; all of them: /alerts\n", LIST_PAGE);
    rb_send(ctx, &rb);
    return 0;
}

static int alerts_view(struct hctx *ctx, struct args *args, int i)
{
    struct reply *card;
    struct alarm al;
    int r;

    r = alarm_find(ctx, args, i, "/alerts view", false, &al);
    if (r <= 0)
        return r;
    card = alarm_card(ctx, &al, false);
    if (!card)
        return reply_db_error(ctx, -ENOMEM);
    reply_append(ctx, card);
    return 0;
}

int cmd_alerts(struct hctx *ctx, struct args *args)
{
    const char *w = args->n > 0 ? args->tok[0].text : NULL;
    long long page = 1;

    if (!w)
        return alerts_list(ctx, 1);
    if (strcasecmp(w, "view") == 0 || strcasecmp(w, "show") == 0)
        return alerts_view(ctx, args, 1);
    /* "#12" is an alarm, as every list shows it; a bare number is a page,
     * as in /equip list and /wo list (and the ◀ ▶ buttons). */
    if (w[0] == '#')
        return alerts_view(ctx, args, 0);
    if (args->n == 1 && config_parse_int(w, 1, 100000, &page) == 0)
        return alerts_list(ctx, page);
    reply_usage(ctx, "/alerts [PAGE]");
    return 0;
}

/* ---- /ack, /resolve ---- */

/* " (by Ana at 14:40)", " (back online at 14:41)" */
static const char *resolved_how(struct hctx *ctx, const struct alarm *al)
{
    if (al->resolved_by)
        return arena_printf(ctx->a, "by %s at %s", clip(ctx, al->resolved_by, 30),
                            hhmm(al->resolved_at));
    if (strcmp(al->source, "offline") == 0)
        return arena_printf(ctx->a, "back online at %s", hhmm(al->resolved_at));
    return arena_printf(ctx->a, "by Rivet at %s", hhmm(al->resolved_at));
}

/* Tells the sender what changed, then replaces every copy of the alarm. */
static int alarm_changed(struct hctx *ctx, int64_t id, const char *said)
{
    struct replies edits;
    int r = alarm_copies(ctx, id, &edits);

    if (r < 0)
        return r;
    reply(ctx, "%s", said);
    replies_add(ctx, &edits);
    return 0;
}

int cmd_ack(struct hctx *ctx, struct args *args)
{
    struct alarm al;
    int r;

    /* Locked: of two people pressing Acknowledge at once, the second is
     * told who was first. */
    r = alarm_find(ctx, args, 0, "/ack", true, &al);
    if (r <= 0)
        return r;
    if (al.resolved) {
        reply(ctx, "Alarm #%lld is already resolved (%s).", (long long)al.id,
              resolved_how(ctx, &al));
        return 0;
    }
    if (al.acknowledged) {
        reply(ctx, "Alarm #%lld was already acknowledged by %s at %s.", (long long)al.id,
              clip(ctx, al.acknowledged_by ? al.acknowledged_by : "someone", 30),
              hhmm(al.acknowledged_at));
        return 0;
    }
    r = db_alarm_ack(ctx->db, ctx->user.factory_id, al.id, ctx->user.id);
    if (r == -EALREADY) { /* not while it is locked; said plainly all the same */
        reply(ctx, "Alarm #%lld was already acknowledged.", (long long)al.id);
        return 0;
    }
    if (r < 0)
        return reply_db_error(ctx, r);
    return alarm_changed(ctx, al.id,
                         arena_printf(ctx->a, "✅ Alarm #%lld acknowledged.", (long long)al.id));
}

int cmd_resolve(struct hctx *ctx, struct args *args)
{
    struct alarm al;
    int r;

    r = alarm_find(ctx, args, 0, "/resolve", true, &al);
    if (r <= 0)
        return r;
    if (al.resolved) {
        reply(ctx, "Alarm #%lld is already resolved (%s).", (long long)al.id,
              resolved_how(ctx, &al));
        return 0;
    }
    r = db_alarm_resolve(ctx->db, ctx->user.factory_id, al.id, ctx->user.id);
    if (r == -EALREADY) {
        reply(ctx, "Alarm #%lld is already resolved.", (long long)al.id);
        return 0;
    }
    if (r < 0)
        return reply_db_error(ctx, r);
    return alarm_changed(ctx, al.id,
                         arena_printf(ctx->a, "☑️ Alarm #%lld resolved.", (long long)al.id));
}

/* ---- /subscribe, /unsubscribe, /mute ---- */

/* "high and critical alarms" */
static const char *severity_words(const char *min)
{
    switch (severity_index(min)) {
    case 0:
        return "all alarms";
    case 1:
        return "medium, high and critical alarms";
    case 2:
        return "high and critical alarms";
    case 3:
        return "critical alarms";
    default:
        return "no alarms";
    }
}

/* "every device", "press-3", "press-3 and press-4", "a, b and c" */
static const char *devices_words(struct hctx *ctx, struct device *d, int n)
{
    const char *s;

    if (n == 0)
        return "every device";
    s = d[0].key;
    for (int i = 1; i < n; i++)
        s = arena_printf(ctx->a, "%s%s%s", s, i == n - 1 ? " and " : ", ", d[i].key);
    return s ? s : "";
}

/* Looks up the devices named by words from..n-1, all before anything is
 * changed. "all" alone means every device (*n_out 0). Returns 1 when every
 * one is known, 0 after a reply, or a db error. */
static int devices_find(struct hctx *ctx, struct args *args, int from, struct device **out,
                        int *n_out)
{
    int n = args->n - from, r;
    struct device *d;

    *n_out = 0;
    if (n == 1 && strcasecmp(args->tok[from].text, "all") == 0)
        return 1;
    if (n > DEVICES_MAX) {
        reply(ctx, "At most %d devices at a time. Nothing was changed.", DEVICES_MAX);
        return 0;
    }
    d = arena_alloc(ctx->a, sizeof(*d) * (size_t)(n > 0 ? n : 1));
    if (!d)
        return reply_db_error(ctx, -ENOMEM);
    for (int i = 0; i < n; i++) {
        const char *key = args->tok[from + i].text;

        r = device_key_valid(key) ? db_device_get(ctx->db, ctx->a, ctx->user.factory_id, key, &d[i])
                                  : -ENOENT;
        if (r == -ENOENT) {
            reply(ctx, "No device %s. Nothing was changed.", clip(ctx, key, DEVICE_KEY_MAX));
            return 0;
        }
        if (r < 0)
            return reply_db_error(ctx, r);
    }
    *out = d;
    *n_out = n;
    return 1;
}

static int subscriptions_show(struct hctx *ctx)
{
    struct alarm_subscription *s;
    bool every = false;
    struct rb rb;
    int n, r;

    r = db_subscription_list(ctx->db, ctx->a, ctx->user.factory_id, ctx->user.id, &s, &n);
    if (r < 0)
        return reply_db_error(ctx, r);
    for (int i = 0; i < n; i++)
        every |= !s[i].muted_until && !s[i].device_key;
    rb_init(&rb);
    rb_addf(&rb, "🔔 The alarms you get:\n");
    if (!every)
        rb_addf(&rb, "Every device: high and critical alarms (the default)\n");
    for (int i = 0; i < n; i++) {
        if (s[i].muted_until)
            continue;
        rb_addf(&rb, "%s: %s\n", s[i].device_key ? s[i].device_key : "Every device",
                severity_words(s[i].min_severity));
    }
    for (int i = 0; i < n; i++)
        if (s[i].muted_until)
            rb_addf(&rb, "🔕 %s muted until %s\n", s[i].device_key ? s[i].device_key : "All devices",
                    s[i].muted_until);
    rb_addf(&rb, "\nChange it: /subscribe [low|medium|high|critical] [DEVICE…]\n"
                 "  e.g. /subscribe medium (medium and up from every device)\n"
                 "  /subscribe press-3 (everything from press-3)\n"
                 "Stop: /unsubscribe [DEVICE…|all] · Pause: /mute DEVICE 1h\n");
    rb_send(ctx, &rb);
    return 0;
}

int cmd_subscribe(struct hctx *ctx, struct args *args)
{
    const char *min = "low";
    struct device *d = NULL;
    int from = 0, n, r;

    if (args->n == 0)
        return subscriptions_show(ctx);
    /* A severity first; only devices: everything from them. */
    if (priority_parse(args->tok[0].text)) {
        min = priority_parse(args->tok[0].text);
        from = 1;
    }
    r = devices_find(ctx, args, from, &d, &n);
    if (r <= 0)
        return r;
    if (n == 0) {
        r = db_subscription_set(ctx->db, ctx->user.factory_id, ctx->user.id, 0, min);
    } else {
        for (int i = 0; i < n && r >= 0; i++)
            r = db_subscription_set(ctx->db, ctx->user.factory_id, ctx->user.id, d[i].id, min);
    }
    if (r < 0)
        return reply_db_error(ctx, r);
    reply(ctx, "🔔 You will get %s from %s.", severity_words(min), devices_words(ctx, d, n));
    return 0;
}

int cmd_unsubscribe(struct hctx *ctx, struct args *args)
{
    struct device *d = NULL;
    int n = 0, r = 1;

    if (args->n > 0)
        r = devices_find(ctx, args, 0, &d, &n);
    if (r <= 0)
        return r;
    if (n == 0) {
        r = db_subscription_set(ctx->db, ctx->user.factory_id, ctx->user.id, 0, "off");
    } else {
        r = 0;
        for (int i = 0; i < n && r >= 0; i++)
            r = db_subscription_set(ctx->db, ctx->user.factory_id, ctx->user.id, d[i].id, "off");
    }
    if (r < 0)
        return reply_db_error(ctx, r);
    if (n == 0)
        reply(ctx, "🔕 You will get no alarms. Turn them back on with /subscribe high.%s",
              strcmp(ctx->user.role, "technician") != 0
                  ? "\nEscalations of critical alarms nobody acknowledged still reach "
                    "supervisors (admins when there are none), where the factory escalates."
                  : "");
    else
        reply(ctx, "🔕 You will get no alarms from %s. Back on: /subscribe high %s.",
              devices_words(ctx, d, n), n == 1 ? d[0].key : "DEVICE…");
    return 0;
}

/* "30m", "8h", "2d" (a unit is required: "/mute press-3 30" is no
 * duration anyone means). Seconds, or -EINVAL. */
static long long mute_duration(const char *s)
{
    size_t n = strlen(s);
    long long v;

    if (n < 2 || !((s[n - 1] >= 'a' && s[n - 1] <= 'z') || (s[n - 1] >= 'A' && s[n - 1] <= 'Z')))
        return -EINVAL;
    if (config_parse_duration(s, &v) < 0 || v < MUTE_MIN_S || v > MUTE_MAX_S)
        return -EINVAL;
    return v;
}

int cmd_mute(struct hctx *ctx, struct args *args)
{
    const char *what, *name, *until = NULL;
    struct alarm_subscription *s;
    int64_t device_id = 0;
    long long seconds = 0;
    int n, r;

    if (args->n != 2) {
        reply_usage(ctx, "/mute");
        return 0;
    }
    what = args->tok[0].text;
    if (strcasecmp(args->tok[1].text, "off") != 0 &&
        (seconds = mute_duration(args->tok[1].text)) < 0) {
        reply(ctx, "\"%s\" is not a duration: a mute lasts 1m to 30d, e.g. 30m, 8h or 2d.",
              clip(ctx, args->tok[1].text, 20));
        return 0;
    }
    if (strcasecmp(what, "all") == 0) {
        name = "All devices";
    } else if (what[0] == '#') {
        /* The 🔕 button of an alarm: mutes its device. */
        struct alarm al;
        int64_t id;
        if (!alarm_id_parse(what, &id)) {
            reply(ctx, "\"%s\" is not an alarm number: for alarm #12, send /mute #12 1h.",
                  clip(ctx, what, 30));
            return 0;
        }
        r = alarm_get(ctx, id, false, &al);
        if (r <= 0)
            return r;
        device_id = al.device_id;
        name = al.device_key;
    } else {
        struct device d;
        r = device_key_valid(what) ? db_device_get(ctx->db, ctx->a, ctx->user.factory_id, what, &d)
                                   : -ENOENT;
        if (r == -ENOENT) {
            reply(ctx, "No device %s. Nothing was changed.", clip(ctx, what, DEVICE_KEY_MAX));
            return 0;
        }
        if (r < 0)
            return reply_db_error(ctx, r);
        device_id = d.id;
        name = d.key;
    }
    if (seconds == 0) {
        /* Say what is true: nothing to lift, or another mute still on. */
        const char *mine = NULL, *every = NULL;
        r = db_subscription_list(ctx->db, ctx->a, ctx->user.factory_id, ctx->user.id, &s, &n);
        if (r < 0)
            return reply_db_error(ctx, r);
        for (int i = 0; i < n; i++) {
            if (!s[i].muted_until)
                continue;
            if (!s[i].device_key)
                every = s[i].muted_until;
            else if (device_id && strcmp(s[i].device_key, name) == 0)
                mine = s[i].muted_until;
        }
        if (device_id ? !mine : !every) {
            reply(ctx, "%s %s not muted.", name, device_id ? "was" : "were");
            return 0;
        }
        r = db_mute_set(ctx->db, ctx->user.factory_id, ctx->user.id, device_id, 0);
        if (r < 0)
            return reply_db_error(ctx, r);
        if (device_id && every)
            reply(ctx, "🔔 %s unmuted, but all devices stay muted until %s (/mute all off).", name,
                  every);
        else
            reply(ctx, "🔔 %s unmuted.", name);
        return 0;
    }
    r = db_mute_set(ctx->db, ctx->user.factory_id, ctx->user.id, device_id, seconds);
    if (r < 0)
        return reply_db_error(ctx, r);
    /* The end of the mute in the factory's time, as the database has it. */
    r = db_subscription_list(ctx->db, ctx->a, ctx->user.factory_id, ctx->user.id, &s, &n);
    if (r < 0)
        return reply_db_error(ctx, r);
    for (int i = 0; i < n && !until; i++)
        if (s[i].muted_until &&
            (device_id ? s[i].device_key && strcmp(s[i].device_key, name) == 0 : !s[i].device_key))
            until = s[i].muted_until;
    /* Within a day the hour is enough; past it, the date too. */
    if (until && seconds < 86400)
        until = hhmm(until);
    reply(ctx, "🔕 %s muted until %s. Unmute: /mute %s off", name, until ? until : "later",
          device_id ? name : "all");
    return 0;
}

/* ---- /rules ---- */

int cmd_rules(struct hctx *ctx, struct args *args)
{
    struct alert_rule *v;
    struct rb rb;
    int n, active = 0, r;

    /* Supervisors and admins only: checked before, with every role
     * (permissions[] in start.c). */
    if (args->n > 0) {
        reply_usage(ctx, "/rules");
        return 0;
    }
    r = db_rule_list(ctx->db, ctx->a, ctx->user.factory_id, false, &v, &n);
    if (r < 0)
        return reply_db_error(ctx, r);
    if (n == 0) {
        reply(ctx, "No alert rules yet. An admin adds them on the server: rivet rule add FILE");
        return 0;
    }
    for (int i = 0; i < n; i++)
        active += v[i].active;
    rb_init(&rb);
    rb_addf(&rb, "📏 Alert rules (%d, %d active)\n", n, active);
    for (int i = 0; i < n; i++) {
        char desc[512], err[256];
        struct rule *rule = NULL;

        rb_addf(&rb, "\n%s %s %s · %s\n", v[i].active ? "●" : "○", priority_emoji(v[i].severity),
                v[i].severity, clip(ctx, v[i].name, 80));
        /* The stored definition was checked when it was saved; one that no
         * longer compiles is shown as such rather than hidden. */
        if (rule_compile(v[i].definition, strlen(v[i].definition), &rule, err, sizeof(err)) == 0) {
            rule_describe(rule, desc, sizeof(desc));
            rb_addf(&rb, "  %s\n", one_line(ctx, desc, 200));
        } else {
            rb_addf(&rb, "  (cannot be read: %s)\n", one_line(ctx, err, 120));
        }
        if (rule)
            rule_free(rule);
    }
    rb_addf(&rb, "\n● active · ○ inactive\n");
    rb_send(ctx, &rb);
    return 0;
}
