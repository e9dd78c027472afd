#!/usr/bin/env python3
"""`rivet serve` under valgrind's memcheck, one short scenario: every thread
kind runs (the Telegram poller, workers and senders, the HTTP server's pool,
the MQTT alert thread), a nameplate photo goes through the download, Tesseract
and the save, then SIGTERM, so that the exit's leak check sees everything the
threads set up and tore down.

    python3 tests/sanitizers/test_vg_serve.py build/rivet tests/sanitizers/valgrind.supp

Each rivet process (the CLI calls included) runs through valgrind-rivet;
the last test point reads the logs (vglogs.py): a memory error or an
unsuppressed "definitely lost" block fails it. Prints "1..0 # SKIP" when
valgrind is not installed, or as the Telegram tests do.
"""

import base64
import json
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "telegram"))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402
from harness import buttons_of, check, eq, text_of  # noqa: E402
import vglogs  # noqa: E402

ANN = 8101   # admin
BOB = 8102   # technician
WAIT = 120   # memcheck runs rivet 20 to 50 times slower
PLATE = os.path.join(HERE, "..", "fixtures", "nameplates", "set", "015-hvac-fr.jpg")
S = {}


def setup(env):
    S["fake"] = env.start_fake()
    S["broker"] = H.Broker(env).start()
    S["north"] = env.factory("Plant North")
    path = os.path.join(env.tmp, "rule.json")
    with open(path, "w") as f:
        json.dump({"name": "Hot", "severity": "high", "cooldown_minutes": 0,
                   "condition": {"parameter": "temp", "operator": "gt", "threshold": 80}}, f)
    out = env.cli("rule", "add", "--factory", S["north"], path, timeout=WAIT)
    check("added rule" in out, "rule add said %r" % out)
    code = env.invite(S["north"], "admin")
    S["rivet"] = env.rivet("V", MQTT_URL=S["broker"].url, MQTT_CLIENT_ID="rivet-test-vg")
    S["rivet"].start(wait=False).wait_log("ev=serve.ready", WAIT)
    S["rivet"].wait_log("ev=mqtt.connected", WAIT)
    got = S["fake"].ask(ANN, "/start " + code, first_name="Ann", timeout=WAIT)
    check("Welcome to Rivet" in text_of(got), "no welcome: %r" % text_of(got))
    H.register(env, S["fake"], S["north"], [(BOB, "Bob")], timeout=WAIT)


def ask(text, chat=ANN):
    return text_of(S["fake"].ask(chat, text, timeout=WAIT))


def t_commands(env):
    check("Rivet commands:" in ask("/help"), "no /help")
    t = ask("/equip add Siemens G120C serial=SN-1 location=Hall 2")
    eq_no = H.EQ_RE.search(t)
    check(eq_no, "no machine added: %r" % t)
    t = ask("/wo new %s Seal leaks priority=high" % eq_no.group(0))
    wo = H.WO_RE.search(t)
    check(wo, "no work order opened: %r" % t)
    check("Note added" in ask("/wo note %s new seal" % wo.group(0)), "no note")
    check(wo.group(0) in ask("/wo list", BOB), "Bob's /wo list lacks the work order")
    check(ask("/stats"), "no /stats answer")


def t_photo(env):
    """The fields read are not checked: each Tesseract pass has a deadline,
    which memcheck's slowness can cut short (tests/telegram/test_photos.py
    checks them)."""
    fake = S["fake"]
    with open(PLATE, "rb") as f:
        data = base64.b64encode(f.read()).decode()
    since = fake.last_seq()
    fake.ctl("photo", chat_id=ANN, from_id=ANN, file_bytes_b64=data, first_name="Ann",
             caption="Roof, unit 3")
    got = fake.replies(ANN, 1, since=since, timeout=WAIT)[0]
    save = [d for label, d in buttons_of(got) if "Save" in label]
    check(save, "no Save button on the read: %r" % text_of(got))
    since = fake.last_seq()
    fake.press(ANN, got["result"]["message_id"], save[0])
    got = fake.replies(ANN, 1, since=since, timeout=WAIT, contains="Saved as")
    check(H.EQ_RE.search(text_of(got[0])), "no machine number: %r" % text_of(got[0]))


def t_alarm(env):
    since = S["fake"].last_seq()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    S["broker"].publish("factories/%s/devices/press-1/telemetry" % S["north"],
                        [json.dumps({"timestamp": stamp, "metrics": {"temp": 91.5}})])
    got = S["fake"].replies(ANN, 1, since=since, timeout=WAIT, contains="temp")
    check("press-1" in text_of(got[0]), "the alarm lacks the device: %r" % text_of(got[0]))


def t_http(env):
    status, _, body = S["rivet"].http("GET", "/healthz", timeout=WAIT)
    eq(status, 200, "GET /healthz status (%r)" % body[:200])
    status, _, body = S["rivet"].http("GET", "/metrics", timeout=WAIT)
    eq(status, 200, "GET /metrics status")
    check(b"rivet_build_info" in body, "no rivet_build_info in /metrics")


def t_sigterm(env):
    rc, _ = S["rivet"].sigterm(WAIT)
    check(rc in (0, 99), "exit status after SIGTERM: %s" % rc)
    H.check_no_crash(env)


def t_memcheck(env):
    lines, failed = vglogs.report(os.environ["VG_LOGS"])
    for line in lines:
        env.tap.diag(line)
    check(not failed, "memcheck found errors (see above)")


def main():
    if not shutil.which("valgrind"):
        print("1..0 # SKIP valgrind is not installed")
        return 0
    if len(sys.argv) != 3:
        sys.stderr.write("usage: test_vg_serve.py RIVET_BINARY SUPPRESSIONS\n")
        return 2
    # harness.Env runs sys.argv[1] as rivet: the wrapper, with the real
    # binary, the suppressions and the logs' folder in its environment.
    os.environ["VG_RIVET"] = os.path.abspath(sys.argv[1])
    os.environ["VG_SUPP"] = os.path.abspath(sys.argv[2])
    logs = os.environ["VG_LOGS"] = tempfile.mkdtemp(prefix="rivet-vg-serve-")
    sys.argv[1:] = [os.path.join(HERE, "valgrind-rivet")]
    try:
        return H.main("vg_serve", [
            ("commands through the poller, the workers and the senders", t_commands),
            ("a nameplate photo read and saved", t_photo),
            ("an MQTT alarm through the alert thread", t_alarm),
            ("/healthz and /metrics through the HTTP server", t_http),
            ("SIGTERM: a clean exit", t_sigterm),
            ("memcheck: no memory error, nothing definitely lost", t_memcheck),
        ], setup)
    finally:
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
