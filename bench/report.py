"""bench/run's tables: the ratios between systems, the main table, squtun's
suites side by side, and for --rounds every run's figures and the means.

Who a row is compared with (`add_ratios`):
- "vs OpenVPN": OpenVPN's row (static key, AES-256-CBC + HMAC-SHA256).
- "vs best other": the best row that is neither bare veth (not a tunnel)
  nor a squtun row (squtun's suites are not each other's competition), nor
  the row itself; it is named.
- squtun's suites also get "vs CBC": the figure divided by the `squtun`
  row's (the default suite, AES-256-CBC + HMAC-SHA256).
"""

import os

import systems

HIGHER = {"tcp1": True, "tcp4": True, "pps": True, "rtt": False, "cpu": False}
GETTERS = {"tcp1": ("tcp1", "gbit_s"), "tcp4": ("tcp4", "gbit_s"), "pps": ("udp64", "pps_received"),
           "rtt": ("ping", "avg_ms"), "cpu": ("tcp1", "cpu_s_per_gb")}
CBC = "squtun"      # the system of squtun's default suite


def metric(rec, key):
    test, field = GETTERS[key]
    try:
        return rec[test][field]
    except (KeyError, TypeError):
        return None


def is_squtun(rec):
    return systems.is_squtun(rec["name"])


def add_ratios(results):
    peers = [r for r in results if r["name"] != "bare" and not is_squtun(r)]
    ovpn = next((r for r in results if r["name"] == "openvpn"), None)
    cbc = next((r for r in results if r["name"] == CBC), None)
    for r in results:
        r["ratios"] = {}
        for key, higher in HIGHER.items():
            v = metric(r, key)
            if v is None:
                continue
            entry = {}
            ov = metric(ovpn, key) if ovpn else None
            if ov and r is not ovpn:
                entry["vs_openvpn"] = v / ov
            others = [(metric(o, key), o["name"]) for o in peers if o is not r and metric(o, key)]
            if others:
                best = max(others) if higher else min(others)
                entry["vs_best_other"] = v / best[0]
                entry["best_other"] = best[1]
            base = metric(cbc, key) if cbc else None
            if is_squtun(r) and base and r is not cbc:
                entry["vs_cbc"] = v / base
            r["ratios"][key] = entry


def fmt(v, digits=3, smallest=0.01):
    """About `digits` significant digits; below `smallest`, two."""
    if v is None:
        return "—"
    if v == 0:
        return "0"
    mag = len(str(int(abs(v)))) if abs(v) >= 1 else 0
    return f"{v:.{max(digits - mag, 0)}f}" if abs(v) >= smallest else f"{v:.2g}"


def ratio(r, key, which):
    e = r.get("ratios", {}).get(key, {})
    if which not in e:
        return "—"
    return f"×{e[which]:.2f}" + (f" ({e['best_other']})" if which == "vs_best_other" else "")


def ratio_cell(r, key):
    return f"{ratio(r, key, 'vs_openvpn')} / {ratio(r, key, 'vs_best_other')}"


def table(results):
    head = ["system", "version", "cipher", "tun MTU", "TCP 1 stream Gbit/s", "TCP 4 streams Gbit/s",
            "UDP 64 B kpps", "UDP loss %", "RTT avg ms", "RTT mdev ms", "CPU s/GB",
            "peak RSS MiB", "TCP 1: vs OpenVPN / vs best other", "UDP pps: vs OpenVPN / vs best other",
            "CPU/GB: vs OpenVPN / vs best other"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if r["error"]:
            cells = [r["label"], r.get("version") or "?", r["cipher"], str(r.get("mtu", "—")),
                     "**failed**: " + r["error"].splitlines()[0][:160]] + [""] * (len(head) - 5)
        else:
            g = lambda k, f: (r.get(k) or {}).get(f)  # noqa: E731
            pps = g("udp64", "pps_received")
            rss = r["rss"]["max_end_kib"] / 1024 if r.get("rss") else None
            cells = [r["label"], r["version"], r["cipher"], str(r["mtu"]),
                     fmt(g("tcp1", "gbit_s")), fmt(g("tcp4", "gbit_s")),
                     fmt(pps / 1e3 if pps is not None else None), fmt(g("udp64", "loss_pct"), 2),
                     fmt(g("ping", "avg_ms")), fmt(g("ping", "mdev_ms")),
                     fmt(g("tcp1", "cpu_s_per_gb")), fmt(rss),
                     ratio_cell(r, "tcp1"), ratio_cell(r, "pps"), ratio_cell(r, "cpu")]
        rows.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(rows)


def suite_summary(results):
    """Per squtun suite measured: what its targets are read from (the JSON's
    `squtun_suites`)."""
    out = []
    for r in results:
        if not is_squtun(r):
            continue
        t, c = r.get("ratios", {}).get("tcp1", {}), r.get("ratios", {}).get("cpu", {})
        out.append({"system": r["name"], "suite": r.get("suite"), "tap": r.get("tap", False), "error": r["error"],
                    "tcp1_gbit_s": metric(r, "tcp1"), "cpu_s_per_gb": metric(r, "cpu"),
                    "tcp1_vs_openvpn": t.get("vs_openvpn"), "tcp1_vs_best_other": t.get("vs_best_other"),
                    "best_other": t.get("best_other"),
                    "tcp1_vs_cbc": t.get("vs_cbc", 1.0 if r["name"] == CBC and metric(r, "tcp1") else None),
                    "cpu_vs_cbc": c.get("vs_cbc", 1.0 if r["name"] == CBC and metric(r, "cpu") else None),
                    "ratio_ranges": r.get("ratio_ranges")})
    return out


def suite_table(suites):
    """squtun's suites side by side: TCP 1 stream against OpenVPN and the
    best other tunnel, CPU s/GB against the CBC suite's."""
    if not suites:
        return ""
    head = ["squtun suite (--cipher)", "TCP 1 stream Gbit/s", "TCP 1 vs OpenVPN (static key)",
            "TCP 1 vs best other (not squtun)", "TCP 1 vs CBC", "CPU s/GB", "CPU/GB vs CBC"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    x = lambda v: f"×{v:.2f}" if v is not None else "—"  # noqa: E731
    for s in suites:
        name = s["suite"] + (" --tap" if s.get("tap") else "")   # TAP mode: same suite, Ethernet frames
        if s["error"]:
            rows.append(f"| {name} | **failed**: {s['error'].splitlines()[0][:160].replace('|', '/')} "
                        + "| " * (len(head) - 2) + "|")
            continue
        rng = s.get("ratio_ranges") or {}
        span = lambda k: (f" (runs {rng[k][0]:.2f}–{rng[k][1]:.2f})" if rng.get(k) else "")  # noqa: E731
        best = f"{x(s['tcp1_vs_best_other'])} ({s['best_other']})" if s["best_other"] else "—"
        rows.append("| " + " | ".join([
            name, fmt(s["tcp1_gbit_s"]), x(s["tcp1_vs_openvpn"]) + span("tcp1_vs_openvpn"),
            best + span("tcp1_vs_best_other"), x(s["tcp1_vs_cbc"]) + span("tcp1_vs_cbc"),
            fmt(s["cpu_s_per_gb"]), x(s["cpu_vs_cbc"]) + span("cpu_vs_cbc")]) + " |")
    return "\n".join(rows)


def reassemblies(r):
    if "reassemblies" in r:
        return r["reassemblies"]
    if not r.get("tcp1"):
        return 0
    frag = r["tcp1"]["underlay_ip"]
    return frag["a"]["ReasmReqds"] + frag["b"]["ReasmReqds"]


def footnotes(results):
    lines = []
    for r in results:
        if r["error"]:
            continue
        reasm = reassemblies(r)
        rounds = " (all rounds)" if "reassemblies" in r else ""
        extra = f"; underlay reassemblies during TCP 1 stream{rounds}: {reasm}" if reasm else ""
        for k, e in r.get("test_errors", {}).items():
            extra += f"; **{k} failed**: {e.splitlines()[0][:160]}"
        notes = ("; " + "; ".join(r["notes"])) if r.get("notes") else ""
        lines.append(f"- {r['label']}: tun MTU {r['mtu_note']}{notes}{extra}")
        if is_squtun(r) and r.get("rss") and r["rss"].get("processes"):
            each = ", ".join(f"{p['role']} {p['end'].upper()} {p['vmhwm_kib'] / 1024:.1f}"
                             for p in r["rss"]["processes"])
            sums = ", ".join(f"{e.upper()} {v / 1024:.1f}" for e, v in sorted(r["rss"]["per_end_kib"].items()))
            lines.append(f"- {r['label']} peak RSS (VmHWM, MiB): {each}; helper + worker: {sums}")
    return "\n".join(lines)


NOTES = ("CPU s/GB: user + system CPU seconds of the tunnel's processes on both ends during the "
         "1-stream TCP run, per 10⁹ bytes received; kernel work in softirq context (veth, tun, "
         "the UDP and TCP stacks) that is not charged to those processes is not included. "
         "Peak RSS: VmHWM of one end's tunnel processes (the larger end). Ratios: this row's figure "
         "divided by OpenVPN's (static key) and by the best other tunnel's — bare veth and squtun's own "
         "rows excluded, so squtun's suites are compared with the other projects, not with each other — "
         "and, for squtun's suites, by the CBC suite's (the `squtun` row). For CPU/GB below 1 is better.")


# --- --rounds: every run, and the means ----------------------------------------

RUN_FIGURES = [("tcp1", "TCP 1 Gbit/s", lambda r: metric(r, "tcp1")),
               ("cpu", "CPU s/GB", lambda r: metric(r, "cpu")),
               ("tcp4", "TCP 4 Gbit/s", lambda r: metric(r, "tcp4")),
               ("pps", "UDP 64 B kpps", lambda r: metric(r, "pps") / 1e3 if metric(r, "pps") else None),
               ("rtt", "RTT avg ms", lambda r: metric(r, "rtt")),
               ("rss", "peak RSS MiB", lambda r: r["rss"]["max_end_kib"] / 1024 if r.get("rss") else None)]


def host_busy_pct(r):
    try:
        t = r["tcp1"]
        return 100 * t["host_busy_s"] / (t["wall_s"] * os.cpu_count())
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def runs_table(runs):
    """One line per measurement, in the order taken, with the 1-minute load
    average at its start and end and how busy all CPUs were during the
    1-stream TCP run; the ratios are that round's."""
    head = (["round", "system", "load start", "load end", "host busy % (TCP 1)"] + [f[1] for f in RUN_FIGURES]
            + ["TCP 1 vs OpenVPN", "TCP 1 vs best other", "CPU/GB vs CBC"])
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        load = lambda k: f"{r[k][0]:.2f}" if r.get(k) else "—"  # noqa: E731
        cells = [str(r["round"]), r["label"], load("loadavg_start"), load("loadavg_end"), fmt(host_busy_pct(r))]
        if r["error"]:
            cells += ["**failed**: " + r["error"].splitlines()[0][:120]] + [""] * (len(head) - len(cells) - 1)
        else:
            cells += [fmt(get(r)) for _, _, get in RUN_FIGURES]
            cells += [ratio(r, "tcp1", "vs_openvpn"), ratio(r, "tcp1", "vs_best_other"), ratio(r, "cpu", "vs_cbc")]
        rows.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(rows)


def _mean(values):
    v = [x for x in values if x is not None]
    return sum(v) / len(v) if v else None


def mean_records(runs, names):
    """Per system, a record of the same shape as one run's whose figures
    are the means over the rounds in which it was measured completely; its
    `spread` has each figure's min, max and n."""
    out = []
    for name in names:
        mine = [r for r in runs if r["name"] == name]
        ok = [r for r in mine if not r["error"]]
        if not ok:
            out.append(dict(mine[-1], rounds_ok=0, rounds=len(mine)))
            continue
        rec = {k: v for k, v in ok[-1].items() if k not in ("round", "ratios")}
        rec.update(rounds=len(mine), rounds_ok=len(ok), reassemblies=sum(reassemblies(r) for r in ok),
                   test_errors={f"{k} (round {r['round']})": e for r in mine for k, e in r.get("test_errors", {}).items()},
                   error=None)
        for test, field in list(GETTERS.values()) + [("tcp4", "cpu_s_per_gb"), ("udp64", "loss_pct"),
                                                     ("ping", "mdev_ms")]:
            if rec.get(test) is not None or any(r.get(test) for r in ok):
                rec[test] = dict(rec.get(test) or {}, **{field: _mean((r.get(test) or {}).get(field) for r in ok)})
        if rec.get("rss"):
            rec["rss"] = dict(rec["rss"], max_end_kib=_mean(r["rss"]["max_end_kib"] for r in ok if r.get("rss")))
        rec["spread"] = {}
        for key, label, get in RUN_FIGURES:
            v = [get(r) for r in ok if get(r) is not None]
            rec["spread"][key] = {"label": label, "n": len(v), "min": min(v) if v else None,
                                  "max": max(v) if v else None}
        out.append(rec)
    return out


def add_ratio_ranges(means, runs):
    """After add_ratios(means): for each squtun suite, the range of its
    per-round ratios against the systems its mean ratios name (OpenVPN, the
    best other of the means, the CBC suite), each round's figure divided by
    that system's in the same round; rounds in which either failed are left
    out. So a system failing in one round does not swap the comparison."""
    def figure(name, rnd, key):
        r = next((r for r in runs if r["name"] == name and r["round"] == rnd and not r["error"]), None)
        return metric(r, key) if r else None
    for rec in means:
        if not is_squtun(rec) or rec["error"]:
            continue
        ranges = {}
        best = rec.get("ratios", {}).get("tcp1", {}).get("best_other")
        for out_key, key, other in (("tcp1_vs_openvpn", "tcp1", "openvpn"), ("tcp1_vs_best_other", "tcp1", best),
                                    ("tcp1_vs_cbc", "tcp1", CBC), ("cpu_vs_cbc", "cpu", CBC)):
            if not other or other == rec["name"]:
                continue
            v = []
            for rnd in sorted({r["round"] for r in runs}):
                a, b = figure(rec["name"], rnd, key), figure(other, rnd, key)
                if a is not None and b:
                    v.append(a / b)
            ranges[out_key] = [min(v), max(v)] if v else None
        rec["ratio_ranges"] = ranges


def spread_table(means):
    head = ["system", "rounds complete"] + [f"{f[1]} mean (min–max)" for f in RUN_FIGURES]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in means:
        cells = [r["label"], f"{r['rounds_ok']} of {r['rounds']}"]
        for key, _, get in RUN_FIGURES:
            s = (r.get("spread") or {}).get(key)
            cells.append(f"{fmt(get(r))} ({fmt(s['min'])}–{fmt(s['max'])})" if s and s["n"] else "—")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
