"""The world every system runs in: two network namespaces joined by a veth
pair (underlay 198.51.100.1 <-> 198.51.100.2, MTU 1500), and the processes
a system starts in them. Nothing here sends a packet anywhere else: every
address used is inside these two namespaces.

Everything is torn down by name and PID: the processes this World spawned
(SIGTERM, then SIGKILL after 3 s), then any process still inside one of its
namespaces (`ip netns pids`), then the namespaces themselves (which takes
the veth pair and every tun device with them), then the files registered
with `w.remove_later`.
"""

import os
import re
import signal
import subprocess
import time

UNDER_A = "198.51.100.1"
UNDER_B = "198.51.100.2"
UNDER_PREFIX = 24
UNDER_MTU = 1500


class SetupError(Exception):
    pass


def run(cmd, timeout=30, check=True, env=None, input=None):
    """Runs cmd (a list) to completion within timeout seconds."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=env, input=input)
    except subprocess.TimeoutExpired:
        raise SetupError(f"{' '.join(cmd)}: no exit within {timeout} s")
    if check and p.returncode != 0:
        msg = (p.stderr.strip() or p.stdout.strip())[-600:]
        raise SetupError(f"{' '.join(cmd)}: exit {p.returncode}: {msg}")
    return p


def first_line(cmd, timeout=10):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"? ({e})"
    out = (p.stdout.strip() or p.stderr.strip())
    return out.splitlines()[0].strip() if out else "?"


def dpkg_version(pkg):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else "?"


class Proc:
    """A process whose CPU time and peak RSS belong to the tunnel."""

    def __init__(self, pid, end, role):
        self.pid = pid
        self.end = end      # "a" or "b"
        self.role = role    # "daemon", "helper", "worker"

    def __repr__(self):
        return f"{self.role}@{self.end}:{self.pid}"


class Tunnel:
    def __init__(self, addr_a, addr_b, mtu, procs, notes=None):
        self.addr_a = addr_a    # A's address inside the tunnel
        self.addr_b = addr_b    # B's address: iperf3 server and ping target
        self.mtu = mtu          # the tun MTU actually set
        self.procs = procs      # [Proc]: whose CPU and RSS are counted
        self.notes = notes or []


class World:
    def __init__(self, run_id, index, workdir, opts):
        tag = f"{run_id}{index}"
        self.ns_a = f"sqbench-a-{tag}"
        self.ns_b = f"sqbench-b-{tag}"
        self.veth_a = f"sqba{tag}"[:15]
        self.veth_b = f"sqbb{tag}"[:15]
        self.tag = tag
        self.index = index
        self.work = workdir
        self.opts = opts          # dict: squtun binary, test user, ...
        self.popens = []          # [(name, Popen)]
        self.files = []           # files outside self.work to remove
        self.made = []            # namespaces created
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)

    # --- namespaces ------------------------------------------------------
    def ns(self, end):
        return self.ns_a if end == "a" else self.ns_b

    def under(self, end):
        return UNDER_A if end == "a" else UNDER_B

    def create(self):
        for ns in (self.ns_a, self.ns_b):
            run(["ip", "netns", "add", ns])
            self.made.append(ns)
        run(["ip", "link", "add", self.veth_a, "netns", self.ns_a, "type", "veth",
             "peer", "name", self.veth_b, "netns", self.ns_b])
        for end, dev in (("a", self.veth_a), ("b", self.veth_b)):
            ns = self.ns(end)
            run(["ip", "-n", ns, "addr", "add", f"{self.under(end)}/{UNDER_PREFIX}", "dev", dev])
            run(["ip", "-n", ns, "link", "set", dev, "mtu", str(UNDER_MTU), "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def sh(self, end, cmd, timeout=30, check=True, env=None, input=None):
        """Runs cmd inside the namespace of end ("a"/"b")."""
        return run(["ip", "netns", "exec", self.ns(end)] + cmd, timeout=timeout,
                   check=check, env=env, input=input)

    def spawn(self, end, name, cmd, env=None):
        """Starts a long-running cmd inside end's namespace, output to
        work/NAME.log. `ip netns exec` execs the command, so the Popen's pid
        is the program's own pid."""
        log = open(os.path.join(self.work, f"{name}.log"), "ab")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(end)] + cmd,
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             env=full_env, start_new_session=True)
        log.close()
        self.popens.append((name, p))
        return p

    def link_mtu(self, end, dev):
        out = run(["ip", "-n", self.ns(end), "-o", "link", "show", "dev", dev]).stdout
        m = re.search(r" mtu (\d+)", out)
        if not m:
            raise SetupError(f"no MTU for {dev} in {self.ns(end)}: {out.strip()}")
        return int(m.group(1))

    def has_addr(self, end, dev, addr):
        out = run(["ip", "-n", self.ns(end), "-4", "-o", "addr", "show", "dev", dev],
                  check=False).stdout
        return f" {addr}/" in out or f" {addr} " in out

    def log_tail(self, name, lines=15):
        try:
            with open(os.path.join(self.work, f"{name}.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def remove_later(self, path):
        self.files.append(path)

    def wait_ping(self, addr, timeout=30, end="a"):
        """Pings addr from end until one reply arrives or timeout seconds
        have passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.sh(end, ["ping", "-c", "1", "-W", "1", addr], check=False, timeout=5)
            if p.returncode == 0:
                return True
            for name, po in self.popens:
                if po.poll() is not None and name.startswith("tun-"):
                    raise SetupError(f"{name} exited with status {po.returncode}:\n"
                                     + self.log_tail(name))
            time.sleep(0.2)
        return False

    def wait_for(self, pred, timeout, step=0.1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if pred():
                    return True
            except OSError:
                pass
            time.sleep(step)
        return False

    # --- teardown --------------------------------------------------------
    def stop(self, name, p, grace=3.0):
        if p.poll() is not None:
            return
        try:
            p.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                p.kill()
            except ProcessLookupError:
                pass
            try:
                p.wait(2)
            except subprocess.TimeoutExpired:
                pass

    def destroy(self):
        # Newest first: clients before servers, iperf3 before the tunnel.
        for name, p in reversed(self.popens):
            self.stop(name, p)
        # Whatever is still inside our namespaces is ours (a worker whose
        # helper was SIGKILLed, a daemon's child): by PID.
        for ns in self.made:
            for _ in range(2):
                r = run(["ip", "netns", "pids", ns], check=False, timeout=10)
                pids = [int(x) for x in r.stdout.split() if x.isdigit()]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGTERM if _ == 0 else signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(1.0)
        for ns in self.made:
            run(["ip", "netns", "del", ns], check=False, timeout=20)
        self.made = []
        for f in self.files:
            try:
                os.unlink(f)
            except OSError:
                pass
        self.files = []
        self.popens = []


def children(pid):
    """Direct children of pid (all its threads' children)."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out
