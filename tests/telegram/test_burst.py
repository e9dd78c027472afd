#!/usr/bin/env python3
"""A burst of photos while another chat sends text (the resource limits).

rivet runs with RIVET_WORKERS=2 and OCR_MAX_JOBS=1: one worker reads
photos, the other is kept for text. PHOTOS nameplate photos (real plates
from tests/fixtures/nameplates/set/, each made distinct bytes so that each
is read) arrive at once from PHOTO_CHATS chats; meanwhile a technician in
another chat sends text commands one after the other.

- Every text command is answered while the photos are still being read:
  the last text reply comes before the last photo reply, with a good part
  of the photos still unanswered (ordering, not timings).
- Every photo is answered exactly once (one reply each, one ev=photo.read
  each, every inbox row handled once with outcome ok, nothing given up).
- At most one photo job at a time (rivet_ocr_jobs sampled from /metrics
  never above 1, rivet_ocr_max_jobs 1); photos did wait for the job
  (rivet_ocr_deferred_total > 0) and none is left waiting at the end.
- A photo chat is told at most once that its photos wait; the text chat
  never is.
- rivet's resident memory stays under a generous bound.
- No token in the logs, no sanitizer report.

The full-size version with timings is scripts/bench-burst.
"""

import base64
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq, text_of  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PLATES = os.path.normpath(os.path.join(HERE, "..", "fixtures", "nameplates", "set"))
# Plates Tesseract reads in one pass (~0.7 s each on this kind of machine).
FAST_PLATES = ["003-iec-motor-de", "005-nema-motor", "022-iec-motor", "029-pump"]

PHOTO_CHATS = 6
PER_CHAT = 5
PHOTOS = PHOTO_CHATS * PER_CHAT
TEXTS = 12
PHOTO_BASE = 9300  # photo chats 9301..; the text chat below
TEXTER = 9400
RSS_LIMIT_KB = 600 * 1024          # plain build
RSS_LIMIT_SANITIZER_KB = 3 * 1024 * 1024
NOTICE = "Rivet is reading other photos first"
S = {}


def distinct(jpeg, n):
    """The JPEG with a comment segment after its SOI marker: other bytes
    (another sha256, so rivet reads it again), the same picture."""
    check(jpeg[:2] == b"\xff\xd8", "not a JPEG")
    body = ("rivet burst %d" % n).encode()
    seg = b"\xff\xfe" + (len(body) + 2).to_bytes(2, "big") + body
    return jpeg[:2] + seg + jpeg[2:]


def rss_kb(pid):
    """(VmRSS, VmHWM) of pid in KiB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


def sanitized(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise H.Fail("no %s in /metrics" % name)


def is_photo_reply(call):
    return text_of(call).startswith("📷")


# ---------------------------------------------------------------------------

def setup(env):
    for k in list(os.environ):
        if k.startswith("LLM_"):
            del os.environ[k]  # no LLM: local reads only
    S["fake"] = env.start_fake()
    slug = env.factory("Burst Plant")
    S["rivet"] = env.rivet("A", RIVET_WORKERS=2, OCR_MAX_JOBS=1).start()
    S["rivet"].wait_log("ev=tg.poll_leader", 15)
    users = [(PHOTO_BASE + i, "P%d" % i) for i in range(1, PHOTO_CHATS + 1)]
    H.register(env, S["fake"], slug, users + [(TEXTER, "Tex")])
    images = []
    for name in FAST_PLATES:
        with open(os.path.join(PLATES, name + ".jpg"), "rb") as f:
            images.append(f.read())
    S["images"] = images


def t_burst(env):
    fake, rivet = S["fake"], S["rivet"]
    pid = rivet.proc.pid
    limit = RSS_LIMIT_SANITIZER_KB if sanitized(pid) else RSS_LIMIT_KB
    samples = {"rss": 0, "jobs": 0, "stop": False, "error": None}

    def sampler():
        # /metrics and /proc while the burst runs; the gauge is read, not
        # waited on.
        try:
            while not samples["stop"]:
                samples["rss"] = max(samples["rss"], rss_kb(pid)[0])
                st, _, body = rivet.http("GET", "/metrics")
                if st == 200:
                    samples["jobs"] = max(samples["jobs"],
                                          metric(body.decode(), "rivet_ocr_jobs"))
                H.nap(0.2)  # a sampling period, not synchronisation
        except Exception as e:  # reported below
            samples["error"] = repr(e)

    since = fake.last_seq()
    n = 0
    for k in range(PER_CHAT):
        for c in range(1, PHOTO_CHATS + 1):
            img = S["images"][n % len(S["images"])]
            fake.ctl("photo", chat_id=PHOTO_BASE + c, from_id=PHOTO_BASE + c,
                     file_bytes_b64=base64.b64encode(distinct(img, n)).decode(),
                     first_name="P%d" % c)
            n += 1
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    try:
        # The texts, one after the other, each waiting for its answer.
        text_seqs = []
        for i in range(TEXTS):
            cmd = "/wo list" if i % 2 == 0 else "/equip search pump"
            reply = fake.ask(TEXTER, cmd, timeout=60)
            check(not text_of(reply).startswith("📷") and NOTICE not in text_of(reply),
                  "the text chat got %r" % text_of(reply))
            text_seqs.append(reply["seq"])
        photo_replies_then = [c for c in fake.calls("sendMessage", since=since)
                              if c["seq"] <= text_seqs[-1] and is_photo_reply(c)]
        # Every photo answered.
        deadline = 60 + PHOTOS * (8 if sanitized(pid) else 3)
        photos = fake.wait_calls(lambda c: c["ok"] and is_photo_reply(c), PHOTOS, deadline,
                                 "a reply to each photo", since=since, method="sendMessage")
    finally:
        samples["stop"] = True
        th.join(5)
    check(samples["error"] is None, "sampling failed: %s" % samples["error"])
    last_photo = max(c["seq"] for c in photos)
    H.Tap.diag("%d of %d photos answered when the %d texts were; rss max %d KiB"
               % (len(photo_replies_then), PHOTOS, TEXTS, samples["rss"]))
    check(text_seqs[-1] < last_photo, "the last text reply came after the last photo reply")
    check(len(photo_replies_then) <= PHOTOS * 3 // 4,
          "%d of %d photos were answered before the %d texts were: text waited for photos"
          % (len(photo_replies_then), PHOTOS, TEXTS))
    check(samples["jobs"] <= 1, "rivet_ocr_jobs reached %s with OCR_MAX_JOBS=1" % samples["jobs"])
    check(samples["rss"] < limit, "rss %d KiB over %d KiB" % (samples["rss"], limit))
    S["since"] = since


def t_exactly_once(env):
    check("since" in S, "no burst ran")
    fake, rivet = S["fake"], S["rivet"]
    sent = [c for c in fake.calls("sendMessage", since=S["since"]) if c["ok"]]
    for c in range(1, PHOTO_CHATS + 1):
        chat = PHOTO_BASE + c
        mine = [x for x in sent if int(x["params"]["chat_id"]) == chat]
        got = [x for x in mine if is_photo_reply(x)]
        notices = [x for x in mine if NOTICE in text_of(x)]
        eq(len(got), PER_CHAT, "photo replies in chat %d" % chat)
        check(len(notices) <= 1, "chat %d was told %d times that its photos wait"
              % (chat, len(notices)))
        eq(len(mine) - len(got) - len(notices), 0, "other messages in chat %d" % chat)
    eq(len(rivet.lines("photo.read")), PHOTOS, "ev=photo.read lines")
    rows = env.sql("SELECT outcome, attempts, count(*) FROM inbox WHERE chat_id LIKE '93%' "
                   "GROUP BY 1, 2 ORDER BY 1, 2")
    eq(rows, [["ok", "0", str(PHOTOS + PHOTO_CHATS)]],
       "photo chats' inbox rows (outcome, attempts, count): the /start and the photos")
    eq(env.sql_value("SELECT count(*) FROM inbox WHERE handled_at IS NULL"), "0",
       "unhandled inbox rows")
    eq(env.sql_value("SELECT count(*) FROM nameplate_reads"), str(PHOTOS), "nameplate reads")


def t_metrics(env):
    st, _, body = S["rivet"].http("GET", "/metrics")
    eq(st, 200, "/metrics status")
    text = body.decode()
    eq(metric(text, "rivet_ocr_max_jobs"), 1, "rivet_ocr_max_jobs")
    eq(metric(text, "rivet_llm_max_in_flight"), 4, "rivet_llm_max_in_flight (default)")
    eq(metric(text, "rivet_ocr_jobs"), 0, "rivet_ocr_jobs after the burst")
    eq(metric(text, "rivet_ocr_waiting"), 0, "rivet_ocr_waiting after the burst")
    eq(metric(text, "rivet_llm_in_flight"), 0, "rivet_llm_in_flight (no LLM)")
    check(metric(text, "rivet_ocr_deferred_total") > 0,
          "no photo ever waited for the job: the burst did not reach the cap")


def t_logs(env):
    check(S["rivet"].alive(), "rivet exited %s" % S["rivet"].returncode())
    H.check_no_token(env)
    H.check_no_crash(env)


TESTS = [
    ("a photo burst: every text answered while the photos are read; one job; rss bounded",
     t_burst),
    ("every photo answered exactly once; at most one 'waiting' notice a chat", t_exactly_once),
    ("/metrics: the caps, nothing in progress or waiting after the burst", t_metrics),
    ("rivet stayed up; no token in the logs; no sanitizer report", t_logs),
]

if __name__ == "__main__":
    sys.exit(H.main("burst", TESTS, setup))
