#!/usr/bin/env python3
"""The daily digest end to end: two `rivet serve` processes on one database
and the fake Bot API. A factory in Asia/Kolkata (UTC+5:30) with a known
yesterday (two alarms, one acknowledged after 2 minutes; work orders opened,
completed and overdue, and rows of the day before and of another factory
that must not count). `rivet factory set --timezone/--digest-time` refuses
bad values and changes nothing; `rivet digest` prints the figures. Then the
digest time is set to the current local minute: the supervisor and the
admin each get the digest once (not once per process), the technician does
not, and the factory's row records the local date.
"""

import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq, text_of  # noqa: E402

SUE, ADA, TED = 9701, 9702, 9703
TZ = "Asia/Kolkata"
S = {}


def run_cli(env, *args):
    """rivet ARGS on the test database: (exit status, stdout, stderr)."""
    e = env.base_env()
    e["RIVET_LOG_LEVEL"] = "warn"
    p = subprocess.run([env.rivet_bin] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=e, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def local(day_offset, hhmm):
    """An SQL timestamptz: hhmm on the local day day_offset from today."""
    return ("(((now() AT TIME ZONE '%s')::date + %d) + time '%s') AT TIME ZONE '%s'"
            % (TZ, day_offset, hhmm, TZ))


def setup(env):
    S["fake"] = env.start_fake()
    slug = S["slug"] = env.factory("Plant North")
    other = env.factory("Plant South")
    # off while people register: the default 07:00 may have passed today
    env.cli("factory", "set", slug, "--timezone", TZ, "--digest-time", "off")
    env.cli("factory", "set", other, "--digest-time", "off")
    S["a"] = env.rivet("A", DIGEST_CHECK_S=1)
    S["b"] = env.rivet("B", DIGEST_CHECK_S=1)
    S["a"].start().wait_log("ev=tg.poll_leader", 15)
    H.register(env, S["fake"], slug, [(SUE, "Sue")], role="supervisor")
    H.register(env, S["fake"], slug, [(ADA, "Ada")], role="admin")
    H.register(env, S["fake"], slug, [(TED, "Ted")], role="technician")
    S["b"].start().wait_log("ev=digest.ready", 15)
    S["a"].wait_log("ev=digest.ready", 15)

    f = "(SELECT id FROM factories WHERE slug = '%s')" % slug
    g = "(SELECT id FROM factories WHERE slug = '%s')" % other
    env.sql("INSERT INTO devices (factory_id, key) VALUES (%s, 'press-1'), (%s, 'press-1')"
            % (f, g))
    env.sql("INSERT INTO equipment (factory_id, number, manufacturer, model) VALUES "
            "(%s, 'EQ-2026-000001', 'Bosch', 'P1'), (%s, 'EQ-2026-000001', 'ABB', 'S1')"
            % (f, g))

    def alarm(fac, sev, at, ack_s):
        ack = "NULL" if ack_s is None else "%s + interval '%d seconds'" % (at, ack_s)
        env.sql("INSERT INTO alarms (factory_id, device_id, source, severity, message, "
                "observed_at, created_at, acknowledged_at) SELECT %s, d.id, 'device', '%s', "
                "'alarm ' || gen_random_uuid(), %s, %s, %s FROM devices d WHERE d.factory_id = %s"
                % (fac, sev, at, at, ack, fac))

    def wo(fac, number, status, created, completed="NULL"):
        env.sql("INSERT INTO work_orders (factory_id, number, equipment_id, title, status, "
                "created_at, completed_at) SELECT %s, '%s', e.id, 'Job %s', '%s', %s, %s "
                "FROM equipment e WHERE e.factory_id = %s"
                % (fac, number, number, status, created, completed, fac))

    alarm(f, "critical", local(-1, "10:00"), 120)
    alarm(f, "high", local(-1, "23:30"), None)
    alarm(f, "low", local(-2, "23:30"), 5)          # the day before: not counted
    alarm(g, "medium", local(-1, "12:00"), 5)       # another factory
    wo(f, "WO-2026-000001", "open", local(-1, "09:00"))
    wo(f, "WO-2026-000002", "completed", local(-3, "09:00"), local(-1, "17:00"))
    wo(f, "WO-2026-000003", "on_hold", local(-9, "12:00"))
    wo(g, "WO-2026-000001", "open", local(-20, "12:00"))


def t_settings_refused(env):
    slug = S["slug"]
    before = env.sql("SELECT timezone, digest_time FROM factories WHERE slug = '%s'" % slug)
    for args, want in [
            (["--timezone", "Mars/Olympus_Mons", "--digest-time", "08:00"], "unknown timezone"),
            (["--digest-time", "08:00", "--timezone", "Nowhere/Special"], "unknown timezone"),
            (["--timezone", "Europe/Berlin", "--digest-time", "25:00"], "HH:MM"),
            (["--digest-time", "8am"], "HH:MM"),
            (["--timezone"], "need a value")]:
        rc, out, err = run_cli(env, "factory", "set", slug, *args)
        eq(rc, 2, "exit status of factory set %s" % " ".join(args))
        check(want in err, "no %r in %r" % (want, err))
    eq(env.sql("SELECT timezone, digest_time FROM factories WHERE slug = '%s'" % slug), before,
       "the settings after refused values")


def t_cli_figures(env):
    outbox0 = env.sql_value("SELECT count(*) FROM outbox")
    rc, out, err = run_cli(env, "digest", "--factory", S["slug"])
    eq(rc, 0, "rivet digest exit status (%s)" % err)
    got = dict(line.split("=", 1) for line in out.splitlines())
    want = {"timezone": TZ, "alarms_critical": "1", "alarms_high": "1", "alarms_medium": "0",
            "alarms_low": "0", "acknowledged": "1", "mean_ack_s": "120", "wo_opened": "1",
            "wo_completed": "1", "overdue": "1"}
    for k, v in want.items():
        eq(got.get(k), v, "rivet digest %s" % k)
    eq(got.get("date"), env.sql_value("SELECT ((now() AT TIME ZONE '%s')::date - 1)::text" % TZ),
       "the day reported on")
    rc, out, err = run_cli(env, "digest", "--factory", S["slug"], "--print")
    eq(rc, 0, "rivet digest --print exit status")
    check("Mean time to acknowledge: 2 min (1 of 2 acknowledged)" in out, "printed: %r" % out)
    eq(env.sql_value("SELECT count(*) FROM outbox"), outbox0, "outbox rows after rivet digest")
    eq(env.sql_value("SELECT count(*) FROM factories WHERE digest_last_sent IS NOT NULL"), "0",
       "factories claimed by rivet digest")


def t_sent_once(env):
    fake, slug = S["fake"], S["slug"]
    since = fake.last_seq()
    outbox0 = int(env.sql_value("SELECT count(*) FROM outbox"))
    # the current local minute: just passed
    env.cli("factory", "set", slug, "--digest-time", env.sql_value(
        "SELECT to_char(now() AT TIME ZONE '%s', 'HH24:MI')" % TZ))
    got = {}
    for uid in (SUE, ADA):
        got[uid] = text_of(fake.replies(uid, 1, since=since, timeout=20,
                                        contains="Daily digest")[0])
    text = got[SUE]
    for want in ("📰 Daily digest · Plant North", "(Asia/Kolkata)",
                 "🚨 Alarms: 2 — 🔴 1 critical · 🟠 1 high",
                 "Mean time to acknowledge: 2 min (1 of 2 acknowledged)",
                 "Work orders: 1 opened · 1 completed",
                 "Overdue (open more than 7 days): 1", "WO-2026-000003 Job WO-2026-000003"):
        check(want in text, "no %r in the digest:\n%s" % (want, text))
    eq(got[ADA], text, "the admin's digest")
    # both processes look every second: give each a few more looks
    t0 = time.monotonic()
    H.wait_until(lambda: time.monotonic() - t0 >= 3, 10, "3 s of further checks", interval=0.5)
    for uid in (SUE, ADA, TED):
        n = [c for c in fake.calls("sendMessage", uid, since) if "Daily digest" in text_of(c)]
        eq(len(n), 0 if uid == TED else 1, "digests sent to %d" % uid)
    eq(int(env.sql_value("SELECT count(*) FROM outbox")) - outbox0, 2, "outbox rows queued")
    sent = S["a"].lines("digest.sent") + S["b"].lines("digest.sent")
    eq(len(sent), 1, "ev=digest.sent lines of both processes")
    check("factory=%s" % slug in sent[0] and "recipients=2" in sent[0], sent[0])
    eq(env.sql_value("SELECT digest_last_sent = (now() AT TIME ZONE '%s')::date FROM factories "
                     "WHERE slug = '%s'" % (TZ, slug)), "t", "digest_last_sent is today")
    eq(env.sql_value("SELECT digest_last_sent IS NULL FROM factories "
                     "WHERE slug = 'plant-south'"), "t", "the other factory (off) was not claimed")


def t_no_token_no_crash(env):
    H.check_no_token(env)
    H.check_no_crash(env)
    for r in (S["a"], S["b"]):
        rc, _ = r.sigterm(15)
        eq(rc, 0, "exit status of %s" % r.label)


if __name__ == "__main__":
    sys.exit(H.main("digest", [
        ("bad --timezone and --digest-time are refused, nothing changed", t_settings_refused),
        ("rivet digest prints the known figures and queues nothing", t_cli_figures),
        ("the digest reaches the supervisor and the admin once, not the technician",
         t_sent_once),
        ("no token in the logs, no crash, both stop", t_no_token_no_crash),
    ], setup))
