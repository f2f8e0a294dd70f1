#!/usr/bin/env bash
# Two peers with explicit addresses (SquTUN style): ping both ways, a 5 s
# iperf3 TCP run, `squtun status` on both ends, and SIGTERM stopping both
# processes within 2 s with the pid file gone. Once per cipher suite
# (ciphers.sh: CIPHERS, default all three).
. "$(dirname "$0")/ciphers.sh"
. "$(dirname "$0")/lib.sh"
T_NAME="$T_NAME/$CIPHER"
trap cleanup EXIT
echo "basic: two peers, explicit addresses, --cipher $CIPHER"
make_world
genkey "$WORK/key"

start_squtun "$NS_A" a -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$WORK/key" -a 5 -c 30 --cipher "$CIPHER"
wait_for 5 test -s "$WORK/a.pid"
start_squtun "$NS_B" b -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$WORK/key" -a 5 -c 30 --cipher "$CIPHER"
check "both daemons wrote their pid files" wait_for 5 test -s "$WORK/a.pid" -a -s "$WORK/b.pid"
# Both ends on one host share the key file: the second to start says that
# tunnels sharing a key accept each other's datagrams; the first says nothing.
check "the second user of a key file warns that another squtun uses it" \
    grep -q "is also used by another squtun on this host" "$WORK/b.log"
check "the first user of the key file does not" bash -c "! grep -q 'is also used by another' '$WORK/a.log'"
check "ping A → B across the tunnel" wait_for 5 ping_from "$NS_A" "$TUN_B"
check "ping B → A across the tunnel" ping_from "$NS_B" "$TUN_A" 3
mtu=$("$SQUTUN" -m 1500 --cipher "$CIPHER")
check "a full $mtu-byte packet crosses the 1500-byte underlay (DF set)" \
    ip netns exec "$NS_A" ping -c 2 -W 1 -M do -s $((mtu - 28)) "$TUN_B"
frags=$(ip netns exec "$NS_B" awk '/^Ip:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print $c["ReasmReqds"] }' /proc/net/snmp)
check "no IPv4 reassembly on the underlay (ReasmReqds ${frags:-?})" test "${frags:-1}" = 0
rtt=$(ip netns exec "$NS_A" ping -c 20 -i 0.05 -q "$TUN_B" 2>/dev/null | awk -F/ '/rtt/ {print $5}')
log "ping RTT A → B (20 pings): ${rtt:-?} ms"

ip netns exec "$NS_B" iperf3 -s -1 -B "$TUN_B" >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5
if ip netns exec "$NS_A" timeout 40 iperf3 -c "$TUN_B" -t 5 -J > "$WORK/iperf.json" 2>&1; then
    bps=$(/usr/bin/python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6,1))' "$WORK/iperf.json")
    pass "5 s iperf3 TCP run through the tunnel completes"
    log "iperf3 TCP A → B ($CIPHER): $bps Mbit/s"
else
    log "iperf3: $(grep -m1 '"error"' "$WORK/iperf.json")"; diagnose a b
    fail "5 s iperf3 TCP run through the tunnel completes"
fi

status_a=$(status_of "$NS_A" a 2>&1)
check "squtun status shows the peer" grep -q "^peer: $UNDER_B:3457$" <<<"$status_a"
check "squtun status counts packets both ways" \
    awk -F': ' '$1=="tx-packets" && $2>100 {t=1} $1=="rx-packets" && $2>100 {r=1} END {exit !(t && r)}' <<<"$status_a"
check "no drops on a clean link" \
    awk -F': ' '$1 ~ /^drop-/ && $2 != 0 {bad=1} END {exit bad}' <<<"$status_a"

# SIGUSR1 logs the same counters (the helper forwards it; the worker logs
# through the helper).
kill -USR1 "$(cat "$WORK/a.pid")"
check "SIGUSR1 logs the counters" wait_for 2 grep -q "^squtun: rx-packets: [1-9]" "$WORK/a.log"
check "SIGUSR1 logs the drop counters" grep -q "^squtun: drop-bad-mac: 0" "$WORK/a.log"

# SIGTERM to the helper: both processes gone within 2 s, pid file removed.
helper=$(cat "$WORK/a.pid")
worker=$(worker_of "$helper")
check "helper has a worker child" test -n "$worker"
kill -TERM "$helper"
gone() { ! alive "$helper" && ! alive "$worker"; }
check "SIGTERM: helper and worker exit within 2 s" wait_for 2 gone
check "SIGTERM: pid file removed" wait_for 1 test ! -e "$WORK/a.pid"
finish
