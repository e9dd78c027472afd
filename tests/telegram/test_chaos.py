#!/usr/bin/env python3
"""The chaos run at a small size (chaos.py): 75 s of faults on 3 Telegram
chats, 3 WhatsApp users and 3 MQTT devices, two rivet processes, a
PostgreSQL cluster and a mosquitto of the test's own, then the audit, one
TAP point per check, and the table of figures as diagnostics.

RIVET_CHAOS_SEED repeats a run's schedule of faults (printed as a
diagnostic); RIVET_CHAOS_SECONDS changes the length. Like the other files
here it skips without RIVET_TEST_PG_URL, although it starts a cluster of
its own (it restarts it).
"""

import os
import shutil
import sys
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos  # noqa: E402
import harness as H  # noqa: E402


def main():
    rivet_bin = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RIVET_BIN", "")
    if not os.environ.get("RIVET_TEST_PG_URL"):
        print("1..0 # SKIP RIVET_TEST_PG_URL not set")
        return 0
    if not rivet_bin or not os.access(rivet_bin, os.X_OK):
        print("1..0 # SKIP no rivet binary (give its path as argv[1] or RIVET_BIN)")
        return 0
    for tool in ("psql", "mosquitto_pub"):
        if not shutil.which(tool):
            print("1..0 # SKIP %s not found" % tool)
            return 0
    tap = H.Tap()
    print("1..%d" % (chaos.N_CHECKS + 1))
    sys.stdout.flush()

    def progress(text):
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    opt = chaos.Options(rivet_bin, duration=float(os.environ.get("RIVET_CHAOS_SECONDS") or 75),
                        tg_chats=3, wa_chats=3, devices=3, drain_timeout=240,
                        progress=progress)
    tap.diag("seed %d (set RIVET_CHAOS_SEED to repeat)" % opt.seed)
    try:
        ch = chaos.run(opt)
    except Exception:
        tap.point("set-up, %.0f s of faults, the drain and the audit" % opt.duration, False,
                  traceback.format_exc())
        for i in range(chaos.N_CHECKS):
            tap.point("check %d (not reached)" % (i + 1), False)
        return 1
    tap.point("set-up, %.0f s of faults, the drain and the audit" % opt.duration, True)
    checks = list(ch.checks)
    for name, ok, detail in checks[:chaos.N_CHECKS]:
        tap.point(name, ok, None if ok else detail)
    for i in range(len(checks), chaos.N_CHECKS):
        tap.point("check %d (not reached)" % (i + 1), False)
    tap.diag(ch.table())
    return 0 if tap.failed == 0 and len(checks) == chaos.N_CHECKS else 1


if __name__ == "__main__":
    sys.exit(main())
