# hostile.sh part: a blackhole on the underlay.

# All underlay traffic dropped for BLACKHOLE_S seconds (nftables on A's
# underlay link, both directions; without nft, or with HOSTILE_BLACKHOLE=link:
# the link set down).
if [ "${HOSTILE_BLACKHOLE:-nft}" = nft ] && command -v nft > /dev/null 2>&1; then
    HOW="nftables drop, both directions, on A's underlay link"
    blackhole_on() {
        ip netns exec "$NS_A" nft -f - <<EOF
table netdev hostile {
    chain in { type filter hook ingress device "$VETH_A" priority 0; policy drop; }
    chain out { type filter hook egress device "$VETH_A" priority 0; policy drop; }
}
EOF
    }
    blackhole_off() { ip netns exec "$NS_A" nft delete table netdev hostile; }
else
    HOW="A's underlay link set down"
    blackhole_on() { ip -n "$NS_A" link set "$VETH_A" down; }
    blackhole_off() { ip -n "$NS_A" link set "$VETH_A" up; }
fi
pinger "$NS_A" "$TUN_B" "$WORK/ping.bh"
sleep 1
blackhole_on
tb0=$(now)
sleep 1
check "blackhole: nothing crosses" sh -c "! ip netns exec $NS_A ping -c 1 -W 1 -p $PATTERN $TUN_B > /dev/null 2>&1"
sleep $((BLACKHOLE_S - 2))
tb1=$(now)
blackhole_off
wait_for 10 has_reply_after "$WORK/ping.bh" "$tb1"
rec=$(reply_after "$WORK/ping.bh" "$tb1")
kill -INT $PINGER 2> /dev/null
check "after a ${BLACKHOLE_S} s blackhole: traffic resumes ${rec:-never} s after the repair (≤ 3 s)" \
    awk -v g="${rec:-99}" 'BEGIN { exit !(g <= 3) }'
figure "blackhole|all underlay traffic dropped for $(awk -v a="$tb0" -v b="$tb1" 'BEGIN{printf "%.1f", b-a}') s ($HOW): traffic back ${rec:-never} s after the repair"
check "both daemons still run after the faults" kill -0 "$(cat "$WORK/a.pid")" "$(cat "$WORK/b.pid")"
