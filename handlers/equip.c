/* /equip: list, search, view, add, edit. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alarm.h"
#include "alert.h"
#include "arena.h"
#include "config.h"

/* The machine's own fields, then (on /equip edit only) the device that
 * watches it. */
enum {
    K_NAME,
    K_MANUFACTURER,
    K_MODEL,
    K_SERIAL,
    K_LOCATION,
    K_CRITICALITY,
    N_FIELDS,
    K_DEVICE = N_FIELDS,
    N_KEYS
};
const char *const equip_option_keys[EQUIP_KEYS_N] = {"name",     "manufacturer", "model", "serial",
                                                     "location", "criticality",  "device"};
/* Names and locations have spaces: "location=Line 2 bay 4". */
const bool equip_option_absorbs[EQUIP_KEYS_N] = {true, false, false, false, true, false, false};
_Static_assert(N_KEYS == EQUIP_KEYS_N && N_FIELDS == EQUIP_FIELDS_N, "args.h's /equip table");

/* "Siemens G120C — Main drive · Line 2" */
static const char *label(struct hctx *ctx, const struct equipment *e)
{
    return arena_printf(ctx->a, "%s %s%s%s%s%s", clip(ctx, e->manufacturer, 40),
                        clip(ctx, e->model, 40), e->name ? " — " : "",
                        e->name ? clip(ctx, e->name, 40) : "", e->location ? " · " : "",
                        e->location ? clip(ctx, e->location, 40) : "");
}

/* A button that opens one machine, on a row of its own. */
static void view_button(struct hctx *ctx, struct rb *rb, const struct equipment *e)
{
    rb_button(ctx, rb, arena_printf(ctx->a, "🏭 %s %s %s", e->number, e->manufacturer, e->model),
              arena_printf(ctx->a, "/equip view %s", e->number));
    rb_row(rb);
}

void equip_card(struct hctx *ctx, const char *headline, const struct equipment *e)
{
    struct work_order *wos;
    struct rb rb;
    int n, r;

    r = db_wo_list_equipment(ctx->db, ctx->a, ctx->user.factory_id, e->id, LIST_PAGE, &wos, &n);
    if (r < 0) {
        reply_db_error(ctx, r);
        return;
    }
    rb_init(&rb);
    rb_addf(&rb, "%s%s\n%s %s\n", headline, e->number, e->manufacturer, e->model);
    rb.context = reply_context(ctx->a, ctx->user.factory_id, "eq", e->number);
    if (e->name)
        rb_addf(&rb, "Name: %s\n", e->name);
    if (e->serial)
        rb_addf(&rb, "Serial: %s\n", e->serial);
    if (e->location)
        rb_addf(&rb, "Location: %s\n", e->location);
    if (e->nameplate && strcmp(e->nameplate, "{}") != 0) {
        const char *rt = nameplate_ratings(ctx, e->nameplate);
        if (*rt)
            rb_addf(&rb, "Nameplate: %s\n", rt);
    }
    rb_addf(&rb, "Criticality: %s %s\n", priority_emoji(e->criticality), e->criticality);
    rb_addf(&rb, "Added %s%s%s\n", e->created_at, e->created_by ? " by " : "",
            e->created_by ? e->created_by : "");
    if (e->open_work_orders == 0) {
        rb_addf(&rb, "\nNo open work orders.\n");
    } else {
        rb_addf(&rb, "\nOpen work orders: %d\n", e->open_work_orders);
        for (int i = 0; i < n; i++)
            rb_addf(&rb, "%s %s %s %s\n", priority_emoji(wos[i].priority), wos[i].number,
                    status_emoji(wos[i].status), clip(ctx, wos[i].title, 60));
        if (e->open_work_orders > n)
            rb_addf(&rb, "…and %d more, less urgent.\n", e->open_work_orders - n);
        for (int i = 0; i < n && i < 5; i++) {
            rb_button(ctx, &rb, arena_printf(ctx->a, "🛠 %s %s", wos[i].number, wos[i].title),
                      arena_printf(ctx->a, "/wo view %s", wos[i].number));
            rb_row(&rb);
        }
    }
    rb_button(ctx, &rb, "🛠 New work order", arena_printf(ctx->a, "/wo new %s", e->number));
    rb_send(ctx, &rb);
}

static int equip_list(struct hctx *ctx, struct args *args)
{
    struct equipment *v;
    long long page = 1;
    int n, total, pages, r;
    struct rb rb;

    if (args->n > 2 ||
        (args->n == 2 && config_parse_int(args->tok[1].text, 1, 100000, &page) < 0)) {
        reply_usage(ctx, "/equip list");
        return 0;
    }
    r = db_equipment_list(ctx->db, ctx->a, ctx->user.factory_id, (int)(page - 1) * LIST_PAGE,
                          LIST_PAGE, &v, &n, &total);
    if (r < 0)
        return reply_db_error(ctx, r);
    if (total == 0) {
        reply(ctx, "No equipment yet. Add a machine:\n/equip add Siemens G120C serial=… "
                   "location=…");
        return 0;
    }
    if (!rb_page(ctx, &rb, "🏭 Equipment", total, n, page, &pages))
        return 0;
    for (int i = 0; i < n; i++) {
        rb_addf(&rb, "%s · %s\n", v[i].number, label(ctx, &v[i]));
        view_button(ctx, &rb, &v[i]);
    }
    if (page < pages)
        rb_addf(&rb, "Next: /equip list %lld\n", page + 1);
    rb_pager(ctx, &rb, "/equip list", page, pages);
    rb_send(ctx, &rb);
    return 0;
}

static void matches(struct hctx *ctx, const char *title, struct equipment *v, int n)
{
    struct rb rb;

    rb_init(&rb);
    rb_addf(&rb, "%s\n", title);
    for (int i = 0; i < n; i++) {
        rb_addf(&rb, "%s · %s\n", v[i].number, label(ctx, &v[i]));
        view_button(ctx, &rb, &v[i]);
    }
    rb_send(ctx, &rb);
}

static int equip_search(struct hctx *ctx, const char *text)
{
    struct equipment *v;
    int n, r;

    if (!field_ok(ctx, "search text", text, FIELD_MAX_CHARS))
        return 0;
    r = db_equipment_search(ctx->db, ctx->a, ctx->user.factory_id, text, LIST_PAGE, &v, &n);
    if (r < 0)
        return reply_db_error(ctx, r);
    if (n == 0) {
        reply(ctx, "No equipment matches \"%s\". Try fewer words, or /equip list.",
              clip(ctx, text, 60));
        return 0;
    }
    matches(ctx,
            arena_printf(ctx->a, "🔎 %d match%s for \"%s\"%s:", n, n == 1 ? "" : "es",
                         clip(ctx, text, 60), n == LIST_PAGE ? " (best first)" : ""),
            v, n);
    return 0;
}

int reply_no_equipment(struct hctx *ctx, const char *number)
{
    const char *s = db_equipment_suggest(ctx->db, ctx->a, ctx->user.factory_id, number);

    if (s)
        reply(ctx, "No equipment %s. Did you mean %s?", clip(ctx, number, 40), s);
    else
        reply(ctx, "No equipment %s. Find it with /equip search TEXT.", clip(ctx, number, 40));
    return 0;
}

static int equip_view(struct hctx *ctx, const char *target)
{
    struct equipment e, *v;
    int n, r;

    if (!*target) {
        reply_usage(ctx, "/equip view");
        return 0;
    }
    if (number_valid("EQ", target)) {
        r = db_equipment_get(ctx->db, ctx->a, ctx->user.factory_id, target, &e);
        if (r == -ENOENT)
            return reply_no_equipment(ctx, target);
        if (r < 0)
            return reply_db_error(ctx, r);
        equip_card(ctx, "🏭 ", &e);
        return 0;
    }
    if (!field_ok(ctx, "search text", target, FIELD_MAX_CHARS))
        return 0;
    r = db_equipment_search(ctx->db, ctx->a, ctx->user.factory_id, target, 5, &v, &n);
    if (r < 0)
        return reply_db_error(ctx, r);
    if (n == 0)
        return reply_no_equipment(ctx, target);
    /* One machine that holds the text as typed beats look-alikes. */
    if (n == 1 || (v[0].substring && !v[1].substring)) {
        equip_card(ctx, "🏭 ", &v[0]);
        return 0;
    }
    matches(
        ctx,
        arena_printf(ctx->a, "Several machines match \"%s\"; which one?", clip(ctx, target, 60)), v,
        n);
    return 0;
}

/* Checks the values given; replies and returns false on the first bad one. */
static bool fields_ok(struct hctx *ctx, struct equipment_fields *f)
{
    const char **vals[N_FIELDS] = {&f->name,   &f->manufacturer, &f->model,
                                   &f->serial, &f->location,     &f->criticality};

    for (int k = 0; k < N_FIELDS; k++) {
        if (!*vals[k])
            continue;
        if (k == K_CRITICALITY) {
            const char *c = priority_parse(f->criticality);
            if (!c) {
                reply(ctx, "Criticality must be low, medium, high or critical.");
                return false;
            }
            f->criticality = c;
            continue;
        }
        /* name, serial and location are cleared with an empty value. */
        if (text_blank(*vals[k]) && (k == K_NAME || k == K_SERIAL || k == K_LOCATION)) {
            *vals[k] = "";
            continue;
        }
        if (!field_ok(ctx, equip_option_keys[k], *vals[k], FIELD_MAX_CHARS))
            return false;
    }
    return true;
}

static int equip_add(struct hctx *ctx, struct args *args)
{
    const char *vals[N_KEYS];
    struct equipment_fields f;
    struct equipment e;
    int r;

    if (!options_ok(ctx, args, 1, equip_option_keys, equip_option_absorbs, N_FIELDS, vals))
        return 0;
    f = (struct equipment_fields){vals[K_NAME],   vals[K_MANUFACTURER], vals[K_MODEL],
                                  vals[K_SERIAL], vals[K_LOCATION],     vals[K_CRITICALITY]};
    /* MANUFACTURER and MODEL as words, unless given as options. */
    int w = 1;
    if (!f.manufacturer && w < args->n)
        f.manufacturer = args->tok[w++].text;
    if (!f.model && w < args->n)
        f.model = args->tok[w++].text;
    if (w != args->n || !f.manufacturer || !f.model) {
        reply_usage(ctx, "/equip add");
        if (w < args->n)
            reply(ctx, "Put a model with spaces in quotes: /equip add Siemens \"G120C PN\"");
        return 0;
    }
    if (!fields_ok(ctx, &f))
        return 0;
    /* Blank optional fields of a new machine are simply not set. */
    if (f.name && !*f.name)
        f.name = NULL;
    if (f.serial && !*f.serial)
        f.serial = NULL;
    if (f.location && !*f.location)
        f.location = NULL;
    r = db_equipment_add(ctx->db, ctx->a, ctx->user.factory_id, ctx->user.id, &f, &e);
    if (r < 0)
        return reply_db_error(ctx, r);
    equip_card(ctx, "✅ Added ", &e);
    return 0;
}

/* device=-: unlinks every device linked to the machine. Devices are listed
 * by key, not by machine, so this reads them page by page: a rare command,
 * and a factory has a bounded number of devices (max_devices). */
static int devices_unlink(struct hctx *ctx, const struct equipment *e)
{
    const char *gone;
    int r = db_device_unlink_all(ctx->db, ctx->a, ctx->user.factory_id, e->id, &gone);

    if (r < 0)
        return reply_db_error(ctx, r);
    if (gone)
        reply(ctx, "📡 Unlinked from %s: %s.", e->number, clip(ctx, gone, 600));
    else
        reply(ctx, "No device was linked to %s.", e->number);
    return 0;
}

static int equip_edit(struct hctx *ctx, struct args *args)
{
    const char *vals[N_KEYS], *number, *key;
    struct equipment_fields f;
    struct equipment e;
    struct device d = {0};
    bool any = false, fields = false;
    int r;

    if (args->n < 2 || !number_valid("EQ", args->tok[1].text)) {
        reply_usage(ctx, "/equip edit");
        return 0;
    }
    number = args->tok[1].text;
    if (!options_ok(ctx, args, 2, equip_option_keys, equip_option_absorbs, N_KEYS, vals))
        return 0;
    if (args->n > 2) {
        reply(ctx,
              "I can't change \"%s\". Fields: name, manufacturer, model, serial, location, "
              "criticality, device; e.g. location=\"Line 3\".",
              clip(ctx, args->tok[2].text, 40));
        return 0;
    }
    for (int k = 0; k < N_KEYS; k++)
        any |= vals[k] != NULL;
    for (int k = 0; k < N_FIELDS; k++)
        fields |= vals[k] != NULL;
    if (!any) {
        reply_usage(ctx, "/equip edit");
        return 0;
    }
    f = (struct equipment_fields){vals[K_NAME],   vals[K_MANUFACTURER], vals[K_MODEL],
                                  vals[K_SERIAL], vals[K_LOCATION],     vals[K_CRITICALITY]};
    if (!fields_ok(ctx, &f))
        return 0;
    /* The device is checked before anything is changed. */
    key = vals[K_DEVICE];
    if (key && strcmp(key, "-") != 0) {
        r = device_key_valid(key) ? db_device_get(ctx->db, ctx->a, ctx->user.factory_id, key, &d)
                                  : -ENOENT;
        if (r == -ENOENT) {
            reply(ctx, "No device %s in your factory. Nothing was changed.",
                  clip(ctx, key, DEVICE_KEY_MAX));
            return 0;
        }
        if (r < 0)
            return reply_db_error(ctx, r);
    }
    if (fields)
        r = db_equipment_update(ctx->db, ctx->a, ctx->user.factory_id, number, &f, &e);
    else
        r = db_equipment_get(ctx->db, ctx->a, ctx->user.factory_id, number, &e);
    if (r == -ENOENT)
        return reply_no_equipment(ctx, number);
    if (r < 0)
        return reply_db_error(ctx, r);
    if (key && strcmp(key, "-") == 0) {
        r = devices_unlink(ctx, &e);
        if (r < 0)
            return r;
    } else if (key && d.equipment_id == e.id) {
        reply(ctx, "📡 Device %s already reports for %s.", d.key, e.number);
    } else if (key) {
        r = db_device_link(ctx->db, ctx->user.factory_id, d.key, e.id);
        if (r < 0)
            return reply_db_error(ctx, r);
        if (d.equipment_number)
            reply(ctx, "📡 Device %s now reports for %s (no longer for %s).", d.key, e.number,
                  d.equipment_number);
        else
            reply(ctx, "📡 Device %s now reports for %s.", d.key, e.number);
    }
    equip_card(ctx, fields ? "✏️ Updated " : "🏭 ", &e);
    return 0;
}

int cmd_equip(struct hctx *ctx, struct args *args)
{
    const char *sub = args->n > 0 ? args->tok[0].text : "list";

    if (strcasecmp(sub, "list") == 0)
        return equip_list(ctx, args);
    if (strcasecmp(sub, "search") == 0 || strcasecmp(sub, "find") == 0) {
        if (args->n < 2) {
            reply_usage(ctx, "/equip search");
            return 0;
        }
        return equip_search(ctx, args_rest(ctx->a, args, 1));
    }
    if (strcasecmp(sub, "view") == 0 || strcasecmp(sub, "show") == 0)
        return equip_view(ctx, args_rest(ctx->a, args, 1));
    if (strcasecmp(sub, "add") == 0 || strcasecmp(sub, "new") == 0)
        return equip_add(ctx, args);
    if (strcasecmp(sub, "edit") == 0)
        return equip_edit(ctx, args);
    /* "/equip EQ-2026-000001" views, "/equip g120" searches. */
    if (number_valid("EQ", sub) && args->n == 1)
        return equip_view(ctx, sub);
    return equip_search(ctx, args_rest(ctx->a, args, 0));
}
