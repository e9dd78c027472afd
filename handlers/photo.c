/* Nameplate photos: what was read, what it matches, and the technician's
 * decision (/photo save, link, edit, wo, discard). Nothing is created
 * until a person says so; the same photo is read once per factory. */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "config.h"
#include "photo.h"
#include "text.h"

/* A read's model matches a machine's when the two are equal once OCR's
 * usual confusions are folded away (O I S B Z G as 0 1 5 8 2 6, letters and
 * digits only) or differ by one dropped character: see
 * db_equipment_similar_model(). Measured in tests/integration/test_photo.c
 * on 22 misread pairs and 21 pairs of different models of one family: 21
 * misreads match (not "L08C" read as "L8C": too short for the dropped
 * character rule), no family pair does. pg_trgm similarity cannot separate
 * them (misreads score 0.25 to 0.80, family members 0.23 to 0.75). */

#define CAPTION_MAX_CHARS 200
#define MAX_CANDIDATES 3

/* ---- fields as JSON ---- */

/* {"model": {"value", "confidence", "source"}, ...} (arena), or NULL. */
static const char *fields_json(struct hctx *ctx, const struct nameplate *np)
{
    json_t *o = json_object();
    const char *s = NULL;
    char *d;

    for (int i = 0; o && i < NP_FIELD_COUNT; i++) {
        const struct np_value *v = &np->f[i];

        if (v->value[0])
            json_object_set_new(o, np_field_name(i),
                                json_pack("{s:s, s:f, s:s}", "value", v->value, "confidence",
                                          (double)(int)(v->confidence * 1000) / 1000.0, "source",
                                          np_source_name(v->source)));
    }
    d = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (d)
        s = arena_strdup(ctx->a, d);
    free(d);
    json_decref(o);
    return s;
}

static enum np_source source_by_name(const char *s)
{
    if (strcmp(s, "ocr") == 0)
        return NP_SRC_OCR;
    if (strcmp(s, "llm") == 0)
        return NP_SRC_LLM;
    return NP_SRC_USER;
}

/* The fields of a stored read. Unknown members are skipped. */
static void fields_parse(const char *text, struct nameplate *np)
{
    json_t *o = json_loads(text, 0, NULL), *v;
    const char *key;

    memset(np, 0, sizeof(*np));
    json_object_foreach(o, key, v)
    {
        int f = np_field_by_name(key);
        const char *val = json_string_value(json_object_get(v, "value"));
        const char *src = json_string_value(json_object_get(v, "source"));

        if (f >= 0 && val)
            np_set(np, f, val, (float)json_number_value(json_object_get(v, "confidence")),
                   source_by_name(src ? src : ""));
    }
    json_decref(o);
    np_score(np);
}

/* The plate fields a machine keeps after a new read: each field of the
 * read, unless the machine's value was typed by a person or is at least as
 * sure. Returns JSON (arena), or NULL. */
static const char *merged_fields(struct hctx *ctx, const char *kept, const char *read)
{
    struct nameplate old, add;

    fields_parse(kept ? kept : "{}", &old);
    fields_parse(read, &add);
    for (int i = 0; i < NP_FIELD_COUNT; i++) {
        const struct np_value *o = &old.f[i], *n = &add.f[i];

        if (!n->value[0])
            continue;
        if (o->value[0] && (o->source == NP_SRC_USER || o->confidence >= n->confidence))
            continue;
        old.f[i] = *n;
    }
    return fields_json(ctx, &old);
}

/* Records the read's plate on machine e and reloads e. */
static int record_plate(struct hctx *ctx, const struct nameplate_read *rd, struct equipment *e)
{
    const char *fields = merged_fields(ctx, e->nameplate, rd->fields);
    int r;

    if (!fields)
        return -ENOMEM;
    r = db_equipment_set_nameplate(ctx->db, ctx->user.factory_id, e->id, fields, rd->file_id,
                                   rd->sha256);
    if (r == 0)
        r = db_equipment_get(ctx->db, ctx->a, ctx->user.factory_id, e->number, e);
    return r;
}

/* ---- matching ---- */

/* A manufacturer for comparison: the alias table's name, else letters and
 * digits in lower case ("Allied Eng. Co" -> "alliedengco"). */
static const char *maker_key(struct hctx *ctx, const char *name)
{
    const char *canon = name ? np_manufacturer_canonical(name) : NULL;
    char *k;
    size_t n = 0;

    if (!name || !*name)
        return NULL;
    if (canon)
        name = canon;
    k = arena_alloc(ctx->a, strlen(name) + 1);
    if (!k)
        return NULL;
    for (const char *p = name; *p; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))
            k[n++] = *p;
        else if (*p >= 'A' && *p <= 'Z')
            k[n++] = (char)(*p - 'A' + 'a');
    k[n] = '\0';
    return n ? k : NULL;
}

/* NULL (unknown) is compatible with anything. */
static bool same_maker(struct hctx *ctx, const char *a, const char *b)
{
    const char *ka = maker_key(ctx, a), *kb = maker_key(ctx, b);

    return !ka || !kb || strcmp(ka, kb) == 0;
}

struct match {
    struct equipment same; /* the machine this plate is (same serial) */
    bool found;
    struct equipment cand[MAX_CANDIDATES]; /* machines it may be */
    int n_cand;
};

/* Looks for the machine inside the user's factory: the same serial and a
 * compatible manufacturer is the same machine; the same manufacturer and
 * the same model (give or take OCR's misreadings) is a candidate, unless
 * both serials are known and differ. */
static int match(struct hctx *ctx, const struct nameplate *np, struct match *m)
{
    const char *serial = np->f[NP_SERIAL].value, *model = np->f[NP_MODEL].value;
    const char *maker = np->f[NP_MANUFACTURER].value;
    char norm[NP_VALUE_MAX], other[NP_VALUE_MAX];
    struct equipment *v;
    int n, r;

    memset(m, 0, sizeof(*m));
    np_serial_normalize(serial, norm, sizeof(norm));
    if (strlen(norm) >= 3) {
        r = db_equipment_by_serial(ctx->db, ctx->a, ctx->user.factory_id, norm, 5, &v, &n);
        if (r < 0)
            return r;
        for (int i = 0; i < n; i++) {
            if (same_maker(ctx, maker[0] ? maker : NULL, v[i].manufacturer)) {
                m->same = v[i];
                m->found = true;
                return 0;
            }
        }
    }
    if (!model[0])
        return 0;
    r = db_equipment_similar_model(ctx->db, ctx->a, ctx->user.factory_id, model, 10, &v, &n);
    if (r < 0)
        return r;
    for (int i = 0; i < n && m->n_cand < MAX_CANDIDATES; i++) {
        if (maker[0] && !same_maker(ctx, maker, v[i].manufacturer))
            continue;
        if (!maker[0] && !maker_key(ctx, v[i].manufacturer))
            continue;
        if (norm[0] && v[i].serial) {
            np_serial_normalize(v[i].serial, other, sizeof(other));
            if (other[0] && strcmp(norm, other) != 0)
                continue; /* different serials never merge */
        }
        m->cand[m->n_cand++] = v[i];
    }
    return 0;
}

/* ---- replies ---- */

/* "460 V · 12.4 A · 10 HP · 1765 RPM · 60 Hz · 3 ph" from the ratings, "" when
 * none; uncertain values get a "?". */
static const char *ratings(struct hctx *ctx, const struct nameplate *np)
{
    static const struct {
        enum np_field f;
        const char *before, *after;
    } parts[] = {
        {NP_VOLTS, "", " V"},
        {NP_AMPS, "", " A"},
        {NP_HP, "", " HP"},
        {NP_KW, "", " kW"},
        {NP_RPM, "", " rpm"},
        {NP_HZ, "", " Hz"},
        {NP_PHASE, "", " ph"},
        {NP_FRAME, "frame ", ""},
        {NP_ENCLOSURE, "", ""},
        {NP_SERVICE_FACTOR, "S.F. ", ""},
        {NP_INSULATION, "ins. class ", ""},
        {NP_EFFICIENCY, "eff. ", "%"},
        {NP_YEAR, "made ", ""},
    };
    const char *s = "";

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        const struct np_value *v = &np->f[parts[i].f];

        if (!v->value[0])
            continue;
        s = arena_printf(ctx->a, "%s%s%s%s%s%s", s, *s ? " · " : "", parts[i].before, v->value,
                         parts[i].after, v->confidence < NP_CONFIDENT ? "?" : "");
        if (!s)
            return "";
    }
    return s;
}

const char *nameplate_ratings(struct hctx *ctx, const char *fields)
{
    struct nameplate np;

    fields_parse(fields, &np);
    return ratings(ctx, &np);
}

static void field_line(struct rb *rb, const struct nameplate *np, enum np_field f)
{
    const struct np_value *v = &np->f[f];

    if (v->value[0])
        rb_addf(rb, "%s: %s%s%s\n", np_field_label(f), v->value,
                v->confidence < NP_CONFIDENT ? " ❓" : "", v->source == NP_SRC_LLM ? " (AI)" : "");
    else
        rb_addf(rb, "%s: —\n", np_field_label(f));
}

static bool savable(const struct nameplate *np)
{
    return np->f[NP_MANUFACTURER].value[0] && np->f[NP_MODEL].value[0];
}

/* The read, what it matches, and the buttons to decide. */
static void show_read(struct hctx *ctx, const struct nameplate_read *rd, const struct nameplate *np,
                      const struct match *m, bool again)
{
    const char *rt = ratings(ctx, np);
    bool any = false;
    struct rb rb;

    for (int i = 0; i < NP_FIELD_COUNT; i++)
        any |= np->f[i].value[0] != '\0';
    rb_init(&rb);
    if (!any) {
        rb_addf(&rb, "📷 I could not read a nameplate in that photo.\n"
                     "Try again closer, straight on, without glare, with the whole plate in the "
                     "picture; or register the machine by hand:\n/equip add MANUFACTURER MODEL "
                     "serial=…");
        rb_send(ctx, &rb);
        return;
    }
    rb_addf(&rb, "📷 Nameplate%s (read %d%% sure%s)\n", again ? ", seen before" : "",
            (int)(np->confidence * 100 + 0.5f), rd->llm_used ? ", with AI help" : "");
    field_line(&rb, np, NP_MANUFACTURER);
    field_line(&rb, np, NP_MODEL);
    field_line(&rb, np, NP_SERIAL);
    if (*rt)
        rb_addf(&rb, "Ratings: %s\n", rt);
    if (rd->caption)
        rb_addf(&rb, "Note: %s\n", clip(ctx, rd->caption, CAPTION_MAX_CHARS));
    if (strcmp(rd->status, "saved") == 0 || strcmp(rd->status, "linked") == 0)
        rb_addf(&rb, "\nRegistered as %s.\n", rd->equipment_number ? rd->equipment_number : "?");
    else if (m->found)
        rb_addf(&rb, "\nSame serial as %s %s %s.\n", m->same.number, m->same.manufacturer,
                m->same.model);
    else if (m->n_cand)
        for (int i = 0; i < m->n_cand; i++)
            rb_addf(&rb, "%s %s · %s %s%s\n", i == 0 ? "\nMaybe:" : "      ", m->cand[i].number,
                    m->cand[i].manufacturer, m->cand[i].model,
                    m->cand[i].serial ? arena_printf(ctx->a, " (S/N %s)", m->cand[i].serial) : "");
    else
        rb_addf(&rb, "\nNo machine like it in %s yet.\n", ctx->user.factory_name);
    if (!savable(np))
        rb_addf(&rb, "Manufacturer and model are needed to save it: tap Edit.\n");
    if ((strcmp(rd->status, "saved") == 0 || strcmp(rd->status, "linked") == 0) &&
        rd->equipment_number) {
        rb_button(ctx, &rb, "🏭 Open", arena_printf(ctx->a, "/equip view %s", rd->equipment_number));
        rb_button(ctx, &rb, "🛠 New work order",
                  arena_printf(ctx->a, "/wo new %s", rd->equipment_number));
        rb_send(ctx, &rb);
        return;
    }
    if (savable(np) && !m->found)
        rb_button(ctx, &rb, "✅ Save as new",
                  arena_printf(ctx->a, "/photo save %lld", (long long)rd->id));
    if (m->found) {
        rb_button(ctx, &rb, arena_printf(ctx->a, "🔗 Same as %s", m->same.number),
                  arena_printf(ctx->a, "/photo link %lld %s", (long long)rd->id, m->same.number));
    }
    for (int i = 0; i < m->n_cand; i++) {
        rb_row(&rb);
        rb_button(
            ctx, &rb, arena_printf(ctx->a, "🔗 Same as %s", m->cand[i].number),
            arena_printf(ctx->a, "/photo link %lld %s", (long long)rd->id, m->cand[i].number));
    }
    rb_row(&rb);
    rb_button(ctx, &rb, "✏️ Edit", arena_printf(ctx->a, "/photo edit %lld", (long long)rd->id));
    if (savable(np) || m->found)
        rb_button(ctx, &rb, "🛠 New work order",
                  arena_printf(ctx->a, "/photo wo %lld", (long long)rd->id));
    rb_button(ctx, &rb, "❌ Discard",
              arena_printf(ctx->a, "/photo discard %lld", (long long)rd->id));
    rb_send(ctx, &rb);
}

/* ---- a photo arrives ---- */

static void note_info(const struct photo_result *res, struct nameplate_read_info *info)
{
    memset(info, 0, sizeof(*info));
    info->engine = res->engine;
    info->width = res->width;
    info->height = res->height;
    info->ocr_ms = (int)res->ocr.total_ms;
    info->total_ms = (int)res->total_ms;
    info->llm_used = res->llm_used;
    info->llm_failed = res->llm_asked && !res->llm_used;
    /* What an LLM call cost is recorded whether or not its answer helped. */
    if (res->llm_asked && res->usage.provider[0]) {
        info->llm_provider = res->usage.provider;
        info->llm_model = res->usage.model;
        info->llm_ms = (int)res->usage.ms;
        info->prompt_tokens = res->usage.prompt_tokens;
        info->completion_tokens = res->usage.completion_tokens;
        info->cost_usd = res->usage.cost_usd;
    }
}

int photo_received(struct hctx *ctx, const char *caption)
{
    const struct msg_photo *ph = ctx->msg->photo;
    struct nameplate_read rd;
    struct photo_result *res;
    struct nameplate_read_info info;
    struct nameplate np;
    struct match m;
    const char *why = NULL, *fields;
    char sha[65] = "";
    bool again = true;
    int r;

    ctx->out->command = "photo";
    if (caption && !field_ok(ctx, "caption", caption, CAPTION_MAX_CHARS))
        return 0;
    r = ph->fetch(ph->ctx, sha, &why);
    if (r < 0) {
        reply(ctx, "%s", why ? why : "Rivet could not get that photo; please send it again.");
        return 0;
    }
    r = db_nameplate_find(ctx->db, ctx->a, ctx->user.factory_id, sha, &rd);
    if (r == -ENOENT) {
        again = false;
        res = arena_alloc(ctx->a, sizeof(*res));
        if (!res)
            return -ENOMEM;
        r = ph->read(ph->ctx, res, &why);
        if (r < 0) {
            reply(ctx, "%s", why ? why : "Rivet could not read that photo; please try again.");
            return 0;
        }
        fields = fields_json(ctx, &res->np);
        if (!fields)
            return -ENOMEM;
        note_info(res, &info);
        /* A channel's file id longer than the column is not kept (Telegram's
         * are under 100 bytes). */
        r = db_nameplate_add(ctx->db, ctx->a, ctx->user.factory_id, ctx->user.id, ctx->msg->channel,
                             sha, ph->file_id && strlen(ph->file_id) <= 256 ? ph->file_id : NULL,
                             caption, fields, res->np.confidence, &info, &rd);
    } else if (r == 0 && strcmp(rd.status, "discarded") == 0) {
        r = db_nameplate_decide(ctx->db, ctx->user.factory_id, rd.id, ctx->user.id, "pending", 0);
        rd.status = "pending";
    }
    /* The first read was made while the LLM was failing: read again (the
     * LLM may be back), unless a person has decided on it already. */
    if (r == 0 && again && rd.llm_failed && strcmp(rd.status, "pending") == 0) {
        res = arena_alloc(ctx->a, sizeof(*res));
        if (!res)
            return -ENOMEM;
        if (ph->read(ph->ctx, res, &why) == 0 && res->llm_used) {
            fields = fields_json(ctx, &res->np);
            if (!fields)
                return -ENOMEM;
            note_info(res, &info);
            r = db_nameplate_reread(ctx->db, ctx->user.factory_id, rd.id, fields,
                                    res->np.confidence, &info);
            if (r == 0)
                r = db_nameplate_find(ctx->db, ctx->a, ctx->user.factory_id, sha, &rd);
        }
    }
    if (r < 0)
        return reply_db_error(ctx, r);
    fields_parse(rd.fields, &np);
    if (strcmp(rd.status, "pending") == 0) {
        r = match(ctx, &np, &m);
        if (r < 0)
            return reply_db_error(ctx, r);
        /* A confident read of a machine the factory has: show the machine. */
        if (m.found && np_confident(&np)) {
            r = record_plate(ctx, &rd, &m.same);
            if (r == 0)
                r = db_nameplate_decide(ctx->db, ctx->user.factory_id, rd.id, ctx->user.id,
                                        "linked", m.same.id);
            if (r < 0)
                return reply_db_error(ctx, r);
            equip_card(ctx, "📷 This nameplate is ", &m.same);
            return 0;
        }
    } else {
        memset(&m, 0, sizeof(m));
    }
    show_read(ctx, &rd, &np, &m, again);
    return 0;
}

/* ---- /photo ---- */

/* The read named by args word i, or a reply saying why not. */
static bool read_arg(struct hctx *ctx, struct args *args, int i, const char *usage,
                     struct nameplate_read *rd)
{
    long long id;
    int r;

    if (args->n <= i || config_parse_int(args->tok[i].text, 1, INT64_MAX, &id) < 0) {
        reply_usage(ctx, usage);
        return false;
    }
    r = db_nameplate_get(ctx->db, ctx->a, ctx->user.factory_id, id, rd);
    if (r == -ENOENT) {
        reply(ctx, "There is no photo read %lld. Send the photo again.", id);
        return false;
    }
    if (r < 0) {
        reply_db_error(ctx, r);
        return false;
    }
    return true;
}

/* Already decided reads say so rather than act twice (a double tap). */
static bool still_pending(struct hctx *ctx, const struct nameplate_read *rd)
{
    if (strcmp(rd->status, "pending") == 0)
        return true;
    if (strcmp(rd->status, "discarded") == 0)
        reply(ctx, "That photo read was discarded. Send the photo again to use it.");
    else
        reply(ctx, "That photo is already registered as %s.",
              rd->equipment_number ? rd->equipment_number : "a machine");
    return false;
}

/* Creates the machine from a read. */
static int save_new(struct hctx *ctx, const struct nameplate_read *rd, const struct nameplate *np,
                    struct equipment *e)
{
    const char *maker = np_manufacturer_canonical(np->f[NP_MANUFACTURER].value);
    struct equipment_fields f = {0};
    int r;

    f.manufacturer = maker ? maker : np->f[NP_MANUFACTURER].value;
    f.model = np->f[NP_MODEL].value;
    f.serial = np->f[NP_SERIAL].value[0] ? np->f[NP_SERIAL].value : NULL;
    f.location = rd->caption ? clip(ctx, rd->caption, FIELD_MAX_CHARS) : NULL;
    r = db_equipment_add(ctx->db, ctx->a, ctx->user.factory_id, ctx->user.id, &f, e);
    if (r == 0)
        r = record_plate(ctx, rd, e);
    if (r == 0)
        r = db_nameplate_decide(ctx->db, ctx->user.factory_id, rd->id, ctx->user.id, "saved",
                                e->id);
    return r;
}

static int photo_save(struct hctx *ctx, struct args *args)
{
    struct nameplate_read rd;
    struct nameplate np;
    struct equipment e;
    struct match m;
    int r;

    if (!read_arg(ctx, args, 1, "/photo save", &rd) || !still_pending(ctx, &rd))
        return 0;
    fields_parse(rd.fields, &np);
    if (!savable(&np)) {
        reply(ctx,
              "Manufacturer and model are needed to save a machine. Add them:\n"
              "/photo edit %lld manufacturer=… model=…",
              (long long)rd.id);
        return 0;
    }
    /* The factory may have the machine by now (a second photo of it was
     * saved first): a serial is never registered twice. */
    r = match(ctx, &np, &m);
    if (r < 0)
        return reply_db_error(ctx, r);
    if (m.found) {
        reply(ctx, "%s %s %s has this serial already. Add the plate to it:\n/photo link %lld %s",
              m.same.number, m.same.manufacturer, m.same.model, (long long)rd.id, m.same.number);
        return 0;
    }
    r = save_new(ctx, &rd, &np, &e);
    if (r < 0)
        return reply_db_error(ctx, r);
    equip_card(ctx, "✅ Saved as ", &e);
    return 0;
}

static int photo_link(struct hctx *ctx, struct args *args)
{
    struct equipment_fields f = {0};
    struct nameplate_read rd;
    struct nameplate np;
    struct equipment e;
    int r;

    if (!read_arg(ctx, args, 1, "/photo link", &rd) || !still_pending(ctx, &rd))
        return 0;
    if (args->n != 3 || !number_valid("EQ", args->tok[2].text)) {
        reply_usage(ctx, "/photo link");
        return 0;
    }
    r = db_equipment_get(ctx->db, ctx->a, ctx->user.factory_id, args->tok[2].text, &e);
    if (r == -ENOENT)
        return reply_no_equipment(ctx, args->tok[2].text);
    if (r < 0)
        return reply_db_error(ctx, r);
    fields_parse(rd.fields, &np);
    if (e.serial && np.f[NP_SERIAL].value[0]) {
        char a[NP_VALUE_MAX], b[NP_VALUE_MAX];

        np_serial_normalize(e.serial, a, sizeof(a));
        np_serial_normalize(np.f[NP_SERIAL].value, b, sizeof(b));
        if (a[0] && strcmp(a, b) != 0) {
            reply(ctx,
                  "%s has serial %s, this plate %s: different serials are different "
                  "machines. Save it as new, or correct the serial with /photo edit %lld "
                  "serial=….",
                  e.number, e.serial, np.f[NP_SERIAL].value, (long long)rd.id);
            return 0;
        }
    }
    /* The plate fills in what the record lacks; it never overwrites, and
     * never gives a serial another machine of the factory has. */
    if (!e.serial && np.f[NP_SERIAL].value[0]) {
        struct equipment *v;
        char norm[NP_VALUE_MAX];
        int n;

        np_serial_normalize(np.f[NP_SERIAL].value, norm, sizeof(norm));
        r = norm[0] ? db_equipment_by_serial(ctx->db, ctx->a, ctx->user.factory_id, norm, 1, &v, &n)
                    : (n = 0, 0);
        if (r < 0)
            return reply_db_error(ctx, r);
        if (n && v[0].id != e.id) {
            reply(ctx, "%s has serial %s already. Add the plate to it: /photo link %lld %s",
                  v[0].number, v[0].serial, (long long)rd.id, v[0].number);
            return 0;
        }
        f.serial = np.f[NP_SERIAL].value;
        r = db_equipment_update(ctx->db, ctx->a, ctx->user.factory_id, e.number, &f, &e);
        if (r < 0)
            return reply_db_error(ctx, r);
    }
    r = record_plate(ctx, &rd, &e);
    if (r == 0)
        r = db_nameplate_decide(ctx->db, ctx->user.factory_id, rd.id, ctx->user.id, "linked", e.id);
    if (r < 0)
        return reply_db_error(ctx, r);
    equip_card(ctx, "🔗 Nameplate added to ", &e);
    return 0;
}

/* Whether a value taken in by manufacturer= holds a "word=" of its own: an
 * unknown field, not part of the name. */
static bool unknown_option(const char *v)
{
    for (const char *p = v; *p; p++) {
        const char *w = p;

        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_')
            p++;
        if (p > w && *p == '=' && (w == v || w[-1] == ' '))
            return true;
        if (!*p)
            break;
    }
    return false;
}

const char *const photo_option_keys[PHOTO_KEYS_N] = {"manufacturer",
                                                     "model",
                                                     "serial",
                                                     "volts",
                                                     "amps",
                                                     "hp",
                                                     "kw",
                                                     "rpm",
                                                     "hz",
                                                     "phase",
                                                     "frame",
                                                     "enclosure",
                                                     "service_factor",
                                                     "insulation_class",
                                                     "efficiency",
                                                     "year"};
const bool photo_option_absorbs[PHOTO_KEYS_N] = {[0] = true};

static int photo_edit(struct hctx *ctx, struct args *args)
{
    const char *vals[PHOTO_KEYS_N] = {0}, *fields;
    struct nameplate_read rd;
    struct nameplate np;
    struct match m;
    bool any = false;
    int r;

    if (!read_arg(ctx, args, 1, "/photo edit", &rd) || !still_pending(ctx, &rd))
        return 0;
    if (!options_ok(ctx, args, 2, photo_option_keys, photo_option_absorbs, PHOTO_KEYS_N, vals))
        return 0;
    if (args->n > 2) {
        reply(ctx,
              "Write each correction as FIELD=VALUE, e.g. /photo edit %lld model=1LA7 "
              "serial=XJ123.",
              (long long)rd.id);
        return 0;
    }
    fields_parse(rd.fields, &np);
    for (size_t k = 0; k < PHOTO_KEYS_N; k++) {
        if (!vals[k])
            continue;
        if (strcmp(vals[k], "-") == 0) { /* "serial=-" clears a misread */
            np_set(&np, np_field_by_name(photo_option_keys[k]), "", 0, NP_SRC_USER);
            any = true;
            continue;
        }
        if (!field_ok(ctx, photo_option_keys[k], vals[k], NP_VALUE_MAX / 2))
            return 0;
        if (strlen(vals[k]) >= NP_VALUE_MAX) {
            reply(ctx, "The %s is too long (at most %d bytes). Nothing was changed.",
                  photo_option_keys[k], NP_VALUE_MAX - 1);
            return 0;
        }
        if (unknown_option(vals[k])) {
            reply(ctx,
                  "Rivet does not know the field in \"%s\". Fields: manufacturer, model, "
                  "serial, volts, amps, hp, kw, rpm, hz, phase, frame, enclosure, "
                  "service_factor, insulation_class, efficiency, year. Nothing was changed.",
                  clip(ctx, vals[k], 60));
            return 0;
        }
        np_set(&np, np_field_by_name(photo_option_keys[k]), vals[k], 1.0f, NP_SRC_USER);
        any = true;
    }
    if (!any) {
        reply(ctx,
              "Send the corrections, for example:\n/photo edit %lld manufacturer=Siemens "
              "model=1LE1001 serial=XJ123\nFields: manufacturer, model, serial, volts, amps, hp, "
              "kw, rpm, hz, phase, frame, enclosure, service_factor, insulation_class, "
              "efficiency, year. FIELD=- clears one; quote a model with spaces: "
              "model=\"M3BP 160MLA 4\".",
              (long long)rd.id);
        return 0;
    }
    np_score(&np);
    fields = fields_json(ctx, &np);
    if (!fields)
        return -ENOMEM;
    r = db_nameplate_set_fields(ctx->db, ctx->user.factory_id, rd.id, fields, np.confidence);
    if (r == 0)
        r = match(ctx, &np, &m);
    if (r < 0)
        return reply_db_error(ctx, r);
    rd.fields = fields;
    show_read(ctx, &rd, &np, &m, false);
    return 0;
}

static int photo_wo(struct hctx *ctx, struct args *args)
{
    struct nameplate_read rd;
    struct nameplate np;
    struct equipment e;
    struct match m;
    int r;

    if (!read_arg(ctx, args, 1, "/photo wo", &rd))
        return 0;
    if (rd.equipment_number) {
        reply(ctx, "Describe the problem:\n/wo new %s TITLE [priority=high]", rd.equipment_number);
        return 0;
    }
    if (!still_pending(ctx, &rd))
        return 0;
    fields_parse(rd.fields, &np);
    r = match(ctx, &np, &m);
    if (r < 0)
        return reply_db_error(ctx, r);
    if (m.found) {
        reply(ctx, "This is %s. Describe the problem:\n/wo new %s TITLE [priority=high]",
              m.same.number, m.same.number);
        return 0;
    }
    if (m.n_cand) {
        reply(ctx,
              "Is it %s %s %s? Tap 🔗 Same as … or ✅ Save as new first, then open the work "
              "order.",
              m.cand[0].number, m.cand[0].manufacturer, m.cand[0].model);
        return 0;
    }
    if (!savable(&np)) {
        reply(ctx,
              "Save the machine first: manufacturer and model are needed.\n"
              "/photo edit %lld manufacturer=… model=…",
              (long long)rd.id);
        return 0;
    }
    r = save_new(ctx, &rd, &np, &e);
    if (r < 0)
        return reply_db_error(ctx, r);
    reply(ctx, "✅ Saved as %s (%s %s). Describe the problem:\n/wo new %s TITLE [priority=high]",
          e.number, e.manufacturer, e.model, e.number);
    return 0;
}

static int photo_discard(struct hctx *ctx, struct args *args)
{
    struct nameplate_read rd;
    int r;

    if (!read_arg(ctx, args, 1, "/photo discard", &rd) || !still_pending(ctx, &rd))
        return 0;
    r = db_nameplate_decide(ctx->db, ctx->user.factory_id, rd.id, ctx->user.id, "discarded", 0);
    if (r < 0)
        return reply_db_error(ctx, r);
    reply(ctx, "❌ Discarded. Nothing was saved.");
    return 0;
}

int cmd_photo(struct hctx *ctx, struct args *args)
{
    static const struct {
        const char *name;
        int (*fn)(struct hctx *, struct args *);
    } subs[] = {
        {"save", photo_save}, {"link", photo_link},       {"edit", photo_edit},
        {"wo", photo_wo},     {"discard", photo_discard},
    };

    if (args->n == 0) {
        reply(ctx, "📷 Send a photo of a machine's nameplate: Rivet reads it and offers to "
                   "register the machine. A caption is kept as its location.");
        return 0;
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (strcasecmp(args->tok[0].text, subs[i].name) == 0)
            return subs[i].fn(ctx, args);
    reply_usage(ctx, "/photo");
    return 0;
}
