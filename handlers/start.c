/* /start (joining with an invite code) and /help, with the command table. */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "text.h"

struct usage {
    const char *cmd, *usage, *what, *example;
};

static const struct usage usages[] = {
    {"/start", "/start [CODE]", "join your factory with an invite code", "/start K7QM-3XHP-RT2A"},
    {"/help", "/help [COMMAND]", "all commands, or one in detail", "/help wo"},
    {"/link", "/link", "a one-time code to use Rivet from your other app (Telegram or WhatsApp)",
     "/link"},
    {"/link", "/link CODE",
     "sent from the other app: that chat becomes you, same work orders and alarms",
     "/link K7Q-M3X-HPR"},
    {"/unlink", "/unlink telegram|whatsapp",
     "remove an app from your user (send it from the other one)", "/unlink whatsapp"},
    {"/equip", "/equip list [PAGE]", "equipment, newest first", "/equip list 2"},
    {"/equip", "/equip search TEXT", "find machines; typos are fine", "/equip search simens g120"},
    {"/equip", "/equip view EQ-NUMBER|TEXT", "one machine and its open work orders",
     "/equip view EQ-2026-000001"},
    {"/equip", "/equip add MANUFACTURER MODEL [serial=…] [location=…] [name=…] [criticality=…]",
     "register a machine", "/equip add Siemens G120C serial=XAJ123 location=Line 2"},
    {"/equip", "/equip edit EQ-NUMBER FIELD=VALUE …",
     "change name, manufacturer, model, serial, location or criticality (supervisors and "
     "admins)",
     "/equip edit EQ-2026-000001 location=Line 3"},
    {"/equip", "/equip edit EQ-NUMBER device=KEY|-",
     "link the telemetry device that watches this machine (- unlinks; supervisors and admins)",
     "/equip edit EQ-2026-000001 device=press-3"},
    {"/wo", "/wo list [open|mine|all|STATUS] [PAGE]", "work orders, most urgent first",
     "/wo list mine"},
    {"/wo", "/wo view WO-NUMBER", "one work order with its history", "/wo view WO-2026-000001"},
    {"/wo", "/wo new EQ-NUMBER TITLE [priority=low|medium|high|critical]",
     "open a work order on a machine", "/wo new EQ-2026-000001 Coolant leak at pump priority=high"},
    {"/wo", "/wo status WO-NUMBER open|in_progress|on_hold|completed|cancelled",
     "move a work order along (cancelling and reopening: supervisors and admins)",
     "/wo status WO-2026-000001 completed"},
    {"/wo", "/wo note WO-NUMBER TEXT", "add a note", "/wo note WO-2026-000001 Seal replaced"},
    {"/wo", "/wo assign WO-NUMBER USER|me",
     "take it yourself (me), or give it to someone (supervisors and admins)",
     "/wo assign WO-2026-000001 me"},
    {"/wo", "/wo alarm ID", "open a work order for an alarm's machine", "/wo alarm 12"},
    {"/stats", "/stats", "the plant at a glance", "/stats"},
    {"/photo", "📷 a photo of a nameplate",
     "Rivet reads it and offers to register the machine; a caption is kept as its location",
     "a photo captioned \"Line 2 pump room\""},
    {"/photo", "/photo edit READ FIELD=VALUE …", "correct what was read before saving",
     "/photo edit 12 serial=XJ123"},
    {"/photo", "/photo save|wo|discard READ",
     "save the machine, save it and open a work order, "
     "or drop the read",
     "/photo save 12"},
    {"/photo", "/photo link READ EQ-NUMBER", "add the nameplate to a machine already registered",
     "/photo link 12 EQ-2026-000001"},
    {"/alerts", "/alerts [PAGE]", "open alarms, newest first", "/alerts"},
    {"/alerts", "/alerts #ID", "one alarm, with what can be done about it", "/alerts #12"},
    {"/ack", "/ack ID", "acknowledge an alarm: you are on it, and everyone who got it sees so",
     "/ack 12"},
    {"/resolve", "/resolve ID", "close an alarm that is dealt with", "/resolve 12"},
    {"/subscribe", "/subscribe [low|medium|high|critical] [DEVICE…]",
     "choose the alarms you get (at first: high and critical from every device)",
     "/subscribe medium press-3"},
    {"/unsubscribe", "/unsubscribe [DEVICE…|all]", "stop alarms from some devices, or all",
     "/unsubscribe press-3"},
    {"/mute", "/mute DEVICE|all|#ALARM DURATION|off", "silence a device for 1m to 30d",
     "/mute press-3 8h"},
    {"/rules", "/rules", "the factory's alert rules (supervisors and admins)", "/rules"},
};

#define N_USAGES (sizeof(usages) / sizeof(usages[0]))

static const char *const commands[] = {
    "/start",  "/help", "/link",    "/unlink",    "/equip",       "/wo",   "/stats", "/photo",
    "/alerts", "/ack",  "/resolve", "/subscribe", "/unsubscribe", "/mute", "/rules"};

const char *help_usage(const char *usage_prefix)
{
    size_t n = strlen(usage_prefix);

    for (size_t i = 0; i < N_USAGES; i++)
        if (strncmp(usages[i].usage, usage_prefix, n) == 0)
            return usages[i].usage;
    return NULL;
}

const char *help_suggest(const char *cmd)
{
    const char *best = NULL;
    int best_d = 3; /* no more than two edits away */

    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        int d = text_distance(cmd, commands[i]);
        /* "/stat" is one edit from /start and /stats: the one it begins wins. */
        if (d < best_d || (d == best_d && best && strncmp(commands[i], cmd, strlen(cmd)) == 0)) {
            best_d = d;
            best = commands[i];
        }
    }
    return best;
}

static const char not_registered[] =
    "Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:\n"
    "/start CODE";

/* Failed /start CODE attempts a sender (a channel's id) may make in a
 * window, counted in the database (invite_attempts): 5 in 15 minutes is
 * plenty for typos and, against about 2^59 codes, useless for guessing. */
#define INVITE_MAX_FAILURES 5
#define INVITE_WINDOW_S (15 * 60)

static const char bad_invite[] =
    "That invite code is not valid: it may be mistyped, used up or expired. "
    "Ask your supervisor for a new one.";

static const char too_many_invites[] =
    "Too many invite codes tried from here. Wait 15 minutes, then send /start CODE again.";

int cmd_start(struct hctx *ctx, struct args *args)
{
    const char *role, *name;
    int64_t factory_id;
    struct user u;
    int failures, r;

    if (ctx->known) {
        if (args->n > 0)
            reply(ctx, "You are already a member of %s. Send /help to see what Rivet can do.",
                  ctx->user.factory_name);
        else
            reply(ctx,
                  "👋 Welcome back, %s. You are %s at %s.\nSend /help to see what Rivet "
                  "can do.",
                  ctx->user.display_name, ctx->user.role, ctx->user.factory_name);
        return 0;
    }
    if (args->n == 0) {
        reply(ctx, "%s", not_registered);
        return 0;
    }
    /* Guessing is held back per sender: past the limit every code gets the
     * same answer, valid or not, and is not even looked up. */
    r = db_invite_attempts(ctx->db, ctx->msg->channel, ctx->msg->sender_id, INVITE_WINDOW_S,
                           &failures);
    if (r == -EINVAL) { /* a sender id no one has: counted nowhere, let in nowhere */
        reply(ctx, "%s", bad_invite);
        return 0;
    }
    if (r < 0)
        return reply_db_error(ctx, r);
    if (failures >= INVITE_MAX_FAILURES) {
        reply(ctx, "%s", too_many_invites);
        return 0;
    }
    r = db_invite_redeem(ctx->db, ctx->a, args->tok[0].text, &factory_id, &role);
    if (r == -ENOENT) {
        r = db_invite_attempt_failed(ctx->db, ctx->msg->channel, ctx->msg->sender_id);
        if (r < 0)
            return reply_db_error(ctx, r);
        reply(ctx, "%s", bad_invite);
        return 0;
    }
    if (r < 0)
        return reply_db_error(ctx, r);
    name = ctx->msg->sender_name && *ctx->msg->sender_name ? ctx->msg->sender_name
                                                           : ctx->msg->sender_id;
    name = clip(ctx, name, 100);
    r = db_user_create(ctx->db, ctx->a, factory_id, ctx->msg->channel, ctx->msg->sender_id, name,
                       role, &u);
    if (r < 0)
        return reply_db_error(ctx, r);
    reply(ctx, "👋 Welcome to Rivet, %s! You joined %s as %s.\nSend /help to see what you can do.",
          u.display_name, u.factory_name, u.role);
    return 0;
}

/* "wo", "/wo", "WO" -> "/wo" */
static const char *command_name(struct hctx *ctx, const char *s)
{
    char *c = arena_printf(ctx->a, "%s%s", s[0] == '/' ? "" : "/", s);

    if (!c)
        return s;
    for (char *p = c; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return c;
}

int cmd_help(struct hctx *ctx, struct args *args)
{
    struct rb rb;
    const char *want = NULL;
    bool any = false;

    if (args->n > 0) {
        want = command_name(ctx, args->tok[0].text);
        for (size_t i = 0; i < N_USAGES; i++)
            any |= strcmp(usages[i].cmd, want) == 0;
        if (!any) {
            const char *s = help_suggest(want);
            if (s)
                reply(ctx, "There is no command %s. Did you mean %s? Send /help for the list.",
                      clip(ctx, want, 40), s);
            else
                reply(ctx, "There is no command %s. Send /help for the list.", clip(ctx, want, 40));
            return 0;
        }
    }
    rb_init(&rb);
    if (want)
        rb_addf(&rb, "How to use %s:\n", want);
    else
        rb_addf(&rb, "Rivet commands:\n");
    for (size_t i = 0; i < N_USAGES; i++) {
        if (want && strcmp(usages[i].cmd, want) != 0)
            continue;
        rb_addf(&rb, "\n%s\n  %s\n  e.g. %s\n", usages[i].usage, usages[i].what, usages[i].example);
    }
    if (!want)
        rb_addf(
            &rb,
            "\nStatus: 🟢 open · 🟡 in progress · ⏸ on hold · ✅ completed · 🔴 "
            "cancelled\nPriority and alarm severity: 🔵 low · 🟡 medium · 🟠 high · 🔴 "
            "critical\n");
    rb_send(ctx, &rb);
    return 0;
}

/* ---- who may run what ---- */

/* The roles, lowest first; role_rank() maps users.role to them. */
enum role { ROLE_TECHNICIAN, ROLE_SUPERVISOR, ROLE_ADMIN };

/* When a rule applies beyond its command and subcommand. */
enum when {
    ALWAYS,
    CANCEL_OR_REOPEN, /* /wo status WO-NUMBER open|cancelled (any word for them) */
    FOR_SOMEONE_ELSE, /* /wo assign WO-NUMBER USER, USER not "me" nor the sender */
};

/* The minimum role of every command and subcommand a member can send,
 * checked in one place (handle_message(), before the handler runs).
 * Buttons are commands too (their data is run as typed text), so the same
 * rows cover every button. The first row that matches wins: a command's
 * named subcommands (aliases included) and conditions first, then its
 * catch-all row (sub NULL), which also takes unknown subcommands (the
 * handler answers those with its usage). docs/SECURITY.md shows this
 * table; tests/integration/test_security.c checks every row for each role.
 * Strangers never get this far: they may only send /start CODE and /link
 * CODE (table[] below). Plain words run nothing above technician. */
static const struct permission {
    const char *cmd, *sub;
    enum when when;
    enum role role;
    const char *what; /* "Only supervisors and admins can WHAT" */
    bool changes;     /* the command would change something */
} permissions[] = {
    {"/equip", "edit", ALWAYS, ROLE_SUPERVISOR, "edit equipment or link its devices", true},
    {"/wo", "status", CANCEL_OR_REOPEN, ROLE_SUPERVISOR, "cancel or reopen work orders", true},
    {"/wo", "assign", FOR_SOMEONE_ELSE, ROLE_SUPERVISOR,
     "assign work orders to someone else (take one yourself with /wo assign WO-NUMBER me)", true},
    {"/rules", NULL, ALWAYS, ROLE_SUPERVISOR, "see the alert rules", false},
    /* Everything else is every member's: reading everything, registering
     * machines (photos, /equip add), opening, moving, noting and taking
     * work orders, acknowledging and resolving alarms, and their own alarm
     * subscriptions, mutes and linked apps. Listed so that the table is the
     * whole matrix. */
    {"/help", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false},
    {"/start", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false},
    {"/link", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false},
    {"/unlink", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false},
    /* /equip list, search, view, add; /wo list, view, new, status (but
     * cancelled and open), note, assign (me), alarm, draft */
    {"/equip", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false},
    {"/wo", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false},
    {"/stats", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false},
    {"/photo", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false}, /* edit save link wo discard */
    {"/alerts", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false},
    {"/ack", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false},
    {"/resolve", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false},
    {"/subscribe", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false},
    {"/unsubscribe", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false},
    {"/mute", NULL, ALWAYS, ROLE_TECHNICIAN, NULL, false},
};

static const char *const role_names[] = {"technician", "supervisor", "admin"};
static const char *const role_plurals[] = {"technicians", "supervisors and admins", "admins"};

/* users.role as a rank; -1 for a role Rivet does not know (which may run
 * nothing). */
static int role_rank(const char *role)
{
    for (int i = 0; i < (int)(sizeof(role_names) / sizeof(role_names[0])); i++)
        if (role && strcmp(role, role_names[i]) == 0)
            return i;
    return -1;
}

bool role_supervises(const struct hctx *ctx)
{
    return ctx->known && role_rank(ctx->user.role) >= ROLE_SUPERVISOR;
}

static bool rule_applies(struct hctx *ctx, const struct permission *p, struct args *args)
{
    const char *status, *who;

    switch (p->when) {
    case CANCEL_OR_REOPEN:
        status = args->n >= 3 ? status_parse(args->tok[2].text) : NULL;
        return status && (strcmp(status, "open") == 0 || strcmp(status, "cancelled") == 0);
    case FOR_SOMEONE_ELSE:
        if (args->n < 3)
            return false;
        who = args_rest(ctx->a, args, 2);
        return strcasecmp(who, "me") != 0 && strcasecmp(who, ctx->user.display_name) != 0;
    default:
        return true;
    }
}

/* True when the sender's role may run the command; otherwise replies with
 * the role it takes, and the command is not run. */
static bool role_allows(struct hctx *ctx, const char *cmd, struct args *args)
{
    const char *sub = args->n > 0 ? args->tok[0].text : NULL;
    int rank = role_rank(ctx->user.role);

    for (size_t i = 0; i < sizeof(permissions) / sizeof(permissions[0]); i++) {
        const struct permission *p = &permissions[i];

        if (strcmp(p->cmd, cmd) != 0 || (p->sub && (!sub || strcasecmp(p->sub, sub) != 0)) ||
            !rule_applies(ctx, p, args))
            continue;
        if (rank >= (int)p->role)
            return true;
        if (rank < 0)
            break;
        reply(ctx, "Only %s can %s.%s", role_plurals[p->role],
              p->what ? p->what : "use this command", p->changes ? " Nothing was changed." : "");
        return false;
    }
    /* A command without a row, or a role Rivet does not know: refused. */
    reply(ctx, "Your role (%s) may not use %s. Ask your admin.", clip(ctx, ctx->user.role, 30),
          cmd);
    return false;
}

/* ---- dispatch ---- */

static const struct {
    const char *name;
    int (*fn)(struct hctx *ctx, struct args *args);
    bool for_strangers;
} table[] = {
    {"/start", cmd_start, true},
    {"/help", cmd_help, false},
    {"/link", cmd_link, true},
    {"/unlink", cmd_unlink, false},
    {"/equip", cmd_equip, false},
    {"/wo", cmd_wo, false},
    {"/stats", cmd_stats, false},
    {"/photo", cmd_photo, false},
    {"/alerts", cmd_alerts, false},
    {"/ack", cmd_ack, false},
    {"/resolve", cmd_resolve, false},
    {"/subscribe", cmd_subscribe, false},
    {"/unsubscribe", cmd_unsubscribe, false},
    {"/mute", cmd_mute, false},
    {"/rules", cmd_rules, false},
};

/* Checks text as every message's: length, UTF-8, control characters.
 * Replies and returns false when it is not acceptable. */
static bool text_ok(struct hctx *ctx, const char *what, const char *text, size_t len, size_t max)
{
    if (len > max) {
        reply(ctx, "That %s is too long (%zu bytes; the limit is %zu). Nothing was changed.", what,
              len, max);
        return false;
    }
    if (!utf8_valid(text, len)) {
        reply(ctx, "That %s is not valid UTF-8 text. Nothing was changed.", what);
        return false;
    }
    if (memchr(text, '\0', len) || text_has_control(text, len)) {
        reply(ctx,
              "That %s contains control characters. Please send plain text; nothing was "
              "changed.",
              what);
        return false;
    }
    return true;
}

/* Finds the sender: 1 when known and active, 0 after a reply saying why
 * not, or a db.h error. */
static int find_sender(struct hctx *ctx)
{
    int r =
        db_user_by_identity(ctx->db, ctx->a, ctx->msg->channel, ctx->msg->sender_id, &ctx->user);

    if (r == 0 && !ctx->user.active) {
        reply(ctx, "Your access to Rivet is switched off. Ask your admin if that is a mistake.");
        return 0;
    }
    if (r == 0) {
        ctx->known = true;
        return 1;
    }
    if (r == -ENOENT)
        return 0;
    return reply_db_error(ctx, r);
}

/* A photo captioned with a command other than /photo is that command (the
 * photo is not read); "/photo[@bot] note" is a photo with its note. */
static bool caption_is_command(const struct msg *m)
{
    size_t n = m->text ? m->text_len : 0;
    const char *p = m->text;

    while (n && (*p == ' ' || *p == '\n' || *p == '\t')) {
        p++;
        n--;
    }
    if (!n || *p != '/')
        return false;
    if (n >= 6 && strncasecmp(p, "/photo", 6) == 0 &&
        (n == 6 || p[6] == ' ' || p[6] == '@' || p[6] == '\n' || p[6] == '\t'))
        return false;
    return true;
}

/* A photo, with its caption as a note: only members' photos are fetched
 * and read. */
static int handle_photo(struct hctx *ctx)
{
    const struct msg *m = ctx->msg;
    char *caption = NULL;
    int r;

    ctx->out->command = "photo";
    if (m->text && m->text_len) {
        if (!text_ok(ctx, "caption", m->text, m->text_len, 1024))
            return 0;
        caption = arena_strndup(ctx->a, m->text, m->text_len);
        if (!caption)
            return -ENOMEM;
        text_trim(caption);
        if (strncasecmp(caption, "/photo", 6) == 0) { /* "/photo[@bot] note" */
            caption += 6;
            if (*caption == '@')
                caption += strcspn(caption, " \t\n");
            text_trim(caption);
        }
        if (!*caption)
            caption = NULL;
    }
    r = find_sender(ctx);
    if (r < 0)
        return r;
    if (r == 0) {
        if (!ctx->known && !ctx->out->n)
            reply(ctx, "%s", not_registered);
        return 0;
    }
    if (m->context) { /* in reply to a work order: attached to it */
        r = plain_photo(ctx, caption);
        if (r != 0)
            return r < 0 ? r : ctx->error;
    }
    r = photo_received(ctx, caption);
    return r < 0 ? r : ctx->error;
}

int handle_message(struct db *db, struct arena *a, const struct msg *m, struct replies *out)
{
    struct hctx ctx = {.db = db, .a = a, .msg = m, .out = out};
    struct args args;
    char *text;
    int r;

    out->command = "refused";
    if (m->photo && !caption_is_command(m))
        return handle_photo(&ctx);
    if (!m->text) {
        out->command = "media";
        reply(&ctx, "Rivet reads text messages. Send /help for the commands.");
        return 0;
    }
    /* Checked before anything is looked up, so bad input changes nothing. */
    if (!text_ok(&ctx, "message", m->text, m->text_len, MSG_MAX_BYTES))
        return 0;
    text = arena_strndup(a, m->text, m->text_len);
    if (!text)
        return -ENOMEM;
    text_trim(text);
    if (!*text)
        return 0;

    r = find_sender(&ctx);
    if (r < 0)
        return r;
    if (r == 0 && ctx.out->n)
        return 0; /* switched off */

    r = args_parse(a, text, &args);
    if (r < 0)
        return r;
    out->command = args.cmd ? "unknown" : "text";
    if (!args.cmd) {
        if (ctx.known)
            return plain_words(&ctx, text);
        reply(&ctx, "%s", not_registered);
        return 0;
    }
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(args.cmd, table[i].name) != 0)
            continue;
        out->command = table[i].name;
        if (!ctx.known && !table[i].for_strangers) {
            reply(&ctx, "%s", not_registered);
            return 0;
        }
        if (ctx.known && !role_allows(&ctx, table[i].name, &args)) {
            const char *c = arena_printf(a, "%s:forbidden", table[i].name);
            out->command = c ? c : "forbidden";
            return 0;
        }
        table[i].fn(&ctx, &args);
        return ctx.error;
    }
    if (!ctx.known) {
        reply(&ctx, "%s", not_registered);
        return 0;
    }
    {
        const char *s = help_suggest(args.cmd);
        const char *shown = clip(&ctx, args.cmd, 40);
        if (s)
            reply(&ctx, "Unknown command %s. Did you mean %s? Send /help for the list.", shown, s);
        else
            reply(&ctx, "Unknown command %s. Send /help for the list.", shown);
    }
    return 0;
}
