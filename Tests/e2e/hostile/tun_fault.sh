# hostile.sh part: the tun device deleted under a running daemon.

# Tun fault: the tun device deleted under a running daemon (A).
echo "  -- tun fault"
h=$(cat "$WORK/a.pid"); w=$(worker_of "$h")
ip -n "$NS_A" link del $DEV
td=$(now)
check "tun deleted: A's helper exits" wait_for 5 sh -c "! kill -0 $h 2>/dev/null"
reap "$PID_a"; rc=$?
te=$(now)
check "tun deleted: exit status 1 (a worker error)" test "$rc" = 1
check "tun deleted: the worker is gone" sh -c "! kill -0 $w 2>/dev/null"
check "tun deleted: log says so" grep -q "tun device $DEV is gone" "$WORK/a.log"
check "tun deleted: pid file removed" test ! -e "$WORK/a.pid"
check "tun deleted: status socket removed" test ! -e "$WORK/a.sock"
figure "tun deleted|A exited with status $rc $(awk -v a="$td" -v b="$te" 'BEGIN{printf "%.2f", b-a}') s later, logging \"$(grep -m 1 -o "tun device $DEV is gone.*" "$WORK/a.log")\"; pid file and status socket removed"
