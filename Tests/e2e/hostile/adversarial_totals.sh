# hostile.sh part: the adversarial part's totals. Enough datagrams sent, the
# tunnel still works, and the live pings lost no more than allowed.

check "adversarial datagrams in this run: $ADVERSARIAL (>= $MIN_ADVERSARIAL)" test "$ADVERSARIAL" -ge "$MIN_ADVERSARIAL"
check "tunnel still carries traffic A → B" lping "$NS_A" "$TUN_B" 3
check "tunnel still carries traffic B → A" lping "$NS_B" "$TUN_A" 3
kill -QUIT $LIVE_AB $LIVE_BA 2> /dev/null
sleep 0.2
# Live pings (20 a second each way) over the adversarial part: at most 1 %
# lost, plus a second's worth (20) for each of the two restarts in it.
for f in live.ab live.ba; do
    read -r r t <<<"$(quit_counts "$WORK/$f")"
    r=${r:-0} t=${t:-0}
    check "live traffic, adversarial part ($f): $((t - r)) of $t lost (<= 1 % + 2 restarts × 20)" \
        test "$t" -gt 0 -a $(( (t - r) * 100 )) -le $(( t + 2 * 20 * 100 ))
    figure "live traffic, adversarial part|$f: $(tr -d '\r' < "$WORK/$f" | grep -E '^[0-9]+/[0-9]+ packets' | tail -n 1 | sed 's/, min.*//') (two restarts in this part)"
done
ADV_T=$((SECONDS - T0))
