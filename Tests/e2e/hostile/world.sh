# hostile.sh part: the world. The tunnel between A and B (lib.sh's world,
# both ends with -p, -a and -c; in TAP mode TAP devices tap0 and --tap),
# the tun witnesses, live pings both ways for the whole run, and the
# snapshot helpers every later part uses.

# make_tap NS LOCAL-ADDR MTU: a TAP device for the test user, the tunnel
# address on it (/30, as lib.sh's tuns), IPv6 off before it is up.
make_tap() {
    ip -n "$1" tuntap add dev tap0 mode tap user "$TEST_USER"
    ip netns exec "$1" sysctl -qw net.ipv6.conf.tap0.disable_ipv6=1
    ip -n "$1" addr add "$2/30" dev tap0
    ip -n "$1" link set tap0 mtu "$3" up
}
if [ "$MODE" = tap ]; then
    need_user "$TEST_USER"
    mkdir -p "$EMPTY" && chmod 755 "$EMPTY"
    make_underlay
    tap_mtu=$("$SQUTUN" -m 1500 --tap --cipher "$CIPHER")
    make_tap "$NS_A" "$TUN_A" "$tap_mtu"
    make_tap "$NS_B" "$TUN_B" "$tap_mtu"
else
    make_world
fi
# No IPv6 on the tuns: router solicitations would be tunnel traffic that is not ours.
for ns in "$NS_A" "$NS_B"; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.$DEV.disable_ipv6=1; done
genkey "$WORK/key"
A_ARGS=(-l $PORT_A -p "$UNDER_B" -r $PORT_B -i $DEV -k "$WORK/key" -a $KA -c $SKEW_S --cipher "$CIPHER" "${MODE_ARGS[@]}")
B_ARGS=(-l $PORT_B -p "$UNDER_A" -r $PORT_A -i $DEV -k "$WORK/key" -a $KA -c $SKEW_S --cipher "$CIPHER" "${MODE_ARGS[@]}")
start_a() { start_squtun "$NS_A" a "${A_ARGS[@]}"; }
start_b() { start_squtun "$NS_B" b "${B_ARGS[@]}"; }
ns_of() { if [ "$1" = a ]; then echo "$NS_A"; else echo "$NS_B"; fi; }
knows_peer() { local s; s=$(counter "$(ns_of "$1")" "$1" peer-session 2>/dev/null); [ -n "$s" ] && [ "$s" != none ]; }
# Every ping of this suite carries the live pattern, so the tun witness counts it as live.
lping() { # ns addr [count]
    ip netns exec "$1" ping -c "${3:-1}" -W 1 -i 0.2 -p $PATTERN "$2" > /dev/null 2>&1
}
start_a
start_b
check "tunnel up: ping A → B" wait_for 10 lping "$NS_A" "$TUN_B"
check "tunnel up: ping B → A" lping "$NS_B" "$TUN_A" 2

# Witnesses and live traffic.

RX0_a=$(ip netns exec "$NS_A" cat /sys/class/net/$DEV/statistics/rx_packets)
RX0_b=$(ip netns exec "$NS_B" cat /sys/class/net/$DEV/statistics/rx_packets)
# tunwatch: AF_PACKET on each tun0 (tap0), classifies every packet squtun writes
# into it as live (our ping pattern, first time), dup (a live packet seen
# again: a replay that got through), live-other (iperf3; in TAP mode also
# the ends' ARP) or foreign. In TAP mode (--tap) it reads whole frames.
for s in a b; do
    ip netns exec "$(ns_of $s)" "$ATTACK" tunwatch --iface $DEV "${MODE_ARGS[@]}" --state "$WORK/tw.$s" \
        --log "$WORK/tw.$s.log" --pattern $PATTERN --seconds 3000 &
    PIDS+=($!)
done
check "tun witnesses running" wait_for 3 test -s "$WORK/tw.a" -a -s "$WORK/tw.b"
# Live traffic: 20 pings a second each way, with the pattern.
ip netns exec "$NS_A" ping -i 0.05 -W 1 -w 3000 -p $PATTERN "$TUN_B" > "$WORK/live.ab" 2>&1 &
LIVE_AB=$!; PIDS+=($LIVE_AB)
ip netns exec "$NS_B" ping -i 0.05 -W 1 -w 3000 -p $PATTERN "$TUN_A" > "$WORK/live.ba" 2>&1 &
LIVE_BA=$!; PIDS+=($LIVE_BA)
sleep 1

kv() { tr ' ' '\n' < "$1" | awk -F= -v k="$2" '$1==k {print $2; exit}'; }
# A status field of a snapshot; 0 when absent (a counter this squtun does not have).
field() { awk -F': ' -v f="$2" '$1==f {print $2; found=1; exit} END { if (!found) print 0 }' "$1"; }
# quit_counts FILE: "received transmitted" from the live pinger's last SIGQUIT line.
quit_counts() { tr -d '\r' < "$1" | sed -nE 's|^([0-9]+)/([0-9]+) packets.*|\1 \2|p' | tail -n 1; }
rx_of() { ip netns exec "$(ns_of "$1")" cat /sys/class/net/$DEV/statistics/rx_packets 2>/dev/null || echo 0; }
# tunsnap: foreign dup live for a, then for b.
tunsnap() {
    local s
    for s in a b; do
        printf '%s %s %s ' "$(kv "$WORK/tw.$s" foreign)" "$(kv "$WORK/tw.$s" dup)" "$(kv "$WORK/tw.$s" live)"
    done
    echo
}
# Kernel UDP InErrors (socket buffer overflows) in a namespace.
kudp() {
    ip netns exec "$1" awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print "kernel-udp-inerrors: " $c["InErrors"] }' /proc/net/snmp
}
snap() { # target file
    status_of "$(ns_of "$1")" "$1" > "$2" 2>&1
    kudp "$(ns_of "$1")" >> "$2"
}
