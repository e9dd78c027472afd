#!/usr/bin/env python3
"""The operator's kit: `rivet doctor`, systemd readiness and watchdog
(sd_notify on a NOTIFY_SOCKET this test binds), SIGHUP (the env file again,
the alert rules now) and journald's priority prefix.

    python3 tests/telegram/test_ops.py build/rivet

Needs RIVET_TEST_PG_URL (else SKIP). Starts the fake Bot API, the fake
Graph API, the fake LLM and a mosquitto of its own. Every wait is a
bounded poll.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import wa_harness as W  # noqa: E402
from harness import Fail, check, eq  # noqa: E402

LLM_KEY = "sk-rivetLLMkeyNEVERprinted_4Rt9"
CHECKS = ["settings", "database", "migrations", "telegram", "whatsapp", "mqtt", "llm", "http"]
SECRETS = [H.TOKEN_SECRET, W.WA_TOKEN, W.WA_APP_SECRET, W.WA_VERIFY_TOKEN, LLM_KEY]

S = {}  # what setup() started: fakes, broker, the serve under test


def setup(env):
    env.start_fake()
    S["wa"] = W.WAFake(env)
    S["llm"] = H.FakeLLM(env, LLM_KEY)
    S["broker"] = H.Broker(env).start()
    close = env.close

    def close_all(keep=False):
        S["llm"].stop()
        S["broker"].stop()
        close(keep)
    env.close = close_all
    env.cli("migrate")
    env.factory("Ops Plant")


def doctor_env(env, **more):
    e = env.base_env()
    e.update({
        "TELEGRAM_BOT_TOKEN": H.TOKEN,
        "TELEGRAM_API_URL": env.fake.url,
        "MQTT_URL": S["broker"].url,
        "LLM_URL": S["llm"].url + "/v1",
        "LLM_MODEL": "fake-vision",
        "LLM_API_KEY": LLM_KEY,
        "HTTP_LISTEN": "127.0.0.1:%d" % H.free_port(),
    })
    e.update(W.wa_settings(S["wa"]))
    e.update({k: str(v) for k, v in more.items()})
    return {k: v for k, v in e.items() if v != "None"}


def doctor(env, **more):
    """Runs rivet doctor; returns (exit status, {check: (status, text)}, output)."""
    t0 = time.monotonic()
    p = subprocess.run([env.rivet_bin, "doctor"], env=doctor_env(env, **more),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    lines = {}
    order = []
    for line in out.splitlines():
        m = re.match(r"(ok|warn|FAIL|skip)\s+(\w+)\s+(.*)$", line)
        if m:
            lines[m.group(2)] = (m.group(1), m.group(3))
            order.append(m.group(2))
    everything = out + p.stderr.decode("utf-8", "replace")
    for s in SECRETS:
        check(s not in everything, "a secret in rivet doctor's output", everything)
    eq(order, CHECKS, "the checks, in order")
    check(time.monotonic() - t0 < 30, "rivet doctor took %.1f s" % (time.monotonic() - t0))
    return p.returncode, lines, everything


def test_doctor_ok(env):
    rc, lines, out = doctor(env)
    for name in CHECKS:
        eq(lines[name][0], "ok", "%s (%s)" % (name, out))
    check("@" + H.BOT_USERNAME in lines["telegram"][1], "no bot name", out)
    check("pg_trgm" in lines["database"][1], "no pg_trgm", out)
    eq(rc, 0, "exit status")
    # not configured: said so, and not a failure
    rc, lines, out = doctor(env, WHATSAPP_TOKEN="None", LLM_URL="None", LLM_MODEL="None",
                             LLM_API_KEY="None", MQTT_URL="None")
    for name in ("whatsapp", "llm", "mqtt"):
        eq(lines[name][0], "skip", name)
    eq(rc, 0, "exit status with parts off (%s)" % out)


def test_doctor_fail(env):
    dead = H.free_port()
    url = re.sub(r"@[^/]*/", "@127.0.0.1:%d/" % dead, env.db_url)
    rc, lines, out = doctor(env, DATABASE_URL=url)
    eq(lines["database"][0], "FAIL", "a database that is not there (%s)" % out)
    eq(lines["migrations"][0], "skip", "migrations without a database")
    eq(rc, 1, "exit status")

    rc, lines, out = doctor(env, TELEGRAM_BOT_TOKEN=H.TOKEN_ID + ":AAEwrongTOKENforDOCTOR")
    eq(lines["telegram"][0], "FAIL", "a refused token (%s)" % out)
    check("TELEGRAM_BOT_TOKEN is refused by Telegram" in lines["telegram"][1], "why", out)
    check("wrongTOKEN" not in out, "the wrong token is printed", out)
    eq(rc, 1, "exit status")

    rc, lines, out = doctor(env, MQTT_URL="mqtt://127.0.0.1:%d" % dead)
    eq(lines["mqtt"][0], "FAIL", "an unreachable broker (%s)" % out)
    check("127.0.0.1:%d" % dead in lines["mqtt"][1], "the broker is named", out)
    eq(rc, 1, "exit status")

    # a database one migration behind
    name = env.db_name + "_old"
    env._psql(env.pg_url, 'CREATE DATABASE "%s"' % name)
    try:
        old = env.db_url.replace("/" + env.db_name, "/" + name)
        e = doctor_env(env, DATABASE_URL=old)
        p = subprocess.run([env.rivet_bin, "migrate"], env=e, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        eq(p.returncode, 0, "migrate %s" % p.stderr)
        env._psql(old, "DELETE FROM schema_migrations WHERE version = "
                       "(SELECT max(version) FROM schema_migrations)")
        rc, lines, out = doctor(env, DATABASE_URL=old)
        eq(lines["migrations"][0], "FAIL", "a pending migration (%s)" % out)
        check("1 migration pending" in lines["migrations"][1] and "rivet migrate" in out,
              "why and what to do", out)
        eq(rc, 1, "exit status")
    finally:
        env._psql(env.pg_url, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


class Notify:
    """A NOTIFY_SOCKET: what sd_notify() sends, with arrival times."""

    def __init__(self, env):
        self.path = os.path.join(env.tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.got = []  # (monotonic time, {key: value})

    def drain(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return
            kv = dict(l.split("=", 1) for l in data.decode().splitlines() if "=" in l)
            self.got.append((time.monotonic(), kv))

    def wait(self, key, value=None, timeout=30, count=1):
        def seen():
            self.drain()
            return len(self.with_key(key, value)) >= count
        H.wait_until(seen, timeout, "%s=%s on the notify socket (got %r)" % (
            key, value, [kv for _, kv in self.got[-5:]]), interval=0.01)
        return self.with_key(key, value)

    def with_key(self, key, value=None):
        return [(t, kv) for t, kv in self.got if key in kv and (value is None or kv[key] == value)]


class OpsRivet(H.Rivet):
    """rivet --env-file FILE serve."""

    def __init__(self, env, label, env_file, settings):
        super().__init__(env, label, settings)
        self.env_file = env_file

    def start(self, wait=True, timeout=30):
        self.starts += 1
        path = os.path.join(self.env.tmp, "rivet-%s-%d.log" % (self.label, self.starts))
        self.log_paths.append(path)
        with open(path, "wb") as log:
            self.proc = subprocess.Popen(
                [self.env.rivet_bin, "--env-file", self.env_file, "serve"], env=self.environ(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=H._pdeathsig)
        if wait:
            self.wait_log("ev=serve.ready", timeout)
        return self


def test_notify(env):
    n = S["notify"] = Notify(env)
    env_file = S["env_file"] = os.path.join(env.tmp, "rivet.env")
    with open(env_file, "w") as f:
        f.write("# read at start and on SIGHUP\nRIVET_LOG_LEVEL=info\nTELEGRAM_SENDERS=2\n")
    r = OpsRivet(env, "ops", env_file, {
        "NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": "600000",
        "MQTT_URL": S["broker"].url,
        # from the file, so that SIGHUP may change them
        "RIVET_LOG_LEVEL": "None", "TELEGRAM_SENDERS": "None"})
    env.rivets.append(r)
    S["serve"] = r
    r.start()
    ready = n.wait("READY", "1")
    check(ready[0][1].get("STATUS", "").startswith("serving: telegram on"),
          "STATUS with READY=1: %r" % ready[0][1])
    check(n.with_key("STATUS"), "no STATUS= before READY=1")
    r.wait_log("ev=mqtt.rules_loaded", 20)
    # pings every half WATCHDOG_USEC (0.3 s), from READY=1 on
    t0 = ready[0][0]
    pings = n.wait("WATCHDOG", "1", timeout=10, count=6)
    times = [t for t, _ in pings]
    check(times[0] >= t0 - 0.05, "a ping before READY=1")
    gaps = [b - a for a, b in zip(times, times[1:])]
    check(all(0.15 < g < 1.0 for g in gaps), "ping gaps (s): %r" % gaps)
    check(" ev=serve.watchdog " in r.text(), "no serve.watchdog line", r.tail())


def test_sighup(env):
    r, n = S["serve"], S["notify"]
    loads = len(r.lines("mqtt.rules_loaded"))
    with open(S["env_file"], "w") as f:
        f.write("RIVET_LOG_LEVEL=debug\nTELEGRAM_SENDERS=3\n")
    r.proc.send_signal(signal.SIGHUP)
    r.wait_log(" ev=serve.reload ", 10)
    line = r.lines("serve.reload")[-1]
    check("log_level=info->debug" in line and "restart_needed=TELEGRAM_SENDERS" in line
          and "settings=reread" in line, "the reload line: %r" % line)
    n.wait("RELOADING", "1", timeout=5)
    n.wait("READY", "1", timeout=5, count=2)
    H.wait_until(lambda: len(r.lines("mqtt.rules_loaded")) > loads, 10,
                 "mqtt.rules_loaded again after SIGHUP")
    # debug lines now: a poll that brought an update says so at debug
    env.fake.message(4242, "/help")
    r.wait_log(" lvl=debug ", 15)

    # a bad value: said, and the level in force stays
    with open(S["env_file"], "w") as f:
        f.write("RIVET_LOG_LEVEL=loud\nTELEGRAM_SENDERS=3\n")
    r.proc.send_signal(signal.SIGHUP)
    r.wait_log(" ev=serve.reload_rejected ", 10)
    check("RIVET_LOG_LEVEL must be one of" in r.lines("serve.reload_rejected")[-1],
          "why: %r" % r.lines("serve.reload_rejected")[-1])
    r.wait_log(" ev=serve.reload ", 10, count=2)
    check("settings=rejected" in r.lines("serve.reload")[-1], r.lines("serve.reload")[-1])
    H.wait_until(lambda: len(r.lines("mqtt.rules_loaded")) > loads + 1, 10,
                 "the rules reloaded on the second SIGHUP too")
    seen = len(r.text())
    env.fake.message(4242, "/help")
    H.wait_until(lambda: " lvl=debug " in r.text()[seen:], 15, "debug lines still on")
    check(r.alive(), "rivet exited on SIGHUP", r.tail())


def test_stop(env):
    r, n = S["serve"], S["notify"]
    rc, _ = r.sigterm(20)
    eq(rc, 0, "exit status after SIGTERM")
    n.wait("STOPPING", "1", timeout=5)
    H.check_no_token(env)


def test_journal(env):
    path = os.path.join(env.tmp, "journal.log")
    e = env.base_env()
    e.update({"HTTP_LISTEN": "127.0.0.1:0", "RIVET_LOG_LEVEL": "info"})
    with open(path, "wb") as log:
        st = os.fstat(log.fileno())
        e["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        p = subprocess.Popen([env.rivet_bin, "serve"], env=e, stdin=subprocess.DEVNULL,
                             stdout=log, stderr=log, preexec_fn=H._pdeathsig)

    def text():
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    try:
        H.wait_until(lambda: " ev=serve.ready " in text() or p.poll() is not None, 30,
                     "serve.ready with JOURNAL_STREAM")
        p.send_signal(signal.SIGTERM)
        eq(p.wait(20), 0, "exit status")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    prio = {"debug": "<7>", "info": "<6>", "warn": "<4>", "error": "<3>"}
    lines = [l for l in text().splitlines() if l]
    check(any(l.startswith("<6>ts=") and " ev=serve.ready " in l for l in lines),
          "no <6> serve.ready line", *lines[-5:])
    check(any(l.startswith("<4>ts=") and " ev=serve.no_channels " in l for l in lines),
          "no <4> serve.no_channels line", *lines[-5:])
    for l in lines:
        m = re.match(r"<(\d)>ts=\S+ lvl=(\w+) ", l)
        check(m and "<%s>" % m.group(1) == prio[m.group(2)], "a line without its priority: %r" % l)
    # the serve of test_notify logged to a plain file: no prefix there
    check(all(l.startswith("ts=") for l in S["serve"].text().splitlines() if l),
          "a prefix without JOURNAL_STREAM")


if __name__ == "__main__":
    sys.exit(H.main("ops", [
        ("rivet doctor: all ok against the fakes, PostgreSQL and the broker", test_doctor_ok),
        ("rivet doctor: FAIL for a database, a token, a broker, a migration", test_doctor_fail),
        ("serve under systemd: STATUS, READY=1, WATCHDOG=1 every half period", test_notify),
        ("SIGHUP: log level from the env file, rules reloaded, a bad value kept out",
         test_sighup),
        ("SIGTERM: STOPPING=1, exit 0, no token in the logs", test_stop),
        ("JOURNAL_STREAM: each line starts with its syslog priority", test_journal),
    ], setup=setup))
