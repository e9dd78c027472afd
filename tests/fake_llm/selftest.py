#!/usr/bin/env python3
"""Self-test of the fake OpenAI-compatible LLM server (fake_llm.py).

Starts the fake on a free port of 127.0.0.1 (with --key), sends it good and
malformed chat completion requests, drives every control endpoint and fault,
and prints TAP: "1..N", then "ok K - name" or "not ok K - name" with "#"
diagnostics. Exits 1 if any case failed.

Run: python3 tests/fake_llm/selftest.py [-v] [name-substring ...]
"""

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_llm.py")
KEY = "sk-fake-selftest-0123456789abcdef"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
PROMPT = "Answer with one JSON object of nameplate fields."


class Fake:
    """A running fake_llm.py and helpers to talk to it."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="fake-llm-selftest-")
        self.port_file = os.path.join(self.dir, "port")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE, "--port", "0", "--port-file", self.port_file] + list(extra),
            stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("fake did not start: " + self.log())
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())

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
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def raw(self, method, path, body=b"", headers=None, timeout=10, conn=None):
        """(status, headers dict with lower-case names, body bytes)."""
        c = conn or self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            if conn is None:
                c.close()

    def control(self, path, obj=None, method=None):
        body = json.dumps(obj).encode() if obj is not None else b""
        status, _, data = self.raw(method or ("POST" if obj is not None else "GET"),
                                   "/control/" + path, body)
        return status, json.loads(data)

    def ok(self, path, obj=None, method=None):
        status, out = self.control(path, obj, method)
        if status != 200:
            raise AssertionError("control %s: %d %r" % (path, status, out))
        return out

    def chat(self, req, key=KEY, path="/v1/chat/completions", conn=None, timeout=10,
             raw_body=None):
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = "Bearer " + key
        body = raw_body if raw_body is not None else json.dumps(req).encode()
        status, hdrs, data = self.raw("POST", path, body, headers, timeout, conn)
        try:
            obj = json.loads(data)
        except ValueError:
            obj = None
        return status, hdrs, obj, data

    def requests(self):
        return self.ok("requests")


def data_url(image, mime="image/jpeg"):
    return "data:%s;base64,%s" % (mime, base64.b64encode(image).decode())


def request(image=JPEG, mime="image/jpeg", model="fake-vision", fmt=True, prompt=PROMPT,
            url=None, detail="high", **extra):
    req = {
        "model": model,
        "temperature": 0,
        "max_tokens": 600,
        "messages": [
            {"role": "system", "content": prompt},
            {"role": "user", "content": [
                {"type": "text", "text": "Read this equipment nameplate."},
                {"type": "image_url", "image_url": {
                    "url": url if url is not None else data_url(image, mime),
                    "detail": detail}},
            ]},
        ],
    }
    if fmt:
        req["response_format"] = {"type": "json_object"}
    req.update(extra)
    return req


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def expect_error(status, obj, want_status, want_code=None, want_param=None, contains=None):
    expect_eq(status, want_status, "status")
    expect(isinstance(obj, dict) and isinstance(obj.get("error"), dict), "error envelope %r" % obj)
    e = obj["error"]
    for k in ("message", "type", "param", "code"):
        expect(k in e, "error has %s" % k)
    expect(isinstance(e["message"], str) and e["message"], "error message")
    if want_code is not None:
        expect_eq(e["code"], want_code, "error code")
    if want_param is not None:
        expect_eq(e["param"], want_param, "error param")
    if contains is not None:
        expect(contains in e["message"], "message %r lacks %r" % (e["message"], contains))


def content_of(obj):
    return obj["choices"][0]["message"]["content"]


# ---- the cases --------------------------------------------------------------

def t_start_health(f):
    expect(f.port > 0, "port")
    expect_eq(f.ok("health"), {"ok": True}, "health")


def t_default_answer_shape(f):
    status, hdrs, obj, _ = f.chat(request())
    expect_eq(status, 200, "status")
    expect(hdrs["content-type"].startswith("application/json"), "content type")
    for k in ("id", "object", "created", "model", "choices", "usage", "system_fingerprint"):
        expect(k in obj, "chat.completion has %s" % k)
    expect(obj["id"].startswith("chatcmpl-"), "id")
    expect_eq(obj["object"], "chat.completion", "object")
    expect(isinstance(obj["created"], int), "created")
    expect_eq(obj["model"], "fake-vision", "model")
    ch = obj["choices"]
    expect_eq(len(ch), 1, "one choice")
    expect_eq(ch[0]["index"], 0, "index")
    expect_eq(ch[0]["finish_reason"], "stop", "finish_reason")
    expect_eq(ch[0]["message"]["role"], "assistant", "role")
    fields = json.loads(content_of(obj))
    expect_eq(fields["manufacturer"], "Baldor Electric", "default manufacturer")
    expect(fields["year"] is None, "a null field")
    u = obj["usage"]
    expect_eq(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"], "total_tokens")


def t_auth_missing(f):
    status, _, obj, _ = f.chat(request(), key=None)
    expect_error(status, obj, 401, contains="You didn't provide an API key")
    expect(obj["error"]["code"] is None, "code null")
    expect_eq(obj["error"]["type"], "invalid_request_error", "type")
    rq = f.requests()["requests"][-1]
    expect_eq(rq["auth"], "none", "logged auth")
    expect_eq(rq["status"], 401, "logged status")


def t_auth_wrong_not_echoed(f):
    wrong = "sk-wrong-SECRET-4242"
    status, _, obj, data = f.chat(request(), key=wrong)
    expect_error(status, obj, 401, want_code="invalid_api_key")
    expect(b"SECRET" not in data and b"4242" not in data, "key echoed in the answer")
    log = json.dumps(f.requests())
    expect("SECRET" not in log and KEY not in log, "key echoed in the request log")
    expect_eq(f.requests()["requests"][-1]["auth"], "wrong", "logged auth")
    # a non-Bearer scheme is wrong too
    status, _, data = f.raw("POST", "/v1/chat/completions", json.dumps(request()).encode(),
                            {"Authorization": "Basic " + KEY})
    expect_eq(status, 401, "basic auth")


def t_auth_option_off(f):
    out = f.ok("options", {"key": None})
    expect_eq(out["key_required"], False, "key_required")
    status, _, _, _ = f.chat(request(), key=None)
    expect_eq(status, 200, "no key needed")
    expect_eq(f.requests()["requests"][-1]["auth"], "none", "logged auth")
    f.ok("options", {"key": KEY})
    status, _, _, _ = f.chat(request(), key=None)
    expect_eq(status, 401, "key needed again")


def t_bad_json(f):
    status, _, obj, _ = f.chat(None, raw_body=b'{"model": "x", "messages": [')
    expect_error(status, obj, 400, contains="could not parse the JSON body")
    status, _, obj, _ = f.chat(None, raw_body=b'["model"]')
    expect_error(status, obj, 400, contains="could not parse the JSON body")


def t_missing_model(f):
    req = request()
    del req["model"]
    status, _, obj, _ = f.chat(req)
    expect_error(status, obj, 400, contains="model")
    status, _, obj, _ = f.chat(request(model=7))
    expect_error(status, obj, 400, want_param="model")


def t_bad_messages(f):
    req = request()
    del req["messages"]
    expect_error(*f.chat(req)[:3:2], 400, want_code="missing_required_parameter")
    expect_error(*f.chat(dict(request(), messages={}))[:3:2], 400, want_code="invalid_type")
    expect_error(*f.chat(dict(request(), messages=[]))[:3:2], 400, want_code="empty_array")
    req = request()
    req["messages"][0]["role"] = "robot"
    expect_error(*f.chat(req)[:3:2], 400, want_param="messages[0].role")
    req = request()
    req["messages"][1]["content"] = 5
    expect_error(*f.chat(req)[:3:2], 400, want_param="messages[1].content")
    req = request()
    req["messages"][1]["content"][0] = {"type": "video"}
    expect_error(*f.chat(req)[:3:2], 400, want_param="messages[1].content[0].type")


def t_bad_image_url(f):
    where = "messages[1].content[1].image_url.url"
    status, _, obj, _ = f.chat(request(url="https://example.com/plate.jpg"))
    expect_error(status, obj, 400, want_param=where)
    status, _, obj, _ = f.chat(request(url="data:image/jpeg;base64,@@@not-base64@@@"))
    expect_error(status, obj, 400, want_param=where, contains="invalid base64")
    status, _, obj, _ = f.chat(request(url="data:image/jpeg," + "abc"))
    expect_error(status, obj, 400, want_param=where)
    status, _, obj, _ = f.chat(request(url=data_url(JPEG, "text/plain")))
    expect_error(status, obj, 400, want_param=where, contains="MIME")
    status, _, obj, _ = f.chat(request(image=b"GIF? no, plain text bytes"))
    expect_error(status, obj, 400, want_code="invalid_image_format")
    status, _, obj, _ = f.chat(request(detail="ultra"))
    expect_error(status, obj, 400, want_param="messages[1].content[1].image_url.detail")
    req = request()
    req["messages"][1]["content"][1]["image_url"] = {}
    expect_error(*f.chat(req)[:3:2], 400, want_code="missing_required_parameter")


def t_json_word(f):
    status, _, obj, _ = f.chat(request(prompt="Read the plate, please."))
    expect_error(status, obj, 400, want_param="messages",
                 contains="must contain the word 'json'")
    status, _, _, _ = f.chat(request(prompt="Read the plate, please.", fmt=False))
    expect_eq(status, 200, "no response_format, no word needed")


def t_bad_params(f):
    expect_error(*f.chat(request(temperature=3))[:3:2], 400, want_param="temperature")
    expect_error(*f.chat(request(temperature="0"))[:3:2], 400, want_param="temperature")
    expect_error(*f.chat(request(max_tokens=0))[:3:2], 400, want_param="max_tokens")
    expect_error(*f.chat(request(response_format={"type": "yaml"}))[:3:2], 400,
                 want_param="response_format")


def chat_request(system="You help maintenance technicians.", user="The pump trips. Why?",
                 **extra):
    """A text-only request as llm_chat sends it: string contents, no image."""
    req = {"model": "fake-chat", "temperature": 0.2, "max_tokens": 400,
           "messages": [{"role": "system", "content": system},
                        {"role": "user", "content": user}]}
    req.update(extra)
    return req


def t_text_only(f):
    expect_eq(f.ok("options")["require_image"], False, "require_image off by default")
    user = "Der Motor l\u00e4uft hei\u00df.\nWhat do I check first? \"quotes\" \u2014 " + "x" * 300
    f.ok("answers", {"answers": [{"content": "Check the fan cover.\n\nThen the load."}]})
    status, _, obj, _ = f.chat(chat_request(user=user))
    expect_eq(status, 200, "a text-only request is answered")
    expect_eq(content_of(obj), "Check the fan cover.\n\nThen the load.", "queued content")
    expect_eq(obj["choices"][0]["finish_reason"], "stop", "finish_reason")
    sys_len = len("You help maintenance technicians.")
    expect_eq(obj["usage"]["prompt_tokens"], (sys_len + len(user)) // 4, "text prompt tokens")
    rq = f.requests()["requests"][-1]
    expect_eq(rq["system"], "You help maintenance technicians.", "system logged")
    expect_eq(rq["text"], [user], "user text logged whole")
    expect_eq(rq["roles"], ["system", "user"], "roles")
    expect_eq(rq["max_tokens"], 400, "max_tokens")
    expect_eq(rq["temperature"], 0.2, "temperature")
    expect_eq(rq["images"], 0, "no image")
    expect_eq(rq["image_bytes"], 0, "no image bytes")
    expect(rq["response_format"] is None, "no response_format")
    expect_eq(rq["answer"], "content", "answer kind")
    # text parts without an image are fine too
    req = request()
    req["messages"][1]["content"] = [{"type": "text", "text": "no picture"}]
    expect_eq(f.chat(req)[0], 200, "text parts only")
    # the option still refuses them
    out = f.ok("options", {"require_image": True})
    expect_eq(out["require_image"], True, "option on")
    expect_error(*f.chat(req)[:3:2], 400, want_param="messages", contains="require_image")
    expect_error(*f.chat(chat_request())[:3:2], 400, want_param="messages")
    expect_eq(f.chat(request())[0], 200, "an image is still fine")
    f.ok("options", {"require_image": False})
    expect_eq(f.chat(chat_request())[0], 200, "off again")


def t_bad_requests_keep_queue(f):
    f.ok("answers", {"answers": [{"content": "{\"model\": \"Q1\"}"}]})
    f.chat(request(model=None))
    f.chat(request(), key="sk-wrong")
    status, _, obj, _ = f.chat(request())
    expect_eq(status, 200, "status")
    expect_eq(json.loads(content_of(obj)), {"model": "Q1"}, "the queued answer survived")


def t_png_and_log(f):
    status, _, _, _ = f.chat(request(image=PNG, mime="image/png", model="m-png"))
    expect_eq(status, 200, "status")
    rq = f.requests()["requests"][-1]
    expect_eq(rq["image_kind"], "png", "kind")
    expect_eq(rq["image_mime"], "image/png", "mime")
    expect_eq(rq["image_bytes"], len(PNG), "decoded size")
    expect_eq(rq["model"], "m-png", "model")
    expect_eq(rq["auth"], "ok", "auth")
    expect_eq(rq["response_format"], "json_object", "response_format")
    expect_eq(rq["detail"], "high", "detail")
    expect_eq(rq["temperature"], 0, "temperature")
    expect_eq(rq["max_tokens"], 600, "max_tokens")
    expect_eq(rq["system"], PROMPT, "system prompt")
    expect_eq(rq["text"], ["Read this equipment nameplate."], "user text")
    expect_eq(rq["roles"], ["system", "user"], "roles")
    expect_eq(rq["images"], 1, "one image")
    expect_eq(rq["path"], "/v1/chat/completions", "path")
    expect_eq(rq["status"], 200, "logged status")
    expect_eq(rq["answer"], "fields", "answer kind")


def t_queue_content_and_fields(f):
    f.ok("answers", {"answers": [
        {"content": "```json\n{\"model\": \"A\"}\n```"},
        {"fields": {"manufacturer": "ABB", "volts": 460}},
    ]})
    expect_eq(f.ok("answers")["queued"], 2, "queued")
    _, _, obj, _ = f.chat(request())
    expect_eq(content_of(obj), "```json\n{\"model\": \"A\"}\n```", "content verbatim")
    _, _, obj, _ = f.chat(request())
    expect_eq(json.loads(content_of(obj)), {"manufacturer": "ABB", "volts": 460}, "fields")
    _, _, obj, _ = f.chat(request())
    expect_eq(json.loads(content_of(obj))["model"], "EM3615T", "back to the default")


def t_queue_usage_finish_times(f):
    f.ok("answers", {"answers": [
        {"fields": {"model": "X"}, "usage": {"prompt_tokens": 1000, "completion_tokens": 50},
         "finish_reason": "length", "times": 2}]})
    for i in range(2):
        _, _, obj, _ = f.chat(request())
        expect_eq(obj["usage"], {"prompt_tokens": 1000, "completion_tokens": 50,
                                 "total_tokens": 1050}, "usage")
        expect_eq(obj["choices"][0]["finish_reason"], "length", "finish_reason")
    _, _, obj, _ = f.chat(request())
    expect_eq(obj["choices"][0]["finish_reason"], "stop", "times used up")


def t_queue_model_filter(f):
    f.ok("answers", {"answers": [{"fault": "500", "model": "a-model"},
                                 {"fields": {"model": "for-b"}, "model": "b-model"}]})
    _, _, obj, _ = f.chat(request(model="b-model"))
    expect_eq(json.loads(content_of(obj)), {"model": "for-b"}, "b's answer")
    status, _, _, _ = f.chat(request(model="c-model"))
    expect_eq(status, 200, "c gets the default")
    status, _, _, _ = f.chat(request(model="a-model"))
    expect_eq(status, 500, "a's answer")


def t_default_and_replace(f):
    f.ok("default", {"answer": {"fields": {"serial": "D1"}}})
    _, _, obj, _ = f.chat(request())
    expect_eq(json.loads(content_of(obj)), {"serial": "D1"}, "new default")
    f.ok("answers", {"answers": [{"fault": "500"}, {"fault": "500"}]})
    f.ok("answers", {"answers": [{"fields": {"serial": "R"}}], "replace": True})
    _, _, obj, _ = f.chat(request())
    expect_eq(json.loads(content_of(obj)), {"serial": "R"}, "replaced queue")
    f.ok("default", {"answer": {"fault": "503"}})
    expect_eq(f.chat(request())[0], 503, "a fault as the default")


def t_slow(f):
    f.ok("answers", {"answers": [{"fault": "slow", "ms": 300, "fields": {"model": "S"}}]})
    t0 = time.monotonic()
    status, _, obj, _ = f.chat(request())
    dt = time.monotonic() - t0
    expect_eq(status, 200, "status")
    expect(dt >= 0.29, "answered after %.3f s" % dt)
    expect(dt < 5, "answered within 5 s")
    expect_eq(json.loads(content_of(obj)), {"model": "S"}, "content")


def t_timeout(f):
    f.ok("answers", {"answers": [{"fault": "timeout"}]})
    t0 = time.monotonic()
    try:
        f.chat(request(), timeout=0.5)
        raise AssertionError("got an answer")
    except (socket.timeout, TimeoutError):
        pass
    expect(time.monotonic() - t0 < 3, "client timeout honoured")
    rq = f.requests()["requests"][-1]
    expect_eq(rq["answer"], "timeout", "logged")
    expect(rq["status"] is None, "no status sent")
    status, _, _, _ = f.chat(request())
    expect_eq(status, 200, "the fake still answers")


def t_429(f):
    f.ok("answers", {"answers": [{"fault": "429", "retry_after": 7}, {"fault": "429"}]})
    status, hdrs, obj, _ = f.chat(request())
    expect_error(status, obj, 429, want_code="rate_limit_exceeded")
    expect_eq(hdrs.get("retry-after"), "7", "Retry-After")
    status, hdrs, obj, _ = f.chat(request())
    expect_eq(status, 429, "second 429")
    expect("retry-after" not in hdrs, "no Retry-After when not asked")
    expect_eq(f.requests()["requests"][-1]["status"], 429, "logged status")


def t_500_503_error(f):
    f.ok("answers", {"answers": [
        {"fault": "500"}, {"fault": "503", "retry_after": 2},
        {"fault": "error", "status": 418, "message": "teapot", "code": "tea", "param": "x"}]})
    status, _, obj, _ = f.chat(request())
    expect_error(status, obj, 500)
    expect_eq(obj["error"]["type"], "server_error", "type")
    status, hdrs, obj, _ = f.chat(request())
    expect_error(status, obj, 503, contains="overloaded")
    expect_eq(hdrs.get("retry-after"), "2", "Retry-After on a 503")
    status, _, obj, _ = f.chat(request())
    expect_error(status, obj, 418, want_code="tea", want_param="x", contains="teapot")


def t_broken_json(f):
    f.ok("answers", {"answers": [{"fault": "broken_json"}]})
    status, hdrs, obj, data = f.chat(request())
    expect_eq(status, 200, "status")
    expect(obj is None and data.startswith(b"{\"id\""), "truncated JSON")
    expect_eq(int(hdrs["content-length"]), len(data), "content-length")


def t_oversized(f):
    f.ok("answers", {"answers": [{"fault": "oversized"},
                                 {"fault": "oversized", "bytes": 300000}]})
    status, _, obj, data = f.chat(request())
    expect_eq(status, 200, "status")
    expect(len(data) >= 1024 * 1024, "1 MB by default, got %d" % len(data))
    expect_eq(obj["object"], "chat.completion", "still a completion")
    _, _, _, data = f.chat(request())
    expect(300000 <= len(data) < 310000, "bytes honoured: %d" % len(data))


def t_not_schema_wrong_types_empty(f):
    f.ok("answers", {"answers": [{"fault": "not_schema"}, {"fault": "wrong_types"},
                                 {"fault": "empty_choices"}, {"fault": "no_usage"}]})
    _, _, obj, _ = f.chat(request())
    c = content_of(obj)
    try:
        parsed = json.loads(c)
    except ValueError:
        parsed = None
    expect(not isinstance(parsed, dict), "not_schema content is not an object: %r" % c)
    _, _, obj, _ = f.chat(request())
    wt = json.loads(content_of(obj))
    expect(isinstance(wt, dict) and any(isinstance(v, (bool, list, dict))
                                        for v in wt.values()), "wrong types %r" % wt)
    status, _, obj, _ = f.chat(request())
    expect_eq(status, 200, "status")
    expect_eq(obj["choices"], [], "empty choices")
    _, _, obj, _ = f.chat(request())
    expect("usage" not in obj, "no usage")


def t_drop(f):
    f.ok("answers", {"answers": [{"fault": "drop"}]})
    try:
        f.chat(request())
        raise AssertionError("got an answer")
    except (http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine):
        pass
    expect_eq(f.chat(request())[0], 200, "answers again")


def t_reject_response_format(f):
    f.ok("options", {"reject_response_format": True})
    status, _, obj, _ = f.chat(request())
    expect_error(status, obj, 400, want_param="response_format", contains="response_format")
    status, _, _, _ = f.chat(request(fmt=False))
    expect_eq(status, 200, "accepted without it")
    expect(f.requests()["requests"][-1]["response_format"] is None, "logged without")


def t_paths_and_keepalive(f):
    c = f.conn()
    try:
        for p in ("/a/v1/chat/completions", "/b/v1/chat/completions", "/chat/completions"):
            status, _, _, _ = f.chat(request(), path=p, conn=c)
            expect_eq(status, 200, p)
    finally:
        c.close()
    rqs = f.requests()["requests"][-3:]
    expect_eq([r["path"] for r in rqs],
              ["/a/v1/chat/completions", "/b/v1/chat/completions", "/chat/completions"], "paths")
    expect_eq(len({r["conn"] for r in rqs}), 1, "one connection, kept alive")
    f.chat(request())
    expect(f.requests()["requests"][-1]["conn"] != rqs[0]["conn"], "a new connection")
    expect_eq([r["n"] for r in f.requests()["requests"]][-4:],
              [rqs[0]["n"], rqs[0]["n"] + 1, rqs[0]["n"] + 2, rqs[0]["n"] + 3], "numbered")


def t_wait(f):
    out = f.ok("wait", {"count": 1, "timeout_ms": 50})
    expect_eq(out, {"ok": False, "count": 0}, "times out")
    th = threading.Thread(target=lambda: f.chat(request()))
    t0 = time.monotonic()
    th.start()
    out = f.ok("wait", {"count": 1, "timeout_ms": 10000})
    th.join(10)
    expect(out["ok"] and out["count"] >= 1, "reached: %r" % out)
    expect(time.monotonic() - t0 < 5, "promptly")


def t_reset(f):
    f.ok("answers", {"answers": [{"fault": "500"}]})
    f.ok("default", {"answer": {"fault": "503"}})
    f.ok("options", {"reject_response_format": True, "require_image": True, "key": "sk-2"})
    f.chat(request(fmt=False), key="sk-2")
    f.ok("answers", {"answers": [{"fault": "timeout"}]})
    held = {}

    def hold():
        try:
            held["status"] = f.chat(request(), key="sk-2", timeout=20)[0]
        except Exception as e:      # the fake closes the held connection
            held["error"] = type(e).__name__
    th = threading.Thread(target=hold)
    th.start()
    f.ok("wait", {"count": 2, "timeout_ms": 10000})
    t0 = time.monotonic()
    f.ok("reset", {})
    th.join(10)
    expect(not th.is_alive() and time.monotonic() - t0 < 5, "reset ends a held answer")
    expect_eq(f.requests()["count"], 0, "requests cleared")
    expect_eq(f.ok("answers")["queued"], 0, "queue cleared")
    expect_eq(f.ok("options"), {"key_required": True, "reject_response_format": False,
                                "require_image": False}, "options back")
    status, _, obj, _ = f.chat(request())
    expect_eq(status, 200, "default answer back")
    expect_eq(json.loads(content_of(obj))["model"], "EM3615T", "default fields")


def t_routes(f):
    status, _, data = f.raw("POST", "/v1/nothing", b"{}", {"Authorization": "Bearer " + KEY})
    obj = json.loads(data)
    expect_error(status, obj, 404, contains="Invalid URL (POST /v1/nothing)")
    status, _, data = f.raw("GET", "/v1/chat/completions")
    expect_error(status, json.loads(data), 405)
    status, _, data = f.raw("GET", "/v1/models")
    expect_eq(status, 200, "models")
    expect_eq(json.loads(data)["object"], "list", "models list")


def t_control_errors(f):
    for path, obj, want in (
            ("answers", {"answers": [{"fault": "meteor"}]}, 400),
            ("answers", {"answers": {"fault": "500"}}, 400),
            ("answers", {"answers": [{"content": {"a": 1}}]}, 400),
            ("answers", {"answers": [{"fields": {}, "content": "x"}]}, 400),
            ("answers", {"answers": [{"fault": "error"}]}, 400),
            ("answers", {"answers": [{"fault": "slow", "ms": -1}]}, 400),
            ("answers", {"answers": [{"colour": "red"}]}, 400),
            ("options", {"telepathy": True}, 400),
            ("options", {"key": ""}, 400),
            ("nothing", {}, 404)):
        status, out = f.control(path, obj)
        expect_eq(status, want, "%s %r" % (path, obj))
        expect(isinstance(out.get("error"), str), "error text")
    status, _, data = f.raw("POST", "/control/answers", b"not json")
    expect_eq(status, 400, "control body not JSON")
    expect_eq(f.ok("answers")["queued"], 0, "nothing queued by refused requests")


def t_chunked_and_too_large(f):
    c = f.conn()
    try:
        body = json.dumps(request()).encode()
        c.request("POST", "/v1/chat/completions", body=iter([body[:100], body[100:]]),
                  headers={"Authorization": "Bearer " + KEY,
                           "Content-Type": "application/json"}, encode_chunked=True)
        r = c.getresponse()
        r.read()
        expect_eq(r.status, 200, "chunked body")
    finally:
        c.close()
    s = socket.create_connection(("127.0.0.1", f.port), timeout=10)
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Bearer " + KEY.encode() +
                  b"\r\nContent-Length: 999999999\r\n\r\n")
        head = s.recv(65536)
        expect(head.startswith(b"HTTP/1.1 413"), "413: %r" % head[:40])
    finally:
        s.close()


def t_sigterm_while_holding(f):
    g = Fake("--key", KEY)
    try:
        g.ok("answers", {"answers": [{"fault": "timeout"}]})
        def held():
            try:
                g.chat(request(), timeout=20)
            except (OSError, http.client.HTTPException):
                pass        # the fake closes the connection as it stops
        th = threading.Thread(target=held, daemon=True)
        th.start()
        g.ok("wait", {"count": 1, "timeout_ms": 10000})
        t0 = time.monotonic()
        rc = g.stop(wait=10)
        expect_eq(rc, 0, "exit status")
        expect(time.monotonic() - t0 < 5, "stopped promptly")
    finally:
        g.stop(signal.SIGKILL)


CASES = [
    t_start_health, t_default_answer_shape, t_auth_missing, t_auth_wrong_not_echoed,
    t_auth_option_off, t_bad_json, t_missing_model, t_bad_messages, t_bad_image_url,
    t_json_word, t_bad_params, t_text_only, t_bad_requests_keep_queue, t_png_and_log,
    t_queue_content_and_fields, t_queue_usage_finish_times, t_queue_model_filter,
    t_default_and_replace, t_slow, t_timeout, t_429, t_500_503_error, t_broken_json,
    t_oversized, t_not_schema_wrong_types_empty, t_drop, t_reject_response_format,
    t_paths_and_keepalive, t_wait, t_reset, t_routes, t_control_errors,
    t_chunked_and_too_large, t_sigterm_while_holding,
]


def main(argv):
    verbose = "-v" in argv
    wanted = [a for a in argv if a != "-v"]
    cases = [c for c in CASES if not wanted or any(w in c.__name__ for w in wanted)]
    print("1..%d" % len(cases), flush=True)
    fake = Fake("--key", KEY)
    failed = 0
    try:
        for i, case in enumerate(cases, 1):
            name = case.__name__[2:].replace("_", " ")
            try:
                fake.ok("reset", {})
                case(fake)
                print("ok %d - %s" % (i, name), flush=True)
            except Exception:
                failed += 1
                print("not ok %d - %s" % (i, name), flush=True)
                for line in traceback.format_exc().splitlines():
                    print("# " + line)
                if verbose:
                    for line in fake.log().splitlines()[-20:]:
                        print("# fake: " + line)
    finally:
        rc = fake.stop()
    if rc != 0:
        print("# the fake exited with %r" % rc)
        failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
