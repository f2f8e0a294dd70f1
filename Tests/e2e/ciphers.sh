# Runs the calling test once per cipher suite (sourced before lib.sh, bash):
# with CIPHER unset, the script runs itself with CIPHER set to each of
# CIPHERS (default: all three suites), shows their output, and ends with its
# own summary line adding theirs up; each run's own line is named
# NAME/SUITE. With CIPHER set, this does nothing.
. "$(dirname "${BASH_SOURCE[0]}")/../summary.sh"
CIPHERS=${CIPHERS:-aes-256-cbc-hmac-sha256 aes-256-gcm chacha20-poly1305}
if [ -z "${CIPHER:-}" ]; then
    per_cipher_name=$(basename "$0" .sh)
    per_cipher_out=$(mktemp)
    passed=0 failed=0
    for c in $CIPHERS; do
        CIPHER=$c bash "$0" "$@" | tee "$per_cipher_out"
        summary_add "$per_cipher_name/$c" "$per_cipher_out" "${PIPESTATUS[0]}"
    done
    rm -f "$per_cipher_out"
    summary_line "$per_cipher_name" "$passed" "$failed"
    [ "$failed" -eq 0 ]
    exit
fi
