# hostile.sh part: the report. The table of adversarial classes and the
# load and fault figures, printed and, with HOSTILE_REPORT=FILE, written
# to FILE as markdown.

report() {
    echo "### Adversarial datagrams ($RUN run, --cipher $CIPHER, $MODE mode, attack pacing $RATE/s)"
    echo
    echo "| class | sent | reached tun | counter check (drop-<reason> growth) | verdict | live pkts meanwhile |"
    echo "|---|---:|---:|---|---|---:|"
    awk -F'|' '{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6; s += $2; r += $3; l += $6 }
               END { printf "| **total** | **%d** | **%d** | | | %d |\n", s, r, l }' "$ROWS"
    echo
    echo "### Load and faults"
    echo
    awk -F'|' '{ printf "- **%s**: %s\n", $1, $2 }' "$FIGS"
    echo
    echo "Adversarial part $ADV_T s; whole run $((SECONDS - T0)) s."
}
echo
report | sed 's/^/    /'
# The default suite's report is HOSTILE_REPORT itself, another suite's
# FILE.SUITE; a TAP-mode run's gets .tap at the end.
if [ -n "${HOSTILE_REPORT:-}" ]; then
    out=$HOSTILE_REPORT
    [ "$CIPHER" = aes-256-cbc-hmac-sha256 ] || out+=".$CIPHER"
    [ "$MODE" = tap ] && out+=".tap"
    report > "$out"
fi
