/* The webhooks' shared secrets, compared in constant time (CRYPTO_memcmp
 * in bot/web.c and bot/wa_webhook.c): the Telegram secret header, the
 * WhatsApp verify token and the WhatsApp body signature. Each is tried
 * missing, empty, one byte short and long, with its first and its last
 * byte changed, and right, through the real routes of `rivet serve`'s HTTP
 * server (web_start() on 127.0.0.1, port 0), and wa_signature_ok() on its
 * own. A right secret gets past the check to the database, which is not
 * there: 503. A wrong one never gets that far: 401 or 403. Nothing the
 * server logged holds a secret or a signature. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "wa.h"
#include "web.h"

#define TG_SECRET "Rivet_test-Secret_0123456789abcdefXYZ"
#define WA_APP_SECRET "wa-app-secret-for-the-auth-test"
#define WA_VERIFY "verify-token-for-the-auth-test-42"
#define WA_TOKEN "EAAGauthTESTtokenQ9z"
#define TG_TOKEN "123456:AAauthTESTtoken_xyz"
#define BODY "{\"object\":\"whatsapp_business_account\",\"entry\":[]}"

static struct config cfg;
static struct web *web;
static char base[64];
static char log_path[] = "/tmp/rivet-webhook-auth-XXXXXX";
static int saved_stderr = -1;

/* ---- HTTP ---- */

static size_t collect(char *p, size_t size, size_t n, void *userdata)
{
    struct buf *b = userdata;

    return buf_add(b, p, size * n) == 0 ? size * n : 0;
}

/* A request to path; header is "Name: value" or NULL. Returns the status;
 * body (when not NULL) gets what came back. */
static long request(const char *method, const char *path, const char *header, const char *body,
                    struct buf *out)
{
    struct curl_slist *h = NULL;
    struct buf ignored;
    char url[512];
    long status = 0;
    CURL *c = curl_easy_init();

    assert_non_null(c);
    buf_init(&ignored, 1 << 16);
    snprintf(url, sizeof(url), "%s%s", base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out ? out : &ignored);
    h = curl_slist_append(h, "Content-Type: application/json");
    if (header)
        h = curl_slist_append(h, header);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body ? body : ""));
    }
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    buf_free(&ignored);
    return status;
}

/* ---- what is tried ---- */

/* The ways a secret can be wrong: into v (each a fresh string), n of them. */
#define N_WRONG 7
static void wrong_versions(const char *right, char v[N_WRONG][160])
{
    size_t n = strlen(right);

    snprintf(v[0], 160, "%s", "");
    snprintf(v[1], 160, "%.*s", (int)(n - 1), right); /* one byte short */
    snprintf(v[2], 160, "%s0", right);                /* one byte long */
    snprintf(v[3], 160, "%s", right);                 /* the first byte changed */
    v[3][0] = (char)(v[3][0] == 'a' ? 'b' : 'a');
    snprintf(v[4], 160, "%s", right); /* the last byte changed */
    v[4][n - 1] = (char)(v[4][n - 1] == '0' ? '1' : '0');
    snprintf(v[5], 160, "%s", right); /* a byte in the middle */
    v[5][n / 2] = (char)(v[5][n / 2] == 'x' ? 'y' : 'x');
    snprintf(v[6], 160, "x%s", right); /* the right one, one byte in */
}

/* "sha256=" and the hex HMAC of body under secret. */
static void sign(const char *secret, const char *body, char out[72])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body,
                         strlen(body), md, &n));
    assert_int_equal(n, 32);
    memcpy(out, "sha256=", 7);
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

/* ---- the tests ---- */

static void test_telegram_secret_header(void **state)
{
    char wrong[N_WRONG][160], h[2048];

    (void)state;
    assert_int_equal(request("POST", "/webhook/telegram", NULL, "{}", NULL), 401);
    wrong_versions(TG_SECRET, wrong);
    for (int i = 0; i < N_WRONG; i++) {
        snprintf(h, sizeof(h), "X-Telegram-Bot-Api-Secret-Token: %s", wrong[i]);
        if (request("POST", "/webhook/telegram", h, "{}", NULL) != 401)
            fail_msg("the Telegram secret \"%s\" (version %d) was not refused", wrong[i], i);
    }
    /* The right one gets past the check, to the database that is not
     * there. */
    snprintf(h, sizeof(h), "X-Telegram-Bot-Api-Secret-Token: %s", TG_SECRET);
    assert_int_equal(request("POST", "/webhook/telegram", h, "{}", NULL), 503);
}

static void test_whatsapp_verify_token(void **state)
{
    char wrong[N_WRONG][160], path[2048];
    struct buf out;

    (void)state;
    assert_int_equal(
        request("GET", "/webhook/whatsapp?hub.mode=subscribe&hub.challenge=42", NULL, NULL, NULL),
        403);
    wrong_versions(WA_VERIFY, wrong);
    for (int i = 0; i < N_WRONG; i++) {
        snprintf(path, sizeof(path),
                 "/webhook/whatsapp?hub.mode=subscribe&hub.challenge=42&hub.verify_token=%s",
                 wrong[i]);
        if (request("GET", path, NULL, NULL, NULL) != 403)
            fail_msg("the verify token \"%s\" (version %d) was not refused", wrong[i], i);
    }
    buf_init(&out, 4096);
    snprintf(path, sizeof(path),
             "/webhook/whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=%s",
             WA_VERIFY);
    assert_int_equal(request("GET", path, NULL, NULL, &out), 200);
    assert_int_equal(out.len, strlen("1158201444"));
    assert_string_equal(buf_str(&out), "1158201444");
    buf_free(&out);
}

static void test_whatsapp_signature_header(void **state)
{
    char right[72], other[72], wrong[N_WRONG][160], h[2048];

    (void)state;
    sign(WA_APP_SECRET, BODY, right);
    sign(WA_APP_SECRET, BODY " ", other);
    assert_int_equal(request("POST", "/webhook/whatsapp", NULL, BODY, NULL), 401);
    wrong_versions(right, wrong);
    for (int i = 0; i < N_WRONG; i++) {
        snprintf(h, sizeof(h), "X-Hub-Signature-256: %s", wrong[i]);
        if (request("POST", "/webhook/whatsapp", h, BODY, NULL) != 401)
            fail_msg("the signature \"%s\" (version %d) was not refused", wrong[i], i);
    }
    /* The signature of another body, and of this body under another
     * secret. */
    snprintf(h, sizeof(h), "X-Hub-Signature-256: %s", other);
    assert_int_equal(request("POST", "/webhook/whatsapp", h, BODY, NULL), 401);
    sign(WA_VERIFY, BODY, other);
    snprintf(h, sizeof(h), "X-Hub-Signature-256: %s", other);
    assert_int_equal(request("POST", "/webhook/whatsapp", h, BODY, NULL), 401);
    snprintf(h, sizeof(h), "X-Hub-Signature-256: %s", right);
    assert_int_equal(request("POST", "/webhook/whatsapp", h, BODY, NULL), 503);
}

/* The check itself: every digit position counts, the first and the last
 * too, with valid hex digits (a non-hex digit is refused earlier). */
static void test_signature_every_digit(void **state)
{
    char right[72], h[72];

    (void)state;
    sign(WA_APP_SECRET, BODY, right);
    assert_true(wa_signature_ok(WA_APP_SECRET, BODY, strlen(BODY), right));
    for (int i = 7; i < 71; i++) {
        memcpy(h, right, sizeof(h));
        h[i] = h[i] == 'f' ? 'e' : 'f';
        if (wa_signature_ok(WA_APP_SECRET, BODY, strlen(BODY), h))
            fail_msg("a signature with digit %d changed was taken", i - 7);
    }
    assert_false(wa_signature_ok(WA_APP_SECRET, BODY, strlen(BODY), ""));
    assert_false(wa_signature_ok(WA_APP_SECRET, BODY, strlen(BODY), "sha256="));
    memcpy(h, right, sizeof(h));
    h[70] = '\0'; /* 63 digits */
    assert_false(wa_signature_ok(WA_APP_SECRET, BODY, strlen(BODY), h));
    assert_false(wa_signature_ok("", BODY, strlen(BODY), right));
}

/* Run last: the server's log lines so far (its stderr) hold none of the
 * secrets, nor the signatures sent. */
static void test_no_secret_logged(void **state)
{
    static const char *const secrets[] = {TG_SECRET, WA_APP_SECRET, WA_VERIFY, WA_TOKEN, TG_TOKEN};
    char sig[72], line[4096];
    int lines = 0;
    FILE *f;

    (void)state;
    fflush(stderr);
    sign(WA_APP_SECRET, BODY, sig);
    f = fopen(log_path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        lines++;
        for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
            if (strstr(line, secrets[i]))
                fail_msg("a secret in the log: %s", line);
        if (strstr(line, sig + 7))
            fail_msg("a signature in the log: %s", line);
    }
    fclose(f);
    /* The refusals were logged, so the check above saw something. */
    assert_true(lines >= 10);
}

static int group_setup(void **state)
{
    char err[256];
    int fd;

    (void)state;
    setenv("DATABASE_URL", "postgresql://rivet@127.0.0.1:1/none?connect_timeout=2", 1);
    setenv("HTTP_LISTEN", "127.0.0.1:0", 1);
    setenv("HTTP_THREADS", "2", 1);
    setenv("TELEGRAM_BOT_TOKEN", TG_TOKEN, 1);
    setenv("TELEGRAM_WEBHOOK_URL", "https://rivet.invalid/webhook/telegram", 1);
    setenv("TELEGRAM_WEBHOOK_SECRET", TG_SECRET, 1);
    setenv("WHATSAPP_TOKEN", WA_TOKEN, 1);
    setenv("WHATSAPP_PHONE_NUMBER_ID", "106540352242922", 1);
    setenv("WHATSAPP_APP_SECRET", WA_APP_SECRET, 1);
    setenv("WHATSAPP_VERIFY_TOKEN", WA_VERIFY, 1);
    setenv("RIVET_LOG_LEVEL", "debug", 1);
    if (config_load(&cfg, 1, err, sizeof(err)) < 0) {
        fprintf(stderr, "config_load: %s\n", err);
        return -1;
    }
    log_threshold = cfg.log_level;
    /* What the server logs goes to a file, for test_no_secret_logged. */
    fd = mkstemp(log_path);
    if (fd < 0)
        return -1;
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    if (saved_stderr < 0 || dup2(fd, STDERR_FILENO) < 0)
        return -1;
    close(fd);
    if (web_start(&cfg, &web) < 0)
        return -1;
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", web_port(web));
    return 0;
}

static int group_teardown(void **state)
{
    char line[4096];
    FILE *f;

    (void)state;
    web_stop(web);
    fflush(stderr);
    if (saved_stderr >= 0) {
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
    }
    /* What was not the server's log (cmocka's messages) goes where it
     * would have gone. */
    f = fopen(log_path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "ts=", 3) != 0)
            fputs(line, stderr);
    if (f)
        fclose(f);
    unlink(log_path);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_telegram_secret_header),
        cmocka_unit_test(test_whatsapp_verify_token),
        cmocka_unit_test(test_whatsapp_signature_header),
        cmocka_unit_test(test_signature_every_digit),
        cmocka_unit_test(test_no_secret_logged),
    };
    int r;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    r = cmocka_run_group_tests_name("unit-webhook-auth", tests, group_setup, group_teardown);
    curl_global_cleanup();
    return r;
}
