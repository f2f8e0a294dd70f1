# hostile.sh part: attacks across a restart. A replay after the receiver
# restarted (within the skew limit), and the old session's datagrams after
# the sender restarted.

c_replay_restart() { atk "$NS_A" replay --in "$WORK/cap.r" $(to_b) "${AS_A[@]}"; }
c_old_session() {
    atk "$NS_A" replay --in "$WORK/cap.ab" $(to_b) "${AS_A[@]}"
    atk "$NS_A" replay --in "$WORK/cap.r" $(to_b) "${AS_A[@]}"
    atk "$NS_A" oldsession --key "$WORK/key" --session "$OLD_SESSION" --count $OLD_N --inner-dst "$TUN_B" $(to_b) "${AS_A[@]}"
}

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
