# hostile.sh part: replays of genuine datagrams, at once, after 1 s, from
# another address, after the replay window moved on, and of a bulk
# transfer (datagrams squtun sent in UDP GSO runs).

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

run_class "replay: immediately" b c_replay_now
run_class "replay: after 1 s" b c_replay_1s
run_class "replay: from another address" b c_replay_other
check "replay from another address did not move B's peer" \
    test "$(field "$WORK/st.after" peer)" = "$UNDER_A:$PORT_A" -a \
    "$(field "$WORK/st.after" peer-changes)" = "$(field "$WORK/st.before" peer-changes)"
run_class "replay: after the window moved on" b c_replay_window

# A bulk transfer's datagrams: squtun sends runs of equal-sized datagrams
# as one UDP GSO packet, which crosses the veth whole. Recorded during a
# 2 s iperf3, cut into their datagrams by the capture, replayed once the
# transfer is over: every one is a `replay`. At least one recorded run
# must have been cut, or the class would not be what it says.
ip netns exec "$NS_B" iperf3 -s -1 -B "$TUN_B" > /dev/null 2>&1 &
bulk_srv=$!; PIDS+=($bulk_srv)
sleep 0.5
ip netns exec "$NS_A" timeout 30 iperf3 -c "$TUN_B" -t 2 > /dev/null 2>&1 &
bulk_cli=$!; PIDS+=($bulk_cli)
sleep 0.5
ip netns exec "$NS_A" "$ATTACK" capture --cipher "$CIPHER" "${MODE_ARGS[@]}" --iface "$VETH_A" --dport $PORT_B --src "$UNDER_A" \
    --count 200 --timeout 10 --out "$WORK/cap.bulk" > "$WORK/cap.bulk.out" 2>&1
wait $bulk_cli $bulk_srv 2> /dev/null
bulk_runs=$(kv "$WORK/cap.bulk.out" gso-runs)
check "bulk capture: 200 datagrams recorded, $bulk_runs GSO runs cut into datagrams (>= 1)" \
    test "$(kv "$WORK/cap.bulk.out" captured)" = 200 -a "${bulk_runs:-0}" -ge 1
c_replay_bulk() { atk "$NS_A" replay --in "$WORK/cap.bulk" $(to_b) "${AS_A[@]}"; }
run_class "replay: a bulk transfer's datagrams" b c_replay_bulk
