#!/usr/bin/env python3
"""Two `rivet serve` processes on one database: exactly one polls (the
PostgreSQL advisory lock), both handle updates and send replies; when the
poller is SIGKILLed the other takes over polling within seconds; a
restarted process stands by; a SIGTERMed poller hands over too.
"""

import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq, text_of  # noqa: E402

CHATS = [7001 + i for i in range(20)]
TAKEOVER_S = 10         # "within seconds": rivet retries the lock every 2 s
S = {"n": 0}


def setup(env):
    S["fake"] = env.start_fake()
    slug = env.factory("Plant North")
    S["A"] = env.rivet("A")
    S["B"] = env.rivet("B")
    S["A"].start().wait_log("ev=tg.poll_leader", 15)
    H.register(env, S["fake"], slug, [(c, "Tech%d" % c) for c in CHATS])



def burst(env, chats, per_chat, tag, timeout=40):
    """Sends per_chat probes from each chat; waits until each is answered
    exactly once, in order; returns the probes."""
    fake = S["fake"]
    since = fake.last_seq()
    probes = {c: [] for c in chats}
    for k in range(per_chat):
        for c in chats:
            S["n"] += 1
            p = "probe-%s-%d-%d" % (tag, c, S["n"])
            probes[c].append(p)
            fake.message(c, "/equip search " + p)
    total = per_chat * len(chats)
    calls = fake.wait_calls(lambda c: c["ok"] and "probe-%s-" % tag in text_of(c), total,
                            timeout, "%d replies (%s)" % (total, tag), since=since,
                            method="sendMessage")
    for c in chats:
        got = [text_of(x).split('"')[1] for x in calls if int(x["params"]["chat_id"]) == c]
        eq(got, probes[c], "chat %d's replies" % c)
    return probes


def t_one_polls(env):
    a, b = S["A"], S["B"]
    b.start()
    # B's poller tries the lock as it starts; by the time a burst of work
    # is done it has tried at least once (it retries every 2 s)
    burst(env, CHATS, 2, "warm")
    H.wait_until(lambda: "ev=tg.ready" in b.text(), 10, "B ready")
    eq(H.poll_lock_holders(env), 1, "sessions holding the poll lock")
    check(a.lines("tg.poll_leader"), "A never logged ev=tg.poll_leader")
    check(not b.lines("tg.poll_leader"), "B polls too: %s" % b.lines("tg.poll_leader"))
    st = S["fake"].stats()
    eq(st["max_concurrent_getupdates"], 1, "the fake's max concurrent getUpdates")
    eq(st["conflicts"], 0, "409 conflicts")


def t_both_work(env):
    a, b = S["A"], S["B"]
    na, nb = len(a.lines("tg.update")), len(b.lines("tg.update"))
    sa, sb = len(a.lines("tg.sent")), len(b.lines("tg.sent"))
    burst(env, CHATS, 5, "both")
    ua, ub = len(a.lines("tg.update")) - na, len(b.lines("tg.update")) - nb
    xa, xb = len(a.lines("tg.sent")) - sa, len(b.lines("tg.sent")) - sb
    H.Tap.diag("updates handled: A %d, B %d; messages sent: A %d, B %d" % (ua, ub, xa, xb))
    eq(ua + ub, 100, "updates handled by A and B together")
    check(ua > 0 and ub > 0, "one process did all the work: A %d, B %d updates" % (ua, ub))
    check(xa > 0 and xb > 0, "one process sent everything: A %d, B %d" % (xa, xb))


def t_takeover(env):
    a, b = S["A"], S["B"]
    a.sigkill()
    t0 = time.monotonic()
    b.wait_log("ev=tg.poll_leader", TAKEOVER_S)
    H.Tap.diag("B polls %.1f s after A was killed" % (time.monotonic() - t0))
    eq(H.poll_lock_holders(env), 1, "sessions holding the poll lock")
    burst(env, CHATS[:10], 2, "after-kill")


def t_restart_standby(env):
    a, b = S["A"], S["B"]
    a.start()
    burst(env, CHATS, 2, "restarted")
    H.wait_until(lambda: "ev=tg.ready" in a.text(), 10, "A ready")
    check(not a.lines("tg.poll_leader"), "the restarted A polls while B holds the lock")
    rc, took = b.sigterm(15)
    eq(rc, 0, "B's exit status on SIGTERM")
    t0 = time.monotonic()
    a.wait_log("ev=tg.poll_leader", TAKEOVER_S)
    H.Tap.diag("A polls %.1f s after B stopped" % (time.monotonic() - t0))
    burst(env, CHATS[:5], 2, "after-term")


def t_logs(env):
    check(S["A"].alive(), "A died: exit %s" % S["A"].returncode())
    H.check_no_crash(env)
    H.check_no_token(env)


TESTS = [
    ("two processes: exactly one polls", t_one_polls),
    ("both handle updates and send replies", t_both_work),
    ("SIGKILL the poller: the other polls within seconds, messages answered", t_takeover),
    ("a restarted process stands by; SIGTERM of the poller hands over", t_restart_standby),
    ("no sanitizer report; no token in the logs", t_logs),
]

if __name__ == "__main__":
    sys.exit(H.main("two_servers", TESTS, setup))
