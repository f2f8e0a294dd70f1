#!/usr/bin/env bash
# An IPv6 underlay (2001:db8::/64, the documentation prefix): the tunnel
# works over IPv6 peers, with the MTU that `squtun -m 1500 --ipv6` gives
# for the suite. Once per cipher suite (ciphers.sh).
. "$(dirname "$0")/ciphers.sh"
. "$(dirname "$0")/lib.sh"
T_NAME="$T_NAME/$CIPHER"
trap cleanup EXIT
echo "ipv6: IPv6 underlay, --cipher $CIPHER"
make_world
ip -n "$NS_A" addr add 2001:db8::1/64 dev "$VETH_A" nodad
ip -n "$NS_B" addr add 2001:db8::2/64 dev "$VETH_B" nodad
mtu6=$("$SQUTUN" -m 1500 --ipv6 --cipher "$CIPHER")
case $CIPHER in aes-256-cbc-hmac-sha256) want6=1359 ;; *) want6=1404 ;; esac
check "squtun -m 1500 --ipv6 --cipher $CIPHER gives $want6 ($mtu6)" test "$mtu6" = "$want6"
ip -n "$NS_A" link set tun0 mtu "$mtu6"
ip -n "$NS_B" link set tun0 mtu "$mtu6"
genkey "$WORK/key"
start_squtun "$NS_A" a -l 3456 -p 2001:db8::2 -r 3457 -i tun0 -k "$WORK/key" -a 5 --cipher "$CIPHER"
start_squtun "$NS_B" b -l 3457 -i tun0 -k "$WORK/key" --cipher "$CIPHER"
check "ping A → B over IPv6" wait_for 5 ping_from "$NS_A" "$TUN_B"
check "B learnt A's IPv6 address" sh -c "ip netns exec $NS_B $SQUTUN status tun0 --control $WORK/b.sock | grep -qx 'peer: \[2001:db8::1\]:3456'"
# A full-size packet (tun MTU $mtu6) crosses without fragmenting the underlay.
check "a $mtu6-byte packet crosses (DF set)" \
    ip netns exec "$NS_A" ping -c 2 -W 1 -M do -s $((mtu6 - 28)) "$TUN_B"
check "a $((mtu6 + 1))-byte packet does not fit the tun MTU" \
    sh -c "! ip netns exec $NS_A ping -c 1 -W 1 -M do -s $((mtu6 - 27)) $TUN_B"
frag=$(ip netns exec "$NS_B" awk '/^Ip6:/ || /^Ip6ReasmReqds/ {print}' /proc/net/snmp6 2>/dev/null | awk '$1=="Ip6ReasmReqds" {print $2}')
check "no IPv6 reassembly on the underlay (${frag:-0} reassemblies)" test "${frag:-0}" = 0
finish
