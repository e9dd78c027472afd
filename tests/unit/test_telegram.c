/* The Telegram channel's pure parts: Update parsing, HTML escaping,
 * splitting at Telegram's length limit, inline keyboards. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "arena.h"
#include "handlers.h"
#include "text.h"
#include "tg.h"

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

static int parse(struct arena *a, const char *json, struct tg_update *u)
{
    json_error_t err;
    json_t *root = json_loads(json, 0, &err);
    int r;

    assert_non_null(root);
    r = tg_update_parse(a, root, u);
    json_decref(root);
    return r;
}

static void test_text_message(void **state)
{
    struct tg_update u;

    assert_int_equal(parse(*state,
                           "{\"update_id\":7,\"message\":{\"message_id\":3,\"date\":1,"
                           "\"chat\":{\"id\":42,\"type\":\"private\"},"
                           "\"from\":{\"id\":42,\"is_bot\":false,\"first_name\":\"Ann\","
                           "\"last_name\":\"Lee\"},\"text\":\"/equip list\"}}",
                           &u),
                     0);
    assert_int_equal(u.update_id, 7);
    assert_int_equal(u.kind, TG_MESSAGE);
    assert_int_equal(u.chat_id, 42);
    assert_string_equal(u.chat_type, "private");
    assert_int_equal(u.from_id, 42);
    assert_false(u.from_bot);
    assert_string_equal(u.from_name, "Ann Lee");
    assert_int_equal(u.message_id, 3);
    assert_string_equal(u.text, "/equip list");
    assert_int_equal(u.text_len, 11);
    assert_null(u.media);
    assert_int_equal(u.reply_to, 0);

    /* A reply: the message it answers (plain words read it in context). */
    assert_int_equal(parse(*state,
                           "{\"update_id\":8,\"message\":{\"message_id\":4,\"date\":1,"
                           "\"chat\":{\"id\":42,\"type\":\"private\"},"
                           "\"from\":{\"id\":42,\"is_bot\":false,\"first_name\":\"Ann\"},"
                           "\"reply_to_message\":{\"message_id\":77,\"date\":1,"
                           "\"chat\":{\"id\":42,\"type\":\"private\"},\"text\":\"WO\"},"
                           "\"text\":\"done\"}}",
                           &u),
                     0);
    assert_int_equal(u.reply_to, 77);
    assert_string_equal(u.text, "done");
    /* A reply_to_message that is not an object is no reply. */
    assert_int_equal(parse(*state,
                           "{\"update_id\":9,\"message\":{\"message_id\":5,\"date\":1,"
                           "\"chat\":{\"id\":42,\"type\":\"private\"},"
                           "\"from\":{\"id\":42,\"is_bot\":false,\"first_name\":\"Ann\"},"
                           "\"reply_to_message\":77,\"text\":\"done\"}}",
                           &u),
                     0);
    assert_int_equal(u.reply_to, 0);
}

static void test_callback(void **state)
{
    struct tg_update u;

    assert_int_equal(parse(*state,
                           "{\"update_id\":8,\"callback_query\":{\"id\":\"cb1\","
                           "\"from\":{\"id\":5,\"is_bot\":false,\"first_name\":\"Bo\"},"
                           "\"message\":{\"message_id\":9,\"chat\":{\"id\":-100,\"type\":"
                           "\"group\"}},\"data\":\"~/equip list 2\"}}",
                           &u),
                     0);
    assert_int_equal(u.kind, TG_CALLBACK);
    assert_string_equal(u.callback_id, "cb1");
    assert_string_equal(u.callback_data, "~/equip list 2");
    assert_int_equal(u.chat_id, -100);
    assert_int_equal(u.message_id, 9);
    assert_int_equal(u.from_id, 5);

    /* A press on a message too old to come along: no chat, still valid. */
    assert_int_equal(parse(*state,
                           "{\"update_id\":9,\"callback_query\":{\"id\":\"cb2\","
                           "\"from\":{\"id\":5,\"is_bot\":false,\"first_name\":\"Bo\"}}}",
                           &u),
                     0);
    assert_int_equal(u.chat_id, 0);
    assert_null(u.callback_data);
}

static void test_kinds(void **state)
{
    struct tg_update u;

    assert_int_equal(parse(*state,
                           "{\"update_id\":1,\"edited_message\":{\"message_id\":1,"
                           "\"chat\":{\"id\":1,\"type\":\"private\"},\"from\":{\"id\":1},"
                           "\"text\":\"x\"}}",
                           &u),
                     0);
    assert_int_equal(u.kind, TG_EDITED);
    assert_int_equal(parse(*state,
                           "{\"update_id\":2,\"my_chat_member\":{\"chat\":{\"id\":1,\"type\":"
                           "\"private\"},\"from\":{\"id\":1},\"new_chat_member\":{\"status\":"
                           "\"kicked\"}}}",
                           &u),
                     0);
    assert_int_equal(u.kind, TG_MEMBER);
    assert_string_equal(u.member_status, "kicked");
    assert_int_equal(parse(*state, "{\"update_id\":3,\"poll\":{\"id\":\"p\"}}", &u), 0);
    assert_int_equal(u.kind, TG_OTHER);
    assert_int_equal(parse(*state,
                           "{\"update_id\":4,\"message\":{\"message_id\":1,\"chat\":{\"id\":1,"
                           "\"type\":\"private\"},\"from\":{\"id\":1},\"sticker\":{},"
                           "\"caption\":\"hi\"}}",
                           &u),
                     0);
    assert_string_equal(u.media, "sticker");
    assert_string_equal(u.text, "hi");
}

static void test_bad_updates(void **state)
{
    static const char *const bad[] = {
        "{}",
        "[]",
        "{\"update_id\":\"7\"}",
        "{\"update_id\":-1}",
        "{\"update_id\":1,\"message\":{\"chat\":{\"id\":\"x\",\"type\":\"private\"}}}",
        "{\"update_id\":1,\"message\":{\"chat\":{\"id\":1}}}",
        "{\"update_id\":1,\"message\":{\"chat\":{\"id\":1,\"type\":\"private\"},\"from\":{},"
        "\"text\":\"x\"}}",
        "{\"update_id\":1,\"message\":{\"chat\":{\"id\":1,\"type\":\"private\"},\"from\":{\"id\":"
        "1},\"text\":5}}",
        "{\"update_id\":1,\"callback_query\":{\"from\":{\"id\":1}}}",
        "{\"update_id\":1,\"callback_query\":{\"id\":\"c\"}}",
    };
    struct tg_update u;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_error_t err;
        json_t *root = json_loads(bad[i], JSON_DECODE_ANY, &err);
        assert_non_null(root);
        assert_int_equal(tg_update_parse(*state, root, &u), -EBADMSG);
        json_decref(root);
    }
}

static void test_update_chat(void **state)
{
    char buf[32];
    json_error_t err;
    json_t *u = json_loads("{\"update_id\":1,\"callback_query\":{\"id\":\"c\",\"message\":"
                           "{\"chat\":{\"id\":-1001234,\"type\":\"supergroup\"}}}}",
                           0, &err);

    tg_update_chat(u, buf, sizeof(buf));
    assert_string_equal(buf, "-1001234");
    json_decref(u);
    u = json_loads("{\"update_id\":1,\"poll\":{}}", 0, &err);
    tg_update_chat(u, buf, sizeof(buf));
    assert_string_equal(buf, "");
    json_decref(u);
}

static void test_html_escape(void **state)
{
    assert_string_equal(tg_html_escape(*state, "a <b> & \"c\" 'd'"), "a &lt;b&gt; &amp; \"c\" 'd'");
    assert_string_equal(tg_html_escape(*state, ""), "");
    assert_string_equal(tg_html_escape(*state, "&amp;"), "&amp;amp;");
}

static size_t units16(const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c & 0xc0) != 0x80)
            n += c >= 0xf0 ? 2 : 1;
    }
    return n;
}

static void test_split(void **state)
{
    const char **parts;
    char text[10000];
    size_t o = 0;
    int n;

    n = tg_split(*state, "short", 4096, &parts);
    assert_int_equal(n, 1);
    assert_string_equal(parts[0], "short");
    n = tg_split(*state, "", 4096, &parts);
    assert_int_equal(n, 1);
    assert_string_equal(parts[0], "");

    /* 300 lines of 30 bytes: cut at line ends, nothing lost. */
    for (int i = 0; i < 300; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o, "line %03d abcdefghijklmnopqrst\n", i);
    text[o - 1] = '\0';
    n = tg_split(*state, text, 4096, &parts);
    assert_true(n >= 3);
    {
        size_t total = 0;
        for (int i = 0; i < n; i++) {
            size_t l = strlen(parts[i]);
            assert_true(units16(parts[i]) <= 4096);
            assert_true(l == 0 || parts[i][l - 1] != '\n');
            assert_memory_equal(parts[i], "line ", 5);
            total += l + 1;
        }
        assert_int_equal(total - 1, strlen(text));
    }

    /* One line of 4-byte characters (2 UTF-16 units each): cut on
     * characters, within the limit. */
    o = 0;
    for (int i = 0; i < 2100; i++) {
        memcpy(text + o, "😀", 4);
        o += 4;
    }
    text[o] = '\0';
    n = tg_split(*state, text, 4096, &parts);
    assert_int_equal(n, 2);
    assert_int_equal(units16(parts[0]), 4096);
    assert_true(utf8_valid(parts[0], strlen(parts[0])));
    assert_true(utf8_valid(parts[1], strlen(parts[1])));
    assert_int_equal(strlen(parts[0]) + strlen(parts[1]), o);
}

static void test_keyboard(void **state)
{
    static const struct button b[] = {
        {"View", "/equip view EQ-2026-000001", 0},
        {"◀ Previous", "~/equip list 1", 1},
        {"Next ▶", "~/equip list 3", 1},
        {"Too long", "/wo note WO-2026-000001 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 2},
    };
    struct reply rep = {.text = "x", .buttons = b, .n_buttons = 4};
    json_t *kb = tg_keyboard(&rep), *rows;

    assert_non_null(kb);
    rows = json_object_get(kb, "inline_keyboard");
    assert_int_equal(json_array_size(rows), 2);
    assert_int_equal(json_array_size(json_array_get(rows, 0)), 1);
    assert_int_equal(json_array_size(json_array_get(rows, 1)), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_array_get(rows, 1), 1), "callback_data")),
                        "~/equip list 3");
    json_decref(kb);
    rep.n_buttons = 0;
    assert_null(tg_keyboard(&rep));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_message), cmocka_unit_test(test_callback),
        cmocka_unit_test(test_kinds),        cmocka_unit_test(test_bad_updates),
        cmocka_unit_test(test_update_chat),  cmocka_unit_test(test_html_escape),
        cmocka_unit_test(test_split),        cmocka_unit_test(test_keyboard),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
