# Runs the calling test once per cipher suite (sourced before lib.sh, bash):
# with CIPHER unset, the script runs itself with CIPHER set to each of
# CIPHERS (default: all three suites), shows their output, and ends with its
# own summary line adding theirs up; each run's own line is named
# NAME/SUITE. With CIPHER set, this does nothing.
# A script that sets ALSO_TAP=1 before sourcing this runs once more in TAP
# mode (E2E_MODE=tap, lib.sh) with one suite, TAP_CIPHER (default: the
# default suite), named NAME/tap/SUITE. With E2E_MODE=tap already set, every
# run is in TAP mode (named NAME/tap/SUITE).
. "$(dirname "${BASH_SOURCE[0]}")/../summary.sh"
CIPHERS=${CIPHERS:-aes-256-cbc-hmac-sha256 aes-256-gcm chacha20-poly1305}
if [ -z "${CIPHER:-}" ]; then
    per_cipher_name=$(basename "$0" .sh)
    per_cipher_mode=
    [ "${E2E_MODE:-tun}" = tap ] && per_cipher_mode=/tap
    per_cipher_out=$(mktemp)
    passed=0 failed=0
    for c in $CIPHERS; do
        CIPHER=$c bash "$0" "$@" | tee "$per_cipher_out"
        summary_add "$per_cipher_name$per_cipher_mode/$c" "$per_cipher_out" "${PIPESTATUS[0]}"
    done
    if [ "${ALSO_TAP:-0}" = 1 ] && [ -z "$per_cipher_mode" ]; then
        c=${TAP_CIPHER:-aes-256-cbc-hmac-sha256}
        E2E_MODE=tap CIPHER=$c bash "$0" "$@" | tee "$per_cipher_out"
        summary_add "$per_cipher_name/tap/$c" "$per_cipher_out" "${PIPESTATUS[0]}"
    fi
    rm -f "$per_cipher_out"
    summary_line "$per_cipher_name" "$passed" "$failed"
    [ "$failed" -eq 0 ]
    exit
fi
