#!/usr/bin/env python3
"""The engine behind scripts/bench-telegram and scripts/bench-burst (Python 3
standard library only).

  bench.py gen-sql ...   prints the SQL that loads the benchmark factory
  bench.py terms         prints the pool of misspelled search texts
  bench.py run ...       drives rivet serve through the fake Telegram API,
                         measures, runs the database baseline and EXPLAIN,
                         writes results.json and report.md
  bench.py run-peer ...  drives the grammY peer (tests/bench/peer) with the
                         same load after `run`, adds its figures and the
                         Rivet/peer ratios to results.json and report.md

scripts/bench-telegram starts and stops PostgreSQL, the fake, rivet and the peer;
this file never starts or stops a server.
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

# ---------------------------------------------------------------------------
# The plant: manufacturers and their models, machine names, places, work
# ---------------------------------------------------------------------------

MAKES = [
    ("Siemens", ["SINAMICS G120C", "SINAMICS S120", "SIMATIC S7-1500", "SIMOTICS 1LE1",
                 "SIRIUS 3RW44", "SITRANS P320"]),
    ("ABB", ["ACS580", "ACS880", "M3BP 315", "IRB 6700", "ACS355"]),
    ("Schneider Electric", ["Altivar ATV630", "Altivar ATV320", "Modicon M580", "TeSys D"]),
    ("Grundfos", ["CR 10-3", "CR 32-2", "NB 65-200", "TP 50-240", "CRE 15-4"]),
    ("KSB", ["Etanorm 65-200", "Movitec VCF 10", "Amarex KRT"]),
    ("Danfoss", ["VLT FC-302", "VLT Micro FC51", "VLT HVAC FC-102"]),
    ("SEW-Eurodrive", ["MOVIMOT MM07", "R77 DRN90L4", "MOVIDRIVE B"]),
    ("Atlas Copco", ["GA 37 VSD+", "GA 75", "ZT 110", "FD 120"]),
    ("Kaeser", ["ASD 35", "SM 15", "CSD 105"]),
    ("Festo", ["DSBC-50-200", "VUVG-L14", "CPX-AP-I"]),
    ("SMC", ["CP96SDB63-100", "VQC2000", "ITV2050"]),
    ("Bosch Rexroth", ["A10VSO 45", "IndraDrive C", "4WE 6"]),
    ("Parker Hannifin", ["PV046", "D1VW", "P1D"]),
    ("Endress+Hauser", ["Promag 10W", "Cerabar PMC21", "Liquiphant FTL31"]),
    ("Fanuc", ["R-2000iC", "M-20iA", "LR Mate 200iD"]),
    ("KUKA", ["KR 210 R2700", "KR 16", "KR QUANTEC"]),
    ("Yaskawa", ["GA700", "A1000", "Motoman GP25"]),
    ("Omron", ["NX1P2", "CP1E", "E3Z-D61"]),
    ("Mitsubishi Electric", ["FR-A800", "MELSEC iQ-R", "FR-E700"]),
    ("Allen-Bradley", ["PowerFlex 525", "CompactLogix 5380", "PowerFlex 755"]),
    ("WEG", ["W22 IE3 15kW", "CFW500", "W22 IE3 75kW"]),
    ("Lenze", ["i550", "8400 StateLine", "g500-H"]),
    ("NORD", ["SK 200E", "SK 9072.1"]),
    ("Flowserve", ["Durco Mark 3", "Worthington D"]),
    ("Alfa Laval", ["LKH-20", "M10-BFG"]),
    ("Ingersoll Rand", ["R55n", "UP6-30"]),
    ("Sulzer", ["AHLSTAR A", "XFP 100"]),
    ("Lincoln Electric", ["Power Wave S500", "Flextec 650"]),
    ("Trumpf", ["TruLaser 3030", "TruBend 5130"]),
    ("Haas", ["VF-2", "ST-20"]),
]
NAMES = ["Coolant pump", "Main conveyor drive", "Air compressor", "Hydraulic power unit",
         "Cooling tower fan", "Boiler feed pump", "Palletizer", "Press", "Mixer drive",
         "Extruder", "Chiller", "Welding cell", "Paint robot", "Exhaust fan", "Dosing pump",
         "Vacuum pump", "Transfer conveyor", "Spindle drive", "Filler", "Labeler"]
AREAS = ["Press shop", "Paint shop", "Assembly", "Body shop", "Boiler house", "Compressor room",
         "Warehouse", "Utilities", "Packaging", "Water treatment", "Machining", "Welding"]
TITLES = ["Coolant leak at pump", "Bearing noise on motor", "Replace V-belt",
          "Overcurrent fault F0001", "Quarterly PM inspection", "Hydraulic pressure low",
          "Proximity sensor misaligned", "Drive trips on overvoltage", "Oil change",
          "Replace filter cartridge", "Conveyor belt tracking off", "Vibration above limit",
          "Air leak at valve terminal", "Motor overheating", "Calibrate pressure transmitter",
          "Emergency stop circuit fault", "Gearbox oil leak", "Check coupling alignment",
          "Robot collision alarm", "Replace worn nozzle", "Fan blade damaged",
          "Seal replacement", "PLC battery low", "Thermal overload tripped",
          "Lubrication system empty", "Noise from gearbox", "Annual safety inspection",
          "Encoder signal lost", "Cooling water flow low", "Replace contactor"]
DESCRIPTIONS = ["Found during night shift round.", "Operator reports intermittent fault.",
                "Spare part ordered, waiting for delivery.", "Recurring issue, see earlier orders.",
                "Needs shutdown of the line to fix."]
FIRST = ["Anna", "Ben", "Carla", "Dmitri", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jonas",
         "Katrin", "Luis", "Mila", "Nils", "Olga", "Pavel", "Rosa", "Sami", "Tomasz", "Ute"]
LAST = ["Kowalski", "Meyer", "Novak", "Schmidt", "Garcia", "Rossi", "Jansen", "Silva",
        "Horvat", "Berg", "Costa", "Weber", "Dubois", "Nielsen", "Popescu"]

KINDS = ("search", "wo_list", "stats")
KIND_LABEL = {"search": "/equip search", "wo_list": "/wo list", "stats": "/stats"}


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def sql_array(items):
    return "ARRAY[" + ", ".join(sql_str(x) for x in items) + "]"


def gen_sql(a):
    """The SQL that fills factory a.factory_id: users, equipment, work orders."""
    f = int(a.factory_id)
    out = ["\\set ON_ERROR_STOP on", "SET client_min_messages = warning;",
           "SELECT setseed(%s);" % (0.5 / (1 + a.seed)), "BEGIN;",
           "CREATE TEMP TABLE bench_makes (idx int PRIMARY KEY, manufacturer text, "
           "models text[]) ON COMMIT DROP;",
           "INSERT INTO bench_makes VALUES " + ", ".join(
               "(%d, %s, %s)" % (i + 1, sql_str(m), sql_array(models))
               for i, (m, models) in enumerate(MAKES)) + ";"]
    # The simulated Telegram users: telegram_user_id = chat id.
    out.append(
        "INSERT INTO users (factory_id, display_name, role, telegram_user_id) "
        "SELECT %d, (%s)[1 + (g %% %d)] || ' ' || (%s)[1 + (g * 7 %% %d)] || ' ' || g, "
        "CASE WHEN g %% 20 = 1 THEN 'admin' WHEN g %% 7 = 0 THEN 'supervisor' "
        "ELSE 'technician' END, %d + g FROM generate_series(1, %d) g "
        "ON CONFLICT (telegram_user_id) DO NOTHING;"
        % (f, sql_array(FIRST), len(FIRST), sql_array(LAST), len(LAST), a.user_base, a.users))
    if a.equipment > 0:
        if a.drop_index:
            out.append("DROP INDEX IF EXISTS equipment_search_trgm;")
        out.append(
            """INSERT INTO equipment (factory_id, number, name, manufacturer, model, serial,
    location, criticality, created_by, created_at, updated_at)
WITH un AS (SELECT row_number() OVER (ORDER BY id) AS k, id FROM users WHERE factory_id = {f}),
nu AS (SELECT count(*) AS n FROM un),
r AS (SELECT g, random() r1, random() r2, random() r3, random() r4, random() r5, random() r6,
             random() r7, random() r8, random() r9,
             date_trunc('second', now() - random() * interval '1095 days') AS created_at
      FROM generate_series(1, {n}) g),
e AS (SELECT r.*, m.manufacturer, m.models[1 + floor(r.r2 * array_length(m.models, 1))::int] AS model,
             extract(year FROM r.created_at)::int AS yr, 1 + floor(r.r9 * nu.n)::int AS uk
      FROM r CROSS JOIN nu JOIN bench_makes m
        ON m.idx = 1 + floor(power(r.r1, 1.4) * (SELECT count(*) FROM bench_makes))::int)
SELECT {f},
       format('EQ-%s-%s', yr, lpad((row_number() OVER (PARTITION BY yr ORDER BY created_at, g))::text,
           greatest(6, length((row_number() OVER (PARTITION BY yr ORDER BY created_at, g))::text)), '0')),
       CASE WHEN r3 < 0.55 THEN ({names})[1 + floor(r4 * {nn})::int] || ' ' || (1 + floor(r5 * 12))::int END,
       manufacturer, model,
       CASE WHEN r6 < 0.9 THEN upper(substr(md5('serial' || g), 1, 3)) || '-'
            || lpad(((g::bigint * 7919) % 1000000)::text, 6, '0') || upper(substr(md5(g::text), 1, 4)) END,
       CASE WHEN r7 < 0.95 THEN 'Line ' || (1 + floor(r8 * 12))::int || ', '
            || ({areas})[1 + floor(r9 * {na})::int] || ', bay ' || (1 + g % 40) END,
       CASE WHEN r5 < 0.15 THEN 'low' WHEN r5 < 0.65 THEN 'medium' WHEN r5 < 0.9 THEN 'high'
            ELSE 'critical' END,
       un.id, created_at, created_at
FROM e LEFT JOIN un ON un.k = e.uk ORDER BY created_at, g;""".format(
                f=f, n=a.equipment, names=sql_array(NAMES), nn=len(NAMES),
                areas=sql_array(AREAS), na=len(AREAS)))
        if a.drop_index:
            # The same definition as sql/0001_init.sql, built once instead of
            # updated row by row.
            out.append("CREATE INDEX equipment_search_trgm ON equipment "
                       "USING gin (search_text gin_trgm_ops);")
    if a.work_orders > 0:
        # Joins on row numbers, not subscripts of big arrays: an array taken
        # from a CTE is detoasted again for every row.
        out.append(
            """INSERT INTO work_orders (factory_id, number, equipment_id, title, description, status,
    priority, assignee_id, created_by, created_at, updated_at, completed_at, completed_by)
WITH en AS (SELECT row_number() OVER (ORDER BY id) AS k, id, created_at
            FROM equipment WHERE factory_id = {f}),
un AS (SELECT row_number() OVER (ORDER BY id) AS k, id FROM users WHERE factory_id = {f}),
c AS (SELECT (SELECT count(*) FROM en) AS ne, (SELECT count(*) FROM un) AS nu),
r AS (SELECT g, random() r2, random() r3, random() r4, random() r5, random() r6,
             random() r7, random() r10,
             1 + floor(power(random(), 1.5) * c.ne)::int AS ek,
             1 + floor(random() * c.nu)::int AS ak, 1 + floor(random() * c.nu)::int AS ck
      FROM generate_series(1, {n}) g, c),
w AS (SELECT r.*, en.id AS equipment_id,
             date_trunc('second', en.created_at + r2 * (now() - en.created_at)) AS created_at
      FROM r JOIN en ON en.k = r.ek),
s AS (SELECT w.*, extract(year FROM created_at)::int AS yr,
             CASE WHEN created_at > now() - interval '30 days' THEN
                  CASE WHEN r3 < 0.35 THEN 'open' WHEN r3 < 0.60 THEN 'in_progress'
                       WHEN r3 < 0.70 THEN 'on_hold' WHEN r3 < 0.95 THEN 'completed' ELSE 'cancelled' END
             ELSE CASE WHEN r3 < 0.03 THEN 'open' WHEN r3 < 0.05 THEN 'in_progress'
                       WHEN r3 < 0.06 THEN 'on_hold' WHEN r3 < 0.94 THEN 'completed' ELSE 'cancelled' END
             END AS status FROM w)
SELECT {f},
       format('WO-%s-%s', yr, lpad((row_number() OVER (PARTITION BY yr ORDER BY created_at, g))::text,
           greatest(6, length((row_number() OVER (PARTITION BY yr ORDER BY created_at, g))::text)), '0')),
       equipment_id, ({titles})[1 + floor(r5 * {nt})::int],
       CASE WHEN r6 < 0.3 THEN ({descs})[1 + floor(r6 / 0.3 * {nd})::int] END,
       status,
       CASE WHEN r4 < 0.25 THEN 'low' WHEN r4 < 0.70 THEN 'medium' WHEN r4 < 0.92 THEN 'high'
            ELSE 'critical' END,
       CASE WHEN status <> 'open' OR r7 < 0.5 THEN ua.id END,
       uc.id,
       created_at,
       CASE WHEN status IN ('completed', 'cancelled')
            THEN created_at + r10 * least(now() - created_at, interval '14 days')
            ELSE created_at + r10 * (now() - created_at) END,
       CASE WHEN status = 'completed' THEN created_at + r10 * least(now() - created_at, interval '14 days') END,
       CASE WHEN status = 'completed' THEN ua.id END
FROM s LEFT JOIN un ua ON ua.k = s.ak LEFT JOIN un uc ON uc.k = s.ck
ORDER BY created_at, g;""".format(
                f=f, n=a.work_orders, titles=sql_array(TITLES), nt=len(TITLES),
                descs=sql_array(DESCRIPTIONS), nd=len(DESCRIPTIONS)))
    for kind, table in (("EQ", "equipment"), ("WO", "work_orders")):
        out.append(
            "INSERT INTO number_sequences (factory_id, kind, year, last) "
            "SELECT %d, '%s', substr(number, 4, 4)::int, max(substr(number, 9)::bigint) "
            "FROM %s WHERE factory_id = %d GROUP BY 3 "
            "ON CONFLICT (factory_id, kind, year) DO UPDATE "
            "SET last = greatest(number_sequences.last, excluded.last);" % (f, kind, table, f))
    out.append("COMMIT;")
    out.append("VACUUM (ANALYZE) users, equipment, work_orders, number_sequences;")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# Misspelled search texts, as typed on a phone with gloves on
# ---------------------------------------------------------------------------

NEAR = {"a": "sq", "e": "wr", "i": "uo", "o": "ip", "u": "yi", "s": "ad", "n": "bm",
        "m": "n", "r": "et", "t": "ry", "c": "xv", "k": "jl", "l": "k", "p": "o", "d": "sf"}


def typo(rng, word):
    """One typing mistake in a word of 4 letters or more."""
    letters = [i for i, c in enumerate(word) if c.isalpha()]
    if len(word) < 4 or len(letters) < 3:
        return word
    i = rng.choice(letters[1:])
    op = rng.random()
    if op < 0.3:                                   # dropped letter
        return word[:i] + word[i + 1:]
    if op < 0.5:                                   # doubled letter
        return word[:i] + word[i] + word[i:]
    if op < 0.75 and i + 1 < len(word):            # swapped letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    c = word[i].lower()
    return word[:i] + rng.choice(NEAR.get(c, "e")) + word[i + 1:]   # neighbouring key


def model_token(rng, model):
    """The part of a model name a technician types: the token with digits,
    sometimes without its tail ("SINAMICS G120C" -> "g120")."""
    toks = model.lower().split()
    digits = [t for t in toks if any(ch.isdigit() for ch in t)] or toks
    t = rng.choice(digits)
    if len(t) > 4 and rng.random() < 0.4:
        t = t[:-1]
    if rng.random() < 0.2:
        t = t.replace("-", " ")
    return t


def search_terms(seed=7, n=300):
    rng = random.Random(seed)
    terms = []
    seen = set()
    while len(terms) < n:
        make, models = rng.choice(MAKES)
        model = rng.choice(models)
        mk = make.lower()
        p = rng.random()
        if p < 0.35:
            t = "%s %s" % (typo(rng, mk.split()[0]), model_token(rng, model))
        elif p < 0.50:
            t = typo(rng, mk.split()[0]) if len(mk.split()[0]) >= 4 else mk
        elif p < 0.70:
            words = model.lower().split()
            t = " ".join(typo(rng, w) if len(w) >= 5 else w for w in words)
        elif p < 0.85:
            name = rng.choice(NAMES).lower().split()
            t = " ".join(name[:2])
            t = typo(rng, t) if rng.random() < 0.7 else t
            if rng.random() < 0.5:
                t += " " + typo(rng, rng.choice(AREAS).lower())
        else:
            t = "%s line %d" % (typo(rng, rng.choice(AREAS).lower()), rng.randint(1, 12))
        if t not in seen:
            seen.add(t)
            terms.append(t)
    return terms


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def pct(values, p):
    """Percentile p (0..100) with linear interpolation; None when empty."""
    if not values:
        return None
    v = sorted(values)
    if len(v) == 1:
        return v[0]
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(values):
    """count, mean, p50, p95, p99, max of a list of milliseconds."""
    if not values:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    return {"n": len(values), "mean": statistics.fmean(values), "p50": pct(values, 50),
            "p95": pct(values, 95), "p99": pct(values, 99), "max": max(values)}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        r = "%.*f" % (digits, v)
        return r[1:] if re.fullmatch(r"-0\.?0*", r) else r
    return str(v)


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


class Fake:
    """JSON over HTTP/1.1 keep-alive to the fake's control API, one connection
    per thread."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.local = threading.local()

    def _conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = http.client.HTTPConnection(self.host, self.port, timeout=330)
            self.local.conn = c
        return c

    def call(self, method, path, args=None, body=None):
        if args:
            path += "?" + urllib.parse.urlencode(args)
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(3):
            c = self._conn()
            try:
                c.request(method, path, body=data,
                          headers={"Content-Type": "application/json"} if data else {})
                r = c.getresponse()
                raw = r.read()
                if r.status != 200:
                    raise RuntimeError("fake %s %s: %d %s" % (method, path, r.status, raw[:200]))
                return json.loads(raw)
            except (http.client.HTTPException, OSError):
                c.close()
                self.local.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.05)

    def post(self, path, body):
        return self.call("POST", path, body=body)

    def get(self, path, **args):
        return self.call("GET", path, args=args)


def read_status(pid):
    """VmRSS and VmHWM of pid in KiB."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:", "Threads:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def alive(pid):
    """A running process (a zombie is not)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1] != "Z"
    except OSError:
        return False
    return False


CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except (OSError, IndexError, ValueError):
        return 0.0


def children_of(ppid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == ppid:
                kids.append(int(d))
        except (OSError, IndexError, ValueError):
            continue
    return kids


class Cpu:
    """CPU seconds used by rivet, PostgreSQL (postmaster and children), the
    fake and this driver."""

    def __init__(self, rivet_pid, fake_pid, pg_pid):
        self.rivet_pid, self.fake_pid, self.pg_pid = rivet_pid, fake_pid, pg_pid

    def sample(self):
        t = os.times()
        s = {"wall": time.monotonic(), "rivet": cpu_seconds(self.rivet_pid),
             "fake": cpu_seconds(self.fake_pid), "driver": t.user + t.system}
        if self.pg_pid:
            s["postgres"] = cpu_seconds(self.pg_pid) + sum(
                cpu_seconds(p) for p in children_of(self.pg_pid))
        try:
            with open("/proc/stat") as f:
                vals = [int(x) for x in f.readline().split()[1:]]
            s["machine_busy"] = (sum(vals) - vals[3] - vals[4]) / CLK
        except (OSError, ValueError, IndexError):
            pass
        return s

    @staticmethod
    def diff(a, b):
        return {k: round(b[k] - a[k], 3) for k in a if k in b}


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.max_rss = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.25):
            self.max_rss = max(self.max_rss, read_status(self.pid).get("VmRSS", 0))


def psql(url, sql=None, file=None, extra=(), check=True):
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d", url] + list(extra)
    if file:
        cmd += ["-f", file]
    p = subprocess.run(cmd, input=sql, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("psql failed: %s" % p.stderr.strip()[-2000:])
    return p.stdout


# ---------------------------------------------------------------------------
# Driving rivet through the fake
# ---------------------------------------------------------------------------

def classify(kind, text):
    """Does this reply answer that command?"""
    if kind == "search":
        return text.startswith("🔎") or text.startswith("No equipment matches")
    if kind == "wo_list":
        return text.startswith("🛠") or text.startswith("No open work orders")
    return text.startswith("📊")


class Collector(threading.Thread):
    """Follows every sendMessage the bot makes (GET /control/wait) and hands
    each chat's replies, in order, to whoever waits for them."""

    def __init__(self, fake, since, watch=()):
        super().__init__(daemon=True)
        self.fake = fake
        self.since = since
        self.watch = watch     # (name, pid) that must stay up
        self.cond = threading.Condition()
        self.replies = {}      # chat id -> [call]
        self.count = 0
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                for name, pid in self.watch:
                    if not alive(pid):
                        raise RuntimeError("%s (pid %d) is gone" % (name, pid))
                r = self.fake.get("/control/wait", since=self.since, method="sendMessage",
                                  count=1, timeout=1)
                calls = r["calls"]
                with self.cond:
                    for c in calls:
                        cid = int(c["params"].get("chat_id"))
                        self.replies.setdefault(cid, []).append(c)
                        self.count += 1
                    if calls:
                        self.cond.notify_all()
                self.since = r["last_seq"]
        except Exception as e:  # reported by the phase
            self.error = repr(e)
            with self.cond:
                self.cond.notify_all()

    def reply(self, chat, index, timeout):
        """The index-th reply in chat (0-based), or None after timeout s."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = self.replies.get(chat, [])
                if len(got) > index:
                    return got[index]
                left = deadline - time.monotonic()
                if left <= 0 or self.error:
                    return None
                self.cond.wait(left)


def make_messages(rng, n, mix, terms):
    total = sum(mix)
    msgs = []
    for _ in range(n):
        x = rng.random() * total
        kind = KINDS[0] if x < mix[0] else KINDS[1] if x < mix[0] + mix[1] else KINDS[2]
        text = {"search": lambda: "/equip search " + rng.choice(terms),
                "wo_list": lambda: "/wo list", "stats": lambda: "/stats"}[kind]()
        msgs.append((kind, text))
    return msgs


class Phase:
    """One measured run: closed loop (each user waits for its answer before
    the next message) or open loop (messages at a fixed mean rate)."""

    def __init__(self, ctx, name, mode, n_msgs, rate=None, seed=1):
        self.ctx, self.name, self.mode, self.n_msgs = ctx, name, mode, n_msgs
        self.rate, self.seed = rate, seed
        self.records = []
        self.lock = threading.Lock()

    def _send(self, fake, user_idx, kind, text):
        chat = self.ctx.user_base + user_idx
        t0 = time.time()
        r = fake.post("/control/message", {"chat_id": chat, "from_id": chat, "text": text,
                                           "first_name": "Tech%d" % user_idx})
        t1 = time.time()
        return {"chat": chat, "kind": kind, "text": text, "update_id": r["update_id"],
                "t_inject": t0, "t_posted": t1}

    def _finish(self, rec, call):
        if call is None:
            rec["ok"] = False
            rec["error"] = "no reply within %ss" % self.ctx.reply_timeout
            return
        text = call["params"].get("text", "")
        rec["t_reply"] = call["started"]
        rec["t_reply_done"] = call["time"]
        rec["latency_ms"] = (call["started"] - rec["t_inject"]) * 1000.0
        rec["reply_ok"] = bool(call["ok"])
        rec["reply_sha"] = hashlib.sha1(text.encode()).hexdigest()[:12]
        rec["ok"] = bool(call["ok"]) and classify(rec["kind"], text)
        if not rec["ok"]:
            rec["error"] = "unexpected reply: %s" % text[:120]
        m = re.match(r"🔎 (\d+) match", text)
        if m:
            rec["matches"] = int(m.group(1))
        elif rec["kind"] == "search":
            rec["matches"] = 0

    def run(self):
        ctx = self.ctx
        stats = ctx.fake.get("/control/stats")
        if stats.get("pending_updates"):
            raise RuntimeError("the fake still holds %d updates" % stats["pending_updates"])
        ctx.fake.post("/control/reset", {})     # forget the last phase's calls
        since = ctx.fake.get("/control/stats")["last_seq"]
        col = Collector(ctx.fake, since, ((getattr(ctx, "bot_name", "rivet serve"), ctx.rivet_pid),
                                          ("the fake Bot API", ctx.fake_pid)))
        col.start()
        rng = random.Random(self.seed)
        msgs = make_messages(rng, self.n_msgs, ctx.mix, ctx.terms)
        if ctx.pgss:
            pgss_reset(ctx.db_url)
        log_from = os.path.getsize(ctx.rivet_log)
        rss = RssSampler(ctx.rivet_pid)
        rss.start()
        cpu0 = ctx.cpu.sample()
        t_start = time.time()
        if self.mode == "closed":
            self._closed(col, msgs)
        else:
            self._open(col, msgs, rng)
        t_end = time.time()
        cpu1 = ctx.cpu.sample()
        statements = pgss_read(ctx.db_url) if ctx.pgss else None
        rss.stop.set()
        col.stop.set()
        col.join(5)
        if col.error:
            raise RuntimeError("%s: %s" % (self.name, col.error))
        # Replies beyond one per message would break the pairing: count them.
        extra = col.count - len(self.records)
        answered = [r for r in self.records if "t_reply" in r]
        first = min(r["t_inject"] for r in self.records)
        last = max((r["t_reply"] for r in answered), default=t_end)
        self.result = {
            "name": self.name, "mode": self.mode, "messages": len(self.records),
            "rate_target": self.rate, "wall_s": t_end - t_start,
            "span_s": last - first,
            "throughput": len(answered) / (last - first) if last > first else None,
            "errors": sum(1 for r in self.records if not r.get("ok")),
            "error_samples": [r["error"] for r in self.records if r.get("error")][:5],
            "extra_replies": extra,
            "cpu": Cpu.diff(cpu0, cpu1),
            "rss_max_kib": rss.max_rss,
            "status_after": read_status(ctx.rivet_pid),
            "statements": statements,
            "log_problems": log_problems(ctx.rivet_log, log_from),
        }
        return self.result

    def _closed(self, col, msgs):
        n_users = self.ctx.users
        per_user = [[] for _ in range(n_users)]
        for i, m in enumerate(msgs):
            per_user[i % n_users].append(m)

        def user(idx):
            fake = Fake(self.ctx.fake_url)
            for k, (kind, text) in enumerate(per_user[idx]):
                if col.error:
                    return
                rec = self._send(fake, idx + 1, kind, text)
                call = col.reply(rec["chat"], k, self.ctx.reply_timeout)
                self._finish(rec, call)
                with self.lock:
                    self.records.append(rec)

        threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(n_users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _open(self, col, msgs, rng):
        """Poisson arrivals at self.rate a second over random users. Each
        chat is always sent by the same thread, so its order is kept."""
        n_threads = min(16, self.ctx.users)
        queues = [[] for _ in range(n_threads)]
        conds = [threading.Condition() for _ in range(n_threads)]
        sent_per_chat = {}
        pending = []
        plock = threading.Lock()
        done = [False]

        def sender(k):
            fake = Fake(self.ctx.fake_url)
            while True:
                with conds[k]:
                    while not queues[k] and not done[0]:
                        conds[k].wait()
                    if not queues[k]:
                        return
                    idx, kind, text, due = queues[k].pop(0)
                rec = self._send(fake, idx, kind, text)
                rec["lag_ms"] = (rec["t_inject"] - due) * 1000.0
                with plock:
                    rec["index"] = sent_per_chat.get(rec["chat"], 0)
                    sent_per_chat[rec["chat"]] = rec["index"] + 1
                    pending.append(rec)

        threads = [threading.Thread(target=sender, args=(k,), daemon=True)
                   for k in range(n_threads)]
        for t in threads:
            t.start()
        t = time.time() + 0.2
        for kind, text in msgs:
            if col.error:
                break
            t += rng.expovariate(self.rate)
            idx = rng.randint(1, self.ctx.users)
            delay = t - time.time()
            if delay > 0:
                time.sleep(delay)
            k = idx % n_threads
            with conds[k]:
                queues[k].append((idx, kind, text, t))
                conds[k].notify()
        done[0] = True
        for k in range(n_threads):
            with conds[k]:
                conds[k].notify()
        for th in threads:
            th.join()
        deadline = time.monotonic() + self.ctx.reply_timeout
        for rec in pending:
            call = col.reply(rec["chat"], rec["index"], max(0.1, deadline - time.monotonic()))
            self._finish(rec, call)
            self.records.append(rec)


def rivet_log_times(path):
    """From rivet's log: handling ms per inbox id, sending ms per outbox id,
    and warnings/errors by event."""
    upd, sent, problems = {}, {}, {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if " ev=tg.update " in line:
                    m = re.search(r" inbox=(\d+) .* ms=(\d+)", line)
                    if m:
                        upd[int(m.group(1))] = int(m.group(2))
                elif " ev=tg.sent " in line:
                    m = re.search(r" outbox=(\d+) .* ms=(\d+)", line)
                    if m:
                        sent[int(m.group(1))] = int(m.group(2))
                if " lvl=warn " in line or " lvl=error " in line:
                    m = re.search(r" lvl=(\w+) thr=\S+ ev=(\S+)", line)
                    if m:
                        key = "%s %s" % (m.group(1), m.group(2))
                        problems[key] = problems.get(key, 0) + 1
    except OSError:
        pass
    return upd, sent, problems


def log_problems(path, offset):
    """Warnings and errors rivet logged from byte offset on, by event, with
    the first few lines."""
    counts, samples = {}, []
    with open(path, errors="replace") as f:
        f.seek(offset)
        for line in f:
            m = re.search(r" lvl=(warn|error) thr=\S+ ev=(\S+)", line)
            if m:
                key = "%s %s" % (m.group(1), m.group(2))
                counts[key] = counts.get(key, 0) + 1
                if len(samples) < 3:
                    samples.append(line.strip()[:300])
    return {"counts": counts, "samples": samples}


def stages(ctx, records):
    """Where each message's time went, from the inbox and outbox rows (their
    timestamps are the transactions' start times) and rivet's log."""
    ids = [r["update_id"] for r in records if "t_reply" in r]
    if not ids:
        return {}
    rows = psql(ctx.db_url, sql=(
        "SELECT i.external_id, i.id, extract(epoch FROM i.received_at), "
        "extract(epoch FROM i.handled_at), o.id, extract(epoch FROM o.sent_at) "
        "FROM inbox i JOIN outbox o ON o.inbox_id = i.id "
        "WHERE i.channel = 'telegram' AND i.external_id ~ '^[0-9]+$' "
        "AND i.external_id::bigint BETWEEN %d AND %d ORDER BY o.id" % (min(ids), max(ids))))
    byupd = {}
    for line in rows.splitlines():
        ext, iid, recv, handled, oid, sent = line.split("|")
        byupd.setdefault(int(ext), (int(iid), float(recv), float(handled), int(oid),
                                    float(sent) if sent else None))
    upd_ms, sent_ms, _ = rivet_log_times(ctx.rivet_log)
    parts = {k: [] for k in ("poll", "queue", "handle", "outbox", "deliver", "sender_total",
                             "fake_call")}
    per_kind = {kind: {k: [] for k in parts} for kind in KINDS}
    for r in records:
        row = byupd.get(r["update_id"])
        if not row or "t_reply" not in r or row[4] is None or row[0] not in upd_ms:
            continue
        iid, recv, handled, oid, sent = row
        done = handled + upd_ms[iid] / 1000.0
        vals = {"poll": recv - r["t_inject"], "queue": handled - recv,
                "handle": done - handled, "outbox": sent - done,
                "deliver": r["t_reply"] - sent,
                "fake_call": r["t_reply_done"] - r["t_reply"]}
        if oid in sent_ms:
            vals["sender_total"] = sent_ms[oid] / 1000.0
        for k, v in vals.items():
            parts[k].append(v * 1000.0)
            per_kind[r["kind"]][k].append(v * 1000.0)
    return {"all": {k: summary(v) for k, v in parts.items()},
            "by_kind": {kind: {k: summary(v) for k, v in d.items()}
                        for kind, d in per_kind.items()}}


# ---------------------------------------------------------------------------
# The database alone: the same statements through psql
# ---------------------------------------------------------------------------

# How rivet lists open work orders: one statement with the total in a window
# count (its first form), or a count off the counters and a page
# (sql/0009_hot_paths.sql). extract_sql() finds out from the binary.
WO_SPLIT = False
OPEN_IN = "status IN ('open', 'in_progress', 'on_hold')"


def extract_sql(binary):
    """The statements rivet runs for the three commands, as compiled into it."""
    global WO_SPLIT
    with open(binary, "rb") as f:
        strings = [s.decode("utf-8", "replace") for s in f.read().split(b"\0") if len(s) > 40]

    def find(*needles, without=(), need=True):
        for s in strings:
            if all(n in s for n in needles) and not any(w in s for w in without + ("CREATE ",)):
                return s
        if need:
            raise RuntimeError("statement with %r not found in %s" % (needles, binary))
        return None

    sqls = {
        "session": find("SET statement_timeout = %d", "word_similarity_threshold"),
        "equipment_search": find("WITH q AS", "search_text LIKE q.pat", "LIMIT $3"),
        "user_by_telegram": find("WHERE u.telegram_user_id = $1"),
    }
    wo = find("count(*) OVER ()", "OFFSET $5 LIMIT $6", "FROM work_orders w", need=False)
    WO_SPLIT = wo is None
    if WO_SPLIT:
        sqls["wo_count"] = find("FROM work_order_counts WHERE factory_id = $1 AND " + OPEN_IN)
        sqls["wo_list"] = find("FROM work_orders w JOIN factories f",
                               "WHERE w.factory_id = $1 AND w." + OPEN_IN, "OFFSET $2 LIMIT $3",
                               without=("assignee_id = $",))
    else:
        sqls["wo_list"] = wo
    sqls["stats"] = find("FILTER (WHERE status = 'open')", "WHERE factory_id = $1",
                         without=("GROUP BY",))
    sqls["stats_top"] = (find("GROUP BY e.id ORDER BY count(*) DESC", "LIMIT 1", need=False) or
                         find("FROM equipment_open_counts c", "LIMIT 1"))
    return sqls


def session_sql(sqls, timeout_ms=5000):
    return sqls["session"].replace("%d", str(timeout_ms)) + ";\n"


def prepare_sql(sqls):
    return "".join("PREPARE %s AS %s;\n" % (name, sqls[name])
                   for name in ("equipment_search", "wo_list", "wo_count", "stats", "stats_top")
                   if name in sqls)


def execute_sql(kind, fid, term=None, limit=10):
    """The EXECUTEs one command makes, with rivet's parameters."""
    if kind == "search":
        return ["EXECUTE equipment_search(%d, %s, %d);" % (fid, sql_str(term), limit)]
    if kind == "wo_list":
        if WO_SPLIT:
            return ["EXECUTE wo_count(%d);" % fid, "EXECUTE wo_list(%d, 0, %d);" % (fid, limit)]
        return ["EXECUTE wo_list(%d, true, NULL, NULL, 0, %d);" % (fid, limit)]
    return ["EXECUTE stats(%d);" % fid, "EXECUTE stats_top(%d);" % fid]


def baseline_script(sqls, fid, cmds, warm):
    lines = [session_sql(sqls), prepare_sql(sqls), "\\o /dev/null"]
    for kind, term in warm:
        lines += execute_sql(kind, fid, term)
    lines += ["\\o", "SELECT 'T0', extract(epoch FROM clock_timestamp());", "\\o /dev/null",
              "\\timing on"]
    for kind, term in cmds:
        lines += execute_sql(kind, fid, term)
    lines += ["\\timing off", "\\o", "SELECT 'T1', extract(epoch FROM clock_timestamp());"]
    return "\n".join(lines) + "\n"


def parse_timings(out, cmds):
    """Per command: (kind, term, ms) from psql's Time: lines, in order."""
    times = [float(m.group(1)) for m in re.finditer(r"^Time: ([0-9.]+) ms", out, re.M)]
    t0 = float(re.search(r"^T0\|([0-9.]+)", out, re.M).group(1))
    t1 = float(re.search(r"^T1\|([0-9.]+)", out, re.M).group(1))
    res, i = [], 0
    for kind, term in cmds:
        k = len(execute_sql(kind, 0, ""))
        res.append((kind, term, sum(times[i:i + k])))
        i += k
    if i != len(times):
        raise RuntimeError("psql printed %d timings for %d statements" % (len(times), i))
    return res, t0, t1


def baseline(ctx, clients, n_cmds, seed):
    """n_cmds commands in the message mix, split over `clients` concurrent
    psql sessions. Returns per-kind latency and the commands per second."""
    rng = random.Random(seed)
    scripts, plans = [], []
    for c in range(clients):
        cmds = [(k, t[len("/equip search "):] if k == "search" else None)
                for k, t in make_messages(rng, n_cmds // clients, ctx.mix, ctx.terms)]
        warm = [(k, t[len("/equip search "):] if k == "search" else None)
                for k, t in make_messages(rng, 15, (1, 1, 1), ctx.terms)]
        path = os.path.join(ctx.out, "baseline-%dc-%d.sql" % (clients, c))
        with open(path, "w") as f:
            f.write(baseline_script(ctx.sqls, ctx.factory_id, cmds, warm))
        scripts.append(path)
        plans.append(cmds)
    procs = [subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d",
                               ctx.db_url, "-f", p], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for p in scripts]
    results, starts, ends = [], [], []
    for p, cmds in zip(procs, plans):
        out, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError("baseline psql failed: %s" % err.strip()[-1000:])
        res, t0, t1 = parse_timings(out, cmds)
        results += res
        starts.append(t0)
        ends.append(t1)
    for p in scripts:
        os.unlink(p)
    by_kind = {k: summary([ms for kk, _, ms in results if kk == k]) for k in KINDS}
    slow = sorted((ms, term) for kk, term, ms in results if kk == "search")[-3:]
    return {"clients": clients, "commands": len(results),
            "throughput": len(results) / (max(ends) - min(starts)),
            "by_kind": by_kind, "all": summary([ms for _, _, ms in results]),
            "slowest_search": [{"term": t, "ms": ms} for ms, t in reversed(slow)]}


def explain(ctx, term, slow_term):
    """EXPLAIN ANALYZE of the three commands' statements, prepared as rivet
    prepares them, after enough runs for the plan cache to settle."""
    fid = ctx.factory_id
    head = session_sql(ctx.sqls) + prepare_sql(ctx.sqls) + "\\o /dev/null\n"
    # Six runs first: from the sixth on, PostgreSQL may switch a prepared
    # statement to its generic plan, as it does in rivet's long sessions.
    warm = {"search": [execute_sql("search", fid, t)[0] for t in ctx.terms[:6]],
            "wo_list": execute_sql("wo_list", fid) * 6,
            "stats": ["EXECUTE stats(%d);" % fid] * 6,
            "stats_top": ["EXECUTE stats_top(%d);" % fid] * 6}
    ex = "EXPLAIN (ANALYZE, BUFFERS) EXECUTE "
    search = ex + "equipment_search(%d, %s, 10);"
    cases = [("search", "search", "", search % (fid, sql_str(term))),
             ("search_custom", "search", "SET plan_cache_mode = force_custom_plan;\n",
              search % (fid, sql_str(term))),
             ("search_generic", "search", "SET plan_cache_mode = force_generic_plan;\n",
              search % (fid, sql_str(term))),
             ("wo_list", "wo_list", "", ex + ("wo_list(%d, 0, 10);" if WO_SPLIT else
                                              "wo_list(%d, true, NULL, NULL, 0, 10);") % fid),
             ("stats", "stats", "", ex + "stats(%d);" % fid),
             ("stats_top", "stats_top", "", ex + "stats_top(%d);" % fid)]
    if slow_term and slow_term != term:
        cases.insert(1, ("search_slowest", "search", "", search % (fid, sql_str(slow_term))))
    out = {}
    for name, w, pre, stmt in cases:
        # Run it twice and keep the second (warm cache) plan.
        out[name] = psql(ctx.db_url, sql=head + "\n".join(warm[w]) + "\n" + pre + stmt
                         + "\n\\o\n" + stmt + "\n")
    counts = psql(ctx.db_url, sql=(
        "SELECT (SELECT count(*) FROM equipment WHERE factory_id = %d), "
        "(SELECT count(*) FROM work_orders WHERE factory_id = %d), "
        "(SELECT count(*) FROM work_orders WHERE factory_id = %d "
        "AND status IN ('open','in_progress','on_hold')), "
        "pg_size_pretty(pg_total_relation_size('equipment')), "
        "pg_size_pretty(pg_total_relation_size('work_orders')), "
        "pg_size_pretty(pg_relation_size('equipment_search_trgm')), version(), "
        "current_setting('shared_buffers'), current_setting('fsync'), "
        "current_setting('synchronous_commit')" % (fid, fid, fid))).strip().split("|")
    return out, counts


# ---------------------------------------------------------------------------
# pg_stat_statements: which statements the database time goes to
# ---------------------------------------------------------------------------

STMT_LABELS = [
    ("equipment_search", "search_text LIKE q.pat"),
    ("wo_list", "OFFSET $5 LIMIT $6"),
    ("wo_list", "FROM work_orders w JOIN factories f"),
    ("wo_count", "FROM work_order_counts WHERE factory_id = $1 AND status IN"),
    ("stats", "FILTER (WHERE status = 'open')"),
    ("stats_top", "GROUP BY e.id ORDER BY count(*) DESC"),
    ("stats_top", "FROM equipment_open_counts c"),
    ("user_by_telegram", "telegram_user_id = $1"),
    ("inbox_claim", "FROM inbox i JOIN"),
    ("inbox_store", "INSERT INTO inbox"),
    ("inbox_done", "UPDATE inbox SET handled_at"),
    ("outbox_claim", "FROM outbox o JOIN"),
    ("outbox_add", "INSERT INTO outbox"),
    ("outbox_sent", "UPDATE outbox SET sent_at"),
    ("outbox_next_due", "FROM outbox"),
    ("chat_seen", "INSERT INTO chats (channel, chat_id, kind)"),
    ("chat_next_send", "UPDATE chats SET next_send_at"),
    ("poll_offset_set", "INSERT INTO channel_state"),
    ("poll_offset", "SELECT poll_offset"),
    ("advisory lock", "advisory"),
    ("NOTIFY", "NOTIFY"),
    ("BEGIN", "BEGIN"),
    ("COMMIT", "COMMIT"),
    ("ROLLBACK", "ROLLBACK"),
]


def stmt_label(q):
    for label, needle in STMT_LABELS:
        if needle.lower() in q.lower():
            return label
    return re.sub(r"\s+", " ", q)[:50]


def pgss_available(url):
    try:
        psql(url, sql="SELECT 1 FROM pg_stat_statements LIMIT 1;")
        return True
    except RuntimeError:
        return False


def pgss_reset(url):
    psql(url, sql="SELECT pg_stat_statements_reset();")


def pgss_read(url):
    out = psql(url, sql=(
        "SELECT calls, total_exec_time, rows, replace(query, E'\\n', ' ') "
        "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
        "WHERE datname = current_database()) AND query NOT LIKE '%pg_stat_statements%';"),
        extra=["-F", "\x1f"])
    agg = {}
    for line in out.splitlines():
        calls, total, rows, query = line.split("\x1f", 3)
        a = agg.setdefault(stmt_label(query), {"calls": 0, "total_ms": 0.0, "rows": 0})
        a["calls"] += int(calls)
        a["total_ms"] += float(total)
        a["rows"] += int(rows)
    for a in agg.values():
        a["mean_ms"] = a["total_ms"] / a["calls"] if a["calls"] else None
    return agg


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def machine():
    info = {"cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            info["cpu"] = m.group(1) if m else "?"
        with open("/proc/meminfo") as f:
            info["mem_gib"] = round(int(f.readline().split()[1]) / 1048576, 1)
        info["kernel"] = os.uname().release
        with open("/proc/loadavg") as f:
            info["loadavg_before"] = f.read().split()[:3]
    except OSError:
        pass
    return info


def save(a, res):
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)


def cmd_run(a):
    res = {}
    try:
        run_all(a, res)
    except Exception as e:
        res["aborted"] = "%s" % e
        save(a, res)
        log("ABORTED: %s (what was measured is in %s/results.json)" % (e, a.out))
        sys.exit(1)


def run_all(a, res):
    ctx = a
    ctx.mix = tuple(int(x) for x in a.mix.split("/"))
    ctx.terms = search_terms(a.seed + 6)
    ctx.fake = Fake(a.fake_url)
    ctx.sqls = extract_sql(a.rivet_bin)
    pg_pid = None
    if a.pg_pidfile and os.path.exists(a.pg_pidfile):
        with open(a.pg_pidfile) as f:
            pg_pid = int(f.readline())
    ctx.cpu = Cpu(a.rivet_pid, a.fake_pid, pg_pid)
    ctx.pgss = pgss_available(a.db_url)
    res.update({"params": {k: getattr(a, k) for k in (
        "users", "messages", "equipment", "work_orders", "workers", "repeats", "mix", "seed",
        "warmup", "user_base", "photos")}, "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")})
    res["terms_sample"] = ctx.terms[:12]

    time.sleep(2)
    res["rss_idle"] = read_status(a.rivet_pid)
    log("rivet serve idle: VmRSS %s KiB" % res["rss_idle"].get("VmRSS"))
    if a.photos:
        res["photos"] = read_photos(ctx, a.photos)
        res["rss_photos"] = read_status(a.rivet_pid)
        log("after %d photos: VmRSS %s KiB, VmHWM %s KiB" % (
            a.photos, res["rss_photos"].get("VmRSS"), res["rss_photos"].get("VmHWM")))

    # A warm-up to fill caches, prepare statements, open connections.
    warm = Phase(ctx, "warm-up", "closed", a.warmup, seed=a.seed + 100)
    log("warm-up: %d messages, closed loop" % a.warmup)
    res["warmup"] = warm.run()
    if res["warmup"]["errors"]:
        log("warm-up errors: %s" % res["warmup"]["error_samples"])

    runs = res["runs"] = []
    for i in range(a.repeats):
        name = "closed-%d" % (i + 1)
        log("run %d/%d: %d messages from %d users, closed loop" % (i + 1, a.repeats, a.messages,
                                                                   a.users))
        runs.append(run_phase(ctx, a.out, "messages-%s.csv" % name, name, "closed", a.messages,
                              a.seed + i))
        save(a, res)

    if a.open_rate != 0:
        rate = a.open_rate or max(1.0, round(0.5 * med([r["throughput"] for r in runs]), 1))
        n = a.open_messages or max(100, a.messages // 2)
        log("open loop: %d messages at %.1f/s (Poisson arrivals)" % (n, rate))
        res["open"] = run_phase(ctx, a.out, "messages-open.csv", "open", "open", n,
                                a.seed + 50, rate=rate)
        save(a, res)

    time.sleep(1)
    res["rss_after"] = read_status(a.rivet_pid)

    log("database baseline: 1 client, then %d clients" % a.workers)
    n_base = max(150, min(600, a.messages // 4))
    res["baseline_1"] = baseline(ctx, 1, n_base, a.seed + 200)
    res["baseline_w"] = baseline(ctx, a.workers, max(n_base, 100 * a.workers), a.seed + 300)

    log("EXPLAIN ANALYZE")
    slow = res["baseline_1"]["slowest_search"]
    plans, counts = explain(ctx, a.explain_term, slow[0]["term"] if slow else None)
    res["explain"] = plans
    res["db"] = dict(zip(("equipment", "work_orders", "open_work_orders", "equipment_size",
                          "work_orders_size", "trgm_index_size", "version", "shared_buffers",
                          "fsync", "synchronous_commit"), counts))
    _, _, problems = rivet_log_times(a.rivet_log)
    res["rivet_log_problems"] = problems
    res["explain_term"] = a.explain_term
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    save(a, res)
    with open(os.path.join(a.out, "explain.txt"), "w") as f:
        for k, v in plans.items():
            f.write("== %s ==\n%s\n" % (k, v))
    report = render(res, a)
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write(report)
    print(report)


def run_phase(ctx, out, csv_name, name, mode, n, seed, rate=None, who=""):
    """Runs one phase, adds its analysis, logs its figures and writes its
    messages to out/csv_name; returns the phase's results."""
    ph = Phase(ctx, name, mode, n, rate=rate, seed=seed)
    r = ph.run()
    r.update(analyse(ctx, ph.records))
    log("  %s%.1f messages/s, p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, errors %d" % (
        who, r["throughput"] or 0, r["latency"]["all"]["p50"] or 0,
        r["latency"]["all"]["p95"] or 0, r["latency"]["all"]["p99"] or 0, r["errors"]))
    if mode == "open":
        r["lag_ms"] = summary([x["lag_ms"] for x in ph.records if "lag_ms" in x])
    dump_records(os.path.join(out, csv_name), ph.records)
    return r


PHOTO_PLATES = ["003-iec-motor-de", "005-nema-motor", "022-iec-motor", "029-pump"]


def read_photos(ctx, n, timeout=300):
    """n nameplate photos, one from each of n chats of their own (the users
    after the measured ones), at once: with OCR_MAX_JOBS >= n every worker
    reads one and makes its Tesseract engine. Waits for every answer."""
    import base64
    here = os.path.dirname(os.path.abspath(__file__))
    since = ctx.fake.get("/control/stats")["last_seq"]
    col = Collector(ctx.fake, since, (("rivet serve", ctx.rivet_pid),))
    col.start()
    chats = [ctx.user_base + ctx.users + 1 + i for i in range(n)]
    t0 = time.time()
    for i, chat in enumerate(chats):
        with open(os.path.join(here, "..", "fixtures", "nameplates", "set",
                               PHOTO_PLATES[i % len(PHOTO_PLATES)] + ".jpg"), "rb") as f:
            jpeg = f.read()
        ctx.fake.post("/control/photo", {"chat_id": chat, "from_id": chat,
                                         "file_bytes_b64": base64.b64encode(jpeg).decode()})
    log("%d photos posted; waiting for the answers" % n)
    deadline = time.monotonic() + timeout
    answered = {}
    while time.monotonic() < deadline and len(answered) < n and not col.error:
        with col.cond:
            for chat in chats:
                for c in col.replies.get(chat, []):
                    if c["params"].get("text", "").startswith("📷") and chat not in answered:
                        answered[chat] = (c["started"] - t0) * 1000.0
            if len(answered) < n:
                col.cond.wait(0.5)
    col.stop.set()
    col.join(5)
    if len(answered) < n:
        raise RuntimeError("only %d of %d photos were answered within %d s%s" % (
            len(answered), n, timeout, " (%s)" % col.error if col.error else ""))
    return {"photos": n, "answer_ms": sorted(answered.values())}


# ---------------------------------------------------------------------------
# The peer: the same load, data and fake against tests/bench/peer (grammY)
# ---------------------------------------------------------------------------

def cmd_run_peer(a):
    """Drives the peer bot exactly as `run` drove rivet (same users, mix,
    seeds, warm-up, closed-loop runs and open-loop rate), then adds the
    peer's figures and the Rivet/peer ratios to results.json and report.md."""
    path = os.path.join(a.out, "results.json")
    with open(path) as f:
        res = json.load(f)
    if "runs" not in res or res.get("aborted"):
        log("the rivet run did not finish: no peer run")
        sys.exit(1)
    p = res["params"]
    ctx = a
    ctx.peer = True
    ctx.bot_name = "the peer bot"
    ctx.rivet_pid, ctx.rivet_log = a.peer_pid, a.peer_log
    ctx.users, ctx.user_base = p["users"], p.get("user_base", 910000000)
    mix = p["mix"]
    ctx.mix = tuple(int(x) for x in (mix.split("/") if isinstance(mix, str) else mix))
    ctx.terms = search_terms(p["seed"] + 6)
    ctx.fake = Fake(a.fake_url)
    ctx.pgss = False
    pg_pid = None
    if a.pg_pidfile and os.path.exists(a.pg_pidfile):
        with open(a.pg_pidfile) as f:
            pg_pid = int(f.readline())
    ctx.cpu = Cpu(a.peer_pid, a.fake_pid, pg_pid)
    peer = res["peer"] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        time.sleep(2)
        peer["rss_idle"] = read_status(a.peer_pid)
        log("peer idle: VmRSS %s KiB" % peer["rss_idle"].get("VmRSS"))
        log("peer warm-up: %d messages, closed loop" % p["warmup"])
        peer["warmup"] = Phase(ctx, "warm-up", "closed", p["warmup"], seed=p["seed"] + 100).run()
        runs = peer["runs"] = []
        for i in range(p["repeats"]):
            name = "closed-%d" % (i + 1)
            log("peer run %d/%d: %d messages from %d users, closed loop" % (
                i + 1, p["repeats"], p["messages"], p["users"]))
            runs.append(run_phase(ctx, a.out, "peer-messages-%s.csv" % name, name, "closed",
                                  p["messages"], p["seed"] + i, who="peer: "))
        if res.get("open"):
            o = res["open"]
            log("peer open loop: %d messages at %.1f/s" % (o["messages"], o["rate_target"]))
            peer["open"] = run_phase(ctx, a.out, "peer-messages-open.csv", "open", "open",
                                     o["messages"], p["seed"] + 50, rate=o["rate_target"],
                                     who="peer: ")
        time.sleep(1)
        peer["rss_after"] = read_status(a.peer_pid)
    except Exception as e:
        peer["aborted"] = "%s" % e
        with open(path, "w") as f:
            json.dump(res, f, indent=1, ensure_ascii=False)
        log("peer ABORTED: %s" % e)
        sys.exit(1)
    res["vs_peer"] = vs_peer(res)
    res["vs_peer"]["same_replies"] = same_replies(a.out)
    with open(path, "w") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)
    section = render_peer(res)
    with open(os.path.join(a.out, "report.md"), "a") as f:
        f.write("\n" + section)
    print(section)


def same_replies(out):
    """Of the distinct commands both bots answered in the first closed-loop
    run, how many got the very same reply text (sha1), by kind."""
    import csv

    def replies(path):
        got = {}
        try:
            with open(path) as f:
                for r in csv.DictReader(f):
                    if r.get("reply_sha"):
                        got.setdefault((r["kind"], r["text"]), set()).add(r["reply_sha"])
        except OSError:
            pass
        return got
    a = replies(os.path.join(out, "messages-closed-1.csv"))
    b = replies(os.path.join(out, "peer-messages-closed-1.csv"))
    res = {}
    for key in set(a) & set(b):
        k = res.setdefault(key[0], {"commands": 0, "same": 0, "differ": []})
        k["commands"] += 1
        if a[key] & b[key]:
            k["same"] += 1
        elif len(k["differ"]) < 3:
            k["differ"].append(key[1])
    return res


def vs_peer(res):
    """Rivet/peer: throughput (higher is better for Rivet), p99 and RSS (lower is
    better for Rivet); medians over the closed-loop runs."""
    def ratio(x, y):
        return x / y if x and y else None

    def closed(side):
        runs = side["runs"]
        return {"throughput": med([r["throughput"] for r in runs]),
                "p50": med([r["latency"]["all"]["p50"] for r in runs]),
                "p99": med([r["latency"]["all"]["p99"] for r in runs]),
                "errors": sum(r["errors"] for r in runs)}
    rv, pv = closed(res), closed(res["peer"])
    out = {"rivet": rv, "peer": pv,
           "throughput": ratio(rv["throughput"], pv["throughput"]),
           "p99_closed": ratio(rv["p99"], pv["p99"])}
    if res.get("open") and res["peer"].get("open"):
        out["rivet_open_p99"] = res["open"]["latency"]["all"]["p99"]
        out["peer_open_p99"] = res["peer"]["open"]["latency"]["all"]["p99"]
        out["p99_open"] = ratio(out["rivet_open_p99"], out["peer_open_p99"])
    out["rivet_hwm_kib"] = (res.get("rss_after") or {}).get("VmHWM")
    out["peer_hwm_kib"] = (res["peer"].get("rss_after") or {}).get("VmHWM")
    out["rss"] = ratio(out["rivet_hwm_kib"], out["peer_hwm_kib"])
    return out


def render_peer(res):
    v, pr = res["vs_peer"], res["peer"]
    L = ["## Rivet against the peer (grammY + node-postgres)", "",
         "The same driver, users, message mix, seeds and fake Bot API, on the same database "
         "in the same run, against `tests/bench/peer/bot.js` (grammY with @grammyjs/runner, "
         "a pg Pool). Rivet ran first and was stopped before the peer started. Medians of "
         "the closed-loop runs; RSS is each process's VmHWM at the end.", "",
         "| figure | Rivet | peer | Rivet/peer |", "| --- | ---: | ---: | ---: |",
         "| closed-loop throughput, msg/s | %s | %s | %s |" % (
             fmt(v["rivet"]["throughput"]), fmt(v["peer"]["throughput"]), fmt(v["throughput"], 2)),
         "| closed-loop p50, ms | %s | %s | %s |" % (
             fmt(v["rivet"]["p50"], 0), fmt(v["peer"]["p50"], 0),
             fmt(v["rivet"]["p50"] / v["peer"]["p50"] if v["rivet"]["p50"] and v["peer"]["p50"]
                 else None, 2)),
         "| closed-loop p99, ms | %s | %s | %s |" % (
             fmt(v["rivet"]["p99"], 0), fmt(v["peer"]["p99"], 0), fmt(v["p99_closed"], 2))]
    if "p99_open" in v:
        L.append("| open-loop p99 at %s msg/s, ms | %s | %s | %s |" % (
            fmt(res["open"]["rate_target"]), fmt(v["rivet_open_p99"], 0),
            fmt(v["peer_open_p99"], 0), fmt(v["p99_open"], 2)))
    L.append("| VmHWM, KiB | %s | %s | %s |" % (v["rivet_hwm_kib"], v["peer_hwm_kib"],
                                              fmt(v["rss"], 2)))
    L.append("| errors (wrong or missing replies) | %d | %d | |" % (v["rivet"]["errors"],
                                                                  v["peer"]["errors"]))
    L.append("")
    same = v.get("same_replies") or {}
    if same:
        L.append("Same reply text from both bots (distinct commands of the first run): " +
                 ", ".join("%s %d of %d" % (KIND_LABEL[k], x["same"], x["commands"])
                           for k, x in sorted(same.items())) + ".")
        diff = ["%s" % t for x in same.values() for t in x["differ"]]
        if diff:
            L.append("Differing, for example: " + "; ".join("`%s`" % t for t in diff[:3]) + ".")
        L.append("")
    samples = [e for r in pr["runs"] for e in r.get("error_samples", [])][:3]
    if samples:
        L.append("Peer errors, first ones: " + "; ".join("`%s`" % s for s in samples))
        L.append("")
    return "\n".join(L) + "\n"


def analyse(ctx, records):
    lat = {k: summary([r["latency_ms"] for r in records if r["kind"] == k and r.get("ok")])
           for k in KINDS}
    lat["all"] = summary([r["latency_ms"] for r in records if r.get("ok")])
    searches = [r for r in records if r["kind"] == "search" and "matches" in r]
    return {"latency": lat,
            "stages": {} if getattr(ctx, "peer", False) else stages(ctx, records),
            "search_hits": {"n": len(searches),
                            "with_matches": sum(1 for r in searches if r["matches"] > 0)},
            "post_ms": summary([(r["t_posted"] - r["t_inject"]) * 1000 for r in records])}


def dump_records(path, records):
    cols = ["kind", "chat", "update_id", "t_inject", "t_posted", "t_reply", "latency_ms", "ok",
            "matches", "lag_ms", "error", "text", "reply_sha"]
    with open(path, "w") as f:
        f.write(",".join(cols) + "\n")
        for r in sorted(records, key=lambda r: r["t_inject"]):
            vals = []
            for c in cols:
                v = r.get(c, "")
                if isinstance(v, float):
                    v = "%.6f" % v
                v = str(v)
                if any(ch in v for ch in ',"\n'):
                    v = '"' + v.replace('"', '""') + '"'
                vals.append(v)
            f.write(",".join(vals) + "\n")


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------

def render(res, a):
    p = res["params"]
    runs = res["runs"]
    L = []
    add = L.append
    add("# Rivet Telegram benchmark")
    add("")
    add("Run %s – %s on %s (%s cores, %s GiB, kernel %s; load before start %s)." % (
        res["started"], res["finished"], res["machine"].get("cpu", "?"), res["machine"]["cores"],
        res["machine"].get("mem_gib", "?"), res["machine"].get("kernel", "?"),
        " ".join(res["machine"].get("loadavg_before", []))))
    db = res["db"]
    add("")
    add("- Data: one factory with %s equipment rows (%s), %s work orders (%s, %s open), "
        "%d users; trigram index %s." % (db["equipment"], db["equipment_size"],
                                          db["work_orders"], db["work_orders_size"],
                                          db["open_work_orders"], p["users"],
                                          db["trgm_index_size"]))
    add("- PostgreSQL: %s; shared_buffers %s, fsync %s, synchronous_commit %s." % (
        db["version"].split(" on ")[0], db["shared_buffers"], db["fsync"],
        db["synchronous_commit"]))
    add("- rivet serve: RIVET_WORKERS=%d, TELEGRAM_CHAT_INTERVAL_MS=0, "
        "TELEGRAM_GLOBAL_PER_SECOND=10000, TELEGRAM_POLL_TIMEOUT_S=2; the fake Bot API with "
        "rate limits off; everything on this one machine." % p["workers"])
    add("- Load: %d simulated users, mix %s (/equip search / /wo list / /stats), "
        "%d messages per run after a %d-message warm-up; %d closed-loop runs (each user "
        "sends its next message when the previous one is answered, no think time)%s." % (
            p["users"], p["mix"], p["messages"], p["warmup"], p["repeats"],
            ", then one open-loop run" if res.get("open") else ""))
    add("- Latency: from just before the update is injected into the fake (POST "
        "/control/message) to the moment the fake receives the bot's sendMessage for that "
        "chat (its recorded call start).")
    add("")
    add("## Closed loop: medians of %d runs" % len(runs))
    add("")
    tps = [r["throughput"] for r in runs]
    add("Throughput: **%s messages/s** (runs: %s). Errors: %s." % (
        fmt(med(tps)), ", ".join(fmt(x) for x in tps),
        ", ".join(str(r["errors"]) for r in runs)))
    add("")
    add("| command | n/run | p50 ms | p95 ms | p99 ms | max ms | mean ms |")
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for k in KINDS + ("all",):
        add("| %s | %s | %s | %s | %s | %s | %s |" % (
            KIND_LABEL.get(k, "**all**"), fmt(med([r["latency"][k]["n"] for r in runs]), 0),
            *[fmt(med([r["latency"][k][q] for r in runs]), 0)
              for q in ("p50", "p95", "p99", "max", "mean")]))
    add("")
    add("Per run (all commands): " + "; ".join(
        "%s: %s msg/s, p50 %s, p95 %s, p99 %s, max %s ms" % (
            r["name"], fmt(r["throughput"]), fmt(r["latency"]["all"]["p50"], 0),
            fmt(r["latency"]["all"]["p95"], 0), fmt(r["latency"]["all"]["p99"], 0),
            fmt(r["latency"]["all"]["max"], 0)) for r in runs) + ".")
    add("")
    if res.get("open"):
        o = res["open"]
        add("## Open loop: %s messages at %s/s (Poisson), one run" % (o["messages"],
                                                                     fmt(o["rate_target"])))
        add("")
        add("Answered %s messages/s; errors %d; injection lag behind schedule p95 %s ms." % (
            fmt(o["throughput"]), o["errors"], fmt(o["lag_ms"]["p95"], 0)))
        add("")
        add("| command | n | p50 ms | p95 ms | p99 ms | max ms |")
        add("| --- | ---: | ---: | ---: | ---: | ---: |")
        for k in KINDS + ("all",):
            s = o["latency"][k]
            add("| %s | %d | %s | %s | %s | %s |" % (KIND_LABEL.get(k, "**all**"), s["n"],
                                                    *[fmt(s[q], 0) for q in
                                                      ("p50", "p95", "p99", "max")]))
        add("")
    add("## Where the time goes")
    add("")
    add("Per message, from the inbox and outbox rows (timestamps are transaction starts) and "
        "rivet's log (handling time). Medians over the closed-loop runs of each stage's "
        "p50 / p95, in ms:")
    add("")
    add("- **poll**: injected → the poller has the update and begins storing it (getUpdates "
        "long poll);")
    add("- **queue**: stored → a worker claims it (commit, NOTIFY, waiting for a free worker);")
    add("- **handle**: claim → commit of the handler's transaction (the command's SQL, "
        "rendering, outbox insert);")
    add("- **outbox**: commit → a sender claims the reply;")
    add("- **deliver**: claim → the fake receives sendMessage.")
    add("")
    add("Stage boundaries are transaction start times and whole-millisecond durations from "
        "the log, so a stage near zero can read −1 or −2 ms.")
    add("")
    add("Not part of the sum: **sender_total** is a sender's whole turn for the message "
        "(claim, HTTP call, recording it, commit; rivet's tg.sent ms), **fake_call** the "
        "fake's own time for the sendMessage call.")
    add("")
    head = "| stage | " + " | ".join("%s p50 / p95" % KIND_LABEL[k] for k in KINDS) + \
        " | all p50 / p95 |"
    cols = []
    for stage in ("poll", "queue", "handle", "outbox", "deliver", "sender_total", "fake_call"):
        cells = []
        for k in KINDS + ("all",):
            def get(r, q):
                st = r.get("stages") or {}
                s = st.get("all") if k == "all" else st.get("by_kind", {}).get(k)
                return (s or {}).get(stage, {}).get(q)
            cells.append("%s / %s" % (fmt(med([get(r, "p50") for r in runs]), 0),
                                      fmt(med([get(r, "p95") for r in runs]), 0)))
        cols.append("| %s | %s |" % (stage, " | ".join(cells)))
    add(head)
    add("| --- |" + " ---: |" * (len(KINDS) + 1))
    L.extend(cols)
    if res.get("open") and res["open"].get("stages"):
        add("")
        add("Open loop (%s/s), all commands, p50 / p95 ms: " % fmt(res["open"]["rate_target"]) +
            ", ".join("%s %s / %s" % (s, fmt(v["p50"], 0), fmt(v["p95"], 0))
                      for s, v in res["open"]["stages"]["all"].items()) + ".")
    add("")
    add("CPU seconds used during each closed-loop run (2 cores give 2 s per second of wall "
        "time):")
    add("")
    add("| run | wall s | rivet | postgres | fake Bot API | driver | other processes | "
        "whole machine |")
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in runs + ([res["open"]] if res.get("open") else []):
        c = r["cpu"]
        ours = sum(c.get(k, 0) for k in ("rivet", "postgres", "fake", "driver"))
        other = c["machine_busy"] - ours if "machine_busy" in c else None
        add("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["name"], fmt(c.get("wall")), fmt(c.get("rivet")), fmt(c.get("postgres")),
            fmt(c.get("fake")), fmt(c.get("driver")), fmt(other), fmt(c.get("machine_busy"))))
    add("")
    if all(r.get("statements") for r in runs):
        add("Database time by statement (pg_stat_statements, execution time inside "
            "PostgreSQL, all sessions: rivet's poller, workers and senders), per closed-loop "
            "run:")
        add("")
        n = len(runs)
        add("| statement | calls per message | mean ms (" + " / ".join(r["name"] for r in runs)
            + ") | total s (" + " / ".join(r["name"] for r in runs) + ") |")
        add("| --- | ---: | ---: | ---: |")
        labels = sorted({k for r in runs for k in r["statements"]},
                        key=lambda k: -sum(r["statements"].get(k, {}).get("total_ms", 0)
                                           for r in runs))
        for k in labels[:18]:
            st = [r["statements"].get(k, {}) for r in runs]
            add("| %s | %s | %s | %s |" % (
                k, fmt(med([x.get("calls", 0) / r["messages"] for x, r in zip(st, runs)]), 2),
                " / ".join(fmt(x.get("mean_ms"), 2) for x in st),
                " / ".join(fmt(x.get("total_ms", 0) / 1000.0, 2) for x in st)))
        tot = [sum(x["total_ms"] for x in r["statements"].values()) / 1000.0 for r in runs]
        add("| **sum** | | | %s |" % " / ".join(fmt(t, 2) for t in tot))
        add("")
    add("## The database alone (same statements, psql)")
    add("")
    add("The statements rivet runs for each command, taken from the rivet binary, PREPAREd "
        "as rivet prepares them (same session settings) and EXECUTEd with psql over TCP, "
        "client-side timing; /stats is its two statements. The same mix, on the same data, "
        "in the same run.")
    add("")
    b1, bw = res["baseline_1"], res["baseline_w"]
    add("| command | 1 client p50 | p95 | p99 | %d clients p50 | p95 | p99 | rivet closed "
        "loop p50 | rivet open loop p50 |" % bw["clients"])
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for k in KINDS + ("all",):
        s1 = b1["all"] if k == "all" else b1["by_kind"][k]
        sw = bw["all"] if k == "all" else bw["by_kind"][k]
        o = res["open"]["latency"][k]["p50"] if res.get("open") else None
        add("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            KIND_LABEL.get(k, "**all**"), *[fmt(s1[q], 1) for q in ("p50", "p95", "p99")],
            *[fmt(sw[q], 1) for q in ("p50", "p95", "p99")],
            fmt(med([r["latency"][k]["p50"] for r in runs]), 0), fmt(o, 0)))
    add("")
    add("Database-only throughput for this mix: %s commands/s with 1 client, %s with %d "
        "clients (rivet: %s messages/s with %d workers)." % (
            fmt(b1["throughput"]), fmt(bw["throughput"]), bw["clients"], fmt(med(tps)),
            p["workers"]))
    if b1.get("slowest_search"):
        add("Slowest searches (1 client): " + ", ".join(
            "\"%s\" %s ms" % (s["term"], fmt(s["ms"])) for s in b1["slowest_search"]) + ".")
    add("")
    add("## Memory of rivet serve")
    add("")
    idle, after = res["rss_idle"], res["rss_after"]
    add("| when | VmRSS | VmHWM | threads |")
    add("| --- | ---: | ---: | ---: |")
    add("| idle, after start | %s KiB | %s KiB | %s |" % (idle.get("VmRSS"), idle.get("VmHWM"),
                                                         idle.get("Threads")))
    if res.get("rss_photos"):
        ph = res["rss_photos"]
        add("| after %d photos read at once (each worker's Tesseract engine made) | %s KiB | "
            "%s KiB | %s |" % (res["photos"]["photos"], ph.get("VmRSS"), ph.get("VmHWM"),
                               ph.get("Threads")))
    for r in runs + ([res["open"]] if res.get("open") else []):
        s = r["status_after"]
        add("| after %s (max sampled %s KiB) | %s KiB | %s KiB | %s |" % (
            r["name"], r["rss_max_kib"], s.get("VmRSS"), s.get("VmHWM"), s.get("Threads")))
    add("| at the end | %s KiB | %s KiB | %s |" % (after.get("VmRSS"), after.get("VmHWM"),
                                                  after.get("Threads")))
    add("")
    add("## /equip search on %s rows: EXPLAIN ANALYZE" % db["equipment"])
    add("")
    plan = res["explain"]["search"]
    used = "equipment_search_trgm" in plan
    generic = "$2" in plan or "$1" in plan
    add("Search text \"%s\", the statement prepared and run 6 times first, as in a rivet "
        "session (pg_trgm.word_similarity_threshold as rivet sets it). **The trigram index "
        "is %s** (%s plan)." % (res["explain_term"], "used" if used else "NOT used",
                                "generic" if generic else "custom"))
    add("")
    add("```")
    add(plan.rstrip())
    add("```")
    add("")
    add("The slowest search text, the forced custom and generic plans, and the plans of "
        "/wo list and /stats are in explain.txt.")
    add("")
    for name in ("wo_list", "stats", "stats_top", "search_slowest", "search_generic"):
        if name in res["explain"]:
            m = re.search(r"Execution Time: ([0-9.]+) ms", res["explain"][name])
            add("- %s: execution %s ms%s" % (name, m.group(1) if m else "?",
                                             "; uses equipment_search_trgm"
                                             if "equipment_search_trgm" in res["explain"][name]
                                             else ""))
    add("")
    add("## Health")
    add("")
    probs = res.get("rivet_log_problems") or {}
    for r in [res["warmup"]] + runs + ([res["open"]] if res.get("open") else []):
        lp = r.get("log_problems") or {}
        if lp.get("counts"):
            add("- during %s: %s" % (r["name"], ", ".join(
                "%s ×%d" % kv for kv in sorted(lp["counts"].items()))))
            for line in lp["samples"]:
                add("  - `%s`" % line)
    add("")
    add("rivet log warnings/errors, whole run: %s." % (", ".join("%s ×%d" % kv for kv in sorted(probs.items()))
                                            if probs else "none"))
    add("Searches with at least one match: %s." % ", ".join(
        "%d/%d" % (r["search_hits"]["with_matches"], r["search_hits"]["n"]) for r in runs))
    add("Extra replies (more than one per message): %s." % ", ".join(
        str(r["extra_replies"]) for r in runs))
    add("Sample search texts: %s." % ", ".join("\"%s\"" % t for t in res["terms_sample"]))
    add("")
    add("Files: results.json (everything above), messages-*.csv (one line per message), "
        "explain.txt, rivet.log, fake.log.")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen-sql")
    g.add_argument("--factory-id", type=int, required=True)
    g.add_argument("--users", type=int, default=50)
    g.add_argument("--user-base", type=int, default=910000000)
    g.add_argument("--equipment", type=int, default=100000)
    g.add_argument("--work-orders", type=int, default=200000)
    g.add_argument("--drop-index", action="store_true")
    g.add_argument("--seed", type=int, default=1)
    sub.add_parser("terms")
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--fake-url", required=True)
    r.add_argument("--db-url", required=True)
    r.add_argument("--factory-id", type=int, required=True)
    r.add_argument("--rivet-pid", type=int, required=True)
    r.add_argument("--fake-pid", type=int, required=True)
    r.add_argument("--pg-pidfile")
    r.add_argument("--rivet-bin", required=True)
    r.add_argument("--rivet-log", required=True)
    r.add_argument("--users", type=int, default=50)
    r.add_argument("--user-base", type=int, default=910000000)
    r.add_argument("--messages", type=int, default=2000)
    r.add_argument("--warmup", type=int, default=100)
    r.add_argument("--repeats", type=int, default=3)
    r.add_argument("--equipment", type=int, default=100000)
    r.add_argument("--work-orders", type=int, default=200000)
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--mix", default="40/40/20")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--open-rate", type=float, default=None)
    r.add_argument("--open-messages", type=int, default=None)
    r.add_argument("--reply-timeout", type=float, default=120.0)
    r.add_argument("--explain-term", default="simens g120")
    r.add_argument("--photos", type=int, default=0)
    p = sub.add_parser("run-peer")
    p.add_argument("--out", required=True)
    p.add_argument("--fake-url", required=True)
    p.add_argument("--db-url", required=True)
    p.add_argument("--peer-pid", type=int, required=True)
    p.add_argument("--fake-pid", type=int, required=True)
    p.add_argument("--pg-pidfile")
    p.add_argument("--peer-log", required=True)
    p.add_argument("--reply-timeout", type=float, default=120.0)
    a = ap.parse_args()
    if a.cmd == "gen-sql":
        sys.stdout.write(gen_sql(a))
    elif a.cmd == "terms":
        print("\n".join(search_terms()))
    elif a.cmd == "run-peer":
        cmd_run_peer(a)
    else:
        cmd_run(a)


if __name__ == "__main__":
    main()
