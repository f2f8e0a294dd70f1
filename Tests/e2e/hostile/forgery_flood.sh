# hostile.sh part: availability under a flood of new-session forgeries.

# Availability under a flood of new-session forgeries: valid headers with
# random sessions (nine in ten newer than A's, so each asks B for a key
# derivation before its MAC can fail), from an address that is not A's, as
# fast as one process can send them (sendmmsg, no pacing). A pinger sends
# 50 pings a second A → B through the tunnel meanwhile; at most 1 % of them
# may be lost (docs/HOSTILE.md). B's derivations for such sessions are
# bounded (DerivationBudget.perSecond, a burst on top): the rest are
# dropped as rate-limited.
echo "  -- load: new-session forgery flood"
FF_PINGS=$(( (FORGE_FLOOD_S - 1) * 50 ))
FF_MIN_RATE=100000
DERIV_PER_S=20000 DERIV_BURST=2000     # DerivationBudget.perSecond, .burst
snap b "$WORK/st.before"
ip netns exec "$NS_A" "$ATTACK" flood --cipher "$CIPHER" "${MODE_ARGS[@]}" --to "$UNDER_B:$PORT_B" --rate 0 --batch 64 --seconds $FORGE_FLOOD_S \
    --header-fraction 1 > "$WORK/flood.ff" 2>&1 &
ff=$!; PIDS+=($ff)
sleep 0.5
ip netns exec "$NS_A" ping -i 0.02 -c $FF_PINGS -W 1 -q -p $PATTERN "$TUN_B" > "$WORK/ping.ff" 2>&1
wait $ff
sleep 0.5
snap b "$WORK/st.after"
ffrate=$(kv "$WORK/flood.ff" rate); ffsent=$(kv "$WORK/flood.ff" sent)
read -r fftx ffrx <<<"$(sed -nE 's/^([0-9]+) packets transmitted, ([0-9]+) received.*/\1 \2/p' "$WORK/ping.ff")"
fftx=${fftx:-0} ffrx=${ffrx:-0}
ffloss=$(awk -v t="$fftx" -v r="$ffrx" 'BEGIN { if (t > 0) printf "%.1f", (t - r) * 100 / t; else print "?" }')
grow() { echo $(( $(field "$WORK/st.after" "$1") - $(field "$WORK/st.before" "$1") )); }
ffder=$(grow key-derivations); fflim=$(grow drop-rate-limited); ffkd=$(grow kernel-udp-inerrors)
ffmax=$(( (FORGE_FLOOD_S + 2) * DERIV_PER_S + DERIV_BURST ))
check "new-session forgery flood: ${ffrate:-0} datagrams/s (>= $FF_MIN_RATE)" test "${ffrate:-0}" -ge $FF_MIN_RATE
check "new-session forgery flood: ping A → B lost $((fftx - ffrx)) of $fftx ($ffloss %, <= 1 %)" \
    test "$fftx" -ge "$FF_PINGS" -a $(( (fftx - ffrx) * 100 )) -le "$fftx"
check "new-session forgery flood: B derived keys $ffder times (<= $ffmax: $DERIV_PER_S/s + $DERIV_BURST), refused $fflim unverified" \
    test "$ffder" -le $ffmax -a "$fflim" -gt 0
figure "new-session forgery flood|${FORGE_FLOOD_S} s: $ffsent forged datagrams at B (${ffrate:-?}/s, one process, sendmmsg), each with a random session; B derived keys $ffder times, dropped $fflim as rate-limited, the kernel dropped $ffkd at B's full socket buffer; pings A → B every 20 ms meanwhile: $ffrx of $fftx answered ($ffloss % lost)"
check "tunnel works after the forgery flood" lping "$NS_A" "$TUN_B" 3
