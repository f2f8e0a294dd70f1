#!/usr/bin/env bash
# Peer discovery and roaming: A runs without -p and learns B from B's first
# authenticated datagram; then B's underlay address changes mid-ping and
# traffic resumes within one keepalive interval, with A's peer moved.
# Once per cipher suite (ciphers.sh), and once more in TAP mode (--tap,
# TAP devices) with the default suite.
ALSO_TAP=1
. "$(dirname "$0")/ciphers.sh"
. "$(dirname "$0")/lib.sh"
T_NAME="$T_NAME/$CIPHER"
trap cleanup EXIT
echo "roaming: peer discovery and an address change, --cipher $CIPHER${MODE_ARGS[*]:+ ${MODE_ARGS[*]}}"
make_world
genkey "$WORK/key"
KA=2

start_squtun "$NS_A" a -l 3456 -i "$DEV" -k "$WORK/key" --cipher "$CIPHER"
check "A (no -p) has no peer before B speaks" wait_for 5 sh -c "ip netns exec $NS_A $SQUTUN status $DEV --control $WORK/a.sock | grep -qx 'peer: none'"
start_squtun "$NS_B" b -l 3457 -p "$UNDER_A" -r 3456 -i "$DEV" -k "$WORK/key" -a "$KA" --cipher "$CIPHER"
check "A learns B from its keepalive" wait_for $((KA + 2)) sh -c "ip netns exec $NS_A $SQUTUN status $DEV --control $WORK/a.sock | grep -qx 'peer: $UNDER_B:3457'"
check "ping A → B after discovery" ping_from "$NS_A" "$TUN_B" 3
check "ping B → A after discovery" ping_from "$NS_B" "$TUN_A" 3

# Change B's underlay address while A pings B every 0.1 s.
ip netns exec "$NS_A" ping -i 0.1 -W 1 -D -O "$TUN_B" > "$WORK/ping.txt" 2>&1 &
PING=$!
PIDS+=("$PING")
sleep 1
NEW_B=198.51.100.3
t0=$(date +%s.%N)
# (Deleting the primary address first: secondaries would go with it.)
ip -n "$NS_B" addr del "$UNDER_B/24" dev "$VETH_B"
ip -n "$NS_B" addr add "$NEW_B/24" dev "$VETH_B"
moved() { ip netns exec "$NS_A" "$SQUTUN" status $DEV --control "$WORK/a.sock" | grep -qx "peer: $NEW_B:3457"; }
check "A follows B to its new address" wait_for $((KA + 2)) moved
t1=$(date +%s.%N)
sleep 1.5
kill "$PING" 2>/dev/null; wait "$PING" 2>/dev/null
# The first echo reply after the change: how long traffic was interrupted.
gap=$(awk -v t0="$t0" '/bytes from/ { gsub(/[\[\]]/, "", $1); if ($1 > t0) { printf "%.2f", $1 - t0; exit } }' "$WORK/ping.txt")
log "traffic resumed ${gap:-never} s after the address change (keepalive interval $KA s)"
check "traffic resumes within one keepalive interval" awk -v g="${gap:-99}" -v k="$KA" 'BEGIN { exit !(g <= k + 0.5) }'
check "ping A → B at the new address" ping_from "$NS_A" "$TUN_B" 3
changes=$(counter "$NS_A" a peer-changes)
check "A counted two peer changes (discovery + move): $changes" test "$changes" = 2

# An unauthenticated datagram from elsewhere must not move the peer.
case $CIPHER in aes-256-gcm) suite=2 ;; chacha20-poly1305) suite=3 ;; *) suite=1 ;; esac
flags=0; [ "$E2E_MODE" = tap ] && flags=1 # this end's mode, so they pass check 1c
ip netns exec "$NS_B" /usr/bin/python3 -c '
import socket, os, sys, time
suite, flags = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.3", 4000))
# Valid v2 headers of A'"'"'s suite and mode (data, key id 0, a newer
# session, the time), of lengths that suite accepts, so they reach the MAC/tag check.
now = int(time.time() * 1000).to_bytes(8, "big")
for i in range(50):
    body = 16 + 16 * (i % 5) + 16 + 32 if suite == 1 else 16 + 7 * i
    s.sendto(bytes([2, suite, 1, flags, 0, 0, 0, 0]) + b"\xff" * 8 + os.urandom(8) + now + os.urandom(body), ("198.51.100.1", 3456))
' "$suite" "$flags"
sleep 0.3
check "forged datagrams from another port do not move the peer" moved
check "forged datagrams are counted as unknown-sender" test "$(counter "$NS_A" a drop-unknown-sender)" -ge 50
check "none of them was malformed (their lengths are the suite's)" test "$(counter "$NS_A" a drop-malformed)" = 0
check "none of them was of the other mode" test "$(counter "$NS_A" a drop-wrong-mode)" = 0
check "A runs in $E2E_MODE mode (status: $(counter "$NS_A" a mode))" test "$(counter "$NS_A" a mode)" = "$E2E_MODE"
finish
