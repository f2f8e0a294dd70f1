#!/usr/bin/env bash
# Pid files and status sockets in a run directory shared by two tunnels and
# by the tunnel user, as the package makes /run/squtun (root:GROUP 1775,
# GROUP = the user's group; here $TEST_USER's, in $WORK/run):
#  1. two ends on one host, each in its own network namespace, the same
#     interface name (tun0), their own --pidfile and no --control: each
#     status socket follows its pid file (a-tun0.pid → a-tun0.sock), both
#     start, and `squtun status tun0 --pidfile PATH` reaches each one;
#  2. what the tunnel user (a member of GROUP, so it may write there)
#     plants at root's paths before root starts: a symlink at a pid file's
#     path is removed, not followed; its own file there (naming a live
#     process) is replaced by root's; a socket it listens on at the status
#     socket's path is replaced, so `squtun status` reaches root's squtun.
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
echo "runfiles: one run directory for two tunnels and the tunnel user; status sockets follow --pidfile"
make_world
genkey "$WORK/key"
RUN="$WORK/run"
mkdir "$RUN"
chown "root:$(id -gn "$TEST_USER")" "$RUN"
chmod 1775 "$RUN"

# start END NS ARGS...: a root start in the foreground, pid file
# $RUN/END-tun0.pid, no --control.
start() {
    local e=$1 ns=$2; shift 2
    ip netns exec "$ns" "$SQUTUN" -f -u "$TEST_USER" --chroot "$EMPTY" --pidfile "$RUN/$e-tun0.pid" \
        -i tun0 -k "$WORK/key" "$@" >>"$WORK/$e.log" 2>&1 &
    PIDS+=("$!")
    eval "PID_$e=$!"
}
status_via_pidfile() { # END NS
    ip netns exec "$2" "$SQUTUN" status tun0 --pidfile "$RUN/$1-tun0.pid"
}
up() { status_via_pidfile "$1" "$2" >/dev/null 2>&1; }
as_user() { setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --init-groups "$@"; }

# --- 1. two tunnels, one interface name, sockets from the pid files
start a "$NS_A" -l 3456 -p "$UNDER_B" -r 3457 -a 5
start b "$NS_B" -l 3457 -p "$UNDER_A" -r 3456 -a 5
check "A is up (status via --pidfile $RUN/a-tun0.pid)" wait_for 5 up a "$NS_A"
check "B is up too: its socket is its own, $RUN/b-tun0.sock" wait_for 5 up b "$NS_B"
check "ping A -> B" wait_for 5 ping_from "$NS_A" "$TUN_B"
check "ping B -> A" wait_for 5 ping_from "$NS_B" "$TUN_A"
check "A's status is A's (peer $UNDER_B:3457)" sh -c "ip netns exec $NS_A $SQUTUN status tun0 --pidfile $RUN/a-tun0.pid | grep -qx 'peer: $UNDER_B:3457'"
check "B's status is B's (peer $UNDER_A:3456)" sh -c "ip netns exec $NS_B $SQUTUN status tun0 --pidfile $RUN/b-tun0.pid | grep -qx 'peer: $UNDER_A:3456'"
check "sockets next to the pid files: a-tun0.sock, b-tun0.sock" test -S "$RUN/a-tun0.sock" -a -S "$RUN/b-tun0.sock"
for e in a b; do
    eval "p=\$PID_$e"
    kill -TERM "$p"
    check "$e: SIGTERM stops it" wait_for 3 dead "$p"
    check "$e: pid file and socket removed" test ! -e "$RUN/$e-tun0.pid" -a ! -e "$RUN/$e-tun0.sock"
done

# --- 2. the tunnel user plants things at root's paths
printf 'keep\n' >"$WORK/victim"
chmod 644 "$WORK/victim"
check "$TEST_USER may write in the run directory (as the package's squtun may)" as_user touch "$RUN/probe"
rm -f "$RUN/probe"
as_user ln -s "$WORK/victim" "$RUN/a-tun0.pid"
as_user sh -c "echo 1 >'$RUN/b-tun0.pid'"   # pid 1: a live process
setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --init-groups /usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(4)
while True:
    c, _ = s.accept(); c.sendall(b"interface: tun0\npeer: 203.0.113.66:1\n"); c.close()
' "$RUN/a-tun0.sock" &
PIDS+=("$!")  # setpriv execs python: this is the squatter's pid
check "planted: a symlink, a file naming pid 1, a listening socket" wait_for 3 test -L "$RUN/a-tun0.pid" -a -f "$RUN/b-tun0.pid" -a -S "$RUN/a-tun0.sock"
start a "$NS_A" -l 3456 -p "$UNDER_B" -r 3457 -a 5
start b "$NS_B" -l 3457 -p "$UNDER_A" -r 3456 -a 5
check "A starts despite the planted symlink and socket" wait_for 5 sh -c "ip netns exec $NS_A $SQUTUN status tun0 --pidfile $RUN/a-tun0.pid | grep -qx 'peer: $UNDER_B:3457'"
check "B starts despite the planted pid file" wait_for 5 up b "$NS_B"
check "the symlink's target is untouched" test "$(cat "$WORK/victim")" = keep
for e in a b; do
    eval "p=\$PID_$e"
    check "$e: its pid file is root's, a regular file with its pid ($(stat -c '%U %F' "$RUN/$e-tun0.pid" 2>/dev/null))" \
        test "$(stat -c '%U %F %h' "$RUN/$e-tun0.pid" 2>/dev/null)" = "root regular file 1" -a "$(cat "$RUN/$e-tun0.pid" 2>/dev/null)" = "$p"
    check "$e: logged what it removed" grep -q "removed $RUN/$e-tun0.pid: a .* owned by uid $(id -u "$TEST_USER"), not squtun's pid file" "$WORK/$e.log"
done
check "A's socket is root's" test "$(stat -c %U "$RUN/a-tun0.sock" 2>/dev/null)" = root
user_cannot_remove() { ! as_user rm -f "$1" 2>/dev/null && test -e "$1"; }
check "$TEST_USER cannot remove root's pid file (sticky directory)" user_cannot_remove "$RUN/a-tun0.pid"
check "... nor root's socket" user_cannot_remove "$RUN/a-tun0.sock"
check "ping across" wait_for 5 ping_from "$NS_A" "$TUN_B"
finish
