#!/usr/bin/env bash
# SquTUN's Debian-style invocation, as its README wrote it, with squtun's
# defaults (user squtun, chroot /var/lib/squtun/empty, pid file
# /run/squtun/squtun-tun0.pid): the command returns with the daemon
# running, and `kill $(cat /run/squtun/squtun-tun0.pid)` stops it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/package_defaults.sh"
PIDFILE=/run/squtun/squtun-tun0.pid
debian_cleanup() {
    [ -f "$PIDFILE" ] && stop_pid "$(cat "$PIDFILE")"
    cleanup
    undo_package_defaults
}
trap debian_cleanup EXIT
echo "debian: SquTUN's README invocation, daemonized"
if [ -e "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    fail "a squtun for tun0 is already running on this machine; not touching it"; finish; exit 1
fi
# What the Debian package's postinst sets up.
ensure_package_defaults
TEST_USER=squtun make_world
genkey "$WORK/key"
# Each end its own copy of the key, as on two hosts (one file used by two
# squtuns on a host is warned about).
cp -p "$WORK/key" "$WORK/key.b"
start_squtun "$NS_B" b -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$WORK/key.b" -a 59 -c 30

start=$(date +%s%N)
ip netns exec "$NS_A" "$SQUTUN" -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$WORK/key" -a 59 -c 30 > "$WORK/up.out" 2>&1
rc=$?
took=$(( ($(date +%s%N) - start) / 1000000 ))
check "the command returns to the shell with status 0 ($rc, after $took ms)" test "$rc" = 0
check "it printed nothing" test ! -s "$WORK/up.out"
check "pid file $PIDFILE written" test -s "$PIDFILE"
helper=$(cat "$PIDFILE" 2>/dev/null)
check "the daemon is running (pid $helper)" kill -0 "${helper:-0}"
check "the daemon is detached (its own session, parent init)" \
    test "$(ps -o sid= -p "$helper" | tr -d ' ')" = "$helper"
worker=$(worker_of "$helper")
check "its worker runs as squtun" test "$(ps -o user= -p "${worker:-0}" | tr -d ' ')" = squtun
check "ping across the tunnel" wait_for 5 ping_from "$NS_A" "$TUN_B"
check "squtun status tun0 (default socket) answers" sh -c "ip netns exec $NS_A $SQUTUN status tun0 | grep -qx 'peer: $UNDER_B:3457'"

kill $(cat /run/squtun/squtun-tun0.pid)
gone() { ! alive "$helper" && ! alive "$worker"; }
check "kill \$(cat $PIDFILE) stops helper and worker within 2 s" wait_for 2 gone
check "pid file removed" test ! -e "$PIDFILE"
check "status socket removed" test ! -e /run/squtun/squtun-tun0.sock
finish
