#!/usr/bin/env python3
"""Groups, edits, media, blocking and the per-chat rate limits.

- In a group /cmd@rivet_test_bot is answered (any case of the name);
  commands for @other_bot and plain chatter are ignored; the group's
  replies keep TELEGRAM_GROUP_PER_MINUTE's gap.
- Edited messages are ignored (acting on one could open a second work
  order).
- Stickers, photos, voice notes, documents and locations in a private chat
  get a sensible reply; a photo captioned with a command is that command.
- A user who blocks the bot: after the first 403 (or the my_chat_member
  "kicked" update) no more sends to that chat are attempted, and the chat
  is marked inactive; unblocking and writing again brings it back.
- Private chats keep TELEGRAM_CHAT_INTERVAL_MS between messages.
"""

import base64
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq, text_of  # noqa: E402

ANN, BOB, DAN, EVE = 9001, 9002, 9003, 9004
GROUP = -1001500000001     # a supergroup
SMALL = -4000001           # a basic group
GROUP_GAP_S = 0.5          # TELEGRAM_GROUP_PER_MINUTE=120
CHAT_GAP_S = 1.0           # TELEGRAM_CHAT_INTERVAL_MS=1000 (second process)
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()
S = {"n": 0}


def setup(env):
    S["fake"] = env.start_fake()
    S["slug"] = env.factory("Plant North")
    env.console(["/equip add Grundfos CR10 location=Pump room"], S["slug"])
    S["rivet"] = env.rivet("A", TELEGRAM_GROUP_PER_MINUTE=120).start()
    S["rivet"].wait_log("ev=tg.poll_leader", 15)
    H.register(env, S["fake"], S["slug"], [(ANN, "Ann"), (BOB, "Bob"), (DAN, "Dan"),
                                           (EVE, "Eve")])


def in_group(text, chat=GROUP, who=ANN, **kw):
    kw.setdefault("chat_type", "supergroup" if chat == GROUP else "group")
    return S["fake"].message(chat, text, from_id=who, title="Maintenance crew", **kw)


def observe(seconds, cond=None):
    """Watches for at most seconds (to see that something does NOT happen),
    returning early once cond() holds; never fails."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond and cond():
            return True
        H.nap(0.1)
    return False


def handled(env, update_ids):
    """All these updates are handled by rivet (bounded wait)."""
    ids = ",".join("'%d'" % u for u in update_ids)
    H.wait_until(lambda: env.sql_value(
        "SELECT count(*) FROM inbox WHERE external_id IN (%s) AND handled_at IS NOT NULL" % ids)
        == str(len(update_ids)), 15, "updates %s handled" % ids)


def t_group_commands(env):
    fake = S["fake"]
    since = fake.last_seq()
    in_group("/help@rivet_test_bot")
    in_group("/stats@Rivet_Test_Bot", who=BOB)
    in_group("/wo@rivet_test_bot list", chat=SMALL)
    got = fake.replies(GROUP, 2, since=since)
    check("Rivet commands:" in text_of(got[0]), "/help@bot in a group: %r" % text_of(got[0])[:100])
    check(text_of(got[1]).startswith("📊 Plant North"), "/stats@Bot: %r" % text_of(got[1])[:100])
    got = fake.replies(SMALL, 1, since=since)
    check("work orders" in text_of(got[0]).lower(), "/wo@bot list in a basic group: %r"
          % text_of(got[0])[:100])
    times = [c["started"] for c in fake.calls("sendMessage", GROUP, since) if c["ok"]]
    # 10 % slack: rivet starts the gap when it claims a reply, a moment
    # before the request reaches Telegram
    check(all(b - a >= GROUP_GAP_S * 0.9 for a, b in zip(times, times[1:])),
          "group replies closer than %.1f s: %r" % (GROUP_GAP_S, times))
    eq(env.sql_value("SELECT kind FROM chats WHERE chat_id = '%d'" % GROUP), "supergroup",
       "the group's kind in chats")


def t_group_ignores(env):
    fake = S["fake"]
    since = fake.last_seq()
    ids = [in_group(t)["update_id"] for t in (
        "/help@other_bot", "/stats@rivet_test_bot_x", "/wo@another_bot list", "hello everyone",
        "rivet_test_bot please help", "@rivet_test_bot /help")]
    ids.append(fake.update({"message": {
        "message_id": 77, "date": int(time.time()), "from": {"id": ANN, "is_bot": False,
                                                             "first_name": "Ann"},
        "chat": {"id": GROUP, "type": "supergroup", "title": "Maintenance crew"},
        "sticker": {"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1,
                    "is_animated": False, "is_video": False, "type": "regular"}}})["update_id"])
    # from a bot, addressed to rivet: bots do not talk to rivet
    ids.append(fake.message(GROUP, "/help@rivet_test_bot", from_id=9999, is_bot=True,
                            chat_type="supergroup")["update_id"])
    handled(env, ids)
    # a marker after them: everything before it was handled and ignored
    in_group("/stats@rivet_test_bot")
    got = fake.replies(GROUP, 1, since=since)
    check(text_of(got[0]).startswith("📊"), "the first group reply is not to the marker: %r"
          % text_of(got[0])[:100])
    eq(len([c for c in fake.calls("sendMessage", GROUP, since)]), 1, "group messages sent")
    rows = env.sql("SELECT outcome, count(*) FROM inbox WHERE external_id IN (%s) GROUP BY 1"
                   % ",".join("'%d'" % u for u in ids))
    eq(dict((o, int(n)) for o, n in rows), {"ignored": len(ids)}, "outcomes of ignored updates")


def t_edits(env):
    fake = S["fake"]
    eqn = env.sql_value("SELECT number FROM equipment LIMIT 1")
    wos = env.sql_value("SELECT count(*) FROM work_orders")
    since = fake.last_seq()
    first = fake.message(BOB, "/wo new %s Belt slipping" % eqn)
    fake.replies(BOB, 1, since=since)
    edit = fake.message(BOB, "/wo new %s Belt slipping badly" % eqn, edited=True,
                        message_id=first["message_id"])
    in_group("/wo new %s Group edit" % eqn, edited=True)
    handled(env, [edit["update_id"]])
    p = fake.ask(BOB, "/equip search probe-after-edit")
    check("probe-after-edit" in text_of(p), "the marker was not answered next: %r" % text_of(p))
    eq(len([c for c in fake.calls("sendMessage", BOB, since) if c["ok"]]), 2,
       "replies to Bob (his message and the marker, not the edit)")
    eq(int(env.sql_value("SELECT count(*) FROM work_orders")), int(wos) + 1, "work orders")
    eq(env.sql_value("SELECT outcome FROM inbox WHERE external_id = '%d'" % edit["update_id"]),
       "ignored", "the edit's outcome")


def media_update(chat, **content):
    m = {"message_id": 500 + S["n"], "date": int(time.time()),
         "from": {"id": chat, "is_bot": False, "first_name": "U"},
         "chat": {"id": chat, "type": "private", "first_name": "U"}}
    S["n"] += 1
    m.update(content)
    return S["fake"].update({"message": m})


def t_media(env):
    fake = S["fake"]
    since = fake.last_seq()
    kinds = [
        ("sticker", {"sticker": {"file_id": "s", "file_unique_id": "s1", "width": 512,
                                 "height": 512, "is_animated": False, "is_video": False,
                                 "type": "regular", "emoji": "👍"}}),
        ("voice", {"voice": {"file_id": "v", "file_unique_id": "v1", "duration": 3}}),
        ("location", {"location": {"latitude": 48.1, "longitude": 11.5}}),
        ("contact", {"contact": {"phone_number": "+100", "first_name": "X"}}),
        ("animation", {"animation": {"file_id": "a", "file_unique_id": "a1", "width": 1,
                                     "height": 1, "duration": 1}}),
    ]
    for _, content in kinds:
        media_update(EVE, **content)
    got = fake.replies(EVE, len(kinds), since=since)
    for c in got:
        check("text" in text_of(c).lower() or "/help" in text_of(c),
              "a media message got %r" % text_of(c)[:200])
    # Photos and image files go to the nameplate reader (this PNG is broken).
    since = fake.last_seq()
    fake.ctl("photo", chat_id=EVE, from_id=EVE, file_bytes_b64=PNG)
    fake.ctl("document", chat_id=EVE, from_id=EVE, file_bytes_b64=PNG, file_name="plate.png",
             mime_type="image/png")
    got = fake.replies(EVE, 2, since=since)
    for c in got:
        check(any(w in text_of(c) for w in ("nameplate", "photo", "image")),
              "a photo got %r" % text_of(c)[:200])
    since = fake.last_seq()
    fake.ctl("photo", chat_id=EVE, from_id=EVE, file_bytes_b64=PNG, caption="/stats")
    got = fake.replies(EVE, 1, since=since)
    check(text_of(got[0]).startswith("📊"), "a photo captioned /stats got %r" % text_of(got[0]))


def t_chat_interval(env):
    fake, a = S["fake"], S["rivet"]
    rc, _ = a.sigterm(15)
    eq(rc, 0, "exit status of the first process on SIGTERM")
    S["rivet"] = env.rivet("B", TELEGRAM_CHAT_INTERVAL_MS=int(CHAT_GAP_S * 1000)).start()
    S["rivet"].wait_log("ev=tg.poll_leader", 15)
    since = fake.last_seq()
    for k in range(3):
        fake.message(ANN, "/equip search probe-gap-%d" % k)
    got = fake.replies(ANN, 3, since=since)
    times = [c["started"] for c in got]
    gaps = [b - a for a, b in zip(times, times[1:])]
    check(all(g >= CHAT_GAP_S * 0.9 for g in gaps), "private replies %r s apart" % gaps)
    eq([text_of(c).split('"')[1] for c in got], ["probe-gap-%d" % k for k in range(3)], "order")


def t_blocked(env):
    fake = S["fake"]
    since = fake.last_seq()
    for k in range(4):
        fake.message(DAN, "/equip search probe-block-%d" % k)
    fake.replies(DAN, 1, since=since)
    blocked = fake.ctl("block", chat_id=DAN)
    check(blocked["changed"], "the fake did not block: %r" % blocked)
    t0 = time.monotonic()
    # the my_chat_member update is handled (bounded), then watch until the
    # remaining replies would all have been due (3 more at 1 s gaps)
    handled(env, [blocked["update_id"]])
    eq(env.sql_value("SELECT active FROM chats WHERE chat_id = '%d'" % DAN), "f",
       "chats.active after the bot was blocked")
    observe(3 * CHAT_GAP_S + 1.5 - (time.monotonic() - t0))
    attempts = [c for c in fake.calls("sendMessage", DAN, since) if not c["ok"]]
    refused = [c for c in attempts if c.get("error_code") == 403]
    after_first = [c for c in fake.calls("sendMessage", DAN, since)
                   if refused and c["seq"] > refused[0]["seq"]]
    H.Tap.diag("after the block: %d send attempts, %d refused with 403" % (len(attempts),
                                                                       len(refused)))
    check(not after_first, "%d sends attempted to a chat that blocked the bot after the "
          "first 403" % len(after_first), *[H.describe(c) for c in after_first[:3]])
    check(len(attempts) <= 1, "%d sends attempted after the block" % len(attempts))
    eq(env.sql_value("SELECT active FROM chats WHERE chat_id = '%d'" % DAN), "f",
       "chats.active at the end")


def t_unblocked(env):
    fake = S["fake"]
    since = fake.last_seq()
    fake.ctl("unblock", chat_id=DAN)
    fake.message(DAN, "/equip search probe-back")
    # (replies held back while blocked may come first: that is rivet's call)
    fake.replies(DAN, 1, since=since, contains="probe-back")
    eq(env.sql_value("SELECT active FROM chats WHERE chat_id = '%d'" % DAN), "t",
       "chats.active after unblocking and writing")


def t_logs(env):
    check(S["rivet"].alive(), "rivet died: exit %s" % S["rivet"].returncode())
    H.check_no_crash(env)
    H.check_no_token(env)


TESTS = [
    ("in groups /cmd@rivet_test_bot is answered, with the group's rate gap", t_group_commands),
    ("in groups other bots' commands, chatter, stickers and bots are ignored", t_group_ignores),
    ("edited messages are ignored", t_edits),
    ("stickers, voice, location, contact, photo, document: a sensible reply", t_media),
    ("private chats keep TELEGRAM_CHAT_INTERVAL_MS between replies", t_chat_interval),
    ("a blocked bot: no sends after the 403, chats.active = false", t_blocked),
    ("unblocked and written to again: answered, active again", t_unblocked),
    ("rivet stayed up; no token in the logs", t_logs),
]

if __name__ == "__main__":
    sys.exit(H.main("groups", TESTS, setup))
