#!/usr/bin/env bash
# Started by a non-root user who owns the tun device (SquTUN's
# `su squtun -c 'squtun …'`): one process, no chroot (it says so), the same
# seccomp filter and no_new_privs, and the tunnel works.
. "$(dirname "$0")/lib.sh"
# Debian's /dev/net/tun is 0666 (the kernel checks the device's owner on
# TUNSETIFF); some containers make it 0600: open it up for this test only.
tun_mode=$(stat -c %a /dev/net/tun)
unpriv_cleanup() { chmod "$tun_mode" /dev/net/tun; cleanup; }
trap unpriv_cleanup EXIT
[ "$tun_mode" = 666 ] || chmod 666 /dev/net/tun
echo "unpriv: a non-root user who owns the tun device"
need_pkgs ethtool
make_world
uid=$(id -u "$TEST_USER"); gid=$(id -g "$TEST_USER")
RUN="$WORK/run"; mkdir -p "$RUN"; chown "$TEST_USER" "$RUN"
genkey "$RUN/key"; chown "$TEST_USER" "$RUN/key"
cp "$RUN/key" "$WORK/key"; chown root "$WORK/key"
# B: a root helper as usual; A: the user.
start_squtun "$NS_B" b -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$WORK/key"
ip netns exec "$NS_A" setpriv --reuid="$uid" --regid="$gid" --clear-groups \
    "$SQUTUN" -f -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$RUN/key" \
    --pidfile "$RUN/a.pid" --control "$RUN/a.sock" >> "$WORK/a.log" 2>&1 &
PID_a=$!; PIDS+=("$PID_a")
check "pid file written by the user" wait_for 5 test -s "$RUN/a.pid"
check "ping A → B" wait_for 8 ping_from "$NS_A" "$TUN_B"
check "ping B → A" ping_from "$NS_B" "$TUN_A" 2
check "it logs that no chroot was possible" grep -q "no chroot" "$WORK/a.log"
check "a single process: no worker child" test -z "$(worker_of "$PID_a")"
field() { awk -v f="$1:" '$1==f {$1=""; sub(/^ /, ""); print}' "/proc/$PID_a/status"; }
check "runs as $TEST_USER" test "$(field Uid)" = "$uid $uid $uid $uid"
check "NoNewPrivs 1" test "$(field NoNewPrivs)" = 1
check "Seccomp 2" test "$(field Seccomp)" = 2
check "CapEff 0" test "$(field CapEff)" = 0000000000000000
# Its key never lands in a core dump: none allowed, not dumpable (its /proc
# files then belong to root, not to the user), key pages marked "dd".
check "core file size 0 0" test "$(awk '/^Max core file size/ {print $5, $6}' /proc/$PID_a/limits)" = "0 0"
check "not dumpable (/proc/PID/status owned by root)" test "$(stat -c %u /proc/$PID_a/status)" = 0
python3 "$(dirname "$0")/../tools/keyscan.py" "$PID_a" "$RUN/key" > "$WORK/keyscan"; rc=$?
check "every copy of the key is in a MADV_DONTDUMP mapping (keyscan $rc: $(tr '\n' ';' < "$WORK/keyscan"))" test "$rc" = 0
check "the user can read its status" sh -c "ip netns exec $NS_A setpriv --reuid=$uid --regid=$gid --clear-groups $SQUTUN status tun0 --control $RUN/a.sock | grep -q '^rx-packets: [1-9]'"
check "the user's tunnel uses the tun offloads (TSO on)" test "$(tso_state "$NS_A")" = on
kill -TERM "$PID_a"
check "SIGTERM: it exits" wait_for 2 dead "$PID_a"
check "and switched the device's offloads off again (under seccomp)" test "$(tso_state "$NS_A")" = off
reap "$PID_a"; rc=$?
check "exit status 0 ($rc)" test "$rc" = 0
# Its filter has no unlink: it empties the pid file through the fd it holds.
check "pid file emptied" sh -c "test -e $RUN/a.pid && test ! -s $RUN/a.pid"
check "the status socket is dead" sh -c "! ip netns exec $NS_A $SQUTUN status tun0 --control $RUN/a.sock 2>/dev/null"
# The next start takes both files over.
ip netns exec "$NS_A" setpriv --reuid="$uid" --regid="$gid" --clear-groups \
    "$SQUTUN" -f -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$RUN/key" \
    --pidfile "$RUN/a.pid" --control "$RUN/a.sock" >> "$WORK/a2.log" 2>&1 &
PID_a2=$!; PIDS+=("$PID_a2")
check "a second start takes the files over" wait_for 5 grep -qx "$PID_a2" "$RUN/a.pid"
check "and answers on the status socket" wait_for 3 sh -c "ip netns exec $NS_A $SQUTUN status tun0 --control $RUN/a.sock >/dev/null"
kill -TERM "$PID_a2"; reap "$PID_a2"
finish
