/* Button presses. A Telegram button's callback_data and a WhatsApp reply
 * button's or list row's id (and a template quick reply's payload) are
 * commands a press runs as the person who pressed (handlers/handlers.h);
 * Telegram data starting with REPLY_EDIT_MARK replaces the message the
 * button is on. The input is the data: it goes into an update or a webhook
 * as the platform would send it, through tg_update_parse (then the mark
 * stripped as bot/telegram.c does) or wa_webhook_parse and
 * wa_message_parse (bot/whatsapp.c), and the text found through the pure
 * part of handle_message (handlers/start.c): the checks on length, UTF-8
 * and control characters, trimming, args_parse, and then what the command's
 * handler parses before it looks anything up: numbers (EQ-/WO-), statuses,
 * priorities, alarm ids, page numbers, key=value options; text that is not
 * a command goes to intent_parse as plain words do. What follows needs a
 * database (who pressed, what the number names) and is covered by the
 * integration and Telegram suites, not here. */
#include <jansson.h>
#include <stdbool.h>

#include "args.h"
#include "arena.h"
#include "config.h"
#include "fuzz.h"
#include "intent.h"
#include "internal.h"
#include "text.h"
#include "tg.h"
#include "wa.h"

static void words(struct arena *a, struct args *args)
{
    const char *vals[16], *bad;

    fuzz_touch(help_suggest(args->cmd));
    fuzz_touch(help_usage(args->cmd));
    for (int i = 0; i < args->n; i++) {
        const char *w = args->tok[i].text;
        long long page;
        int64_t id;

        number_valid("WO", w);
        number_valid("EQ", w);
        fuzz_touch(status_parse(w));
        fuzz_touch(priority_parse(w));
        if (alarm_id_parse(w, &id))
            FUZZ_CHECK(id >= 1);
        if (config_parse_int(w, 1, 100000, &page) == 0)
            FUZZ_CHECK(page >= 1 && page <= 100000);
    }
    if (strcmp(args->cmd, "/equip") == 0)
        args_options(a, args, 1, equip_option_keys, equip_option_absorbs, EQUIP_KEYS_N, vals, &bad);
    else if (strcmp(args->cmd, "/wo") == 0)
        args_options(a, args, 2, wo_option_keys, NULL, 1, vals, &bad);
    else if (strcmp(args->cmd, "/photo") == 0)
        args_options(a, args, 2, photo_option_keys, photo_option_absorbs, PHOTO_KEYS_N, vals, &bad);
    for (int i = 0; i < args->n && i < 3; i++)
        fuzz_touch(args_rest(a, args, i));
}

/* handle_message's checks and parsing, in its order. */
static void run(struct arena *a, const char *text, size_t len)
{
    struct intent in;
    struct args args;
    char *s;

    if (!text || len > MSG_MAX_BYTES || !utf8_valid(text, len) || memchr(text, '\0', len) ||
        text_has_control(text, len))
        return;
    s = arena_strndup(a, text, len);
    if (!s)
        return;
    text_trim(s);
    if (!*s || args_parse(a, s, &args) < 0)
        return;
    if (!args.cmd) {
        if (intent_parse(a, s, strlen(s), &in) == 0)
            fuzz_touch(in.title);
        return;
    }
    words(a, &args);
}

static void telegram(struct arena *a, const uint8_t *data, size_t size)
{
    json_t *data_s = json_stringn((const char *)data, size), *u;
    struct tg_update up;
    const char *text;

    if (!data_s)
        return; /* not UTF-8: Telegram sends none such */
    u = json_pack("{s:i, s:{s:s, s:{s:i, s:b, s:s}, s:{s:i, s:{s:i, s:s}}, s:o}}", "update_id",
                  1000, "callback_query", "id", "4382bfdwdsb323b2d9", "from", "id", 7, "is_bot", 0,
                  "first_name", "Ana", "message", "message_id", 55, "chat", "id", 7, "type",
                  "private", "data", data_s);
    if (!u)
        return;
    if (tg_update_parse(a, u, &up) == 0 && up.kind == TG_CALLBACK && up.callback_data) {
        text = up.callback_data;
        if (text[0] == REPLY_EDIT_MARK)
            text++;
        run(a, text, strlen(text));
    }
    json_decref(u);
}

static void whatsapp(struct arena *a, const uint8_t *data, size_t size, int shape)
{
    json_t *id = json_stringn((const char *)data, size), *msg, *body;
    struct wa_webhook wh;
    struct wa_message m;
    char *dump;

    if (!id)
        return;
    if (shape == 0)
        msg = json_pack("{s:s, s:{s:o}}", "type", "button_reply", "button_reply", "id", id);
    else if (shape == 1)
        msg = json_pack("{s:s, s:{s:o}}", "type", "list_reply", "list_reply", "id", id);
    else
        msg = json_pack("{s:o}", "payload", id);
    if (!msg)
        return;
    body = json_pack("{s:s, s:[{s:s, s:[{s:s, s:{s:s, s:{s:s}, s:[{s:s, s:s, s:s, s:s, s:o}]}}]}]}",
                     "object", "whatsapp_business_account", "entry", "id", "102290129340398",
                     "changes", "field", "messages", "value", "messaging_product", "whatsapp",
                     "metadata", "phone_number_id", "106540352242922", "messages", "from",
                     "15550001111", "id", "wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzQTg", "timestamp",
                     "1766000000", "type", shape == 2 ? "button" : "interactive",
                     shape == 2 ? "button" : "interactive", msg);
    if (!body)
        return;
    dump = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!dump)
        return;
    if (wa_webhook_parse(a, dump, strlen(dump), &wh) == 0 && wh.n_messages == 1 &&
        wa_message_parse(a, wh.messages[0].raw, &m) == 0 && m.text) {
        FUZZ_CHECK(m.pressed);
        run(a, m.text, strlen(m.text));
    }
    free(dump);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena *a = NULL;

    if (arena_new(&a) < 0)
        return 0;
    telegram(a, data, size);
    for (int shape = 0; shape < 3; shape++)
        whatsapp(a, data, size, shape);
    /* Whatever the channel: the bytes as a command, with the mark too. */
    if (size && data[0] == REPLY_EDIT_MARK)
        run(a, (const char *)data + 1, size - 1);
    else
        run(a, (const char *)data, size);
    arena_free(a);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct arena *a = NULL;
    struct intent in;

    /* intent.c compiles its patterns on first use: once, here. */
    if (arena_new(&a) == 0) {
        intent_parse(a, "pump 3 is leaking", 17, &in);
        arena_free(a);
    }
    return 0;
}
