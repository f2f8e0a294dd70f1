#!/usr/bin/env bash
# Debian's real ifupdown (ifup/ifdown) brings squtun tunnels up and down,
# with the three stanzas the project ships:
#   plain  etc/network/interfaces.d/squtun.example: plain pre-up/up/down/
#          post-down commands, squtun started as root (helper and worker)
#   hooks  etc/network/interfaces.d/squtun-hooks.example: squtun-* options,
#          handled by the hook etc/network/squtun-ifupdown run from
#          /etc/network/if-{pre-up,up,down,post-down}.d/squtun
#   su     etc/network/interfaces.d/squtun-su.example: SquTUN's own stanza
#          (its README's), squtun started as the user squtun with su, the
#          MTU set with ifconfig (net-tools), stopped by its `down` line
#          through /var/run/squtun/squtun-tun0.pid. The test derives it from
#          SquTUN's text with exactly the edits a SquTUN user makes (binary
#          path, su's shell, ip tuntap for tunctl; and the site's addresses,
#          peer and key) and checks that the shipped file is that.
# End A uses each file as shipped; end B the same file with its own tunnel
# address, the peer's underlay address and (plain, su) the ports swapped;
# in the su round end B starts squtun with runuser instead of su.
# /run/squtun is made on each end by the package's tmpfiles.d line, as at
# boot (root:squtun 1775).
#
# Isolation: each end runs in its own network namespace (lib.sh's NS_A/NS_B)
# and every ifup/ifdown in a private mount namespace made for that call, in
# which /etc is an overlay of the end's own etc/ (network/interfaces, the
# hooks, squtun/tun0.key) over the host's /etc, /run is the end's own
# directory (ifupdown's state, /run/squtun/squtun-tun0.pid: no collision
# between the ends, nothing on the host's /run), and /usr/sbin is an overlay
# adding $SQUTUN as /usr/sbin/squtun. The host's /etc/network is never
# written. With SQUTUN_INSTALLED=1 (t_package.sh, after dpkg -i) the hooks
# and /usr/sbin/squtun are the installed package's instead.
#
# Needs ifupdown, overlayfs and unshare/nsenter (util-linux); scripts/test-setup
# installs the packages.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/package_defaults.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
INSTALLED=${SQUTUN_INSTALLED:-0}
PLAIN="$REPO/etc/network/interfaces.d/squtun.example"
HOOKS="$REPO/etc/network/interfaces.d/squtun-hooks.example"
HOOK="$REPO/etc/network/squtun-ifupdown"
SU="$REPO/etc/network/interfaces.d/squtun-su.example"
TMPFILES="$REPO/debian/squtun.tmpfiles"
[ "$INSTALLED" = 1 ] && TMPFILES=/usr/lib/tmpfiles.d/squtun.conf

ifupdown_cleanup() {
    for e in a b; do
        f="$WORK/$e/run/squtun/squtun-tun0.pid"
        [ -f "$f" ] && stop_pid "$(cat "$f")"
    done
    cleanup
    undo_package_defaults
}
trap ifupdown_cleanup EXIT
need_pkgs ifupdown iproute2 iputils-ping procps util-linux net-tools systemd

echo "ifupdown: ifup/ifdown with the shipped stanzas (plain commands; squtun-* hook options; SquTUN's su stanza)$([ "$INSTALLED" = 1 ] && echo ', installed package')"
if ! command -v ifup >/dev/null; then
    fail "ifup not installed (apt-get install ifupdown)"; finish; exit
fi

# What the package's postinst sets up (the stanzas use the defaults).
ensure_package_defaults
SQUTUN_UID=$(id -u squtun)

# The underlay only: ifup makes the tun devices.
make_underlay

SBIN=""
if [ "$INSTALLED" != 1 ]; then
    SBIN="$WORK/sbin"
    mkdir -p "$SBIN"
    cp "$SQUTUN" "$SBIN/squtun"
fi
genkey "$WORK/key"

# prepare_end END STANZA-FILE: the end's private /etc and /run.
prepare_end() {
    local d="$WORK/$1"
    rm -rf "$d"
    mkdir -p "$d/etc/network" "$d/etc/squtun" "$d/run/network"
    chmod 755 "$d" "$d/etc" "$d/run"
    cp "$2" "$d/etc/network/interfaces"
    cp "$WORK/key" "$d/etc/squtun/tun0.key"
    chmod 600 "$d/etc/squtun/tun0.key"
    # squtun started as squtun reads its key as squtun.
    [ "${3:-}" = su ] && chown squtun "$d/etc/squtun/tun0.key"
    if [ "$INSTALLED" != 1 ]; then
        for p in if-pre-up.d if-up.d if-down.d if-post-down.d; do
            mkdir -p "$d/etc/network/$p"
            cp "$HOOK" "$d/etc/network/$p/squtun"
            chmod 755 "$d/etc/network/$p/squtun"
        done
    fi
}

# Debian's /dev/net/tun is 0666 (udev); this machine's may be 0600. The
# kernel checks the tun device's owner on attach, not the node's mode, so
# each at() call sees a 0666 node of the same device in its own mount
# namespace, as on Debian; the host's node is left alone.
TUNNODE="$WORK/tun-node"
mknod -m 666 "$TUNNODE" c 10 200 || fail "cannot make a tun device node in $WORK"

# at END COMMAND...: runs COMMAND in END's network namespace and a private
# mount namespace with END's /etc and /run (see the top).
at() {
    local e=$1 ns; shift
    if [ "$e" = a ]; then ns=$NS_A; else ns=$NS_B; fi
    ip netns exec "$ns" unshare --mount --propagation private sh -c '
        d=$1 sbin=$2 tun=$3; shift 3
        mount -t overlay sqt-etc -o "lowerdir=$d/etc:/etc" /etc || exit 99
        mount --bind "$d/run" /run || exit 99
        if [ -n "$sbin" ]; then mount -t overlay sqt-sbin -o "lowerdir=$sbin:/usr/sbin" /usr/sbin || exit 99; fi
        mount --bind "$tun" /dev/net/tun || exit 99
        exec "$@"' sh "$WORK/$e" "$SBIN" "$TUNNODE" "$@"
}

# /run/squtun on each end, as the package's tmpfiles.d line makes it at boot.
make_rundir() {
    at "$1" systemd-tmpfiles --create "$TMPFILES" >"$WORK/tmpfiles-$1.log" 2>&1
}

status_answers() { at "$1" "$SQUTUN" status tun0 2>/dev/null | grep -q '^interface: tun0'; }
pidfile_of() { echo "$WORK/$1/run/squtun/squtun-tun0.pid"; }
tun_in() { ip -n "$1" link show dev tun0 >/dev/null 2>&1; }

# one_round NAME A-STANZA B-STANZA [su]: with su, squtun runs as squtun,
# one process (no worker).
one_round() {
    local name=$1 mode=${4:-root}
    # Nothing of an earlier round's failure carries over.
    ip -n "$NS_A" link del tun0 2>/dev/null; ip -n "$NS_B" link del tun0 2>/dev/null
    prepare_end a "$2" "$mode"
    prepare_end b "$3" "$mode"
    local out rc
    for e in a b; do
        make_rundir "$e"
        check "$name: $e: /run/squtun made by tmpfiles.d: root:squtun 1775" \
            test "$(stat -c '%U:%G %a' "$WORK/$e/run/squtun" 2>/dev/null)" = "root:squtun 1775"
    done
    for e in a b; do
        out=$(at "$e" ifup tun0 2>&1); rc=$?
        [ -n "$out" ] && printf '%s\n' "$out" >"$WORK/ifup-$name-$e.log"
        check "$name: ifup tun0 on $e exits 0 ($rc)" test "$rc" = 0
    done
    local mtu uid helper worker
    mtu=$("$SQUTUN" -m 1500)
    for e in a b; do
        local ns=$NS_A addr=$TUN_A
        [ "$e" = b ] && { ns=$NS_B; addr=$TUN_B; }
        uid=$(ip netns exec "$ns" cat /sys/class/net/tun0/owner 2>/dev/null)
        check "$name: $e: tun0 exists, owned by squtun (uid ${uid:-none})" test "${uid:-x}" = "$SQUTUN_UID"
        check "$name: $e: tun0 MTU is squtun -m 1500 = $mtu" \
            test "$(ip netns exec "$ns" cat /sys/class/net/tun0/mtu 2>/dev/null)" = "$mtu"
        check "$name: $e: tun0 has $addr/30" sh -c "ip -n $ns -4 addr show dev tun0 | grep -q 'inet $addr/30'"
        helper=$(cat "$(pidfile_of $e)" 2>/dev/null)
        check "$name: $e: squtun runs (pid ${helper:-none} from its pid file)" kill -0 "${helper:-999999999}"
        worker=$(worker_of "${helper:-0}")
        if [ "$mode" = su ]; then
            check "$name: $e: squtun runs as squtun, one process (no worker)" \
                test "$(ps -o user= -p "${helper:-999999999}" 2>/dev/null | tr -d ' ')" = squtun -a -z "$worker"
            check "$name: $e: its pid file is squtun's, in /var/run/squtun" \
                test "$(at "$e" stat -c %U /var/run/squtun/squtun-tun0.pid 2>/dev/null)" = squtun
            check "$name: $e: squtun status (as root) answers" status_answers "$e"
        else
            check "$name: $e: its worker runs as squtun" \
                test "$(ps -o user= -p "${worker:-999999999}" 2>/dev/null | tr -d ' ')" = squtun
        fi
        eval "HELPER_$e=\${helper:-} WORKER_$e=\${worker:-}"
    done
    check "$name: ping A -> B across the tunnel" wait_for 5 ping_from "$NS_A" "$TUN_B"
    check "$name: ping B -> A across the tunnel" wait_for 5 ping_from "$NS_B" "$TUN_A"

    for e in a b; do
        out=$(at "$e" ifdown tun0 2>&1); rc=$?
        [ -n "$out" ] && printf '%s\n' "$out" >"$WORK/ifdown-$name-$e.log"
        check "$name: ifdown tun0 on $e exits 0 ($rc)" test "$rc" = 0
    done
    for e in a b; do
        local ns=$NS_A
        [ "$e" = b ] && ns=$NS_B
        local h w
        eval "h=\${HELPER_$e:-} w=\${WORKER_$e:-}"
        gone() { dead "${h:-999999999}" && dead "${w:-999999999}"; }
        check "$name: $e: after ifdown no squtun process (helper ${h:-?}, worker ${w:-?})" wait_for 2 gone
        check "$name: $e: no pid file" test ! -e "$(pidfile_of $e)"
        check "$name: $e: no status socket" test ! -e "$WORK/$e/run/squtun/squtun-tun0.sock"
        check "$name: $e: no tun0 device" sh -c "! ip -n $ns link show dev tun0 >/dev/null 2>&1"
    done
}

# End B: its own tunnel address, A's underlay address as the peer, and
# (plain) the ports swapped. Fails the test if the shipped text changed
# so that the edit no longer applies.
to_b() { # file sed-script
    sed -e "$2" "$1" >"$WORK/b-stanza"
    if cmp -s "$1" "$WORK/b-stanza" || grep -q "$TUN_A/30\|-p $UNDER_B\|squtun-peer $UNDER_B" "$WORK/b-stanza"; then
        fail "end B's stanza could not be derived from $1 (shipped text changed?)"
    fi
    echo "$WORK/b-stanza"
}

B_PLAIN=$(to_b "$PLAIN" "s#$TUN_A/30#$TUN_B/30#; s#-l 3456 -p $UNDER_B -r 3457#-l 3457 -p $UNDER_A -r 3456#")
cp "$B_PLAIN" "$WORK/b-plain"
one_round plain "$PLAIN" "$WORK/b-plain"

# SquTUN's stanza as its README gives it (one line there, one per line
# here), and the edits of a SquTUN user: what squtun asks them to change
# (binary path, su's shell, ip tuntap for tunctl), then the site's own
# addresses, peer and key file.
cat >"$WORK/squtun-2005" <<'SQUTUN'
iface tun0 inet static
pre-up tunctl -t tun0 -u squtun
address 1.2.3.4
network 1.2.3.0
netmask 255.255.255.0
broadcast 1.2.3.255
up ifconfig tun0 mtu `/usr/local/sbin/squtun -m 1500`
up su squtun -c '/usr/local/sbin/squtun -l 3456 -p 18.2.3.4 -r 3457 -i tun0 -k /usr/local/etc/squtun/mytunnel.key -a 59 -c 30'
down ([ -e /var/run/squtun/squtun-tun0.pid ] && kill `cat /var/run/squtun/squtun-tun0.pid` && sleep 1) || /bin/true
post-down tunctl -d tun0
SQUTUN
sed -e 's#/usr/local/sbin/squtun#/usr/sbin/squtun#g' \
    -e 's#^up su squtun -c #up su -s /bin/sh squtun -c #' \
    -e 's#^pre-up tunctl -t tun0 -u squtun$#pre-up ip tuntap add dev tun0 mode tun user squtun#' \
    -e 's#^post-down tunctl -d tun0$#post-down ip tuntap del dev tun0 mode tun#' \
    -e "s#^address 1.2.3.4\$#address $TUN_A#; s#^network 1.2.3.0\$#network 10.77.0.0#" \
    -e 's#^netmask 255.255.255.0$#netmask 255.255.255.252#; s#^broadcast 1.2.3.255$#broadcast 10.77.0.3#' \
    -e "s#-p 18.2.3.4 #-p $UNDER_B #; s#/usr/local/etc/squtun/mytunnel.key#/etc/squtun/tun0.key#" \
    "$WORK/squtun-2005" >"$WORK/su-derived"
stanza_lines() { sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$1"; }
check "the shipped squtun-su.example is SquTUN's stanza with only the listed edits" \
    test "$(stanza_lines "$SU")" = "$(cat "$WORK/su-derived")"
B_SU=$(to_b "$SU" "s#address $TUN_A\$#address $TUN_B#; s#-l 3456 -p $UNDER_B -r 3457#-l 3457 -p $UNDER_A -r 3456#; s#up su -s /bin/sh squtun -c '\\(.*\\)'\$#up runuser -u squtun -- \\1#")
cp "$B_SU" "$WORK/b-su"
check "end B's su stanza uses runuser" grep -q "^ *up runuser -u squtun -- /usr/sbin/squtun -l 3457 -p $UNDER_A -r 3456 " "$WORK/b-su"
one_round su "$SU" "$WORK/b-su" su

B_HOOKS=$(to_b "$HOOKS" "s#$TUN_A/30#$TUN_B/30#; s#squtun-peer $UNDER_B#squtun-peer $UNDER_A#")
cp "$B_HOOKS" "$WORK/b-hooks"
one_round hooks "$HOOKS" "$WORK/b-hooks"

# The hooks when squtun cannot start: ifup fails with squtun's one-line
# reason, and nothing is left behind.
prepare_end b "$WORK/b-hooks"
make_rundir b
rm -f "$WORK/b/etc/squtun/tun0.key"
out=$(at b ifup tun0 2>&1); rc=$?
printf '%s\n' "$out" >"$WORK/ifup-nokey-b.log"
check "hooks, no key file: ifup fails ($rc)" test "$rc" -ne 0
check "hooks, no key file: ifup prints squtun's reason" \
    grep -q "^squtun: key file '/etc/squtun/tun0.key': cannot read: No such file or directory" "$WORK/ifup-nokey-b.log"
check "hooks, no key file: no tun0 left" sh -c "! ip -n $NS_B link show dev tun0 >/dev/null 2>&1"
check "hooks, no key file: no pid file left" test ! -e "$(pidfile_of b)"
finish
