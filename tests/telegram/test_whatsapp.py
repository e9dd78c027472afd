#!/usr/bin/env python3
"""The WhatsApp Cloud API channel end to end: real `rivet serve` processes
against the fake Graph API (tests/fake_whatsapp/fake_whatsapp.py), which
also plays Meta's side of the webhook (signed with the app secret), a real
PostgreSQL, a mosquitto of the test's own for alarms, and the fake Bot API
for the person who uses both apps.

First a WhatsApp-only process (TELEGRAM_BOT_TOKEN unset) answers Meta's
verification and a stranger, and stops cleanly; one with a token Meta
refuses does not start. Then one process with both channels and MQTT runs
everything else:

- the webhook: verification GET (token, mode), the signature (valid,
  missing, wrong, one byte altered, another body's, malformed...) with
  nothing stored in the inbox for a refused one, malformed JSON (400,
  nothing stored, rivet keeps working), a "\u0000" that spoils one message
  and not its body, another number of the business account, a duplicated
  delivery handled once, 503 while PostgreSQL cannot store a message;
- every command for a registered user (/start CODE from a stranger with an
  invite, /help, /equip add/list/search/view, /wo new/list/view/status/
  note, /stats, /alerts): text in WhatsApp's style (no HTML entities: & and
  < arrive literally), buttons as reply buttons (at most 3, titles at most
  20 characters) or a list, and a press (button_reply, list_reply) runs
  its command;
- a nameplate photo (and the same image as a file) downloaded through the
  media endpoints and read; a PDF refused without a download;
- unsupported message types, a stranger;
- delivery statuses recorded on the outbox row and never moving back, also
  when Meta sends them the instant it accepts the message;
- alarms over MQTT with buttons and Acknowledge; the 24-hour window (the
  alarm template outside it, with /ack N and /wo alarm N payloads, for a
  storm summary and an escalation too; a non-alarm not sent, the row saying
  why; a message delivered a day late does not reopen it); 131047 on a
  send and as a failed status (the template instead); 130429, 131056, 5xx,
  190 and a dropped connection retried and delivered once; 100 and 131026
  failed for good;
- /link both ways between Telegram and WhatsApp: the same work orders on
  both, each alarm once per channel; /unlink;
- no WhatsApp secret (token, app secret, verify token) in any log line.

Synchronisation is the fakes' bounded waits (a new Graph API call, a new
Bot API call) and polls of the database with a deadline.
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import wa_harness as W  # noqa: E402
from harness import check, eq  # noqa: E402
from wa_harness import buttons_of, kind_of, template_of, text_of  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PLATES = os.path.normpath(os.path.join(HERE, "..", "fixtures", "nameplates", "set"))
PLATE = "015-hvac-fr"  # Lennox XC21-068-230-00, read confidently (see test_photos.py)

ANN = "4915110000001"       # admin of Plant North, WhatsApp only
BOB = "4915110000002"       # technician, WhatsApp only
CARL_WA = "4915110000003"   # Carl's WhatsApp number, linked to ...
CARL_TG = 7003              # ... his Telegram account
DAN_WA = "4915110000004"    # Dan links Telegram from WhatsApp, then unlinks it
DAN_TG = 7004
STRANGER = "4915110000009"  # never joins
LONELY = "4915110000008"    # a stranger who writes to the WhatsApp-only process

READ_TIMEOUT = 150  # OCR takes ~2 s a photo, far more under a sanitizer

S = {"devices": 0}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def wa():
    return S["wa"]


def inbox_count(env, where="true"):
    return int(env.sql_value("SELECT count(*) FROM inbox WHERE channel = 'whatsapp' AND %s"
                             % where))


def inbox_idle(env):
    H.wait_until(lambda: inbox_count(env, "handled_at IS NULL") == 0, 30,
                 "every WhatsApp inbox row handled")


def outbox_row(env, wamid, cols="sent_at IS NOT NULL, failed_at IS NOT NULL, attempts, "
               "coalesce(last_error, ''), coalesce(remote_status, ''), "
               "coalesce(remote_error, '')"):
    rows = env.sql("SELECT %s FROM outbox WHERE channel = 'whatsapp' AND remote_id = '%s'"
                   % (cols, wamid.replace("'", "''")))
    check(len(rows) == 1, "outbox rows with remote_id %s: %r" % (wamid, rows))
    return rows[0]


def check_style(call):
    """A message in WhatsApp's style, as the fake accepted it: no HTML, at
    most 3 reply buttons with titles of at most 20 characters, or a list."""
    t = text_of(call)
    for entity in ("&amp;", "&lt;", "&gt;", "&quot;", "<b>", "</b>", "<i>", "<code>"):
        check(entity not in t, "HTML %r in a WhatsApp message: %r" % (entity, t[:300]))
    k = kind_of(call)
    check(k in ("text", "button", "list", "template"), "unexpected kind %r" % k)
    if k == "button":
        btns = buttons_of(call)
        check(1 <= len(btns) <= 3, "%d reply buttons" % len(btns))
        for title, bid in btns:
            check(1 <= len(title) <= 20, "button title %r longer than 20" % title)
            check(1 <= len(bid) <= 256, "button id %r" % bid)
    if k == "list":
        rows = buttons_of(call)
        check(1 <= len(rows) <= 10, "%d list rows" % len(rows))
        for title, rid in rows:
            check(1 <= len(title) <= 24, "row title %r longer than 24" % title)


def ask(user, text, contains=None, timeout=20, **kw):
    """Sends text from user and returns the first accepted message after it
    (with contains when given); checks its style."""
    fake = wa()
    since = fake.last_seq()
    fake.message(user, text, **kw)
    got = fake.replies(user, 1, since=since, timeout=timeout, contains=contains)[0]
    check_style(got)
    return got


def press(user, call, prefix, **kw):
    """Presses the button (or list row) of call whose id starts with
    prefix, as WhatsApp reports it (button_reply or list_reply); returns
    the seq before."""
    ids = [(title, bid) for title, bid in buttons_of(call) if bid.startswith(prefix)]
    check(ids, "no %r button on %s" % (prefix, W.describe(call)))
    since = wa().last_seq()
    kind = "list_reply" if kind_of(call) == "list" else "button_reply"
    wa().press(user, ids[0][1], ids[0][0], kind=kind, **kw)
    return since


def rule_file(env, name, body):
    path = os.path.join(env.tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(body, f)
    return path


def stamp():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def raise_alarm(env):
    """Publishes telemetry that fires the rule on a new device; returns
    (alarm id, device key) once the alarm is recorded."""
    S["devices"] += 1
    dev = "press-%d" % S["devices"]
    S["broker"].publish("factories/%s/devices/%s/telemetry" % (S["north"], dev),
                        [json.dumps({"timestamp": stamp(), "metrics": {"temp": 91.5}})])
    where = "device_id = (SELECT id FROM devices WHERE key = '%s')" % dev
    H.wait_until(lambda: env.sql_value("SELECT count(*) FROM alarms WHERE %s" % where) == "1",
                 30, "the alarm of %s" % dev)
    return int(env.sql_value("SELECT id FROM alarms WHERE %s" % where)), dev


def close_window(env, user):
    """The user last wrote 25 hours ago, as far as both Meta (the fake) and
    Rivet know."""
    wa().window(user, hours_ago=25)
    env.sql("UPDATE chat_windows SET last_inbound_at = now() - interval '25 hours' "
            "WHERE channel = 'whatsapp' AND chat_id = '%s' RETURNING 1" % user)


def unique(tag):
    S["uniq"] = S.get("uniq", 0) + 1
    return "zq%s%dx" % (tag, S["uniq"])


# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------

def setup(env):
    check(os.path.isdir(PLATES), "no plates in %s" % PLATES)
    S["wa"] = W.WAFake(env)
    S["tg"] = env.start_fake()
    S["broker"] = H.Broker(env).start()
    S["north"] = env.factory("Plant North")
    body = {"name": "Hot press", "severity": "high", "cooldown_minutes": 0,
            "condition": {"parameter": "temp", "operator": "gt", "threshold": 80}}
    out = env.cli("rule", "add", "--factory", S["north"], rule_file(env, "hot", body))
    check("added rule" in out, "rule add said %r" % out)
    # the approved template as the setup guide describes it: the fake then
    # refuses a send with another name, language or number of parameters
    S["wa"].ctl("templates", templates=[{"name": W.TEMPLATE, "language": W.TEMPLATE_LANGUAGE,
                                         "body_params": 1, "quick_replies": 2}])


# ---------------------------------------------------------------------------
# A WhatsApp-only process
# ---------------------------------------------------------------------------

def t_whatsapp_only(env):
    fake = wa()
    w = env.rivet("W", TELEGRAM_BOT_TOKEN=None, RIVET_LOG_LEVEL="debug", **W.wa_settings(fake))
    w.start()
    ready = w.lines("serve.ready")[-1]
    check("telegram=off" in ready and "whatsapp=on" in ready, "serve.ready: %r" % ready)
    hello = [c for c in fake.calls(endpoint="phone_number") if c["auth_ok"]]
    check(hello, "no GET /{phone-number-id} at start")
    url = W.webhook_url(w)
    got = fake.ctl("verify", verify_token=W.WA_VERIFY_TOKEN, webhook_url=url,
                   challenge="1158201444")
    check(got["echoed"] and got["status"] == 200, "verification: %r" % got)
    got = fake.ctl("verify", verify_token="not-" + W.WA_VERIFY_TOKEN, webhook_url=url)
    eq(got["status"], 403, "verification with a wrong token")
    # a stranger on the WhatsApp-only process
    since = fake.last_seq()
    fake.message(LONELY, "hello", webhook_url=url, name="Lonely")
    t = text_of(fake.replies(LONELY, 1, since=since)[0])
    check(H.NOT_REGISTERED in t, "a stranger was answered %r" % t)
    rc, secs = w.sigterm(20)
    eq(rc, 0, "exit status of the WhatsApp-only process after SIGTERM")
    check(w.lines("wa.stopped"), "no ev=wa.stopped line")


def t_token_refused(env):
    fake = wa()
    x = env.rivet("X", TELEGRAM_BOT_TOKEN=None,
                  **W.wa_settings(fake, WHATSAPP_TOKEN="EAAGwrongRIVETtokenQ9z"))
    x.start(wait=False)
    try:
        x.proc.wait(60)
    except Exception:
        raise H.Fail("rivet serve with a refused token did not exit: %s" % x.tail())
    eq(x.returncode(), 1, "exit status with a refused token")
    text = x.text()
    check("refused WHATSAPP_TOKEN" in text, "no line saying why: %r" % text[-500:])
    check("serve.ready" not in text, "serve.ready logged with a refused token")
    check("EAAGwrongRIVETtokenQ9z" not in text, "the refused token is in the log")


def t_start_both(env):
    S["rivet"] = env.rivet("A", RIVET_LOG_LEVEL="debug", MQTT_URL=S["broker"].url,
                           MQTT_CLIENT_ID="rivet-test-wa", ALARM_STORM_WINDOW_S="1",
                           RIVET_STATEMENT_TIMEOUT_MS="2000", **W.wa_settings(wa()))
    S["rivet"].start()
    S["rivet"].wait_log("ev=mqtt.connected", 20)
    S["rivet"].wait_log("ev=tg.poll_leader", 20)
    ready = S["rivet"].lines("serve.ready")[-1]
    for want in ("telegram=on", "whatsapp=on", "mqtt=on"):
        check(want in ready, "serve.ready lacks %s: %r" % (want, ready))
    wa().set_webhook(S["rivet"])
    st, _, body = S["rivet"].http("GET", "/healthz")
    eq(st, 200, "/healthz status (%s)" % body[:200])
    check(b'"whatsapp":"ok"' in body, "/healthz: %r" % body)


# ---------------------------------------------------------------------------
# The webhook
# ---------------------------------------------------------------------------

def t_verify(env):
    r = S["rivet"]

    def get(**q):
        return r.http("GET", "/webhook/whatsapp?" + urllib.parse.urlencode(q))

    st, hdrs, body = get(**{"hub.mode": "subscribe", "hub.challenge": "987654321",
                            "hub.verify_token": W.WA_VERIFY_TOKEN})
    eq((st, body), (200, b"987654321"), "the right token")
    ct = {k.lower(): v for k, v in hdrs.items()}.get("content-type", "")
    check(ct.startswith("text/plain"), "the challenge's Content-Type is %r" % ct)
    for what, q in (
            ("a wrong token", {"hub.mode": "subscribe", "hub.challenge": "1",
                               "hub.verify_token": W.WA_VERIFY_TOKEN[:-1] + "X"}),
            ("a longer token", {"hub.mode": "subscribe", "hub.challenge": "1",
                                "hub.verify_token": W.WA_VERIFY_TOKEN + "X"}),
            ("no token", {"hub.mode": "subscribe", "hub.challenge": "1"}),
            ("a wrong mode", {"hub.mode": "unsubscribe", "hub.challenge": "1",
                              "hub.verify_token": W.WA_VERIFY_TOKEN}),
            ("no mode", {"hub.challenge": "1", "hub.verify_token": W.WA_VERIFY_TOKEN})):
        st, _, body = get(**q)
        eq(st, 403, "verification with %s" % what)
        check(b"1" != body, "%s echoed the challenge" % what)
    got = wa().ctl("verify", verify_token=W.WA_VERIFY_TOKEN)
    check(got["echoed"], "the fake's verification (Meta's request): %r" % got)
    got = wa().ctl("verify", verify_token=W.WA_VERIFY_TOKEN, mode="unsubscribe")
    eq(got["status"], 403, "Meta's request with mode unsubscribe")


def t_signature(env):
    fake = wa()
    before = inbox_count(env)
    bad_lines = len(S["rivet"].lines("wa.bad_signature"))
    since = fake.last_seq()
    refused = ("missing", "wrong", "tamper", "other_body", "malformed", "empty", "sha1_only",
               "no_prefix")
    ids = []
    for mode in refused:
        got = fake.message(STRANGER, "/help", signature=mode, expect=401, name="Eve")
        ids.append(got["message_id"])
        if mode == "tamper":
            check(got["deliveries"][0].get("tampered_offset") is not None,
                  "tamper mode changed nothing: %r" % got["deliveries"])
    eq(inbox_count(env), before, "inbox rows after %d refused deliveries" % len(refused))
    eq(inbox_count(env, "external_id IN (%s)" % ",".join("'%s'" % i for i in ids)), 0,
       "inbox rows of the refused messages")
    eq(int(env.sql_value("SELECT count(*) FROM chats WHERE channel = 'whatsapp' AND chat_id = "
                         "'%s'" % STRANGER)), 0, "a chat row for the refused sender")
    lines = S["rivet"].lines("wa.bad_signature")
    eq(len(lines) - bad_lines, len(refused), "ev=wa.bad_signature lines")
    # the valid one (and the upper-case hex Meta never sends, but is the
    # same HMAC) is stored and answered
    for mode in ("valid", "uppercase"):
        got = fake.message(STRANGER, "/help", signature=mode, name="Eve")
        eq(inbox_count(env, "external_id = '%s'" % got["message_id"]), 1,
           "inbox rows of the %s signature's message" % mode)
    fake.replies(STRANGER, 2, since=since, contains=H.NOT_REGISTERED)
    eq(len(fake.calls(since, "messages", STRANGER)), 2, "replies to the stranger")


def t_malformed(env):
    fake = wa()
    before = inbox_count(env)
    for what, body in (
            ("cut JSON", '{"object":"whatsapp_business_account","entry":[{"id":"1",'),
            ("not JSON", "hello, this is not JSON"),
            ("a JSON array", "[1, 2, 3]"),
            ("another object", '{"object":"page","entry":[]}'),
            ("duplicate keys", '{"object":"whatsapp_business_account",'
                               '"object":"whatsapp_business_account","entry":[]}'),
            ("deep nesting", '{"object":"whatsapp_business_account","entry":'
                             + "[" * 5000 + "]" * 5000 + "}")):
        got = fake.ctl("raw_webhook", body=body)
        st = [d["status"] for d in got["deliveries"]]
        eq(st, [400], "%s with a valid signature" % what)
    eq(inbox_count(env), before, "inbox rows after malformed bodies")
    check(S["rivet"].alive(), "rivet died on a malformed body")
    # a message for another number of the same business account
    mod = W.fake_module()
    body = mod.build_message_body(STRANGER, "text", name="Eve", phone_number_id="999000111",
                                  message=mod.message_object("text", STRANGER, text="/help"))
    got = fake.ctl("raw_webhook", body_json=body)
    eq([d["status"] for d in got["deliveries"]], [200], "another number's message")
    eq(inbox_count(env), before, "inbox rows after another number's message")
    # a message with "\u0000" in its text is malformed, not the body: the
    # other message in it is kept
    tag = unique("nul")
    good = mod.message_object("text", STRANGER, text="/help " + tag)
    body = mod.build_message_body(STRANGER, "text", name="Eve",
                                  phone_number_id=W.PHONE_NUMBER_ID,
                                  message=mod.message_object("text", STRANGER,
                                                             text="/help a\u0000b"))
    body["entry"][0]["changes"][0]["value"]["messages"].append(good)
    since = fake.last_seq()
    got = fake.ctl("raw_webhook", body_json=body)
    eq([d["status"] for d in got["deliveries"]], [200], "a body with a NUL in one message")
    eq(inbox_count(env), before + 1, "inbox rows after it (the good message only)")
    eq(inbox_count(env, "external_id = '%s'" % good["id"]), 1, "the good message stored")
    fake.replies(STRANGER, 1, since=since, contains=H.NOT_REGISTERED)
    # still working
    got = ask(STRANGER, "/help", contains=H.NOT_REGISTERED)


def t_stranger(env):
    for text in ("/help", "/equip list", "/wo list", "/stats", "hello"):
        t = text_of(ask(STRANGER, text))
        check(H.NOT_REGISTERED in t, "%r from a stranger answered %r" % (text, t))
    eq(env.sql_value("SELECT count(*) FROM users WHERE whatsapp_id = '%s'" % STRANGER), "0",
       "users with the stranger's number")
    t = text_of(ask(STRANGER, "/start NOPE-NOPE-NOPE"))
    check("not valid" in t, "a wrong invite code answered %r" % t)


def t_start(env):
    code = env.invite(S["north"], "admin")
    got = ask(ANN, "/start " + code, name="Ann")
    t = text_of(got)
    check("Welcome to Rivet, Ann" in t and "Plant North" in t, "no welcome: %r" % t)
    code = env.invite(S["north"], "technician")
    t = text_of(ask(BOB, "/start " + code, name="Bob"))
    check("Welcome to Rivet, Bob" in t, "no welcome for Bob: %r" % t)
    t = text_of(ask(STRANGER, "/start " + code))
    check("Welcome" not in t, "a used code let a stranger in: %r" % t)
    rows = env.sql("SELECT u.whatsapp_id, u.display_name, u.role, f.slug FROM users u "
                   "JOIN factories f ON f.id = u.factory_id WHERE u.whatsapp_id IS NOT NULL "
                   "ORDER BY 1")
    eq(rows, [[ANN, "Ann", "admin", S["north"]], [BOB, "Bob", "technician", S["north"]]],
       "users joined via WhatsApp")
    t = text_of(ask(ANN, "/start"))
    check("Welcome back, Ann" in t, "a known user: %r" % t)


def t_help(env):
    fake = wa()
    since = fake.last_seq()
    fake.message(ANN, "/help")
    got = fake.settle(ANN, since)
    check(got, "no answer to /help")
    for c in got:
        check_style(c)
        check(len(text_of(c)) <= 4096, "a piece of %d characters" % len(text_of(c)))
    t = "\n".join(text_of(c) for c in got)
    check(t.startswith("*Rivet commands:*\n"), "the first line is not bold: %r" % t[:80])
    for needle in ("/equip search TEXT", "/wo status WO-NUMBER", "/stats", "/link"):
        check(needle in t, "/help lacks %r" % needle, t[:300])
    t = text_of(ask(ANN, "/help wo"))
    check("/wo new" in t, "/help wo: %r" % t[:300])


def t_equip(env):
    got = ask(ANN, '/equip add Grundfos "CR<10>&3" name=Pump <A> & B location=Hall 1')
    t = text_of(got)
    check("Added" in t and "CR<10>&3" in t and "Pump <A> & B" in t,
          "/equip add did not show the text as typed: %r" % t)
    check(t.startswith("*✅ Added EQ-"), "the first line is not bold: %r" % t[:60])
    S["eq"] = H.EQ_RE.search(t).group(0)
    eq(kind_of(got), "button", "the kind of the card with one button")
    eq(buttons_of(got), [("🛠 New work order", "/wo new " + S["eq"])], "the card's button")
    eq(env.sql_value("SELECT model FROM equipment WHERE number = '%s'" % S["eq"]), "CR<10>&3",
       "the model stored")
    env.console(["/equip add Siemens G120C serial=S%02d location=Line %d" % (i, i)
                 for i in range(1, 12)], S["north"])
    got = ask(ANN, "/equip list")
    t = text_of(got)
    check("page 1 of 2" in t, "12 machines should be two pages: %r" % t[:200])
    eq(kind_of(got), "list", "the kind of a list of 11 buttons")
    rows = buttons_of(got)
    eq(len(rows), 10, "list rows (10 views; Next written under the text)")
    check("/equip list 2" in t, "the Next page is not offered as a command: %r" % t[-200:])
    check(all(r[1].startswith("/equip view ") for r in rows), "rows: %r" % rows)
    # a list row pressed runs its command: the machine's card
    since = press(ANN, got, "/equip view ")
    card = wa().replies(ANN, 1, since=since)[0]
    check_style(card)
    check(rows[0][1].split()[-1] in text_of(card), "the card of %s: %r" % (
        rows[0][1], text_of(card)[:200]))
    # the next page typed as offered
    t = text_of(ask(ANN, "/equip list 2"))
    check("page 2 of 2" in t, "page 2: %r" % t[:200])
    got = ask(ANN, "/equip search simens g120")
    check("Siemens G120C" in text_of(got), "fuzzy search: %r" % text_of(got)[:200])
    check(buttons_of(got), "search results without buttons")
    got = ask(ANN, "/equip search zz<q>&")
    check('"zz<q>&"' in text_of(got), "search echo: %r" % text_of(got))
    got = ask(ANN, "/equip view " + S["eq"])
    check(S["eq"] in text_of(got) and "Pump <A> & B" in text_of(got),
          "/equip view: %r" % text_of(got)[:200])


def t_wo(env):
    got = ask(ANN, "/wo new %s Seal <leaks> & drips priority=high" % S["eq"])
    t = text_of(got)
    check("Opened" in t and "Seal <leaks> & drips" in t, "/wo new: %r" % t)
    wo = H.WO_RE.search(t).group(0)
    S["wo"] = wo
    btns = buttons_of(got)
    check(len(btns) >= 3, "status buttons of a new work order: %r" % btns)
    S["wo_msg"] = got
    got = ask(ANN, "/wo list")
    check(wo in text_of(got), "/wo list lacks %s: %r" % (wo, text_of(got)[:200]))
    check(("/wo view " + wo) in [b[1] for b in buttons_of(got)], "no view button in /wo list")
    t = text_of(ask(ANN, "/wo note %s Replaced <o-ring> & gasket" % wo))
    check("Note added" in t, "/wo note: %r" % t)
    t = text_of(ask(ANN, "/wo assign %s Bob" % wo))
    check("assigned to Bob" in t, "/wo assign: %r" % t)
    t = text_of(ask(ANN, "/wo view " + wo))
    for needle in ("Seal <leaks> & drips", "Replaced <o-ring> & gasket", "Assigned to: Bob"):
        check(needle in t, "/wo view lacks %r" % needle, t)
    t = text_of(ask(ANN, "/wo status %s on_hold" % wo))
    check("on hold" in t, "/wo status: %r" % t)
    eq(wo_status(env, wo), "on_hold", "the status after /wo status")
    # a reply button pressed runs its command
    since = press(ANN, S["wo_msg"], "/wo status %s in_progress" % wo)
    got = wa().replies(ANN, 1, since=since)[0]
    check("in progress" in text_of(got), "the Start button answered %r" % text_of(got))
    eq(wo_status(env, wo), "in_progress", "the status after pressing Start")
    # Bob sees it as his
    t = text_of(ask(BOB, "/wo list mine"))
    check(wo in t, "Bob's /wo list mine lacks %s: %r" % (wo, t[:200]))


def wo_status(env, number):
    return env.sql_value("SELECT status FROM work_orders WHERE number = '%s'" % number)


def t_stats_alerts(env):
    t = text_of(ask(ANN, "/stats"))
    for needle in ("📊 Plant North", "Equipment: 12", "in progress 1"):
        check(needle in t, "/stats lacks %r" % needle, t)
    t = text_of(ask(ANN, "/alerts"))
    check("No open alarms" in t, "/alerts: %r" % t)


def t_unsupported(env):
    for kind, extra in (("sticker", {}), ("location", {"latitude": 52.52, "longitude": 13.4}),
                        ("audio", {}), ("reaction", {"emoji": "👍"})):
        got = ask(ANN, None, kind=kind, **extra)
        check(W.UNSUPPORTED in text_of(got), "a %s answered %r" % (kind, text_of(got)))
    inbox_idle(env)
    eq(env.sql_value("SELECT count(*) FROM inbox WHERE channel = 'whatsapp' AND "
                     "outcome = 'unsupported'"), "4", "inbox rows handled as unsupported")


def t_duplicate(env):
    fake = wa()
    tag = unique("dup")
    since = fake.last_seq()
    got = fake.message(ANN, "/equip search " + tag, times=2)
    eq([d["status"] for d in got["deliveries"]], [200, 200], "both deliveries answered")
    fake.replies(ANN, 1, since=since, contains=tag)
    # a marker message after it: the chat's messages are handled in order
    ask(ANN, "/alerts", contains="alarms")
    eq(inbox_count(env, "external_id = '%s'" % got["message_id"]), 1, "inbox rows")
    n = [c for c in fake.calls(since, "messages", ANN) if tag in text_of(c)]
    eq(len(n), 1, "replies to the duplicated message")
    check(any("duplicates=1" in l for l in S["rivet"].lines("wa.webhook")),
          "no wa.webhook line with duplicates=1")


def t_database_busy(env):
    """While PostgreSQL cannot store the message (another transaction holds
    its id: the INSERT waits past the statement timeout) the webhook answers
    503, so that Meta sends it again; sent again, it is stored once."""
    fake = wa()
    tag = unique("busy")
    wamid = "wamid.HBgNNDkxNTExMDAwMDAwMRUCABIYFk" + tag.upper()
    holder = subprocess.Popen(
        ["psql", "-X", "-q", "-d", env.db_url, "-c",
         "BEGIN; INSERT INTO inbox (channel, external_id, chat_id, payload) VALUES "
         "('whatsapp', '%s', '%s', '{}'); SELECT pg_sleep(120);" % (wamid, ANN)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, PGAPPNAME="wa_test_holder"), preexec_fn=H._pdeathsig)
    try:
        H.wait_until(lambda: env.sql_value(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wa_test_holder' "
            "AND wait_event = 'PgSleep'") == "1", 20, "the transaction holding the id")
        since = fake.last_seq()
        got = fake.message(ANN, "/equip search " + tag, message_id=wamid, expect=503)
        check("send it again" in got["deliveries"][0]["body"], "the 503's body: %r"
              % got["deliveries"][0]["body"])
    finally:
        env.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'wa_test_holder'")
        holder.wait(20)
    eq(inbox_count(env, "external_id = '%s'" % wamid), 0, "inbox rows after the 503")
    check(S["rivet"].lines("wa.inbox_error"), "no ev=wa.inbox_error line")
    # Meta sends it again
    fake.message(ANN, "/equip search " + tag, message_id=wamid)
    fake.replies(ANN, 1, since=since, contains=tag)
    ask(ANN, "/help wo")  # a marker: the chat's messages are handled in order
    eq(inbox_count(env, "external_id = '%s'" % wamid), 1, "inbox rows after it came again")
    eq(len([c for c in fake.calls(since, "messages", ANN) if tag in text_of(c)]), 1,
       "replies to it")


def t_photo(env):
    fake = wa()
    with open(os.path.join(PLATES, PLATE + ".jpg"), "rb") as f:
        data = f.read()
    with open(os.path.join(PLATES, PLATE + ".json"), encoding="utf-8") as f:
        truth = json.load(f)["fields"]
    since = fake.last_seq()
    sent = fake.image(ANN, data, caption="Roof unit 4")
    mid = sent["media_id"]
    deadline = time.monotonic() + READ_TIMEOUT
    while True:
        try:
            got = fake.replies(ANN, 1, since=since, timeout=2)[0]
            break
        except H.Fail:
            check(S["rivet"].alive(), "rivet exited while reading the photo")
            check(time.monotonic() < deadline, "no reply to the photo in %d s" % READ_TIMEOUT)
    check_style(got)
    t = text_of(got)
    lines = [l.strip() for l in t.splitlines()]
    for label, key in (("Manufacturer", "manufacturer"), ("Model", "model"),
                       ("Serial", "serial")):
        want = "%s: %s" % (label, truth[key])
        check(want in lines, "no line %r in the reply" % want, t)
    check("Roof unit 4" in t, "the caption is not in the reply: %r" % t)
    # downloaded through the media endpoints, with the token
    calls = fake.calls(since)
    media = [c for c in calls if c["endpoint"] == "media"]
    dl = [c for c in calls if c["endpoint"] == "media_download"]
    check(media and all(c["auth_ok"] and c["ok"] for c in media), "GET /{media-id}: %r" % [
        (c["path"], c["status"]) for c in media])
    check(media[0]["path"].endswith("/" + mid), "the media id asked for: %r" % media[0]["path"])
    eq([(c["auth_ok"], c["status"]) for c in dl], [(True, 200)], "the download")
    eq(fake.state()["media"][mid]["downloads"], 1, "downloads of the photo")
    rows = env.sql("SELECT channel, file_id, sha256 FROM nameplate_reads")
    eq(len(rows), 1, "nameplate reads")
    eq(rows[0][:2], ["whatsapp", mid], "the read's channel and file id")
    # its buttons: a press saves the machine
    check(any(b[1].startswith("/photo save ") for b in buttons_of(got)),
          "no Save button: %r" % buttons_of(got))
    since = press(ANN, got, "/photo save ")
    t = text_of(fake.replies(ANN, 1, since=since)[0])
    check("EQ-" in t, "Save answered %r" % t)
    eq(env.sql_value("SELECT count(*) FROM equipment WHERE serial = '%s'" % truth["serial"]),
       "1", "the machine saved from the photo")
    eqn = H.EQ_RE.search(t).group(0)
    # the same image as a file (a document with an image type): fetched,
    # not read again, and the machine it became is named
    n_reads = len(S["rivet"].lines("photo.read"))
    since = fake.last_seq()
    sent = fake.image(ANN, data, kind="document", filename="plate.jpg")
    t = text_of(fake.replies(ANN, 1, since=since, timeout=READ_TIMEOUT)[0])
    check(eqn in t, "the document's reply does not name %s: %r" % (eqn, t))
    eq(len(S["rivet"].lines("photo.read")), n_reads, "ev=photo.read lines for bytes read before")
    eq(fake.state()["media"][sent["media_id"]]["downloads"], 1, "downloads of the document")
    # a PDF is refused without a download
    since = fake.last_seq()
    sent = fake.message(ANN, kind="document", data_b64="JVBERi0xLjQKJeLjz9MK",
                        mime_type="application/pdf", filename="manual.pdf")
    t = text_of(fake.replies(ANN, 1, since=since)[0])
    check("photos of nameplates" in t, "a PDF answered %r" % t)
    eq(fake.state()["media"][sent["media_id"]]["urls_issued"], 0, "media urls asked for a PDF")


def t_statuses(env):
    fake = wa()
    call = ask(ANN, "/equip view " + S["eq"])
    wamid = call["message_id"]
    check(wamid, "the send got no wamid: %r" % call)
    H.wait_until(lambda: env.sql("SELECT 1 FROM outbox WHERE remote_id = '%s'" % wamid), 10,
                 "the outbox row of %s" % wamid)
    eq(outbox_row(env, wamid)[4], "", "remote_status before any report")
    steps = (("sent", "sent"), ("delivered", "delivered"), ("read", "read"),
             ("delivered", "read"), ("sent", "read"), ("failed", "read"))
    for status, want in steps:
        fake.status(wamid, status)
        eq(outbox_row(env, wamid)[4], want, "remote_status after %s" % status)
    # a failure reported after sent is recorded with Meta's error
    call = ask(ANN, "/wo view " + S["wo"])
    wamid = call["message_id"]
    H.wait_until(lambda: env.sql("SELECT 1 FROM outbox WHERE remote_id = '%s'" % wamid), 10,
                 "the outbox row of %s" % wamid)
    fake.status(wamid, "sent")
    fake.status(wamid, "failed", error_code=131026)
    row = outbox_row(env, wamid)
    eq(row[4], "failed", "remote_status after sent, failed")
    check("131026" in row[5], "remote_error: %r" % row[5])
    fake.status(wamid, "delivered")
    eq(outbox_row(env, wamid)[4], "failed", "remote_status after a late delivered")
    # a status for a message Rivet never sent: 200, nothing changes
    got = fake.status("wamid.HBgLMTIzNDU2Nzg5MBUCABEYEkRFQURCRUVGMDAwMDAwMDAA", "read",
                      recipient_id=ANN)
    eq(env.sql_value("SELECT count(*) FROM outbox WHERE remote_id LIKE 'wamid.HBgLMTIzNDU2%'"),
       "0", "rows of an unknown wamid")
    # statuses delivered twice are recorded once
    got = fake.status(call["message_id"], "read", times=2)
    eq(outbox_row(env, wamid)[4], "read", "remote_status after read (twice)")


def t_statuses_fast(env):
    """Statuses Meta sends the instant a message is accepted (before the
    sender recorded its id) are recorded too."""
    fake = wa()
    fake.ctl("auto_statuses", on=True, delay_s=0)
    try:
        tag = unique("fast")
        since = fake.last_seq()
        for i in range(20):
            fake.message(ANN, "/equip search %s-%d" % (tag, i))
        fake.replies(ANN, 20, since=since, contains=tag, timeout=60)
    finally:
        fake.ctl("auto_statuses", on=False, delay_s=0.05)

    def missing():
        return env.sql("SELECT id, coalesce(remote_status, '-') FROM outbox WHERE channel = "
                       "'whatsapp' AND payload LIKE '%%%s%%' AND remote_status IS DISTINCT "
                       "FROM 'delivered' ORDER BY id" % tag)
    try:
        H.wait_until(lambda: not missing(), 30, "every row's statuses")
    except H.Fail:
        raise H.Fail("rows whose statuses were lost: %r" % missing())
    eq(env.sql_value("SELECT count(*) FROM outbox WHERE channel = 'whatsapp' AND payload LIKE "
                     "'%%%s%%'" % tag), "20", "rows of the 20 replies")


# ---------------------------------------------------------------------------
# Alarms and the 24-hour window
# ---------------------------------------------------------------------------

def alarm_to(user, alarm_id, since, timeout=30):
    """The first message to user after since that carries the alarm."""
    def pred(c):
        if not c["ok"]:
            return False
        if kind_of(c) == "template":
            return ("0", "/ack %d" % alarm_id) in template_of(c)[3]
        return any(b[1] == "/ack %d" % alarm_id for b in buttons_of(c))
    return wa().wait_calls(pred, 1, timeout, "alarm %d to %s" % (alarm_id, user), since=since,
                           to=user)[0]


def t_alarm(env):
    since = wa().last_seq()
    alarm_id, dev = raise_alarm(env)
    S["alarm"] = alarm_id
    for user in (ANN, BOB):
        got = alarm_to(user, alarm_id, since)
        check_style(got)
        t = text_of(got)
        for needle in ("HIGH", dev, "temp 91.5 > 80"):
            check(needle in t, "the alarm to %s lacks %r" % (user, needle), t)
        ids = [b[1] for b in buttons_of(got)]
        for want in ("/ack %d" % alarm_id, "/wo alarm %d" % alarm_id):
            check(want in ids, "the alarm's buttons lack %r: %r" % (want, buttons_of(got)))
        S.setdefault("alarm_msg", {})[user] = got
    since = press(ANN, S["alarm_msg"][ANN], "/ack ")
    got = wa().replies(ANN, 1, since=since, contains="Acknowledged by Ann")[0]
    check_style(got)
    row = env.sql("SELECT u.display_name FROM alarms a JOIN users u ON u.id = a.acknowledged_by "
                  "WHERE a.id = %d" % alarm_id)
    eq(row, [["Ann"]], "acknowledged by")
    # Bob's copy comes again as a new message (WhatsApp cannot edit)
    wa().replies(BOB, 1, since=since, contains="Acknowledged by Ann")
    # a second press says who was first
    since = press(BOB, S["alarm_msg"][BOB], "/ack ")
    t = text_of(wa().replies(BOB, 1, since=since, contains="already")[0])
    check("Ann" in t, "a second press says %r" % t)


def t_window_template(env):
    close_window(env, BOB)
    since = wa().last_seq()
    alarm_id, dev = raise_alarm(env)
    got = alarm_to(BOB, alarm_id, since)
    eq(kind_of(got), "template", "the alarm outside the window goes as")
    name, lang, params, payloads = template_of(got)
    eq((name, lang), (W.TEMPLATE, W.TEMPLATE_LANGUAGE), "the template's name and language")
    # {{1}} is the alarm's lines joined (docs/whatsapp.md): the severity,
    # the machine or device, and what crossed which threshold
    eq(len(params), 1, "the template's body parameters")
    check(params[0].startswith("🟠 HIGH · alarm #%d · " % alarm_id) and dev in params[0]
          and "91.5" in params[0] and "\n" not in params[0],
          "the template's {{1}} does not say what happened: %r" % params[0])
    eq(payloads, [("0", "/ack %d" % alarm_id), ("1", "/wo alarm %d" % alarm_id)],
       "the quick-reply payloads")
    # inside the window, Ann got it free-form
    k = kind_of(alarm_to(ANN, alarm_id, since))
    check(k in ("button", "list"), "Ann's copy inside the window went as %s" % k)
    # Ann acknowledges: Bob's updated copy is no alarm and may not go
    since = press(ANN, alarm_to(ANN, alarm_id, since), "/ack ")
    wa().replies(ANN, 1, since=since, contains="Acknowledged by Ann")
    H.wait_until(lambda: env.sql(
        "SELECT last_error FROM outbox WHERE channel = 'whatsapp' AND chat_id = '%s' "
        "AND failed_at IS NOT NULL AND payload LIKE '%%Acknowledged by Ann%%' "
        "AND payload LIKE '%%%s%%'" % (BOB, dev)), 20, "Bob's update row failed")
    err = env.sql_value("SELECT last_error FROM outbox WHERE channel = 'whatsapp' AND "
                        "chat_id = '%s' AND failed_at IS NOT NULL AND payload LIKE '%%%s%%' "
                        "AND payload LIKE '%%Acknowledged by Ann%%'" % (BOB, dev))
    check("24-hour window" in err, "the row's error: %r" % err)
    sent = [c for c in wa().calls(since, "messages", BOB) if "Acknowledged by Ann" in text_of(c)]
    eq(sent, [], "sends of the update to Bob outside the window")
    # the template's quick reply runs /wo alarm N and reopens the window
    since = wa().last_seq()
    wa().press(BOB, "/wo alarm %d" % alarm_id, "Work order", kind="button")
    t = text_of(wa().replies(BOB, 1, since=since)[0])
    check(dev in t, "the template's Work order button answered %r" % t)
    check(env.sql_value("SELECT last_inbound_at > now() - interval '1 minute' FROM chat_windows WHERE "
                        "channel = 'whatsapp' AND chat_id = '%s'" % BOB) == "t",
          "Bob's window was not reopened")


def t_late_delivery(env):
    """A message Meta delivers 25 hours late (after an outage) does not
    reopen the window: it started when the person wrote."""
    fake = wa()
    close_window(env, BOB)
    tag = unique("late")
    since = fake.last_seq()
    fake.message(BOB, "/equip search " + tag, timestamp=time.time() - 25 * 3600)
    H.wait_until(lambda: env.sql("SELECT 1 FROM outbox WHERE channel = 'whatsapp' AND "
                                 "payload LIKE '%%%s%%' AND failed_at IS NOT NULL" % tag), 20,
                 "the reply to the late message given up")
    err = env.sql_value("SELECT last_error FROM outbox WHERE channel = 'whatsapp' AND "
                        "payload LIKE '%%%s%%'" % tag)
    check("24-hour window" in err, "the row's error: %r" % err)
    eq([W.describe(c) for c in fake.calls(since, "messages", BOB)], [],
       "sends to Bob (Meta would refuse them)")
    check(env.sql_value("SELECT last_inbound_at < now() - interval '24 hours' FROM chat_windows "
                        "WHERE channel = 'whatsapp' AND chat_id = '%s'" % BOB) == "t",
          "the late message moved Bob's window")
    # what he writes now opens it
    t = text_of(ask(BOB, "/equip search " + tag))
    check(tag in t, "the reply after a fresh message: %r" % t)


def t_storm_escalation(env):
    """Outside the window a storm summary and an escalation go as the
    template too."""
    fake = wa()
    close_window(env, ANN)
    since = fake.last_seq()
    devs = []
    for i in range(6):
        S["devices"] += 1
        devs.append("storm-%d" % S["devices"])
    S["broker"].publish_many([("factories/%s/devices/%s/telemetry" % (S["north"], d),
                               json.dumps({"timestamp": stamp(), "metrics": {"temp": 99}}))
                              for d in devs])
    got = fake.wait_calls(lambda c: c["ok"] and kind_of(c) == "template"
                          and template_of(c)[2][0].startswith("🚨"), 1, 30,
                          "the storm summary to Ann", since=since, to=ANN)[0]
    eq(template_of(got)[3], [("0", "/alerts"), ("1", "/alerts")], "the summary's payloads")
    singles = [c for c in fake.calls(since, "messages", ANN)
               if c["ok"] and kind_of(c) == "template" and "/ack " in json.dumps(c["body"])]
    # at most 3 one by one in a storm window (more only if the 6 were
    # spread over more than one window)
    check(3 <= len(singles) < 6, "%d alarms sent one by one" % len(singles))
    non_templates = [W.describe(c) for c in fake.calls(since, "messages", ANN)
                     if kind_of(c) != "template"]
    eq(non_templates, [], "free-form sends to Ann outside the window")
    # an escalation of a critical alarm nobody acknowledged (Ann is the
    # admin, and the factory has no supervisor)
    body = {"name": "Pressure", "severity": "critical", "cooldown_minutes": 0,
            "condition": {"parameter": "pres", "operator": "gt", "threshold": 10}}
    env.cli("rule", "add", "--factory", S["north"], rule_file(env, "pres", body))
    env.cli("factory", "set", S["north"], "escalate=2s")
    try:
        since = fake.last_seq()
        S["broker"].publish("factories/%s/devices/boiler-1/telemetry" % S["north"],
                            [json.dumps({"timestamp": stamp(), "metrics": {"pres": 12}})])
        got = fake.wait_calls(lambda c: c["ok"] and kind_of(c) == "template"
                              and template_of(c)[2][0].startswith("⏫"), 1, 40,
                              "the escalation to Ann", since=since, to=ANN)[0]
    finally:
        env.cli("factory", "set", S["north"], "escalate=0")
    alarm_id = int(env.sql_value("SELECT max(id) FROM alarms"))
    eq(template_of(got)[3], [("0", "/ack %d" % alarm_id), ("1", "/wo alarm %d" % alarm_id)],
       "the escalation's payloads")
    # Ann writes again: free-form from now on
    since = fake.last_seq()
    fake.message(ANN, "/ack %d" % alarm_id)
    got = fake.replies(ANN, 1, since=since, contains="Acknowledged")
    check(all(kind_of(c) != "template" for c in got), "the answer went as a template")
    fake.settle(ANN, since)  # the updated copies too


def t_131047_send(env):
    wa().fault("131047", to=ANN)
    since = wa().last_seq()
    alarm_id, dev = raise_alarm(env)
    got = alarm_to(ANN, alarm_id, since)
    eq(kind_of(got), "template", "the alarm after 131047")
    calls = [c for c in wa().calls(since, "messages", ANN)]
    refused = [c for c in calls if c.get("fault") == "131047"]
    eq(len(refused), 1, "sends refused with 131047")
    check(kind_of(refused[0]) in ("button", "list") and "/ack %d" % alarm_id in
          json.dumps(refused[0]["body"]), "the refused send was not the alarm")
    row = outbox_row(env, got["message_id"], "sent_at IS NOT NULL, failed_at IS NULL")
    eq(row, ["t", "t"], "the alarm's row sent")
    # a reply just after still goes free-form (Ann's window is open)
    got = ask(ANN, "/alerts")
    check(kind_of(got) != "template", "a reply after the template went as %s" % kind_of(got))


def t_131047_status(env):
    # reported the instant the send is accepted, before the sender recorded
    # the message's id
    wa().ctl("auto_statuses", on=False, delay_s=0)
    wa().fault("131047", to=ANN, as_status=True)
    since = wa().last_seq()
    alarm_id, dev = raise_alarm(env)
    # the free-form alarm is accepted, then reported failed ...
    first = wa().wait_calls(lambda c: c["ok"] and c.get("fault") == "131047", 1, 30,
                            "the accepted alarm", since=since, to=ANN)[0]
    # ... and the template follows
    got = wa().wait_calls(lambda c: c["ok"] and kind_of(c) == "template"
                          and ("0", "/ack %d" % alarm_id) in template_of(c)[3], 1, 30,
                          "the template after the failed status", since=since, to=ANN)[0]
    eq(template_of(got)[0], W.TEMPLATE, "the template's name")
    row = outbox_row(env, first["message_id"])
    eq(row[4], "failed", "the free-form row's remote_status")
    check("131047" in row[5], "the free-form row's remote_error: %r" % row[5])
    eq(outbox_row(env, got["message_id"], "sent_at IS NOT NULL")[0], "t", "the template's row")
    # the same failure reported again queues nothing more
    wa().status(first["message_id"], "failed", error_code=131047)
    n = [c for c in wa().settle(ANN, since) if kind_of(c) == "template"]
    eq(len(n), 1, "templates sent for the alarm")


def fault_then_delivered(env, kind, count=1, min_attempts=2, timeout=40):
    fake = wa()
    tag = unique(kind)
    fake.fault(kind, to=ANN, count=count)
    since = fake.last_seq()
    fake.message(ANN, "/equip search " + tag)
    got = fake.replies(ANN, 1, since=since, contains=tag, timeout=timeout)[0]
    tries = [c for c in fake.calls(since, "messages", ANN) if tag in json.dumps(c["body"])]
    eq([c["ok"] for c in tries], [False] * count + [True], "the sends of the reply (%s)" % kind)
    # nothing more for it: a marker after it is delivered, and the reply
    # was accepted once
    ask(ANN, "/alerts")
    ok = [c for c in fake.calls(since, "messages", ANN) if c["ok"] and tag in text_of(c)]
    eq(len(ok), 1, "accepted sends of the reply (%s)" % kind)
    row = outbox_row(env, got["message_id"], "attempts, coalesce(last_error, ''), "
                     "sent_at IS NOT NULL")
    check(int(row[0]) >= min_attempts and row[2] == "t", "the row after %s: %r" % (kind, row))
    return row, tries


def t_retries(env):
    for kind, code in (("130429", "130429"), ("500", "1 "), ("503", "2 "),
                       ("131000", "131000")):
        row, _ = fault_then_delivered(env, kind)
        check(row[1].startswith(code), "last_error after %s: %r" % (kind, row[1]))
    # a connection closed without an answer: sent again (libcurl itself
    # sends again at once on a kept-alive connection found dead)
    fault_then_delivered(env, "drop", min_attempts=1)
    # the pair limit: that chat waits (6 s), then it goes
    t0 = time.monotonic()
    row, tries = fault_then_delivered(env, "131056")
    check(row[1].startswith("131056"), "last_error after 131056: %r" % row[1])
    gap = tries[-1]["started"] - tries[0]["time"]
    check(gap >= 5, "the retry after 131056 came %.1f s later (the chat waits 6 s)" % gap)
    H.Tap.diag("131056 retried after %.1f s (%.1f s in all)" % (gap, time.monotonic() - t0))


def t_token_retry(env):
    """190: the token refused; retried (a rotated token can be deployed),
    and /healthz says so meanwhile."""
    fake = wa()
    tag = unique("tok")
    fake.fault("190", to=ANN, count=3)
    since = fake.last_seq()
    fake.message(ANN, "/equip search " + tag)
    fake.wait_calls(lambda c: c.get("fault") == "190", 1, 20, "a refused send", since=since,
                    to=ANN)

    def unhealthy():
        st, _, body = S["rivet"].http("GET", "/healthz")
        return st == 503 and b"refuses WHATSAPP_TOKEN" in body
    H.wait_until(unhealthy, 10, "/healthz saying the token is refused", interval=0.05)
    got = fake.replies(ANN, 1, since=since, contains=tag, timeout=40)[0]
    tries = [c for c in fake.calls(since, "messages", ANN) if tag in json.dumps(c["body"])]
    eq([c["ok"] for c in tries], [False] * 3 + [True], "the sends of the reply")
    row = outbox_row(env, got["message_id"], "attempts, last_error")
    check(int(row[0]) == 4 and row[1].startswith("190 "), "the row: %r" % row)
    st, _, body = S["rivet"].http("GET", "/healthz")
    eq(st, 200, "/healthz after a send went (%r)" % body)


def t_invalid_parameter(env):
    fake = wa()
    for kind, words in (("100", "Invalid parameter"), ("131026", "undeliverable")):
        tag = unique("p" + kind)
        fake.fault(kind, to=ANN)
        since = fake.last_seq()
        fake.message(ANN, "/equip search " + tag)
        fake.wait_calls(lambda c: c.get("fault") == kind, 1, 20, "the refused send",
                        since=since, to=ANN)
        # the chat's next reply goes, so the row is no longer pending
        ask(ANN, "/alerts")
        tries = [c for c in fake.calls(since, "messages", ANN) if tag in json.dumps(c["body"])]
        eq(len(tries), 1, "sends of a reply refused with %s" % kind)
        rows = env.sql("SELECT failed_at IS NOT NULL, sent_at IS NULL, attempts, last_error "
                       "FROM outbox WHERE channel = 'whatsapp' AND payload LIKE '%%%s%%'" % tag)
        eq(len(rows), 1, "rows of the reply")
        eq(rows[0][:3], ["t", "t", "1"], "failed for good after one attempt (%s)" % kind)
        check(rows[0][3].startswith(kind + " ") and words.lower() in rows[0][3].lower(),
              "the row's error: %r" % rows[0][3])


# ---------------------------------------------------------------------------
# One person, two channels
# ---------------------------------------------------------------------------

def t_link(env):
    tg = S["tg"]
    H.register(env, tg, S["north"], [(CARL_TG, "Carl")])
    got = tg.ask(CARL_TG, "/link")
    m = re.search(r"/link ([A-Z0-9-]{6,})", H.text_of(got))
    check(m, "no code in %r" % H.text_of(got))
    code = m.group(1)
    since_tg = tg.last_seq()
    t = text_of(ask(CARL_WA, "/link " + code, name="Carl (WA)"))
    check("Linked" in t and "Carl" in t and "Plant North" in t, "/link CODE answered %r" % t)
    t = H.text_of(tg.replies(CARL_TG, 1, since=since_tg, contains="WhatsApp")[0])
    check(CARL_WA in t, "the Telegram chat was told %r" % t)
    eq(env.sql("SELECT telegram_user_id, whatsapp_id FROM users WHERE display_name = 'Carl'"),
       [[str(CARL_TG), CARL_WA]], "Carl's identities")
    # the code was for one use
    t = text_of(ask(STRANGER, "/link " + code))
    check("not valid" in t, "a used link code answered %r" % t)
    # the same work orders on both
    t = text_of(ask(CARL_WA, "/wo new %s Belt slips on line 3" % S["eq"]))
    wo = H.WO_RE.search(t).group(0)
    t = H.text_of(tg.ask(CARL_TG, "/wo assign %s me" % wo))
    check("assigned to Carl" in t, "assign on Telegram: %r" % t)
    t = text_of(ask(CARL_WA, "/wo list mine"))
    check(wo in t and S["wo"] not in t, "/wo list mine on WhatsApp: %r" % t[:300])
    t = H.text_of(tg.ask(CARL_TG, "/wo list mine"))
    check(wo in t and S["wo"] not in t, "/wo list mine on Telegram: %r" % t[:300])
    S["carl_wo"] = wo


def t_link_alarm(env):
    tg, fake = S["tg"], wa()
    since_tg, since = tg.last_seq(), fake.last_seq()
    alarm_id, dev = raise_alarm(env)
    tg.replies(CARL_TG, 1, since=since_tg, contains=dev)
    alarm_to(CARL_WA, alarm_id, since)
    for user in (ANN, BOB):
        alarm_to(user, alarm_id, since)
    # a marker through each chat (the chat's messages go in order), then count
    tg.ask(CARL_TG, "/help wo")
    ask(CARL_WA, "/help wo")
    n_tg = [c for c in tg.calls("sendMessage", CARL_TG, since_tg) if dev in H.text_of(c)]
    n_wa = [c for c in fake.calls(since, "messages", CARL_WA) if dev in text_of(c)]
    eq((len(n_tg), len(n_wa)), (1, 1), "Carl's copies of the alarm (Telegram, WhatsApp)")
    eq(env.sql("SELECT channel FROM alarm_deliveries WHERE alarm_id = %d AND user_id = "
               "(SELECT id FROM users WHERE display_name = 'Carl') ORDER BY 1" % alarm_id),
       [["telegram"], ["whatsapp"]], "Carl's deliveries")
    # acknowledged on WhatsApp, the Telegram copy is edited
    since_tg = tg.last_seq()
    press(CARL_WA, n_wa[0], "/ack ")
    tg.wait_calls(lambda c: c["ok"] and c["method"] == "editMessageText"
                  and "Acknowledged by Carl" in H.text_of(c), 1, 20,
                  "the Telegram copy edited", since=since_tg, chat_id=CARL_TG)


def t_link_from_whatsapp(env):
    """The other way round: /link on WhatsApp, /link CODE on Telegram;
    then /unlink."""
    tg = S["tg"]
    code = env.invite(S["north"], "technician")
    t = text_of(ask(DAN_WA, "/start " + code, name="Dan"))
    check("Welcome to Rivet, Dan" in t, "Dan's welcome: %r" % t)
    t = text_of(ask(DAN_WA, "/link"))
    m = re.search(r"/link ([A-Z0-9-]{6,})", t)
    check(m and "On Telegram" in t, "/link on WhatsApp answered %r" % t)
    since = wa().last_seq()
    t = H.text_of(tg.ask(DAN_TG, "/link " + m.group(1), first_name="Dan"))
    check("Linked" in t and "Dan" in t, "/link CODE on Telegram answered %r" % t)
    t = text_of(wa().replies(DAN_WA, 1, since=since, contains="Telegram account")[0])
    check(str(DAN_TG) in t and "/unlink telegram" in t, "Dan's WhatsApp was told %r" % t)
    # unlinking the channel one writes from is refused
    t = text_of(ask(DAN_WA, "/unlink whatsapp"))
    check("lock you out" in t, "/unlink whatsapp on WhatsApp answered %r" % t)
    t = H.text_of(tg.ask(DAN_TG, "/unlink whatsapp"))
    check("unlinked" in t, "/unlink whatsapp on Telegram answered %r" % t)
    eq(env.sql("SELECT telegram_user_id, coalesce(whatsapp_id, '-') FROM users "
               "WHERE display_name = 'Dan'"), [[str(DAN_TG), "-"]], "Dan's identities")
    t = text_of(ask(DAN_WA, "/wo list"))
    check(H.NOT_REGISTERED in t, "the unlinked number answered %r" % t)


# ---------------------------------------------------------------------------
# The end
# ---------------------------------------------------------------------------

def t_all_sends_valid(env):
    calls = wa().calls(0, "messages")
    check(len(calls) > 40, "only %d sends" % len(calls))
    bad = [c for c in calls if not c["ok"] and not c.get("fault")]
    check(not bad, "%d sends refused by the fake without a fault" % len(bad),
          *[W.describe(c) + " " + json.dumps(c.get("response"))[:300] for c in bad[:5]])
    for c in calls:
        if c["ok"]:
            check_style(c)
        eq(c["auth"], "ok", "the token of %s" % W.describe(c))
    st = wa().state()["stats"]
    eq(st["internal_errors"], 0, "the fake's internal errors")


def t_secrets(env):
    r = S["rivet"]
    check(r.alive(), "rivet serve died: exit %s" % r.returncode())
    H.check_no_crash(env)
    H.check_no_token(env)
    leaks = W.secret_leaks(env)
    check(not leaks, "a WhatsApp secret appears in %d log line(s)" % len(leaks),
          *["%s: %s" % l for l in leaks[:5]])
    for line in r.lines("wa.bad_signature"):
        check("sha256=" not in line, "a signature header in the log: %r" % line)
    rc, _ = r.sigterm(30)
    eq(rc, 0, "exit status after SIGTERM")
    H.check_no_crash(env)
    leaks = W.secret_leaks(env)
    check(not leaks, "a WhatsApp secret appears in %d log line(s)" % len(leaks),
          *["%s: %s" % l for l in leaks[:5]])


TESTS = [
    ("a WhatsApp-only rivet serve: verification, a stranger, SIGTERM", t_whatsapp_only),
    ("a refused WhatsApp token stops the start with one line", t_token_refused),
    ("rivet serve with Telegram, WhatsApp and MQTT starts", t_start_both),
    ("verification GET: the challenge for the right token, 403 otherwise", t_verify),
    ("bad signatures get 401 and store nothing; a valid one is stored", t_signature),
    ("malformed bodies get 400, store nothing; another number's message is not Rivet's",
     t_malformed),
    ("a stranger gets the not-registered explanation", t_stranger),
    ("/start CODE from strangers with invites", t_start),
    ("/help: WhatsApp's style, bold first line, pieces under 4096", t_help),
    ("/equip add, list (a list message; a row pressed), search, view; & and < literal",
     t_equip),
    ("/wo new, list, note, assign, view, status; a reply button pressed", t_wo),
    ("/stats and /alerts", t_stats_alerts),
    ("stickers, locations, voice, reactions get the short explanation", t_unsupported),
    ("a webhook delivered twice: one inbox row, one reply", t_duplicate),
    ("PostgreSQL cannot store it: 503, and sent again it is stored once", t_database_busy),
    ("a nameplate photo is downloaded through the media endpoints and read", t_photo),
    ("statuses are recorded on the outbox row and never move back", t_statuses),
    ("statuses sent the instant a message is accepted are not lost", t_statuses_fast),
    ("an alarm over MQTT reaches WhatsApp users with buttons; Acknowledge", t_alarm),
    ("outside the 24-hour window: the alarm template; a non-alarm is not sent",
     t_window_template),
    ("a message delivered 25 hours late does not reopen the window", t_late_delivery),
    ("outside the window a storm summary and an escalation go as the template",
     t_storm_escalation),
    ("131047 on a free-form alarm: the template is sent instead", t_131047_send),
    ("131047 as a failed status: the template is queued and sent", t_131047_status),
    ("130429, 5xx, 131000 and 131056 are retried and delivered once", t_retries),
    ("190 token refused: retried, /healthz says so meanwhile", t_token_retry),
    ("100 and 131026: failed for good, not retried", t_invalid_parameter),
    ("Telegram /link, WhatsApp /link CODE: the same work orders on both", t_link),
    ("a linked user gets each alarm once per channel", t_link_alarm),
    ("/link on WhatsApp, /link CODE on Telegram, /unlink", t_link_from_whatsapp),
    ("every send was valid for the fake", t_all_sends_valid),
    ("no WhatsApp secret in any log line; no crash; clean exit", t_secrets),
]

if __name__ == "__main__":
    sys.exit(H.main("whatsapp", TESTS, setup))
