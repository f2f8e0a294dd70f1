# hostile.sh part: genuine datagrams of the other mode. Sealed with the
# tunnel's own key, in A's current session, with fresh counters far ahead
# of A's: only check 1c (the mode, flags bit 0) stands in their way. At a
# TAP end (MODE=tap) they are TUN-mode datagrams (flag clear), at a TUN end
# TAP-mode ones (flag set): every one is wrong-mode, nothing is delivered,
# and B says so once a run (tamper's flips of that bit already made it say
# it: the line stays one).

c_wrong_mode() {
    atk "$NS_A" seal --key "$WORK/key" --session "$PEER" --count $((FORGE_N / 2)) --counter-base $((1 << 40)) \
        --inner-dst "$TUN_B" --other-mode $(to_b) "${AS_A[@]}"
}
if [ "$MODE" = tap ]; then
    wm_label="wrong mode: TUN-mode datagrams (genuine key) at a TAP end"
    wm_line="peer sends IP packets (TUN mode), this end Ethernet frames (TAP mode)"
else
    wm_label="wrong mode: TAP-mode datagrams (genuine key) at a TUN end"
    wm_line="peer sends Ethernet frames (TAP mode), this end IP packets (TUN mode)"
fi
run_class "$wm_label" b c_wrong_mode
wm_said=$(grep -c "dropped as wrong-mode; said once" "$WORK/b.log")
check "wrong mode: B said it once this run ($wm_said line)" test "$wm_said" = 1
check "wrong mode: B's line names both modes" grep -q "$wm_line" "$WORK/b.log"
