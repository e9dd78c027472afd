#!/usr/bin/env python3
"""Nameplate photos through the fake Bot API, with the fake vision LLM.

- A technician's photo of a plate (tests/fixtures/nameplates/set/, a plate
  Tesseract reads confidently) is fetched with getFile and a file download,
  read once, answered with the manufacturer, model and serial and the
  Save / Edit / New work order / Discard buttons, and recorded as a pending
  read (channel, file_id, caption, sha256); nothing is registered until
  "✅ Save as new" is pressed, which creates the machine (caption as its
  location, the photo's file_id and sha256, the read as its nameplate) and
  answers the press. A second tap changes nothing.
- The same bytes again are not read again (one ev=photo.read) and the
  reply names the machine they were registered as.
- An image sent as a file (document, image/jpeg) is read like a photo; a
  PDF is refused without being downloaded.
- Empty, truncated, text-as-JPEG and GIF files get a clear reply and store
  nothing; files over 20 MB are refused without a download.
- A failed getFile or download (500) gets a "could not download" reply,
  is not retried, stores nothing, and the photo sent again is read.
- A stranger's photo is refused without a getFile.
- The LLM (tests/fake_llm/fake_llm.py, with an API key): never asked for a
  confident read; asked for a weak one (a blank image made here) with a
  JPEG of the photo, its fields shown as "(AI)" and its provider, model,
  tokens and cost recorded; when it answers 500, times out or sends broken
  JSON the local read is answered; after three failures in a row it is
  skipped (not asked) for a while, and rivet keeps answering.
- Neither the bot token nor the LLM key appears in a (debug-level) log
  line; no sanitizer report.
"""

import base64
import hashlib
import json
import os
import struct
import sys
import time
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import buttons_of, check, eq, text_of  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PLATES = os.path.normpath(os.path.join(HERE, "..", "fixtures", "nameplates", "set"))

# Plates that the current build reads confidently, with manufacturer, model
# and serial exactly as printed (`rivet ocr --json --no-llm`), and one it
# reads weakly and quickly. A change to the reader may move a plate from one
# group to the other: pick again with `rivet ocr --json --no-llm`.
PLATE_PHOTO = "015-hvac-fr"       # Lennox XC21-068-230-00, read ~0.91
PLATE_DOCUMENT = "025-nema-motor"  # Marathon 110T11F8449, ~0.92
PLATE_RESENT = "020-hvac"         # Trane 2TTB3346A1000AA, ~0.85
PLATE_WEAK = "024-nema-motor"     # Baldor-Reliance and the serial; the model not read

# Distinctive, so that a leak into a log is unmistakable.
LLM_KEY_SECRET = "rivetLLMkeyMUSTnotBEinLOGS_Zq81vX"
LLM_KEY = "test-key-" + LLM_KEY_SECRET
LLM_MODEL = "fake-vision"
LLM_TIMEOUT_S = 2
PRICE_IN, PRICE_OUT = 2.5, 10.0  # USD per million tokens

ANN, BOB, EVE = 9101, 9102, 9103   # Eve is not registered
CAPTION = "Line 2 pump room"
MB = 1024 * 1024
READ_TIMEOUT = 90  # OCR takes ~2 s a photo, far more under a sanitizer
S = {"blank": 0}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def plate(name):
    """(bytes, ground truth) of a committed plate."""
    with open(os.path.join(PLATES, name + ".jpg"), "rb") as f:
        data = f.read()
    with open(os.path.join(PLATES, name + ".json"), encoding="utf-8") as f:
        return data, json.load(f)


def bad(name):
    with open(os.path.join(PLATES, name), "rb") as f:
        return f.read()


def blank_png(width=480, height=360):
    """A plain grey PNG with no text, a new shade (new bytes) each call."""
    S["blank"] += 1
    shade = 250 - 7 * S["blank"]

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + bytes([shade]) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def b64(data):
    return base64.b64encode(data).decode()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def send(kind, chat, data, **kw):
    """Injects a photo (kind "photo") or a document from chat and waits for
    rivet's reply; returns (the control answer, the reply, seq before)."""
    fake = S["fake"]
    since = fake.last_seq()
    sent = fake.ctl(kind, chat_id=chat, from_id=chat, file_bytes_b64=b64(data),
                    first_name="U%d" % chat, **kw)
    return sent, reply_to(chat, since), since


def reply_to(chat, since):
    """rivet's first reply in chat after seq since; fails at once (not
    after READ_TIMEOUT) when rivet has exited meanwhile."""
    deadline = time.monotonic() + READ_TIMEOUT
    while True:
        try:
            return S["fake"].replies(chat, 1, since=since, timeout=1)[0]
        except H.Fail:
            check(S["rivet"].alive(), "rivet exited %s before replying in chat %s"
                  % (S["rivet"].returncode(), chat))
            if time.monotonic() >= deadline:
                raise H.Fail("no reply in chat %s within %d s" % (chat, READ_TIMEOUT))


def lines(text):
    return [l.strip() for l in text.splitlines()]


def reads():
    return S["rivet"].lines("photo.read")


def count(table, where="true"):
    return int(S["env"].sql_value("SELECT count(*) FROM %s WHERE %s" % (table, where)))


def stored():
    return count("nameplate_reads"), count("equipment")


def calls(method, since):
    return S["fake"].calls(method, since=since)


def check_fields(reply, gt, what, ai=False):
    """The reply shows manufacturer, model and serial as printed on the
    plate, each on its own line, unmarked (or marked "(AI)")."""
    got = lines(text_of(reply))
    for label, key in (("Manufacturer", "manufacturer"), ("Model", "model"),
                       ("Serial", "serial")):
        want = "%s: %s%s" % (label, gt[key], " (AI)" if ai else "")
        check(want in got, "%s: no line %r in the reply" % (what, want), text_of(reply))


# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------

def setup(env):
    # Only the LLM this file starts: no provider from the caller's environment.
    for k in list(os.environ):
        if k.startswith("LLM_"):
            del os.environ[k]
    check(os.path.isdir(PLATES), "no plates in %s" % PLATES)
    S["env"] = env
    S["fake"] = env.start_fake()
    S["llm"] = llm = H.FakeLLM(env, LLM_KEY)
    close = env.close

    def close_all(keep=False):
        close(keep)
        llm.stop()

    env.close = close_all
    env.tap.diag_hooks.append(lambda: "--- tail of the fake LLM's stderr ---\n" + llm.log_tail(10)
                              if llm.log_tail(10).strip() else "")
    S["slug"] = env.factory("Plant North")
    S["rivet"] = env.rivet("A", RIVET_LOG_LEVEL="debug",
                           LLM_URL=llm.url + "/v1", LLM_MODEL=LLM_MODEL, LLM_API_KEY=LLM_KEY,
                           LLM_TIMEOUT_S=LLM_TIMEOUT_S, LLM_PRICE_IN=PRICE_IN,
                           LLM_PRICE_OUT=PRICE_OUT).start()
    S["rivet"].wait_log("ev=tg.poll_leader", 15)
    H.register(env, S["fake"], S["slug"], [(ANN, "Ann"), (BOB, "Bob")])


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def t_photo_read(env):
    data, gt = plate(PLATE_PHOTO)
    truth = gt["fields"]
    n_reads = len(reads())
    sent, reply, since = send("photo", ANN, data, caption=CAPTION)
    check(len(sent["file_ids"]) > 1, "the fake sent one photo size only: %r" % sent)
    text = text_of(reply)
    check(text.startswith("📷 Nameplate"), "the reply to a plate photo: %r" % text)
    check("with AI help" not in text and "(AI)" not in text,
          "%s reads confidently, yet the reply shows AI help: %r" % (PLATE_PHOTO, text))
    check_fields(reply, truth, PLATE_PHOTO)
    check("Note: " + CAPTION in lines(text), "the caption is not in the reply: %r" % text)
    check("No machine like it in Plant North yet." in text, "no 'no machine like it': %r" % text)
    eq(len(reads()) - n_reads, 1, "ev=photo.read lines for one photo")
    check(" llm=no" in reads()[-1], "the read asked the LLM: %r" % reads()[-1])
    # the pending read
    rows = env.sql("SELECT id, status, channel, file_id, caption, sha256, llm_used, "
                   "fields->'manufacturer'->>'value', fields->'model'->>'value', "
                   "fields->'serial'->>'value', width, height, engine FROM nameplate_reads")
    eq(len(rows), 1, "rows in nameplate_reads")
    rid, status, channel, file_id, caption, digest, llm_used, mk, md, sn, w, h, engine = rows[0]
    eq((status, channel, caption, llm_used), ("pending", "telegram", CAPTION, "f"),
       "status, channel, caption, llm_used of the read")
    eq(file_id, sent["file_id"], "the read's file_id (the largest size's)")
    eq(digest, sha(data), "the read's sha256")
    eq((mk, md, sn), (truth["manufacturer"], truth["model"], truth["serial"]),
       "the fields stored with the read")
    eq([int(w), int(h)], gt["distortions"]["size"], "the photo's size stored with the read")
    check(engine.startswith("tesseract"), "engine %r" % engine)
    eq(count("equipment"), 0, "equipment rows before a decision")
    # fetched once: getFile for the largest size, then its file
    gf = calls("getFile", since)
    eq([(c["params"].get("file_id"), c["ok"]) for c in gf], [(sent["file_id"], True)],
       "getFile calls (file_id, ok)")
    dl = calls("file_download", since)
    eq([(c["params"].get("file_path"), c["ok"]) for c in dl],
       [(gf[0]["result"]["file_path"], True)], "file downloads (path, ok)")
    # the buttons
    btns = dict(buttons_of(reply))
    for label, cmd in (("✅ Save as new", "save"), ("✏️ Edit", "edit"),
                       ("🛠 New work order", "wo"), ("❌ Discard", "discard")):
        eq(btns.get(label), "/photo %s %s" % (cmd, rid), "the %r button's data" % label)
    S["photo"] = {"data": data, "truth": truth, "read": rid, "file_id": file_id,
                  "message_id": reply["result"]["message_id"]}


def t_save(env):
    check("photo" in S, "no read from the previous test")
    p, fake = S["photo"], S["fake"]
    truth = p["truth"]
    since = fake.last_seq()
    cid = fake.press(ANN, p["message_id"], "/photo save %s" % p["read"])
    reply = fake.replies(ANN, 1, since=since, contains="Saved as")[0]
    m = H.EQ_RE.search(text_of(reply))
    check(m, "no EQ number in %r" % text_of(reply))
    number = m.group(0)
    check("Location: " + CAPTION in lines(text_of(reply)), "no location in %r" % text_of(reply))
    answered = fake.wait_calls(lambda c: c["params"].get("callback_query_id") == cid, 1, 20,
                               "the press answered", since=since, method="answerCallbackQuery")
    check(answered[0]["ok"], "answerCallbackQuery failed: %s" % H.describe(answered[0]))
    rows = env.sql("SELECT id, number, manufacturer, model, serial, location, photo_file_id, "
                   "photo_sha256, nameplate->'manufacturer'->>'value', "
                   "nameplate->'model'->>'value', nameplate->'serial'->>'value' FROM equipment")
    eq(len(rows), 1, "equipment rows after Save")
    eid, num, mk, md, sn, loc, fid, digest, nmk, nmd, nsn = rows[0]
    eq(num, number, "the number in the reply")
    eq((mk, md, sn, loc), (truth["manufacturer"], truth["model"], truth["serial"], CAPTION),
       "manufacturer, model, serial, location of the machine")
    eq((fid, digest), (p["file_id"], sha(p["data"])), "photo_file_id, photo_sha256")
    eq((nmk, nmd, nsn), (truth["manufacturer"], truth["model"], truth["serial"]),
       "fields in equipment.nameplate")
    eq(env.sql("SELECT status, equipment_id FROM nameplate_reads WHERE id = %s" % p["read"]),
       [["saved", eid]], "the read after Save")
    # a second tap on the same button creates nothing
    since = fake.last_seq()
    fake.press(ANN, p["message_id"], "/photo save %s" % p["read"])
    again = fake.replies(ANN, 1, since=since)[0]
    check("already registered as %s" % number in text_of(again),
          "a second Save got %r" % text_of(again))
    eq(count("equipment"), 1, "equipment rows after a second Save")
    p["number"] = number


def t_same_photo(env):
    check("number" in S.get("photo", {}), "nothing saved by the previous test")
    p = S["photo"]
    n_reads = len(reads())
    _, reply, _ = send("photo", ANN, p["data"])
    text = text_of(reply)
    eq(len(reads()) - n_reads, 0, "ev=photo.read lines for bytes read before")
    eq(len(reads()), 1, "ev=photo.read lines in all for the plate")
    check("seen before" in text and "Registered as %s." % p["number"] in text,
          "the same photo again got %r" % text)
    btns = dict(buttons_of(reply))
    eq(btns.get("🏭 Open"), "/equip view %s" % p["number"], "the Open button")
    check("✅ Save as new" not in btns, "a Save button for a registered plate: %r" % btns)
    eq(stored(), (1, 1), "(reads, equipment) after the same photo again")


def t_documents(env):
    data, gt = plate(PLATE_DOCUMENT)
    before = stored()
    n_reads = len(reads())
    sent, reply, _ = send("document", BOB, data, file_name="plate.jpg", mime_type="image/jpeg")
    check(text_of(reply).startswith("📷 Nameplate"), "an image file got %r" % text_of(reply))
    check_fields(reply, gt["fields"], PLATE_DOCUMENT)
    eq(len(reads()) - n_reads, 1, "ev=photo.read lines for the image file")
    eq(env.sql("SELECT status, file_id, caption IS NULL, sha256 FROM nameplate_reads "
               "WHERE sha256 = '%s'" % sha(data)),
       [["pending", sent["file_id"], "t", sha(data)]], "the image file's read")
    check(("✅ Save as new", "/photo save %s" % env.sql_value(
        "SELECT id FROM nameplate_reads WHERE sha256 = '%s'" % sha(data))) in buttons_of(reply),
        "no Save button for the image file: %r" % buttons_of(reply))
    # a PDF is not fetched at all
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    _, reply, since = send("document", BOB, pdf, file_name="manual.pdf",
                           mime_type="application/pdf")
    check("Rivet reads photos of nameplates" in text_of(reply)
          and "image file" in text_of(reply), "a PDF got %r" % text_of(reply))
    eq(calls("getFile", since), [], "getFile calls for a PDF")
    eq(stored(), (before[0] + 1, before[1]), "(reads, equipment) after the image and the PDF")


def t_broken(env):
    before = stored()
    n_reads = len(reads())
    cases = [
        ("photo", bad("bad-empty.jpg"), {}, "empty"),
        ("photo", bad("bad-truncated.jpg"), {}, "damaged"),
        ("document", bad("bad-text.jpg"), {"file_name": "plate.jpg", "mime_type": "image/jpeg"},
         "not a photo Rivet can read"),
        ("document", bad("bad-image.gif"), {"file_name": "plate.gif", "mime_type": "image/gif"},
         "not a photo Rivet can read"),
    ]
    for kind, data, kw, want in cases:
        _, reply, _ = send(kind, ANN, data, **kw)
        check(want in text_of(reply), "%s of %d bytes (%r): expected %r in the reply, got %r"
              % (kind, len(data), kw.get("mime_type", ""), want, text_of(reply)))
    eq(stored(), before, "(reads, equipment) after broken images")
    eq(len(reads()), n_reads, "ev=photo.read lines after broken images")


def t_too_big(env):
    """Over the Bot API's 20 MB download limit: refused, never downloaded."""
    before = stored()
    small = blank_png(64, 48)
    problems = []
    for kind, kw in (("document", {"file_name": "big.png", "mime_type": "image/png"}),
                     ("photo", {})):
        _, reply, since = send(kind, ANN, small, declared_size=21 * MB, **kw)
        if "larger than 20 MB" not in text_of(reply):
            problems.append("a %s declared as 21 MB got %r" % (kind, text_of(reply)))
        if calls("file_download", since):
            problems.append("a %s declared as 21 MB was downloaded" % kind)
    eq(stored(), before, "(reads, equipment) after files over 20 MB")
    check(not problems, "; ".join(problems))


def t_download_faults(env):
    fake = S["fake"]
    data, gt = plate(PLATE_RESENT)
    before = stored()
    n_reads = len(reads())
    for method in ("file_download", "getFile"):
        fake.fault(method=method, kind="500", count=1)
        _, reply, since = send("photo", ANN, data)
        check("could not download" in text_of(reply),
              "a photo whose %s failed got %r" % (method, text_of(reply)))
        # not retried: one getFile, and one download (the one that failed)
        eq([c["http_status"] for c in calls("getFile", since)],
           [200 if method == "file_download" else 500], "getFile calls (status)")
        eq([c["http_status"] for c in calls("file_download", since)],
           [500] if method == "file_download" else [], "file downloads (status)")
        eq(stored(), before, "(reads, equipment) after a failed %s" % method)
        eq(len(reads()), n_reads, "ev=photo.read lines after a failed %s" % method)
    eq(fake.stats()["faults_pending"], [], "faults not used")
    # sent again, it is read
    _, reply, _ = send("photo", ANN, data)
    check_fields(reply, gt["fields"], PLATE_RESENT + " sent again")
    eq(len(reads()) - n_reads, 1, "ev=photo.read lines after sending it again")
    eq(count("nameplate_reads", "sha256 = '%s'" % sha(data)), 1, "reads of the photo")


def t_stranger(env):
    data, _ = plate(PLATE_WEAK)
    before = stored()
    _, reply, since = send("photo", EVE, data, caption="who reads this?")
    check(H.NOT_REGISTERED in text_of(reply), "a stranger's photo got %r" % text_of(reply))
    eq(calls("getFile", since), [], "getFile calls for a stranger's photo")
    eq(calls("file_download", since), [], "downloads for a stranger's photo")
    eq(stored(), before, "(reads, equipment) after a stranger's photo")


def t_llm_not_asked(env):
    r = S["llm"].requests()
    eq(r["count"], 0, "requests to the LLM after confident reads only")
    rs = reads()
    check(len(rs) >= 3, "only %d reads so far" % len(rs))
    check(all(" llm=no" in l for l in rs), "a read asked the LLM", *rs)


LLM_FIELDS = {"manufacturer": "WEG", "model": "W22 112M-4", "serial": "1029384756",
              "volts": "460", "hp": "7.5", "rpm": "1760"}


def t_llm_fallback(env):
    llm = S["llm"]
    llm.queue({"fields": LLM_FIELDS, "usage": {"prompt_tokens": 1234, "completion_tokens": 56}})
    img = blank_png()
    n_reads = len(reads())
    _, reply, _ = send("photo", ANN, img, caption="Compressor 3")
    text = text_of(reply)
    check("with AI help" in text, "the reply does not say AI helped: %r" % text)
    check_fields(reply, LLM_FIELDS, "the LLM's read", ai=True)
    check("Ratings: 460 V · 7.5 HP · 1760 rpm" in text, "the LLM's ratings: %r" % text)
    eq(len(reads()) - n_reads, 1, "ev=photo.read lines")
    check(" llm=used" in reads()[-1], "the read's log line: %r" % reads()[-1])
    check(("✅ Save as new", "/photo save %s" % env.sql_value(
        "SELECT id FROM nameplate_reads WHERE sha256 = '%s'" % sha(img))) in buttons_of(reply),
        "no Save button for the LLM's read: %r" % buttons_of(reply))
    req = llm.requests()
    eq(req["count"], 1, "requests to the LLM")
    r = req["requests"][0]
    eq((r["auth"], r["status"], r["answer"], r["model"], r["images"]),
       ("ok", 200, "fields", LLM_MODEL, 1), "the LLM request (auth, status, answer, model, images)")
    eq((r["image_mime"], r["image_kind"]), ("image/jpeg", "jpeg"),
       "the image sent to the LLM (a PNG photo goes as a JPEG)")
    check(r["image_bytes"] > 100, "an image of %d bytes" % r["image_bytes"])
    check(r["path"].endswith("/v1/chat/completions"), "path %r" % r["path"])
    row = env.sql("SELECT llm_used, llm_provider, llm_model, prompt_tokens, completion_tokens, "
                  "cost_usd, llm_ms IS NOT NULL, fields->'manufacturer'->>'source', "
                  "fields->'model'->>'value' FROM nameplate_reads WHERE sha256 = '%s'" % sha(img))
    eq(len(row), 1, "reads of the blank image")
    used, provider, model, pt, ct, cost, has_ms, source, md = row[0]
    eq((used, provider, model, pt, ct, has_ms), ("t", "default", LLM_MODEL, "1234", "56", "t"),
       "llm_used, provider, model, tokens, llm_ms recorded")
    want = (1234 * PRICE_IN + 56 * PRICE_OUT) / 1e6
    check(abs(float(cost) - want) < 1e-6, "cost_usd %s, expected %.6f" % (cost, want))
    eq((source, md), ("llm", LLM_FIELDS["model"]), "the model's source and value in fields")


def t_llm_failures(env):
    llm, fake = S["llm"], S["fake"]
    data, gt = plate(PLATE_WEAK)
    maker = gt["fields"]["manufacturer"]
    base = llm.requests()["count"]
    n_reads = len(reads())
    # 500: the local read (the maker only), nothing marked as AI
    llm.queue({"fault": "500"})
    _, reply, _ = send("photo", ANN, data)
    text = text_of(reply)
    check("Manufacturer: %s" % maker in lines(text) and "(AI)" not in text
          and "with AI help" not in text, "the local read after an LLM 500: %r" % text)
    check("Serial: %s" % gt["fields"]["serial"] in lines(text),
          "the serial of %s not in %r" % (PLATE_WEAK, text))
    check("Model: —" in lines(text), "a model shown for %s: %r" % (PLATE_WEAK, text))
    # a timeout and broken JSON: blank images, nothing read
    llm.queue({"fault": "timeout"}, {"fault": "broken_json"})
    shas = [sha(data)]
    for what in ("timeout", "broken JSON"):
        img = blank_png()
        shas.append(sha(img))
        _, reply, _ = send("photo", ANN, img)
        check("could not read a nameplate" in text_of(reply),
              "a blank photo after an LLM %s got %r" % (what, text_of(reply)))
    req = llm.requests()
    eq([(r["answer"], r["status"]) for r in req["requests"][base:]],
       [("500", 500), ("timeout", None), ("broken_json", 200)], "the LLM requests (fault, status)")
    rs = reads()[n_reads:]
    eq(len(rs), 3, "ev=photo.read lines")
    check(all(" llm=failed llm_err=" in l for l in rs), "the reads' log lines", *rs)
    # The calls are recorded (what they cost), but no answer was used.
    eq(env.sql("SELECT count(*), count(*) FILTER (WHERE llm_used) "
               "FROM nameplate_reads WHERE sha256 IN (%s)" % ",".join("'%s'" % x for x in shas)),
       [["3", "0"]], "(reads, reads using the LLM) of the three photos")
    # three failures in a row: the provider is skipped for a while
    _, reply, _ = send("photo", ANN, blank_png())
    check("could not read a nameplate" in text_of(reply),
          "a blank photo while the LLM is skipped got %r" % text_of(reply))
    eq(llm.requests()["count"], base + 3, "requests to the LLM while it is skipped")
    check(" llm=failed" in reads()[-1], "the skipped read's log line: %r" % reads()[-1])
    # and rivet keeps answering
    p = fake.ask(ANN, "/equip search probe-after-llm")
    check("probe-after-llm" in text_of(p), "the next message got %r" % text_of(p))


def t_logs(env):
    check(S["rivet"].alive(), "rivet died: exit %s" % S["rivet"].returncode())
    H.check_no_crash(env)
    H.check_no_token(env)
    leaks = [(os.path.basename(p), l[:300]) for p, t in env.logs() for l in t.splitlines()
             if LLM_KEY_SECRET in l]
    check(not leaks, "the LLM API key appears in %d log line(s)" % len(leaks),
          *["%s: %s" % l for l in leaks[:5]])
    check(any(" ev=photo.read " in l and "llm=used" in l
              for l in S["rivet"].text().splitlines()), "the logs checked hold no LLM read")
    eq(S["llm"].requests()["internal_errors"], 0, "the fake LLM's internal errors")
    eq(S["fake"].stats()["internal_errors"], 0, "the fake Telegram's internal errors")


TESTS = [
    ("a plate photo: read once, fields, buttons, a pending read, nothing registered",
     t_photo_read),
    ("Save as new: the machine with caption, photo and nameplate; press answered; once",
     t_save),
    ("the same photo again: not read again, 'registered as EQ-…'", t_same_photo),
    ("an image file is read like a photo; a PDF is refused unread", t_documents),
    ("empty, truncated, text, GIF: clear replies, nothing stored", t_broken),
    ("a photo or file over 20 MB: 'larger than 20 MB', no download, nothing stored",
     t_too_big),
    ("getFile / download 500: 'could not download', not retried; sent again it is read",
     t_download_faults),
    ("a stranger's photo: refused without getFile", t_stranger),
    ("confident reads never ask the LLM", t_llm_not_asked),
    ("a weak read: the LLM's fields marked (AI), provider, tokens, cost; a JPEG sent",
     t_llm_fallback),
    ("LLM 500, timeout, broken JSON: the local read; then skipped; rivet keeps answering",
     t_llm_failures),
    ("rivet stayed up; no token or LLM key in the logs; no sanitizer report", t_logs),
]

if __name__ == "__main__":
    sys.exit(H.main("photos", TESTS, setup))
