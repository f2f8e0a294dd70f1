#!/usr/bin/env bash
# Layer 2 (--tap): Ethernet frames between two pre-created TAP devices.
# A is tappet's setup: its TAP device made by root for the test user, who
# starts squtun itself (one process) with a keypair; B is a root helper.
# Point-to-point (ping, IPv6 over ND, 5 s iperf3 both ways, the printed
# TAP MTU exactly), a VLAN over the TAP devices, a frame too long to send
# (tx-oversize), a bridge on A joining a third namespace C (the LAN) that B
# reaches by ARP and broadcast, a TUN end against a TAP end (wrong-mode),
# and the errors for a device of the other kind.
. "$(dirname "$0")/lib.sh"
NS_C="sqt-c-$E2E_ID"
tun_mode=$(stat -c %a /dev/net/tun)
tap_cleanup() { chmod "$tun_mode" /dev/net/tun; ip netns del "$NS_C" 2>/dev/null; cleanup; }
trap tap_cleanup EXIT
# The user opens /dev/net/tun itself (Debian's is 0666; some containers' 0600).
[ "$tun_mode" = 666 ] || chmod 666 /dev/net/tun
echo "tap: Ethernet frames between TAP devices (--tap)"
need_user "$TEST_USER"
need_pkgs iperf3
mkdir -p "$EMPTY" && chmod 755 "$EMPTY"
make_underlay
CIPHER=${CIPHER:-aes-256-gcm}
mtu=$("$SQUTUN" -m 1500 --tap --cipher "$CIPHER")
TAP_A=10.78.0.1; TAP_B=10.78.0.2
make_tap() { # ns addr addr6
    ip -n "$1" tuntap add dev tap0 mode tap user "$TEST_USER"
    ip -n "$1" addr add "$2/24" dev tap0
    ip -n "$1" addr add "$3/64" dev tap0 nodad
    ip -n "$1" link set tap0 mtu "$mtu" up
}
make_tap "$NS_A" "$TAP_A" fd00:78::1
make_tap "$NS_B" "$TAP_B" fd00:78::2

uid=$(id -u "$TEST_USER"); gid=$(id -g "$TEST_USER")
RUN="$WORK/run"; mkdir -p "$RUN"; chown "$TEST_USER" "$RUN"
(cd "$RUN" && "$SQUTUN" genkey --keypair a >/dev/null) && chown "$TEST_USER" "$RUN/a.key"
(cd "$WORK" && "$SQUTUN" genkey --keypair b >/dev/null)
# A runs with an allocation counter (t_alloc.sh's): none per frame either.
cc -O2 -shared -fPIC -o "$RUN/alloccount.so" "$(dirname "$0")/../tools/alloccount/alloccount.c"
as_user() { ip netns exec "$NS_A" setpriv --reuid="$uid" --regid="$gid" --clear-groups "$@"; }
start_a() { # the user's single process on A (its log: a.log); no function in between: PID_a is squtun's
    ip netns exec "$NS_A" setpriv --reuid="$uid" --regid="$gid" --clear-groups \
        env LD_PRELOAD="$RUN/alloccount.so" "$SQUTUN" -f -l 3456 -p "$UNDER_B" -r 3457 -i tap0 --tap -k "$RUN/a.key" --peer-key "$WORK/b.pub" \
        --cipher "$CIPHER" --pidfile "$RUN/a.pid" --control "$RUN/a.sock" "$@" >> "$WORK/a.log" 2>&1 &
    PID_a=$!; PIDS+=("$PID_a")
}
start_b() { # B's root helper and worker, on DEV (tap0) with the extra options
    local dev=$1; shift
    start_squtun "$NS_B" b -l 3457 -p "$UNDER_A" -r 3456 -i "$dev" -k "$WORK/b.key" --peer-key "$RUN/a.pub" \
        --cipher "$CIPHER" "$@"
}
status_a() { as_user "$SQUTUN" status tap0 --control "$RUN/a.sock"; }
count_a() { status_a | awk -F': ' -v f="$1" '$1==f {print $2}'; }
count_b() { ip netns exec "$NS_B" "$SQUTUN" status "${2:-tap0}" --control "$WORK/b.sock" | awk -F': ' -v f="$1" '$1==f {print $2}'; }

# The errors: a TUN device named with --tap, a TAP device without it.
ip -n "$NS_B" tuntap add dev tun1 mode tun
out=$(ip netns exec "$NS_B" "$SQUTUN" -f -u "$TEST_USER" --chroot "$EMPTY" -i tun1 --tap -k "$WORK/b.key" --peer-key "$RUN/a.pub" 2>&1); rc=$?
check "a TUN device with --tap: exit 1, says so ($out)" \
    sh -c "test $rc = 1 && test \"\$(printf '%s\n' \"\$1\" | wc -l)\" = 1 && printf '%s' \"\$1\" | grep -q 'tun1 is a TUN device and --tap needs a TAP device'" _ "$out"
out=$(ip netns exec "$NS_B" "$SQUTUN" -f -u "$TEST_USER" --chroot "$EMPTY" -i tap0 -k "$WORK/b.key" --peer-key "$RUN/a.pub" 2>&1); rc=$?
check "a TAP device without --tap: exit 1, says so ($out)" \
    sh -c "test $rc = 1 && printf '%s' \"\$1\" | grep -q '^squtun: tap0 is a TAP device: add --tap, or use a TUN device'" _ "$out"

start_a
start_b tap0 --tap
check "ping A → B (IPv4, ARP over the tunnel)" wait_for 8 ping_from "$NS_A" "$TAP_B"
check "ping B → A" ping_from "$NS_B" "$TAP_A" 2
check "ping A → B over IPv6 (neighbour discovery over the tunnel)" wait_for 3 ping_from "$NS_A" fd00:78::2
# Multicast: a routing protocol's hello (OSPF's AllSPFRouters, 224.0.0.5,
# TTL 1) sent out of A's TAP device reaches a listener on B's.
ip netns exec "$NS_B" python3 -c '
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("224.0.0.5", 8989))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4s", socket.inet_aton("224.0.0.5"), socket.inet_aton(sys.argv[1])))
s.settimeout(5)
data, sender = s.recvfrom(100)
print(data.decode(), sender[0])' "$TAP_B" > "$WORK/hello.out" 2>&1 &
hello=$!
sleep 0.5
ip netns exec "$NS_A" python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
for _ in range(3):
    s.sendto(b"hello 224.0.0.5", ("224.0.0.5", 8989)); time.sleep(0.2)' "$TAP_A"
wait $hello
check "multicast: a hello to 224.0.0.5 (TTL 1) out of A's TAP reaches B's listener ($(cat "$WORK/hello.out"))" \
    grep -qx "hello 224.0.0.5 $TAP_A" "$WORK/hello.out"
check "A learnt B's MAC address by ARP" \
    sh -c "ip -n $NS_A neigh show $TAP_B dev tap0 | grep -q \"\$(ip -n $NS_B -br link show tap0 | awk '{print \$3}')\""
check "A is the user's single process (no worker child, uid $uid)" \
    sh -c "test -z '$(worker_of "$PID_a")' && test \"\$(awk '/^Uid:/ {print \$2}' /proc/$PID_a/status)\" = $uid"
check "B is a root helper with a worker" test -n "$(worker_of "$PID_b")"
check "squtun status says mode: tap (A, the user's: $(count_a mode))" test "$(count_a mode)" = tap
check "squtun status says mode: tap (B)" test "$(count_b mode)" = tap
check "both ends: offload off" test "$(count_b offload)/$(count_a offload)" = off/off

# The printed TAP MTU ($mtu for $CIPHER over IPv4, 1500) is exact: a frame
# of that MTU crosses the 1500-byte underlay whole, one byte more does not.
reasm() { ip netns exec "$NS_B" awk '/^Ip:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print $c["ReasmReqds"] }' /proc/net/snmp; }
r0=$(reasm)
check "a full $mtu-byte packet (a $((mtu + 14))-byte frame) crosses (DF set)" \
    sh -c "ip netns exec $NS_A ping -c 2 -W 1 -M do -s $((mtu - 28)) $TAP_B >/dev/null"
check "without fragmenting the underlay (ReasmReqds +$(( $(reasm) - r0 )))" test "$(reasm)" = "$r0"
ip -n "$NS_A" link set tap0 mtu $((mtu + 1)); ip -n "$NS_B" link set tap0 mtu $((mtu + 1))
ip netns exec "$NS_A" ping -c 2 -W 1 -M do -s $((mtu - 27)) "$TAP_B" >/dev/null 2>&1
check "a frame 1 byte longer does not fit the underlay: fragmented (ReasmReqds +$(( $(reasm) - r0 )))" \
    test "$(reasm)" -gt "$r0"
ip -n "$NS_A" link set tap0 mtu "$mtu"; ip -n "$NS_B" link set tap0 mtu "$mtu"

allocs() { # A's allocation count so far (SIGUSR2: the counter's line in its log)
    local before; before=$(grep -c '^allocations:' "$WORK/a.log")
    kill -USR2 "$PID_a"
    wait_for 2 sh -c "[ \$(grep -c '^allocations:' $WORK/a.log) -gt $before ]"
    grep '^allocations:' "$WORK/a.log" | tail -n 1 | awk '{print $2}'
}
# Warm up both directions and sizes (first uses may set up runtime metadata once).
ip netns exec "$NS_A" ping -c 20 -i 0.01 -q "$TAP_B" >/dev/null
ip netns exec "$NS_B" ping -c 20 -i 0.01 -s 1300 -q "$TAP_A" >/dev/null
tx0=$(count_a tx-packets); rx0=$(count_a rx-packets)
a1=$(allocs)
ip netns exec "$NS_A" ping -c 500 -i 0.002 -q "$TAP_B" >/dev/null
ip netns exec "$NS_B" ping -c 500 -i 0.002 -s 1300 -q "$TAP_A" >/dev/null
# 5 s of iperf3 TCP each way, over IPv4 and over IPv6 (one server each).
port=5200
for to in "$TAP_B" fd00:78::2; do
    for dir in "A → B:" "B → A:-R"; do
        port=$((port + 1)); name=${dir%%:*}; flag=${dir#*:}
        ip netns exec "$NS_B" iperf3 -s -1 -p $port -B "$to" >/dev/null 2>&1 & PIDS+=($!)
        sleep 0.5
        if ip netns exec "$NS_A" timeout 30 iperf3 -c "$to" -p $port $flag -t 5 -J > "$WORK/iperf.json" 2>&1; then
            bps=$(/usr/bin/python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6,1))' "$WORK/iperf.json")
            pass "5 s iperf3 TCP $name to $to through the TAP tunnel completes"
            log "iperf3 TCP $name to $to ($CIPHER, TAP): $bps Mbit/s"
        else
            fail "5 s iperf3 TCP $name to $to through the TAP tunnel completes"
            log "iperf3: $(grep -m1 '"error"' "$WORK/iperf.json")"
        fi
    done
done
a2=$(allocs)
moved=$(( $(count_a tx-packets) - tx0 + $(count_a rx-packets) - rx0 ))
check "no allocation per frame at A ($((a2 - a1)) for $moved frames sealed and opened)" \
    test "$moved" -ge 2000 -a $((a2 - a1)) -eq 0
check "no drops at B on a clean link" \
    sh -c "ip netns exec $NS_B $SQUTUN status tap0 --control $WORK/b.sock | awk -F': ' '\$1 ~ /^drop-/ && \$2 != 0 {bad=1} END {exit bad}'"

# 802.1Q: tagged frames cross as they are (no VLAN interface needed: the
# kernel here may lack 8021q), a full-size one too (its 4-byte tag beyond
# the TAP MTU's frame fragments the underlay, as a VLAN's does unless its
# MTU is 4 lower).
ip netns exec "$NS_B" /usr/bin/python3 "$(dirname "$0")/vlanframe.py" receive tap0 7 $((mtu + 18)) > "$WORK/vlan.out" 2>&1 &
vlan_rx=$!
wait_for 3 grep -q ready "$WORK/vlan.out"
ip netns exec "$NS_A" /usr/bin/python3 "$(dirname "$0")/vlanframe.py" send tap0 7 $((mtu + 18))
wait "$vlan_rx"; rc=$?
check "a $((mtu + 18))-byte frame tagged VLAN 7 crosses whole ($(tail -n 1 "$WORK/vlan.out"))" test "$rc" = 0

# A TAP MTU above what one datagram carries: the longest frame (65535 bytes)
# is counted as tx-oversize, not sent cut short.
txb0=$(count_a tx-bytes)
ip -n "$NS_A" link set tap0 mtu 65521
ip netns exec "$NS_A" ping -c 3 -i 0.2 -W 1 -s $((65521 - 28)) "$TAP_B" >/dev/null 2>&1
over=$(count_a tx-oversize)
check "3 frames of 65535 bytes: tx-oversize ${over:-missing} (= 3)" test "${over:-0}" = 3
# (The link's other frames, ND and such, still go: a cut one would be 65 kB.)
sent=$(( $(count_a tx-bytes) - txb0 ))
check "none of them sent cut short (tx-bytes +$sent, < 10000)" test "$sent" -lt 10000
check "logged: the frame's length and the MTU to set" \
    grep -q "dropped a 65535-byte packet read from tap0: longer than the largest payload .*; set the MTU of tap0 to" "$WORK/a.log"
ip -n "$NS_A" link set tap0 mtu "$mtu"
check "ordinary frames still cross" ping_from "$NS_A" "$TAP_B" 2

# A bridge on A: its TAP device and a veth to C, the LAN (10.80.0.0/24). B's
# TAP device gets an address of the LAN: B and C talk with no route, by
# ARP across the tunnel, and C's broadcasts reach B.
ip netns del "$NS_C" 2>/dev/null; ip netns add "$NS_C"
ip -n "$NS_C" link set lo up
ip link add "sqlan$E2E_ID" netns "$NS_A" type veth peer name lan0 netns "$NS_C"
ip -n "$NS_A" addr flush dev tap0
ip -n "$NS_A" link add br0 type bridge
ip -n "$NS_A" link set tap0 master br0
ip -n "$NS_A" link set "sqlan$E2E_ID" master br0 up
ip -n "$NS_A" link set br0 mtu "$mtu" up
ip -n "$NS_C" link set lan0 mtu "$mtu" up
ip -n "$NS_C" addr add 10.80.0.3/24 dev lan0
ip -n "$NS_B" addr add 10.80.0.2/24 dev tap0
check "ping B → C across A's bridge" wait_for 8 ping_from "$NS_B" 10.80.0.3
check "ping C → B" ping_from "$NS_C" 10.80.0.2 2
check "B has no route but its link's (no gateway)" sh -c "! ip -n $NS_B route | grep -q via"
check "C learnt B's MAC address by ARP" \
    sh -c "ip -n $NS_C neigh show 10.80.0.2 | grep -q \"\$(ip -n $NS_B -br link show tap0 | awk '{print \$3}')\""
ip netns exec "$NS_B" /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999)); s.settimeout(5)
print(s.recvfrom(100)[0].decode())' > "$WORK/broadcast.out" 2>&1 &
listener=$!
sleep 0.3
ip netns exec "$NS_C" /usr/bin/python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
for _ in range(5):
    s.sendto(b"hello from the LAN", ("10.80.0.255", 9999)); time.sleep(0.2)'
wait "$listener"
check "C's broadcast (10.80.0.255) reaches B: '$(cat "$WORK/broadcast.out")'" grep -qx "hello from the LAN" "$WORK/broadcast.out"

# A TUN end against the TAP end: every datagram dropped as wrong-mode,
# said once in the log, nothing written to either device.
kill -TERM "$PID_b"; reap "$PID_b"
ip -n "$NS_B" addr add 10.81.0.2/24 dev tun1
ip -n "$NS_B" link set tun1 up
start_b tun1
wait_for 5 test -S "$WORK/b.sock"
rx_a=$(count_a rx-packets)
ip netns exec "$NS_B" ping -c 3 -i 0.2 -W 1 10.81.0.1 >/dev/null 2>&1
# Frames for A to send: C (the LAN) pings B through the bridge.
ip netns exec "$NS_C" ping -c 3 -i 0.2 -W 1 10.80.0.2 >/dev/null 2>&1
check "A (TAP) counts B's datagrams as wrong-mode ($(count_a drop-wrong-mode))" test "$(count_a drop-wrong-mode)" -ge 3
check "B (TUN) counts A's as wrong-mode ($(count_b drop-wrong-mode tun1))" test "$(count_b drop-wrong-mode tun1)" -ge 3
check "nothing delivered to A's device (rx-packets +$(( $(count_a rx-packets) - rx_a )))" test "$(count_a rx-packets)" = "$rx_a"
check "nothing delivered to B's (rx-packets $(count_b rx-packets tun1))" test "$(count_b rx-packets tun1)" = 0
check "A says it once, naming both modes" \
    test "$(grep -c 'peer sends IP packets (TUN mode), this end Ethernet frames (TAP mode)' "$WORK/a.log")" = 1
check "B says it once, naming both modes" \
    test "$(grep -c 'peer sends Ethernet frames (TAP mode), this end IP packets (TUN mode)' "$WORK/b.log")" = 1
kill -TERM "$PID_a"
check "SIGTERM: A exits" wait_for 2 dead "$PID_a"

# `squtun -m 1500 --tap` for every suite, over IPv4 and IPv6: a frame of the
# printed MTU crosses the 1500-byte underlay whole, one byte more gets its
# datagram fragmented (B's reassembly counter). Root helpers on a second
# pair of TAP devices, a PSK.
genkey "$WORK/psk"
ip -n "$NS_A" addr add 2001:db8::1/64 dev "$VETH_A" nodad
ip -n "$NS_B" addr add 2001:db8::2/64 dev "$VETH_B" nodad
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" tuntap add dev tapm mode tap user "$TEST_USER"; done
ip -n "$NS_A" addr add 10.82.0.1/24 dev tapm; ip -n "$NS_B" addr add 10.82.0.2/24 dev tapm
reasm6() { ip netns exec "$NS_B" awk '$1 == "Ip6ReasmReqds" {print $2}' /proc/net/snmp6; }
for suite in aes-256-cbc-hmac-sha256 aes-256-gcm chacha20-poly1305; do
    for under in 4 6; do
        if [ $under = 4 ]; then peer_a=$UNDER_A peer_b=$UNDER_B v6="" count=reasm
        else peer_a=2001:db8::1 peer_b=2001:db8::2 v6=--ipv6 count=reasm6; fi
        m=$("$SQUTUN" -m 1500 --tap $v6 --cipher "$suite")
        for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set tapm mtu "$m" up; done
        start_squtun "$NS_A" ma -l 3460 -p "$peer_b" -r 3461 -i tapm --tap -k "$WORK/psk" --cipher "$suite"
        start_squtun "$NS_B" mb -l 3461 -p "$peer_a" -r 3460 -i tapm --tap -k "$WORK/psk" --cipher "$suite"
        wait_for 5 ping_from "$NS_A" 10.82.0.2
        r0=$($count)
        ip netns exec "$NS_A" ping -c 1 -W 1 -M do -s $((m - 28)) 10.82.0.2 >/dev/null 2>&1; whole=$?
        r1=$($count)
        for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set tapm mtu $((m + 1)); done
        ip netns exec "$NS_A" ping -c 1 -W 1 -M do -s $((m - 27)) 10.82.0.2 >/dev/null 2>&1
        r2=$($count)
        check "$suite, IPv$under underlay: TAP MTU $m carries a full frame whole (reassembly +$((r1 - r0))), one byte more is fragmented (+$((r2 - r1)))" \
            test "$whole" = 0 -a "$r1" = "$r0" -a "$r2" -gt "$r1"
        kill -TERM "$PID_ma" "$PID_mb"; reap "$PID_ma"; reap "$PID_mb"
    done
done
finish
