# hostile.sh part: replays of genuine datagrams, at once, after 1 s, from
# another address, and after the replay window moved on.

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
