#!/usr/bin/env python3
"""A local fake of an OpenAI-compatible chat completions API for Rivet's tests.

Rivet asks a vision LLM to read a nameplate photo with
``POST {base}/chat/completions`` (the image as a base64 data URL), and asks
plain-text questions the same way (a system and a user message, no image).
Tests point
the base URL (LLM_URL, LLM_<NAME>_URL) at this server, queue the answers and
faults they want through its control API (``/control/...``), and read back
what the client sent.

The API side follows the OpenAI chat completions reference: the request is
checked (model, messages, content parts, the image data URL, response_format,
temperature, max_tokens) and a malformed one gets ``400`` with an
``{"error": {"message", "type", "param", "code"}}`` body, as do a missing or
wrong key (``401``, with ``--key``), rate limits (``429`` with
``Retry-After``) and server errors (``500``, ``503``). A good request gets a
``chat.completion`` object: ``id``, ``object``, ``created``, ``model``,
``system_fingerprint``, ``choices[{index, message{role, content, refusal},
logprobs, finish_reason}]``, ``usage{prompt_tokens, completion_tokens,
total_tokens}``.

Any path ending in ``/chat/completions`` is served, so one fake can stand in
for several providers of a chain (``http://127.0.0.1:P/a/v1``,
``http://127.0.0.1:P/b/v1``); the request log records the path.

Only the Python 3 standard library is used; the server listens on 127.0.0.1
only. See README.md for the control API.
"""

import argparse
import base64
import binascii
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 32 * 1024 * 1024      # largest request body read
MAX_CONTROL_BODY = 4 * 1024 * 1024
REQUEST_LOG_MAX = 10000
HOLD_MAX = 600.0                 # a "timeout" answer is held at most this long (s)
LOG_TEXT_MAX = 4000              # system prompt and text parts are logged up to this (chars)
WAIT_MAX = 120.0                 # /control/wait waits at most this long (s)
DEFAULT_OVERSIZED = 1024 * 1024

IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
IMAGE_MIMES = {"image/jpeg": "jpeg", "image/jpg": "jpeg", "image/png": "png",
               "image/gif": "gif", "image/webp": "webp"}
ROLES = ("system", "user", "assistant", "developer", "tool")
DETAILS = ("auto", "low", "high")
FAULTS = ("slow", "timeout", "429", "500", "503", "error", "broken_json", "oversized",
          "not_schema", "wrong_types", "empty_choices", "drop", "no_usage")

# What a good nameplate read looks like: the default answer.
DEFAULT_FIELDS = {
    "manufacturer": "Baldor Electric",
    "model": "EM3615T",
    "serial": "F1802231234",
    "volts": "230/460",
    "amps": "15.6/7.8",
    "hp": "7.5",
    "kw": "5.6",
    "rpm": "1770",
    "hz": "60",
    "phase": "3",
    "frame": "213T",
    "enclosure": "TEFC",
    "service_factor": "1.15",
    "insulation_class": "F",
    "efficiency": "91.7",
    "year": None,
}

NO_KEY = ("You didn't provide an API key. You need to provide your API key in an "
          "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), "
          "or as the password field (with blank username) if you're accessing the API "
          "from your browser and are prompted for a username and password. You can "
          "obtain an API key from https://platform.openai.com/account/api-keys.")
WRONG_KEY = ("Incorrect API key provided. You can find your API key at "
             "https://platform.openai.com/account/api-keys.")
BAD_JSON = ("We could not parse the JSON body of your request. (HINT: This likely means "
            "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
            "payload, but what was sent was not valid JSON.)")
JSON_WORD = ("'messages' must contain the word 'json' in some form, to use "
             "'response_format' of type 'json_object'.")
RATE_LIMIT = ("Rate limit reached for requests. Limit: 3, Used: 3, Requested: 1. "
              "Please try again later.")
SERVER_ERROR = ("The server had an error while processing your request. Sorry about that!")
OVERLOADED = "The engine is currently overloaded, please try again later."
NO_FORMAT = "response_format is not supported by this model"


class ApiError(Exception):
    """An API error answer: HTTP status and the OpenAI error object."""

    def __init__(self, status, message, type_="invalid_request_error", param=None,
                 code=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self):
        return {"error": {"message": self.message, "type": self.type,
                          "param": self.param, "code": self.code}}


class ControlError(Exception):
    """A refused control request (the test's mistake, not the client's)."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status
        self.message = message


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def check_answer(a):
    """Validates one answer spec from the control API; returns a clean copy."""
    if not isinstance(a, dict):
        raise ControlError("an answer must be an object")
    known = {"content", "fields", "fault", "ms", "retry_after", "status", "message", "type",
             "code", "param", "bytes", "usage", "model", "times", "finish_reason"}
    extra = set(a) - known
    if extra:
        raise ControlError("unknown answer keys: %s" % ", ".join(sorted(extra)))
    fault = a.get("fault")
    if fault is not None and fault not in FAULTS:
        raise ControlError("unknown fault %r; known: %s" % (fault, ", ".join(FAULTS)))
    if "content" in a and "fields" in a:
        raise ControlError("give content or fields, not both")
    if "content" in a and not isinstance(a["content"], str):
        raise ControlError("content must be a string (use fields for an object)")
    if "fields" in a and not isinstance(a["fields"], dict):
        raise ControlError("fields must be an object")
    for k in ("ms", "retry_after", "bytes", "times", "status"):
        if k in a and (not isinstance(a[k], int) or isinstance(a[k], bool) or a[k] < 0):
            raise ControlError("%s must be a non-negative integer" % k)
    if fault == "error" and not 400 <= a.get("status", 0) <= 599:
        raise ControlError("fault error needs a status from 400 to 599")
    if "usage" in a:
        u = a["usage"]
        if not isinstance(u, dict) or not all(
                isinstance(u.get(k, 0), int) for k in ("prompt_tokens", "completion_tokens")):
            raise ControlError("usage must be {prompt_tokens, completion_tokens} integers")
    if "model" in a and not isinstance(a["model"], str):
        raise ControlError("model must be a string")
    out = dict(a)
    out.setdefault("times", 1)
    if out["times"] < 1:
        raise ControlError("times must be at least 1")
    return out


class FakeLLM:
    """All state, behind one condition variable."""

    def __init__(self, key=None):
        self.cond = threading.Condition()
        self.start_key = key
        self.stopping = False
        self.internal_errors = 0
        self.conn_seq = 0
        with self.cond:
            self._reset()

    def _reset(self):
        """Back to the state at start. Call with cond held."""
        self.key = self.start_key
        self.queue = deque()
        self.default = {"fields": dict(DEFAULT_FIELDS), "times": 1}
        self.requests = []
        self.seq = 0
        self.reject_response_format = False
        self.require_image = False
        self.generation = getattr(self, "generation", 0) + 1   # ends held answers
        self.cond.notify_all()

    # ---- control operations -------------------------------------------

    def control(self, method, path, body):
        """Runs a control request; returns (status, object)."""
        with self.cond:
            if path == "/control/health" and method == "GET":
                return 200, {"ok": True}
            if path == "/control/reset" and method == "POST":
                self._reset()
                return 200, {"ok": True}
            if path == "/control/answers" and method == "POST":
                answers = body.get("answers")
                if not isinstance(answers, list):
                    raise ControlError("answers must be a list")
                clean = [check_answer(a) for a in answers]
                if body.get("replace"):
                    self.queue.clear()
                self.queue.extend(clean)
                return 200, {"ok": True, "queued": self._queued()}
            if path == "/control/answers" and method == "GET":
                return 200, {"queued": self._queued(), "answers": list(self.queue),
                             "default": self.default}
            if path == "/control/default" and method == "POST":
                a = check_answer(body.get("answer"))
                if a.get("model"):
                    raise ControlError("the default answer takes no model filter")
                self.default = a
                return 200, {"ok": True}
            if path == "/control/options" and method == "POST":
                for k, v in body.items():
                    if k in ("reject_response_format", "require_image"):
                        if not isinstance(v, bool):
                            raise ControlError("%s must be true or false" % k)
                        setattr(self, k, v)
                    elif k == "key":
                        if v is not None and (not isinstance(v, str) or not v):
                            raise ControlError("key must be a non-empty string or null")
                        self.key = v
                    else:
                        raise ControlError("unknown option %r" % k)
                return 200, self._options()
            if path == "/control/options" and method == "GET":
                return 200, self._options()
            if path == "/control/requests" and method == "GET":
                return 200, {"count": len(self.requests), "requests": self.requests,
                             "queued": self._queued(), "internal_errors": self.internal_errors}
            if path == "/control/wait" and method == "POST":
                count = body.get("count", 1)
                timeout = body.get("timeout_ms", 5000)
                if not isinstance(count, int) or not isinstance(timeout, int) or timeout < 0:
                    raise ControlError("count and timeout_ms must be integers")
                deadline = time.monotonic() + min(timeout / 1000.0, WAIT_MAX)
                while len(self.requests) < count and not self.stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.cond.wait(left)
                return 200, {"ok": len(self.requests) >= count, "count": len(self.requests)}
            raise ControlError("no such control endpoint: %s %s" % (method, path), 404)

    def _queued(self):
        return sum(a["times"] for a in self.queue)

    def _options(self):
        return {"key_required": self.key is not None,
                "reject_response_format": self.reject_response_format,
                "require_image": self.require_image}

    # ---- the API ------------------------------------------------------

    def take_answer(self, model):
        """The next queued answer for model (its first match), else the default."""
        for i, a in enumerate(self.queue):
            if a.get("model") in (None, model):
                if a["times"] > 1:
                    a["times"] -= 1
                    return dict(a, times=1)
                del self.queue[i]
                return a
        return self.default

    def log_request(self, rec):
        self.seq += 1
        rec["n"] = self.seq
        self.requests.append(rec)
        if len(self.requests) > REQUEST_LOG_MAX:
            del self.requests[0]
        self.cond.notify_all()
        return rec


def check_auth(fake, headers):
    """Returns (a 401 error or None, what the log records: "none", "ok" or
    "wrong"). The key itself is never recorded."""
    got = headers.get("Authorization")
    if got is None:
        state = "none"
    elif fake.key is not None and got == "Bearer " + fake.key:
        state = "ok"
    elif fake.key is None and got.startswith("Bearer ") and len(got) > 7:
        state = "ok"
    else:
        state = "wrong"
    if fake.key is not None and state == "none":
        return ApiError(401, NO_KEY), state
    if fake.key is not None and state == "wrong":
        return ApiError(401, WRONG_KEY, code="invalid_api_key"), state
    return None, state


def decode_image(url, where):
    """Checks a data URL; returns (mime, kind, size of the decoded bytes)."""
    bad_url = ("Invalid '%s'. Expected a base64-encoded data URL with an image MIME type "
               "(e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got %s.")
    if url.startswith(("http://", "https://")):
        raise ApiError(400, "Failed to download image from %s: the fake fetches nothing."
                       % where, param=where, code="invalid_image_url")
    if not url.startswith("data:"):
        raise ApiError(400, bad_url % (where, "a value that is not a URL"), param=where,
                       code="invalid_value")
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        raise ApiError(400, bad_url % (where, "a data URL that is not base64"), param=where,
                       code="invalid_value")
    mime = head[:-len(";base64")].lower()
    if mime not in IMAGE_MIMES:
        raise ApiError(400, bad_url % (where, "an unsupported MIME type"), param=where,
                       code="invalid_value")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, bad_url % (where, "invalid base64 encoding"), param=where,
                       code="invalid_value")
    kind = None
    for magic, k in IMAGE_MAGIC:
        if raw.startswith(magic):
            kind = k
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        kind = "webp"
    if kind is None:
        raise ApiError(400, "You uploaded an unsupported image. Please make sure your image "
                       "has of one the following formats: ['png', 'jpeg', 'gif', 'webp'].",
                       code="invalid_image_format")
    return mime, kind, len(raw)


def check_request(fake, req):
    """Validates a chat completion request like the API does; returns what
    the log records about it."""
    if not isinstance(req, dict):
        raise ApiError(400, BAD_JSON)
    info = {"model": req.get("model"), "image_bytes": 0, "image_mime": None,
            "image_kind": None, "images": 0, "detail": None,
            "response_format": None, "temperature": req.get("temperature"),
            "max_tokens": req.get("max_tokens"), "prompt_chars": 0, "text": [],
            "system": None, "roles": []}
    model = req.get("model")
    if model is None:
        raise ApiError(400, "you must provide a model parameter")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "Invalid type for 'model': expected a string.", param="model",
                       code="invalid_type")
    msgs = req.get("messages")
    if msgs is None:
        raise ApiError(400, "Missing required parameter: 'messages'.", param="messages",
                       code="missing_required_parameter")
    if not isinstance(msgs, list):
        raise ApiError(400, "Invalid type for 'messages': expected an array.", param="messages",
                       code="invalid_type")
    if not msgs:
        raise ApiError(400, "[] is too short - 'messages'", param="messages",
                       code="empty_array")
    words = []
    for i, m in enumerate(msgs):
        where = "messages[%d]" % i
        if not isinstance(m, dict):
            raise ApiError(400, "Invalid type for '%s': expected an object." % where,
                           param=where, code="invalid_type")
        role = m.get("role")
        if role not in ROLES:
            raise ApiError(400, "Invalid value: %r. Supported values are: %s." % (
                role, ", ".join("'%s'" % r for r in ROLES)), param=where + ".role",
                code="invalid_value")
        info["roles"].append(role)
        content = m.get("content")
        if isinstance(content, str):
            if role in ("system", "developer"):
                if info["system"] is None:
                    info["system"] = content[:LOG_TEXT_MAX]
            else:
                info["text"].append(content[:LOG_TEXT_MAX])
            words.append(content)
            info["prompt_chars"] += len(content)
            continue
        if not isinstance(content, list) or not content:
            raise ApiError(400, "Invalid type for '%s.content': expected one of a string or "
                           "array of objects." % where, param=where + ".content",
                           code="invalid_type")
        for j, part in enumerate(content):
            pw = "%s.content[%d]" % (where, j)
            if not isinstance(part, dict):
                raise ApiError(400, "Invalid type for '%s': expected an object." % pw,
                               param=pw, code="invalid_type")
            kind = part.get("type")
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise ApiError(400, "Missing required parameter: '%s.text'." % pw,
                                   param=pw + ".text", code="missing_required_parameter")
                words.append(part["text"])
                info["prompt_chars"] += len(part["text"])
                info["text"].append(part["text"][:LOG_TEXT_MAX])
            elif kind == "image_url":
                if role not in ("user",):
                    raise ApiError(400, "Invalid '%s': image content parts are only allowed "
                                   "for messages with role 'user'." % pw, param=pw)
                iu = part.get("image_url")
                if not isinstance(iu, dict) or not isinstance(iu.get("url"), str):
                    raise ApiError(400, "Missing required parameter: '%s.image_url.url'." % pw,
                                   param=pw + ".image_url.url",
                                   code="missing_required_parameter")
                detail = iu.get("detail", "auto")
                if detail not in DETAILS:
                    raise ApiError(400, "Invalid value: %r. Supported values are: 'auto', "
                                   "'low' and 'high'." % (detail,),
                                   param=pw + ".image_url.detail", code="invalid_value")
                mime, ikind, size = decode_image(iu["url"], pw + ".image_url.url")
                info["images"] += 1
                info["image_bytes"] += size
                info["image_mime"] = mime
                info["image_kind"] = ikind
                info["detail"] = detail
            else:
                raise ApiError(400, "Invalid value: %r. Supported values are: 'text', "
                               "'image_url', 'input_audio', 'refusal', 'audio' and 'file'."
                               % (kind,), param=pw + ".type", code="invalid_value")
    t = req.get("temperature")
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))
                          or not 0 <= t <= 2):
        raise ApiError(400, "Invalid 'temperature': expected a number from 0 to 2.",
                       param="temperature", code="invalid_value")
    mt = req.get("max_tokens")
    if mt is not None and (isinstance(mt, bool) or not isinstance(mt, int) or mt < 1):
        raise ApiError(400, "Invalid 'max_tokens': integer below minimum value. Expected a "
                       "value >= 1.", param="max_tokens", code="integer_below_min_value")
    rf = req.get("response_format")
    if rf is not None:
        if fake.reject_response_format:
            raise ApiError(400, NO_FORMAT, param="response_format")
        if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object",
                                                              "json_schema"):
            raise ApiError(400, "Invalid 'response_format': expected an object with type "
                           "'text', 'json_object' or 'json_schema'.",
                           param="response_format", code="invalid_value")
        info["response_format"] = rf["type"]
        if rf["type"] == "json_object" and not any("json" in w.lower() for w in words):
            raise ApiError(400, JSON_WORD, param="messages")
    if fake.require_image and info["images"] == 0:
        raise ApiError(400, "The fake needs one image_url part with a data URL "
                       "(the option require_image is on).", param="messages")
    return info


def chat_completion(seq, model, content, usage, finish_reason, no_usage=False):
    body = {
        "id": "chatcmpl-fake%08d" % seq,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake_llm",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": None},
            "logprobs": None,
            "finish_reason": finish_reason,
        }],
    }
    if not no_usage:
        body["usage"] = dict(usage, total_tokens=usage["prompt_tokens"]
                             + usage["completion_tokens"])
    return body


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "fake-llm/1"

    def setup(self):
        super().setup()
        fake = self.server.fake
        with fake.cond:
            fake.conn_seq += 1
            self.conn_id = fake.conn_seq

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake-llm: %s\n" % (fmt % args))

    # ---- plumbing -----------------------------------------------------

    def _read_body(self, limit):
        n = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                line = self.rfile.readline(64)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                if len(data) + size > limit:
                    raise ApiError(413, "Request body too large.")
                data += self.rfile.read(size)
                self.rfile.readline(8)
            return bytes(data)
        try:
            n = int(n or 0)
        except ValueError:
            raise ApiError(400, "Bad Content-Length.")
        if n > limit:
            self.close_connection = True
            raise ApiError(413, "Request body too large.")
        return self.rfile.read(n) if n else b""

    def _send(self, status, body, headers=None, content_type="application/json"):
        if isinstance(body, (dict, list)):
            body = dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", "req_fake")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _peer_gone(self):
        """Whether the client closed the connection (or sent more bytes)."""
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if not r:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _hold(self, seconds, fake, generation):
        """Waits up to seconds; False when the client went away meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            if self._peer_gone():
                return False
            left = deadline - time.monotonic()
            with fake.cond:
                if fake.stopping or fake.generation != generation:
                    return left <= 0
            if left <= 0:
                return True
            time.sleep(min(0.02, left))

    def _route(self, method):
        fake = self.server.fake
        path = self.path.split("?", 1)[0]
        try:
            if path.startswith("/control/"):
                return self._control(method, path)
            if path.endswith("/chat/completions"):
                if method != "POST":
                    raise ApiError(405, "Invalid method for URL (%s %s)" % (method, path))
                return self._chat(path)
            if path.endswith("/models") and method == "GET":
                return self._send(200, {"object": "list", "data": [
                    {"id": "fake-vision", "object": "model", "created": 0,
                     "owned_by": "fake-llm"}]})
            self._read_body(MAX_BODY)
            raise ApiError(404, "Invalid URL (%s %s)" % (method, path))
        except ApiError as e:
            self._send(e.status, e.body(), e.headers)
        except Exception:
            with fake.cond:
                fake.internal_errors += 1
            traceback.print_exc()
            self.close_connection = True
            try:
                self._send(500, ApiError(500, SERVER_ERROR, "server_error").body())
            except Exception:
                pass

    do_GET = lambda self: self._route("GET")            # noqa: E731
    do_POST = lambda self: self._route("POST")          # noqa: E731
    do_PUT = lambda self: self._route("PUT")            # noqa: E731
    do_DELETE = lambda self: self._route("DELETE")      # noqa: E731

    # ---- control ------------------------------------------------------

    def _control(self, method, path):
        fake = self.server.fake
        raw = self._read_body(MAX_CONTROL_BODY)
        body = {}
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                return self._send(400, {"error": "control body is not JSON"})
            if not isinstance(body, dict):
                return self._send(400, {"error": "control body must be an object"})
        try:
            status, obj = fake.control(method, path, body)
        except ControlError as e:
            status, obj = e.status, {"error": e.message}
        self._send(status, obj)

    # ---- chat completions ---------------------------------------------

    def _chat(self, path):
        fake = self.server.fake
        t0 = time.monotonic()
        raw = self._read_body(MAX_BODY)
        rec = {"path": path, "conn": self.conn_id, "auth": "none", "status": None,
               "answer": None, "body_bytes": len(raw),
               "content_type": self.headers.get("Content-Type"), "model": None,
               "image_bytes": 0, "image_mime": None, "image_kind": None, "images": 0,
               "response_format": None}
        with fake.cond:
            generation = fake.generation
            err, rec["auth"] = check_auth(fake, self.headers)
        try:
            if err:
                raise err
            try:
                req = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise ApiError(400, BAD_JSON)
            with fake.cond:
                rec.update(check_request(fake, req))
                answer = fake.take_answer(rec["model"])
                rec["answer"] = answer.get("fault") or ("content" if "content" in answer
                                                        else "fields")
                rec["status"] = None    # set once the answer is decided
                seq = fake.log_request(rec)["n"]
        except ApiError as e:
            with fake.cond:
                rec["status"] = e.status
                rec["error"] = e.message
                fake.log_request(rec)
            raise
        self._answer(answer, rec, seq, generation, t0)

    def _status(self, rec, status):
        with self.server.fake.cond:
            rec["status"] = status

    def _answer(self, a, rec, seq, generation, t0):
        fake = self.server.fake
        fault = a.get("fault")
        model = rec["model"]
        if fault == "slow" or a.get("ms"):
            if not self._hold(a.get("ms", 1000) / 1000.0, fake, generation):
                self.close_connection = True
                return
        if fault == "timeout":
            self._hold(HOLD_MAX, fake, generation)
            self.close_connection = True
            return
        if fault == "drop":
            self.close_connection = True
            return
        self._status(rec, {"429": 429, "500": 500, "503": 503}.get(
            fault, a.get("status") if fault == "error" else 200))
        if fault == "429":
            ra = a.get("retry_after")
            headers = {"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0"}
            if ra is not None:
                headers["Retry-After"] = str(ra)
                headers["x-ratelimit-reset-requests"] = "%ds" % ra
            e = ApiError(429, a.get("message", RATE_LIMIT), a.get("type", "requests"),
                         code=a.get("code", "rate_limit_exceeded"), headers=headers)
            return self._send(e.status, e.body(), e.headers)
        if fault in ("500", "503"):
            status = int(fault)
            headers = {}
            if a.get("retry_after") is not None:
                headers["Retry-After"] = str(a["retry_after"])
            e = ApiError(status, a.get("message", SERVER_ERROR if status == 500 else OVERLOADED),
                         a.get("type", "server_error"), code=a.get("code"), headers=headers)
            return self._send(e.status, e.body(), e.headers)
        if fault == "error":
            e = ApiError(a["status"], a.get("message", "Error"),
                         a.get("type", "invalid_request_error"), a.get("param"), a.get("code"))
            return self._send(e.status, e.body())

        if "content" in a:
            content = a["content"]
        elif "fields" in a:
            content = json.dumps(a["fields"], ensure_ascii=False)
        elif fault == "not_schema":
            content = "The plate reads BALDOR, model EM3615T, 7.5 HP, 460 V."
        elif fault == "wrong_types":
            content = json.dumps({"manufacturer": True, "model": ["EM3615T"],
                                  "volts": {"value": 460}, "serial": False})
        else:
            content = json.dumps(DEFAULT_FIELDS)
        if rec["images"]:
            prompt_tokens = 1105 + rec["image_bytes"] // 750
        else:
            prompt_tokens = max(1, rec.get("prompt_chars", 0) // 4)
        usage = {"prompt_tokens": prompt_tokens,
                 "completion_tokens": max(1, len(content) // 4)}
        usage.update(a.get("usage", {}))
        finish = a.get("finish_reason", "stop")
        body = chat_completion(seq, model, content, usage, finish, fault == "no_usage")
        if fault == "empty_choices":
            body["choices"] = []
        out = dumps(body)
        if fault == "broken_json":
            out = out[: len(out) // 2]
        elif fault == "oversized":
            size = a.get("bytes", DEFAULT_OVERSIZED)
            body["choices"][0]["message"]["content"] = content + " " * max(0, size - len(out))
            out = dumps(body)
        headers = {"openai-processing-ms": str(int((time.monotonic() - t0) * 1000)),
                   "openai-model": model}
        self._send(200, out, headers)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        """A client that hangs up (a timeout, a refused oversized answer) is
        normal here; anything else is the fake's bug and is counted."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        with self.fake.cond:
            self.fake.internal_errors += 1
        super().handle_error(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--key", help="the only API key accepted (default: none needed)")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)

    fake = FakeLLM(key=args.key)
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.fake = fake
    srv.verbose = args.verbose
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    else:
        print(port, flush=True)

    def stop(signum, frame):
        with fake.cond:
            fake.stopping = True
            fake.cond.notify_all()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        srv.serve_forever(poll_interval=0.1)
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
