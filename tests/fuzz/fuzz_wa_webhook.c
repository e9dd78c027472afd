/* WhatsApp webhooks: the body Meta posts, through wa_signature_ok (with a
 * fixed app secret: the input's own HMAC must pass, a header that is not
 * must fail, and the header itself is fuzzed too), wa_webhook_parse, and
 * wa_message_parse on the raw form of each message, which is what the
 * inbox stores and the worker reads back: it must give the same message. */
#include <jansson.h>
#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "arena.h"
#include "fuzz.h"
#include "wa.h"

static const char secret[] = "fuzz-app-secret";

static bool same(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static void signature(const uint8_t *data, size_t size)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char header[7 + 64 + 1], *as_header;

    FUZZ_CHECK(HMAC(EVP_sha256(), secret, (int)strlen(secret), data, size, mac, &len));
    FUZZ_CHECK(len == 32);
    memcpy(header, "sha256=", 7);
    for (unsigned int i = 0; i < len; i++)
        snprintf(header + 7 + 2 * i, 3, "%02x", mac[i]);
    FUZZ_CHECK(wa_signature_ok(secret, (const char *)data, size, header));
    header[7] = header[7] == '0' ? '1' : '0'; /* another digest */
    FUZZ_CHECK(!wa_signature_ok(secret, (const char *)data, size, header));
    FUZZ_CHECK(!wa_signature_ok("", (const char *)data, size, header));
    /* The input as the header: almost never right, never a crash. */
    as_header = fuzz_strndup(data, size < 128 ? size : 128);
    if (as_header) {
        wa_signature_ok(secret, (const char *)data, size, as_header);
        free(as_header);
    }
}

static void check_message(struct arena *a, const struct wa_message *m)
{
    struct wa_message back;

    FUZZ_CHECK(m->id && m->from && m->type && m->phone_number_id && m->raw);
    fuzz_touch(m->name);
    fuzz_touch(m->text);
    fuzz_touch(m->media_id);
    fuzz_touch(m->mime_type);
    fuzz_touch(m->context_id);
    FUZZ_CHECK(!m->pressed || m->text);
    FUZZ_CHECK(wa_message_parse(a, m->raw, &back) == 0);
    FUZZ_CHECK(same(back.id, m->id) && same(back.from, m->from) && same(back.name, m->name) &&
               same(back.phone_number_id, m->phone_number_id) && back.timestamp == m->timestamp &&
               same(back.type, m->type) && same(back.text, m->text) && back.pressed == m->pressed &&
               same(back.media_id, m->media_id) && same(back.mime_type, m->mime_type) &&
               same(back.context_id, m->context_id));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena *a = NULL;
    struct wa_webhook wh;
    struct wa_message m;
    char *raw;

    signature(data, size);
    if (arena_new(&a) < 0)
        return 0;
    if (wa_webhook_parse(a, (const char *)data, size, &wh) == 0) {
        FUZZ_CHECK(wh.n_messages >= 0 && wh.n_statuses >= 0 && wh.skipped >= 0);
        for (int i = 0; i < wh.n_messages; i++)
            check_message(a, &wh.messages[i]);
        for (int i = 0; i < wh.n_statuses; i++) {
            FUZZ_CHECK(wh.statuses[i].id && wh.statuses[i].status);
            fuzz_touch(wh.statuses[i].recipient);
            fuzz_touch(wh.statuses[i].error);
        }
        fuzz_touch(wh.error);
    }
    /* The input as an inbox row: wa_message_parse reads it as it is. */
    raw = fuzz_strndup(data, size);
    if (raw && wa_message_parse(a, raw, &m) == 0) {
        fuzz_touch(m.name);
        fuzz_touch(m.text);
        FUZZ_CHECK(m.raw && strcmp(m.raw, raw) == 0);
    }
    free(raw);
    arena_free(a);
    return 0;
}
