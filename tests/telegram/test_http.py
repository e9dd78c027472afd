#!/usr/bin/env python3
"""The HTTP server of `rivet serve`: /healthz, /metrics and what it refuses.

Rivet A runs every part: Telegram (the fake Bot API, polling), WhatsApp
(tests/fake_whatsapp/fake_whatsapp.py, only for its token check and the
webhook's verification GET), MQTT (a broker of this test's own, which it
stops and starts) and PostgreSQL (the shared test cluster). HTTP_TIMEOUT_S
is 2 and the log level debug, so every request is logged and looked at for
secrets. Two more processes: S starts while the fake refuses getMe, to see
/healthz say "starting" (and never after serve.ready); P runs on a private
PostgreSQL cluster that the test stops and starts again on the same port
(the shared cluster is never stopped).

/metrics is read with prometheus_client's parser (Debian's
python3-prometheus-client) and, when the Prometheus package's promtool is
installed, linted with `promtool check metrics`; its counters are compared
with the database and the fake after real traffic.

Bad HTTP is sent over raw sockets: bodies over HTTP_MAX_BODY_BYTES announced
(refused before a byte is read) or chunked (refused at the end, or cut off),
clients that trickle headers or a body, or send nothing, wrong methods,
media types and paths, GET with a body, 200 requests at once. After each,
the server still answers.
"""

import http.client
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq, text_of  # noqa: E402

FAKE_WA = os.path.join(H.HERE, "..", "fake_whatsapp", "fake_whatsapp.py")
COMMON_SH = os.path.join(H.HERE, "..", "..", "scripts", "lib", "common.sh")

# Distinctive WhatsApp secrets: none may reach a log.
WA_TOKEN = "EAAGrivetWAtokenMUSTnotBEloggedZq81"
WA_PHONE_ID = "106540352242922"
WA_APP_SECRET = "waAPPsecretNEVERlogged44f1"
WA_VERIFY = "waVERIFYtokenNEVERlogged9d2c"
# Sent in query strings and headers: must not reach a log either.
QS_SECRET = "qsSECRETneverINlog5521"

BOB = 7201  # technician of Plant South, on Telegram
TIMEOUT_S = 2  # HTTP_TIMEOUT_S of A
MAX_BODY = 1 << 20  # the default HTTP_MAX_BODY_BYTES

HEALTHY = {"database": "ok", "telegram": "ok", "whatsapp": "ok", "mqtt": "connected",
           "status": "ok"}

S = {}
CLEANUP = []  # callables run after main(): the fake WhatsApp, the private cluster


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

class FakeWhatsApp:
    """The fake Cloud API, just so that WhatsApp starts (its token check)."""

    def __init__(self, env):
        port_file = os.path.join(env.tmp, "fake_wa.port")
        self.stderr = open(os.path.join(env.tmp, "fake_wa.stderr"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE_WA, "--port", "0", "--port-file", port_file,
             "--token", WA_TOKEN, "--phone-number-id", WA_PHONE_ID,
             "--app-secret", WA_APP_SECRET],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
            preexec_fn=H._pdeathsig)
        CLEANUP.append(self.stop)

        def ready():
            if self.proc.poll() is not None:
                raise H.Fail("the fake WhatsApp exited %s" % self.proc.returncode)
            return os.path.exists(port_file)

        H.wait_until(ready, 20, "the fake WhatsApp's port file", interval=0.05)
        with open(port_file) as f:
            self.url = "http://127.0.0.1:%d/v21.0" % int(f.read().strip())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


def common_sh(script, timeout=120, **env):
    """Runs script after sourcing scripts/lib/common.sh (pg_start, as_pg,
    pg_bindir); values go in as environment variables, never spliced."""
    e = dict(os.environ, **env)
    p = subprocess.run(["bash", "-c", '. "$COMMON_SH" && ' + script], env=dict(e, COMMON_SH=COMMON_SH),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise H.Fail("%s exited %d: %s" % (script, p.returncode,
                                           p.stderr.decode(errors="replace")[-2000:]))
    return p.stdout.decode(errors="replace")


class PrivatePG:
    """A PostgreSQL cluster of this test's own (scripts/lib/common.sh's
    pg_start), stopped and started again on the same port."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rivet-http-pg-")
        CLEANUP.append(self.destroy)
        out = common_sh('pg_start "$PGDIR" && echo "port=$PG_PORT"', PGDIR=self.dir,
                        PG_FSYNC="off")
        self.port = int(re.search(r"port=(\d+)", out).group(1))

    def url(self, db):
        return "postgresql://rivet@127.0.0.1:%d/%s" % (self.port, db)

    def stop(self):
        common_sh('as_pg "$(pg_bindir)/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null',
                  PGDIR=self.dir)

    def start(self):
        common_sh('as_pg "$(pg_bindir)/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/postgres.log" -w '
                  '-t 60 -o "$PGOPTS" start >/dev/null', PGDIR=self.dir,
                  PGOPTS="-c listen_addresses=127.0.0.1 -p %d -k '' -c fsync=off "
                         "-c max_connections=200" % self.port)

    def destroy(self):
        try:
            common_sh('[ ! -f "$PGDIR/data/postmaster.pid" ] || as_pg "$(pg_bindir)/pg_ctl" '
                      '-D "$PGDIR/data" -m immediate -w stop >/dev/null', PGDIR=self.dir)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def healthz(rivet, port=None):
    """GET /healthz: (status, the JSON object)."""
    if port is None:
        status, headers, body = rivet.http("GET", "/healthz")
    else:
        status, headers, body = get(port, "/healthz")
    check(status in (200, 503), "/healthz answered %d: %r" % (status, body[:300]))
    try:
        obj = json.loads(body)
    except ValueError:
        raise H.Fail("/healthz is not JSON: %r" % body[:300])
    check(isinstance(obj, dict), "/healthz is not an object: %r" % obj)
    eq(obj.get("status"), "ok" if status == 200 else "fail", "/healthz status field for %d"
       % status)
    return status, obj


def get(port, path, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def connect(port):
    return socket.create_connection(("127.0.0.1", port), 5)


def read_response(sock, method="GET", timeout=10):
    """One HTTP response from sock: (status, {lower-case header: value},
    body)."""
    sock.settimeout(timeout)
    r = http.client.HTTPResponse(sock, method=method)
    try:
        r.begin()
        body = r.read()
    finally:
        r.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def closed_by_peer(sock, timeout=5):
    """True when the peer closes sock (EOF or reset) within timeout."""
    sock.settimeout(timeout)
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def exchange(port, data, method="GET", timeout=10):
    s = connect(port)
    try:
        s.sendall(data)
        return read_response(s, method, timeout)
    finally:
        s.close()


def still_serving(rivet):
    check(rivet.alive(), "rivet %s exited %s" % (rivet.label, rivet.returncode()))
    status, obj = healthz(rivet)
    eq((status, obj), (200, HEALTHY), "/healthz afterwards")


def refused_json(body, what):
    try:
        obj = json.loads(body)
    except ValueError:
        raise H.Fail("%s: the body is not JSON: %r" % (what, body[:200]))
    check(isinstance(obj, dict) and isinstance(obj.get("error"), str),
          "%s: the body is not {\"error\": ...}: %r" % (what, obj))


def A():
    check("A" in S, "rivet A did not start")
    return S["A"]


# ---------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------

def setup(env):
    S["fake"] = env.start_fake()
    S["wa"] = FakeWhatsApp(env)
    S["broker"] = H.Broker(env).start()
    S["north"] = env.factory("Plant North")  # MQTT; nobody to alert
    S["south"] = env.factory("Plant South")  # Telegram users


def start_a(env):
    S["A"] = env.rivet("A", RIVET_LOG_LEVEL="debug", HTTP_TIMEOUT_S=str(TIMEOUT_S),
                       MQTT_URL=S["broker"].url, MQTT_CLIENT_ID="rivet-test-http-%d" % os.getpid(),
                       WHATSAPP_TOKEN=WA_TOKEN, WHATSAPP_PHONE_NUMBER_ID=WA_PHONE_ID,
                       WHATSAPP_APP_SECRET=WA_APP_SECRET, WHATSAPP_VERIFY_TOKEN=WA_VERIFY,
                       WHATSAPP_API_URL=S["wa"].url).start()
    S["A"].wait_log("ev=mqtt.connected", 20)
    S["A"].wait_log("ev=tg.poll_leader", 20)


# ---------------------------------------------------------------------------
# /healthz
# ---------------------------------------------------------------------------

def t_starting(env):
    """While Telegram checks its token (getMe fails for 3 s), /healthz is
    503 with "serve":"starting"; then 200, never "starting" again, and
    never after serve.ready."""
    fake = S["fake"]
    fake.fault(method="getMe", kind="500", duration=3)
    r = env.rivet("S", RIVET_LOG_LEVEL="debug")
    r.start(wait=False)
    try:
        port = r.listening_port()
        answers = []  # (serve.ready logged before the request was sent, status, object)
        deadline = time.monotonic() + 40
        while len([a for a in answers if a[0]]) < 30:
            ready = " ev=serve.ready " in r.text()  # looked at before the request is sent
            status, obj = healthz(None, port)
            answers.append((ready, status, obj))
            check(time.monotonic() < deadline, "no serve.ready within 40 s", r.tail())
            check(r.alive(), "rivet S exited %s" % r.returncode(), r.tail())
            if not ready:
                H.nap(0.02)
        good = {"database": "ok", "telegram": "ok", "whatsapp": "off", "mqtt": "off",
                "status": "ok"}
        starting = {"database": "ok", "serve": "starting", "telegram": "starting",
                    "whatsapp": "off", "mqtt": "off", "status": "fail"}
        first_good = next(i for i, a in enumerate(answers) if a[1] == 200)
        check(first_good > 0, "/healthz never said starting")
        for ready, status, obj in answers[:first_good]:
            eq((ready, status, obj), (False, 503, starting), "/healthz while starting")
        for ready, status, obj in answers[first_good:]:
            eq((status, obj), (200, good), "/healthz once ready (serve.ready logged: %s)" % ready)
        H.Tap.diag("%d answers starting, %d ready" % (first_good, len(answers) - first_good))
        check(len(fake.calls("getMe")) >= 2, "getMe was not retried")
        # /metrics answers while starting too (a scrape during a slow start)
        version = re.search(r" version=(\S+)", r.lines("serve.ready")[0]).group(1)
        eq(H.scrape(r).value("rivet_build_info", version=version), 1.0, "rivet_build_info of S")
        rc, secs = r.sigterm(20)
        eq(rc, 0, "rivet S's exit status")
    finally:
        r.kill()


def t_sigterm_while_starting(env):
    """SIGTERM while Telegram still checks its token: rivet exits 0 at
    once without starting anything more, never says serve.ready, and
    /healthz never said it was ready."""
    fake = S["fake"]
    fake.fault(method="getMe", kind="500", duration=120)
    try:
        r = env.rivet("T", RIVET_LOG_LEVEL="debug", MQTT_URL=S["broker"].url,
                      MQTT_CLIENT_ID="rivet-test-http-t-%d" % os.getpid())
        r.start(wait=False)
        port = r.listening_port()
        r.wait_log("ev=tg.unreachable", 20, count=2)
        status, obj = healthz(None, port)
        eq((status, obj.get("serve"), obj.get("telegram"), obj.get("mqtt")),
           (503, "starting", "starting", "starting"), "/healthz while Telegram is unreachable")
        rc, secs = r.sigterm(10)
    finally:
        fake.clear_faults()
        r.kill()
    eq(rc, 0, "exit status of a SIGTERM while starting")
    check(secs < 5, "rivet T took %.1f s to stop while starting" % secs)
    eq(r.lines("serve.ready"), [], "serve.ready logged by a process stopped while starting")
    eq(r.lines("mqtt.connected"), [], "MQTT started by a process stopped while starting")


def t_healthz_ok(env):
    start_a(env)
    r = A()
    # MQTT connected is logged a moment before the counters say so
    H.wait_until(lambda: healthz(r)[0] == 200, 10, "/healthz 200")
    status, headers, body = r.http("GET", "/healthz")
    eq(status, 200, "status")
    eq(json.loads(body), HEALTHY, "/healthz")
    eq(headers.get("Content-Type"), "application/json", "Content-Type")
    eq(headers.get("Cache-Control"), "no-store", "Cache-Control")
    eq(headers.get("X-Content-Type-Options"), "nosniff", "X-Content-Type-Options")
    # the field order of docs/operations.md
    eq(list(json.loads(body)), ["database", "telegram", "whatsapp", "mqtt", "status"],
       "field order")
    status, headers, body = r.http("HEAD", "/healthz")
    eq((status, body), (200, b""), "HEAD /healthz")


def t_healthz_telegram_refused(env):
    """getUpdates answering 401 for 4 s: /healthz 503 with Telegram's
    reason, then 200 again."""
    r = A()
    fake = S["fake"]
    fake.fault(method="getUpdates", kind="401", duration=4)
    seen = H.wait_until(lambda: (lambda s, o: o if s == 503 else None)(*healthz(r)), 15,
                        "/healthz 503 while Telegram refuses the token", interval=0.05)
    eq(seen, dict(HEALTHY, telegram="Telegram refuses TELEGRAM_BOT_TOKEN", status="fail"),
       "/healthz while getUpdates answers 401")
    check(H.TOKEN_SECRET not in json.dumps(seen), "the token in /healthz")
    H.wait_until(lambda: healthz(r) == (200, HEALTHY), 40, "/healthz 200 after the 401s")


def t_healthz_mqtt(env):
    """The broker stopped: 503 with "mqtt":"disconnected" (and
    rivet_mqtt_connected 0); started again: 200."""
    r = A()
    broker = S["broker"]
    broker.stop()
    H.wait_until(lambda: healthz(r) == (503, dict(HEALTHY, mqtt="disconnected", status="fail")),
                 20, "/healthz 503 with mqtt disconnected")
    eq(H.scrape(r).value("rivet_mqtt_connected"), 0.0, "rivet_mqtt_connected while down")
    broker.start()
    H.wait_until(lambda: healthz(r) == (200, HEALTHY), 60, "/healthz 200 after the broker is back")
    eq(H.scrape(r).value("rivet_mqtt_connected"), 1.0, "rivet_mqtt_connected when back")


def t_healthz_database(env):
    """Rivet P on a private cluster: stopped, /healthz 503 with
    "database":"unreachable" from every thread (and /metrics still
    answers); started again on the same port, 200."""
    pg = PrivatePG()
    env._psql(pg.url("postgres"), 'CREATE DATABASE "rivet_http"')
    p = env.rivet("P", DATABASE_URL=pg.url("rivet_http"), TELEGRAM_BOT_TOKEN="None",
                  RIVET_LOG_LEVEL="debug", HTTP_TIMEOUT_S=str(TIMEOUT_S)).start()
    try:
        healthz_database(env, pg, p)
    finally:
        p.kill()


def healthz_database(env, pg, p):
    good = {"database": "ok", "telegram": "off", "whatsapp": "off", "mqtt": "off", "status": "ok"}
    bad = dict(good, database="unreachable", status="fail")
    eq(healthz(p), (200, good), "/healthz of P")

    def all_of(n, want):
        return all(healthz(p) == want for _ in range(n))

    pg.stop()
    H.wait_until(lambda: all_of(12, (503, bad)), 30, "12 answers in a row 503 unreachable")
    m = H.scrape(p)
    check(m.value("rivet_start_time_seconds"), "/metrics without the database")
    pg.start()
    H.wait_until(lambda: all_of(20, (200, good)), 30, "20 answers in a row 200 after the restart")
    check(p.alive(), "rivet P exited")
    rc, secs = p.sigterm(20)
    eq(rc, 0, "rivet P's exit status")


# ---------------------------------------------------------------------------
# /metrics
# ---------------------------------------------------------------------------

# docs/operations.md: family -> (type, label names). The parser names a
# counter's family without _total.
DOCUMENTED = {
    "rivet_build_info": ("gauge", {"version"}),
    "rivet_start_time_seconds": ("gauge", set()),
    "rivet_updates_received_total": ("counter", {"channel", "outcome"}),
    "rivet_webhook_requests_total": ("counter", {"path", "status"}),
    "rivet_updates_handled_total": ("counter", {"channel", "outcome"}),
    "rivet_handler_seconds": ("histogram", {"channel"}),
    "rivet_inbox_pending": ("gauge", {"channel"}),
    "rivet_outbox_pending": ("gauge", {"channel"}),
    "rivet_messages_sent_total": ("counter", {"channel", "result"}),
    "rivet_message_statuses_total": ("counter", {"channel", "status"}),
    "rivet_ocr_reads_total": ("counter", {"result"}),
    "rivet_ocr_seconds": ("histogram", set()),
    "rivet_llm_fallbacks_total": ("counter", {"result"}),
    "rivet_ocr_jobs": ("gauge", set()),
    "rivet_ocr_max_jobs": ("gauge", set()),
    "rivet_ocr_waiting": ("gauge", set()),
    "rivet_ocr_deferred_total": ("counter", set()),
    "rivet_llm_in_flight": ("gauge", set()),
    "rivet_llm_max_in_flight": ("gauge", set()),
    "rivet_llm_waits_total": ("counter", {"result"}),
    "rivet_assist_requests_total": ("counter", {"result"}),
    "rivet_assist_seconds": ("histogram", set()),
    "rivet_assist_cost_usd_total": ("counter", set()),
    "rivet_mqtt_connected": ("gauge", set()),
    "rivet_mqtt_messages_received_total": ("counter", set()),
    "rivet_mqtt_messages_dropped_total": ("counter", {"reason"}),
    "rivet_mqtt_messages_evaluated_total": ("counter", set()),
    "rivet_alarms_raised_total": ("counter", {"severity"}),
    "rivet_alarm_escalations_total": ("counter", set()),
    "rivet_db_errors_total": ("counter", {"component"}),
    "rivet_metrics_misuse_total": ("counter", set()),
}
# Families that only appear after events this test does not cause.
NOT_CAUSED = {"rivet_message_statuses_total", "rivet_ocr_reads_total",
              "rivet_llm_fallbacks_total", "rivet_assist_requests_total"}


def family_name(name, typ):
    return name[:-len("_total")] if typ == "counter" and name.endswith("_total") else name


def tg_totals(env):
    """What the database says A did on Telegram (A is the only process on
    this database once S has stopped, and S had no traffic)."""
    row = env.sql("SELECT (SELECT count(*) FROM inbox WHERE channel = 'telegram'), "
                  "(SELECT count(*) FROM inbox WHERE channel = 'telegram' "
                  "  AND handled_at IS NOT NULL), "
                  "(SELECT count(*) FROM outbox WHERE channel = 'telegram' "
                  "  AND sent_at IS NOT NULL), "
                  "(SELECT count(*) FROM outbox WHERE channel = 'telegram' "
                  "  AND sent_at IS NULL AND failed_at IS NULL)")[0]
    return [int(x) for x in row]


def inbox_rows(env):
    return int(env.sql_value("SELECT count(*) FROM inbox WHERE channel = 'telegram'"))


def tg_counters(m):
    handled = sum(v for lab, v in m.series("rivet_updates_handled_total")
                  if lab.get("channel") == "telegram")
    return {
        "stored": m.value("rivet_updates_received_total", 0, channel="telegram", outcome="stored"),
        "handled": handled,
        "handled_ok": m.value("rivet_updates_handled_total", 0, channel="telegram", outcome="ok"),
        "seconds": m.value("rivet_handler_seconds_count", 0, channel="telegram"),
        "sent": m.value("rivet_messages_sent_total", 0, channel="telegram", result="sent"),
        "rate_limited": m.value("rivet_messages_sent_total", 0, channel="telegram",
                                result="rate_limited"),
    }


def settled(env, r):
    """The counters once they agree with the database: every update stored
    was counted, handled and timed, every message sent was counted, and
    nothing is pending (both read twice around the scrape)."""
    def agree():
        before = tg_totals(env)
        m = H.scrape(r)
        after = tg_totals(env)
        c = tg_counters(m)
        if before != after or after[3] != 0 or after[0] != after[1]:
            return None
        if (c["stored"], c["handled"], c["seconds"], c["sent"]) != (after[0], after[1], after[1],
                                                                    after[2]):
            return None
        return c, m
    return H.wait_until(agree, 30, "the Telegram counters to agree with the database")


def t_metrics_telegram(env):
    """Telegram traffic moves the counters by exactly what happened: 3
    messages (stored, handled ok, timed, 3 replies sent); then a reply
    that gets a 429 first (rate_limited, then sent)."""
    r = A()
    fake = S["fake"]
    H.register(env, fake, S["south"], [(BOB, "Bob")])
    base, _ = settled(env, r)
    since = fake.last_seq()
    for text in ("/help", "/stats", "/equip list"):
        fake.message(BOB, text)
    fake.replies(BOB, 3, since=since)
    now, m = settled(env, r)
    delta = {k: now[k] - base[k] for k in now}
    eq(delta, {"stored": 3, "handled": 3, "handled_ok": 3, "seconds": 3, "sent": 3,
               "rate_limited": 0}, "counter deltas after 3 messages")
    # the histogram is consistent: cumulative buckets, +Inf = count
    buckets = sorted((float(lab["le"]), v) for lab, v in m.series("rivet_handler_seconds_bucket")
                     if lab.get("channel") == "telegram")
    check(buckets and buckets[-1][0] == float("inf"), "no +Inf bucket: %r" % buckets)
    check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), "buckets not cumulative")
    eq(buckets[-1][1], now["seconds"], "the +Inf bucket against _count")
    check(m.value("rivet_handler_seconds_sum", channel="telegram") > 0, "_sum is 0")

    base = now
    fake.fault(method="sendMessage", kind="429", retry_after=1, count=1, chat_id=BOB)
    since = fake.last_seq()
    fake.message(BOB, "/help")
    fake.replies(BOB, 1, since=since, timeout=30)
    now, m = settled(env, r)
    delta = {k: now[k] - base[k] for k in now}
    eq(delta, {"stored": 1, "handled": 1, "handled_ok": 1, "seconds": 1, "sent": 1,
               "rate_limited": 1}, "counter deltas after a reply that met a 429")
    eq(fake.stats()["rate_limited"] >= 1, True, "the fake sent a 429")

    # getUpdates hands out again an update already in the inbox (as after a
    # crash before the offset confirmed it): a duplicate, not stored
    last = env.sql("SELECT external_id, payload FROM inbox WHERE channel = 'telegram' "
                   "ORDER BY id DESC LIMIT 1")[0]
    rows = inbox_rows(env)
    dup0 = m.value("rivet_updates_received_total", 0, channel="telegram", outcome="duplicate")
    fake.ctl("raw_updates", body=json.dumps({"ok": True, "result": [json.loads(last[1])]}))
    H.wait_until(lambda: H.scrape(r).value("rivet_updates_received_total", 0, channel="telegram",
                                           outcome="duplicate") > dup0, 30,
                 "the repeated update counted as a duplicate")
    now, m = settled(env, r)
    eq(inbox_rows(env), rows, "inbox rows after the repeated update")
    eq((now["stored"] - base["stored"] - 1,
        m.value("rivet_updates_received_total", 0, channel="telegram", outcome="duplicate") - dup0),
       (0, 1), "stored and duplicate after the repeated update")
    for ch in ("telegram", "whatsapp"):
        eq(m.value("rivet_inbox_pending", channel=ch), 0.0, "rivet_inbox_pending{%s}" % ch)
        eq(m.value("rivet_outbox_pending", channel=ch), 0.0, "rivet_outbox_pending{%s}" % ch)


def t_metrics_pending(env):
    """rivet_inbox_pending and rivet_outbox_pending count what waits:
    replies held by a Telegram outage are in the outbox gauge."""
    r = A()
    fake = S["fake"]
    retry0 = H.scrape(r).value("rivet_messages_sent_total", 0, channel="telegram", result="retry")
    since = fake.last_seq()
    fake.fault(method="sendMessage", kind="500", duration=3600, chat_id=BOB)
    try:
        for text in ("/help", "/stats"):
            fake.message(BOB, text)
        H.wait_until(lambda: H.scrape(r).value("rivet_outbox_pending", channel="telegram") == 2.0,
                     30, "rivet_outbox_pending{telegram} 2 while sends fail")
        eq(H.scrape(r).value("rivet_inbox_pending", channel="telegram"), 0.0,
           "rivet_inbox_pending{telegram}")
    finally:
        fake.clear_faults()
    H.wait_until(lambda: H.scrape(r).value("rivet_outbox_pending", channel="telegram") == 0.0,
                 60, "rivet_outbox_pending{telegram} back to 0")
    fake.replies(BOB, 2, since=since, timeout=30)
    failed = len([c for c in fake.calls("sendMessage", BOB, since) if c["error_code"] == 500])
    check(failed >= 1, "no send met the 500")
    H.wait_until(lambda: H.scrape(r).value("rivet_messages_sent_total", 0, channel="telegram",
                                           result="retry") - retry0 >= failed, 10,
                 "%d retries counted" % failed)
    eq(H.scrape(r).value("rivet_messages_sent_total", 0, channel="telegram", result="retry")
       - retry0, failed, "rivet_messages_sent_total{result=retry} against the fake's 500s")


def mqtt_counters(m):
    return {
        "received": m.value("rivet_mqtt_messages_received_total", 0),
        "evaluated": m.value("rivet_mqtt_messages_evaluated_total", 0),
        "not_json": m.value("rivet_mqtt_messages_dropped_total", 0, reason="not_json"),
        "high": m.value("rivet_alarms_raised_total", 0, severity="high"),
        "critical": m.value("rivet_alarms_raised_total", 0, severity="critical"),
    }


def t_metrics_mqtt(env):
    """A telemetry message, an alarm and a payload that is not JSON: the
    MQTT counters move by exactly that."""
    r = A()
    broker = S["broker"]
    base = mqtt_counters(H.scrape(r))
    alarms_before = int(env.sql_value("SELECT count(*) FROM alarms"))
    prefix = "factories/%s/devices/press-7/" % S["north"]
    broker.publish(prefix + "telemetry", [json.dumps({"metrics": {"spindle_temp": 41.5}})])
    broker.publish(prefix + "alarm", [json.dumps({"severity": "high", "code": "F0021",
                                                  "message": "Overcurrent"})])
    broker.publish_raw(prefix + "telemetry", b"this is not json")
    want = {"received": 3, "not_json": 1, "high": 1, "critical": 0}

    def moved():
        c = mqtt_counters(H.scrape(r))
        d = {k: c[k] - base[k] for k in c}
        return d if all(d[k] >= v for k, v in want.items()) and d["evaluated"] >= 1 else None
    d = H.wait_until(moved, 30, "the MQTT counters to move")
    eq({k: d[k] for k in want}, want, "MQTT counter deltas")
    eq(int(env.sql_value("SELECT count(*) FROM alarms")) - alarms_before, 1, "alarms recorded")
    m = H.scrape(r)
    for sev in ("low", "medium", "high", "critical"):
        check(m.value("rivet_alarms_raised_total", severity=sev) is not None,
              "rivet_alarms_raised_total{severity=%r} missing" % sev)


def t_metrics_documented(env):
    """Every documented family has its documented type and labels; the
    values that are known are right; nothing was misused; promtool (when
    installed) finds no fault."""
    r = A()
    # a WhatsApp verification, so that rivet_webhook_requests_total exists
    status, _, body = r.http("GET", "/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=%s"
                             "&hub.challenge=8812" % WA_VERIFY)
    eq((status, body), (200, b"8812"), "WhatsApp's verification")
    m = H.scrape(r)
    for name, (typ, labels) in sorted(DOCUMENTED.items()):
        fam = m.families.get(family_name(name, typ))
        if fam is None:
            check(name in NOT_CAUSED, "/metrics lacks %s" % name)
            continue
        eq(fam, (typ, labels), "type and labels of %s" % name)
    undocumented = set(m.families) - {family_name(n, t) for n, (t, _) in DOCUMENTED.items()}
    check(not undocumented, "families not in docs/operations.md: %s" % sorted(undocumented))
    version = re.search(r" version=(\S+)", r.lines("serve.ready")[0]).group(1)
    eq(m.series("rivet_build_info"), [({"version": version}, 1.0)], "rivet_build_info")
    started = m.value("rivet_start_time_seconds")
    check(started and time.time() - 600 < started <= time.time(),
          "rivet_start_time_seconds %r is not when A started" % started)
    eq(m.value("rivet_webhook_requests_total", path="/webhook/whatsapp", status="200"), 1.0,
       "rivet_webhook_requests_total{/webhook/whatsapp,200}")
    eq(m.value("rivet_mqtt_connected"), 1.0, "rivet_mqtt_connected")
    eq(m.value("rivet_metrics_misuse_total"), 0.0, "rivet_metrics_misuse_total")
    for lab, v in m.series("rivet_db_errors_total"):
        check(lab.get("component") in ("worker", "sender", "http", "mqtt"),
              "an undocumented component: %r" % lab)
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=m.text.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        check(p.returncode == 0, "promtool check metrics: %s" % p.stdout.decode(errors="replace"))
    else:
        H.Tap.diag("promtool not installed: only the Python parser checked /metrics")


# ---------------------------------------------------------------------------
# What the server refuses
# ---------------------------------------------------------------------------

def t_unknown_paths(env):
    r = A()
    for path in ("/", "/healthz/", "/HEALTHZ", "/metrics.txt", "/webhook", "/webhook/",
                 "/webhook/telegram/x", "/webhook/signal", "/nope?x=1", "//healthz",
                 "/%68ealthz-no"):
        for method in ("GET", "POST"):
            status, headers, body = r.http(method, path, body=b"{}" if method == "POST" else None,
                                           headers={"Content-Type": "application/json"})
            eq(status, 404, "%s %s" % (method, path))
            eq(headers.get("Content-Type"), "application/json", "Content-Type of a 404")
            refused_json(body, "%s %s" % (method, path))
    still_serving(r)


def t_wrong_methods(env):
    r = A()
    cases = [("POST", "/healthz", "GET, HEAD"), ("PUT", "/healthz", "GET, HEAD"),
             ("DELETE", "/metrics", "GET, HEAD"), ("POST", "/metrics", "GET, HEAD"),
             ("GET", "/webhook/telegram", "POST"), ("HEAD", "/webhook/telegram", "POST"),
             ("PUT", "/webhook/telegram", "POST"), ("DELETE", "/webhook/whatsapp",
                                                    "GET, HEAD, POST"),
             ("OPTIONS", "/healthz", "GET, HEAD"), ("PATCH", "/webhook/whatsapp",
                                                    "GET, HEAD, POST")]
    for method, path, allow in cases:
        status, headers, body = r.http(method, path, body=b"{}" if method in ("POST", "PUT",
                                                                               "PATCH") else None,
                                       headers={"Content-Type": "application/json"})
        eq(status, 405, "%s %s" % (method, path))
        eq(headers.get("Allow"), allow, "Allow of %s %s" % (method, path))
        if method != "HEAD":
            refused_json(body, "%s %s" % (method, path))
    still_serving(r)


def t_content_types(env):
    r = A()
    body = json.dumps({"update_id": 1}).encode()
    for path in ("/webhook/telegram", "/webhook/whatsapp"):
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx",
                      "application/json-seq", "multipart/form-data; boundary=x", "json", None):
            headers = {"Content-Type": ctype} if ctype else {}
            if ctype is None:
                # urllib adds a form Content-Type to a body: send it raw
                status = exchange(A().http_port(), b"POST %s HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body),
                                  "POST")[0]
            else:
                status = r.http("POST", path, body=body, headers=headers)[0]
            eq(status, 415, "POST %s with Content-Type %r" % (path, ctype))
    # the media type is compared without its parameters, in any case
    for ctype in ("application/json; charset=utf-8", "Application/JSON", "application/json;x=1"):
        status, _, _ = r.http("POST", "/webhook/whatsapp", body=body, headers={
            "Content-Type": ctype, "X-Hub-Signature-256": "sha256=" + "0" * 64})
        eq(status, 401, "POST /webhook/whatsapp with %r and a bad signature" % ctype)
    still_serving(r)


def t_refused_body_not_a_request(env):
    """The body of a request refused at its headers is never read as the
    next request on the connection (one answer, then the connection is
    closed)."""
    r = A()
    port = r.http_port()
    inner = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    for head, status in (
            (b"POST /nope HTTP/1.1\r\nContent-Type: application/json\r\n", 404),
            (b"POST /healthz HTTP/1.1\r\nContent-Type: application/json\r\n", 405),
            (b"POST /webhook/telegram HTTP/1.1\r\nContent-Type: text/plain\r\n", 415),
            (b"GET /healthz HTTP/1.1\r\n", 400)):
        for chunked in (False, True):
            if chunked:
                req = (head + b"Host: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                       b"%x\r\n" % len(inner) + inner + b"\r\n0\r\n\r\n")
            else:
                req = head + b"Host: x\r\nContent-Length: %d\r\n\r\n" % len(inner) + inner
            s = connect(port)
            try:
                s.sendall(req)
                s.settimeout(TIMEOUT_S + 5)
                out = b""
                try:
                    while True:
                        d = s.recv(65536)
                        if not d:
                            break
                        out += d
                except (ConnectionResetError, socket.timeout):
                    pass
            finally:
                s.close()
            what = "%s (%s)" % (head.split(b"\r\n")[0].decode(), "chunked" if chunked else
                                "Content-Length")
            check(out.startswith(b"HTTP/1.1 %d " % status), "%s answered %r" % (what, out[:60]))
            eq(out.count(b"HTTP/1.1 "), 1, "answers to %s" % what)
            check(b"rivet_build_info" not in out, "%s: its body was served as a request" % what)
    still_serving(r)


def t_get_with_body(env):
    r = A()
    port = r.http_port()
    for req in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n0\r\n\r\n",
                b"GET /webhook/whatsapp?hub.mode=subscribe&hub.verify_token=" +
                WA_VERIFY.encode() + b"&hub.challenge=1 HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 2\r\n\r\n{}"):
        status, headers, body = exchange(port, req)
        eq(status, 400, "%r" % req.split(b"\r\n")[0])
        refused_json(body, "GET with a body")
    # a body of zero bytes is no body
    status, _, _ = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    eq(status, 200, "GET /healthz with Content-Length: 0")
    still_serving(r)


def t_body_too_big(env):
    """A body announced over HTTP_MAX_BODY_BYTES is refused 413 before a
    byte of it is sent (with or without Expect: 100-continue), and the
    connection closed; exactly the limit goes through."""
    r = A()
    port = r.http_port()
    for size in (2 * 1024 * 1024, MAX_BODY + 1, 10 ** 15, 2 ** 64 - 1, 10 ** 30):
        for expect in (b"", b"Expect: 100-continue\r\n"):
            s = connect(port)
            try:
                s.sendall(b"POST /webhook/telegram HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          b"application/json\r\nContent-Length: %d\r\n%s\r\n" % (size, expect))
                # not a byte of the body is sent: the answer must come anyway
                status, headers, body = read_response(s, "POST", timeout=TIMEOUT_S + 3)
                eq(status, 413, "a body of %d bytes%s" % (size, " (Expect)" if expect else ""))
                if size < 2 ** 64:
                    # past 64 bits MHD answers 413 itself, before Rivet sees it
                    refused_json(body, "413")
                eq(headers.get("connection", "").lower(), "close", "Connection of the 413")
                check(closed_by_peer(s), "the connection stayed open after the 413")
            finally:
                s.close()
    # a body of exactly the limit is read and reaches the handler (a bad
    # signature: 401)
    big = b"[" + b" " * (MAX_BODY - 2) + b"]"
    status, _, _ = r.http("POST", "/webhook/whatsapp", body=big, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + "0" * 64},
        timeout=30)
    eq(status, 401, "a body of exactly HTTP_MAX_BODY_BYTES")
    still_serving(r)


def send_chunked(s, total, chunk=64 * 1024):
    """Sends a chunked body of total bytes (then the last chunk); returns
    (bytes sent, the error that stopped it or None)."""
    piece = b"%x\r\n" % chunk + b"x" * chunk + b"\r\n"
    sent = 0
    try:
        while sent < total:
            s.sendall(piece)
            sent += chunk
        s.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError) as e:
        return sent, e
    return sent, None


def t_chunked(env):
    """A chunked body over the limit: 413 once it has ended; one that never
    ends is cut off after about a MiB more, and never kept in memory."""
    r = A()
    port = r.http_port()
    head = (b"POST /webhook/telegram HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    s = connect(port)
    try:
        s.sendall(head)
        sent, err = send_chunked(s, MAX_BODY + MAX_BODY // 2)
        check(err is None, "the server cut off a body of 1.5 MiB: %r after %d" % (err, sent))
        status, _, body = read_response(s, "POST", timeout=10)
        eq(status, 413, "a chunked body of 1.5 MiB")
        refused_json(body, "413")
    finally:
        s.close()

    s = connect(port)
    try:
        s.sendall(head)
        sent, err = send_chunked(s, 256 * 1024 * 1024)
        check(err is not None, "a chunked body of 256 MiB was taken whole")
        # what the kernel buffers on both sides comes on top of the MiB
        check(sent < 32 * 1024 * 1024, "the server read %d bytes before cutting off" % sent)
        H.Tap.diag("an endless chunked body was cut off after %.1f MiB sent" % (sent / 2 ** 20))
    finally:
        s.close()
    check(r.alive(), "rivet A died")
    rss = rss_kib(r)
    check(rss < 512 * 1024, "rivet A's RSS is %d KiB after the big bodies" % rss)
    still_serving(r)


def rss_kib(r):
    with open("/proc/%d/status" % r.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def t_slow_clients(env):
    """HTTP_TIMEOUT_S=2: clients that trickle their headers or body, or send
    nothing, are disconnected after about 2 s, unanswered; more of them
    than the server has threads do not keep others from being served."""
    r = A()
    port = r.http_port()
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"
    post = (b"POST /webhook/whatsapp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 500\r\n\r\n")
    clients = []  # [socket, bytes to trickle, started, ended, got]
    for i in range(6):
        clients.append([connect(port), head, time.monotonic(), None, b""])
    for i in range(2):
        s = connect(port)
        s.sendall(post)
        clients.append([s, b"{" + b" " * 498 + b"}", time.monotonic(), None, b""])
    clients.append([connect(port), b"", time.monotonic(), None, b""])  # says nothing
    served_at = None
    deadline = time.monotonic() + TIMEOUT_S + 10
    try:
        while any(c[3] is None for c in clients) and time.monotonic() < deadline:
            now = time.monotonic()
            if served_at is None and now - clients[0][2] > 1.0:
                # the slow ones hold connections; a normal request is answered
                t0 = time.monotonic()
                status, obj = healthz(r)
                served_at = time.monotonic() - t0
                eq((status, obj), (200, HEALTHY), "/healthz among slow clients")
            for c in clients:
                if c[3] is None and c[1]:
                    try:
                        c[0].send(c[1][:1])
                        c[1] = c[1][1:]
                    except OSError:
                        c[3] = time.monotonic()
            # the pace of the trickle (a byte every 0.25 s), watching for EOF
            open_socks = [c[0] for c in clients if c[3] is None]
            readable, _, _ = select.select(open_socks, [], [], 0.25)
            for c in clients:
                if c[0] in readable and c[3] is None:
                    try:
                        d = c[0].recv(65536)
                    except OSError:
                        d = b""
                    c[4] += d
                    if not d:
                        c[3] = time.monotonic()
    finally:
        for c in clients:
            c[0].close()
    check(served_at is not None and served_at < 1.5, "a normal request took %r s" % served_at)
    for i, c in enumerate(clients):
        check(c[3] is not None, "slow client %d was still connected after %d s" % (
            i, TIMEOUT_S + 10))
        took = c[3] - c[2]
        check(TIMEOUT_S - 0.2 <= took <= TIMEOUT_S + 3,
              "slow client %d was disconnected after %.2f s (HTTP_TIMEOUT_S=%d)" % (
                  i, took, TIMEOUT_S))
        check(not c[4].startswith(b"HTTP/1.1 200"), "slow client %d was answered %r" % (i, c[4][:80]))
    still_serving(r)


def t_concurrent(env):
    """200 requests to /healthz at once, each on its own connection: all
    answered 200."""
    r = A()
    port = r.http_port()
    n = 200
    barrier = threading.Barrier(n)
    results = [None] * n

    def one(i):
        try:
            barrier.wait(30)
            status, _, body = get(port, "/healthz", timeout=60)
            results[i] = (status, json.loads(body))
        except Exception as e:  # recorded, checked below
            results[i] = repr(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    took = time.monotonic() - t0
    bad = [x for x in results if x != (200, HEALTHY)]
    check(not bad, "%d of %d concurrent requests failed" % (len(bad), n), *bad[:5])
    H.Tap.diag("%d concurrent /healthz answered in %.2f s" % (n, took))
    still_serving(r)


def t_secrets_not_logged(env):
    """Query strings and header values never reach the log, whatever the
    answer; the WhatsApp verification works and is refused without saying
    the token."""
    r = A()
    port = r.http_port()
    status, headers, body = r.http(
        "GET", "/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=%s&hub.challenge=1158201444"
        % WA_VERIFY)
    eq((status, body), (200, b"1158201444"), "the verification with the right token")
    check(headers.get("Content-Type", "").startswith("text/plain"), "the challenge's Content-Type")
    for q in ("hub.mode=subscribe&hub.verify_token=%s&hub.challenge=77" % QS_SECRET,
              "hub.mode=subscribe&hub.verify_token=%s%s&hub.challenge=77" % (WA_VERIFY, QS_SECRET),
              "hub.mode=unsubscribe&hub.verify_token=%s&hub.challenge=77" % WA_VERIFY,
              "hub.verify_token=%s" % QS_SECRET):
        status, _, body = r.http("GET", "/webhook/whatsapp?" + q)
        eq(status, 403, "the verification %r" % q.replace(WA_VERIFY, "VERIFY"))
        check(WA_VERIFY.encode() not in body and QS_SECRET.encode() not in body,
              "the refusal repeats the token")
    hdrs = {"X-Telegram-Bot-Api-Secret-Token": QS_SECRET, "Authorization": "Bearer " + QS_SECRET,
            "X-Hub-Signature-256": "sha256=" + QS_SECRET, "Content-Type": "application/json"}
    for method, path in (("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/nope"),
                         ("POST", "/healthz"), ("POST", "/webhook/telegram"),
                         ("POST", "/webhook/whatsapp"), ("DELETE", "/webhook/whatsapp")):
        r.http(method, path + "?hub.verify_token=%s&x=%s" % (QS_SECRET, QS_SECRET),
               body=b"{}" if method == "POST" else None, headers=hdrs)
    # a request line too long for the server (MHD answers it itself)
    for size in (8 * 1024, 100 * 1024):
        try:
            exchange(port, b"GET /healthz?hub.verify_token=" + QS_SECRET.encode() + b"&pad=" +
                     b"p" * size + b" HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
        except (OSError, http.client.HTTPException):
            pass  # closed without an answer is fine; only the log matters
    still_serving(r)
    # the requests were logged (debug), without what followed the path
    logged = [l for l in r.text().splitlines() if " ev=http.request " in l]
    check(any('path="/webhook/whatsapp"' in l for l in logged), "requests are not logged")
    for path, text in env.logs():
        for line in text.splitlines():
            for secret in (WA_VERIFY, QS_SECRET, "hub.verify_token", WA_TOKEN, WA_APP_SECRET):
                check(secret not in line, "%r in %s: %s" % (secret, os.path.basename(path),
                                                              line[:300]))


def t_sigterm(env):
    """SIGTERM with an idle keep-alive connection and a trickling client:
    rivet A stops its server and exits 0 in time."""
    r = A()
    port = r.http_port()
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    idle.request("GET", "/healthz")
    eq(idle.getresponse().read() != b"", True, "the keep-alive request")
    slow = connect(port)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    try:
        rc, secs = r.sigterm(TIMEOUT_S + 5 + 10)  # HTTP_TIMEOUT_S + TELEGRAM_FLUSH_S + margin
    finally:
        idle.close()
        slow.close()
    eq(rc, 0, "exit status")
    H.Tap.diag("rivet A exited %.2f s after SIGTERM" % secs)
    check(r.lines("http.stopped"), "no http.stopped in the log")


def t_no_leaks(env):
    H.check_no_token(env)
    H.check_no_crash(env)
    for path, text in env.logs():
        for secret in (WA_TOKEN, WA_APP_SECRET, WA_VERIFY):
            check(secret not in text, "a WhatsApp secret in %s" % os.path.basename(path))


TESTS = [
    ("/healthz: 503 serve starting while Telegram starts, never after serve.ready", t_starting),
    ("SIGTERM while starting: exit 0, nothing more started, never ready",
     t_sigterm_while_starting),
    ("/healthz: 200 with every part on (Telegram, WhatsApp, MQTT, database)", t_healthz_ok),
    ("/healthz: 503 while Telegram refuses the token, then 200", t_healthz_telegram_refused),
    ("/healthz: 503 mqtt disconnected while the broker is down, then 200", t_healthz_mqtt),
    ("/healthz: 503 database unreachable on a stopped private cluster, then 200",
     t_healthz_database),
    ("/metrics: Telegram traffic and a 429 move the counters exactly", t_metrics_telegram),
    ("/metrics: inbox and outbox pending gauges", t_metrics_pending),
    ("/metrics: MQTT telemetry, an alarm and a bad payload", t_metrics_mqtt),
    ("/metrics: documented families, types, labels; parser and promtool", t_metrics_documented),
    ("unknown paths: 404", t_unknown_paths),
    ("wrong methods: 405 with Allow", t_wrong_methods),
    ("wrong content types: 415", t_content_types),
    ("GET with a body: 400", t_get_with_body),
    ("the body of a refused request is not read as a request", t_refused_body_not_a_request),
    ("body over the limit: 413 without reading it", t_body_too_big),
    ("chunked bodies over the limit: 413, or cut off", t_chunked),
    ("slow clients disconnected after HTTP_TIMEOUT_S", t_slow_clients),
    ("200 concurrent /healthz all answered", t_concurrent),
    ("query strings and header values never logged", t_secrets_not_logged),
    ("SIGTERM with open connections: exit 0 in time", t_sigterm),
    ("no secret in the logs, no sanitizer report", t_no_leaks),
]

if __name__ == "__main__":
    try:
        rc = H.main("http", TESTS, setup)
    finally:
        for fn in reversed(CLEANUP):
            try:
                fn()
            except Exception as e:
                sys.stderr.write("cleanup: %s\n" % e)
    sys.exit(rc)
