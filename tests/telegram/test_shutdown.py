#!/usr/bin/env python3
"""SIGTERM and SIGINT: `rivet serve` stops polling at once (not at the end
of a long poll), lets workers finish, flushes what the outbox can send
within TELEGRAM_FLUSH_S, and exits 0; a reply queued just before is
delivered, a message that arrived just before is answered (now or after
the restart) exactly once, and a Telegram outage does not hold the exit up.
"""

import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq, text_of  # noqa: E402

ANN, BOB = 9501, 9502
FLUSH_S = 5
POLL_S = 20  # a long poll, so that a prompt exit shows the poll was cut short
S = {}


def setup(env):
    S["fake"] = env.start_fake()
    slug = env.factory("Plant North")
    S["rivet"] = env.rivet("A", TELEGRAM_POLL_TIMEOUT_S=POLL_S, TELEGRAM_FLUSH_S=FLUSH_S,
                           TELEGRAM_CHAT_INTERVAL_MS=1500)
    S["rivet"].start().wait_log("ev=tg.poll_leader", 15)
    H.register(env, S["fake"], slug, [(ANN, "Ann"), (BOB, "Bob")])


def running():
    """Starts rivet again when an earlier point stopped it."""
    if not S["rivet"].alive():
        S["rivet"].start().wait_log("ev=tg.poll_leader", 15)
    return S["rivet"]


def cpu_seconds(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def t_no_spin(env):
    """Idle, rivet waits: for a notification, a timeout, a long poll. A
    loop that never waits shows as thousands of transactions a second."""
    r = running()
    q = ("SELECT xact_commit + xact_rollback FROM pg_stat_database "
         "WHERE datname = current_database()")
    # PostgreSQL publishes a busy backend's counts about once a second
    x0, c0, t0 = int(env.sql_value(q)), cpu_seconds(r.proc.pid), time.monotonic()
    H.wait_until(lambda: time.monotonic() - t0 >= 4, 10, "4 s of idling", interval=0.5)
    x1, c1, t1 = int(env.sql_value(q)), cpu_seconds(r.proc.pid), time.monotonic()
    rate, cpu = (x1 - x0) / (t1 - t0), 100 * (c1 - c0) / (t1 - t0)
    H.Tap.diag("idle: %.0f transactions a second, rivet at %.0f %% of a core" % (rate, cpu))
    check(rate < 100, "an idle rivet runs %.0f database transactions a second" % rate)


def t_idle(env):
    r, fake = running(), S["fake"]
    # wait (bounded) until a long poll is in progress at the fake
    H.wait_until(lambda: fake.stats()["concurrent_getupdates"] == 1, 10, "a long poll")
    rc, took = r.sigterm(15)
    H.Tap.diag("exited %d after %.2f s" % (rc, took))
    eq(rc, 0, "exit status")
    check(took < 3, "took %.1f s to stop during a %d s long poll" % (took, POLL_S))
    check(r.lines("tg.stopped"), "no ev=tg.stopped in the log")


def t_queued_reply(env):
    r, fake = running(), S["fake"]
    since = fake.last_seq()
    fake.message(ANN, "/equip search probe-term-1")
    fake.message(ANN, "/equip search probe-term-2")
    # the first reply is out; the second waits 1.5 s for the chat's gap
    fake.replies(ANN, 1, since=since, contains="probe-term-1")
    H.wait_until(lambda: env.sql_value("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND "
                                       "payload LIKE '%probe-term-2%'") == "1", 10,
                 "the second reply queued")
    rc, took = r.sigterm(FLUSH_S + 10)
    exited = time.time()
    H.Tap.diag("exited %d after %.2f s" % (rc, took))
    eq(rc, 0, "exit status")
    check(took <= FLUSH_S + 2, "took %.1f s to stop (TELEGRAM_FLUSH_S=%d)" % (took, FLUSH_S))
    got = [c for c in fake.calls("sendMessage", ANN, since) if c["ok"]
           and "probe-term-2" in text_of(c)]
    check(got, "the reply queued before SIGTERM was not delivered before the exit")
    check(got[0]["time"] <= exited, "delivered after the exit?")
    eq(env.sql_value("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL"),
       "0", "replies left in the outbox")


def t_just_before(env):
    r, fake = running(), S["fake"]
    since = fake.last_seq()
    for k in range(3):
        fake.message(BOB, "/equip search probe-late-%d" % k)
    rc, took = r.sigterm(FLUSH_S + 10)
    eq(rc, 0, "exit status")
    running()
    got = fake.replies(BOB, 3, since=since, timeout=30)
    texts = [text_of(c).split('"')[1] for c in got]
    eq(texts, ["probe-late-%d" % k for k in range(3)], "Bob's replies across the restart")
    check(not [c for c in fake.calls("sendMessage", BOB, since) if c["ok"]][3:],
          "a message was answered twice across the restart")


def t_outage(env):
    r, fake = running(), S["fake"]
    since = fake.last_seq()
    fake.fault(kind="500", method="sendMessage", duration=60)
    fake.fault(kind="timeout", method="getUpdates", delay=30, duration=60)
    fake.message(ANN, "/equip search probe-outage")
    H.wait_until(lambda: env.sql_value("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND "
                                       "attempts > 0 AND payload LIKE '%probe-outage%'") == "1",
                 15, "a failed send of the reply")
    rc, took = r.sigterm(FLUSH_S + 15)
    H.Tap.diag("exited %d after %.2f s with Telegram down" % (rc, took))
    eq(rc, 0, "exit status")
    check(took <= FLUSH_S + 3, "took %.1f s to stop with Telegram down" % took)
    eq(env.sql_value("SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL AND payload LIKE "
                     "'%probe-outage%'"), "0", "the unsent reply given up")
    fake.clear_faults()
    running()
    fake.replies(ANN, 1, since=since, timeout=30, contains="probe-outage")


def t_sigint(env):
    r = running()
    t0 = time.monotonic()
    r.proc.send_signal(signal.SIGINT)
    rc = r.proc.wait(15)
    eq(rc, 0, "exit status on SIGINT")
    check(time.monotonic() - t0 < FLUSH_S + 2, "SIGINT took %.1f s" % (time.monotonic() - t0))
    check("signal=SIGINT" in r.text(), "no serve.stopping signal=SIGINT in the log")


def t_logs(env):
    H.check_no_crash(env)
    H.check_no_token(env)


TESTS = [
    ("an idle rivet does not busy-loop on the database", t_no_spin),
    ("SIGTERM during a long poll: exit 0 at once", t_idle),
    ("SIGTERM: a reply queued just before is delivered, exit 0 within the flush", t_queued_reply),
    ("messages that arrived just before SIGTERM are answered once, in order", t_just_before),
    ("SIGTERM with Telegram down: exit 0 within the flush, the reply kept", t_outage),
    ("SIGINT: exit 0", t_sigint),
    ("no sanitizer report; no token in the logs", t_logs),
]

if __name__ == "__main__":
    sys.exit(H.main("shutdown", TESTS, setup))
