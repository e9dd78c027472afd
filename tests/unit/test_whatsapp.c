/* The WhatsApp channel's pure parts: the webhook signature, the webhook
 * parser (on the payload shapes Meta documents), the inbox form of a
 * message, and the formatting of replies into Graph API bodies. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "arena.h"
#include "handlers.h"
#include "text.h"
#include "wa.h"

static int setup(void **state)
{
    struct arena *a;

    if (arena_new(&a) < 0)
        return -1;
    *state = a;
    return 0;
}

static int teardown(void **state)
{
    arena_free(*state);
    return 0;
}

/* ---- helpers ---- */

/* "sha256=" and the hex HMAC of body under secret, as Meta sends it. */
static void sign(const char *secret, const char *body, size_t len, bool upper, char out[72])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    assert_non_null(
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, md, &n));
    assert_int_equal(n, 32);
    memcpy(out, "sha256=", 7);
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 7 + 2 * i, 3, upper ? "%02X" : "%02x", md[i]);
}

/* A webhook body with one change of field "messages" whose value is v. */
#define WEBHOOK(v)                                                                                 \
    "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"102290129340398\","            \
    "\"changes\":[{\"value\":" v ",\"field\":\"messages\"}]}]}"
#define META                                                                                       \
    "\"messaging_product\":\"whatsapp\",\"metadata\":{\"display_phone_number\":\"15550783881\","   \
    "\"phone_number_id\":\"106540352242922\"}"
#define CONTACT                                                                                    \
    "\"contacts\":[{\"profile\":{\"name\":\"Sheena Nelson\"},\"wa_id\":\"16505551234\"}]"
/* A message from the contact above with the given type-specific members. */
#define MESSAGE(type, rest)                                                                        \
    WEBHOOK("{" META "," CONTACT ",\"messages\":[{\"from\":\"16505551234\","                       \
            "\"id\":\"wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=\","           \
            "\"timestamp\":\"1749416383\",\"type\":\"" type "\"" rest "}]}")

static int parse(struct arena *a, const char *body, struct wa_webhook *w)
{
    return wa_webhook_parse(a, body, strlen(body), w);
}

/* The member at a dotted path ("interactive.action.buttons.0.reply.id"),
 * numbers indexing arrays; NULL when there is none. */
static const json_t *at(const json_t *j, const char *path)
{
    char key[64];

    while (j && *path) {
        size_t n = strcspn(path, ".");

        assert_true(n < sizeof(key));
        memcpy(key, path, n);
        key[n] = '\0';
        if (json_is_array(j))
            j = json_array_get(j, strtoul(key, NULL, 10));
        else
            j = json_object_get(j, key);
        path += n + (path[n] == '.');
    }
    return j;
}

static const char *str_at(const json_t *j, const char *path)
{
    const json_t *v = at(j, path);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The bodies of a reply, checked to be an array of n objects addressed to
 * the same number. */
static json_t *bodies_of(struct arena *a, const struct reply *rep, int n)
{
    json_t *b = NULL;
    size_t i;
    json_t *v;

    assert_int_equal(wa_reply_bodies(a, "16505551234", rep, &b), n);
    assert_true(json_is_array(b));
    assert_int_equal(json_array_size(b), n);
    json_array_foreach(b, i, v)
    {
        assert_string_equal(str_at(v, "messaging_product"), "whatsapp");
        assert_string_equal(str_at(v, "recipient_type"), "individual");
        assert_string_equal(str_at(v, "to"), "16505551234");
    }
    return b;
}

static struct reply text_reply(const char *text)
{
    struct reply r;

    memset(&r, 0, sizeof(r));
    r.text = text;
    return r;
}

/* n buttons "Button i" with data "/cmd i". */
static struct button *buttons(struct arena *a, int n)
{
    struct button *b = arena_alloc(a, sizeof(*b) * (size_t)n);

    assert_non_null(b);
    for (int i = 0; i < n; i++) {
        b[i].text = arena_printf(a, "Button %d", i + 1);
        b[i].data = arena_printf(a, "/cmd %d", i + 1);
        b[i].row = i;
    }
    return b;
}

/* A string of n copies of s (arena). */
static char *repeat(struct arena *a, const char *s, size_t n)
{
    size_t len = strlen(s);
    char *p = arena_alloc(a, len * n + 1);

    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        memcpy(p + i * len, s, len);
    return p;
}

/* ---- the signature ---- */

static const char sig_body[] = "{\"object\":\"whatsapp_business_account\",\"entry\":[]}";

static void test_signature_valid(void **state)
{
    char h[72];

    (void)state;
    sign("app-secret", sig_body, strlen(sig_body), false, h);
    assert_true(wa_signature_ok("app-secret", sig_body, strlen(sig_body), h));
}

static void test_signature_upper_case(void **state)
{
    char h[72];

    (void)state;
    sign("app-secret", sig_body, strlen(sig_body), true, h);
    assert_true(wa_signature_ok("app-secret", sig_body, strlen(sig_body), h));
    /* The prefix itself is not case-insensitive. */
    memcpy(h, "SHA256=", 7);
    assert_false(wa_signature_ok("app-secret", sig_body, strlen(sig_body), h));
}

static void test_signature_missing(void **state)
{
    (void)state;
    assert_false(wa_signature_ok("app-secret", sig_body, strlen(sig_body), NULL));
    assert_false(wa_signature_ok("app-secret", sig_body, strlen(sig_body), ""));
    assert_false(wa_signature_ok("app-secret", sig_body, strlen(sig_body), "sha256="));
}

static void test_signature_sha1_prefix(void **state)
{
    char h[72];

    (void)state;
    sign("app-secret", sig_body, strlen(sig_body), false, h);
    /* X-Hub-Signature (SHA-1) style: the same digits under another name. */
    char other[80];
    snprintf(other, sizeof(other), "sha1=%s", h + 7);
    assert_false(wa_signature_ok("app-secret", sig_body, strlen(sig_body), other));
}

static void test_signature_wrong_length(void **state)
{
    char h[72], longer[80];

    (void)state;
    sign("app-secret", sig_body, strlen(sig_body), false, h);
    snprintf(longer, sizeof(longer), "%s0", h);
    assert_false(wa_signature_ok("app-secret", sig_body, strlen(sig_body), longer));
    snprintf(longer, sizeof(longer), "%s ", h);
    assert_false(wa_signature_ok("app-secret", sig_body, strlen(sig_body), longer));
    h[70] = '\0'; /* 63 digits */
    assert_false(wa_signature_ok("app-secret", sig_body, strlen(sig_body), h));
}

static void test_signature_altered(void **state)
{
    char h[72];

    (void)state;
    sign("app-secret", sig_body, strlen(sig_body), false, h);
    h[7 + 20] = h[7 + 20] == '0' ? '1' : '0';
    assert_false(wa_signature_ok("app-secret", sig_body, strlen(sig_body), h));
    sign("app-secret", sig_body, strlen(sig_body), false, h);
    h[7 + 63] = 'g'; /* not a hex digit */
    assert_false(wa_signature_ok("app-secret", sig_body, strlen(sig_body), h));
}

static void test_signature_other_body(void **state)
{
    char h[72];

    (void)state;
    sign("app-secret", sig_body, strlen(sig_body), false, h);
    /* One byte less, and one byte changed. */
    assert_false(wa_signature_ok("app-secret", sig_body, strlen(sig_body) - 1, h));
    char copy[sizeof(sig_body)];
    memcpy(copy, sig_body, sizeof(sig_body));
    copy[3] = 'O';
    assert_false(wa_signature_ok("app-secret", copy, strlen(copy), h));
    /* Another secret. */
    assert_false(wa_signature_ok("app-secret2", sig_body, strlen(sig_body), h));
}

static void test_signature_empty_secret(void **state)
{
    char h[72];

    (void)state;
    sign("x", sig_body, strlen(sig_body), false, h);
    assert_false(wa_signature_ok("", sig_body, strlen(sig_body), h));
    assert_false(wa_signature_ok(NULL, sig_body, strlen(sig_body), h));
}

static void test_signature_empty_body(void **state)
{
    char h[72];

    (void)state;
    sign("app-secret", "", 0, false, h);
    assert_true(wa_signature_ok("app-secret", "", 0, h));
    assert_true(wa_signature_ok("app-secret", NULL, 0, h));
    assert_false(wa_signature_ok("app-secret", NULL, 3, h));
}

/* ---- the webhook ---- */

static void test_parse_text(void **state)
{
    struct wa_webhook w;
    const struct wa_message *m;

    assert_int_equal(parse(*state, MESSAGE("text", ",\"text\":{\"body\":\"/equip list\"}"), &w), 0);
    assert_int_equal(w.n_messages, 1);
    assert_int_equal(w.n_statuses, 0);
    assert_int_equal(w.n_errors, 0);
    assert_int_equal(w.skipped, 0);
    m = &w.messages[0];
    assert_string_equal(m->id, "wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=");
    assert_string_equal(m->from, "16505551234");
    assert_string_equal(m->name, "Sheena Nelson");
    assert_string_equal(m->phone_number_id, "106540352242922");
    assert_int_equal(m->timestamp, 1749416383);
    assert_string_equal(m->type, "text");
    assert_string_equal(m->text, "/equip list");
    assert_false(m->pressed);
    assert_null(m->media_id);
    assert_null(m->mime_type);
    assert_null(m->context_id);
    assert_non_null(m->raw);
}

static void test_parse_button_reply(void **state)
{
    struct wa_webhook w;
    const struct wa_message *m;

    assert_int_equal(
        parse(*state,
              MESSAGE("interactive",
                      ",\"context\":{\"from\":\"15550783881\",\"id\":"
                      "\"wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=\"},"
                      "\"interactive\":{\"type\":\"button_reply\",\"button_reply\":"
                      "{\"id\":\"/alerts ack 12\",\"title\":\"Acknowledge\"}}"),
              &w),
        0);
    assert_int_equal(w.n_messages, 1);
    m = &w.messages[0];
    assert_string_equal(m->type, "interactive");
    assert_string_equal(m->text, "/alerts ack 12");
    assert_true(m->pressed);
    assert_string_equal(m->context_id,
                        "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=");
}

static void test_parse_list_reply(void **state)
{
    struct wa_webhook w;

    assert_int_equal(parse(*state,
                           MESSAGE("interactive", ",\"interactive\":{\"type\":\"list_reply\","
                                                  "\"list_reply\":{\"id\":\"/equip view 7\","
                                                  "\"title\":\"Pump 7\",\"description\":\"x\"}}"),
                           &w),
                     0);
    assert_int_equal(w.n_messages, 1);
    assert_string_equal(w.messages[0].text, "/equip view 7");
    assert_true(w.messages[0].pressed);

    /* Another kind of interactive reply (a flow's): kept, nothing to run. */
    assert_int_equal(parse(*state,
                           MESSAGE("interactive", ",\"interactive\":{\"type\":\"nfm_reply\","
                                                  "\"nfm_reply\":{\"response_json\":\"{}\"}}"),
                           &w),
                     0);
    assert_int_equal(w.n_messages, 1);
    assert_null(w.messages[0].text);
    assert_false(w.messages[0].pressed);

    /* A press without its id is malformed. */
    assert_int_equal(parse(*state,
                           MESSAGE("interactive", ",\"interactive\":{\"type\":\"button_reply\","
                                                  "\"button_reply\":{\"title\":\"Ack\"}}"),
                           &w),
                     0);
    assert_int_equal(w.n_messages, 0);
    assert_int_equal(w.skipped, 1);
}

static void test_parse_template_button(void **state)
{
    struct wa_webhook w;

    assert_int_equal(parse(*state,
                           MESSAGE("button", ",\"context\":{\"from\":\"15550783881\",\"id\":"
                                             "\"wamid.ctx\"},\"button\":{\"payload\":"
                                             "\"/alerts ack 3\",\"text\":\"Acknowledge\"}"),
                           &w),
                     0);
    assert_int_equal(w.n_messages, 1);
    assert_string_equal(w.messages[0].type, "button");
    assert_string_equal(w.messages[0].text, "/alerts ack 3");
    assert_true(w.messages[0].pressed);
    assert_string_equal(w.messages[0].context_id, "wamid.ctx");
}

static void test_parse_image(void **state)
{
    struct wa_webhook w;
    const struct wa_message *m;

    assert_int_equal(
        parse(*state,
              MESSAGE("image", ",\"image\":{\"caption\":\"nameplate\",\"mime_type\":\"image/jpeg\","
                               "\"sha256\":\"81d3bd8a8db4868c9520ed47186e8b7c5789e61ff79f7f834be695"
                               "0b808a90d3\",\"id\":\"2754859441498128\"}"),
              &w),
        0);
    assert_int_equal(w.n_messages, 1);
    m = &w.messages[0];
    assert_string_equal(m->type, "image");
    assert_string_equal(m->media_id, "2754859441498128");
    assert_string_equal(m->mime_type, "image/jpeg");
    assert_string_equal(m->text, "nameplate");
    assert_false(m->pressed);

    /* Without a caption. */
    assert_int_equal(
        parse(*state, MESSAGE("image", ",\"image\":{\"mime_type\":\"image/png\",\"id\":\"1\"}"),
              &w),
        0);
    assert_null(w.messages[0].text);
    assert_string_equal(w.messages[0].media_id, "1");
}

static void test_parse_document(void **state)
{
    struct wa_webhook w;

    assert_int_equal(parse(*state,
                           MESSAGE("document", ",\"document\":{\"caption\":\"manual\","
                                               "\"filename\":\"pump.pdf\",\"mime_type\":"
                                               "\"application/pdf\",\"sha256\":\"abc\","
                                               "\"id\":\"889900\"}"),
                           &w),
                     0);
    assert_int_equal(w.n_messages, 1);
    assert_string_equal(w.messages[0].type, "document");
    assert_string_equal(w.messages[0].media_id, "889900");
    assert_string_equal(w.messages[0].mime_type, "application/pdf");
    assert_string_equal(w.messages[0].text, "manual");
}

static void test_parse_other_types(void **state)
{
    struct wa_webhook w;

    assert_int_equal(parse(*state,
                           MESSAGE("sticker", ",\"sticker\":{\"mime_type\":\"image/webp\","
                                              "\"id\":\"5\",\"animated\":false}"),
                           &w),
                     0);
    assert_int_equal(w.n_messages, 1);
    assert_string_equal(w.messages[0].type, "sticker");
    assert_null(w.messages[0].text);
    assert_null(w.messages[0].media_id);

    assert_int_equal(
        parse(*state,
              MESSAGE("unsupported",
                      ",\"errors\":[{\"code\":131051,\"title\":\"Message type unknown\","
                      "\"message\":\"Message type unknown\"}]"),
              &w),
        0);
    assert_int_equal(w.n_messages, 1);
    assert_string_equal(w.messages[0].type, "unsupported");

    assert_int_equal(parse(*state,
                           MESSAGE("reaction", ",\"reaction\":{\"message_id\":\"wamid.x\","
                                               "\"emoji\":\"\\ud83d\\udc4d\"}"),
                           &w),
                     0);
    assert_string_equal(w.messages[0].type, "reaction");
}

static void test_parse_statuses(void **state)
{
    static const char *const kinds[] = {"sent", "delivered", "read"};
    struct wa_webhook w;
    char body[1024];

    for (size_t i = 0; i < 3; i++) {
        snprintf(
            body, sizeof(body),
            WEBHOOK("{" META ",\"statuses\":[{\"id\":\"wamid.HBgNNTUxNjk5MjMxODIyMhUCABEYEjgx"
                    "QkVFRDVBQTVDODFDOTg3MQA=\",\"status\":\"%s\",\"timestamp\":\"1750857384\","
                    "\"recipient_id\":\"5516992318222\",\"conversation\":{\"id\":\"a75d\","
                    "\"origin\":{\"type\":\"service\"}},\"pricing\":{\"billable\":true,"
                    "\"pricing_model\":\"CBP\",\"category\":\"service\"}}]}"),
            kinds[i]);
        assert_int_equal(parse(*state, body, &w), 0);
        assert_int_equal(w.n_messages, 0);
        assert_int_equal(w.n_statuses, 1);
        assert_string_equal(w.statuses[0].id,
                            "wamid.HBgNNTUxNjk5MjMxODIyMhUCABEYEjgxQkVFRDVBQTVDODFDOTg3MQA=");
        assert_string_equal(w.statuses[0].status, kinds[i]);
        assert_string_equal(w.statuses[0].recipient, "5516992318222");
        assert_int_equal(w.statuses[0].timestamp, 1750857384);
        assert_int_equal(w.statuses[0].error_code, 0);
        assert_null(w.statuses[0].error);
    }
}

static void test_parse_status_failed(void **state)
{
    struct wa_webhook w;

    assert_int_equal(
        parse(*state,
              WEBHOOK("{" META ",\"statuses\":[{\"id\":\"wamid.F\",\"status\":\"failed\","
                      "\"timestamp\":\"1750857390\",\"recipient_id\":\"16505551234\","
                      "\"errors\":[{\"code\":131047,\"title\":\"Re-engagement message\","
                      "\"message\":\"More than 24 hours have passed\",\"error_data\":{"
                      "\"details\":\"Message failed to send\"},\"href\":\"https://x\"}]},"
                      "{\"id\":\"wamid.G\",\"status\":\"failed\",\"timestamp\":\"1\","
                      "\"recipient_id\":\"1\",\"errors\":[{\"code\":130429,\"title\":\"Rate limit "
                      "hit\",\"message\":\"Rate limit hit\"}]}]}"),
              &w),
        0);
    assert_int_equal(w.n_statuses, 2);
    assert_string_equal(w.statuses[0].status, "failed");
    assert_int_equal(w.statuses[0].error_code, 131047);
    assert_string_equal(w.statuses[0].error,
                        "Re-engagement message: More than 24 hours have passed");
    /* A message that only repeats the title is not said twice. */
    assert_int_equal(w.statuses[1].error_code, 130429);
    assert_string_equal(w.statuses[1].error, "Rate limit hit");
}

static void test_parse_value_errors(void **state)
{
    struct wa_webhook w;

    assert_int_equal(parse(*state,
                           WEBHOOK("{" META ",\"errors\":[{\"code\":131000,\"title\":\"Something "
                                   "went wrong\",\"message\":\"Something went wrong\","
                                   "\"error_data\":{\"details\":\"Unsupported webhook\"}},"
                                   "{\"code\":1,\"title\":\"other\"}]}"),
                           &w),
                     0);
    assert_int_equal(w.n_errors, 2);
    assert_int_equal(w.error_code, 131000);
    assert_string_equal(w.error, "Something went wrong");
    assert_int_equal(w.n_messages, 0);
}

static void test_parse_contacts(void **state)
{
    struct wa_webhook w;

    assert_int_equal(
        parse(*state,
              WEBHOOK("{" META ",\"contacts\":[{\"profile\":{\"name\":\"Ann\"},\"wa_id\":\"111\"},"
                      "{\"profile\":{\"name\":\"Bo\"},\"wa_id\":\"222\"}],\"messages\":["
                      "{\"from\":\"222\",\"id\":\"wamid.1\",\"timestamp\":\"5\",\"type\":\"text\","
                      "\"text\":{\"body\":\"hi\"}},"
                      "{\"from\":\"111\",\"id\":\"wamid.2\",\"timestamp\":\"6\",\"type\":\"text\","
                      "\"text\":{\"body\":\"yo\"}},"
                      "{\"from\":\"333\",\"id\":\"wamid.3\",\"timestamp\":\"7\",\"type\":\"text\","
                      "\"text\":{\"body\":\"?\"}}]}"),
              &w),
        0);
    assert_int_equal(w.n_messages, 3);
    assert_string_equal(w.messages[0].name, "Bo");
    assert_string_equal(w.messages[1].name, "Ann");
    assert_null(w.messages[2].name);
}

static void test_parse_several_entries(void **state)
{
    struct wa_webhook w;

    assert_int_equal(
        parse(*state,
              "{\"object\":\"whatsapp_business_account\",\"entry\":["
              "{\"id\":\"1\",\"changes\":["
              "{\"field\":\"messages\",\"value\":{" META ",\"messages\":[{\"from\":\"1\",\"id\":"
              "\"wamid.a\",\"timestamp\":\"1\",\"type\":\"text\",\"text\":{\"body\":\"a\"}}]}},"
              "{\"field\":\"message_template_status_update\",\"value\":{\"event\":\"APPROVED\"}},"
              "{\"field\":\"messages\",\"value\":{\"messaging_product\":\"whatsapp\","
              "\"metadata\":{\"phone_number_id\":\"999\"},\"statuses\":[{\"id\":\"wamid.s\","
              "\"status\":\"read\",\"timestamp\":\"2\",\"recipient_id\":\"1\"}]}}]},"
              "{\"id\":\"2\",\"changes\":[{\"field\":\"messages\",\"value\":{\"messaging_product\":"
              "\"whatsapp\",\"metadata\":{\"phone_number_id\":\"999\"},\"messages\":["
              "{\"from\":\"2\",\"id\":\"wamid.b\",\"timestamp\":\"3\",\"type\":\"text\","
              "\"text\":{\"body\":\"b\"}}]}}]},"
              "{\"id\":\"3\",\"changes\":[{\"field\":\"account_update\",\"value\":{}}]}]}",
              &w),
        0);
    assert_int_equal(w.n_messages, 2);
    assert_string_equal(w.messages[0].text, "a");
    assert_string_equal(w.messages[0].phone_number_id, "106540352242922");
    assert_string_equal(w.messages[1].text, "b");
    assert_string_equal(w.messages[1].phone_number_id, "999");
    assert_int_equal(w.n_statuses, 1);
    assert_string_equal(w.statuses[0].status, "read");
    assert_int_equal(w.skipped, 2); /* the template and account updates */
}

static void test_parse_malformed_skipped(void **state)
{
    struct wa_webhook w;

    assert_int_equal(
        parse(
            *state,
            "{\"object\":\"whatsapp_business_account\",\"entry\":[\"x\",{\"id\":\"1\"},"
            "{\"id\":\"2\",\"changes\":[7,{\"field\":\"messages\",\"value\":\"v\"},"
            "{\"field\":\"messages\",\"value\":{" META ",\"messages\":["
            "{\"from\":\"1\",\"timestamp\":\"1\",\"type\":\"text\",\"text\":{\"body\":\"no id\"}},"
            "{\"from\":\"+1555\",\"id\":\"wamid.c\",\"timestamp\":\"1\",\"type\":\"text\","
            "\"text\":{\"body\":\"from not digits\"}},"
            "{\"from\":\"1\",\"id\":\"wamid.d\",\"timestamp\":\"soon\",\"type\":\"text\","
            "\"text\":{\"body\":\"bad time\"}},"
            "{\"from\":\"1\",\"id\":\"wamid.e\",\"timestamp\":\"1\",\"type\":\"text\"},"
            "{\"from\":\"1\",\"id\":\"wamid.f\",\"timestamp\":\"1\",\"text\":{\"body\":\"?\"}},"
            "{\"from\":\"1\",\"id\":17,\"timestamp\":\"1\",\"type\":\"text\"},"
            "\"not an object\","
            "{\"from\":\"1\",\"id\":\"wamid.ok\",\"timestamp\":\"1\",\"type\":\"text\","
            "\"text\":{\"body\":\"kept\"}}],"
            "\"statuses\":[{\"id\":\"wamid.s\",\"timestamp\":\"1\"},"
            "{\"id\":\"wamid.t\",\"status\":\"sent\",\"timestamp\":\"later\"},"
            "{\"id\":\"wamid.u\",\"status\":\"sent\"}]}}]}]}",
            &w),
        0);
    assert_int_equal(w.n_messages, 1);
    assert_string_equal(w.messages[0].id, "wamid.ok");
    assert_string_equal(w.messages[0].text, "kept");
    assert_int_equal(w.n_statuses, 1);
    assert_string_equal(w.statuses[0].id, "wamid.u");
    assert_int_equal(w.statuses[0].timestamp, 0);
    /* 2 entries, 2 changes, 7 messages, 2 statuses. */
    assert_int_equal(w.skipped, 13);
}

static void test_parse_no_metadata(void **state)
{
    struct wa_webhook w;

    /* Without the business number a message cannot be answered. */
    assert_int_equal(parse(*state,
                           WEBHOOK("{\"messaging_product\":\"whatsapp\",\"messages\":[{\"from\":"
                                   "\"1\",\"id\":\"wamid.a\",\"timestamp\":\"1\",\"type\":\"text\","
                                   "\"text\":{\"body\":\"a\"}}]}"),
                           &w),
                     0);
    assert_int_equal(w.n_messages, 0);
    assert_int_equal(w.skipped, 1);
}

static void test_parse_not_a_webhook(void **state)
{
    static const char *const bad[] = {
        "",
        "not json",
        "{\"object\":\"whatsapp_business_account\",\"entry\":[",
        "[]",
        "\"whatsapp_business_account\"",
        "{\"object\":\"page\",\"entry\":[]}",
        "{\"object\":7,\"entry\":[]}",
        "{\"entry\":[]}",
        "{\"object\":\"whatsapp_business_account\"}",
        "{\"object\":\"whatsapp_business_account\",\"entry\":{}}",
        /* Duplicate keys: not what Meta sends. */
        "{\"object\":\"whatsapp_business_account\",\"object\":\"page\",\"entry\":[]}",
    };
#define EMPTY_HOOK "{\"object\":\"whatsapp_business_account\",\"entry\":[]}"
    struct wa_webhook w;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(*state, bad[i], &w), -EBADMSG);
        assert_int_equal(w.n_messages, 0);
        assert_null(w.messages);
    }
    assert_int_equal(wa_webhook_parse(*state, NULL, 0, &w), -EBADMSG);
    /* Only the given length is read. */
    assert_int_equal(wa_webhook_parse(*state, EMPTY_HOOK "garbage", strlen(EMPTY_HOOK), &w), 0);
    assert_int_equal(parse(*state, EMPTY_HOOK, &w), 0);
    assert_int_equal(w.n_messages + w.n_statuses + w.skipped, 0);
#undef EMPTY_HOOK
}

static void test_parse_too_deep(void **state)
{
    struct wa_webhook w;
    char *body =
        arena_printf(*state, "{\"object\":\"whatsapp_business_account\",\"entry\":[],\"x\":%s%s}",
                     repeat(*state, "[", 40), repeat(*state, "]", 40));

    assert_int_equal(parse(*state, body, &w), -EBADMSG);
    /* Brackets inside strings do not count. */
    body = arena_printf(*state,
                        "{\"object\":\"whatsapp_business_account\",\"entry\":[],\"x\":\"%s\\\"\"}",
                        repeat(*state, "[", 40));
    assert_int_equal(parse(*state, body, &w), 0);
}

static void test_parse_limits(void **state)
{
    struct arena *a = *state;
    struct wa_webhook w;
    const char *id256 = arena_printf(a, "wamid.%s", repeat(a, "A", 250));
    const char *body;

    body =
        arena_printf(a,
                     WEBHOOK("{" META ",\"messages\":[{\"from\":\"%s\",\"id\":\"%s\","
                             "\"timestamp\":\"1\",\"type\":\"text\",\"text\":{\"body\":\"a\"}},"
                             "{\"from\":\"%s\",\"id\":\"%sA\",\"timestamp\":\"1\","
                             "\"type\":\"text\",\"text\":{\"body\":\"b\"}},"
                             "{\"from\":\"%s\",\"id\":\"wamid.c\",\"timestamp\":\"1\","
                             "\"type\":\"text\",\"text\":{\"body\":\"c\"}},"
                             "{\"from\":\"12 34\",\"id\":\"wamid.d\",\"timestamp\":\"1\","
                             "\"type\":\"text\",\"text\":{\"body\":\"d\"}},"
                             "{\"from\":\"\",\"id\":\"wamid.e\",\"timestamp\":\"1\","
                             "\"type\":\"text\",\"text\":{\"body\":\"e\"}},"
                             "{\"from\":\"1\",\"id\":\"wamid f\",\"timestamp\":\"1\","
                             "\"type\":\"text\",\"text\":{\"body\":\"f\"}},"
                             "{\"from\":\"1\",\"id\":\"wamid.g\",\"timestamp\":"
                             "\"1234567890123456789\",\"type\":\"text\",\"text\":{\"body\":\"g\"}},"
                             "{\"from\":\"1\",\"id\":\"wamid.h\",\"timestamp\":1700000000,"
                             "\"type\":\"text\",\"text\":{\"body\":\"h\"}}]}"),
                     repeat(a, "9", 32), id256, repeat(a, "9", 32), id256, repeat(a, "9", 33));
    assert_int_equal(parse(a, body, &w), 0);
    /* The 256-byte id and the 32-digit wa_id pass; one more byte does not;
     * nor spaces, an empty from, 19 digits of time. An integer time is
     * taken. */
    assert_int_equal(w.n_messages, 2);
    assert_string_equal(w.messages[0].id, id256);
    assert_string_equal(w.messages[0].from, repeat(a, "9", 32));
    assert_string_equal(w.messages[1].text, "h");
    assert_int_equal(w.messages[1].timestamp, 1700000000);
    assert_int_equal(w.skipped, 6);
}

static void test_parse_long_text(void **state)
{
    struct arena *a = *state;
    struct wa_webhook w;
    /* 5000 characters: kept whole, for the handler to refuse. */
    const char *body =
        arena_printf(a, MESSAGE("text", ",\"text\":{\"body\":\"%s\"}"), repeat(a, "x", 5000));

    assert_int_equal(parse(a, body, &w), 0);
    assert_int_equal(strlen(w.messages[0].text), 5000);
    /* 40000 three-byte characters (120000 bytes): cut to 64 KiB, on a
     * character boundary. */
    body = arena_printf(a, MESSAGE("text", ",\"text\":{\"body\":\"%s\"}"), repeat(a, "€", 40000));
    assert_int_equal(parse(a, body, &w), 0);
    assert_int_equal(strlen(w.messages[0].text), 65535);
    assert_true(utf8_valid(w.messages[0].text, strlen(w.messages[0].text)));
}

/* ---- the inbox form ---- */

static void assert_same_message(const struct wa_message *x, const struct wa_message *y)
{
#define SAME(f)                                                                                    \
    do {                                                                                           \
        if (!x->f || !y->f)                                                                        \
            assert_ptr_equal(x->f, y->f);                                                          \
        else                                                                                       \
            assert_string_equal(x->f, y->f);                                                       \
    } while (0)
    SAME(id);
    SAME(from);
    SAME(name);
    SAME(phone_number_id);
    SAME(type);
    SAME(text);
    SAME(media_id);
    SAME(mime_type);
    SAME(context_id);
    SAME(raw);
#undef SAME
    assert_int_equal(x->timestamp, y->timestamp);
    assert_int_equal(x->pressed, y->pressed);
}

static void test_raw_round_trip(void **state)
{
    static const char *const bodies[] = {
        MESSAGE("text", ",\"text\":{\"body\":\"caf\\u00e9 \\\"quoted\\\"\\nline\"}"),
        MESSAGE("interactive", ",\"context\":{\"from\":\"1\",\"id\":\"wamid.ctx\"},\"interactive\":"
                               "{\"type\":\"list_reply\",\"list_reply\":{\"id\":\"/wo view 1\","
                               "\"title\":\"t\"}}"),
        MESSAGE("image",
                ",\"image\":{\"caption\":\"c\",\"mime_type\":\"image/jpeg\",\"id\":\"42\"}"),
        MESSAGE("sticker", ",\"sticker\":{\"id\":\"5\"}"),
    };
    struct wa_webhook w;
    struct wa_message back;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        assert_int_equal(parse(*state, bodies[i], &w), 0);
        assert_int_equal(w.n_messages, 1);
        assert_int_equal(wa_message_parse(*state, w.messages[0].raw, &back), 0);
        assert_same_message(&w.messages[0], &back);
    }
}

static void test_raw_shape(void **state)
{
    struct wa_webhook w;
    json_t *o;

    assert_int_equal(parse(*state, MESSAGE("text", ",\"text\":{\"body\":\"hi\"}"), &w), 0);
    o = json_loads(w.messages[0].raw, 0, NULL);
    assert_non_null(o);
    assert_string_equal(str_at(o, "from"), "16505551234");
    assert_string_equal(str_at(o, "name"), "Sheena Nelson");
    assert_string_equal(str_at(o, "phone_number_id"), "106540352242922");
    assert_string_equal(str_at(o, "text"), "hi");
    assert_int_equal(json_integer_value(at(o, "timestamp")), 1749416383);
    assert_true(json_is_false(at(o, "pressed")));
    assert_null(at(o, "media_id"));
    json_decref(o);
    /* Compact: one line, no spaces after separators. */
    assert_null(strchr(w.messages[0].raw, '\n'));
    assert_null(strstr(w.messages[0].raw, "\": "));
}

static void test_raw_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "[]",
        "not json",
        "{\"from\":\"1\",\"phone_number_id\":\"2\",\"timestamp\":1,\"type\":\"text\"}",
        "{\"id\":\"w\",\"from\":\"x1\",\"phone_number_id\":\"2\",\"timestamp\":1,\"type\":"
        "\"text\"}",
        "{\"id\":\"w\",\"from\":\"1\",\"timestamp\":1,\"type\":\"text\"}",
        "{\"id\":\"w\",\"from\":\"1\",\"phone_number_id\":\"2\",\"type\":\"text\"}",
        "{\"id\":\"w\",\"from\":\"1\",\"phone_number_id\":\"2\",\"timestamp\":-1,\"type\":\"t\"}",
        "{\"id\":\"w\",\"from\":\"1\",\"phone_number_id\":\"2\",\"timestamp\":1}",
        "{\"id\":\"w\",\"from\":\"1\",\"phone_number_id\":\"2\",\"timestamp\":1,\"type\":\"t\","
        "\"pressed\":\"yes\"}",
        "{\"id\":\"w\",\"from\":\"1\",\"phone_number_id\":\"2\",\"timestamp\":1,\"type\":\"t\","
        "\"text\":7}",
        "{\"id\":\"w\",\"id\":\"v\",\"from\":\"1\",\"phone_number_id\":\"2\",\"timestamp\":1,"
        "\"type\":\"t\"}",
    };
    struct wa_message m;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(wa_message_parse(*state, bad[i], &m), -EBADMSG);
    assert_int_equal(wa_message_parse(*state, NULL, &m), -EBADMSG);
    /* The smallest good one. */
    assert_int_equal(wa_message_parse(*state,
                                      "{\"id\":\"w\",\"from\":\"1\",\"phone_number_id\":\"2\","
                                      "\"timestamp\":1,\"type\":\"text\"}",
                                      &m),
                     0);
    assert_null(m.text);
    assert_false(m.pressed);
}

/* ---- splitting ---- */

static void test_split_basic(void **state)
{
    const char **p;

    assert_int_equal(wa_split(*state, "", 10, &p), 0);
    assert_int_equal(wa_split(*state, " \n\n ", 10, &p), 0);
    assert_int_equal(wa_split(*state, "short", 10, &p), 1);
    assert_string_equal(p[0], "short");
    /* On line boundaries where a line fits. */
    assert_int_equal(wa_split(*state, "one\ntwo\nthree", 8, &p), 2);
    assert_string_equal(p[0], "one\ntwo");
    assert_string_equal(p[1], "three");
    /* A line that fits exactly ends its piece. */
    assert_int_equal(wa_split(*state, "abcd\nef", 4, &p), 2);
    assert_string_equal(p[0], "abcd");
    assert_string_equal(p[1], "ef");
    /* A line longer than max is cut between characters. */
    assert_int_equal(wa_split(*state, "abcdefghij", 4, &p), 3);
    assert_string_equal(p[0], "abcd");
    assert_string_equal(p[2], "ij");
    /* No piece of only newlines. */
    assert_int_equal(wa_split(*state, "a\n\n\nb", 1, &p), 2);
    assert_string_equal(p[0], "a");
    assert_string_equal(p[1], "b");
}

static void test_split_4096(void **state)
{
    struct arena *a = *state;
    const char **p;

    assert_int_equal(wa_split(a, repeat(a, "x", 4096), WA_TEXT_MAX, &p), 1);
    assert_int_equal(wa_split(a, repeat(a, "x", 4097), WA_TEXT_MAX, &p), 2);
    assert_int_equal(strlen(p[0]), 4096);
    assert_string_equal(p[1], "x");
}

static void test_split_multibyte(void **state)
{
    struct arena *a = *state;
    static const char *const chars[] = {"é", "€", "😀"};
    const char **p;

    /* 5000 characters of 2, 3 and 4 bytes: 4096 characters and the rest,
     * whatever the bytes; every piece is valid UTF-8. */
    for (size_t k = 0; k < 3; k++) {
        const char *text = arena_printf(a, "a%s", repeat(a, chars[k], 4999));

        assert_int_equal(wa_split(a, text, WA_TEXT_MAX, &p), 2);
        assert_int_equal(utf8_chars(p[0]), 4096);
        assert_int_equal(utf8_chars(p[1]), 904);
        assert_true(utf8_valid(p[0], strlen(p[0])));
        assert_true(utf8_valid(p[1], strlen(p[1])));
    }
}

static void test_split_lines(void **state)
{
    struct arena *a = *state;
    const char **p;
    /* 100 lines of 99 "é" and a newline: 100 characters each. */
    const char *line = arena_printf(a, "%s\n", repeat(a, "é", 99));
    const char *text = repeat(a, line, 100);

    assert_int_equal(wa_split(a, text, WA_TEXT_MAX, &p), 3);
    /* 40 whole lines (4000 characters, less the last newline). */
    assert_int_equal(utf8_chars(p[0]), 40 * 100 - 1);
    assert_int_equal(utf8_chars(p[1]), 40 * 100 - 1);
    assert_int_equal(utf8_chars(p[2]), 20 * 100); /* the text's own last newline */
    for (int i = 0; i < 2; i++)
        assert_true(p[i][strlen(p[i]) - 1] != '\n');
}

/* ---- replies ---- */

static void test_reply_plain(void **state)
{
    struct reply r = text_reply("Pump 7 is running");
    json_t *b = bodies_of(*state, &r, 1);

    assert_string_equal(str_at(b, "0.type"), "text");
    assert_string_equal(str_at(b, "0.text.body"), "Pump 7 is running");
    assert_true(json_is_false(at(b, "0.text.preview_url")));
    assert_null(at(b, "0.rivet_alarm"));
    json_decref(b);

    /* No HTML, no escaping. */
    r = text_reply("a < b & c > d");
    b = bodies_of(*state, &r, 1);
    assert_string_equal(str_at(b, "0.text.body"), "a < b & c > d");
    json_decref(b);
}

static void test_reply_empty(void **state)
{
    struct reply r = text_reply("");
    json_t *b = bodies_of(*state, &r, 0);

    json_decref(b);
    r.text = NULL;
    b = bodies_of(*state, &r, 0);
    json_decref(b);
}

static void test_reply_bold(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"Pump 7\nrunning", "*Pump 7*\nrunning"},
        {"  Pump 7 \nrunning", "  *Pump 7* \nrunning"},
        {"Pump 7", "Pump 7"},                       /* one line */
        {"Pump 7\n\n", "Pump 7\n\n"},               /* nothing after it */
        {"Pump *7*\nrunning", "Pump *7*\nrunning"}, /* markup of its own */
        {"snake_case\nx", "snake_case\nx"},
        {"~old\nx", "~old\nx"},
        {"`code`\nx", "`code`\nx"},
        {"\nsecond", "\nsecond"}, /* an empty first line */
        {"Čerpadlo 7\nběží", "*Čerpadlo 7*\nběží"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct reply r = text_reply(cases[i].in);
        json_t *b = bodies_of(*state, &r, 1);

        assert_string_equal(str_at(b, "0.text.body"), cases[i].out);
        json_decref(b);
    }
}

static void test_reply_long_text(void **state)
{
    struct arena *a = *state;
    struct reply r = text_reply(repeat(a, "é", 9000));
    json_t *b = bodies_of(a, &r, 3);

    assert_int_equal(utf8_chars(str_at(b, "0.text.body")), 4096);
    assert_int_equal(utf8_chars(str_at(b, "1.text.body")), 4096);
    assert_int_equal(utf8_chars(str_at(b, "2.text.body")), 9000 - 8192);
    json_decref(b);
}

static void test_reply_buttons(void **state)
{
    struct arena *a = *state;

    for (int n = 1; n <= 3; n++) {
        struct reply r = text_reply("Alarm 12\nPump 7 overheating");
        json_t *b;

        r.buttons = buttons(a, n);
        r.n_buttons = n;
        b = bodies_of(a, &r, 1);
        assert_string_equal(str_at(b, "0.type"), "interactive");
        assert_string_equal(str_at(b, "0.interactive.type"), "button");
        assert_string_equal(str_at(b, "0.interactive.body.text"), "*Alarm 12*\nPump 7 overheating");
        assert_int_equal(json_array_size(at(b, "0.interactive.action.buttons")), n);
        for (int i = 0; i < n; i++) {
            char path[64];

            snprintf(path, sizeof(path), "0.interactive.action.buttons.%d.type", i);
            assert_string_equal(str_at(b, path), "reply");
            snprintf(path, sizeof(path), "0.interactive.action.buttons.%d.reply.id", i);
            assert_string_equal(str_at(b, path), r.buttons[i].data);
            snprintf(path, sizeof(path), "0.interactive.action.buttons.%d.reply.title", i);
            assert_string_equal(str_at(b, path), r.buttons[i].text);
        }
        assert_null(at(b, "0.text"));
        json_decref(b);
    }
}

static void test_reply_list(void **state)
{
    struct arena *a = *state;

    for (int n = 4; n <= 10; n++) {
        struct reply r = text_reply("Equipment");
        json_t *b;

        r.buttons = buttons(a, n);
        r.n_buttons = n;
        b = bodies_of(a, &r, 1);
        assert_string_equal(str_at(b, "0.interactive.type"), "list");
        assert_string_equal(str_at(b, "0.interactive.body.text"), "Equipment");
        assert_string_equal(str_at(b, "0.interactive.action.button"), "Choose");
        assert_int_equal(json_array_size(at(b, "0.interactive.action.sections")), 1);
        assert_non_null(str_at(b, "0.interactive.action.sections.0.title"));
        assert_int_equal(json_array_size(at(b, "0.interactive.action.sections.0.rows")), n);
        assert_string_equal(str_at(b, "0.interactive.action.sections.0.rows.0.id"), "/cmd 1");
        assert_string_equal(str_at(b, "0.interactive.action.sections.0.rows.0.title"), "Button 1");
        assert_null(at(b, "0.interactive.action.sections.0.rows.0.description"));
        json_decref(b);
    }
}

static void test_reply_more_than_ten(void **state)
{
    struct arena *a = *state;
    struct reply r = text_reply("Equipment");
    json_t *b;

    r.buttons = buttons(a, 13);
    r.n_buttons = 13;
    b = bodies_of(a, &r, 1);
    assert_string_equal(str_at(b, "0.interactive.type"), "list");
    assert_int_equal(json_array_size(at(b, "0.interactive.action.sections.0.rows")), 10);
    assert_string_equal(str_at(b, "0.interactive.action.sections.0.rows.9.id"), "/cmd 10");
    /* The rest as commands to type, under the text (whose first line is
     * not made bold by them). */
    assert_string_equal(str_at(b, "0.interactive.body.text"),
                        "Equipment\n\nOr type:\nButton 11: /cmd 11\nButton 12: /cmd 12\n"
                        "Button 13: /cmd 13");
    json_decref(b);
}

static void test_reply_long_titles(void **state)
{
    struct arena *a = *state;
    struct button bs[] = {
        {"Acknowledge alarm on pump 7", "/alerts ack 1", 0},
        {"Acknowledge alarm on pump 8", "/alerts ack 2", 0},
        {"Acknowledge alarm on pump 9", "/alerts ack 3", 0},
    };
    struct reply r = text_reply("Alarms");
    json_t *b;
    const char *t0, *t1, *t2;

    r.buttons = bs;
    r.n_buttons = 3;
    /* A title over 20 characters: a list, whose rows hold 24. */
    b = bodies_of(a, &r, 1);
    assert_string_equal(str_at(b, "0.interactive.type"), "list");
    t0 = str_at(b, "0.interactive.action.sections.0.rows.0.title");
    t1 = str_at(b, "0.interactive.action.sections.0.rows.1.title");
    t2 = str_at(b, "0.interactive.action.sections.0.rows.2.title");
    assert_string_equal(t0, "Acknowledge alarm on pu…");
    assert_int_equal(utf8_chars(t0), WA_ROW_TITLE_MAX);
    /* The cut titles would collide: still distinct, still within 24. */
    assert_string_not_equal(t0, t1);
    assert_string_not_equal(t0, t2);
    assert_string_not_equal(t1, t2);
    assert_true(utf8_chars(t1) <= WA_ROW_TITLE_MAX);
    assert_true(utf8_chars(t2) <= WA_ROW_TITLE_MAX);
    assert_string_equal(t1, "Acknowledge alarm on… 2");
    /* The whole title as the description. */
    assert_string_equal(str_at(b, "0.interactive.action.sections.0.rows.1.description"),
                        "Acknowledge alarm on pump 8");
    json_decref(b);

    /* Multibyte titles are cut between characters. */
    bs[0].text = "Potvrdit poplach čerpadla číslo 7";
    r.n_buttons = 1;
    b = bodies_of(a, &r, 1);
    t0 = str_at(b, "0.interactive.action.sections.0.rows.0.title");
    assert_int_equal(utf8_chars(t0), WA_ROW_TITLE_MAX);
    assert_true(utf8_valid(t0, strlen(t0)));
    json_decref(b);
}

static void test_reply_duplicate_titles(void **state)
{
    struct button bs[] = {
        {"Next", "/equip list 2", 0},
        {"next", "/equip list 3", 0},
        {"Next 2", "/equip list 4", 0},
    };
    struct reply r = text_reply("Page 1");
    json_t *b;

    r.buttons = bs;
    r.n_buttons = 3;
    b = bodies_of(*state, &r, 1);
    assert_string_equal(str_at(b, "0.interactive.type"), "button");
    assert_string_equal(str_at(b, "0.interactive.action.buttons.0.reply.title"), "Next");
    assert_string_equal(str_at(b, "0.interactive.action.buttons.1.reply.title"), "next 2");
    assert_string_equal(str_at(b, "0.interactive.action.buttons.2.reply.title"), "Next 2 2");
    json_decref(b);
}

static void test_reply_edit_mark(void **state)
{
    struct button bs[] = {
        {"Next", "~/equip list 2", 0},
        {"Back", "/equip list", 0},
    };
    struct reply r = text_reply("Page 1");
    json_t *b;

    r.buttons = bs;
    r.n_buttons = 2;
    b = bodies_of(*state, &r, 1);
    assert_string_equal(str_at(b, "0.interactive.action.buttons.0.reply.id"), "/equip list 2");
    assert_string_equal(str_at(b, "0.interactive.action.buttons.1.reply.id"), "/equip list");
    json_decref(b);
}

static void test_reply_button_data(void **state)
{
    struct arena *a = *state;
    struct button bs[] = {
        {"Too long", NULL, 0},           {"Fine", "/wo view 1", 0},
        {"Same again", "/wo view 1", 0}, {"Same, edited", "~/wo view 1", 0},
        {"Only a mark", "~", 0},         {"", "/alerts", 0},
    };
    struct reply r = text_reply("x");
    json_t *b;

    bs[0].data = arena_printf(a, "/%s", repeat(a, "a", BUTTON_DATA_MAX)); /* 65 bytes */
    r.buttons = bs;
    r.n_buttons = 6;
    b = bodies_of(a, &r, 1);
    assert_int_equal(json_array_size(at(b, "0.interactive.action.buttons")), 2);
    assert_string_equal(str_at(b, "0.interactive.action.buttons.0.reply.id"), "/wo view 1");
    /* No text: its command is its title. */
    assert_string_equal(str_at(b, "0.interactive.action.buttons.1.reply.title"), "/alerts");
    json_decref(b);

    /* 64 bytes is fine. */
    bs[0].data = arena_printf(a, "/%s", repeat(a, "a", BUTTON_DATA_MAX - 1));
    r.n_buttons = 1;
    b = bodies_of(a, &r, 1);
    assert_string_equal(str_at(b, "0.type"), "interactive");
    json_decref(b);

    /* With every button dropped, a plain text. */
    bs[0].data = arena_printf(a, "/%s", repeat(a, "a", BUTTON_DATA_MAX));
    b = bodies_of(a, &r, 1);
    assert_string_equal(str_at(b, "0.type"), "text");
    json_decref(b);
}

static void test_reply_long_body_with_buttons(void **state)
{
    struct arena *a = *state;
    struct reply r = text_reply(repeat(a, "x", WA_BODY_MAX + 1));
    json_t *b;

    r.buttons = buttons(a, 2);
    r.n_buttons = 2;
    b = bodies_of(a, &r, 2);
    assert_string_equal(str_at(b, "0.type"), "text");
    assert_int_equal(strlen(str_at(b, "0.text.body")), WA_BODY_MAX + 1);
    assert_string_equal(str_at(b, "1.type"), "interactive");
    assert_string_equal(str_at(b, "1.interactive.body.text"), "Choose:");
    assert_int_equal(json_array_size(at(b, "1.interactive.action.buttons")), 2);
    json_decref(b);

    /* Exactly 1024 characters still carry the buttons. */
    r.text = repeat(a, "ü", WA_BODY_MAX);
    b = bodies_of(a, &r, 1);
    assert_string_equal(str_at(b, "0.type"), "interactive");
    json_decref(b);

    /* Split text: the buttons on the last piece when it is short. */
    r.text = arena_printf(a, "%s\nend", repeat(a, "x", WA_TEXT_MAX));
    b = bodies_of(a, &r, 2);
    assert_string_equal(str_at(b, "0.type"), "text");
    assert_string_equal(str_at(b, "1.interactive.body.text"), "end");
    json_decref(b);

    /* No text at all: the prompt alone. */
    r.text = "";
    b = bodies_of(a, &r, 1);
    assert_string_equal(str_at(b, "0.interactive.body.text"), "Choose:");
    json_decref(b);
}

static void test_reply_alarm(void **state)
{
    struct arena *a = *state;
    struct button bs[] = {
        {"Acknowledge", "~/alerts ack 12", 0},
        {"Work order", "/wo new alarm 12", 0},
        {"Mute 1h", "/alerts mute 12 1h", 1},
    };
    struct reply r = text_reply("🔴 CRITICAL Pump 7: temperature 92 > 85 °C\nsince 10:02");
    json_t *b;

    r.alarm = true;
    r.buttons = bs;
    r.n_buttons = 3;
    b = bodies_of(a, &r, 1);
    assert_string_equal(str_at(b, "0.rivet_alarm.text"),
                        "🔴 CRITICAL Pump 7: temperature 92 > 85 °C · since 10:02");
    assert_int_equal(json_array_size(at(b, "0.rivet_alarm.payloads")), 2);
    assert_string_equal(str_at(b, "0.rivet_alarm.payloads.0"), "/alerts ack 12");
    assert_string_equal(str_at(b, "0.rivet_alarm.payloads.1"), "/wo new alarm 12");
    json_decref(b);

    /* On the body with the buttons, not on the long text before it. */
    r.text = arena_printf(a, "Alarm\n%s", repeat(a, "x", WA_BODY_MAX));
    b = bodies_of(a, &r, 2);
    assert_null(at(b, "0.rivet_alarm"));
    assert_true(strncmp(str_at(b, "1.rivet_alarm.text"), "Alarm · xxx", strlen("Alarm · xxx")) ==
                0);
    json_decref(b);

    /* One button: "/alerts" stands in for the second. */
    r.text = "Storm: 12 alarms";
    r.n_buttons = 1;
    b = bodies_of(a, &r, 1);
    assert_string_equal(str_at(b, "0.rivet_alarm.payloads.0"), "/alerts ack 12");
    assert_string_equal(str_at(b, "0.rivet_alarm.payloads.1"), "/alerts");
    json_decref(b);

    /* No buttons: on the last body, both "/alerts". */
    r.n_buttons = 0;
    r.text = arena_printf(a, "\n  First  \n%s", repeat(a, "y", WA_TEXT_MAX));
    b = bodies_of(a, &r, 2);
    assert_null(at(b, "0.rivet_alarm"));
    assert_true(strncmp(str_at(b, "1.rivet_alarm.text"), "First · yyy", strlen("First · yyy")) ==
                0);
    assert_string_equal(str_at(b, "1.rivet_alarm.payloads.0"), "/alerts");
    assert_string_equal(str_at(b, "1.rivet_alarm.payloads.1"), "/alerts");
    json_decref(b);

    /* An edit of an alarm's copy, or no alarm at all: none. */
    r.text = "Acknowledged by Ann";
    r.edit_outbox = 77;
    b = bodies_of(a, &r, 1);
    assert_null(at(b, "0.rivet_alarm"));
    json_decref(b);
    r.edit_outbox = 0;
    r.alarm = false;
    b = bodies_of(a, &r, 1);
    assert_null(at(b, "0.rivet_alarm"));
    json_decref(b);
}

static void test_reply_invalid_utf8(void **state)
{
    struct reply r = text_reply("bad \xff byte \xc3");
    json_t *b = bodies_of(*state, &r, 1);

    assert_string_equal(str_at(b, "0.text.body"), "bad \xef\xbf\xbd byte \xef\xbf\xbd");
    json_decref(b);
}

/* ---- the alarm template ---- */

static json_t *alarm_meta(const char *text, const char *p0, const char *p1)
{
    json_t *m = json_pack("{s:s, s:[]}", "text", text, "payloads");

    assert_non_null(m);
    if (p0)
        json_array_append_new(json_object_get(m, "payloads"), json_string(p0));
    if (p1)
        json_array_append_new(json_object_get(m, "payloads"), json_string(p1));
    return m;
}

static const char *template_param_of(const json_t *t)
{
    return str_at(t, "template.components.0.parameters.0.text");
}

static void test_template_body(void **state)
{
    json_t *m = alarm_meta("CRITICAL Pump 7", "/alerts ack 12", "/wo new alarm 12"), *t;

    (void)state;
    t = wa_template_body("16505551234", "rivet_alarm", "en", m);
    assert_non_null(t);
    assert_string_equal(str_at(t, "messaging_product"), "whatsapp");
    assert_string_equal(str_at(t, "to"), "16505551234");
    assert_string_equal(str_at(t, "type"), "template");
    assert_string_equal(str_at(t, "template.name"), "rivet_alarm");
    assert_string_equal(str_at(t, "template.language.code"), "en");
    assert_int_equal(json_array_size(at(t, "template.components")), 3);
    assert_string_equal(str_at(t, "template.components.0.type"), "body");
    assert_string_equal(str_at(t, "template.components.0.parameters.0.type"), "text");
    assert_string_equal(template_param_of(t), "CRITICAL Pump 7");
    for (int i = 0; i < 2; i++) {
        char path[64];

        snprintf(path, sizeof(path), "template.components.%d.type", i + 1);
        assert_string_equal(str_at(t, path), "button");
        snprintf(path, sizeof(path), "template.components.%d.sub_type", i + 1);
        assert_string_equal(str_at(t, path), "quick_reply");
        snprintf(path, sizeof(path), "template.components.%d.index", i + 1);
        assert_string_equal(str_at(t, path), i == 0 ? "0" : "1");
        snprintf(path, sizeof(path), "template.components.%d.parameters.0.type", i + 1);
        assert_string_equal(str_at(t, path), "payload");
    }
    assert_string_equal(str_at(t, "template.components.1.parameters.0.payload"), "/alerts ack 12");
    assert_string_equal(str_at(t, "template.components.2.parameters.0.payload"),
                        "/wo new alarm 12");
    json_decref(t);
    json_decref(m);
}

static void test_template_from_reply(void **state)
{
    struct button bs[] = {{"Acknowledge", "~/alerts ack 5", 0}};
    struct reply r = text_reply("WARNING Fan 2\nvibration");
    json_t *b, *t;

    r.alarm = true;
    r.buttons = bs;
    r.n_buttons = 1;
    b = bodies_of(*state, &r, 1);
    t = wa_template_body("16505551234", "alarm", "en_US", at(b, "0.rivet_alarm"));
    assert_non_null(t);
    assert_string_equal(template_param_of(t), "WARNING Fan 2 · vibration");
    assert_string_equal(str_at(t, "template.components.1.parameters.0.payload"), "/alerts ack 5");
    assert_string_equal(str_at(t, "template.components.2.parameters.0.payload"), "/alerts");
    json_decref(t);
    json_decref(b);
}

static void test_template_sanitize(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\nb\tc\r\nd", "a b c  d"},
        {"a          b", "a    b"},
        {"  \t\n lead and trail \n ", "lead and trail"},
        {"", "Alarm"},
        {" \n\t ", "Alarm"},
        {"ctl\x01\x7f!", "ctl  !"},
    };
    struct arena *a = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *m = alarm_meta(cases[i].in, "/x", "/y"), *t;

        t = wa_template_body("1", "n", "en", m);
        assert_non_null(t);
        assert_string_equal(template_param_of(t), cases[i].out);
        json_decref(t);
        json_decref(m);
    }

    /* Long: 1024 characters at most, the last one "…". */
    json_t *m = alarm_meta(repeat(a, "é", 3000), "/x", "/y"), *t;
    t = wa_template_body("1", "n", "en", m);
    assert_non_null(t);
    assert_int_equal(utf8_chars(template_param_of(t)), 1024);
    assert_true(strstr(template_param_of(t), "é…") != NULL);
    json_decref(t);
    json_decref(m);
    /* Exactly 1024: as is. */
    m = alarm_meta(repeat(a, "é", 1024), "/x", "/y");
    t = wa_template_body("1", "n", "en", m);
    assert_string_equal(template_param_of(t), repeat(a, "é", 1024));
    json_decref(t);
    json_decref(m);
}

static void test_template_malformed(void **state)
{
    json_t *m;

    (void)state;
    assert_null(wa_template_body("1", "n", "en", NULL));
    m = json_pack("{s:i, s:[]}", "text", 7, "payloads");
    assert_null(wa_template_body("1", "n", "en", m));
    json_decref(m);
    m = json_pack("{s:s}", "text", "x");
    assert_null(wa_template_body("1", "n", "en", m));
    json_decref(m);
    m = json_pack("{s:s, s:[i]}", "text", "x", "payloads", 3);
    assert_null(wa_template_body("1", "n", "en", m));
    json_decref(m);
    m = json_pack("{s:s, s:[s]}", "text", "x", "payloads", "");
    assert_null(wa_template_body("1", "n", "en", m));
    json_decref(m);
    m = alarm_meta("x", "/a", "/b");
    assert_null(wa_template_body(NULL, "n", "en", m));
    assert_null(wa_template_body("1", NULL, "en", m));
    assert_null(wa_template_body("1", "n", NULL, m));
    json_decref(m);
    /* Missing payloads are "/alerts". */
    m = json_pack("{s:s, s:[]}", "text", "x", "payloads");
    json_t *t = wa_template_body("1", "n", "en", m);
    assert_non_null(t);
    assert_string_equal(str_at(t, "template.components.1.parameters.0.payload"), "/alerts");
    assert_string_equal(str_at(t, "template.components.2.parameters.0.payload"), "/alerts");
    json_decref(t);
    json_decref(m);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_signature_valid),
        T(test_signature_upper_case),
        T(test_signature_missing),
        T(test_signature_sha1_prefix),
        T(test_signature_wrong_length),
        T(test_signature_altered),
        T(test_signature_other_body),
        T(test_signature_empty_secret),
        T(test_signature_empty_body),
        T(test_parse_text),
        T(test_parse_button_reply),
        T(test_parse_list_reply),
        T(test_parse_template_button),
        T(test_parse_image),
        T(test_parse_document),
        T(test_parse_other_types),
        T(test_parse_statuses),
        T(test_parse_status_failed),
        T(test_parse_value_errors),
        T(test_parse_contacts),
        T(test_parse_several_entries),
        T(test_parse_malformed_skipped),
        T(test_parse_no_metadata),
        T(test_parse_not_a_webhook),
        T(test_parse_too_deep),
        T(test_parse_limits),
        T(test_parse_long_text),
        T(test_raw_round_trip),
        T(test_raw_shape),
        T(test_raw_bad),
        T(test_split_basic),
        T(test_split_4096),
        T(test_split_multibyte),
        T(test_split_lines),
        T(test_reply_plain),
        T(test_reply_empty),
        T(test_reply_bold),
        T(test_reply_long_text),
        T(test_reply_buttons),
        T(test_reply_list),
        T(test_reply_more_than_ten),
        T(test_reply_long_titles),
        T(test_reply_duplicate_titles),
        T(test_reply_edit_mark),
        T(test_reply_button_data),
        T(test_reply_long_body_with_buttons),
        T(test_reply_alarm),
        T(test_reply_invalid_utf8),
        T(test_template_body),
        T(test_template_from_reply),
        T(test_template_sanitize),
        T(test_template_malformed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
