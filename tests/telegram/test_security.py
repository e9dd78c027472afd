#!/usr/bin/env python3
"""No secret and no phone number in Rivet's logs (docs/SECURITY.md,
guarantee 7): one `rivet serve` at RIVET_LOG_LEVEL=debug with every secret
configured — the Telegram bot token and a webhook secret, the WhatsApp
access token, app secret and verify token, an LLM API key, an MQTT user
name and password (a broker of its own that refuses anyone else) and a
PostgreSQL user with a password in DATABASE_URL — runs a representative
day:

- Telegram members join with an invite, add a machine, open, move and note
  a work order with buttons, ask the assistant (the fake LLM);
- WhatsApp members join with an invite and use commands and buttons; a
  stranger is refused, then guesses invite codes until the limit; a
  Telegram member links a WhatsApp number with /link;
- webhook posts with wrong signatures and verification requests with wrong
  and right tokens;
- a telemetry message over the limit raises an alarm, delivered on both
  channels; it is acknowledged from WhatsApp;
- SIGTERM.

Then every line rivet wrote is searched for each secret, each invite and
link code used, and each WhatsApp user's phone number.
"""

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
from harness import check, eq, text_of, buttons_of  # noqa: E402

TG_WEBHOOK_SECRET = "tgWEBHOOKsecret-NEVERinLOGS_5vR8"
LLM_KEY = "llm-key-SECURITYtestNEVERinLOGS_k3J9"
LLM_MODEL = "fake-chat"
MQTT_USER = "rivet-sec"
MQTT_PASSWORD = "mqttPW-securityNEVERlogged-Zt4"
DB_PASSWORD = "pgPW-securityNEVERlogged-Qm7"

ANN, BOB = 9101, 9102  # Telegram: admin, technician of Plant North
WANDA = "4915770000101"  # WhatsApp technician
WALT = "4915770000102"  # WhatsApp stranger who guesses codes
LINKED = "4915770000103"  # Ann's WhatsApp, linked with /link
PHONES = (WANDA, WALT, LINKED)

S = {"codes": []}  # state shared by the test points, in order


def wa():
    return S["wa"]


def tg():
    return S["tg"]


def wa_ask(user, text, contains=None, **kw):
    since = wa().last_seq()
    wa().message(user, text, **kw)
    return W.text_of(wa().replies(user, 1, since=since, contains=contains)[0])


def invite(role="technician"):
    code = S["env"].invite(S["north"], role)
    S["codes"].append(code)
    return code


# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------

def setup(env):
    for k in list(os.environ):
        if k.startswith(("LLM_", "ASSIST_", "MQTT_")):
            del os.environ[k]
    S["env"] = env
    # A PostgreSQL user with a password, owning the test database: its URL
    # (password included) is what every rivet here is given.
    role = "rivet_sec_%d" % os.getpid()
    env._psql(env.pg_url, "CREATE ROLE %s LOGIN PASSWORD '%s'" % (role, DB_PASSWORD))
    env._psql(env.pg_url, 'ALTER DATABASE "%s" OWNER TO %s' % (env.db_name, role))
    close = env.close

    def close_all(keep=False):
        close(keep)
        for stop in S.get("stops", []):
            stop()
        try:
            env._psql(env.pg_url, "DROP ROLE IF EXISTS %s" % role)
        except Exception as e:  # the database may still be kept for a look
            sys.stderr.write("could not drop role %s: %s\n" % (role, e))

    env.close = close_all
    env.db_url = re.sub(r"://[^@/]*@", "://%s:%s@" % (role, urllib.parse.quote(DB_PASSWORD)),
                        env.db_url, count=1)
    check(DB_PASSWORD in env.db_url, "no password in %r" % env.db_url)

    S["tg"] = env.start_fake()
    S["wa"] = W.WAFake(env)
    S["llm"] = llm = H.FakeLLM(env, LLM_KEY)
    S["stops"] = [llm.stop]
    llm.ctl("options", {"require_image": False})
    passwd = os.path.join(env.tmp, "mq.passwd")
    p = subprocess.run(["mosquitto_passwd", "-b", "-c", passwd, MQTT_USER, MQTT_PASSWORD],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    check(p.returncode == 0, "mosquitto_passwd exited %d" % p.returncode, p.stdout.decode())
    S["broker"] = H.Broker(env, name="mq-sec",
                           conf_extra="allow_anonymous false\npassword_file %s\n" % passwd,
                           client_args=["-u", MQTT_USER, "-P", MQTT_PASSWORD]).start()
    S["stops"].append(S["broker"].stop)

    S["north"] = env.factory("Plant North")
    path = os.path.join(env.tmp, "pressure.json")
    with open(path, "w") as f:
        f.write('{"name": "Pressure", "severity": "critical", "cooldown_minutes": 0, '
                '"condition": {"parameter": "pressure", "operator": "gte", "threshold": 9}}')
    check("added rule" in env.cli("rule", "add", "--factory", S["north"], path), "rule add")

    S["rivet"] = env.rivet(
        "A", RIVET_LOG_LEVEL="debug", TELEGRAM_WEBHOOK_SECRET=TG_WEBHOOK_SECRET,
        LLM_URL=llm.url + "/v1", LLM_MODEL=LLM_MODEL, LLM_API_KEY=LLM_KEY, LLM_TIMEOUT_S=10,
        ASSIST_TIMEOUT_S=5, MQTT_URL=S["broker"].url, MQTT_USERNAME=MQTT_USER,
        MQTT_PASSWORD=MQTT_PASSWORD, MQTT_CLIENT_ID="rivet-security-test",
        **W.wa_settings(wa())).start()
    S["rivet"].wait_log("ev=tg.poll_leader", 20)
    S["rivet"].wait_log("ev=mqtt.connected", 20)
    wa().set_webhook(S["rivet"])


# ---------------------------------------------------------------------------
# A day of work
# ---------------------------------------------------------------------------

def t_telegram(env):
    t = text_of(tg().ask(ANN, "/start " + invite("admin"), first_name="Ann"))
    check("Welcome to Rivet" in t, "Ann: %r" % t)
    t = text_of(tg().ask(BOB, "/start " + invite(), first_name="Bob"))
    check("Welcome to Rivet" in t, "Bob: %r" % t)
    t = text_of(tg().ask(ANN, "/equip add Siemens G120C name=Press 1 location=Line 1"))
    S["eq"] = H.EQ_RE.search(t).group(0)
    t = text_of(tg().ask(ANN, "/equip edit %s device=press-1" % S["eq"]))
    check("No device press-1" in t or "press-1" in t, "device link: %r" % t)
    got = tg().ask(BOB, "/wo new %s Oil leak at the gearbox priority=high" % S["eq"])
    S["wo"] = H.WO_RE.search(text_of(got)).group(0)
    start = [d for label, d in buttons_of(got) if label == "▶ Start"]
    check(start, "no Start button: %r" % buttons_of(got))
    since = tg().last_seq()
    tg().press(BOB, got["result"]["message_id"], start[0])
    t = text_of(tg().replies(BOB, 1, since=since)[0])
    check("in progress" in t, "Start: %r" % t)
    t = text_of(tg().ask(BOB, "/wo note %s Seal ordered" % S["wo"]))
    check("Note added" in t, "note: %r" % t)
    t = text_of(tg().ask(BOB, "/equip edit %s location=Line 9" % S["eq"]))
    check(t.startswith("Only supervisors and admins"), "a technician's edit: %r" % t)
    S["llm"].queue({"content": "1. Lock out the drive.\n2. Acknowledge F0021 on the panel."})
    t = text_of(tg().ask(BOB, "how do I reset fault F0021 on a Siemens G120C?", timeout=30))
    check("Lock out the drive" in t, "the assistant: %r" % t)


def t_whatsapp(env):
    t = wa_ask(WANDA, "/start " + invite(), name="Wanda")
    check("Welcome to Rivet" in t, "Wanda: %r" % t)
    t = wa_ask(WANDA, "/wo list")
    check(S["wo"] in t, "Wanda's /wo list: %r" % t)
    t = wa_ask(WANDA, "/wo note %s Checked on WhatsApp" % S["wo"])
    check("Note added" in t, "Wanda's note: %r" % t)
    t = wa_ask(WALT, "/wo list", name="Walt")
    check(H.NOT_REGISTERED in t, "a stranger's /wo list: %r" % t)
    for i in range(5):
        t = wa_ask(WALT, "/start AAAA-BBBB-CC%s%s" % ("23456789"[i], "X"))
        check("not valid" in t, "a guessed code: %r" % t)
    t = wa_ask(WALT, "/start " + invite())
    check("Too many invite codes" in t, "the sixth code: %r" % t)
    # Ann links her WhatsApp number.
    since = tg().last_seq()
    tg().message(ANN, "/link")
    t = text_of(tg().replies(ANN, 1, since=since, contains="/link ")[0])
    m = re.search(r"/link ([A-Z0-9]{3}-[A-Z0-9]{3}-[A-Z0-9]{3})", t)
    check(m, "no link code in %r" % t)
    S["codes"].append(m.group(1))
    t = wa_ask(LINKED, "/link " + m.group(1), name="Ann")
    check(t.startswith("Linked"), "the link: %r" % t)
    t = wa_ask(LINKED, "/wo view " + S["wo"])
    check("Oil leak" in t, "Ann's /wo view on WhatsApp: %r" % t)


def t_webhooks(env):
    r = S["rivet"]
    for mode in ("missing", "wrong", "tamper", "other_body"):
        wa().message(WALT, "/help", signature=mode, expect=401, name="Walt")
    for token in (W.WA_VERIFY_TOKEN[:-1] + "X", "", W.WA_VERIFY_TOKEN):
        st, _, _ = r.http("GET", "/webhook/whatsapp?" + urllib.parse.urlencode(
            {"hub.mode": "subscribe", "hub.challenge": "31337", "hub.verify_token": token}))
        eq(st, 200 if token == W.WA_VERIFY_TOKEN else 403, "verification with %r" % token[:4])
    # Telegram's webhook route is off in polling mode, whatever the secret.
    st, _, _ = r.http("POST", "/webhook/telegram", b"{}",
                      {"Content-Type": "application/json",
                       "X-Telegram-Bot-Api-Secret-Token": TG_WEBHOOK_SECRET})
    eq(st, 404, "the Telegram webhook in polling mode")
    st, _, body = r.http("GET", "/metrics")
    eq(st, 200, "/metrics")
    for s in (W.WA_APP_SECRET, W.WA_VERIFY_TOKEN, H.TOKEN_SECRET) + PHONES:
        check(s.encode() not in body, "/metrics shows %r" % s[:6])


def t_alarm(env):
    since_wa, since_tg = wa().last_seq(), tg().last_seq()
    S["broker"].publish("factories/%s/devices/press-1/telemetry" % S["north"],
                        ['{"timestamp": "%s", "metrics": {"pressure": 9.5}}'
                         % time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())])
    got = wa().replies(WANDA, 1, since=since_wa, contains="pressure")[0]
    tg().replies(BOB, 1, since=since_tg, contains="pressure")
    acks = [b for _, b in W.buttons_of(got) if b.startswith("/ack ")]
    check(acks, "no Acknowledge button on WhatsApp: %r" % W.describe(got))
    since = wa().last_seq()
    wa().press(WANDA, acks[0], "✅ Acknowledge")
    t = W.text_of(wa().replies(WANDA, 1, since=since, contains="cknowledged")[0])
    check("Alarm #" in t, "the acknowledgement: %r" % t)


def t_stop(env):
    rc, _ = S["rivet"].sigterm(30)
    eq(rc, 0, "exit status after SIGTERM")
    H.check_no_crash(env)


# ---------------------------------------------------------------------------
# The logs
# ---------------------------------------------------------------------------

def rivet_lines(env):
    lines = [(os.path.basename(p), l) for p, text in env.logs() for l in text.splitlines()]
    check(len(lines) > 80, "only %d log lines: was the log level debug?" % len(lines))
    check(any(" lvl=debug " in l for _, l in lines), "no debug line in the logs")
    return lines


def t_no_secret_logged(env):
    secrets = {
        "the bot token": H.TOKEN_SECRET,
        "the Telegram webhook secret": TG_WEBHOOK_SECRET,
        "the WhatsApp access token": W.WA_TOKEN,
        "the WhatsApp app secret": W.WA_APP_SECRET,
        "the WhatsApp verify token": W.WA_VERIFY_TOKEN,
        "the LLM API key": LLM_KEY,
        "the MQTT password": MQTT_PASSWORD,
        "the database password": DB_PASSWORD,
    }
    for i, code in enumerate(S["codes"]):
        secrets["code %d" % i] = code
        secrets["code %d without dashes" % i] = code.replace("-", "")
    lines = rivet_lines(env)
    leaks = ["%s in %s: %s" % (what, f, l[:300]) for f, l in lines
             for what, s in secrets.items() if s in l]
    check(not leaks, "%d secret(s) in the log" % len(leaks), *leaks[:8])
    env.tap.diag("%d log lines searched for %d secrets and codes: none found"
                 % (len(lines), len(secrets)))


# WhatsApp chat ids are phone numbers: log lines show them masked to the
# last four digits (chat_log_id() in bot/chat.c), so no full number may
# appear in any line.
def t_no_phone_number_logged(env):
    leaks = ["%s: %s" % (f, l[:300]) for f, l in rivet_lines(env) if any(p in l for p in PHONES)]
    check(not leaks, "a WhatsApp user's phone number is in %d log line(s)" % len(leaks),
          *leaks[:8])


TESTS = [
    ("Telegram: join, a machine, a work order with buttons, a refused edit, the assistant",
     t_telegram),
    ("WhatsApp: join, commands, a stranger refused and held back guessing codes, /link",
     t_whatsapp),
    ("webhooks: wrong signatures and verify tokens refused; /metrics shows no secret",
     t_webhooks),
    ("an alarm over MQTT (user and password) reaches both channels, acknowledged on WhatsApp",
     t_alarm),
    ("SIGTERM: exit 0, no sanitizer report", t_stop),
    ("no secret, invite code or link code in any log line (debug level)", t_no_secret_logged),
    ("no WhatsApp user's phone number in any log line",
     t_no_phone_number_logged),
]

if __name__ == "__main__":
    sys.exit(H.main("security", TESTS, setup))
