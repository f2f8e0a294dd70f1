# The one summary format of every test script (sourced, bash): each suite
# ends with one line
#     NAME: N passed, M failed
# (t_basic, hostile, vectors, fuzz, swift-test, e2e; scripts/test's total
# is "tests: N passed, M failed"). Whoever runs a suite reads its line back
# with summary_read, so a check is counted once, where it ran.

# summary_line NAME PASSED FAILED
summary_line() { echo "$1: $2 passed, $3 failed"; }

# summary_read NAME FILE [STATUS]: SUM_PASS and SUM_FAIL from the last
# "NAME: N passed, M failed" line of FILE. Without such a line the suite
# counts as one failure (and summary_read returns 1); a non-zero exit
# STATUS with no failure counted is one failure too.
summary_read() {
    local line
    line=$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed$" "$2" | tail -n 1)
    if [ -z "$line" ]; then
        SUM_PASS=0 SUM_FAIL=1
        return 1
    fi
    read -r SUM_PASS SUM_FAIL <<<"$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/' <<<"$line")"
    if [ "${3:-0}" -ne 0 ] && [ "$SUM_FAIL" -eq 0 ]; then SUM_FAIL=1; fi
    return 0
}

# summary_add NAME FILE STATUS: summary_read, then its counts added to the
# caller's totals `passed` and `failed`; a suite without its line says so.
summary_add() {
    summary_read "$1" "$2" "$3" || echo "  FAIL  $1 ended without its line \"$1: N passed, M failed\" (exit $3)"
    passed=$((passed + SUM_PASS)); failed=$((failed + SUM_FAIL))
}
