# Shared helpers for squtun's end-to-end tests (sourced, bash).
#
# Each test builds its own world: two network namespaces joined by a veth
# pair on 198.51.100.0/24 (the underlay), a pre-created tun device in each
# with 10.77.0.1/30 and 10.77.0.2/30 (the tunnel), and squtun on both ends.
# With E2E_MODE=tap the world is layer 2 instead: a TAP device ($DEV = tap0)
# in each namespace, the same addresses (one subnet, ARP over the tunnel),
# and every squtun started by start_squtun gets --tap.
# Traffic never leaves those namespaces. Everything a test starts is
# cleaned up by name or PID in `cleanup` (run from an EXIT trap).

set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../summary.sh"

E2E_ID=${E2E_ID:-$$}
NS_A="sqt-a-$E2E_ID"
NS_B="sqt-b-$E2E_ID"
VETH_A="sqa$E2E_ID"
VETH_B="sqb$E2E_ID"
UNDER_A=198.51.100.1
UNDER_B=198.51.100.2
TUN_A=10.77.0.1
TUN_B=10.77.0.2
TEST_USER=${TEST_USER:-squtun-test}
E2E_MODE=${E2E_MODE:-tun}
case $E2E_MODE in
    tun) DEV=tun0 MODE_ARGS=() ;;
    tap) DEV=tap0 MODE_ARGS=(--tap) ;;
    *) echo "lib.sh: E2E_MODE must be tun or tap, not $E2E_MODE" >&2; exit 1 ;;
esac
WORK=$(mktemp -d "/tmp/squtun-e2e.$E2E_ID.XXXXXX")
chmod 755 "$WORK"
EMPTY="$WORK/empty"
SQUTUN=${SQUTUN:?set SQUTUN to the squtun binary}
PIDS=()

# A run in TAP mode is named NAME/tap (and NAME/tap/SUITE per suite).
T_NAME=$(basename "$0" .sh)
[ "$E2E_MODE" = tap ] && T_NAME="$T_NAME/tap"
T_PASS=0
T_FAIL=0

log() { printf '    %s\n' "$*"; }
pass() { T_PASS=$((T_PASS + 1)); printf '  ok    %s\n' "$*"; }
fail() { T_FAIL=$((T_FAIL + 1)); printf '  FAIL  %s\n' "$*"; }
check() { # check "description" command...
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# The machine is prepared once by scripts/test-setup (packages, test
# users); a test only checks, and stops with one line saying so.
setup_missing() {
    fail "$* missing: run scripts/test-setup first"
    finish
    exit 1
}
need_user() { id -u "$1" >/dev/null 2>&1 || setup_missing "user $1"; }
# need_pkgs PKG...: the Debian packages a test needs are installed.
need_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] || setup_missing "package ${missing[*]}"
}

# make_underlay: the two namespaces and the veth pair between them.
make_underlay() {
    # Pids wrap (pid_max is 32768 here), so a run killed before its cleanup
    # may have left namespaces with our names: reusing them would test a
    # half-configured world. They are ours by name; start from scratch.
    local ns
    for ns in "$NS_A" "$NS_B"; do
        ip netns del "$ns" 2>/dev/null
        ip netns add "$ns" || { echo "make_underlay: cannot create namespace $ns" >&2; exit 1; }
    done
    ip link add "$VETH_A" netns "$NS_A" type veth peer name "$VETH_B" netns "$NS_B" ||
        { echo "make_underlay: cannot create the veth pair" >&2; exit 1; }
    ip -n "$NS_A" addr add "$UNDER_A/24" dev "$VETH_A"
    ip -n "$NS_B" addr add "$UNDER_B/24" dev "$VETH_B"
    for ns in "$NS_A" "$NS_B"; do
        ip -n "$ns" link set lo up
    done
    ip -n "$NS_A" link set "$VETH_A" up
    ip -n "$NS_B" link set "$VETH_B" up
}

make_world() {
    need_user "$TEST_USER"
    mkdir -p "$EMPTY" && chmod 755 "$EMPTY"
    make_underlay
    local mtu
    # The suite's MTU when the test runs once per suite (ciphers.sh sets CIPHER).
    mtu=$("$SQUTUN" -m 1500 ${CIPHER:+--cipher "$CIPHER"} "${MODE_ARGS[@]}")
    make_tun "$NS_A" "$TUN_A" "$TUN_B" "$mtu"
    make_tun "$NS_B" "$TUN_B" "$TUN_A" "$mtu"
}

# join_namespace NS_S NS I ADDR_S ADDR_C: a fresh namespace NS (lo up)
# joined to NS_S (a server's) by a veth pair: sqsI<id> in NS_S with
# ADDR_S/29, sqcI<id> in NS with ADDR_C/29, both up. (cleanup deletes
# only NS_A and NS_B: the caller deletes these.)
join_namespace() {
    local s=$1 ns=$2 i=$3
    ip netns del "$ns" 2>/dev/null
    ip netns add "$ns" && ip -n "$ns" link set lo up
    ip link add "sqs$i$E2E_ID" netns "$s" type veth peer name "sqc$i$E2E_ID" netns "$ns"
    ip -n "$s" addr add "$4/29" dev "sqs$i$E2E_ID"
    ip -n "$ns" addr add "$5/29" dev "sqc$i$E2E_ID"
    ip -n "$s" link set "sqs$i$E2E_ID" up
    ip -n "$ns" link set "sqc$i$E2E_ID" up
}

make_tun() { # ns local-addr peer-addr mtu: $DEV, a tun or TAP device (E2E_MODE)
    ip -n "$1" tuntap add dev "$DEV" mode "$E2E_MODE" user "$TEST_USER"
    ip -n "$1" addr add "$2/30" dev "$DEV"
    ip -n "$1" link set "$DEV" mtu "$4" up
}

# start_squtun NS NAME ARGS...: runs squtun in the foreground (-f) inside NS
# with the test's chroot/user/pid file; its stderr goes to $WORK/NAME.log.
# $LAUNCH, if set, is put in front of the command (a wrapper that execs it).
start_squtun() {
    local ns=$1 name=$2; shift 2
    ip netns exec "$ns" ${LAUNCH:-} "$SQUTUN" -f -u "$TEST_USER" --chroot "$EMPTY" \
        --pidfile "$WORK/$name.pid" --control "$WORK/$name.sock" "${MODE_ARGS[@]}" "$@" >>"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    eval "PID_$name=$pid"
}

genkey() { rm -f "$1"; "$SQUTUN" genkey "$1"; }

# need_attack: sets ATTACK to the squtun-attack beside $SQUTUN (unless set);
# without it the script fails with one line and stops.
need_attack() {
    ATTACK=${ATTACK:-$(dirname "$SQUTUN")/squtun-attack}
    [ -x "$ATTACK" ] || { fail "squtun-attack not found at $ATTACK (set ATTACK)"; finish; exit 1; }
}

# tso_state NS: "on" or "off", the TSO setting of NS's $DEV (ethtool).
tso_state() { ip netns exec "$1" ethtool -k "$DEV" | awk -F': ' '$1 == "tcp-segmentation-offload" {print $2}'; }

# status NS NAME: `squtun status` of instance NAME.
status_of() { ip netns exec "$1" "$SQUTUN" status "$DEV" --control "$WORK/$2.sock"; }

# counter NS NAME FIELD: one number from `squtun status`.
counter() { status_of "$1" "$2" | awk -F': ' -v f="$3" '$1==f {print $2}'; }

# wait_for SECONDS command...: polls every 0.1 s.
wait_for() {
    local t=$1; shift
    local n=0
    while [ $n -lt $((t * 10)) ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
        n=$((n + 1))
    done
    return 1
}

ping_from() { # ns addr [count]
    ip netns exec "$1" ping -c "${3:-1}" -W 1 -i 0.2 "$2" >/dev/null 2>&1
}

# alive PID: the process exists and is not a zombie. A daemon's parent is
# init (or whatever reaps orphans here), which may take its time to reap:
# an exited daemon can linger as a zombie, and kill -0 still succeeds on it.
alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# dead PID: the opposite, for wait_for.
dead() { ! alive "$1"; }

worker_of() { # helper pid -> worker pid (its only child)
    cat "/proc/$1/task/$1/children" 2>/dev/null | awk '{print $1}'
}

# reap PID [SECONDS]: the exit status of a child this test started, after
# waiting at most SECONDS (default 5) for it to end by itself and then
# SIGKILLing it, so that a check that just failed cannot hang the test.
reap() {
    wait_for "${2:-5}" dead "$1" || kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

stop_pid() { # pid: SIGTERM, then SIGKILL after 3 s
    local p=$1
    kill -0 "$p" 2>/dev/null || return 0
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
}

cleanup() {
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    # Daemonized instances recorded their pid in a pid file.
    for f in "$WORK"/*.pid; do [ -f "$f" ] && stop_pid "$(cat "$f")"; done
    ip netns del "$NS_A" 2>/dev/null
    ip netns del "$NS_B" 2>/dev/null
    [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}

# diagnose NAME...: what a failed transfer leaves to go on, printed next to
# its FAIL line (CI shows only part of a run's output): a ping each way,
# then per instance whether its processes live, its non-zero counters,
# the tun device's kernel counters and the last lines of its log.
diagnose() {
    local name ns pid
    ping_from "$NS_A" "$TUN_B" && log "diagnose: ping A → B ok" || log "diagnose: ping A → B FAILED"
    ping_from "$NS_B" "$TUN_A" && log "diagnose: ping B → A ok" || log "diagnose: ping B → A FAILED"
    for name in "$@"; do
        ns=$NS_A; [ "$name" = b ] && ns=$NS_B
        pid=$(eval "echo \${PID_$name:-}")
        log "diagnose $name: pid ${pid:-?} $(alive "${pid:-0}" && echo alive || echo dead), worker $(worker_of "${pid:-0}")"
        log "diagnose $name: $(status_of "$ns" "$name" 2>&1 | grep -vE ': (0|0\.0)$|^(interface|own-session|peer-session):' | tr '\n' ' ')"
        log "diagnose $name: $DEV $(ip -n "$ns" -s -o link show "$DEV" 2>&1 | tr -s ' ' | cut -c1-400)"
        log "diagnose $name: kernel $(ip netns exec "$ns" nstat -az TcpInSegs TcpOutSegs TcpRetransSegs TcpInCsumErrors UdpInDatagrams UdpInErrors UdpInCsumErrors IpInDiscards IpInHdrErrors 2>&1 | awk 'NR > 1 {printf "%s=%s ", $1, $2}')"
        tail -n 4 "$WORK/$name.log" 2>/dev/null | sed "s/^/    diagnose $name log: /"
    done
}

dump_logs() {
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "    --- $f"; sed 's/^/    | /' "$f" | tail -n 30; }; done
}

# finish: the test's last line, "NAME: N passed, M failed" (Tests/summary.sh;
# NAME is the script's, e.g. t_basic).
finish() {
    [ "$T_FAIL" -gt 0 ] && dump_logs
    [ "${KEEP_WORK:-0}" = 1 ] && log "(logs kept in $WORK)"
    summary_line "$T_NAME" "$T_PASS" "$T_FAIL"
    [ "$T_FAIL" -eq 0 ]
}
