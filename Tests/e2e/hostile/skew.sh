# hostile.sh part: sealed datagrams with skewed timestamps.

# Skew: sealed with the real key, the sender's current session and counters
# it used long ago (0..499, > 1984 behind), timestamps 0.5 s inside and
# outside the limit, in the past and the future. Inside: the time check
# passes and the window refuses (replay); outside: time-skew.
skew_all() { # ns session inner-dst target-args...
    local ns=$1 session=$2 inner=$3 o; shift 3
    for o in $((SKEW_S * 1000 - 500)) $((-SKEW_S * 1000 + 500)) $((SKEW_S * 1000 + 500)) $((-SKEW_S * 1000 - 500)); do
        atk "$ns" skew --key "$WORK/key" --session "$session" --offset-ms "$o" --count $SKEW_N \
            --counter-base 0 --counter-span 500 --inner-dst "$inner" "$@"
    done
}
c_skew_b() { skew_all "$NS_A" "$PEER" "$TUN_B" $(to_b) "${AS_A[@]}"; }
c_skew_a() { skew_all "$NS_B" "$PEER" "$TUN_A" $(to_a) "${AS_B[@]}"; }

run_class "skew: ±(${SKEW_S}s ∓ 0.5s), sealed, to B" b c_skew_b
run_class "skew: ±(${SKEW_S}s ∓ 0.5s), sealed, to A" a c_skew_a
