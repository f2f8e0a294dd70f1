# hostile.sh part: the totals of the whole run, faults included.

# Stop the live pings; then, with the tuns quiet, the witness totals for the
# whole run (faults included): nothing foreign, no duplicate, and the
# witness saw exactly as many packets as the kernel counted (rx_packets of
# the tun (TAP) device: the packets squtun wrote into it).
kill -INT $LIVE_AB $LIVE_BA 2> /dev/null
wait $LIVE_AB $LIVE_BA 2> /dev/null
sleep 0.5
OTHER_ARP=""; [ "$MODE" = tap ] && OTHER_ARP=" and ARP"
for s in a b; do
    rx=$(( $(rx_of $s) - RX0_$s ))
    seen=$(kv "$WORK/tw.$s" seen)
    check "tun $s over the whole run: $seen packets ($(kv "$WORK/tw.$s" live) live, $(kv "$WORK/tw.$s" live-other) iperf3), foreign $(kv "$WORK/tw.$s" foreign), dup $(kv "$WORK/tw.$s" dup)" \
        test "$(kv "$WORK/tw.$s" foreign)" = 0 -a "$(kv "$WORK/tw.$s" dup)" = 0
    check "tun $s: the witness saw all $rx packets the kernel counted (saw $seen, socket drops $(kv "$WORK/tw.$s" socket-drops))" \
        test "$seen" = "$rx"
    figure "tun witness|$s: kernel rx_packets +$rx, witness saw $seen: $(kv "$WORK/tw.$s" live) live pings, $(kv "$WORK/tw.$s" live-other) iperf3$OTHER_ARP, $(kv "$WORK/tw.$s" foreign) foreign, $(kv "$WORK/tw.$s" dup) duplicates"
done
for f in live.ab live.ba; do
    st=$(grep -E "packets transmitted" "$WORK/$f")
    dups=$(sed -nE 's/.*\+([0-9]+) duplicates.*/\1/p' <<<"$st")
    check "live pings ($f): no duplicate replies (${st:-no summary})" test "${dups:-0}" = 0
    # Lost over the whole run: at most 1 %, plus 20 a second for the
    # blackhole (and one second more), and one second's worth for each of
    # the six other outages (two restarts, two kill -9, two address changes).
    read -r t r <<<"$(sed -nE 's/^([0-9]+) packets transmitted, ([0-9]+) received.*/\1 \2/p' <<<"$st")"
    t=${t:-0} r=${r:-0}
    allow=$(( t / 100 + 20 * (BLACKHOLE_S + 1) + 6 * 20 ))
    check "live pings ($f): $((t - r)) of $t lost over the whole run (<= $allow: 1 % + the blackhole + 6 outages × 20)" \
        test "$t" -gt 0 -a $((t - r)) -le $allow
    figure "live traffic|$f: ${st:-?}"
done
