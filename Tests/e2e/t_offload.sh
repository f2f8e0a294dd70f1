#!/usr/bin/env bash
# Tun offloads (docs/PERFORMANCE.md): TCP super-packets cut into segments
# on the sending side and merged on the receiving side carry every byte
# unchanged, over IPv4 and IPv6 inside the tunnel, both ways; UDP whose
# checksum the kernel left to squtun arrives with a valid one; bursts of
# equal-sized UDP datagrams (sent one by one, or as one UDP_SEGMENT send
# that the tun hands over whole) are merged and arrive as exactly the
# datagrams sent; the kernel
# counts no checksum errors; --no-offload works on a device that had them
# (no super-packet reaches a reader without virtio headers); and an end
# with offloads talks to an end without (the wire format is the same).
# Once per cipher suite (ciphers.sh): merging writes its virtio header into
# the suite's headroom in front of the opened payload (CBC: the IV; AEAD:
# the 32-byte header), so the merges and the mixed pair run for every
# suite; the parts that do not depend on the suite (--no-offload on both
# ends, a parent with signals blocked) run for the default suite only.
. "$(dirname "$0")/ciphers.sh"
. "$(dirname "$0")/lib.sh"
T_NAME="$T_NAME/$CIPHER"
trap cleanup EXIT
echo "offload: TSO split and GRO merge on the tun, --cipher $CIPHER"
FULL=0; [ "$CIPHER" = aes-256-cbc-hmac-sha256 ] && FULL=1
CHECK="/usr/bin/python3 $(dirname "$(readlink -f "$0")")/tcpcheck.py"
need_pkgs ethtool
make_world
genkey "$WORK/key"
ip -n "$NS_A" addr add 2001:db8:77::1/64 dev tun0 nodad
ip -n "$NS_B" addr add 2001:db8:77::2/64 dev tun0 nodad
BYTES=$((32 << 20))

# transfer FROM_NS TO_NS TO_ADDR SEED: one TCP connection, hashes compared.
transfer() {
    local out="$WORK/serve.$4"
    ip netns exec "$2" $CHECK serve "$3" 9000 >"$out" 2>&1 &
    local server=$!
    PIDS+=("$server")
    wait_for 5 sh -c "ip netns exec $2 ss -ltn | grep -q ':9000 '"
    local sent
    sent=$(ip netns exec "$1" $CHECK send "$3" 9000 "$BYTES" "$4" 2>&1)
    wait "$server"
    [ -n "$sent" ] && [ "$sent" = "$(cat "$out")" ] || {
        log "sent: $sent / received: $(cat "$out")"; diagnose a b; return 1; }
}

# udp_transfer FROM_NS TO_NS TO_ADDR SEED: 300 datagrams of 1..1300 bytes.
udp_transfer() {
    local out="$WORK/userve.$4"
    ip netns exec "$2" $CHECK udp-serve "$3" 9001 300 >"$out" 2>&1 &
    local server=$!
    PIDS+=("$server")
    wait_for 5 sh -c "ip netns exec $2 ss -lun | grep -q ':9001 '"
    local sent
    sent=$(ip netns exec "$1" $CHECK udp-send "$3" 9001 300 "$4" 2>&1)
    wait "$server"
    [ -n "$sent" ] && [ "$sent" = "$(cat "$out")" ] || {
        log "sent: $sent / received: $(cat "$out")"; diagnose a b; return 1; }
}

# udp_bursts FROM_NS TO_NS TO_ADDR SEED [gso]: 3200 datagrams of 1000 bytes.
udp_bursts() {
    local out="$WORK/burst.$4"
    ip netns exec "$2" $CHECK udp-check "$3" 9002 3200 1000 "$4" >"$out" 2>&1 &
    local server=$!
    PIDS+=("$server")
    wait_for 5 sh -c "ip netns exec $2 ss -lun | grep -q ':9002 '"
    ip netns exec "$1" $CHECK udp-burst "$3" 9002 3200 1000 "$4" ${5:-} >/dev/null 2>&1
    wait "$server"
    log "UDP bursts${5:+ ($5)}: $(cat "$out") of 3200"
    local ok bad
    ok=$(sed -nE 's/^ok=([0-9]+) bad=([0-9]+)$/\1/p' "$out"); bad=$(sed -nE 's/^ok=([0-9]+) bad=([0-9]+)$/\2/p' "$out")
    [ "${bad:-1}" = 0 ] && [ "${ok:-0}" -ge 2400 ]
}

csum_errors() { # ns: TCP and UDP checksum errors the kernel counted
    ip netns exec "$1" nstat -az TcpInCsumErrors UdpInCsumErrors | awk 'NR > 1 {s += $2} END {print s + 0}'
}

start_pair() { # extra args for A, for B
    start_squtun "$NS_A" a -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$WORK/key" -a 5 --cipher "$CIPHER" $1
    start_squtun "$NS_B" b -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$WORK/key" -a 5 --cipher "$CIPHER" $2
    wait_for 5 test -S "$WORK/a.sock" -a -S "$WORK/b.sock"
    check "A ${1:-offload}, B ${2:-offload}: tunnel up (ping A → B)" wait_for 5 ping_from "$NS_A" "$TUN_B"
}

stop_pair() {
    local p
    for p in $PID_a $PID_b; do stop_pid "$p"; done
    wait_for 3 sh -c "! test -e $WORK/a.pid && ! test -e $WORK/b.pid"
}

start_pair "" ""
# UDP segmentation offload on tun devices came with Linux 6.2; before it
# squtun takes TSO only (Tun.offloadChoices), and merges no UDP.
kernel=$(uname -r | awk -F. '{print $1 * 1000 + $2}')
if [ "$kernel" -ge 6002 ]; then want="tcp udp"; else want="tcp"; fi
check "status says offload: $want (both ends; kernel $(uname -r))" \
    test "$(counter "$NS_A" a offload)/$(counter "$NS_B" b offload)" = "$want/$want"
check "32 MiB TCP A → B over IPv4, byte for byte" transfer "$NS_A" "$NS_B" "$TUN_B" 1
check "32 MiB TCP B → A over IPv4, byte for byte" transfer "$NS_B" "$NS_A" "$TUN_A" 2
check "32 MiB TCP A → B over IPv6, byte for byte" transfer "$NS_A" "$NS_B" 2001:db8:77::2 3
check "300 UDP datagrams A → B, checksums completed by squtun" udp_transfer "$NS_A" "$NS_B" "$TUN_B" 4
gro0=$(counter "$NS_B" b tun-gro-writes)
check "UDP bursts A → B: merged datagrams arrive exactly as sent" udp_bursts "$NS_A" "$NS_B" "$TUN_B" 9
[ "$want" = "tcp" ] || check "B merged UDP datagrams" test "$(counter "$NS_B" b tun-gro-writes)" -gt "$gro0"
gso0=$(counter "$NS_A" a tun-gso-reads)
check "UDP_SEGMENT sends A → B over IPv6: cut by A, arrive exactly as sent" udp_bursts "$NS_A" "$NS_B" 2001:db8:77::2 10 gso
[ "$want" = "tcp" ] || check "A's tun handed over UDP super-packets" test "$(counter "$NS_A" a tun-gso-reads)" -gt "$gso0"
tso=$(counter "$NS_A" a tun-gso-segments); reads=$(counter "$NS_A" a tun-gso-reads)
gro=$(counter "$NS_B" b tun-gro-packets); writes=$(counter "$NS_B" b tun-gro-writes)
log "A cut $reads super-packets into $tso segments; B merged $gro packets into $writes writes"
check "A's tun handed over TCP super-packets and A cut them" test "${tso:-0}" -gt "$((${reads:-0} * 2))"
check "B merged received segments into super-packets" test "${gro:-0}" -gt "$((${writes:-0} * 2))"
check "B → A used the offloads too" test "$(counter "$NS_B" b tun-gso-reads)" -gt 0 -a "$(counter "$NS_A" a tun-gro-writes)" -gt 0
check "no offload errors, no drops, no tun write errors" sh -c "
    for s in a b; do $SQUTUN status tun0 --control $WORK/\$s.sock; done |
    awk -F': ' '(\$1 ~ /^drop-|offload-errors|write-errors/) && \$2 != 0 {bad=1} END {exit bad}'"
check "the kernels counted no TCP/UDP checksum errors" test "$(csum_errors "$NS_A")/$(csum_errors "$NS_B")" = "0/0"
check "while running, the tun device has TSO on" test "$(tso_state "$NS_A")" = on
stop_pair
check "after the helper exits, the device's TSO is off again (left as found)" test "$(tso_state "$NS_A")/$(tso_state "$NS_B")" = off/off

# The same devices without offloads: a leftover TSO setting would hand a
# plain reader 64 KiB packets it cannot seal.
if [ "$FULL" = 1 ]; then
start_pair "--no-offload" "--no-offload"
check "--no-offload: status says offload: off" test "$(counter "$NS_A" a offload)" = off
check "--no-offload: 32 MiB TCP A → B, byte for byte" transfer "$NS_A" "$NS_B" "$TUN_B" 5
check "--no-offload: UDP_SEGMENT sends arrive as sent" udp_bursts "$NS_A" "$NS_B" "$TUN_B" 11 gso
check "--no-offload: nothing was cut or merged" \
    test "$(counter "$NS_A" a tun-gso-reads)/$(counter "$NS_B" b tun-gro-writes)/$(counter "$NS_A" a send-errors)" = "0/0/0"
stop_pair
fi

start_pair "" "--no-offload"
check "offload ↔ no offload: 32 MiB TCP A → B" transfer "$NS_A" "$NS_B" "$TUN_B" 6
check "offload ↔ no offload: 32 MiB TCP B → A" transfer "$NS_B" "$NS_A" "$TUN_A" 7
check "offload ↔ no offload: UDP B → A" udp_transfer "$NS_B" "$NS_A" "$TUN_A" 8
check "offload ↔ no offload: UDP bursts B → A, merged by A" udp_bursts "$NS_B" "$NS_A" "$TUN_A" 12
check "still no checksum errors" test "$(csum_errors "$NS_A")/$(csum_errors "$NS_B")" = "0/0"
stop_pair

# A parent that started squtun with signals blocked (the mask survives
# exec; some supervisors and runners do this) must not turn SIGTERM into
# the SIGKILL after which nobody switches the device's offloads off. Default suite only.
[ "$FULL" = 1 ] || { log "(--no-offload on both ends and blocked signals: run for the default suite)"; finish; exit; }
printf '%s\n' 'import os, signal, sys' \
    'signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD})' \
    'os.execv(sys.argv[1], sys.argv[1:])' > "$WORK/blocked.py"
sigblk() { awk '$1 == "SigBlk:" {print $2}' "/proc/$1/status"; }
LAUNCH="/usr/bin/python3 $WORK/blocked.py" start_pair "" ""
check "started with signals blocked: TSO on, nothing blocked in the helper ($(sigblk "$PID_a"))" \
    test "$(tso_state "$NS_A")/$(sigblk "$PID_a")" = on/0000000000000000
kill -TERM "$PID_a"
check "started with signals blocked: SIGTERM still stops it within 2 s" wait_for 2 dead "$PID_a"
check "started with signals blocked: TSO off after SIGTERM" test "$(tso_state "$NS_A")" = off
stop_pair
finish
