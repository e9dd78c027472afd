#!/usr/bin/env python3
"""How the alert thread connects: a broker that wants a user name and
password, one that speaks TLS only, two rivet serve processes sharing one
subscription, no MQTT_URL, a broker that is not up yet, and the settings
rivet serve refuses to start with.

Each point runs its own mosquitto (harness.Broker with a folder of its own)
and its own rivet serve processes, which it stops before it ends, so the
points do not depend on each other's processes; they share the database,
the fake Bot API, one factory and one rule (temp > 50, no cooldown: every
crossing is an alarm).

Synchronisation: every broker logs subscriptions (log_type subscribe), and
nothing is published before the broker has logged the subscription of the
rivet that should get it; an alarm is awaited as a row in the database.
What must NOT happen (a connection with a wrong password or CA, a busy
loop of connection attempts) is checked over a bounded wait for the
attempts that must happen instead: the broker's or rivet's lines of them.
"""

import json
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

# Distinctive, so that a leak into a log is unmistakable.
MQTT_USER = "rivet-alerts"
MQTT_PASSWORD = "mqttPW-mustNEVERbeLOGGED-7Kq2"
WRONG_PASSWORD = "wrongPW-neverLOGGEDeither-3Jd9"
URL_PASSWORD = "urlPW-mustNOTbeECHOED-5Tz8"
SECRETS = (MQTT_PASSWORD, WRONG_PASSWORD, URL_PASSWORD)

# The default log types and the subscriptions, which the test waits for.
LOG_SUBSCRIBE = ("log_type error\nlog_type warning\nlog_type notice\n"
                 "log_type information\nlog_type subscribe\n")

S = {}
_ts = [time.time() - 30]


def stamp():
    """A fresh, increasing telemetry timestamp (RFC 3339 with microseconds):
    each message is a distinct observation."""
    _ts[0] += 0.001
    t = _ts[0]
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def topic(device):
    return "factories/%s/devices/%s/telemetry" % (S["slug"], device)


def crossing(value=60):
    return json.dumps({"timestamp": stamp(), "metrics": {"temp": value}})


def alarms_of(env, like):
    return int(env.sql_value(
        "SELECT count(*) FROM alarms a JOIN devices d ON d.id = a.device_id "
        "WHERE d.key LIKE '%s'" % like))


def broker_log(broker):
    try:
        with open(broker.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def subscribed(broker, client_id, count=1, timeout=20):
    """Waits until the broker has logged count subscriptions of client_id to
    the telemetry topic (a plain or a shared one)."""
    pat = re.compile(r"^\d+: %s 1 (\$share/[^/]+/)?factories/\+/devices/\+/telemetry$"
                     % re.escape(client_id), re.M)
    H.wait_until(lambda: len(pat.findall(broker_log(broker))) >= count, timeout,
                 "the broker to log %s's subscription" % client_id, interval=0.05)


def alarm_flows(env, broker, client_id, device, timeout=20):
    """Once client_id has subscribed, a crossing published on device makes
    one alarm row."""
    subscribed(broker, client_id)
    before = alarms_of(env, device)
    broker.publish(topic(device), [crossing()])
    H.wait_until(lambda: alarms_of(env, device) > before, timeout,
                 "the alarm of %s through %s" % (device, client_id))


def log_times(lines):
    """The ts= of log lines, in seconds."""
    out = []
    for l in lines:
        m = re.match(r"ts=\d{4}-\d\d-\d\dT(\d\d):(\d\d):(\d\d\.\d+)Z", l)
        check(m, "a log line without ts=: %r" % l)
        out.append(int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)))
    return out


def stop(rivet):
    """SIGTERM: rivet stops cleanly (and prints its mqtt.stats line)."""
    if rivet.alive():
        rc, _ = rivet.sigterm(20)
        eq(rc, 0, "rivet %s's exit status after SIGTERM" % rivet.label)


def stats(rivet):
    """The counters of rivet's last mqtt.stats line."""
    lines = rivet.lines("mqtt.stats")
    check(lines, "rivet %s logged no mqtt.stats line" % rivet.label, rivet.tail(10))
    return {k: v for k, v in re.findall(r" (\w+)=(\S+)", lines[-1])}


def secret_leaks(env):
    """[(file, line)] of log lines anywhere in the test's folder (every
    rivet's log, every broker's, the fake's) that hold a password."""
    leaks = []
    for root, _, files in os.walk(env.tmp):
        for name in files:
            if not name.endswith((".log", ".stderr")):
                continue
            with open(os.path.join(root, name), "rb") as f:
                text = f.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if any(s in line for s in SECRETS):
                    leaks.append((name, line[:300]))
    return leaks


def check_no_secret(env):
    leaks = secret_leaks(env)
    check(not leaks, "a password appears in %d log line(s)" % len(leaks),
          *["%s: %s" % l for l in leaks[:5]])


def make_certs(folder, names):
    """A CA of its own in folder (ca.pem, ca.key) and, for each (name,
    subjectAltName), a server certificate it signed (NAME.pem, NAME.key)."""
    os.makedirs(folder, exist_ok=True)

    def ssl(*args):
        p = subprocess.run(["openssl"] + list(args), cwd=folder, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            raise H.Fail("openssl %s exited %d: %s" % (args[0], p.returncode,
                                                      p.stderr.decode(errors="replace")))

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=Rivet test CA %s" % os.path.basename(folder),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, san in names:
        with open(os.path.join(folder, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n" % san)
        ssl("req", "-new", *ec, "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", "/CN=%s" % name)
        ssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext")
    return os.path.join(folder, "ca.pem")


def setup(env):
    S["fake"] = env.start_fake()
    S["slug"] = env.factory("Plant Connect")
    path = os.path.join(env.tmp, "hot.json")
    with open(path, "w") as f:
        json.dump({"name": "Hot", "severity": "high", "cooldown_minutes": 0,
                   "condition": {"parameter": "temp", "operator": "gt", "threshold": 50}}, f)
    out = env.cli("rule", "add", "--factory", S["slug"], path)
    check("added rule" in out, "rule add said %r" % out)


# ---------------------------------------------------------------------------

def t_password(env):
    passwd = os.path.join(env.tmp, "mq-auth.passwd")
    p = subprocess.run(["mosquitto_passwd", "-b", "-c", passwd, MQTT_USER, MQTT_PASSWORD],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    check(p.returncode == 0, "mosquitto_passwd exited %d" % p.returncode, p.stdout.decode())
    broker = H.Broker(env, name="mq-auth",
                      conf_extra=LOG_SUBSCRIBE + "allow_anonymous false\npassword_file %s\n"
                      % passwd, client_args=["-u", MQTT_USER, "-P", MQTT_PASSWORD]).start()
    good = bad = None
    try:
        # the fixture itself: an anonymous client is turned away
        p = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port),
                            "-t", topic("anon"), "-m", crossing()],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        check(p.returncode != 0, "the broker let an anonymous client publish")

        good = env.rivet("auth", MQTT_URL=broker.url, MQTT_USERNAME=MQTT_USER,
                         MQTT_PASSWORD=MQTT_PASSWORD, MQTT_CLIENT_ID="rivet-auth").start()
        good.wait_log("ev=mqtt.connected", 20)
        alarm_flows(env, broker, "rivet-auth", "auth-1")

        bad = env.rivet("auth-wrong", MQTT_URL=broker.url, MQTT_USERNAME=MQTT_USER,
                        MQTT_PASSWORD=WRONG_PASSWORD, MQTT_CLIENT_ID="rivet-auth-wrong").start()
        # refused on every attempt; attempts 1, 2 and 3 come about 0.5 s and
        # 1 s apart (0.5 s doubling, +-25 %: at least 0.375 and 0.75 s; a
        # loaded machine only makes the gaps longer)
        bad.wait_log("ev=mqtt.refused", 15, count=3)
        refused = bad.lines("mqtt.refused")
        check(all(re.search(r"reason=(134|135|4|5) ", l) for l in refused),
              "the refusals do not name a bad password or not authorised", *refused[:3])
        t = log_times(refused)
        gaps = [b - a for a, b in zip(t, t[1:])]
        check(gaps[0] >= 0.3 and gaps[1] >= 0.7,
              "the attempts after a refusal are not backed off: gaps %r s" % gaps, *refused)
        check(bad.alive(), "rivet with a wrong password exited %s" % bad.returncode())
        eq(bad.lines("mqtt.connected"), [], "mqtt.connected lines with a wrong password")
        check("as rivet-auth-wrong " not in broker_log(broker),
              "the broker let rivet-auth-wrong in")
        check(good.alive(), "rivet with the right password exited")
        stop(bad)
        stop(good)
        check_no_secret(env)
    finally:
        for r in (good, bad):
            if r:
                r.kill()
        broker.stop()


def t_tls(env):
    tls = os.path.join(env.tmp, "tls")
    ca = make_certs(tls, [("localhost", "IP:127.0.0.1,DNS:localhost"),
                          ("elsewhere", "DNS:elsewhere.invalid")])
    other_ca = make_certs(os.path.join(env.tmp, "tls-other"), [])

    def listener(cert):
        return LOG_SUBSCRIBE + "cafile %s\ncertfile %s/%s.pem\nkeyfile %s/%s.key\n" % (
            ca, tls, cert, tls, cert)

    broker = H.Broker(env, name="mq-tls", conf_extra=listener("localhost"),
                      client_args=["--cafile", ca]).start()
    wrong_host = H.Broker(env, name="mq-tls-host", conf_extra=listener("elsewhere")).start()
    url = "mqtts://127.0.0.1:%d" % broker.port
    started = []
    try:
        good = env.rivet("tls", MQTT_URL=url, MQTT_CA_FILE=ca, MQTT_CLIENT_ID="rivet-tls").start()
        started.append(good)
        good.wait_log("ev=mqtt.connected", 20)
        alarm_flows(env, broker, "rivet-tls", "tls-1")
        stop(good)

        # A certificate from another CA, then one of the right CA for another
        # host: never connected; the broker sees one failed handshake after
        # another (a retry each time), and rivet keeps running.
        for label, b, u, cafile in (
                ("tls-other-ca", broker, url, other_ca),
                ("tls-wrong-host", wrong_host, "mqtts://127.0.0.1:%d" % wrong_host.port, ca)):
            base = broker_log(b).count("New connection from")
            r = env.rivet(label, MQTT_URL=u, MQTT_CA_FILE=cafile, MQTT_CLIENT_ID="rivet-" + label)
            started.append(r)
            r.start()

            def attempts():
                check(not r.lines("mqtt.connected") and
                      "as rivet-%s " % label not in broker_log(b),
                      "rivet %s connected" % label, *r.lines("mqtt.connected"))
                return broker_log(b).count("New connection from") >= base + 3

            H.wait_until(attempts, 15, "three connection attempts of rivet %s" % label,
                         interval=0.05)
            fails = [l for l in r.text().splitlines()
                     if re.search(r" ev=mqtt\.(connect_failed|connection_lost|tls) ", l)]
            check(fails, "rivet %s logged no failure" % label, r.tail(10))
            eq(r.lines("mqtt.connected"), [], "rivet %s's mqtt.connected lines" % label)
            check("as rivet-%s " % label not in broker_log(b),
                  "the broker let rivet %s in" % label)
            check(r.alive(), "rivet %s exited %s" % (label, r.returncode()))
            stop(r)
    finally:
        for r in started:
            r.kill()
        broker.stop()
        wrong_host.stop()


def t_shared(env):
    broker = H.Broker(env, name="mq-shared", conf_extra=LOG_SUBSCRIBE).start()
    a = b = None
    try:
        a = env.rivet("A", MQTT_URL=broker.url, MQTT_SHARED_GROUP="rivet",
                      MQTT_CLIENT_ID="rivet-share-a").start()
        b = env.rivet("B", MQTT_URL=broker.url, MQTT_SHARED_GROUP="rivet",
                      MQTT_CLIENT_ID="rivet-share-b").start()
        for r in (a, b):
            r.wait_log("ev=mqtt.connected", 20)
            check("shared=rivet" in r.lines("mqtt.connected")[0],
                  "rivet %s's connected line: %r" % (r.label, r.lines("mqtt.connected")[0]))
            subscribed(broker, r.settings["MQTT_CLIENT_ID"])
        for i in range(20):
            broker.publish(topic("sh-%02d" % i), [crossing(51 + j) for j in range(10)])
        H.wait_until(lambda: alarms_of(env, "sh-%") >= 200, 60, "200 alarms of 20 devices")
        stop(a)
        stop(b)
        eq(alarms_of(env, "sh-%"), 200, "alarms of 200 crossings")
        eq(env.sql("SELECT a.rule_id, a.device_id, a.observed_at FROM alarms a "
                   "GROUP BY 1, 2, 3 HAVING count(*) > 1"), [], "alarms recorded twice")
        eq(env.sql_value("SELECT count(DISTINCT (a.device_id, a.observed_at)) FROM alarms a "
                         "JOIN devices d ON d.id = a.device_id WHERE d.key LIKE 'sh-%'"),
           "200", "distinct observations alarmed")
        eq(env.sql_value("SELECT count(*) FROM devices WHERE key LIKE 'sh-%'"), "20",
           "devices registered (by either process, once each)")
        sa, sb = stats(a), stats(b)
        got = {"A": sa, "B": sb}
        # each message went to one process: not both (400), none lost
        eq(int(sa["received"]) + int(sb["received"]), 200, "messages received by A and B %r" % {
            k: v["received"] for k, v in got.items()})
        eq(int(sa["alarms"]) + int(sb["alarms"]), 200, "alarms raised by A and B")
        eq(len(a.lines("mqtt.alarm")) + len(b.lines("mqtt.alarm")), 200,
           "mqtt.alarm lines of A and B")
        for k, v in got.items():
            check(int(v["received"]) > 0 and int(v["alarms"]) > 0,
                  "rivet %s handled none of the 200: %r" % (k, v))
            eq(v["repeats"], "0", "rivet %s's repeats" % k)
    finally:
        for r in (a, b):
            if r:
                r.kill()
        broker.stop()


def t_off_and_late_broker(env):
    off = env.rivet("off").start()
    stop(off)
    ready = off.lines("serve.ready")
    check(ready and " mqtt=off" in ready[0], "serve.ready without MQTT_URL: %r" % ready)
    mq = [l for l in off.text().splitlines() if " thr=mqtt " in l or " ev=mqtt." in l]
    eq(mq, [], "mqtt lines without MQTT_URL")

    # A port nobody listens on (yet): rivet serve starts and tries again
    # with backoff, 0.5 s doubling: attempts at about 0, 0.5, 1.5 and 3.5 s.
    # connect_failed is logged for attempts 1, 11, 21...: a loop without
    # backoff (one attempt every 100 ms) would log attempt=11 within 1.1 s.
    broker = H.Broker(env, name="mq-late", conf_extra=LOG_SUBSCRIBE)
    late = env.rivet("late", MQTT_URL=broker.url, MQTT_CLIENT_ID="rivet-late")
    try:
        late.start()
        ready = late.lines("serve.ready")
        check(ready and " mqtt=on" in ready[0], "serve.ready with MQTT_URL: %r" % ready)
        late.wait_log("ev=mqtt.connect_failed", 10)
        t0 = time.monotonic()
        H.wait_until(lambda: (time.monotonic() - t0 >= 3 or not late.alive()
                              or len(late.lines("mqtt.connect_failed")) > 1),
                     5, "three seconds of connection attempts")
        failed = late.lines("mqtt.connect_failed")
        check(late.alive(), "rivet exited %s with its broker down" % late.returncode())
        eq(len(failed), 1, "connect_failed lines in 3 s (attempts 1 to 4)")
        check(" attempt=1" in failed[0] and "port=%d" % broker.port in failed[0],
              "the connect_failed line: %r" % failed[0])
        eq(late.lines("mqtt.connected"), [], "connected with the broker down")
        broker.start()
        # the next attempt comes at most 9.4 s after the first
        late.wait_log("ev=mqtt.connected", 20)
        alarm_flows(env, broker, "rivet-late", "late-1")
        stop(late)
    finally:
        late.kill()
        broker.stop()


BAD_SETTINGS = [
    ({"MQTT_URL": "http://x"}, "MQTT_URL"),
    ({"MQTT_URL": "mqtt://rivet:%s@127.0.0.1:1883" % URL_PASSWORD}, "MQTT_URL"),
    ({"MQTT_URL": "mqtt://host:99999"}, "MQTT_URL"),
    ({"MQTT_URL": "mqtt://127.0.0.1:1883", "MQTT_PASSWORD": MQTT_PASSWORD}, "MQTT_PASSWORD"),
    ({"MQTT_URL": "mqtt://127.0.0.1:1883", "MQTT_SHARED_GROUP": "a/b"}, "MQTT_SHARED_GROUP"),
    ({"MQTT_URL": "mqtts://127.0.0.1:8883", "MQTT_CA_FILE": "/nonexistent"}, "MQTT_CA_FILE"),
    ({"MQTT_URL": "mqtt://127.0.0.1:1883/factories"}, "MQTT_URL"),
    ({"MQTT_URL": "mqtt://127.0.0.1:1883", "MQTT_CLIENT_ID": "has space"}, "MQTT_CLIENT_ID"),
    ({"MQTT_URL": "mqtt://127.0.0.1:1883", "MQTT_KEEPALIVE_S": "1"}, "MQTT_KEEPALIVE_S"),
]


def t_bad_settings(env):
    runs = []
    for i, (settings, name) in enumerate(BAD_SETTINGS):
        r = env.rivet("bad-%d" % (i + 1), **settings)
        r.start(wait=False)
        runs.append((r, settings, name))
    problems = []
    for r, settings, name in runs:
        H.wait_until(lambda: not r.alive(), 20, "rivet with %r to exit" % settings)
        lines = [l for l in r.text().splitlines() if l.strip()]
        what = "%r: exit %s, output %r" % (settings, r.returncode(), lines)
        if r.returncode() != 2:
            problems.append("exit status: " + what)
        elif len(lines) != 1 or not lines[0].startswith("rivet: ") or name not in lines[0]:
            problems.append("not one line naming %s: %s" % (name, what))
        elif any(s in lines[0] for s in SECRETS):
            problems.append("a password echoed: " + what)
    check(not problems, "%d of %d bad settings:" % (len(problems), len(runs)), *problems)


def t_no_secrets_no_crash(env):
    check_no_secret(env)
    H.check_no_token(env)
    H.check_no_crash(env)


TESTS = [
    ("user name and password: the right one connects, a wrong one is refused and retried",
     t_password),
    ("TLS with MQTT_CA_FILE; another CA or another host's certificate never connects",
     t_tls),
    ("two processes share the subscription: 200 crossings, each alarmed once", t_shared),
    ("no MQTT_URL: no alert thread; a broker that is down: backoff, then connected",
     t_off_and_late_broker),
    ("bad MQTT settings: exit 2 with one line, no password echoed", t_bad_settings),
    ("no password or token in any log, no sanitizer report", t_no_secrets_no_crash),
]

if __name__ == "__main__":
    sys.exit(H.main("mqtt_connect", TESTS, setup))
