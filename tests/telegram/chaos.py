#!/usr/bin/env python3
"""The chaos run: Rivet under faults on every side, then an audit.

Real PostgreSQL (a cluster of the run's own, so that it can be restarted),
a real mosquitto of its own, the fake Telegram Bot API and the fake
WhatsApp Cloud API, and two `rivet serve` processes (A and B) on one
database. For --duration seconds:

- Telegram users (one private chat each) send numbered commands
  (/equip search probe-…, /wo new EQ-… chaos-…, /stats, /wo list, /alerts)
  and now and then a nameplate photo (tests/fixtures/nameplates/set/);
- WhatsApp users do the same through signed webhooks, each message posted
  to a live process's webhook and posted again (same wamid) until a process
  answers 200, as Meta does; one of them is a Telegram user's /link;
- MQTT devices publish telemetry: pressure crossings (a rule with no
  cooldown: each crossing is one alarm), now and then four in a second (a
  storm: a few alarm messages, then a summary), and temperature episodes
  (a rule with a one-minute cooldown: each episode is one alarm); a
  publish that fails is published again (MQTT's at least once);

while, on a schedule drawn from the seed:

- SIGKILL of A or B, restarted after a moment; B stopped (SIGTERM) for a
  stretch, so one process runs alone, and two at once the rest of the time;
- PostgreSQL restarted (pg_ctl restart -m fast) or stopped for seconds;
- mosquitto stopped and started again;
- the fake Bot API answering 5xx, 429 with retry_after, slowly, or not at
  all (timeouts) for stretches; the fake Graph API answering 5xx, 130429,
  131056, slowly, or not at all for stretches.

Then the faults stop, the users and devices stop, and the run waits (a
bounded poll) until every message is handled, every alarm recorded and
every outbox row delivered. The audit, from the fakes' call logs and the
database:

- every user message stored once and answered exactly once, in order per
  chat, with the reply its command calls for; a second copy is allowed only
  where Rivet documents it (the API accepted the message just before a
  SIGKILL, at most one per sender thread of the channel per kill), and is
  counted apart; every other copy is a failure, named by its cause;
- an alarm whose telemetry mosquitto took after a restart, before a rivet
  process had subscribed again, is counted apart too: mosquitto 2.0.11
  does not restore the shared subscriptions of offline sessions, so such a
  message has no subscriber and the broker drops it;
- each `/wo new` opened exactly one work order;
- every pressure crossing recorded as one alarm, every temperature episode
  as one; each alarm delivered (one by one or in a storm summary) once to
  each subscriber on each of their channels;
- no outbox row pending or failed, no alarm held, no inbox row unhandled;
- each rivet process's memory (VmHWM from /proc) under a bound; no
  sanitizer report, no secret in the logs; both processes exit 0 on SIGTERM.

    python3 tests/telegram/chaos.py --rivet build/rivet --duration 300 [--seed N]

The seed (RIVET_CHAOS_SEED or --seed) fixes the schedule of faults and the
users' choices; the timing of the processes themselves is not repeatable.
Exit status 0 when every check passed, 1 otherwise (and 2 for bad options).
Python 3 standard library only; test_chaos.py runs it small, scripts/chaos
runs it big.
"""

import argparse
import base64
import calendar
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402
import wa_harness as W  # noqa: E402

# The checks a run makes, in order (test_chaos.py prints one TAP point each).
N_CHECKS = 15

PLATES = os.path.normpath(os.path.join(HERE, "..", "fixtures", "nameplates", "set"))
# read confidently (see test_photos.py): after the first read of each, the
# same bytes are answered from the stored read
PLATE_NAMES = ("015-hvac-fr", "025-nema-motor", "020-hvac")

FIRST_TG_CHAT = 8101
FIRST_WA = 4915120000001
PRESSURE_LIMIT = 9.0
TEMP_LIMIT = 80.0
EPISODE_GAP_S = 80.0      # temperature episodes start this far apart (cooldown 60 s)
EPISODE_MESSAGES = 3
BURST_EVERY_S = 40.0      # now and then a device sends crossings in quick succession: a storm
BURST_MESSAGES = 4
KILL_WINDOW_S = 2.0       # "just before the kill": the API answered this long before it
# bot/chat.h: "nothing is answered twice, except a message the remote API
# accepted in the instant before its delivery was recorded", with a database
# restart among the causes: the sender holds the claim's transaction across
# the API call, so a restart then loses the record of a message sent. False
# fails a run on such a copy (a durable claim before the call would avoid it).
ALLOW_DB_RESTART_COPIES = True
TG_SENDERS = 2
WA_SENDERS = 2


class Options:
    """What a run is: its size, seed and bounds."""

    def __init__(self, rivet_bin, duration=300.0, tg_chats=6, wa_chats=6, devices=6, seed=None,
                 drain_timeout=300.0, rss_limit_mb=None, interval_s=4.0, device_period_s=2.0,
                 keep=False, progress=None, broker_debug=False):
        self.rivet_bin = os.path.abspath(rivet_bin)
        self.duration = float(duration)
        self.tg_chats = int(tg_chats)
        self.wa_chats = int(wa_chats)
        self.devices = int(devices)
        if seed is None:
            seed = int(os.environ.get("RIVET_CHAOS_SEED") or (os.getpid() ^ int(time.time())))
        self.seed = int(seed)
        self.drain_timeout = float(drain_timeout)
        self.sanitized = is_sanitized(self.rivet_bin)
        if rss_limit_mb is None:
            rss_limit_mb = 1500 if self.sanitized else 300
        self.rss_limit_mb = float(rss_limit_mb)
        self.interval_s = float(interval_s)        # mean gap between one user's messages
        self.device_period_s = float(device_period_s)
        self.keep = keep
        self.progress = progress                   # callable(str) or None
        self.broker_debug = broker_debug           # mosquitto logs all; a witness subscriber


def is_sanitized(path):
    """Whether the binary links AddressSanitizer (it then needs more memory
    and time)."""
    try:
        with open(path, "rb") as f:
            return b"libasan.so" in f.read()
    except OSError:
        return False


def proc_memory(pid):
    """(VmRSS, VmHWM) of a process in MB, or None when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            text = f.read()
    except OSError:
        return None
    got = {}
    for key in ("VmRSS", "VmHWM"):
        m = re.search(r"^%s:\s+(\d+) kB" % key, text, re.M)
        got[key] = int(m.group(1)) / 1024.0 if m else 0.0
    return got["VmRSS"], got["VmHWM"]


def log_time(iso):
    """Unix time of a log line's ts= (UTC, milliseconds)."""
    base, _, frac = iso.partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


def stamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


# ---------------------------------------------------------------------------
# The schedule of faults
# ---------------------------------------------------------------------------

class Fault:
    """One injected fault: kind, when (seconds into the run), how long, and
    its parameters; started/ended (Unix time) once carried out."""

    def __init__(self, kind, at, length=0.0, **params):
        self.kind = kind
        self.at = at
        self.length = length
        self.params = params
        self.started = None
        self.ended = None
        self.note = ""

    def __repr__(self):
        return "%s@%.1f+%.1f%s" % (self.kind, self.at, self.length,
                                   "".join(" %s=%s" % kv for kv in sorted(self.params.items())))


def spread(rng, n, lo, hi, gap, taken=None):
    """n moments in [lo, hi] at least gap apart (fewer if they do not fit)."""
    out = []
    for _ in range(n * 20):
        if len(out) >= n:
            break
        t = rng.uniform(lo, hi)
        if all(abs(t - u) >= gap for u in out + (taken or [])):
            out.append(t)
    return sorted(out)


def stretches(rng, kinds, n, lo, hi, min_len, max_len, gap=1.0):
    """n non-overlapping stretches in [lo, hi], kinds taken in turn."""
    out = []
    for _ in range(n * 30):
        if len(out) >= n:
            break
        length = rng.uniform(min_len, max_len)
        t = rng.uniform(lo, max(lo, hi - length))
        if all(t + length + gap <= s or t >= s + ln + gap for s, ln in out):
            out.append((t, length))
    out.sort()
    return [(kinds[i % len(kinds)], t, ln) for i, (t, ln) in enumerate(out)]


def schedule(rng, duration):
    """The faults of a run of duration seconds, in order of time."""
    d = duration
    lo, hi = 3.0, max(4.0, d - 4.0)
    faults = []
    # B alone off for a stretch (one process), both on the rest of the time
    for _, t, ln in stretches(rng, ["b_off"], max(1, int(d // 150)), lo, hi, 10, 25):
        faults.append(Fault("b_off", t, ln))
    for t in spread(rng, max(2, int(d // 25)), lo, hi, 4.0):
        faults.append(Fault("sigkill", t, rng.uniform(0.3, 4.0), target=rng.choice("AB")))
    pg = spread(rng, max(2, int(d // 60)), lo + 2, hi, 15.0)
    for i, t in enumerate(pg):
        if i % 2 == 0:
            faults.append(Fault("pg_restart", t))
        else:
            faults.append(Fault("pg_outage", t, rng.uniform(2.0, 8.0)))
    for t in spread(rng, max(1, int(d // 80)), lo, hi, 15.0, taken=pg):
        faults.append(Fault("mqtt_restart", t, rng.uniform(1.0, 6.0)))
    n = max(4, int(d // 30))
    for kind, t, ln in stretches(rng, ["tg_5xx", "tg_429", "tg_slow", "tg_timeout"], n, lo, hi,
                                 4.0, 12.0):
        p = {}
        if kind == "tg_5xx":
            p["code"] = rng.choice(["500", "502", "503"])
        elif kind == "tg_429":
            p["retry_after"] = rng.randint(1, 3)
        elif kind == "tg_slow":
            p["delay"] = round(rng.uniform(1.5, 4.0), 1)
        else:
            p["delay"] = round(rng.uniform(4.0, 8.0), 1)
        faults.append(Fault(kind, t, ln, **p))
    for kind, t, ln in stretches(rng, ["wa_5xx", "wa_130429", "wa_slow", "wa_131056",
                                       "wa_timeout"], n, lo, hi, 4.0, 12.0):
        p = {}
        if kind == "wa_5xx":
            p["code"] = rng.choice(["500", "503", "131000"])
        elif kind == "wa_slow":
            p["delay"] = round(rng.uniform(1.5, 4.0), 1)
        elif kind == "wa_timeout":
            p["delay"] = 20  # past Rivet's 15 s: it gives up, nothing was carried out
        faults.append(Fault(kind, t, ln, **p))
    faults.sort(key=lambda f: f.at)
    return faults


# ---------------------------------------------------------------------------
# The people and the devices
# ---------------------------------------------------------------------------

class Msg:
    """A message a user sent: its number in the chat, what it asks, and the
    id the channel gave it (update_id, wamid)."""

    __slots__ = ("chat", "n", "kind", "text", "probe", "ext_id", "sent_at", "stored", "tries")

    def __init__(self, chat, n, kind, text, probe):
        self.chat = chat
        self.n = n
        self.kind = kind
        self.text = text
        self.probe = probe
        self.ext_id = None
        self.sent_at = None
        self.stored = False      # WhatsApp: a webhook delivery was answered 200
        self.tries = 0


def pick(rng, chat_tag, n, eq_numbers, photo_share):
    """The n-th message of a chat: (kind, text, probe)."""
    x = rng.random()
    if x < photo_share:
        return "photo", None, "cap-%s-%d" % (chat_tag, n)
    x = rng.random()
    if x < 0.45:
        p = "probe-%s-%d" % (chat_tag, n)
        return "search", "/equip search " + p, p
    if x < 0.60:
        p = "chaos-%s-%d" % (chat_tag, n)
        return "wo_new", "/wo new %s %s" % (rng.choice(eq_numbers), p), p
    if x < 0.75:
        return "stats", "/stats", None
    if x < 0.90:
        return "wo_list", "/wo list", None
    return "alerts", "/alerts", None


def reply_fits(kind, probe, text):
    """Whether a reply's text answers a message of this kind."""
    low = text.lower()
    if kind in ("search", "wo_new"):
        return probe in text
    if kind == "stats":
        return "📊" in text
    if kind == "wo_list":
        return "work order" in low
    if kind == "alerts":
        return "alarm" in low
    if kind == "photo":
        return "📷" in text[:4] or "photo" in low or "file" in low or "image" in low
    return False


class Device:
    def __init__(self, key, rng, period, first_episode):
        self.key = key
        self.rng = rng
        self.period = period
        self.next_at = 0.0
        self.last_ts = 0.0
        self.pending = []         # (timestamp, payload) not yet accepted by the broker
        self.crossings = []       # timestamps of pressure crossings
        self.episodes = []        # [first, last] timestamps of temperature episodes
        self.next_episode = first_episode
        self.episode_left = 0
        self.next_burst = first_episode + rng.uniform(5, BURST_EVERY_S)
        self.burst_left = 0
        self.published = 0
        self.failed_publishes = 0
        self.accepted_at = {}     # a message's timestamp (Unix) -> when the broker took it

    def message(self, now):
        ts = max(now, self.last_ts + 0.001)
        self.last_ts = ts
        pressure = round(self.rng.uniform(3.0, 8.0), 3)
        if self.burst_left == 0 and ts >= self.next_burst:
            self.burst_left = BURST_MESSAGES
            self.next_burst = ts + BURST_EVERY_S * self.rng.uniform(0.8, 1.2)
        if self.burst_left > 0 or self.rng.random() < 0.12:
            self.burst_left = max(0, self.burst_left - 1)
            pressure = round(self.rng.uniform(9.1, 12.0), 3)
            self.crossings.append(ts)
        temp = round(self.rng.uniform(55.0, 70.0), 2)
        if self.episode_left == 0 and ts >= self.next_episode:
            self.episode_left = EPISODE_MESSAGES
            self.episodes.append([ts, ts])
            self.next_episode = ts + EPISODE_GAP_S + self.rng.uniform(0, 20)
        if self.episode_left > 0:
            temp = round(self.rng.uniform(81.0, 95.0), 2)
            self.episodes[-1][1] = ts
            self.episode_left -= 1
        return ts, json.dumps({"timestamp": stamp(ts),
                               "metrics": {"pressure": pressure, "temp": temp}})


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

class Proc:
    """A rivet serve process the run keeps up (as a supervisor would)."""

    def __init__(self, rivet):
        self.rivet = rivet
        self.want_up = True
        self.up_at = 0.0          # monotonic: not before this
        self.our_kill = False     # the last end was ours (SIGKILL or SIGTERM)
        self.exits = []           # (run number, exit status, reason) of ends that were not ours
        self.hwm = 0.0
        self.rss = 0.0
        self.rss_samples = 0
        self.term_sent = None     # monotonic: SIGTERM sent, exit not yet seen

    def port(self):
        """The HTTP port of the current run, once it listens, else None."""
        if not self.rivet.alive():
            return None
        m = re.search(r" ev=http\.listening .*\bport=(\d+)", self.rivet.text())
        return int(m.group(1)) if m and m.group(1) != "0" else None


class Chaos:
    def __init__(self, opt):
        self.opt = opt
        self.faults = schedule(random.Random(opt.seed ^ 0x5EED), opt.duration)
        self.tap = H.Tap()
        self.cluster = None
        self.env = None
        self.tg = None
        self.wa = None
        self.broker = None
        self.procs = {}
        self.stop_users = threading.Event()
        self.stop_devices = threading.Event()
        self.threads = []
        self.errors = []          # exceptions in actor threads
        self.lock = threading.Lock()
        self.tg_msgs = {}         # chat -> [Msg]
        self.wa_msgs = {}         # wa number -> [Msg]
        self.devices = []
        self.kills = []           # (start, end, label)
        self.pg_down = []         # (start, end)
        self.broker_starts = []   # when a restarted broker was started
        self.fig = {}
        self.checks = []          # (name, ok, detail)
        self.t0 = None
        self.drain_s = None
        self.plates = []

    # -- logging ----------------------------------------------------------------

    def say(self, text):
        if self.opt.progress:
            self.opt.progress(text)

    def note(self, text):
        el = time.monotonic() - self.t0 if self.t0 else 0.0
        self.say("[%6.1f s] %s" % (el, text))

    # -- set-up -----------------------------------------------------------------

    def setup(self):
        opt = self.opt
        for name in PLATE_NAMES:
            with open(os.path.join(PLATES, name + ".jpg"), "rb") as f:
                self.plates.append(f.read())
        self.say("seed %d; faults: %s" % (opt.seed, ", ".join(map(repr, self.faults))))
        self.cluster = H.Cluster("rivet-chaos-pg-")
        self.env = H.Env("chaos", opt.rivet_bin, self.cluster.url(), self.tap)
        self.env.create_db()
        self.tg = self.env.start_fake()
        self.wa = W.WAFake(self.env)
        self.broker = H.Broker(self.env, conf_extra="log_type all\n" if opt.broker_debug
                               else "").start()
        if opt.broker_debug:
            # what the broker routed, with the time: a client of its own
            self.witness_out = open(os.path.join(self.env.tmp, "witness.log"), "wb")
            self.witness = subprocess.Popen(
                ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1",
                 "-c", "-i", "chaos-witness", "-t", "factories/+/devices/+/telemetry",
                 "-F", "%U %t %p"], stdout=self.witness_out, stderr=subprocess.DEVNULL,
                preexec_fn=H._pdeathsig)
        env = self.env
        slug = env.factory("Plant Chaos")
        self.slug = slug
        env.cli("factory", "set", slug, "escalate=0")
        env.cli("factory", "set", slug, "offline=0")
        out = env.console(["/equip add Grundfos CR%d serial=CH%03d location=Hall %d" % (i, i, i)
                           for i in range(1, 5)], slug)
        self.eq_numbers = H.EQ_RE.findall(out)[:4]
        H.check(len(self.eq_numbers) == 4, "equipment not created: %r" % out[:500])
        for name, rule in (
                ("pressure", {"name": "Overpressure", "severity": "high", "cooldown_minutes": 0,
                              "condition": {"parameter": "pressure", "operator": "gt",
                                            "threshold": PRESSURE_LIMIT}}),
                ("temp", {"name": "Overheat", "severity": "high", "cooldown_minutes": 1,
                          "condition": {"parameter": "temp", "operator": "gt",
                                        "threshold": TEMP_LIMIT}})):
            path = os.path.join(env.tmp, name + ".json")
            with open(path, "w") as f:
                json.dump(rule, f)
            H.check("added rule" in env.cli("rule", "add", "--factory", slug, path),
                    "rule %s not added" % name)
        common = dict(W.wa_settings(self.wa, WHATSAPP_SENDERS=str(WA_SENDERS)),
                      MQTT_URL=self.broker.url, MQTT_SHARED_GROUP="chaos",
                      ALARM_STORM_WINDOW_S="5", TELEGRAM_SENDERS=str(TG_SENDERS),
                      RIVET_WORKERS="2")
        for label in "AB":
            r = env.rivet(label, MQTT_CLIENT_ID="rivet-chaos-" + label.lower(), **common)
            self.procs[label] = Proc(r)
        a = self.procs["A"].rivet.start(timeout=60)
        a.wait_log("ev=tg.poll_leader", 30)
        a.wait_log("ev=mqtt.connected", 30)
        self.procs["B"].rivet.start(timeout=60)
        self.procs["B"].rivet.wait_log("ev=mqtt.connected", 30)
        # Telegram users
        tg_users = [(FIRST_TG_CHAT + i, "Tg%02d" % i) for i in range(opt.tg_chats)]
        H.register(env, self.tg, slug, tg_users, timeout=60)
        # WhatsApp users: the first is the first Telegram user's own /link
        code = env.invite(slug, "technician", uses=max(1, opt.wa_chats))
        url = W.webhook_url(self.procs["A"].rivet)
        wa_users = [str(FIRST_WA + i) for i in range(opt.wa_chats)]
        for i, wa in enumerate(wa_users):
            since = self.wa.last_seq()
            if i == 0 and tg_users:
                got = self.tg.ask(tg_users[0][0], "/link")
                m = re.search(r"/link ([A-Z0-9-]{6,})", H.text_of(got))
                H.check(m, "no link code in %r" % H.text_of(got))
                self.wa.message(wa, "/link " + m.group(1), name="Tg00 (WA)", webhook_url=url)
                want = "Linked"
            else:
                self.wa.message(wa, "/start " + code, name="Wa%02d" % i, webhook_url=url)
                want = "Welcome"
            got = self.wa.replies(wa, 1, since=since, timeout=60)[0]
            H.check(want in W.text_of(got), "%s was answered %r" % (wa, W.text_of(got)))
        for chat, _ in tg_users:
            self.tg_msgs[chat] = []
        for wa in wa_users:
            self.wa_msgs[wa] = []
        first = time.time() + 5
        for i in range(opt.devices):
            d = Device("pump-%02d" % (i + 1), random.Random(opt.seed * 1000 + i),
                       opt.device_period_s, first + i * EPISODE_GAP_S / max(1, opt.devices))
            self.devices.append(d)
        self.setup_seq = {"tg": self.tg.last_seq(), "wa": self.wa.last_seq()}
        self.first_inbox = int(env.sql_value("SELECT coalesce(max(id), 0) FROM inbox")) + 1
        self.first_outbox = int(env.sql_value("SELECT coalesce(max(id), 0) FROM outbox")) + 1

    # -- the actors -----------------------------------------------------------

    def actor(self, name, fn, *args):
        def body():
            try:
                fn(*args)
            except Exception:
                with self.lock:
                    self.errors.append("%s: %s" % (name, traceback.format_exc()))
        th = threading.Thread(target=body, name=name, daemon=True)
        th.start()
        self.threads.append(th)

    def tg_users(self):
        rng = random.Random(self.opt.seed * 7 + 1)
        nxt = {c: time.monotonic() + rng.uniform(0, self.opt.interval_s) for c in self.tg_msgs}
        while not self.stop_users.is_set():
            now = time.monotonic()
            due = [c for c, t in nxt.items() if t <= now]
            for chat in due:
                msgs = self.tg_msgs[chat]
                n = len(msgs) + 1
                kind, text, probe = pick(rng, "t%d" % chat, n, self.eq_numbers, 0.03)
                m = Msg(chat, n, kind, text, probe)
                if kind == "photo":
                    got = self.tg.ctl("photo", chat_id=chat, from_id=chat, caption=probe,
                                      file_bytes_b64=base64.b64encode(
                                          rng.choice(self.plates)).decode())
                else:
                    got = self.tg.message(chat, text)
                m.ext_id = str(got["update_id"])
                m.sent_at = time.time()
                m.stored = True
                msgs.append(m)
                nxt[chat] = now + rng.expovariate(1.0 / self.opt.interval_s)
            self.stop_users.wait(0.05)

    def live_port(self, rng):
        ports = [p for p in (pr.port() for pr in self.procs.values()) if p]
        return rng.choice(ports) if ports else None

    def wa_user(self, wa, index):
        """One WhatsApp user: each message is posted until a process answers
        200 (the same wamid every time), before the next is written."""
        rng = random.Random(self.opt.seed * 11 + index)
        msgs = self.wa_msgs[wa]
        nxt = time.monotonic() + rng.uniform(0, self.opt.interval_s)
        while not self.stop_users.is_set():
            if self.stop_users.wait(max(0.0, nxt - time.monotonic())):
                break
            n = len(msgs) + 1
            kind, text, probe = pick(rng, "w%s" % wa[-4:], n, self.eq_numbers, 0.03)
            m = Msg(wa, n, kind, text, probe)
            m.ext_id = "wamid.HBgNChaos%sN%06d" % (wa, n)
            msgs.append(m)
            data = rng.choice(self.plates) if kind == "photo" else None
            m.sent_at = time.time()
            while True:
                port = self.live_port(rng)
                if port is None:
                    time.sleep(0.2)  # no process listens: try again shortly
                    continue
                url = "http://127.0.0.1:%d/webhook/whatsapp" % port
                m.tries += 1
                try:
                    if data is not None:
                        got = self.wa.image(wa, data, caption=probe, message_id=m.ext_id,
                                            webhook_url=url, expect=None)
                    else:
                        got = self.wa.message(wa, text, message_id=m.ext_id, webhook_url=url,
                                              expect=None)
                    ok = [d["status"] for d in got["deliveries"]] == [200]
                except H.Fail:
                    ok = False
                if ok:
                    m.stored = True
                    break
                # Meta retries with backoff; the user may not go away
                time.sleep(min(2.0, 0.2 * m.tries))
            nxt = time.monotonic() + rng.expovariate(1.0 / self.opt.interval_s)

    def device_loop(self):
        """Publishes each device's telemetry; what the broker did not take
        is published again, in order, until it does."""
        while True:
            stopping = self.stop_devices.is_set()
            now = time.time()
            if not stopping:
                for d in self.devices:
                    if now >= d.next_at:
                        d.pending.append(d.message(now))
                        d.next_at = now + (0.2 if d.burst_left else
                                           d.period * d.rng.uniform(0.7, 1.3))
            busy = [d for d in self.devices if d.pending]
            if stopping and not busy:
                return
            for d in busy:
                data = "".join(p + "\n" for _, p in d.pending).encode()
                try:
                    p = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p",
                                        str(self.broker.port), "-q", "1", "-i",
                                        "chaos-%s" % d.key, "-t",
                                        "factories/%s/devices/%s/telemetry" % (self.slug, d.key),
                                        "-l"], input=data, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, timeout=15)
                    ok = p.returncode == 0
                except subprocess.TimeoutExpired:
                    ok = False
                if ok:
                    done = time.time()
                    for ts, _ in d.pending:
                        d.accepted_at.setdefault(ts, done)
                    d.published += len(d.pending)
                    d.pending = []
                else:
                    d.failed_publishes += 1
            self.stop_devices.wait(0.25 if any(d.pending for d in self.devices) else 0.1)

    # -- faults and processes ------------------------------------------------------

    def supervise(self):
        """Starts a process that should run and does not (after a kill's
        pause, or one that exited on its own: a start while PostgreSQL is
        down exits, as under systemd's Restart=)."""
        now = time.monotonic()
        for label, p in self.procs.items():
            r = p.rivet
            if p.term_sent is not None and r.proc.poll() is not None:
                if r.returncode() != 0:
                    p.exits.append((r.starts, r.returncode(), "SIGTERM exit %s" % r.returncode(),
                                    r.tail(5)))
                self.note("rivet %s exited %s %.1f s after SIGTERM" % (
                    label, r.returncode(), now - p.term_sent))
                p.term_sent = None
            elif p.term_sent is not None and now - p.term_sent > 60:
                p.exits.append((r.starts, None, "no exit 60 s after SIGTERM", r.tail(5)))
                r.kill()
            if r.proc is not None and r.proc.poll() is not None and not p.our_kill:
                text = r.text()
                reason = ("database down at start" if "cannot connect to the database" in text
                          else "exit %s" % r.returncode())
                p.exits.append((r.starts, r.returncode(), reason,
                                "\n".join(text.splitlines()[-5:])))
                self.note("rivet %s exited by itself: %s" % (label, reason))
                p.our_kill = True  # noted
                p.up_at = now + 1.0
            if p.want_up and not r.alive() and now >= p.up_at and p.term_sent is None:
                r.start(wait=False)
                p.our_kill = False

    def sample_memory(self):
        for p in self.procs.values():
            r = p.rivet
            if r.alive():
                got = proc_memory(r.proc.pid)
                if got:
                    p.rss = got[0]
                    p.hwm = max(p.hwm, got[1])
                    p.rss_samples += 1

    def sigkill(self, label, pause):
        p = self.procs[label]
        if not p.rivet.alive():
            other = "B" if label == "A" else "A"
            if self.procs[other].rivet.alive():
                label, p = other, self.procs[other]
            else:
                return "nothing running"
        k0 = time.time()
        p.our_kill = True
        p.term_sent = None  # a process stopping after SIGTERM may be killed too
        p.rivet.sigkill()
        self.kills.append((k0, time.time(), label))
        p.up_at = time.monotonic() + pause
        return "killed %s" % label

    def fault_start(self, f):
        tg, wa = self.tg, self.wa
        k = f.kind
        if k == "sigkill":
            f.note = self.sigkill(f.params["target"], f.length)
        elif k == "b_off":
            p = self.procs["B"]
            p.want_up = False
            if p.rivet.alive():
                # not waited for here: supervise() sees the exit
                p.our_kill = True
                p.term_sent = time.monotonic()
                p.rivet.proc.send_signal(signal.SIGTERM)
                f.note = "SIGTERM to B"
        elif k == "pg_restart":
            t = time.time()
            self.cluster.restart()
            self.pg_down.append((t, time.time()))
        elif k == "pg_outage":
            f.t_down = time.time()
            self.cluster.stop()
        elif k == "mqtt_restart":
            self.broker.stop()
        elif k == "tg_5xx":
            tg.fault(method="*", kind=f.params["code"], duration=f.length)
        elif k == "tg_429":
            tg.fault(method="sendMessage", kind="429", retry_after=f.params["retry_after"],
                     duration=f.length)
        elif k == "tg_slow":
            tg.fault(method="*", kind="slow", delay=f.params["delay"], duration=f.length)
        elif k == "tg_timeout":
            tg.fault(method="sendMessage", kind="timeout", delay=f.params["delay"],
                     duration=f.length)
        elif k == "wa_5xx":
            wa.fault(f.params["code"], count=100000)
        elif k == "wa_130429":
            wa.fault("130429", count=100000)
        elif k == "wa_131056":
            wa.fault("131056", count=100000)
        elif k == "wa_slow":
            wa.fault("delay", count=100000, delay=f.params["delay"])
        elif k == "wa_timeout":
            wa.fault("timeout", count=100000, delay=f.params["delay"])

    def fault_end(self, f):
        k = f.kind
        if k == "b_off":
            self.procs["B"].want_up = True
            self.procs["B"].up_at = 0
        elif k == "pg_outage":
            self.cluster.start()
            self.pg_down.append((f.t_down, time.time()))
        elif k == "mqtt_restart":
            t = time.time()
            self.broker.start()
            self.broker_starts.append(t)
        elif k.startswith("wa_"):
            self.wa.ctl("clear_faults")

    def run_faults(self):
        opt = self.opt
        self.t0 = time.monotonic()
        self.t0_wall = time.time()
        self.actor("tg-users", self.tg_users)
        for i, wa in enumerate(self.wa_msgs):
            self.actor("wa-user-%d" % i, self.wa_user, wa, i)
        self.actor("devices", self.device_loop)
        pending = list(self.faults)
        ending = []   # (monotonic end, fault)
        last_sample = 0.0
        last_progress = 0.0
        while True:
            el = time.monotonic() - self.t0
            while pending and pending[0].at <= el:
                f = pending.pop(0)
                f.started = time.time()
                self.note("fault %r" % f)
                self.fault_start(f)
                if f.note:
                    self.note("  %s: %s" % (f.kind, f.note))
                if f.length > 0 and f.kind != "sigkill":
                    ending.append((self.t0 + f.at + f.length, f))
                else:
                    f.ended = time.time()
            for end, f in list(ending):
                if time.monotonic() >= end:
                    ending.remove((end, f))
                    self.fault_end(f)
                    f.ended = time.time()
                    self.note("fault %s over" % f.kind)
            self.supervise()
            if time.monotonic() - last_sample >= 1.0:
                self.sample_memory()
                last_sample = time.monotonic()
            if time.monotonic() - last_progress >= 15.0:
                last_progress = time.monotonic()
                self.say("[%6.1f s] sent telegram %d, whatsapp %d; telemetry %d; processes %s" % (
                    el, sum(len(v) for v in self.tg_msgs.values()),
                    sum(len(v) for v in self.wa_msgs.values()),
                    sum(d.published for d in self.devices),
                    " ".join("%s=%s" % (k, "up" if p.rivet.alive() else "down")
                             for k, p in self.procs.items())))
            if el >= opt.duration and not pending and not ending:
                break
            time.sleep(0.05)  # the schedule's tick, not a wait for an outcome
        # every fault over: the Bot API clean, everything up
        self.tg.clear_faults()
        self.wa.ctl("clear_faults")
        self.stop_users.set()
        self.stop_devices.set()
        self.note("faults over; users and devices stop")

    # -- the drain ------------------------------------------------------------------

    def progress_state(self):
        env = self.env
        tg_ids = [m.ext_id for v in self.tg_msgs.values() for m in v]
        wa_ids = [m.ext_id for v in self.wa_msgs.values() for m in v]
        st = {}
        st["unsent_wa"] = sum(1 for v in self.wa_msgs.values() for m in v if not m.stored)
        st["unpublished"] = sum(len(d.pending) for d in self.devices)
        rows = env.sql("SELECT channel, count(*), count(handled_at) FROM inbox WHERE id >= %d "
                       "GROUP BY channel" % self.first_inbox)
        got = {r[0]: (int(r[1]), int(r[2])) for r in rows}
        st["tg_unhandled"] = len(tg_ids) - got.get("telegram", (0, 0))[1]
        st["wa_unhandled"] = len(wa_ids) - got.get("whatsapp", (0, 0))[1]
        st["outbox_pending"] = int(env.sql_value(
            "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL"))
        st["held"] = int(env.sql_value(
            "SELECT count(*) FROM alarm_deliveries WHERE state = 'held'"))
        # what is missing and was not dropped by the broker after a restart
        st["alarms_missing"] = sum(1 for p in self.compare_alarms()[1] if "not recorded" in p
                                   or "0 alarms for" in p)
        return st

    def drain(self):
        """Waits (bounded) until everything sent is handled and delivered."""
        t = time.monotonic()
        deadline = t + self.opt.drain_timeout
        state = {}
        last = 0.0
        while True:
            self.supervise()
            self.sample_memory()
            try:
                state = self.progress_state()
            except H.Fail as e:
                state = {"error": str(e)[:200]}
            # a WhatsApp user still posting a message, the devices publishing
            state["actors_busy"] = sum(1 for th in self.threads if th.is_alive())
            done = ("error" not in state and all(v <= 0 for v in state.values()))
            if done:
                break
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                self.say("[drain %5.1f s] waiting: %s" % (time.monotonic() - t, ", ".join(
                    "%s=%s" % kv for kv in sorted(state.items()) if kv[1] != 0)))
            if time.monotonic() >= deadline:
                break
            H.nap(0.5)
        self.drain_s = time.monotonic() - t
        self.drain_state = state
        self.drained = done
        self.note("drain %s after %.1f s: %s" % ("complete" if done else "INCOMPLETE",
                                                 self.drain_s, state))

    # -- the audit ------------------------------------------------------------------

    def check(self, name, ok, detail=""):
        self.checks.append((name, bool(ok), detail))

    def audit(self):
        env, fig = self.env, self.fig
        kills = self.kills
        # what the fakes accepted, after the set-up
        tg_calls = [c for c in self.tg.calls("sendMessage", since=self.setup_seq["tg"])]
        tg_edits = [c for c in self.tg.calls("editMessageText", since=self.setup_seq["tg"])]
        wa_calls = [c for c in self.wa.calls(self.setup_seq["wa"], "messages")]
        accepted = []  # (channel, chat, remote id, call)
        for c in tg_calls:
            if c["ok"] and isinstance(c.get("result"), dict):
                accepted.append(("telegram", str(int(c["params"]["chat_id"])),
                                 str(c["result"]["message_id"]), c))
        for c in wa_calls:
            if c["ok"] and c.get("message_id"):
                accepted.append(("whatsapp", str(c["to"]), c["message_id"], c))
        fig["api_calls"] = {"telegram": len(tg_calls), "whatsapp": len(wa_calls)}
        fig["api_failed_calls"] = {"telegram": sum(1 for c in tg_calls if not c["ok"]),
                                   "whatsapp": sum(1 for c in wa_calls if not c["ok"])}
        fig["tg_edits"] = len(tg_edits)
        rows = env.sql("SELECT id, channel, chat_id, coalesce(inbox_id, 0), "
                       "coalesce(remote_id, ''), sent_at IS NOT NULL, failed_at IS NOT NULL, "
                       "method, "
                       "coalesce(last_error, '') FROM outbox WHERE id >= %d ORDER BY id"
                       % self.first_outbox)
        outbox = {}
        by_remote = {}
        for r in rows:
            o = {"id": int(r[0]), "channel": r[1], "chat": r[2], "inbox": int(r[3]),
                 "remote": r[4], "sent": r[5] == "t", "failed": r[6] == "t", "method": r[7],
                 "error": r[8]}
            outbox[o["id"]] = o
            if o["sent"] and o["remote"] and o["method"] != "editMessageText":
                by_remote.setdefault((o["channel"], o["chat"], o["remote"]), []).append(o)
        # each delivered row: one accepted call; each accepted call: one row
        seen = {}
        copies = []
        for ch, chat, rid, c in accepted:
            key = (ch, chat, rid)
            if key in by_remote:
                seen.setdefault(key, []).append(c)
            else:
                copies.append((ch, chat, c))
        twice = [k for k, v in by_remote.items() if len(v) > 1]
        missing_calls = [k for k in by_remote if k not in seen]
        self.check("each delivered outbox row matches one message the API accepted",
                   not twice and not missing_calls,
                   "rows sharing a remote id: %r; rows whose message the API never accepted: %r"
                   % (twice[:5], missing_calls[:5]))
        # second copies, by cause
        text_of = {"telegram": H.text_of, "whatsapp": W.text_of}
        events = {"sigkill": [(k0, k1, "SIGKILL of %s" % lb) for k0, k1, lb in kills],
                  "db_restart": [(p0, p1, "PostgreSQL") for p0, p1 in self.pg_down]}
        causes = {"sigkill": [], "db_restart": [], "other": []}
        per_event = {}
        for ch, chat, c in copies:
            t_ans, t_start = self.answered(ch, c), c["started"]
            for kind in ("sigkill", "db_restart"):
                ev = next((e for e in events[kind]
                           if e[0] - KILL_WINDOW_S <= t_ans and t_start <= e[1]), None)
                if ev:
                    causes[kind].append((ch, chat, c))
                    per_event[(kind, ev, ch)] = per_event.get((kind, ev, ch), 0) + 1
                    break
            else:
                causes["other"].append((ch, chat, c))
        fig["copies"] = {k: len(v) for k, v in causes.items()}
        # each sender thread has at most one message in flight: a SIGKILL
        # stops one process's, a database restart both processes'
        over = {"%s at %.1f s, %s" % (ev[2], ev[0] - self.t0_wall, ch): n
                for (kind, ev, ch), n in per_event.items()
                if n > (TG_SENDERS if ch == "telegram" else WA_SENDERS)
                * (1 if kind == "sigkill" else len(self.procs))}
        allowed = ["sigkill"] + (["db_restart"] if ALLOW_DB_RESTART_COPIES else [])

        def show(items):
            return ["%s chat %s: %r sent at %.1f s, answered %.1f s" % (
                ch, chat, text_of[ch](c)[:60], c["started"] - self.t0_wall,
                self.answered(ch, c) - self.t0_wall) for ch, chat, c in items[:6]]
        bad = [k for k in causes if k not in allowed and causes[k]]
        self.check("second copies only where the API accepted a message just before a SIGKILL "
                   "or a database restart cut its sender off (documented), at most one per "
                   "sender thread", not bad and not over,
                   "\n".join(sum((["%s copies: %d" % (k, len(causes[k]))] + show(causes[k])
                                   for k in causes if causes[k]), [])
                             + (["more copies than sender threads at one event: %r" % over]
                                if over else [])))
        self.copies = causes
        self.audit_messages(outbox, seen, text_of)
        self.audit_alarms(outbox)
        # nothing stuck
        pending = int(env.sql_value("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND "
                                    "failed_at IS NULL"))
        failed = env.sql("SELECT id, channel, chat_id, left(last_error, 80) FROM outbox WHERE "
                         "failed_at IS NOT NULL")
        unhandled = int(env.sql_value("SELECT count(*) FROM inbox WHERE handled_at IS NULL"))
        held = int(env.sql_value("SELECT count(*) FROM alarm_deliveries WHERE state = 'held'"))
        fig["stuck"] = {"outbox pending": pending, "outbox failed": len(failed),
                        "inbox unhandled": unhandled, "alarms held": held}
        self.check("no outbox row pending or failed, no inbox row unhandled, no alarm held",
                   pending == 0 and not failed and unhandled == 0 and held == 0,
                   "pending %d, failed %r, unhandled %d, held %d" % (pending, failed[:5],
                                                                     unhandled, held))
        # the fakes' own view
        st = self.tg.stats()
        fig["tg_stats"] = {k: st.get(k) for k in ("early_retries", "rate_limited",
                                                   "max_concurrent_getupdates", "conflicts",
                                                   "dropped_connections", "internal_errors")}
        fig["wa_stats"] = self.wa.state()["stats"]
        self.check("the fakes saw no internal error and no call into a 429 window",
                   not st.get("internal_errors") and not fig["wa_stats"].get("internal_errors")
                   and not st.get("early_retries"),
                   "telegram %r, whatsapp internal errors %r; early retries: %r" % (
                       fig["tg_stats"], fig["wa_stats"].get("internal_errors"),
                       st.get("early_retry_details")))

    def answered(self, ch, c):
        """When the API's answer to a call went out: the fakes log a slow
        call when they carry it out, and answer it the stretch's delay
        later."""
        if c.get("fault") not in ("slow", "delay"):
            return c["time"]
        kind = "tg_slow" if ch == "telegram" else "wa_slow"
        for f in self.faults:
            if (f.kind == kind and f.started
                    and f.started <= c["started"] <= (f.ended or 1e18) + 0.5):
                return c["time"] + f.params["delay"]
        return c["time"]

    def audit_messages(self, outbox, seen, text_of):
        env, fig = self.env, self.fig
        inbox = {}
        for r in env.sql("SELECT id, channel, external_id, handled_at IS NOT NULL, "
                         "coalesce(outcome, ''), attempts FROM inbox WHERE id >= %d"
                         % self.first_inbox):
            inbox.setdefault((r[1], r[2]), []).append(
                {"id": int(r[0]), "handled": r[3] == "t", "outcome": r[4], "attempts": int(r[5])})
        replies_of = {}
        for o in outbox.values():
            if o["inbox"]:
                replies_of.setdefault(o["inbox"], []).append(o)
        problems = {"not stored": [], "stored twice": [], "not handled": [], "not ok": [],
                    "no reply": [], "reply not delivered": [], "wrong reply": []}
        order_bad = []
        sent = answered = 0
        inbox_ids = {}
        for ch, chats in (("telegram", self.tg_msgs), ("whatsapp", self.wa_msgs)):
            for chat, msgs in chats.items():
                delivered = []  # (position in the chat, n)
                for m in msgs:
                    sent += 1
                    rows = inbox.get((ch, m.ext_id), [])
                    what = "%s %s #%d %r" % (ch, chat, m.n, (m.text or m.probe)[:40])
                    if not rows:
                        problems["not stored"].append(what)
                        continue
                    if len(rows) > 1:
                        problems["stored twice"].append(what)
                    row = rows[0]
                    inbox_ids[row["id"]] = m
                    if not row["handled"]:
                        problems["not handled"].append(what)
                        continue
                    if row["outcome"] != "ok":
                        problems["not ok"].append("%s: outcome %s" % (what, row["outcome"]))
                    reps = sorted(replies_of.get(row["id"], []), key=lambda o: o["id"])
                    if not reps:
                        problems["no reply"].append(what)
                        continue
                    good = True
                    for i, o in enumerate(reps):
                        calls = seen.get((o["channel"], o["chat"], o["remote"]), [])
                        if not o["sent"] or len(calls) != 1:
                            problems["reply not delivered"].append(
                                "%s: outbox %d sent=%s failed=%s %r" % (what, o["id"], o["sent"],
                                                                       o["failed"], o["error"]))
                            good = False
                            continue
                        c = calls[0]
                        pos = (int(c["result"]["message_id"]) if ch == "telegram" else c["seq"])
                        delivered.append((pos, m.n))
                        if i == 0 and not reply_fits(m.kind, m.probe, text_of[ch](c)):
                            problems["wrong reply"].append("%s: %r" % (what, text_of[ch](c)[:80]))
                            good = False
                    if good:
                        answered += 1
                delivered.sort()
                ns = [n for _, n in delivered]
                if ns != sorted(ns):
                    first = next(i for i in range(1, len(ns)) if ns[i] < ns[i - 1])
                    order_bad.append("%s %s: replies to %r" % (ch, chat, ns[max(0, first - 2):
                                                                         first + 2]))
        fig["messages"] = {
            "telegram": sum(len(v) for v in self.tg_msgs.values()),
            "whatsapp": sum(len(v) for v in self.wa_msgs.values()),
            "photos": sum(1 for v in list(self.tg_msgs.values()) + list(self.wa_msgs.values())
                          for m in v if m.kind == "photo"),
            "answered": answered, "sent": sent,
            "webhook retries": sum(m.tries - 1 for v in self.wa_msgs.values() for m in v
                                   if m.tries > 1),
            "handled after a retry": sum(1 for rows in inbox.values() for r in rows
                                         if r["attempts"] > 0),
        }
        fig["out_of_order"] = len(order_bad)
        fig["problems"] = {k: len(v) for k, v in problems.items()}
        bad = {k: v for k, v in problems.items() if v}
        self.check("every message stored once, handled, answered with the reply it asks for",
                   not bad and answered == sent,
                   "\n".join("%s (%d): %s" % (k, len(v), "; ".join(v[:4])) for k, v in bad.items()))
        self.check("in every chat the replies come in the order of the messages", not order_bad,
                   "\n".join(order_bad[:8]))
        # each /wo new opened one work order
        titles = {m.probe for v in list(self.tg_msgs.values()) + list(self.wa_msgs.values())
                  for m in v if m.kind == "wo_new"}
        got = {r[0]: int(r[1]) for r in env.sql("SELECT title, count(*) FROM work_orders WHERE "
                                                "title LIKE 'chaos-%' GROUP BY title")}
        wrong = ["%s: %d" % (t, got.get(t, 0)) for t in sorted(titles) if got.get(t, 0) != 1]
        extra = sorted(set(got) - titles)
        fig["work_orders"] = {"asked": len(titles), "opened": sum(got.values())}
        self.check("each /wo new opened exactly one work order", not wrong and not extra,
                   "work orders per title: %s; unexpected: %r" % (", ".join(wrong[:8]), extra[:5]))

    def broker_windows(self):
        """[(from, to)]: from each broker restart until a rivet process had
        subscribed again. mosquitto 2.0.11 does not restore the shared
        subscriptions of sessions that are offline when it starts, so what
        devices publish then has no subscriber, and the broker drops it
        (a plain subscription's session gets it)."""
        connected = []
        for r in self.env.rivets:
            for path in r.log_paths:
                with open(path, "rb") as f:
                    for line in f.read().decode("utf-8", "replace").splitlines():
                        m = re.match(r"ts=(\S+)Z .* ev=mqtt\.connected ", line)
                        if m:
                            connected.append(log_time(m.group(1)))
        out = []
        for b0 in self.broker_starts:
            after = [c for c in connected if c >= b0]
            out.append((b0, (min(after) if after else time.time()) + 0.5))
        return out

    def compare_alarms(self):
        """The alarms recorded against the crossings and episodes the
        devices published: (alarms rows, problems, lost by the broker,
        pressure alarms, overheat alarms)."""
        env = self.env
        dev_ids = {r[1]: int(r[0]) for r in env.sql("SELECT id, key FROM devices")}
        rules = {r[1]: int(r[0]) for r in env.sql("SELECT id, name FROM alert_rules")}
        alarms = env.sql("SELECT id, device_id, rule_id, extract(epoch FROM observed_at) "
                         "FROM alarms ORDER BY id")
        windows = self.broker_windows()
        problems = []
        broker_lost = []
        got_cross = got_epi = 0

        def in_window(d, t):
            at = d.accepted_at.get(t, 0)
            return any(b0 <= at <= b1 for b0, b1 in windows)

        def when(d, t):
            return "observed %.3f s, taken by the broker %.3f s" % (
                t - self.t0_wall, d.accepted_at.get(t, 0) - self.t0_wall)
        for d in self.devices:
            did = dev_ids.get(d.key)
            mine = [(int(a[0]), int(a[2]), float(a[3])) for a in alarms
                    if did is not None and int(a[1]) == did]
            press = sorted(t for _, rid, t in mine if rid == rules.get("Overpressure"))
            heat = sorted(t for _, rid, t in mine if rid == rules.get("Overheat"))
            got_cross += len(press)
            got_epi += len(heat)
            want = sorted(d.crossings)
            lost = [t for t in want if not any(abs(t - u) <= 0.0005 for u in press)]
            extra = [u for u in press if not any(abs(t - u) <= 0.0005 for t in want)]
            for t in lost:
                if in_window(d, t):
                    broker_lost.append("%s pressure %s" % (d.key, when(d, t)))
                else:
                    problems.append("%s: crossing not recorded: %s" % (d.key, when(d, t)))
            if extra:
                problems.append("%s: alarms of no crossing at %r" % (d.key, extra[:3]))
            per = [sum(1 for t in heat if a - 0.0005 <= t <= b + 0.0005) for a, b in d.episodes]
            outside = len(heat) - sum(per)
            for (a, b), n in zip(d.episodes, per):
                msgs = [t for t in d.accepted_at if a <= t <= b]
                if n == 0 and msgs and all(in_window(d, t) for t in msgs):
                    broker_lost.append("%s overheat episode %s" % (d.key, when(d, a)))
                elif n != 1:
                    problems.append("%s: %d alarms for the overheating episode %s..%.3f s" % (
                        d.key, n, when(d, a), b - self.t0_wall))
            if outside:
                problems.append("%s: %d temperature alarms outside any episode" % (d.key, outside))
        return alarms, problems, broker_lost, got_cross, got_epi

    def audit_alarms(self, outbox):
        env, fig = self.env, self.fig
        want_cross = sum(len(d.crossings) for d in self.devices)
        want_epi = sum(len(d.episodes) for d in self.devices)
        alarms, problems, broker_lost, got_cross, got_epi = self.compare_alarms()
        self.broker_lost = broker_lost
        fig["alarms"] = {"crossings": want_cross, "episodes": want_epi,
                         "recorded": len(alarms), "pressure": got_cross, "overheat": got_epi,
                         "lost by the broker": len(broker_lost),
                         "telemetry": sum(d.published for d in self.devices),
                         "publish retries": sum(d.failed_publishes for d in self.devices)}
        self.check("every pressure crossing recorded as one alarm, every overheating episode as "
                   "one (but what the broker dropped after a restart)",
                   not problems and len(alarms) + len(broker_lost) == want_cross + want_epi,
                   "\n".join(problems[:10]) + "\n%d alarms recorded, %d expected, %d lost by the "
                   "broker" % (len(alarms), want_cross + want_epi, len(broker_lost)))
        # recipients: every user on each channel they use
        users = env.sql("SELECT id, coalesce(telegram_user_id::text, ''), coalesce(whatsapp_id, '')"
                        " FROM users WHERE telegram_user_id IS NOT NULL OR whatsapp_id IS NOT NULL")
        expect = set()
        for uid, tgid, waid in users:
            if tgid:
                expect.add((int(uid), "telegram", tgid))
            if waid:
                expect.add((int(uid), "whatsapp", waid))
        rows = env.sql("SELECT alarm_id, user_id, channel, chat_id, state, coalesce(outbox_id, 0) "
                       "FROM alarm_deliveries WHERE kind = 'alarm'")
        per_alarm = {}
        for r in rows:
            per_alarm.setdefault(int(r[0]), []).append(r)
        bad = []
        states = {}
        for a in alarms:
            aid = int(a[0])
            got = per_alarm.get(aid, [])
            keys = [(int(r[1]), r[2], r[3]) for r in got]
            if sorted(keys) != sorted(expect):
                missing = expect - set(keys)
                bad.append("alarm %d: %d deliveries, missing %r, extra %r" % (
                    aid, len(keys), sorted(missing)[:3], sorted(set(keys) - expect)[:3]))
            for r in got:
                states[r[4]] = states.get(r[4], 0) + 1
                o = outbox.get(int(r[5]))
                if r[4] not in ("queued", "summarized") or not o or not o["sent"]:
                    bad.append("alarm %d to %s %s: %s, outbox %s" % (aid, r[2], r[3], r[4],
                                                                    o and (o["sent"], o["error"])))
        fig["deliveries"] = {"expected": len(alarms) * len(expect), "recorded": len(rows),
                             "recipients": len(expect), **states}
        self.check("each alarm delivered once to each subscriber on each channel (one by one or "
                   "in a storm summary)", not bad and len(rows) == len(alarms) * len(expect),
                   "\n".join(bad[:10]))

    def finish(self):
        """SIGTERM both processes; memory; logs."""
        fig = self.fig
        self.supervise()  # notes a process that ended on its own just now
        self.sample_memory()
        exits = {}
        for label, p in self.procs.items():
            p.want_up = False
            if p.rivet.alive():
                p.our_kill = True
                try:
                    rc, secs = p.rivet.sigterm(60)
                    exits[label] = (rc, round(secs, 1))
                except H.Fail as e:
                    exits[label] = (None, str(e))
        self.check("both processes exit 0 on SIGTERM at the end",
                   all(v[0] == 0 for v in exits.values()) and len(exits) == 2, repr(exits))
        odd = ["rivet %s, run %s: %s\n%s" % (k, e[0], e[2], e[3])
               for k, p in self.procs.items() for e in p.exits
               if e[2] != "database down at start"]
        self.check("no process ended on its own (other than a start while PostgreSQL was down)",
                   not odd, "\n".join(odd)[:3000])
        fig["memory"] = {k: {"max VmHWM MB": round(p.hwm, 1), "last VmRSS MB": round(p.rss, 1),
                             "runs": p.rivet.starts, "samples": p.rss_samples}
                         for k, p in self.procs.items()}
        high = {k: round(p.hwm, 1) for k, p in self.procs.items()
                if p.hwm > self.opt.rss_limit_mb or p.rss_samples == 0}
        self.check("each process's peak memory (VmHWM) under %.0f MB" % self.opt.rss_limit_mb,
                   not high, "over the bound (or never sampled): %r" % high)
        try:
            H.check_no_crash(self.env)
            H.check_no_token(self.env)
            leaks = W.secret_leaks(self.env)
            H.check(not leaks, "WhatsApp secrets in %d log lines" % len(leaks), *leaks[:3])
            self.check("no sanitizer report, no secret in the logs", True)
        except H.Fail as e:
            self.check("no sanitizer report, no secret in the logs", False, str(e))
        kinds = {}
        for f in self.faults:
            if f.started:
                kinds[f.kind] = kinds.get(f.kind, 0) + 1
        fig["faults"] = kinds
        fig["start_refused"] = sum(1 for p in self.procs.values() for e in p.exits
                                   if e[2] == "database down at start")

    def close(self, keep=False):
        for th in self.threads:
            th.join(0.1)
        if getattr(self, "witness", None):
            self.witness.terminate()
            self.witness.wait(10)
            self.witness_out.close()
        try:
            if self.env:
                self.env.close(keep=keep)
        finally:
            if self.broker:
                self.broker.stop()
            if self.cluster:
                self.cluster.destroy()

    # -- the table ----------------------------------------------------------------

    def table(self):
        f = self.fig
        opt = self.opt
        lines = []

        def row(k, v):
            lines.append("  %-34s %s" % (k, v))
        lines.append("Rivet chaos run: seed %d, %.0f s of faults, %d Telegram + %d WhatsApp "
                     "chats, %d devices, processes A and B%s" % (
                         opt.seed, opt.duration, opt.tg_chats, opt.wa_chats, opt.devices,
                         " (sanitized build)" if opt.sanitized else ""))
        m = f.get("messages", {})
        row("messages sent", "%s (Telegram %s, WhatsApp %s; %s photos)" % (
            m.get("sent"), m.get("telegram"), m.get("whatsapp"), m.get("photos")))
        row("answered exactly once", m.get("answered"))
        row("webhook posts repeated", m.get("webhook retries"))
        row("messages handled after a retry", m.get("handled after a retry"))
        c = f.get("copies", {})
        row("second copies", "%d (SIGKILL: %d; database restart: %d; other: %d)" % (
            sum(c.values()), c.get("sigkill", 0), c.get("db_restart", 0), c.get("other", 0)))
        for kind in ("sigkill", "db_restart", "other"):
            for ch, chat, call in getattr(self, "copies", {}).get(kind, [])[:4]:
                lines.append("      %s: %s %s, sent at %.1f s" % (
                    kind, ch, chat, call["started"] - self.t0_wall))
        row("out of order (chats)", f.get("out_of_order"))
        p = f.get("problems", {})
        row("unanswered / wrong answers", "%s / %s" % (
            sum(v for k, v in p.items() if k != "wrong reply"), p.get("wrong reply")))
        w = f.get("work_orders", {})
        row("/wo new -> work orders", "%s -> %s" % (w.get("asked"), w.get("opened")))
        a = f.get("alarms", {})
        row("telemetry published", "%s (%s failed publishes retried)" % (
            a.get("telemetry"), a.get("publish retries")))
        row("alarms raised / recorded", "%s / %s (pressure %s of %s crossings, overheat %s of %s "
            "episodes)" % (a.get("crossings", 0) + a.get("episodes", 0), a.get("recorded"),
                           a.get("pressure"), a.get("crossings"), a.get("overheat"),
                           a.get("episodes")))
        row("alarms lost by mosquitto", "%s (published after a broker restart, before Rivet "
            "subscribed again)" % a.get("lost by the broker"))
        for x in getattr(self, "broker_lost", [])[:5]:
            lines.append("      %s" % x)
        d = f.get("deliveries", {})
        row("alarm deliveries expected/recorded", "%s / %s to %s recipients (one by one %s, in "
            "summaries %s, held %s)" % (d.get("expected"), d.get("recorded"), d.get("recipients"),
                                        d.get("queued", 0), d.get("summarized", 0),
                                        d.get("held", 0)))
        s = f.get("stuck", {})
        row("stuck rows", ", ".join("%s %s" % kv for kv in s.items()))
        row("API calls (failed)", ", ".join("%s %s (%s)" % (k, v, f.get("api_failed_calls", {})
                                                          .get(k)) for k, v in
                                           f.get("api_calls", {}).items()))
        row("faults injected", ", ".join("%s %d" % kv for kv in sorted(f.get("faults",
                                                                          {}).items())))
        row("rivet starts refused (db down)", f.get("start_refused"))
        for k, v in sorted(f.get("memory", {}).items()):
            row("memory of %s" % k, "max VmHWM %.1f MB, last VmRSS %.1f MB, %d runs" % (
                v["max VmHWM MB"], v["last VmRSS MB"], v["runs"]))
        row("drain after the faults", "%.1f s%s" % (self.drain_s or 0, "" if getattr(
            self, "drained", False) else " (INCOMPLETE: %r)" % getattr(self, "drain_state", {})))
        lines.append("checks:")
        for name, ok, detail in self.checks:
            lines.append("  %s %s" % ("ok    " if ok else "FAILED", name))
            if not ok and detail:
                lines += ["         " + l for l in str(detail).splitlines()[:20]]
        return "\n".join(lines)


def run(opt, on_setup=None):
    """Runs the whole scenario; returns the Chaos (checks, figures, table).
    Raises on a failed set-up."""
    ch = Chaos(opt)
    ok = False
    try:
        ch.setup()
        if on_setup:
            on_setup(ch)
        ch.run_faults()
        ch.drain()
        ch.check("the users and devices ran without an error", not ch.errors,
                 "\n".join(ch.errors))
        ch.check("everything drained within %.0f s of the last fault" % opt.drain_timeout,
                 ch.drained, "still waiting for: %r" % ch.drain_state)
        ch.audit()
        ch.finish()
        ok = all(c[1] for c in ch.checks)
    finally:
        ch.ok = ok
        if not ok and ch.env:
            ch.say(ch.env.failure_logs())
        ch.close(keep=opt.keep or not ok)
    return ch


def main(argv=None):
    ap = argparse.ArgumentParser(description="Rivet under chaos (see the top of this file)")
    ap.add_argument("--rivet", default=os.environ.get("RIVET_BIN", ""),
                    help="the rivet binary (or RIVET_BIN)")
    ap.add_argument("--duration", type=float, default=300, help="seconds of faults (300)")
    ap.add_argument("--chats", type=int, default=6, help="chats per channel (6)")
    ap.add_argument("--devices", type=int, default=6, help="MQTT devices (6)")
    ap.add_argument("--seed", type=int, default=None, help="the seed (RIVET_CHAOS_SEED)")
    ap.add_argument("--drain-timeout", type=float, default=300,
                    help="seconds to wait for everything to drain after the faults (300)")
    ap.add_argument("--rss-limit-mb", type=float, default=None,
                    help="peak memory bound per process (300 MB; 1500 sanitized)")
    ap.add_argument("--interval", type=float, default=4.0,
                    help="mean seconds between one user's messages (4)")
    ap.add_argument("--keep", action="store_true", help="keep the logs folder")
    ap.add_argument("--broker-debug", action="store_true",
                    help="mosquitto logs every packet, and a subscriber of the run's own logs "
                    "every telemetry message it gets (witness.log in the logs folder)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    if not args.rivet or not os.access(args.rivet, os.X_OK):
        ap.error("no rivet binary: give --rivet or RIVET_BIN")
    if not shutil.which("psql") or not shutil.which("mosquitto_pub"):
        ap.error("psql and mosquitto_pub are needed (scripts/setup installs them)")

    def progress(text):
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    opt = Options(args.rivet, duration=args.duration, tg_chats=args.chats, wa_chats=args.chats,
                  devices=args.devices, seed=args.seed, drain_timeout=args.drain_timeout,
                  rss_limit_mb=args.rss_limit_mb, interval_s=args.interval, keep=args.keep,
                  progress=None if args.quiet else progress, broker_debug=args.broker_debug)
    try:
        ch = run(opt)
    except Exception:
        traceback.print_exc()
        print("chaos: the run could not be set up or audited (see above); seed %d" % opt.seed)
        return 1
    print(ch.table())
    sys.stdout.flush()
    return 0 if ch.ok else 1


if __name__ == "__main__":
    sys.exit(main())
