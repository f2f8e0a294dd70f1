#!/usr/bin/env bash
# Server mode end to end: one server, three clients on three hosts
# (network namespaces), each client authorized by a file in the peers
# directory. Each client gets its own tun on the server (made by the root
# helper on the first authenticated datagram) and the hook's addresses;
# client-to-client traffic goes through the server's routing; a client
# changes address mid-ping and resumes; a client's file removed + SIGHUP
# cuts off that client only (its tun gone, the hook's down event run)
# while the others keep pinging; the file restored + SIGHUP, it comes back
# without restarting anything; an unknown identifier gets no tun; stopping
# the server removes every client tun and runs every down event. Then the
# same world with --idle-timeout (a silent client loses its tun, the others
# keep theirs), and a keypair server (client files are public keys, only
# .pub files exchanged).
. "$(dirname "$0")/lib.sh"
need_pkgs iproute2 iputils-ping procps libcap2-bin

NS_S="sqt-s-$E2E_ID"
CLIENTS=(alice bob carol)
ns_c() { echo "sqt-c$1-$E2E_ID"; }     # client i's namespace (i = 1..3)
under_s() { echo "198.51.100.$((8 * $1 + 1))"; }  # the server's end of client i's link
under_c() { echo "198.51.100.$((8 * $1 + 2))"; }  # client i's address
under_c2() { echo "198.51.100.$((8 * $1 + 3))"; } # client i's second address (roaming)
inner_s() { echo "10.88.$1.1"; }        # the server's side of client i's tun
inner_c() { echo "10.88.$1.2"; }        # client i's tun
PORT=3456

server_cleanup() {
    cleanup
    local i
    ip netns del "$NS_S" 2>/dev/null
    for i in 1 2 3 4; do ip netns del "$(ns_c $i)" 2>/dev/null; done
}
trap server_cleanup EXIT

need_user "$TEST_USER"
mkdir -p "$EMPTY" && chmod 755 "$EMPTY"
ip netns del "$NS_S" 2>/dev/null; ip netns add "$NS_S"; ip -n "$NS_S" link set lo up
ip netns exec "$NS_S" sysctl -qw net.ipv4.ip_forward=1
MTU=$("$SQUTUN" -m 1500)
for i in 1 2 3 4; do
    ns=$(ns_c $i)
    join_namespace "$NS_S" "$ns" $i "$(under_s $i)" "$(under_c $i)"
    # The second address stays when the first is deleted (roaming below).
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.promote_secondaries=1 net.ipv4.conf.default.promote_secondaries=1
    ip -n "$ns" tuntap add dev tun0 mode tun user "$TEST_USER"
    ip -n "$ns" addr add "$(inner_c $i)" peer "$(inner_s $i)" dev tun0
    ip -n "$ns" link set tun0 mtu "$MTU" up
    # Every other client is reached through the server.
    ip -n "$ns" route add 10.88.0.0/16 dev tun0
done

# The peers directory: one PSK file per client, root's, mode 0600.
PEERS=$WORK/peers
mkdir -m 700 "$PEERS"
for i in 1 2 3; do genkey "$PEERS/${CLIENTS[$((i - 1))]}"; cp "$PEERS/${CLIENTS[$((i - 1))]}" "$WORK/key$i"; done
genkey "$WORK/key4"   # dave: no file in the peers directory

# The hook: addresses from the identifier; every event appended to a log.
HOOK=$WORK/hook
HOOKLOG=$WORK/hook.log
cat > "$HOOK" <<EOF
#!/bin/sh
echo "\$TUN_EVENT \$TUN_CLIENT_ID \$TUN_DEV_NAME \$TUN_CLIENT_ADDRESS \$TUN_CLIENT_PORT" >> "$HOOKLOG"
case "\$TUN_CLIENT_ID" in alice) n=1 ;; bob) n=2 ;; carol) n=3 ;; *) exit 1 ;; esac
[ "\$TUN_EVENT" = up ] && ip addr add 10.88.\$n.1 peer 10.88.\$n.2 dev "\$TUN_DEV_NAME"
echo "configured \$TUN_DEV_NAME for \$TUN_CLIENT_ID"
exit 0
EOF
chmod 755 "$HOOK"
: > "$HOOKLOG"

SERVER_TUN_PATTERN="sqt$((E2E_ID % 1000))c%d"
# Without CAP_NET_ADMIN a server could make no tun: said at start, one line.
out=$(ip netns exec "$NS_S" capsh --drop=cap_net_admin -- -c "exec $SQUTUN --server --peers $PEERS -l $PORT -f \
    -u $TEST_USER --chroot $EMPTY --pidfile $WORK/nocap.pid --control $WORK/nocap.sock" 2>&1); rc=$?
check "a server without CAP_NET_ADMIN: exit 1, one line ($out)" \
    test "$rc" = 1 -a "$(printf '%s\n' "$out" | wc -l)" = 1 -a -n "$(printf '%s' "$out" | grep CAP_NET_ADMIN)"
ip netns exec "$NS_S" "$SQUTUN" --server --peers "$PEERS" -l $PORT -i "$SERVER_TUN_PATTERN" --hook "$HOOK" -a 2 \
    -f -u "$TEST_USER" --chroot "$EMPTY" --pidfile "$WORK/s.pid" --control "$WORK/s.sock" >> "$WORK/s.log" 2>&1 &
PID_s=$!; PIDS+=($PID_s)
check "server up" wait_for 10 test -S "$WORK/s.sock"
start_client() { # i [name]
    local i=$1 name=${2:-${CLIENTS[$(($1 - 1))]}}
    ip netns exec "$(ns_c $i)" "$SQUTUN" -p "$(under_s $i)" -r $PORT -l $PORT -i tun0 -k "$WORK/key$i" --id "$name" -a 2 \
        -f -u "$TEST_USER" --chroot "$EMPTY" --pidfile "$WORK/c$i.pid" --control "$WORK/c$i.sock" >> "$WORK/c$i.log" 2>&1 &
    eval "PID_c$i=$!"; PIDS+=($!)
}
cping() { ip netns exec "$(ns_c "$1")" ping -c "${3:-1}" -W 1 -i 0.2 -q "$2" > /dev/null 2>&1; }
sstatus() { ip netns exec "$NS_S" "$SQUTUN" status "${SERVER_TUN_PATTERN%\%d}" --control "$WORK/s.sock" 2>&1; }
own_sockets() { # the server's connected UDP sockets on its port: "pid peer-address" each
    ip netns exec "$NS_S" ss -Hunp state established "( sport = :$PORT )" |
        sed -nE 's/.*[[:space:]]\[?(::ffff:)?([0-9.]+)\]?:[0-9]+[[:space:]]+users:.*pid=([0-9]+).*/\3 \2/p' | sort
}
client_tun() { # name → the server's tun for it, from the status
    sstatus | awk -v n="$1" '$1 == "client:" { c = ($2 == n) } c && $1 == "interface:" { print $2; exit }'
}

for i in 1 2 3; do start_client $i; done
for i in 1 2 3; do
    check "${CLIENTS[$((i - 1))]}: ping through its own tun" wait_for 10 cping $i "$(inner_s $i)"
done
for i in 1 2 3; do
    name=${CLIENTS[$((i - 1))]}
    tun=$(client_tun "$name")
    check "$name: has a tun on the server ($tun), named by the pattern" \
        test -n "$tun" -a -e "/proc/$PID_s" -a "${tun#"${SERVER_TUN_PATTERN%\%d}"}" != "$tun"
    check "$name: its tun is owned by $TEST_USER" \
        test "$(ip netns exec "$NS_S" cat "/sys/class/net/$tun/owner" 2>/dev/null)" = "$(id -u "$TEST_USER")"
    check "$name: hook ran for up with its tun and address" \
        grep -q "^up $name $tun $(under_c $i) $PORT\$" "$HOOKLOG"
done
check "three client tuns on the server" test "$(sstatus | awk '$1 == "client-tuns:" {print $2}')" = 3
# Each client's datagrams have a socket of their own on the server (so one
# client's flood fills only its own buffer): the worker's, connected to it.
WORKER=$(sed -nE 's/.*worker pid ([0-9]+) .*/\1/p' "$WORK/s.log" | tail -n 1)
check "each client has its own socket in the worker, connected to it ($(own_sockets | tr '\n' ' '))" \
    test "$(own_sockets)" = "$(for i in 1 2 3; do echo "$WORKER $(under_c $i)"; done | sort)"
# The same for monitoring: one JSON object, the clients a list; a client's own status too.
json_clients() {
    ip netns exec "$NS_S" "$SQUTUN" status "${SERVER_TUN_PATTERN%\%d}" --json --control "$WORK/s.sock" 2>&1 |
        python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["mode"], " ".join(sorted(c["client"] + "=" + c["interface"] for c in d["clients"])))'
}
check "status --json lists the clients: $(json_clients)" \
    test "$(json_clients)" = "server alice=$(client_tun alice) bob=$(client_tun bob) carol=$(client_tun carol)"
check "a client's status --json is one object with its peer" sh -c \
    "ip netns exec $(ns_c 1) $SQUTUN status tun0 --json --control $WORK/c1.sock | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"peer\"] == \"$(under_s 1):$PORT\" and d[\"rx-packets\"] > 0'"
check "client to client through the server: alice → bob" cping 1 "$(inner_c 2)" 3
check "client to client through the server: carol → alice" cping 3 "$(inner_c 1)" 3

# An identifier with no file: counted, no tun, nothing derived.
start_client 4 dave
sleep 3
check "dave (no file): no tun on the server" test -z "$(client_tun dave)"
check "dave (no file): counted as unknown-key" \
    test "$(sstatus | awk '$1 == "drop-unknown-key:" {print $2; exit}')" -gt 0
check "dave (no file): still three client tuns" test "$(sstatus | awk '$1 == "client-tuns:" {print $2}')" = 3

# Roaming: alice moves to her second address mid-ping.
ip netns exec "$(ns_c 1)" ping -i 0.1 -c 60 -W 1 "$(inner_s 1)" > "$WORK/roam.ping" 2>&1 &
roam=$!
sleep 2
ip -n "$(ns_c 1)" addr add "$(under_c2 1)/29" dev "sqc1$E2E_ID"
ip -n "$(ns_c 1)" addr del "$(under_c 1)/29" dev "sqc1$E2E_ID"
wait $roam
received=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$WORK/roam.ping")
check "alice moved to $(under_c2 1) mid-ping: ${received:-0} of 60 answered (>= 50)" test "${received:-0}" -ge 50
check "the server follows alice to her new address" \
    wait_for 5 sh -c "ip netns exec $NS_S $SQUTUN status ${SERVER_TUN_PATTERN%\%d} --control $WORK/s.sock | grep -q 'peer: $(under_c2 1):$PORT'"
check "alice's own socket follows her ($(own_sockets | tr '\n' ' '))" \
    test "$(own_sockets)" = "$(for a in "$(under_c2 1)" "$(under_c 2)" "$(under_c 3)"; do echo "$WORKER $a"; done | sort)"

# Forgetting: bob's file removed, SIGHUP: only bob is cut off.
bobtun=$(client_tun bob)
ip netns exec "$(ns_c 3)" ping -i 0.1 -c 80 -W 1 "$(inner_s 3)" > "$WORK/carol.ping" 2>&1 &
carolping=$!
mv "$PEERS/bob" "$WORK/bob.saved"
kill -HUP "$PID_s"
check "SIGHUP: bob's tun $bobtun is gone" wait_for 5 sh -c "! ip netns exec $NS_S test -e /sys/class/net/$bobtun"
check "SIGHUP: hook ran down for bob" wait_for 5 grep -q "^down bob $bobtun" "$HOOKLOG"
check "SIGHUP: bob is cut off" sh -c "! ip netns exec $(ns_c 2) ping -c 2 -W 1 -q $(inner_s 2) > /dev/null 2>&1"
check "SIGHUP: alice still pings" cping 1 "$(inner_s 1)" 3
wait $carolping
received=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$WORK/carol.ping")
check "SIGHUP: carol pinged throughout: ${received:-0} of 80 answered (>= 79)" test "${received:-0}" -ge 79
check "SIGHUP: two client tuns left" test "$(sstatus | awk '$1 == "client-tuns:" {print $2}')" = 2
check "SIGHUP: bob's own socket closed with his tun ($(own_sockets | tr '\n' ' '))" \
    test "$(own_sockets)" = "$(for a in "$(under_c2 1)" "$(under_c 3)"; do echo "$WORKER $a"; done | sort)"
check "server and bob's squtun still running" alive "$PID_s" 
check "bob's squtun still running" alive "$PID_c2"

# The file back, SIGHUP: bob comes back by himself (his keepalives).
mv "$WORK/bob.saved" "$PEERS/bob"
kill -HUP "$PID_s"
check "bob's file restored, SIGHUP: bob pings again (nothing restarted)" wait_for 15 cping 2 "$(inner_s 2)"
check "bob has a tun again" test -n "$(client_tun bob)"

# Stopping the server removes every client tun and runs every down event.
tuns=$(sstatus | awk '$1 == "interface:" && $2 != "none" {print $2}')
kill -TERM "$PID_s"
check "server stopped" wait_for 5 dead "$PID_s"
gone=1
for t in $tuns; do ip netns exec "$NS_S" test -e "/sys/class/net/$t" && gone=0; done
check "server stopped: no client tun left ($(echo $tuns))" test $gone = 1
check "server stopped: pid file and status socket removed" test ! -e "$WORK/s.pid" -a ! -e "$WORK/s.sock"
check "server stopped: hook ran down for alice and carol" \
    test "$(grep -cE '^down (alice|carol) ' "$HOOKLOG")" -ge 2

start_server() { # extra options...
    ip netns exec "$NS_S" "$SQUTUN" --server --peers "$PEERS" -l $PORT -i "$SERVER_TUN_PATTERN" --hook "$HOOK" -a 2 "$@" \
        -f -u "$TEST_USER" --chroot "$EMPTY" --pidfile "$WORK/s.pid" --control "$WORK/s.sock" >> "$WORK/s.log" 2>&1 &
    PID_s=$!; PIDS+=($PID_s)
    wait_for 10 test -S "$WORK/s.sock"
}
stop_clients() { local i; for i in 1 2 3 4; do stop_pid "$(eval "echo \${PID_c$i:-0}")"; done; }

# Idle: a client that sends nothing authenticated for --idle-timeout loses
# its tun (hook down); the others, with keepalives every 2 s, keep theirs.
: > "$HOOKLOG"
check "server with --idle-timeout 4 up" start_server --idle-timeout 4
check "alice and carol ping through the restarted server (clients not restarted)" \
    wait_for 15 sh -c "ip netns exec $(ns_c 1) ping -c 1 -W 1 -q $(inner_s 1) > /dev/null && ip netns exec $(ns_c 3) ping -c 1 -W 1 -q $(inner_s 3) > /dev/null"
carol_tun=$(client_tun carol)
alice_tun=$(client_tun alice)
alice_hooks=$(grep -c " alice " "$HOOKLOG")
stop_pid "$PID_c3"
check "carol silent: her tun $carol_tun closed after the idle timeout" \
    wait_for 10 sh -c "! ip netns exec $NS_S test -e /sys/class/net/$carol_tun"
check "carol silent: hook ran down for her" wait_for 5 grep -q "^down carol $carol_tun" "$HOOKLOG"
check "alice (keepalives) keeps her tun $alice_tun past the idle timeout (no hook event since)" \
    test "$(client_tun alice)" = "$alice_tun" -a "$(grep -c " alice " "$HOOKLOG")" = "$alice_hooks"
start_client 3
check "carol back: pings again" wait_for 15 cping 3 "$(inner_s 3)"
stop_pid "$PID_s"
stop_clients

# A keypair server: each host makes its keypair; the peers directory holds
# the clients' .pub files, each client gets the server's .pub.
rm -f "$PEERS"/*
(cd "$WORK" && "$SQUTUN" genkey --keypair server > /dev/null)
for i in 1 2; do
    name=${CLIENTS[$((i - 1))]}
    (cd "$WORK" && "$SQUTUN" genkey --keypair "$name" > /dev/null)
    cp "$WORK/$name.pub" "$PEERS/$name"
done
check "keypair server up" start_server -k "$WORK/server.key"
for i in 1 2; do
    name=${CLIENTS[$((i - 1))]}
    ip netns exec "$(ns_c $i)" "$SQUTUN" -p "$(under_s $i)" -r $PORT -l $PORT -i tun0 -k "$WORK/$name.key" \
        --peer-key "$WORK/server.pub" --id "$name" -a 2 \
        -f -u "$TEST_USER" --chroot "$EMPTY" --pidfile "$WORK/c$i.pid" --control "$WORK/c$i.sock" >> "$WORK/c$i.log" 2>&1 &
    eval "PID_c$i=$!"; PIDS+=($!)
done
check "keypair: alice pings through her tun" wait_for 10 cping 1 "$(inner_s 1)"
check "keypair: bob pings through his tun" wait_for 10 cping 2 "$(inner_s 2)"
# Carol with a keypair the server does not know under her name: bob's file
# renamed to carol would be a different key; here carol's own key, no file.
(cd "$WORK" && "$SQUTUN" genkey --keypair carol > /dev/null)
ip netns exec "$(ns_c 3)" "$SQUTUN" -p "$(under_s 3)" -r $PORT -l $PORT -i tun0 -k "$WORK/carol.key" \
    --peer-key "$WORK/server.pub" --id bob -a 2 \
    -f -u "$TEST_USER" --chroot "$EMPTY" --pidfile "$WORK/c3.pid" --control "$WORK/c3.sock" >> "$WORK/c3.log" 2>&1 &
PID_c3=$!; PIDS+=($PID_c3)
sleep 3
check "keypair: carol claiming to be bob gets nothing (bob's tun unchanged, bob still pings)" cping 2 "$(inner_s 2)" 2
check "keypair: carol claiming to be bob is counted as bad-mac in bob's block" \
    test "$(sstatus | awk '$1 == "client:" { c = ($2 == "bob") } c && $1 == "drop-unknown-sender:" { print $2; exit }')" -gt 0 -o \
         "$(sstatus | awk '$1 == "client:" { c = ($2 == "bob") } c && $1 == "drop-bad-mac:" { print $2; exit }')" -gt 0
finish
