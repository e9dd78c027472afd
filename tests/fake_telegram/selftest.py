#!/usr/bin/env python3
"""Self-test of the fake Telegram Bot API server (fake_telegram.py).

Starts the fake on a free port of 127.0.0.1, drives every Bot API method,
control endpoint and fault through urllib (raw sockets where HTTP itself is
under test), and prints TAP: "1..N", then "ok K - name" or "not ok K - name"
with "#" diagnostics.  Exits 1 if any case failed.

Run: python3 tests/fake_telegram/selftest.py [-v] [name-substring ...]
"""

import base64
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True  # the in-process parser case imports fake_telegram

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_telegram.py")
TOKEN = "123456789:AAFakeTokenForRivetTests_0123456789"
PARSE = "Bad Request: can't parse entities: "
CONFLICT = ("Conflict: terminated by other getUpdates request; "
            "make sure that only one bot instance is running")
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message")
QUERY_INVALID = ("Bad Request: query is too old and response timeout expired or query ID "
                 "is invalid")


class Fake:
    """A running fake_telegram.py process and helpers to talk to it."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="fake-telegram-selftest-")
        self.port_file = os.path.join(self.dir, "port")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE, "--port", "0", "--port-file", self.port_file,
             "--token", TOKEN] + list(extra),
            stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("fake did not start: " + self.log())
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        self.base = "http://127.0.0.1:%d" % self.port

    def log(self):
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self, sig=signal.SIGTERM, wait=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    # -- HTTP ---------------------------------------------------------------

    def request(self, path, data=None, headers=None, method=None, timeout=30):
        """(status, body bytes, headers); status None if the connection was
        closed without an answer."""
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {},
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            return None, repr(e).encode(), {}

    def bot(self, method, params=None, how="json", token=TOKEN, timeout=30):
        """Call a Bot API method; returns (HTTP status, decoded JSON or None)."""
        path = "/bot%s/%s" % (token, method)
        data = None
        headers = {}
        if how == "json":
            data = json.dumps(params or {}).encode()
            headers["Content-Type"] = "application/json"
        elif how == "form":
            data = urllib.parse.urlencode(
                {k: (json.dumps(v) if isinstance(v, (dict, list)) else v)
                 for k, v in (params or {}).items()}).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif how == "query":
            path += "?" + urllib.parse.urlencode(params or {})
        status, body, _ = self.request(path, data, headers, timeout=timeout)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, None

    def ctl(self, name, args=None, method="POST", timeout=60):
        if method == "GET":
            q = "?" + urllib.parse.urlencode(args) if args else ""
            status, body, _ = self.request("/control/" + name + q, timeout=timeout)
        else:
            status, body, _ = self.request("/control/" + name, json.dumps(args or {}).encode(),
                                           {"Content-Type": "application/json"},
                                           timeout=timeout)
        obj = json.loads(body)
        if status != 200:
            raise AssertionError("control %s -> %s %s" % (name, status, obj))
        return obj

    # -- conveniences ------------------------------------------------------------

    def say(self, chat_id=42, text="hello", from_id=None, **kw):
        args = dict(chat_id=chat_id, from_id=from_id if from_id is not None else chat_id,
                    text=text)
        args.update(kw)
        return self.ctl("message", args)

    def updates(self, **params):
        status, obj = self.bot("getUpdates", params)
        eq(status, 200, "getUpdates status")
        return obj["result"]

    def drain(self):
        """Fetch and confirm everything pending; returns what was pending."""
        got = self.updates()
        if got:
            self.updates(offset=got[-1]["update_id"] + 1)
        return got

    def send(self, chat_id=42, text="hi", **kw):
        params = dict(chat_id=chat_id, text=text)
        params.update(kw)
        return self.bot("sendMessage", params)

    def stats(self):
        return self.ctl("stats", method="GET")


# -- assertions -------------------------------------------------------------------

def eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what or "value", got, want))


def ok(cond, what):
    if not cond:
        raise AssertionError(what)


def api_error(resp, code, description, what=""):
    status, obj = resp
    eq(status, code, (what + " HTTP status").strip())
    eq(obj, {"ok": False, "error_code": code, "description": description}, what or "error")


def api_ok(resp, what=""):
    status, obj = resp
    if status != 200 or not obj or obj.get("ok") is not True:
        raise AssertionError("%s: expected ok, got %s %r" % (what or "call", status, obj))
    return obj["result"]


def png(width, height):
    """A real (grey) PNG image of the given size."""
    raw = b"".join(b"\x00" + b"\x80" * (3 * width) for _ in range(height))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def in_thread(fn):
    """Run fn in a thread; returns a getter that joins and returns its result."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # reported by the getter
            box["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def get(timeout=30):
        t.join(timeout)
        if t.is_alive():
            raise AssertionError("background call did not finish")
        if "error" in box:
            raise box["error"]
        return box["value"]
    return get


def raw_http(port, request_bytes, read=True, timeout=5):
    """Send raw bytes; return whatever comes back before the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request_bytes)
        if not read:
            return b""
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(rest) >= int(line.split(b":")[1]):
                            return out
        return out
    finally:
        s.close()


class Receiver:
    """A tiny webhook endpoint on 127.0.0.1 for the webhook cases.

    Records every request (path, lower-case headers, raw body, parsed JSON)
    and answers from ``script`` (one step per request, then ``default``): a
    step is a dict with optional ``status``, ``body`` (bytes),
    ``content_type``, ``headers``, ``delay`` (seconds before answering).
    ``http11``: keep connections alive (HTTP/1.1) or close after each answer.
    """

    def __init__(self, port=0, http11=True, script=(), default=None):
        self.requests = []
        self.cond = threading.Condition()
        self.script = list(script)
        self.default = default or {"status": 200}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if http11 else "HTTP/1.0"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.cond:
                    rec = {"method": "POST", "path": self.path, "raw": body,
                           "headers": {k.lower(): v for k, v in self.headers.items()},
                           "peer_port": self.client_address[1], "time": time.time()}
                    try:
                        rec["json"] = json.loads(body)
                    except ValueError:
                        rec["json"] = None
                    receiver.requests.append(rec)
                    step = receiver.script.pop(0) if receiver.script else receiver.default
                    receiver.cond.notify_all()
                if step.get("delay"):
                    time.sleep(step["delay"])
                payload = step.get("body", b"")
                try:
                    self.send_response(step.get("status", 200))
                    for k, v in step.get("headers", {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", step.get("content_type", "text/plain"))
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    self.close_connection = True

            def log_message(self, fmt, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/webhook/telegram" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def wait(self, count, timeout=10):
        """The first ``count`` requests (AssertionError if they do not come)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("receiver got %d requests, want %d"
                                         % (len(self.requests), count))
                self.cond.wait(left)
            return list(self.requests)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def free_port():
    """A port of 127.0.0.1 that nobody listens on (right now)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def webhook_on(f, **settings):
    """Let the shared fake deliver to loopback http webhooks, quickly."""
    args = {"webhook_http": True, "webhook_retry_min": 0.2, "webhook_retry_max": 0.5}
    args.update(settings)
    return f.ctl("config", args)


def deliveries(f, since=0, **filters):
    return f.ctl("deliveries", dict(filters, since=since), method="GET")["deliveries"]


def wait_deliveries(f, count, since=0, timeout=10, **filters):
    r = f.ctl("wait_deliveries", dict(filters, since=since, count=count, timeout=timeout),
              method="GET", timeout=timeout + 10)
    if r["timed_out"]:
        raise AssertionError("%d deliveries, want %d: %r" % (len(r["deliveries"]), count,
                                                             r["deliveries"]))
    return r["deliveries"]


def forge_update(url, update, secret=None, timeout=10):
    """POST an update to a webhook the way the README shows (a forged
    request: any secret or none); returns (HTTP status, body)."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    req = urllib.request.Request(url, json.dumps(update).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# -- cases --------------------------------------------------------------------------

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


@case
def port_file_is_written_atomically(f):
    with open(f.port_file) as fh:
        content = fh.read()
    ok(content.strip().isdigit() and content.endswith("\n"), "port file holds a number")
    eq(sorted(os.listdir(f.dir)), ["port", "stderr"], "no temporary files left")


@case
def listens_on_loopback_only(f):
    eq(f.request("/control/health")[0], 200, "reachable on 127.0.0.1")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        ip = s.getsockname()[0]
    except OSError:
        ip = None
    finally:
        s.close()
    if not ip or ip.startswith("127."):
        return "SKIP no non-loopback address on this machine"
    c = socket.socket()
    c.settimeout(2)
    try:
        c.connect((ip, f.port))
        raise AssertionError("fake answered on %s" % ip)
    except (ConnectionRefusedError, socket.timeout, OSError):
        pass
    finally:
        c.close()


@case
def get_me(f):
    me = api_ok(f.bot("getMe"))
    eq(me["id"], 123456789, "bot id from the token")
    eq((me["is_bot"], me["username"]), (True, "rivet_test_bot"), "bot identity")
    ok(isinstance(me["first_name"], str) and me["first_name"], "first_name")


@case
def wrong_token_and_bad_paths(f):
    api_error(f.bot("getMe", token="123456789:wrong"), 401, "Unauthorized")
    api_error(f.bot("sendMessage", {"chat_id": 1, "text": "x"}, token="nope"), 401,
              "Unauthorized")
    status, body, _ = f.request("/bot%s/" % TOKEN)
    eq((status, json.loads(body)["description"]), (404, "Not Found"), "no method")
    status, body, _ = f.request("/elsewhere")
    eq(status, 404, "unknown path")


@case
def unknown_method(f):
    api_error(f.bot("sendTelepathy", {"chat_id": 1}), 404, "Not Found")


@case
def methods_are_case_insensitive_and_query_strings_work(f):
    api_ok(f.bot("GETME", how="query"))
    f.say(42, "hi")
    res = api_ok(f.bot("sendmessage", {"chat_id": "42", "text": "via query"}, how="query"))
    eq(res["text"], "via query", "text from the query string")
    status, body, _ = f.request("/bot%s/getMe?x=1" % TOKEN)
    eq(status, 200, "GET getMe")
    calls = f.ctl("sent", {"method": "sendMessage"}, method="GET")["calls"]
    eq(calls[-1]["method"], "sendMessage", "canonical method name in the log")


@case
def form_and_multipart_parameters(f):
    f.say(42, "hi")
    res = api_ok(f.bot("sendMessage", {"chat_id": 42, "text": "form ✓",
                                       "reply_markup": {"inline_keyboard": [[
                                           {"text": "A", "callback_data": "a"}]]}},
                       how="form"))
    eq(res["text"], "form ✓", "form text")
    eq(res["reply_markup"]["inline_keyboard"][0][0]["callback_data"], "a",
       "reply_markup as a JSON string")
    boundary = "XyZzY"
    body = ("--%s\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n42\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nmultipart ✓\r\n"
            "--%s--\r\n" % (boundary, boundary, boundary)).encode()
    status, raw, _ = f.request("/bot%s/sendMessage" % TOKEN, body,
                               {"Content-Type": "multipart/form-data; boundary=" + boundary})
    eq(status, 200, "multipart status")
    eq(json.loads(raw)["result"]["text"], "multipart ✓", "multipart text")


@case
def malformed_bodies(f):
    def post(data, ctype="application/json"):
        status, body, _ = f.request("/bot%s/sendMessage" % TOKEN, data, {"Content-Type": ctype})
        return status, json.loads(body)
    api_error(post(b"{"), 400, "Bad Request: can't parse JSON object", "truncated JSON")
    api_error(post(b"[1,2]"), 400, "Bad Request: can't parse JSON object", "JSON array")
    api_error(post(b'{"chat_id":1,"text":"\xff"}'), 400,
              "Bad Request: strings must be encoded in UTF-8", "invalid UTF-8")
    api_error(post(b'{"chat_id":1,"text":"\\ud800"}'), 400,
              "Bad Request: strings must be encoded in UTF-8", "lone surrogate")
    api_error(post(b"chat_id=1&text=%FF", "application/x-www-form-urlencoded"), 400,
              "Bad Request: strings must be encoded in UTF-8", "invalid UTF-8 in a form")


@case
def message_update_shape(f):
    r = f.say(42, "/start ABC123", first_name="Ann", username="ann_t", language_code="en")
    ok(r["update_id"] and r["message_id"], "control answer")
    ups = f.updates()
    eq(len(ups), 1, "one update")
    u = ups[0]
    eq(set(u), {"update_id", "message"}, "update keys")
    eq(u["update_id"], r["update_id"], "update_id")
    m = u["message"]
    eq(m["message_id"], r["message_id"], "message_id")
    eq(m["from"], {"id": 42, "is_bot": False, "first_name": "Ann", "username": "ann_t",
                   "language_code": "en"}, "from")
    eq(m["chat"], {"id": 42, "first_name": "Ann", "username": "ann_t", "type": "private"},
       "chat")
    ok(isinstance(m["date"], int) and abs(m["date"] - time.time()) < 5, "date")
    eq(m["text"], "/start ABC123", "text")
    eq(m["entities"], [{"offset": 0, "length": 6, "type": "bot_command"}], "entities")
    f.say(42, "see /help@rivet_test_bot and /x/y 😀 /stats")
    m = f.updates(offset=u["update_id"] + 1)[0]["message"]
    eq([(e["offset"], e["length"]) for e in m["entities"] if e["type"] == "bot_command"],
       [(4, 20), (37, 6)], "commands mid-text with UTF-16 offsets")
    f.say(42, "explicit", entities=[])
    m = f.updates(offset=u["update_id"] + 2)[0]["message"]
    ok("entities" not in m, "entities given as [] are omitted")


@case
def offset_confirms_updates(f):
    ids = [f.say(42, "m%d" % i)["update_id"] for i in range(3)]
    eq([u["update_id"] for u in f.updates()], ids, "all pending, in order")
    eq([u["update_id"] for u in f.updates()], ids, "redelivered until confirmed")
    eq([u["update_id"] for u in f.updates(offset=ids[1])], ids[1:], "offset forgets older")
    eq(f.updates(offset=ids[2] + 1), [], "all confirmed")
    eq(f.stats()["pending_updates"], 0, "nothing pending")
    eq(ids, list(range(ids[0], ids[0] + 3)), "update_ids increase by one")


@case
def negative_offset(f):
    ids = [f.say(42, "m%d" % i)["update_id"] for i in range(4)]
    eq([u["update_id"] for u in f.updates(offset=-1)], ids[-1:], "offset -1: the last")
    eq([u["update_id"] for u in f.updates()], ids[-1:], "earlier ones were forgotten")
    f.say(42, "more")
    eq(len(f.updates(offset=-5)), 2, "offset larger than the queue keeps all")


@case
def limit_is_clamped(f):
    for i in range(3):
        f.say(42, "m%d" % i)
    eq(len(f.updates(limit=2)), 2, "limit 2")
    eq(len(f.updates(limit=0)), 1, "limit 0 acts as 1")
    eq(len(f.updates(limit=1000)), 3, "limit over 100 acts as 100")


@case
def long_poll_wakes_on_update(f):
    t0 = time.monotonic()
    get = in_thread(lambda: f.updates(timeout=10))
    time.sleep(0.5)
    f.say(42, "wake up")
    got = get()
    took = time.monotonic() - t0
    eq([u["message"]["text"] for u in got], ["wake up"], "update delivered")
    ok(0.4 < took < 3, "answered soon after the update (%.2fs)" % took)


@case
def long_poll_times_out_empty(f):
    t0 = time.monotonic()
    eq(f.updates(timeout=1), [], "empty after timeout")
    took = time.monotonic() - t0
    ok(0.9 < took < 2.5, "waited about 1s (%.2fs)" % took)


@case
def newer_getupdates_terminates_older(f):
    old = in_thread(lambda: f.bot("getUpdates", {"timeout": 10}))
    time.sleep(0.5)
    t0 = time.monotonic()
    eq(api_ok(f.bot("getUpdates", {"timeout": 0})), [], "newer call")
    api_error(old(), 409, CONFLICT, "older call")
    ok(time.monotonic() - t0 < 2, "older call ended at once")
    st = f.stats()
    eq(st["max_concurrent_getupdates"], 2, "two pollers seen")
    eq(st["conflicts"], 1, "conflict counted")


@case
def abandoned_poll_is_not_a_concurrent_poller(f):
    req = ("POST /bot%s/getUpdates HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 13\r\n\r\n{\"timeout\":9}" % TOKEN).encode()
    raw_http(f.port, req, read=False)
    time.sleep(0.3)
    eq(api_ok(f.bot("getUpdates")), [], "new poll")
    st = f.stats()
    eq(st["max_concurrent_getupdates"], 1, "closed client not counted")
    ok(st["getupdates_abandoned"] >= 1, "abandoned poll noticed")


@case
def allowed_updates_filter_new_updates(f):
    f.say(42, "hi")
    f.drain()
    msg = api_ok(f.send(42, "pick", reply_markup={"inline_keyboard": [[
        {"text": "A", "callback_data": "a"}]]}))
    before = f.say(42, "before the filter")["update_id"]
    got = f.updates(offset=before, allowed_updates=json.dumps(["callback_query"]))
    eq([u["update_id"] for u in got], [before], "older updates still delivered")
    f.updates(offset=before + 1)
    r = f.say(42, "filtered out")
    eq((r["update_id"], r["filtered"]), (None, True), "message not queued")
    cb = f.ctl("callback", {"chat_id": 42, "from_id": 42,
                            "message_id": msg["message_id"], "data": "a"})
    got = f.updates()
    eq([list(u)[1] for u in got], ["callback_query"], "only the callback")
    eq(f.stats()["allowed_updates"], ["callback_query"], "setting kept")
    f.updates(offset=cb["update_id"] + 1, allowed_updates=[])
    eq(f.stats()["allowed_updates"], None, "[] restores the default")
    ok(f.say(42, "back")["update_id"], "messages queued again")
    f.drain()
    f.updates(allowed_updates=["message", "chat_member"])
    f.drain()
    eq(f.stats()["allowed_updates"], ["chat_member", "message"], "list in a JSON body")


@case
def edited_message_update(f):
    r = f.say(42, "tyop")
    f.drain()
    e = f.say(42, "typo", edited=True)
    eq(e["message_id"], r["message_id"], "same message edited")
    u = f.drain()[0]
    eq(list(u), ["update_id", "edited_message"], "kind")
    m = u["edited_message"]
    eq((m["message_id"], m["text"]), (r["message_id"], "typo"), "edited message")
    ok(isinstance(m["edit_date"], int) and m["edit_date"] >= m["date"], "edit_date")


@case
def group_supergroup_and_channel_chats(f):
    f.say(-4001, "/wo list", from_id=7, first_name="Bob", title="Plant 1")
    f.say(-1001234567890, "hi all", from_id=8, chat_type="supergroup", title="Plant 2",
          chat_username="plant_two")
    f.ctl("message", {"chat_id": -1009999999999, "chat_type": "channel", "text": "post",
                      "title": "News"})
    ups = f.drain()
    g = ups[0]["message"]
    eq(g["chat"], {"id": -4001, "title": "Plant 1", "type": "group"}, "group chat")
    eq(g["from"]["id"], 7, "sender in group")
    s = ups[1]["message"]["chat"]
    eq(s, {"id": -1001234567890, "title": "Plant 2", "username": "plant_two",
           "type": "supergroup"}, "supergroup chat")
    c = ups[2]
    eq(list(c), ["update_id", "channel_post"], "channel post kind")
    ok("from" not in c["channel_post"] and c["channel_post"]["sender_chat"]["id"] ==
       -1009999999999, "channel post has sender_chat")
    res = api_ok(f.send("@plant_two", "by username"))
    eq(res["chat"]["id"], -1001234567890, "@username chat_id")
    res = api_ok(f.send(-1009999999999, "to channel"))
    ok("from" not in res and res["sender_chat"]["type"] == "channel", "channel message")


@case
def send_message_result(f):
    u = f.say(42, "hi")
    f.say(43, "hi")
    a = api_ok(f.send(42, "one"))
    b = api_ok(f.send(42, "two"))
    c = api_ok(f.send(43, "three"))
    eq((a["message_id"], b["message_id"]), (u["message_id"] + 1, u["message_id"] + 2),
       "ids increase per chat")
    eq(c["message_id"], 2, "other chat has its own counter")
    eq(a["from"], {"id": 123456789, "is_bot": True, "first_name": "Rivet Test",
                   "username": "rivet_test_bot"}, "from is the bot")
    eq(a["chat"]["id"], 42, "chat")
    eq(a["text"], "one", "text")
    ok(isinstance(a["date"], int), "date")
    ok("entities" not in a and "reply_markup" not in a, "no extra fields")
    eq(set(a), {"message_id", "from", "chat", "date", "text"}, "fields")


@case
def chat_not_found(f):
    api_error(f.send(999, "x"), 400, "Bad Request: chat not found", "unknown chat")
    api_error(f.send("@nobody", "x"), 400, "Bad Request: chat not found", "unknown username")
    api_error(f.send("abc", "x"), 400, "Bad Request: chat not found", "garbage id")
    api_error(f.bot("sendMessage", {"text": "x"}), 400, "Bad Request: chat_id is empty")


@case
def empty_text(f):
    f.say(42, "hi")
    api_error(f.send(42, ""), 400, "Bad Request: message text is empty", "empty")
    api_error(f.bot("sendMessage", {"chat_id": 42}), 400, "Bad Request: message text is empty",
              "missing")
    api_error(f.send(42, " \n \n"), 400, "Bad Request: message text is empty", "blank")
    api_error(f.send(42, "<b> </b>", parse_mode="HTML"), 400,
              "Bad Request: message text is empty", "blank after parsing")


@case
def text_length_limit(f):
    f.say(42, "hi")
    eq(len(api_ok(f.send(42, "x" * 4096))["text"]), 4096, "4096 accepted")
    api_error(f.send(42, "x" * 4097), 400, "Bad Request: message is too long", "4097")
    eq(len(api_ok(f.send(42, "😀" * 4096))["text"]), 4096, "4096 astral characters")
    api_error(f.send(42, "é" * 4097), 400, "Bad Request: message is too long", "4097 é")
    eq(len(api_ok(f.send(42, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML"))["text"]), 4096,
       "limit counts text after parsing")
    eq(api_ok(f.send(42, "\n\n  padded  \n\n"))["text"], "padded", "trimmed like Telegram")


@case
def html_parse_mode(f):
    f.say(42, "hi")
    r = api_ok(f.send(42, "😀 <b>bold</b> &lt;x&gt; &amp; &quot;q&quot; &#65;&#x42; "
                      "<i>it <u>u</u></i>", parse_mode="HTML"))
    eq(r["text"], '😀 bold <x> & "q" AB it u', "decoded text")
    eq(r["entities"], [{"offset": 3, "length": 4, "type": "bold"},
                       {"offset": 21, "length": 4, "type": "italic"},
                       {"offset": 24, "length": 1, "type": "underline"}],
       "entities with UTF-16 offsets")
    r = api_ok(f.send(42, "<B>x</B> <strong>y</strong> <em>z</em> <ins>w</ins> <s>a</s> "
                      "<strike>b</strike> <del>c</del>", parse_mode="html"))
    eq([e["type"] for e in r["entities"]],
       ["bold", "bold", "italic", "underline", "strikethrough", "strikethrough",
        "strikethrough"], "tag aliases, any case")


@case
def html_parse_errors(f):
    f.say(42, "hi")
    table = [
        ("a <p>x</p>", 'Unsupported start tag "p" at byte offset 2'),
        ("<br/>", 'Unsupported start tag "br/" at byte offset 0'),
        ("🏟 🏟&lt;<abacaba", "Unclosed start tag at byte offset 13"),
        ("🏟 🏟&lt;<abac aba>", 'Unsupported start tag "abac" at byte offset 13'),
        ("🏟 🏟&lt;<i   =aba>", 'Empty attribute name in the tag "i" at byte offset 13'),
        ("🏟 🏟&lt;<i    aba>",
         'Expected equal sign in declaration of an attribute of the tag "i" at byte offset 13'),
        ("🏟 🏟&lt;<i    aba  =  ", 'Unclosed start tag "i" at byte offset 13'),
        ("🏟 🏟&lt;<i    aba  =  190azAz-.,", "Unexpected end of name token at byte offset 27"),
        ('🏟 🏟&lt;<i    aba  =  "&lt;&gt;&quot;>', "Unclosed start tag at byte offset 13"),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<tg-emoji emoji-id=\"abc\">x</tg-emoji>", "Invalid custom emoji identifier specified"),
        ("&#xD83D;", "Text contains invalid Unicode characters after decoding HTML entities, "
                     "check for unmatched surrogate code units"),
        ("a & b", 'Character "&" at byte offset 2 must be escaped as "&amp;"'),
        ("a &nbsp; b", 'Character "&" at byte offset 2 must be escaped as "&amp;"'),
        ("a &lt b", 'HTML entity at byte offset 2 must end with ";"'),
        ("a > b", 'Character ">" at byte offset 2 must be escaped as "&gt;"'),
    ]
    for text, err in table:
        api_error(f.send(42, text, parse_mode="HTML"), 400, PARSE + err, repr(text))
    api_error(f.send(42, "x", parse_mode="Textile"), 400, "Bad Request: unsupported parse_mode")
    eq(api_ok(f.send(42, "a < b", parse_mode=""))["text"], "a < b", "no parse mode")


@case
def html_parser_matches_tdlib_test_cases(f):
    """Cases from TDLib's test/message_entities.cpp, parsed in-process
    (lenient mode: TDLib itself tolerates bare "&" and "&lt" without ";")."""
    sys.path.insert(0, HERE)
    import fake_telegram as ft
    surrogate = ("Text contains invalid Unicode characters after decoding HTML entities, "
                 "check for unmatched surrogate code units")
    errors = [
        ("🏟 🏟&lt;<abac>", 'Unsupported start tag "abac" at byte offset 13'),
        ("🏟 🏟&lt;<i    aba  =  '&lt;&gt;&quot;>", "Unclosed start tag at byte offset 13"),
        ("🏟 🏟&lt;</", "Unexpected end tag at byte offset 13"),
        ("🏟 🏟&lt;<b></b></", "Unexpected end tag at byte offset 20"),
        ("🏟 🏟&lt;<i>a</i   ", "Unclosed end tag at byte offset 17"),
        ("🏟 🏟&lt;<i>a</em   >",
         'Unmatched end tag at byte offset 17, expected "</i>", found "</em>"'),
        ("&#57311;", surrogate),
        ("&#xDFDF", surrogate),
    ]
    for text, want in errors:
        try:
            ft.parse_html(text, strict=False)
            raise AssertionError("no error for %r" % text)
        except ft.HtmlError as e:
            eq(str(e), want, repr(text))
    I, B, C, P, T = "italic", "bold", "code", "pre", "text_link"
    good = [
        ("", "", []),
        ("&lt;&gt;&amp;&quot;&laquo;&raquo;&#12345678;", '<>&"&laquo;&raquo;&#12345678;', []),
        ("➡️ ➡️<i>➡️ ➡️</i><b>➡️ ➡️</b>", "➡️ ➡️➡️ ➡️➡️ ➡️", [(I, 5, 5), (B, 10, 5)]),
        ("🏟 🏟<i>🏟 &lt🏟</i>", "🏟 🏟🏟 <🏟", [(I, 5, 6)]),
        ("🏟 🏟<i>🏟 &gt;<b aba   =   caba>&lt🏟</b></i>", "🏟 🏟🏟 ><🏟",
         [(I, 5, 7), (B, 9, 3)]),
        ("🏟 🏟&lt;<i    aba  =  190azAz-.   >a</i>", "🏟 🏟<a", [(I, 6, 1)]),
        ("🏟 🏟&lt;<i    aba  =  '&lt;&gt;&quot;'>a</>", "🏟 🏟<a", [(I, 6, 1)]),
        ("🏟 🏟&lt;<i>a</    >", "🏟 🏟<a", [(I, 6, 1)]),
        ("🏟 🏟&lt;<b></b>", "🏟 🏟<", []),
        ("<a   href=  'telegram.org?&lt;'   > </a>", " ", [(T, 0, 1, "http://telegram.org/?<")]),
        ("<a>telegram.org </a>", "telegram.org ", []),
        ("<a>telegram.org</a>", "telegram.org", [(T, 0, 12, "http://telegram.org/")]),
        ("🏟 🏟&lt;<pre><code>🏟 🏟&lt;</code></>", "🏟 🏟<🏟 🏟<", [(P, 6, 6), (C, 6, 6)]),
        ("🏟 🏟&lt;<pre><code class=\"language-fift\">🏟 🏟&lt;</></>", "🏟 🏟<🏟 🏟<",
         [(P, 6, 6, "fift")]),
        ("🏟 🏟&lt;<code class=\"language-fift\"><pre>🏟 🏟&lt;</></>", "🏟 🏟<🏟 🏟<",
         [(P, 6, 6, "fift")]),
        ("🏟 🏟&lt;<pre><code class=\"language-fift\">🏟 🏟&lt;</> </>", "🏟 🏟<🏟 🏟< ",
         [(P, 6, 7), (C, 6, 6)]),
    ]
    for text, want, ents in good:
        got, entities = ft.parse_html(text, strict=False)
        tuples = sorted((e["type"], e["offset"], e["length"]) + tuple(
            e[k] for k in ("url", "language") if k in e) for e in entities)
        eq((got, tuples), (want, sorted(ents)), repr(text))


@case
def html_lenient_mode(f):
    f.say(42, "hi")
    f.ctl("config", {"html_strict": False})
    r = api_ok(f.send(42, "AT&T &nbsp; a &lt b > c", parse_mode="HTML"))
    eq(r["text"], "AT&T &nbsp; a < b > c", "tolerated like Telegram")
    f.ctl("config", {"html_strict": True})


@case
def html_links_code_and_spoilers(f):
    f.say(42, "hi", first_name="Ann")
    r = api_ok(f.send(42, '<a href="https://example.com/?a=1&amp;b=2">link</a> '
                      '<a href="tg://user?id=42">Ann</a> <code>c</code> '
                      '<pre><code class="language-c">int x;</code></pre> '
                      '<pre>p</pre> <tg-spoiler>s</tg-spoiler> '
                      '<span class="tg-spoiler">t</span> <blockquote>q</blockquote> '
                      '<blockquote expandable>e</blockquote>', parse_mode="HTML"))
    eq(r["text"], "link Ann c int x; p s t q e", "text")
    ents = {e["type"]: e for e in r["entities"]}
    eq(ents["text_link"]["url"], "https://example.com/?a=1&b=2", "link url")
    eq(ents["text_mention"]["user"]["id"], 42, "mention user")
    eq(ents["pre"].get("language") or [e for e in r["entities"] if e["type"] == "pre"][0].get(
        "language"), "c", "pre language")
    eq(sorted(e["type"] for e in r["entities"]),
       sorted(["text_link", "text_mention", "code", "pre", "pre", "spoiler", "spoiler",
               "blockquote", "expandable_blockquote"]), "entity types")


@case
def inline_keyboard_is_echoed(f):
    f.say(42, "hi")
    kb = {"inline_keyboard": [[{"text": "✅ Done", "callback_data": "wo:done:17"},
                               {"text": "Open", "url": "https://example.com/wo/17"}],
                              [{"text": "Cancel", "callback_data": "x"}]]}
    r = api_ok(f.send(42, "WO 17", reply_markup=kb))
    eq(r["reply_markup"], kb, "keyboard in the result")
    r = api_ok(f.send(42, "plain keyboard", reply_markup={"keyboard": [["a", "b"]],
                                                          "resize_keyboard": True}))
    ok("reply_markup" not in r, "reply keyboards are not echoed")
    r = api_ok(f.send(42, "removed", reply_markup={"remove_keyboard": True}))
    ok("reply_markup" not in r, "remove_keyboard accepted")


@case
def callback_data_limits(f):
    f.say(42, "hi")

    def kb(data):
        return {"inline_keyboard": [[{"text": "b", "callback_data": data}]]}
    api_error(f.send(42, "x", reply_markup=kb("x" * 65)), 400, "Bad Request: BUTTON_DATA_INVALID",
              "65 bytes")
    api_error(f.send(42, "x", reply_markup=kb("")), 400, "Bad Request: BUTTON_DATA_INVALID",
              "empty")
    api_error(f.send(42, "x", reply_markup=kb("é" * 33)), 400,
              "Bad Request: BUTTON_DATA_INVALID", "66 bytes in 33 characters")
    api_ok(f.send(42, "x", reply_markup=kb("é" * 32)), "64 bytes")
    api_ok(f.send(42, "x", reply_markup=kb("x" * 64)), "64 ASCII bytes")


@case
def reply_markup_errors(f):
    f.say(42, "hi")
    pfx = "Bad Request: can't parse inline keyboard button: "
    api_error(f.send(42, "x", reply_markup="{not json"), 400,
              "Bad Request: can't parse reply keyboard markup JSON object", "bad JSON string")
    api_error(f.send(42, "x", reply_markup="[1]"), 400,
              "Bad Request: object expected as reply markup", "array")
    api_error(f.send(42, "x", reply_markup={"inline_keyboard": [{"text": "a"}]}), 400,
              'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup must be an '
              'Array of Arrays', "not array of arrays")
    api_error(f.send(42, "x", reply_markup={"inline_keyboard": [["a"]]}), 400,
              pfx + "InlineKeyboardButton must be an Object", "string button")
    api_error(f.send(42, "x", reply_markup={"inline_keyboard": [[{"callback_data": "a"}]]}),
              400, pfx + "can't find field \"text\"", "no text")
    api_error(f.send(42, "x", reply_markup={"inline_keyboard": [[{"text": "a"}]]}), 400,
              pfx + "Text buttons are unallowed in the inline keyboard", "text only")
    api_error(f.send(42, "x", reply_markup={"inline_keyboard": [[{"text": "a", "url": "ftp"}]]}),
              400, "Bad Request: BUTTON_URL_INVALID", "bad url")


@case
def edit_message_text(f):
    f.say(42, "hi")
    kb = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    m = api_ok(f.send(42, "<b>v1</b>", parse_mode="HTML", reply_markup=kb))
    mid = m["message_id"]
    api_error(f.bot("editMessageText", {"chat_id": 42, "message_id": mid, "text": "<b>v1</b>",
                                        "parse_mode": "HTML", "reply_markup": kb}),
              400, NOT_MODIFIED, "identical")
    r = api_ok(f.bot("editMessageText", {"chat_id": 42, "message_id": mid, "text": "v1",
                                         "reply_markup": kb}), "entities differ")
    ok("entities" not in r, "entities gone")
    r = api_ok(f.bot("editMessageText", {"chat_id": 42, "message_id": mid, "text": "v1"}),
               "markup removed")
    ok("reply_markup" not in r and isinstance(r["edit_date"], int), "no markup, edit_date")
    api_error(f.bot("editMessageText", {"chat_id": 42, "message_id": mid, "text": "v1"}),
              400, NOT_MODIFIED, "now identical")
    r = api_ok(f.bot("editMessageText", {"chat_id": 42, "message_id": mid, "text": "v2",
                                         "reply_markup": json.dumps(kb)}), "v2")
    eq((r["message_id"], r["text"], r["reply_markup"]), (mid, "v2", kb), "edited result")
    api_error(f.bot("editMessageText", {"chat_id": 42, "message_id": 9999, "text": "x"}),
              400, "Bad Request: message to edit not found", "unknown id")
    api_error(f.bot("editMessageText", {"chat_id": 42, "text": "x"}), 400,
              "Bad Request: message identifier is not specified", "no message_id")
    api_error(f.bot("editMessageText", {"chat_id": 42, "message_id": mid, "text": ""}), 400,
              "Bad Request: message text is empty", "empty")
    api_error(f.bot("editMessageText", {"chat_id": 42, "message_id": mid, "text": "<i>",
                                        "parse_mode": "HTML"}),
              400, PARSE + 'Can\'t find end tag corresponding to start tag "i"', "bad HTML")
    user_mid = f.say(42, "mine")["message_id"]
    api_error(f.bot("editMessageText", {"chat_id": 42, "message_id": user_mid, "text": "x"}),
              400, "Bad Request: message can't be edited", "user's message")
    api_error(f.bot("editMessageText", {"chat_id": 777, "message_id": 1, "text": "x"}),
              400, "Bad Request: chat not found", "unknown chat")
    state = f.ctl("state", method="GET")
    msgs = {m["message_id"]: m for m in state["chats"]["42"]["messages"]}
    eq(msgs[mid]["text"], "v2", "stored text changed")


@case
def edit_message_reply_markup(f):
    f.say(42, "hi")
    kb = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    kb2 = {"inline_keyboard": [[{"text": "B", "callback_data": "b"}]]}
    mid = api_ok(f.send(42, "pick", reply_markup=kb))["message_id"]
    api_error(f.bot("editMessageReplyMarkup", {"chat_id": 42, "message_id": mid,
                                               "reply_markup": kb}), 400, NOT_MODIFIED, "same")
    r = api_ok(f.bot("editMessageReplyMarkup", {"chat_id": 42, "message_id": mid,
                                                "reply_markup": kb2}))
    eq((r["reply_markup"], r["text"]), (kb2, "pick"), "new keyboard, same text")
    r = api_ok(f.bot("editMessageReplyMarkup", {"chat_id": 42, "message_id": mid}))
    ok("reply_markup" not in r, "keyboard removed")
    api_error(f.bot("editMessageReplyMarkup", {"chat_id": 42, "message_id": mid}), 400,
              NOT_MODIFIED, "already removed")
    api_error(f.bot("editMessageReplyMarkup", {"chat_id": 42, "message_id": 5000,
                                               "reply_markup": kb}),
              400, "Bad Request: message to edit not found", "unknown")
    api_error(f.bot("editMessageReplyMarkup", {"chat_id": 42, "message_id": mid,
                                               "reply_markup": {"inline_keyboard": [[
                                                   {"text": "x", "callback_data": "y" * 70}]]}}),
              400, "Bad Request: BUTTON_DATA_INVALID", "validated")


@case
def callback_query_flow(f):
    f.say(42, "hi", first_name="Ann")
    f.drain()
    kb = {"inline_keyboard": [[{"text": "Yes", "callback_data": "confirm:1"}]]}
    m = api_ok(f.send(42, "Sure?", reply_markup=kb))
    r = f.ctl("callback", {"chat_id": 42, "from_id": 42, "message_id": m["message_id"],
                           "data": "confirm:1"})
    u = f.drain()[0]
    eq(u["update_id"], r["update_id"], "update id")
    q = u["callback_query"]
    eq(q["id"], r["callback_query_id"], "query id")
    ok(isinstance(q["id"], str) and q["id"].isdigit(), "id is a numeric string")
    eq(q["from"]["id"], 42, "from")
    eq(q["message"], m, "the bot's message")
    ok(isinstance(q["chat_instance"], str), "chat_instance")
    eq(q["data"], "confirm:1", "data")
    api_error(f.bot("answerCallbackQuery", {"callback_query_id": q["id"], "text": "x" * 201}),
              400, "Bad Request: MESSAGE_TOO_LONG", "answer too long")
    eq(api_ok(f.bot("answerCallbackQuery", {"callback_query_id": q["id"], "text": "Done"})),
       True, "answered")
    api_error(f.bot("answerCallbackQuery", {"callback_query_id": q["id"]}), 400, QUERY_INVALID,
              "answered twice")
    api_error(f.bot("answerCallbackQuery", {"callback_query_id": "12345"}), 400, QUERY_INVALID,
              "unknown id")
    st = f.ctl("state", method="GET")
    eq(st["callback_queries"][q["id"]]["answered"]["text"], "Done", "answer recorded")
    r = f.ctl("callback", {"chat_id": 42, "from_id": 42, "message_id": m["message_id"],
                           "data": "forged", "inaccessible": True})
    q = f.drain()[0]["callback_query"]
    eq(q["message"], {"chat": m["chat"], "message_id": m["message_id"], "date": 0},
       "inaccessible message")
    status, body, _ = f.request("/control/callback", json.dumps(
        {"chat_id": 42, "from_id": 42, "message_id": 999, "data": "x"}).encode(),
        {"Content-Type": "application/json"})
    eq(status, 404, "callback on an unknown message is refused")


@case
def set_my_commands(f):
    cmds = [{"command": "start", "description": "Start"},
            {"command": "wo_list", "description": "Work orders"}]
    eq(api_ok(f.bot("setMyCommands", {"commands": cmds})), True, "set")
    eq(api_ok(f.bot("getMyCommands")), cmds, "get")
    api_ok(f.bot("setMyCommands", {"commands": json.dumps(cmds[:1]), "language_code": "de"},
                 how="form"), "form, language")
    eq(api_ok(f.bot("getMyCommands", {"language_code": "de"})), cmds[:1], "per language")
    eq(api_ok(f.bot("getMyCommands")), cmds, "default unchanged")
    table = [
        ([{"command": "Start", "description": "x"}], "Bad Request: BOT_COMMAND_INVALID"),
        ([{"command": "a-b", "description": "x"}], "Bad Request: BOT_COMMAND_INVALID"),
        ([{"command": "x" * 33, "description": "x"}],
         "Bad Request: command length must not exceed 32"),
        ([{"command": "", "description": "x"}], "Bad Request: command must be non-empty"),
        ([{"command": "ok", "description": ""}],
         "Bad Request: command description must be non-empty"),
        ([{"command": "ok", "description": "d" * 257}],
         "Bad Request: command description length must not exceed 256"),
        ([{"command": "ok"}], "Bad Request: can't find field \"description\""),
        ({"command": "ok"}, "Bad Request: expected an Array of BotCommand"),
        ([{"command": "c%d" % i, "description": "d"} for i in range(101)],
         "Bad Request: BOT_COMMANDS_TOO_MUCH"),
    ]
    for commands, err in table:
        api_error(f.bot("setMyCommands", {"commands": commands}), 400, err, repr(commands)[:40])
    api_error(f.bot("setMyCommands", {"commands": "[{"}), 400,
              "Bad Request: can't parse commands JSON object", "bad JSON")
    api_ok(f.bot("setMyCommands", {"commands": [{"command": "x" * 32, "description":
                                                 "d" * 256}]}), "limits inclusive")
    eq(api_ok(f.bot("deleteMyCommands")), True, "delete")
    eq(api_ok(f.bot("getMyCommands")), [], "deleted")


@case
def webhooks(f):
    status, obj = f.bot("deleteWebhook")
    eq((status, obj), (200, {"ok": True, "result": True,
                             "description": "Webhook is already deleted"}), "no webhook")
    f.ctl("webhook", {"url": "https://old.example.com/hook"})
    api_error(f.bot("getUpdates"), 409,
              "Conflict: can't use getUpdates method while webhook is active; "
              "use deleteWebhook to delete the webhook first", "webhook blocks polling")
    eq(api_ok(f.bot("getWebhookInfo"))["url"], "https://old.example.com/hook", "info")
    f.say(42, "pending")
    status, obj = f.bot("deleteWebhook", {"drop_pending_updates": True})
    eq(obj.get("description"), "Webhook was deleted", "deleted")
    eq(f.updates(), [], "pending updates dropped")
    api_error(f.bot("setWebhook", {"url": "http://insecure"}), 400,
              "Bad Request: bad webhook: An HTTPS URL must be provided for webhook", "http")
    status, obj = f.bot("setWebhook", {"url": "https://x.example/hook"})
    eq(obj.get("description"), "Webhook was set", "set")
    api_ok(f.bot("deleteWebhook"))
    eq(api_ok(f.bot("getWebhookInfo")), {"url": "", "has_custom_certificate": False,
                                         "pending_update_count": 0}, "info after delete")


@case
def set_webhook_validation(f):
    bad = "Bad Request: bad webhook: "
    for url, desc in (
            ("http://127.0.0.1:8080/hook", bad + "An HTTPS URL must be provided for webhook"),
            ("http://localhost/hook", bad + "An HTTPS URL must be provided for webhook"),
            ("https://127.0.0.1/hook", bad + "IP address 127.0.0.1 is reserved"),
            ("https://localhost:8443/hook", bad + "IP address 127.0.0.1 is reserved"),
            ("https://10.1.2.3/hook", bad + "IP address 10.1.2.3 is reserved"),
            ("https://[::1]/hook", bad + "IPv6-only addresses are not allowed"),
            ("https://bot.example.com:8080/hook",
             bad + "Webhook can be set up only on ports 80, 88, 443 or 8443"),
            ("ftp://bot.example.com/hook", "Bad Request: invalid webhook URL specified"),
            ("https://", "Bad Request: invalid webhook URL specified"),
            ("https://bot.example.com:99999/", "Bad Request: invalid webhook URL specified"),
            ("https://bot.example.com/a b", "Bad Request: invalid webhook URL specified")):
        api_error(f.bot("setWebhook", {"url": url}), 400, desc, url)
    for port in (443, 80, 88, 8443):
        api_ok(f.bot("setWebhook", {"url": "https://bot.example.com:%d/h" % port}), str(port))
    eq(f.bot("setWebhook", {"url": "bot.example.com/h"})[1]["description"], "Webhook was set",
       "no scheme means https")
    # secret_token: 1-256 characters of A-Z a-z 0-9 _ -
    for secret, desc in (("x" * 257, "Bad Request: secret token is too long"),
                         ("a b", "Bad Request: secret token contains unallowed characters"),
                         ("123:ABC", "Bad Request: secret token contains unallowed characters"),
                         ("abc=", "Bad Request: secret token contains unallowed characters"),
                         ("päss", "Bad Request: secret token contains unallowed characters")):
        api_error(f.bot("setWebhook", {"url": "https://bot.example.com/h", "secret_token": secret}),
                  400, desc, "secret %r" % secret[:10])
    eq(api_ok(f.bot("getWebhookInfo"))["url"], "", "a refused setWebhook leaves no webhook")
    good = "Az09_-" * 42 + "Az09"
    eq(len(good), 256, "secret length")
    api_ok(f.bot("setWebhook", {"url": "https://bot.example.com/h", "secret_token": good}), "256")
    eq(f.bot("setWebhook", {"url": "https://bot.example.com/h", "secret_token": good}
             )[1]["description"], "Webhook is already set", "same again")
    eq(f.bot("setWebhook", {"url": "https://bot.example.com/h", "secret_token": "other"}
             )[1]["description"], "Webhook was set", "new secret")
    # max_connections: 1-100, default 40, clamped like telegram-bot-api's get_integer_arg
    for given, want in ((None, 40), (0, 1), (7, 7), (500, 100), ("12", 12)):
        params = {"url": "https://m.example.com/%s" % given}
        if given is not None:
            params["max_connections"] = given
        api_ok(f.bot("setWebhook", params, how="form"), "max_connections %r" % given)
        eq(api_ok(f.bot("getWebhookInfo"))["max_connections"], want, "max_connections")
    # allowed_updates: applied like getUpdates', reported in Telegram's order
    api_ok(f.bot("setWebhook", {"url": "https://a.example.com/h",
                                "allowed_updates": ["callback_query", "Message"]}))
    info = api_ok(f.bot("getWebhookInfo"))
    eq(info, {"url": "https://a.example.com/h", "has_custom_certificate": False,
              "pending_update_count": 0, "max_connections": 40,
              "allowed_updates": ["message", "callback_query"]}, "info")
    api_ok(f.bot("setWebhook", {"url": "https://a.example.com/h",
                                "allowed_updates": ["callback_query"]}))
    eq(f.say(42, "filtered")["filtered"], True, "allowed_updates of setWebhook applied")
    api_ok(f.bot("setWebhook", {"url": "https://a.example.com/h", "allowed_updates": []}))
    ok("allowed_updates" not in api_ok(f.bot("getWebhookInfo")), "[] restores the default")
    # --webhook-http on: loopback http with any port; other hosts keep the rules
    webhook_on(f)
    for url in ("http://127.0.0.1:1/hook", "http://localhost:65535/x?y=1", "http://[::1]:9/",
                "https://127.0.0.1:4443/hook"):
        api_ok(f.bot("setWebhook", {"url": url}), url)
        eq(api_ok(f.bot("getWebhookInfo"))["url"], url, "set " + url)
    api_error(f.bot("setWebhook", {"url": "http://bot.example.com:8080/h"}), 400,
              bad + "An HTTPS URL must be provided for webhook", "only loopback over http")
    api_error(f.bot("setWebhook", {"url": "http://127.0.0.2/h"}), 400,
              bad + "An HTTPS URL must be provided for webhook", "127.0.0.2 is no exception")
    # with rate limits on, one setWebhook with a URL per second (deletes are free)
    f.ctl("config", {"rate_limits": True})
    time.sleep(1.05)
    api_ok(f.bot("setWebhook", {"url": "https://r.example.com/1"}), "first")
    status, obj = f.bot("setWebhook", {"url": "https://r.example.com/2"})
    eq((status, obj), (429, {"ok": False, "error_code": 429,
                             "description": "Too Many Requests: retry after 1",
                             "parameters": {"retry_after": 1}}), "second within 1 s")
    api_ok(f.bot("deleteWebhook"), "delete not limited")
    time.sleep(1.05)
    api_ok(f.bot("setWebhook", {"url": "https://r.example.com/2"}), "after a second")
    eq(f.stats()["early_retries"], 0, "waited")
    f.ctl("config", {"rate_limits": False})
    # junk never breaks the fake
    for params in ({"url": {"a": 1}, "max_connections": "x", "secret_token": [1],
                    "allowed_updates": 5, "drop_pending_updates": {}},
                   {"url": ["https://x.example/"], "certificate": "attach://nope"},
                   {"url": "https://x.example/", "max_connections": [], "ip_address": 5}):
        for method in ("setWebhook", "deleteWebhook", "getWebhookInfo"):
            status, _ = f.bot(method, params)
            ok(status in (200, 400), "%s answered %s" % (method, status))
    eq(f.stats()["internal_errors"], 0, "no internal errors")


@case
def set_webhook_ends_a_waiting_get_updates(f):
    getter = in_thread(lambda: f.bot("getUpdates", {"timeout": 20}))
    time.sleep(0.3)
    t0 = time.monotonic()
    api_ok(f.bot("setWebhook", {"url": "https://bot.example.com/h"}))
    api_error(getter(), 409, "Conflict: terminated by setWebhook request", "poll ended")
    ok(time.monotonic() - t0 < 2, "at once")
    api_error(f.bot("getUpdates"), 409,
              "Conflict: can't use getUpdates method while webhook is active; "
              "use deleteWebhook to delete the webhook first", "409 while set")


@case
def webhook_delivery_secret_header_and_order(f):
    webhook_on(f)
    rx = Receiver()
    try:
        first = f.say(42, "one")
        status, obj = f.bot("setWebhook", {"url": rx.url + "?k=v", "secret_token": "s3cr3t_-X",
                                           "allowed_updates": ["message", "callback_query"]})
        eq(obj.get("description"), "Webhook was set", "set")
        bot_msg = api_ok(f.send(42, "pick", reply_markup={"inline_keyboard": [[
            {"text": "A", "callback_data": "a"}]]}))
        ids = [first["update_id"], f.say(42, "two")["update_id"],
               f.ctl("callback", {"chat_id": 42, "from_id": 42, "message_id":
                                  bot_msg["message_id"], "data": "a"})["update_id"],
               f.say(-1001234567890, "/start@rivet_test_bot", from_id=7)["update_id"]]
        got = rx.wait(4)
        time.sleep(0.2)
        eq(len(rx.requests), 4, "one POST per update")
        eq([r["json"]["update_id"] for r in got], ids, "update_id order")
        eq([list(r["json"])[1] for r in got],
           ["message", "message", "callback_query", "message"], "kinds")
        for r in got:
            eq(r["path"], "/webhook/telegram?k=v", "path and query")
            eq(r["headers"].get("x-telegram-bot-api-secret-token"), "s3cr3t_-X", "secret header")
            eq(r["headers"].get("content-type"), "application/json", "content type")
            eq(r["headers"].get("host"), "127.0.0.1", "Host without port, as Telegram sends it")
            ok(r["raw"].startswith(b'{"update_id":%d,\n' % r["json"]["update_id"]),
               "update_id first: %r" % r["raw"][:40])
        eq(got[1]["json"]["message"]["text"], "two", "the update itself")
        api_error(f.bot("getUpdates"), 409,
                  "Conflict: can't use getUpdates method while webhook is active; "
                  "use deleteWebhook to delete the webhook first", "no polling")
        wait_deliveries(f, 4)
        info = api_ok(f.bot("getWebhookInfo"))
        eq(info, {"url": rx.url + "?k=v", "has_custom_certificate": False,
                  "pending_update_count": 0, "max_connections": 40,
                  "allowed_updates": ["message", "callback_query"]}, "info, no error")
        ds = wait_deliveries(f, 4)  # the log entry is written just after the answer
        eq([(d["update_id"], d["ok"], d["status"], d["attempt"], d["secret_token"])
            for d in ds], [(u, True, 200, 1, "s3cr3t_-X") for u in ids], "delivery log")
        eq([d["connection"] for d in ds], ["new", "reused", "reused", "reused"], "keep-alive")
        ok(all(d["error"] is None and d["time"] >= d["started"] for d in ds), "times")
        eq(deliveries(f, since=ds[1]["seq"])[0]["update_id"], ids[2], "since")
        eq(len(deliveries(f, update_id=ids[1])), 1, "by update_id")
        st = f.stats()
        eq((st["webhook_attempts"], st["webhook_failures"], st["pending_updates"]), (4, 0, 0),
           "stats")
        # without a secret no header is sent
        api_ok(f.bot("setWebhook", {"url": rx.url}))
        uid = f.say(42, "three")["update_id"]
        r = rx.wait(5)[4]
        eq(r["json"]["update_id"], uid, "delivered")
        ok("x-telegram-bot-api-secret-token" not in r["headers"], "no secret header")
        eq(wait_deliveries(f, 5)[-1]["secret_token"], None, "logged without secret")
    finally:
        rx.stop()


@case
def webhook_retries_after_500_with_backoff(f):
    webhook_on(f)
    rx = Receiver(http11=False, script=[{"status": 500, "body": b"boom"}, {"status": 500},
                                        {"status": 503, "headers": {"Retry-After": "1"}}])
    try:
        api_ok(f.bot("setWebhook", {"url": rx.url, "secret_token": "abc"}))
        u1 = f.say(42, "first")["update_id"]
        time.sleep(0.05)
        u2 = f.say(42, "second")["update_id"]
        got = rx.wait(5, timeout=15)
        eq([r["json"]["update_id"] for r in got], [u1, u1, u1, u1, u2],
           "retried, the next update waits for it")
        ds = wait_deliveries(f, 5)
        eq([(d["status"], d["ok"]) for d in ds],
           [(500, False), (500, False), (503, False), (200, True), (200, True)], "statuses")
        eq(ds[0]["error"], "Wrong response from the webhook: 500 Internal Server Error", "error")
        eq(ds[2]["error"], "Wrong response from the webhook: 503 Service Unavailable", "503")
        eq([d["retry_in"] for d in ds[:3]], [0.2, 0.4, 1.0],
           "doubling from webhook_retry_min; Retry-After honoured")
        eq([d["attempt"] for d in ds], [1, 2, 3, 4, 1], "attempt numbers")
        gap = got[3]["time"] - got[2]["time"]
        ok(0.9 <= gap < 2.5, "waited Retry-After: %.2f s" % gap)
        ok(got[1]["time"] - got[0]["time"] >= 0.15, "waited before the first retry")
        eq(ds[0]["response_body"], "boom", "answer kept for the test")
        ok(all(d["connection"] == "new" for d in ds), "HTTP/1.0 receiver: a connection each")
        info = api_ok(f.bot("getWebhookInfo"))
        eq(info["pending_update_count"], 0, "all confirmed")
        eq(info["last_error_message"], "Wrong response from the webhook: 503 Service Unavailable",
           "last error stays after success, as on Telegram")
        ok(abs(info["last_error_date"] - time.time()) < 10, "last_error_date")
        eq(f.stats()["webhook_failures"], 3, "failures counted")
    finally:
        rx.stop()


@case
def webhook_retries_while_nobody_listens(f):
    webhook_on(f)
    port = free_port()
    url = "http://localhost:%d/webhook/telegram" % port
    eq(f.bot("setWebhook", {"url": url})[1]["description"], "Webhook was set",
       "set although nobody listens (Telegram checks the address, not the server)")
    ids = [f.say(42, "m%d" % i)["update_id"] for i in range(3)]
    ds = wait_deliveries(f, 3)
    eq({d["error"] for d in ds}, {"Connection refused"}, "refused")
    eq({d["update_id"] for d in ds}, {ids[0]}, "only the oldest is tried")
    info = api_ok(f.bot("getWebhookInfo"))
    eq((info["pending_update_count"], info["last_error_message"]), (3, "Connection refused"),
       "pending and last error")
    rx = Receiver(port=port)
    try:
        got = rx.wait(3, timeout=10)
        eq([r["json"]["update_id"] for r in got], ids, "all delivered in order once it listens")
        eq(got[0]["headers"].get("host"), "localhost", "Host")
        wait_deliveries(f, 3, ok=True)
        eq(api_ok(f.bot("getWebhookInfo"))["pending_update_count"], 0, "none pending")
    finally:
        rx.stop()


@case
def webhook_timeout_and_dropped_connections(f):
    webhook_on(f, webhook_timeout=0.5)
    rx = Receiver(script=[{"delay": 1.5}])
    try:
        api_ok(f.bot("setWebhook", {"url": rx.url}))
        uid = f.say(42, "slow")["update_id"]
        ds = wait_deliveries(f, 1, ok=True, timeout=15)
        allds = deliveries(f)
        eq(allds[0]["error"], "Read timeout expired", "timed out")
        ok(0.4 <= allds[0]["duration"] < 1.4, "after webhook_timeout: %r" % allds[0]["duration"])
        eq(ds[0]["update_id"], uid, "then delivered")
        eq([r["json"]["update_id"] for r in rx.requests], [uid, uid],
           "the update came twice, as from Telegram after a timeout")
    finally:
        rx.stop()
    # a webhook that closes the connection without answering
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(5)
    port = s.getsockname()[1]
    try:
        since = f.ctl("deliveries", method="GET")["last_seq"]
        api_ok(f.bot("setWebhook", {"url": "http://127.0.0.1:%d/" % port}))
        f.say(42, "dropped")

        def drop_one():
            c, _ = s.accept()
            c.recv(65536)
            c.close()
        t = threading.Thread(target=drop_one, daemon=True)
        t.start()
        d = wait_deliveries(f, 1, since=since)[0]
        eq(d["error"], "Webhook connection closed", "closed without answer")
        ok(d["retry_in"] is not None, "will retry")
    finally:
        s.close()
    api_ok(f.bot("deleteWebhook"))


@case
def delete_webhook_stops_delivery(f):
    webhook_on(f)
    port = free_port()
    api_ok(f.bot("setWebhook", {"url": "http://127.0.0.1:%d/h" % port}))
    ids = [f.say(42, "a")["update_id"], f.say(42, "b")["update_id"]]
    wait_deliveries(f, 1)
    eq(f.bot("deleteWebhook")[1]["description"], "Webhook was deleted", "deleted")
    last = f.ctl("deliveries", method="GET")["last_seq"]
    eq(api_ok(f.bot("getWebhookInfo")), {"url": "", "has_custom_certificate": False,
                                         "pending_update_count": 2}, "error forgotten")
    time.sleep(0.2)  # an attempt already under way when deleteWebhook came may still end
    rx = Receiver(port=port)
    try:
        time.sleep(1.0)
        eq(rx.requests, [], "nothing posted after deleteWebhook")
        late = deliveries(f, since=last)
        ok(len(late) <= 1 and not any(d["webhook_current"] for d in late),
           "no attempts for a deleted webhook: %r" % late)
        eq([u["update_id"] for u in f.updates()], ids, "pending updates back to getUpdates")
        # set again: delivery resumes with what is still unconfirmed
        api_ok(f.bot("setWebhook", {"url": rx.url}))
        eq([r["json"]["update_id"] for r in rx.wait(2)], ids, "delivered after setWebhook")
        # drop_pending_updates on delete and on set
        api_ok(f.bot("deleteWebhook"))
        f.say(42, "c")
        api_ok(f.bot("deleteWebhook", {"drop_pending_updates": True}))
        eq(f.updates(), [], "dropped by deleteWebhook")
        f.say(42, "d")
        api_ok(f.bot("setWebhook", {"url": rx.url, "drop_pending_updates": True}))
        uid = f.say(42, "e")["update_id"]
        rx.wait(3)
        time.sleep(0.3)
        eq([r["json"]["update_id"] for r in rx.requests[2:]], [uid], "d dropped by setWebhook")
        # the pretend webhook of /control/webhook delivers nothing
        api_ok(f.bot("deleteWebhook"))
        f.ctl("webhook", {"url": rx.url})
        f.say(42, "f")
        time.sleep(0.5)
        eq(len(rx.requests), 3, "pretend webhook does not deliver")
        eq(api_ok(f.bot("getWebhookInfo"))["pending_update_count"], 1, "pending")
    finally:
        rx.stop()


@case
def webhook_reply_runs_a_method(f):
    webhook_on(f)
    f.say(42, "hi")
    reply = json.dumps({"method": "sendMessage", "chat_id": 42, "text": "pong"}).encode()
    rx = Receiver(script=[{"body": reply, "content_type": "application/json"},
                          {"body": b'{"method":"getMe"}', "content_type": "application/json"},
                          {"body": b"method=sendMessage&chat_id=42&text=form",
                           "content_type": "application/x-www-form-urlencoded"},
                          {"body": b'{"method":"deleteWebhook"}',
                           "content_type": "application/json"}])
    try:
        api_ok(f.bot("setWebhook", {"url": rx.url}))
        f.say(42, "ping")
        f.say(42, "who")
        f.say(42, "form")
        f.say(42, "delete")
        ds = wait_deliveries(f, 5)
        eq([d["webhook_reply"] for d in ds],
           ["sendMessage", None, "sendMessage", None, None], "replies carried out")
        calls = f.ctl("sent", {"method": "sendMessage"}, method="GET")["calls"]
        eq([(c["params"].get("text"), c.get("webhook_reply")) for c in calls],
           [("pong", True), ("form", True)], "logged as webhook replies")
        eq(api_ok(f.bot("getWebhookInfo"))["url"], rx.url, "deleteWebhook refused in a reply")
        eq(f.stats()["webhook_replies"], 2, "counted")
    finally:
        rx.stop()


@case
def forged_webhook_request_helper(f):
    rx = Receiver()
    try:
        status, _ = forge_update(rx.url, {"update_id": 1, "message": {"text": "x"}},
                                 secret="wrong")
        eq(status, 200, "posted")
        r = rx.wait(1)[0]
        eq((r["headers"].get("x-telegram-bot-api-secret-token"), r["json"]["update_id"]),
           ("wrong", 1), "forged request as the README shows it")
    finally:
        rx.stop()
    eq(deliveries(f), [], "the fake itself posted nothing")


@case
def webhook_cli_options_and_reset(f):
    g = Fake("--webhook-http", "on", "--webhook-timeout", "0.5", "--webhook-retry-min", "0.1",
             "--webhook-retry-max", "0.3")
    rx = Receiver(script=[{"status": 500}] * 4)
    try:
        cfg = g.ctl("config")
        eq((cfg["webhook_http"], cfg["webhook_timeout"], cfg["webhook_retry_min"],
            cfg["webhook_retry_max"]), (True, 0.5, 0.1, 0.3), "flags")
        api_ok(g.bot("setWebhook", {"url": rx.url}))
        g.say(42, "x")
        ds = wait_deliveries(g, 5)
        eq([d["retry_in"] for d in ds], [0.1, 0.2, 0.3, 0.3, None], "capped at the max")
        g.ctl("reset")
        eq(g.ctl("deliveries", method="GET")["deliveries"], [], "reset forgets deliveries")
        eq(api_ok(g.bot("getWebhookInfo"))["url"], "", "and the webhook")
        ok(g.ctl("config")["webhook_http"], "settings survive a reset")
        status, body, _ = g.request("/control/config", b'{"webhook_timeout": 0}',
                                    {"Content-Type": "application/json"})
        eq(status, 400, "timeout must be positive")
        ok("Traceback" not in g.log(), "no traceback")
        eq(g.stop(), 0, "stops with a webhook thread")
    finally:
        rx.stop()
        g.stop(signal.SIGKILL)
    p = subprocess.run([sys.executable, FAKE, "--token", TOKEN, "--webhook-timeout", "0"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    eq(p.returncode, 2, "bad --webhook-timeout refused")


@case
def photo_and_file_download(f):
    image = png(1000, 500)
    r = f.ctl("photo", {"chat_id": 42, "from_id": 42,
                        "file_bytes_b64": base64.b64encode(image).decode(),
                        "caption": "Nameplate /equip"})
    m = f.drain()[0]["message"]
    sizes = m["photo"]
    ok(len(sizes) >= 2, "several sizes")
    eq([(s["width"], s["height"]) for s in sizes],
       [(90, 45), (320, 160), (800, 400), (1000, 500)], "ascending sizes")
    eq(len({s["file_id"] for s in sizes}), len(sizes), "distinct file_ids")
    eq(sizes[-1]["file_id"], r["file_id"], "largest last")
    eq(m["caption"], "Nameplate /equip", "caption")
    eq(m["caption_entities"], [{"offset": 10, "length": 6, "type": "bot_command"}],
       "caption entities")
    ok("text" not in m, "no text")
    fobj = api_ok(f.bot("getFile", {"file_id": r["file_id"]}))
    eq(set(fobj), {"file_id", "file_unique_id", "file_size", "file_path"}, "File fields")
    eq(fobj["file_size"], len(image), "file_size")
    status, body, headers = f.request("/file/bot%s/%s" % (TOKEN, fobj["file_path"]))
    eq((status, body), (200, image), "download")
    status, body, _ = f.request("/file/bot%s/photos/nope.jpg" % TOKEN)
    eq((status, json.loads(body)), (404, {"ok": False, "error_code": 404,
                                          "description": "Not Found"}), "unknown path")
    status, _, _ = f.request("/file/botWRONG/%s" % fobj["file_path"])
    eq(status, 401, "download with a wrong token")
    api_error(f.bot("getFile", {"file_id": "AgACAgIAAxkBAAnope"}), 400,
              "Bad Request: invalid file_id", "unknown file_id")
    r = f.ctl("photo", {"chat_id": 42, "from_id": 42, "declared_size": 25 * 1024 * 1024,
                        "file_bytes_b64": base64.b64encode(image).decode()})
    api_error(f.bot("getFile", {"file_id": r["file_id"]}), 400, "Bad Request: file is too big",
              "over 20 MB")
    calls = f.ctl("sent", {"method": "file_download"}, method="GET")["calls"]
    eq(len(calls), 3, "downloads logged")


@case
def document_message(f):
    data = b"%PDF-1.4 fake"
    r = f.ctl("document", {"chat_id": 42, "from_id": 42, "file_name": "manual.pdf",
                           "mime_type": "application/pdf",
                           "file_bytes_b64": base64.b64encode(data).decode()})
    d = f.drain()[0]["message"]["document"]
    eq((d["file_name"], d["mime_type"], d["file_size"]), ("manual.pdf", "application/pdf", 13),
       "document fields")
    path = api_ok(f.bot("getFile", {"file_id": r["file_id"]}))["file_path"]
    ok(path.endswith(".pdf"), "extension kept")
    eq(f.request("/file/bot%s/%s" % (TOKEN, path))[1], data, "download")


@case
def block_and_unblock(f):
    f.say(42, "hi", first_name="Ann")
    f.drain()
    r = f.ctl("block", {"chat_id": 42})
    u = f.drain()[0]
    eq(u["update_id"], r["update_id"], "update id")
    cm = u["my_chat_member"]
    eq(cm["chat"]["id"], 42, "chat")
    eq(cm["from"]["id"], 42, "from the user")
    eq(cm["old_chat_member"]["status"], "member", "was member")
    eq(cm["new_chat_member"], {"user": cm["new_chat_member"]["user"], "status": "kicked",
                               "until_date": 0}, "now kicked")
    eq(cm["new_chat_member"]["user"]["id"], 123456789, "about the bot")
    api_error(f.send(42, "x"), 403, "Forbidden: bot was blocked by the user", "send")
    api_error(f.bot("sendChatAction", {"chat_id": 42, "action": "typing"}), 403,
              "Forbidden: bot was blocked by the user", "chat action")
    f.ctl("unblock", {"chat_id": 42})
    cm = f.drain()[0]["my_chat_member"]
    eq((cm["old_chat_member"]["status"], cm["new_chat_member"]["status"]),
       ("kicked", "member"), "unblocked")
    api_ok(f.send(42, "back"))
    f.ctl("block", {"chat_id": 42})
    f.drain()
    f.say(42, "I am back")
    kinds = [list(u)[1] for u in f.drain()]
    eq(kinds, ["my_chat_member", "message"], "writing to the bot unblocks it first")
    api_ok(f.send(42, "welcome back"))
    f.say(-500, "hi", from_id=7)
    f.ctl("block", {"chat_id": -500})
    api_error(f.send(-500, "x"), 403, "Forbidden: bot was kicked from the group chat", "group")


@case
def arbitrary_updates_verbatim(f):
    r1 = f.ctl("update", {"update": {"poll": {"id": "1"}}})
    r2 = f.ctl("update", {"update": {"update_id": r1["update_id"] + 10,
                                     "message": "not an object"}})
    r3 = f.ctl("update", {"update": ["not", "an", "object"]})
    got = f.updates()
    eq(got[0], {"update_id": r1["update_id"], "poll": {"id": "1"}}, "update_id added")
    eq(got[1], {"update_id": r1["update_id"] + 10, "message": "not an object"}, "verbatim")
    eq(got[2], ["not", "an", "object"], "non-object kept")
    eq(r3["update_id"], r2["update_id"] + 1, "ids continue after the given one")
    eq(f.updates(offset=r3["update_id"] + 1), [], "all confirmable")


@case
def raw_getupdates_bodies(f):
    f.say(42, "real")
    f.ctl("raw_updates", {"body": '{"ok":true,"result":[{"update_id":'})
    status, body, _ = f.request("/bot%s/getUpdates" % TOKEN, b"{}",
                                {"Content-Type": "application/json"})
    eq((status, body), (200, b'{"ok":true,"result":[{"update_id":'), "truncated JSON")
    f.ctl("raw_updates", {"body": '{"ok":true,"result":[{"text":"\udcff"}]}'})
    status, body, _ = f.request("/bot%s/getUpdates" % TOKEN)
    eq(body, b'{"ok":true,"result":[{"text":"\xff"}]}', "invalid UTF-8 via surrogateescape")
    f.ctl("raw_updates", {"body_b64": base64.b64encode(b"\xc3\x28").decode(), "status": 200})
    eq(f.request("/bot%s/getUpdates" % TOKEN)[1], b"\xc3\x28", "raw bytes via base64")
    eq([u["message"]["text"] for u in f.updates()], ["real"], "queue untouched")


@case
def sent_log(f):
    since = f.stats()["last_seq"]
    f.say(42, "hi")
    api_ok(f.send(42, "a"))
    api_error(f.send(999, "b"), 400, "Bad Request: chat not found")
    f.bot("getMe", token="bad")
    calls = f.ctl("sent", {"since": since}, method="GET")["calls"]
    eq([c["method"] for c in calls], ["sendMessage", "sendMessage", "getMe"], "all calls")
    eq([c["seq"] for c in calls], [since + 1, since + 2, since + 3], "seq order")
    a, b, c = calls
    eq((a["ok"], a["error_code"], a["params"]["text"], a["result"]["text"]),
       (True, None, "a", "a"), "successful call")
    eq((b["ok"], b["error_code"], b["description"], b["result"]),
       (False, 400, "Bad Request: chat not found", None), "failed call")
    eq((c["ok"], c["error_code"]), (False, 401), "unauthorised call")
    ok(all(isinstance(x["time"], float) for x in calls), "times")
    eq(len(f.ctl("sent", {"since": since, "method": "getme"}, method="GET")["calls"]), 1,
       "method filter")


@case
def wait_for_calls(f):
    f.say(42, "hi")
    since = f.stats()["last_seq"]

    def later():
        time.sleep(0.4)
        f.send(42, "one")
        f.send(42, "two")
    threading.Thread(target=later, daemon=True).start()
    t0 = time.monotonic()
    r = f.ctl("wait", {"since": since, "method": "sendMessage", "count": 2, "timeout": 10},
              method="GET")
    eq((r["timed_out"], [c["params"]["text"] for c in r["calls"]]), (False, ["one", "two"]),
       "both seen")
    ok(time.monotonic() - t0 < 3, "returned promptly")
    t0 = time.monotonic()
    r = f.ctl("wait", {"since": r["last_seq"], "method": "sendMessage", "timeout": 0.5},
              method="GET")
    eq((r["timed_out"], r["calls"]), (True, []), "timed out")
    ok(time.monotonic() - t0 >= 0.45, "waited")


@case
def fault_429_and_early_retries(f):
    f.say(42, "hi")
    f.ctl("fault", {"method": "sendMessage", "kind": "429", "retry_after": 1})
    status, obj = f.send(42, "x")
    eq((status, obj), (429, {"ok": False, "error_code": 429,
                             "description": "Too Many Requests: retry after 1",
                             "parameters": {"retry_after": 1}}), "429 envelope")
    eq(f.stats()["early_retries"], 0, "none yet")
    status, obj = f.send(42, "too soon")
    eq(status, 429, "retry inside the window is refused")
    eq(f.stats()["early_retries"], 1, "early retry counted")
    last = f.ctl("sent", {"method": "sendMessage"}, method="GET")["calls"][-1]
    eq((last["early_retry"], last["error_code"]), (True, 429), "early retry marked in the log")
    time.sleep(1.05)
    api_ok(f.send(42, "after waiting"))
    eq(f.stats()["early_retries"], 1, "a patient retry is not early")
    api_ok(f.send(42, "next"), "window closed")
    f.ctl("fault", {"method": "getUpdates", "kind": "429", "retry_after": 2})
    eq(f.bot("getUpdates")[1]["parameters"], {"retry_after": 2}, "getUpdates 429")
    f.bot("getUpdates")
    eq(f.stats()["early_retries"], 2, "early getUpdates retry counted too")


@case
def fault_500_and_502(f):
    f.ctl("fault", {"method": "getMe", "kind": "500"})
    api_error(f.bot("getMe"), 500, "Internal Server Error")
    f.ctl("fault", {"method": "getMe", "kind": "502"})
    status, body, headers = f.request("/bot%s/getMe" % TOKEN)
    eq(status, 502, "502")
    ok(body.startswith(b"<html>") and "text/html" in headers.get("Content-Type", ""),
       "nginx HTML page, not JSON")
    f.ctl("fault", {"method": "getMe", "kind": "403", "description": "Forbidden: custom"})
    api_error(f.bot("getMe"), 403, "Forbidden: custom", "any code with a description")
    api_ok(f.bot("getMe"), "faults used up")


@case
def fault_409_on_getupdates(f):
    f.ctl("fault", {"method": "getUpdates", "kind": "409"})
    api_error(f.bot("getUpdates"), 409, CONFLICT)
    api_ok(f.bot("getUpdates"))


@case
def fault_drop(f):
    f.say(42, "hi")
    since = f.stats()["last_seq"]
    f.ctl("fault", {"method": "sendMessage", "kind": "drop"})
    status, _ = f.send(42, "lost")
    eq(status, None, "no answer")
    c = f.ctl("sent", {"since": since}, method="GET")["calls"][0]
    eq((c["fault"], c["ok"], c["http_status"]), ("drop", False, None), "logged")
    msgs = f.ctl("state", method="GET")["chats"]["42"]["messages"]
    ok(all(m["text"] != "lost" for m in msgs), "not delivered")


@case
def fault_drop_after_processing(f):
    f.say(42, "hi")
    f.ctl("fault", {"method": "sendMessage", "kind": "drop_after"})
    status, _ = f.send(42, "delivered but unanswered")
    eq(status, None, "no answer")
    msgs = f.ctl("state", method="GET")["chats"]["42"]["messages"]
    ok(any(m["text"] == "delivered but unanswered" for m in msgs), "delivered")


@case
def fault_slow(f):
    f.say(42, "hi")
    f.ctl("fault", {"method": "sendMessage", "kind": "slow", "delay": 0.8})
    t0 = time.monotonic()
    api_ok(f.send(42, "slowly"))
    took = time.monotonic() - t0
    ok(0.75 < took < 3, "delayed %.2fs" % took)
    t0 = time.monotonic()
    api_ok(f.send(42, "fast"))
    ok(time.monotonic() - t0 < 0.5, "next call fast")


@case
def fault_timeout(f):
    f.say(42, "hi")
    f.ctl("fault", {"method": "sendMessage", "kind": "timeout", "delay": 0.6})
    t0 = time.monotonic()
    status, _ = f.send(42, "never")
    ok(status is None and time.monotonic() - t0 >= 0.55, "closed after the delay")
    f.ctl("fault", {"method": "sendMessage", "kind": "timeout", "delay": 30})
    t0 = time.monotonic()
    status, _ = f.bot("sendMessage", {"chat_id": 42, "text": "client gives up"}, timeout=0.5)
    ok(time.monotonic() - t0 < 2, "client timed out")
    eq(status, None, "client timeout")
    msgs = f.ctl("state", method="GET")["chats"]["42"]["messages"]
    ok(all(m["text"] not in ("never", "client gives up") for m in msgs), "not delivered")


@case
def fault_parse_entities(f):
    f.say(42, "hi")
    f.ctl("fault", {"method": "sendMessage", "kind": "parse_entities"})
    status, obj = f.send(42, "fine text")
    eq(status, 400, "status")
    ok(obj["description"].startswith(PARSE), "can't parse entities: " + obj["description"])


@case
def fault_count_duration_wildcard_and_clear(f):
    f.say(42, "hi")
    f.ctl("fault", {"method": "*", "kind": "500", "count": 2})
    eq([f.bot("getMe")[0], f.send(42, "x")[0], f.bot("getMe")[0]], [500, 500, 200],
       "count 2 on any method")
    f.ctl("fault", {"method": "getMe", "kind": "500", "duration": 0.6})
    eq([f.bot("getMe")[0], f.bot("getMe")[0]], [500, 500], "within duration")
    time.sleep(0.7)
    eq(f.bot("getMe")[0], 200, "after duration")
    f.ctl("fault", {"method": "sendMessage", "kind": "500", "chat_id": 43})
    f.say(43, "hi")
    eq([f.send(42, "x")[0], f.send(43, "x")[0]], [200, 500], "chat filter")
    f.ctl("fault", {"method": "getMe", "kind": "500", "count": 5})
    eq(len(f.stats()["faults_pending"]), 1, "pending fault listed")
    eq(f.ctl("clear_faults")["cleared"], 1, "cleared")
    eq(f.bot("getMe")[0], 200, "no fault after clear")
    status, body, _ = f.request("/control/fault", json.dumps({"kind": "boom"}).encode(),
                                {"Content-Type": "application/json"})
    eq(status, 400, "unknown kind refused")


@case
def fault_on_file_download(f):
    r = f.ctl("photo", {"chat_id": 42, "from_id": 42,
                        "file_bytes_b64": base64.b64encode(png(10, 10)).decode()})
    path = api_ok(f.bot("getFile", {"file_id": r["file_id"]}))["file_path"]
    f.ctl("fault", {"method": "file_download", "kind": "502"})
    eq(f.request("/file/bot%s/%s" % (TOKEN, path))[0], 502, "download fault")
    eq(f.request("/file/bot%s/%s" % (TOKEN, path))[0], 200, "then fine")


@case
def rate_limit_private_chat(f):
    f.ctl("config", {"rate_limits": True})
    f.say(42, "hi")
    api_ok(f.send(42, "one"))
    status, obj = f.send(42, "two")
    eq((status, obj["description"], obj["parameters"]),
       (429, "Too Many Requests: retry after 1", {"retry_after": 1}), "second within 1s")
    status, _ = f.send(42, "impatient")
    eq(status, 429, "still limited")
    eq(f.stats()["early_retries"], 1, "early retry counted")
    time.sleep(1.05)
    api_ok(f.send(42, "two again"))
    f.say(43, "hi")
    api_ok(f.send(43, "other chat is independent"))
    api_ok(f.bot("editMessageText", {"chat_id": 43, "message_id": 2, "text": "edit ok"}),
           "edits are not counted")
    f.ctl("config", {"rate_limits": False})


@case
def rate_limit_group(f):
    f.ctl("config", {"rate_limits": True})
    f.say(-700, "hi", from_id=7)
    for i in range(20):
        api_ok(f.send(-700, "m%d" % i), "message %d" % i)
    status, obj = f.send(-700, "21st")
    eq(status, 429, "21st message in a minute")
    ok(50 <= obj["parameters"]["retry_after"] <= 60, "retry_after about a minute")
    f.ctl("config", {"rate_limits": False})


@case
def rate_limit_global(f):
    f.ctl("config", {"rate_limits": True})
    for cid in range(1001, 1032):
        f.say(cid, "hi")
    codes = [f.send(cid, "x")[0] for cid in range(1001, 1032)]
    eq(codes[:30], [200] * 30, "30 per second")
    eq(codes[30], 429, "31st in the same second")
    eq(f.stats()["rate_limited"], 1, "counted")
    f.ctl("config", {"rate_limits": False})


@case
def stats_counters(f):
    f.say(42, "hi")
    f.say(42, "again")
    f.send(42, "x")
    f.send(999, "y")
    st = f.stats()
    eq(st["calls_by_method"], {"sendMessage": 2}, "calls_by_method")
    eq(st["errors_by_code"], {"400": 1}, "errors_by_code")
    eq((st["pending_updates"], st["early_retries"], st["internal_errors"]), (2, 0, 0),
       "pending, early, internal")
    for key in ("max_concurrent_getupdates", "conflicts", "rate_limited",
                "dropped_connections", "last_seq", "open_429_windows"):
        ok(key in st, "has " + key)


@case
def reset_clears_state(f):
    r = f.say(42, "hi")
    api_ok(f.send(42, "x"))
    f.ctl("fault", {"method": "getMe", "kind": "500"})
    out = f.ctl("reset")
    eq(f.stats()["pending_updates"], 0, "queue empty")
    eq(f.stats()["calls_total"], 0, "stats cleared")
    api_error(f.send(42, "x"), 400, "Bad Request: chat not found", "chats forgotten")
    api_ok(f.bot("getMe"), "faults cleared")
    ok(f.say(42, "hi")["update_id"] > r["update_id"], "update_id keeps increasing")
    ok(out["last_seq"] >= 1, "seq keeps increasing")


@case
def robustness(f):
    status, body, _ = f.request("/bot%s/sendMessage" % TOKEN, b"x" * (10 * 1024 * 1024 + 1),
                                {"Content-Type": "application/json"})
    eq(status, 413, "oversized body refused")
    ok(raw_http(f.port, b"GARBAGE\r\n\r\n"), "garbage request answered")
    ok(raw_http(f.port, b"BREW /pot HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 501"),
       "unknown HTTP method answered")
    raw_http(f.port, b"POST /bot%s/getMe HTTP/1.1\r\nContent-Length: 10\r\n\r\nab"
             % TOKEN.encode(), timeout=1)  # a body that never completes
    f.say(42, "hi")
    for params in ({"chat_id": {"a": 1}, "text": "x"}, {"chat_id": [42], "text": "x"},
                   {"chat_id": 42, "text": {"a": 1}}, {"chat_id": 42, "text": None},
                   {"chat_id": 1e400, "text": "x"}, {"chat_id": True, "text": "x"},
                   {"chat_id": 42, "text": "x", "reply_markup": 5},
                   {"chat_id": 42, "text": "x", "entities": "[{]"},
                   {"chat_id": 42, "text": "x", "reply_to_message_id": "abc"},
                   {"chat_id": 42, "text": "x" * 5000, "parse_mode": 7}):
        status, obj = f.bot("sendMessage", params)
        ok(status in (200, 400), "answered %s for %r" % (status, params)[:80])
    for method in ("getUpdates", "editMessageText", "answerCallbackQuery", "setMyCommands",
                   "getFile", "sendChatAction", "deleteMessage", "editMessageReplyMarkup"):
        for params in ({"offset": "x", "limit": [], "timeout": {}, "allowed_updates": 5,
                        "chat_id": None, "message_id": "q", "commands": 3, "file_id": [1]},
                       {"callback_query_id": {"a": 1}, "commands": [1, 2],
                        "reply_markup": "null", "scope": "[]"}):
            status, _ = f.bot(method, params)
            ok(status in (200, 400), "%s answered %s" % (method, status))
    deep = '{"chat_id":42,"text":"x","reply_markup":' + "[" * 5000 + "]" * 5000 + "}"
    for depth_body in (deep, deep.replace("5000", "500")):
        status, body, _ = f.request("/bot%s/sendMessage" % TOKEN, depth_body.encode(),
                                    {"Content-Type": "application/json"})
        eq(status, 400, "deeply nested JSON")
    for n in (500, 5000):
        api_error(f.send(42, "x", reply_markup='{"inline_keyboard":[[{"text":"a","pay":'
                         + "[" * n + "]" * n + "}]]}"), 400,
                  "Bad Request: can't parse reply keyboard markup JSON object", "deep markup")
    status, _, _ = f.request("/control/update", ('{"update":' + "[" * 500 + "]" * 500 + "}")
                             .encode(), {"Content-Type": "application/json"})
    eq(status, 400, "deep control body")
    status, _, _ = f.request("/control/nope")
    eq(status, 404, "unknown control endpoint")
    status, _, _ = f.request("/control/message", b"[1", {"Content-Type": "application/json"})
    eq(status, 400, "bad control JSON")
    status, _, _ = f.request("/control/message", b'{"chat_id":"x"}',
                             {"Content-Type": "application/json"})
    eq(status, 400, "bad control arguments")
    eq(f.stats()["internal_errors"], 0, "no internal errors")
    api_ok(f.bot("getMe"), "still serving")


@case
def keep_alive_and_chunked_bodies(f):
    f.say(42, "hi")
    conn = http.client.HTTPConnection("127.0.0.1", f.port, timeout=10)
    try:
        for i in range(3):
            conn.request("POST", "/bot%s/sendMessage" % TOKEN,
                         json.dumps({"chat_id": 42, "text": "ka%d" % i}),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            eq(r.status, 200, "request %d on one connection" % i)
            r.read()

        def chunks():
            yield b'{"chat_id":42,'
            yield b'"text":"chunked"}'
        conn.request("POST", "/bot%s/sendMessage" % TOKEN, chunks(),
                     {"Content-Type": "application/json"}, encode_chunked=True)
        r = conn.getresponse()
        eq(json.loads(r.read())["result"]["text"], "chunked", "chunked body")
    finally:
        conn.close()


@case
def chat_action_delete_and_replies(f):
    u = f.say(42, "question")
    eq(api_ok(f.bot("sendChatAction", {"chat_id": 42, "action": "typing"})), True, "typing")
    api_error(f.bot("sendChatAction", {"chat_id": 42, "action": "dancing"}), 400,
              "Bad Request: wrong parameter action in request", "bad action")
    r = api_ok(f.send(42, "answer", reply_to_message_id=u["message_id"]))
    eq(r["reply_to_message"]["text"], "question", "reply_to_message")
    r = api_ok(f.send(42, "answer 2", reply_parameters={"message_id": u["message_id"]}))
    eq(r["reply_to_message"]["message_id"], u["message_id"], "reply_parameters")
    api_error(f.send(42, "x", reply_to_message_id=999), 400,
              "Bad Request: message to be replied not found", "missing reply target")
    eq(api_ok(f.bot("deleteMessage", {"chat_id": 42, "message_id": r["message_id"]})), True,
       "deleted")
    api_error(f.bot("deleteMessage", {"chat_id": 42, "message_id": r["message_id"]}), 400,
              "Bad Request: message to delete not found", "already deleted")


@case
def sigterm_stops_cleanly_and_cli_options(f):
    g = Fake("--rate-limits", "on", "--bot-username", "other_bot")
    try:
        eq(api_ok(g.bot("getMe"))["username"], "other_bot", "--bot-username")
        g.say(42, "hi")
        api_ok(g.send(42, "one"))
        eq(g.send(42, "two")[0], 429, "--rate-limits on")
        getter = in_thread(lambda: g.bot("getUpdates", {"timeout": 20}, timeout=30))
        time.sleep(0.3)
        t0 = time.monotonic()
        rc = g.stop(signal.SIGTERM, wait=10)
        eq(rc, 0, "exit status after SIGTERM")
        ok(time.monotonic() - t0 < 5, "stopped promptly despite a long poll")
        getter()
        ok("Traceback" not in g.log(), "no traceback on stderr")
    finally:
        g.stop(signal.SIGKILL)
    h = Fake()
    try:
        eq(h.stop(signal.SIGINT), 0, "exit status after SIGINT")
    finally:
        h.stop(signal.SIGKILL)


# -- runner ---------------------------------------------------------------------------

def main(argv):
    verbose = "-v" in argv
    wanted = [a for a in argv if a != "-v"]
    cases = [c for c in CASES if not wanted or any(w in c.__name__ for w in wanted)]
    print("1..%d" % len(cases), flush=True)
    try:
        f = Fake()
    except Exception as e:
        for i, c in enumerate(cases, 1):
            print("not ok %d - %s" % (i, c.__name__.replace("_", " ")))
        print("# could not start the fake: %s" % e)
        return 1
    failed = 0
    try:
        for i, c in enumerate(cases, 1):
            name = c.__name__.replace("_", " ")
            t0 = time.monotonic()
            try:
                f.ctl("reset")
                f.ctl("config", {"rate_limits": False, "html_strict": True,
                                 "webhook_http": False, "webhook_timeout": 10,
                                 "webhook_retry_min": 0.5, "webhook_retry_max": 4})
                note = c(f)
                if isinstance(note, str) and note.startswith("SKIP"):
                    print("ok %d - %s # %s" % (i, name, note))
                else:
                    print("ok %d - %s" % (i, name))
            except Exception as e:
                failed += 1
                print("not ok %d - %s" % (i, name))
                for line in (str(e) or repr(e)).splitlines():
                    print("# " + line)
                if verbose:
                    for line in traceback.format_exc().splitlines():
                        print("# " + line)
            if verbose:
                print("# %.2fs" % (time.monotonic() - t0))
            sys.stdout.flush()
    finally:
        rc = f.stop()
        if rc != 0:
            print("# fake exited with %r; its stderr:" % rc)
            failed += 1
        log = f.log()
        if "Traceback" in log or "internal error" in log:
            print("# the fake logged errors:")
            for line in log.splitlines():
                print("#   " + line)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
