#!/usr/bin/env python3
"""Bad updates never crash rivet and never stop the inbox.

Updates with missing fields and wrong types (/control/update), unknown
update kinds, a 100 KB text, a text with a NUL, and getUpdates pages that
are not JSON at all, are invalid UTF-8, nest 100 000 deep or carry odd
update ids (/control/raw_updates). After each group a normal message must
still be answered, the process must be alive, and every stored update
handled. Also: good messages that share a getUpdates page with a message
holding a NUL are not lost.
"""

import base64
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq, text_of  # noqa: E402

ANN, BOB, CAT = 8001, 8002, 8003
S = {"n": 0}


def setup(env):
    S["fake"] = env.start_fake()
    slug = env.factory("Plant North")
    S["rivet"] = env.rivet("A").start()
    S["rivet"].wait_log("ev=tg.poll_leader", 15)
    H.register(env, S["fake"], slug, [(ANN, "Ann"), (BOB, "Bob"), (CAT, "Cat")])


def running():
    """Starts rivet again if an earlier point crashed it (that point has
    failed already), so that one crash does not fail every later point."""
    r = S["rivet"]
    if not r.alive():
        H.Tap.diag("rivet had exited (%s): starting it again" % r.returncode())
        r.start().wait_log("ev=tg.poll_leader", 15)
    return r


def user(uid, **kw):
    u = {"id": uid, "is_bot": False, "first_name": "U%d" % uid}
    u.update(kw)
    return u


def msg(text="/help", chat_id=None, **kw):
    m = {"message_id": 900 + S["n"], "date": int(time.time()), "from": user(ANN),
         "chat": {"id": chat_id or ANN, "type": "private"}, "text": text}
    m.update(kw)
    return m


def still_answered(env, tag, chat=ANN, timeout=20):
    """A normal message after the bad ones is answered; rivet is alive and
    has handled everything stored."""
    fake, r = S["fake"], S["rivet"]
    S["n"] += 1
    p = "probe-%s-%d" % (tag, S["n"])
    since = fake.last_seq()
    fake.message(chat, "/equip search " + p)
    fake.replies(chat, 1, since=since, timeout=timeout, contains=p)
    check(r.alive(), "rivet died: exit %s" % r.returncode())
    H.wait_until(lambda: env.sql_value("SELECT count(*) FROM inbox WHERE handled_at IS NULL")
                 == "0", 15, "every stored update handled")


def t_malformed(env):
    running()
    fake = S["fake"]
    bad = [
        {"message": {"message_id": 1, "text": "/help", "from": user(ANN)}},        # no chat
        {"message": msg(chat={"id": str(ANN), "type": "private"})},                # id a string
        {"message": msg(chat={"id": ANN})},                                        # no type
        {"message": msg(chat={"id": ANN, "type": 7})},                             # type a number
        {"message": msg(chat=[ANN])},                                              # chat a list
        {"message": msg(text=12345)},                                              # text a number
        {"message": msg(text=["/help"])},                                          # text a list
        {"message": msg(text=None)},                                               # text null
        {"message": msg(**{"from": "Ann"})},                                       # from a string
        {"message": msg(**{"from": {"id": "x"}})},                                 # from.id a string
        {"message": msg(**{"from": {"id": 1.5e300}})},                             # from.id a float
        {"message": msg(**{"from": None})},                                        # from null
        {"message": msg(caption={"a": 1}, text=None)},                             # caption an object
        {"message": "hello"},                                                      # message a string
        {"message": None},
        {"message": []},
        {"message": msg(chat={"id": -2 ** 63, "type": "private"})},                # extreme ids
        {"message": msg(chat={"id": 2 ** 63 - 1, "type": "supergroup"})},
        {"message": msg(chat={"id": ANN, "type": "private"},
                        **{"from": user(2 ** 63 - 1)})},
        {"edited_message": msg(text="/wo new EQ-2000-000001 x")},                  # edits ignored
        {"callback_query": {"from": user(ANN), "data": "/help"}},                  # no id
        {"callback_query": {"id": "q1", "data": "/help"}},                         # no from
        {"callback_query": {"id": "q2", "from": user(ANN), "data": 42,
                            "message": msg()}},                                    # data a number
        {"callback_query": {"id": 7, "from": user(ANN), "data": "/help"}},         # id a number
        {"callback_query": {"id": "q3", "from": user(ANN), "data": "/help",
                            "message": {"message_id": 1}}},                        # message, no chat
        {"callback_query": "press"},
        {"my_chat_member": {"chat": {"id": ANN, "type": "private"}}},              # no from
        {"my_chat_member": {"chat": {"id": ANN, "type": "private"}, "from": user(ANN),
                            "new_chat_member": "kicked"}},
        {"update_id": "abc", "message": msg()},                                    # id a string
        {"update_id": None, "message": msg()},
        {"update_id": -5, "message": msg()},
        {"update_id": 1.5, "message": msg()},
        {"message": msg(text="/help", entities="bold")},                           # extras of
        {"message": msg(text="/help", reply_to_message="x", photo=7)},             # wrong types
        ["not", "an", "object"],
        "just a string",
        42,
        None,
    ]
    for u in bad:
        fake.update(u)
    still_answered(env, "malformed")
    text = S["rivet"].text()
    check("outcome=bad_update" in text, "no update was logged as outcome=bad_update")


def t_unknown_chat_type(env):
    """Telegram may add chat types; an unknown one must not make the
    update fail (and be retried with backoff) while the chat waits."""
    running()
    fake = S["fake"]
    fake.update({"message": msg("/help", chat={"id": CAT, "type": "business_chat"},
                                **{"from": user(CAT)})})
    t0 = time.monotonic()
    still_answered(env, "chat-type", chat=CAT, timeout=10)
    H.Tap.diag("the next message in that chat was answered after %.1f s"
               % (time.monotonic() - t0))


def t_unknown_kinds(env):
    running()
    fake = S["fake"]
    since = fake.last_seq()
    chan = {"id": -1001234567890, "type": "channel", "title": "News"}
    kinds = [
        {"poll": {"id": "1", "question": "?", "options": []}},
        {"poll_answer": {"poll_id": "1", "option_ids": [0]}},
        {"message_reaction": {"chat": {"id": ANN, "type": "private"}, "message_id": 1}},
        {"chat_join_request": {"chat": {"id": -100, "type": "group"}, "from": user(ANN)}},
        {"inline_query": {"id": "9", "from": user(ANN), "query": "/help"}},
        {"business_message": msg()},
        {"some_kind_from_2030": {"anything": [1, 2, 3]}},
        {},
        {"channel_post": {"message_id": 1, "chat": chan, "date": 0, "text": "/help"}},
        {"edited_channel_post": {"message_id": 1, "chat": chan, "date": 0, "text": "/stats"}},
        {"message": msg(**{"from": user(9999, is_bot=True)}, chat={"id": 9999, "type": "private"})},
    ]
    for u in kinds:
        fake.update(u)
    still_answered(env, "kinds")
    for c in fake.calls("sendMessage", since=since):
        check(int(c["params"]["chat_id"]) == ANN, "an ignored update got a reply: %s"
              % H.describe(c))


def t_huge(env):
    running()
    fake = S["fake"]
    since = fake.last_seq()
    fake.message(BOB, "/equip search " + "x" * 100000)
    fake.message(CAT, "é" * 60000 + "\U0001F600" * 10000)
    for chat in (BOB, CAT):
        got = fake.replies(chat, 1, since=since, timeout=20)
        check("too long" in text_of(got[0]), "a 100 KB message got %r" % text_of(got[0])[:200])
    still_answered(env, "huge")


def t_nul(env):
    running()
    fake = S["fake"]
    since = fake.last_seq()
    fake.message(BOB, "/equip search ab\u0000cd")
    # wait (bounded) until the fake handed it out, so the next message is
    # in a later page
    H.wait_until(lambda: fake.stats()["pending_updates"] == 0, 15, "the NUL message polled")
    still_answered(env, "nul")
    got = [c for c in fake.calls("sendMessage", chat_id=BOB, since=since) if c["ok"]]
    if got:
        check("control characters" in text_of(got[0]), "a NUL message got %r" % text_of(got[0]))


def t_nul_same_page(env):
    running()
    fake, r = S["fake"], S["rivet"]
    rc, _ = r.sigterm(15)
    eq(rc, 0, "exit status on SIGTERM")
    since = fake.last_seq()
    # with rivet stopped all three wait in the fake: one getUpdates page
    fake.message(ANN, "/equip search probe-page-before")
    fake.message(BOB, "NUL \u0000 in here")
    fake.message(CAT, "/equip search probe-page-after")
    r.start()
    r.wait_log("ev=tg.poll_leader", 15)
    want = {"probe-page-before": ANN, "probe-page-after": CAT}
    try:
        fake.wait_calls(lambda c: c["ok"] and any(p in text_of(c) for p in want), 2, 10,
                        "both good messages answered", since=since, method="sendMessage")
    except H.Fail:
        pass
    seen = " ".join(text_of(c) for c in fake.calls("sendMessage", since=since) if c["ok"])
    missing = [p for p in want if p not in seen]
    dropped = r.lines("tg.update_dropped")
    check(not missing, "good messages lost because a message in the same getUpdates page held "
          "a NUL: %s" % ", ".join(missing), *dropped[-2:])
    got = fake.replies(BOB, 1, since=since, timeout=10)
    check("control characters" in text_of(got[0]), "the NUL message got %r" % text_of(got[0]))


def raw(body, status=200, ctype="application/json"):
    if isinstance(body, bytes):
        return S["fake"].ctl("raw_updates", body_b64=base64.b64encode(body).decode(),
                             status=status, content_type=ctype)
    return S["fake"].ctl("raw_updates", body=body, status=status, content_type=ctype)


def t_bad_pages(env):
    running()
    fake = S["fake"]
    since = fake.last_seq()
    n = fake.stats()["next_update_id"]
    good = json.dumps(msg("/help"))
    pages = [
        b'{"ok":true,"result":[{"update_id":%d,"message":{"message_id":1,"chat":{"id":%d,'
        b'"type":"private"},"from":{"id":%d,"is_bot":false,"first_name":"A"},"text":"\xff\xfe'
        b'\xc3("}}]}' % (n, ANN, ANN),                                        # invalid UTF-8
        b'{"ok":true,"result":[{"update_id":%d,"message":{"text":"abc' % (n + 1),  # truncated
        b'{"ok":true,"result":[{"update_id":%d,"message":{"text":"\\ud800"}}]}' % (n + 2),
        b'{"ok":true,"result":[{"update_id":%d,"message":' % (n + 3) + b"[" * 100000
        + b"]" * 100000 + b"}]}",                                                    # deep
        b"<html><body>502 Bad Gateway</body></html>",
        b"",
        b'{"ok":true,"result":{}}',
        b'{"ok":true,"result":[1,"x",null,[],{"update_id":-1},{"update_id":1.5},'
        b'{"update_id":"7"}]}',
        b'{"ok":false,"error_code":"x","description":7,"parameters":{"retry_after":"soon"}}',
        ('{"ok":true,"result":[{"update_id":%d,"message":%s}]}' % (n + 4, good)).encode()
        + b" trailing garbage",
    ]
    # a good empty page after each bad one: rivet backs off after consecutive
    # failures (up to 30 s), which is right but would make this case slow
    for p in pages:
        raw(p)
        raw(b'{"ok":true,"result":[]}')
    raw(b'{"ok":true,"result":[]}', status=500)
    raw(b'not json', status=502, ctype="text/html")
    # move the fake's own update ids past the ones the pages used
    fake.update({"update_id": n + 10, "poll": {"id": "bump"}})
    fake.wait_calls(lambda c: c.get("raw_response"), 2 * len(pages) + 2, 60,
                    "every raw page handed to rivet", since=since, method="getUpdates")
    still_answered(env, "pages", timeout=40)
    text = S["rivet"].text()
    check("ev=tg.poll_bad_page" in text, "no ev=tg.poll_bad_page logged")


def t_extreme_ids(env):
    running()
    fake = S["fake"]
    since = fake.last_seq()
    n = fake.stats()["next_update_id"]
    m = msg("/equip search probe-maxid", chat_id=ANN)
    raw(json.dumps({"ok": True, "result": [{"update_id": 2 ** 63 - 1, "message": m}]}))
    raw(json.dumps({"ok": True, "result": [{"update_id": 2 ** 64 + 5, "message": m}]}))
    fake.update({"update_id": n + 10, "poll": {"id": "bump"}})
    fake.wait_calls(lambda c: c.get("raw_response"), 2, 30, "the raw pages handed to rivet",
                    since=since, method="getUpdates")
    still_answered(env, "maxid")
    offs = [int(c["params"].get("offset") or 0) for c in fake.calls("getUpdates", since=since)]
    check(max(offs) < 2 ** 40, "rivet asked getUpdates with offset %d" % max(offs))


def t_logs(env):
    check(S["rivet"].alive(), "rivet died: exit %s" % S["rivet"].returncode())
    H.check_no_crash(env)
    H.check_no_token(env)


TESTS = [
    ("updates with missing fields and wrong types: no crash, inbox keeps moving", t_malformed),
    ("unknown update kinds, channel posts, bots: ignored, inbox keeps moving", t_unknown_kinds),
    ("100 KB texts are refused with a reply", t_huge),
    ("a message with a NUL: no crash, later messages answered", t_nul),
    ("good messages in the same getUpdates page as a NUL message are not lost", t_nul_same_page),
    ("pages that are not JSON, invalid UTF-8, 100000 deep, odd results: skipped", t_bad_pages),
    ("update ids at and past 2^63: no crash, offset sane", t_extreme_ids),
    # last: when it fails, the chat stays stuck behind the update for a while
    ("an unknown chat type does not hold up the chat's next message", t_unknown_chat_type),
    ("rivet stayed up; no sanitizer report; no token in the logs", t_logs),
]

if __name__ == "__main__":
    sys.exit(H.main("bad_updates", TESTS, setup))
