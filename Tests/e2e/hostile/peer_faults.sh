# hostile.sh part: peer faults. kill -9 of either end mid-transfer, and the
# client's underlay address changing.

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
