#!/usr/bin/env bash
# Sends that fail, as opposed to datagrams lost on the way (hostile.sh's
# nftables blackhole): A's underlay link is set down for 5 s, which takes
# its route away, so every sendto fails (ENETUNREACH) while keepalives
# (-a 1) and a ping keep trying. Asserted: the worker's CPU time over the
# outage (utime + stime from /proc) grows by less than 0.2 s (a keepalive
# retried at once after a failed send used to spin the loop at ~80 % of a
# core), the failed datagrams are still counted as send-errors, the log
# says "cannot send" once and "works again" once, and traffic resumes.
# Then: tun packets longer than the largest payload are counted apart
# (tx-oversize, not send-errors), with one log line for several.
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
echo "sendfail: the underlay link down (sendto fails) costs no CPU and is logged once; oversize packets counted"
make_world
genkey "$WORK/key"

# A without tun offloads: its reads take the one-packet path (the oversize check below).
start_squtun "$NS_A" a -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$WORK/key" -a 1 --no-offload
start_squtun "$NS_B" b -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$WORK/key" -a 1
check "ping A → B before the outage" wait_for 5 ping_from "$NS_A" "$TUN_B"
WORKER=$(worker_of "$PID_a")
check "A's worker found (pid ${WORKER:-none})" test -n "$WORKER"

# utime + stime of a pid, in clock ticks (fields 14 and 15; the name in
# field 2 is in parentheses and may hold spaces, so count from its end).
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
HZ=$(getconf CLK_TCK)

errors0=$(counter "$NS_A" a send-errors)
ip netns exec "$NS_A" ping -i 0.2 -W 1 "$TUN_B" > "$WORK/ping.txt" 2>&1 &
PING=$!
PIDS+=("$PING")
sleep 0.5
c0=$(ticks "$WORKER")
t0=$(date +%s.%N)
ip -n "$NS_A" link set "$VETH_A" down
check "with the link down, A has no route to B (sendto fails)" \
    sh -c "! ip -n $NS_A route get $UNDER_B > /dev/null 2>&1"
sleep 5
c1=$(ticks "$WORKER")
t1=$(date +%s.%N)
cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
span=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
log "A's worker used $cpu s of CPU during the ${span} s outage"
check "worker CPU time during the outage: $cpu s (< 0.2 s)" awk -v c="$cpu" 'BEGIN { exit !(c < 0.2) }'
errors=$(( $(counter "$NS_A" a send-errors) - errors0 ))
check "the failed datagrams are counted: send-errors +$errors (≥ 15: pings and keepalives)" test "$errors" -ge 15
check "sending to B failing is logged once: $(grep -c 'cannot send to peer' "$WORK/a.log") line(s)" \
    test "$(grep -c "cannot send to peer $UNDER_B:3457: " "$WORK/a.log")" = 1
log "$(grep -m1 'cannot send to peer' "$WORK/a.log")"

t2=$(date +%s.%N)
ip -n "$NS_A" link set "$VETH_A" up
back() { ip netns exec "$NS_A" ping -c 1 -W 1 "$TUN_B" > /dev/null 2>&1; }
check "ping A → B within 5 s after the link is back" wait_for 5 back
t3=$(date +%s.%N)
log "traffic back $(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.1f", b - a }') s after the link"
kill "$PING" 2>/dev/null; wait "$PING" 2>/dev/null
check "sending working again is logged once" \
    test "$(grep -c "sending to peer $UNDER_B:3457 works again" "$WORK/a.log")" = 1
log "$(grep -m1 'works again' "$WORK/a.log")"
check "both daemons still run" kill -0 "$PID_a" "$PID_b"

# A tun MTU above the largest payload (65423 bytes): a 65535-byte packet can
# never be sent. Counted as tx-oversize, not as a send error; logged once
# for several (at most one line a minute).
ip -n "$NS_A" link set tun0 mtu 65535
errors0=$(counter "$NS_A" a send-errors)
tx0=$(counter "$NS_A" a tx-packets)
ip netns exec "$NS_A" ping -c 5 -i 0.2 -W 1 -s 65507 "$TUN_B" > /dev/null 2>&1
over=$(counter "$NS_A" a tx-oversize)
check "5 packets of 65535 bytes: tx-oversize ${over:-missing} (= 5)" test "${over:-0}" = 5
check "none of them sent cut short: tx-packets +$(( $(counter "$NS_A" a tx-packets) - tx0 ))" \
    test "$(counter "$NS_A" a tx-packets)" = "$tx0"
check "and not send-errors: +$(( $(counter "$NS_A" a send-errors) - errors0 ))" \
    test "$(counter "$NS_A" a send-errors)" = "$errors0"
check "one log line for them: $(grep -c 'byte packet read from tun0' "$WORK/a.log")" \
    test "$(grep -c 'dropped a 65535-byte packet read from tun0: longer than the largest payload' "$WORK/a.log")" = 1
log "$(grep -m1 'byte packet read from tun0' "$WORK/a.log")"
check "ping A → B with ordinary packets still works" ping_from "$NS_A" "$TUN_B" 2
finish
