#!/usr/bin/env python3
"""Self-test of the fake WhatsApp Cloud API server (fake_whatsapp.py).

Starts the fake on a free port of 127.0.0.1 together with a tiny local HTTP
receiver that stands in for Rivet's webhook, drives every Graph endpoint,
validation rule, fault, window rule, rate limit, media URL, signature mode
and control endpoint through urllib / http.client, and prints TAP: "1..N",
then "ok K - name" or "not ok K - name" with "#" diagnostics.  Exits 1 if
any case failed.  Nothing leaves the loopback interface.

Run: python3 tests/fake_whatsapp/selftest.py [-v] [name-substring ...]
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True  # the helper case imports fake_whatsapp

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_whatsapp.py")
TOKEN = "EAAFakeRivetTestToken0123456789"
PNID = "106540352242922"
SECRET = "rivet-app-secret"
VERIFY_TOKEN = "rivet-verify-token"
USER = "4915112345678"
USER2 = "4915187654321"
WINDOW_DETAILS = ("Message failed to send because more than 24 hours have passed since the "
                  "customer last replied to this number.")


# -- the stand-in for Rivet's webhook ------------------------------------------------

class Receiver:
    """A local HTTP server recording what the fake posts to the webhook."""

    def __init__(self):
        self.requests = []
        self.cond = threading.Condition()
        self.answer_status = 200
        self.answer_body = b"EVENT_RECEIVED"
        self.answer_delay = 0.0
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_POST(self):
                body = self._body()
                with outer.cond:
                    outer.requests.append({"method": "POST", "path": self.path,
                                           "headers": {k.lower(): v for k, v in self.headers.items()},
                                           "body": body})
                    outer.cond.notify_all()
                    status, answer, delay = (outer.answer_status, outer.answer_body,
                                             outer.answer_delay)
                if delay:
                    time.sleep(delay)
                self._answer(status, answer)

            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                with outer.cond:
                    outer.requests.append({"method": "GET", "path": self.path,
                                           "headers": {k.lower(): v for k, v in self.headers.items()},
                                           "body": b""})
                    outer.cond.notify_all()
                if (q.get("hub.mode") == ["subscribe"]
                        and q.get("hub.verify_token") == [VERIFY_TOKEN]):
                    self._answer(200, q.get("hub.challenge", [""])[0].encode())
                else:
                    self._answer(403, b"Forbidden")

            def _answer(self, status, body):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:   # the fake gave up waiting (webhook timeout test)
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/webhook/whatsapp" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self):
        with self.cond:
            self.requests = []
            self.answer_status = 200
            self.answer_body = b"EVENT_RECEIVED"
            self.answer_delay = 0.0

    def wait(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("receiver got %d requests, wanted %d"
                                         % (len(self.requests), count))
                self.cond.wait(left)
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# -- the fake ------------------------------------------------------------------------

class Fake:
    """A running fake_whatsapp.py process and helpers to talk to it."""

    def __init__(self, receiver_url=None, *extra):
        self.dir = tempfile.mkdtemp(prefix="fake-whatsapp-selftest-")
        self.port_file = os.path.join(self.dir, "port")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        cmd = [sys.executable, FAKE, "--port", "0", "--port-file", self.port_file,
               "--token", TOKEN, "--phone-number-id", PNID, "--app-secret", SECRET]
        if receiver_url:
            cmd += ["--webhook-url", receiver_url]
        self.proc = subprocess.Popen(cmd + list(extra), stdout=subprocess.DEVNULL,
                                     stderr=self.stderr)
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

    def request(self, path, data=None, headers=None, method=None, timeout=30, base=None):
        """(status, body bytes, headers); status None if no answer came."""
        req = urllib.request.Request((base or self.base) + path, data=data,
                                     headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            return None, repr(e).encode(), {}

    def graph(self, method, path, body=None, token=TOKEN, version="v21.0", raw=None,
              headers=None, timeout=30):
        """A Graph API call; (status, decoded JSON or None)."""
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = "Bearer " + token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        full = ("/" + version if version else "") + path
        status, out, _ = self.request(full, data, hdrs, method=method, timeout=timeout)
        try:
            return status, json.loads(out)
        except ValueError:
            return status, None

    def send(self, body, **kw):
        return self.graph("POST", "/%s/messages" % PNID, body, **kw)

    def ctl(self, name, args=None, method="POST", timeout=60, expect=200):
        if method == "GET":
            q = "?" + urllib.parse.urlencode(args) if args else ""
            status, body, _ = self.request("/control/" + name + q, timeout=timeout)
        else:
            status, body, _ = self.request("/control/" + name, json.dumps(args or {}).encode(),
                                           {"Content-Type": "application/json"},
                                           timeout=timeout)
        obj = json.loads(body)
        if status != expect:
            raise AssertionError("control %s -> %s %s" % (name, status, obj))
        return obj

    def open_window(self, wa=USER, hours=0.0):
        return self.ctl("window", {"from": wa, "hours_ago": hours})


# -- assertions and message bodies ---------------------------------------------------

def eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what or "value", got, want))


def ok(cond, what):
    if not cond:
        raise AssertionError(what)


def graph_error(resp, status, code, details=None, subcode=None, message=None, what=""):
    """Check a Graph error answer; returns the error object."""
    st, obj = resp
    eq(st, status, (what + " HTTP status").strip())
    ok(isinstance(obj, dict) and isinstance(obj.get("error"), dict),
       "%s: not a Graph error envelope: %r" % (what, obj))
    err = obj["error"]
    eq(err.get("code"), code, (what + " error code").strip())
    ok(isinstance(err.get("type"), str) and isinstance(err.get("fbtrace_id"), str),
       "%s: type and fbtrace_id present" % what)
    if message is not None:
        eq(err.get("message"), message, (what + " message").strip())
    if details is not None:
        got = (err.get("error_data") or {}).get("details")
        eq((err.get("error_data") or {}).get("messaging_product"), "whatsapp",
           "error_data.messaging_product")
        if callable(details):
            ok(details(got or ""), "%s: details %r" % (what, got))
        else:
            eq(got, details, (what + " details").strip())
    if subcode is not None:
        eq(err.get("error_subcode"), subcode, (what + " subcode").strip())
    return err


def invalid(resp, fragment, what=""):
    """A 400 code 100 "(#100) Invalid parameter" whose details contain fragment."""
    return graph_error(resp, 400, 100, details=lambda d: fragment in d,
                       message="(#100) Invalid parameter", what=what or fragment)


def sent_ok(resp, to=USER, what="send"):
    st, obj = resp
    if st != 200:
        raise AssertionError("%s: expected 200, got %s %r" % (what, st, obj))
    eq(obj["messaging_product"], "whatsapp", "messaging_product")
    eq(obj["contacts"], [{"input": to, "wa_id": to.lstrip("+")}], "contacts")
    ok(len(obj["messages"]) == 1 and obj["messages"][0]["id"].startswith("wamid."),
       "messages[0].id is a wamid: %r" % obj)
    return obj["messages"][0]["id"]


def text(body="hello", to=USER, **extra):
    b = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
         "type": "text", "text": {"body": body}}
    b.update(extra)
    return b


def buttons(btns, body="Pick one", to=USER):
    return {"messaging_product": "whatsapp", "to": to, "type": "interactive",
            "interactive": {"type": "button", "body": {"text": body},
                            "action": {"buttons": [
                                {"type": "reply", "reply": {"id": i, "title": t}}
                                for i, t in btns]}}}


def listmsg(sections, button="Choose", body="Pick a row", to=USER):
    return {"messaging_product": "whatsapp", "to": to, "type": "interactive",
            "interactive": {"type": "list", "body": {"text": body},
                            "action": {"button": button, "sections": sections}}}


def rows(n, prefix="r"):
    return [{"id": "%s%d" % (prefix, i), "title": "Row %d" % i, "description": "d"}
            for i in range(n)]


def template(params=("Pump 3 is hot",), payloads=("ack:1", "wo:1"), to=USER, name="rivet_alarm",
             lang="en_US"):
    comps = [{"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}]
    for i, p in enumerate(payloads):
        comps.append({"type": "button", "sub_type": "quick_reply", "index": str(i),
                      "parameters": [{"type": "payload", "payload": p}]})
    return {"messaging_product": "whatsapp", "to": to, "type": "template",
            "template": {"name": name, "language": {"code": lang}, "components": comps}}


def sig_ok(req):
    want = "sha256=" + hmac.new(SECRET.encode(), req["body"], hashlib.sha256).hexdigest()
    return req["headers"].get("x-hub-signature-256") == want


def value_of(body_bytes):
    obj = json.loads(body_bytes)
    eq(obj["object"], "whatsapp_business_account", "object")
    eq(len(obj["entry"]), 1, "one entry")
    eq(len(obj["entry"][0]["changes"]), 1, "one change")
    ch = obj["entry"][0]["changes"][0]
    eq(ch["field"], "messages", "field")
    v = ch["value"]
    eq(v["messaging_product"], "whatsapp", "value.messaging_product")
    eq(v["metadata"]["phone_number_id"], PNID, "metadata.phone_number_id")
    ok(v["metadata"]["display_phone_number"].isdigit(), "metadata.display_phone_number digits")
    return v


def in_thread(fn):
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:
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


# -- cases -----------------------------------------------------------------------------

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


@case
def port_file_is_written_atomically(f, r):
    with open(f.port_file) as fh:
        content = fh.read()
    ok(content.strip().isdigit() and content.endswith("\n"), "port file holds a number")
    eq(sorted(os.listdir(f.dir)), ["port", "stderr"], "no temporary files left")


@case
def listens_on_loopback_only(f, r):
    eq(f.request("/control/health")[0], 200, "reachable on 127.0.0.1")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))   # UDP connect sends nothing
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
def phone_number_node_and_version_prefixes(f, r):
    for version in ("v21.0", "v19.0", "v22", ""):
        st, obj = f.graph("GET", "/" + PNID, version=version)
        eq(st, 200, "GET phone number under %r" % version)
        eq(obj["id"], PNID, "id")
        ok(obj["display_phone_number"] and obj["verified_name"], "display number and name")
    st, obj = f.graph("GET", "/%s?fields=id" % PNID)
    eq((st, obj), (200, {"id": PNID}), "fields=id")
    st, obj = f.graph("GET", "/%s?fields=verified_name,display_phone_number" % PNID)
    eq(sorted(obj), ["display_phone_number", "id", "verified_name"], "fields subset")
    graph_error(f.graph("GET", "/%s?fields=nope" % PNID), 400, 100,
                message="(#100) Tried accessing nonexisting field (nope) on node type "
                        "(WhatsAppBusinessPhoneNumber)")


@case
def token_is_required(f, r):
    for tok, what in ((None, "missing"), ("wrong", "wrong"), (TOKEN + "x", "suffix")):
        err = graph_error(f.send(text(), token=tok), 401, 190, what="%s token send" % what)
        eq(err["type"], "OAuthException", "type")
        graph_error(f.graph("GET", "/" + PNID, token=tok), 401, 190, what="%s token GET" % what)
    st, obj = f.graph("GET", "/%s?access_token=%s" % (PNID, TOKEN), token=None)
    eq(st, 200, "access_token query parameter")
    calls = f.ctl("calls", method="GET")["calls"]
    eq([c["auth"] for c in calls[:2]], ["missing", "missing"], "recorded auth")
    eq((calls[0]["endpoint"], calls[0]["to"], calls[0]["status"], calls[0]["error_code"]),
       ("messages", USER, 401, 190), "refused send recorded with its endpoint")
    eq(calls[2]["auth"], "wrong", "recorded wrong auth")
    ok(not calls[0]["auth_ok"] and calls[-1]["auth_ok"], "auth_ok flags")


@case
def unknown_objects_and_paths(f, r):
    err = graph_error(f.graph("POST", "/999999/messages", text()), 400, 100, subcode=33,
                      what="unknown phone number id")
    ok(err["message"].startswith("Unsupported post request. Object with ID '999999' does not "
                                 "exist"), "message: %r" % err["message"])
    eq(err["type"], "GraphMethodException", "type")
    graph_error(f.graph("GET", "/999999"), 400, 100, subcode=33, what="unknown GET object")
    graph_error(f.graph("POST", "/%s/nonsense" % PNID, {}), 400, 2500,
                message="Unknown path components: /nonsense")
    graph_error(f.graph("GET", "/%s/messages" % PNID), 400, 100, subcode=33,
                what="GET on messages")


@case
def text_send_success_shape(f, r):
    f.open_window()
    a = sent_ok(f.send(text("Hello technician")))
    b = sent_ok(f.send(text("second")))
    ok(a != b, "wamids are unique")
    # "+" and formatting in "to": input echoed, wa_id digits only
    st, obj = f.send(text("x", to="+49 151 123-45678"))
    eq(st, 200, "formatted to")
    eq(obj["contacts"], [{"input": "+49 151 123-45678", "wa_id": USER}], "contacts of +to")
    ok("message_status" not in obj["messages"][0], "no message_status for text")
    # type defaults to text, as Meta documents
    body = text("no type")
    del body["type"]
    sent_ok(f.send(body), what="type omitted")
    sent = f.ctl("sent", {"to": USER}, method="GET")["messages"]
    eq([s["body"]["text"]["body"] for s in sent],
       ["Hello technician", "second", "x", "no type"], "sent in order")
    eq(sent[0]["message_id"], a, "sent id")
    ok(all(isinstance(s["seq"], int) for s in sent), "sent entries carry seq")
    calls = f.ctl("calls", {"endpoint": "messages"}, method="GET")["calls"]
    eq(calls[0]["body"]["text"]["body"], "Hello technician", "call body recorded")
    eq((calls[0]["status"], calls[0]["message_id"], calls[0]["to"], calls[0]["type"]),
       (200, a, USER, "text"), "call record fields")
    eq(calls[0]["response"]["messages"][0]["id"], a, "answer recorded")
    eq(sent[0]["seq"], calls[0]["seq"], "sent seq = call seq")


@case
def text_validation(f, r):
    f.open_window()
    b = text()
    del b["messaging_product"]
    invalid(f.send(b), "messaging_product is required")
    invalid(f.send(text(messaging_product="telegram")), "messaging_product")
    b = text()
    del b["to"]
    invalid(f.send(b), "Param to is required")
    invalid(f.send(text(to="not-a-number")), "Param to")
    invalid(f.send(text(recipient_type="group")), "recipient_type")
    invalid(f.send(text(type="audio", audio={"id": "1"})), "Param type must be one of")
    invalid(f.send(text(type="sticker")), "Param type must be one of")
    invalid(f.send(text("")), "text['body'] must not be empty")
    b = text()
    del b["text"]
    invalid(f.send(b), "Param text is required")
    invalid(f.send(text(text={"body": 5})), "text['body'] must be a string")
    sent_ok(f.send(text("é" * 4096)), what="4096 characters")
    sent_ok(f.send(text("\U0001F527" * 4096)), what="4096 emoji (code points)")
    invalid(f.send(text("a" * 4097)), "text['body'] must be at most 4096 characters")
    invalid(f.send(text(context={"message_id": 7})), "context['message_id']")
    sent_ok(f.send(text("reply", context={"message_id": "wamid.X"})), what="context")
    st, obj = f.graph("POST", "/%s/messages" % PNID, raw=b"{not json",
                      headers={"Content-Type": "application/json"})
    invalid((st, obj), "not valid JSON")
    st, obj = f.graph("POST", "/%s/messages" % PNID, raw=b"[1,2]",
                      headers={"Content-Type": "application/json"})
    invalid((st, obj), "must be a JSON object")
    eq(len(f.ctl("sent", method="GET")["messages"]), 3, "only valid sends recorded as sent")


@case
def interactive_buttons(f, r):
    f.open_window()
    sent_ok(f.send(buttons([("ack:1", "Acknowledge"), ("wo:1", "Work order"), ("mute:1", "Mute")])))
    sent_ok(f.send(buttons([("a", "x" * 20)])), what="20-char title")
    sent_ok(f.send(buttons([("i" * 256, "t")])), what="256-char id")
    invalid(f.send(buttons([])), "must have at least 1 element")
    invalid(f.send(buttons([("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")])),
            "must have at most 3 elements")
    invalid(f.send(buttons([("a", "x" * 21)])), "['reply']['title'] must be at most 20")
    invalid(f.send(buttons([("i" * 257, "t")])), "['reply']['id'] must be at most 256")
    invalid(f.send(buttons([("a", "")])), "['reply']['title'] must not be empty")
    invalid(f.send(buttons([("a", "One"), ("a", "Two")])), "unique ids")
    invalid(f.send(buttons([("a", "Same"), ("b", "Same")])), "unique titles")
    b = buttons([("a", "x")])
    b["interactive"]["action"]["buttons"][0]["type"] = "url"
    invalid(f.send(b), "['type'] must be \"reply\"")
    invalid(f.send(buttons([("a", "x")], body="b" * 1025)), "['body']['text'] must be at most 1024")
    sent_ok(f.send(buttons([("a", "x")], body="b" * 1024)), what="1024-char body")
    b = buttons([("a", "x")])
    del b["interactive"]["body"]
    invalid(f.send(b), "interactive['body'] is required")
    b = buttons([("a", "x")])
    b["interactive"]["footer"] = {"text": "f" * 61}
    invalid(f.send(b), "['footer']['text'] must be at most 60")
    b = buttons([("a", "x")])
    b["interactive"]["header"] = {"type": "text", "text": "h" * 61}
    invalid(f.send(b), "['header']['text'] must be at most 60")
    b = buttons([("a", "x")])
    b["interactive"]["type"] = "cta_url"
    invalid(f.send(b), "interactive['type'] must be button or list")


@case
def interactive_lists(f, r):
    f.open_window()
    sent_ok(f.send(listmsg([{"title": "Machines", "rows": rows(10)}])), what="10 rows")
    sent_ok(f.send(listmsg([{"rows": rows(3)}])), what="one section without title")
    sent_ok(f.send(listmsg([{"title": "A", "rows": rows(5, "a")},
                            {"title": "B", "rows": rows(5, "b")}])), what="two sections")
    invalid(f.send(listmsg([{"title": "A", "rows": rows(6, "a")},
                            {"title": "B", "rows": rows(5, "b")}])), "at most 10 rows")
    invalid(f.send(listmsg([{"title": "A", "rows": rows(1, "a")},
                            {"rows": rows(1, "b")}])), "['sections'][1]['title'] is required")
    invalid(f.send(listmsg([{"title": "S%d" % i, "rows": rows(1, "s%d" % i)} for i in range(11)])),
            "must have at most 10 elements")
    invalid(f.send(listmsg([])), "must have at least 1 element")
    invalid(f.send(listmsg([{"title": "A", "rows": []}])), "['rows'] must have at least 1")
    invalid(f.send(listmsg([{"title": "t" * 25, "rows": rows(1)}])), "['title'] must be at most 24")
    invalid(f.send(listmsg([{"rows": [{"id": "a", "title": "t" * 25}]}])),
            "['rows'][0]['title'] must be at most 24")
    invalid(f.send(listmsg([{"rows": [{"id": "a", "title": "t", "description": "d" * 73}]}])),
            "['description'] must be at most 72")
    sent_ok(f.send(listmsg([{"rows": [{"id": "i" * 200, "title": "t" * 24,
                                       "description": "d" * 72}]}])), what="limits exactly")
    invalid(f.send(listmsg([{"rows": [{"id": "i" * 201, "title": "t"}]}])),
            "['id'] must be at most 200")
    invalid(f.send(listmsg([{"rows": [{"id": "x", "title": "a"}, {"id": "x", "title": "b"}]}])),
            "unique ids")
    invalid(f.send(listmsg([{"rows": rows(1)}], button="b" * 21)),
            "['action']['button'] must be at most 20")
    invalid(f.send(listmsg([{"rows": rows(1)}], button="")), "['action']['button'] must not be empty")
    invalid(f.send(listmsg([{"rows": rows(1)}], body="b" * 1025)), "['body']['text'] must be at most 1024")


@case
def templates_are_validated(f, r):
    st, obj = f.send(template())
    eq(st, 200, "template accepted outside any window")
    eq(obj["messages"][0]["message_status"], "accepted", "message_status")
    eq(obj["contacts"][0]["wa_id"], USER, "contacts")
    b = template()
    del b["template"]["name"]
    invalid(f.send(b), "template['name'] is required")
    b = template()
    del b["template"]["language"]
    invalid(f.send(b), "template['language'] is required")
    b = template()
    b["template"]["language"] = {"policy": "deterministic"}
    invalid(f.send(b), "['language']['code'] is required")
    for bad in ("line\nbreak", "tab\there", "five     spaces"):
        invalid(f.send(template(params=(bad,))), "cannot have new-line/tab characters")
    sent_ok(f.send(template(params=("four    spaces",))), what="4 spaces allowed")
    invalid(f.send(template(params=("x" * 1025,))), "must be at most 1024")
    sent_ok(f.send(template(params=("x" * 1024,))), what="1024-char parameter")
    invalid(f.send(template(params=("",))), "must not be empty")
    b = template()
    b["template"]["components"][1]["sub_type"] = "bogus"
    invalid(f.send(b), "['sub_type'] must be one of")
    b = template()
    del b["template"]["components"][1]["index"]
    invalid(f.send(b), "['index'] is required")
    b = template()
    b["template"]["components"][2]["index"] = "0"
    invalid(f.send(b), "button 0 is given twice")
    b = template()
    b["template"]["components"][1]["parameters"] = [{"type": "text", "text": "x"}]
    invalid(f.send(b), "must be \"payload\"")
    b = template()
    b["template"]["components"][1]["parameters"] = [{"type": "payload", "payload": ""}]
    invalid(f.send(b), "['payload'] must not be empty")
    b = template()
    b["template"]["components"][0]["parameters"] = [{"type": "image", "image": {"id": "1"}}]
    invalid(f.send(b), "['type'] must be one of {text, currency, date_time}")
    b = template()
    b["template"]["components"].append({"type": "sidebar"})
    invalid(f.send(b), "must be one of {header, body, footer, button}")
    sent_ok(f.send(template(params=(), payloads=())), what="no components needed")


@case
def registered_templates(f, r):
    f.ctl("templates", {"templates": [{"name": "rivet_alarm", "language": "en_US",
                                       "body_params": 1, "quick_replies": 2}]})
    sent_ok(f.send(template()), what="matching template")
    graph_error(f.send(template(name="other")), 400, 132001,
                details="template name (other) does not exist in en_US")
    graph_error(f.send(template(lang="de")), 400, 132001, what="unknown language")
    graph_error(f.send(template(params=("a", "b"))), 400, 132000,
                details=lambda d: "number of localizable_params (2)" in d)
    graph_error(f.send(template(payloads=("a",))), 400, 132000,
                details=lambda d: "quick_reply" in d)


@case
def image_sends(f, r):
    f.open_window()
    mid = f.ctl("media", {"data_b64": base64.b64encode(b"img").decode(),
                          "mime_type": "image/png"})["media_id"]
    body = {"messaging_product": "whatsapp", "to": USER, "type": "image",
            "image": {"id": mid, "caption": "nameplate"}}
    sent_ok(f.send(body), what="image by id")
    body["image"] = {"link": "https://example.invalid/a.jpg"}
    sent_ok(f.send(body), what="image by link (never fetched)")
    body["image"] = {"id": mid, "link": "https://example.invalid/a.jpg"}
    invalid(f.send(body), "exactly one of id and link")
    body["image"] = {"id": mid, "caption": "c" * 1025}
    invalid(f.send(body), "caption'] must be at most 1024")


@case
def window_rule(f, r):
    err = graph_error(f.send(text()), 400, 131047, details=WINDOW_DETAILS,
                      message="(#131047) Re-engagement message", what="never wrote")
    eq(err["type"], "OAuthException", "type")
    graph_error(f.send(buttons([("a", "b")])), 400, 131047, what="interactive outside window")
    sent_ok(f.send(template()), what="template outside window")
    f.ctl("message", {"from": USER, "text": "hi"})
    sent_ok(f.send(text()), what="after the user wrote")
    f.ctl("window", {"from": USER, "hours_ago": 25})
    graph_error(f.send(text()), 400, 131047, what="25 h ago")
    u = f.ctl("window", {"from": USER, "hours_ago": 23.5})
    ok(u["window_open"] and abs(u["hours_since_inbound"] - 23.5) < 0.01, "window view %r" % u)
    sent_ok(f.send(text()), what="23.5 h ago")
    u = f.ctl("window", {"from": USER, "forget": True})
    eq((u["last_inbound"], u["window_open"]), (None, False), "forgotten")
    graph_error(f.send(text()), 400, 131047, what="forgotten")
    f.ctl("config", {"window": False})
    sent_ok(f.send(text()), what="--window off")
    f.ctl("config", {"window": True})
    # an injected message with an old timestamp opens the window at that time
    f.ctl("message", {"from": USER2, "text": "old", "timestamp": time.time() - 30 * 3600})
    graph_error(f.send(text(to=USER2)), 400, 131047, what="old message")
    eq(f.ctl("state", method="GET")["stats"]["window_refusals"], 5, "window_refusals")


@case
def rate_limits(f, r):
    f.open_window()
    for _ in range(8):
        sent_ok(f.send(text()), what="rate limits off by default")
    f.ctl("config", {"rate_limits": True, "pair_burst": 2, "pair_interval_s": 60})
    sent_ok(f.send(text()), what="burst 1")
    sent_ok(f.send(template()), what="burst 2 (templates count too)")
    graph_error(f.send(text()), 400, 131056,
                message="(#131056) (Business Account, Consumer Account) pair rate limit hit",
                details=lambda d: "to the same phone number" in d)
    f.open_window(USER2)
    sent_ok(f.send(text(to=USER2)), to=USER2, what="other user unaffected")
    f.ctl("config", {"pair_burst": 2, "pair_interval_s": 0.3})
    sent_ok(f.send(text()), what="after reset of the bucket")
    sent_ok(f.send(text()), what="second")
    graph_error(f.send(text()), 400, 131056, what="bucket empty again")
    time.sleep(0.35)
    sent_ok(f.send(text()), what="one token refilled after pair_interval_s")
    f.ctl("config", {"pair_burst": 1000, "throughput_per_s": 3})
    time.sleep(1.05)
    for i in range(3):
        sent_ok(f.send(template(to="49170000000%d" % i)), to="49170000000%d" % i)
    graph_error(f.send(template(to="4917000000099")), 400, 130429,
                message="(#130429) Rate limit hit",
                details=lambda d: "in a short period of time" in d)
    time.sleep(1.05)
    sent_ok(f.send(template(to="4917000000099")), to="4917000000099", what="after a second")
    st = f.ctl("state", method="GET")["stats"]
    eq(st["rate_limited"], 3, "rate_limited counter")


@case
def faults_error_codes(f, r):
    f.open_window()
    f.open_window(USER2)
    for code, title in ((131047, "Re-engagement message"),
                        (130429, "Rate limit hit"),
                        (131056, "(Business Account, Consumer Account) pair rate limit hit"),
                        (100, "Invalid parameter"),
                        (131026, "Message undeliverable"),
                        (131000, "Something went wrong"),
                        (131048, "Spam rate limit hit")):
        f.ctl("fault", {"kind": str(code)})
        err = graph_error(f.send(text()), 500 if code == 131000 else 400, code,
                          message="(#%d) %s" % (code, title), what="fault %d" % code)
        ok("details" in err["error_data"], "details present for %d" % code)
        sent_ok(f.send(text()), what="after fault %d" % code)
    err = f.ctl("fault", {"kind": "190"})
    err = graph_error(f.send(text()), 401, 190, what="fault 190 (expired token)")
    ok("Session has expired" in err["message"], "expired token text")
    # count and to
    f.ctl("fault", {"kind": "131026", "count": 2, "to": "+" + USER2})
    sent_ok(f.send(text()), what="fault for another user does not match")
    graph_error(f.send(text(to=USER2)), 400, 131026, what="first of 2")
    graph_error(f.send(text(to=USER2)), 400, 131026, what="second of 2")
    sent_ok(f.send(text(to=USER2)), to=USER2, what="faults used up")
    # custom details
    f.ctl("fault", {"kind": "100", "details": "Param x is broken."})
    graph_error(f.send(text()), 400, 100, details="Param x is broken.")
    # clear
    f.ctl("fault", {"kind": "131047", "count": 5})
    eq(f.ctl("clear_faults")["cleared"], 1, "cleared")
    sent_ok(f.send(text()), what="after clear_faults")
    calls = f.ctl("calls", {"endpoint": "messages"}, method="GET")["calls"]
    eq([c["fault"] for c in calls if c["fault"]][:3], ["131047", "130429", "131056"],
       "faults recorded")
    # faults never hit read receipts unless asked for
    f.ctl("fault", {"kind": "131047"})
    mid = f.ctl("message", {"from": USER, "text": "x", "deliver": False})["message_id"]
    st, obj = f.send({"messaging_product": "whatsapp", "status": "read", "message_id": mid})
    eq((st, obj), (200, {"success": True}), "read receipt skips a messages fault")
    graph_error(f.send(text()), 400, 131047, what="fault still pending for the send")


@case
def faults_5xx_envelopes(f, r):
    f.open_window()
    f.ctl("fault", {"kind": "500"})
    st, obj = f.send(text())
    eq(st, 500, "500 status")
    eq(obj["error"]["code"], 1, "code 1")
    eq(obj["error"]["message"], "An unknown error has occurred.", "code 1 text")
    eq(obj["error"]["type"], "OAuthException", "type")
    f.ctl("fault", {"kind": "503"})
    st, obj = f.send(text())
    eq(st, 503, "503 status")
    eq((obj["error"]["code"], obj["error"]["message"], obj["error"].get("is_transient")),
       (2, "(#2) Service temporarily unavailable", True), "code 2")
    eq(len(f.ctl("sent", method="GET")["messages"]), 0, "nothing sent by failed calls")


@case
def faults_delay_timeout_drop(f, r):
    f.open_window()
    f.ctl("fault", {"kind": "delay", "delay": 0.6})
    t0 = time.monotonic()
    wamid = sent_ok(f.send(text("slow")), what="delayed send")
    ok(time.monotonic() - t0 >= 0.55, "answer came after the delay")
    eq(f.ctl("sent", method="GET")["messages"][0]["message_id"], wamid, "delayed send is sent")
    f.ctl("fault", {"kind": "timeout", "delay": 0.5})
    t0 = time.monotonic()
    st, _ = f.send(text("lost"), timeout=10)
    eq(st, None, "timeout: connection closed without an answer")
    ok(time.monotonic() - t0 >= 0.45, "closed after the delay")
    f.ctl("fault", {"kind": "drop"})
    st, _ = f.send(text("dropped"))
    eq(st, None, "drop: no answer")
    sent = [s["body"]["text"]["body"] for s in f.ctl("sent", method="GET")["messages"]]
    eq(sent, ["slow"], "timeout and drop are not carried out")
    calls = f.ctl("calls", method="GET")["calls"]
    eq([c["status"] for c in calls[-2:]], [None, None], "dropped calls have status null")
    eq(f.ctl("state", method="GET")["stats"]["dropped_connections"], 2, "dropped counter")
    # a long timeout is cut short by clear_faults
    f.ctl("fault", {"kind": "timeout", "delay": 60})
    getter = in_thread(lambda: f.send(text(), timeout=30))
    time.sleep(0.3)
    f.ctl("clear_faults")
    t0 = time.monotonic()
    eq(getter(10)[0], None, "cut short")
    ok(time.monotonic() - t0 < 5, "promptly")


@case
def faults_on_media_and_phone(f, r):
    f.ctl("fault", {"kind": "503", "endpoint": "phone_number"})
    eq(f.graph("GET", "/" + PNID)[0], 503, "phone number fault")
    eq(f.graph("GET", "/" + PNID)[0], 200, "then fine")
    mid = f.ctl("media", {"data_b64": base64.b64encode(b"abc").decode()})["media_id"]
    f.ctl("fault", {"kind": "500", "endpoint": "media"})
    eq(f.graph("GET", "/" + mid)[0], 500, "media info fault")
    st, info = f.graph("GET", "/" + mid)
    f.ctl("fault", {"kind": "503", "endpoint": "media_download"})
    eq(f.request(info["url"][len(f.base):], headers={"Authorization": "Bearer " + TOKEN})[0],
       503, "download fault")
    eq(f.request(info["url"][len(f.base):], headers={"Authorization": "Bearer " + TOKEN})[0],
       200, "download then fine")
    f.ctl("fault", {"kind": "bogus"}, expect=400)
    f.ctl("fault", {"kind": "500", "endpoint": "nowhere"}, expect=400)


@case
def fault_as_failed_status(f, r):
    f.open_window()
    f.ctl("fault", {"kind": "131047", "as_status": True})
    wamid = sent_ok(f.send(text()), what="accepted synchronously")
    req = r.wait(1)[0]
    ok(sig_ok(req), "status webhook signed")
    st = value_of(req["body"])["statuses"][0]
    eq((st["id"], st["status"], st["recipient_id"]), (wamid, "failed", USER), "failed status")
    eq(st["errors"][0]["code"], 131047, "error code in the status")
    eq(st["errors"][0]["title"], "Re-engagement message", "title")
    eq(st["errors"][0]["error_data"]["details"], WINDOW_DETAILS, "details")


@case
def media_endpoints(f, r):
    data = bytes(range(256)) * 3
    out = f.ctl("message", {"from": USER, "kind": "image", "mime_type": "image/jpeg",
                            "data_b64": base64.b64encode(data).decode(), "caption": "pump"})
    mid = out["media_id"]
    st, info = f.graph("GET", "/" + mid)
    eq(st, 200, "GET media")
    eq(sorted(info), ["file_size", "id", "messaging_product", "mime_type", "sha256", "url"],
       "media object keys")
    eq((info["id"], info["mime_type"], info["file_size"], info["messaging_product"]),
       (mid, "image/jpeg", len(data), "whatsapp"), "media object")
    eq(info["sha256"], hashlib.sha256(data).hexdigest(), "sha256 hex")
    ok(info["url"].startswith(f.base + "/whatsapp_business/attachments/?mid=" + mid),
       "url on the fake: %s" % info["url"])
    path = info["url"][len(f.base):]
    st, body, hdrs = f.request(path, headers={"Authorization": "Bearer " + TOKEN})
    eq((st, body, hdrs.get("Content-Type")), (200, data, "image/jpeg"), "download")
    eq(f.request(path)[0], 401, "download without token")
    eq(f.request(path, headers={"Authorization": "Bearer nope"})[0], 401, "wrong token")
    bad = path.replace("hash=", "hash=x")
    eq(f.request(bad, headers={"Authorization": "Bearer " + TOKEN})[0], 404, "unknown url")
    _, info2 = f.graph("GET", "/" + mid)
    ok(info2["url"] != info["url"], "each GET issues a fresh url")
    graph_error(f.graph("GET", "/1234567890123"), 400, 100, subcode=33, what="unknown media id")
    graph_error(f.graph("GET", "/" + mid, token="bad"), 401, 190, what="media wrong token")
    f.ctl("config", {"media_url_ttl_s": 0.4})
    _, info3 = f.graph("GET", "/" + mid)
    p3 = info3["url"][len(f.base):]
    eq(f.request(p3, headers={"Authorization": "Bearer " + TOKEN})[0], 200, "fresh")
    time.sleep(0.5)
    eq(f.request(p3, headers={"Authorization": "Bearer " + TOKEN})[0], 404, "expired url")
    st = f.ctl("state", method="GET")["media"][mid]
    eq((st["urls_issued"], st["downloads"]), (3, 2), "media counters")
    calls = f.ctl("calls", {"endpoint": "media_download"}, method="GET")["calls"]
    eq([c["status"] for c in calls], [200, 401, 401, 404, 200, 404], "downloads recorded")
    eq(calls[0]["response"], {"bytes": len(data), "content_type": "image/jpeg"}, "download record")


@case
def webhook_text_message(f, r):
    out = f.ctl("message", {"from": USER, "name": "Anna Schmidt", "text": "status pump 3"})
    reqs = r.wait(1)
    req = reqs[0]
    eq(req["method"], "POST", "POST")
    eq(req["path"], "/webhook/whatsapp", "path")
    eq(req["headers"]["content-type"], "application/json", "content type")
    ok(sig_ok(req), "X-Hub-Signature-256 valid")
    ok(req["headers"]["x-hub-signature"].startswith("sha1="), "legacy sha1 header too")
    eq(req["body"], out["body"].encode(), "returned body is the exact body sent")
    eq(out["signature"], req["headers"]["x-hub-signature-256"], "returned signature")
    eq(out["deliveries"][0]["status"], 200, "Rivet's status")
    eq(out["deliveries"][0]["body"], "EVENT_RECEIVED", "Rivet's answer body")
    v = value_of(req["body"])
    eq(v["contacts"], [{"profile": {"name": "Anna Schmidt"}, "wa_id": USER}], "contacts")
    eq(len(v["messages"]), 1, "one message")
    m = v["messages"][0]
    eq((m["from"], m["id"], m["type"], m["text"]), (USER, out["message_id"], "text",
                                                    {"body": "status pump 3"}), "message")
    ok(m["timestamp"].isdigit() and abs(int(m["timestamp"]) - time.time()) < 5, "timestamp")
    ok("context" not in m, "no context")
    ok(f.ctl("state", method="GET")["users"][USER]["window_open"], "window opened")
    eq(json.loads(req["body"]), out["body_json"], "body_json")


@case
def webhook_escapes_like_meta(f, r):
    out = f.ctl("message", {"from": USER, "text": "Größe 3/4 \U0001F527"})
    raw = r.wait(1)[0]["body"]
    ok(raw.isascii(), "non-ASCII escaped")
    ok(b"\\u00f6" in raw and b"\\ud83d\\udd27" in raw, "\\u escapes (surrogate pairs)")
    ok(b"3\\/4" in raw, "slash escaped as \\/")
    eq(json.loads(raw)["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"],
       "Größe 3/4 \U0001F527", "decodes back")
    out = f.ctl("message", {"from": USER, "text": "Größe", "json_style": "utf8"})
    ok("Größe".encode() in r.wait(2)[1]["body"], "json_style utf8")
    ok(out["deliveries"][0]["status"] == 200, "delivered")


@case
def webhook_message_kinds(f, r):
    f.open_window()
    wamid = sent_ok(f.send(buttons([("ack:7", "Acknowledge")])))
    out = f.ctl("message", {"from": USER, "kind": "button_reply", "id": "ack:7",
                            "title": "Acknowledge"})
    m = value_of(r.wait(1)[0]["body"])["messages"][0]
    eq(m["type"], "interactive", "button_reply type")
    eq(m["interactive"], {"type": "button_reply",
                          "button_reply": {"id": "ack:7", "title": "Acknowledge"}}, "button_reply")
    eq(m["context"]["id"], wamid, "context defaults to the last message sent to the user")
    ok(m["context"]["from"].isdigit(), "context.from is the business number")
    f.ctl("message", {"from": USER, "kind": "list_reply", "id": "eq:12", "title": "Press 12",
                      "description": "Hall B", "context_id": "wamid.CTX"})
    m = value_of(r.wait(2)[1]["body"])["messages"][0]
    eq(m["interactive"], {"type": "list_reply", "list_reply": {
        "id": "eq:12", "title": "Press 12", "description": "Hall B"}}, "list_reply")
    eq(m["context"]["id"], "wamid.CTX", "explicit context_id")
    f.ctl("message", {"from": USER, "kind": "button", "payload": "ack:9", "text": "Acknowledge",
                      "message_id": "wamid.CHOSEN"})
    m = value_of(r.wait(3)[2]["body"])["messages"][0]
    eq((m["type"], m["button"], m["id"]),
       ("button", {"payload": "ack:9", "text": "Acknowledge"}, "wamid.CHOSEN"),
       "template quick reply")
    data = b"%PDF-1.4 fake"
    out = f.ctl("message", {"from": USER, "kind": "document", "filename": "manual.pdf",
                            "mime_type": "application/pdf", "caption": "manual",
                            "data_b64": base64.b64encode(data).decode()})
    m = value_of(r.wait(4)[3]["body"])["messages"][0]
    eq(m["type"], "document", "document")
    eq((m["document"]["id"], m["document"]["filename"], m["document"]["mime_type"],
        m["document"]["caption"]), (out["media_id"], "manual.pdf", "application/pdf", "manual"),
       "document fields")
    eq(m["document"]["sha256"], base64.b64encode(hashlib.sha256(data).digest()).decode(),
       "webhook sha256 is base64")
    img = f.ctl("message", {"from": USER, "kind": "image", "mime_type": "image/png",
                            "data_b64": base64.b64encode(b"PNG").decode()})
    m = value_of(r.wait(5)[4]["body"])["messages"][0]
    eq(sorted(m["image"]), ["id", "mime_type", "sha256"], "image without caption")
    eq(m["image"]["id"], img["media_id"], "image media id")
    f.ctl("message", {"from": USER, "text": "re", "context_id": "wamid.PREV"})
    m = value_of(r.wait(6)[5]["body"])["messages"][0]
    eq(m["context"]["id"], "wamid.PREV", "text reply context")
    for i, kind in enumerate(("sticker", "location", "unsupported", "audio", "reaction")):
        f.ctl("message", {"from": USER, "kind": kind})
        m = value_of(r.wait(7 + i)[6 + i]["body"])["messages"][0]
        eq(m["type"], kind, kind)
        ok(kind in m or kind == "unsupported", "%s object" % kind)
    eq(m["reaction"]["emoji"], "\U0001F44D", "reaction emoji")
    m = value_of(r.requests[8]["body"])["messages"][0]
    eq(m["errors"][0]["code"], 131051, "unsupported carries errors[]")
    f.ctl("message", {"from": USER, "message": {"from": USER, "id": "wamid.RAW",
                                                "timestamp": "1", "type": "order"}})
    m = value_of(r.wait(12)[11]["body"])["messages"][0]
    eq(m, {"from": USER, "id": "wamid.RAW", "timestamp": "1", "type": "order"}, "verbatim")
    m = f.ctl("message", {"from": USER, "kind": "video"})["body_json"]
    eq(m["entry"][0]["changes"][0]["value"]["messages"][0]["type"], "video", "video")
    f.ctl("message", {"from": USER, "kind": "image"}, expect=400)   # needs data
    f.ctl("message", {"from": "abc", "text": "x"}, expect=400)
    f.ctl("message", {"from": USER, "kind": "teleport"}, expect=400)


@case
def webhook_signature_modes(f, r):
    results = {}
    for i, mode in enumerate(("valid", "missing", "wrong", "other_body", "tamper", "uppercase",
                              "no_prefix", "malformed", "empty", "sha1_only")):
        out = f.ctl("message", {"from": USER, "text": "sig test", "signature": mode,
                                "message_id": "wamid.SIG%d" % i})
        req = r.wait(i + 1)[i]
        results[mode] = (req, out)
    req, out = results["valid"]
    ok(sig_ok(req), "valid")
    req, _ = results["missing"]
    ok("x-hub-signature-256" not in req["headers"] and "x-hub-signature" not in req["headers"],
       "missing: no signature headers")
    for mode in ("wrong", "other_body"):
        req, _ = results[mode]
        h = req["headers"]["x-hub-signature-256"]
        ok(h.startswith("sha256=") and len(h) == 71 and not sig_ok(req), "%s: well-formed, "
           "not valid" % mode)
    req, out = results["tamper"]
    ok(not sig_ok(req), "tamper: signature does not match")
    orig = json.dumps(out["body_json"], ensure_ascii=True, separators=(",", ":")).replace(
        "/", "\\/").encode()
    eq(len(orig), len(req["body"]), "tamper keeps the length")
    eq(sum(1 for a, b in zip(orig, req["body"]) if a != b), 1, "exactly one byte differs")
    eq(req["headers"]["x-hub-signature-256"], "sha256=" + hmac.new(
        SECRET.encode(), orig, hashlib.sha256).hexdigest(), "signed before tampering")
    eq(out["deliveries"][0]["tampered_offset"],
       next(i for i, (a, b) in enumerate(zip(orig, req["body"])) if a != b), "offset reported")
    req, _ = results["uppercase"]
    h = req["headers"]["x-hub-signature-256"]
    eq(h.lower(), "sha256=" + hmac.new(SECRET.encode(), req["body"], hashlib.sha256).hexdigest(),
       "uppercase hex of the right HMAC")
    ok(h[7:].isupper() or h[7:].isdigit(), "upper case")
    req, _ = results["no_prefix"]
    eq(len(req["headers"]["x-hub-signature-256"]), 64, "no sha256= prefix")
    req, _ = results["malformed"]
    ok(req["headers"]["x-hub-signature-256"].startswith("sha256=zz"), "malformed hex")
    req, _ = results["empty"]
    eq(req["headers"]["x-hub-signature-256"], "", "empty header")
    req, _ = results["sha1_only"]
    ok("x-hub-signature-256" not in req["headers"] and
       req["headers"]["x-hub-signature"].startswith("sha1="), "sha1 only")
    f.ctl("message", {"from": USER, "text": "x", "signature": "bogus"}, expect=400)


@case
def webhook_duplicates_and_rivet_answers(f, r):
    out = f.ctl("message", {"from": USER, "text": "dup", "times": 3})
    reqs = r.wait(3)
    eq(len(out["deliveries"]), 3, "three deliveries reported")
    eq(len({q["body"] for q in reqs}), 1, "same body each time")
    eq(len({q["headers"]["x-hub-signature-256"] for q in reqs}), 1, "same signature")
    r.answer_status, r.answer_body = 500, b"boom"
    out = f.ctl("message", {"from": USER, "text": "x"})
    eq((out["deliveries"][0]["status"], out["deliveries"][0]["body"]), (500, "boom"),
       "Rivet's failure reported")
    r.answer_status, r.answer_body = 200, b""
    out = f.ctl("message", {"from": USER, "text": "x", "deliver": False})
    eq(out["deliveries"], [], "deliver false")
    ok(out["signature"] == "sha256=" + hmac.new(SECRET.encode(), out["body"].encode(),
                                                hashlib.sha256).hexdigest(), "signature returned")
    eq(len(r.requests), 4, "nothing delivered for deliver false")
    # unreachable webhook: refused connection reported, not an error of the control call
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = "http://127.0.0.1:%d/hook" % s.getsockname()[1]
    s.close()
    out = f.ctl("message", {"from": USER, "text": "x", "webhook_url": dead})
    eq(out["deliveries"][0]["status"], None, "no status")
    ok("Refused" in out["deliveries"][0]["error"], "error text: %r" % out["deliveries"][0])
    # Rivet too slow: webhook_timeout_s
    f.ctl("config", {"webhook_timeout_s": 0.3})
    r.answer_delay = 1.0
    out = f.ctl("message", {"from": USER, "text": "slow"})
    ok(out["deliveries"][0]["status"] is None and "timed out" in out["deliveries"][0]["error"],
       "timeout reported: %r" % out["deliveries"][0])
    r.answer_delay = 0.0
    hooks = f.ctl("webhooks", {"kind": "message"}, method="GET")["webhooks"]
    eq(len(hooks), 6, "deliveries logged (not the one with deliver false)")
    eq([h["attempt"] for h in hooks[:3]], [1, 2, 3], "attempts")
    ok(all(h["message_id"] for h in hooks), "message ids logged")


@case
def webhook_urls_must_be_loopback(f, r):
    for url in ("http://10.1.2.3/hook", "https://127.0.0.1/hook", "http://example.com/hook",
                "ftp://127.0.0.1/x"):
        f.ctl("message", {"from": USER, "text": "x", "webhook_url": url}, expect=400)
        f.ctl("config", {"webhook_url": url}, expect=400)
    f.ctl("message", {"from": USER, "text": "x", "webhook_url": "http://localhost:%d/a" % r.port})
    f.ctl("message", {"from": USER, "text": "x", "webhook_url": "http://127.0.0.2:1/a"})
    eq(len(r.requests), 1, "localhost allowed")
    f.ctl("config", {"webhook_url": None})
    f.ctl("message", {"from": USER, "text": "x"}, expect=400)   # no webhook configured


@case
def status_webhooks(f, r):
    f.open_window()
    wamid = sent_ok(f.send(text()))
    for i, st in enumerate(("sent", "delivered", "read")):
        out = f.ctl("status", {"message_id": wamid, "status": st})
        req = r.wait(i + 1)[i]
        ok(sig_ok(req), "signed")
        v = value_of(req["body"])
        ok("messages" not in v and "contacts" not in v, "only statuses")
        s = v["statuses"][0]
        eq((s["id"], s["status"], s["recipient_id"]), (wamid, st, USER), st)
        ok(s["timestamp"].isdigit(), "timestamp")
        eq("conversation" in s, st != "read", "conversation on sent/delivered")
        eq(out["deliveries"][0]["status"], 200, "delivered")
    f.ctl("status", {"message_id": wamid, "status": "failed", "error_code": 131026})
    s = value_of(r.wait(4)[3]["body"])["statuses"][0]
    eq(s["status"], "failed", "failed")
    e = s["errors"][0]
    eq((e["code"], e["title"], e["message"], e["error_data"]["details"]),
       (131026, "Message undeliverable", "Message undeliverable", "Message Undeliverable."),
       "failed status error")
    f.ctl("status", {"message_id": "wamid.OTHER", "status": "failed", "error_code": 131047,
                     "recipient_id": USER2, "error_details": "custom"})
    s = value_of(r.wait(5)[4]["body"])["statuses"][0]
    eq((s["recipient_id"], s["errors"][0]["code"], s["errors"][0]["error_data"]["details"]),
       (USER2, 131047, "custom"), "explicit recipient")
    f.ctl("status", {"message_id": "wamid.UNKNOWN"}, expect=400)
    f.ctl("status", {"message_id": wamid, "status": "exploded"}, expect=400)
    f.ctl("webhook_errors", {"code": 131000, "details": "system trouble"})
    v = value_of(r.wait(6)[5]["body"])
    eq((v["errors"][0]["code"], v["errors"][0]["error_data"]["details"]),
       (131000, "system trouble"), "value.errors[]")


@case
def auto_statuses(f, r):
    f.open_window()
    eq(f.ctl("auto_statuses", {"on": True, "read": True}),
       {"on": True, "read": True, "delay_s": 0.05}, "switched on")
    wamid = sent_ok(f.send(text()))
    reqs = r.wait(3)
    got = [value_of(q["body"])["statuses"][0] for q in reqs]
    eq([(s["id"], s["status"]) for s in got],
       [(wamid, "sent"), (wamid, "delivered"), (wamid, "read")], "statuses in order")
    ok(all(sig_ok(q) for q in reqs), "signed")
    hooks = f.ctl("webhooks", {"kind": "status", "count": 3, "timeout": 5}, method="GET")
    eq(len(hooks["webhooks"]), 3, "logged")
    ok(all(h["auto"] for h in hooks["webhooks"]), "marked auto")
    f.ctl("auto_statuses", {"on": False})
    sent_ok(f.send(text()))
    time.sleep(0.3)
    eq(len(r.requests), 3, "off again")
    graph_error(f.send(text(to=USER2)), 400, 131047, what="failed sends get no statuses")
    f.ctl("auto_statuses", {"on": "on", "read": False})
    sent_ok(f.send(template(to=USER2)), to=USER2)
    reqs = r.wait(5)
    eq([value_of(q["body"])["statuses"][0]["status"] for q in reqs[3:]], ["sent", "delivered"],
       "without read")


@case
def raw_webhooks(f, r):
    out = f.ctl("raw_webhook", {"body": "{\"object\": broken"})
    req = r.wait(1)[0]
    eq(req["body"], b"{\"object\": broken", "exact bytes")
    ok(sig_ok(req), "validly signed")
    eq(out["deliveries"][0]["status"], 200, "Rivet's answer")
    f.ctl("raw_webhook", {"body_b64": base64.b64encode(b"\xff\xfe").decode(),
                          "signature": "wrong", "content_type": "text/plain"})
    req = r.wait(2)[1]
    eq((req["body"], req["headers"]["content-type"]), (b"\xff\xfe", "text/plain"), "raw bytes")
    ok(not sig_ok(req), "wrong signature")
    f.ctl("raw_webhook", {"body": "", "signature": "missing"})
    eq(r.wait(3)[2]["body"], b"", "empty body")
    f.ctl("raw_webhook", {}, expect=400)


@case
def webhook_verification(f, r):
    out = f.ctl("verify", {"verify_token": VERIFY_TOKEN, "challenge": "1158201444"})
    eq((out["status"], out["body"], out["echoed"]), (200, "1158201444", True), "verified")
    req = r.wait(1)[0]
    eq(req["method"], "GET", "GET")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(req["path"]).query)
    eq((q["hub.mode"], q["hub.challenge"], q["hub.verify_token"]),
       (["subscribe"], ["1158201444"], [VERIFY_TOKEN]), "query")
    out = f.ctl("verify", {"verify_token": "wrong"})
    eq((out["status"], out["echoed"]), (403, False), "wrong token refused by the receiver")
    ok(out["challenge"].isdigit(), "random challenge")


@case
def read_receipts(f, r):
    mid = f.ctl("message", {"from": USER, "text": "hi"})["message_id"]
    st, obj = f.send({"messaging_product": "whatsapp", "status": "read", "message_id": mid})
    eq((st, obj), (200, {"success": True}), "marked read")
    st, obj = f.send({"messaging_product": "whatsapp", "status": "read", "message_id": mid,
                      "typing_indicator": {"type": "text"}})
    eq((st, obj), (200, {"success": True}), "typing indicator")
    invalid(f.send({"messaging_product": "whatsapp", "status": "read",
                    "message_id": "wamid.NOPE"}), "message_id")
    invalid(f.send({"messaging_product": "whatsapp", "status": "delivered",
                    "message_id": mid}), "status must be \"read\"")
    calls = f.ctl("calls", {"endpoint": "read"}, method="GET")["calls"]
    eq(len(calls), 4, "read endpoint recorded")
    eq(f.ctl("sent", method="GET")["messages"], [], "read receipts are not sends")
    f.ctl("raw_webhook", {"body": json.dumps({"entry": [{"changes": [{"value": {
        "messages": [{"id": "wamid.FROMRAW"}]}}]}]})})
    st, _ = f.send({"messaging_product": "whatsapp", "status": "read",
                    "message_id": "wamid.FROMRAW"})
    eq(st, 200, "ids in raw webhooks count as received")


@case
def calls_and_wait(f, r):
    last = f.ctl("calls", method="GET")["last_seq"]
    f.graph("GET", "/" + PNID)
    got = f.ctl("calls", {"since": last}, method="GET")
    eq([c["seq"] for c in got["calls"]], [last + 1], "since")
    getter = in_thread(lambda: f.ctl("wait", {"since": last + 1, "timeout": 10}, method="GET"))
    time.sleep(0.3)
    f.open_window()
    sent_ok(f.send(text("awaited")))
    res = getter()
    eq(res["timed_out"], False, "woken by the call")
    eq(res["calls"][0]["body"]["text"]["body"], "awaited", "the new call")
    t0 = time.monotonic()
    res = f.ctl("wait", {"since": res["last_seq"], "timeout": 0.4}, method="GET")
    ok(res["timed_out"] and res["calls"] == [] and 0.35 <= time.monotonic() - t0 < 3,
       "bounded wait")
    res = f.ctl("wait", {"since": 0, "count": 2, "endpoint": "messages", "timeout": 0.2},
                method="GET")
    eq((res["timed_out"], len(res["calls"])), (True, 1), "count and endpoint filters")
    res = f.ctl("wait", {"since": 0, "to": USER, "timeout": 1}, method="GET")
    eq(len(res["calls"]), 1, "to filter")


@case
def sent_state_and_reset(f, r):
    f.open_window()
    f.open_window(USER2)
    a = sent_ok(f.send(text("one")))
    sent_ok(f.send(text("two", to=USER2)), to=USER2)
    c = sent_ok(f.send(text("three")))
    eq([s["message_id"] for s in f.ctl("sent", {"to": USER}, method="GET")["messages"]],
       [a, c], "sent to one user, in order")
    eq(len(f.ctl("sent", method="GET")["messages"]), 3, "all sends")
    f.ctl("media", {"data_b64": "AAAA"})
    f.ctl("fault", {"kind": "500"})
    st = f.ctl("state", method="GET")
    eq(sorted(st["users"]), sorted([USER, USER2]), "users")
    eq(len(st["media"]), 1, "media")
    eq(len(st["faults"]), 1, "faults")
    eq(st["stats"]["sends_ok"], 3, "sends_ok")
    eq(st["config"]["window"], True, "config")
    last = st["last_seq"]
    eq(f.ctl("reset")["reset"], True, "reset")
    st = f.ctl("state", method="GET")
    eq((st["users"], st["media"], st["faults"], st["sent_count"]), ({}, {}, [], 0), "forgotten")
    eq(st["last_seq"], last, "seq keeps counting")
    f.graph("GET", "/" + PNID)
    eq(f.ctl("calls", method="GET")["calls"][0]["seq"], last + 1, "next seq")
    graph_error(f.send(text()), 400, 131047, what="window forgotten by reset")


@case
def form_and_chunked_bodies(f, r):
    f.open_window()
    form = urllib.parse.urlencode({"messaging_product": "whatsapp", "to": USER, "type": "text",
                                   "text": json.dumps({"body": "form"})}).encode()
    st, obj = f.graph("POST", "/%s/messages" % PNID, raw=form,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    sent_ok((st, obj), what="form-encoded body")
    conn = http.client.HTTPConnection("127.0.0.1", f.port, timeout=10)
    try:
        def chunks():
            yield json.dumps(text("chunked"))[:20].encode()
            yield json.dumps(text("chunked"))[20:].encode()
        conn.request("POST", "/v21.0/%s/messages" % PNID, chunks(),
                     {"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN},
                     encode_chunked=True)
        resp = conn.getresponse()
        sent_ok((resp.status, json.loads(resp.read())), what="chunked body")
        # keep-alive: a second request on the same connection
        conn.request("GET", "/v21.0/" + PNID, headers={"Authorization": "Bearer " + TOKEN})
        resp = conn.getresponse()
        eq(resp.status, 200, "keep-alive")
        resp.read()
    finally:
        conn.close()
    status, body, _ = f.request("/control/state", b"not json", {"Content-Type": "application/json"})
    eq(status, 400, "bad control body")
    eq(f.request("/control/nonsense")[0], 404, "unknown control endpoint")


@case
def helpers_are_importable(f, r):
    sys.path.insert(0, HERE)
    try:
        import fake_whatsapp as fw
    finally:
        sys.path.pop(0)
    body = b'{"x":1}'
    eq(fw.sign(SECRET, body), "sha256=" + hmac.new(SECRET.encode(), body,
                                                   hashlib.sha256).hexdigest(), "sign")
    obj = fw.build_message_body(USER, "button_reply", name="Bob", phone_number_id=PNID,
                                id="ack:1", title="OK", context_id="wamid.C")
    v = value_of(fw.encode_body(obj))
    m = v["messages"][0]
    eq((m["type"], m["interactive"]["button_reply"], m["context"]["id"], v["contacts"][0]),
       ("interactive", {"id": "ack:1", "title": "OK"}, "wamid.C",
        {"profile": {"name": "Bob"}, "wa_id": USER}), "build_message_body")
    obj = fw.build_status_body("wamid.X", "failed", USER, PNID, error_code=131047)
    s = value_of(fw.encode_body(obj))["statuses"][0]
    eq((s["status"], s["errors"][0]["code"]), ("failed", 131047), "build_status_body")
    eq(fw.encode_body({"a": "é/"}), b'{"a":"\\u00e9\\/"}', "meta escaping")
    eq(fw.encode_body({"a": "é"}, "utf8"), '{"a":"é"}'.encode(), "utf8 style")
    # a body crafted in Python, posted with the fake's own signing via raw_webhook
    raw = fw.encode_body(fw.build_message_body(USER, "text", text="crafted", phone_number_id=PNID))
    f.ctl("raw_webhook", {"body_b64": base64.b64encode(raw).decode()})
    req = r.wait(1)[0]
    eq(req["headers"]["x-hub-signature-256"], fw.sign(SECRET, raw), "same signature")


@case
def cli_options_and_sigterm(f, r):
    g = Fake(r.url, "--rate-limits", "on", "--window", "off", "--media-url-ttl-s", "7")
    try:
        cfg = g.ctl("state", method="GET")["config"]
        eq((cfg["rate_limits"], cfg["window"], cfg["media_url_ttl_s"], cfg["webhook_url"]),
           (True, False, 7.0, r.url), "CLI settings")
        sent_ok(g.send(text()), what="--window off")
        g.ctl("reset")
        eq(g.ctl("state", method="GET")["config"]["window"], False, "reset keeps CLI settings")
        getter = in_thread(lambda: g.ctl("wait", {"since": 99, "timeout": 60}, method="GET"))
        time.sleep(0.3)
        t0 = time.monotonic()
        eq(g.stop(signal.SIGTERM), 0, "exit status after SIGTERM")
        ok(time.monotonic() - t0 < 5, "stopped promptly despite a waiting call")
        try:
            getter(5)
        except Exception:
            pass
        ok("Traceback" not in g.log(), "no traceback on stderr")
    finally:
        g.stop(signal.SIGKILL)
    # a non-loopback webhook URL is refused at start
    d = tempfile.mkdtemp(prefix="fake-whatsapp-selftest-")
    p = subprocess.run([sys.executable, FAKE, "--port", "0", "--port-file",
                        os.path.join(d, "port"), "--token", "t", "--phone-number-id", "1",
                        "--app-secret", "s", "--webhook-url", "http://192.0.2.1/hook"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=20)
    eq(p.returncode, 2, "refused non-loopback --webhook-url")
    ok(not os.path.exists(os.path.join(d, "port")), "no port file")
    h = Fake()
    try:
        eq(h.stop(signal.SIGINT), 0, "exit status after SIGINT")
    finally:
        h.stop(signal.SIGKILL)


# -- runner ------------------------------------------------------------------------------

def main(argv):
    verbose = "-v" in argv
    wanted = [a for a in argv if a != "-v"]
    cases = [c for c in CASES if not wanted or any(w in c.__name__ for w in wanted)]
    print("1..%d" % len(cases), flush=True)
    try:
        r = Receiver()
        f = Fake(r.url)
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
                r.reset()
                note = c(f, r)
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
        st = f.ctl("state", method="GET")["stats"]
        if st["internal_errors"]:
            print("# the fake counted %d internal errors" % st["internal_errors"])
            failed += 1
    finally:
        rc = f.stop()
        r.close()
        if rc != 0:
            print("# fake exited with %r" % rc)
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
