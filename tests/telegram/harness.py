"""Shared harness of Rivet's Telegram end-to-end tests.

Each test file in this folder is a TAP program: it creates a fresh database
on the cluster named by RIVET_TEST_PG_URL, starts the fake Bot API
(tests/fake_telegram/fake_telegram.py) on a free port, runs one or more
`rivet serve` processes against both, drives them through the fake's
control API and checks what the bot sent, the database and the logs.

    python3 tests/telegram/test_commands.py build/rivet

The rivet binary comes from argv[1] or RIVET_BIN. Without
RIVET_TEST_PG_URL the file prints "1..0 # SKIP ..." and exits 0 (meson 1.0
counts exit status 77 of a TAP test as an error).

Synchronisation is always a bounded poll: wait_until() re-checks a
condition until a deadline, and waits on the fake's /control/wait (which
returns as soon as a new call arrives) or a short nap between checks.
Nothing sleeps to let something happen.

Only the Python standard library is used. Processes are started from the
main thread only: they get PR_SET_PDEATHSIG, so a harness that dies takes
its rivet and fake processes with it.
"""

import ctypes
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "..", "fake_telegram", "fake_telegram.py")

# Distinctive, so that a leak into a log is unmistakable (and so that each
# half can be looked for separately).
TOKEN_ID = "7301234567"
TOKEN_SECRET = "AAE-rivetTOKENmustNEVERbeLOGGED_x9Qw7Zk"
TOKEN = TOKEN_ID + ":" + TOKEN_SECRET
BOT_USERNAME = "rivet_test_bot"

# A year-agnostic work order / equipment number.
WO_RE = re.compile(r"WO-\d{4}-\d{6,}")
EQ_RE = re.compile(r"EQ-\d{4}-\d{6,}")

NOT_REGISTERED = "Rivet doesn't know you yet"


class Fail(AssertionError):
    """A failed check; its message is printed as TAP diagnostics."""


def check(cond, msg, *details):
    """Fails the current test point with msg (and details) unless cond."""
    if not cond:
        raise Fail("\n".join([msg] + [str(d) for d in details]))


def eq(actual, expected, what):
    check(actual == expected, "%s: expected %r, got %r" % (what, expected, actual))


def nap(seconds):
    """A short pause between two checks of a polled condition (never used
    to let something happen: callers always re-check with a deadline)."""
    time.sleep(seconds)


def wait_until(cond, timeout, what, interval=0.1):
    """Calls cond() until it returns a true value, for at most timeout
    seconds; returns that value or fails with what."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Fail("timed out after %.1f s waiting for %s" % (timeout, what))
        nap(interval)


def _pdeathsig():
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# ---------------------------------------------------------------------------
# TAP
# ---------------------------------------------------------------------------

class Tap:
    """Runs named test points in order and prints TAP for them."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        self.diag_hooks = []  # callables returning extra text for a failure

    @staticmethod
    def diag(text):
        for line in str(text).splitlines() or [""]:
            sys.stdout.write("# %s\n" % line)
        sys.stdout.flush()

    def point(self, name, ok, diag=None):
        self.n += 1
        if not ok:
            self.failed += 1
        sys.stdout.write("%s %d - %s\n" % ("ok" if ok else "not ok", self.n, name))
        if diag:
            self.diag(diag)
        sys.stdout.flush()

    def run(self, name, fn, *args):
        started = time.monotonic()
        try:
            fn(*args)
        except Fail as e:
            self.point(name, False, "%s\n(after %.1f s)" % (e, time.monotonic() - started))
            self._hooks()
            return False
        except Exception:
            self.point(name, False, traceback.format_exc())
            self._hooks()
            return False
        self.point(name, True)
        self.diag("%s: %.1f s" % (name, time.monotonic() - started))
        return True

    def _hooks(self):
        for hook in self.diag_hooks:
            try:
                text = hook()
            except Exception as e:  # diagnostics must never hide the failure
                text = "(diagnostics failed: %s)" % e
            if text:
                self.diag(text)


def main(name, tests, setup=None):
    """The body of every test file: tests is a list of (title, function);
    each function gets the Env. setup(env), when given, runs first; if it
    fails every point fails with its reason."""
    rivet_bin = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RIVET_BIN", "")
    pg_url = os.environ.get("RIVET_TEST_PG_URL", "")
    if not pg_url:
        print("1..0 # SKIP RIVET_TEST_PG_URL not set")
        return 0
    if not rivet_bin or not os.access(rivet_bin, os.X_OK):
        print("1..0 # SKIP no rivet binary (give its path as argv[1] or RIVET_BIN)")
        return 0
    if not shutil.which("psql"):
        print("1..0 # SKIP psql not found")
        return 0

    def on_term(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_term)
    tap = Tap()
    print("1..%d" % len(tests))
    sys.stdout.flush()
    started = time.monotonic()
    env = Env(name, os.path.abspath(rivet_bin), pg_url, tap)
    try:
        setup_error = None
        try:
            env.create_db()
            if setup:
                setup(env)
        except Exception as e:
            setup_error = "setup failed: %s" % (
                e if isinstance(e, Fail) else traceback.format_exc())
        for title, fn in tests:
            if setup_error:
                tap.point(title, False, setup_error)
                continue
            tap.run(title, fn, env)
    except KeyboardInterrupt as e:
        tap.diag("interrupted: %s" % e)
        tap._hooks()
        tap.failed += 1
    finally:
        # A sanitizer report anywhere fails the file, even one printed after
        # its check_no_crash point (the exit status is then non-zero).
        try:
            for path, text in sanitizer_reports(env):
                tap.diag("sanitizer report in %s:\n%s" % (path, text))
                tap.failed += 1
        except OSError as e:
            tap.diag("could not read the rivet logs: %s" % e)
        env.close(keep=tap.failed > 0)
    tap.diag("%s: %d of %d failed, %.1f s" % (name, tap.failed, len(tests),
                                             time.monotonic() - started))
    return 0 if tap.failed == 0 else 1


# ---------------------------------------------------------------------------
# The fixture: database, fake, rivet processes
# ---------------------------------------------------------------------------

class Env:
    def __init__(self, name, rivet_bin, pg_url, tap):
        self.name = name
        self.rivet_bin = rivet_bin
        self.pg_url = pg_url
        self.tap = tap
        self.tmp = tempfile.mkdtemp(prefix="rivet-tg-%s-" % name)
        self.db_name = "tg_%s_%d" % (re.sub(r"\W", "_", name), os.getpid())
        self.db_url = re.sub(r"/[^/?]*(\?|$)", "/" + self.db_name + r"\1",
                             pg_url.split("://", 1)[1], count=1)
        self.db_url = pg_url.split("://", 1)[0] + "://" + self.db_url
        self.db_created = False
        self.fake = None
        self.rivets = []
        tap.diag_hooks.append(self.failure_logs)

    # -- database ------------------------------------------------------------

    def _psql(self, url, query, timeout=60):
        p = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "\t",
             "-d", url, "-c", query],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
            env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
        if p.returncode != 0:
            raise Fail("psql failed (%d) on %r: %s" % (p.returncode, query[:200],
                                                      p.stderr.decode(errors="replace")))
        return p.stdout.decode("utf-8", "replace")

    def create_db(self):
        self._psql(self.pg_url, 'CREATE DATABASE "%s"' % self.db_name)
        self.db_created = True

    def drop_db(self):
        if self.db_created:
            try:
                self._psql(self.pg_url, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.db_name)
                self.db_created = False
            except Exception as e:
                sys.stderr.write("could not drop %s: %s\n" % (self.db_name, e))

    def sql(self, query):
        """Rows of a query on the test database, as lists of strings."""
        out = self._psql(self.db_url, query)
        return [line.split("\t") for line in out.splitlines() if line != ""]

    def sql_value(self, query):
        rows = self.sql(query)
        return rows[0][0] if rows else None

    # -- the rivet CLI -------------------------------------------------------

    def cli(self, *args, timeout=60):
        """Runs `rivet ARGS` on the test database; returns stdout (fails on a
        non-zero exit)."""
        env = self.base_env()
        env["RIVET_LOG_LEVEL"] = "warn"
        p = subprocess.run([self.rivet_bin] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=timeout)
        if p.returncode != 0:
            raise Fail("rivet %s exited %d: %s" % (" ".join(args), p.returncode,
                                                   p.stderr.decode(errors="replace")))
        return p.stdout.decode("utf-8", "replace")

    def console(self, lines, factory):
        """Pipes lines into `rivet chat --factory FACTORY` (its admin)."""
        env = self.base_env()
        env["RIVET_LOG_LEVEL"] = "warn"
        p = subprocess.run([self.rivet_bin, "chat", "--factory", factory],
                           input="".join(l + "\n" for l in lines).encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)
        if p.returncode != 0:
            raise Fail("rivet chat exited %d: %s" % (p.returncode, p.stderr.decode(errors="replace")))
        return p.stdout.decode("utf-8", "replace")

    def factory(self, name):
        """Creates a factory; returns its slug."""
        out = self.cli("factory", "create", name)
        m = re.search(r"slug ([\w-]+)", out)
        check(m, "no slug in %r" % out)
        return m.group(1)

    def invite(self, factory, role="technician", uses=1):
        return self.cli("invite", "create", "--factory", factory, "--role", role,
                        "--uses", str(uses), "--quiet").strip()

    # -- processes -------------------------------------------------------------

    def base_env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TELEGRAM_", "RIVET_", "DATABASE_", "LLM_", "WHATSAPP_",
                                    "HTTP_"))}
        env["DATABASE_URL"] = self.db_url
        env["LC_ALL"] = "C.UTF-8"
        return env

    def start_fake(self, *extra):
        check(self.fake is None, "a fake is already running")
        self.fake = Fake(self, list(extra))
        return self.fake

    def rivet(self, label="A", **settings):
        """A `rivet serve` process (not started yet) for the fake."""
        r = Rivet(self, label, settings)
        self.rivets.append(r)
        return r

    def logs(self):
        """Every rivet log file written so far: [(path, text)]."""
        out = []
        for r in self.rivets:
            for path in r.log_paths:
                with open(path, "rb") as f:
                    out.append((path, f.read().decode("utf-8", "replace")))
        return out

    def failure_logs(self):
        parts = []
        for r in self.rivets:
            if r.log_paths:
                parts.append("--- tail of %s (%s) ---\n%s" % (
                    os.path.basename(r.log_paths[-1]),
                    "running" if r.alive() else "exited %s" % r.returncode(),
                    r.tail(25)))
        if self.fake:
            t = self.fake.log_tail(10)
            if t.strip():
                parts.append("--- tail of the fake's stderr ---\n" + t)
        return "\n".join(parts)

    def close(self, keep=False):
        for r in self.rivets:
            r.kill()
        if self.fake:
            self.fake.stop()
        self.drop_db()
        if keep:
            sys.stdout.write("# logs kept in %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


class Fake:
    """A running fake Bot API and its control API."""

    def __init__(self, env, extra):
        self.env = env
        port_file = os.path.join(env.tmp, "fake.port")
        self.stderr_path = os.path.join(env.tmp, "fake.stderr")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE, "--port", "0", "--port-file", port_file,
             "--token", TOKEN, "--bot-username", BOT_USERNAME] + extra,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
            preexec_fn=_pdeathsig)

        def ready():
            if self.proc.poll() is not None:
                raise Fail("the fake exited %s: %s" % (self.proc.returncode, self.log_tail(20)))
            return os.path.exists(port_file)

        wait_until(ready, 20, "the fake's port file", interval=0.05)
        with open(port_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port

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
        self.stderr.close()

    # -- control API ---------------------------------------------------------

    def ctl(self, name, http_timeout=None, **args):
        """POSTs args as JSON to /control/NAME; returns the answer."""
        if http_timeout is None:
            http_timeout = 30 + float(args.get("timeout") or 0)
        data = json.dumps(args).encode()
        req = urllib.request.Request(self.url + "/control/" + name, data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=http_timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise Fail("control %s %r: HTTP %d %s" % (name, args, e.code,
                                                      e.read().decode(errors="replace")))

    def message(self, chat_id, text, from_id=None, **kw):
        """A text message from a user (from_id defaults to chat_id)."""
        return self.ctl("message", chat_id=chat_id, from_id=from_id or chat_id, text=text, **kw)

    def press(self, chat_id, message_id, data, from_id=None, **kw):
        """A button press on the bot's message; returns the callback id."""
        return self.ctl("callback", chat_id=chat_id, message_id=message_id, data=data,
                        from_id=from_id or chat_id, **kw)["callback_query_id"]

    def update(self, update):
        return self.ctl("update", update=update)

    def fault(self, **kw):
        return self.ctl("fault", **kw)

    def clear_faults(self):
        return self.ctl("clear_faults")

    def stats(self):
        return self.ctl("stats")

    def state(self):
        return self.ctl("state")

    def last_seq(self):
        return self.stats()["last_seq"]

    def calls(self, method=None, chat_id=None, since=0):
        args = {"since": since}
        if method:
            args["method"] = method
        if chat_id is not None:
            args["chat_id"] = chat_id
        return self.ctl("sent", **args)["calls"]

    def block_for_calls(self, since, timeout):
        """Returns once the fake has logged any call after seq since, or
        after timeout seconds (a bounded wait, used between two checks)."""
        self.ctl("wait", since=since, count=1, timeout=max(0.05, timeout))

    def wait_calls(self, pred, count, timeout, what, since=0, method=None, chat_id=None):
        """Waits until at least count calls (after seq since, of method and
        chat_id when given) satisfy pred; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            all_calls = self.calls(method, chat_id, since)
            good = [c for c in all_calls if pred(c)]
            if len(good) >= count:
                return good
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("timed out after %.1f s waiting for %s (%d of %d seen)%s" % (
                    timeout, what, len(good), count,
                    "".join("\n  seen: %s" % describe(c) for c in good[-5:])))
            last = all_calls[-1]["seq"] if all_calls else since
            self.ctl("wait", since=last, method=method or "", count=1,
                     timeout=min(left, 1.0), **({"chat_id": chat_id} if chat_id else {}))

    def replies(self, chat_id, count, since=0, timeout=20, contains=None):
        """Waits for count delivered messages (sendMessage or
        editMessageText answered ok) in chat_id after since; returns them."""
        def pred(c):
            return (c["ok"] and c["method"] in ("sendMessage", "editMessageText")
                    and (contains is None or contains in text_of(c)))
        return self.wait_calls(pred, count, timeout,
                               "%d repl%s in chat %s%s" % (count, "y" if count == 1 else "ies",
                                                           chat_id,
                                                           " with %r" % contains if contains else ""),
                               since=since, chat_id=chat_id)

    def ask(self, chat_id, text, from_id=None, timeout=20, **kw):
        """Sends text and returns the bot's first delivered reply to it."""
        since = self.last_seq()
        self.message(chat_id, text, from_id, **kw)
        return self.replies(chat_id, 1, since=since, timeout=timeout)[0]


def text_of(call):
    """What the user sees: the text Telegram stored (entities parsed), or
    the text that was sent when the call failed."""
    if call.get("ok") and isinstance(call.get("result"), dict) and "text" in call["result"]:
        return call["result"]["text"]
    return str(call["params"].get("text", ""))


def buttons_of(call):
    """[(text, callback_data)] of an inline keyboard in a call's params."""
    markup = call["params"].get("reply_markup")
    if isinstance(markup, str):
        markup = json.loads(markup)
    out = []
    for row in (markup or {}).get("inline_keyboard", []):
        for b in row:
            out.append((b.get("text"), b.get("callback_data")))
    return out


def describe(call):
    return "#%s %s chat=%s ok=%s %s %r" % (
        call["seq"], call["method"], call["params"].get("chat_id"), call["ok"],
        call.get("error_code") or "", text_of(call)[:80])


class Rivet:
    """One `rivet serve` process, restartable; each start logs to a new file."""

    DEFAULTS = {
        "TELEGRAM_POLL_TIMEOUT_S": "2",
        "RIVET_WORKERS": "2",
        "TELEGRAM_SENDERS": "2",
        "TELEGRAM_CHAT_INTERVAL_MS": "0",
        "TELEGRAM_GROUP_PER_MINUTE": "6000",
        "TELEGRAM_GLOBAL_PER_SECOND": "1000",
        "TELEGRAM_FLUSH_S": "5",
        "RIVET_LOG_LEVEL": "info",
        # Every process picks a free port; http_port() reads which.
        "HTTP_LISTEN": "127.0.0.1:0",
    }

    def __init__(self, env, label, settings):
        self.env = env
        self.label = label
        self.settings = dict(self.DEFAULTS)
        self.settings.update({k: str(v) for k, v in settings.items()})
        self.proc = None
        self.log_paths = []
        self.starts = 0

    def environ(self):
        e = self.env.base_env()
        if self.env.fake:
            e["TELEGRAM_BOT_TOKEN"] = TOKEN
            e["TELEGRAM_API_URL"] = self.env.fake.url
        e.update(self.settings)
        # A setting given as None is left out (e.g. TELEGRAM_BOT_TOKEN=None).
        return {k: v for k, v in e.items() if v != "None"}

    def start(self, wait=True, timeout=30):
        check(self.proc is None or self.proc.poll() is not None,
              "rivet %s is already running" % self.label)
        self.starts += 1
        path = os.path.join(self.env.tmp, "rivet-%s-%d.log" % (self.label, self.starts))
        self.log_paths.append(path)
        with open(path, "wb") as log:
            self.proc = subprocess.Popen([self.env.rivet_bin, "serve"], env=self.environ(),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=_pdeathsig)
        if wait:
            self.wait_log("ev=serve.ready", timeout)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def http_port(self):
        """The port of the HTTP server of the current start (after
        serve.ready)."""
        m = re.search(r" ev=serve\.ready .*\bhttp_port=(\d+)", self.text())
        check(m and m.group(1) != "0", "rivet %s: no http_port in serve.ready" % self.label,
              self.tail())
        return int(m.group(1))

    def listening_port(self, timeout=30):
        """The port of the HTTP server of the current start, from its
        http.listening line: known before serve.ready (the server starts
        before the channels)."""
        self.wait_log(" ev=http.listening ", timeout)
        m = re.search(r" ev=http\.listening .*\bport=(\d+)", self.text())
        check(m and m.group(1) != "0", "rivet %s: no port in http.listening" % self.label,
              self.tail())
        return int(m.group(1))

    def http(self, method, path, body=None, headers=None, timeout=10):
        """One request to this process's HTTP server: (status, headers,
        body bytes). Never raises for an HTTP error status."""
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.http_port(), path),
                                     data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def returncode(self):
        return self.proc.poll() if self.proc else None

    def text(self, which=-1):
        if not self.log_paths:
            return ""
        with open(self.log_paths[which], "rb") as f:
            return f.read().decode("utf-8", "replace")

    def all_text(self):
        out = []
        for p in self.log_paths:
            with open(p, "rb") as f:
                out.append(f.read().decode("utf-8", "replace"))
        return "".join(out)

    def tail(self, n=25):
        return "\n".join(self.text().splitlines()[-n:])

    def lines(self, ev, which=-1):
        """Log lines of the current (or given) run with ev=EV."""
        pat = re.compile(r" ev=%s( |$)" % re.escape(ev))
        return [l for l in self.text(which).splitlines() if pat.search(l)]

    def wait_log(self, needle, timeout, count=1):
        """Waits until the current run's log holds needle count times."""
        def seen():
            if not self.alive() and self.text().count(needle) < count:
                raise Fail("rivet %s exited %s before logging %r" % (
                    self.label, self.returncode(), needle))
            return self.text().count(needle) >= count
        wait_until(seen, timeout, "%r in rivet %s's log" % (needle, self.label), interval=0.05)

    def sigkill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def sigterm(self, timeout=15):
        """SIGTERM and wait; returns (exit status, seconds), or fails when
        the process does not exit in time (then kills it)."""
        check(self.alive(), "rivet %s is not running" % self.label)
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Fail("rivet %s did not exit within %d s of SIGTERM" % (self.label, timeout))
        return rc, time.monotonic() - t0

    def kill(self):
        if self.alive():
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass


# ---------------------------------------------------------------------------
# An MQTT broker of the test's own
# ---------------------------------------------------------------------------

class Broker:
    """A mosquitto on a free loopback port, with persistence in the test's
    folder, that a test may stop and start again (the broker scripts/test
    starts is shared by every test, so no test restarts that one)."""

    def __init__(self, env, name="mosquitto", conf_extra="", client_args=()):
        """name: its folder in the test's (one per broker when a test runs
        several). conf_extra: lines appended to its mosquitto.conf; they
        apply to its one listener (certfile, keyfile, cafile) or, for the
        global security settings, override the ones above (a later
        allow_anonymous false wins; per_listener_settings cannot be set
        here, as it must come before them). client_args: what every
        mosquitto_pub of publish*() adds (-u/-P, --cafile)."""
        self.env = env
        self.dir = os.path.join(env.tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.url = "mqtt://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(self.dir, "mosquitto.log")
        self.client_args = list(client_args)
        self.proc = None
        self.starts = 0
        with open(os.path.join(self.dir, "mosquitto.conf"), "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\n"
                    "persistence true\npersistence_location %s/\n"
                    # as root it would switch to the mosquitto user, who
                    # cannot write the test's folder
                    "user root\nmax_queued_messages 100000\n"
                    "log_dest file %s/mosquitto.log\n" % (self.port, self.dir, self.dir))
            f.write(conf_extra)

    def start(self):
        self.starts += 1
        self.proc = subprocess.Popen(
            [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c",
             os.path.join(self.dir, "mosquitto.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_pdeathsig)

        def ready():
            if self.proc.poll() is not None:
                raise Fail("mosquitto exited %s" % self.proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return True
            except OSError:
                return False
        wait_until(ready, 10, "mosquitto on port %d" % self.port, interval=0.05)
        return self

    def stop(self):
        """SIGTERM: mosquitto saves its sessions and queued messages."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def publish(self, topic, payloads, qos=1):
        """Publishes each payload (str or bytes) to topic, in order, with
        mosquitto_pub (one connection for all of them)."""
        data = b"".join((p if isinstance(p, bytes) else p.encode()) + b"\n" for p in payloads)
        p = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port)]
                           + self.client_args + ["-q", str(qos), "-t", topic, "-l"],
                           input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            raise Fail("mosquitto_pub to %s exited %d: %s" % (topic, p.returncode,
                                                             p.stderr.decode(errors="replace")))

    def publish_many(self, messages, qos=1):
        """Publishes [(topic, payload)] at once, one mosquitto_pub each, all
        started before any is waited for (a burst from many devices)."""
        procs = [subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port)]
                                  + self.client_args + ["-q", str(qos), "-t", t, "-m", p],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for t, p in messages]
        for p in procs:
            _, err = p.communicate(timeout=60)
            if p.returncode != 0:
                raise Fail("mosquitto_pub exited %d: %s" % (p.returncode,
                                                            err.decode(errors="replace")))

    def publish_raw(self, topic, payload, qos=1):
        """One message whose payload may hold newlines or any byte."""
        path = os.path.join(self.env.tmp, "payload.bin")
        with open(path, "wb") as f:
            f.write(payload)
        p = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port)]
                           + self.client_args + ["-q", str(qos), "-t", topic, "-f", path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            raise Fail("mosquitto_pub to %r exited %d: %s" % (topic, p.returncode,
                                                             p.stderr.decode(errors="replace")))


# ---------------------------------------------------------------------------
# A PostgreSQL cluster of the test's own
# ---------------------------------------------------------------------------

COMMON_SH = os.path.normpath(os.path.join(HERE, "..", "..", "scripts", "lib", "common.sh"))


def common_sh(script, timeout=120, **env):
    """Runs script after sourcing scripts/lib/common.sh (pg_start, as_pg,
    pg_bindir); values go in as environment variables, never spliced.
    Returns stdout; fails on a non-zero exit."""
    e = dict(os.environ, COMMON_SH=COMMON_SH, **env)
    p = subprocess.run(["bash", "-c", '. "$COMMON_SH" && ' + script], env=e,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise Fail("%s exited %d: %s" % (script, p.returncode,
                                         p.stderr.decode(errors="replace")[-2000:]))
    return p.stdout.decode(errors="replace")


class Cluster:
    """A PostgreSQL cluster of the test's own (scripts/lib/common.sh's
    pg_start, fsync off) on a free loopback port, that the test may stop,
    start and restart (fast mode: sessions are cut) on the same port. The
    cluster is a daemon, not a child: destroy() it in a finally."""

    def __init__(self, prefix="rivet-pg-"):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        out = common_sh('pg_start "$PGDIR" && echo "port=$PG_PORT"', PGDIR=self.dir,
                        PG_FSYNC="off")
        self.port = int(re.search(r"port=(\d+)", out).group(1))
        self.opts = ("-c listen_addresses=127.0.0.1 -p %d -k '' -c fsync=off "
                     "-c max_connections=200" % self.port)

    def url(self, db="postgres"):
        return "postgresql://rivet@127.0.0.1:%d/%s" % (self.port, db)

    def stop(self):
        common_sh('as_pg "$(pg_bindir)/pg_ctl" -D "$PGDIR/data" -m fast -w -t 60 stop >/dev/null',
                  PGDIR=self.dir)

    def start(self):
        common_sh('as_pg "$(pg_bindir)/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/postgres.log" -w '
                  '-t 60 -o "$PGOPTS" start >/dev/null', PGDIR=self.dir, PGOPTS=self.opts)

    def restart(self):
        """pg_ctl restart -m fast: every session is cut, the cluster is back
        when this returns."""
        common_sh('as_pg "$(pg_bindir)/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/postgres.log" -w '
                  '-t 60 -m fast -o "$PGOPTS" restart >/dev/null', PGDIR=self.dir,
                  PGOPTS=self.opts)

    def destroy(self):
        try:
            common_sh('[ ! -f "$PGDIR/data/postmaster.pid" ] || as_pg "$(pg_bindir)/pg_ctl" '
                      '-D "$PGDIR/data" -m immediate -w stop >/dev/null', PGDIR=self.dir)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------
# Users
# ---------------------------------------------------------------------------

FAKE_LLM = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "fake_llm", "fake_llm.py"))


class FakeLLM:
    """tests/fake_llm/fake_llm.py on a free port, with an API key (test_photos.py,
    test_plain.py)."""

    def __init__(self, env, key):
        port_file = os.path.join(env.tmp, "llm.port")
        self.stderr_path = os.path.join(env.tmp, "llm.stderr")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE_LLM, "--port", "0", "--port-file", port_file, "--key", key],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
            preexec_fn=_pdeathsig)

        def ready():
            if self.proc.poll() is not None:
                raise Fail("the fake LLM exited %s: %s" % (self.proc.returncode,
                                                             self.log_tail(20)))
            return os.path.exists(port_file)

        wait_until(ready, 20, "the fake LLM's port file", interval=0.05)
        with open(port_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port

    def ctl(self, name, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/control/" + name, data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def requests(self):
        """GET /control/requests: {"count", "requests", "queued", "internal_errors"}."""
        return self.ctl("requests")

    def queue(self, *answers):
        return self.ctl("answers", {"answers": list(answers)})

    def log_tail(self, n):
        try:
            with open(self.stderr_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
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
        self.stderr.close()


def register(env, fake, factory, users, role="technician", timeout=30):
    """Registers Telegram users [(user_id, first_name)] in factory through
    the bot: one invite code for all, then /start CODE from each private
    chat. Needs a running rivet serve. Waits for every welcome."""
    code = env.invite(factory, role, uses=max(1, len(users)))
    since = fake.last_seq()
    for uid, name in users:
        fake.message(uid, "/start " + code, first_name=name)
    for uid, name in users:
        got = fake.replies(uid, 1, since=since, timeout=timeout)
        check("Welcome to Rivet" in text_of(got[0]),
              "user %s was not welcomed: %r" % (uid, text_of(got[0])))
    return code


# The Telegram poller's advisory lock ("RVTG", the key in bot/telegram.c).
POLL_LOCK = 1381389383


def poll_lock_holders(env):
    """How many sessions of env's database hold the poller's lock."""
    return int(env.sql_value(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
        "database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND "
        "classid = 0 AND objid = %d AND objsubid = 1" % POLL_LOCK))


def token_leaks(env):
    """[(log file, line)] of every rivet log line holding the token or
    either of its halves' distinctive part."""
    leaks = []
    for path, text in env.logs():
        for line in text.splitlines():
            if TOKEN_SECRET in line or TOKEN in line or ("bot" + TOKEN_ID) in line:
                leaks.append((os.path.basename(path), line[:300]))
    return leaks


def check_no_token(env):
    logs = env.logs()
    check(logs, "no rivet logs were captured")
    check(sum(len(t) for _, t in logs) > 0, "the rivet logs are empty")
    leaks = token_leaks(env)
    check(not leaks, "the bot token appears in %d log line(s)" % len(leaks),
          *["%s: %s" % l for l in leaks[:5]])


# The first line of a report of AddressSanitizer, LeakSanitizer,
# ThreadSanitizer ("WARNING: ThreadSanitizer: data race") or
# UndefinedBehaviorSanitizer ("file.c:12:5: runtime error: ...").
SANITIZER_RE = re.compile(r"\b(ERROR|WARNING|FATAL): \w+Sanitizer\b|\w+Sanitizer:DEADLYSIGNAL"
                          r"|: runtime error: ")


def sanitizer_reports(env):
    """[(log file, first lines)] of every rivet log holding a sanitizer
    report."""
    out = []
    for path, text in env.logs():
        lines = [l for l in text.splitlines() if SANITIZER_RE.search(l)]
        if lines:
            out.append((os.path.basename(path), "\n".join(lines[:10])[:1000]))
    return out


def check_no_crash(env):
    """No rivet run ended with a sanitizer report or a signal other than
    the SIGKILLs the test sent."""
    reports = sanitizer_reports(env)
    check(not reports, "a sanitizer report in %s" % ", ".join(p for p, _ in reports),
          *["%s:\n%s" % r for r in reports])


def rand():
    return random.Random(os.getpid() ^ int(time.time()))


# ---------------------------------------------------------------------------
# GET /metrics
# ---------------------------------------------------------------------------

def prometheus_parser():
    """prometheus_client's text_string_to_metric_families (the Debian package
    python3-prometheus-client, which scripts/setup installs). A pyenv python3
    does not see Debian's dist-packages, so they are tried too. Fails the
    test point with the reason when the parser is missing."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        if "/usr/lib/python3/dist-packages" not in sys.path:
            sys.path.append("/usr/lib/python3/dist-packages")
        try:
            from prometheus_client.parser import text_string_to_metric_families
        except ImportError as e:
            raise Fail("the Prometheus text parser is missing (%s): install the Debian package "
                       "python3-prometheus-client (scripts/setup installs it)" % e)
    return text_string_to_metric_families


class Metrics:
    """One scrape of /metrics, parsed by prometheus_client's parser.
    families: {family name: (type, {label names})} with the parser's names
    (a counter's family name has no _total); samples: {(sample name,
    ((label, value), ...) sorted): value}."""

    def __init__(self, text):
        self.text = text
        self.families = {}
        self.samples = {}
        parse = prometheus_parser()
        try:
            parsed = list(parse(text))
        except Exception as e:
            raise Fail("/metrics does not parse: %r\n%s" % (e, text[:2000]))
        for fam in parsed:
            names = set()
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                if key in self.samples:
                    raise Fail("/metrics repeats the sample %s%r" % key)
                self.samples[key] = s.value
                names.update(k for k in s.labels if k != "le")
            self.families[fam.name] = (fam.type, names)

    def value(self, name, default=None, **labels):
        """The value of the sample name{labels}, or default when absent."""
        return self.samples.get((name, tuple(sorted(labels.items()))), default)

    def series(self, name):
        """[(labels dict, value)] of every sample called name."""
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]


def scrape(rivet):
    """GET /metrics from a rivet: a checked, parsed Metrics."""
    status, headers, body = rivet.http("GET", "/metrics")
    eq(status, 200, "GET /metrics status")
    ctype = headers.get("Content-Type", "")
    check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
          "GET /metrics Content-Type: %r" % ctype)
    return Metrics(body.decode("utf-8"))

