/* The LLM client's pure parts: llm_parse_answer (a provider's
 * chat.completion answer -> nameplate fields), llm_parse_text (the same
 * envelope -> cleaned, cut text) and llm_config_load (the
 * environment -> providers), with a table standing in for getenv. The
 * client against a server is tested in tests/fake_llm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "text.h"

/* ---- llm_parse_answer ---- */

/* A chat.completion whose first choice has the given content (a JSON
 * string literal, quotes included). The caller frees it. */
static char *completion(const char *content_literal)
{
    char *s;

    assert_true(asprintf(&s,
                         "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\","
                         "\"created\":1700000000,\"model\":\"m\",\"choices\":[{\"index\":0,"
                         "\"message\":{\"role\":\"assistant\",\"content\":%s,\"refusal\":null},"
                         "\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                         "\"usage\":{\"prompt_tokens\":1234,\"completion_tokens\":56,"
                         "\"total_tokens\":1290}}",
                         content_literal) > 0);
    return s;
}

static int parse(const char *content_literal, struct nameplate *np)
{
    char *body = completion(content_literal);
    struct llm_usage u;
    int r;

    memset(np, 0, sizeof(*np));
    memset(&u, 0, sizeof(u));
    r = llm_parse_answer(body, strlen(body), np, &u);
    free(body);
    return r;
}

static void expect_bad(const char *content_literal)
{
    struct nameplate np;
    int r = parse(content_literal, &np);

    if (r != -EBADMSG)
        fail_msg("content %s: got %d, want -EBADMSG", content_literal, r);
}

static void test_parse_fields(void **state)
{
    struct nameplate np;
    struct llm_usage u;
    char *body = completion(
        "\"{\\\"manufacturer\\\": \\\"Baldor\\\", \\\"model\\\": \\\"EM3615T\\\", "
        "\\\"serial\\\": \\\"F18\\\", \\\"volts\\\": \\\"230/460\\\", \\\"amps\\\": \\\"15.6\\\", "
        "\\\"hp\\\": \\\"7.5\\\", \\\"kw\\\": null, \\\"rpm\\\": \\\"1770\\\", \\\"hz\\\": "
        "\\\"60\\\", "
        "\\\"phase\\\": \\\"3\\\", \\\"frame\\\": \\\"213T\\\", \\\"enclosure\\\": \\\"TEFC\\\", "
        "\\\"service_factor\\\": \\\"1.15\\\", \\\"insulation_class\\\": \\\"F\\\", "
        "\\\"efficiency\\\": \\\"91.7\\\", \\\"year\\\": \\\"2019\\\"}\"");

    memset(&u, 0, sizeof(u));
    assert_int_equal(llm_parse_answer(body, strlen(body), &np, &u), 0);
    free(body);
    assert_string_equal(np.f[NP_MANUFACTURER].value, "Baldor");
    assert_string_equal(np.f[NP_MODEL].value, "EM3615T");
    assert_string_equal(np.f[NP_SERIAL].value, "F18");
    assert_string_equal(np.f[NP_VOLTS].value, "230/460");
    assert_string_equal(np.f[NP_KW].value, "");
    assert_int_equal(np.f[NP_KW].source, NP_SRC_NONE);
    assert_float_equal(np.f[NP_KW].confidence, 0, 0);
    assert_string_equal(np.f[NP_INSULATION].value, "F");
    assert_string_equal(np.f[NP_SERVICE_FACTOR].value, "1.15");
    assert_string_equal(np.f[NP_YEAR].value, "2019");
    for (int i = 0; i < NP_FIELD_COUNT; i++) {
        if (i == NP_KW)
            continue;
        assert_int_equal(np.f[i].source, NP_SRC_LLM);
        assert_float_equal(np.f[i].confidence, 0.8, 1e-6);
    }
    assert_true(np.confidence >= 0.79f && np.confidence <= 0.81f);
    assert_int_equal(u.prompt_tokens, 1234);
    assert_int_equal(u.completion_tokens, 56);
}

static void test_parse_numbers(void **state)
{
    struct nameplate np;

    assert_int_equal(parse("\"{\\\"volts\\\": 460, \\\"hp\\\": 7.5, \\\"amps\\\": 12.0, "
                           "\\\"service_factor\\\": 1.15, \\\"efficiency\\\": 95.4, "
                           "\\\"rpm\\\": 1765, \\\"kw\\\": 0.37, \\\"hz\\\": 6e1, "
                           "\\\"serial\\\": 123456789012}\"",
                           &np),
                     0);
    assert_string_equal(np.f[NP_VOLTS].value, "460");
    assert_string_equal(np.f[NP_HP].value, "7.5");
    assert_string_equal(np.f[NP_AMPS].value, "12");
    assert_string_equal(np.f[NP_SERVICE_FACTOR].value, "1.15");
    assert_string_equal(np.f[NP_EFFICIENCY].value, "95.4");
    assert_string_equal(np.f[NP_RPM].value, "1765");
    assert_string_equal(np.f[NP_KW].value, "0.37");
    assert_string_equal(np.f[NP_HZ].value, "60");
    assert_string_equal(np.f[NP_SERIAL].value, "123456789012");
    assert_int_equal(np.f[NP_VOLTS].source, NP_SRC_LLM);
    expect_bad("\"{\\\"volts\\\": -460}\"");
    expect_bad("\"{\\\"hp\\\": -0.5}\"");
}

static void test_parse_not_read(void **state)
{
    struct nameplate np;

    assert_int_equal(parse("\"{\\\"manufacturer\\\": null, \\\"model\\\": \\\"\\\", "
                           "\\\"serial\\\": \\\"null\\\", \\\"volts\\\": \\\"N/A\\\", "
                           "\\\"amps\\\": \\\"Unknown\\\", \\\"hp\\\": \\\"  \\\", "
                           "\\\"kw\\\": \\\"none\\\", \\\"rpm\\\": \\\" NULL \\\"}\"",
                           &np),
                     0);
    for (int i = 0; i < NP_FIELD_COUNT; i++) {
        assert_string_equal(np.f[i].value, "");
        assert_int_equal(np.f[i].source, NP_SRC_NONE);
    }
    assert_float_equal(np.confidence, 0, 0);
    /* an empty object is a read of nothing, not an error */
    assert_int_equal(parse("\"{}\"", &np), 0);
}

static void test_parse_trim_and_unknown(void **state)
{
    struct nameplate np;

    assert_int_equal(
        parse("\"{\\\"manufacturer\\\": \\\"   ABB  \\\", \\\"colour\\\": "
              "\\\"blue\\\", \\\"notes\\\": [1, 2], \\\"extra\\\": {\\\"a\\\": {\\\"b\\\": [1]}}, "
              "\\\"Model\\\": \\\"ignored: names are case-sensitive\\\"}\"",
              &np),
        0);
    assert_string_equal(np.f[NP_MANUFACTURER].value, "ABB");
    assert_string_equal(np.f[NP_MODEL].value, "");
}

static void test_parse_fences(void **state)
{
    struct nameplate np;

    assert_int_equal(parse("\"```json\\n{\\\"model\\\": \\\"A1\\\"}\\n```\"", &np), 0);
    assert_string_equal(np.f[NP_MODEL].value, "A1");
    assert_int_equal(parse("\"\\n\\n  ```JSON  \\n {\\\"model\\\": \\\"A2\\\"} \\n```\\n \"", &np),
                     0);
    assert_string_equal(np.f[NP_MODEL].value, "A2");
    assert_int_equal(parse("\"```\\n{\\\"model\\\": \\\"A3\\\"}```\"", &np), 0);
    assert_string_equal(np.f[NP_MODEL].value, "A3");
    assert_int_equal(parse("\"  \\t{\\\"model\\\": \\\"A4\\\"}\\r\\n\"", &np), 0);
    assert_string_equal(np.f[NP_MODEL].value, "A4");
    expect_bad("\"```json {\\\"model\\\": \\\"A\\\"}```\"");        /* no newline */
    expect_bad("\"```python\\n{\\\"model\\\": \\\"A\\\"}\\n```\""); /* not json */
    expect_bad("\"```json\\n{\\\"model\\\": \\\"A\\\"}\\n\"");      /* not closed */
    expect_bad("\"Here you go: ```json\\n{\\\"model\\\": \\\"A\\\"}\\n```\"");
}

static void test_parse_wrong_types(void **state)
{
    expect_bad("\"{\\\"manufacturer\\\": true}\"");
    expect_bad("\"{\\\"manufacturer\\\": false}\"");
    expect_bad("\"{\\\"model\\\": [\\\"A\\\"]}\"");
    expect_bad("\"{\\\"volts\\\": {\\\"value\\\": 460}}\"");
    expect_bad("\"{\\\"volts\\\": []}\"");
}

static void test_parse_not_an_object(void **state)
{
    expect_bad("\"[{\\\"model\\\": \\\"A\\\"}]\"");
    expect_bad("\"\\\"ABB\\\"\"");
    expect_bad("\"460\"");
    expect_bad("\"null\"");
    expect_bad("\"\"");
    expect_bad("\"   \"");
    expect_bad("\"The plate says ABB.\"");
    expect_bad("\"{\\\"model\\\": \\\"A\\\"} {\\\"model\\\": \\\"B\\\"}\"");
    expect_bad("\"{\\\"model\\\": \\\"A\\\"} and more\"");
    expect_bad("\"{\\\"model\\\": \\\"A\\\"\"");
    expect_bad("\"{\\\"model\\\": \\\"A\\\", \\\"model\\\": \\\"B\\\"}\""); /* duplicate */
    expect_bad("\"{model: 'A'}\"");
}

static void test_parse_bad_text(void **state)
{
    struct nameplate np;

    expect_bad("\"{\\\"model\\\": \\\"A\\\\u0007B\\\"}\"");    /* BEL */
    expect_bad("\"{\\\"model\\\": \\\"A\\\\nB\\\"}\"");        /* newline */
    expect_bad("\"{\\\"model\\\": \\\"A\\\\tB\\\"}\"");        /* tab */
    expect_bad("\"{\\\"model\\\": \\\"A\\\\u0000B\\\"}\"");    /* NUL */
    expect_bad("\"{\\\"model\\\": \\\"A\\\\u007fB\\\"}\"");    /* DEL */
    expect_bad("\"{\\\"model\\\": \\\"A\\\\u0085B\\\"}\"");    /* C1 */
    expect_bad("\"{\\\"serial\\\": \\\"12\\\\u202e34\\\"}\""); /* bidi override */
    expect_bad("\"{\\\"serial\\\": \\\"12\\\\u2028\\\"}\"");   /* line separator */
    expect_bad("\"{\\\"serial\\\": \\\"\\\\ud800\\\"}\"");     /* lone surrogate */
    expect_bad("\"{\\\"serial\\\": \\\"12\\\\ufeff34\\\"}\""); /* BOM, found by fuzz_llm */
    /* UTF-8 is fine: umlauts, CJK, an emoji */
    assert_int_equal(parse("\"{\\\"manufacturer\\\": \\\"M\\u00fcller \\u5de5\\u696d "
                           "\\\\ud83d\\\\udd27\\\"}\"",
                           &np),
                     0);
    assert_string_equal(np.f[NP_MANUFACTURER].value,
                        "M\xc3\xbcller \xe5\xb7\xa5\xe6\xa5\xad \xf0\x9f\x94\xa7");
}

static void test_parse_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc3",
    };
    struct nameplate np;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *lit, *body;
        int r;

        /* raw bytes inside the envelope and, separately, inside the content */
        assert_true(asprintf(&lit, "\"{\\\"model\\\": \\\"A%sB\\\"}\"", bad[i]) > 0);
        body = completion(lit);
        r = llm_parse_answer(body, strlen(body), &np, NULL);
        assert_int_equal(r, -EBADMSG);
        free(body);
        free(lit);
    }
}

static void test_parse_lengths(void **state)
{
    struct nameplate np;
    char lit[1024], *p;

    /* 150 bytes: kept, cut to NP_VALUE_MAX - 1 at a character boundary */
    p = lit + sprintf(lit, "\"{\\\"model\\\": \\\"");
    for (int i = 0; i < 75; i++)
        p += sprintf(p, "\xc3\xa9"); /* 2 bytes each */
    sprintf(p, "\\\"}\"");
    assert_int_equal(parse(lit, &np), 0);
    assert_int_equal(strlen(np.f[NP_MODEL].value), NP_VALUE_MAX - 2); /* 94: even */
    assert_int_equal(np.f[NP_MODEL].source, NP_SRC_LLM);

    /* 200 bytes: kept (cut); 201: the answer is refused */
    p = lit + sprintf(lit, "\"{\\\"serial\\\": \\\"");
    memset(p, 'S', 200);
    p += 200;
    sprintf(p, "\\\"}\"");
    assert_int_equal(parse(lit, &np), 0);
    assert_int_equal(strlen(np.f[NP_SERIAL].value), NP_VALUE_MAX - 1);
    p = lit + sprintf(lit, "\"{\\\"serial\\\": \\\"");
    memset(p, 'S', 201);
    p += 201;
    sprintf(p, "\\\"}\"");
    expect_bad(lit);
    /* surrounding spaces do not count */
    p = lit + sprintf(lit, "\"{\\\"serial\\\": \\\"      ");
    memset(p, 'S', 200);
    p += 200;
    sprintf(p, "      \\\"}\"");
    assert_int_equal(parse(lit, &np), 0);
}

static void test_parse_envelope(void **state)
{
    static const char *const bad[] = {
        "",
        "null",
        "[]",
        "{}",
        "{\"choices\": []}",
        "{\"choices\": {}}",
        "{\"choices\": [{}]}",
        "{\"choices\": [{\"message\": {}}]}",
        "{\"choices\": [{\"message\": {\"content\": null, \"refusal\": \"I can't\"}}]}",
        "{\"choices\": [{\"message\": {\"content\": {\"model\": \"A\"}}}]}",
        "{\"choices\": [{\"message\": {\"content\": [{\"type\": \"text\", \"text\": \"{}\"}]}}]}",
        "{\"choices\": [{\"message\": \"{}\"}]}",
        "{\"error\": {\"message\": \"bad\", \"type\": \"server_error\"}}",
        "{\"choices\": [{\"message\": {\"content\": \"{}\"}}]",
        "{\"choices\": [{\"message\": {\"content\": \"{}\"}}]} trailing",
    };
    struct nameplate np;
    struct llm_usage u;
    const char *ok = "{\"choices\":[{\"message\":{\"content\":\"{\\\"hz\\\":\\\"50\\\"}\"}}]}";

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = llm_parse_answer(bad[i], strlen(bad[i]), &np, &u);

        if (r != -EBADMSG)
            fail_msg("envelope %s: got %d", bad[i], r);
    }
    assert_int_equal(llm_parse_answer(NULL, 0, &np, &u), -EBADMSG);
    /* the minimum; no usage; usage may be NULL */
    memset(&u, 0, sizeof(u));
    assert_int_equal(llm_parse_answer(ok, strlen(ok), &np, &u), 0);
    assert_string_equal(np.f[NP_HZ].value, "50");
    assert_int_equal(u.prompt_tokens, 0);
    assert_int_equal(llm_parse_answer(ok, strlen(ok), &np, NULL), 0);
}

static void test_parse_usage(void **state)
{
    const char *odd = "{\"choices\":[{\"message\":{\"content\":\"{}\"}}],"
                      "\"usage\":{\"prompt_tokens\":-5,\"completion_tokens\":99999999999}}";
    const char *bad = "{\"choices\":[{\"message\":{\"content\":\"nope\"}}],"
                      "\"usage\":{\"prompt_tokens\":700,\"completion_tokens\":3}}";
    struct nameplate np;
    struct llm_usage u;

    memset(&u, 0, sizeof(u));
    assert_int_equal(llm_parse_answer(odd, strlen(odd), &np, &u), 0);
    assert_int_equal(u.prompt_tokens, 0);
    assert_int_equal(u.completion_tokens, 2147483647);
    /* an answer that is not the schema still says what it cost */
    memset(&u, 0, sizeof(u));
    assert_int_equal(llm_parse_answer(bad, strlen(bad), &np, &u), -EBADMSG);
    assert_int_equal(u.prompt_tokens, 700);
    assert_int_equal(u.completion_tokens, 3);
}

static void test_parse_failure_leaves_out(void **state)
{
    struct nameplate np;
    const char *bad = "{\"choices\":[{\"message\":{\"content\":"
                      "\"{\\\"model\\\":\\\"X\\\",\\\"hp\\\":true}\"}}]}";

    memset(&np, 0, sizeof(np));
    np_set(&np, NP_MODEL, "kept", 0.5f, NP_SRC_OCR);
    assert_int_equal(llm_parse_answer(bad, strlen(bad), &np, NULL), -EBADMSG);
    assert_string_equal(np.f[NP_MODEL].value, "kept");
    assert_int_equal(np.f[NP_MODEL].source, NP_SRC_OCR);
}

static void test_parse_depth(void **state)
{
    enum { DEPTH = 100000 };
    static char body[2 * DEPTH + 200];
    struct nameplate np;
    size_t depth = DEPTH, n = 0;

    /* deep nesting in the envelope: refused without recursing */
    n += (size_t)sprintf(body, "{\"choices\":[{\"message\":{\"content\":\"{}\"}}],\"x\":");
    memset(body + n, '[', depth);
    n += depth;
    memset(body + n, ']', depth);
    n += depth;
    body[n++] = '}';
    assert_int_equal(llm_parse_answer(body, n, &np, NULL), -EBADMSG);
    /* a little nesting in the envelope is normal */
    const char *ok = "{\"choices\":[{\"message\":{\"content\":\"{}\",\"annotations\":[],"
                     "\"tool_calls\":[{\"a\":{\"b\":[1]}}]}}],\"usage\":{\"details\":"
                     "{\"cached_tokens\":0}}}";
    assert_int_equal(llm_parse_answer(ok, strlen(ok), &np, NULL), 0);
    /* nesting in the content is refused */
    expect_bad("\"{\\\"model\\\": [[[[\\\"A\\\"]]]]}\"");
    /* brackets inside strings are text, not nesting */
    assert_int_equal(parse("\"{\\\"model\\\": \\\"[[[[{{{{A\\\"}\"", &np), 0);
    assert_string_equal(np.f[NP_MODEL].value, "[[[[{{{{A");
}

static void test_parse_size_limit(void **state)
{
    struct nameplate np;
    size_t n = LLM_MAX_RESPONSE + 1;
    char *big = malloc(n);

    assert_non_null(big);
    memset(big, ' ', n);
    assert_int_equal(llm_parse_answer(big, n, &np, NULL), -E2BIG);
    /* exactly at the limit is read (and here is not JSON) */
    assert_int_equal(llm_parse_answer(big, n - 1, &np, NULL), -EBADMSG);
    free(big);
}

static void test_parse_not_terminated(void **state)
{
    const char *s = "{\"choices\":[{\"message\":{\"content\":\"{\\\"rpm\\\":\\\"1800\\\"}\"}}]}"
                    "GARBAGE";
    struct nameplate np;
    size_t n = strlen(s) - strlen("GARBAGE");
    char *copy = malloc(n);

    /* the body is len bytes, not a C string */
    assert_non_null(copy);
    memcpy(copy, s, n);
    assert_int_equal(llm_parse_answer(copy, n, &np, NULL), 0);
    assert_string_equal(np.f[NP_RPM].value, "1800");
    free(copy);
}

/* ---- llm_parse_text ---- */

/* llm_parse_text on a completion with the given content literal, into out
 * (size outn, filled with 'Z' first). */
static int parse_text(const char *content_literal, char *out, size_t outn, struct llm_usage *u)
{
    char *body = completion(content_literal);
    int r;

    memset(out, 'Z', outn);
    memset(u, 0, sizeof(*u));
    r = llm_parse_text(body, strlen(body), out, outn, u);
    free(body);
    return r;
}

/* The content literal parses to want, whole (not truncated). */
static void expect_text(const char *content_literal, const char *want)
{
    struct llm_usage u;
    char out[512];
    int r = parse_text(content_literal, out, sizeof(out), &u);

    if (r != 0)
        fail_msg("content %s: got %d, want 0", content_literal, r);
    if (strcmp(out, want) != 0)
        fail_msg("content %s: got \"%s\", want \"%s\"", content_literal, out, want);
    assert_false(u.truncated);
}

/* The content literal, into a buffer of outn bytes, is cut to want. */
static void expect_cut(const char *content_literal, size_t outn, const char *want)
{
    struct llm_usage u;
    char out[512];
    int r;

    assert_true(outn <= sizeof(out));
    r = parse_text(content_literal, out, outn, &u);
    if (r != 0)
        fail_msg("content %s: got %d, want 0", content_literal, r);
    if (strcmp(out, want) != 0)
        fail_msg("content %s in %zu: got \"%s\", want \"%s\"", content_literal, outn, out, want);
    assert_true(strlen(out) < outn);
    assert_true(utf8_valid(out, strlen(out)));
    assert_true(u.truncated);
}

static void expect_bad_text(const char *content_literal)
{
    struct llm_usage u;
    char out[64];
    int r = parse_text(content_literal, out, sizeof(out), &u);

    if (r != -EBADMSG)
        fail_msg("content %s: got %d, want -EBADMSG", content_literal, r);
    assert_int_equal(out[0], 'Z'); /* out untouched */
}

static void test_text_good(void **state)
{
    struct llm_usage u;
    char out[256];

    assert_int_equal(parse_text("\"Check the overload relay setting first.\\n\\n"
                                "1. Measure the current on each phase.\\n"
                                "2. Compare with the nameplate FLA (15.6 A).\"",
                                out, sizeof(out), &u),
                     0);
    assert_string_equal(out, "Check the overload relay setting first.\n\n"
                             "1. Measure the current on each phase.\n"
                             "2. Compare with the nameplate FLA (15.6 A).");
    assert_int_equal(u.prompt_tokens, 1234);
    assert_int_equal(u.completion_tokens, 56);
    assert_false(u.truncated);
    /* UTF-8 and tabs are kept, white space around the whole is trimmed */
    expect_text("\"  \\n\\t Der L\\u00fcfter l\\u00e4uft \\u2014 \\u5de5\\u696d "
                "\\ud83d\\udd27\\tok \\n\\n\"",
                "Der L\xc3\xbc"
                "fter l\xc3\xa4uft \xe2\x80\x94 \xe5\xb7\xa5\xe6\xa5\xad "
                "\xf0\x9f\x94\xa7\tok");
    /* fences and markup are the caller's business: kept as they are */
    expect_text("\"Run:\\n```\\nmegger 500V L1-PE\\n```\\n**Above 1 M\\u03a9** is fine.\"",
                "Run:\n```\nmegger 500V L1-PE\n```\n**Above 1 M\xce\xa9** is fine.");
    /* usage may be NULL; exactly filling the buffer is not a cut */
    {
        const char *body = "{\"choices\":[{\"message\":{\"content\":\"abcdefg\"}}]}";
        char small[LLM_MIN_ANSWER];

        assert_int_equal(llm_parse_text(body, strlen(body), small, sizeof(small), NULL), 0);
        assert_string_equal(small, "abcdefg");
    }
}

static void test_text_cut(void **state)
{
    /* at the last sentence end that fits */
    expect_cut("\"Check the fuse first. Then reset the drive and watch the current.\"", 40,
               "Check the fuse first.\xe2\x80\xa6");
    /* at the last line end */
    expect_cut("\"Step 1: isolate\\nStep 2: measure the winding resistance\"", 30,
               "Step 1: isolate\xe2\x80\xa6");
    /* a fenced answer too: at a line end inside the fence */
    expect_cut("\"```\\nline one\\nline two\\nline three\\n```\"", 30,
               "```\nline one\nline two\xe2\x80\xa6");
    /* no sentence or line end in the last half: at a space */
    expect_cut("\"Measure insulation resistance between windings\"", 30,
               "Measure insulation\xe2\x80\xa6");
    /* no space either: at a character boundary, never inside one */
    expect_cut("\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"", 12,
               "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xe2\x80\xa6");
    expect_cut("\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"", 13,
               "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xe2\x80\xa6");
    /* an ideographic full stop ends a sentence */
    expect_cut("\"\\u68c0\\u67e5\\u4fdd\\u9669\\u4e1d\\u3002\\u7136\\u540e\\u91cd\\u7f6e\\u9a71"
               "\\u52a8\\u5668\\u3002\"",
               30,
               "\xe6\xa3\x80\xe6\x9f\xa5\xe4\xbf\x9d\xe9\x99\xa9\xe4\xb8\x9d\xe3\x80\x82"
               "\xe2\x80\xa6");
    /* the smallest buffer */
    expect_cut("\"Replace the bearing.\"", LLM_MIN_ANSWER, "Repl\xe2\x80\xa6");
}

static void test_text_long(void **state)
{
    enum { OUTN = 4096 };
    static char lit[64 * 1024], out[OUTN];
    struct llm_usage u;
    char *p = lit;
    size_t n;

    /* a long answer of numbered lines, a few multi-byte characters each */
    *p++ = '"';
    for (int i = 1; i <= 400; i++)
        p += sprintf(p, "%d. Pr\\u00fcfe Kontakt %d, dann weiter.\\n", i, i);
    strcpy(p, "\"");
    assert_int_equal(parse_text(lit, out, sizeof(out), &u), 0);
    assert_true(u.truncated);
    n = strlen(out);
    assert_true(n < OUTN && n > OUTN / 2);
    assert_true(utf8_valid(out, n));
    /* cut after a whole line, the ellipsis at the end */
    assert_string_equal(out + n - 3, "\xe2\x80\xa6");
    assert_memory_equal(out + n - 3 - strlen("dann weiter."), "dann weiter.", 12);
}

static void test_text_empty(void **state)
{
    expect_bad_text("\"\"");
    expect_bad_text("\"   \"");
    expect_bad_text("\" \\n\\n\\t \\r\\n \"");
    expect_bad_text("\"\\u0007\\u001b\\u202e\\ufeff\\r\\u0000\""); /* only dropped ones */
}

static void test_text_envelope(void **state)
{
    static const char *const bad[] = {
        "",
        "null",
        "[]",
        "{}",
        "{\"choices\": []}",
        "{\"choices\": {}}",
        "{\"choices\": [{}]}",
        "{\"choices\": [{\"message\": {}}]}",
        "{\"choices\": [{\"message\": \"hi\"}]}",
        "{\"choices\": [{\"message\": {\"content\": null, \"refusal\": \"I can't\"}}]}",
        "{\"choices\": [{\"message\": {\"content\": 42}}]}",
        "{\"choices\": [{\"message\": {\"content\": true}}]}",
        "{\"choices\": [{\"message\": {\"content\": {\"text\": \"hi\"}}}]}",
        "{\"choices\": [{\"message\": {\"content\": [{\"type\": \"text\", \"text\": \"hi\"}]}}]}",
        "{\"error\": {\"message\": \"bad\", \"type\": \"server_error\"}}",
        "{\"choices\": [{\"message\": {\"content\": \"hi\"}}]",
        "{\"choices\": [{\"message\": {\"content\": \"hi\"}}]} trailing",
        "{\"object\": \"chat.completion\", \"usage\": {\"prompt_tokens\": 5}}",
    };
    const char *ok = "{\"choices\":[{\"message\":{\"content\":\"hi\"}}]}";
    struct llm_usage u;
    char out[64];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r;

        memset(out, 'Z', sizeof(out));
        r = llm_parse_text(bad[i], strlen(bad[i]), out, sizeof(out), &u);
        if (r != -EBADMSG)
            fail_msg("envelope %s: got %d", bad[i], r);
        assert_int_equal(out[0], 'Z');
    }
    assert_int_equal(llm_parse_text(NULL, 0, out, sizeof(out), &u), -EBADMSG);
    /* the buffer must hold a few bytes and the ellipsis */
    assert_int_equal(llm_parse_text(ok, strlen(ok), NULL, 64, &u), -EINVAL);
    assert_int_equal(llm_parse_text(ok, strlen(ok), out, LLM_MIN_ANSWER - 1, &u), -EINVAL);
    assert_int_equal(llm_parse_text(ok, strlen(ok), out, 0, &u), -EINVAL);
    assert_int_equal(llm_parse_text(ok, strlen(ok), out, sizeof(out), &u), 0);
    assert_string_equal(out, "hi");
}

static void test_text_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc3",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *lit;

        assert_true(asprintf(&lit, "\"ok %s ok\"", bad[i]) > 0);
        expect_bad_text(lit);
        free(lit);
    }
    expect_bad_text("\"lone \\ud800 surrogate\"");
}

static void test_text_control(void **state)
{
    /* C0 (NUL, BEL, ESC, CR), DEL, C1, bidi overrides and isolates, BOM: dropped */
    expect_text("\"a\\u0000b\\u0007c\\u001b[31md\\r\\ne\\u007ff\\u0085g\\u009fh\"",
                "abc[31md\nefgh");
    expect_text("\"serial 12\\u202e34\\u2066x\\u2069 \\ufeffok\"", "serial 1234x ok");
    /* tabs and newlines stay; line and paragraph separators become newlines */
    expect_text("\"a\\tb\\nc\\u2028d\\u2029e\"", "a\tb\nc\nd\ne");
    /* a zero-width joiner is not a control character */
    expect_text("\"\\ud83d\\udc69\\u200d\\ud83d\\udd27\"",
                "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x94\xa7");
}

static void test_text_blank_lines(void **state)
{
    /* two blank lines in a row are kept, more become two */
    expect_text("\"a\\n\\nb\"", "a\n\nb");
    expect_text("\"a\\n\\n\\nb\"", "a\n\n\nb");
    expect_text("\"a\\n\\n\\n\\n\\n\\n\\nb\"", "a\n\n\nb");
    /* lines of only spaces and tabs are blank */
    expect_text("\"a\\n \\n\\t\\n  \\t \\n\\nb\\n   \\nc\"", "a\n\n\nb\n\nc");
    /* \r\n line ends count the same */
    expect_text("\"a\\r\\n\\r\\n\\r\\n\\r\\n\\r\\nb\"", "a\n\n\nb");
    /* indentation inside a line is kept */
    expect_text("\"x:\\n    indented\\n\\tdone\"", "x:\n    indented\n\tdone");
}

static void test_text_oversize(void **state)
{
    size_t n = LLM_MAX_RESPONSE + 1;
    char *big = malloc(n), out[64];
    struct llm_usage u;

    assert_non_null(big);
    memset(big, ' ', n);
    assert_int_equal(llm_parse_text(big, n, out, sizeof(out), &u), -E2BIG);
    assert_int_equal(llm_parse_text(big, n - 1, out, sizeof(out), &u), -EBADMSG);
    free(big);
}

static void test_text_finish_length(void **state)
{
    const char *body = "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                       "\"content\":\"Check the fuse. Then\"},\"finish_reason\":\"length\"}],"
                       "\"usage\":{\"prompt_tokens\":90,\"completion_tokens\":5}}";
    const char *empty = "{\"choices\":[{\"message\":{\"content\":\"\"},"
                        "\"finish_reason\":\"length\"}],"
                        "\"usage\":{\"prompt_tokens\":90,\"completion_tokens\":400}}";
    struct llm_usage u;
    char out[64];

    /* the provider stopped at max_tokens: the text as it came, marked */
    memset(&u, 0, sizeof(u));
    assert_int_equal(llm_parse_text(body, strlen(body), out, sizeof(out), &u), 0);
    assert_string_equal(out, "Check the fuse. Then");
    assert_true(u.truncated);
    assert_int_equal(u.prompt_tokens, 90);
    assert_int_equal(u.completion_tokens, 5);
    /* nothing but the limit: an error that still says what it cost */
    memset(&u, 0, sizeof(u));
    assert_int_equal(llm_parse_text(empty, strlen(empty), out, sizeof(out), &u), -EBADMSG);
    assert_int_equal(u.completion_tokens, 400);
    assert_true(u.truncated);
    /* and "stop" is not a cut */
    expect_text("\"Done.\"", "Done.");
}

static void test_text_depth_and_length(void **state)
{
    enum { DEPTH = 100000 };
    static char body[2 * DEPTH + 200];
    const char *s = "{\"choices\":[{\"message\":{\"content\":\"kept\"}}]}GARBAGE";
    size_t n = 0;
    char out[64];

    /* deep nesting: refused without recursing */
    n += (size_t)sprintf(body, "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"x\":");
    memset(body + n, '[', DEPTH);
    n += DEPTH;
    memset(body + n, ']', DEPTH);
    n += DEPTH;
    body[n++] = '}';
    assert_int_equal(llm_parse_text(body, n, out, sizeof(out), NULL), -EBADMSG);
    /* the body is len bytes, not a C string */
    assert_int_equal(llm_parse_text(s, strlen(s) - strlen("GARBAGE"), out, sizeof(out), NULL), 0);
    assert_string_equal(out, "kept");
}

/* ---- llm_config_load ---- */

static const char *const *env_table;

static const char *fake_getenv(const char *name)
{
    for (const char *const *e = env_table; e && *e; e += 2)
        if (strcmp(e[0], name) == 0)
            return e[1];
    return NULL;
}

static int load(const char *const *table, struct llm_provider *p, int max, char *err, size_t n)
{
    env_table = table;
    memset(p, 0x5a, sizeof(*p) * (size_t)(max > 0 ? max : 1));
    err[0] = '\0';
    return llm_config_load(fake_getenv, p, max, err, n);
}

static void expect_einval(const char *const *table, const char *names, const char *secret)
{
    struct llm_provider p[LLM_MAX_PROVIDERS];
    char err[256];
    int r = load(table, p, LLM_MAX_PROVIDERS, err, sizeof(err));

    if (r != -EINVAL)
        fail_msg("got %d, want -EINVAL (%s)", r, err);
    if (!strstr(err, names))
        fail_msg("err \"%s\" does not name %s", err, names);
    if (secret && strstr(err, secret))
        fail_msg("err \"%s\" shows the value", err);
}

static void test_config_none(void **state)
{
    static const char *const empty[] = {NULL};
    static const char *const blank[] = {"LLM_URL", "", "LLM_PROVIDERS", "", NULL};
    static const char *const key_only[] = {"LLM_API_KEY", "sk-x", NULL};
    struct llm_provider p[LLM_MAX_PROVIDERS];
    char err[128];

    assert_int_equal(load(empty, p, LLM_MAX_PROVIDERS, err, sizeof(err)), 0);
    assert_int_equal(load(blank, p, LLM_MAX_PROVIDERS, err, sizeof(err)), 0);
    assert_int_equal(load(key_only, p, LLM_MAX_PROVIDERS, err, sizeof(err)), 0);
}

static void test_config_default(void **state)
{
    static const char *const minimal[] = {"LLM_URL", "http://127.0.0.1:11434/v1///", "LLM_MODEL",
                                          "llava", NULL};
    static const char *const full[] = {"LLM_URL",
                                       "https://api.openai.com/v1",
                                       "LLM_MODEL",
                                       "gpt-4o-mini",
                                       "LLM_API_KEY",
                                       "sk-abc123",
                                       "LLM_TIMEOUT_S",
                                       "300",
                                       "LLM_PRICE_IN",
                                       "0.15",
                                       "LLM_PRICE_OUT",
                                       "0.6",
                                       NULL};
    struct llm_provider p[LLM_MAX_PROVIDERS];
    char err[128];

    assert_int_equal(load(minimal, p, LLM_MAX_PROVIDERS, err, sizeof(err)), 1);
    assert_string_equal(p[0].name, "default");
    assert_string_equal(p[0].url, "http://127.0.0.1:11434/v1");
    assert_string_equal(p[0].model, "llava");
    assert_string_equal(p[0].api_key, "");
    assert_int_equal(p[0].timeout_ms, 30000);
    assert_float_equal(p[0].usd_per_mtok_in, 0, 0);
    assert_float_equal(p[0].usd_per_mtok_out, 0, 0);

    assert_int_equal(load(full, p, LLM_MAX_PROVIDERS, err, sizeof(err)), 1);
    assert_string_equal(p[0].url, "https://api.openai.com/v1");
    assert_string_equal(p[0].model, "gpt-4o-mini");
    assert_string_equal(p[0].api_key, "sk-abc123");
    assert_int_equal(p[0].timeout_ms, 300000);
    assert_float_equal(p[0].usd_per_mtok_in, 0.15, 1e-12);
    assert_float_equal(p[0].usd_per_mtok_out, 0.6, 1e-12);
}

static void test_config_default_errors(void **state)
{
    static const char *const no_model[] = {"LLM_URL", "http://h/v1", NULL};
    static const char *const no_url[] = {"LLM_MODEL", "m", NULL};
    static const char *const ftp[] = {"LLM_URL", "ftp://secret-host/v1", "LLM_MODEL", "m", NULL};
    static const char *const scheme_only[] = {"LLM_URL", "https://", "LLM_MODEL", "m", NULL};
    static const char *const space[] = {"LLM_URL", "http://h/v 1", "LLM_MODEL", "m", NULL};
    static const char *const key_nl[] = {
        "LLM_URL", "http://h", "LLM_MODEL", "m", "LLM_API_KEY", "sk-SECRET\r\nX-A: b", NULL};
    static const char *const t0[] = {"LLM_URL",       "http://h", "LLM_MODEL", "m",
                                     "LLM_TIMEOUT_S", "0",        NULL};
    static const char *const t301[] = {"LLM_URL",       "http://h", "LLM_MODEL", "m",
                                       "LLM_TIMEOUT_S", "301",      NULL};
    static const char *const t_unit[] = {"LLM_URL",       "http://h", "LLM_MODEL", "m",
                                         "LLM_TIMEOUT_S", "10s",      NULL};
    static const char *const price_neg[] = {"LLM_URL",      "http://h", "LLM_MODEL", "m",
                                            "LLM_PRICE_IN", "-1",       NULL};
    static const char *const price_txt[] = {"LLM_URL",       "http://h", "LLM_MODEL", "m",
                                            "LLM_PRICE_OUT", "cheap",    NULL};
    static const char *const price_inf[] = {"LLM_URL",      "http://h", "LLM_MODEL", "m",
                                            "LLM_PRICE_IN", "inf",      NULL};
    static char long_url[600], long_model[200];
    const char *const too_long_url[] = {"LLM_URL", long_url, "LLM_MODEL", "m", NULL};
    const char *const too_long_model[] = {"LLM_URL", "http://h", "LLM_MODEL", long_model, NULL};

    expect_einval(no_model, "LLM_MODEL", NULL);
    expect_einval(no_url, "LLM_URL", NULL);
    expect_einval(ftp, "LLM_URL", "secret-host");
    expect_einval(scheme_only, "LLM_URL", NULL);
    expect_einval(space, "LLM_URL", NULL);
    expect_einval(key_nl, "LLM_API_KEY", "SECRET");
    expect_einval(t0, "LLM_TIMEOUT_S", NULL);
    expect_einval(t301, "LLM_TIMEOUT_S", NULL);
    expect_einval(t_unit, "LLM_TIMEOUT_S", NULL);
    expect_einval(price_neg, "LLM_PRICE_IN", NULL);
    expect_einval(price_txt, "LLM_PRICE_OUT", "cheap");
    expect_einval(price_inf, "LLM_PRICE_IN", NULL);
    memcpy(long_url, "http://", 7);
    memset(long_url + 7, 'h', sizeof(long_url) - 8);
    expect_einval(too_long_url, "LLM_URL", NULL);
    memset(long_model, 'm', sizeof(long_model) - 1);
    expect_einval(too_long_model, "LLM_MODEL", NULL);
}

static void test_config_chain(void **state)
{
    static const char *const chain[] = {"LLM_PROVIDERS",
                                        " groq , local_2",
                                        "LLM_GROQ_URL",
                                        "https://api.groq.com/openai/v1/",
                                        "LLM_GROQ_MODEL",
                                        "llama-vision",
                                        "LLM_GROQ_API_KEY",
                                        "gsk_xyz",
                                        "LLM_GROQ_TIMEOUT_S",
                                        "20",
                                        "LLM_GROQ_PRICE_IN",
                                        "0.18",
                                        "LLM_LOCAL_2_URL",
                                        "http://127.0.0.1:8080/v1",
                                        "LLM_LOCAL_2_MODEL",
                                        "qwen2-vl",
                                        "LLM_URL",
                                        "http://ignored/v1",
                                        "LLM_MODEL",
                                        "ignored",
                                        NULL};
    struct llm_provider p[LLM_MAX_PROVIDERS];
    char err[128];

    assert_int_equal(load(chain, p, LLM_MAX_PROVIDERS, err, sizeof(err)), 2);
    assert_string_equal(p[0].name, "groq");
    assert_string_equal(p[0].url, "https://api.groq.com/openai/v1");
    assert_string_equal(p[0].model, "llama-vision");
    assert_string_equal(p[0].api_key, "gsk_xyz");
    assert_int_equal(p[0].timeout_ms, 20000);
    assert_float_equal(p[0].usd_per_mtok_in, 0.18, 1e-12);
    assert_float_equal(p[0].usd_per_mtok_out, 0, 0);
    assert_string_equal(p[1].name, "local_2");
    assert_string_equal(p[1].url, "http://127.0.0.1:8080/v1");
    assert_string_equal(p[1].model, "qwen2-vl");
    assert_string_equal(p[1].api_key, "");
    assert_int_equal(p[1].timeout_ms, 30000);

    /* room for one only */
    assert_int_equal(load(chain, p, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "LLM_PROVIDERS"));
}

static void test_config_chain_errors(void **state)
{
    static const char *const no_url[] = {"LLM_PROVIDERS", "a,b",         "LLM_A_URL",
                                         "http://a",      "LLM_A_MODEL", "m",
                                         "LLM_B_MODEL",   "m",           NULL};
    static const char *const no_model[] = {"LLM_PROVIDERS", "a", "LLM_A_URL", "http://a", NULL};
    static const char *const bad_name[] = {"LLM_PROVIDERS", "a-b", NULL};
    static const char *const empty_name[] = {"LLM_PROVIDERS", "a,,b", NULL};
    static const char *const trailing[] = {"LLM_PROVIDERS", "a,", NULL};
    static const char *const long_name[] = {"LLM_PROVIDERS", "abcdefghijklmnopqrstuvwxyz012345",
                                            NULL};
    static const char *const twice[] = {"LLM_PROVIDERS", "a,A", "LLM_A_URL", "http://a",
                                        "LLM_A_MODEL",   "m",   NULL};
    static const char *const five[] = {
        "LLM_PROVIDERS", "a,b,c,d,e", "LLM_A_URL",   "http://a", "LLM_A_MODEL", "m",
        "LLM_B_URL",     "http://b",  "LLM_B_MODEL", "m",        "LLM_C_URL",   "http://c",
        "LLM_C_MODEL",   "m",         "LLM_D_URL",   "http://d", "LLM_D_MODEL", "m",
        "LLM_E_URL",     "http://e",  "LLM_E_MODEL", "m",        NULL};
    static const char *const bad_timeout[] = {"LLM_PROVIDERS",   "x",           "LLM_X_URL",
                                              "http://x",        "LLM_X_MODEL", "m",
                                              "LLM_X_TIMEOUT_S", "abc",         NULL};

    expect_einval(no_url, "LLM_B_URL", NULL);
    expect_einval(no_model, "LLM_A_MODEL", NULL);
    expect_einval(bad_name, "LLM_PROVIDERS", NULL);
    expect_einval(empty_name, "LLM_PROVIDERS", NULL);
    expect_einval(trailing, "LLM_PROVIDERS", NULL);
    expect_einval(long_name, "LLM_PROVIDERS", NULL);
    expect_einval(twice, "LLM_PROVIDERS", NULL);
    expect_einval(five, "LLM_PROVIDERS", NULL);
    expect_einval(bad_timeout, "LLM_X_TIMEOUT_S", NULL);
}

static void test_config_four(void **state)
{
    static const char *const four[] = {"LLM_PROVIDERS", "a,b,c,d", "LLM_A_URL", "http://a",
                                       "LLM_A_MODEL",   "m",       "LLM_B_URL", "http://b",
                                       "LLM_B_MODEL",   "m",       "LLM_C_URL", "http://c",
                                       "LLM_C_MODEL",   "m",       "LLM_D_URL", "http://d",
                                       "LLM_D_MODEL",   "m",       NULL};
    static const char *const name31[] = {"LLM_PROVIDERS",
                                         "abcdefghijklmnopqrstuvwxyz01234",
                                         "LLM_ABCDEFGHIJKLMNOPQRSTUVWXYZ01234_URL",
                                         "http://x",
                                         "LLM_ABCDEFGHIJKLMNOPQRSTUVWXYZ01234_MODEL",
                                         "m",
                                         NULL};
    struct llm_provider p[LLM_MAX_PROVIDERS];
    char err[128];

    assert_int_equal(load(four, p, LLM_MAX_PROVIDERS, err, sizeof(err)), 4);
    assert_string_equal(p[3].name, "d");
    assert_string_equal(p[3].url, "http://d");
    assert_int_equal(load(name31, p, LLM_MAX_PROVIDERS, err, sizeof(err)), 1);
    assert_string_equal(p[0].name, "abcdefghijklmnopqrstuvwxyz01234");
}

/* ---- the client without a server ---- */

static void test_client_without_network(void **state)
{
    struct llm_provider p = {
        .name = "x", .url = "http://127.0.0.1:9/v1", .model = "m", .timeout_ms = 1000};
    static const unsigned char img[] = {0xff, 0xd8, 0xff, 0xe0, 0, 0};
    volatile int stop = 1;
    struct nameplate np;
    struct llm_usage u;
    struct llm *l = NULL;
    char err[160];

    assert_int_equal(llm_new(&p, LLM_MAX_PROVIDERS + 1, NULL, &l), -EINVAL);
    llm_free(NULL);

    assert_int_equal(llm_new(NULL, 0, NULL, &l), 0);
    assert_int_equal(
        llm_read_nameplate(l, img, sizeof(img), "image/jpeg", &np, &u, err, sizeof(err)), -ENOENT);
    assert_int_equal(u.attempts, 0);
    assert_string_equal(u.provider, "");
    llm_free(l);

    assert_int_equal(llm_new(&p, 1, &stop, &l), 0);
    assert_int_equal(
        llm_read_nameplate(l, img, sizeof(img), "image/webp", &np, &u, err, sizeof(err)), -EINVAL);
    assert_int_equal(llm_read_nameplate(l, img, 0, "image/jpeg", &np, &u, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(llm_read_nameplate(l, img, (size_t)LLM_MAX_IMAGE + 1, "image/jpeg", &np, &u,
                                        err, sizeof(err)),
                     -E2BIG);
    /* stopped: nothing is sent */
    assert_int_equal(
        llm_read_nameplate(l, img, sizeof(img), "image/jpeg", &np, &u, err, sizeof(err)),
        -ECANCELED);
    assert_int_equal(u.attempts, 0);
    llm_free(l);
    assert_non_null(strstr(llm_http_version(), "libcurl"));
}

static void test_chat_without_network(void **state)
{
    struct llm_provider p = {
        .name = "x", .url = "http://127.0.0.1:9/v1", .model = "m", .timeout_ms = 1000};
    volatile int stop = 1;
    struct llm_usage u;
    struct llm *l = NULL;
    char err[160], answer[64], *big;

    assert_int_equal(llm_new(NULL, 0, NULL, &l), 0);
    memset(&u, 0x5a, sizeof(u));
    assert_int_equal(llm_chat(l, "sys", "why?", 100, answer, sizeof(answer), &u, err, sizeof(err)),
                     -ENOENT);
    assert_int_equal(u.attempts, 0);
    assert_string_equal(u.provider, "");
    assert_false(u.truncated);
    llm_free(l);
    assert_int_equal(llm_chat(NULL, "sys", "why?", 100, answer, sizeof(answer), NULL, NULL, 0),
                     -ENOENT);

    /* stopped, so that nothing could be sent even if the checks let it by */
    assert_int_equal(llm_new(&p, 1, &stop, &l), 0);
    memset(answer, 'Z', sizeof(answer));
    assert_int_equal(llm_chat(l, "sys", NULL, 100, answer, sizeof(answer), &u, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(llm_chat(l, "sys", "", 100, answer, sizeof(answer), &u, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(llm_chat(l, "sys", "why?", 0, answer, sizeof(answer), &u, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(llm_chat(l, "sys", "why?", LLM_MAX_CHAT_TOKENS + 1, answer, sizeof(answer), &u,
                              err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(llm_chat(l, "sys", "why?", 100, NULL, sizeof(answer), &u, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(
        llm_chat(l, "sys", "why?", 100, answer, LLM_MIN_ANSWER - 1, &u, err, sizeof(err)), -EINVAL);
    assert_int_equal(
        llm_chat(l, "sys", "wh\xffy?", 100, answer, sizeof(answer), &u, err, sizeof(err)), -EINVAL);
    assert_int_equal(
        llm_chat(l, "s\xc3", "why?", 100, answer, sizeof(answer), &u, err, sizeof(err)), -EINVAL);
    assert_null(strstr(err, "s\xc3"));
    /* the prompt limit counts system and user together */
    big = malloc(LLM_MAX_PROMPT + 2);
    assert_non_null(big);
    memset(big, 'q', LLM_MAX_PROMPT + 1);
    big[LLM_MAX_PROMPT + 1] = '\0';
    assert_int_equal(llm_chat(l, NULL, big, 100, answer, sizeof(answer), &u, err, sizeof(err)),
                     -E2BIG);
    assert_null(strstr(err, "qqq"));
    big[LLM_MAX_PROMPT - 2] = '\0';
    assert_int_equal(llm_chat(l, "abc", big, 100, answer, sizeof(answer), &u, err, sizeof(err)),
                     -E2BIG);
    assert_int_equal(llm_chat(l, "ab", big, 100, answer, sizeof(answer), &u, err, sizeof(err)),
                     -ECANCELED);
    free(big);
    /* a good call, stopped: nothing is sent */
    assert_int_equal(llm_chat(l, NULL, "why?", LLM_MAX_CHAT_TOKENS, answer, LLM_MIN_ANSWER, &u, err,
                              sizeof(err)),
                     -ECANCELED);
    assert_string_equal(err, "cancelled");
    assert_int_equal(u.attempts, 0);
    assert_int_equal(answer[0], 'Z'); /* written only on success */
    llm_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_parse_numbers),
        cmocka_unit_test(test_parse_not_read),
        cmocka_unit_test(test_parse_trim_and_unknown),
        cmocka_unit_test(test_parse_fences),
        cmocka_unit_test(test_parse_wrong_types),
        cmocka_unit_test(test_parse_not_an_object),
        cmocka_unit_test(test_parse_bad_text),
        cmocka_unit_test(test_parse_invalid_utf8),
        cmocka_unit_test(test_parse_lengths),
        cmocka_unit_test(test_parse_envelope),
        cmocka_unit_test(test_parse_usage),
        cmocka_unit_test(test_parse_failure_leaves_out),
        cmocka_unit_test(test_parse_depth),
        cmocka_unit_test(test_parse_size_limit),
        cmocka_unit_test(test_parse_not_terminated),
        cmocka_unit_test(test_text_good),
        cmocka_unit_test(test_text_cut),
        cmocka_unit_test(test_text_long),
        cmocka_unit_test(test_text_empty),
        cmocka_unit_test(test_text_envelope),
        cmocka_unit_test(test_text_invalid_utf8),
        cmocka_unit_test(test_text_control),
        cmocka_unit_test(test_text_blank_lines),
        cmocka_unit_test(test_text_oversize),
        cmocka_unit_test(test_text_finish_length),
        cmocka_unit_test(test_text_depth_and_length),
        cmocka_unit_test(test_config_none),
        cmocka_unit_test(test_config_default),
        cmocka_unit_test(test_config_default_errors),
        cmocka_unit_test(test_config_chain),
        cmocka_unit_test(test_config_chain_errors),
        cmocka_unit_test(test_config_four),
        cmocka_unit_test(test_client_without_network),
        cmocka_unit_test(test_chat_without_network),
    };
    int r;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    r = cmocka_run_group_tests_name("llm", tests, NULL, NULL);
    curl_global_cleanup();
    return r;
}
