"""`bench/run --compare A B`: two squtun builds measured side by side in
one run, alternating, so that both see the same machine (see
bench/README.md, "Two builds side by side").

A and B are each a git revision of this repository (built in release,
with that revision's own scripts/build-release, into a cache directory
outside the tree) or the path of a squtun binary. Round r measures A then
B when r is odd, B then A when it is even (ABBA ABBA ...), each
measurement being exactly the squtun row of the default mode in fresh
namespaces. The summary gives, per figure, each side's mean and range over
the rounds and the verdict of the noise rule:

    noise = the larger of range(A) and range(B), range = max - min;
    "within noise" when |mean(B) - mean(A)| <= noise,
    else "B better" or "B worse" (beyond noise).

With one round there is no range and no verdict.
"""

import datetime
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys

from report import fmt as fmt_figure

CACHE = "/var/tmp/squtun-bench"

# key, label, higher is better, how to read it from a squtun record
FIGURES = [
    ("tcp1_gbit_s", "TCP 1 stream Gbit/s", True, lambda r: r["tcp1"]["gbit_s"]),
    ("tcp1_cpu_s_per_gb", "CPU s/GB (TCP 1 stream)", False, lambda r: r["tcp1"]["cpu_s_per_gb"]),
    ("tcp4_gbit_s", "TCP 4 streams Gbit/s", True, lambda r: r["tcp4"]["gbit_s"]),
    ("tcp4_cpu_s_per_gb", "CPU s/GB (TCP 4 streams)", False, lambda r: r["tcp4"]["cpu_s_per_gb"]),
    ("udp64_kpps", "UDP 64 B kpps", True, lambda r: r["udp64"]["pps_received"] / 1e3),
    ("rtt_avg_ms", "RTT avg ms", False, lambda r: r["ping"]["avg_ms"]),
    ("peak_rss_mib", "peak RSS MiB (helper + worker, larger end)", False,
     lambda r: r["rss"]["max_end_kib"] / 1024),
    ("rss_anon_mib", "RssAnon MiB at the end (helper + worker, larger end)", False,
     lambda r: max_end(r, "rssanon_kib") / 1024),
    ("rss_file_mib", "RssFile MiB at the end (helper + worker, larger end)", False,
     lambda r: max_end(r, "rssfile_kib") / 1024),
]


def max_end(rec, field):
    per_end = {}
    for p in rec["rss"]["processes"]:
        per_end[p["end"]] = per_end.get(p["end"], 0) + p[field]
    return max(per_end.values())


class Side:
    def __init__(self, name, spec):
        self.name = name        # "A" or "B"
        self.spec = spec        # what was given on the command line
        self.commit = None      # full hash when spec is a revision
        self.binary = None
        self.attack = None      # squtun-attack, for the allocation check
        self.tests = None       # the tree whose Tests/e2e/t_alloc.sh applies
        self.sha256 = None
        self.staged = None      # the copy measured (stage())

    def describe(self):
        what = f"revision {self.commit[:12]}" if self.commit else "binary"
        return f"{self.spec} ({what})"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stage(side, workroot):
    """Copies the side's binary into the work directory: both sides' files
    on one file system, written the same way. Returns the copy's path."""
    d = os.path.join(workroot, "bin-" + side.name)
    os.makedirs(d)
    os.chmod(d, 0o755)
    path = os.path.join(d, "squtun")
    shutil.copyfile(side.binary, path)
    os.chmod(path, 0o755)
    return path


def uncache(path):
    """Drops the file's pages from the page cache, so that each measurement
    faults the binary in from disk. How the pages got into the cache (the
    linker's or cp's writes, an earlier read) decides how large the folios
    are and with them the file-backed resident set: the same binary in two
    files was measured 1.5 MiB apart without this."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def git(root, *args):
    return subprocess.run(["git", "-C", root] + list(args), capture_output=True, text=True, timeout=120)


def resolve(name, spec, root, abort):
    """A path to an executable file is a binary; anything else must name a
    commit of the repository at root."""
    side = Side(name, spec)
    if os.path.isfile(spec):
        if not os.access(spec, os.X_OK):
            raise abort(f"{name}: {spec} is not executable")
        side.binary = os.path.abspath(spec)
        side.tests = root
        sibling = os.path.join(os.path.dirname(side.binary), "squtun-attack")
        side.attack = sibling if os.access(sibling, os.X_OK) else None
        return side
    p = git(root, "rev-parse", "--verify", "--quiet", spec + "^{commit}")
    if p.returncode != 0:
        raise abort(f"{name}: {spec!r} is neither an executable file nor a revision of {root}")
    side.commit = p.stdout.strip()
    return side


def build(side, root, cache, swift, with_attack, say, abort):
    """Builds side.commit in release into CACHE/<commit>/ (the revision's
    files from `git archive`, its own scripts/build-release, a scratch
    directory of its own) unless a finished build is there. The binaries
    are copied to CACHE/<commit>/bin/ last, so their presence means done."""
    d = os.path.join(cache, side.commit)
    os.makedirs(d, exist_ok=True)
    bindir = os.path.join(d, "bin")
    side.binary = os.path.join(bindir, "squtun")
    side.attack = os.path.join(bindir, "squtun-attack") if with_attack else None
    side.tests = os.path.join(d, "src")
    with open(os.path.join(d, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)     # another bench run building the same commit
        if all(os.access(b, os.X_OK) for b in (side.binary, side.attack) if b):
            say(f"bench: {side.name}: cached build of {side.commit[:12]} in {d}")
            return
        src = side.tests
        if not os.path.isfile(os.path.join(src, "Package.swift")):
            tmp = src + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            archive = subprocess.Popen(["git", "-C", root, "archive", side.commit], stdout=subprocess.PIPE)
            untar = subprocess.run(["tar", "-x", "-C", tmp], stdin=archive.stdout, capture_output=True,
                                   timeout=300)
            archive.stdout.close()
            if archive.wait(60) != 0 or untar.returncode != 0:
                raise abort(f"{side.name}: git archive {side.commit[:12]} failed: {untar.stderr[-300:]!r}")
            os.rename(tmp, src)
        script = os.path.join(src, "scripts", "build-release")
        if not os.access(script, os.X_OK):
            raise abort(f"{side.name}: {side.commit[:12]} has no scripts/build-release: too old for this mode")
        env = dict(os.environ, SWIFT=swift)
        scratch = os.path.join(d, "scratch")
        say(f"bench: {side.name}: building {side.commit[:12]} (scripts/build-release {scratch})")
        p = subprocess.run([script, scratch], cwd=src, env=env, capture_output=True, text=True, timeout=3600)
        if p.returncode != 0:
            raise abort(f"{side.name}: build of {side.commit[:12]} failed:\n" + (p.stdout + p.stderr)[-3000:])
        built = {"squtun": p.stdout.strip().splitlines()[-1]}
        if with_attack:
            flags = ["-c", "release", "--product", "squtun-attack", "--scratch-path", scratch + "-attack"]
            p = subprocess.run([swift, "build"] + flags, cwd=src, capture_output=True, text=True, timeout=3600)
            q = subprocess.run([swift, "build"] + flags + ["--show-bin-path"], cwd=src, capture_output=True,
                               text=True, timeout=600)
            if p.returncode != 0 or q.returncode != 0:
                raise abort(f"{side.name}: squtun-attack of {side.commit[:12]} failed:\n"
                            + (p.stdout + p.stderr)[-2000:])
            built["squtun-attack"] = os.path.join(q.stdout.strip().splitlines()[-1], "squtun-attack")
        os.makedirs(bindir, exist_ok=True)
        for name in ("squtun-attack", "squtun"):      # squtun last: its presence means done
            if name in built:
                shutil.copy2(built[name], os.path.join(bindir, name + ".tmp"))
                os.rename(os.path.join(bindir, name + ".tmp"), os.path.join(bindir, name))


def schedule(rounds, sides):
    """[(round, side)]: A B, B A, A B, ... so that a steady drift of the
    machine over two rounds favours neither side."""
    out = []
    for r in range(1, rounds + 1):
        pair = sides if r % 2 else sides[::-1]
        out += [(r, s) for s in pair]
    return out


def figures(rec):
    out = {}
    for key, _, _, get in FIGURES:
        try:
            out[key] = get(rec)
        except (KeyError, TypeError):
            out[key] = None
    try:
        t = rec["tcp1"]
        out["host_busy_pct_tcp1"] = 100 * t["host_busy_s"] / (t["wall_s"] * os.cpu_count())
    except (KeyError, TypeError, ZeroDivisionError):
        out["host_busy_pct_tcp1"] = None
    return out


def offload(rec):
    """The tun offloads each end reported in `squtun status` ("?" when this
    squtun's status has no such field)."""
    ends = ((rec.get("details") or {}).get("status") or {})
    modes = {str(ends[e].get("offload", "?")) for e in sorted(ends)}
    return " / ".join(sorted(modes)) if modes else "?"


def summarize(measured, sides):
    """Per figure: each side's mean, min, max and n; B - A; the noise and
    the verdict of the rule in the module docstring; and in how many rounds
    (both sides measured) B beat A."""
    out = []
    for key, label, higher, _ in FIGURES:
        per = {}
        for s in sides:
            v = [m["figures"][key] for m in measured if m["side"] == s.name and m["figures"][key] is not None]
            per[s.name] = {"n": len(v), "mean": sum(v) / len(v) if v else None,
                           "min": min(v) if v else None, "max": max(v) if v else None}
        a, b = per["A"], per["B"]
        row = {"figure": key, "label": label, "higher_is_better": higher, "A": a, "B": b,
               "diff": None, "diff_pct": None, "noise": None, "verdict": "not measured"}
        if a["n"] and b["n"]:
            row["diff"] = b["mean"] - a["mean"]
            row["diff_pct"] = 100 * row["diff"] / a["mean"] if a["mean"] else None
            if min(a["n"], b["n"]) < 2:
                row["verdict"] = "no verdict (one value: no range)"
            else:
                row["noise"] = max(a["max"] - a["min"], b["max"] - b["min"])
                if abs(row["diff"]) <= row["noise"]:
                    row["verdict"] = "within noise"
                else:
                    row["verdict"] = "B better" if (row["diff"] > 0) == higher else "B worse"
        wins = rounds = 0
        for r in sorted({m["round"] for m in measured}):
            v = {m["side"]: m["figures"][key] for m in measured if m["round"] == r}
            if v.get("A") is not None and v.get("B") is not None:
                rounds += 1
                wins += (v["B"] > v["A"]) if higher else (v["B"] < v["A"])
        row["b_better_rounds"] = [wins, rounds]
        out.append(row)
    return out


def fmt(v, digits=4):
    return fmt_figure(v, digits, smallest=0.001)


def report(doc):
    sides, measured, summary = doc["sides"], doc["measurements"], doc["summary"]
    load = lambda l: f"{l[0]:.2f}" if l else "—"  # noqa: E731
    lines = [doc["header"], "",
             "| side | given | commit | binary | sha256 | offload |", "|---|---|---|---|---|---|"]
    for s in sides:
        modes = sorted({m["offload"] for m in measured if m["side"] == s["name"]})
        lines.append(f"| {s['name']} | `{s['spec']}` | {(s['commit'] or '—')[:12]} | `{s['binary']}` | "
                     f"{s['sha256'][:16]} | {', '.join(modes) or '—'} |")
    if sides[0]["sha256"] == sides[1]["sha256"]:
        lines += ["", "A and B are the same binary: every difference below is noise."]
    head = ["#", "round", "side", "load start", "load end", "host busy % (TCP 1)"] + [f[1] for f in FIGURES]
    lines += ["", "Each measurement:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, m in enumerate(measured, 1):
        f = m["figures"]
        cells = [str(i), str(m["round"]), m["side"], load(m["loadavg_start"]), load(m["loadavg_end"]),
                 fmt(f["host_busy_pct_tcp1"], 3)] + [fmt(f[k[0]]) for k in FIGURES]
        if m["error"]:
            cells.append("**" + m["error"].splitlines()[0][:160].replace("|", "/") + "**")
        lines.append("| " + " | ".join(cells) + " |")
    head = ["figure", "A mean", "A min–max", "B mean", "B min–max", "B − A", "B − A %", "noise",
            "B better in rounds", "verdict"]
    lines += ["", "Summary:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary:
        a, b = r["A"], r["B"]
        span = lambda x: f"{fmt(x['min'])}–{fmt(x['max'])} (n={x['n']})" if x["n"] else "—"  # noqa: E731
        pct = f"{r['diff_pct']:+.1f} %" if r["diff_pct"] is not None else "—"
        verdict = r["verdict"] if r["verdict"] in ("within noise",) or r["noise"] is None else f"**{r['verdict']}**"
        diff = ("+" if r["diff"] and r["diff"] > 0 else "") + fmt(r["diff"])
        lines.append(f"| {r['label']} ({'higher' if r['higher_is_better'] else 'lower'} is better) | "
                     f"{fmt(a['mean'])} | {span(a)} | {fmt(b['mean'])} | {span(b)} | {diff} | {pct} | "
                     f"{fmt(r['noise'])} | {r['b_better_rounds'][0]} of {r['b_better_rounds'][1]} | {verdict} |")
    if doc.get("alloc"):
        lines += ["", "Allocations per packet (the side's own Tests/e2e/t_alloc.sh on the binary measured):", ""]
        for name, a in doc["alloc"].items():
            lines.append(f"- {name}: {a['verdict']}" + (f" — {a['line']}" if a.get("line") else ""))
    lines += ["", "Noise rule: per figure, noise = the larger of the two sides' ranges (max − min over "
              "their rounds); |B − A| ≤ noise is \"within noise\". Rounds alternate A B, B A, …; "
              "\"B better in rounds\" counts the rounds in which B's figure beat A's. Load: "
              "/proc/loadavg (1 min) at the start and end of each measurement; host busy %: all CPUs' "
              "busy time during the 1-stream TCP run (tunnel, iperf3 and anything else on the machine)."]
    return "\n".join(lines)


def alloc_check(side, run_id, n, say):
    """The side's own t_alloc.sh against the binary measured: "0 allocations
    per packet" must still hold for it."""
    res = {"test": os.path.join(side.tests, "Tests", "e2e", "t_alloc.sh"), "verdict": None, "line": None}
    if not side.attack:
        res["verdict"] = "not run: no squtun-attack next to the binary"
        return res
    env = dict(os.environ, SQUTUN=side.binary, ATTACK=side.attack, E2E_ID=f"{run_id}{n}")
    say(f"bench: {side.name}: {res['test']}")
    p = subprocess.Popen(["bash", res["test"]], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        p.terminate()       # bash runs the test's EXIT trap: its namespaces go
        try:
            out, _ = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        out += "\n(no exit within 300 s)"
    except BaseException:
        p.terminate()       # stopped by a signal: the test cleans up after itself
        p.wait(30)
        raise
    rc = p.returncode
    res["output"] = out[-4000:]
    res["exit"] = rc
    hit = [l.strip() for l in out.splitlines() if l.strip().startswith(("ok", "FAIL")) and "no allocation" in l]
    res["line"] = "; ".join(hit) or None
    res["verdict"] = "passed" if rc == 0 and hit and all(h.startswith("ok") for h in hit) else "FAILED"
    return res


def main(args, ctx):
    """ctx: what bench/run shares (system: the squtun system measured,
    bench_one, ensure_packages, find_swift, guard, loadavg, say, Abort,
    root, packages)."""
    say, abort = ctx.say, ctx.Abort
    try:
        sides = [resolve(n, s, ctx.root, abort) for n, s in zip("AB", args.compare)]
    except abort as e:
        say(f"bench/run: {e}")
        return 64
    run_id = str(os.getpid())
    budget = 3600 + 2 * args.rounds * (3 * args.seconds + args.pings // 50 + 180) + (900 if args.alloc else 0)
    ctx.guard(budget)
    started = datetime.datetime.now(datetime.timezone.utc)
    measured, alloc, failed = [], {}, False
    try:
        ctx.ensure_packages(ctx.packages + (["gcc", "libc6-dev"] if args.alloc and not shutil.which("cc") else []))
        swift = None
        for s in sides:
            if s.commit:
                swift = swift or ctx.find_swift()
                build(s, ctx.root, args.cache, swift, args.alloc, say, abort)
            s.sha256 = sha256(s.binary)
            s.staged = stage(s, ctx.workroot)
        say(f"bench: A = {sides[0].describe()}, B = {sides[1].describe()}; {args.rounds} round(s), "
            f"{args.seconds} s per iperf3 run, {args.pings} pings")
        for i, (rnd, s) in enumerate(schedule(args.rounds, sides), 1):
            say(f"bench: round {rnd}, {s.name} ({i} of {2 * args.rounds})")
            uncache(s.staged)
            load0 = ctx.loadavg()
            rec = ctx.bench_one(s.staged, i, f"{i:02d}{s.name}")
            rec["version"] = s.describe()
            load1 = ctx.loadavg()
            errors = [rec["error"]] if rec["error"] else [f"{k}: {e}" for k, e in rec.get("test_errors", {}).items()]
            failed |= bool(errors)
            measured.append({"round": rnd, "side": s.name, "loadavg_start": load0, "loadavg_end": load1,
                             "figures": figures(rec), "offload": offload(rec),
                             "error": "; ".join(errors) or None, "record": rec})
        if args.alloc:
            for n, s in enumerate(sides):
                alloc[s.name] = alloc_check(s, run_id, 90 + n, say)
                failed |= alloc[s.name]["verdict"] != "passed"
    except abort as e:
        say(f"bench: aborted: {e}")
        failed = True
        if not measured:
            return 1
    finally:
        ctx.guard(0)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                      if l.startswith("model name")), "?")
    system = "" if ctx.system == "squtun" else f" ({ctx.system})"
    header = (f"squtun bench{system}, two builds side by side, {stamp}: {platform.node()}, Linux {platform.release()}, "
              f"{os.cpu_count()} × {cpu_model}; {args.rounds} round(s) A B / B A alternating, "
              f"iperf3 {args.seconds} s per run, {args.pings} pings at 0.01 s. "
              f"Command: `{' '.join(['bench/run'] + sys.argv[1:])}`")
    if any(max(m["loadavg_start"][0], m["loadavg_end"][0]) > 0.5 for m in measured):
        header += ("\n\n**Noisy: the machine was not idle (load average above 0.5 during some measurement); "
                   "the ranges below say how much.**")
    side_docs = [{"name": s.name, "spec": s.spec, "commit": s.commit, "binary": s.binary,
                  "sha256": s.sha256 or "?", "staged": s.staged,
                  "attack": s.attack} for s in sides]
    doc = {"timestamp": stamp, "command": ["bench/run"] + sys.argv[1:], "header": header,
           "host": {"hostname": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
                    "cpu_model": cpu_model},
           "seconds": args.seconds, "pings": args.pings, "rounds": args.rounds,
           "extra_squtun_args": args.squtun_extra, "sides": side_docs, "measurements": measured,
           "summary": summarize(measured, sides), "alloc": alloc}
    md = report(doc)
    print(md)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{stamp}-compare.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    with open(os.path.join(args.out, f"{stamp}-compare.md"), "w") as f:
        f.write(md + "\n")
    say(f"bench: wrote {os.path.relpath(path, ctx.root)}")
    complete = len(measured) == 2 * args.rounds
    return 1 if failed or not complete else 0
