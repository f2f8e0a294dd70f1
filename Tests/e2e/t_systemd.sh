#!/usr/bin/env bash
# systemd/squtun@.service and the config file it reads.
#
# systemd is not this machine's init, so 1-3 check the unit without it, and 4
# boots one in a container:
#  1. `systemd-analyze verify` checks the unit (as squtun@tun0.service), in a
#     private mount namespace where /usr/sbin/squtun ($SQUTUN) and squtun(8)
#     exist; a broken copy must fail the same check.
#  2. The unit's own ExecStart= (%i = tun0) runs on both ends of a tunnel with
#     etc/squtun/tun0.conf.example as /etc/squtun/tun0.conf (end B: the peer's
#     address and the ports swapped), under what the unit's hardening amounts
#     to for the process: setpriv with the unit's CapabilityBoundingSet and
#     no_new_privs, no ambient or inheritable capabilities, every mount
#     read-only (ProtectSystem=strict) except /run/squtun (ReadWritePaths=),
#     /proc, /sys and /dev. Each end has its own network namespace and its
#     own /etc and /run (mount namespace), so the default pid file does not
#     collide. Then: ping across, `squtun status`, SIGTERM to the main process
#     (KillMode=mixed) stops both processes with status 0 and cleans up.
#  3. The config file's errors, through ExecStart=: FILE:LINE, exit 64 (which
#     RestartPreventExitStatus= names, so systemd does not restart on them).
#  4. The unit itself under a booted systemd (Tests/e2e/container.sh:
#     systemd-nspawn in end A's namespace, the files where the package puts
#     them): systemctl start squtun@tun0, traffic to end B (squtun from the
#     command line), the hardening in force as /proc shows it, the worker
#     killed and the service restarted by the unit, systemctl stop leaving
#     no process, pid file or socket, and tun0 (the administrator's device)
#     with no one attached.
# Needs systemd (systemd-analyze), systemd-container (systemd-nspawn),
# man-db, util-linux (setpriv, unshare, nsenter); scripts/test-setup
# installs them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/package_defaults.sh"
. "$(dirname "$0")/container.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
UNIT="$REPO/systemd/squtun@.service"
CONF="$REPO/etc/squtun/tun0.conf.example"

systemd_cleanup() {
    stop_container
    for e in a b; do
        f="$WORK/$e/runsq/squtun-tun0.pid"
        [ -f "$f" ] && stop_pid "$(cat "$f")"
    done
    cleanup
    undo_package_defaults
}
trap systemd_cleanup EXIT
need_pkgs systemd systemd-container man-db groff-base iproute2 iputils-ping procps util-linux
echo "systemd: squtun@.service (systemd-analyze verify; ExecStart= under the unit's hardening) and --config"

SBIN="$WORK/sbin"; MAN8="$WORK/man8"
mkdir -p "$SBIN" "$MAN8" "$WORK/units"
cp "$SQUTUN" "$SBIN/squtun"
cp "$REPO/docs/squtun.8" "$MAN8/squtun.8"

# with_overlays COMMAND...: /usr/sbin/squtun and squtun(8) present, privately.
with_overlays() {
    unshare --mount --propagation private sh -c '
        mount -t overlay sqt-sbin -o "lowerdir=$1:/usr/sbin" /usr/sbin || exit 99
        mount -t overlay sqt-man -o "lowerdir=$2:/usr/share/man/man8" /usr/share/man/man8 || exit 99
        shift 2; exec "$@"' sh "$SBIN" "$MAN8" "$@"
}

# --- 1. systemd-analyze verify
if command -v systemd-analyze >/dev/null; then
    cp "$UNIT" "$WORK/units/squtun@.service"
    ln -s squtun@.service "$WORK/units/squtun@tun0.service"
    (cd "$WORK/units" && with_overlays systemd-analyze verify ./squtun@tun0.service) >"$WORK/verify.log" 2>&1
    rc=$?
    sed 's/^/    | /' "$WORK/verify.log"
    check "systemd-analyze verify squtun@tun0.service passes ($rc)" test "$rc" = 0
    check "... with no messages at all" test ! -s "$WORK/verify.log"
    mkdir -p "$WORK/broken"
    sed 's#^ExecStart=/usr/sbin/squtun #ExecStart=/usr/sbin/squtun-missing #' "$UNIT" >"$WORK/broken/squtun@.service"
    ln -s squtun@.service "$WORK/broken/squtun@tun0.service"
    (cd "$WORK/broken" && with_overlays systemd-analyze verify ./squtun@tun0.service) >/dev/null 2>&1
    check "... and fails on a copy whose ExecStart= names a missing program" test $? != 0
else
    fail "systemd-analyze not installed (apt-get install systemd)"
fi

# --- the unit's settings, as the tests use them
exec_start=$(sed -n 's/^ExecStart=//p' "$UNIT")
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT")
check "the unit has one ExecStart= ($exec_start)" test "$(grep -c '^ExecStart=' "$UNIT")" = 1
check "the unit sets NoNewPrivileges=yes, ProtectSystem=strict, ReadWritePaths=/run/squtun" sh -c "
    grep -qx NoNewPrivileges=yes '$UNIT' && grep -qx ProtectSystem=strict '$UNIT' && grep -qx ReadWritePaths=/run/squtun '$UNIT'"
# RuntimeDirectory= would chown /run/squtun and its files to root at every
# start, locking out squtun started as the user squtun (SquTUN's stanza).
check "the unit has no RuntimeDirectory= and makes /run/squtun with tmpfiles.d's line" sh -c "
    ! grep -q '^RuntimeDirectory' '$UNIT' && grep -qx 'ExecStartPre=+/usr/bin/systemd-tmpfiles --create squtun.conf' '$UNIT'"
check "the unit has no User= (the helper starts as root, the worker drops)" sh -c "! grep -q '^User=' '$UNIT'"
check "the unit sets LimitCORE=0 (no core dump may hold the key)" grep -qx LimitCORE=0 "$UNIT"
read -r -a START <<<"${exec_start//%i/tun0}"
bounding="-all"
for c in $caps; do c=${c#CAP_}; bounding="$bounding,+$(tr 'A-Z' 'a-z' <<<"$c")"; done
log "ExecStart: ${START[*]}"
log "setpriv --bounding-set $bounding"

# --- 2. the service's command line under the unit's hardening
ensure_package_defaults
TEST_USER=squtun make_world
genkey "$WORK/key"
for e in a b; do
    d="$WORK/$e"
    mkdir -p "$d/etc/squtun" "$d/run" "$d/runsq"
    chmod 755 "$d" "$d/etc" "$d/run" "$d/runsq"
    cp "$WORK/key" "$d/etc/squtun/tun0.key"; chmod 600 "$d/etc/squtun/tun0.key"
done
cp "$CONF" "$WORK/a/etc/squtun/tun0.conf"
sed -e "s/^peer $UNDER_B\$/peer $UNDER_A/; s/^remote-port 3457\$/remote-port 3456/; s/^local-port 3456\$/local-port 3457/" \
    "$CONF" >"$WORK/b/etc/squtun/tun0.conf"
check "end B's config derived from the example (peer, ports)" sh -c "
    grep -qx 'peer $UNDER_A' '$WORK/b/etc/squtun/tun0.conf' && grep -qx 'remote-port 3456' '$WORK/b/etc/squtun/tun0.conf' \
    && grep -qx 'local-port 3457' '$WORK/b/etc/squtun/tun0.conf'"

# as_service END: runs ExecStart= for END in its namespaces, hardened (see top).
as_service() {
    local e=$1 ns=$NS_A
    [ "$e" = b ] && ns=$NS_B
    ip netns exec "$ns" unshare --mount --propagation private sh -c '
        d=$1 sbin=$2 bounding=$3; shift 3
        mount -t overlay sqt-etc -o "lowerdir=$d/etc:/etc" /etc || exit 99
        mount -t overlay sqt-sbin -o "lowerdir=$sbin:/usr/sbin" /usr/sbin || exit 99
        mount --bind "$d/run" /run || exit 99
        mkdir -p /run/squtun && mount --bind "$d/runsq" /run/squtun || exit 99
        # ProtectSystem=strict: everything read-only but /run/squtun, /proc, /sys, /dev.
        for m in $(findmnt -rn -o TARGET | sort -r); do
            case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/run/squtun) continue ;; esac
            mount -o remount,bind,ro "$m" 2>/dev/null
        done
        if touch /usr/.sqt-rw-probe 2>/dev/null || touch /etc/.sqt-rw-probe 2>/dev/null \
            || touch /run/.sqt-rw-probe 2>/dev/null || touch /var/lib/squtun/.sqt-rw-probe 2>/dev/null; then
            echo "as_service: file system still writable" >&2; exit 98
        fi
        exec setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set="$bounding" -- "$@"
        ' sh "$WORK/$e" "$SBIN" "$bounding" "${START[@]}" >>"$WORK/svc-$e.log" 2>&1 &
    eval "SVC_$e=$!"
    PIDS+=("$!")
}
as_service a
as_service b
up() { [ -S "$WORK/$1/runsq/squtun-tun0.sock" ]; }
check "service A is up (status socket in its /run/squtun)" wait_for 5 up a
check "service B is up" wait_for 5 up b
check "ping A -> B across the tunnel" wait_for 5 ping_from "$NS_A" "$TUN_B"
check "ping B -> A" wait_for 5 ping_from "$NS_B" "$TUN_A"
helper=$SVC_a
check "the main process is the helper (pid file = ExecStart's pid $helper)" \
    test "$(cat "$WORK/a/runsq/squtun-tun0.pid" 2>/dev/null)" = "$helper"
worker=$(worker_of "$helper")
check "its worker runs as squtun" test "$(ps -o user= -p "${worker:-999999999}" 2>/dev/null | tr -d ' ')" = squtun
capbnd() { awk '/^CapBnd:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
nnp() { awk '/^NoNewPrivs:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
check "the helper ran with no_new_privs and the unit's bounding set only (CapBnd $(capbnd "$helper"))" \
    test "$(nnp "$helper")" = 1 -a "$(capbnd "$helper")" = "$(setpriv --bounding-set="$bounding" -- awk '/^CapBnd:/ {print $2}' /proc/self/status)"
check "the worker holds no capabilities (CapEff/CapPrm 0)" sh -c "
    grep -qE '^CapEff:\s+0+$' /proc/${worker:-0}/status && grep -qE '^CapPrm:\s+0+$' /proc/${worker:-0}/status"
check "squtun status tun0 (the service's socket) shows the peer" sh -c "
    ip netns exec $NS_A $SQUTUN status tun0 --control $WORK/a/runsq/squtun-tun0.sock | grep -qx 'peer: $UNDER_B:3457'"
ka=$(ip netns exec "$NS_A" "$SQUTUN" status tun0 --control "$WORK/a/runsq/squtun-tun0.sock" 2>/dev/null |
     awk -F': ' '$1=="keepalives-sent" {print $2}')
check "the config's keepalive 25 is in effect (keepalives-sent: ${ka:-none}; the default 0 sends none)" \
    test "${ka:-0}" -ge 1
kill -TERM "$helper"
reap "$helper"; rc=$?
check "SIGTERM to the main process: exit status 0 ($rc)" test "$rc" = 0
check "... the worker is gone too" dead "${worker:-999999999}"
# What stays is the session log, kept across runs on purpose.
check "... pid file and status socket removed (the session log stays)" \
    test -z "$(ls -A "$WORK/a/runsq" | grep -vx 'squtun-tun0.sessions')"
stop_pid "$SVC_b"; wait "$SVC_b" 2>/dev/null

# --- 3. config file errors through ExecStart=
svc_error() { # END: ExecStart= once, foreground, not hardened; prints "rc|stderr"
    local e=$1 ns=$NS_A out rc
    out=$(ip netns exec "$ns" unshare --mount --propagation private sh -c '
        mount -t overlay sqt-etc -o "lowerdir=$1/etc:/etc" /etc || exit 99
        mount -t overlay sqt-sbin -o "lowerdir=$2:/usr/sbin" /usr/sbin || exit 99
        shift 2; exec "$@"' sh "$WORK/$e" "$SBIN" "${START[@]}" 2>&1 >/dev/null)
    rc=$?
    printf '%s|%s' "$rc" "$out"
}
mkdir -p "$WORK/c/etc/squtun"
printf 'peer %s\nremote-port 3457\n# comment\nkeepalive 7200\nkey /etc/squtun/tun0.key\n' "$UNDER_B" >"$WORK/c/etc/squtun/tun0.conf"
r=$(svc_error c)
check "bad value: '$r'" test "$r" = "64|squtun: /etc/squtun/tun0.conf:4: keepalive: out of range 0-3600 '7200'"
printf 'peer %s\npeeer x\n' "$UNDER_B" >"$WORK/c/etc/squtun/tun0.conf"
r=$(svc_error c)
check "unknown setting: '$r'" test "$r" = "64|squtun: /etc/squtun/tun0.conf:2: unknown option 'peeer'"
rm -f "$WORK/c/etc/squtun/tun0.conf"
r=$(svc_error c)
check "no config file: '$r'" \
    test "$r" = "64|squtun: --config: cannot read config file (No such file or directory) '/etc/squtun/tun0.conf'"
check "exit status 64 is the unit's RestartPreventExitStatus" grep -qx 'RestartPreventExitStatus=64' "$UNIT"

# --- 4. squtun@tun0.service under a booted systemd
# The container runs in end A's namespace, whose tun0 (owned by squtun) is
# made above; end A's /etc/squtun (the example config, the key) is its
# /etc/squtun. End B is squtun from the command line.
SVC=squtun@tun0.service
L=$WORK/layers
mkdir -p "$L/units" "$L/tmpfiles"
cp "$UNIT" "$L/units/squtun@.service"
cp "$REPO/debian/squtun.tmpfiles" "$L/tmpfiles/squtun.conf"
boot_container tun0 "$NS_A" "overlay:$WORK/a/etc:/etc" "overlay:$SBIN:/usr/sbin" \
    "overlay:$L/units:/usr/lib/systemd/system" "overlay:$L/tmpfiles:/usr/lib/tmpfiles.d" "overlay:$MAN8:/usr/share/man/man8"
booted=$?
check "a systemd booted in a container in end A's namespace" test "$booted" = 0
if [ "$booted" != 0 ]; then tail -n 30 "$WORK/ct-tun0.log" | sed 's/^/    | /'; finish; exit 1; fi
ip netns exec "$NS_B" "$SQUTUN" -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$WORK/key" -a 2 -f -u squtun \
    --chroot /var/lib/squtun/empty --pidfile "$WORK/b4.pid" --control "$WORK/b4.sock" >>"$WORK/b4.log" 2>&1 &
PIDS+=("$!")
cin systemctl start "$SVC"
rc=$?
check "systemctl start $SVC: exit 0 ($rc)" test "$rc" = 0
check "... the unit is active" test "$(unit_prop "$SVC" ActiveState)" = active
check "ping A -> B across the tunnel" wait_for 10 ping_from "$NS_A" "$TUN_B"
check "ping B -> A" wait_for 5 ping_from "$NS_B" "$TUN_A"
check "squtun status tun0 in the container: the config's peer" \
    sh -c "nsenter -t $CT_INIT -m -n -p -- squtun status tun0 | grep -qx 'peer: $UNDER_B:3457'"
carrier() { ! ip -n "$NS_A" link show tun0 | grep -q NO-CARRIER; }
check "tun0 has a carrier (squtun holds it)" carrier
check_unit_hardening "$SVC" "$UNIT"
check_worker_kill_restarts "$SVC"
check "... ping B -> A again" wait_for 30 ping_from "$NS_B" "$TUN_A"
check_unit_stops "$SVC" squtun-tun0
check "... tun0 stays (squtun never removes interfaces), no one attached (NO-CARRIER)" \
    sh -c "ip -n $NS_A link show tun0 | grep -q NO-CARRIER"
finish
