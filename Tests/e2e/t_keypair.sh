#!/usr/bin/env bash
# The keypair workflow end to end: each host makes its keypair in its own
# directory and namespace, only the .pub files cross over, the tunnel comes
# up (with and without a PSK mixed in). The private key never reaches the
# worker, and the helper holds neither it nor the X25519 result once the
# worker runs (/proc/PID/mem, against values computed independently with
# Python's cryptography: Tests/tools/tunnelkey.py). A wrong public key on
# one side: counted bad-mac drops and a log line saying what to check;
# keys given in the wrong place: one line each, nothing started.
. "$(dirname "$0")/lib.sh"
# The single-process start (part 5) opens /dev/net/tun as a user: Debian's
# is 0666, some containers make it 0600 (as t_unpriv.sh, for this test only).
tun_mode=$(stat -c %a /dev/net/tun)
keypair_cleanup() { chmod "$tun_mode" /dev/net/tun; cleanup; }
trap keypair_cleanup EXIT
echo "keypair: genkey --keypair on both hosts, .pub exchanged, tunnel up, key locations in memory"
need_pkgs python3-cryptography
make_world
TOOLS="$(dirname "$0")/../tools"
PY=/usr/bin/python3
HOST_A="$WORK/host-a"; HOST_B="$WORK/host-b"
mkdir -m 700 "$HOST_A" "$HOST_B"

# Each host: its own keypair, made in its own namespace and directory.
ip netns exec "$NS_A" sh -c "cd '$HOST_A' && '$SQUTUN' genkey --keypair a" > "$WORK/a.printed"
check "genkey --keypair a: exit 0" test $? = 0
ip netns exec "$NS_B" sh -c "cd '$HOST_B' && '$SQUTUN' genkey --keypair b" > "$WORK/b.printed"
check "a.key is mode 600 ($(stat -c %a "$HOST_A/a.key"))" test "$(stat -c %a "$HOST_A/a.key")" = 600
check "a.pub is mode 644 ($(stat -c %a "$HOST_A/a.pub"))" test "$(stat -c %a "$HOST_A/a.pub")" = 644
check "a.key is one line: squtun-private- and 64 hex digits" grep -qxE 'squtun-private-[0-9a-f]{64}' "$HOST_A/a.key"
check "a.pub is one line: squtun-public- and 64 hex digits" grep -qxE 'squtun-public-[0-9a-f]{64}' "$HOST_A/a.pub"
check "genkey --keypair printed the public key" cmp -s "$WORK/a.printed" "$HOST_A/a.pub"
check "squtun pubkey a.key gives a.pub" cmp -s <("$SQUTUN" pubkey "$HOST_A/a.key") "$HOST_A/a.pub"
check "squtun pubkey < b.key gives b.pub" cmp -s <("$SQUTUN" pubkey < "$HOST_B/b.key") "$HOST_B/b.pub"
out=$(cd "$HOST_A" && "$SQUTUN" genkey --keypair a 2>&1); rc=$?
check "genkey --keypair refuses to overwrite (exit $rc: $out)" test "$rc" = 1 -a "$(stat -c %a "$HOST_A/a.key")" = 600
# Only the public keys cross over.
cp "$HOST_A/a.pub" "$HOST_B/"; cp "$HOST_B/b.pub" "$HOST_A/"

# scan PID KEY: keyscan's exit status (0 found, every copy MADV_DONTDUMP; 2 absent).
scan() { "$PY" "$TOOLS/keyscan.py" "$1" "$2" > "$WORK/scan" 2>&1; local rc=$?; log "keyscan $2: $rc $(tr '\n' ';' < "$WORK/scan" | cut -c1-200)"; return $rc; }
# up NAME_A NAME_B EXTRA...: both ends with their keypair (B given A's key as text), tunnel up.
up() {
    local a=$1 b=$2; shift 2
    start_squtun "$NS_A" "$a" -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$HOST_A/a.key" --peer-key "$HOST_A/b.pub" -a 2 "$@"
    start_squtun "$NS_B" "$b" -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$HOST_B/b.key" --peer-key "$(cat "$HOST_B/a.pub")" -a 2 \
        ${PSK_B:+--psk "$PSK_B"}
}
down() { for p in "$@"; do stop_pid "$p"; done; }

# 1. Keypair only.
up a1 b1
check "keypair: ping A → B" wait_for 5 ping_from "$NS_A" "$TUN_B"
check "keypair: ping B → A" ping_from "$NS_B" "$TUN_A" 3
helper=$(cat "$WORK/a1.pid"); worker=$(worker_of "$helper")
read -r _ shared < <("$PY" "$TOOLS/tunnelkey.py" "$HOST_A/a.key" "$HOST_A/b.pub" | grep '^shared')
read -r _ tunnel < <("$PY" "$TOOLS/tunnelkey.py" "$HOST_A/a.key" "$HOST_A/b.pub" | grep '^tunnel')
read -r _ tunnel_b < <("$PY" "$TOOLS/tunnelkey.py" "$HOST_B/b.key" "$HOST_B/a.pub" | grep '^tunnel')
check "both ends' tunnel keys agree (Python)" test -n "$tunnel" -a "$tunnel" = "$tunnel_b"
check "worker ($worker) runs" test -n "$worker"
scan "$worker" "$HOST_A/a.key"; check "worker: the private key is not in its memory" test $? = 2
scan "$worker" "hex:$shared"; check "worker: the X25519 result is not in its memory" test $? = 2
scan "$worker" "hex:$tunnel"; check "worker: holds T (as computed in Python), only in MADV_DONTDUMP pages" test $? = 0
scan "$helper" "$HOST_A/a.key"; check "helper: the private key is wiped" test $? = 2
scan "$helper" "hex:$shared"; check "helper: the X25519 result is wiped" test $? = 2
scan "$helper" "hex:$tunnel"; check "helper: T is wiped once the worker has it" test $? = 2
rss() { echo "RSS $(awk '/^VmRSS/ {print $2}' "/proc/$1/status") kB, PSS $(awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup") kB"; }
log "helper memory in a keypair setup: $(rss "$helper") (OpenSSL loaded to derive T); worker: $(rss "$worker")"
check "the helper holds no key file open ($(ls -l /proc/$helper/fd | grep -c host-a))" \
    sh -c "! ls -l /proc/$helper/fd | grep -q host-a"
down "$PID_a1" "$PID_b1"

# For comparison: the helper of a PSK setup (it never loads OpenSSL).
genkey "$HOST_A/cmp.psk"
start_squtun "$NS_A" a0 -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$HOST_A/cmp.psk"
wait_for 5 test -s "$WORK/a0.pid" && wait_for 5 test -n "$(worker_of "$(cat "$WORK/a0.pid")")"
sleep 0.5
log "helper memory in a PSK setup: $(rss "$(cat "$WORK/a0.pid")")"
down "$PID_a0"

# 2. A PSK mixed in on both sides (shared out of band, like any PSK).
genkey "$HOST_A/ab.psk"; cp "$HOST_A/ab.psk" "$HOST_B/ab.psk"; chmod 600 "$HOST_B/ab.psk"
PSK_B="$HOST_B/ab.psk" up a2 b2 --psk "$HOST_A/ab.psk"
check "keypair + PSK: ping A → B" wait_for 5 ping_from "$NS_A" "$TUN_B"
check "keypair + PSK: ping B → A" ping_from "$NS_B" "$TUN_A" 3
helper=$(cat "$WORK/a2.pid"); worker=$(worker_of "$helper")
read -r _ tunnel < <("$PY" "$TOOLS/tunnelkey.py" "$HOST_A/a.key" "$HOST_A/b.pub" "$HOST_A/ab.psk" | grep '^tunnel')
scan "$worker" "hex:$tunnel"; check "keypair + PSK: worker holds T with the PSK mixed in (Python)" test $? = 0
scan "$worker" "$HOST_A/ab.psk"; check "keypair + PSK: the PSK itself is not in the worker" test $? = 2
scan "$worker" "$HOST_A/a.key"; check "keypair + PSK: the private key is not in the worker" test $? = 2
scan "$helper" "$HOST_A/ab.psk"; check "keypair + PSK: the helper wiped the PSK" test $? = 2
scan "$helper" "$HOST_A/a.key"; check "keypair + PSK: the helper wiped the private key" test $? = 2
down "$PID_a2" "$PID_b2"

# 3. The PSK on one side only: the keys differ, nothing passes.
up a3 b3 --psk "$HOST_A/ab.psk"
sleep 3
check "PSK on one side only: no ping" bash -c "! ip netns exec '$NS_A' ping -c 2 -W 1 '$TUN_B' >/dev/null 2>&1"
n=$(counter "$NS_B" b3 drop-bad-mac)
check "PSK on one side only: B counts bad-mac drops (${n:-?})" test "${n:-0}" -gt 0
down "$PID_a3" "$PID_b3"

# 4. A wrong public key on A (a third host's): counted, and the log says what to check.
(cd "$HOST_A" && "$SQUTUN" genkey --keypair c >/dev/null)
start_squtun "$NS_A" a4 -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$HOST_A/a.key" --peer-key "$HOST_A/c.pub" -a 1
start_squtun "$NS_B" b4 -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$HOST_B/b.key" --peer-key "$HOST_B/a.pub" -a 1
hint="datagrams from the peer's address fail authentication: the two ends' keys differ (keypair: check --peer-key is the peer's .pub"
check "wrong public key: B logs the hint" wait_for 8 grep -qF "$hint" "$WORK/b4.log"
check "wrong public key: A logs it too (B's keepalives fail at A)" wait_for 5 grep -qF "$hint" "$WORK/a4.log"
check "wrong public key: no ping" bash -c "! ip netns exec '$NS_A' ping -c 2 -W 1 '$TUN_B' >/dev/null 2>&1"
n=$(counter "$NS_B" b4 drop-bad-mac)
check "wrong public key: B counts bad-mac drops in squtun status (${n:-?})" test "${n:-0}" -gt 0
sleep 2
check "the hint is said once a minute, not per datagram ($(grep -cF "$hint" "$WORK/b4.log"))" \
    test "$(grep -cF "$hint" "$WORK/b4.log")" = 1
down "$PID_a4" "$PID_b4"

# 5. The single process (started by the tun's owner, not root) derives T
# itself and keeps only T too.
[ "$tun_mode" = 666 ] || chmod 666 /dev/net/tun
uid=$(id -u "$TEST_USER"); gid=$(id -g "$TEST_USER")
RUN="$WORK/run"; mkdir -p "$RUN"
cp "$HOST_A/a.key" "$HOST_A/b.pub" "$RUN/"; chown -R "$TEST_USER" "$RUN"
start_squtun "$NS_B" b5 -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$HOST_B/b.key" --peer-key "$HOST_B/a.pub"
ip netns exec "$NS_A" setpriv --reuid="$uid" --regid="$gid" --clear-groups \
    "$SQUTUN" -f -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$RUN/a.key" --peer-key "$RUN/b.pub" \
    --pidfile "$RUN/a5.pid" --control "$RUN/a5.sock" >> "$WORK/a5.log" 2>&1 &
PID_a5=$!; PIDS+=("$PID_a5")
check "single process, keypair: ping A → B" wait_for 8 ping_from "$NS_A" "$TUN_B"
check "single process, keypair: ping B → A" ping_from "$NS_B" "$TUN_A" 2
check "single process: no worker child" test -z "$(worker_of "$PID_a5")"
read -r _ shared < <("$PY" "$TOOLS/tunnelkey.py" "$HOST_A/a.key" "$HOST_A/b.pub" | grep '^shared')
read -r _ tunnel < <("$PY" "$TOOLS/tunnelkey.py" "$HOST_A/a.key" "$HOST_A/b.pub" | grep '^tunnel')
scan "$PID_a5" "$HOST_A/a.key"; check "single process: the private key is wiped" test $? = 2
scan "$PID_a5" "hex:$shared"; check "single process: the X25519 result is wiped" test $? = 2
scan "$PID_a5" "hex:$tunnel"; check "single process: holds T, only in MADV_DONTDUMP pages" test $? = 0
down "$PID_a5" "$PID_b5"

# 6. Keys in the wrong place: one line each, exit 1 or 64, nothing started.
# mistake "what" EXPECTED-RC LINE-FRAGMENT ARGS...
mistake() {
    local what=$1 want=$2 text=$3; shift 3
    local out rc
    out=$(ip netns exec "$NS_A" timeout 10 "$SQUTUN" -f -u "$TEST_USER" --chroot "$EMPTY" --pidfile "$WORK/m.pid" \
          --control "$WORK/m.sock" -i tun0 -l 3456 "$@" 2>&1); rc=$?
    check "$what: exit $want, one line ($rc: $out)" \
        test "$rc" = "$want" -a "$(printf '%s\n' "$out" | wc -l)" = 1
    check "$what: says so" grep -qF -- "$text" <<<"$out"
}
mistake "a public key as -k" 1 "holds a public key (squtun-public-…), but -k takes" -k "$HOST_A/b.pub" --peer-key "$HOST_A/b.pub"
mistake "this host's own .pub as --peer-key" 1 "the peer's public key is this host's own public key" \
    -k "$HOST_A/a.key" --peer-key "$HOST_A/a.pub"
mistake "a private key as --peer-key" 1 "holds a PRIVATE key, but --peer-key takes" -k "$HOST_A/a.key" --peer-key "$HOST_B/b.key"
mistake "a PSK as --peer-key" 1 "holds a PSK (64 hex digits), but --peer-key takes" -k "$HOST_A/a.key" --peer-key "$HOST_A/ab.psk"
mistake "a private key as --psk" 1 "holds a private key, but --psk takes a PSK" \
    -k "$HOST_A/a.key" --peer-key "$HOST_A/b.pub" --psk "$HOST_A/a.key"
mistake "--peer-key with a PSK in -k" 64 "--peer-key: only for a keypair setup" -k "$HOST_A/ab.psk" --peer-key "$HOST_A/b.pub"
mistake "a private key without --peer-key" 64 "--peer-key: required when -k holds a private key" -k "$HOST_A/a.key"
mistake "a low-order public key" 1 "low-order point" -k "$HOST_A/a.key" --peer-key "squtun-public-$(printf '01%062d' 0)"
mistake "a cut-off public key pasted as --peer-key" 64 "--peer-key: is neither a public key" \
    -k "$HOST_A/a.key" --peer-key "$(cut -c1-40 "$HOST_A/b.pub")"
chmod 644 "$HOST_A/a.key"
mistake "a world-readable private key" 1 "are too open; run chmod 600" -k "$HOST_A/a.key" --peer-key "$HOST_A/b.pub"
finish
