# hostile.sh part: how an adversarial class is judged (docs/HOSTILE.md,
# "How the counter check works"). run_class takes a snapshot, runs the
# class's attack, takes another, and checks that nothing reached a tun,
# that every drop-<reason> counter grew by exactly the predicted number,
# and that live traffic crossed meanwhile; one row of the report table.

REASONS=(malformed reflected old-session bad-mac unknown-sender time-skew replay rate-limited
         old-version wrong-suite wrong-mode unknown-key)
ROWS=$WORK/rows; : > "$ROWS"
FIGS=$WORK/figures; : > "$FIGS"
ADVERSARIAL=0
figure() { echo "$*" >> "$FIGS"; log "$*"; }

# atk NS ARGS...: squtun-attack in NS, for the run's suite and mode (what it
# captures, seals and predicts); its lines go to the class's output.
atk() {
    local ns=$1; shift
    if ! ip netns exec "$ns" "$ATTACK" "$@" --cipher "$CIPHER" "${MODE_ARGS[@]}" >> "$WORK/class.out" 2>> "$WORK/attack.err"; then
        CLASS_OK=0
        log "squtun-attack $1 failed: $(tail -n 1 "$WORK/attack.err")"
    fi
}
# Target arguments: B attacked from A's side of the wire, A from B's.
to_b() { echo --to "$UNDER_B:$PORT_B" --own "$OWN" --peer "$PEER" --limit-s $SKEW_S --rate $RATE; }
to_a() { echo --to "$UNDER_A:$PORT_A" --own "$OWN" --peer "$PEER" --limit-s $SKEW_S --rate $RATE; }
AS_A=(--from "$UNDER_A:$PORT_A" --from-peer)   # spoofed: B's peer's own address
AS_B=(--from "$UNDER_B:$PORT_B" --from-peer)   # spoofed: A's peer's own address

# drops_since: DROPS = all drop-<reason> growth and KDROP = kernel UDP
# drops between st.before and st.after.
drops_since() {
    local r
    DROPS=0
    for r in "${REASONS[@]}"; do
        DROPS=$(( DROPS + $(field "$WORK/st.after" "drop-$r") - $(field "$WORK/st.before" "drop-$r") ))
    done
    KDROP=$(( $(field "$WORK/st.after" kernel-udp-inerrors) - $(field "$WORK/st.before" kernel-udp-inerrors) ))
}

# run_class LABEL TARGET FUNCTION: snapshot, attack, snapshot, judge, one table row.
run_class() {
    local label=$1 t=$2 fn=$3
    sleep 0.3
    snap "$t" "$WORK/st.before"
    local before after
    before=($(tunsnap))
    OWN=$(field "$WORK/st.before" own-session)
    PEER=$(field "$WORK/st.before" peer-session)
    : > "$WORK/class.out"
    CLASS_OK=1
    "$fn"
    local -A exp=()
    local sent=0 line kv k v
    while read -r line; do
        case $line in
            sent=*)
                for kv in $line; do
                    k=${kv%%=*}; v=${kv#*=}
                    if [ "$k" = sent ]; then sent=$((sent + v)); else exp[$k]=$(( ${exp[$k]:-0} + v )); fi
                done ;;
        esac
    done < "$WORK/class.out"
    [ -n "${exp[send-failures]:-}" ] && { CLASS_OK=0; log "$label: ${exp[send-failures]} datagrams could not be sent"; }

    # Every datagram sent must end as a drop (or a kernel drop at a full
    # socket buffer): wait, up to 5 s, for squtun to have counted them all.
    local i
    for i in $(seq 50); do
        sleep 0.1
        snap "$t" "$WORK/st.after"
        drops_since >/dev/null
        [ "$DROPS" -ge $((sent - KDROP)) ] && break
    done
    sleep 0.2
    after=($(tunsnap))

    # Tun side: foreign + dup on both tuns (that the witness saw every packet
    # the kernel counted is checked once, at the end, when the tuns are quiet).
    local reached=$(( after[0] - before[0] + after[1] - before[1] + after[3] - before[3] + after[4] - before[4] ))
    local live=$(( after[2] - before[2] + after[5] - before[5] ))

    # Counters: every drop-<reason> grew by exactly the predicted number
    # (unless the kernel itself dropped datagrams at a full socket buffer:
    # then no reason may exceed its prediction and the shortfall is at most
    # the kernel's count).
    local kdrop=$(( $(field "$WORK/st.after" kernel-udp-inerrors) - $(field "$WORK/st.before" kernel-udp-inerrors) ))
    local cok=1 ctext="" r d e total=0
    for r in "${REASONS[@]}"; do
        d=$(( $(field "$WORK/st.after" "drop-$r") - $(field "$WORK/st.before" "drop-$r") ))
        e=${exp[$r]:-0}
        total=$((total + d))
        if [ "$kdrop" -eq 0 ]; then [ "$d" -eq "$e" ] || cok=0; else [ "$d" -le "$e" ] || cok=0; fi
        if [ "$d" -ne 0 ] || [ "$e" -ne 0 ]; then
            ctext+="${ctext:+, }$r +$d"
            [ "$d" -eq "$e" ] || ctext+=" (predicted $e)"
        fi
    done
    [ "$kdrop" -gt 0 ] && { [ "$total" -ge $((sent - kdrop)) ] || cok=0; ctext+="; kernel dropped $kdrop"; }
    if [ "$cok" = 1 ]; then ctext+=" ✓"; else ctext+=" ✗"; fi
    [ "$sent" -gt 0 ] || CLASS_OK=0
    local verdict=PASS
    { [ "$reached" -eq 0 ] && [ "$cok" = 1 ] && [ "$CLASS_OK" = 1 ]; } || verdict=FAIL
    check "$label: $sent datagrams, $reached reached a tun" test "$reached" -eq 0 -a "$CLASS_OK" = 1
    check "$label: drop counters as predicted ($ctext)" test "$cok" = 1
    check "$label: live traffic crossed meanwhile ($live packets)" test "$live" -gt 0
    printf '%s|%s|%s|%s|%s|%s\n' "$label" "$sent" "$reached" "$ctext" "$verdict" "$live" >> "$ROWS"
    ADVERSARIAL=$((ADVERSARIAL + sent))
}
