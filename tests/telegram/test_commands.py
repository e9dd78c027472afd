#!/usr/bin/env python3
"""Every command of the skeleton through the fake Bot API, buttons included.

One `rivet serve` (debug logging, so the token check sees every line) and a
fresh database with two factories: Plant North, where the Telegram users
live, and Plant South, whose work orders a forged button press aims at.
Checks the text the bot sent (HTML-escaped, accepted by the fake's strict
HTML parser), inline keyboards (callback_data at most 64 bytes), paging by
editMessageText in place, status buttons, answerCallbackQuery on every
press, and that forged or garbage presses change nothing.
"""

import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq, text_of, buttons_of  # noqa: E402

ANN = 1001       # admin of Plant North
BOB = 1002       # technician of Plant North
STRANGER = 2001  # never joins
SOUTH = 3001     # technician of Plant South

S = {}  # state shared by the test points, in order


def setup(env):
    S["fake"] = env.start_fake()
    S["north"] = env.factory("Plant North")
    S["south"] = env.factory("Plant South")
    S["rivet"] = env.rivet("A", RIVET_LOG_LEVEL="debug").start()
    S["rivet"].wait_log("ev=tg.poll_leader", 15)


def reply_to(text, chat=ANN, **kw):
    return S["fake"].ask(chat, text, **kw)


def t_menu(env):
    st = S["fake"].state()
    cmds = {c["command"] for entry in st["commands"] for c in entry["commands"]}
    for c in ("start", "help", "equip", "wo", "stats"):
        check(c in cmds, "setMyCommands lacks /%s: %r" % (c, sorted(cmds)))


def t_stranger(env):
    for text in ("/help", "/equip list", "/wo list", "/stats", "hello"):
        got = reply_to(text, STRANGER)
        check(H.NOT_REGISTERED in text_of(got), "%s from a stranger answered %r"
              % (text, text_of(got)))
    eq(env.sql_value("SELECT count(*) FROM users WHERE telegram_user_id = %d" % STRANGER), "0",
       "users with the stranger's id")


def t_start(env):
    code = env.invite(S["north"], "admin")
    got = reply_to("/start " + code, ANN, first_name="Ann", last_name="Lee")
    check("Welcome to Rivet" in text_of(got) and "Plant North" in text_of(got),
          "no welcome: %r" % text_of(got))
    got = reply_to("/start", ANN)
    check("Welcome back" in text_of(got), "a known user was not welcomed back: %r" % text_of(got))
    # the code was for one person: the stranger cannot reuse it
    got = reply_to("/start " + code, STRANGER)
    check("Welcome" not in text_of(got), "a used code let a stranger in: %r" % text_of(got))
    H.register(env, S["fake"], S["north"], [(BOB, "Bob")])
    H.register(env, S["fake"], S["south"], [(SOUTH, "Sam")])
    rows = env.sql("SELECT u.telegram_user_id, f.slug, u.role FROM users u JOIN factories f "
                   "ON f.id = u.factory_id WHERE telegram_user_id IS NOT NULL ORDER BY 1")
    eq(rows, [[str(ANN), S["north"], "admin"], [str(BOB), S["north"], "technician"],
              [str(SOUTH), S["south"], "technician"]], "users joined via Telegram")


def t_help(env):
    got = reply_to("/help")
    t = text_of(got)
    for needle in ("Rivet commands:", "/equip search TEXT", "/wo status WO-NUMBER", "/stats"):
        check(needle in t, "/help lacks %r" % needle, t[:300])
    eq(got["params"].get("parse_mode"), "HTML", "parse_mode")
    got = reply_to("/help wo")
    check("/wo new" in text_of(got), "/help wo lacks /wo new: %r" % text_of(got)[:300])


def t_escape(env):
    got = reply_to('/equip add Grundfos "CR<10>&3" name=Pump <A> & B location=Hall 1')
    sent = got["params"]["text"]
    t = text_of(got)
    check(t.startswith("✅ Added "), "unexpected answer to /equip add: %r" % t)
    check("CR&lt;10&gt;&amp;3" in sent and "Pump &lt;A&gt; &amp; B" in sent,
          "user text was not HTML-escaped in the request", sent)
    check("CR<10>&3" in t and "Pump <A> & B" in t,
          "Telegram would not show the text as typed", t)
    m = H.EQ_RE.search(t)
    check(m, "no equipment number in %r" % t)
    S["eq_escaped"] = m.group(0)
    eq(env.sql_value("SELECT model FROM equipment WHERE number = '%s'" % m.group(0)),
       "CR<10>&3", "model stored")
    # search for text with the three characters, echoed back escaped
    got = reply_to("/equip search zz<q>&")
    check('"zz&lt;q&gt;&amp;"' in got["params"]["text"], "search echo not escaped",
          got["params"]["text"])


def t_list_paging(env):
    fake = S["fake"]
    env.console(["/equip add Siemens G120C serial=S%02d location=Line %d" % (i, i)
                 for i in range(1, 12)], S["north"])
    got = reply_to("/equip list")
    t = text_of(got)
    check("page 1 of 2" in t, "12 machines should be two pages: %r" % t[:200])
    btns = buttons_of(got)
    check(len(btns) == 11, "expected 10 view buttons and Next, got %r" % btns)
    for label, data in btns:
        check(data and len(data.encode()) <= 64, "callback_data over 64 bytes: %r" % data)
    nxt = [d for label, d in btns if label.startswith("Next")]
    eq(nxt, ["~/equip list 2"], "the Next ▶ button's data")
    views = [d for label, d in btns if d.startswith("/equip view ")]
    eq(len(views), 10, "view buttons")
    mid = got["result"]["message_id"]
    S["list_mid"] = mid

    since = fake.last_seq()
    qid = fake.press(ANN, mid, nxt[0])
    edit = fake.replies(ANN, 1, since=since)[0]
    eq(edit["method"], "editMessageText", "the page is replaced by")
    eq(int(edit["params"]["message_id"]), mid, "the edited message_id")
    check("page 2 of 2" in text_of(edit), "page 2 not shown: %r" % text_of(edit)[:200])
    prev = [d for label, d in buttons_of(edit) if label.startswith("◀")]
    eq(prev, ["~/equip list 1"], "the Previous button on page 2")
    fake.wait_calls(lambda c: c["ok"] and c["params"].get("callback_query_id") == qid, 1, 10,
                    "answerCallbackQuery for Next", since=since, method="answerCallbackQuery")
    st = fake.state()
    msgs = {m["message_id"]: m for m in st["chats"][str(ANN)]["messages"]}
    check("page 2 of 2" in msgs[mid]["text"], "the message in the chat is not page 2")

    since = fake.last_seq()
    fake.press(ANN, mid, prev[0])
    edit = fake.replies(ANN, 1, since=since)[0]
    eq((edit["method"], int(edit["params"]["message_id"])), ("editMessageText", mid),
       "Previous edits the same message")
    check("page 1 of 2" in text_of(edit), "page 1 not shown: %r" % text_of(edit)[:200])

    # a view button sends the machine's card as a new message
    since = fake.last_seq()
    fake.press(ANN, mid, views[0])
    card = fake.replies(ANN, 1, since=since)[0]
    eq(card["method"], "sendMessage", "a view button answers with")
    check(views[0].split()[-1] in text_of(card), "the card is not of %s: %r"
          % (views[0], text_of(card)[:200]))


def t_search_view_edit(env):
    got = reply_to("/equip search simens g120")
    check("match" in text_of(got) and "Siemens G120C" in text_of(got),
          "fuzzy search found nothing: %r" % text_of(got)[:200])
    check(buttons_of(got), "search results have no buttons")
    got = reply_to("/equip view " + S["eq_escaped"])
    t = text_of(got)
    check(S["eq_escaped"] in t and "CR<10>&3" in t, "bad card: %r" % t)
    eq([d for _, d in buttons_of(got) if d.startswith("/wo new")], ["/wo new " + S["eq_escaped"]],
       "the New work order button")
    got = reply_to("/equip edit %s location=Hall <2> criticality=high" % S["eq_escaped"])
    check(text_of(got).startswith("✏️ Updated"), "edit failed: %r" % text_of(got))
    check("Hall &lt;2&gt;" in got["params"]["text"], "edited location not escaped")
    eq(env.sql("SELECT location, criticality FROM equipment WHERE number = '%s'"
               % S["eq_escaped"]), [["Hall <2>", "high"]], "the edited machine")


def wo_status(number, factory):
    return env_ref[0].sql_value(
        "SELECT w.status FROM work_orders w JOIN factories f ON f.id = w.factory_id "
        "WHERE w.number = '%s' AND f.slug = '%s'" % (number, factory))


env_ref = []


def t_wo(env):
    env_ref[:] = [env]
    got = reply_to("/wo new %s Seal <leaks> & drips priority=high" % S["eq_escaped"])
    t = text_of(got)
    check(t.startswith("✅ Opened"), "no work order opened: %r" % t)
    check("Seal &lt;leaks&gt; &amp; drips" in got["params"]["text"], "title not escaped")
    wo = H.WO_RE.search(t).group(0)
    S["wo"] = wo
    btns = buttons_of(got)
    labels = [b[0] for b in btns]
    for want in ("▶ Start", "⏸ Hold", "✅ Complete"):
        check(want in labels, "no %r button on the new work order: %r" % (want, labels))
    S["wo_msg"] = got

    got = reply_to("/wo list")
    check(wo in text_of(got), "/wo list lacks %s: %r" % (wo, text_of(got)[:200]))
    check(("/wo view " + wo) in [d for _, d in buttons_of(got)], "no view button in /wo list")
    got = reply_to("/wo note %s Replaced <o-ring> & gasket" % wo)
    check("Note added" in text_of(got), "note: %r" % text_of(got))
    got = reply_to("/wo assign %s Bob" % wo)
    check("assigned to Bob" in text_of(got), "assign: %r" % text_of(got))
    got = reply_to("/wo view " + wo)
    t = text_of(got)
    for needle in ("Seal <leaks> & drips", "Replaced <o-ring> & gasket", "Assigned to: Bob",
                   "History"):
        check(needle in t, "/wo view lacks %r" % needle, t)
    got = reply_to("/wo status %s on_hold" % wo)
    check("on hold" in text_of(got), "typed status: %r" % text_of(got))
    eq(wo_status(wo, S["north"]), "on_hold", "status after /wo status")
    got = reply_to("/wo status %s open" % wo)
    eq(wo_status(wo, S["north"]), "open", "status after reopening")


def t_status_buttons(env):
    fake = S["fake"]
    wo = S["wo"]
    msg = S["wo_msg"]
    btns = dict(buttons_of(msg))
    mid = msg["result"]["message_id"]
    since = fake.last_seq()
    qid = fake.press(ANN, mid, btns["▶ Start"])
    got = fake.replies(ANN, 1, since=since)[0]
    check("in progress" in text_of(got), "Start answered %r" % text_of(got))
    eq(wo_status(wo, S["north"]), "in_progress", "status after pressing Start")
    fake.wait_calls(lambda c: c["ok"] and c["params"].get("callback_query_id") == qid, 1, 10,
                    "answerCallbackQuery for Start", since=since, method="answerCallbackQuery")
    got = reply_to("/wo view " + wo)
    check("🟡 in progress" in text_of(got), "/wo view: %r" % text_of(got)[:200])

    since = fake.last_seq()
    qid = fake.press(ANN, mid, btns["✅ Complete"])
    got = fake.replies(ANN, 1, since=since)[0]
    check("completed" in text_of(got), "Complete answered %r" % text_of(got))
    eq(wo_status(wo, S["north"]), "completed", "status after pressing Complete")
    eq(env.sql_value("SELECT completed_by IS NOT NULL FROM work_orders WHERE number = '%s' "
                     "AND factory_id = (SELECT id FROM factories WHERE slug = '%s')"
                     % (wo, S["north"])), "t", "completed_by recorded")


def t_stats(env):
    got = reply_to("/stats")
    t = text_of(got)
    for needle in ("📊 Plant North", "Equipment: 12", "Work orders:", "✅ completed 1"):
        check(needle in t, "/stats lacks %r" % needle, t)


def t_forged(env):
    fake = S["fake"]
    out = env.console(["/equip add ABB ACS580 location=South Hall"], S["south"])
    eqn = H.EQ_RE.search(out).group(0)
    out = env.console(["/wo new %s South job %d" % (eqn, i) for i in range(1, 4)], S["south"])
    south_wos = H.WO_RE.findall(out)
    eq(len(set(south_wos)), 3, "South work orders opened")
    north_count = int(env.sql_value(
        "SELECT count(*) FROM work_orders w JOIN factories f ON f.id = w.factory_id "
        "WHERE f.slug = '%s'" % S["north"]))
    target = south_wos[-1]  # a number Plant North does not have
    check(int(target[-6:]) > north_count, "the target %s exists in North too" % target)
    before = env.sql("SELECT factory_id, number, status, assignee_id FROM work_orders ORDER BY id")
    events_before = env.sql_value("SELECT count(*) FROM work_order_events")

    mid = S["list_mid"]
    presses = [
        (ANN, mid, "/wo status %s completed" % target),
        (ANN, mid, "/wo assign %s me" % target),
        (ANN, mid, "~/wo status %s cancelled" % target),
        (ANN, mid, "garbage \u2603 \u00ff"),
        (ANN, mid, "~/equip list 999"),
        (ANN, mid, "/"),
        (ANN, mid, "~"),
    ]
    since = fake.last_seq()
    qids = [fake.press(c, m, d) for c, m, d in presses]
    # a press without data, and one on a message too old to be shown
    qids.append(fake.ctl("callback", chat_id=ANN, message_id=mid, from_id=ANN)["callback_query_id"])
    qids.append(fake.press(ANN, mid, "/wo status %s completed" % target, inaccessible=True))
    # a stranger pressing a real status button of Ann's (forged into her chat)
    qids.append(fake.press(ANN, mid, "/wo status %s cancelled" % S["wo"], from_id=STRANGER))
    answered = fake.wait_calls(
        lambda c: c["ok"] and c["params"].get("callback_query_id") in qids, len(qids), 20,
        "answerCallbackQuery for every forged press", since=since, method="answerCallbackQuery")
    eq(len({c["params"]["callback_query_id"] for c in answered}), len(qids), "presses answered")
    # wait for the worker to have handled all of them before looking at the data
    H.wait_until(lambda: env.sql_value(
        "SELECT count(*) FROM inbox WHERE handled_at IS NULL") == "0", 20, "an empty inbox")
    after = env.sql("SELECT factory_id, number, status, assignee_id FROM work_orders ORDER BY id")
    eq(after, before, "work orders after forged presses")
    eq(env.sql_value("SELECT count(*) FROM work_order_events"), events_before,
       "work order events after forged presses")
    for c in fake.calls("sendMessage", ANN, since) + fake.calls("editMessageText", ANN, since):
        check(target not in text_of(c) or "No work order" in text_of(c),
              "a forged press revealed something: %r" % text_of(c))
    st = fake.state()
    unanswered = [k for k, v in st["callback_queries"].items() if v["answered"] is None]
    check(not unanswered, "%d callback queries were never answered" % len(unanswered))


def t_all_calls_valid(env):
    calls = S["fake"].calls()
    sends = [c for c in calls if c["method"] in ("sendMessage", "editMessageText")]
    check(len(sends) > 30, "only %d messages sent" % len(sends))
    bad = [c for c in sends if not c["ok"]]
    check(not bad, "%d sends refused by the fake" % len(bad), *[H.describe(c) + " " +
                                                              str(c.get("description"))
                                                              for c in bad[:5]])
    for c in sends:
        eq(c["params"].get("parse_mode"), "HTML", "parse_mode of %s" % H.describe(c))
        for label, data in buttons_of(c):
            check(data is not None and 1 <= len(data.encode()) <= 64,
                  "bad callback_data %r in %s" % (data, H.describe(c)))
    acq = [c for c in calls if c["method"] == "answerCallbackQuery"]
    bad = [c for c in acq if not c["ok"]]
    check(not bad, "answerCallbackQuery refused: %r" % [c.get("description") for c in bad[:3]])
    ids = [c["params"]["callback_query_id"] for c in acq]
    eq(len(ids), len(set(ids)), "each press answered once")


def t_alive_and_token(env):
    r = S["rivet"]
    check(r.alive(), "rivet serve died: exit %s" % r.returncode())
    check(r.lines("tg.update"), "no ev=tg.update lines in the log")
    H.check_no_crash(env)
    H.check_no_token(env)


TESTS = [
    ("setMyCommands sets the command menu at start", t_menu),
    ("a stranger is refused every command", t_stranger),
    ("/start with an invite joins; a used code does not", t_start),
    ("/help and /help wo", t_help),
    ("/equip add: <, > and & in user text are escaped and shown as typed", t_escape),
    ("/equip list: buttons, Next edits the same message to page 2, Previous back", t_list_paging),
    ("/equip search, view and edit", t_search_view_edit),
    ("/wo new, list, note, assign, view, status", t_wo),
    ("status buttons on a work order change its status", t_status_buttons),
    ("/stats", t_stats),
    ("forged and garbage presses are answered and change nothing", t_forged),
    ("every message was accepted by the fake; callback_data at most 64 bytes", t_all_calls_valid),
    ("rivet stayed up; the bot token is in no log line (debug level)", t_alive_and_token),
]

if __name__ == "__main__":
    sys.exit(H.main("commands", TESTS, setup))
