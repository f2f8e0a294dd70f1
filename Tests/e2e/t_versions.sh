#!/usr/bin/env bash
# What a running squtun (protocol v2) does with datagrams its header check
# refuses, with real processes: B receives, from its peer A's own address
# (spoofed by squtun-attack replay, so nothing but the datagrams differs
# from A's),
#   (a) version 1 datagrams sealed with the tunnel's PSK by the independent
#       v1 implementation (Tests/vectors/squtun_v1.py seal): each counted as
#       old-version, exactly one log line however many arrive;
#   (b) datagrams of B's suite, sealed with the tunnel's key and A's current
#       session by the v2 implementation (squtun_v2.py seal), but with flags
#       bit 0 set (Ethernet frames: wrong-mode, one log line) or key id 1
#       (unknown-key, no log line at all);
# and nothing reaches B's tun (the hostile suite's tun witness), while
#   (c) pings A → B keep crossing the tunnel.
# Once per cipher suite (ciphers.sh).
. "$(dirname "$0")/ciphers.sh"
. "$(dirname "$0")/lib.sh"
T_NAME="$T_NAME/$CIPHER"
trap cleanup EXIT
echo "versions: v1 datagrams, wrong mode and unknown key at a running v2 end, --cipher $CIPHER"
need_attack
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
VECTORS=$(cd "$(dirname "$0")/../vectors" && pwd)
N=300                   # datagrams of each kind (one log line whatever the count)
PATTERN=4c495645        # the pings' data: the witness counts them as live
make_world
# No IPv6 on the tuns: router solicitations would be packets the witness cannot place.
for ns in "$NS_A" "$NS_B"; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.tun0.disable_ipv6=1; done
genkey "$WORK/key"
start_squtun "$NS_A" a -l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$WORK/key" -a 2 --cipher "$CIPHER"
start_squtun "$NS_B" b -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$WORK/key" -a 2 --cipher "$CIPHER"
check "tunnel up: ping A → B" wait_for 10 ip netns exec "$NS_A" ping -c 1 -W 1 -p $PATTERN "$TUN_B"

# The witness on B's tun: every packet squtun writes into it, classified.
ip netns exec "$NS_B" "$ATTACK" tunwatch --iface tun0 --state "$WORK/tw" --log "$WORK/tw.log" \
    --pattern $PATTERN --seconds 600 &
PIDS+=($!)
check "tun witness running" wait_for 3 test -s "$WORK/tw"
tw() { tr ' ' '\n' < "$WORK/tw" | awk -F= -v k="$1" '$1==k {print $2; exit}'; }
field() { awk -F': ' -v f="$2" '$1==f {print $2; found=1; exit} END { if (!found) print "?" }' "$1"; }

own=$(counter "$NS_B" b own-session)
peer=$(counter "$NS_B" b peer-session)
check "B knows A's session ($peer)" test -n "$peer" -a "$peer" != none
"$PY" "$VECTORS/squtun_v1.py" seal "$WORK/key" "$peer" $N "$WORK/v1.dat"
"$PY" "$VECTORS/squtun_v2.py" seal "$WORK/key" "$CIPHER" "$peer" $N "$WORK/mode.dat" 1 0
"$PY" "$VECTORS/squtun_v2.py" seal "$WORK/key" "$CIPHER" "$peer" $N "$WORK/keyid.dat" 0 1
check "the reference implementations sealed $N datagrams of each kind" \
    test -s "$WORK/v1.dat" -a -s "$WORK/mode.dat" -a -s "$WORK/keyid.dat"

# (c) Live pings A → B for the whole attack, 20 a second.
ip netns exec "$NS_A" ping -c 100 -i 0.05 -W 1 -q -p $PATTERN "$TUN_B" > "$WORK/ping.txt" 2>&1 &
PINGER=$!; PIDS+=($PINGER)
foreign0=$(tw foreign); live0=$(tw live)

# send KIND FILE: replay FILE at B from A's own address; the tool's
# prediction line (docs/PROTOCOL.md's checks, not squtun's) must name KIND for every datagram.
send() {
    status_of "$NS_B" b > "$WORK/st.before"
    lines0=$(wc -l < "$WORK/b.log")
    ip netns exec "$NS_A" "$ATTACK" replay --in "$2" --to "$UNDER_B:3457" --from "$UNDER_A:3456" --from-peer \
        --own "$own" --peer "$peer" --cipher "$CIPHER" --rate 2000 > "$WORK/$1.out" 2> "$WORK/$1.err"
    check "$1: squtun-attack sent $N datagrams, all predicted $1 ($(cat "$WORK/$1.out" "$WORK/$1.err"))" \
        grep -qE "^sent=$N .*\b$1=$N\b" "$WORK/$1.out"
    sleep 0.5
    status_of "$NS_B" b > "$WORK/st.after"
    local r d
    for r in old-version wrong-suite wrong-mode unknown-key malformed bad-mac unknown-sender replay; do
        d=$(( $(field "$WORK/st.after" "drop-$r") - $(field "$WORK/st.before" "drop-$r") ))
        if [ "$r" = "$1" ]; then
            check "$1: B counted drop-$r +$d (sent $N)" test "$d" = $N
        else
            check "$1: no drop-$r (+$d)" test "$d" = 0
        fi
    done
}

send old-version "$WORK/v1.dat"
v1line="peer speaks protocol v1 (an older squtun); this end speaks v2: upgrade the peer"
check "old-version: exactly one log line for $N datagrams ($(grep -cF "$v1line" "$WORK/b.log"))" \
    test "$(grep -cF "$v1line" "$WORK/b.log")" = 1
send old-version "$WORK/v1.dat"
check "old-version: still one log line after $((2 * N))" test "$(grep -cF "$v1line" "$WORK/b.log")" = 1

send wrong-mode "$WORK/mode.dat"
modeline="peer sends Ethernet frames (TAP mode), this end IP packets (TUN mode)"
check "wrong-mode: exactly one log line for $N datagrams ($(grep -cF "$modeline" "$WORK/b.log"))" \
    test "$(grep -cF "$modeline" "$WORK/b.log")" = 1

send unknown-key "$WORK/keyid.dat"
check "unknown-key: not logged (B's log grew by $(( $(wc -l < "$WORK/b.log") - lines0 )) lines)" \
    test "$(wc -l < "$WORK/b.log")" = "$lines0"

wait $PINGER
sleep 0.3
read -r ptx prx <<<"$(sed -nE 's/^([0-9]+) packets transmitted, ([0-9]+) received.*/\1 \2/p' "$WORK/ping.txt")"
foreign=$(( $(tw foreign) - foreign0 )); live=$(( $(tw live) - live0 ))
log "pings A → B meanwhile: ${prx:-?}/${ptx:-?}; witness on B's tun: $live live, $foreign foreign, $(tw dup) dup"
check "nothing of the $((4 * N)) refused datagrams reached B's tun (witness: $foreign foreign, $(tw dup) dup)" \
    test "$foreign" = 0 -a "$(tw dup)" = 0
check "the tunnel kept carrying pings A → B meanwhile (${prx:-0}/${ptx:-0} answered, >= 95)" test "${prx:-0}" -ge 95
check "the witness saw the live pings on B's tun ($live >= 95)" test "$live" -ge 95
check "B's peer did not move" test "$(counter "$NS_B" b peer)" = "$UNDER_A:3456"
finish
