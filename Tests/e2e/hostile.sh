#!/usr/bin/env bash
# The hostile-network suite (docs/HOSTILE.md): while a real tunnel carries
# live traffic, an attacker on the underlay replays, tampers with, forges,
# reflects, skews and resends old-session datagrams (squtun-attack), and we
# count on the tun side — independently of squtun — what got through (must
# be nothing), and check that squtun's drop counters grew by exactly the
# number the protocol prescribes for each class. Then load and faults:
# a junk flood during iperf3, a flood of new-session forgeries during
# pings, RSS and fds around a long flood, kill -9 and
# restart of either end, a roaming client, a 10 s underlay blackhole, and
# the tun device deleted under a running daemon. Ends with a table.
#
#   SQUTUN=path/to/squtun [ATTACK=path/to/squtun-attack] bash Tests/e2e/hostile.sh [--quick]
#
# Not named t_*.sh: scripts/e2e does not pick it up; scripts/hostile runs
# the full mode, CI the --quick one. HOSTILE_REPORT=FILE also writes the
# table and figures (markdown) to FILE.
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT

MODE=full
[ "${1:-}" = "--quick" ] && MODE=quick
ATTACK=${ATTACK:-$(dirname "$SQUTUN")/squtun-attack}
if [ ! -x "$ATTACK" ]; then
    fail "squtun-attack not found at $ATTACK (set ATTACK)"
    finish
    exit 1
fi
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3

# Sizes. Full: >= 100,000 adversarial datagrams, 60 s resource flood.
if [ "$MODE" = full ]; then
    CAPN=40 TAMPER_K=40 FORGE_ROUNDS=10 FORGE_N=10000 SKEW_N=1000 OLD_N=3000
    IPERF_S=10 RES_S=60 BLACKHOLE_S=10 MIN_ADVERSARIAL=100000 FORGE_FLOOD_S=20
else
    CAPN=8 TAMPER_K=2 FORGE_ROUNDS=1 FORGE_N=1000 SKEW_N=100 OLD_N=300
    IPERF_S=3 RES_S=5 BLACKHOLE_S=5 MIN_ADVERSARIAL=3000 FORGE_FLOOD_S=9
fi
RATE=${HOSTILE_RATE:-20000}             # adversarial datagrams per second (paced)
FLOOD_RATE=${HOSTILE_FLOOD_RATE:-110000} # junk flood target, datagrams per second
SKEW_S=30                               # -c on both ends
KA=2                                    # -a on both ends
BURST=3000                              # pings that move the replay window (> 1984 + counter span)
PATTERN=4c495645                        # "LIVE": the live pings' data (ping -p), see tunwatch
OTHER=198.51.100.9                      # an address nobody has: "another source"
PORT_A=3456 PORT_B=3457
T0=$SECONDS

echo "hostile: adversarial datagrams, load and faults ($MODE)"
make_world
# No IPv6 on the tuns: router solicitations would be tunnel traffic that is not ours.
for ns in "$NS_A" "$NS_B"; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.tun0.disable_ipv6=1; done
genkey "$WORK/key"
A_ARGS=(-l $PORT_A -p "$UNDER_B" -r $PORT_B -i tun0 -k "$WORK/key" -a $KA -c $SKEW_S)
B_ARGS=(-l $PORT_B -p "$UNDER_A" -r $PORT_A -i tun0 -k "$WORK/key" -a $KA -c $SKEW_S)
start_a() { start_squtun "$NS_A" a "${A_ARGS[@]}"; }
start_b() { start_squtun "$NS_B" b "${B_ARGS[@]}"; }
ns_of() { if [ "$1" = a ]; then echo "$NS_A"; else echo "$NS_B"; fi; }
knows_peer() { local s; s=$(counter "$(ns_of "$1")" "$1" peer-session 2>/dev/null); [ -n "$s" ] && [ "$s" != none ]; }
# Every ping of this suite carries the live pattern, so the tun witness counts it as live.
lping() { # ns addr [count]
    ip netns exec "$1" ping -c "${3:-1}" -W 1 -i 0.2 -p $PATTERN "$2" > /dev/null 2>&1
}
start_a
start_b
check "tunnel up: ping A → B" wait_for 10 lping "$NS_A" "$TUN_B"
check "tunnel up: ping B → A" lping "$NS_B" "$TUN_A" 2

# ---------------------------------------------------------------------------
# Witnesses and live traffic.

RX0_a=$(ip netns exec "$NS_A" cat /sys/class/net/tun0/statistics/rx_packets)
RX0_b=$(ip netns exec "$NS_B" cat /sys/class/net/tun0/statistics/rx_packets)
# tunwatch: AF_PACKET on each tun0, classifies every packet squtun writes
# into it as live (our ping pattern, first time), dup (a live packet seen
# again: a replay that got through), live-other (iperf3) or foreign.
for s in a b; do
    ip netns exec "$(ns_of $s)" "$ATTACK" tunwatch --iface tun0 --state "$WORK/tw.$s" \
        --log "$WORK/tw.$s.log" --pattern $PATTERN --seconds 3000 &
    PIDS+=($!)
done
check "tun witnesses running" wait_for 3 test -s "$WORK/tw.a" -a -s "$WORK/tw.b"
# Live traffic: 20 pings a second each way, with the pattern.
ip netns exec "$NS_A" ping -i 0.05 -W 1 -w 3000 -p $PATTERN "$TUN_B" > "$WORK/live.ab" 2>&1 &
LIVE_AB=$!; PIDS+=($LIVE_AB)
ip netns exec "$NS_B" ping -i 0.05 -W 1 -w 3000 -p $PATTERN "$TUN_A" > "$WORK/live.ba" 2>&1 &
LIVE_BA=$!; PIDS+=($LIVE_BA)
sleep 1

kv() { tr ' ' '\n' < "$1" | awk -F= -v k="$2" '$1==k {print $2; exit}'; }
# A status field of a snapshot; 0 when absent (a counter this squtun does not have).
field() { awk -F': ' -v f="$2" '$1==f {print $2; found=1; exit} END { if (!found) print 0 }' "$1"; }
# quit_counts FILE: "received transmitted" from the live pinger's last SIGQUIT line.
quit_counts() { tr -d '\r' < "$1" | sed -nE 's|^([0-9]+)/([0-9]+) packets.*|\1 \2|p' | tail -n 1; }
rx_of() { ip netns exec "$(ns_of "$1")" cat /sys/class/net/tun0/statistics/rx_packets 2>/dev/null || echo 0; }
# tunsnap: foreign dup live for a, then for b.
tunsnap() {
    local s
    for s in a b; do
        printf '%s %s %s ' "$(kv "$WORK/tw.$s" foreign)" "$(kv "$WORK/tw.$s" dup)" "$(kv "$WORK/tw.$s" live)"
    done
    echo
}
# Kernel UDP InErrors (socket buffer overflows) in a namespace.
kudp() {
    ip netns exec "$1" awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print "kernel-udp-inerrors: " $c["InErrors"] }' /proc/net/snmp
}
snap() { # target file
    status_of "$(ns_of "$1")" "$1" > "$2" 2>&1
    kudp "$(ns_of "$1")" >> "$2"
}

# ---------------------------------------------------------------------------
# The adversarial classes.

REASONS=(malformed reflected old-session bad-mac unknown-sender time-skew replay rate-limited)
ROWS=$WORK/rows; : > "$ROWS"
FIGS=$WORK/figures; : > "$FIGS"
ADVERSARIAL=0
figure() { echo "$*" >> "$FIGS"; log "$*"; }

# atk NS ARGS...: squtun-attack in NS; its lines go to the class's output.
atk() {
    local ns=$1; shift
    if ! ip netns exec "$ns" "$ATTACK" "$@" >> "$WORK/class.out" 2>> "$WORK/attack.err"; then
        CLASS_OK=0
        log "squtun-attack $1 failed: $(tail -n 1 "$WORK/attack.err")"
    fi
}
# Target arguments: B attacked from A's side of the wire, A from B's.
to_b() { echo --to "$UNDER_B:$PORT_B" --own "$OWN" --peer "$PEER" --limit-s $SKEW_S --rate $RATE; }
to_a() { echo --to "$UNDER_A:$PORT_A" --own "$OWN" --peer "$PEER" --limit-s $SKEW_S --rate $RATE; }
AS_A=(--from "$UNDER_A:$PORT_A" --from-peer)   # spoofed: B's peer's own address
AS_B=(--from "$UNDER_B:$PORT_B" --from-peer)   # spoofed: A's peer's own address

# drops_since: DROPS = all drop-<reason> growth and KDROP = kernel UDP
# drops between st.before and st.after.
drops_since() {
    local r
    DROPS=0
    for r in "${REASONS[@]}"; do
        DROPS=$(( DROPS + $(field "$WORK/st.after" "drop-$r") - $(field "$WORK/st.before" "drop-$r") ))
    done
    KDROP=$(( $(field "$WORK/st.after" kernel-udp-inerrors) - $(field "$WORK/st.before" kernel-udp-inerrors) ))
}

# run_class LABEL TARGET FUNCTION: snapshot, attack, snapshot, judge, one table row.
run_class() {
    local label=$1 t=$2 fn=$3
    sleep 0.3
    snap "$t" "$WORK/st.before"
    local before after
    before=($(tunsnap))
    OWN=$(field "$WORK/st.before" own-session)
    PEER=$(field "$WORK/st.before" peer-session)
    : > "$WORK/class.out"
    CLASS_OK=1
    "$fn"
    local -A exp=()
    local sent=0 line kv k v
    while read -r line; do
        case $line in
            sent=*)
                for kv in $line; do
                    k=${kv%%=*}; v=${kv#*=}
                    if [ "$k" = sent ]; then sent=$((sent + v)); else exp[$k]=$(( ${exp[$k]:-0} + v )); fi
                done ;;
        esac
    done < "$WORK/class.out"
    [ -n "${exp[send-failures]:-}" ] && { CLASS_OK=0; log "$label: ${exp[send-failures]} datagrams could not be sent"; }

    # Every datagram sent must end as a drop (or a kernel drop at a full
    # socket buffer): wait, up to 5 s, for squtun to have counted them all.
    local i
    for i in $(seq 50); do
        sleep 0.1
        snap "$t" "$WORK/st.after"
        drops_since >/dev/null
        [ "$DROPS" -ge $((sent - KDROP)) ] && break
    done
    sleep 0.2
    after=($(tunsnap))

    # Tun side: foreign + dup on both tuns (that the witness saw every packet
    # the kernel counted is checked once, at the end, when the tuns are quiet).
    local reached=$(( after[0] - before[0] + after[1] - before[1] + after[3] - before[3] + after[4] - before[4] ))
    local live=$(( after[2] - before[2] + after[5] - before[5] ))

    # Counters: every drop-<reason> grew by exactly the predicted number
    # (unless the kernel itself dropped datagrams at a full socket buffer:
    # then no reason may exceed its prediction and the shortfall is at most
    # the kernel's count).
    local kdrop=$(( $(field "$WORK/st.after" kernel-udp-inerrors) - $(field "$WORK/st.before" kernel-udp-inerrors) ))
    local cok=1 ctext="" r d e total=0
    for r in "${REASONS[@]}"; do
        d=$(( $(field "$WORK/st.after" "drop-$r") - $(field "$WORK/st.before" "drop-$r") ))
        e=${exp[$r]:-0}
        total=$((total + d))
        if [ "$kdrop" -eq 0 ]; then [ "$d" -eq "$e" ] || cok=0; else [ "$d" -le "$e" ] || cok=0; fi
        if [ "$d" -ne 0 ] || [ "$e" -ne 0 ]; then
            ctext+="${ctext:+, }$r +$d"
            [ "$d" -eq "$e" ] || ctext+=" (predicted $e)"
        fi
    done
    [ "$kdrop" -gt 0 ] && { [ "$total" -ge $((sent - kdrop)) ] || cok=0; ctext+="; kernel dropped $kdrop"; }
    if [ "$cok" = 1 ]; then ctext+=" ✓"; else ctext+=" ✗"; fi
    [ "$sent" -gt 0 ] || CLASS_OK=0
    local verdict=PASS
    { [ "$reached" -eq 0 ] && [ "$cok" = 1 ] && [ "$CLASS_OK" = 1 ]; } || verdict=FAIL
    check "$label: $sent datagrams, $reached reached a tun" test "$reached" -eq 0 -a "$CLASS_OK" = 1
    check "$label: drop counters as predicted ($ctext)" test "$cok" = 1
    check "$label: live traffic crossed meanwhile ($live packets)" test "$live" -gt 0
    printf '%s|%s|%s|%s|%s|%s\n' "$label" "$sent" "$reached" "$ctext" "$verdict" "$live" >> "$ROWS"
    ADVERSARIAL=$((ADVERSARIAL + sent))
}

# Replay: genuine A → B datagrams recorded on the wire at A's side and sent
# to B again from A's own address (IP and port spoofed).
c_replay_now() {
    atk "$NS_A" capture --iface "$VETH_A" --dport $PORT_B --src "$UNDER_A" --count $CAPN --timeout 30 \
        --out "$WORK/cap.ab" --immediate $(to_b) "${AS_A[@]}"
}
c_replay_1s() { sleep 1; atk "$NS_A" replay --in "$WORK/cap.ab" $(to_b) "${AS_A[@]}"; }
c_replay_other() { atk "$NS_A" replay --in "$WORK/cap.ab" $(to_b) --from "$OTHER:$PORT_A"; }
c_replay_window() {
    local before after
    before=$(( $(counter "$NS_A" a tx-packets) + $(counter "$NS_A" a keepalives-sent) ))
    ip netns exec "$NS_A" ping -f -c $BURST -w 30 -q -p $PATTERN "$TUN_B" > /dev/null 2>&1
    after=$(( $(counter "$NS_A" a tx-packets) + $(counter "$NS_A" a keepalives-sent) ))
    check "window moved: A sent $((after - before)) datagrams since the capture (> 1984)" test $((after - before)) -gt 1984
    atk "$NS_A" replay --in "$WORK/cap.ab" $(to_b) "${AS_A[@]}"
}
c_tamper() {
    atk "$NS_A" tamper --in "$WORK/cap.ab" --datagrams $TAMPER_K --append 64 $(to_b) "${AS_A[@]}"
}
c_forge_random() {
    atk "$NS_A" forge --kind random --rounds $FORGE_ROUNDS --max-length 2000 $(to_b) --from "$OTHER:40000"
}
c_forge_header() {
    atk "$NS_A" forge --kind header --count $((FORGE_N / 2)) $(to_b) "${AS_A[@]}"
    atk "$NS_A" forge --kind header --count $((FORGE_N / 2)) $(to_b) --from "$OTHER:40001"
}
c_forge_wrongkey() {
    atk "$NS_A" forge --kind wrongkey --count $((FORGE_N / 2)) --inner-dst "$TUN_B" $(to_b) "${AS_A[@]}"
    atk "$NS_A" forge --kind wrongkey --count $((FORGE_N / 2)) --inner-dst "$TUN_B" $(to_b) --from "$OTHER:40002"
}
# Reflect: B's own datagrams (recorded B → A) sent back to B as if from A;
# A's own (the A → B recording) back to A as if from B.
c_reflect_b() {
    atk "$NS_A" capture --iface "$VETH_A" --dport $PORT_A --src "$UNDER_B" --count $CAPN --timeout 30 --out "$WORK/cap.ba"
    atk "$NS_A" reflect --in "$WORK/cap.ba" $(to_b) "${AS_A[@]}"
}
c_reflect_a() { atk "$NS_B" reflect --in "$WORK/cap.ab" $(to_a) "${AS_B[@]}"; }
# Skew: sealed with the real key, the sender's current session and counters
# it used long ago (0..499, > 1984 behind), timestamps 0.5 s inside and
# outside the limit, in the past and the future. Inside: the time check
# passes and the window refuses (replay); outside: time-skew.
skew_all() { # ns session inner-dst target-args...
    local ns=$1 session=$2 inner=$3 o; shift 3
    for o in $((SKEW_S * 1000 - 500)) $((-SKEW_S * 1000 + 500)) $((SKEW_S * 1000 + 500)) $((-SKEW_S * 1000 - 500)); do
        atk "$ns" skew --key "$WORK/key" --session "$session" --offset-ms "$o" --count $SKEW_N \
            --counter-base 0 --counter-span 500 --inner-dst "$inner" "$@"
    done
}
c_skew_b() { skew_all "$NS_A" "$PEER" "$TUN_B" $(to_b) "${AS_A[@]}"; }
c_skew_a() { skew_all "$NS_B" "$PEER" "$TUN_A" $(to_a) "${AS_B[@]}"; }
c_replay_restart() { atk "$NS_A" replay --in "$WORK/cap.r" $(to_b) "${AS_A[@]}"; }
c_old_session() {
    atk "$NS_A" replay --in "$WORK/cap.ab" $(to_b) "${AS_A[@]}"
    atk "$NS_A" replay --in "$WORK/cap.r" $(to_b) "${AS_A[@]}"
    atk "$NS_A" oldsession --key "$WORK/key" --session "$OLD_SESSION" --count $OLD_N --inner-dst "$TUN_B" $(to_b) "${AS_A[@]}"
}

echo "  -- adversarial classes (attack pacing $RATE/s; live pings both ways meanwhile)"
run_class "replay: immediately" b c_replay_now
run_class "replay: after 1 s" b c_replay_1s
run_class "replay: from another address" b c_replay_other
check "replay from another address did not move B's peer" \
    test "$(field "$WORK/st.after" peer)" = "$UNDER_A:$PORT_A" -a \
    "$(field "$WORK/st.after" peer-changes)" = "$(field "$WORK/st.before" peer-changes)"
run_class "replay: after the window moved on" b c_replay_window
run_class "tamper: bit flips, truncations, appends" b c_tamper
run_class "forge: random, every length 0-2000" b c_forge_random
run_class "forge: valid header, random MAC" b c_forge_header
check "forged datagrams did not move B's peer" test "$(field "$WORK/st.after" peer)" = "$UNDER_A:$PORT_A"
run_class "forge: sealed with a wrong key" b c_forge_wrongkey
run_class "reflect: B's own datagrams to B" b c_reflect_b
run_class "reflect: A's own datagrams to A" a c_reflect_a
run_class "skew: ±(${SKEW_S}s ∓ 0.5s), sealed, to B" b c_skew_b
run_class "skew: ±(${SKEW_S}s ∓ 0.5s), sealed, to A" a c_skew_a

# Replay after the receiving peer (B) restarted, within the skew limit.
atk "$NS_A" capture --iface "$VETH_A" --dport $PORT_B --src "$UNDER_A" --count $CAPN --timeout 30 --out "$WORK/cap.r"
t_cap=$SECONDS
helper=$(cat "$WORK/b.pid")
kill -TERM "$helper"
check "B stopped for the restart" wait_for 5 sh -c "! kill -0 $helper 2>/dev/null"
start_b
check "B restarted and knows A's session again" wait_for 10 knows_peer b
log "replaying $(( SECONDS - t_cap )) s after the capture (limit ${SKEW_S} s)"
run_class "replay: after the receiver restarted" b c_replay_restart
check "…within the skew limit ($(( SECONDS - t_cap )) s < ${SKEW_S} s)" test $(( SECONDS - t_cap )) -lt $SKEW_S

# Old session: A restarts; B moves to A's new session; everything of the old one is refused.
OLD_SESSION=$(counter "$NS_B" b peer-session)
helper=$(cat "$WORK/a.pid")
kill -TERM "$helper"
check "A stopped for the restart" wait_for 5 sh -c "! kill -0 $helper 2>/dev/null"
start_a
new_session() { local s; s=$(counter "$NS_B" b peer-session 2>/dev/null); [ -n "$s" ] && [ "$s" != none ] && [ "$s" != "$OLD_SESSION" ]; }
check "B moved to A's new session" wait_for 10 new_session
run_class "old session: after the sender restarted" b c_old_session

check "adversarial datagrams in this run: $ADVERSARIAL (>= $MIN_ADVERSARIAL)" test "$ADVERSARIAL" -ge "$MIN_ADVERSARIAL"
check "tunnel still carries traffic A → B" lping "$NS_A" "$TUN_B" 3
check "tunnel still carries traffic B → A" lping "$NS_B" "$TUN_A" 3
kill -QUIT $LIVE_AB $LIVE_BA 2> /dev/null
sleep 0.2
# Live pings (20 a second each way) over the adversarial part: at most 1 %
# lost, plus a second's worth (20) for each of the two restarts in it.
for f in live.ab live.ba; do
    read -r r t <<<"$(quit_counts "$WORK/$f")"
    r=${r:-0} t=${t:-0}
    check "live traffic, adversarial part ($f): $((t - r)) of $t lost (<= 1 % + 2 restarts × 20)" \
        test "$t" -gt 0 -a $(( (t - r) * 100 )) -le $(( t + 2 * 20 * 100 ))
    figure "live traffic, adversarial part|$f: $(tr -d '\r' < "$WORK/$f" | grep -E '^[0-9]+/[0-9]+ packets' | tail -n 1 | sed 's/, min.*//') (two restarts in this part)"
done
ADV_T=$((SECONDS - T0))

# ---------------------------------------------------------------------------
# Load: junk flood during iperf3.
echo "  -- load: junk flood"
# The flood checks need the two cores to themselves (docs/HOSTILE.md): the
# load average says whether something else was running when one fails.
log "load average before the floods: $(cut -d ' ' -f 1-3 /proc/loadavg)"
iperf_run() { # seconds json → Mbit/s, or "failed"
    ip netns exec "$NS_B" iperf3 -s -1 -B "$TUN_B" > /dev/null 2>&1 &
    local srv=$!
    PIDS+=($srv)
    sleep 0.5
    if ip netns exec "$NS_A" timeout $(($1 + 30)) iperf3 -c "$TUN_B" -t "$1" -J > "$2" 2>&1; then
        "$PY" -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6,1))' "$2"
    else
        echo failed
    fi
    wait $srv 2> /dev/null
}
base=$(iperf_run $IPERF_S "$WORK/iperf0.json")
snap b "$WORK/st.before"
ip netns exec "$NS_A" "$ATTACK" flood --to "$UNDER_B:$PORT_B" --rate $FLOOD_RATE --senders 2 --seconds $((IPERF_S + 1)) > "$WORK/flood1.out" 2>&1 &
fl=$!
PIDS+=($fl)
sleep 0.5
flooded=$(iperf_run $IPERF_S "$WORK/iperf1.json")
wait $fl
snap b "$WORK/st.after"
frate=$(kv "$WORK/flood1.out" rate); fsent=$(kv "$WORK/flood1.out" sent)
fmal=$(( $(field "$WORK/st.after" drop-malformed) - $(field "$WORK/st.before" drop-malformed) ))
fdrops=$(( $(field "$WORK/st.after" kernel-udp-inerrors) - $(field "$WORK/st.before" kernel-udp-inerrors) ))
check "iperf3 without flood: $base Mbit/s" test "$base" != failed
# The flood's two senders share the two cores with iperf3 and both daemons:
# the tunnel must keep a third of its throughput (runs keep 55-80 %).
check "iperf3 during a ${frate:-?}/s junk flood: $flooded Mbit/s (>= a third of $base)" \
    awk -v f="$flooded" -v b="$base" 'BEGIN { exit !(f != "failed" && b != "failed" && f * 3 >= b) }'
[ "$MODE" = full ] && check "the flood reached 100,000 datagrams/s (${frate:-0}/s)" test "${frate:-0}" -ge 100000
figure "throughput|iperf3 TCP A → B, ${IPERF_S} s: $base Mbit/s without flood, $flooded Mbit/s during a random-junk flood at B's port of ${fsent:-?} datagrams (${frate:-?}/s); B counted +$fmal malformed, the kernel dropped $fdrops at B's full socket buffer"
check "tunnel works after the flood" lping "$NS_A" "$TUN_B" 3

# Availability under a flood of new-session forgeries: valid headers with
# random sessions (nine in ten newer than A's, so each asks B for a key
# derivation before its MAC can fail), from an address that is not A's, as
# fast as one process can send them (sendmmsg, no pacing). A pinger sends
# 50 pings a second A → B through the tunnel meanwhile; at most 1 % of them
# may be lost (docs/HOSTILE.md). B's derivations for such sessions are
# bounded (Opener.derivationsPerSecond, a burst on top): the rest are
# dropped as rate-limited.
echo "  -- load: new-session forgery flood"
FF_PINGS=$(( (FORGE_FLOOD_S - 1) * 50 ))
FF_MIN_RATE=100000
DERIV_PER_S=20000 DERIV_BURST=2000     # Opener.derivationsPerSecond, .derivationBurst
snap b "$WORK/st.before"
ip netns exec "$NS_A" "$ATTACK" flood --to "$UNDER_B:$PORT_B" --rate 0 --batch 64 --seconds $FORGE_FLOOD_S \
    --header-fraction 1 > "$WORK/flood.ff" 2>&1 &
ff=$!; PIDS+=($ff)
sleep 0.5
ip netns exec "$NS_A" ping -i 0.02 -c $FF_PINGS -W 1 -q -p $PATTERN "$TUN_B" > "$WORK/ping.ff" 2>&1
wait $ff
sleep 0.5
snap b "$WORK/st.after"
ffrate=$(kv "$WORK/flood.ff" rate); ffsent=$(kv "$WORK/flood.ff" sent)
read -r fftx ffrx <<<"$(sed -nE 's/^([0-9]+) packets transmitted, ([0-9]+) received.*/\1 \2/p' "$WORK/ping.ff")"
fftx=${fftx:-0} ffrx=${ffrx:-0}
ffloss=$(awk -v t="$fftx" -v r="$ffrx" 'BEGIN { if (t > 0) printf "%.1f", (t - r) * 100 / t; else print "?" }')
grow() { echo $(( $(field "$WORK/st.after" "$1") - $(field "$WORK/st.before" "$1") )); }
ffder=$(grow key-derivations); fflim=$(grow drop-rate-limited); ffkd=$(grow kernel-udp-inerrors)
ffmax=$(( (FORGE_FLOOD_S + 2) * DERIV_PER_S + DERIV_BURST ))
check "new-session forgery flood: ${ffrate:-0} datagrams/s (>= $FF_MIN_RATE)" test "${ffrate:-0}" -ge $FF_MIN_RATE
check "new-session forgery flood: ping A → B lost $((fftx - ffrx)) of $fftx ($ffloss %, <= 1 %)" \
    test "$fftx" -ge "$FF_PINGS" -a $(( (fftx - ffrx) * 100 )) -le "$fftx"
check "new-session forgery flood: B derived keys $ffder times (<= $ffmax: $DERIV_PER_S/s + $DERIV_BURST), refused $fflim unverified" \
    test "$ffder" -le $ffmax -a "$fflim" -gt 0
figure "new-session forgery flood|${FORGE_FLOOD_S} s: $ffsent forged datagrams at B (${ffrate:-?}/s, one process, sendmmsg), each with a random session; B derived keys $ffder times, dropped $fflim as rate-limited, the kernel dropped $ffkd at B's full socket buffer; pings A → B every 20 ms meanwhile: $ffrx of $fftx answered ($ffloss % lost)"
check "tunnel works after the forgery flood" lping "$NS_A" "$TUN_B" 3

# Resource bounds: RSS and fds of all four processes around a long mixed flood
# (half random bytes, half valid headers with random sessions: key derivations).
echo "  -- load: ${RES_S} s flood, memory and descriptors"
procs() { # a|b → "helper worker"
    local h; h=$(cat "$WORK/$1.pid"); echo "$h $(worker_of "$h")"
}
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
nfd() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
declare -A RSS0 FD0
read -r HA WA <<<"$(procs a)"; read -r HB WB <<<"$(procs b)"
for p in $HA $WA $HB $WB; do RSS0[$p]=$(rss $p); FD0[$p]=$(nfd $p); done
kill -QUIT $LIVE_AB $LIVE_BA 2> /dev/null; sleep 0.2
read -r lr0 lt0 <<<"$(quit_counts "$WORK/live.ab")"
snap b "$WORK/st.before"
ip netns exec "$NS_A" "$ATTACK" flood --to "$UNDER_B:$PORT_B" --rate $FLOOD_RATE --senders 2 --seconds $RES_S --header-fraction 0.5 > "$WORK/flood2.out" 2>&1 &
f1=$!; PIDS+=($f1)
ip netns exec "$NS_B" "$ATTACK" flood --to "$UNDER_A:$PORT_A" --rate 20000 --seconds $RES_S --header-fraction 0.5 > "$WORK/flood3.out" 2>&1 &
f2=$!; PIDS+=($f2)
wait $f1 $f2
kill -QUIT $LIVE_AB $LIVE_BA 2> /dev/null; sleep 0.2
read -r lr1 lt1 <<<"$(quit_counts "$WORK/live.ab")"
sleep 0.8
snap b "$WORK/st.after"
derivs=$(( $(field "$WORK/st.after" key-derivations) - $(field "$WORK/st.before" key-derivations) ))
kd=$(( $(field "$WORK/st.after" kernel-udp-inerrors) - $(field "$WORK/st.before" kernel-udp-inerrors) ))
# At most 1 % lost, plus the one ping that may be in flight at a snapshot.
check "resource flood: live pings A → B lost $(( (lt1 - lt0) - (lr1 - lr0) )) of $((lt1 - lt0)) (<= 1 % + 1)" \
    test $((lt1 - lt0)) -gt 0 -a $(( ((lt1 - lt0) - (lr1 - lr0)) * 100 )) -le $(( lt1 - lt0 + 100 ))
figure "resource flood|${RES_S} s: $(kv "$WORK/flood2.out" sent) datagrams at B ($(kv "$WORK/flood2.out" rate)/s) and $(kv "$WORK/flood3.out" sent) at A ($(kv "$WORK/flood3.out" rate)/s), half of them valid-looking headers with random sessions (B derived keys $derivs times; the kernel dropped $kd at B's full socket buffer); live pings A → B meanwhile: $((lr1 - lr0)) of $((lt1 - lt0)) answered"
for side in a b; do
    if [ $side = a ]; then h=$HA w=$WA; else h=$HB w=$WB; fi
    for p in $h $w; do
        role=helper; [ $p = "$w" ] && role=worker
        r0=${RSS0[$p]} r1=$(rss $p) f0=${FD0[$p]} f1=$(nfd $p)
        figure "memory|$side $role: RSS $r0 → $r1 kB, fds $f0 → $f1"
        check "$side $role alive after the flood" kill -0 $p
        check "$side $role RSS flat ($r0 → $r1 kB, ≤ 1024 kB growth)" test $((r1 - r0)) -le 1024
        check "$side $role fds unchanged ($f0 → $f1)" test "$f0" = "$f1"
    done
done
check "tunnel works after the long flood" lping "$NS_A" "$TUN_B" 3

# ---------------------------------------------------------------------------
# Peer faults: each heals with no action on the other end. A pinger (every
# 0.1 s) times the outage; recovery = first echo reply after the repair.
echo "  -- peer faults"
pinger() { # ns dst file
    ip netns exec "$1" ping -D -i 0.1 -W 1 -w 120 -p $PATTERN "$2" > "$3" 2>&1 &
    PINGER=$!; PIDS+=($PINGER)
}
reply_after() { # file t0 → seconds to the first reply after t0
    awk -v t0="$2" '/bytes from/ { gsub(/[\[\]]/, "", $1); if ($1 > t0) { printf "%.2f", $1 - t0; exit } }' "$1"
}
has_reply_after() { [ -n "$(reply_after "$1" "$2")" ]; }
now() { date +%s.%N; }
dead() { # pids: none left but zombies (kill -0 still succeeds on those)
    local p
    for p in "$@"; do
        [ -e "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && return 1
    done
    return 0
}

fault_kill() { # a|b: kill -9 helper and worker mid-transfer, start it again
    local side=$1 h w tk ts srv
    ip netns exec "$NS_B" iperf3 -s -1 -B "$TUN_B" > /dev/null 2>&1 &
    srv=$!; PIDS+=($srv)
    sleep 0.5
    ip netns exec "$NS_A" timeout 60 iperf3 -c "$TUN_B" -t 8 -J > "$WORK/iperf.k$side.json" 2>&1 &
    local cli=$!; PIDS+=($cli)
    pinger "$NS_A" "$TUN_B" "$WORK/ping.k$side"
    sleep 2
    h=$(cat "$WORK/$side.pid"); w=$(worker_of "$h")
    tk=$(now)
    kill -KILL $w $h
    check "kill -9 $side: helper and worker gone" wait_for 3 dead $h $w
    ts=$(now)
    start_$side
    wait_for 15 has_reply_after "$WORK/ping.k$side" "$ts"
    local rec out
    rec=$(reply_after "$WORK/ping.k$side" "$ts"); out=$(reply_after "$WORK/ping.k$side" "$tk")
    local ok=0
    wait $cli && ok=1
    wait $srv 2> /dev/null
    kill -INT $PINGER 2> /dev/null
    local mbps=failed
    [ $ok = 1 ] && mbps=$("$PY" -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6,1))' "$WORK/iperf.k$side.json" 2>/dev/null)
    check "kill -9 $side mid-transfer: traffic resumes ${rec:-never} s after the restart (≤ 5 s)" \
        awk -v g="${rec:-99}" 'BEGIN { exit !(g <= 5) }'
    check "kill -9 $side mid-transfer: the 8 s iperf3 transfer completes (${mbps:-failed} Mbit/s)" test "$ok" = 1
    check "kill -9 $side: outage ${out:-never} s (<= 6 s: the restart, then at most 5 s)" \
        awk -v g="${out:-99}" 'BEGIN { exit !(g <= 6) }'
    figure "kill -9 $side|outage ${out:-?} s (restart after $(awk -v a="$tk" -v b="$ts" 'BEGIN{printf "%.2f", b-a}') s), traffic back ${rec:-never} s after the restart; the 8 s iperf3 transfer completed: ${mbps:-failed} Mbit/s"
}
fault_kill a
fault_kill b

# The client's (B's) underlay address changes.
at_peer() { [ "$(counter "$NS_A" a peer)" = "$1" ]; }
pinger "$NS_A" "$TUN_B" "$WORK/ping.roam"
sleep 1
NEW_B=198.51.100.3
tr0=$(now)
ip -n "$NS_B" addr del "$UNDER_B/24" dev "$VETH_B"
ip -n "$NS_B" addr add "$NEW_B/24" dev "$VETH_B"
check "A follows B to $NEW_B" wait_for $((KA + 3)) at_peer "$NEW_B:$PORT_B"
wait_for 10 has_reply_after "$WORK/ping.roam" "$tr0"
rec=$(reply_after "$WORK/ping.roam" "$tr0")
kill -INT $PINGER 2> /dev/null
check "address change: traffic resumes ${rec:-never} s after it (≤ keepalive $KA s + 1)" \
    awk -v g="${rec:-99}" -v k=$KA 'BEGIN { exit !(g <= k + 1) }'
figure "address change|B moved $UNDER_B → $NEW_B: traffic back ${rec:-never} s later (A followed by itself)"
ip -n "$NS_B" addr del "$NEW_B/24" dev "$VETH_B"
ip -n "$NS_B" addr add "$UNDER_B/24" dev "$VETH_B"
check "A follows B back to $UNDER_B" wait_for $((KA + 3)) at_peer "$UNDER_B:$PORT_B"

# All underlay traffic dropped for BLACKHOLE_S seconds (nftables on A's
# underlay link, both directions; without nft, or with HOSTILE_BLACKHOLE=link:
# the link set down).
if [ "${HOSTILE_BLACKHOLE:-nft}" = nft ] && command -v nft > /dev/null 2>&1; then
    HOW="nftables drop, both directions, on A's underlay link"
    blackhole_on() {
        ip netns exec "$NS_A" nft -f - <<EOF
table netdev hostile {
    chain in { type filter hook ingress device "$VETH_A" priority 0; policy drop; }
    chain out { type filter hook egress device "$VETH_A" priority 0; policy drop; }
}
EOF
    }
    blackhole_off() { ip netns exec "$NS_A" nft delete table netdev hostile; }
else
    HOW="A's underlay link set down"
    blackhole_on() { ip -n "$NS_A" link set "$VETH_A" down; }
    blackhole_off() { ip -n "$NS_A" link set "$VETH_A" up; }
fi
pinger "$NS_A" "$TUN_B" "$WORK/ping.bh"
sleep 1
blackhole_on
tb0=$(now)
sleep 1
check "blackhole: nothing crosses" sh -c "! ip netns exec $NS_A ping -c 1 -W 1 -p $PATTERN $TUN_B > /dev/null 2>&1"
sleep $((BLACKHOLE_S - 2))
tb1=$(now)
blackhole_off
wait_for 10 has_reply_after "$WORK/ping.bh" "$tb1"
rec=$(reply_after "$WORK/ping.bh" "$tb1")
kill -INT $PINGER 2> /dev/null
check "after a ${BLACKHOLE_S} s blackhole: traffic resumes ${rec:-never} s after the repair (≤ 3 s)" \
    awk -v g="${rec:-99}" 'BEGIN { exit !(g <= 3) }'
figure "blackhole|all underlay traffic dropped for $(awk -v a="$tb0" -v b="$tb1" 'BEGIN{printf "%.1f", b-a}') s ($HOW): traffic back ${rec:-never} s after the repair"
check "both daemons still run after the faults" kill -0 "$(cat "$WORK/a.pid")" "$(cat "$WORK/b.pid")"

# ---------------------------------------------------------------------------
# Stop the live pings; then, with the tuns quiet, the witness totals for the
# whole run (faults included): nothing foreign, no duplicate, and the
# witness saw exactly as many packets as the kernel counted (rx_packets of
# tun0: the packets squtun wrote into it).
kill -INT $LIVE_AB $LIVE_BA 2> /dev/null
wait $LIVE_AB $LIVE_BA 2> /dev/null
sleep 0.5
for s in a b; do
    rx=$(( $(rx_of $s) - RX0_$s ))
    seen=$(kv "$WORK/tw.$s" seen)
    check "tun $s over the whole run: $seen packets ($(kv "$WORK/tw.$s" live) live, $(kv "$WORK/tw.$s" live-other) iperf3), foreign $(kv "$WORK/tw.$s" foreign), dup $(kv "$WORK/tw.$s" dup)" \
        test "$(kv "$WORK/tw.$s" foreign)" = 0 -a "$(kv "$WORK/tw.$s" dup)" = 0
    check "tun $s: the witness saw all $rx packets the kernel counted (saw $seen, socket drops $(kv "$WORK/tw.$s" socket-drops))" \
        test "$seen" = "$rx"
    figure "tun witness|$s: kernel rx_packets +$rx, witness saw $seen: $(kv "$WORK/tw.$s" live) live pings, $(kv "$WORK/tw.$s" live-other) iperf3, $(kv "$WORK/tw.$s" foreign) foreign, $(kv "$WORK/tw.$s" dup) duplicates"
done
for f in live.ab live.ba; do
    st=$(grep -E "packets transmitted" "$WORK/$f")
    dups=$(sed -nE 's/.*\+([0-9]+) duplicates.*/\1/p' <<<"$st")
    check "live pings ($f): no duplicate replies (${st:-no summary})" test "${dups:-0}" = 0
    # Lost over the whole run: at most 1 %, plus 20 a second for the
    # blackhole (and one second more), and one second's worth for each of
    # the six other outages (two restarts, two kill -9, two address changes).
    read -r t r <<<"$(sed -nE 's/^([0-9]+) packets transmitted, ([0-9]+) received.*/\1 \2/p' <<<"$st")"
    t=${t:-0} r=${r:-0}
    allow=$(( t / 100 + 20 * (BLACKHOLE_S + 1) + 6 * 20 ))
    check "live pings ($f): $((t - r)) of $t lost over the whole run (<= $allow: 1 % + the blackhole + 6 outages × 20)" \
        test "$t" -gt 0 -a $((t - r)) -le $allow
    figure "live traffic|$f: ${st:-?}"
done

# ---------------------------------------------------------------------------
# Tun fault: the tun device deleted under a running daemon (A).
echo "  -- tun fault"
h=$(cat "$WORK/a.pid"); w=$(worker_of "$h")
ip -n "$NS_A" link del tun0
td=$(now)
check "tun deleted: A's helper exits" wait_for 5 sh -c "! kill -0 $h 2>/dev/null"
reap "$PID_a"; rc=$?
te=$(now)
check "tun deleted: exit status 1 (a worker error)" test "$rc" = 1
check "tun deleted: the worker is gone" sh -c "! kill -0 $w 2>/dev/null"
check "tun deleted: log says so" grep -q "tun device tun0 is gone" "$WORK/a.log"
check "tun deleted: pid file removed" test ! -e "$WORK/a.pid"
check "tun deleted: status socket removed" test ! -e "$WORK/a.sock"
figure "tun deleted|A exited with status $rc $(awk -v a="$td" -v b="$te" 'BEGIN{printf "%.2f", b-a}') s later, logging \"$(grep -m 1 -o "tun device tun0 is gone.*" "$WORK/a.log")\"; pid file and status socket removed"

# ---------------------------------------------------------------------------
# The report.
report() {
    echo "### Adversarial datagrams ($MODE run, attack pacing $RATE/s)"
    echo
    echo "| class | sent | reached tun | counter check (drop-<reason> growth) | verdict | live pkts meanwhile |"
    echo "|---|---:|---:|---|---|---:|"
    awk -F'|' '{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6; s += $2; r += $3; l += $6 }
               END { printf "| **total** | **%d** | **%d** | | | %d |\n", s, r, l }' "$ROWS"
    echo
    echo "### Load and faults"
    echo
    awk -F'|' '{ printf "- **%s**: %s\n", $1, $2 }' "$FIGS"
    echo
    echo "Adversarial part $ADV_T s; whole run $((SECONDS - T0)) s."
}
echo
report | sed 's/^/    /'
[ -n "${HOSTILE_REPORT:-}" ] && report > "$HOSTILE_REPORT"
finish
