#!/usr/bin/env bash
# The data path allocates nothing per packet: squtun (single-process mode,
# the same DataPath, Sealer and Opener as the worker) runs with an
# LD_PRELOAD allocation counter; thousands of packets each way (pings, and
# TCP through the tun offloads: super-packets cut, segments merged) change
# the count by nothing. Nor do forged datagrams naming sessions never seen
# (squtun-attack flood): each costs a key derivation, from the peer's
# address, or is refused unverified once the derivation budget is spent,
# from elsewhere. Once per cipher suite (ciphers.sh).
. "$(dirname "$0")/ciphers.sh"
. "$(dirname "$0")/lib.sh"
T_NAME="$T_NAME/$CIPHER"
tun_mode=$(stat -c %a /dev/net/tun)
trap 'chmod $tun_mode /dev/net/tun; cleanup' EXIT
chmod 666 /dev/net/tun
echo "alloc: no allocation per packet on the data path, --cipher $CIPHER"
need_attack
make_world
uid=$(id -u "$TEST_USER"); gid=$(id -g "$TEST_USER")
RUN="$WORK/run"; mkdir -p "$RUN"; chown "$TEST_USER" "$RUN"
cc -O2 -shared -fPIC -o "$RUN/alloccount.so" "$(dirname "$0")/../tools/alloccount/alloccount.c"
genkey "$RUN/key"; chown "$TEST_USER" "$RUN/key"; cp "$RUN/key" "$WORK/key"; chown root "$WORK/key"
start_squtun "$NS_B" b -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$WORK/key" --cipher "$CIPHER"
ip netns exec "$NS_A" setpriv --reuid="$uid" --regid="$gid" --clear-groups env LD_PRELOAD="$RUN/alloccount.so" \
    "$SQUTUN" -f -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$RUN/key" --cipher "$CIPHER" \
    --pidfile "$RUN/a.pid" --control "$RUN/a.sock" >> "$WORK/a.log" 2>&1 &
P=$!; PIDS+=("$P")
check "tunnel up" wait_for 8 ping_from "$NS_A" "$TUN_B"
# Warm up both directions and sizes: first uses may set up runtime metadata once.
ip netns exec "$NS_A" ping -c 20 -i 0.01 -q "$TUN_B" >/dev/null
ip netns exec "$NS_B" ping -c 20 -i 0.01 -s 1300 -q "$TUN_A" >/dev/null
tcp_both_ways() { # seconds: iperf3 A → B, then B → A (-R)
    local r
    for r in "" -R; do
        ip netns exec "$NS_B" iperf3 -s -1 -B "$TUN_B" >/dev/null 2>&1 &
        PIDS+=($!)
        wait_for 5 sh -c "ip netns exec $NS_B ss -ltn | grep -q ':5201 '"
        ip netns exec "$NS_A" timeout $(($1 + 30)) iperf3 -c "$TUN_B" -t "$1" $r >/dev/null 2>&1 ||
            { log "iperf3 -t $1 $r did not complete"; diagnose b; }
    done
}
tcp_both_ways 1
allocs() {
    local before; before=$(grep -c '^allocations:' "$WORK/a.log")
    kill -USR2 "$P"
    wait_for 2 sh -c "[ \$(grep -c '^allocations:' $WORK/a.log) -gt $before ]"
    grep '^allocations:' "$WORK/a.log" | tail -n 1 | awk '{print $2}'
}
# A status field (0 when absent: a counter this squtun does not have).
field() { ip netns exec "$NS_A" "$SQUTUN" status tun0 --control "$RUN/a.sock" | awk -F': ' -v f="$1" '$1==f {print $2; found=1} END { if (!found) print 0 }'; }
a0=$(allocs)
tx0=$(field tx-packets); rx0=$(field rx-packets)
tso0=$(field tun-gso-segments); gro0=$(field tun-gro-packets)
a1=$(allocs)   # the difference is what four status requests cost
ip netns exec "$NS_A" ping -c 1000 -i 0.002 -q "$TUN_B" >/dev/null
ip netns exec "$NS_B" ping -c 1000 -i 0.002 -s 1300 -q "$TUN_A" >/dev/null
tcp_both_ways 2
a2=$(allocs)
tx=$(( $(field tx-packets) - tx0 )); rx=$(( $(field rx-packets) - rx0 ))
tso=$(( $(field tun-gso-segments) - tso0 )); gro=$(( $(field tun-gro-packets) - gro0 ))
log "packets sealed $tx, opened $rx (segments cut from super-packets $tso, merged $gro); allocations during them: $((a2 - a1)) (four status requests: $((a1 - a0)))"
check "4000 packets moved" test $((tx + rx)) -ge 4000
check "TCP went through the offload paths both ways" test "$tso" -gt 1000 -a "$gro" -gt 1000
check "no allocation per packet ($((a2 - a1)) for $((tx + rx)) packets)" test $((a2 - a1)) -eq 0

# Forged new sessions: 2 s from B's own address (raw socket: each one a key
# derivation and a failed MAC), then 2 s from another port of B's (the
# derivation budget: derivations up to it, rate-limited beyond).
der0=$(field key-derivations); bad0=$(field drop-bad-mac); unk0=$(field drop-unknown-sender)
lim0=$(field drop-rate-limited)
a3=$(allocs)
ip netns exec "$NS_B" "$ATTACK" flood --to "$UNDER_A:3456" --from "$UNDER_B:3457" --rate 20000 --seconds 2 \
    --header-fraction 1 --cipher "$CIPHER" > "$WORK/flood.peer" 2>&1
ip netns exec "$NS_B" "$ATTACK" flood --to "$UNDER_A:3456" --rate 0 --batch 64 --seconds 2 \
    --header-fraction 1 --cipher "$CIPHER" > "$WORK/flood.other" 2>&1
sleep 0.3
a4=$(allocs)
der=$(( $(field key-derivations) - der0 )); bad=$(( $(field drop-bad-mac) - bad0 ))
unk=$(( $(field drop-unknown-sender) - unk0 )); lim=$(( $(field drop-rate-limited) - lim0 ))
log "forged datagrams: $(cat "$WORK/flood.peer") from the peer's address, $(cat "$WORK/flood.other") from elsewhere; key derivations $der, bad-mac $bad, unknown-sender $unk, rate-limited $lim; allocations during them: $((a4 - a3))"
check "forged new sessions cost key derivations ($der, >= 20000) and were refused (bad-mac $bad, unknown-sender $unk, rate-limited $lim)" \
    test "$der" -ge 20000 -a "$bad" -gt 0 -a "$unk" -gt 0 -a "$lim" -gt 0
check "no allocation per forged datagram ($((a4 - a3)) for $((bad + unk + lim)) refused)" test $((a4 - a3)) -eq 0
finish
