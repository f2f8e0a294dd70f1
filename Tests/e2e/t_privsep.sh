#!/usr/bin/env bash
# Privilege separation as the kernel reports it (/proc), and what each
# process does when the other one dies.
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
echo "privsep: the worker's privileges, the helper's role, process deaths"
make_world
genkey "$WORK/key"
uid=$(id -u "$TEST_USER"); gid=$(id -g "$TEST_USER")
# A careless caller: a secret left open on fd 7 (not close-on-exec), and
# with -f the caller's stdout/stderr (here the log file).
echo "the caller's secret" > "$WORK/secret"; chmod 600 "$WORK/secret"
exec 7<"$WORK/secret"
start_squtun "$NS_A" a -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$WORK/key" -a 5
exec 7<&-
start_squtun "$NS_B" b -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$WORK/key" -a 5
check "tunnel up" wait_for 5 ping_from "$NS_A" "$TUN_B"

helper=$(cat "$WORK/a.pid")
worker=$(worker_of "$helper")
field() { awk -v f="$1:" '$1==f {$1=""; sub(/^ /, ""); print}' "/proc/$worker/status"; }
check "worker Uid is $TEST_USER ($uid) in all four slots" test "$(field Uid)" = "$uid $uid $uid $uid"
check "worker Gid is $TEST_USER's group ($gid) in all four slots" test "$(field Gid)" = "$gid $gid $gid $gid"
check "worker has no supplementary groups" test -z "$(field Groups)"
check "worker CapEff is 0" test "$(field CapEff)" = 0000000000000000
check "worker CapPrm is 0" test "$(field CapPrm)" = 0000000000000000
check "worker CapBnd/CapAmb leave nothing usable (CapAmb 0)" test "$(field CapAmb)" = 0000000000000000
check "worker NoNewPrivs is 1" test "$(field NoNewPrivs)" = 1
check "worker Seccomp is 2 (filter)" test "$(field Seccomp)" = 2
check "worker root is the chroot directory" test "$(readlink /proc/$worker/root)" = "$EMPTY"
check "worker cwd is the chroot's /" test "$(readlink /proc/$worker/cwd)" = "$EMPTY"
# Names an operator recognises in ps, top and pgrep (comm), and in ps -f
# (argv), not the "exe" of /proc/self/exe.
check "worker's name (comm) is squtun-worker ($(cat /proc/$worker/comm 2>/dev/null))" \
    test "$(cat /proc/$worker/comm 2>/dev/null)" = squtun-worker
check "worker's command line starts with squtun-worker" \
    sh -c "tr '\\0' ' ' </proc/$worker/cmdline | grep -q '^squtun-worker '"
check "pgrep -x squtun-worker finds the worker" sh -c "pgrep -x squtun-worker | grep -qx $worker"
check "the helper's name (comm) is squtun ($(cat /proc/$helper/comm 2>/dev/null))" \
    test "$(cat /proc/$helper/comm 2>/dev/null)" = squtun

# The helper keeps no tun, no UDP socket, no key: only its channel, the
# signal pipe, the pid file and stdio.
ls -l /proc/$helper/fd | awk 'NR>1 {print $NF}' > "$WORK/helper-fds"
check "helper holds no tun device" sh -c "! grep -q /dev/net/tun $WORK/helper-fds"
log "helper's fds: $(tr '\n' ' ' < "$WORK/helper-fds")"
udp_owner=$(ip netns exec "$NS_A" ss -uanpH "sport = :3456" | grep -o 'pid=[0-9]*' | sort -u | tr '\n' ' ')
check "the UDP socket belongs to the worker only ($udp_owner)" test "$udp_owner" = "pid=$worker "
tun_holders=$(for p in $helper $worker; do ls -l /proc/$p/fd 2>/dev/null | grep -q /dev/net/tun && echo $p; done | tr '\n' ' ')
check "the tun fd belongs to the worker only" test "$tun_holders" = "$worker "
log "helper fds: $(ls /proc/$helper/fd | wc -l), worker fds: $(ls /proc/$worker/fd | wc -l)"

# The worker holds exactly: /dev/null on 0-2, the channel on 3, and the
# tun, the UDP socket, the status listener and its signal pipe (both ends).
fd_kinds() { # pid -> "fd:kind" per descriptor, kind without inode numbers
    for f in /proc/$1/fd/*; do
        printf '%s:%s\n' "${f##*/}" "$(readlink "$f" | sed -E 's/:\[[0-9]+\]$//')"
    done | sort -n
}
fd_kinds "$worker" > "$WORK/worker-fds"
log "worker's fds: $(tr '\n' ' ' < "$WORK/worker-fds")"
check "worker's 0-2 are /dev/null, not the caller's terminal or log" \
    test "$(head -n 3 "$WORK/worker-fds" | tr '\n' ' ')" = "0:/dev/null 1:/dev/null 2:/dev/null "
check "worker's fd 3 is its channel" grep -qx "3:socket" "$WORK/worker-fds"
check "worker holds exactly tun, 3 sockets, 2 pipe ends beyond stdio" \
    test "$(tail -n +4 "$WORK/worker-fds" | cut -d: -f2- | sort | tr '\n' ' ')" = "/dev/net/tun pipe pipe socket socket socket "
check "worker does not hold the caller's fd 7 ($(grep -c secret "$WORK/worker-fds"))" sh -c "! grep -q secret $WORK/worker-fds"
check "helper does not hold the caller's fd 7 either" sh -c "! grep -q secret $WORK/helper-fds"

# No core dump can hold the key: no core size in either process (soft and
# hard), the worker not dumpable (its /proc entries then belong to root), and
# the key's pages marked "do not dump" (VmFlags dd).
core_limit() { awk '/^Max core file size/ {print $5, $6}' "/proc/$1/limits"; }
check "helper: core file size 0 0 ($(core_limit "$helper"))" test "$(core_limit "$helper")" = "0 0"
check "worker: core file size 0 0 ($(core_limit "$worker"))" test "$(core_limit "$worker")" = "0 0"
check "worker is not dumpable (/proc/PID/status owned by root)" test "$(stat -c %u "/proc/$worker/status")" = 0
scan=$(python3 "$(dirname "$0")/../tools/keyscan.py" "$worker" "$WORK/key"); rc=$?
log "worker: $(tr '\n' ';' <<<"$scan")"
check "worker: every copy of the key is in a MADV_DONTDUMP mapping (keyscan $rc)" test "$rc" = 0
scan=$(python3 "$(dirname "$0")/../tools/keyscan.py" "$helper" "$WORK/key"); rc=$?
check "helper: no copy of the key left in memory (keyscan $rc: $scan)" test "$rc" = 2

# SIGKILL to the worker: the helper logs it, removes the pid file, exits non-zero.
kill -KILL "$worker"
check "SIGKILL worker: helper exits" wait_for 3 dead "$helper"
reap "$PID_a"; rc=$?
check "SIGKILL worker: helper exit status is non-zero ($rc)" test "$rc" -ne 0
check "SIGKILL worker: helper logged it" grep -q "killed by signal 9" "$WORK/a.log"
check "SIGKILL worker: pid file removed" test ! -e "$WORK/a.pid"
check "SIGKILL worker: control socket removed" test ! -e "$WORK/a.sock"

# SIGKILL to the helper: the worker notices the closed channel and exits.
helper=$(cat "$WORK/b.pid")
worker=$(worker_of "$helper")
kill -KILL "$helper"
check "SIGKILL helper: worker exits by itself" wait_for 3 dead "$worker"
finish
