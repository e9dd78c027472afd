#!/usr/bin/env python3
"""scripts/bench's report: reads the results of each benchmark in a report
folder (chat-N/results.json, mqtt-N/results.json, ocr-*/summary.json,
memory/results.json), writes report.md and, with gnuplot, the PNG charts.

  tests/bench/report.py DIR
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

MB = 1000 * 1000


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(v, digits=1, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float):
        s = "{:,.{}f}".format(v, digits)
    else:
        s = "{:,}".format(v)
    return s + unit


def kib(v):
    """KiB from 1234 or "1234 kB"; None when absent."""
    m = re.match(r"\s*(\d+)", str(v)) if v is not None else None
    return int(m.group(1)) if m else None


def ratio(x, y):
    return x / y if x and y else None


def verdict(ok):
    return "–" if ok is None else ("**pass**" if ok else "**FAIL**")


def sized(out, prefix):
    """{N: DIR} for DIR/prefix-N folders."""
    got = {}
    for d in glob.glob(os.path.join(out, prefix + "-*")):
        m = re.fullmatch(prefix + r"-(\d+)", os.path.basename(d))
        if m and os.path.isdir(d):
            got[int(m.group(1))] = d
    return dict(sorted(got.items()))


def chat_row(res):
    """The figures of one bench-telegram --peer run, None when it did not finish."""
    if not res or "runs" not in res:
        return None
    v = res.get("vs_peer") or {}
    rv = v.get("rivet") or {}
    pv = v.get("peer") or {}
    runs = res["runs"]
    tp = sorted(r["throughput"] or 0 for r in runs)[len(runs) // 2]
    p99 = sorted(r["latency"]["all"]["p99"] or 0 for r in runs)[len(runs) // 2]
    o = res.get("open") or {}
    po = (res.get("peer") or {}).get("open") or {}
    return {
        "equipment": res["params"]["equipment"], "work_orders": res["params"]["work_orders"],
        "rivet_tp": rv.get("throughput", tp), "peer_tp": pv.get("throughput"),
        "rivet_p99": rv.get("p99", p99), "peer_p99": pv.get("p99"),
        "open_rate": o.get("rate_target"),
        "rivet_open_p50": (o.get("latency") or {}).get("all", {}).get("p50"),
        "rivet_open_p99": (o.get("latency") or {}).get("all", {}).get("p99"),
        "peer_open_p99": (po.get("latency") or {}).get("all", {}).get("p99"),
        "rivet_hwm": v.get("rivet_hwm_kib") or (res.get("rss_after") or {}).get("VmHWM"),
        "peer_hwm": v.get("peer_hwm_kib"),
        "errors": rv.get("errors", sum(r["errors"] for r in runs)),
        "peer_errors": pv.get("errors"),
        "peer_aborted": (res.get("peer") or {}).get("aborted"),
        # /equip search alone: its SQL from one psql client (the baseline),
        # rivet's handling (claim to commit) and end to end, in the open loop
        "search_sql_p99": (((res.get("baseline_1") or {}).get("by_kind") or {})
                           .get("search") or {}).get("p99"),
        "search_handle_p99": ((((o.get("stages") or {}).get("by_kind") or {})
                               .get("search") or {}).get("handle") or {}).get("p99"),
        "search_open_p99": (o.get("latency") or {}).get("search", {}).get("p99"),
        "peer_search_open_p99": (po.get("latency") or {}).get("search", {}).get("p99"),
    }


def mqtt_row(res):
    if not res or "throughput" not in res:
        return None
    t, lat = res["throughput"], res.get("latency") or {}
    row = {"devices": res["meta"].get("devices"),
           "hwm": (res.get("memory") or {}).get("VmHWM")}
    for mode in ("live", "backlog"):
        m = t.get(mode) or {}
        row[mode] = m.get("rivet_msgs_per_s_median")
        row[mode + "_sub"] = m.get("mosquitto_sub_msgs_per_s_median")
        row[mode + "_ratio"] = m.get("ratio_median")
        row[mode + "_cpu"] = m.get("rivet_cpu_us_per_msg_median")
    if lat.get("probes"):
        row["p99"] = lat.get("pooled_p99_ms")
        row["p50"] = lat.get("pooled_p50_ms")
        row["delivered"] = "%s/%s" % (lat.get("delivered"), lat.get("probes"))
    return row


def gnuplot(out, name, script):
    if not shutil.which("gnuplot"):
        return None
    path = os.path.join(out, name + ".gp")
    with open(path, "w") as f:
        f.write("set terminal pngcairo size 900,520 font 'sans,11'\n"
                "set output '%s.png'\nset grid\nset key top left\n" % name)
        f.write(script)
    p = subprocess.run(["gnuplot", path], cwd=out, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write("bench: gnuplot %s: %s\n" % (name, p.stderr.strip()))
        return None
    return name + ".png"


def main():
    out = sys.argv[1]
    run = load(os.path.join(out, "run.json")) or {}
    durations = {}
    try:
        with open(os.path.join(out, "durations.txt")) as f:
            for line in f:
                k, v = line.split()
                durations[k] = int(v)
    except OSError:
        pass
    chats = {n: chat_row(load(os.path.join(d, "results.json")))
             for n, d in sized(out, "chat").items()}
    mqtts = {n: mqtt_row(load(os.path.join(d, "results.json")))
             for n, d in sized(out, "mqtt").items()}
    ocr_c = load(os.path.join(out, "ocr-committed", "summary.json"))
    ocr_g = load(os.path.join(out, "ocr-12mp", "summary.json"))
    mem = load(os.path.join(out, "memory", "results.json"))

    chat_head = run.get("chat_head") or (max(chats) if chats else None)
    if chat_head not in chats and chats:
        chat_head = max(chats)
    mqtt_head = run.get("mqtt_head") or (max(mqtts) if mqtts else None)
    if mqtt_head not in mqtts and mqtts:
        mqtt_head = max(mqtts)
    ch = chats.get(chat_head)
    mq = mqtts.get(mqtt_head)

    L = []
    add = L.append
    add("# Rivet benchmarks")
    add("")
    add("`scripts/bench%s`, %s mode, started %s; %d cores. Every figure below comes "
        "from the benchmark's own folder here (report.md and results.json or summary.json "
        "there); durations: %s." % (
            " --quick" if run.get("mode") == "quick" else "", run.get("mode", "?"),
            run.get("started", "?"), os.cpu_count(),
            ", ".join("%s %d s" % kv for kv in durations.items()) or "–"))
    add("")
    add("## Headline")
    add("")
    add("| figure | target | measured | pass/fail | Rivet/peer |")
    add("| --- | --- | ---: | --- | ---: |")
    if ch:
        r = ratio(ch["rivet_tp"], ch["peer_tp"])
        add("| chat throughput, %s equipment rows, closed loop (msg/s) | ≥ 3× the grammY "
            "peer | %s (peer %s) | %s | %s |" % (
                fmt(chat_head), fmt(ch["rivet_tp"]), fmt(ch["peer_tp"]),
                verdict(r >= 3 if r else None), fmt(r, 2)))
        sq = ch["search_sql_p99"]
        add("| /equip search p99, %s equipment rows: its SQL (one client) / rivet's handling "
            "(claim to commit) (ms) | ≤ 20 ms | %s / %s | %s | |" % (
                fmt(chat_head), fmt(sq), fmt(ch["search_handle_p99"]),
                verdict(sq <= 20 if sq is not None else None)))
        add("| /equip search p99 end to end, open loop at %s msg/s (ms) | lower than the peer | "
            "%s (peer %s) | %s | %s |" % (
                fmt(ch["open_rate"]), fmt(ch["search_open_p99"], 0),
                fmt(ch["peer_search_open_p99"], 0),
                verdict(ch["search_open_p99"] < ch["peer_search_open_p99"]
                        if ch["search_open_p99"] and ch["peer_search_open_p99"] else None),
                fmt(ratio(ch["search_open_p99"], ch["peer_search_open_p99"]), 2)))
        add("| chat p99 latency, all commands, open loop at %s msg/s (ms) | lower than the peer "
            "| %s (peer %s) | %s | %s |" % (
                fmt(ch["open_rate"]), fmt(ch["rivet_open_p99"], 0), fmt(ch["peer_open_p99"], 0),
                verdict(ch["rivet_open_p99"] < ch["peer_open_p99"]
                        if ch["rivet_open_p99"] and ch["peer_open_p99"] else None),
                fmt(ratio(ch["rivet_open_p99"], ch["peer_open_p99"]), 2)))
        add("| chat p99 latency, closed loop (queueing included, ms) | – | %s (peer %s) | – | "
            "%s |" % (fmt(ch["rivet_p99"], 0), fmt(ch["peer_p99"], 0),
                      fmt(ratio(ch["rivet_p99"], ch["peer_p99"]), 2)))
        add("| RSS after the chat load, VmHWM (MB) | – | %s (peer, node: %s) | – | %s |" % (
            fmt(ch["rivet_hwm"] * 1024 / MB if ch["rivet_hwm"] else None),
            fmt(ch["peer_hwm"] * 1024 / MB if ch["peer_hwm"] else None),
            fmt(ratio(ch["rivet_hwm"], ch["peer_hwm"]), 2)))
        add("| chat replies wrong or missing | 0 | %s (peer %s) | %s | |" % (
            ch["errors"], fmt(ch["peer_errors"]), verdict(ch["errors"] == 0)))
    elif "chat" in run.get("only", "chat"):
        add("| chat | | not measured (see chat-*.log) | **FAIL** | |")
    if mq:
        ok = (mq["live"] or 0) >= 20000 and (mq["live_ratio"] or 0) >= 0.8
        add("| telemetry throughput, %s devices, live (msg/s) | ≥ 20,000 and ≥ 0.8 of "
            "mosquitto_sub | %s (mosquitto_sub %s) | %s | %s |" % (
                fmt(mqtt_head), fmt(mq["live"], 0), fmt(mq["live_sub"], 0), verdict(ok),
                fmt(mq["live_ratio"], 2)))
        add("| telemetry throughput from a backlog (msg/s) | – | %s (mosquitto_sub %s) | – | "
            "%s |" % (fmt(mq["backlog"], 0), fmt(mq["backlog_sub"], 0),
                      fmt(mq["backlog_ratio"], 2)))
        if mq.get("p99") is not None:
            add("| alarm latency p99 under 1k msg/s, publish → sendMessage (ms) | ≤ 100 ms | "
                "%s (p50 %s; %s probes delivered) | %s | |" % (
                    fmt(mq["p99"]), fmt(mq["p50"]), mq["delivered"], verdict(mq["p99"] <= 100)))
    elif "mqtt" in run.get("only", "mqtt"):
        add("| telemetry | | not measured (see mqtt-*.log) | **FAIL** | |")
    if ocr_g:
        lo, ts = ocr_g["runs"].get("local", {}), ocr_g["runs"].get("tesseract psm 11", {})
        gen = ocr_g.get("generated") or {}
        add("| nameplate read time, %s fresh %s photos, one core, median (ms) | – | "
            "%s (p95 %s; plain tesseract %s) | – | %s |" % (
                ocr_g["images"], gen.get("size", "?"), fmt(lo.get("ms_median"), 0),
                fmt(lo.get("ms_p95"), 0), fmt(ts.get("ms_median"), 0),
                fmt(ratio(lo.get("ms_median"), ts.get("ms_median")), 2)))
        k, n = lo.get("key3_exact"), lo.get("key3_of")
        kt = ts.get("key3_exact")
        add("| nameplates read: manufacturer, model and serial all exact (same photos) | – "
            "| %s/%s (%s %%; plain tesseract %s) | – | %s |" % (
                k, n, fmt(100.0 * k / n if n else None, 0), fmt(kt), fmt(ratio(k, kt), 2)))
    elif "ocr" in run.get("only", "ocr"):
        add("| nameplates | | not measured (see ocr-*.log) | **FAIL** | |")
    if mem and "rss_idle" in mem:
        idle = mem["rss_idle"]
        after = mem.get("rss_after") or {}
        ph = mem.get("rss_photos") or {}
        add("| rivet serve idle, VmRSS (MB) | – | %s | – | |" % fmt(
            idle.get("VmRSS", 0) * 1024 / MB))
        hwm = after.get("VmHWM")
        add("| rivet serve under load with 2 workers' OCR engines, VmHWM (MB) | ≤ 80 MB | %s "
            "(VmRSS %s after the photos, %s after the text load) | %s | |" % (
                fmt(hwm * 1024 / MB if hwm else None), fmt(ph.get("VmRSS", 0) * 1024 / MB),
                fmt(after.get("VmRSS", 0) * 1024 / MB),
                verdict(hwm * 1024 <= 80 * MB if hwm else None)))
    elif "memory" in run.get("only", "memory"):
        add("| memory | | not measured (see memory.log) | **FAIL** | |")
    add("")
    add("Rivet/peer: for chat the peer is tests/bench/peer (grammY with @grammyjs/runner and a "
        "node-postgres Pool, the same commands on the same data, fake Bot API and load, in the "
        "same run); for telemetry it is mosquitto_sub on the same broker (its ceiling); for "
        "nameplates plain `tesseract IMAGE - --psm 11` on the same photos. Throughput and "
        "plates read: above 1 is better for Rivet; latency, time and memory: below 1 is. "
        "MB are 10⁶ bytes.")
    add("")

    # ---- cost growth: chat ----
    charts = []
    rows = [(n, c) for n, c in chats.items() if c]
    if chats:
        add("## Chat: cost growth with the equipment table")
        add("")
        add("`scripts/bench-telegram --peer`, work orders = 2 × equipment; closed loop: each "
            "simulated user sends its next message when the last is answered; open loop: "
            "Poisson arrivals at half of Rivet's closed-loop throughput, the same rate for the "
            "peer.")
        add("")
        add("| equipment | work orders | Rivet msg/s | peer msg/s | Rivet/peer | Rivet p99 closed "
            "| peer p99 closed | open-loop rate | Rivet p50 / p99 open | peer p99 open | Rivet "
            "VmHWM MB | peer VmHWM MB | errors Rivet / peer |")
        add("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: |")
        for n, c in chats.items():
            if not c:
                add("| %s | | failed (chat-%d.log) | | | | | | | | | | |" % (fmt(n), n))
                continue
            add("| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s / %s |" % (
                fmt(c["equipment"]), fmt(c["work_orders"]), fmt(c["rivet_tp"]),
                fmt(c["peer_tp"]), fmt(ratio(c["rivet_tp"], c["peer_tp"]), 2),
                fmt(c["rivet_p99"], 0), fmt(c["peer_p99"], 0), fmt(c["open_rate"]),
                fmt(c["rivet_open_p50"], 0), fmt(c["rivet_open_p99"], 0),
                fmt(c["peer_open_p99"], 0),
                fmt(c["rivet_hwm"] * 1024 / MB if c["rivet_hwm"] else None),
                fmt(c["peer_hwm"] * 1024 / MB if c["peer_hwm"] else None),
                c["errors"], fmt(c["peer_errors"])))
        for n, c in rows:
            if c["peer_aborted"]:
                add("")
                add("Peer run at %s rows aborted: %s" % (fmt(n), c["peer_aborted"]))
        add("")
        with open(os.path.join(out, "chat.dat"), "w") as f:
            f.write("# equipment rivet_tp peer_tp rivet_p99_closed peer_p99_closed "
                    "rivet_p99_open peer_p99_open\n")
            for n, c in rows:
                f.write("%d %s %s %s %s %s %s\n" % (n, *[
                    c[k] if c[k] is not None else "NaN" for k in (
                        "rivet_tp", "peer_tp", "rivet_p99", "peer_p99", "rivet_open_p99",
                        "peer_open_p99")]))
        if rows:
            charts.append(("Chat throughput against the equipment table", gnuplot(
                out, "chat-throughput",
                "set logscale x\nset xlabel 'equipment rows (work orders: 2x)'\n"
                "set ylabel 'messages/s, closed loop'\nset yrange [0:*]\n"
                "set title 'Chat throughput (/equip search, /wo list, /stats 40/40/20)'\n"
                "plot 'chat.dat' u 1:2 w lp lw 2 pt 7 t 'Rivet', "
                "'' u 1:3 w lp lw 2 pt 5 t 'grammY peer'\n")))
            charts.append(("Chat p99 latency against the equipment table", gnuplot(
                out, "chat-latency",
                "set logscale xy\nset xlabel 'equipment rows (work orders: 2x)'\n"
                "set ylabel 'p99 latency, ms'\nset title 'Chat p99 latency'\n"
                "plot 'chat.dat' u 1:6 w lp lw 2 pt 7 t 'Rivet, open loop', "
                "'' u 1:7 w lp lw 2 pt 5 t 'peer, open loop', "
                "'' u 1:4 w lp lw 1 dt 2 pt 7 t 'Rivet, closed loop', "
                "'' u 1:5 w lp lw 1 dt 2 pt 5 t 'peer, closed loop', "
                "20 w l lw 1 lc rgb 'red' t 'target 20 ms'\n")))

    # ---- cost growth: telemetry ----
    mrows = [(n, m) for n, m in mqtts.items() if m]
    if mqtts:
        add("## Telemetry: cost growth with the number of devices")
        add("")
        add("`scripts/bench-mqtt`: live, Rivet reads while the devices publish (the consumer "
            "beside the publishers on the same cores); backlog, the consumer comes back to "
            "messages queued for it. CPU is Rivet's per message.")
        add("")
        add("| devices | live Rivet msg/s | live mosquitto_sub | ratio | backlog Rivet | backlog "
            "mosquitto_sub | ratio | Rivet CPU µs/msg (live) | alarm p50 / p99 ms | VmHWM MB |")
        add("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for n, m in mqtts.items():
            if not m:
                add("| %s | failed (mqtt-%d.log) | | | | | | | | |" % (fmt(n), n))
                continue
            add("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                fmt(n), fmt(m["live"], 0), fmt(m["live_sub"], 0), fmt(m["live_ratio"], 2),
                fmt(m["backlog"], 0), fmt(m["backlog_sub"], 0), fmt(m["backlog_ratio"], 2),
                fmt(m["live_cpu"]),
                "%s / %s" % (fmt(m["p50"]), fmt(m["p99"])) if m.get("p99") is not None else "–",
                fmt(kib(m.get("hwm")) * 1024 / MB if kib(m.get("hwm")) else None)))
        add("")
        with open(os.path.join(out, "mqtt.dat"), "w") as f:
            f.write("# devices live live_sub backlog backlog_sub\n")
            for n, m in mrows:
                f.write("%d %s %s %s %s\n" % (n, *[m[k] if m[k] is not None else "NaN" for k in (
                    "live", "live_sub", "backlog", "backlog_sub")]))
        if mrows:
            charts.append(("Telemetry throughput against the number of devices", gnuplot(
                out, "mqtt-throughput",
                "set logscale x\nset xlabel 'devices'\nset ylabel 'messages/s'\n"
                "set yrange [0:*]\nset title 'Telemetry throughput'\n"
                "plot 'mqtt.dat' u 1:2 w lp lw 2 pt 7 t 'Rivet, live', "
                "'' u 1:3 w lp lw 2 pt 5 t 'mosquitto\\_sub, live', "
                "'' u 1:4 w lp lw 1 dt 2 pt 7 t 'Rivet, backlog', "
                "'' u 1:5 w lp lw 1 dt 2 pt 5 t 'mosquitto\\_sub, backlog', "
                "20000 w l lw 1 lc rgb 'red' t 'target 20k msg/s'\n")))

    # ---- nameplates ----
    if ocr_c or ocr_g:
        add("## Nameplates")
        add("")
        add("`scripts/eval-ocr` (`rivet ocr --json --no-llm` against plain "
            "`tesseract --psm 11`); accuracy per field in each folder's table.md.")
        add("")
        add("| plates | reader | manufacturer, model, serial exact | all fields | median / p95 "
            "ms |")
        add("| --- | --- | ---: | ---: | ---: |")
        for title, s in (("committed set", ocr_c), ("fresh, generated", ocr_g)):
            if not s:
                continue
            gen = s.get("generated") or {}
            what = "%s, %d%s%s" % (title, s["images"],
                                   " at %s, seed %s" % (gen.get("size"), gen.get("seed"))
                                   if gen else "", ", one core" if s.get("one_core") else "")
            for reader, r in s["runs"].items():
                add("| %s | %s | %s/%s | %s/%s | %s / %s |" % (
                    what, reader, r["key3_exact"], r["key3_of"], r["fields_correct"],
                    r["fields_of"], fmt(r["ms_median"], 0), fmt(r["ms_p95"], 0)))
        add("")

    # ---- memory ----
    if mem and "rss_idle" in mem:
        add("## Memory of rivet serve")
        add("")
        p = mem["params"]
        add("`scripts/bench-telegram --workers %d --photos 2`: %s equipment rows; two photos "
            "read at once by two workers (OCR_MAX_JOBS=2), then %d text messages in a closed "
            "loop." % (p["workers"], fmt(p["equipment"]), p["messages"]))
        add("")
        add("| when | VmRSS MB | VmHWM MB |")
        add("| --- | ---: | ---: |")
        for label, st in (("idle, after start", mem["rss_idle"]),
                          ("after the two photos", mem.get("rss_photos") or {}),
                          ("after the text load", mem.get("rss_after") or {})):
            add("| %s | %s | %s |" % (label, fmt(st.get("VmRSS", 0) * 1024 / MB),
                                      fmt(st.get("VmHWM", 0) * 1024 / MB)))
        add("")

    if charts:
        add("## Charts")
        add("")
        for title, png in charts:
            if png:
                add("![%s](%s)" % (title, png))
                add("")
    add("## How it was run")
    add("")
    add("Folders: " + ", ".join(sorted(
        os.path.basename(d) + "/" for d in glob.glob(os.path.join(out, "*"))
        if os.path.isdir(d))) + "; the logs of each step are next to them.")
    add("")
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    # the headline on the terminal
    head = L[L.index("## Headline"):]
    head = head[:next((i for i, x in enumerate(head) if x.startswith("Rivet/peer:")), len(head))]
    print("\n".join(head))


if __name__ == "__main__":
    main()
