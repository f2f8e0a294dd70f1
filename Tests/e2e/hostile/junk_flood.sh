# hostile.sh part: throughput of iperf3 through the tunnel during a
# random-junk flood at B's port.

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
ip netns exec "$NS_A" "$ATTACK" flood --cipher "$CIPHER" "${MODE_ARGS[@]}" --to "$UNDER_B:$PORT_B" --rate $FLOOD_RATE --senders 2 --seconds $((IPERF_S + 1)) > "$WORK/flood1.out" 2>&1 &
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
[ "$RUN" = full ] && check "the flood reached 100,000 datagrams/s (${frate:-0}/s)" test "${frate:-0}" -ge 100000
figure "throughput|iperf3 TCP A → B, ${IPERF_S} s: $base Mbit/s without flood, $flooded Mbit/s during a random-junk flood at B's port of ${fsent:-?} datagrams (${frate:-?}/s); B counted +$fmal malformed, the kernel dropped $fdrops at B's full socket buffer"
check "tunnel works after the flood" lping "$NS_A" "$TUN_B" 3
