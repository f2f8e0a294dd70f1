#!/usr/bin/env bash
# systemd/squtun-server.service under a booted systemd (Tests/e2e/container.sh:
# systemd-nspawn, the server's network namespace), installed as the package
# installs its files, with etc/squtun/server.conf.example as
# /etc/squtun/server.conf verbatim (a keypair server, peers in
# /etc/squtun/peers, the hook etc/squtun/server-hook.example with a clients
# table). Two real clients (alice, bob) in their own namespaces:
#   - systemctl start; both ping the server's end of their own tun, whose
#     address the hook gave it;
#   - the hardening in force, read from /proc: the helper's and the
#     worker's NoNewPrivs, Seccomp, capabilities, uid, root and mounts;
#   - bob's file removed, systemctl reload: bob is cut off, alice is not,
#     the service was not restarted;
#   - the worker killed (SIGKILL): the unit restarts the service
#     (Restart=on-failure) and alice gets through again by herself;
#   - systemctl stop: no squtun process, no client tun, no pid file or
#     socket left, the service ended by SIGTERM (no SIGKILL needed).
# Needs systemd-container (systemd-nspawn), util-linux (nsenter, unshare,
# setpriv), iproute2, iputils-ping, procps; scripts/test-setup installs them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/package_defaults.sh"
. "$(dirname "$0")/container.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
UNIT="$REPO/systemd/squtun-server.service"
SVC=squtun-server.service

NS_S="sqt-ss-$E2E_ID"
ns_c() { echo "sqt-sc$1-$E2E_ID"; }               # client i's namespace
under_s() { echo "198.51.100.$((8 * $1 + 1))"; }  # the server's end of client i's link
under_c() { echo "198.51.100.$((8 * $1 + 2))"; }  # client i's address
# The example hook: client number N gets 10.99.0.4N+1 (server) and +2 (client).
inner_s() { echo "10.99.0.$((4 * $1 + 1))"; }
inner_c() { echo "10.99.0.$((4 * $1 + 2))"; }
CLIENTS=(alice bob)
PORT=3456

server_cleanup() {
    stop_container
    cleanup
    ip netns del "$NS_S" 2>/dev/null
    local i
    for i in 1 2; do ip netns del "$(ns_c $i)" 2>/dev/null; done
    undo_package_defaults
}
trap server_cleanup EXIT
need_pkgs systemd systemd-container util-linux iproute2 iputils-ping procps
need_user "$TEST_USER"
echo "systemd-server: squtun-server.service started, reloaded, restarted and stopped by a booted systemd"
ensure_package_defaults
mkdir -p "$EMPTY" && chmod 755 "$EMPTY"

# --- the network: the server's namespace and one per client
ip netns del "$NS_S" 2>/dev/null; ip netns add "$NS_S"; ip -n "$NS_S" link set lo up
MTU=$("$SQUTUN" -m 1500)
for i in 1 2; do
    ns=$(ns_c $i)
    join_namespace "$NS_S" "$ns" $i "$(under_s $i)" "$(under_c $i)"
    ip -n "$ns" tuntap add dev tun0 mode tun user "$TEST_USER"
    ip -n "$ns" addr add "$(inner_c $i)/30" dev tun0
    ip -n "$ns" link set tun0 mtu "$MTU" up
done

# --- the files, where the package and the administrator put them
L=$WORK/layers
mkdir -p "$L/etc/squtun/peers" "$L/sbin" "$L/units" "$L/tmpfiles" "$L/man8"
chmod 700 "$L/etc/squtun/peers"
cp "$SQUTUN" "$L/sbin/squtun"
cp "$UNIT" "$L/units/$SVC"
cp "$REPO/debian/squtun.tmpfiles" "$L/tmpfiles/squtun.conf"
cp "$REPO/docs/squtun.8" "$L/man8/squtun.8"
cp "$REPO/etc/squtun/server.conf.example" "$L/etc/squtun/server.conf"
install -m 755 "$REPO/etc/squtun/server-hook.example" "$L/etc/squtun/server-hook"
printf 'alice 1\nbob 2\n' >"$L/etc/squtun/clients"
(cd "$L/etc/squtun" && "$SQUTUN" genkey --keypair server >/dev/null)
# The peers directory is bound over /etc/squtun/peers (not a layer of the
# overlay) so that a file removed here is gone for the server at once.
PEERS=$WORK/peers
mkdir -m 700 "$PEERS"
for i in 1 2; do
    name=${CLIENTS[$((i - 1))]}
    (cd "$WORK" && "$SQUTUN" genkey --keypair "$name" >/dev/null)
    install -m 644 "$WORK/$name.pub" "$PEERS/$name"
done
check "the server's config is the example, unchanged" cmp -s "$REPO/etc/squtun/server.conf.example" "$L/etc/squtun/server.conf"

boot_container srv "$NS_S" "overlay:$L/etc:/etc" "overlay:$L/sbin:/usr/sbin" \
    "overlay:$L/units:/usr/lib/systemd/system" "overlay:$L/tmpfiles:/usr/lib/tmpfiles.d" \
    "overlay:$L/man8:/usr/share/man/man8" "bind:$PEERS:/etc/squtun/peers"
booted=$?
check "a systemd booted in a container in the server's namespace" test "$booted" = 0
if [ "$booted" != 0 ]; then tail -n 30 "$WORK/ct-srv.log" | sed 's/^/    | /'; finish; exit 1; fi
check "... whose /sys/class/net is its namespace's (no host device)" \
    test "$(cin ls /sys/class/net | sort | tr '\n' ' ')" = "$(ip netns exec "$NS_S" ls /sys/class/net | sort | tr '\n' ' ')"

cin systemd-analyze verify "$SVC" >"$WORK/verify.log" 2>&1
rc=$?
sed 's/^/    | /' "$WORK/verify.log"
check "systemd-analyze verify $SVC in the container passes ($rc), with no messages" test "$rc" = 0 -a ! -s "$WORK/verify.log"
sed 's#^ExecStart=/usr/sbin/squtun #ExecStart=/usr/sbin/squtun-missing #' "$UNIT" |
    cin sh -c "mkdir -p /run/sqt-broken && cat >/run/sqt-broken/$SVC"
cin systemd-analyze verify "/run/sqt-broken/$SVC" >/dev/null 2>&1
check "... and fails on a copy whose ExecStart= names a missing program" test $? != 0

journal() { cin journalctl -q -o cat -u "$SVC" --no-pager 2>/dev/null; }
cin systemctl start "$SVC"
rc=$?
check "systemctl start $SVC: exit 0 ($rc)" test "$rc" = 0
check "... the unit is active" test "$(unit_prop "$SVC" ActiveState)" = active
check "... the server is up (its status socket)" wait_for 10 cin test -S /run/squtun/squtun-sqc.sock

start_client() { # i
    local i=$1 name=${CLIENTS[$(($1 - 1))]}
    ip netns exec "$(ns_c $i)" "$SQUTUN" -p "$(under_s $i)" -r $PORT -l $PORT -i tun0 -k "$WORK/$name.key" \
        --peer-key "$L/etc/squtun/server.pub" --id "$name" -a 2 \
        -f -u "$TEST_USER" --chroot "$EMPTY" --pidfile "$WORK/c$i.pid" --control "$WORK/c$i.sock" >>"$WORK/c$i.log" 2>&1 &
    eval "PID_c$i=$!"; PIDS+=($!)
}
cping() { ip netns exec "$(ns_c "$1")" ping -c "${2:-1}" -W 1 -i 0.2 -q "$(inner_s "$1")" >/dev/null 2>&1; }
# client_tun I: the server's tun holding the hook's address for client I.
client_tun() { ip -n "$NS_S" -o addr show to "$(inner_s "$1")" 2>/dev/null | awk '{print $2; exit}'; }
sqc_tuns() { ip -n "$NS_S" -o link show 2>/dev/null | awk -F': ' '$2 ~ /^sqc[0-9]+$/ {print $2}' | sort | tr '\n' ' '; }

for i in 1 2; do start_client $i; done
for i in 1 2; do
    name=${CLIENTS[$((i - 1))]}
    check "$name: pings the server through its tun" wait_for 15 cping $i
    tun=$(client_tun $i)
    check "$name: the hook gave its tun on the server ($tun, named by sqc%d) $(inner_s $i)/30" \
        sh -c "case '$tun' in sqc[0-9]*) exit 0 ;; *) exit 1 ;; esac"
    check "$name: that tun is owned by squtun" \
        test "$(cin cat "/sys/class/net/$tun/owner" 2>/dev/null)" = "$(id -u squtun)"
done
journal >"$WORK/journal.txt"
check "... alice's line from the hook (server-hook.example) is in the unit's journal" \
    grep -q "hook (alice up): alice ($(under_c 1) port $PORT) on sqc[0-9]*: $(inner_s 1) <-> $(inner_c 1)$" "$WORK/journal.txt"

# --- the hardening, from /proc (the container's)
check_unit_hardening "$SVC" "$UNIT"
helper=$UNIT_HELPER

# --- reload: bob's file removed
bobtun=$(client_tun 2)
ip netns exec "$(ns_c 1)" ping -i 0.1 -c 60 -W 1 "$(inner_s 1)" >"$WORK/alice.ping" 2>&1 &
aping=$!
sleep 0.5
rm "$PEERS/bob"
cin systemctl reload "$SVC"
rc=$?
check "bob's file removed, systemctl reload: exit 0 ($rc)" test "$rc" = 0
check "... bob's tun $bobtun is gone" wait_for 5 sh -c "! ip -n $NS_S link show $bobtun"
check "... bob is cut off" sh -c "! ip netns exec $(ns_c 2) ping -c 2 -W 1 -q $(inner_s 2) >/dev/null 2>&1"
wait $aping
received=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$WORK/alice.ping")
check "... alice pinged throughout: ${received:-0} of 60 answered (>= 59)" test "${received:-0}" -ge 59
check "... the same helper ($helper): reloaded, not restarted" test "$(unit_prop "$SVC" MainPID)" = "$helper"
journal >"$WORK/journal.txt"
check "... the hook ran for bob's down event (its line in the journal)" grep -q "bob left $bobtun ($(inner_c 2))" "$WORK/journal.txt"

# --- the worker killed: the unit restarts the service
check_worker_kill_restarts "$SVC"
check "... alice gets through again by herself (her squtun not restarted)" wait_for 30 cping 1
check "... alice's squtun is the same process" alive "$PID_c1"
check "... bob still cut off (his file is still gone)" test -z "$(client_tun 2)"

# --- stop
check_unit_stops "$SVC" squtun-server
check "... no client tun left in the server's namespace ($(sqc_tuns))" test -z "$(sqc_tuns)"
journal >"$WORK/journal.txt"
check "... the hook ran for alice's down event as the service stopped" \
    sh -c "sed -n '/Stopping $SVC/,\$p' '$WORK/journal.txt' | grep -q 'hook (alice down): alice left sqc[0-9]* ($(inner_c 1))'"
finish
