# hostile.sh part: memory and descriptors of all four processes around a
# long mixed flood.

# Resource bounds: RSS and fds of all four processes around a long mixed flood
# (half random bytes, half valid headers with random sessions: key derivations).
echo "  -- load: ${RES_S} s flood, memory and descriptors"
procs() { # a|b → "helper worker"
    local h; h=$(cat "$WORK/$1.pid"); echo "$h $(worker_of "$h")"
}
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
nfd() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
declare -A RSS0 FD0
read -r HA WA <<<"$(procs a)"; read -r HB WB <<<"$(procs b)"
for p in $HA $WA $HB $WB; do RSS0[$p]=$(rss $p); FD0[$p]=$(nfd $p); done
kill -QUIT $LIVE_AB $LIVE_BA 2> /dev/null; sleep 0.2
read -r lr0 lt0 <<<"$(quit_counts "$WORK/live.ab")"
snap b "$WORK/st.before"
ip netns exec "$NS_A" "$ATTACK" flood --cipher "$CIPHER" "${MODE_ARGS[@]}" --to "$UNDER_B:$PORT_B" --rate $FLOOD_RATE --senders 2 --seconds $RES_S --header-fraction 0.5 > "$WORK/flood2.out" 2>&1 &
f1=$!; PIDS+=($f1)
ip netns exec "$NS_B" "$ATTACK" flood --cipher "$CIPHER" "${MODE_ARGS[@]}" --to "$UNDER_A:$PORT_A" --rate 20000 --seconds $RES_S --header-fraction 0.5 > "$WORK/flood3.out" 2>&1 &
f2=$!; PIDS+=($f2)
wait $f1 $f2
kill -QUIT $LIVE_AB $LIVE_BA 2> /dev/null; sleep 0.2
read -r lr1 lt1 <<<"$(quit_counts "$WORK/live.ab")"
sleep 0.8
snap b "$WORK/st.after"
derivs=$(( $(field "$WORK/st.after" key-derivations) - $(field "$WORK/st.before" key-derivations) ))
kd=$(( $(field "$WORK/st.after" kernel-udp-inerrors) - $(field "$WORK/st.before" kernel-udp-inerrors) ))
# At most 1 % lost, plus the one ping that may be in flight at a snapshot.
check "resource flood: live pings A → B lost $(( (lt1 - lt0) - (lr1 - lr0) )) of $((lt1 - lt0)) (<= 1 % + 1)" \
    test $((lt1 - lt0)) -gt 0 -a $(( ((lt1 - lt0) - (lr1 - lr0)) * 100 )) -le $(( lt1 - lt0 + 100 ))
figure "resource flood|${RES_S} s: $(kv "$WORK/flood2.out" sent) datagrams at B ($(kv "$WORK/flood2.out" rate)/s) and $(kv "$WORK/flood3.out" sent) at A ($(kv "$WORK/flood3.out" rate)/s), half of them valid-looking headers with random sessions (B derived keys $derivs times; the kernel dropped $kd at B's full socket buffer); live pings A → B meanwhile: $((lr1 - lr0)) of $((lt1 - lt0)) answered"
for side in a b; do
    if [ $side = a ]; then h=$HA w=$WA; else h=$HB w=$WB; fi
    for p in $h $w; do
        role=helper; [ $p = "$w" ] && role=worker
        r0=${RSS0[$p]} r1=$(rss $p) f0=${FD0[$p]} f1=$(nfd $p)
        figure "memory|$side $role: RSS $r0 → $r1 kB, fds $f0 → $f1"
        check "$side $role alive after the flood" kill -0 $p
        check "$side $role RSS flat ($r0 → $r1 kB, ≤ 1024 kB growth)" test $((r1 - r0)) -le 1024
        check "$side $role fds unchanged ($f0 → $f1)" test "$f0" = "$f1"
    done
done
check "tunnel works after the long flood" lping "$NS_A" "$TUN_B" 3
