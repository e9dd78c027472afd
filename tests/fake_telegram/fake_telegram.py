#!/usr/bin/env python3
"""A local fake of the Telegram Bot API for Rivet's tests.

Rivet reaches Telegram through a configurable base URL (TELEGRAM_API_URL).
Tests point that URL at this server, drive it through its control API
(``/control/...``) and inspect every call the bot made.

The Bot API side follows https://core.telegram.org/bots/api: the same URL
layout (``/bot<TOKEN>/<method>``, ``/file/bot<TOKEN>/<file_path>``), the same
parameter encodings (query string, urlencoded form, JSON, multipart), the
same result objects and the same error envelopes and descriptions
(``{"ok":false,"error_code":N,"description":"...","parameters":{...}}``).
The HTML parse-mode parser is a port of TDLib's ``parse_html`` so that its
errors carry the real texts and byte offsets.

Layout of this module:

* constants and small helpers (parameter readers, UTF-16 lengths);
* ``parse_html`` and the entity detection used for incoming and sent text;
* ``FakeTelegram``: all state behind one lock (a ``threading.Condition``),
  the Bot API methods (``_m_*``), the control operations (``_c_*``) and the
  webhook sender (``_webhook_worker``, a thread started by the first
  setWebhook that can deliver);
* ``WebhookConnection``: the sender's keep-alive HTTP(S) connection to a
  loopback webhook;
* ``Handler``: a thin ``BaseHTTPRequestHandler`` that reads requests,
  calls into ``FakeTelegram`` and writes what it is told to write;
* ``main``: command line, port file, signal handling.

Only the Python 3 standard library is used.  See README.md for the control
API.
"""

import argparse
import base64
import copy
import email.parser
import email.policy
import http.client
import ipaddress
import itertools
import json
import math
import os
import random
import re
import select
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
import zlib
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# ---------------------------------------------------------------------------
# Limits and fixed texts (as documented or as answered by api.telegram.org)
# ---------------------------------------------------------------------------

MAX_BODY = 10 * 1024 * 1024          # largest request body accepted
MAX_TEXT = 4096                      # sendMessage text, characters after parsing
MAX_CALLBACK_DATA = 64               # callback_data, bytes
MAX_CALLBACK_ANSWER = 200            # answerCallbackQuery text, characters
MAX_COMMANDS = 100
MAX_COMMAND_LEN = 32
MAX_COMMAND_DESCRIPTION = 256
LONG_POLL_MAX = 50                   # the Bot API clamps getUpdates timeout to 50 s
DOWNLOAD_LIMIT = 20 * 1024 * 1024    # getFile refuses larger files
EARLY_TOLERANCE = 0.05               # seconds of clock slack when judging early retries
CALL_LOG_MAX = 100000
JSON_MAX_DEPTH = 64                  # deeper JSON is refused as unparsable
CONTROL_WAIT_MAX = 300.0

CONFLICT_OTHER = ("Conflict: terminated by other getUpdates request; "
                  "make sure that only one bot instance is running")
CONFLICT_WEBHOOK = ("Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first")
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content "
                "and reply markup are exactly the same as a current content and reply "
                "markup of the message")
CONFLICT_SETWEBHOOK = "Conflict: terminated by setWebhook request"

# Webhooks (telegram-bot-api: Client.cpp do_set_webhook / WebhookActor.cpp).
WEBHOOK_SECRET_MAX = 256
WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9_-]*")
WEBHOOK_PORTS = (443, 80, 88, 8443)
WEBHOOK_DEFAULT_CONNECTIONS = 40
WEBHOOK_REPLY_REFUSED = ("deletewebhook", "setwebhook", "close", "logout")
WEBHOOK_RETRY_AFTER_MAX = 3600       # a Retry-After from the webhook is clamped to this
WEBHOOK_RESPONSE_MAX = MAX_BODY      # bytes of a webhook answer read at most
# Hosts the fake delivers to (with --webhook-http on) and the addresses it tries.
LOOPBACK_HOSTS = {"127.0.0.1": ("127.0.0.1",), "::1": ("::1",),
                  "localhost": ("127.0.0.1", "::1")}
# Update kinds in the order telegram-bot-api lists them (getWebhookInfo.allowed_updates).
UPDATE_KIND_ORDER = (
    "message", "edited_message", "channel_post", "edited_channel_post", "inline_query",
    "chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query",
    "poll", "poll_answer", "my_chat_member", "chat_member", "chat_join_request",
    "chat_boost", "removed_chat_boost", "message_reaction", "message_reaction_count",
    "business_connection", "business_message", "edited_business_message",
    "deleted_business_messages", "purchased_paid_media",
)
QUERY_INVALID = ("Bad Request: query is too old and response timeout expired "
                 "or query ID is invalid")
PARSE_PREFIX = "Bad Request: can't parse entities: "

HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
            b"</body>\r\n</html>\r\n")

# Every update kind the Bot API knows (the Update object's optional fields).
UPDATE_KINDS = (
    "message", "edited_message", "channel_post", "edited_channel_post",
    "business_connection", "business_message", "edited_business_message",
    "deleted_business_messages", "message_reaction", "message_reaction_count",
    "inline_query", "chosen_inline_result", "callback_query", "shipping_query",
    "pre_checkout_query", "purchased_paid_media", "poll", "poll_answer",
    "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
    "removed_chat_boost",
)
# Kinds not delivered unless asked for explicitly in allowed_updates.
DEFAULT_EXCLUDED = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice",
    "upload_voice", "upload_document", "choose_sticker", "find_location",
    "record_video_note", "upload_video_note",
})

# Fault kinds with a fixed error answer: code -> default description.
FAULT_ERRORS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: CONFLICT_OTHER,
    500: "Internal Server Error",
    503: "Service Unavailable",
}
FAULT_KINDS = ("429", "500", "502", "409", "slow", "drop", "drop_after",
               "parse_entities", "timeout")

_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_INT_PREFIX_RE = re.compile(r"\s*([+-]?\d+)")


class ApiError(Exception):
    """A Bot API error answer: HTTP status = error_code, JSON envelope."""

    def __init__(self, code, description, retry_after=None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def envelope(self):
        """The JSON object Telegram answers with."""
        env = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            env["parameters"] = {"retry_after": self.retry_after}
        return env


class ControlError(Exception):
    """A refused control request (the test's mistake, not the bot's)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class UploadedFile:
    """One multipart file part of a Bot API request."""

    def __init__(self, filename, data):
        self.filename = filename
        self.data = data

    def describe(self):
        """What the call log shows instead of the bytes."""
        return {"_file": self.filename, "size": len(self.data)}


class Outcome:
    """What the HTTP layer must do with one request.

    ``body`` is sent with ``status`` after ``delay`` seconds, unless ``drop``
    is set, in which case the connection is closed without an answer (after
    ``delay`` seconds).
    """

    __slots__ = ("status", "body", "content_type", "drop", "delay")

    def __init__(self, status=200, body=b"", content_type="application/json",
                 drop=False, delay=0.0):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.drop = drop
        self.delay = delay


class Ctx:
    """Per-call context handed to Bot API method implementations."""

    def __init__(self, peer_alive):
        self.peer_alive = peer_alive
        self.description = None   # optional "description" next to an ok result
        self.raw = None           # an Outcome replacing the normal answer
        self.drop = False         # the client went away: do not answer


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def dumps(obj):
    """Compact JSON as UTF-8 bytes; escapes lone surrogates instead of failing."""
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def u16len(s):
    """Length of ``s`` in UTF-16 code units (the unit of entity offsets)."""
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def json_depth_ok(value, limit=JSON_MAX_DEPTH):
    """True if ``value`` nests lists and objects at most ``limit`` deep
    (checked without recursion, so hostile input cannot exhaust the stack)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > limit:
                return False
            stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
    return True


def has_surrogates(value):
    """True if a str anywhere inside ``value`` holds a lone surrogate."""
    if isinstance(value, str):
        return _SURROGATE_RE.search(value) is not None
    if isinstance(value, dict):
        return any(has_surrogates(k) or has_surrogates(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_surrogates(v) for v in value)
    return False


def jsonable(value):
    """A copy of request parameters that json can encode."""
    if isinstance(value, UploadedFile):
        return value.describe()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def p_present(params, name):
    """True if a parameter was given and is not an empty string."""
    v = params.get(name)
    return v is not None and v != ""


def p_str(params, name, default=None):
    """A parameter as a string (numbers and JSON values are serialised)."""
    v = params.get(name)
    if v is None:
        return default
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, UploadedFile):
        return default
    return json.dumps(v)


def p_int(params, name, default=0):
    """A parameter as an integer, as leniently as TDLib's to_integer."""
    v = params.get(name)
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if math.isfinite(v) else 0
    if isinstance(v, str):
        m = _INT_PREFIX_RE.match(v)
        return int(m.group(1)) if m else 0
    return 0


def p_bool(params, name):
    """A boolean parameter: true, "true", "True", 1 or "1"."""
    v = params.get(name)
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1")
    return False


def p_json(params, name):
    """A parameter that is JSON: an object given directly or a JSON string.

    Raises ValueError when a string is not valid JSON.
    """
    v = params.get(name)
    if isinstance(v, str):
        try:
            v = json.loads(v, parse_constant=_reject_constant)
        except RecursionError:
            raise ValueError("nested too deeply")
        if not json_depth_ok(v):
            raise ValueError("nested too deeply")
    return v


def chat_id_of(params):
    """The integer chat_id of a request, or None (no lookup, never raises)."""
    v = params.get("chat_id")
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"\s*-?\d{1,20}\s*", v):
        return int(v)
    return None


def clamp(v, lo, hi):
    """v limited to [lo, hi]."""
    return max(lo, min(hi, v))


def random_token(nbytes):
    """URL-safe random text, like the opaque identifiers Telegram hands out."""
    return base64.urlsafe_b64encode(os.urandom(nbytes)).decode("ascii").rstrip("=")


def image_size(data):
    """(width, height) of a PNG, GIF or JPEG image, or a plausible default."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
        if data[:2] == b"\xff\xd8":
            i = 2
            while i + 9 < len(data):
                if data[i] != 0xFF:
                    i += 1
                    continue
                marker = data[i + 1]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                    i += 1 if marker == 0xFF else 2
                    continue
                seglen = int.from_bytes(data[i + 2:i + 4], "big")
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h = int.from_bytes(data[i + 5:i + 7], "big")
                    w = int.from_bytes(data[i + 7:i + 9], "big")
                    if w and h:
                        return w, h
                    break
                i += 2 + seglen
    except (IndexError, ValueError):
        pass
    return 1280, 960


def parse_webhook_url(url):
    """A webhook URL read roughly as telegram-bot-api's td::parse_url does
    (no scheme means https; only http and https), or None if it is invalid.

    Returns scheme, host (lower case, IPv6 without brackets), port, the
    request target (path and query), the Host header (no port, as Telegram
    sends it) and the userinfo (sent as Basic authorization)."""
    if not url or any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return None
    if "://" in url:
        scheme, rest = url.split("://", 1)
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            return None
    else:
        scheme, rest = "https", url
    try:
        parts = urllib.parse.urlsplit(scheme + "://" + rest)
        port = parts.port
        host = parts.hostname or ""
    except ValueError:
        return None
    if not host:
        return None
    if port is None:
        port = 443 if scheme == "https" else 80
    if not 1 <= port <= 65535:
        return None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return {
        "scheme": scheme,
        "host": host,
        "port": port,
        "target": target,
        "host_header": "[%s]" % host if ":" in host else host,
        "userinfo": parts.netloc.rpartition("@")[0],
    }


def update_body(update):
    """The POST body of one webhook delivery: the Update as JSON with
    update_id first and a newline after it, as telegram-bot-api writes it
    (any other value queued by /control/update is sent as plain JSON)."""
    uid = update.get("update_id") if isinstance(update, dict) else None
    if isinstance(uid, int) and not isinstance(uid, bool):
        rest = {k: v for k, v in update.items() if k != "update_id"}
        if not rest:
            return dumps({"update_id": uid})
        return b'{"update_id":%d,\n' % uid + dumps(rest)[1:]
    return dumps(update)


# ---------------------------------------------------------------------------
# HTML parse mode: a port of TDLib's parse_html (td/telegram/MessageEntity.cpp)
# ---------------------------------------------------------------------------

HTML_TAGS = frozenset({
    "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins",
    "tg-spoiler", "tg-emoji", "span", "pre", "code", "blockquote", "tg-time",
})
_TD_SPACE = frozenset(b" \t\r\n\0\x0b")   # td::is_space (NUL ends every scan)


class HtmlError(Exception):
    """Text after "can't parse entities: "."""


def _decode_html_entity(b, pos):
    """TDLib's decode_html_entity: (code point or 0, position after it)."""
    n = len(b)

    def at(k):
        return b[k] if k < n else 0

    end = pos + 1
    res = 0
    if at(end) == 0x23:  # '#'
        end += 1
        if at(end) == 0x78:  # 'x'
            end += 1
            while chr(at(end)) in "0123456789abcdefABCDEF" and at(end):
                res = res * 16 + int(chr(at(end)), 16)
                end += 1
        else:
            while 0x30 <= at(end) <= 0x39:
                res = res * 10 + at(end) - 0x30
                end += 1
        if res == 0 or res >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while (0x41 <= at(end) <= 0x5A) or (0x61 <= at(end) <= 0x7A):
            end += 1
        name = b[pos + 1:end]
        res = {b"lt": 0x3C, b"gt": 0x3E, b"amp": 0x26, b"quot": 0x22}.get(name, 0)
        if res == 0:
            return 0, pos
    if at(end) == 0x3B:  # ';'
        return res, end + 1
    return res, end


def _checked_link(url):
    """Roughly TDLib's get_checked_link: a usable URL or '' (entity dropped).

    Adds http:// to bare domains and "/" after the host, as Telegram does.
    """
    if not url or any(c.isspace() for c in url):
        return ""
    low = url.lower()
    if low.startswith(("tg:", "ton:", "mailto:")):
        return url
    if "://" not in url:
        url = "http://" + url
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("http", "https", "ftp", "tonsite"):
        return ""
    end = len(rest)
    for sep in "/?#":
        k = rest.find(sep)
        if k != -1:
            end = min(end, k)
    host = rest[:end].rsplit("@", 1)[-1].split(":", 1)[0]
    if not host or ("." not in host and host.lower() != "localhost"):
        return ""
    if end == len(rest) or rest[end] != "/":
        rest = rest[:end] + "/" + rest[end:]
    return scheme + "://" + rest


def parse_html(text, strict=True, known_users=None):
    """Parse Telegram HTML; return (plain text, [MessageEntity dicts]).

    Raises HtmlError with TDLib's wording.  With ``strict`` a bare "&", an
    unknown named entity, an entity without ";" and a bare ">" are refused
    too, as the documentation demands; Telegram itself is lenient there.
    """
    b = text.encode("utf-8")
    n = len(b)

    def at(k):
        return b[k] if k < n else 0

    result = bytearray()
    utf16 = 0
    need_recheck = False
    nested = []      # [tag, argument, utf16 offset, result byte offset, attrs]
    raw = []         # (kind, offset, length, extra)
    i = 0
    while i < n:
        c = b[i]
        if c == 0x26:  # '&'
            code, newpos = _decode_html_entity(b, i)
            if code:
                if strict and b[newpos - 1] != 0x3B:
                    raise HtmlError('HTML entity at byte offset %d must end with ";"' % i)
                utf16 += 1 + (code > 0xFFFF)
                if 0xD800 <= code <= 0xDFFF:
                    need_recheck = True
                result += chr(code).encode("utf-8", "surrogatepass")
                i = newpos
                continue
            if strict:
                raise HtmlError('Character "&" at byte offset %d must be escaped as "&amp;"' % i)
        if c != 0x3C:  # not '<'
            if strict and c == 0x3E:
                raise HtmlError('Character ">" at byte offset %d must be escaped as "&gt;"' % i)
            if (c & 0xC0) != 0x80:
                utf16 += 1 + (c >= 0xF0)
            result.append(c)
            i += 1
            continue

        begin = i
        i += 1
        if at(i) != 0x2F:  # start tag
            while at(i) not in _TD_SPACE and at(i) != 0x3E:
                i += 1
            if at(i) == 0:
                raise HtmlError("Unclosed start tag at byte offset %d" % begin)
            tag = b[begin + 1:i].decode("utf-8", "replace").lower()
            if tag not in HTML_TAGS:
                raise HtmlError('Unsupported start tag "%s" at byte offset %d' % (tag, begin))
            argument = ""
            attrs = {}
            while at(i) != 0x3E:
                while at(i) != 0 and at(i) in _TD_SPACE:
                    i += 1
                if at(i) == 0x3E:
                    break
                attr_begin = i
                while at(i) not in _TD_SPACE and at(i) != 0x3D and not (
                        tag == "blockquote" and at(i) == 0x3E):
                    i += 1
                attr_name = b[attr_begin:i].decode("utf-8", "replace")
                if not attr_name:
                    raise HtmlError('Empty attribute name in the tag "%s" at byte offset %d'
                                    % (tag, begin))
                while at(i) != 0 and at(i) in _TD_SPACE:
                    i += 1
                if at(i) != 0x3D:
                    if tag == "blockquote" and attr_name == "expandable" and at(i) != 0:
                        attrs["expandable"] = True
                        continue
                    raise HtmlError('Expected equal sign in declaration of an attribute of '
                                    'the tag "%s" at byte offset %d' % (tag, begin))
                i += 1
                while at(i) != 0 and at(i) in _TD_SPACE:
                    i += 1
                if at(i) == 0:
                    raise HtmlError('Unclosed start tag "%s" at byte offset %d' % (tag, begin))
                if at(i) not in (0x27, 0x22):
                    token_begin = i
                    while chr(at(i)).isascii() and (chr(at(i)).isalnum() or at(i) in (0x2E, 0x2D)) \
                            and at(i) != 0:
                        i += 1
                    value = b[token_begin:i].decode("ascii", "replace").lower()
                    if at(i) not in _TD_SPACE and at(i) != 0x3E:
                        raise HtmlError("Unexpected end of name token at byte offset %d"
                                        % token_begin)
                else:
                    quote = at(i)
                    i += 1
                    val = bytearray()
                    while at(i) != quote and at(i) != 0:
                        if at(i) == 0x26:
                            code, newpos = _decode_html_entity(b, i)
                            if code:
                                val += chr(code).encode("utf-8", "surrogatepass")
                                i = newpos
                                continue
                        val.append(at(i))
                        i += 1
                    if at(i) == quote:
                        i += 1
                    value = val.decode("utf-8", "replace")
                if at(i) == 0:
                    raise HtmlError("Unclosed start tag at byte offset %d" % begin)
                attrs[attr_name] = value
                if tag == "a" and attr_name == "href":
                    argument = value
                elif tag == "code" and attr_name == "class" and value.startswith("language-"):
                    argument = value[9:]
                elif tag == "span" and attr_name == "class" and value.startswith("tg-"):
                    argument = value[3:]
                elif tag == "tg-emoji" and attr_name == "emoji-id":
                    argument = value
                elif tag == "tg-time" and attr_name == "unix":
                    argument = value
            if tag == "span" and argument != "spoiler":
                raise HtmlError('Tag "span" must have class "tg-spoiler" at byte offset %d' % begin)
            nested.append([tag, argument, utf16, len(result), attrs])
            i += 1  # past '>'
            continue

        # end tag
        if not nested:
            raise HtmlError("Unexpected end tag at byte offset %d" % begin)
        while at(i) not in _TD_SPACE and at(i) != 0x3E:
            i += 1
        end_tag = b[begin + 2:i].decode("utf-8", "replace").lower()
        while at(i) in _TD_SPACE and at(i) != 0:
            i += 1
        if at(i) != 0x3E:
            raise HtmlError("Unclosed end tag at byte offset %d" % begin)
        tag, argument, ent_offset, ent_begin, attrs = nested[-1]
        if end_tag and end_tag != tag:
            raise HtmlError('Unmatched end tag at byte offset %d, expected "</%s>", found "</%s>"'
                            % (begin, tag, end_tag))
        if utf16 > ent_offset:
            length = utf16 - ent_offset
            if tag in ("i", "em"):
                raw.append(("italic", ent_offset, length, None))
            elif tag in ("b", "strong"):
                raw.append(("bold", ent_offset, length, None))
            elif tag in ("s", "strike", "del"):
                raw.append(("strikethrough", ent_offset, length, None))
            elif tag in ("u", "ins"):
                raw.append(("underline", ent_offset, length, None))
            elif tag in ("tg-spoiler", "span"):
                raw.append(("spoiler", ent_offset, length, None))
            elif tag == "tg-emoji":
                if not re.fullmatch(r"[1-9]\d{0,18}", argument or ""):
                    raise HtmlError("Invalid custom emoji identifier specified")
                raw.append(("custom_emoji", ent_offset, length, argument))
            elif tag == "tg-time":
                if not re.fullmatch(r"\d{1,12}", argument or ""):
                    raise HtmlError("Invalid Unix time specified")
                raw.append(("date_time", ent_offset, length,
                            (int(argument), attrs.get("format", ""))))
            elif tag == "a":
                url = argument or bytes(result[ent_begin:]).decode("utf-8", "replace")
                m = re.fullmatch(r"tg:(?://)?user\?id=(\d{1,20})", url, re.IGNORECASE)
                if m:
                    raw.append(("text_mention", ent_offset, length, int(m.group(1))))
                else:
                    url = _checked_link(url)
                    if url:
                        raw.append(("text_link", ent_offset, length, url))
            elif tag == "pre":
                if raw and raw[-1][0] == "code" and raw[-1][1] == ent_offset \
                        and raw[-1][2] == length and raw[-1][3]:
                    raw[-1] = ("pre", ent_offset, length, raw[-1][3])
                else:
                    raw.append(("pre", ent_offset, length, None))
            elif tag == "code":
                if raw and raw[-1][0] == "pre" and raw[-1][1] == ent_offset \
                        and raw[-1][2] == length and argument:
                    raw[-1] = ("pre", ent_offset, length, argument)
                else:
                    raw.append(("code", ent_offset, length, argument or None))
            elif tag == "blockquote":
                kind = "expandable_blockquote" if attrs.get("expandable") else "blockquote"
                raw.append((kind, ent_offset, length, None))
        nested.pop()
        i += 1  # past '>'
    if nested:
        raise HtmlError('Can\'t find end tag corresponding to start tag "%s"' % nested[-1][0])
    if need_recheck:
        raise HtmlError("Text contains invalid Unicode characters after decoding HTML "
                        "entities, check for unmatched surrogate code units")

    entities = []
    for kind, offset, length, extra in raw:
        ent = {"offset": offset, "length": length, "type": kind}
        if kind == "code":
            pass  # a language is only kept for pre
        elif kind == "pre" and extra:
            ent["language"] = extra
        elif kind == "text_link":
            ent["url"] = extra
        elif kind == "text_mention":
            user = (known_users or {}).get(extra)
            ent["user"] = copy.deepcopy(user) if user else {
                "id": extra, "is_bot": False, "first_name": ""}
        elif kind == "custom_emoji":
            ent["custom_emoji_id"] = extra
        elif kind == "date_time":
            ent["unix_time"] = extra[0]
            if extra[1]:
                ent["date_time_format"] = extra[1]
        entities.append(ent)
    return result.decode("utf-8"), sort_entities(entities)


def sort_entities(entities):
    """Telegram's order: by offset, longer first."""
    return sorted(entities, key=lambda e: (e.get("offset", 0), -e.get("length", 0)))


HIDDEN_DATA_ENTITIES = frozenset({"text_link", "text_mention", "custom_emoji"})


def trim_formatted(text, entities):
    """TDLib's fix_formatted_text clean-up: entities lose leading spaces and
    newlines and vanish if they hold nothing else (links excepted); then the
    text loses spaces and newlines at its end, and at its start up to the
    first entity."""
    units = text.encode("utf-16-le", "surrogatepass")

    def blank(k):
        return units[2 * k:2 * k + 2] in (b" \x00", b"\n\x00")
    total = len(units) // 2
    kept = []
    for e in entities:
        off, ln = e["offset"], e["length"]
        if off < 0 or ln <= 0 or off >= total:
            continue
        ln = min(ln, total - off)
        if e["type"] not in HIDDEN_DATA_ENTITIES:
            while ln > 0 and blank(off):
                off += 1
                ln -= 1
            if ln == 0 or all(blank(k) for k in range(off, off + ln)):
                continue
        kept.append(dict(e, offset=off, length=ln))
    end = len(text)
    while end > 0 and text[end - 1] in " \n":
        end -= 1
    text = text[:end]
    limit16 = u16len(text)
    clipped = []
    for e in kept:
        if e["offset"] >= limit16:
            continue
        if e["offset"] + e["length"] > limit16:
            e = dict(e, length=limit16 - e["offset"])
        clipped.append(e)
    first = min((e["offset"] for e in clipped), default=len(text))
    start = 0
    while start < len(text) and start < first and text[start] in " \n":
        start += 1
    if start:
        text = text[start:]
        clipped = [dict(e, offset=e["offset"] - start) for e in clipped]
    return text, sort_entities(clipped)


def _is_word_char(ch):
    """A letter, digit or underscore in any script."""
    return ch.isalnum() or ch == "_"


def _is_ascii_word(ch):
    """An ASCII letter, digit or underscore."""
    return ch.isascii() and (ch.isalnum() or ch == "_")


def find_bot_commands(text):
    """Spans of /commands, as TDLib's match_bot_commands finds them."""
    spans = []
    n = len(text)
    i = 0
    while True:
        i = text.find("/", i)
        if i < 0:
            return spans
        if i > 0 and (_is_word_char(text[i - 1]) or text[i - 1] in "/<>"):
            i += 1
            continue
        start = i
        j = i + 1
        while j < n and _is_ascii_word(text[j]):
            j += 1
        size = j - (i + 1)
        if size < 1 or size > 64:
            i = max(j, i + 1)
            continue
        if j < n and text[j] == "@":
            k = j + 1
            while k < n and _is_ascii_word(text[k]):
                k += 1
            if not 3 <= k - (j + 1) <= 32:
                i = k
                continue
            j = k
        if j < n and (_is_word_char(text[j]) or text[j] in "/<>"):
            i = j
            continue
        spans.append((start, j))
        i = j


def find_mentions(text):
    """Spans of @usernames (2-32 word characters, on word boundaries)."""
    spans = []
    for m in re.finditer(r"@([A-Za-z0-9_]{2,32})", text):
        s, e = m.span()
        if s > 0 and _is_word_char(text[s - 1]):
            continue
        if e < len(text) and _is_word_char(text[e]):
            continue
        spans.append((s, e))
    return spans


def find_urls(text):
    """Spans of plain http(s) URLs."""
    spans = []
    for m in re.finditer(r"https?://[^\s<>\"]+", text, re.IGNORECASE):
        s, e = m.span()
        if s > 0 and _is_word_char(text[s - 1]):
            continue
        while e > s and text[e - 1] in ".,;:!?)'":
            e -= 1
        spans.append((s, e))
    return spans


def detect_entities(text, existing=()):
    """bot_command, mention and url entities found in plain text, skipping
    anything that overlaps a code, pre, link or earlier found entity."""
    blocked = [(e["offset"], e["offset"] + e["length"]) for e in existing
               if e.get("type") in ("code", "pre", "text_link", "text_mention", "custom_emoji")]
    found = []
    for kind, spans in (("bot_command", find_bot_commands(text)),
                        ("url", find_urls(text)),
                        ("mention", find_mentions(text))):
        for s, e in spans:
            off = u16len(text[:s])
            ln = u16len(text[s:e])
            if ln <= 0:
                continue
            if any(off < be and bs < off + ln for bs, be in blocked):
                continue
            blocked.append((off, off + ln))
            found.append({"offset": off, "length": ln, "type": kind})
    return found


# ---------------------------------------------------------------------------
# The fake: state and behaviour
# ---------------------------------------------------------------------------

METHODS = (
    "getMe", "getUpdates", "sendMessage", "editMessageText", "editMessageReplyMarkup",
    "answerCallbackQuery", "setMyCommands", "getMyCommands", "deleteMyCommands",
    "deleteWebhook", "setWebhook", "getWebhookInfo", "getFile", "sendChatAction",
    "deleteMessage",
)
SEND_METHODS = frozenset({"sendmessage"})      # what the rate limits count
FILE_DOWNLOAD = "file_download"                 # pseudo-method name in the call log


class FakeTelegram:
    """All of the fake's state, guarded by ``self.cond`` (one lock).

    Bot API calls enter through ``bot_call`` and ``download``; control
    requests through ``control``.  Both run on the HTTP server's per-
    connection threads; long waits use ``self.cond.wait`` so the lock is
    released while waiting.
    """

    def __init__(self, token, bot_username="rivet_test_bot", rate_limits=False,
                 html_strict=True, first_update_id=500000001, log=None,
                 webhook_http=False, webhook_timeout=10.0, webhook_retry_min=0.5,
                 webhook_retry_max=4.0):
        self.token = token
        self.bot_username = bot_username
        self.rate_limits = rate_limits
        self.html_strict = html_strict
        self.webhook_http = webhook_http          # accept http:// loopback webhooks
        self.webhook_timeout = webhook_timeout    # seconds per delivery (connect, read)
        self.webhook_retry_min = webhook_retry_min
        self.webhook_retry_max = webhook_retry_max
        self.cond = threading.Condition(threading.Lock())
        self.log = log or (lambda msg: None)
        head = token.split(":", 1)[0]
        bot_id = int(head) if head.isdigit() and 0 < len(head) <= 15 else 7000000001
        self.bot_user = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Rivet Test",
            "username": bot_username,
        }
        self._next_update_id = first_update_id
        self._call_seq = 0
        self._delivery_seq = 0    # webhook delivery attempts (keeps counting over resets)
        self._epoch = 0           # incremented by every reset
        self._webhook_gen = 0     # incremented whenever the webhook is set or removed
        self._webhook_thread = None
        self._delay_gen = 0
        self._stopping = False
        self._polls = []          # getUpdates calls in progress
        self._methods = {}
        for name in METHODS:
            impl = getattr(self, "_m_" + re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower())
            self._methods[name.lower()] = (name, impl)
        self._reset_state()

    # -- state ------------------------------------------------------------

    def _reset_state(self):
        """Forget everything except the update_id and call seq counters."""
        self.users = {}           # id -> User
        self.chats = {}           # id -> chat record (see _chat)
        self.updates = deque()    # (update_id, Update) not yet confirmed
        self.raw_responses = deque()
        self.allowed_updates = None   # None: the default set
        self.webhook_url = ""
        self.webhook = None       # the webhook record (see _m_set_webhook) or None
        self.deliveries = deque(maxlen=CALL_LOG_MAX)   # webhook delivery attempts
        self._next_set_webhook = 0.0   # monotonic time before which setWebhook gets 429
        self._webhook_gen += 1
        self._epoch += 1
        self.commands = {}        # (scope json, language) -> [BotCommand]
        self.callback_queries = {}
        self.files = {}           # file_id -> file record
        self.files_by_path = {}
        self.calls = deque(maxlen=CALL_LOG_MAX)
        self.faults = []
        self.windows = {}         # ("chat", id) | ("method", name) -> monotonic end
        self.send_times = {}      # chat id -> deque of monotonic send times
        self.global_sends = deque()
        self.stats = {
            "calls_total": 0,
            "calls_by_method": {},
            "errors_by_code": {},
            "early_retries": 0,
            "early_retry_details": [],
            "early_retries_global_window": 0,
            "rate_limited": 0,
            "conflicts": 0,
            "dropped_connections": 0,
            "internal_errors": 0,
            "max_concurrent_getupdates": 0,
            "getupdates_abandoned": 0,
            "updates_queued": 0,
            "updates_filtered": 0,
            "updates_delivered": 0,
            "webhook_attempts": 0,
            "webhook_failures": 0,
            "webhook_replies": 0,
        }
        self.global_window = 0.0
        self._delay_gen += 1

    def stop(self):
        """Make every waiting call return at once (server shutdown)."""
        with self.cond:
            self._stopping = True
            self._delay_gen += 1
            self.cond.notify_all()

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

    def _user(self, user_id, first_name=None, username=None, is_bot=False,
              last_name=None, language_code=None):
        """The User with this id, created or updated from the given names."""
        user = self.users.get(user_id)
        if user is None:
            user = {"id": user_id, "is_bot": bool(is_bot),
                    "first_name": first_name or "User%d" % abs(user_id)}
            self.users[user_id] = user
        elif first_name:
            user["first_name"] = first_name
        if is_bot:
            user["is_bot"] = True
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        return user

    def _chat(self, chat_id, chat_type=None, user=None, title=None, username=None):
        """The chat record for chat_id, created on first use.

        A record holds the Bot API Chat object, the next message_id and the
        chat's messages (message_id -> Message).
        """
        rec = self.chats.get(chat_id)
        if chat_type is None:
            chat_type = rec["type"] if rec else (
                "private" if chat_id > 0 else
                "supergroup" if chat_id <= -1000000000000 else "group")
        if chat_type not in ("private", "group", "supergroup", "channel"):
            raise ControlError(400, "chat_type must be private, group, supergroup or channel")
        if rec is None:
            rec = {"type": chat_type, "next_message_id": 1, "messages": {},
                   "blocked": False,
                   "chat_instance": str(random.randint(-(2 ** 63), 2 ** 63 - 1))}
            self.chats[chat_id] = rec
        rec["type"] = chat_type
        obj = {"id": chat_id}
        if chat_type == "private":
            u = user or self.users.get(chat_id) or {"first_name": "User%d" % chat_id}
            obj["first_name"] = u.get("first_name", "")
            if u.get("last_name"):
                obj["last_name"] = u["last_name"]
            if u.get("username"):
                obj["username"] = u["username"]
        else:
            old = rec.get("chat", {})
            obj["title"] = title or old.get("title") or (
                "Test Channel" if chat_type == "channel" else "Test Group")
            uname = username or old.get("username")
            if uname and chat_type != "group":
                obj["username"] = uname
        obj["type"] = chat_type
        rec["chat"] = obj
        return rec

    def _new_message_id(self, rec):
        """The next message_id of a chat (shared by users and the bot)."""
        mid = rec["next_message_id"]
        rec["next_message_id"] += 1
        return mid

    def _kind_allowed(self, kind):
        """True if allowed_updates lets updates of this kind be created."""
        if self.allowed_updates is None:
            return kind not in DEFAULT_EXCLUDED
        return kind in self.allowed_updates

    def _queue(self, kind, payload):
        """Queue an Update of ``kind``; None if allowed_updates filters it."""
        if not self._kind_allowed(kind):
            self.stats["updates_filtered"] += 1
            return None
        uid = self._next_update_id
        self._next_update_id += 1
        self.updates.append((uid, {"update_id": uid, kind: copy.deepcopy(payload)}))
        self.stats["updates_queued"] += 1
        self.cond.notify_all()
        return uid

    # -- Bot API entry points -------------------------------------------------

    def bot_call(self, token, method, params, body_error=None, peer_alive=None,
                 webhook_reply=False):
        """Run one Bot API call and return the Outcome to send (webhook_reply:
        the call came in a webhook answer; it is logged as such)."""
        started = time.time()
        lc = method.lower()
        entry = self._methods.get(lc)
        canonical = entry[0] if entry else method
        ctx = Ctx(peer_alive or (lambda: True))
        fault = None
        early = False
        result = None
        error = None
        outcome = None
        with self.cond:
            try:
                if token != self.token:
                    raise ApiError(401, "Unauthorized")
                if entry is None:
                    raise ApiError(404, "Not Found")
                if body_error:
                    raise ApiError(400, body_error)
                refusal = self._check_window(lc, params)
                if refusal is not None:
                    early = True
                    raise refusal
                fault = self._take_fault(canonical, params)
                if fault is not None:
                    outcome = self._fault_outcome(fault, lc, params)
                if outcome is None:
                    result = entry[1](params, ctx)
            except ApiError as e:
                error = e
            except Exception:  # a bug here must not kill the connection thread
                self.stats["internal_errors"] += 1
                self.log("internal error in %s:\n%s" % (canonical, traceback.format_exc()))
                error = ApiError(500, "Internal Server Error")
            if outcome is None:
                if ctx.raw is not None:
                    outcome = ctx.raw
                elif error is not None:
                    outcome = Outcome(error.code, dumps(error.envelope()))
                else:
                    env = {"ok": True, "result": result}
                    if ctx.description:
                        env["description"] = ctx.description
                    outcome = Outcome(200, dumps(env))
                if fault is not None and fault["kind"] == "slow":
                    outcome.delay = fault["delay"]
                if fault is not None and fault["kind"] == "drop_after":
                    outcome.drop = True
                if ctx.drop:
                    outcome.drop = True
            self._record(canonical, params, started, outcome, error,
                         result if error is None and ctx.raw is None else None,
                         fault, early, raw=ctx.raw is not None, webhook_reply=webhook_reply)
        return outcome

    def download(self, token, file_path, peer_alive=None):
        """GET /file/bot<token>/<file_path>: the stored bytes or a 404."""
        started = time.time()
        params = {"file_path": file_path}
        error = None
        outcome = None
        fault = None
        with self.cond:
            try:
                if token != self.token:
                    raise ApiError(401, "Unauthorized")
                fault = self._take_fault(FILE_DOWNLOAD, params)
                if fault is not None:
                    outcome = self._fault_outcome(fault, FILE_DOWNLOAD, params)
                if outcome is None:
                    rec = self.files_by_path.get(file_path)
                    if rec is None or rec["data"] is None:
                        raise ApiError(404, "Not Found")
                    outcome = Outcome(200, rec["data"], rec.get("mime_type")
                                      or "application/octet-stream")
                    if fault is not None and fault["kind"] == "slow":
                        outcome.delay = fault["delay"]
                    if fault is not None and fault["kind"] == "drop_after":
                        outcome.drop = True
            except ApiError as e:
                error = e
                outcome = Outcome(e.code, dumps(e.envelope()))
            self._record(FILE_DOWNLOAD, params, started, outcome, error,
                         {"size": len(outcome.body)} if error is None else None,
                         fault, False)
        return outcome

    def _record(self, method, params, started, outcome, error, result, fault, early,
                raw=False, webhook_reply=False):
        """Append one call to the call log and update the counters."""
        self._call_seq += 1
        now = time.time()
        rec = {
            "seq": self._call_seq,
            "method": method,
            "params": jsonable(params),
            "time": now,
            "started": started,
            "duration": round(now - started, 6),
            "ok": error is None and not outcome.drop and outcome.status == 200,
            "http_status": None if outcome.drop else outcome.status,
            "error_code": error.code if error is not None else None,
            "description": error.description if error is not None else None,
            "result": copy.deepcopy(result),
            "fault": fault["kind"] if fault is not None else None,
            "early_retry": early,
        }
        if error is not None and error.retry_after is not None:
            rec["retry_after"] = error.retry_after
        if raw:
            rec["raw_response"] = True
        if webhook_reply:
            rec["webhook_reply"] = True
        self.calls.append(rec)
        st = self.stats
        st["calls_total"] += 1
        st["calls_by_method"][method] = st["calls_by_method"].get(method, 0) + 1
        if error is not None:
            key = str(error.code)
            st["errors_by_code"][key] = st["errors_by_code"].get(key, 0) + 1
            if error.code == 429:
                st["rate_limited"] += 1
            if error.code == 409:
                st["conflicts"] += 1
        if outcome.drop and fault is not None:
            st["dropped_connections"] += 1
        self.cond.notify_all()

    # -- 429 windows, rate limits and faults ----------------------------------

    def _window_key(self, lc, params):
        """What a 429 window is kept for: the call's chat, else its method."""
        cid = chat_id_of(params)
        return ("chat", cid) if cid is not None else ("method", lc)

    def _announce(self, key, retry_after):
        """Open a retry_after window for key and return the 429 error."""
        retry_after = max(1, int(retry_after))
        self.windows[key] = time.monotonic() + retry_after
        return ApiError(429, "Too Many Requests: retry after %d" % retry_after,
                        retry_after=retry_after)

    def _check_window(self, lc, params):
        """A 429 ApiError for a call made inside an announced window (counted
        as an early retry), or None."""
        now = time.monotonic()
        key = self._window_key(lc, params)
        end = self.windows.get(key)
        if lc in SEND_METHODS and self.global_window > now + EARLY_TOLERANCE:
            self.stats["early_retries_global_window"] += 1
        if end is None:
            return None
        if now >= end - EARLY_TOLERANCE:
            del self.windows[key]
            return None
        self.stats["early_retries"] += 1
        details = self.stats["early_retry_details"]
        if len(details) < 100:
            details.append({"seq": self._call_seq + 1, "key": "%s:%s" % key,
                            "early_by": round(end - now, 3)})
        left = max(1, math.ceil(end - now))
        return ApiError(429, "Too Many Requests: retry after %d" % left, retry_after=left)

    def _check_rate(self, chat_id, chat_type):
        """With --rate-limits on: 1/s per private chat, 20/min per group,
        30/s overall; a send beyond that gets a 429 and opens a window."""
        if not self.rate_limits:
            return
        now = time.monotonic()
        hist = self.send_times.setdefault(chat_id, deque())
        while hist and now - hist[0] >= 60.0:
            hist.popleft()
        while self.global_sends and now - self.global_sends[0] >= 1.0:
            self.global_sends.popleft()
        wait = 0.0
        slack = EARLY_TOLERANCE  # a bot pacing itself exactly is not punished for jitter
        if chat_type == "private":
            if hist and now - hist[-1] < 1.0 - slack:
                wait = 1.0 - (now - hist[-1])
        elif len(hist) >= 20 and now - hist[-20] < 60.0 - slack:
            wait = 60.0 - (now - hist[-20])
        if wait <= 0 and len(self.global_sends) >= 30 \
                and now - self.global_sends[-30] < 1.0 - slack:
            wait = 1.0 - (now - self.global_sends[-30])
            err = self._announce(("chat", chat_id), math.ceil(wait))
            self.global_window = now + err.retry_after
            raise err
        if wait > 0:
            raise self._announce(("chat", chat_id), math.ceil(wait))

    def _note_send(self, chat_id):
        """Remember a successful send for the rate limits."""
        now = time.monotonic()
        self.send_times.setdefault(chat_id, deque()).append(now)
        self.global_sends.append(now)

    def _take_fault(self, method, params):
        """The first injected fault matching this call, consuming one use."""
        now = time.monotonic()
        cid = chat_id_of(params)
        keep = []
        chosen = None
        for f in self.faults:
            if f["until"] is not None and now >= f["until"]:
                continue
            if f["count"] is not None and f["count"] <= 0:
                continue
            if chosen is None and f["method"] in ("*", method.lower()) and (
                    f["chat_id"] is None or f["chat_id"] == cid):
                chosen = dict(f)
                if f["count"] is not None:
                    f["count"] -= 1
                    if f["count"] <= 0:
                        continue
            keep.append(f)
        self.faults = keep
        return chosen

    def _fault_outcome(self, fault, lc, params):
        """Apply a fault before the method runs: raise its error, return an
        Outcome replacing the answer, or None to run the method normally."""
        kind = fault["kind"]
        desc = fault.get("description")
        if kind == "429":
            raise self._announce(self._window_key(lc, params), fault["retry_after"])
        if kind == "parse_entities":
            raise ApiError(400, desc or PARSE_PREFIX + 'Can\'t find end tag corresponding '
                           'to start tag "b"')
        if kind == "502":
            return Outcome(502, HTML_502, "text/html")
        if kind == "drop":
            return Outcome(drop=True)
        if kind == "timeout":
            return Outcome(drop=True, delay=fault["delay"])
        if kind in ("slow", "drop_after"):
            return None
        code = int(kind)
        raise ApiError(code, desc or FAULT_ERRORS.get(code, "Error %d" % code))

    # -- parameter readers shared by methods -----------------------------------

    def _resolve_chat(self, params):
        """(chat id, chat record) named by chat_id, or 400 chat not found."""
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        if isinstance(raw, str) and raw.strip().startswith("@"):
            name = raw.strip()[1:].lower()
            for cid, rec in self.chats.items():
                if rec["type"] != "private" and rec["chat"].get("username", "").lower() == name:
                    return cid, rec
            raise ApiError(400, "Bad Request: chat not found")
        cid = chat_id_of(params)
        rec = self.chats.get(cid) if cid is not None else None
        if rec is None:
            raise ApiError(400, "Bad Request: chat not found")
        return cid, rec

    @staticmethod
    def _forbidden(rec):
        """The 403 Telegram answers for a chat that blocked or removed the bot."""
        if rec["type"] == "private":
            return ApiError(403, "Forbidden: bot was blocked by the user")
        if rec["type"] == "channel":
            return ApiError(403, "Forbidden: bot is not a member of the channel chat")
        return ApiError(403, "Forbidden: bot was kicked from the %s chat" % rec["type"])

    def _format_text(self, params, text):
        """Parse text per parse_mode/entities and trim it like Telegram."""
        mode = (p_str(params, "parse_mode") or "").strip().lower()
        entities = []
        if mode == "html":
            try:
                text, entities = parse_html(text, strict=self.html_strict,
                                            known_users=self.users)
            except HtmlError as e:
                raise ApiError(400, PARSE_PREFIX + str(e))
        elif mode in ("markdown", "markdownv2"):
            pass  # accepted, not parsed (see README)
        elif mode:
            raise ApiError(400, "Bad Request: unsupported parse_mode")
        elif p_present(params, "entities"):
            try:
                given = p_json(params, "entities")
            except ValueError:
                raise ApiError(400, "Bad Request: can't parse entities JSON object")
            if not isinstance(given, list) or not all(
                    isinstance(e, dict) and isinstance(e.get("type"), str)
                    and isinstance(e.get("offset"), int) and isinstance(e.get("length"), int)
                    and not isinstance(e.get("offset"), bool) for e in given):
                raise ApiError(400, "Bad Request: can't parse entities JSON object")
            entities = sort_entities([dict(e) for e in given if e["length"] > 0])
        text, entities = trim_formatted(text, entities)
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        return text, sort_entities(entities + detect_entities(text, entities))

    def _reply_markup(self, params, inline_only=False):
        """The validated inline keyboard (or None) from reply_markup.

        Reply keyboards, ReplyKeyboardRemove and ForceReply are accepted in
        sendMessage and not echoed back, as Telegram does.
        """
        if not p_present(params, "reply_markup"):
            return None
        try:
            markup = p_json(params, "reply_markup")
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: object expected as reply markup")
        if "inline_keyboard" not in markup:
            if inline_only:
                raise ApiError(400, "Bad Request: REPLY_MARKUP_INVALID")
            if "keyboard" in markup:
                rows = markup["keyboard"]
                if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                    raise ApiError(400, 'Bad Request: field "keyboard" of the '
                                   'ReplyKeyboardMarkup must be an Array of Arrays')
                return None
            if "remove_keyboard" in markup or "force_reply" in markup:
                return None
            raise ApiError(400, "Bad Request: can't find field \"inline_keyboard\"")
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise ApiError(400, 'Bad Request: field "inline_keyboard" of the '
                           'InlineKeyboardMarkup must be an Array of Arrays')
        out_rows = []
        for row in rows:
            out = []
            for button in row:
                out.append(self._inline_button(button))
            if out:
                out_rows.append(out)
        if not out_rows:
            return None
        return {"inline_keyboard": out_rows}

    @staticmethod
    def _inline_button(button):
        """One validated InlineKeyboardButton, as Telegram echoes it back."""
        pfx = "Bad Request: can't parse inline keyboard button: "
        if not isinstance(button, dict):
            raise ApiError(400, pfx + "InlineKeyboardButton must be an Object")
        if "text" not in button:
            raise ApiError(400, pfx + "can't find field \"text\"")
        text = button["text"]
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            text = str(text)
        if not isinstance(text, str):
            raise ApiError(400, pfx + 'field "text" must be of type String')
        out = {"text": text}
        if "callback_data" in button:
            data = button["callback_data"]
            if isinstance(data, (int, float)) and not isinstance(data, bool):
                data = str(data)
            if not isinstance(data, str):
                raise ApiError(400, pfx + 'field "callback_data" must be of type String')
            if not 1 <= len(data.encode("utf-8", "surrogatepass")) <= MAX_CALLBACK_DATA:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            out["callback_data"] = data
            return out
        if "url" in button:
            url = button["url"]
            if not isinstance(url, str):
                raise ApiError(400, pfx + 'field "url" must be of type String')
            if not re.match(r"(https?|tg)://\S+$", url.strip(), re.IGNORECASE):
                raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")
            out["url"] = url.strip()
            return out
        for other in ("switch_inline_query", "switch_inline_query_current_chat",
                      "switch_inline_query_chosen_chat", "copy_text", "web_app",
                      "login_url", "callback_game", "pay"):
            if other in button:
                out[other] = button[other]
                return out
        raise ApiError(400, pfx + "Text buttons are unallowed in the inline keyboard")

    def _message_ids(self, params):
        """(chat id, chat record, message) for an edit, or the right 400."""
        if p_present(params, "inline_message_id") and not p_present(params, "chat_id"):
            raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")
        if not p_present(params, "chat_id") or not p_present(params, "message_id"):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        cid, rec = self._resolve_chat(params)
        mid = p_int(params, "message_id")
        msg = rec["messages"].get(mid)
        if msg is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if rec["blocked"]:
            raise self._forbidden(rec)
        if not msg.get("_by_bot"):
            raise ApiError(400, "Bad Request: message can't be edited")
        return cid, rec, msg

    @staticmethod
    def _public(msg):
        """A stored message without the fake's private bookkeeping keys."""
        return {k: copy.deepcopy(v) for k, v in msg.items() if not k.startswith("_")}

    # -- Bot API methods -------------------------------------------------------

    def _m_get_me(self, params, ctx):
        """getMe: the bot's User with its capability flags."""
        me = dict(self.bot_user)
        me.update({"can_join_groups": True, "can_read_all_group_messages": False,
                   "supports_inline_queries": False, "can_connect_to_business": False,
                   "has_main_web_app": False})
        return me

    def _m_get_updates(self, params, ctx):
        """Long polling with Telegram's offset, limit, timeout, allowed_updates
        semantics; a newer call ends an older one with 409 Conflict."""
        for p in self._polls:
            if not p["terminated"] and not p["abandoned"] and not p["alive"]():
                p["abandoned"] = True
                self.stats["getupdates_abandoned"] += 1
        self._polls = [p for p in self._polls if not p["abandoned"]]
        for p in self._polls:
            p["terminated"] = True
        poll = {"alive": ctx.peer_alive, "terminated": False, "abandoned": False}
        self._polls.append(poll)
        self.stats["max_concurrent_getupdates"] = max(
            self.stats["max_concurrent_getupdates"], len(self._polls))
        self.cond.notify_all()
        try:
            if self.webhook_url:
                raise ApiError(409, CONFLICT_WEBHOOK)
            offset = p_int(params, "offset", 0)
            limit = clamp(p_int(params, "limit", 100), 1, 100)
            timeout = clamp(p_int(params, "timeout", 0), 0, LONG_POLL_MAX)
            self._apply_allowed_updates(params)
            if offset < 0:
                while len(self.updates) > -offset:
                    self.updates.popleft()
            elif offset > 0:
                self.updates = deque(u for u in self.updates if u[0] >= offset)
            deadline = time.monotonic() + timeout
            while True:
                if poll["terminated"]:
                    raise ApiError(409, poll.get("conflict") or CONFLICT_OTHER)
                if self.raw_responses:
                    ctx.raw = self.raw_responses.popleft()
                    return None
                if self.updates:
                    batch = [copy.deepcopy(u) for _, u in itertools.islice(self.updates, limit)]
                    self.stats["updates_delivered"] += len(batch)
                    return batch
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    return []
                self.cond.wait(min(left, 0.25))
                if not poll["terminated"] and not ctx.peer_alive():
                    poll["abandoned"] = True
                    self.stats["getupdates_abandoned"] += 1
                    ctx.drop = True
                    return []
        finally:
            if poll in self._polls:
                self._polls.remove(poll)

    def _apply_allowed_updates(self, params):
        """allowed_updates of getUpdates or setWebhook, as telegram-bot-api
        reads it: absent, not JSON or not a list of strings: no change; a
        list naming no known kind (such as []): the default; names are
        case-insensitive.  Applies to updates created afterwards."""
        if not p_present(params, "allowed_updates"):
            return
        try:
            wanted = p_json(params, "allowed_updates")
        except ValueError:
            return
        if not isinstance(wanted, list) or not all(isinstance(k, str) for k in wanted):
            return
        kinds = {k.lower() for k in wanted if k.lower() in UPDATE_KINDS}
        self.allowed_updates = kinds or None

    def _m_send_message(self, params, ctx):
        """sendMessage: validate, store and return the bot's Message."""
        text = p_str(params, "text", "")
        if text == "":
            raise ApiError(400, "Bad Request: message text is empty")
        markup = self._reply_markup(params)
        text, entities = self._format_text(params, text)
        cid, rec = self._resolve_chat(params)
        if rec["blocked"]:
            raise self._forbidden(rec)
        if len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        reply_to = None
        reply_id = p_int(params, "reply_to_message_id", 0)
        allow_without = p_bool(params, "allow_sending_without_reply")
        if p_present(params, "reply_parameters"):
            try:
                rp = p_json(params, "reply_parameters")
            except ValueError:
                raise ApiError(400, "Bad Request: can't parse reply parameters JSON object")
            if isinstance(rp, dict):
                reply_id = p_int(rp, "message_id", 0)
                allow_without = p_bool(rp, "allow_sending_without_reply")
        if reply_id:
            reply_to = rec["messages"].get(reply_id)
            if reply_to is None and not allow_without:
                raise ApiError(400, "Bad Request: message to be replied not found")
        self._check_rate(cid, rec["type"])
        self._note_send(cid)
        msg = {"message_id": self._new_message_id(rec)}
        if rec["type"] == "channel":
            msg["sender_chat"] = copy.deepcopy(rec["chat"])
        else:
            msg["from"] = dict(self.bot_user)
        msg["chat"] = copy.deepcopy(rec["chat"])
        msg["date"] = int(time.time())
        if reply_to is not None:
            msg["reply_to_message"] = {k: v for k, v in self._public(reply_to).items()
                                       if k != "reply_to_message"}
        msg["text"] = text
        if entities:
            msg["entities"] = entities
        if markup is not None:
            msg["reply_markup"] = markup
        msg["_by_bot"] = True
        rec["messages"][msg["message_id"]] = msg
        return self._public(msg)

    def _m_edit_message_text(self, params, ctx):
        """editMessageText: new text (and keyboard, removed if absent)."""
        text = p_str(params, "text", "")
        if text == "":
            raise ApiError(400, "Bad Request: message text is empty")
        markup = self._reply_markup(params, inline_only=True)
        text, entities = self._format_text(params, text)
        cid, rec, msg = self._message_ids(params)
        if "text" not in msg:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        if len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        if (msg["text"] == text and msg.get("entities", []) == entities
                and msg.get("reply_markup") == markup):
            raise ApiError(400, NOT_MODIFIED)
        msg["text"] = text
        if entities:
            msg["entities"] = entities
        else:
            msg.pop("entities", None)
        if markup is not None:
            msg["reply_markup"] = markup
        else:
            msg.pop("reply_markup", None)
        msg["edit_date"] = int(time.time())
        return self._public(msg)

    def _m_edit_message_reply_markup(self, params, ctx):
        """editMessageReplyMarkup: new or no inline keyboard."""
        markup = self._reply_markup(params, inline_only=True)
        cid, rec, msg = self._message_ids(params)
        if msg.get("reply_markup") == markup:
            raise ApiError(400, NOT_MODIFIED)
        if markup is not None:
            msg["reply_markup"] = markup
        else:
            msg.pop("reply_markup", None)
        msg["edit_date"] = int(time.time())
        return self._public(msg)

    def _m_answer_callback_query(self, params, ctx):
        """answerCallbackQuery: each query can be answered once."""
        qid = p_str(params, "callback_query_id", "")
        if qid == "":
            raise ApiError(400, "Bad Request: parameter \"callback_query_id\" is required")
        text = p_str(params, "text", "")
        if len(text) > MAX_CALLBACK_ANSWER:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        q = self.callback_queries.get(qid)
        if q is None or q["answered"] is not None:
            raise ApiError(400, QUERY_INVALID)
        q["answered"] = {"text": text, "show_alert": p_bool(params, "show_alert"),
                         "url": p_str(params, "url"), "time": time.time()}
        return True

    def _m_set_my_commands(self, params, ctx):
        """setMyCommands: validated like TDLib and the server do."""
        if p_present(params, "commands"):
            try:
                commands = p_json(params, "commands")
            except ValueError:
                raise ApiError(400, "Bad Request: can't parse commands JSON object")
        else:
            commands = []
        if not isinstance(commands, list) or not all(isinstance(c, dict) for c in commands):
            raise ApiError(400, "Bad Request: expected an Array of BotCommand")
        if len(commands) > MAX_COMMANDS:
            raise ApiError(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
        clean = []
        for c in commands:
            for field in ("command", "description"):
                if field not in c:
                    raise ApiError(400, "Bad Request: can't find field \"%s\"" % field)
                if not isinstance(c[field], str):
                    raise ApiError(400, "Bad Request: field \"%s\" must be of type String"
                                   % field)
            command = c["command"].strip()
            if command.startswith("/"):
                command = command[1:]
            if not command:
                raise ApiError(400, "Bad Request: command must be non-empty")
            if len(command) > MAX_COMMAND_LEN:
                raise ApiError(400, "Bad Request: command length must not exceed %d"
                               % MAX_COMMAND_LEN)
            if not re.fullmatch(r"[a-z0-9_]+", command):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            description = c["description"].strip()
            if not description:
                raise ApiError(400, "Bad Request: command description must be non-empty")
            if len(description) > MAX_COMMAND_DESCRIPTION:
                raise ApiError(400, "Bad Request: command description length must not "
                               "exceed %d" % MAX_COMMAND_DESCRIPTION)
            clean.append({"command": command, "description": description})
        self.commands[self._scope_key(params)] = clean
        return True

    def _scope_key(self, params):
        """Key of a command list: (scope JSON, language_code)."""
        try:
            scope = p_json(params, "scope") if p_present(params, "scope") else None
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse BotCommandScope JSON object")
        if scope is None:
            scope = {"type": "default"}
        if not isinstance(scope, dict):
            raise ApiError(400, "Bad Request: can't parse BotCommandScope JSON object")
        lang = p_str(params, "language_code", "") or ""
        if lang and not re.fullmatch(r"[a-z]{2}", lang):
            raise ApiError(400, "Bad Request: invalid language code specified")
        return json.dumps(scope, sort_keys=True), lang

    def _m_get_my_commands(self, params, ctx):
        """getMyCommands for a scope and language."""
        return copy.deepcopy(self.commands.get(self._scope_key(params), []))

    def _m_delete_my_commands(self, params, ctx):
        """deleteMyCommands for a scope and language."""
        self.commands.pop(self._scope_key(params), None)
        return True

    def _m_delete_webhook(self, params, ctx):
        """deleteWebhook (also setWebhook with an empty url): delivery stops,
        pending updates stay for getUpdates unless drop_pending_updates."""
        drop = p_bool(params, "drop_pending_updates")
        if drop:
            self.updates.clear()
        if not self.webhook_url:
            ctx.description = "Webhook is already deleted"
            return True
        self._clear_webhook()
        ctx.description = "Webhook was deleted"
        return True

    def _m_set_webhook(self, params, ctx):
        """setWebhook, checked in telegram-bot-api's order (Client.cpp
        process_set_webhook_query, do_set_webhook, WebhookActor::start_up)."""
        url = (p_str(params, "url", "") or "").strip()
        if not url:
            return self._m_delete_webhook(params, ctx)
        if self.rate_limits:
            now = time.monotonic()
            if now < self._next_set_webhook:
                raise self._announce(("method", "setwebhook"), 1)
            self._next_set_webhook = now + 1.0
        max_connections = clamp(p_int(params, "max_connections", WEBHOOK_DEFAULT_CONNECTIONS),
                                1, 100)
        secret = p_str(params, "secret_token", "") or ""
        drop = p_bool(params, "drop_pending_updates")
        has_cert = isinstance(params.get("certificate"), UploadedFile)
        wh = self.webhook
        if (wh is not None and wh["url"] == url and not wh["has_custom_certificate"]
                and not has_cert and wh["max_connections"] == max_connections
                and wh["secret_token"] == secret and not drop):
            self._apply_allowed_updates(params)
            ctx.description = "Webhook is already set"
            return True
        for p in self._polls:   # a waiting getUpdates ends at once
            if not p["terminated"]:
                p["terminated"] = True
                p["conflict"] = CONFLICT_SETWEBHOOK
        self.cond.notify_all()
        # Telegram closes the old webhook before it looks at the new one: a
        # refused setWebhook leaves no webhook behind.
        self._clear_webhook()
        if drop:
            self.updates.clear()
        target = parse_webhook_url(url)
        if target is None:
            raise ApiError(400, "Bad Request: invalid webhook URL specified")
        if len(secret) > WEBHOOK_SECRET_MAX:
            raise ApiError(400, "Bad Request: secret token is too long")
        if not WEBHOOK_SECRET_RE.fullmatch(secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        self._apply_allowed_updates(params)
        problem = self._bad_webhook(target)
        if problem:
            raise ApiError(400, "Bad Request: bad webhook: " + problem)
        deliver = self.webhook_http and target["host"] in LOOPBACK_HOSTS
        self._install_webhook(url, target, secret, max_connections, has_cert, deliver)
        ctx.description = "Webhook was set"
        return True

    def _bad_webhook(self, target):
        """Why Telegram would refuse to deliver to this URL, or None.

        With --webhook-http on, 127.0.0.1, ::1 and localhost pass with any
        scheme and port.  Otherwise Telegram's rules: HTTPS, ports 443, 80,
        88, 8443, and no reserved or IPv6 address (host names other than
        localhost are not resolved)."""
        host = target["host"]
        if self.webhook_http and host in LOOPBACK_HOSTS:
            return None
        if target["scheme"] != "https":
            return "An HTTPS URL must be provided for webhook"
        if target["port"] not in WEBHOOK_PORTS:
            return "Webhook can be set up only on ports 80, 88, 443 or 8443"
        try:
            ip = ipaddress.ip_address("127.0.0.1" if host == "localhost" else host)
        except ValueError:
            return None
        if ip.version == 6:
            return "IPv6-only addresses are not allowed"
        if (ip.is_private or ip.is_loopback or ip.is_reserved or ip.is_multicast
                or ip.is_link_local or ip.is_unspecified
                or ip in ipaddress.ip_network("100.64.0.0/10")):
            return "IP address %s is reserved" % ip
        return None

    def _install_webhook(self, url, target, secret, max_connections, has_cert, deliver,
                         external=False):
        """Make url the webhook; start the delivery thread if it will deliver."""
        self._webhook_gen += 1
        self.webhook = {
            "url": url,
            "target": target,
            "secret_token": secret,
            "max_connections": max_connections,
            "has_custom_certificate": has_cert,
            "deliver": deliver,
            "external": external,
            "gen": self._webhook_gen,
            "set_time": time.time(),
            "last_error_date": 0,
            "last_error_message": "",
            "retry": None,        # {"update_id", "failures", "next_at"} of the head update
            "in_flight": None,    # update_id being posted
        }
        self.webhook_url = url
        if deliver and (self._webhook_thread is None or not self._webhook_thread.is_alive()):
            self._webhook_thread = threading.Thread(target=self._webhook_worker,
                                                    name="fake-telegram-webhook", daemon=True)
            self._webhook_thread.start()
        self.cond.notify_all()

    def _clear_webhook(self):
        """No webhook any more (deleteWebhook, a new setWebhook, reset)."""
        self._webhook_gen += 1
        self.webhook = None
        self.webhook_url = ""
        self.cond.notify_all()

    def _m_get_webhook_info(self, params, ctx):
        """getWebhookInfo: the WebhookInfo object, fields in Telegram's order."""
        wh = self.webhook
        info = {"url": self.webhook_url,
                "has_custom_certificate": bool(wh and wh["has_custom_certificate"]),
                "pending_update_count": len(self.updates)}
        if wh is not None and wh["last_error_date"]:
            info["last_error_date"] = wh["last_error_date"]
            info["last_error_message"] = wh["last_error_message"]
        if wh is not None:
            info["max_connections"] = wh["max_connections"]
        if self.allowed_updates is not None:
            info["allowed_updates"] = [k for k in UPDATE_KIND_ORDER if k in self.allowed_updates]
        return info

    # -- webhook delivery --------------------------------------------------------

    def _webhook_worker(self):
        """Deliver queued updates to the webhook, one at a time, oldest first.

        Runs on its own thread; holds the lock except while posting."""
        conn = WebhookConnection()
        try:
            with self.cond:
                while not self._stopping:
                    job, wait = self._next_delivery()
                    if job is None:
                        self.cond.wait(wait)
                        continue
                    self.cond.release()
                    try:
                        result = conn.post(job)
                        if result["ok"]:
                            result["webhook_reply"] = self._webhook_reply(result)
                    except Exception:
                        result = {"ok": False, "status": None, "reason": None,
                                  "error": "internal error in the fake", "retry_after": None,
                                  "connection": None, "response_body": None,
                                  "response_headers": {}, "webhook_reply": None}
                        conn.close()
                        with self.cond:
                            self.stats["internal_errors"] += 1
                        self.log("internal error in webhook delivery:\n%s"
                                 % traceback.format_exc())
                    finally:
                        self.cond.acquire()
                    self._finish_delivery(job, result)
        finally:
            conn.close()

    def _next_delivery(self):
        """(job, None) for the update to post now, or (None, seconds to wait)."""
        wh = self.webhook
        if wh is None or not wh["deliver"] or not self.updates:
            return None, 1.0
        uid, update = self.updates[0]
        retry = wh["retry"]
        if retry is None or retry["update_id"] != uid:
            retry = wh["retry"] = {"update_id": uid, "failures": 0, "next_at": 0.0}
        left = retry["next_at"] - time.monotonic()
        if left > 0:
            return None, min(left, 1.0)
        wh["in_flight"] = uid
        return {
            "epoch": self._epoch,
            "gen": wh["gen"],
            "update_id": uid,
            "attempt": retry["failures"] + 1,
            "url": wh["url"],
            "target": wh["target"],
            "secret_token": wh["secret_token"],
            "body": update_body(update),
            "timeout": self.webhook_timeout,
        }, None

    def _finish_delivery(self, job, result):
        """Record one delivery attempt and confirm or reschedule its update."""
        if job["epoch"] != self._epoch:   # /control/reset meanwhile: forget it
            return
        now = time.time()
        wh = self.webhook
        current = wh is not None and wh["gen"] == job["gen"]
        if current:
            wh["in_flight"] = None
        retry_in = None
        st = self.stats
        st["webhook_attempts"] += 1
        if result["ok"]:
            for i, (uid, _) in enumerate(self.updates):
                if uid == job["update_id"]:
                    del self.updates[i]
                    st["updates_delivered"] += 1
                    break
            if current:
                wh["retry"] = None
        else:
            st["webhook_failures"] += 1
            if current:
                retry = wh["retry"]
                if retry is not None and retry["update_id"] == job["update_id"]:
                    retry["failures"] += 1
                    if result.get("retry_after") is not None:
                        retry_in = float(result["retry_after"])
                    else:
                        retry_in = min(self.webhook_retry_max, self.webhook_retry_min
                                       * 2 ** min(retry["failures"] - 1, 30))
                    retry["next_at"] = time.monotonic() + retry_in
                wh["last_error_date"] = int(now)
                wh["last_error_message"] = result["error"]
        if result.get("webhook_reply"):
            st["webhook_replies"] += 1
        self._delivery_seq += 1
        self.deliveries.append({
            "seq": self._delivery_seq,
            "update_id": job["update_id"],
            "attempt": job["attempt"],
            "url": job["url"],
            "started": result.get("started"),
            "time": now,
            "duration": round(now - result["started"], 6) if result.get("started") else None,
            "ok": result["ok"],
            "status": result["status"],
            "reason": result["reason"],
            "error": result["error"],
            "retry_in": retry_in,
            "secret_token": job["secret_token"] or None,
            "request_headers": result.get("request_headers"),
            "response_headers": result.get("response_headers"),
            "response_body": result.get("response_body"),
            "connection": result.get("connection"),
            "webhook_reply": result.get("webhook_reply"),
            "webhook_current": current,
        })
        self.cond.notify_all()

    def _webhook_reply(self, result):
        """Carry out a Bot API call given in a 2xx webhook answer (Telegram
        runs any method but getters, setWebhook, deleteWebhook, close and
        logOut, and tells nobody the outcome); returns the method or None.
        Runs without the lock."""
        body = result.get("raw_body") or b""
        if not body:
            return None
        params, err = parse_params("", body, result.get("content_type"))
        method = params.pop("method", None) if not err else None
        if not isinstance(method, str) or not method.strip():
            return None
        method = method.strip()
        lc = method.lower()
        if lc in WEBHOOK_REPLY_REFUSED or lc.startswith("get"):
            return None
        self.bot_call(self.token, method, params, None, webhook_reply=True)
        return method

    def _m_get_file(self, params, ctx):
        """getFile: the File object of an injected file."""
        fid = p_str(params, "file_id", "") or ""
        rec = self.files.get(fid)
        if rec is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if rec["file_size"] > DOWNLOAD_LIMIT:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": fid, "file_unique_id": rec["file_unique_id"],
                "file_size": rec["file_size"], "file_path": rec["file_path"]}

    def _m_send_chat_action(self, params, ctx):
        """sendChatAction: checks chat and action."""
        cid, rec = self._resolve_chat(params)
        action = p_str(params, "action", "") or ""
        if action not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        if rec["blocked"]:
            raise self._forbidden(rec)
        return True

    def _m_delete_message(self, params, ctx):
        """deleteMessage: forgets a stored message."""
        cid, rec = self._resolve_chat(params)
        mid = p_int(params, "message_id", 0)
        if mid not in rec["messages"]:
            raise ApiError(400, "Bad Request: message to delete not found")
        del rec["messages"][mid]
        return True

    # -- control API -------------------------------------------------------------

    def control(self, name, args):
        """Run control operation ``name`` with merged query/JSON ``args``;
        returns (HTTP status, JSON-able object)."""
        impl = getattr(self, "_c_" + name, None) if re.fullmatch(r"[a-z_]+", name) else None
        if impl is None:
            return 404, {"error": "unknown control endpoint %r" % name}
        try:
            if name in ("wait", "wait_deliveries"):
                return 200, impl(args)
            with self.cond:
                return 200, impl(args)
        except ControlError as e:
            return e.status, {"error": e.message}
        except Exception:
            with self.cond:
                self.stats["internal_errors"] += 1
            self.log("internal error in control %s:\n%s" % (name, traceback.format_exc()))
            return 500, {"error": "internal error in the fake, see its stderr"}

    @staticmethod
    def _arg_int(args, name, required=True, default=None):
        """An integer control argument (ControlError if malformed)."""
        v = args.get(name)
        if v is None or v == "":
            if required:
                raise ControlError(400, "%s is required" % name)
            return default
        if isinstance(v, bool):
            raise ControlError(400, "%s must be an integer" % name)
        if isinstance(v, int):
            return v
        if isinstance(v, str) and re.fullmatch(r"\s*-?\d+\s*", v):
            return int(v)
        raise ControlError(400, "%s must be an integer" % name)

    @staticmethod
    def _arg_str(args, name, default=None):
        """An optional string control argument (ControlError if not a string)."""
        v = args.get(name)
        if v is None:
            return default
        if not isinstance(v, str):
            raise ControlError(400, "%s must be a string" % name)
        return v

    @staticmethod
    def _arg_float(args, name, default):
        """A non-negative number control argument."""
        v = args.get(name)
        if v is None or v == "":
            return default
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ControlError(400, "%s must be a number" % name)
        if not math.isfinite(f) or f < 0:
            raise ControlError(400, "%s must be a non-negative number" % name)
        return f

    def _incoming(self, args, content):
        """Store a message from a user (or a channel post) built from control
        args plus ``content`` (text/photo/... fields) and queue its update."""
        chat_id = self._arg_int(args, "chat_id")
        chat_type = args.get("chat_type")
        if chat_type is not None and not isinstance(chat_type, str):
            raise ControlError(400, "chat_type must be a string")
        is_channel = chat_type == "channel" or (
            chat_type is None and chat_id in self.chats
            and self.chats[chat_id]["type"] == "channel")
        user = None
        if not is_channel:
            from_id = self._arg_int(args, "from_id")
            user = self._user(from_id, first_name=self._arg_str(args, "first_name"),
                              username=self._arg_str(args, "username"),
                              is_bot=bool(args.get("is_bot")),
                              last_name=self._arg_str(args, "last_name"),
                              language_code=self._arg_str(args, "language_code"))
        inferred = chat_type or (self.chats[chat_id]["type"] if chat_id in self.chats
                                 else "private" if chat_id > 0 else "group")
        rec = self._chat(chat_id, chat_type, user=user if inferred == "private" else None,
                         title=self._arg_str(args, "title"),
                         username=self._arg_str(args, "chat_username"))
        if rec["blocked"] and rec["type"] == "private":
            self._member_update(chat_id, False)  # writing to a bot unblocks it
        edited = bool(args.get("edited"))
        now = int(time.time())
        date = self._arg_int(args, "date", required=False, default=now)
        mid = self._arg_int(args, "message_id", required=False)
        original = None
        if edited:
            if mid is None:
                mine = [m for m in rec["messages"].values()
                        if not m.get("_by_bot") and (user is None or
                                                     m.get("from", {}).get("id") == user["id"])]
                if mine:
                    mid = max(m["message_id"] for m in mine)
            original = rec["messages"].get(mid) if mid is not None else None
        if mid is None or (not edited and mid in rec["messages"]):
            mid = self._new_message_id(rec)
        else:
            rec["next_message_id"] = max(rec["next_message_id"], mid + 1)
        msg = {"message_id": mid}
        if is_channel:
            msg["sender_chat"] = copy.deepcopy(rec["chat"])
        else:
            msg["from"] = copy.deepcopy(user)
        msg["chat"] = copy.deepcopy(rec["chat"])
        msg["date"] = original["date"] if original else date
        if edited:
            msg["edit_date"] = now
        reply_id = self._arg_int(args, "reply_to_message_id", required=False)
        if reply_id is not None:
            target = rec["messages"].get(reply_id)
            if target is None:
                raise ControlError(404, "reply_to_message_id %d not found in chat" % reply_id)
            msg["reply_to_message"] = {k: v for k, v in self._public(target).items()
                                       if k != "reply_to_message"}
        msg.update(content)
        rec["messages"][mid] = msg
        if is_channel:
            kind = "edited_channel_post" if edited else "channel_post"
        else:
            kind = "edited_message" if edited else "message"
        uid = self._queue(kind, msg)
        return {"update_id": uid, "message_id": mid, "chat_id": chat_id,
                "filtered": uid is None}

    def _c_message(self, args):
        """POST /control/message: a text message from a user or channel."""
        text = args.get("text")
        if not isinstance(text, str):
            raise ControlError(400, "text (a string) is required")
        content = {"text": text}
        if "entities" in args:
            if not isinstance(args["entities"], list):
                raise ControlError(400, "entities must be a list")
            if args["entities"]:
                content["entities"] = copy.deepcopy(args["entities"])
        else:
            found = detect_entities(text)
            if found:
                content["entities"] = sort_entities(found)
        return self._incoming(args, content)

    def _store_file(self, data, folder, ext, mime_type=None, declared_size=None):
        """Keep bytes downloadable under a fresh file_id and file_path."""
        fid = "AgACAgIAAxkBAA" + random_token(36)
        path = "%s/file_%d.%s" % (folder, len(self.files), ext)
        rec = {"file_unique_id": "AQAD" + random_token(9), "data": data,
               "file_size": declared_size if declared_size is not None else len(data),
               "file_path": path, "mime_type": mime_type}
        self.files[fid] = rec
        self.files_by_path[path] = rec
        return fid, rec

    def _file_bytes(self, args):
        """The decoded file_bytes_b64 argument."""
        b64 = args.get("file_bytes_b64")
        if not isinstance(b64, str):
            raise ControlError(400, "file_bytes_b64 (base64 text) is required")
        try:
            return base64.b64decode(b64, validate=True)
        except (ValueError, TypeError):
            raise ControlError(400, "file_bytes_b64 is not valid base64")

    def _caption(self, args, content):
        """Add caption and caption_entities to message content."""
        caption = args.get("caption")
        if caption is None:
            return
        if not isinstance(caption, str):
            raise ControlError(400, "caption must be a string")
        content["caption"] = caption
        found = detect_entities(caption)
        if found:
            content["caption_entities"] = sort_entities(found)

    def _c_photo(self, args):
        """POST /control/photo: a photo message with several PhotoSize entries."""
        data = self._file_bytes(args)
        declared = self._arg_int(args, "declared_size", required=False)
        w, h = image_size(data)
        ext = "png" if data[:4] == b"\x89PNG" else "jpg"
        sizes = []
        for side in (90, 320, 800):
            if side < max(w, h):
                scale = side / max(w, h)
                sizes.append((max(1, round(w * scale)), max(1, round(h * scale))))
        sizes.append((w, h))
        photo = []
        for sw, sh in sizes:
            fid, rec = self._store_file(data, "photos", ext, "image/" + (
                "png" if ext == "png" else "jpeg"), declared)
            photo.append({"file_id": fid, "file_unique_id": rec["file_unique_id"],
                          "file_size": rec["file_size"], "width": sw, "height": sh})
        content = {"photo": photo}
        self._caption(args, content)
        out = self._incoming(args, content)
        out["file_ids"] = [p["file_id"] for p in photo]
        out["file_id"] = photo[-1]["file_id"]
        return out

    def _c_document(self, args):
        """POST /control/document: a document message."""
        data = self._file_bytes(args)
        declared = self._arg_int(args, "declared_size", required=False)
        name = self._arg_str(args, "file_name") or "document.bin"
        mime = self._arg_str(args, "mime_type") or "application/octet-stream"
        ext = re.sub(r"[^A-Za-z0-9]", "", name.rsplit(".", 1)[-1]) if "." in name else "bin"
        fid, rec = self._store_file(data, "documents", ext or "bin", mime, declared)
        content = {"document": {"file_name": name, "mime_type": mime, "file_id": fid,
                                "file_unique_id": rec["file_unique_id"],
                                "file_size": rec["file_size"]}}
        self._caption(args, content)
        out = self._incoming(args, content)
        out["file_id"] = fid
        return out

    def _c_callback(self, args):
        """POST /control/callback: a user presses a button of a bot message."""
        chat_id = self._arg_int(args, "chat_id")
        from_id = self._arg_int(args, "from_id")
        message_id = self._arg_int(args, "message_id")
        rec = self.chats.get(chat_id)
        if rec is None:
            raise ControlError(404, "chat %d does not exist" % chat_id)
        msg = rec["messages"].get(message_id)
        if msg is None or not msg.get("_by_bot"):
            raise ControlError(404, "message %d is not a bot message in chat %d"
                               % (message_id, chat_id))
        data = args.get("data")
        if data is not None and not isinstance(data, str):
            raise ControlError(400, "data must be a string")
        user = self._user(from_id, first_name=self._arg_str(args, "first_name"),
                          username=self._arg_str(args, "username"))
        qid = str(random.randint(10 ** 17, 2 ** 63 - 1))
        query = {"id": qid, "from": copy.deepcopy(user)}
        if args.get("inaccessible"):
            query["message"] = {"chat": copy.deepcopy(rec["chat"]),
                                "message_id": message_id, "date": 0}
        else:
            query["message"] = self._public(msg)
        query["chat_instance"] = rec["chat_instance"]
        if data is not None:
            query["data"] = data
        self.callback_queries[qid] = {"query": query, "answered": None,
                                      "created": time.time()}
        uid = self._queue("callback_query", query)
        return {"update_id": uid, "callback_query_id": qid, "filtered": uid is None}

    def _c_update(self, args):
        """POST /control/update: queue any JSON value as an update."""
        if "update" not in args:
            raise ControlError(400, "update is required")
        upd = copy.deepcopy(args["update"])
        given = upd.get("update_id") if isinstance(upd, dict) else None
        if isinstance(given, int) and not isinstance(given, bool):
            uid = given
            self._next_update_id = max(self._next_update_id, given + 1)
        else:
            uid = self._next_update_id
            self._next_update_id += 1
            if isinstance(upd, dict) and "update_id" not in upd:
                upd = dict({"update_id": uid}, **upd)
        self.updates.append((uid, upd))
        self.stats["updates_queued"] += 1
        self.cond.notify_all()
        return {"update_id": uid}

    def _c_raw_updates(self, args):
        """POST /control/raw_updates: the next getUpdates answers these bytes."""
        status = self._arg_int(args, "status", required=False, default=200)
        if not 200 <= status <= 599:
            raise ControlError(400, "status must be an HTTP status from 200 to 599")
        ctype = self._arg_str(args, "content_type") or "application/json"
        if "body_b64" in args:
            try:
                body = base64.b64decode(args["body_b64"], validate=True)
            except (ValueError, TypeError):
                raise ControlError(400, "body_b64 is not valid base64")
        elif isinstance(args.get("body"), str):
            body = args["body"].encode("utf-8", "surrogateescape")
        else:
            raise ControlError(400, "body (a string) or body_b64 is required")
        self.raw_responses.append(Outcome(status, body, str(ctype)))
        self.cond.notify_all()
        return {"queued": len(self.raw_responses)}

    def _member_update(self, chat_id, blocked):
        """Block or unblock a chat and queue the my_chat_member update."""
        rec = self.chats.get(chat_id)
        if rec is None:
            raise ControlError(404, "chat %d does not exist" % chat_id)
        if rec["blocked"] == blocked:
            return {"update_id": None, "changed": False}
        rec["blocked"] = blocked
        actor = self.users.get(chat_id) if rec["type"] == "private" else None
        if actor is None:
            actor = next((m["from"] for m in reversed(list(rec["messages"].values()))
                          if "from" in m and not m.get("_by_bot")), None)
        if actor is None:
            actor = self._user(abs(chat_id))
        me = dict(self.bot_user)
        gone = {"user": me, "status": "kicked", "until_date": 0}
        if rec["type"] != "private" and not blocked:
            gone = {"user": me, "status": "left"}
        member = {"user": me, "status": "member"}
        if rec["type"] == "channel":
            member = {"user": me, "status": "administrator", "can_be_edited": False,
                      "is_anonymous": False, "can_post_messages": True}
        update = {"chat": copy.deepcopy(rec["chat"]), "from": copy.deepcopy(actor),
                  "date": int(time.time()),
                  "old_chat_member": member if blocked else gone,
                  "new_chat_member": gone if blocked else member}
        uid = self._queue("my_chat_member", update)
        return {"update_id": uid, "changed": True}

    def _c_block(self, args):
        """POST /control/block: the user blocks the bot."""
        return self._member_update(self._arg_int(args, "chat_id"), True)

    def _c_unblock(self, args):
        """POST /control/unblock: the user unblocks the bot."""
        return self._member_update(self._arg_int(args, "chat_id"), False)

    def _c_webhook(self, args):
        """POST /control/webhook: pretend that someone else set a webhook
        (nothing is delivered); an empty url removes it."""
        url = args.get("url") or ""
        if not isinstance(url, str):
            raise ControlError(400, "url must be a string")
        if url:
            self._install_webhook(url, parse_webhook_url(url), "",
                                  WEBHOOK_DEFAULT_CONNECTIONS, False, False, external=True)
        else:
            self._clear_webhook()
        return {"url": url}

    def _settings(self):
        """The switchable settings, as /control/config answers them."""
        return {"rate_limits": self.rate_limits, "html_strict": self.html_strict,
                "webhook_http": self.webhook_http, "webhook_timeout": self.webhook_timeout,
                "webhook_retry_min": self.webhook_retry_min,
                "webhook_retry_max": self.webhook_retry_max}

    def _c_config(self, args):
        """POST /control/config: switch rate limits, HTML strictness and the
        webhook settings (--webhook-http, --webhook-timeout, --webhook-retry-*)."""
        self._arg_bool(args, "webhook_http")   # refuse a malformed value before changing anything
        timing = {}
        for name in ("webhook_timeout", "webhook_retry_min", "webhook_retry_max"):
            if name in args:
                timing[name] = self._arg_float(args, name, getattr(self, name))
        if timing.get("webhook_timeout", 1.0) <= 0:
            raise ControlError(400, "webhook_timeout must be positive")
        if "rate_limits" in args:
            self.rate_limits = bool(args["rate_limits"])
        if "html_strict" in args:
            self.html_strict = bool(args["html_strict"])
        webhook_http = self._arg_bool(args, "webhook_http")
        if webhook_http is not None:
            self.webhook_http = webhook_http
        for name, value in timing.items():
            setattr(self, name, value)
        self.cond.notify_all()
        return self._settings()

    def _deliveries_since(self, since, update_id=None, ok=None):
        """Delivery attempts after seq since, optionally filtered."""
        out = []
        for d in reversed(self.deliveries):
            if d["seq"] <= since:
                break
            if update_id is not None and d["update_id"] != update_id:
                continue
            if ok is not None and d["ok"] != ok:
                continue
            out.append(d)
        out.reverse()
        return out

    @staticmethod
    def _arg_bool(args, name):
        """An optional boolean control argument: None, or true/false."""
        v = args.get(name)
        if v is None or v == "":
            return None
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "1", "false", "0"):
            return v.lower() in ("true", "1")
        raise ControlError(400, "%s must be true or false" % name)

    def _webhook_status(self):
        """The webhook as /control/deliveries and /control/state show it."""
        wh = self.webhook
        if wh is None:
            return None
        retry = wh["retry"]
        left = None
        if retry is not None and retry["failures"]:
            left = round(max(0.0, retry["next_at"] - time.monotonic()), 3)
        return {"url": wh["url"], "secret_token": wh["secret_token"] or None,
                "max_connections": wh["max_connections"], "delivering": wh["deliver"],
                "external": wh["external"], "in_flight": wh["in_flight"],
                "failures": retry["failures"] if retry else 0,
                "next_attempt_in": left,
                "last_error_date": wh["last_error_date"] or None,
                "last_error_message": wh["last_error_message"] or None}

    def _c_deliveries(self, args):
        """GET /control/deliveries: webhook delivery attempts after since."""
        since = self._arg_int(args, "since", required=False, default=0)
        found = self._deliveries_since(since, self._arg_int(args, "update_id", required=False),
                                       self._arg_bool(args, "ok"))
        return {"deliveries": copy.deepcopy(found), "last_seq": self._delivery_seq,
                "webhook": self._webhook_status(),
                "pending_update_ids": [u for u, _ in self.updates][:1000]}

    def _c_wait_deliveries(self, args):
        """GET /control/wait_deliveries: long-poll for count matching attempts."""
        since = self._arg_int(args, "since", required=False, default=0)
        update_id = self._arg_int(args, "update_id", required=False)
        want_ok = self._arg_bool(args, "ok")
        count = self._arg_int(args, "count", required=False, default=1)
        timeout = min(self._arg_float(args, "timeout", 10.0), CONTROL_WAIT_MAX)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = self._deliveries_since(since, update_id, want_ok)
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0 or self._stopping:
                    return {"deliveries": copy.deepcopy(found),
                            "timed_out": len(found) < count, "last_seq": self._delivery_seq,
                            "webhook": self._webhook_status(),
                            "pending_update_ids": [u for u, _ in self.updates][:1000]}
                self.cond.wait(left)

    def _calls_since(self, since, method=None, chat_id=None):
        """Logged calls after seq since, optionally filtered (scans from the
        newest end, so following the log stays cheap when it is long)."""
        out = []
        for c in reversed(self.calls):
            if c["seq"] <= since:
                break
            if method and c["method"].lower() != method.lower():
                continue
            if chat_id is not None and chat_id_of(c["params"]) != chat_id:
                continue
            out.append(c)
        out.reverse()
        return out

    def _c_sent(self, args):
        """GET /control/sent: the call log after since."""
        since = self._arg_int(args, "since", required=False, default=0)
        calls = self._calls_since(since, self._arg_str(args, "method") or None,
                                  self._arg_int(args, "chat_id", required=False))
        return {"calls": copy.deepcopy(calls), "last_seq": self._call_seq}

    def _c_wait(self, args):
        """GET /control/wait: long-poll for count matching calls."""
        since = self._arg_int(args, "since", required=False, default=0)
        method = self._arg_str(args, "method") or None
        chat_id = self._arg_int(args, "chat_id", required=False)
        count = self._arg_int(args, "count", required=False, default=1)
        timeout = min(self._arg_float(args, "timeout", 10.0), CONTROL_WAIT_MAX)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                calls = self._calls_since(since, method, chat_id)
                if len(calls) >= count:
                    return {"calls": copy.deepcopy(calls), "timed_out": False,
                            "last_seq": self._call_seq}
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    return {"calls": copy.deepcopy(calls), "timed_out": True,
                            "last_seq": self._call_seq}
                self.cond.wait(left)

    def _c_fault(self, args):
        """POST /control/fault: inject a fault."""
        kind = str(args.get("kind", ""))
        if kind not in FAULT_KINDS and not re.fullmatch(r"[45]\d\d", kind):
            raise ControlError(400, "kind must be one of %s or an HTTP error code"
                               % ", ".join(FAULT_KINDS))
        method = args.get("method") or "*"
        if not isinstance(method, str):
            raise ControlError(400, "method must be a string")
        count = self._arg_int(args, "count", required=False)
        duration = args.get("duration")
        if count is None and duration in (None, ""):
            count = 1
        fault = {
            "id": len(self.faults) + 1,
            "method": method.lower(),
            "kind": kind,
            "retry_after": max(1, self._arg_int(args, "retry_after", required=False, default=1)),
            "count": count,
            "until": (time.monotonic() + self._arg_float(args, "duration", 0.0)
                      if duration not in (None, "") else None),
            "delay": self._arg_float(args, "delay", 2.0 if kind == "slow" else 10.0),
            "description": self._arg_str(args, "description"),
            "chat_id": self._arg_int(args, "chat_id", required=False),
        }
        self.faults.append(fault)
        return {"fault": self._describe_fault(fault), "pending": len(self.faults)}

    @staticmethod
    def _describe_fault(f):
        """A fault as shown in answers and stats."""
        d = {k: v for k, v in f.items() if k != "until"}
        d["seconds_left"] = (round(f["until"] - time.monotonic(), 3)
                             if f["until"] is not None else None)
        return d

    def _c_clear_faults(self, args):
        """POST /control/clear_faults: remove faults, end fault delays."""
        n = len(self.faults)
        self.faults = []
        self._delay_gen += 1
        self.cond.notify_all()
        return {"cleared": n}

    def _c_stats(self, args):
        """GET /control/stats: counters and current settings."""
        st = copy.deepcopy(self.stats)
        st["pending_updates"] = len(self.updates)
        st["pending_update_ids"] = [u for u, _ in self.updates][:1000]
        st["concurrent_getupdates"] = len(self._polls)
        st["allowed_updates"] = (sorted(self.allowed_updates)
                                 if self.allowed_updates is not None else None)
        st["webhook_url"] = self.webhook_url
        st["webhook_deliveries_last_seq"] = self._delivery_seq
        st["faults_pending"] = [self._describe_fault(f) for f in self.faults]
        st["last_seq"] = self._call_seq
        st["next_update_id"] = self._next_update_id
        now = time.monotonic()
        st["open_429_windows"] = {"%s:%s" % k: round(v - now, 3)
                                  for k, v in self.windows.items() if v > now}
        return st

    def _c_state(self, args):
        """GET /control/state: chats, messages, users, commands, queries."""
        chats = {}
        for cid, rec in self.chats.items():
            chats[str(cid)] = {
                "chat": copy.deepcopy(rec["chat"]),
                "blocked": rec["blocked"],
                "messages": [dict(self._public(m), by_bot=bool(m.get("_by_bot")))
                             for _, m in sorted(rec["messages"].items())],
            }
        return {
            "bot": dict(self.bot_user),
            "chats": chats,
            "users": copy.deepcopy(self.users),
            "commands": [{"scope": json.loads(s), "language_code": l, "commands": c}
                         for (s, l), c in self.commands.items()],
            "callback_queries": {k: {"answered": v["answered"], "data": v["query"].get("data")}
                                 for k, v in self.callback_queries.items()},
            "webhook_url": self.webhook_url,
            "webhook": self._webhook_status(),
            "rate_limits": self.rate_limits,
            "html_strict": self.html_strict,
            "settings": self._settings(),
        }

    def _c_reset(self, args):
        """POST /control/reset: forget everything but the id counters."""
        self._reset_state()
        self.cond.notify_all()
        return {"reset": True, "next_update_id": self._next_update_id,
                "last_seq": self._call_seq}

    def _c_health(self, args):
        """GET /control/health."""
        return {"ok": True, "bot": dict(self.bot_user)}


# ---------------------------------------------------------------------------
# HTTP layer
# ---------------------------------------------------------------------------

def _peer_alive(sock):
    """False once the client closed its side of the connection."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return True
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return bool(data)
    except (BlockingIOError, InterruptedError):
        return True
    except (OSError, ValueError):
        return False


class WebhookConnection:
    """The fake's connection to the webhook (loopback addresses only).

    Kept open between deliveries, like Telegram's keep-alive connections,
    and replaced when the webhook closed it or answered "Connection: close".
    ``post`` sends one update and describes what happened; it never raises
    for network trouble."""

    def __init__(self):
        self.conn = None
        self.key = None

    def close(self):
        """Drop the connection."""
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.conn = None
        self.key = None

    @staticmethod
    def _connect(target, timeout):
        """A new HTTPConnection to the webhook's loopback address."""
        first_error = None
        for addr in LOOPBACK_HOSTS.get(target["host"], ()):
            sock = None
            try:
                family = socket.AF_INET6 if ":" in addr else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                sock.connect((addr, target["port"]))
            except OSError as e:   # localhost: try ::1 too, report 127.0.0.1's error
                if sock is not None:
                    sock.close()
                first_error = first_error or e
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if target["scheme"] == "https":
                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE   # test certificates are self-signed
                    sock = ctx.wrap_socket(sock, server_hostname=(
                        None if target["host"] in ("127.0.0.1", "::1") else target["host"]))
            except OSError:
                sock.close()
                raise
            conn = http.client.HTTPConnection(target["host_header"], target["port"],
                                              timeout=timeout)
            conn.sock = sock
            return conn
        raise first_error or OSError("no loopback address for %s" % target["host"])

    def post(self, job):
        """POST job's body; returns a result dict (ok, status, reason, error,
        retry_after, headers, bodies, connection new/reused)."""
        target = job["target"]
        timeout = job["timeout"]
        key = (target["scheme"], target["host"], target["port"])
        result = {"started": time.time(), "ok": False, "status": None, "reason": None,
                  "error": None, "retry_after": None, "connection": None,
                  "request_headers": None, "response_headers": None,
                  "response_body": None, "raw_body": None, "content_type": None}
        if self.conn is not None and (self.key != key or self.conn.sock is None
                                      or not _peer_alive(self.conn.sock)):
            self.close()
        phase = "connect"
        try:
            if self.conn is None:
                result["connection"] = "new"
                self.conn = self._connect(target, timeout)
                self.key = key
            else:
                result["connection"] = "reused"
                self.conn.sock.settimeout(timeout)
            phase = "send"
            headers = [("Host", target["host_header"])]
            if target["userinfo"]:
                headers.append(("Authorization", "Basic " + base64.b64encode(
                    urllib.parse.unquote(target["userinfo"]).encode("utf-8")).decode("ascii")))
            if job["secret_token"]:
                headers.append(("X-Telegram-Bot-Api-Secret-Token", job["secret_token"]))
            headers += [("Content-Type", "application/json"),
                        ("Content-Length", str(len(job["body"]))),
                        ("Connection", "keep-alive"),
                        ("Accept-Encoding", "gzip, deflate")]
            result["request_headers"] = dict(headers)
            c = self.conn
            c.putrequest("POST", target["target"], skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                c.putheader(name, value)
            c.endheaders(job["body"])
            phase = "read"
            resp = c.getresponse()
            raw = resp.read()
            result["status"] = resp.status
            result["reason"] = resp.reason
            result["response_headers"] = dict(resp.getheaders())
            result["content_type"] = resp.getheader("Content-Type")
            encoding = (resp.getheader("Content-Encoding") or "").strip().lower()
            if encoding in ("gzip", "deflate") and raw:
                try:
                    raw = zlib.decompress(raw, 47)   # gzip or zlib header
                except zlib.error:
                    try:
                        raw = zlib.decompress(raw, -15)   # raw deflate
                    except zlib.error:
                        pass
            result["raw_body"] = raw[:WEBHOOK_RESPONSE_MAX]
            result["response_body"] = raw[:2000].decode("utf-8", "replace")
            if resp.will_close:
                self.close()
            if 200 <= resp.status <= 299:
                result["ok"] = True
            else:
                result["error"] = "Wrong response from the webhook: %d %s" % (
                    resp.status, resp.reason)
                ra = (resp.getheader("Retry-After") or "").strip()
                if ra.isdigit():
                    result["retry_after"] = min(int(ra), WEBHOOK_RETRY_AFTER_MAX)
        except (socket.timeout, TimeoutError):
            result["error"] = ("Connection timed out" if phase == "connect"
                               else "Read timeout expired")
            self.close()
        except ConnectionRefusedError:
            result["error"] = "Connection refused"
            self.close()
        except http.client.RemoteDisconnected:
            result["error"] = "Webhook connection closed"
            self.close()
        except (ConnectionResetError, BrokenPipeError):
            result["error"] = "Connection reset by peer"
            self.close()
        except http.client.HTTPException as e:
            result["error"] = "Wrong response from the webhook: %s" % (
                type(e).__name__ if not str(e) else str(e)[:200])
            self.close()
        except ssl.SSLError as e:
            result["error"] = "SSL error {%s}" % (e.reason or e)
            self.close()
        except OSError as e:
            result["error"] = e.strerror or str(e) or type(e).__name__
            self.close()
        return result


class BodyError(Exception):
    """The request body could not be read; answer ``status`` and close."""

    def __init__(self, status, description):
        super().__init__(description)
        self.status = status
        self.description = description


def parse_params(query, body, content_type):
    """Bot API parameters from query string and body; (params, error text)."""
    params = {}
    for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True,
                                       encoding="utf-8", errors="surrogateescape"):
        params[k] = v
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if body:
        if ctype == "application/json":
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                return params, "Bad Request: strings must be encoded in UTF-8"
            try:
                obj = json.loads(text, parse_constant=_reject_constant)
            except (ValueError, RecursionError):
                return params, "Bad Request: can't parse JSON object"
            if not isinstance(obj, dict) or not json_depth_ok(obj):
                return params, "Bad Request: can't parse JSON object"
            params.update(obj)
        elif ctype == "application/x-www-form-urlencoded":
            text = body.decode("utf-8", "surrogateescape")
            for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True,
                                               encoding="utf-8", errors="surrogateescape"):
                params[k] = v
        elif ctype == "multipart/form-data":
            try:
                params.update(_parse_multipart(body, content_type))
            except Exception:
                return params, "Bad Request: can't parse multipart/form-data request"
    if has_surrogates(params):
        return params, "Bad Request: strings must be encoded in UTF-8"
    return params, None


def _reject_constant(name):
    """json.loads hook refusing NaN and Infinity."""
    raise ValueError("JSON constant %s" % name)


def _parse_multipart(body, content_type):
    """Fields of a multipart/form-data body; file parts become UploadedFile."""
    head = ("Content-Type: %s\r\nMIME-Version: 1.0\r\n\r\n" % content_type).encode(
        "latin-1", "replace")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise ValueError("not multipart")
    out = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            out[name] = UploadedFile(filename, payload)
        else:
            out[name] = payload.decode("utf-8", "surrogateescape")
    return out


class Handler(BaseHTTPRequestHandler):
    """One thread per connection; parses HTTP and defers to FakeTelegram."""

    protocol_version = "HTTP/1.1"
    server_version = "nginx/1.18.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this

    def setup(self):
        """Per-connection set-up: no Nagle delay between headers and body."""
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def version_string(self):
        """The Server header, like Telegram's front end."""
        return self.server_version

    def log_message(self, fmt, *args):
        """Request log on stderr with --verbose only."""
        if self.server.verbose:
            sys.stderr.write("fake_telegram: %s - %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        """Bot API calls, downloads and control requests."""
        self._dispatch()

    def do_POST(self):
        """Bot API calls and control requests."""
        self._dispatch()

    def _read_body(self):
        """The request body, bounded by MAX_BODY (chunked or Content-Length)."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            body = bytearray()
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise BodyError(400, "Bad Request: truncated chunked body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BodyError(400, "Bad Request: invalid chunked body")
                if size < 0 or len(body) + size > MAX_BODY:
                    raise BodyError(413, "Request Entity Too Large")
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(8192)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    return bytes(body)
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise BodyError(400, "Bad Request: truncated chunked body")
                body += chunk
                self.rfile.readline(8)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise BodyError(400, "Bad Request: invalid Content-Length")
        if n < 0:
            raise BodyError(400, "Bad Request: invalid Content-Length")
        if n > MAX_BODY:
            if n <= 4 * MAX_BODY:  # read and discard it so that the client sees the 413
                left = n
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 16))
                    if not chunk:
                        break
                    left -= len(chunk)
            raise BodyError(413, "Request Entity Too Large")
        data = self.rfile.read(n)
        if len(data) != n:
            raise BodyError(400, "Bad Request: truncated body")
        return data

    def _send(self, status, body, content_type="application/json"):
        """Write one complete response."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _drop(self):
        """Close the connection without answering."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _deliver(self, outcome):
        """Carry out an Outcome: wait, then answer or drop."""
        core = self.server.core
        if outcome.delay > 0:
            core.sleep(outcome.delay)
        if outcome.drop:
            self._drop()
        else:
            self._send(outcome.status, outcome.body, outcome.content_type)

    def _dispatch(self):
        """Route a request by path; never lets an exception escape."""
        core = self.server.core
        try:
            url = urllib.parse.urlsplit(self.path)
            path = url.path
            try:
                body = self._read_body()
            except BodyError as e:
                self.close_connection = True
                env = {"ok": False, "error_code": e.status, "description": e.description}
                self._send(e.status, dumps(env))
                return
            if path.startswith("/control/"):
                self._control(path[len("/control/"):], url.query, body)
            elif path.startswith("/file/bot"):
                token, _, file_path = path[len("/file/bot"):].partition("/")
                token = urllib.parse.unquote(token)
                file_path = urllib.parse.unquote(file_path)
                self._deliver(core.download(token, file_path,
                                            lambda: _peer_alive(self.connection)))
            elif path.startswith("/bot"):
                token, _, method = path[len("/bot"):].partition("/")
                token = urllib.parse.unquote(token)
                method = method.rstrip("/")
                if "/" in method or not method:
                    self._send(404, dumps({"ok": False, "error_code": 404,
                                           "description": "Not Found"}))
                    return
                params, err = parse_params(url.query, body, self.headers.get("Content-Type"))
                self._deliver(core.bot_call(token, method, params, err,
                                            lambda: _peer_alive(self.connection)))
            else:
                self._send(404, dumps({"ok": False, "error_code": 404,
                                       "description": "Not Found"}))
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                socket.timeout):
            self.close_connection = True
        except Exception:
            self.close_connection = True
            with core.cond:
                core.stats["internal_errors"] += 1
            core.log("internal error:\n%s" % traceback.format_exc())
            try:
                self._send(500, dumps({"ok": False, "error_code": 500,
                                       "description": "Internal Server Error"}))
            except OSError:
                pass

    def _control(self, name, query, body):
        """Parse control arguments and answer with the operation's JSON."""
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
                self._send(400, dumps({"error": "control body must be a JSON object "
                                                "nested at most %d deep" % JSON_MAX_DEPTH}))
                return
            args.update(obj)
        status, obj = self.server.core.control(name.strip("/"), args)
        self._send(status, dumps(obj))


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
        """Log errors outside a handler instead of printing to stdout."""
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
    ap = argparse.ArgumentParser(description="Fake Telegram Bot API server for tests.")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free)")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--token", required=True, help="the only bot token accepted")
    ap.add_argument("--bot-username", default="rivet_test_bot")
    ap.add_argument("--rate-limits", choices=("on", "off"), default="off",
                    help="enforce Telegram's message rate limits with 429 answers")
    ap.add_argument("--html-strict", choices=("on", "off"), default="on",
                    help="refuse unescaped & and > in HTML text (Telegram tolerates them)")
    ap.add_argument("--first-update-id", type=int, default=500000001)
    ap.add_argument("--webhook-http", choices=("on", "off"), default="off",
                    help="let setWebhook accept http:// (and any port) for 127.0.0.1, ::1 "
                         "and localhost, and deliver updates there")
    ap.add_argument("--webhook-timeout", type=float, default=10.0, metavar="SECONDS",
                    help="how long a webhook delivery may take to connect and to answer")
    ap.add_argument("--webhook-retry-min", type=float, default=0.5, metavar="SECONDS",
                    help="delay before the first retry of a failed delivery (then doubling)")
    ap.add_argument("--webhook-retry-max", type=float, default=4.0, metavar="SECONDS",
                    help="longest delay between retries of a failed delivery")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)
    if not (args.webhook_timeout > 0 and args.webhook_retry_min >= 0
            and args.webhook_retry_max >= 0):
        ap.error("--webhook-timeout must be positive, --webhook-retry-* not negative")

    def log(msg):
        sys.stderr.write("fake_telegram: %s\n" % msg)
        sys.stderr.flush()

    core = FakeTelegram(args.token, args.bot_username, args.rate_limits == "on",
                        args.html_strict == "on", args.first_update_id, log,
                        webhook_http=args.webhook_http == "on",
                        webhook_timeout=args.webhook_timeout,
                        webhook_retry_min=args.webhook_retry_min,
                        webhook_retry_max=args.webhook_retry_max)
    try:
        server = FakeServer(args.port, core, args.verbose)
    except OSError as e:
        log("cannot listen on 127.0.0.1:%d: %s" % (args.port, e))
        return 1
    port = server.server_address[1]
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="fake-telegram-accept", daemon=True)
    thread.start()
    if args.port_file:
        write_port_file(args.port_file, port)
    log("listening on 127.0.0.1:%d" % port)
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
