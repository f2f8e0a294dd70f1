#!/usr/bin/env bash
# With the time checks off (-c 0), a restarted end must not take its own
# previous run's datagrams, sent back to it, for its peer's newest session:
# that used to lock the real peer out (old-session) until the peer
# restarted. The session log next to the pid file remembers this end's
# former sessions; their datagrams are refused as reflected.
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
ATTACK=${ATTACK:-$(dirname "$SQUTUN")/squtun-attack}
echo "reflect: a restarted end refuses its own former sessions (-c 0)"
make_world
genkey "$WORK/key"
PORT_A=3456 PORT_B=3457
A_ARGS=(-l $PORT_A -p "$UNDER_B" -r $PORT_B -i tun0 -k "$WORK/key" -a 1 -c 0)
# B first, A second: A's first session is newer than B's, which is what
# made the reflection of A's old datagrams win over B's genuine ones.
start_squtun "$NS_B" b -l $PORT_B -p "$UNDER_A" -r $PORT_A -i tun0 -k "$WORK/key" -a 1 -c 0
wait_for 5 test -s "$WORK/b.pid"
start_squtun "$NS_A" a "${A_ARGS[@]}"
check "tunnel up: ping A → B" wait_for 10 ping_from "$NS_A" "$TUN_B"

# Record A's datagrams on B's side of the wire (A's first session).
ip netns exec "$NS_A" ping -c 30 -i 0.05 "$TUN_B" >/dev/null 2>&1 &
PIDS+=($!)
ip netns exec "$NS_B" "$ATTACK" capture --iface "$VETH_B" --dport $PORT_B --src "$UNDER_A" \
    --count 20 --timeout 10 --out "$WORK/cap.a1" >"$WORK/capture.out" 2>&1
check "datagrams of A's first run recorded" test -s "$WORK/cap.a1"
first=$(counter "$NS_A" a own-session)
check "A's session log names its first session" grep -qi "^$(printf '%016x' "$first")$" "$WORK/a.sessions"

# Restart A.
stop_pid "$PID_a"
start_squtun "$NS_A" a "${A_ARGS[@]}"
check "tunnel up again after A's restart" wait_for 10 ping_from "$NS_A" "$TUN_B"
second=$(counter "$NS_A" a own-session)
check "A's new session is greater than its first" python3 -c "import sys; sys.exit(not $second > $first)"
peer_before=$(counter "$NS_A" a peer-session)
refl0=$(counter "$NS_A" a drop-reflected)

# The attack: A's first run's datagrams, sent to A as if from B.
ip netns exec "$NS_B" "$ATTACK" replay --in "$WORK/cap.a1" --to "$UNDER_A:$PORT_A" --from "$UNDER_B:$PORT_B" \
    --from-peer --own 0 --peer 0 --limit-s 0 --rate 1000 >"$WORK/replay.out" 2>&1
sleep 0.5
refl1=$(counter "$NS_A" a drop-reflected)
log "A counted $((refl1 - refl0)) of 20 sent back as reflected"
check "A refused its former session's datagrams as reflected" test $((refl1 - refl0)) -ge 20
check "A's peer session is still B's" test "$(counter "$NS_A" a peer-session)" = "$peer_before"
check "ping A → B still works" ping_from "$NS_A" "$TUN_B" 3
check "ping B → A still works" ping_from "$NS_B" "$TUN_A" 3
finish
