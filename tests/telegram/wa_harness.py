"""Helpers for Rivet's WhatsApp end-to-end tests: the fake Graph API
(tests/fake_whatsapp/fake_whatsapp.py) as a process with its control API,
the settings that point a `rivet serve` at it, and what a test reads from
the messages Rivet sent (text, reply buttons, list rows, templates).

Used next to harness.py (Env, Rivet, Broker, wait_until, Tap): a test
starts the fake with WAFake(env), starts rivet with wa_settings(fake), then
tells the fake where Rivet's webhook is (fake.set_webhook(rivet)).

Synchronisation is a bounded wait on the fake's /control/wait (it returns
as soon as a new Graph API call arrives); nothing sleeps to let something
happen. Python 3 standard library only.
"""

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import harness as H
from harness import Fail, check

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_WA_DIR = os.path.normpath(os.path.join(HERE, "..", "fake_whatsapp"))
FAKE_WA = os.path.join(FAKE_WA_DIR, "fake_whatsapp.py")

# Distinctive secrets, so that a leak into a log is unmistakable.
WA_TOKEN = "EAAGrivetWAtokenMUSTneverBEloggedZx81Q"
WA_APP_SECRET = "rivetAPPsecretNEVERinLOGS_7h3Kq"
WA_VERIFY_TOKEN = "rivetVERIFYtokenNOTinLOGS_p2Lm"
PHONE_NUMBER_ID = "106540352242922"
TEMPLATE = "rivet_alarm_test"
TEMPLATE_LANGUAGE = "en"

UNSUPPORTED = "Rivet reads text, commands, button presses and photos of nameplates."


def fake_module():
    """The fake as a module, for sign(), build_message_body()..."""
    if FAKE_WA_DIR not in sys.path:
        sys.path.insert(0, FAKE_WA_DIR)
    import fake_whatsapp  # noqa: E402
    return fake_whatsapp


def wa_settings(fake, **more):
    """The settings of a rivet serve on the fake (pass to env.rivet())."""
    s = {
        "WHATSAPP_TOKEN": WA_TOKEN,
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WHATSAPP_APP_SECRET": WA_APP_SECRET,
        "WHATSAPP_VERIFY_TOKEN": WA_VERIFY_TOKEN,
        "WHATSAPP_API_URL": fake.url + "/v21.0",
        "WHATSAPP_ALARM_TEMPLATE": TEMPLATE,
        "WHATSAPP_ALARM_TEMPLATE_LANGUAGE": TEMPLATE_LANGUAGE,
        "WHATSAPP_USER_INTERVAL_MS": "0",
        "WHATSAPP_PER_SECOND": "1000",
        "WHATSAPP_SENDERS": "2",
    }
    s.update(more)
    return s


def webhook_url(rivet):
    return "http://127.0.0.1:%d/webhook/whatsapp" % rivet.http_port()


class WAFake:
    """A running fake WhatsApp Cloud API and its control API."""

    def __init__(self, env, *extra):
        self.env = env
        port_file = os.path.join(env.tmp, "fake_wa.port")
        self.stderr_path = os.path.join(env.tmp, "fake_wa.stderr")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE_WA, "--port", "0", "--port-file", port_file,
             "--token", WA_TOKEN, "--phone-number-id", PHONE_NUMBER_ID,
             "--app-secret", WA_APP_SECRET] + list(extra),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
            preexec_fn=H._pdeathsig)

        def ready():
            if self.proc.poll() is not None:
                raise Fail("the WhatsApp fake exited %s: %s" % (self.proc.returncode,
                                                                self.log_tail(20)))
            return os.path.exists(port_file)

        H.wait_until(ready, 20, "the WhatsApp fake's port file", interval=0.05)
        with open(port_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port
        # stopped and shown with the environment
        close = env.close

        def close_all(keep=False):
            close(keep)
            self.stop()

        env.close = close_all
        env.tap.diag_hooks.append(self._diag)

    def _diag(self):
        t = self.log_tail(10)
        return "--- tail of the WhatsApp fake's stderr ---\n" + t if t.strip() else ""

    def log_tail(self, n):
        try:
            with open(self.stderr_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.stderr.closed:
            self.stderr.close()

    # -- control API ---------------------------------------------------------

    def ctl(self, endpoint, /, http_timeout=None, **args):
        """POSTs args as JSON to /control/ENDPOINT; returns the answer."""
        if http_timeout is None:
            http_timeout = 60 + float(args.get("timeout") or 0)
        req = urllib.request.Request(self.url + "/control/" + endpoint,
                                     data=json.dumps(args).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=http_timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise Fail("WhatsApp control %s %r: HTTP %d %s" % (
                endpoint, args, e.code, e.read().decode(errors="replace")))

    def set_webhook(self, rivet):
        return self.ctl("config", webhook_url=webhook_url(rivet))

    def state(self):
        return self.ctl("state")

    def last_seq(self):
        return self.state()["last_seq"]

    def calls(self, since=0, endpoint=None, to=None):
        args = {"since": since}
        if endpoint:
            args["endpoint"] = endpoint
        if to:
            args["to"] = to
        return self.ctl("calls", **args)["calls"]

    def fault(self, kind, **kw):
        return self.ctl("fault", kind=str(kind), **kw)

    def window(self, wa, hours_ago=None, forget=False):
        if forget:
            return self.ctl("window", wa_id=wa, forget=True)
        return self.ctl("window", wa_id=wa, hours_ago=hours_ago)

    # -- webhooks ------------------------------------------------------------

    def message(self, wa, text=None, kind="text", expect=200, **kw):
        """A message from wa (text by default) posted to Rivet's webhook;
        checks that every delivery got expect (None: no check) and returns
        the control answer."""
        args = dict(kw)
        args["wa_id"] = wa
        args["kind"] = kind
        if text is not None:
            args["text"] = text
        got = self.ctl("message", **args)
        if expect is not None:
            statuses = [d["status"] for d in got["deliveries"]]
            check(statuses and all(s == expect for s in statuses),
                  "webhook deliveries of a %s from %s: expected %s, got %r" % (
                      kind, wa, expect, [(d["status"], d["error"], (d["body"] or "")[:200])
                                         for d in got["deliveries"]]))
        return got

    def image(self, wa, data, mime_type="image/jpeg", kind="image", **kw):
        return self.message(wa, kind=kind, data_b64=base64.b64encode(data).decode(),
                            mime_type=mime_type, **kw)

    def press(self, wa, button_id, title=None, kind="button_reply", **kw):
        """A press on a reply button (button_reply), a list row (list_reply)
        or a template's quick-reply button (button)."""
        if kind == "button":
            return self.message(wa, kind="button", payload=button_id, text=title or "Button",
                                **kw)
        return self.message(wa, kind=kind, id=button_id, title=title or "Button", **kw)

    def status(self, message_id, status, expect=200, **kw):
        got = self.ctl("status", message_id=message_id, status=status, **kw)
        if expect is not None:
            statuses = [d["status"] for d in got["deliveries"]]
            check(statuses and all(s == expect for s in statuses),
                  "status %s of %s: deliveries %r" % (status, message_id, got["deliveries"]))
        return got

    # -- what Rivet sent -----------------------------------------------------

    def wait_calls(self, pred, count, timeout, what, since=0, endpoint="messages", to=None):
        """Waits until at least count calls after seq since (of endpoint,
        to wa when given) satisfy pred; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            all_calls = self.calls(since, endpoint, to)
            good = [c for c in all_calls if pred(c)]
            if len(good) >= count:
                return good
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("timed out after %.1f s waiting for %s (%d of %d seen)%s" % (
                    timeout, what, len(good), count,
                    "".join("\n  seen: %s" % describe(c) for c in all_calls[-6:])))
            last = all_calls[-1]["seq"] if all_calls else since
            args = {"since": last, "count": 1, "timeout": min(left, 1.0)}
            if endpoint:
                args["endpoint"] = endpoint
            if to:
                args["to"] = to
            self.ctl("wait", **args)

    def replies(self, wa, count=1, since=0, timeout=20, contains=None):
        """count messages accepted for wa after since (with contains in
        their text when given)."""
        def pred(c):
            return c["ok"] and (contains is None or contains in text_of(c))
        return self.wait_calls(pred, count, timeout, "%d message(s) to %s%s" % (
            count, wa, " with %r" % contains if contains else ""), since=since, to=wa)

    def ask(self, wa, text, timeout=20, **kw):
        """Sends text from wa; returns the first message accepted for wa
        after it."""
        since = self.last_seq()
        self.message(wa, text, **kw)
        return self.replies(wa, 1, since=since, timeout=timeout)[0]

    def settle(self, wa, since, quiet=1.0, timeout=20):
        """Every message accepted for wa after since, once none came for
        quiet seconds (a bounded wait: used where a test must know that
        nothing more follows, e.g. a reply of several messages)."""
        deadline = time.monotonic() + timeout
        while True:
            before = self.calls(since, "messages", wa)
            last = before[-1]["seq"] if before else since
            got = self.ctl("wait", since=last, count=1, timeout=quiet, endpoint="messages",
                           to=wa)
            if got["timed_out"]:
                return [c for c in before if c["ok"]]
            if time.monotonic() >= deadline:
                raise Fail("messages to %s kept coming for %d s" % (wa, timeout))


def body_of(call):
    return call.get("body") or {}


def kind_of(call):
    """text, button, list, template or image."""
    b = body_of(call)
    t = b.get("type", "text")
    if t == "interactive":
        return (b.get("interactive") or {}).get("type")
    return t


def text_of(call):
    """What the user reads: a text's body, an interactive message's body,
    a template's body parameters (joined)."""
    b = body_of(call)
    t = b.get("type", "text")
    if t == "text":
        return (b.get("text") or {}).get("body", "")
    if t == "interactive":
        return ((b.get("interactive") or {}).get("body") or {}).get("text", "")
    if t == "template":
        out = []
        for comp in (b.get("template") or {}).get("components") or []:
            if str(comp.get("type", "")).lower() == "body":
                out += [p.get("text", "") for p in comp.get("parameters") or []]
        return " ".join(out)
    return ""


def buttons_of(call):
    """[(title, id)] of reply buttons or list rows."""
    inter = body_of(call).get("interactive") or {}
    action = inter.get("action") or {}
    if inter.get("type") == "button":
        return [(b["reply"]["title"], b["reply"]["id"]) for b in action.get("buttons") or []]
    if inter.get("type") == "list":
        return [(r["title"], r["id"]) for s in action.get("sections") or []
                for r in s.get("rows") or []]
    return []


def template_of(call):
    """(name, language, [body params], [(index, payload)]) of a template."""
    t = body_of(call).get("template") or {}
    params, payloads = [], []
    for comp in t.get("components") or []:
        typ = str(comp.get("type", "")).lower()
        if typ == "body":
            params += [p.get("text") for p in comp.get("parameters") or []]
        elif typ == "button":
            payloads += [(str(comp.get("index")), p.get("payload"))
                         for p in comp.get("parameters") or []]
    return t.get("name"), (t.get("language") or {}).get("code"), params, payloads


def describe(call):
    return "#%s %s to=%s ok=%s %s %s %r %r" % (
        call["seq"], call["endpoint"], call.get("to"), call.get("ok"),
        call.get("error_code") or "", kind_of(call) if call.get("body") else "",
        text_of(call)[:80], buttons_of(call)[:4])


def secret_leaks(env):
    """[(log file, line)] of every rivet log line holding a WhatsApp
    secret (the token, the app secret, the verify token)."""
    leaks = []
    for path, text in env.logs():
        for line in text.splitlines():
            if WA_TOKEN in line or WA_APP_SECRET in line or WA_VERIFY_TOKEN in line:
                leaks.append((os.path.basename(path), line[:300]))
    return leaks
