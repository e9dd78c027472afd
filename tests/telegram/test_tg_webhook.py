#!/usr/bin/env python3
"""Telegram in webhook mode: the fake Bot API posts updates to
/webhook/telegram instead of answering getUpdates.

Rivet W listens on a fixed port (TELEGRAM_WEBHOOK_URL has to name it before
rivet starts) and is restarted on it: with the derived secret, with
TELEGRAM_WEBHOOK_SECRET, and finally in polling mode, which must delete the
webhook and pick up what was queued for it. The fake runs with
--webhook-http on and retries failed deliveries every 0.2 to 1 s.

Forged posts (no secret, a wrong one, garbage bodies, repeated update_ids)
are made by the test itself, as Telegram never would. What was stored is
read from the inbox; what was answered from the fake's call log; the
counters from /metrics.
"""

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq, text_of  # noqa: E402

ANN = 8101   # admin of Plant South
BOB = 8102   # technician of Plant South
STRANGER = 8901
CUSTOM_SECRET = "Custom_webhook-SECRET_never_logged_0x5f3a"
DERIVED = hmac.new(H.TOKEN.encode(), b"rivet telegram webhook", hashlib.sha256).hexdigest()
ALLOWED = ["message", "edited_message", "callback_query", "my_chat_member"]
FORGED_BASE = 900000000  # update ids the fake never hands out (it counts from 500000001)
HTTP_TIMEOUT_S = 2

S = {}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def forge_update(url, update, secret=None, timeout=10, raw=None, ctype="application/json"):
    """POSTs an update (or raw bytes) to a webhook as Telegram would, with
    any secret or none; returns (HTTP status, body). From the fake's
    README."""
    headers = {"Content-Type": ctype}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    data = raw if raw is not None else json.dumps(update).encode()
    req = urllib.request.Request(url, data, headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def message_update(update_id, chat_id, text, from_id=None):
    return {"update_id": update_id,
            "message": {"message_id": update_id % 100000, "date": int(time.time()),
                        "chat": {"id": chat_id, "type": "private", "first_name": "F"},
                        "from": {"id": from_id or chat_id, "is_bot": False, "first_name": "F"},
                        "text": text}}


def forge(update, secret=DERIVED, **kw):
    return forge_update(S["url"], update, secret, **kw)


def inbox_rows(env, external_id):
    return int(env.sql_value("SELECT count(*) FROM inbox WHERE channel = 'telegram' "
                             "AND external_id = '%d'" % external_id))


def inbox_count(env):
    return int(env.sql_value("SELECT count(*) FROM inbox WHERE channel = 'telegram'"))


def marker(env, label):
    """A message from Bob through the fake, answered: everything Bob sent
    before it has been handled and answered (one chat is handled in
    order)."""
    S["markers"] = S.get("markers", 0) + 1
    word = "mark%d" % S["markers"]
    fake = S["fake"]
    since = fake.last_seq()
    fake.message(BOB, "/equip search " + word)
    fake.replies(BOB, 1, since=since, contains=word, timeout=30)


def deliveries(since=0, **kw):
    return S["fake"].ctl("deliveries", since=since, **kw)


def start_w(env, wait=True, **settings):
    base = {"HTTP_LISTEN": "127.0.0.1:%d" % S["port"], "TELEGRAM_WEBHOOK_URL": S["url"],
            "RIVET_LOG_LEVEL": "debug", "HTTP_TIMEOUT_S": str(HTTP_TIMEOUT_S)}
    base.update(settings)
    if "W" not in S:
        S["W"] = env.rivet("W", **base)
    else:
        S["W"].settings = dict(H.Rivet.DEFAULTS, **{k: str(v) for k, v in base.items()})
    return S["W"].start(wait=wait)


def W():
    check("W" in S and S["W"].alive(), "rivet W is not running")
    return S["W"]


class InboxLock:
    """Holds ACCESS EXCLUSIVE on the test database's inbox for a while
    (a psql of its own): a database that is slow for Rivet's webhook."""

    def __init__(self, env, seconds):
        self.env = env
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-d", env.db_url, "-c",
             "BEGIN; LOCK TABLE inbox IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(%s); COMMIT;"
             % seconds], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        H.wait_until(lambda: self.granted() or self.exited(), 20, "the lock on the inbox")

    def exited(self):
        if self.proc.poll() is not None:
            raise H.Fail("psql exited %s before the lock: %s" % (
                self.proc.returncode, self.proc.stderr.read().decode(errors="replace")))
        return False

    def granted(self):
        return self.env.sql_value(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'inbox' AND l.mode = 'AccessExclusiveLock' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ) == "1"

    def waiting_inserts(self):
        """Statements of Rivet waiting for the lock to add to the inbox (the
        webhook's handler, in hand)."""
        return int(self.env.sql_value(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO inbox%'"))

    def wait(self):
        self.proc.wait(60)
        self.proc.stderr.close()


def counter(m, name, **labels):
    return m.value(name, 0, **labels)


def setup(env):
    S["fake"] = env.start_fake("--webhook-http", "on", "--webhook-retry-min", "0.2",
                               "--webhook-retry-max", "1")
    S["south"] = env.factory("Plant South")
    S["port"] = H.free_port()
    S["url"] = "http://127.0.0.1:%d/webhook/telegram" % S["port"]


# ---------------------------------------------------------------------------
# test points
# ---------------------------------------------------------------------------

def t_set_webhook(env):
    """Rivet calls setWebhook with the URL, the secret derived from the
    token and allowed_updates, never getUpdates; an update posted while
    Telegram is still starting (getMe failing) is stored and answered
    once it has started."""
    fake = S["fake"]
    # the fake answers only chats it has seen: this message (queued before
    # any webhook, delivered once one is set) makes the stranger's known
    fake.message(STRANGER, "hello")
    fake.fault(method="getMe", kind="500", duration=2)
    r = start_w(env, wait=False)
    eq(r.listening_port(), S["port"], "the port W listens on")
    status, body = forge(message_update(FORGED_BASE + 1, STRANGER, "/help"))
    eq(status, 200, "a webhook post while starting")
    ready = " ev=serve.ready " in r.text()  # looked at before the request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % S["port"], timeout=10) as h:
            status, body = h.status, h.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    if not ready:
        eq((status, json.loads(body).get("telegram")), (503, "starting"),
           "/healthz while starting")
    r.wait_log("ev=serve.ready", 30)
    eq(inbox_rows(env, FORGED_BASE + 1), 1, "the update posted while starting, stored")
    for got in fake.replies(STRANGER, 2, timeout=30):
        check(H.NOT_REGISTERED in text_of(got), "the stranger was answered %r" % text_of(got))
    eq(env.sql_value("SELECT outcome FROM inbox WHERE external_id = '%d'" % (FORGED_BASE + 1)),
       "ok", "the outcome of the update posted while starting")
    calls = fake.calls("setWebhook")
    eq(len(calls), 1, "setWebhook calls")
    p = calls[0]["params"]
    check(calls[0]["ok"], "setWebhook refused: %s" % calls[0].get("description"))
    eq(p.get("url"), S["url"], "setWebhook url")
    eq(p.get("secret_token"), DERIVED, "setWebhook secret_token (derived from the token)")
    check(re.fullmatch(r"[A-Za-z0-9_-]{1,256}", p["secret_token"]), "secret_token charset")
    eq(sorted(p.get("allowed_updates") or []), sorted(ALLOWED), "setWebhook allowed_updates")
    check("drop_pending_updates" not in p, "setWebhook drops pending updates")
    eq(fake.calls("getUpdates"), [], "getUpdates calls in webhook mode")
    eq(fake.calls("deleteWebhook"), [], "deleteWebhook calls in webhook mode")
    check(any(" mode=webhook " in l for l in r.lines("tg.ready")), "tg.ready lacks mode=webhook")
    eq(fake.state()["webhook_url"], S["url"], "the fake's webhook")


def t_commands(env):
    """Users join and use commands and buttons; every update is delivered
    once with the secret header and answered 200."""
    fake = S["fake"]
    r = W()
    d0 = deliveries()["last_seq"]
    code = env.invite(S["south"], "admin")
    got = fake.ask(ANN, "/start " + code, first_name="Ann", timeout=30)
    check("Welcome to Rivet" in text_of(got), "Ann was not welcomed: %r" % text_of(got))
    H.register(env, fake, S["south"], [(BOB, "Bob")])
    got = fake.ask(ANN, "/help", timeout=30)
    check("Rivet commands:" in text_of(got), "/help: %r" % text_of(got)[:200])
    env.console(["/equip add Siemens G120C serial=S%02d location=Line %d" % (i, i)
                 for i in range(1, 12)], S["south"])
    got = fake.ask(ANN, "/equip list", timeout=30)
    nxt = [d for label, d in H.buttons_of(got) if label.startswith("Next")]
    check(nxt, "no Next button: %r" % H.buttons_of(got))
    since = fake.last_seq()
    qid = fake.press(ANN, got["result"]["message_id"], nxt[0])
    edit = fake.replies(ANN, 1, since=since, timeout=30)[0]
    check("page 2 of 2" in text_of(edit), "the press did not page: %r" % text_of(edit)[:200])
    fake.wait_calls(lambda c: c["ok"] and c["params"].get("callback_query_id") == qid, 1, 20,
                    "answerCallbackQuery", since=since, method="answerCallbackQuery")
    dl = deliveries(d0)["deliveries"]
    check(len(dl) >= 5, "only %d deliveries" % len(dl))
    bad = [d for d in dl if not d["ok"] or d["status"] != 200]
    check(not bad, "%d deliveries failed" % len(bad), *bad[:3])
    eq({d["secret_token"] for d in dl}, {DERIVED}, "the secret header of the deliveries")
    ids = [d["update_id"] for d in dl]
    eq(len(ids), len(set(ids)), "each update delivered once")
    for uid in ids:
        eq(inbox_rows(env, uid), 1, "inbox rows of update %d" % uid)
    eq(fake.calls("getUpdates"), [], "getUpdates calls")
    m = H.scrape(r)
    eq(counter(m, "rivet_updates_received_total", channel="telegram", outcome="stored"),
       float(inbox_count(env)), "rivet_updates_received_total{stored} against the inbox")
    eq(counter(m, "rivet_webhook_requests_total", path="/webhook/telegram", status="200"),
       float(inbox_count(env)), "rivet_webhook_requests_total{200}")


def t_forged(env):
    """Posts without the right secret: 401, nothing stored or answered."""
    fake = S["fake"]
    r = W()
    m0 = H.scrape(r)
    rows0 = inbox_count(env)
    other = hmac.new(b"111:other-token", b"rivet telegram webhook", hashlib.sha256).hexdigest()
    secrets = [None, "", "wrong", DERIVED[:-1], DERIVED + "0", DERIVED.upper(),
               DERIVED[:-1] + ("0" if DERIVED[-1] != "0" else "1"), other, CUSTOM_SECRET,
               H.TOKEN_SECRET]
    for i, secret in enumerate(secrets):
        uid = FORGED_BASE + 100 + i
        status, body = forge(message_update(uid, 8800 + i, "/help"), secret=secret)
        eq(status, 401, "a post with secret %r" % (secret and secret[:6]))
        check(DERIVED.encode() not in body, "the 401 says the secret")
    eq(inbox_count(env), rows0, "inbox rows after forged posts")
    marker(env, "forged posts")
    for i in range(len(secrets)):
        eq(inbox_rows(env, FORGED_BASE + 100 + i), 0, "inbox rows of forged update %d" % i)
        eq(fake.calls(chat_id=8800 + i), [], "calls to forged chat %d" % (8800 + i))
    m = H.scrape(r)
    eq(counter(m, "rivet_updates_received_total", channel="telegram", outcome="rejected")
       - counter(m0, "rivet_updates_received_total", channel="telegram", outcome="rejected"),
       float(len(secrets)), "rivet_updates_received_total{rejected}")
    eq(counter(m, "rivet_webhook_requests_total", path="/webhook/telegram", status="401")
       - counter(m0, "rivet_webhook_requests_total", path="/webhook/telegram", status="401"),
       float(len(secrets)), "rivet_webhook_requests_total{401}")


def t_duplicates(env):
    """A repeated update_id changes nothing: forged twice, or delivered
    twice by the fake; each is stored and answered once."""
    fake = S["fake"]
    r = W()
    m0 = H.scrape(r)
    uid = FORGED_BASE + 200
    since = fake.last_seq()
    for _ in range(3):
        status, _ = forge(message_update(uid, BOB, "/equip search dupA"))
        eq(status, 200, "a repeated post")
    # an explicit id moves the fake's counter past it: far above the forged ones
    uid2 = FORGED_BASE + 50000001
    d0 = deliveries()["last_seq"]
    for _ in range(2):
        fake.update(message_update(uid2, BOB, "/equip search dupB"))
    fake.ctl("wait_deliveries", since=d0, count=2, ok=True, update_id=uid2, timeout=30)
    marker(env, "the duplicates")
    eq((inbox_rows(env, uid), inbox_rows(env, uid2)), (1, 1), "inbox rows of the repeated ids")
    texts = [text_of(c) for c in fake.calls("sendMessage", BOB, since) if c["ok"]]
    eq(len([t for t in texts if "dupA" in t]), 1, "replies to the update posted 3 times")
    eq(len([t for t in texts if "dupB" in t]), 1, "replies to the update delivered twice")
    m = H.scrape(r)
    eq(counter(m, "rivet_updates_received_total", channel="telegram", outcome="duplicate")
       - counter(m0, "rivet_updates_received_total", channel="telegram", outcome="duplicate"),
       3.0, "rivet_updates_received_total{duplicate}")


MALFORMED = [
    b"", b"{not json", b"[]", b"null", b'"text"', b"{}", b'{"update_id":"900000301"}',
    b'{"update_id":-1}', b'{"update_id":1.5}', b'{"update_id":9223372036854775808}',
    b'{"update_id":9007199254740992}', b'{"update_id":true}', b'{"update_id":null}',
    b'{"update_id":900000302,"message":{', b'{"update_id":900000303} trailing',
    b'{"update_id":900000304,"message":{"text":"\xff\xfe"}}',
    b'{"update_id":900000305}\x00{"update_id":900000306}',
    b"[" * 100000 + b"]" * 100000,
]


def t_malformed(env):
    """Bodies that are not an Update, with the right secret: 400, nothing
    stored; the server and the channel carry on."""
    r = W()
    m0 = H.scrape(r)
    rows0 = inbox_count(env)
    for body in MALFORMED:
        status, answer = forge(None, raw=body)
        eq(status, 400, "the body %r" % body[:60])
        check(json.loads(answer).get("error"), "the 400 has no error: %r" % answer)
    eq(inbox_count(env), rows0, "inbox rows after malformed bodies")
    m = H.scrape(r)
    eq(counter(m, "rivet_updates_received_total", channel="telegram", outcome="rejected")
       - counter(m0, "rivet_updates_received_total", channel="telegram", outcome="rejected"),
       float(len(MALFORMED)), "rivet_updates_received_total{rejected}")
    eq(counter(m, "rivet_webhook_requests_total", path="/webhook/telegram", status="400")
       - counter(m0, "rivet_webhook_requests_total", path="/webhook/telegram", status="400"),
       float(len(MALFORMED)), "rivet_webhook_requests_total{400}")
    check(r.alive(), "rivet W died")
    marker(env, "malformed bodies")


def t_slow_database(env):
    """The database holds the webhook's INSERT for 4 s, past HTTP_TIMEOUT_S
    (2 s): the request is in, so the late 200 is still sent, and the fake
    delivers the update at the first attempt."""
    fake = S["fake"]
    W()
    d0 = deliveries()["last_seq"]
    since = fake.last_seq()
    lock = InboxLock(env, 4)
    try:
        uid = fake.message(BOB, "/equip search slow1")["update_id"]
        got = fake.ctl("wait_deliveries", since=d0, count=1, update_id=uid, timeout=30)
    finally:
        lock.wait()
    d = got["deliveries"][0]
    eq((d["attempt"], d["ok"], d["status"], d["error"]), (1, True, 200, None),
       "the first delivery of an update held up by the database")
    check(d["duration"] >= HTTP_TIMEOUT_S + 0.5, "the delivery took only %.2f s" % d["duration"])
    fake.replies(BOB, 1, since=since, contains="slow1", timeout=30)
    eq(inbox_rows(env, uid), 1, "inbox rows")


def t_database_timeout(env):
    """RIVET_STATEMENT_TIMEOUT_MS=1000 and the inbox locked for 3 s: the
    webhook answers 503 (database unavailable), the fake retries, and once
    the lock is gone the update is stored and answered once."""
    fake = S["fake"]
    check("W" in S, "rivet W never started")
    if S["W"].alive():
        rc, _ = S["W"].sigterm(30)
        eq(rc, 0, "exit status at SIGTERM")
    r = start_w(env, RIVET_STATEMENT_TIMEOUT_MS="1000")
    d0 = deliveries()["last_seq"]
    since = fake.last_seq()
    lock = InboxLock(env, 3)
    try:
        uid = fake.message(BOB, "/equip search slow2")["update_id"]
        fake.ctl("wait_deliveries", since=d0, count=1, update_id=uid, ok=False, timeout=30)
    finally:
        lock.wait()
    fake.ctl("wait_deliveries", since=d0, count=1, update_id=uid, ok=True, timeout=30)
    tries = deliveries(d0, update_id=uid)["deliveries"]
    failed = [t for t in tries if not t["ok"]]
    check(failed and all(t["status"] == 503 for t in failed),
          "the attempts before the lock was gone: %r" % [(t["status"], t["error"]) for t in failed])
    eq(len([t for t in tries if t["ok"]]), 1, "successful deliveries")
    fake.replies(BOB, 1, since=since, contains="slow2", timeout=30)
    marker(env, "the 503s")
    texts = [text_of(c) for c in fake.calls("sendMessage", BOB, since) if c["ok"]]
    eq(len([t for t in texts if "slow2" in t]), 1, "replies to the update refused with 503")
    eq(inbox_rows(env, uid), 1, "inbox rows")
    m = H.scrape(r)
    eq(counter(m, "rivet_webhook_requests_total", path="/webhook/telegram", status="503"),
       float(len(failed)), "rivet_webhook_requests_total{503}")
    check(counter(m, "rivet_db_errors_total", component="http") >= len(failed),
          "rivet_db_errors_total{http} does not count the 503s")


def t_sigterm_in_hand(env):
    """SIGTERM while a webhook request waits for the database (1.5 s, less
    than HTTP_TIMEOUT_S): the request in hand finishes with 200 before
    rivet exits 0."""
    fake = S["fake"]
    r = W()
    d0 = deliveries()["last_seq"]
    lock = InboxLock(env, 1.5)
    try:
        uid = fake.message(BOB, "/equip search hand1")["update_id"]
        H.wait_until(lock.waiting_inserts, 10, "the webhook's INSERT waiting for the lock",
                     interval=0.02)
        rc, secs = r.sigterm(30)
    finally:
        lock.wait()
    eq(rc, 0, "exit status at SIGTERM")
    got = fake.ctl("wait_deliveries", since=d0, count=1, update_id=uid, timeout=10)
    d = got["deliveries"][0]
    eq((d["attempt"], d["ok"], d["status"]), (1, True, 200),
       "the delivery in hand at SIGTERM")
    eq(inbox_rows(env, uid), 1, "inbox rows of the update in hand")
    S["in_hand"] = uid


def t_down_and_back(env):
    """Rivet stopped: the fake queues and retries (Connection refused);
    restarted on the same port, every update arrives once and is
    answered once, in order."""
    fake = S["fake"]
    check("W" in S, "rivet W never started")
    r = S["W"]
    if r.alive():
        rc, _ = r.sigterm(30)
        eq(rc, 0, "exit status at SIGTERM")
    since = fake.last_seq()
    d0 = deliveries()["last_seq"]
    n = 6
    uids = [fake.message(BOB, "/equip search ord%d" % k)["update_id"] for k in range(1, n + 1)]
    got = fake.ctl("wait_deliveries", since=d0, count=3, ok=False, timeout=30)
    check(not got.get("timed_out"), "the fake did not retry while rivet was down")
    errors = {d["error"] for d in got["deliveries"]}
    check(all("Connection refused" in (e or "") for e in errors), "delivery errors: %r" % errors)
    eq([d["update_id"] for d in got["deliveries"]][:3], [uids[0]] * 3,
       "the first update is retried while the others wait")
    info = fake.ctl("deliveries")["webhook"]
    check(info["last_error_message"], "getWebhookInfo has no last error")
    eq(sorted(set(uids) & set(fake.stats()["pending_update_ids"])), sorted(uids),
       "pending updates while rivet is down")

    start_w(env)
    replies = fake.replies(BOB, n, since=since, timeout=60)
    words = [re.search(r"ord\d+", text_of(c)).group(0) for c in replies
             if re.search(r"ord\d+", text_of(c))]
    eq(words, ["ord%d" % k for k in range(1, n + 1)], "the replies, in order")
    marker(env, "the restart")
    texts = [text_of(c) for c in fake.calls("sendMessage", BOB, since) if c["ok"]]
    for k in range(1, n + 1):
        eq(len([t for t in texts if re.search(r"\bord%d\b" % k, t)]), 1, "replies to ord%d" % k)
    for uid in uids:
        eq(inbox_rows(env, uid), 1, "inbox rows of update %d" % uid)
    if "in_hand" in S:
        # the update taken in hand at the last SIGTERM: answered once, in
        # that run (the channel's flush) or in this one
        all_texts = [text_of(c) for c in fake.calls("sendMessage", BOB) if c["ok"]]
        eq(len([t for t in all_texts if "hand1" in t]), 1, "replies to the update in hand")
    ok = [d for d in deliveries(d0, ok=True)["deliveries"] if d["update_id"] in uids]
    eq(sorted(d["update_id"] for d in ok), sorted(uids), "each update delivered once")
    again = fake.calls("setWebhook", since=since)
    eq(len(again), 1, "setWebhook calls at the restart")
    eq((again[0]["ok"], again[0]["params"].get("secret_token")), (True, DERIVED),
       "setWebhook at the restart")
    eq(fake.calls("getUpdates"), [], "getUpdates calls")


def t_explicit_secret(env):
    """TELEGRAM_WEBHOOK_SECRET set: that is the secret sent to setWebhook,
    received in the deliveries and required; the derived one is
    refused."""
    fake = S["fake"]
    r = W()
    rc, _ = r.sigterm(30)
    eq(rc, 0, "exit status at SIGTERM")
    since = fake.last_seq()
    early = fake.stats()["early_retries"]
    # Telegram says "retry after 2" to the first setWebhook: rivet waits
    fake.fault(method="setWebhook", kind="429", retry_after=2, count=1)
    r = start_w(env, TELEGRAM_WEBHOOK_SECRET=CUSTOM_SECRET)
    calls = fake.calls("setWebhook", since=since)
    eq([(c["ok"], c["error_code"]) for c in calls], [(False, 429), (True, None)],
       "setWebhook calls (429, then taken)")
    check(calls[1]["started"] - calls[0]["time"] >= 2, "setWebhook retried %.2f s after a 429 "
          "with retry_after 2" % (calls[1]["started"] - calls[0]["time"]))
    eq(fake.stats()["early_retries"], early, "early retries into the 429 window")
    eq(calls[1]["params"].get("secret_token"), CUSTOM_SECRET, "setWebhook secret_token")
    eq(fake.ctl("deliveries")["webhook"]["secret_token"], CUSTOM_SECRET, "the fake's secret")
    d0 = deliveries()["last_seq"]
    marker(env, "the new secret")
    dl = deliveries(d0, ok=True)["deliveries"]
    check(dl, "no delivery with the new secret")
    eq({d["secret_token"] for d in dl}, {CUSTOM_SECRET}, "the secret header of the deliveries")
    uid = FORGED_BASE + 400
    eq(forge(message_update(uid, BOB, "/help"), secret=DERIVED)[0], 401,
       "a post with the derived secret")
    eq(inbox_rows(env, uid), 0, "inbox rows of the refused post")
    eq(forge(message_update(uid, BOB, "/equip search custom1"), secret=CUSTOM_SECRET)[0], 200,
       "a post with TELEGRAM_WEBHOOK_SECRET")
    eq(inbox_rows(env, uid), 1, "inbox rows of the accepted post")
    eq(fake.calls("getUpdates"), [], "getUpdates calls")


def t_back_to_polling(env):
    """The same bot started without TELEGRAM_WEBHOOK_URL: the webhook is
    deleted (what was queued for it kept), getUpdates takes over, and the
    updates queued while rivet was down are answered once, in order."""
    fake = S["fake"]
    r = W()
    rc, _ = r.sigterm(30)
    eq(rc, 0, "exit status at SIGTERM")
    since = fake.last_seq()
    d0 = deliveries()["last_seq"]
    uids = [fake.message(BOB, "/equip search poll%d" % k)["update_id"] for k in range(1, 4)]
    fake.ctl("wait_deliveries", since=d0, count=1, ok=False, timeout=30)
    # Telegram fails once at each step of the switch: rivet must insist
    fake.fault(method="getWebhookInfo", kind="500", count=1)
    fake.fault(method="deleteWebhook", kind="502", count=1)
    r = start_w(env, TELEGRAM_WEBHOOK_URL="None")
    r.wait_log("ev=tg.poll_leader", 20)
    replies = fake.replies(BOB, 3, since=since, timeout=60)
    calls = fake.calls(since=since)  # the fake logs a call when it has finished
    methods = [c["method"] for c in calls]
    check("deleteWebhook" in methods, "deleteWebhook was not called: %r" % methods[:20])
    dw = [c for c in calls if c["method"] == "deleteWebhook" and c["ok"]]
    check(dw, "deleteWebhook never succeeded: %r" % [H.describe(c) for c in calls[:12]])
    dw = dw[0]
    check(not dw["params"].get("drop_pending_updates"), "deleteWebhook dropped pending updates")
    first_poll = [c["seq"] for c in calls if c["method"] == "getUpdates"]
    check(first_poll and min(first_poll) > dw["seq"], "getUpdates before deleteWebhook",
          *["%s %s %s %s" % (c["seq"], c["method"], c["started"], c["time"]) for c in calls[:12]])
    check(r.lines("tg.webhook_deleted"), "no tg.webhook_deleted in the log")
    eq(fake.stats()["conflicts"], 0, "409s answered to getUpdates")
    eq(fake.state()["webhook_url"] or "", "", "the fake's webhook after the switch")
    words = [re.search(r"poll\d", text_of(c)).group(0) for c in replies
             if re.search(r"poll\d", text_of(c))]
    eq(words, ["poll1", "poll2", "poll3"], "the queued updates, answered in order")
    marker(env, "polling")
    for uid in uids:
        eq(inbox_rows(env, uid), 1, "inbox rows of update %d" % uid)
    texts = [text_of(c) for c in fake.calls("sendMessage", BOB, since) if c["ok"]]
    for k in range(1, 4):
        eq(len([t for t in texts if "poll%d" % k in t]), 1, "replies to poll%d" % k)
    # the webhook route is off in polling mode, whatever the secret
    eq(forge(message_update(FORGED_BASE + 500, BOB, "/help"))[0], 404,
       "a webhook post in polling mode")
    eq(inbox_rows(env, FORGED_BASE + 500), 0, "inbox rows of the post in polling mode")
    status, _, body = r.http("GET", "/healthz")
    eq((status, json.loads(body)), (200, {"database": "ok", "telegram": "ok", "whatsapp": "off",
                                          "mqtt": "off", "status": "ok"}), "/healthz in polling mode")
    # and a second start in polling mode has no webhook to delete
    rc, _ = r.sigterm(30)
    eq(rc, 0, "exit status at SIGTERM")
    since = fake.last_seq()
    r = start_w(env, TELEGRAM_WEBHOOK_URL="None")
    r.wait_log("ev=tg.poll_leader", 20)
    eq(fake.calls("deleteWebhook", since=since), [], "deleteWebhook without a webhook")
    marker(env, "the second polling start")


def t_no_leaks(env):
    H.check_no_token(env)
    H.check_no_crash(env)
    for path, text in env.logs():
        for secret in (DERIVED, CUSTOM_SECRET):
            for line in text.splitlines():
                check(secret not in line, "a webhook secret in %s: %s" % (
                    os.path.basename(path), line[:300]))


TESTS = [
    ("setWebhook with URL, derived secret and allowed_updates; no getUpdates; stored while "
     "starting", t_set_webhook),
    ("commands and buttons through the webhook, each update once, with the secret",
     t_commands),
    ("missing or wrong secret: 401, nothing stored or answered", t_forged),
    ("a repeated update_id is handled once", t_duplicates),
    ("malformed bodies with the right secret: 400, nothing stored", t_malformed),
    ("a slow database: the late 200 is sent, not cut off at HTTP_TIMEOUT_S", t_slow_database),
    ("SIGTERM with a webhook request in hand: it finishes with 200, exit 0",
     t_sigterm_in_hand),
    ("the database past the statement timeout: 503, retried, stored once", t_database_timeout),
    ("rivet down: the fake retries; after the restart all arrive once, in order",
     t_down_and_back),
    ("TELEGRAM_WEBHOOK_SECRET is the secret sent and required", t_explicit_secret),
    ("back to polling: webhook deleted, queued updates kept and answered", t_back_to_polling),
    ("neither the token nor a webhook secret in the logs; no sanitizer report", t_no_leaks),
]

if __name__ == "__main__":
    sys.exit(H.main("tg_webhook", TESTS, setup))
