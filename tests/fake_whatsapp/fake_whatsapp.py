#!/usr/bin/env python3
"""A local fake of the WhatsApp Cloud API (Meta Graph API) for Rivet's tests.

Rivet reaches the Cloud API through a configurable base URL
(WHATSAPP_API_URL, e.g. ``http://127.0.0.1:PORT/v21.0``) and receives user
messages on its webhook.  Tests point that URL at this server and drive it
through its control API (``/control/...``): they inject user messages,
which the fake posts to Rivet's webhook signed with the app secret exactly
as Meta does, and they inspect every Graph API call Rivet made.

The Graph API side follows Meta's documentation of the Cloud API: the
messages endpoint (``POST /{phone-number-id}/messages``: text, interactive
reply buttons and lists, templates, images, read receipts), the phone
number node (``GET /{phone-number-id}``), media (``GET /{media-id}`` and the
download of its short-lived URL with the same Bearer token), the Graph
error envelope (``{"error": {"message", "type", "code", "error_data":
{"messaging_product", "details"}, "error_subcode", "fbtrace_id"}}``), the
24-hour customer service window and the throughput and pair rate limits.

Layout of this module:

* constants (limits, error texts) and small helpers;
* public helpers for Python tests: ``sign``, ``encode_body``,
  ``message_object``, ``build_message_body``, ``build_status_body``,
  ``build_errors_body`` (importing the module has no side effects);
* ``FakeWhatsApp``: all state behind one lock (a ``threading.Condition``),
  the Graph API (``graph``), message validation (``_v_*``) and the control
  operations (``_c_*``);
* webhook delivery to loopback URLs only (``post_webhook``);
* ``Handler``: a thin ``BaseHTTPRequestHandler``;
* ``main``: command line, port file, signal handling.

Only the Python 3 standard library is used; the server listens on
127.0.0.1 and only ever connects to loopback addresses.  See README.md.
"""

import argparse
import base64
import copy
import hashlib
import hmac
import ipaddress
import itertools
import json
import math
import os
import queue
import random
import re
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.parse
import http.client
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# ---------------------------------------------------------------------------
# Limits and fixed texts (as documented by Meta for the Cloud API)
# ---------------------------------------------------------------------------

MAX_BODY = 10 * 1024 * 1024          # largest request body accepted
TEXT_MAX = 4096                      # text.body, characters
INTERACTIVE_BODY_MAX = 1024          # interactive body.text
HEADER_TEXT_MAX = 60                 # interactive header.text
FOOTER_TEXT_MAX = 60                 # interactive footer.text
BUTTONS_MAX = 3                      # reply buttons
BUTTON_ID_MAX = 256
BUTTON_TITLE_MAX = 20
LIST_BUTTON_MAX = 20                 # action.button of a list
LIST_SECTIONS_MAX = 10
LIST_ROWS_MAX = 10                   # rows across all sections
ROW_ID_MAX = 200
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
SECTION_TITLE_MAX = 24
CAPTION_MAX = 1024
TEMPLATE_PARAM_MAX = 1024            # body parameter text
TEMPLATE_HEADER_PARAM_MAX = 60
TEMPLATE_NAME_MAX = 512
WINDOW_S = 24 * 3600                 # customer service window
CALL_LOG_MAX = 100000
CONTROL_WAIT_MAX = 300.0
JSON_MAX_DEPTH = 64
RESPONSE_KEEP = 65536                # bytes of Rivet's webhook answers kept

DEFAULT_DISPLAY_NUMBER = "15550001234"
DEFAULT_VERIFIED_NAME = "Rivet Test"
DEFAULT_WABA_ID = "102290129340398"
DEFAULT_PROFILE_NAME = "Test User"
ERROR_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"

# code -> (HTTP status, title, default details).  The message of the Graph
# envelope is "(#code) title"; webhook errors carry title and message.
ERRORS = {
    100: (400, "Invalid parameter", None),
    131000: (500, "Something went wrong",
             "Message failed to send due to an unknown error."),
    131026: (400, "Message undeliverable", "Message Undeliverable."),
    131047: (400, "Re-engagement message",
             "Message failed to send because more than 24 hours have passed since the "
             "customer last replied to this number."),
    131048: (400, "Spam rate limit hit",
             "Message failed to send because there are restrictions on how many messages "
             "can be sent from this phone number. This may be because too many previous "
             "messages were blocked or flagged as spam."),
    131051: (400, "Message type unknown", "Message type is currently not supported."),
    131056: (400, "(Business Account, Consumer Account) pair rate limit hit",
             "Message failed to send because there were too many messages sent from this "
             "phone number to the same phone number in a short period of time."),
    130429: (400, "Rate limit hit",
             "Message failed to send because there were too many messages sent from this "
             "phone number in a short period of time."),
    132000: (400, "Number of parameters does not match the expected number of params", None),
    132001: (400, "Template name does not exist in the translation", None),
    132018: (400, "There was an issue with the parameters in your template.", None),
}
TOKEN_INVALID = "Invalid OAuth access token - Cannot parse access token"
TOKEN_EXPIRED = ("Error validating access token: Session has expired on Saturday, "
                 "01-Jan-22 00:00:00 PST. The current time is Sunday, 02-Jan-22 00:00:00 PST.")
UNKNOWN_ERROR = "An unknown error has occurred."
SERVICE_UNAVAILABLE = "(#2) Service temporarily unavailable"

# Fault kinds: Cloud API error codes, 5xx answers, and connection behaviour.
FAULT_CODES = ("100", "131000", "131026", "131047", "131048", "131056", "130429", "190")
FAULT_KINDS = FAULT_CODES + ("500", "503", "delay", "timeout", "drop")
FAULT_ENDPOINTS = ("messages", "read", "phone_number", "media", "media_download", "*")

SIGNATURE_MODES = ("valid", "missing", "wrong", "other_body", "tamper", "uppercase",
                   "no_prefix", "malformed", "empty", "sha1_only")
MESSAGE_KINDS = ("text", "image", "document", "audio", "video", "sticker", "location",
                 "button_reply", "list_reply", "button", "reaction", "unsupported")
STATUS_VALUES = ("sent", "delivered", "read", "failed")

PHONE_FIELDS = ("verified_name", "code_verification_status", "display_phone_number",
                "quality_rating", "platform_type", "throughput", "id")

_VERSION_RE = re.compile(r"v\d+(?:\.\d+)?$")
_DIGITS_RE = re.compile(r"\d{5,20}$")


class GraphError(Exception):
    """A Graph API error answer (HTTP status + envelope)."""

    def __init__(self, code, details=None, status=None, message=None, subcode=None,
                 etype="OAuthException", title=None, transient=None, error_data=True):
        info = ERRORS.get(code)
        if title is None:
            title = info[1] if info else "Error"
        if message is None:
            message = "(#%d) %s" % (code, title)
        if details is None and info is not None:
            details = info[2]
        if status is None:
            status = info[0] if info else 400
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.details = details
        self.subcode = subcode
        self.etype = etype
        self.title = title
        self.transient = transient
        self.error_data = error_data

    def envelope(self):
        """The JSON object Graph answers with."""
        err = {"message": self.message, "type": self.etype}
        if self.transient is not None:
            err["is_transient"] = self.transient
        err["code"] = self.code
        if self.error_data and self.details is not None:
            err["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        err["fbtrace_id"] = "A" + random_token(17)
        return {"error": err}


def invalid(details):
    """A 400 code 100 "(#100) Invalid parameter" with details."""
    return GraphError(100, details)


def unsupported_request(verb, object_id):
    """Graph's answer for an object id that does not exist (code 100, subcode 33)."""
    return GraphError(
        100, status=400, subcode=33, etype="GraphMethodException", error_data=False,
        message=("Unsupported %s request. Object with ID '%s' does not exist, cannot be "
                 "loaded due to missing permissions, or does not support this operation. "
                 "Please read the Graph API documentation at "
                 "https://developers.facebook.com/docs/graph-api" % (verb, object_id)))


def server_error(code):
    """Meta's 5xx envelopes: code 1 (500) or code 2 (503)."""
    if code == 1:
        return GraphError(1, status=500, message=UNKNOWN_ERROR, error_data=False)
    return GraphError(2, status=503, message=SERVICE_UNAVAILABLE, transient=True,
                      error_data=False)


def token_error(expired=False):
    """401 code 190 (OAuthException)."""
    if expired:
        return GraphError(190, status=401, message=TOKEN_EXPIRED, subcode=463,
                          error_data=False)
    return GraphError(190, status=401, message=TOKEN_INVALID, error_data=False)


class ControlError(Exception):
    """A refused control request (the test's mistake, not Rivet's)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class Outcome:
    """What the HTTP layer must do with one request."""

    __slots__ = ("status", "body", "content_type", "drop", "delay", "headers")

    def __init__(self, status=200, body=b"", content_type="application/json; charset=UTF-8",
                 drop=False, delay=0.0, headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.drop = drop
        self.delay = delay
        self.headers = headers or {}


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def dumps(obj):
    """Compact JSON as UTF-8 bytes (answers of the Graph and control APIs)."""
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def random_token(nbytes):
    """URL-safe random text."""
    return base64.urlsafe_b64encode(os.urandom(nbytes)).decode("ascii").rstrip("=")


def json_depth_ok(value, limit=JSON_MAX_DEPTH):
    """True if value nests lists and objects at most limit deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > limit:
                return False
            stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
    return True


def _reject_constant(name):
    """json.loads hook refusing NaN and Infinity."""
    raise ValueError("JSON constant %s" % name)


def is_loopback_url(url):
    """True for an http:// URL whose host is a loopback address or localhost."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    if parts.scheme != "http" or not parts.hostname:
        return False
    host = parts.hostname
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def now_ts():
    """Unix time as the string Meta puts in timestamps."""
    return str(int(time.time()))


def wa_digits(to):
    """The wa_id for a `to` value: digits only (an optional +, spaces, dashes,
    dots and parentheses are dropped); None when it is not a phone number."""
    if not isinstance(to, str):
        return None
    s = re.sub(r"[\s\-().]", "", to.strip())
    if s.startswith("+"):
        s = s[1:]
    if not re.fullmatch(r"\d{7,15}", s):
        return None
    return s


def new_wamid(wa_id="0", inbound=False):
    """A fresh message id in Meta's style: "wamid." + base64 of an opaque blob."""
    digits = (wa_id or "0").encode("ascii", "replace")[:20]
    blob = (b"\x1c\x18" + bytes([len(digits)]) + digits
            + (b"\x15\x02\x00\x12\x18\x14" if inbound else b"\x15\x02\x00\x11\x18\x12")
            + os.urandom(10) + b"\x00")
    return "wamid." + base64.b64encode(blob).decode("ascii")


# ---------------------------------------------------------------------------
# Public helpers for Python tests (no side effects)
# ---------------------------------------------------------------------------

def sign(secret, body):
    """X-Hub-Signature-256 of body: "sha256=" + hex HMAC-SHA256(app secret, raw body)."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if isinstance(body, str):
        body = body.encode("utf-8")
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def sign_sha1(secret, body):
    """The legacy X-Hub-Signature (SHA-1) Meta sends next to the SHA-256 one."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if isinstance(body, str):
        body = body.encode("utf-8")
    return "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()


def encode_body(obj, style="meta"):
    """A webhook body as bytes.  style "meta" (default) escapes like Meta's
    webhooks do: non-ASCII as \\uXXXX and "/" as "\\/"; "utf8" writes compact
    JSON with raw UTF-8."""
    if style == "utf8":
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if style != "meta":
        raise ValueError("style must be meta or utf8")
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


def message_object(kind="text", wa_id="15551234567", message_id=None, timestamp=None,
                   context_id=None, context_from=DEFAULT_DISPLAY_NUMBER, **f):
    """One value.messages[] entry as Meta sends it.

    kind and its fields (``f``):
      text: text;  image: media_id, mime_type, sha256 (base64), caption;
      document: media_id, mime_type, sha256, filename, caption;
      audio / video / sticker: media_id, mime_type, sha256 (sticker: animated);
      location: latitude, longitude, name, address;
      button_reply: id, title;  list_reply: id, title, description;
      button (template quick reply): payload, text;
      reaction: emoji, reacted_id;  unsupported: none.
    context_id adds {"context": {"from": context_from, "id": context_id}}.
    """
    if kind not in MESSAGE_KINDS:
        raise ValueError("kind must be one of " + ", ".join(MESSAGE_KINDS))
    msg = {}
    if context_id:
        msg["context"] = {"from": context_from, "id": context_id}
    msg["from"] = wa_id
    msg["id"] = message_id or new_wamid(wa_id, inbound=True)
    msg["timestamp"] = str(int(timestamp)) if timestamp is not None else now_ts()
    if kind == "text":
        msg["text"] = {"body": f.get("text", "")}
        msg["type"] = "text"
    elif kind in ("image", "document", "audio", "video", "sticker"):
        media = {}
        if kind in ("image", "document", "video") and f.get("caption") is not None:
            media["caption"] = f["caption"]
        if kind == "document" and f.get("filename") is not None:
            media["filename"] = f["filename"]
        media["mime_type"] = f.get("mime_type") or {
            "image": "image/jpeg", "document": "application/pdf", "audio": "audio/ogg; codecs=opus",
            "video": "video/mp4", "sticker": "image/webp"}[kind]
        media["sha256"] = f.get("sha256") or base64.b64encode(
            hashlib.sha256(b"").digest()).decode("ascii")
        media["id"] = str(f.get("media_id") or "0")
        if kind == "sticker":
            media["animated"] = bool(f.get("animated", False))
        if kind == "audio":
            media["voice"] = bool(f.get("voice", True))
        msg["type"] = kind
        msg[kind] = media
    elif kind == "location":
        loc = {"latitude": f.get("latitude", 48.137154), "longitude": f.get("longitude", 11.576124)}
        if f.get("name") is not None:
            loc["name"] = f["name"]
        if f.get("address") is not None:
            loc["address"] = f["address"]
        msg["location"] = loc
        msg["type"] = "location"
    elif kind == "button_reply":
        msg["interactive"] = {"type": "button_reply",
                              "button_reply": {"id": f.get("id", ""), "title": f.get("title", "")}}
        msg["type"] = "interactive"
    elif kind == "list_reply":
        reply = {"id": f.get("id", ""), "title": f.get("title", "")}
        if f.get("description") is not None:
            reply["description"] = f["description"]
        msg["interactive"] = {"type": "list_reply", "list_reply": reply}
        msg["type"] = "interactive"
    elif kind == "button":
        msg["button"] = {"payload": f.get("payload", ""), "text": f.get("text", "")}
        msg["type"] = "button"
    elif kind == "reaction":
        msg["reaction"] = {"message_id": f.get("reacted_id", ""), "emoji": f.get("emoji", "\U0001F44D")}
        msg["type"] = "reaction"
    else:  # unsupported
        msg["errors"] = [webhook_error(131051)]
        msg["type"] = "unsupported"
    return msg


def webhook_error(code, title=None, message=None, details=None):
    """One errors[] entry of a webhook (statuses[].errors, value.errors, ...)."""
    info = ERRORS.get(code)
    if title is None:
        title = info[1] if info else "Error %d" % code
    if details is None:
        details = (info[2] if info and info[2] else title)
    return {"code": code, "title": title, "message": message if message is not None else title,
            "error_data": {"details": details}, "href": ERROR_HREF}


def _envelope(value, waba_id):
    return {"object": "whatsapp_business_account",
            "entry": [{"id": waba_id, "changes": [{"value": value, "field": "messages"}]}]}


def _value_head(phone_number_id, display_phone_number):
    return {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": display_phone_number,
                         "phone_number_id": phone_number_id}}


def build_message_body(wa_id="15551234567", kind="text", name=DEFAULT_PROFILE_NAME,
                       phone_number_id="123456789012345",
                       display_phone_number=DEFAULT_DISPLAY_NUMBER, waba_id=DEFAULT_WABA_ID,
                       message=None, **fields):
    """A complete messages webhook body (dict) with one entry, one change
    (field "messages"), metadata, contacts [{profile {name}, wa_id}] and one
    message: ``message`` verbatim if given, else message_object(kind, wa_id,
    **fields).  Encode it with encode_body() and sign the bytes with sign()."""
    if message is None:
        message = message_object(kind, wa_id, context_from=display_phone_number, **fields)
    value = _value_head(phone_number_id, display_phone_number)
    contact = {"profile": {"name": name}, "wa_id": wa_id}
    value["contacts"] = [contact]
    value["messages"] = [message]
    return _envelope(value, waba_id)


def build_status_body(message_id, status="delivered", recipient_id="15551234567",
                      phone_number_id="123456789012345",
                      display_phone_number=DEFAULT_DISPLAY_NUMBER, waba_id=DEFAULT_WABA_ID,
                      timestamp=None, error_code=None, error_title=None, error_message=None,
                      error_details=None, conversation=True, category="service"):
    """A statuses webhook body (dict) for one message: status sent, delivered,
    read or failed (failed carries errors[{code, title, message, error_data
    {details}, href}], default code 131026).  sent and delivered carry
    conversation and pricing unless conversation=False."""
    ts = str(int(timestamp)) if timestamp is not None else now_ts()
    st = {"id": message_id, "status": status, "timestamp": ts, "recipient_id": recipient_id}
    if status in ("sent", "delivered") and conversation:
        conv = {"id": hashlib.sha1(recipient_id.encode()).hexdigest()[:32],
                "origin": {"type": category}}
        if status == "sent":
            conv["expiration_timestamp"] = str(int(ts) + WINDOW_S)
        st["conversation"] = conv
        st["pricing"] = {"billable": True, "pricing_model": "CBP", "category": category}
    if status == "failed":
        st["errors"] = [webhook_error(error_code if error_code is not None else 131026,
                                      error_title, error_message, error_details)]
    value = _value_head(phone_number_id, display_phone_number)
    value["statuses"] = [st]
    return _envelope(value, waba_id)


def build_errors_body(code=131000, title=None, message=None, details=None,
                      phone_number_id="123456789012345",
                      display_phone_number=DEFAULT_DISPLAY_NUMBER, waba_id=DEFAULT_WABA_ID):
    """A webhook body with value.errors[] (a system-level error, no message)."""
    value = _value_head(phone_number_id, display_phone_number)
    value["errors"] = [webhook_error(code, title, message, details)]
    return _envelope(value, waba_id)


def _tamper(body):
    """body with one ASCII letter or digit near its middle changed (offset, bytes)."""
    b = bytearray(body)
    n = len(b)
    for i in itertools.chain(range(n // 2, n), range(n // 2 - 1, -1, -1)):
        c = b[i]
        if 0x30 <= c <= 0x39:
            b[i] = 0x30 + (c - 0x30 + 1) % 10
            return i, bytes(b)
        if 0x61 <= c <= 0x7A or 0x41 <= c <= 0x5A:
            b[i] = c ^ 0x20 if c not in (0x7A, 0x5A) else c - 1
            return i, bytes(b)
    if n:
        b[n // 2] ^= 0x01
        return n // 2, bytes(b)
    return 0, b" "


def signed_request(secret, body, mode="valid"):
    """(body bytes actually sent, headers, note) for a signature mode."""
    if mode not in SIGNATURE_MODES:
        raise ValueError("signature must be one of " + ", ".join(SIGNATURE_MODES))
    headers = {}
    note = None
    good = sign(secret, body)
    if mode == "valid":
        headers["X-Hub-Signature-256"] = good
        headers["X-Hub-Signature"] = sign_sha1(secret, body)
    elif mode == "uppercase":
        headers["X-Hub-Signature-256"] = "sha256=" + good[7:].upper()
    elif mode == "wrong":
        headers["X-Hub-Signature-256"] = sign(b"not-the-app-secret:" + (
            secret.encode() if isinstance(secret, str) else secret), body)
    elif mode == "other_body":
        headers["X-Hub-Signature-256"] = sign(secret, body + b" ")
    elif mode == "tamper":
        headers["X-Hub-Signature-256"] = good
        offset, body = _tamper(body)
        note = {"tampered_offset": offset}
    elif mode == "no_prefix":
        headers["X-Hub-Signature-256"] = good[7:]
    elif mode == "malformed":
        headers["X-Hub-Signature-256"] = "sha256=" + "zz" * 32
    elif mode == "empty":
        headers["X-Hub-Signature-256"] = ""
    elif mode == "sha1_only":
        headers["X-Hub-Signature"] = sign_sha1(secret, body)
    return body, headers, note


def post_webhook(url, body, headers, timeout, method="POST"):
    """Deliver one request to a loopback URL; returns a result dict:
    {"status": HTTP status or None, "body": answer text, "error": text or
    None, "duration": seconds}.  Refuses any non-loopback URL."""
    started = time.monotonic()
    if not is_loopback_url(url):
        return {"status": None, "body": "", "error": "refused: not a loopback http:// URL",
                "duration": 0.0}
    parts = urllib.parse.urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        hdrs = {"User-Agent": "facebookexternalua", "Accept": "*/*"}
        if method == "POST":
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers)
        conn.request(method, target, body=body if method == "POST" else None, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read(RESPONSE_KEEP + 1)
        return {"status": resp.status,
                "body": data[:RESPONSE_KEEP].decode("utf-8", "replace"),
                "error": None, "duration": round(time.monotonic() - started, 4)}
    except (OSError, http.client.HTTPException) as e:
        return {"status": None, "body": "", "error": "%s: %s" % (type(e).__name__, e),
                "duration": round(time.monotonic() - started, 4)}
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# Argument readers for validation (Graph side) and control requests
# ---------------------------------------------------------------------------

def _obj(parent, key, where, required=True):
    v = parent.get(key)
    if v is None:
        if required:
            raise invalid("Param %s is required." % where)
        return None
    if not isinstance(v, dict):
        raise invalid("Param %s must be a JSON object." % where)
    return v


def _str(parent, key, where, lo=1, hi=None, required=True):
    v = parent.get(key)
    if v is None:
        if required:
            raise invalid("Param %s is required." % where)
        return None
    if not isinstance(v, str):
        raise invalid("Param %s must be a string." % where)
    n = len(v)
    if n < lo:
        if lo == 1 and n == 0:
            raise invalid("Param %s must not be empty." % where)
        raise invalid("Param %s must be at least %d characters long." % (where, lo))
    if hi is not None and n > hi:
        raise invalid("Param %s must be at most %d characters long." % (where, hi))
    return v


def _list(parent, key, where, lo, hi, required=True):
    v = parent.get(key)
    if v is None:
        if required:
            raise invalid("Param %s is required." % where)
        return None
    if not isinstance(v, list):
        raise invalid("Param %s must be an array." % where)
    if len(v) < lo:
        raise invalid("Param %s must have at least %d element%s." % (where, lo, "" if lo == 1 else "s"))
    if hi is not None and len(v) > hi:
        raise invalid("Param %s must have at most %d elements." % (where, hi))
    return v


# ---------------------------------------------------------------------------
# The fake
# ---------------------------------------------------------------------------

class FakeWhatsApp:
    """All state of the fake behind one condition variable."""

    def __init__(self, token, phone_number_id, app_secret, config, log,
                 display_phone_number=DEFAULT_DISPLAY_NUMBER,
                 verified_name=DEFAULT_VERIFIED_NAME, waba_id=DEFAULT_WABA_ID):
        self.token = token
        self.phone_number_id = phone_number_id
        self.app_secret = app_secret
        self.display_phone_number = display_phone_number
        self.verified_name = verified_name
        self.waba_id = waba_id
        self.initial_config = dict(config)
        self.log = log
        self.port = 0
        self.cond = threading.Condition()
        self._stopping = False
        self._delay_gen = 0
        self._seq = 0
        self._wh_seq = 0
        self._status_queue = queue.Queue()
        self._status_thread = None
        self._reset_state()

    # -- state -----------------------------------------------------------------

    def _reset_state(self):
        """Forget everything except the sequence counters."""
        self.config = dict(self.initial_config)
        self.auto = {"on": False, "read": False, "delay_s": 0.05}
        self.users = {}            # wa_id -> {"name", "last_inbound" (unix) or None}
        self.media = {}            # media id -> {"data", "mime_type", "sha256_hex", ...}
        self.media_urls = {}       # url token -> {"media_id", "expires" (unix)}
        self.calls = deque(maxlen=CALL_LOG_MAX)
        self.sent = []             # successful sends
        self.sent_ids = {}         # wamid -> wa_id
        self.inbound_ids = set()   # wamids of messages the fake delivered
        self.webhooks = deque(maxlen=CALL_LOG_MAX)
        self.faults = []
        self.templates = {}        # (name, language) -> {"body_params", "buttons"}
        self.pair = {}             # wa_id -> [tokens, monotonic time]
        self.global_sends = deque()
        self.stats = {"calls_total": 0, "sends_ok": 0, "errors_by_code": {},
                      "faults_applied": 0, "rate_limited": 0, "window_refusals": 0,
                      "dropped_connections": 0, "webhook_deliveries": 0,
                      "internal_errors": 0}
        self._delay_gen += 1

    def start(self):
        """Start the background thread that posts status webhooks."""
        self._status_thread = threading.Thread(target=self._status_worker,
                                               name="fake-whatsapp-statuses", daemon=True)
        self._status_thread.start()

    def stop(self):
        """Make waiting calls return at once (server shutdown)."""
        with self.cond:
            self._stopping = True
            self._delay_gen += 1
            self.cond.notify_all()
        self._status_queue.put(None)
        if self._status_thread is not None:
            self._status_thread.join(5)

    def sleep(self, seconds):
        """Sleep for a fault delay; cut short by clear_faults, reset or stop."""
        deadline = time.monotonic() + seconds
        with self.cond:
            gen = self._delay_gen
            while not self._stopping and self._delay_gen == gen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)

    def count_internal_error(self, where):
        """Count and log a bug of the fake."""
        with self.cond:
            self.stats["internal_errors"] += 1
        self.log("internal error in %s:\n%s" % (where, traceback.format_exc()))

    def base_url(self):
        """The fake's own URL (media download URLs point here)."""
        return "http://127.0.0.1:%d" % self.port

    # -- Graph API ----------------------------------------------------------------

    def _auth(self, headers, query):
        """"ok", "missing" or "wrong" for a request's credentials."""
        auth = headers.get("Authorization")
        if auth is not None:
            scheme, _, tok = auth.strip().partition(" ")
            if scheme.lower() in ("bearer", "oauth") and tok.strip() == self.token:
                return "ok"
            return "wrong"
        q = urllib.parse.parse_qs(query, keep_blank_values=True).get("access_token")
        if q:
            return "ok" if q[-1] == self.token else "wrong"
        return "missing"

    def graph(self, method, path, query, headers, body, peer_alive=None):
        """One Graph API (or media download) request; returns an Outcome."""
        started = time.time()
        rec = {"method": method, "path": path, "query": query, "endpoint": "other",
               "version": None, "auth": None, "auth_ok": False, "body": None,
               "to": None, "type": None, "fault": None, "message_id": None}
        if body:
            try:
                rec["body"] = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError, RecursionError):
                rec["body_text"] = body[:4096].decode("utf-8", "replace")
        auth = self._auth(headers, query)
        rec["auth"] = auth
        rec["auth_ok"] = auth == "ok"
        segs = [urllib.parse.unquote(s) for s in path.split("/") if s]
        if segs and _VERSION_RE.match(segs[0]):
            rec["version"] = segs[0]
            segs = segs[1:]
        if path.startswith("/whatsapp_business/attachments"):
            rec["endpoint"] = "media_download"
            return self._download(rec, query, started)
        fault = None
        outcome = None
        try:
            with self.cond:
                route_error = None
                try:        # classify first (for the call log), answer auth errors first
                    endpoint, args = self._route(method, segs, rec)
                except GraphError as e:
                    route_error = e
                if isinstance(rec["body"], dict):
                    to, mtype = rec["body"].get("to"), rec["body"].get("type")
                    rec["to"] = to if isinstance(to, str) else None
                    rec["type"] = mtype if isinstance(mtype, str) else None
                if auth != "ok":
                    raise token_error()
                if route_error is not None:
                    raise route_error
                if endpoint == "messages":
                    params = self._parse_body(body, headers.get("Content-Type"))
                    rec["body"] = params
                    if "status" in params and "to" not in params:
                        endpoint = rec["endpoint"] = "read"
                    rec["to"] = params.get("to") if isinstance(params.get("to"), str) else None
                    rec["type"] = params.get("type") if isinstance(params.get("type"), str) else None
                fault = self._take_fault(endpoint, rec["to"])
            if fault is not None:
                rec["fault"] = fault["kind"]
                outcome = self._fault_outcome(fault)
            if outcome is None:
                with self.cond:
                    result = self._run(endpoint, args, rec, fault)
                outcome = Outcome(200, dumps(result))
                if fault is not None and fault["kind"] == "delay":
                    outcome.delay = fault["delay"]
        except GraphError as e:
            outcome = Outcome(e.status, dumps(e.envelope()))
            if e.code == 190:
                outcome.headers["WWW-Authenticate"] = (
                    'OAuth "Facebook Platform" "invalid_token" "%s"' % e.message)
        except Exception:
            self.count_internal_error("graph %s %s" % (method, path))
            outcome = Outcome(500, dumps(server_error(1).envelope()))
        with self.cond:
            self._record(rec, started, outcome)
        return outcome

    def _route(self, method, segs, rec):
        """(endpoint name, argument) for a Graph path, or a GraphError.  Sets
        rec["endpoint"] as soon as the endpoint is known."""
        verb = method.lower()
        if not segs:
            raise GraphError(100, status=400, message="Unsupported %s request." % verb,
                             etype="GraphMethodException", error_data=False)
        obj = segs[0]
        if obj == self.phone_number_id:
            if len(segs) == 1:
                rec["endpoint"] = "phone_number"
                if method != "GET":
                    raise unsupported_request(verb, obj)
                return "phone_number", None
            if len(segs) == 2 and segs[1] == "messages":
                rec["endpoint"] = "messages"
                if method != "POST":
                    raise unsupported_request(verb, obj)
                return "messages", None
            raise GraphError(2500, status=400, error_data=False,
                             message="Unknown path components: /" + "/".join(segs[1:]))
        if len(segs) == 1 and method == "GET":
            rec["endpoint"] = "media"
            if obj in self.media:
                return "media", obj
        raise unsupported_request(verb, obj)

    @staticmethod
    def _parse_body(body, content_type):
        """The parameters of a messages request (JSON object or form fields)."""
        ctype = (content_type or "").split(";", 1)[0].strip().lower()
        if not body or not body.strip():
            raise invalid("The request body is empty: a JSON object is required.")
        if ctype == "application/x-www-form-urlencoded" and not body.lstrip().startswith(b"{"):
            params = {}
            for k, v in urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                               keep_blank_values=True):
                if v[:1] in ("{", "["):
                    try:
                        v = json.loads(v)
                    except ValueError:
                        pass
                params[k] = v
            return params
        try:
            obj = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise invalid("The request body is not valid JSON.")
        if not isinstance(obj, dict) or not json_depth_ok(obj):
            raise invalid("The request body must be a JSON object.")
        return obj

    def _run(self, endpoint, args, rec, fault):
        """Carry out a routed, authorised request (lock held); the result object."""
        if endpoint == "phone_number":
            return self._phone_number(rec["query"])
        if endpoint == "media":
            return self._media_info(args)
        if endpoint == "read":
            return self._mark_read(rec["body"])
        return self._send(rec, fault)

    def _phone_number(self, query):
        """GET /{phone-number-id}: the WhatsAppBusinessPhoneNumber node."""
        node = {"verified_name": self.verified_name, "code_verification_status": "VERIFIED",
                "display_phone_number": "+" + self.display_phone_number,
                "quality_rating": "GREEN", "platform_type": "CLOUD_API",
                "throughput": {"level": "STANDARD"}, "id": self.phone_number_id}
        fields = urllib.parse.parse_qs(query).get("fields")
        if not fields:
            return node
        out = {}
        for name in [f.strip() for f in fields[-1].split(",") if f.strip()]:
            if name not in node:
                raise GraphError(100, message="(#100) Tried accessing nonexisting field (%s) "
                                 "on node type (WhatsAppBusinessPhoneNumber)" % name,
                                 error_data=False)
            out[name] = node[name]
        out["id"] = self.phone_number_id
        return out

    def _media_info(self, media_id):
        """GET /{media-id}: the media object with a fresh short-lived URL."""
        m = self.media[media_id]
        tok = random_token(24)
        expires = time.time() + float(self.config["media_url_ttl_s"])
        self.media_urls[tok] = {"media_id": media_id, "expires": expires}
        url = "%s/whatsapp_business/attachments/?mid=%s&ext=%d&hash=%s" % (
            self.base_url(), media_id, int(expires), tok)
        m["urls_issued"] += 1
        return {"messaging_product": "whatsapp", "url": url, "mime_type": m["mime_type"],
                "sha256": m["sha256_hex"], "file_size": len(m["data"]), "id": media_id}

    def _download(self, rec, query, started):
        """GET of a media URL: the bytes (Bearer token required), else 401/404."""
        q = urllib.parse.parse_qs(query)
        tok = (q.get("hash") or [""])[-1]
        mid = (q.get("mid") or [""])[-1]
        fault = None
        outcome = None
        try:
            with self.cond:
                fault = self._take_fault("media_download", None)
            if fault is not None:
                rec["fault"] = fault["kind"]
                outcome = self._fault_outcome(fault)
            if outcome is None:
                with self.cond:
                    if rec["auth"] != "ok":
                        outcome = Outcome(401, b"Unauthorized", "text/plain")
                    else:
                        u = self.media_urls.get(tok)
                        m = self.media.get(mid)
                        if u is None or m is None or u["media_id"] != mid:
                            outcome = Outcome(404, b"Not Found", "text/plain")
                        elif time.time() >= u["expires"]:
                            outcome = Outcome(404, b"URL signature expired", "text/plain")
                        else:
                            m["downloads"] += 1
                            outcome = Outcome(200, m["data"], m["mime_type"])
                if fault is not None and fault["kind"] == "delay":
                    outcome.delay = fault["delay"]
        except GraphError as e:
            outcome = Outcome(e.status, dumps(e.envelope()))
        except Exception:
            self.count_internal_error("media download")
            outcome = Outcome(500, b"Internal Server Error", "text/plain")
        with self.cond:
            self._record(rec, started, outcome, download=True)
        return outcome

    def _record(self, rec, started, outcome, download=False):
        """Append one call to the log (lock held) and wake waiters."""
        self._seq += 1
        now = time.time()
        rec["seq"] = self._seq
        entry = rec.pop("_sent", None)
        if entry is not None:
            entry["seq"] = self._seq
        rec["time"] = now
        rec["started"] = started
        rec["duration"] = round(now - started, 6)
        rec["status"] = None if outcome.drop else outcome.status
        if download and outcome.status == 200 and not outcome.drop:
            rec["response"] = {"bytes": len(outcome.body), "content_type": outcome.content_type}
        elif outcome.drop:
            rec["response"] = None
        else:
            try:
                rec["response"] = json.loads(outcome.body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                rec["response"] = outcome.body[:4096].decode("utf-8", "replace")
        err = rec["response"].get("error") if isinstance(rec["response"], dict) else None
        rec["error_code"] = err.get("code") if isinstance(err, dict) else None
        rec["ok"] = rec["status"] == 200
        self.calls.append(rec)
        st = self.stats
        st["calls_total"] += 1
        if rec["error_code"] is not None:
            key = str(rec["error_code"])
            st["errors_by_code"][key] = st["errors_by_code"].get(key, 0) + 1
        if outcome.drop:
            st["dropped_connections"] += 1
        self.cond.notify_all()

    # -- faults --------------------------------------------------------------------

    def _take_fault(self, endpoint, to):
        """The first pending fault matching this request, consuming one use."""
        wa = wa_digits(to) if to else None
        chosen = None
        keep = []
        for f in self.faults:
            if chosen is None and f["endpoint"] in ("*", endpoint) and (
                    f["to"] is None or f["to"] == wa):
                chosen = dict(f)
                f["count"] -= 1
                if f["count"] <= 0:
                    continue
            keep.append(f)
        self.faults = keep
        if chosen is not None:
            self.stats["faults_applied"] += 1
        return chosen

    def _fault_outcome(self, fault):
        """Apply a fault (lock not held): raise its error, or return an Outcome
        replacing the answer, or None to carry out the request."""
        kind = fault["kind"]
        if kind == "delay":
            return None
        if kind == "timeout":
            self.sleep(fault["delay"])
            return Outcome(drop=True)
        if kind == "drop":
            return Outcome(drop=True)
        if fault.get("as_status"):
            return None      # accepted; a failed status follows (see _send)
        if kind == "500":
            raise server_error(1)
        if kind == "503":
            raise server_error(2)
        code = int(kind)
        if code == 190:
            raise token_error(expired=True)
        details = fault.get("details")
        if details is None and code == 100:
            details = "Invalid parameter (a fault injected by the test)."
        e = GraphError(code, details=details)
        if fault.get("message"):
            e.message = fault["message"]
        raise e

    # -- sending ---------------------------------------------------------------------

    def _send(self, rec, fault):
        """POST /{phone-number-id}/messages (lock held)."""
        p = rec["body"]
        mp = p.get("messaging_product")
        if mp is None:
            raise invalid("Param messaging_product is required.")
        if mp != "whatsapp":
            raise invalid('Param messaging_product must be "whatsapp".')
        rt = p.get("recipient_type", "individual")
        if rt != "individual":
            raise invalid('Param recipient_type must be "individual".')
        to = p.get("to")
        if to is None or to == "":
            raise invalid("Param to is required.")
        wa = wa_digits(to)
        if wa is None:
            raise invalid("Param to must be a phone number (digits, optionally with a "
                          "leading +).")
        mtype = p.get("type", "text")
        if not isinstance(mtype, str):
            raise invalid("Param type must be a string.")
        if "context" in p:
            ctx = _obj(p, "context", "context")
            _str(ctx, "message_id", "context['message_id']")
        if mtype == "text":
            self._v_text(p)
        elif mtype == "interactive":
            self._v_interactive(p)
        elif mtype == "template":
            self._v_template(p)
        elif mtype == "image":
            self._v_image(p)
        else:
            raise invalid("Param type must be one of {text, interactive, template, image} "
                          "(the types this fake supports) - got \"%s\"." % mtype)
        if mtype != "template" and self.config["window"]:
            user = self.users.get(wa)
            last = user.get("last_inbound") if user else None
            if last is None or time.time() - last > WINDOW_S:
                self.stats["window_refusals"] += 1
                raise GraphError(131047)
        self._check_rate(wa)
        self._note_send(wa)
        wamid = new_wamid(wa)
        msg = {"id": wamid}
        if mtype == "template":
            msg["message_status"] = "accepted"
        result = {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": wa}],
                  "messages": [msg]}
        rec["message_id"] = wamid
        entry = {"seq": None, "message_id": wamid, "to": to, "wa_id": wa, "type": mtype,
                 "body": copy.deepcopy(p), "time": time.time()}
        self.sent.append(entry)
        rec["_sent"] = entry      # its seq is set when the call is recorded
        self.sent_ids[wamid] = wa
        self.stats["sends_ok"] += 1
        if fault is not None and fault.get("as_status") and fault["kind"] in FAULT_CODES:
            self._queue_status(wamid, wa, ["failed"], int(fault["kind"]), fault.get("details"))
        elif self.auto["on"]:
            self._queue_status(wamid, wa, ["sent", "delivered"] + (
                ["read"] if self.auto["read"] else []))
        return result

    def _mark_read(self, p):
        """{"messaging_product", "status": "read", "message_id"} (read receipt)."""
        if p.get("messaging_product") != "whatsapp":
            raise invalid('Param messaging_product must be "whatsapp".')
        if p.get("status") != "read":
            raise invalid('Param status must be "read".')
        mid = _str(p, "message_id", "message_id")
        if mid not in self.inbound_ids:
            raise invalid("Param message_id is not the id of a message this number received.")
        if "typing_indicator" in p:
            ti = _obj(p, "typing_indicator", "typing_indicator")
            if ti.get("type") != "text":
                raise invalid('Param typing_indicator[\'type\'] must be "text".')
        return {"success": True}

    def _check_rate(self, wa):
        """With rate limits on: 130429 over throughput_per_s sends per second,
        131056 when the pair bucket (pair_burst, 1 per pair_interval_s) is empty."""
        if not self.config["rate_limits"]:
            return
        now = time.monotonic()
        while self.global_sends and now - self.global_sends[0] >= 1.0:
            self.global_sends.popleft()
        if len(self.global_sends) >= int(self.config["throughput_per_s"]):
            self.stats["rate_limited"] += 1
            raise GraphError(130429)
        burst = float(self.config["pair_burst"])
        interval = float(self.config["pair_interval_s"])
        tokens, last = self.pair.get(wa, (burst, now))
        tokens = min(burst, tokens + ((now - last) / interval if interval > 0 else burst))
        self.pair[wa] = (tokens, now)
        if tokens < 1.0 - 1e-9:
            self.stats["rate_limited"] += 1
            raise GraphError(131056)

    def _note_send(self, wa):
        """Count an accepted send against the rate limits."""
        now = time.monotonic()
        while self.global_sends and now - self.global_sends[0] >= 1.0:
            self.global_sends.popleft()
        self.global_sends.append(now)
        if self.config["rate_limits"]:
            tokens, _ = self.pair.get(wa, (float(self.config["pair_burst"]), now))
            self.pair[wa] = (tokens - 1.0, now)

    # -- validation of message bodies (Meta's documented limits) -------------------

    @staticmethod
    def _v_text(p):
        text = _obj(p, "text", "text")
        _str(text, "body", "text['body']", 1, TEXT_MAX)
        if "preview_url" in text and not isinstance(text["preview_url"], bool):
            raise invalid("Param text['preview_url'] must be a boolean.")

    @staticmethod
    def _v_image(p):
        img = _obj(p, "image", "image")
        has_id = "id" in img
        has_link = "link" in img
        if has_id == has_link:
            raise invalid("Param image must have exactly one of id and link.")
        if has_link:
            link = _str(img, "link", "image['link']")
            if not re.match(r"https?://\S+$", link):
                raise invalid("Param image['link'] must be an http or https URL.")
        else:
            _str(img, "id", "image['id']")
        _str(img, "caption", "image['caption']", 0, CAPTION_MAX, required=False)

    def _v_interactive(self, p):
        it = _obj(p, "interactive", "interactive")
        itype = it.get("type")
        if itype not in ("button", "list"):
            raise invalid("Param interactive['type'] must be button or list (the "
                          "interactive types this fake supports) - got %s." % json.dumps(itype))
        if "header" in it:
            h = _obj(it, "header", "interactive['header']")
            htype = h.get("type")
            if itype == "list" and htype != "text":
                raise invalid("Param interactive['header']['type'] must be text for a list.")
            if htype == "text":
                _str(h, "text", "interactive['header']['text']", 1, HEADER_TEXT_MAX)
            elif htype not in ("image", "video", "document"):
                raise invalid("Param interactive['header']['type'] must be one of "
                              "{text, image, video, document}.")
        if "footer" in it:
            f = _obj(it, "footer", "interactive['footer']")
            _str(f, "text", "interactive['footer']['text']", 1, FOOTER_TEXT_MAX)
        body = _obj(it, "body", "interactive['body']")
        _str(body, "text", "interactive['body']['text']", 1, INTERACTIVE_BODY_MAX)
        action = _obj(it, "action", "interactive['action']")
        if itype == "button":
            buttons = _list(action, "buttons", "interactive['action']['buttons']", 1, BUTTONS_MAX)
            ids, titles = set(), set()
            for i, b in enumerate(buttons):
                where = "interactive['action']['buttons'][%d]" % i
                if not isinstance(b, dict):
                    raise invalid("Param %s must be a JSON object." % where)
                if b.get("type") != "reply":
                    raise invalid("Param %s['type'] must be \"reply\"." % where)
                reply = _obj(b, "reply", where + "['reply']")
                bid = _str(reply, "id", where + "['reply']['id']", 1, BUTTON_ID_MAX)
                title = _str(reply, "title", where + "['reply']['title']", 1, BUTTON_TITLE_MAX)
                if bid in ids:
                    raise invalid("Buttons must have unique ids: %s is repeated." % json.dumps(bid))
                if title in titles:
                    raise invalid("Buttons must have unique titles: %s is repeated."
                                  % json.dumps(title))
                ids.add(bid)
                titles.add(title)
            return
        _str(action, "button", "interactive['action']['button']", 1, LIST_BUTTON_MAX)
        sections = _list(action, "sections", "interactive['action']['sections']", 1,
                         LIST_SECTIONS_MAX)
        total = 0
        row_ids = set()
        for si, s in enumerate(sections):
            where = "interactive['action']['sections'][%d]" % si
            if not isinstance(s, dict):
                raise invalid("Param %s must be a JSON object." % where)
            _str(s, "title", where + "['title']", 1, SECTION_TITLE_MAX,
                 required=len(sections) > 1)
            rows = _list(s, "rows", where + "['rows']", 1, None)
            for ri, r in enumerate(rows):
                rw = "%s['rows'][%d]" % (where, ri)
                if not isinstance(r, dict):
                    raise invalid("Param %s must be a JSON object." % rw)
                rid = _str(r, "id", rw + "['id']", 1, ROW_ID_MAX)
                _str(r, "title", rw + "['title']", 1, ROW_TITLE_MAX)
                _str(r, "description", rw + "['description']", 0, ROW_DESCRIPTION_MAX,
                     required=False)
                if rid in row_ids:
                    raise invalid("Rows must have unique ids: %s is repeated." % json.dumps(rid))
                row_ids.add(rid)
            total += len(rows)
        if total > LIST_ROWS_MAX:
            raise invalid("The list has %d rows: at most %d rows are allowed across all "
                          "sections." % (total, LIST_ROWS_MAX))

    def _v_template(self, p):
        t = _obj(p, "template", "template")
        name = _str(t, "name", "template['name']", 1, TEMPLATE_NAME_MAX)
        lang = _obj(t, "language", "template['language']")
        code = _str(lang, "code", "template['language']['code']")
        if "policy" in lang and lang["policy"] != "deterministic":
            raise invalid('Param template[\'language\'][\'policy\'] must be "deterministic".')
        comps = _list(t, "components", "template['components']", 0, None, required=False) or []
        body_params = 0
        quick_replies = 0
        indexes = set()
        for ci, c in enumerate(comps):
            where = "template['components'][%d]" % ci
            if not isinstance(c, dict):
                raise invalid("Param %s must be a JSON object." % where)
            ctype = c.get("type")
            ctype = ctype.lower() if isinstance(ctype, str) else ctype
            if ctype not in ("header", "body", "footer", "button"):
                raise invalid("Param %s['type'] must be one of {header, body, footer, button}."
                              % where)
            params = _list(c, "parameters", where + "['parameters']", 0, None,
                           required=ctype == "button") or []
            if ctype == "button":
                sub = c.get("sub_type")
                sub = sub.lower() if isinstance(sub, str) else sub
                if sub not in ("quick_reply", "url", "copy_code", "flow"):
                    raise invalid("Param %s['sub_type'] must be one of {quick_reply, url, "
                                  "copy_code, flow}." % where)
                idx = c.get("index")
                if isinstance(idx, str) and idx.isdigit():
                    idx = int(idx)
                if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx <= 9:
                    raise invalid("Param %s['index'] is required: a button position "
                                  "from 0 to 9." % where)
                if idx in indexes:
                    raise invalid("Param %s['index']: button %d is given twice." % (where, idx))
                indexes.add(idx)
                if not params:
                    raise invalid("Param %s['parameters'] must have at least 1 element." % where)
                for pi, prm in enumerate(params):
                    pw = "%s['parameters'][%d]" % (where, pi)
                    if not isinstance(prm, dict):
                        raise invalid("Param %s must be a JSON object." % pw)
                    if sub == "quick_reply":
                        if prm.get("type") != "payload":
                            raise invalid('Param %s[\'type\'] must be "payload" for a '
                                          'quick_reply button.' % pw)
                        _str(prm, "payload", pw + "['payload']", 1, None)
                    elif sub == "url":
                        if prm.get("type") != "text":
                            raise invalid('Param %s[\'type\'] must be "text" for a url '
                                          'button.' % pw)
                        _str(prm, "text", pw + "['text']", 1, None)
                if sub == "quick_reply":
                    quick_replies += 1
                continue
            for pi, prm in enumerate(params):
                pw = "%s['parameters'][%d]" % (where, pi)
                if not isinstance(prm, dict):
                    raise invalid("Param %s must be a JSON object." % pw)
                ptype = prm.get("type")
                if ctype == "header" and ptype in ("image", "video", "document"):
                    media = _obj(prm, ptype, pw + "['%s']" % ptype)
                    if ("id" in media) == ("link" in media):
                        raise invalid("Param %s['%s'] must have exactly one of id and link."
                                      % (pw, ptype))
                    continue
                if ptype == "text":
                    hi = TEMPLATE_HEADER_PARAM_MAX if ctype == "header" else TEMPLATE_PARAM_MAX
                    text = _str(prm, "text", pw + "['text']", 1, hi)
                    if ctype == "body" and ("\n" in text or "\t" in text or "     " in text):
                        raise invalid("Param %s['text']: Param text cannot have new-line/tab "
                                      "characters or more than 4 consecutive spaces." % pw)
                elif ptype == "currency" and ctype == "body":
                    _obj(prm, "currency", pw + "['currency']")
                elif ptype == "date_time" and ctype == "body":
                    _obj(prm, "date_time", pw + "['date_time']")
                else:
                    raise invalid("Param %s['type'] must be one of {text, currency, date_time}"
                                  " in a body and {text, image, video, document} in a header."
                                  % pw)
            if ctype == "body":
                body_params += len(params)
        if self.templates:
            tpl = self.templates.get((name, code))
            if tpl is None:
                raise GraphError(132001, details="template name (%s) does not exist in %s"
                                 % (name, code))
            if tpl["body_params"] != body_params:
                raise GraphError(132000, details="body: number of localizable_params (%d) does "
                                 "not match the expected number of params (%d)"
                                 % (body_params, tpl["body_params"]))
            if tpl["quick_replies"] != quick_replies:
                raise GraphError(132000, details="buttons: number of quick_reply buttons "
                                 "with a payload (%d) does not match the template's (%d)"
                                 % (quick_replies, tpl["quick_replies"]))

    # -- webhooks -------------------------------------------------------------------

    def _webhook_url(self, args):
        """The URL to deliver to: args["webhook_url"] or the configured one."""
        url = args.get("webhook_url") or self.config.get("webhook_url")
        if not url:
            raise ControlError(400, "no webhook_url: start with --webhook-url, set it with "
                               "/control/config or give webhook_url")
        if not isinstance(url, str) or not is_loopback_url(url):
            raise ControlError(400, "webhook_url must be an http:// URL on a loopback address")
        return url

    def _deliver(self, kind, url, body, mode, times, info=None, content_type=None,
                 extra_headers=None):
        """POST body to url times times with a signature mode (lock NOT held).
        Returns (bytes sent, headers sent, [delivery results])."""
        sent_body, headers, note = signed_request(self.app_secret, body, mode)
        if content_type is not None:
            headers["Content-Type"] = content_type
        if extra_headers:
            headers.update(extra_headers)
        with self.cond:
            timeout = float(self.config["webhook_timeout_s"])
        results = []
        for i in range(times):
            r = post_webhook(url, sent_body, headers, timeout)
            if note:
                r.update(note)
            with self.cond:
                self._wh_seq += 1
                entry = {"seq": self._wh_seq, "kind": kind, "url": url, "time": time.time(),
                         "signature_mode": mode, "attempt": i + 1, "status": r["status"],
                         "response": r["body"], "error": r["error"],
                         "duration": r["duration"]}
                if info:
                    entry.update(info)
                entry["body"] = sent_body.decode("utf-8", "replace")
                self.webhooks.append(entry)
                self.stats["webhook_deliveries"] += 1
                self.cond.notify_all()
            r["seq"] = self._wh_seq
            results.append(r)
        return sent_body, headers, results

    def _queue_status(self, wamid, wa, statuses, code=None, details=None):
        """Post status webhooks for a send from the background thread."""
        url = self.config.get("webhook_url")
        if not url:
            return
        self._status_queue.put((time.monotonic() + float(self.auto["delay_s"]), url, wamid,
                                wa, list(statuses), code, details))

    def _status_worker(self):
        """Posts queued status webhooks in order (one thread, so in order)."""
        while True:
            item = self._status_queue.get()
            if item is None:
                return
            due, url, wamid, wa, statuses, code, details = item
            try:
                wait = due - time.monotonic()
                if wait > 0:
                    self.sleep(wait)
                if self._stopping:
                    return
                for st in statuses:
                    obj = build_status_body(wamid, st, wa, self.phone_number_id,
                                            self.display_phone_number, self.waba_id,
                                            error_code=code, error_details=details)
                    self._deliver("status", url, encode_body(obj), "valid", 1,
                                  {"message_id": wamid, "status_value": st, "auto": True})
            except Exception:
                self.count_internal_error("status worker")

    # -- control API ------------------------------------------------------------------

    def control(self, name, args):
        """Run control operation name with merged query/JSON args; (status, obj)."""
        impl = getattr(self, "_c_" + name, None) if re.fullmatch(r"[a-z_]+", name) else None
        if impl is None:
            return 404, {"error": "unknown control endpoint %r" % name}
        try:
            if name in self.UNLOCKED:
                return 200, impl(args)
            with self.cond:
                return 200, impl(args)
        except ControlError as e:
            return e.status, {"error": e.message}
        except Exception:
            self.count_internal_error("control " + name)
            return 500, {"error": "internal error in the fake, see its stderr"}

    # Operations that deliver webhooks or wait take the lock themselves.
    UNLOCKED = frozenset({"message", "status", "raw_webhook", "webhook_errors", "verify",
                          "wait", "webhooks"})

    @staticmethod
    def _arg_int(args, name, required=False, default=None, lo=None):
        v = args.get(name)
        if v is None or v == "":
            if required:
                raise ControlError(400, "%s is required" % name)
            return default
        if isinstance(v, bool):
            raise ControlError(400, "%s must be an integer" % name)
        if isinstance(v, str) and re.fullmatch(r"\s*-?\d+\s*", v):
            v = int(v)
        if not isinstance(v, int):
            raise ControlError(400, "%s must be an integer" % name)
        if lo is not None and v < lo:
            raise ControlError(400, "%s must be at least %d" % (name, lo))
        return v

    @staticmethod
    def _arg_float(args, name, default, lo=0.0):
        v = args.get(name)
        if v is None or v == "":
            return default
        if isinstance(v, bool):
            raise ControlError(400, "%s must be a number" % name)
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ControlError(400, "%s must be a number" % name)
        if not math.isfinite(f) or (lo is not None and f < lo):
            raise ControlError(400, "%s must be a number >= %s" % (name, lo))
        return f

    @staticmethod
    def _arg_str(args, name, default=None, required=False):
        v = args.get(name)
        if v is None:
            if required:
                raise ControlError(400, "%s is required" % name)
            return default
        if not isinstance(v, str):
            raise ControlError(400, "%s must be a string" % name)
        return v

    @staticmethod
    def _arg_bool(args, name, default):
        v = args.get(name)
        if v is None or v == "":
            return default
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)):
            return v != 0
        if isinstance(v, str) and v.strip().lower() in ("1", "true", "on", "yes"):
            return True
        if isinstance(v, str) and v.strip().lower() in ("0", "false", "off", "no"):
            return False
        raise ControlError(400, "%s must be a boolean (true/false, on/off)" % name)

    def _arg_wa(self, args, name="from", required=True):
        v = args.get(name)
        if v is None and name == "from":
            v = args.get("wa_id")
        if v is None:
            if required:
                raise ControlError(400, "%s (the user's wa_id, digits) is required" % name)
            return None
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str) or not _DIGITS_RE.match(v):
            raise ControlError(400, "%s must be a wa_id (5 to 20 digits)" % name)
        return v

    def _arg_signature(self, args):
        mode = args.get("signature", "valid")
        if mode not in SIGNATURE_MODES:
            raise ControlError(400, "signature must be one of " + ", ".join(SIGNATURE_MODES))
        return mode

    def _arg_data(self, args, required):
        b64 = args.get("data_b64")
        if b64 is None:
            if required:
                raise ControlError(400, "data_b64 (the file's bytes, base64) is required")
            return None
        if not isinstance(b64, str):
            raise ControlError(400, "data_b64 must be base64 text")
        try:
            return base64.b64decode(b64, validate=True)
        except (ValueError, TypeError):
            raise ControlError(400, "data_b64 is not valid base64")

    def _store_media(self, data, mime_type, filename=None):
        """Keep bytes under a fresh numeric media id (lock held)."""
        while True:
            mid = str(random.randint(10 ** 15, 10 ** 16 - 1))
            if mid not in self.media and mid != self.phone_number_id:
                break
        digest = hashlib.sha256(data).digest()
        self.media[mid] = {"data": data, "mime_type": mime_type, "filename": filename,
                           "sha256_hex": digest.hex(),
                           "sha256_b64": base64.b64encode(digest).decode("ascii"),
                           "created": time.time(), "urls_issued": 0, "downloads": 0}
        return mid

    def _touch_user(self, wa, name=None, inbound_time=None):
        u = self.users.setdefault(wa, {"name": DEFAULT_PROFILE_NAME, "last_inbound": None})
        if name is not None:
            u["name"] = name
        if inbound_time is not None:
            u["last_inbound"] = inbound_time
        return u

    def _c_message(self, args):
        """POST /control/message: a user's message, posted to the webhook."""
        with self.cond:
            wa = self._arg_wa(args)
            kind = args.get("kind", args.get("type", "text"))
            if kind == "interactive":
                kind = "button_reply"
            if kind not in MESSAGE_KINDS:
                raise ControlError(400, "kind must be one of " + ", ".join(MESSAGE_KINDS))
            name = self._arg_str(args, "name")
            deliver = self._arg_bool(args, "deliver", True)
            url = self._webhook_url(args) if deliver else None
            mode = self._arg_signature(args)
            times = self._arg_int(args, "times", default=1, lo=0)
            style = args.get("json_style", "meta")
            if style not in ("meta", "utf8"):
                raise ControlError(400, "json_style must be meta or utf8")
            mid = self._arg_str(args, "message_id") or new_wamid(wa, inbound=True)
            ts = int(self._arg_float(args, "timestamp", time.time()))
            fields = {}
            media_id = None
            verbatim = isinstance(args.get("message"), dict)
            if verbatim:
                pass
            elif kind == "text":
                fields["text"] = self._arg_str(args, "text", required=True)
            elif kind in ("image", "document", "audio", "video", "sticker"):
                data = self._arg_data(args, required=kind in ("image", "document"))
                if data is None:
                    data = b"RIFF\x00\x00\x00\x00WEBPVP8 " if kind == "sticker" else b"\x00" * 16
                default_mime = {"image": "image/jpeg", "document": "application/pdf",
                                "audio": "audio/ogg", "video": "video/mp4",
                                "sticker": "image/webp"}[kind]
                mime = self._arg_str(args, "mime_type") or default_mime
                filename = self._arg_str(args, "filename")
                media_id = self._store_media(data, mime, filename)
                m = self.media[media_id]
                fields.update(media_id=media_id, mime_type=mime, sha256=m["sha256_b64"],
                              caption=self._arg_str(args, "caption"), filename=filename)
            elif kind == "location":
                for k in ("latitude", "longitude"):
                    if k in args:
                        fields[k] = self._arg_float(args, k, 0.0, lo=None)
                fields["name"] = self._arg_str(args, "location_name")
                fields["address"] = self._arg_str(args, "address")
            elif kind == "button_reply":
                fields["id"] = self._arg_str(args, "id", required=True)
                fields["title"] = self._arg_str(args, "title", required=True)
            elif kind == "list_reply":
                fields["id"] = self._arg_str(args, "id", required=True)
                fields["title"] = self._arg_str(args, "title", required=True)
                fields["description"] = self._arg_str(args, "description")
            elif kind == "button":
                fields["payload"] = self._arg_str(args, "payload", required=True)
                fields["text"] = self._arg_str(args, "text", required=True)
            elif kind == "reaction":
                fields["emoji"] = self._arg_str(args, "emoji", "\U0001F44D")
                fields["reacted_id"] = self._arg_str(args, "reacted_id", "")
            if "context_id" in args:
                context_id = self._arg_str(args, "context_id")
            elif kind in ("button_reply", "list_reply", "button"):
                context_id = next((s["message_id"] for s in reversed(self.sent)
                                   if s["wa_id"] == wa), None)
            else:
                context_id = None
            if verbatim:
                message = copy.deepcopy(args["message"])
            else:
                message = message_object(kind, wa, mid, ts, context_id,
                                         self.display_phone_number, **fields)
            user = self._touch_user(wa, name)
            obj = build_message_body(wa, name=user["name"], phone_number_id=self.phone_number_id,
                                     display_phone_number=self.display_phone_number,
                                     waba_id=self.waba_id, message=message)
            if isinstance(args.get("contacts"), list):
                obj["entry"][0]["changes"][0]["value"]["contacts"] = copy.deepcopy(args["contacts"])
            body = encode_body(obj, style)
            if self._arg_bool(args, "set_window", True):
                user["last_inbound"] = float(ts)
            if isinstance(message.get("id"), str):
                self.inbound_ids.add(message["id"])
        out = {"message_id": message.get("id"), "timestamp": str(ts), "body_json": obj}
        if media_id is not None:
            out["media_id"] = media_id
        if not deliver:
            out.update(body=body.decode("ascii" if style == "meta" else "utf-8"),
                       signature=sign(self.app_secret, body), deliveries=[])
            return out
        sent_body, headers, results = self._deliver(
            "message", url, body, mode, times, {"message_id": message.get("id")})
        out.update(body=sent_body.decode("utf-8", "replace"),
                   signature=headers.get("X-Hub-Signature-256"), webhook_url=url,
                   deliveries=results)
        return out

    def _c_status(self, args):
        """POST /control/status: a statuses[] webhook for one wamid."""
        with self.cond:
            wamid = self._arg_str(args, "message_id", required=True)
            st = args.get("status", "delivered")
            if st not in STATUS_VALUES:
                raise ControlError(400, "status must be one of " + ", ".join(STATUS_VALUES))
            wa = self._arg_wa(args, "recipient_id", required=False) or self.sent_ids.get(wamid)
            if wa is None:
                raise ControlError(400, "recipient_id is required for a wamid the fake "
                                   "did not issue")
            code = self._arg_int(args, "error_code", default=131026 if st == "failed" else None)
            obj = build_status_body(
                wamid, st, wa, self.phone_number_id, self.display_phone_number, self.waba_id,
                timestamp=self._arg_float(args, "timestamp", time.time()),
                error_code=code, error_title=self._arg_str(args, "error_title"),
                error_message=self._arg_str(args, "error_message"),
                error_details=self._arg_str(args, "error_details"),
                conversation=self._arg_bool(args, "conversation", True))
            url = self._webhook_url(args)
            mode = self._arg_signature(args)
            times = self._arg_int(args, "times", default=1, lo=0)
        body = encode_body(obj)
        sent_body, headers, results = self._deliver(
            "status", url, body, mode, times, {"message_id": wamid, "status_value": st})
        return {"message_id": wamid, "body_json": obj,
                "body": sent_body.decode("utf-8", "replace"),
                "signature": headers.get("X-Hub-Signature-256"), "deliveries": results}

    def _c_webhook_errors(self, args):
        """POST /control/webhook_errors: a value.errors[] webhook."""
        with self.cond:
            code = self._arg_int(args, "code", default=131000)
            obj = build_errors_body(code, self._arg_str(args, "title"),
                                    self._arg_str(args, "message"),
                                    self._arg_str(args, "details"), self.phone_number_id,
                                    self.display_phone_number, self.waba_id)
            url = self._webhook_url(args)
            mode = self._arg_signature(args)
            times = self._arg_int(args, "times", default=1, lo=0)
        body = encode_body(obj)
        sent_body, headers, results = self._deliver("errors", url, body, mode, times)
        return {"body_json": obj, "body": sent_body.decode("utf-8", "replace"),
                "signature": headers.get("X-Hub-Signature-256"), "deliveries": results}

    def _c_raw_webhook(self, args):
        """POST /control/raw_webhook: any bytes, signed per mode, to the webhook."""
        with self.cond:
            if "body_b64" in args:
                try:
                    body = base64.b64decode(args["body_b64"], validate=True)
                except (ValueError, TypeError):
                    raise ControlError(400, "body_b64 is not valid base64")
            elif isinstance(args.get("body"), str):
                body = args["body"].encode("utf-8", "surrogateescape")
            elif isinstance(args.get("body_json"), (dict, list)):
                body = encode_body(args["body_json"])
            else:
                raise ControlError(400, "body (text), body_b64 or body_json is required")
            url = self._webhook_url(args)
            mode = self._arg_signature(args)
            times = self._arg_int(args, "times", default=1, lo=0)
            ctype = self._arg_str(args, "content_type", "application/json")
            # message ids in a parseable body count as received (for read receipts)
            try:
                parsed = json.loads(body.decode("utf-8"))
                for e in parsed.get("entry", []):
                    for ch in e.get("changes", []):
                        for m in ch.get("value", {}).get("messages", []):
                            if isinstance(m.get("id"), str):
                                self.inbound_ids.add(m["id"])
            except Exception:
                pass
        sent_body, headers, results = self._deliver("raw", url, body, mode, times,
                                                    content_type=ctype)
        return {"body": sent_body.decode("utf-8", "replace"),
                "body_b64": base64.b64encode(sent_body).decode("ascii"),
                "signature": headers.get("X-Hub-Signature-256"), "deliveries": results}

    def _c_verify(self, args):
        """POST /control/verify: Meta's webhook verification GET."""
        with self.cond:
            url = self._webhook_url(args)
            vtoken = self._arg_str(args, "verify_token", required=True)
            challenge = self._arg_str(args, "challenge") or str(random.randint(10 ** 8, 10 ** 10))
            mode = self._arg_str(args, "mode", "subscribe")
            timeout = float(self.config["webhook_timeout_s"])
        sep = "&" if urllib.parse.urlsplit(url).query else "?"
        full = url + sep + urllib.parse.urlencode(
            {"hub.mode": mode, "hub.challenge": challenge, "hub.verify_token": vtoken})
        r = post_webhook(full, b"", {}, timeout, method="GET")
        with self.cond:
            self._wh_seq += 1
            self.webhooks.append({"seq": self._wh_seq, "kind": "verify", "url": full,
                                  "time": time.time(), "status": r["status"],
                                  "response": r["body"], "error": r["error"],
                                  "duration": r["duration"]})
            self.cond.notify_all()
        return {"url": full, "challenge": challenge, "status": r["status"], "body": r["body"],
                "error": r["error"], "echoed": r["status"] == 200 and r["body"] == challenge}

    def _c_auto_statuses(self, args):
        """POST /control/auto_statuses: on/off, read, delay_s."""
        on = args.get("on", args.get("enabled"))
        if on is not None:
            self.auto["on"] = self._arg_bool({"on": on}, "on", False)
        self.auto["read"] = self._arg_bool(args, "read", self.auto["read"])
        self.auto["delay_s"] = self._arg_float(args, "delay_s", self.auto["delay_s"])
        return dict(self.auto)

    def _c_media(self, args):
        """POST /control/media: store bytes, get a media id (no message)."""
        data = self._arg_data(args, required=True)
        mime = self._arg_str(args, "mime_type") or "application/octet-stream"
        mid = self._store_media(data, mime, self._arg_str(args, "filename"))
        m = self.media[mid]
        return {"media_id": mid, "sha256": m["sha256_hex"], "sha256_b64": m["sha256_b64"],
                "file_size": len(data)}

    def _c_fault(self, args):
        """POST /control/fault: the next count matching requests misbehave."""
        kind = str(args.get("kind", args.get("code", "")))
        if kind not in FAULT_KINDS:
            raise ControlError(400, "kind must be one of " + ", ".join(FAULT_KINDS))
        endpoint = self._arg_str(args, "endpoint", "messages")
        if endpoint not in FAULT_ENDPOINTS:
            raise ControlError(400, "endpoint must be one of " + ", ".join(FAULT_ENDPOINTS))
        to = args.get("to")
        if to is not None:
            to = wa_digits(str(to))
            if to is None:
                raise ControlError(400, "to must be a phone number")
        as_status = self._arg_bool(args, "as_status", False)
        if as_status and (kind not in FAULT_CODES or endpoint != "messages"):
            raise ControlError(400, "as_status needs an error code kind on endpoint messages")
        fault = {"id": len(self.faults) + 1, "kind": kind, "endpoint": endpoint, "to": to,
                 "count": self._arg_int(args, "count", default=1, lo=1),
                 "delay": self._arg_float(args, "delay", 2.0 if kind == "delay" else 30.0),
                 "details": self._arg_str(args, "details"),
                 "message": self._arg_str(args, "message"),
                 "as_status": as_status}
        self.faults.append(fault)
        return {"fault": dict(fault), "pending": len(self.faults)}

    def _c_clear_faults(self, args):
        """POST /control/clear_faults: remove faults, cut fault delays short."""
        n = len(self.faults)
        self.faults = []
        self._delay_gen += 1
        self.cond.notify_all()
        return {"cleared": n}

    def _c_window(self, args):
        """POST /control/window: set a user's last inbound time N hours ago, or forget it."""
        wa = self._arg_wa(args)
        if self._arg_bool(args, "forget", False):
            u = self._touch_user(wa)
            u["last_inbound"] = None
        else:
            hours = self._arg_float(args, "hours_ago", None, lo=None)
            if hours is None:
                raise ControlError(400, "hours_ago (number) or forget: true is required")
            u = self._touch_user(wa, inbound_time=time.time() - hours * 3600.0)
        return self._user_view(wa, u)

    def _user_view(self, wa, u):
        last = u["last_inbound"]
        return {"wa_id": wa, "name": u["name"], "last_inbound": last,
                "hours_since_inbound": (round((time.time() - last) / 3600.0, 4)
                                        if last is not None else None),
                "window_open": last is not None and time.time() - last <= WINDOW_S}

    def _c_templates(self, args):
        """POST /control/templates: register approved templates (enables checks)."""
        tpls = args.get("templates")
        if not isinstance(tpls, list):
            raise ControlError(400, "templates must be a list of {name, language, "
                               "body_params, quick_replies}")
        if self._arg_bool(args, "replace", True):
            self.templates = {}
        for t in tpls:
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                raise ControlError(400, "each template needs a name")
            lang = t.get("language", "en_US")
            self.templates[(t["name"], lang)] = {
                "body_params": self._arg_int(t, "body_params", default=0, lo=0),
                "quick_replies": self._arg_int(t, "quick_replies", default=0, lo=0)}
        return {"templates": [{"name": k[0], "language": k[1], **v}
                              for k, v in self.templates.items()]}

    CONFIG_BOOLS = ("window", "rate_limits")
    CONFIG_NUMBERS = ("pair_burst", "pair_interval_s", "throughput_per_s", "media_url_ttl_s",
                      "webhook_timeout_s")

    def _c_config(self, args):
        """POST /control/config: change settings at run time; answers all of them."""
        for k in self.CONFIG_BOOLS:
            if k in args:
                self.config[k] = self._arg_bool(args, k, self.config[k])
        for k in self.CONFIG_NUMBERS:
            if k in args:
                self.config[k] = self._arg_float(args, k, self.config[k])
        if "webhook_url" in args:
            url = args["webhook_url"]
            if url not in (None, "") and (not isinstance(url, str) or not is_loopback_url(url)):
                raise ControlError(400, "webhook_url must be an http:// URL on a loopback address")
            self.config["webhook_url"] = url or None
        if "pair_burst" in args or "pair_interval_s" in args:
            self.pair = {}
        return dict(self.config)

    def _calls_since(self, since, endpoint=None, to=None):
        wa = wa_digits(to) if to else None
        return [c for c in self.calls if c["seq"] > since
                and (endpoint is None or c["endpoint"] == endpoint)
                and (wa is None or wa_digits(c["to"] or "") == wa)]

    def _c_calls(self, args):
        """GET /control/calls: recorded Graph API calls after since."""
        since = self._arg_int(args, "since", default=0)
        calls = self._calls_since(since, self._arg_str(args, "endpoint"), self._arg_str(args, "to"))
        return {"calls": copy.deepcopy(calls), "last_seq": self._seq}

    def _c_wait(self, args):
        """GET /control/wait: until count calls with seq > since exist (bounded)."""
        since = self._arg_int(args, "since", default=0)
        endpoint = self._arg_str(args, "endpoint")
        to = self._arg_str(args, "to")
        count = self._arg_int(args, "count", default=1, lo=1)
        timeout = min(self._arg_float(args, "timeout", 10.0), CONTROL_WAIT_MAX)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                calls = self._calls_since(since, endpoint, to)
                if len(calls) >= count:
                    return {"calls": copy.deepcopy(calls), "timed_out": False,
                            "last_seq": self._seq}
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    return {"calls": copy.deepcopy(calls), "timed_out": True,
                            "last_seq": self._seq}
                self.cond.wait(left)

    def _c_webhooks(self, args):
        """GET /control/webhooks: deliveries to the webhook after since;
        with timeout, waits until count of them exist."""
        since = self._arg_int(args, "since", default=0)
        kind = self._arg_str(args, "kind")
        count = self._arg_int(args, "count", default=0, lo=0)
        timeout = min(self._arg_float(args, "timeout", 0.0), CONTROL_WAIT_MAX)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [w for w in self.webhooks if w["seq"] > since
                       and (kind is None or w["kind"] == kind)]
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0 or self._stopping:
                    return {"webhooks": copy.deepcopy(got), "timed_out": len(got) < count,
                            "last_seq": self._wh_seq}
                self.cond.wait(left)

    def _c_sent(self, args):
        """GET /control/sent: accepted message sends, optionally to one user."""
        to = self._arg_str(args, "to")
        wa = wa_digits(to) if to else None
        if to and wa is None:
            raise ControlError(400, "to must be a phone number")
        since = self._arg_int(args, "since", default=0)
        msgs = [s for s in self.sent if (wa is None or s["wa_id"] == wa) and s["seq"] > since]
        return {"messages": copy.deepcopy(msgs), "last_seq": self._seq}

    def _c_state(self, args):
        """GET /control/state: users, media, faults, settings, counters."""
        return {
            "phone_number_id": self.phone_number_id,
            "display_phone_number": self.display_phone_number,
            "waba_id": self.waba_id,
            "config": dict(self.config),
            "auto_statuses": dict(self.auto),
            "users": {wa: self._user_view(wa, u) for wa, u in self.users.items()},
            "media": {mid: {"mime_type": m["mime_type"], "file_size": len(m["data"]),
                            "sha256": m["sha256_hex"], "filename": m["filename"],
                            "urls_issued": m["urls_issued"], "downloads": m["downloads"]}
                      for mid, m in self.media.items()},
            "faults": [dict(f) for f in self.faults],
            "templates": [{"name": k[0], "language": k[1], **v}
                          for k, v in self.templates.items()],
            "stats": copy.deepcopy(self.stats),
            "sent_count": len(self.sent),
            "last_seq": self._seq,
            "last_webhook_seq": self._wh_seq,
        }

    def _c_reset(self, args):
        """POST /control/reset: forget all state and restore the start-up settings."""
        internal = self.stats["internal_errors"]
        self._reset_state()
        self.stats["internal_errors"] = internal   # bugs of the fake stay visible
        self.cond.notify_all()
        return {"reset": True, "last_seq": self._seq}

    def _c_health(self, args):
        """GET /control/health."""
        return {"ok": True, "phone_number_id": self.phone_number_id}


# ---------------------------------------------------------------------------
# HTTP layer
# ---------------------------------------------------------------------------

class BodyError(Exception):
    """The request body could not be read; answer status and close."""

    def __init__(self, status, description):
        super().__init__(description)
        self.status = status
        self.description = description


class Handler(BaseHTTPRequestHandler):
    """One thread per connection; parses HTTP and defers to FakeWhatsApp."""

    protocol_version = "HTTP/1.1"
    server_version = "fake-whatsapp"
    sys_version = ""
    timeout = 120

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake_whatsapp: %s - %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _read_body(self):
        """The request body, bounded by MAX_BODY (chunked or Content-Length)."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            body = bytearray()
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise BodyError(400, "truncated chunked body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BodyError(400, "invalid chunked body")
                if size < 0 or len(body) + size > MAX_BODY:
                    raise BodyError(413, "Request Entity Too Large")
                if size == 0:
                    while True:
                        t = self.rfile.readline(8192)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    return bytes(body)
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise BodyError(400, "truncated chunked body")
                body += chunk
                self.rfile.readline(8)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise BodyError(400, "invalid Content-Length")
        if n < 0:
            raise BodyError(400, "invalid Content-Length")
        if n > MAX_BODY:
            raise BodyError(413, "Request Entity Too Large")
        data = self.rfile.read(n)
        if len(data) != n:
            raise BodyError(400, "truncated body")
        return data

    def _send(self, status, body, content_type="application/json; charset=UTF-8",
              headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _dispatch(self):
        core = self.server.core
        try:
            url = urllib.parse.urlsplit(self.path)
            path = url.path
            try:
                body = self._read_body()
            except BodyError as e:
                self.close_connection = True
                self._send(e.status, dumps({"error": {"message": e.description,
                                                      "type": "OAuthException", "code": 1}}))
                return
            if path.startswith("/control/"):
                self._control(path[len("/control/"):], url.query, body)
                return
            outcome = core.graph(self.command, path, url.query, self.headers, body)
            if outcome.delay > 0:
                core.sleep(outcome.delay)
            if outcome.drop:
                self._drop()
            else:
                headers = dict(outcome.headers)
                headers.setdefault("facebook-api-version", "v21.0")
                self._send(outcome.status, outcome.body, outcome.content_type, headers)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True
        except Exception:
            self.close_connection = True
            core.count_internal_error("HTTP handler")
            try:
                self._send(500, dumps(server_error(1).envelope()))
            except OSError:
                pass

    def _control(self, name, query, body):
        args = {}
        for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True):
            args[k] = v
        if body.strip():
            try:
                obj = json.loads(body.decode("utf-8", "surrogatepass"))
            except (ValueError, UnicodeDecodeError, RecursionError):
                self._send(400, dumps({"error": "control body must be a JSON object"}))
                return
            if not isinstance(obj, dict) or not json_depth_ok(obj):
                self._send(400, dumps({"error": "control body must be a JSON object"}))
                return
            args.update(obj)
        status, obj = self.server.core.control(name.strip("/"), args)
        self._send(status, dumps(obj), "application/json")


class FakeServer(ThreadingHTTPServer):
    """ThreadingHTTPServer bound to 127.0.0.1 only, carrying the fake."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port, core, verbose=False):
        self.core = core
        self.verbose = verbose
        super().__init__(("127.0.0.1", port), Handler)

    def handle_error(self, request, client_address):
        self.core.log("connection error from %s:\n%s" % (client_address,
                                                         traceback.format_exc()))


def write_port_file(path, port):
    """Write the port atomically: a temporary file in the same directory, renamed."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    with open(tmp, "w", encoding="ascii") as f:
        f.write("%d\n" % port)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    """Command line entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description="Fake WhatsApp Cloud API (Graph API) for tests.")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free)")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--token", required=True, help="the only access token accepted")
    ap.add_argument("--phone-number-id", required=True, help="the business phone number id")
    ap.add_argument("--app-secret", required=True, help="signs webhooks (X-Hub-Signature-256)")
    ap.add_argument("--webhook-url", help="Rivet's webhook (loopback http:// only)")
    ap.add_argument("--media-url-ttl-s", type=float, default=300.0,
                    help="lifetime of media download URLs (default 300)")
    ap.add_argument("--rate-limits", choices=("on", "off"), default="off",
                    help="enforce throughput (130429) and pair (131056) limits")
    ap.add_argument("--window", choices=("on", "off"), default="on",
                    help="enforce the 24-hour customer service window (131047)")
    ap.add_argument("--display-phone-number", default=DEFAULT_DISPLAY_NUMBER)
    ap.add_argument("--verified-name", default=DEFAULT_VERIFIED_NAME)
    ap.add_argument("--waba-id", default=DEFAULT_WABA_ID)
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)

    def log(msg):
        sys.stderr.write("fake_whatsapp: %s\n" % msg)
        sys.stderr.flush()

    if args.webhook_url and not is_loopback_url(args.webhook_url):
        log("--webhook-url must be an http:// URL on a loopback address")
        return 2
    if not args.phone_number_id.strip():
        log("--phone-number-id must not be empty")
        return 2
    config = {"window": args.window == "on", "rate_limits": args.rate_limits == "on",
              "pair_burst": 5.0, "pair_interval_s": 6.0, "throughput_per_s": 80.0,
              "media_url_ttl_s": args.media_url_ttl_s, "webhook_url": args.webhook_url,
              "webhook_timeout_s": 10.0}
    core = FakeWhatsApp(args.token, args.phone_number_id, args.app_secret, config, log,
                        args.display_phone_number, args.verified_name, args.waba_id)
    try:
        server = FakeServer(args.port, core, args.verbose)
    except OSError as e:
        log("cannot listen on 127.0.0.1:%d: %s" % (args.port, e))
        return 1
    core.port = server.server_address[1]
    core.start()
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="fake-whatsapp-accept", daemon=True)
    thread.start()
    if args.port_file:
        write_port_file(args.port_file, core.port)
    log("listening on 127.0.0.1:%d" % core.port)
    while not stop.wait(0.5):
        pass
    core.stop()
    server.shutdown()
    server.server_close()
    thread.join(5)
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
