/* /link and /unlink: one person, one Rivet user, on Telegram and WhatsApp.
 *
 * A member sends /link where Rivet knows them and gets a one-time code
 * (db_link_create()); on the other app, where they are still a stranger,
 * they send /link CODE, and that chat's identity is added to their user.
 * Attempts with a code are limited per sender (db_link_attempts()), for
 * strangers and members alike, so codes cannot be guessed, nor tried out
 * from a chat Rivet already knows. */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "arena.h"

#define LINK_TTL_S 600      /* a code is good for 10 minutes */
#define LINK_MAX_FAILURES 5 /* failed attempts with a code per sender ... */
#define LINK_WINDOW_S 3600  /* ... per hour */
#define LINK_INPUT_MAX 64   /* a code as typed, words joined: longer is no code */

static const char bad_code[] =
    "That link code is not valid. Send /link on the channel you already use to get a new one.";

static const char console_link[] =
    "Linking is for Telegram and WhatsApp: send /link CODE in your chat with Rivet there.";

static const char *app(enum channel ch)
{
    return ch == CHANNEL_TELEGRAM ? "Telegram" : ch == CHANNEL_WHATSAPP ? "WhatsApp" : "console";
}

/* What a channel's identity is to a person: "WhatsApp number". */
static const char *identity(enum channel ch)
{
    return ch == CHANNEL_TELEGRAM ? "Telegram account" : "WhatsApp number";
}

static enum channel other_app(enum channel ch)
{
    return ch == CHANNEL_TELEGRAM ? CHANNEL_WHATSAPP : CHANNEL_TELEGRAM;
}

/* Appends a reply for chat_id on ch rather than for this conversation
 * (text is owned by the arena). */
static void reply_to(struct hctx *ctx, enum channel ch, const char *chat_id, const char *text)
{
    struct reply *r = text ? arena_alloc(ctx->a, sizeof(*r)) : NULL;

    if (!r) {
        if (!ctx->error)
            ctx->error = -ENOMEM;
        return;
    }
    r->text = text;
    r->channel = ch;
    r->chat_id = chat_id;
    *ctx->out->tail = r;
    ctx->out->tail = &r->next;
    ctx->out->n++;
}

/* /link from a member: a new code for the apps their user lacks. */
static int link_code(struct hctx *ctx)
{
    enum channel here = ctx->msg->channel;
    const char *ids[3], *where, *text;
    char code[LINK_CODE_SIZE];
    int r;

    r = db_user_identities(ctx->db, ctx->a, ctx->user.factory_id, ctx->user.id, ids);
    if (r < 0)
        return reply_db_error(ctx, r);
    if (ids[CHANNEL_TELEGRAM] && ids[CHANNEL_WHATSAPP]) {
        if (here == CHANNEL_CONSOLE)
            reply(ctx, "Your Telegram account and WhatsApp number are both linked already. To link "
                       "another, send /unlink telegram or /unlink whatsapp first.");
        else
            reply(ctx,
                  "Your Telegram account and WhatsApp number are both linked already. To link "
                  "another %s, send /unlink %s here first.",
                  identity(other_app(here)), channel_name(other_app(here)));
        return 0;
    }
    where = !ids[CHANNEL_TELEGRAM] && !ids[CHANNEL_WHATSAPP] ? "Telegram or WhatsApp"
            : !ids[CHANNEL_TELEGRAM]                         ? "Telegram"
                                                             : "WhatsApp";
    r = db_link_create(ctx->db, ctx->user.factory_id, ctx->user.id, LINK_TTL_S, code, sizeof(code));
    if (r < 0)
        return reply_db_error(ctx, r);
    text = arena_printf(ctx->a,
                        "On %s, send: /link %s — the code works once, for 10 minutes.\n"
                        "Keep it to yourself: whoever sends it is %s in Rivet.",
                        where, code, ctx->user.display_name);
    if (!text)
        return reply_db_error(ctx, -ENOMEM);
    if (here == CHANNEL_TELEGRAM)
        /* Only in the private chat with the member (whose id is its id):
         * sent in a group, the code would be everyone's there. */
        reply_to(ctx, CHANNEL_TELEGRAM, ctx->msg->sender_id, text);
    else
        reply(ctx, "%s", text);
    return 0;
}

/* The words after /link joined, spaces dropped (a code typed in groups);
 * NULL when that is too long to be a code. */
static const char *code_typed(struct hctx *ctx, const struct args *args)
{
    char s[LINK_INPUT_MAX + 1];
    size_t n = 0;

    for (int i = 0; i < args->n; i++) {
        size_t k = strlen(args->tok[i].text);
        if (k > LINK_INPUT_MAX - n)
            return NULL;
        memcpy(s + n, args->tok[i].text, k);
        n += k;
    }
    s[n] = '\0';
    return arena_strdup(ctx->a, s);
}

/* Tells the user's other chats that this one was linked, so that a code
 * someone else used does not go unnoticed. */
static int link_notify(struct hctx *ctx, const struct user *u)
{
    enum channel here = ctx->msg->channel;
    const char *ids[3], *who;
    int r;

    r = db_user_identities(ctx->db, ctx->a, u->factory_id, u->id, ids);
    if (r < 0)
        return reply_db_error(ctx, r);
    if (here == CHANNEL_WHATSAPP)
        who = arena_printf(ctx->a, "WhatsApp number +%s", ctx->msg->sender_id);
    else if (ctx->msg->sender_name && *ctx->msg->sender_name)
        who = arena_printf(ctx->a, "Telegram account %s (%s)", ctx->msg->sender_id,
                           clip(ctx, ctx->msg->sender_name, 64));
    else
        who = arena_printf(ctx->a, "Telegram account %s", ctx->msg->sender_id);
    for (enum channel ch = CHANNEL_TELEGRAM; ch <= CHANNEL_WHATSAPP; ch++) {
        if (ch == here || !ids[ch])
            continue;
        reply_to(ctx, ch, ids[ch],
                 arena_printf(ctx->a,
                              "🔗 Your Rivet user %s is now also the %s. If that was not you, "
                              "send /unlink %s here at once and tell your admin.",
                              u->display_name, who ? who : identity(here), channel_name(here)));
    }
    return 0;
}

/* /link CODE from a stranger: the code's user gets this chat. */
static int link_redeem(struct hctx *ctx, const char *code)
{
    enum channel here = ctx->msg->channel;
    struct user u;
    int r;

    r = db_link_redeem(ctx->db, ctx->a, code, here, ctx->msg->sender_id, &u);
    if (r == 0) {
        reply(ctx,
              "Linked: this %s is now %s at %s. Your work orders, alarms and subscriptions are "
              "the same on both.",
              identity(here), u.display_name, u.factory_name);
        return link_notify(ctx, &u);
    }
    if (r == -EALREADY) {
        reply(ctx, "%s already has a %s linked; send /unlink %s there first.", u.display_name,
              identity(here), channel_name(here));
        return 0;
    }
    if (r == -ENOENT) {
        r = db_link_attempt_failed(ctx->db, here, ctx->msg->sender_id);
        if (r < 0)
            return reply_db_error(ctx, r);
        reply(ctx, "%s", bad_code);
        return 0;
    }
    /* -EEXIST: this chat became a user meanwhile; handled again, it is
     * told so. */
    return reply_db_error(ctx, r);
}

/* /link CODE from a member: never merges two users, never uses the code. */
static int link_known(struct hctx *ctx, const char *code)
{
    int64_t factory_id, user_id;
    int r;

    r = db_link_owner(ctx->db, code, &factory_id, &user_id);
    if (r == -ENOENT) {
        r = db_link_attempt_failed(ctx->db, ctx->msg->channel, ctx->msg->sender_id);
        if (r < 0)
            return reply_db_error(ctx, r);
        reply(ctx, "%s", bad_code);
        return 0;
    }
    if (r < 0)
        return reply_db_error(ctx, r);
    if (factory_id == ctx->user.factory_id && user_id == ctx->user.id)
        reply(ctx, "Already linked.");
    else
        reply(ctx,
              "This %s is already Rivet user %s. One person, one identity: ask an admin to "
              "remove the other user first.",
              identity(ctx->msg->channel), ctx->user.display_name);
    return 0;
}

int cmd_link(struct hctx *ctx, struct args *args)
{
    enum channel here = ctx->msg->channel;
    const char *code;
    int failures, r;

    if (args->n == 0) {
        if (ctx->known)
            return link_code(ctx);
        if (here == CHANNEL_CONSOLE)
            reply(ctx, "%s", console_link);
        else
            reply(ctx,
                  "To use Rivet here as the user you already are, send /link in your chat with "
                  "Rivet on %s, then send the code it gives you here: /link CODE\n"
                  "New to Rivet? Ask your supervisor for an invite code and send /start CODE",
                  app(other_app(here)));
        return 0;
    }
    if (here != CHANNEL_TELEGRAM && here != CHANNEL_WHATSAPP) {
        reply(ctx, "%s", console_link);
        return 0;
    }
    r = db_link_attempts(ctx->db, here, ctx->msg->sender_id, LINK_WINDOW_S, &failures);
    if (r < 0)
        return reply_db_error(ctx, r);
    if (failures >= LINK_MAX_FAILURES) {
        reply(ctx, "Too many attempts; try again later.");
        return 0;
    }
    code = code_typed(ctx, args);
    if (!code) { /* too long to be one */
        r = db_link_attempt_failed(ctx->db, here, ctx->msg->sender_id);
        if (r < 0)
            return reply_db_error(ctx, r);
        reply(ctx, "%s", bad_code);
        return 0;
    }
    return ctx->known ? link_known(ctx, code) : link_redeem(ctx, code);
}

int cmd_unlink(struct hctx *ctx, struct args *args)
{
    enum channel here = ctx->msg->channel, ch;
    const char *ids[3];
    int r;

    if (args->n != 1) {
        reply_usage(ctx, "/unlink");
        return 0;
    }
    if (strcasecmp(args->tok[0].text, "telegram") == 0)
        ch = CHANNEL_TELEGRAM;
    else if (strcasecmp(args->tok[0].text, "whatsapp") == 0)
        ch = CHANNEL_WHATSAPP;
    else {
        reply_usage(ctx, "/unlink");
        return 0;
    }
    if (ch == here) {
        r = db_user_identities(ctx->db, ctx->a, ctx->user.factory_id, ctx->user.id, ids);
        if (r < 0)
            return reply_db_error(ctx, r);
        if (ids[other_app(here)])
            reply(ctx,
                  "You are writing from this %s: unlinking it here would lock you out. Send "
                  "/unlink %s from %s instead.",
                  identity(here), channel_name(here), app(other_app(here)));
        else
            reply(ctx,
                  "You are writing from this %s, the only way Rivet knows you: unlinking it "
                  "would lock you out. Nothing was changed.",
                  identity(here));
        return 0;
    }
    r = db_user_unlink(ctx->db, ctx->user.factory_id, ctx->user.id, ch);
    if (r == -ENOENT) {
        reply(ctx, "You have no %s linked.", identity(ch));
        return 0;
    }
    if (r < 0)
        return reply_db_error(ctx, r);
    reply(ctx, "%s unlinked: that %s is no longer you in Rivet. To link one again, send /link.",
          app(ch), identity(ch));
    return 0;
}
