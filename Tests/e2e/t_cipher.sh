#!/usr/bin/env bash
# Two ends with different --cipher: nothing crosses the tunnel, every
# datagram is counted as wrong-suite in `squtun status`, and each end says
# so in exactly one log line naming both suites, whatever the flood.
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
echo "cipher: ends of different suites refuse each other, counted, said once"
make_world
genkey "$WORK/key"
start_squtun "$NS_A" a -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$WORK/key" -a 1 --cipher aes-256-gcm
start_squtun "$NS_B" b -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$WORK/key" -a 1
check "both daemons wrote their pid files" wait_for 5 test -s "$WORK/a.pid" -a -s "$WORK/b.pid"
check "status names each end's own suite (A aes-256-gcm, B the default)" \
    test "$(counter "$NS_A" a cipher)/$(counter "$NS_B" b cipher)" = "aes-256-gcm/aes-256-cbc-hmac-sha256"
check "ping A → B does not cross" bash -c "! ip netns exec $NS_A ping -c 3 -i 0.2 -W 1 -q $TUN_B >/dev/null 2>&1"
ip netns exec "$NS_A" ping -c 300 -i 0.005 -W 1 -q "$TUN_B" >/dev/null 2>&1
ip netns exec "$NS_B" ping -c 300 -i 0.005 -W 1 -q "$TUN_A" >/dev/null 2>&1
sleep 0.5
ws_b=$(counter "$NS_B" b drop-wrong-suite); ws_a=$(counter "$NS_A" a drop-wrong-suite)
log "drop-wrong-suite: A $ws_a, B $ws_b"
check "B counts A's datagrams as wrong-suite (${ws_b:-?} >= 300)" test "${ws_b:-0}" -ge 300
check "A counts B's datagrams as wrong-suite (${ws_a:-?} >= 300)" test "${ws_a:-0}" -ge 300
check "nothing reached B's tun" test "$(counter "$NS_B" b rx-packets)" = 0
check "nothing reached A's tun" test "$(counter "$NS_A" a rx-packets)" = 0
check "no other drop at B" \
    bash -c "status_of() { ip netns exec $NS_B $SQUTUN status tun0 --control $WORK/b.sock; }; status_of |
             awk -F': ' '\$1 ~ /^drop-/ && \$1 != \"drop-wrong-suite\" && \$2 != 0 {bad=1} END {exit bad}'"
lines_b=$(grep -c "peer uses aes-256-gcm, this end aes-256-cbc-hmac-sha256" "$WORK/b.log")
lines_a=$(grep -c "peer uses aes-256-cbc-hmac-sha256, this end aes-256-gcm" "$WORK/a.log")
check "B says so in exactly one log line naming both suites ($lines_b)" test "$lines_b" = 1
check "A says so in exactly one log line naming both suites ($lines_a)" test "$lines_a" = 1
finish
