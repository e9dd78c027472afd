#!/usr/bin/env python3
"""Telegram misbehaving: a 429 storm, a 30 s outage, 409 Conflict for 10 s,
"can't parse entities", a 400, and a server that answers getUpdates at
once with nothing.

One `rivet serve`; each case injects "/equip search probe-..." messages,
whose replies quote the probe, so every reply can be matched to its
message. Rivet's backoff is capped at 30 s (with ±25 % jitter), so after an
outage a reply may take up to about 40 s more to arrive: the waits below
are bounded accordingly.
"""

import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq, text_of  # noqa: E402

CHATS = [6001 + i for i in range(10)]
S = {"n": 0}


def setup(env):
    S["fake"] = env.start_fake()
    slug = env.factory("Plant North")
    S["rivet"] = env.rivet("A", RIVET_WORKERS=2, TELEGRAM_SENDERS=2).start()
    S["rivet"].wait_log("ev=tg.poll_leader", 15)
    H.register(env, S["fake"], slug, [(c, "Tech%d" % c) for c in CHATS])


def probe(chat, tag):
    S["n"] += 1
    p = "probe-%s-%d-%d" % (tag, chat, S["n"])
    S["fake"].message(chat, "/equip search " + p)
    return p


def delivered(fake, since, probes, timeout, what):
    """Waits until every probe's reply was delivered (sendMessage ok);
    fails if one was delivered twice. Returns the ok calls by probe."""
    want = set(probes)

    def pred(c):
        return c["ok"] and any(p in text_of(c) for p in want)
    try:
        calls = fake.wait_calls(pred, len(want), timeout, what, since=since, method="sendMessage")
    except H.Fail as e:
        got = {p for c in fake.calls("sendMessage", since=since) if c["ok"]
               for p in want if '"%s"' % p in text_of(c)}
        raise H.Fail("%s; missing: %s" % (e, sorted(want - got)[:10]))
    by = {}
    for c in calls:
        for p in want:
            if '"%s"' % p in text_of(c):
                by.setdefault(p, []).append(c)
    twice = {p: len(v) for p, v in by.items() if len(v) > 1}
    check(not twice, "replies delivered more than once: %r" % twice)
    return by


def t_429_storm(env):
    fake = S["fake"]
    before = fake.stats()
    since = fake.last_seq()
    fake.fault(kind="429", method="sendMessage", retry_after=2, duration=6)
    t0 = time.monotonic()
    probes = [probe(c, "r%d" % k) for k in range(3) for c in CHATS]
    delivered(fake, since, probes, 40, "every reply after the 429 storm")
    H.Tap.diag("30 replies delivered %.1f s after a 6 s storm began" % (time.monotonic() - t0))
    st = fake.stats()
    check(st["rate_limited"] - before["rate_limited"] >= len(CHATS),
          "the storm did not happen: %d 429s" % (st["rate_limited"] - before["rate_limited"]))
    eq(st["early_retries"], 0, "calls made before retry_after expired (fake's count)")
    eq(st["early_retries_global_window"], 0, "sends inside a global 429 window")
    # the same, from the call log: after a 429 with retry_after R at T, the
    # chat's next call started no earlier than T + R
    calls = fake.calls("sendMessage", since=since)
    early = []
    for chat in CHATS:
        mine = [c for c in calls if int(c["params"]["chat_id"]) == chat]
        for a, b in zip(mine, mine[1:]):
            if a.get("error_code") == 429 and b["started"] < a["time"] + a["retry_after"] - 0.05:
                early.append("chat %d: 429 at %.3f retry_after %d, next at %.3f" % (
                    chat, a["time"], a["retry_after"], b["started"]))
    check(not early, "%d retries before retry_after" % len(early), *early[:5])
    # each chat's replies in the order of its messages
    for chat in CHATS:
        got = [text_of(c).split('"')[1] for c in calls
               if c["ok"] and int(c["params"]["chat_id"]) == chat]
        want = [p for p in probes if "-%d-" % chat in p]
        eq(got, want, "order of chat %d's replies" % chat)
    waits = [l for l in S["rivet"].text().splitlines() if "ev=tg.sent" in l and "outcome=wait" in l]
    check(waits, "rivet logged no outcome=wait for the 429s")


def t_outage(env):
    fake = S["fake"]
    since = fake.last_seq()
    # sends fail first (500), so replies are waiting in the outbox when
    # everything goes down
    fake.fault(kind="500", method="sendMessage", duration=12)
    t_down = time.monotonic()
    first = [probe(c, "down-a") for c in CHATS[:5]]
    H.wait_until(lambda: int(env.sql_value(
        "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND payload LIKE '%probe-down-a%'"))
        == len(first), 10, "the first replies queued in the outbox")
    left = 30 - (time.monotonic() - t_down)
    wall_up = time.time() + left
    mark = fake.last_seq()
    fake.fault(kind="502", method="getUpdates", duration=min(12, left))
    fake.fault(kind="drop", method="*", duration=left)
    # the poll in progress ends before the outage reaches it: wait for it
    fake.wait_calls(lambda c: c["fault"] is not None, 1, 10, "a failed getUpdates",
                    since=mark, method="getUpdates")
    probes = first + [probe(c, "down-b") for c in CHATS]
    # bounded: the outage, then the longest backoff (30 s + 25 % jitter)
    by = delivered(fake, since, probes, left + 45, "every reply after a 30 s outage")
    oks = sorted(c["time"] for v in by.values() for c in v)
    calls = fake.calls(since=since)
    failed = [c for c in calls if not c["ok"]]
    H.Tap.diag("outage: %d failed calls; replies delivered %.1f to %.1f s after it ended"
               % (len(failed), oks[0] - wall_up, oks[-1] - wall_up))
    check(len(failed) >= 5, "the outage did not happen: %d failed calls" % len(failed))
    check(oks[0] >= wall_up - 0.5, "a reply was delivered %.1f s before the outage ended"
          % (wall_up - oks[0]))
    check(S["rivet"].alive(), "rivet died during the outage: exit %s" % S["rivet"].returncode())
    text = S["rivet"].text()
    check("ev=tg.poll_error" in text or "ev=tg.poll_bad_page" in text,
          "rivet logged no poll errors during the outage")
    eq(env.sql_value("SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL AND "
                     "payload LIKE '%probe-down-%'"), "0", "replies given up")


def t_conflict(env):
    fake = S["fake"]
    r = S["rivet"]
    since = fake.last_seq()
    conflicts = len(r.lines("tg.poll_conflict"))
    fake.fault(kind="409", method="getUpdates", duration=10)
    t0 = time.monotonic()
    # wait (bounded) for rivet to run into the conflict, then send a message
    fake.wait_calls(lambda c: c.get("error_code") == 409, 1, 10, "a 409 to getUpdates",
                    since=since, method="getUpdates")
    p = probe(CHATS[0], "conflict")
    delivered(fake, since, [p], 10 + 30, "the reply to a message sent during the conflict")
    H.Tap.diag("answered %.1f s after the conflict began" % (time.monotonic() - t0))
    check(len(r.lines("tg.poll_conflict")) > conflicts, "no ev=tg.poll_conflict in the log")
    line = r.lines("tg.poll_conflict")[-1]
    check("status=409" in line, "the conflict line lacks status=409: %s" % line)
    calls = fake.calls("getUpdates", since=since)
    n409 = sum(1 for c in calls if c.get("error_code") == 409)
    check(n409 <= 12, "%d getUpdates in a 10 s conflict: no backoff" % n409)
    check(r.alive(), "rivet died: exit %s" % r.returncode())


def t_parse_entities(env):
    fake = S["fake"]
    since = fake.last_seq()
    fake.fault(kind="parse_entities", method="sendMessage", chat_id=CHATS[1], count=1)
    p = probe(CHATS[1], "plain<&>")
    calls = fake.wait_calls(lambda c: c["ok"], 1, 20, "the reply sent again as plain text",
                            since=since, method="sendMessage", chat_id=CHATS[1])
    c = calls[0]
    check("parse_mode" not in c["params"], "the resend still has parse_mode: %r" % c["params"])
    check('"%s"' % p in c["params"]["text"], "the plain text is not the reply as written: %r"
          % c["params"]["text"])
    refused = [x for x in fake.calls("sendMessage", chat_id=CHATS[1], since=since)
               if x.get("error_code") == 400]
    eq(len(refused), 1, "HTML attempts refused")


def t_400_permanent(env):
    fake = S["fake"]
    since = fake.last_seq()
    fake.fault(kind="400", method="sendMessage", chat_id=CHATS[2], count=1,
               description="Bad Request: some permanent problem")
    p1 = probe(CHATS[2], "perm1")
    fake.wait_calls(lambda c: c.get("error_code") == 400, 1, 20, "the 400", since=since,
                    method="sendMessage", chat_id=CHATS[2])
    p2 = probe(CHATS[2], "perm2")
    delivered(fake, since, [p2], 20, "the chat's next reply after a 400")
    attempts = [c for c in fake.calls("sendMessage", chat_id=CHATS[2], since=since)
                if p1 in str(c["params"].get("text"))]
    eq(len(attempts), 1, "attempts to send the message refused with 400")
    eq(env.sql("SELECT failed_at IS NOT NULL, sent_at IS NULL FROM outbox WHERE payload LIKE "
               "'%%%s%%'" % p1), [["t", "t"]], "the refused message's outbox row (failed, unsent)")


def t_no_spin(env):
    fake = S["fake"]
    since = fake.last_seq()
    for _ in range(16):
        fake.ctl("raw_updates", body='{"ok":true,"result":[]}')
    # bounded: wait until rivet consumed some of them, then count its rate
    fake.wait_calls(lambda c: c.get("raw_response"), 12, 20, "12 instant empty answers",
                    since=since, method="getUpdates")
    calls = [c for c in fake.calls("getUpdates", since=since) if c.get("raw_response")]
    first, last = calls[0]["started"], calls[min(11, len(calls) - 1)]["started"]
    rate = 11 / max(0.001, last - first)
    H.Tap.diag("%.1f getUpdates a second against an instant empty answer" % rate)
    check(rate <= 6, "rivet polls %.1f times a second when the answer is instant and empty"
          % rate)
    # drain the rest (bounded) so that later cases see a normal server
    fake.wait_calls(lambda c: c.get("raw_response"), 16, 30, "all 16 instant answers",
                    since=since, method="getUpdates")
    p = probe(CHATS[3], "after-spin")
    delivered(fake, since, [p], 20, "a reply after the instant answers")


def t_429_after_wait(env):
    """retry_after counts from Telegram's answer. With the global budget
    at 1 message a second, the second reply waits about 1 s for it after
    being claimed; its 429's window must be counted from the answer, not
    from the moment the reply was claimed."""
    fake = S["fake"]
    rc, _ = S["rivet"].sigterm(15)
    eq(rc, 0, "exit status on SIGTERM")
    S["rivet"] = env.rivet("B", TELEGRAM_GLOBAL_PER_SECOND=1, TELEGRAM_SENDERS=1).start()
    S["rivet"].wait_log("ev=tg.poll_leader", 15)
    early0 = fake.stats()["early_retries"]
    since = fake.last_seq()
    x, y = CHATS[4], CHATS[5]
    fake.fault(kind="429", method="sendMessage", chat_id=y, retry_after=2, count=1)
    px = probe(x, "budget")
    py = probe(y, "budget")
    delivered(fake, since, [px, py], 20, "both replies")
    calls = fake.calls("sendMessage", y, since)
    first, retry = calls[0], calls[1]
    H.Tap.diag("the 429 said retry_after=%s; the retry came %.2f s after it"
               % (first.get("retry_after"), retry["started"] - first["time"]))
    eq(first.get("error_code"), 429, "the first attempt's answer")
    eq(fake.stats()["early_retries"] - early0, 0, "retries before retry_after expired")


def t_logs(env):
    check(S["rivet"].alive(), "rivet died: exit %s" % S["rivet"].returncode())
    H.check_no_crash(env)
    H.check_no_token(env)


TESTS = [
    ("429 storm (retry_after=2 for 6 s): all delivered, none early, order kept", t_429_storm),
    ("Telegram down 30 s (500, 502, dropped connections): all delivered after", t_outage),
    ("409 Conflict on getUpdates for 10 s: recovers, logs ev=tg.poll_conflict", t_conflict),
    ("can't parse entities: sent again as plain text", t_parse_entities),
    ("400 is permanent for that message; the chat's next goes out", t_400_permanent),
    ("getUpdates answered at once with nothing: no spinning", t_no_spin),
    ("retry_after counts from the 429, also after a wait for the global budget",
     t_429_after_wait),
    ("rivet stayed up; no token in the logs", t_logs),
]

if __name__ == "__main__":
    sys.exit(H.main("faults", TESTS, setup))
