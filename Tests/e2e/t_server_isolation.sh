#!/usr/bin/env bash
# Server mode: clients are kept apart, with real parts. One server, three
# clients (alice, bob, carol) on three hosts (network namespaces), each
# with its own tun on the server; squtun-attack plays a client that knows
# its own key (alice's) and an attacker on the wire, and its tun witness
# (`tunwatch`, an AF_PACKET socket) counts what reaches each client's tun
# on the server, independently of squtun's counters:
#  1. datagrams sealed with alice's key under bob's key id reach no tun
#     and are counted in bob's block (bad-mac from bob's address,
#     unknown-sender from alice's);
#  2. alice's genuine datagrams, captured on the wire, replayed with bob's
#     key id written over hers: the header is authenticated, so bob's MAC
#     fails; replayed unchanged: counted as replays in alice's block,
#     nothing delivered twice;
#  3. a flood of valid-looking datagrams under a key id no file has:
#     counted as unknown-key server-wide, no key derivation, no tun, and
#     no allocation in the worker (the allocation counter of t_alloc.sh,
#     preloaded into the server's worker, debug builds);
#  4. a compromised worker (WorkerFault, debug builds) asking the root
#     helper for a tun for a key id no file has, or a second tun for a
#     client that has one, is refused and logged and gets no tun; with
#     --max-clients 2 a third client gets none; tuns asked for faster than
#     the helper's rate allows are refused;
#  5. fairness: bob floods (iperf3 UDP, no limit) while alice pings (loss
#     <= 1 %) and runs TCP (>= 50 % of what she gets alone);
#  6. layering: link-local multicast (224.0.0.5, TTL 1) sent out of one
#     client's tun on the server arrives at that client only.
. "$(dirname "$0")/lib.sh"
need_pkgs iproute2 iputils-ping procps iperf3
need_attack

NS_S="sqt-s-$E2E_ID"
CLIENTS=(alice bob carol)
ns_c() { echo "sqt-c$1-$E2E_ID"; }     # client i's namespace (i = 1..3)
under_s() { echo "198.51.100.$((8 * $1 + 1))"; }  # the server's end of client i's link
under_c() { echo "198.51.100.$((8 * $1 + 2))"; }  # client i's address
inner_s() { echo "10.88.$1.1"; }        # the server's side of client i's tun
inner_c() { echo "10.88.$1.2"; }        # client i's tun
PORT=3456
LIVE=4c495645    # the live pings' pattern: the tun witness tells them from anything else

server_cleanup() {
    cleanup
    local i
    ip netns del "$NS_S" 2>/dev/null
    for i in 1 2 3; do ip netns del "$(ns_c $i)" 2>/dev/null; done
}
trap server_cleanup EXIT

echo "server isolation: forged, replayed and unknown key ids, a hostile worker, fairness, layering"
need_user "$TEST_USER"
mkdir -p "$EMPTY" && chmod 755 "$EMPTY"
ip netns del "$NS_S" 2>/dev/null; ip netns add "$NS_S"; ip -n "$NS_S" link set lo up
# No IPv6 on any tun: the kernel's router solicitations would be packets
# nobody sent on purpose, on the tuns the witnesses watch.
no_ipv6() { ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; }
no_ipv6 "$NS_S"
ip netns exec "$NS_S" sysctl -qw net.ipv4.ip_forward=1
MTU=$("$SQUTUN" -m 1500)
for i in 1 2 3; do
    ns=$(ns_c $i)
    join_namespace "$NS_S" "$ns" $i "$(under_s $i)" "$(under_c $i)"
    no_ipv6 "$ns"
    ip -n "$ns" tuntap add dev tun0 mode tun user "$TEST_USER"
    ip -n "$ns" addr add "$(inner_c $i)" peer "$(inner_s $i)" dev tun0
    ip -n "$ns" link set tun0 mtu "$MTU" up
done

# The peers directory: one PSK file per client; the keys also kept aside
# for the clients and for the attacker playing alice.
PEERS=$WORK/peers
mkdir -m 700 "$PEERS"
for i in 1 2 3; do genkey "$PEERS/${CLIENTS[$((i - 1))]}"; cp "$PEERS/${CLIENTS[$((i - 1))]}" "$WORK/key$i"; done

HOOK=$WORK/hook
cat > "$HOOK" <<'EOF'
#!/bin/sh
case "$TUN_CLIENT_ID" in alice) n=1 ;; bob) n=2 ;; carol) n=3 ;; *) exit 1 ;; esac
[ "$TUN_EVENT" = up ] && ip addr add 10.88.$n.1 peer 10.88.$n.2 dev "$TUN_DEV_NAME"
exit 0
EOF
chmod 755 "$HOOK"

# The server, its worker started with the allocation counter (debug builds
# pass SQUTUN_DEBUG_WORKER_PRELOAD on as the worker's LD_PRELOAD).
RUN=$WORK/run; mkdir -p "$RUN"; chmod 755 "$RUN"
cc -O2 -shared -fPIC -o "$RUN/alloccount.so" "$(dirname "$0")/../tools/alloccount/alloccount.c"
ALLOCS=$WORK/allocs.log
PREFIX="sqi$((E2E_ID % 1000))c"
ip netns exec "$NS_S" env SQUTUN_DEBUG_WORKER_PRELOAD="$RUN/alloccount.so" ALLOCCOUNT_LOG="$ALLOCS" \
    "$SQUTUN" --server --peers "$PEERS" -l $PORT -i "${PREFIX}%d" --hook "$HOOK" -a 2 \
    -f -u "$TEST_USER" --chroot "$EMPTY" --pidfile "$WORK/s.pid" --control "$WORK/s.sock" >> "$WORK/s.log" 2>&1 &
PID_s=$!; PIDS+=($PID_s)
check "server up" wait_for 10 test -S "$WORK/s.sock"
# Only a debug build preloads the counter (which opens ALLOCS as the worker
# starts) and has WorkerFault: with a release build those checks are skipped.
debug=0
wait_for 3 test -e "$ALLOCS" && debug=1
[ $debug = 1 ] || log "a release build: no allocation counter in the worker, no WorkerFault; those checks skipped"
start_client() { # i
    local i=$1
    ip netns exec "$(ns_c $i)" "$SQUTUN" -p "$(under_s $i)" -r $PORT -l $PORT -i tun0 -k "$WORK/key$i" \
        --id "${CLIENTS[$((i - 1))]}" -a 2 -f -u "$TEST_USER" --chroot "$EMPTY" \
        --pidfile "$WORK/c$i.pid" --control "$WORK/c$i.sock" >> "$WORK/c$i.log" 2>&1 &
    PIDS+=($!); CPID[$i]=$!
}
cping() { ip netns exec "$(ns_c "$1")" ping -c "${3:-1}" -W 1 -i 0.2 -q -p $LIVE "$2" > /dev/null 2>&1; }
sstatus() { ip netns exec "$NS_S" "$SQUTUN" status "$PREFIX" --control "$WORK/s.sock" 2>&1; }
# cfield NAME FIELD: a line of client NAME's block; sfield FIELD: a server-wide line.
cfield() { sstatus | awk -F': ' -v n="$1" -v f="$2" '$1 == "client" { c = ($2 == n) } c && $1 == f { print $2; exit }'; }
sfield() { sstatus | awk -F': ' -v f="$1" '$1 == "client" { exit } $1 == f { print $2; exit }'; }
derivations() { sstatus | awk -F': ' '$1 == "key-derivations" { s += $2 } END { print s + 0 }'; }
pattern_tuns() { ip -n "$NS_S" -o link show | awk -F': ' -v p="$1" 'index($2, p) == 1' | wc -l; }
udp_in_errors() { ip netns exec "$NS_S" nstat -az UdpInErrors UdpRcvbufErrors | awk '$1 == "UdpRcvbufErrors" { print $2 }'; }

# Bob and carol first, alice last: her session is then newer than bob's
# (sessions follow start times), so datagrams of hers under bob's key id
# get past check 3 to the MAC.
for i in 3 2 1; do
    start_client $i
    check "${CLIENTS[$((i - 1))]}: ping through its own tun" wait_for 10 cping $i "$(inner_s $i)"
done
for i in 1 2 3; do TUN[$i]=$(cfield "${CLIENTS[$((i - 1))]}" interface); done
check "three client tuns on the server (${TUN[*]})" test "$(sfield client-tuns)" = 3 -a "$(pattern_tuns "$PREFIX")" = 3

# The witnesses: one on each client's tun on the server.
for i in 1 2 3; do
    ip netns exec "$NS_S" "$ATTACK" tunwatch --iface "${TUN[$i]}" --state "$WORK/w$i.state" --log "$WORK/w$i.log" \
        --tunnel-net "$(inner_s $i)" --pattern $LIVE --seconds 300 > /dev/null 2>&1 &
    PIDS+=($!); WATCH[$i]=$!
done
for i in 1 2 3; do wait_for 5 test -s "$WORK/w$i.state"; done
wfield() { sed -nE "s/.*\\b$2=([0-9]+).*/\\1/p" "$WORK/w$1.state"; }   # witness i's count of FIELD
# Live pings from every client throughout the attacks: they must get through.
for i in 1 2 3; do
    ip netns exec "$(ns_c $i)" ping -i 0.05 -w 600 -W 1 -p $LIVE "$(inner_s $i)" > "$WORK/live$i.ping" 2>&1 &
    PIDS+=($!); LIVEPING[$i]=$!
done
sleep 1

# Target options for squtun-attack: TARGET i [from-client-j]: the server's
# model for client i's block (its own and its peer's session), sent from
# client j's address (default i's own: --from-peer).
target() {
    local i=$1 j=${2:-$1} name=${CLIENTS[$(($1 - 1))]}
    echo --to "$(under_s "$j"):$PORT" --from "$(under_c "$j"):$PORT" --client "$name" \
        --own "$(cfield "$name" own-session)" --peer "$(cfield "$name" peer-session)" \
        $([ "$i" = "$j" ] && echo --from-peer)
}
# expected LINE REASON: the count the attack's last line predicts for REASON.
expected() { sed -nE "s/.*\\b$2=([0-9]+).*/\\1/p" "$1" | tail -n 1; }
drops() { # NAME: "bad-mac unknown-sender replay old-session rate-limited unknown-key" of the block
    local n=$1 f out=""
    for f in bad-mac unknown-sender replay old-session rate-limited unknown-key malformed; do out+="$(cfield "$n" "drop-$f") "; done
    echo "$out"
}
# grown NAME BEFORE REASON-INDEX: growth of one reason (index into `drops`).
grown() { local a b; a=$(echo "$2" | awk -v k="$3" '{print $k}'); b=$(drops "$1" | awk -v k="$3" '{print $k}'); echo $((b - a)); }

# judge_bob WHAT KIND N: bob's block after N datagrams of $WORK/KIND.bobaddr
# (sent from bob's address) and N of $WORK/KIND.aliceaddr (from alice's):
# every one refused at the MAC, counted as the attack predicted.
judge_bob() {
    local what=$1 b=$WORK/$2.bobaddr a=$WORK/$2.aliceaddr n=$3 bm us rl
    sleep 0.5
    bm=$(grown bob "$bob_before" 1); us=$(grown bob "$bob_before" 2); rl=$(grown bob "$bob_before" 5)
    log "$what: $(tail -n 1 "$b") from bob's address; $(tail -n 1 "$a") from alice's; bob's block: bad-mac +$bm, unknown-sender +$us, rate-limited +$rl"
    check "$what, from bob's address: bob's bad-mac +$bm (predicted $(expected "$b" bad-mac))" \
        test "$bm" = "$(expected "$b" bad-mac)" -a "$bm" = "$n"
    check "$what, from alice's own address: bob's unknown-sender +$us (predicted $(expected "$a" unknown-sender)), rate-limited +$rl" \
        test "$us" = "$(expected "$a" unknown-sender)" -a "$us" = "$n" -a "$rl" = 0
}

# 1. Alice's key, bob's key id.
bob_before=$(drops bob)
bob_peer=$(cfield bob peer-session)
forged_session=$((bob_peer + (1 << 24)))   # a later tick than bob's session: a new session to bob's block
ip netns exec "$(ns_c 2)" "$ATTACK" seal --key "$WORK/key1" --session $forged_session --count 200 --rate 2000 \
    --inner-dst "$(inner_s 2)" $(target 2) > "$WORK/seal.bobaddr" 2>&1
ip netns exec "$(ns_c 1)" "$ATTACK" seal --key "$WORK/key1" --session $((forged_session + 1)) --count 200 --rate 2000 \
    --inner-dst "$(inner_s 2)" $(target 2 1) > "$WORK/seal.aliceaddr" 2>&1
judge_bob "1. sealed with alice's key under bob's key id" seal 200
check "1. nothing foreign reached any client's tun (witnesses: $(wfield 1 foreign) $(wfield 2 foreign) $(wfield 3 foreign))" \
    test "$(wfield 1 foreign)$(wfield 2 foreign)$(wfield 3 foreign)" = 000

# 2. Alice's genuine datagrams, recorded on the server's link to her.
ip netns exec "$NS_S" "$ATTACK" capture --iface "sqs1$E2E_ID" --dport $PORT --src "$(under_c 1)" --client alice \
    --count 40 --timeout 10 --out "$WORK/alice.cap" > "$WORK/capture.out" 2>&1
check "2. recorded 40 of alice's datagrams ($(cat "$WORK/capture.out" | tr '\n' ' '))" grep -q "^captured=40" "$WORK/capture.out"
bob_before=$(drops bob)
ip netns exec "$(ns_c 2)" "$ATTACK" replay --in "$WORK/alice.cap" --rate 2000 $(target 2) > "$WORK/replay.bobaddr" 2>&1
ip netns exec "$(ns_c 1)" "$ATTACK" replay --in "$WORK/alice.cap" --rate 2000 $(target 2 1) > "$WORK/replay.aliceaddr" 2>&1
judge_bob "2. alice's datagrams with bob's key id" replay 40
alice_before=$(drops alice)
ip netns exec "$(ns_c 1)" "$ATTACK" replay --in "$WORK/alice.cap" --rate 2000 --repeat 2 $(target 1) > "$WORK/replay.alice" 2>&1
sleep 0.5
rp=$(grown alice "$alice_before" 3)
log "alice's datagrams replayed unchanged (twice each): $(tail -n 1 "$WORK/replay.alice"); alice's block: replay +$rp"
check "2. replayed unchanged: alice's replay +$rp (predicted $(expected "$WORK/replay.alice" replay), 80)" \
    test "$rp" = "$(expected "$WORK/replay.alice" replay)" -a "$rp" = 80
check "2. nothing delivered twice, nothing foreign (witnesses: dup $(wfield 1 dup) $(wfield 2 dup) $(wfield 3 dup), foreign $(wfield 1 foreign) $(wfield 2 foreign) $(wfield 3 foreign))" \
    test "$(wfield 1 dup)$(wfield 2 dup)$(wfield 3 dup)$(wfield 1 foreign)$(wfield 2 foreign)$(wfield 3 foreign)" = 000000

# 3. An identifier no file has: a flood under its key id (not alice's, bob's or carol's).
WORKER=$(worker_of "$PID_s")
allocs() {
    [ $debug = 1 ] || { echo 0; return; }
    local before; before=$(grep -c '^allocations:' "$ALLOCS")
    kill -USR2 "$WORKER"
    wait_for 2 sh -c "[ \$(grep -c '^allocations:' $ALLOCS) -gt $before ]"
    grep '^allocations:' "$ALLOCS" | tail -n 1 | awk '{print $2}'
}
unk0=$(sfield drop-unknown-key); der0=$(derivations); tuns0=$(pattern_tuns "$PREFIX"); err0=$(udp_in_errors)
a0=$(allocs)
ip netns exec "$(ns_c 3)" "$ATTACK" flood --to "$(under_s 3):$PORT" --key-id 0x5eed5eed --header-fraction 1 \
    --rate 20000 --seconds 2 > "$WORK/flood.unknown" 2>&1
sleep 0.3
a1=$(allocs)
sent=$(sed -nE 's/^sent=([0-9]+).*/\1/p' "$WORK/flood.unknown")
unk=$(( $(sfield drop-unknown-key) - unk0 )); der=$(( $(derivations) - der0 )); kdrop=$(( $(udp_in_errors) - err0 ))
log "unknown key id flood: $(cat "$WORK/flood.unknown"); unknown-key +$unk (the kernel dropped $kdrop), key derivations +$der, allocations in the worker meanwhile $((a1 - a0))"
check "3. the flood was counted as unknown-key server-wide ($unk of ${sent:-0} sent, $kdrop dropped by the kernel)" \
    test "${sent:-0}" -ge 10000 -a "$unk" -le "${sent:-0}" -a $((unk + kdrop)) -ge "${sent:-0}"
check "3. no key derivation for it (+$der)" test "$der" = 0
check "3. no tun for it ($(pattern_tuns "$PREFIX") tuns, client-tuns $(sfield client-tuns))" \
    test "$(pattern_tuns "$PREFIX")" = "$tuns0" -a "$(sfield client-tuns)" = 3
[ $debug = 1 ] && check "3. no allocation in the worker during it ($((a1 - a0)) for $unk datagrams)" test $((a1 - a0)) = 0

# New-session forgeries under every client's key id at once, from an
# address that is no client's (valid headers, random sessions, as fast as
# three processes send): the server's derivations for them come from one
# allowance for all its clients (20,000 a second and a burst of 2,000),
# not one per client, and the live pings go on (checked below).
rl() { sstatus | awk -F': ' '$1 == "drop-rate-limited" { s += $2 } END { print s + 0 }'; }
der0=$(derivations); rl0=$(rl)
FF_S=3
for i in 1 2 3; do
    ip netns exec "$(ns_c 3)" "$ATTACK" flood --to "$(under_s 3):$PORT" --client "${CLIENTS[$((i - 1))]}" \
        --header-fraction 1 --rate 0 --batch 64 --seconds $FF_S > "$WORK/flood.new$i" 2>&1 &
    FFPID[$i]=$!; PIDS+=($!)
done
for i in 1 2 3; do wait "${FFPID[$i]}"; done
sleep 0.3
der=$(( $(derivations) - der0 )); lim=$(( $(rl) - rl0 ))
ffsent=0; for i in 1 2 3; do ffsent=$((ffsent + $(sed -nE 's/^sent=([0-9]+).*/\1/p' "$WORK/flood.new$i"))); done
ffmax=$(( (FF_S + 2) * 20000 + 2000 ))
log "new-session forgeries under the three clients' key ids: $ffsent sent in $FF_S s by three processes; key derivations +$der, rate-limited +$lim"
check "3. new-session forgeries under every client's key id: $der derivations in all (<= $ffmax: one allowance for the server), $lim refused unverified" \
    test "$der" -le $ffmax -a "$lim" -gt 0

# The same counter over genuine traffic: the server's data path allocates
# nothing per packet either (t_alloc.sh shows it for point to point).
for i in 1 2 3; do kill -INT "${LIVEPING[$i]}" 2>/dev/null; wait "${LIVEPING[$i]}" 2>/dev/null; done
a2=$(allocs)
ip netns exec "$(ns_c 1)" ping -c 200 -i 0.005 -q -p $LIVE "$(inner_s 1)" > /dev/null
ip netns exec "$(ns_c 2)" ping -c 200 -i 0.005 -s 1300 -q -p $LIVE "$(inner_s 2)" > /dev/null
a3=$(allocs)
[ $debug = 1 ] && check "3. no allocation for genuine traffic either ($((a3 - a2)) for 400 pings to the server)" test $((a3 - a2)) = 0
for i in 1 2 3; do
    received=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$WORK/live$i.ping")
    transmitted=$(sed -nE 's/^([0-9]+) packets transmitted.*/\1/p' "$WORK/live$i.ping")
    check "${CLIENTS[$((i - 1))]}'s live pings went on throughout: ${received:-0} of ${transmitted:-0} answered" \
        test "${transmitted:-0}" -ge 100 -a $((${transmitted:-0} - ${received:-0})) -le 2
done


# 6. Layering: link-local multicast out of one client's tun on the server
# reaches that client and no other (each client's tun is its own link).
for i in 1 2 3; do
    ip netns exec "$(ns_c $i)" "$ATTACK" tunwatch --iface tun0 --state "$WORK/m$i.state" --log "$WORK/m$i.log" \
        --tunnel-net "$(inner_s $i)" --pattern $LIVE --seconds 60 > /dev/null 2>&1 &
    PIDS+=($!); MWATCH[$i]=$!
done
for i in 1 2 3; do wait_for 5 test -s "$WORK/m$i.state"; done
mfield() { sed -nE "s/.*\\b$2=([0-9]+).*/\\1/p" "$WORK/m$1.state"; }
for sender in 1 2; do
    before=""; for i in 1 2 3; do before+="$(mfield $i foreign) "; done
    ip netns exec "$NS_S" ping -I "${TUN[$sender]}" -t 1 -c 5 -i 0.1 -W 1 224.0.0.5 > "$WORK/mcast$sender.ping" 2>&1
    sleep 0.5
    got=""; for i in 1 2 3; do got+="$(( $(mfield $i foreign) - $(echo $before | awk -v k=$i '{print $k}') )) "; done
    want=""; for i in 1 2 3; do [ $i = $sender ] && want+="5 " || want+="0 "; done
    check "6. multicast 224.0.0.5 (TTL 1) out of ${CLIENTS[$((sender - 1))]}'s tun ${TUN[$sender]}: reached alice bob carol ${got}(want ${want})" \
        test "$got" = "$want"
done
check "6. what alice's tun got was the multicast echo (224.0.0.5, TTL 1)" \
    grep -qE '^foreign len=[0-9]+ 45[0-9a-f]{14}01[0-9a-f]{6}0a580101e0000005' "$WORK/m1.log"

# 5. Fairness: bob floods (iperf3 UDP, no rate limit, through his tunnel);
# alice's pings and TCP must not suffer much. Twice:
#  - "own CPUs": bob's side (his squtun, his iperf3, the flood's sink and
#    the test's witnesses) on CPU 1, as his own machine would be; the
#    server and alice on CPU 0. Alone is measured the same way. The
#    figures the server must hold: ping loss <= 1 %, TCP >= 50 % of alone.
#  - "shared CPUs": everything on both CPUs. Here bob's own processes take
#    CPU time from alice's (no server can help that: on real hosts they
#    are separate machines), so the bound is lower, but alice must not
#    be starved: a server with one socket for everyone gave her 1-2 % of
#    her TCP here, its queue full of bob's datagrams.
if [ $debug = 1 ] && [ "${SERVER_FAIRNESS:-0}" != 1 ]; then
    log "5. fairness: not run with a debug build (scripts/hostile runs this test with the release build; SERVER_FAIRNESS=1 forces it)"
elif [ "${SERVER_FAIRNESS:-1}" = 1 ]; then
    pin() { # CPUS PID...: each process, its threads and its descendants, on those CPUs
        local cpus=$1 p c; shift
        for p in "$@"; do
            taskset -a -p -c "$cpus" "$p" > /dev/null 2>&1
            for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do pin "$cpus" "$c"; done
        done
    }
    for i in 1 2; do
        ip netns exec "$NS_S" iperf3 -s -B "$(inner_s $i)" > "$WORK/iperf-s$i.log" 2>&1 &
        PIDS+=($!); SINK[$i]=$!
    done
    wait_for 5 sh -c "[ \$(ip netns exec $NS_S ss -ltn | grep -c ':5201 ') -ge 2 ]"
    tcp_kbps() { # seconds: alice's TCP to the server, in kbit/s (the receiver's figure)
        ip netns exec "$(ns_c 1)" timeout $(($1 + 15)) taskset -c "$CPU_A" iperf3 -c "$(inner_s 1)" -t "$1" -f k 2>&1 |
            awk '/receiver/ { for (k = 1; k < NF; k++) if ($(k + 1) == "Kbits/sec") v = $k } END { print int(v) }'
    }
    kbps() { # sender|receiver FILE
        awk -v w="$1" '$0 ~ w { for (k = 1; k < NF; k++) if ($(k + 1) == "Kbits/sec") v = $k } END { print int(v) }' "$2"
    }
    for placement in own shared; do
        if [ $placement = own ]; then CPU_A=0 CPU_B=1; else CPU_A=0,1 CPU_B=0,1; fi
        pin "$CPU_A" "$PID_s" "${CPID[1]}" "${SINK[1]}"
        pin "$CPU_B" "${CPID[2]}" "${SINK[2]}" "${WATCH[@]}" "${MWATCH[@]}"
        # Own CPUs: two rounds, each alone then during the flood, summed:
        # one round's ratio swings with the machine (55-81 % in five runs).
        rounds=1; [ $placement = own ] && rounds=2
        alone=0 shared=0 received=0
        for round in $(seq $rounds); do
            a=$(tcp_kbps 4)
            ip netns exec "$(ns_c 2)" timeout 20 taskset -c "$CPU_B" iperf3 -c "$(inner_s 2)" -u -b 0 -t 10 -f k > "$WORK/flood.iperf" 2>&1 &
            FLOOD=$!; PIDS+=($FLOOD)
            sleep 1
            rcv0=$(udp_in_errors)
            ip netns exec "$(ns_c 1)" taskset -c "$CPU_A" ping -c 200 -i 0.01 -W 1 -q -p $LIVE "$(inner_s 1)" > "$WORK/fair.ping" 2>&1
            d=$(tcp_kbps 4)
            rcv=$(( $(udp_in_errors) - rcv0 ))
            wait $FLOOD
            r=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$WORK/fair.ping")
            log "fairness ($placement CPUs, round $round): bob's flood sent $(kbps sender "$WORK/flood.iperf") kbit/s ($(kbps receiver "$WORK/flood.iperf") kbit/s arrived); alice's pings ${r:-0} of 200 answered; alice's TCP ${d:-0} kbit/s during it, ${a:-0} alone; socket overflows in the server's namespace meanwhile: $rcv"
            alone=$((alone + ${a:-0})) shared=$((shared + ${d:-0})) received=$((received + ${r:-0}))
        done
        pings=$((200 * rounds))
        check "5. bob floods ($placement CPUs): alice's ping loss <= 1 % ($received of $pings answered)" \
            test $((100 * received)) -ge $((99 * pings))
        if [ $placement = own ]; then
            check "5. bob floods (own CPUs): alice's TCP, two rounds summed, $shared kbit/s >= 50 % of alone ($alone kbit/s)" \
                test "$alone" -gt 0 -a $((2 * shared)) -ge "$alone"
        else
            check "5. bob floods (shared CPUs): alice is not starved, her TCP $shared kbit/s >= 15 % of alone ($alone kbit/s)" \
                test "$alone" -gt 0 -a $((100 * shared)) -ge $((15 * alone))
        fi
    done
else
    log "5. fairness: not run (SERVER_FAIRNESS=0)"
fi

# The witnesses on the server over the whole run: nothing foreign, nothing twice.
check "nothing foreign or duplicated reached any client's tun on the server in the whole run ($(cat "$WORK/w1.state") | $(cat "$WORK/w2.state") | $(cat "$WORK/w3.state"))" \
    test "$(wfield 1 foreign)$(wfield 2 foreign)$(wfield 3 foreign)$(wfield 1 dup)$(wfield 2 dup)$(wfield 3 dup)" = 000000
# And the witness sees what is delivered: carol's own key under her key id
# (a newer session from her address, so it is genuine) reaches carol's tun, only hers.
carol_peer=$(cfield carol peer-session)
ip netns exec "$(ns_c 3)" "$ATTACK" seal --key "$WORK/key3" --session $((carol_peer + (1 << 24))) --count 50 --rate 1000 \
    --inner-dst "$(inner_s 3)" $(target 3) > "$WORK/seal.carol" 2>&1
sleep 0.5
check "carol's own key under her key id: delivered to her tun only (foreign: $(wfield 1 foreign) $(wfield 2 foreign) $(wfield 3 foreign), want 0 0 50)" \
    test "$(wfield 1 foreign) $(wfield 2 foreign) $(wfield 3 foreign)" = "0 0 50"


# 4. A compromised worker. The first server is done with: its CPU is the others'.
kill -TERM "$PID_s"; wait_for 5 dead "$PID_s"
# A second server on the same directory, --max-clients 2, whose worker
# (WorkerFault, debug builds) asks for a tun for a random key id once
# running, and again for each client the moment it got its tun.
PORT2=3457
PREFIX2="sqj$((E2E_ID % 1000))c"
ip netns exec "$NS_S" env SQUTUN_DEBUG_WORKER_FAULT=tun-unknown-key,tun-again,keep-socket \
    "$SQUTUN" --server --peers "$PEERS" -l $PORT2 -i "${PREFIX2}%d" --max-clients 2 -a 2 \
    -f -u "$TEST_USER" --chroot "$EMPTY" --pidfile "$WORK/s2.pid" --control "$WORK/s2.sock" >> "$WORK/s2.log" 2>&1 &
PID_s2=$!; PIDS+=($PID_s2)
check "4. second server up" wait_for 10 test -S "$WORK/s2.sock"
if [ $debug = 1 ]; then
    check "4. its worker asked for a tun for a key id of its own choosing" wait_for 5 grep -q "fault: asking for a tun for key id" "$WORK/s2.log"
    rogue=$(sed -nE 's/.*fault: asking for a tun for key id ([0-9]+).*/\1/p' "$WORK/s2.log" | head -n 1)
    check "4. the helper refused it and logged it (key id $rogue)" \
        wait_for 5 grep -q "worker asked for a tun for key id $rogue, which no file in $PEERS has: refused" "$WORK/s2.log"
fi
# Each client authenticates (datagrams sealed with its own key and key id,
# from its address), one after the other.
hello() { # i: three genuine datagrams of client i to the second server
    local name=${CLIENTS[$(($1 - 1))]}
    ip netns exec "$(ns_c "$1")" "$ATTACK" seal --key "$WORK/key$1" --session $((1 << 62)) --counter-base "$2" --count 3 \
        --to "$(under_s "$1"):$PORT2" --from "$(under_c "$1"):$PORT2" --client "$name" --own 0 --peer none > /dev/null 2>&1
}
hello 1 0
check "4. alice got a tun" wait_for 5 sh -c "[ \$(ip -n $NS_S -o link show | grep -c ': $PREFIX2') = 1 ]"
hello 2 0
check "4. bob got a tun" wait_for 5 sh -c "[ \$(ip -n $NS_S -o link show | grep -c ': $PREFIX2') = 2 ]"
hello 3 0
check "4. --max-clients 2: carol gets no tun, the helper logs it" \
    wait_for 5 grep -q "client carol: no tun: as many client tuns as --max-clients allows exist" "$WORK/s2.log"
[ $debug = 1 ] && for name in alice bob; do
    check "4. the worker's second request for $name's tun was refused and logged" \
        grep -q "client $name: no tun: it has a tun already" "$WORK/s2.log"
done
sleep 0.5
check "4. two tuns, no more ($(ip -n "$NS_S" -o link show | grep -c ": $PREFIX2"))" \
    test "$(ip -n "$NS_S" -o link show | grep -c ": $PREFIX2")" = 2
if [ $debug = 1 ]; then
    # The worker keeps each client's own socket aside (never closed) and
    # still says it closed them: alice forgotten, her tun goes, but her
    # socket is still in the worker's descriptors, so she is still counted
    # and carol still gets no room.
    mv "$PEERS/alice" "$WORK/alice.saved"
    kill -HUP "$PID_s2"
    check "4. alice forgotten: her tun is gone" \
        wait_for 5 sh -c "[ \$(ip -n $NS_S -o link show | grep -c ': $PREFIX2') = 1 ]"
    check "4. the worker said it closed alice's socket, but holds it: the helper says so and still counts her" \
        wait_for 5 grep -q "worker said it closed $PREFIX2[0-9]* of client alice and its socket, which it still holds: still counted" "$WORK/s2.log"
    sleep 5  # carol's refusal keeps her quiet for 5 s
    refusals() { grep -c "client carol: no tun: as many client tuns as --max-clients allows exist" "$WORK/s2.log"; }
    before=$(refusals)
    hello 3 3
    check "4. carol still gets no tun: alice's kept socket counts" wait_for 5 sh -c "[ \$(grep -c 'client carol: no tun: as many' $WORK/s2.log) -gt $before ]"
    mv "$WORK/alice.saved" "$PEERS/alice"
fi
check "4. the helper kept its worker (misbehaving about tuns is refused, not fatal)" alive "$PID_s2"
kill -TERM "$PID_s2"; wait_for 5 dead "$PID_s2"

# The rate: a third server with 150 clients, whose worker asks for every
# client's tun the moment it hears of it. The helper makes at most
# tunBurst (100) at once, then tunsPerSecond (50) a second.
if [ $debug = 1 ]; then
PEERS3=$WORK/peers3; mkdir -m 700 "$PEERS3"
python3 - "$PEERS3" <<'PY'
import os, sys
for n in range(1, 151):
    path = os.path.join(sys.argv[1], "c%03d" % n)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (os.urandom(32).hex() + "\n").encode())
    os.close(fd)
PY
PREFIX3="sqk$((E2E_ID % 1000))c"
t0=$(date +%s%N)
ip netns exec "$NS_S" env SQUTUN_DEBUG_WORKER_FAULT=tun-flood \
    "$SQUTUN" --server --peers "$PEERS3" -l 3458 -i "${PREFIX3}%d" -a 0 \
    -f -u "$TEST_USER" --chroot "$EMPTY" --pidfile "$WORK/s3.pid" --control "$WORK/s3.sock" >> "$WORK/s3.log" 2>&1 &
PID_s3=$!; PIDS+=($PID_s3)
# Made, or refused: the burst at once, then no more than the rate; it
# settles when no tun has been made for a second.
settled() {
    local a b
    a=$(grep -cE 'client c[0-9]+: .* up for' "$WORK/s3.log"); sleep 1
    b=$(grep -cE 'client c[0-9]+: .* up for' "$WORK/s3.log")
    [ "$a" = "$b" ] && [ "$b" -ge 100 ]
}
wait_for 20 settled
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
made=$(grep -cE 'client c[0-9]+: .* up for' "$WORK/s3.log")
check "4. as many tuns exist as were made ($(ip -n "$NS_S" -o link show | grep -c ": $PREFIX3"))" \
    test "$(ip -n "$NS_S" -o link show | grep -c ": $PREFIX3")" = "$made"
# Said once per run of refusals: a token that comes back mid-burst ends a
# run (its count is logged; the last run's when the helper stops) and the
# next refusal starts another.
saying=$(grep -c 'worker asks for tuns faster than 50 a second: refusing them' "$WORK/s3.log")
counts=$(grep -c 'worker asked for tuns faster than 50 a second: [0-9]* requests refused' "$WORK/s3.log")
check "4. a rate refusal is said at once, not per request ($saying lines for $counts runs of refusals)" \
    test "$saying" -ge 1 -a "$saying" -le $((counts + 1)) -a "$saying" -le 3
kill -TERM "$PID_s3"; wait_for 10 dead "$PID_s3"
# Refusals for the rate are not logged one by one: the helper says how many
# were refused when the rate allows a request again, or when it stops.
limited=$(sed -nE 's/.*worker asked for tuns faster than [0-9]+ a second: ([0-9]+) requests refused.*/\1/p' "$WORK/s3.log" |
    awk '{ n += $1 } END { print n + 0 }')
log "150 requests at once: $made tuns made, $limited refused as too fast, within $ms ms of the start"
check "4. the tun rate is bounded: of 150 requests at once, $made made (>= 100, the burst; <= 100 + 50/s over $ms ms) and $limited refused as too fast" \
    test "$made" -ge 100 -a "$made" -le $((100 + 50 * ms / 1000 + 1)) -a "$limited" -ge 1 -a $((made + limited)) = 150
fi

finish
