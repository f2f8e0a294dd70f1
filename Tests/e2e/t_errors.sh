#!/usr/bin/env bash
# Configuration errors, as an operator meets them. Each check runs squtun
# once with exactly one thing wrong and asserts, together: the exact one-line
# message on stderr (`squtun: ...`, naming the path/interface/port and the
# fix), the exit status, that stderr holds exactly that one line, that no
# squtun process is left running and that no pid file was left behind.
# docs/ERRORS.md has one row per check here.
. "$(dirname "$0")/lib.sh"
TEST_USER2=${TEST_USER2:-squtun-test2}
trap cleanup EXIT
echo "errors: configuration errors are one clear line, the right exit status, nothing left behind"
make_world
genkey "$WORK/key"
need_user "$TEST_USER2"   # its own group too (scripts/test-setup)
UID1=$(id -u "$TEST_USER")
UID2=$(id -u "$TEST_USER2")

# run_raw NAME COMMAND...: stdout to $WORK/NAME.out, stderr to
# $WORK/NAME.log, exit status in RC. `timeout` stops a squtun that wrongly
# started (its status, 124, then fails the check).
RC=0
run_raw() {
    local name=$1; shift
    timeout -k 2 8 "$@" >"$WORK/$name.out" 2>"$WORK/$name.log"
    RC=$?
}
# run_fg NAME NS ARGS...: root start in the foreground, standard test options.
run_fg() {
    local name=$1 ns=$2; shift 2
    run_raw "$name" ip netns exec "$ns" "$SQUTUN" -f --pidfile "$WORK/$name.pid" \
        --control "$WORK/$name.sock" "$@"
}
# Options every root start needs unless the case is about them.
USER_OPTS=(-u "$TEST_USER")
CHROOT_OPTS=(--chroot "$EMPTY")

# squtun processes of this test still alive (their command line names $WORK).
leftovers() {
    local p exe
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        [ "$exe" = "$(readlink -f "$SQUTUN")" ] || continue
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$WORK/" && echo "${p#/proc/}"
    done
}
no_leftovers() { [ -z "$(leftovers)" ]; }

# expect_error NAME CODE LINE [exact|glob]: the last run (NAME) exited CODE,
# printed exactly one stderr line equal to "squtun: LINE" (glob: matching it
# as a bash pattern, for the part the OS words), nothing on stdout, and left
# no squtun process, no pid file $WORK/NAME.pid and no control socket. Says
# why on failure.
expect_error() {
    local name=$1 code=$2 want="squtun: $3" how=${4:-exact} ok=0 got lines
    got=$(cat "$WORK/$name.log")
    lines=$(wc -l <"$WORK/$name.log")
    if [ "$RC" -ne "$code" ]; then log "$name: exit status $RC, expected $code"; ok=1; fi
    if [ "$lines" -ne 1 ] || [ -n "$(tail -c 1 "$WORK/$name.log")" ]; then
        log "$name: stderr has $lines line(s), expected exactly one"; ok=1
    fi
    case $how in
        exact) [ "$got" = "$want" ] ;;
        glob) [[ $got == $want ]] ;;
    esac || { log "$name: stderr:   $got"; log "$name: expected: $want ($how)"; ok=1; }
    if [ -s "$WORK/$name.out" ]; then log "$name: unexpected stdout: $(head -c 200 "$WORK/$name.out")"; ok=1; fi
    if ! wait_for 3 no_leftovers; then log "$name: squtun still running: $(leftovers)"; ok=1; fi
    if [ -e "$WORK/$name.pid" ]; then log "$name: pid file $WORK/$name.pid left behind"; ok=1; fi
    if [ -e "$WORK/$name.sock" ]; then log "$name: control socket $WORK/$name.sock left behind"; ok=1; fi
    return $ok
}

# --- usage (exit 64) ---------------------------------------------------------
run_fg usage "$NS_A" "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" -i tun0 -k "$WORK/key" -l 70000
check "usage error: -l 70000 → exit 64, one line naming the option and value" \
    expect_error usage 64 "-l/--local-port: out of range 1-65535 '70000'"

# --- key file ----------------------------------------------------------------
run_fg keymissing "$NS_A" "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" -i tun0 -k "$WORK/nokey" -l 3501
check "missing key file → exit 1, names the path" \
    expect_error keymissing 1 "key file '$WORK/nokey': cannot read: No such file or directory; make one with: squtun genkey $WORK/nokey"

printf '0123456789abcdef\n' >"$WORK/shortkey"; chmod 600 "$WORK/shortkey"
run_fg keyshort "$NS_A" "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" -i tun0 -k "$WORK/shortkey" -l 3502
check "key file with 16 hex digits → exit 1, says 64 are needed" \
    expect_error keyshort 1 "key file '$WORK/shortkey': found 16 hex digits, need exactly 64; make one with: squtun genkey"

{ printf '%063d' 1; printf 'g\n'; } >"$WORK/badkey"; chmod 600 "$WORK/badkey"
run_fg keybad "$NS_A" "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" -i tun0 -k "$WORK/badkey" -l 3503
check "key file with a non-hex character → exit 1, names it and its offset" \
    expect_error keybad 1 "key file '$WORK/badkey': character 'g' at byte offset 63 is not a hex digit; make one with: squtun genkey"

cp "$WORK/key" "$WORK/openkey"; chmod 644 "$WORK/openkey"
run_fg keyopen "$NS_A" "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" -i tun0 -k "$WORK/openkey" -l 3504
check "world-readable key file (0644) → exit 1, says chmod 600" \
    expect_error keyopen 1 "key file '$WORK/openkey': permissions 0644 are too open; run chmod 600 '$WORK/openkey'"

cp "$WORK/key" "$WORK/theirkey"; chmod 600 "$WORK/theirkey"; chown "$TEST_USER" "$WORK/theirkey"
run_fg keyowner "$NS_A" "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" -i tun0 -k "$WORK/theirkey" -l 3505
check "0600 key file owned by another user → exit 1, says chown root" \
    expect_error keyowner 1 "key file '$WORK/theirkey': owned by uid $(id -u "$TEST_USER"), not by root or you (uid 0), so that user can change it; run chown root '$WORK/theirkey'"

# --- peer --------------------------------------------------------------------
# NS_A has no default route: the resolver fails at once, nothing leaves it.
t0=$SECONDS
run_fg resolve "$NS_A" "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" -i tun0 -k "$WORK/key" -l 3505 -p nonexistent.invalid
check "unresolvable peer -p nonexistent.invalid → exit 1, names the host" \
    expect_error resolve 1 "cannot resolve peer 'nonexistent.invalid': *; check the name given with -p and this host's DNS, or give -p the peer's IP address" glob
check "unresolvable peer fails within 5 s" test $((SECONDS - t0)) -le 5

# -b makes the socket IPv4-only: an IPv6 peer could never be sent to.
run_fg family "$NS_A" "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" -i tun0 -k "$WORK/key" -l 3530 -b "$UNDER_A" -p 2001:db8::2
check "IPv6 peer with an IPv4 -b → exit 1, says the socket is IPv4-only" \
    expect_error family 1 "peer '2001:db8::2' has no IPv4 address, and -b $UNDER_A makes the UDP socket IPv4-only; give -p the peer's IPv4 address, or -b an IPv6 address (or no -b)"

# --- user and chroot (root start) --------------------------------------------
run_fg nouser "$NS_A" -u nosuchuser-sqt "${CHROOT_OPTS[@]}" -i tun0 -k "$WORK/key" -l 3506
check "unknown user -u nosuchuser-sqt → exit 1, says how to create it" \
    expect_error nouser 1 "user 'nosuchuser-sqt' does not exist; create it with: adduser --system --group --no-create-home nosuchuser-sqt"

run_fg chmissing "$NS_A" "${USER_OPTS[@]}" --chroot "$WORK/nodir" -i tun0 -k "$WORK/key" -l 3507
check "missing chroot directory → exit 1, says mkdir" \
    expect_error chmissing 1 "chroot directory $WORK/nodir does not exist; create it with: mkdir -p $WORK/nodir && chmod 755 $WORK/nodir"
check "missing chroot directory was not created" test ! -e "$WORK/nodir"

mkdir "$WORK/ww" && chmod 777 "$WORK/ww"
run_fg chwritable "$NS_A" "${USER_OPTS[@]}" --chroot "$WORK/ww" -i tun0 -k "$WORK/key" -l 3508
check "world-writable chroot directory → exit 1, says chmod 755" \
    expect_error chwritable 1 "chroot directory $WORK/ww has mode 0777 and is writable by group or others; fix it with: chmod 755 $WORK/ww"

mkdir "$WORK/notroot" && chmod 755 "$WORK/notroot" && chown "$TEST_USER" "$WORK/notroot"
run_fg chowner "$NS_A" "${USER_OPTS[@]}" --chroot "$WORK/notroot" -i tun0 -k "$WORK/key" -l 3509
check "chroot directory not owned by root → exit 1, says chown root" \
    expect_error chowner 1 "chroot directory $WORK/notroot is owned by uid $UID1, not root; fix it with: chown root:root $WORK/notroot"

mkdir "$WORK/full" && chmod 755 "$WORK/full" && touch "$WORK/full/junk"
run_fg chfull "$NS_A" "${USER_OPTS[@]}" --chroot "$WORK/full" -i tun0 -k "$WORK/key" -l 3510
check "non-empty chroot directory → exit 1, names an entry" \
    expect_error chfull 1 "chroot directory $WORK/full is not empty (it contains 'junk'); empty it, or give --chroot an empty directory, e.g.: mkdir -p /var/lib/squtun/empty && chmod 755 /var/lib/squtun/empty"

# --- tun device --------------------------------------------------------------
run_fg tunmissing "$NS_A" "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" -i tunmiss0 -k "$WORK/key" -l 3511
check "missing tun device → exit 1, says ip tuntap add" \
    expect_error tunmissing 1 "tun device tunmiss0 does not exist; create it with: ip tuntap add dev tunmiss0 mode tun user squtun"
check "missing tun device was NOT created by squtun" \
    bash -c "! ip -n '$NS_A' link show tunmiss0 >/dev/null 2>&1"

ip -n "$NS_A" tuntap add dev tap7 mode tap user "$TEST_USER"
run_fg tap "$NS_A" "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" -i tap7 -k "$WORK/key" -l 3512
check "tap device without --tap → exit 1, says to add --tap or use a tun" \
    expect_error tap 1 "tap7 is a TAP device: add --tap, or use a TUN device (ip link del tap7 && ip tuntap add dev tap7 mode tun user squtun)"
run_fg tuntap "$NS_A" "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" -i tun0 --tap -k "$WORK/key" -l 3512
check "tun device with --tap → exit 1, says to leave --tap out or use a TAP device" \
    expect_error tuntap 1 "tun0 is a TUN device and --tap needs a TAP device: leave --tap out, or use a TAP device (ip link del tun0 && ip tuntap add dev tun0 mode tap user squtun)"

# Unprivileged start (single process) by a user who does not own tun0.
install -m 600 -o "$TEST_USER2" "$WORK/key" "$WORK/key2"
run_raw tunowner ip netns exec "$NS_A" setpriv --reuid="$TEST_USER2" --regid="$TEST_USER2" --clear-groups \
    "$SQUTUN" -f --pidfile "$WORK/tunowner.pid" --control "$WORK/tunowner.sock" -i tun0 -k "$WORK/key2" -l 3513
check "unprivileged start, tun0 owned by another user → exit 1, names both uids and the fix" \
    expect_error tunowner 1 "tun device tun0 belongs to uid $UID1, not to uid $UID2 (you); run squtun as uid $UID1, or recreate the device as root with: ip link del tun0 && ip tuntap add dev tun0 mode tun user $UID2"

# Root whose bounding set lacks CAP_NET_ADMIN (a container, a unit with a
# narrower CapabilityBoundingSet=): tun0 belongs to $TEST_USER.
run_raw nonetadmin ip netns exec "$NS_A" setpriv --bounding-set -net_admin --inh-caps -net_admin \
    "$SQUTUN" -f "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" --pidfile "$WORK/nonetadmin.pid" \
    --control "$WORK/nonetadmin.sock" -i tun0 -k "$WORK/key" -l 3519
check "root without CAP_NET_ADMIN, tun0 owned by $TEST_USER → exit 1, says CAP_NET_ADMIN is missing" \
    expect_error nonetadmin 1 "tun device tun0 belongs to uid $UID1 and this root process lacks CAP_NET_ADMIN (a container, or a capability bounding set without it); give squtun CAP_NET_ADMIN"

# Unprivileged start, a sticky shared run directory (as the package's
# /run/squtun) holding a stale pid file of root's at its path: it may not
# remove it. The tun device is the user's own; /dev/net/tun 0666 (as on
# Debian) in a private mount namespace only.
mknod -m 666 "$WORK/tun-node" c 10 200
SHARED="$WORK/shared"; mkdir "$SHARED"; chown "root:$(id -gn "$TEST_USER")" "$SHARED"; chmod 1775 "$SHARED"
echo 4194304 >"$SHARED/notours.pid"  # above pid_max: no such process
chmod 644 "$SHARED/notours.pid"
install -m 600 -o "$TEST_USER" "$WORK/key" "$WORK/key1"
run_raw notours ip netns exec "$NS_A" unshare --mount --propagation private sh -c '
    mount --bind "$1" /dev/net/tun || exit 99; shift; exec "$@"' sh "$WORK/tun-node" \
    setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --init-groups \
    "$SQUTUN" -f --pidfile "$SHARED/notours.pid" --control "$WORK/notours.sock" -i tun0 -k "$WORK/key1" -l 3520
check "unprivileged start, root's stale pid file in a sticky directory → exit 1, says whose it is and what to do" \
    expect_error notours 1 "pid file $SHARED/notours.pid belongs to uid 0, not to uid $UID1 (you), and squtun may not replace it; if no squtun uses it, remove it as root (rm $SHARED/notours.pid), or give another path with --pidfile"
check "... and root's file is untouched" test "$(stat -c %U "$SHARED/notours.pid")" = root

# --- UDP port ----------------------------------------------------------------
ip netns exec "$NS_A" /usr/bin/python3 -c \
    'import socket,time; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::",3514)); time.sleep(30)' &
busy=$!
PIDS+=("$busy")
port_taken() { ip netns exec "$NS_A" ss -Hunl 'sport = :3514' | grep -q .; }
check "port 3514 is occupied for the next check" wait_for 5 port_taken
run_fg portbusy "$NS_A" "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" -i tun0 -k "$WORK/key" -l 3514
check "UDP port in use → exit 1, names the port" \
    expect_error portbusy 1 "UDP port 3514 is already in use (bind: Address already in use); see what holds it with: ss -ulpn 'sport = :3514', or choose another port with -l"
stop_pid "$busy"

# --- pid file ----------------------------------------------------------------
# Live: a pid file naming a running process (not squtun: a sleep).
sleep 30 &
sleeper=$!
PIDS+=("$sleeper")
echo "$sleeper" >"$WORK/live.pid"
LIVE_MSG="squtun is already running for tun0 (pid $sleeper, $WORK/live.pid); stop it first with: kill $sleeper (if pid $sleeper is not squtun, the pid file is stale: remove $WORK/live.pid)"
before=$(stat -c '%i %s %Y %a' "$WORK/live.pid"; cat "$WORK/live.pid")
run_raw livefg ip netns exec "$NS_A" "$SQUTUN" -f "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" \
    --pidfile "$WORK/live.pid" --control "$WORK/livefg.sock" -i tun0 -k "$WORK/key" -l 3515
mv "$WORK/live.pid" "$WORK/live.keep"  # expect_error checks that livefg.pid does not exist
check "live pid file (-f) → exit 1, names the pid and the file" \
    expect_error livefg 1 "$LIVE_MSG"
mv "$WORK/live.keep" "$WORK/live.pid"
after=$(stat -c '%i %s %Y %a' "$WORK/live.pid"; cat "$WORK/live.pid")
check "live pid file (-f) is untouched" test "$before" = "$after"

# The same in daemon mode (no -f): the error arises in the forked daemon and
# must still come out on the starting command's stderr, one line, exit 1.
run_raw livebg ip netns exec "$NS_A" "$SQUTUN" "${USER_OPTS[@]}" "${CHROOT_OPTS[@]}" \
    --pidfile "$WORK/live.pid" --control "$WORK/livebg.sock" -i tun0 -k "$WORK/key" -l 3516
mv "$WORK/live.pid" "$WORK/live.keep"
check "live pid file (daemon mode, after the fork) → exit 1, one line from the starting command" \
    expect_error livebg 1 "$LIVE_MSG"
mv "$WORK/live.keep" "$WORK/live.pid"
after=$(stat -c '%i %s %Y %a' "$WORK/live.pid"; cat "$WORK/live.pid")
check "live pid file (daemon mode) is untouched" test "$before" = "$after"
check "the process named in the live pid file still runs" kill -0 "$sleeper"
stop_pid "$sleeper"
rm -f "$WORK/live.pid"

# Stale: a pid file naming a dead pid. squtun starts, says it replaced it, and stops cleanly.
sh -c 'exit 0' &
dead=$!
wait "$dead"
echo "$dead" >"$WORK/stale.pid"
start_squtun "$NS_A" stale -i tun0 -k "$WORK/key" -l 3517
up() { grep -q "tunnel on tun0 is up" "$WORK/stale.log"; }
check "stale pid file: squtun starts anyway" wait_for 5 up
check "stale pid file: squtun logs that it replaced it" \
    grep -qxF "squtun: removed stale pid file $WORK/stale.pid (pid $dead not running)" "$WORK/stale.log"
check "stale pid file: now holds squtun's pid" test "$(cat "$WORK/stale.pid" 2>/dev/null)" = "$PID_stale"
kill -TERM "$PID_stale"
stale_gone() { dead "$PID_stale"; }
stale_stopped() { wait_for 3 stale_gone && wait_for 2 test ! -e "$WORK/stale.pid" && wait_for 2 no_leftovers; }
check "stale pid file: SIGTERM stops squtun, pid file removed, nothing left" stale_stopped
finish
