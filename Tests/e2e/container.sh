# A booted systemd in a container, for the tests of the systemd units
# (t_systemd, t_systemd_server; sourced after lib.sh).
#
# The container is this machine's own file system, booted by systemd-nspawn
# as the operating guide describes (--volatile=yes: a fresh tmpfs root with
# this machine's /usr; /etc and /var/lib/squtun bound read-only from it),
# in a network namespace the test made. What the test installs (the unit
# file, squtun, squtun(8), the tmpfiles.d line, /etc/squtun/...) is laid
# over those directories in a private mount namespace of the container's
# own, so that nothing is written to this machine's /usr or /etc.
#
#   boot_container NAME NETNS SPEC...   boots; SPEC is overlay:DIR:TARGET
#                                       (DIR's files over TARGET) or
#                                       bind:DIR:TARGET
#   cin COMMAND...                      runs COMMAND inside the container
#   stop_container                      powers it off (SIGKILL after 30 s)
CT_NSPAWN=""   # systemd-nspawn's pid
CT_INIT=""     # the container's systemd (its pid here)

# Booted: running, or degraded (this machine's own services may fail in a
# container); polled, as systemctl cannot answer before systemd listens.
ct_booted() { case "$(cin systemctl is-system-running 2>/dev/null)" in running|degraded) return 0 ;; esac; return 1; }
# nspawn's child is the container's init once it runs systemd (before, it
# may be nspawn's own intermediate process).
ct_has_init() {
    local c
    c=$(worker_of "$CT_NSPAWN")
    [ -n "$c" ] && [ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ]
}
cin() { nsenter -t "$CT_INIT" -m -u -i -n -p -- "$@"; }

# boot_container NAME NETNS SPEC...: true once the container's systemd has
# finished booting (running, or degraded: the host's own services may fail
# in a container); its console goes to $WORK/ct-NAME.log.
boot_container() {
    local name=$1 netns=$2 d binds=()
    shift 2
    # A debug build loads the Swift runtime from the toolchain (RUNPATH),
    # which is not under /usr: bind its directories too.
    for d in $(ldd "$SQUTUN" | awk '$3 ~ /^\// {print $3}' | xargs -n 1 dirname | sort -u); do
        case "$d" in /usr/*|/lib/*|/lib64/*|/lib|/lib64) ;; *) binds+=(--bind-ro="$d") ;; esac
    done
    # --capability=CAP_NET_ADMIN: nspawn keeps it only with a network it
    # makes itself (--private-network), not with a namespace given by path;
    # a host's systemd has it, and the units' helpers need it.
    unshare --mount --propagation private bash -c '
        while [ "$1" != -- ]; do
            kind=${1%%:*} rest=${1#*:}; src=${rest%%:*} dst=${rest#*:}; shift
            case $kind in
                overlay) mount -t overlay sqt-ct -o "lowerdir=$src:$dst" "$dst" || exit 99 ;;
                bind) mount --bind "$src" "$dst" || exit 99 ;;
            esac
        done
        shift
        exec systemd-nspawn "$@"' sh "$@" -- \
        --keep-unit --register=no --volatile=yes -D / -b --machine="sqt-$name-$E2E_ID" --console=read-only --capability=CAP_NET_ADMIN \
        --network-namespace-path="/run/netns/$netns" --bind-ro=/etc --bind-ro=/var/lib/squtun "${binds[@]}" \
        >"$WORK/ct-$name.log" 2>&1 </dev/null &
    CT_NSPAWN=$!
    wait_for 20 ct_has_init || return 1
    CT_INIT=$(worker_of "$CT_NSPAWN")
    wait_for 90 ct_booted
    local state
    state=$(cin systemctl is-system-running 2>&1)
    log "container $name: nspawn $CT_NSPAWN, init $CT_INIT, system $state"
    case "$state" in
        running|degraded) ;;
        *) cin systemctl list-jobs --no-pager 2>&1 | sed 's/^/    jobs: /'; return 1 ;;
    esac
    # The container's /sys/class/net shows this machine's devices (the sysfs
    # was mounted outside the namespace): a sysfs mounted in it shows its own.
    cin sh -c 'mkdir -p /run/sqt-sysfs && mount -t sysfs sysfs /run/sqt-sysfs &&
        mount --bind /run/sqt-sysfs/class/net /sys/class/net &&
        mount --bind /run/sqt-sysfs/devices/virtual/net /sys/devices/virtual/net && umount /run/sqt-sysfs'
}

stop_container() {
    [ -n "$CT_NSPAWN" ] || return 0
    kill -TERM "$CT_NSPAWN" 2>/dev/null
    if ! wait_for 30 dead "$CT_NSPAWN"; then
        log "container: nspawn $CT_NSPAWN did not stop in 30 s: SIGKILL to it and to the container's init $CT_INIT"
        kill -KILL "$CT_INIT" "$CT_NSPAWN" 2>/dev/null
    fi
    wait "$CT_NSPAWN" 2>/dev/null
    CT_NSPAWN=""
}

# unit_prop UNIT PROPERTY: one property of a unit, from the container's systemd.
unit_prop() { cin systemctl show -p "$2" --value "$1" 2>/dev/null; }

# proc_field PID FIELD: a line of /proc/PID/status in the container.
proc_field() { cin awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null; }

# children_in PID: the children of a process in the container.
children_in() { cin cat "/proc/$1/task/$1/children" 2>/dev/null | awk '{print $1}'; }

# bounding_of UNIT_FILE: the capability bounding set its
# CapabilityBoundingSet= gives, as /proc/PID/status's CapBnd: shows it.
bounding_of() {
    local caps c set="-all"
    caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$1")
    for c in $caps; do c=${c#CAP_}; set="$set,+$(tr 'A-Z' 'a-z' <<<"$c")"; done
    setpriv --bounding-set="$set" -- awk '/^CapBnd:/ {print $2}' /proc/self/status
}

# unit_is UNIT PROPERTY VALUE (for wait_for).
unit_is() { [ "$(unit_prop "$1" "$2")" = "$3" ]; }

# check_unit_hardening UNIT UNIT_FILE: the unit's main process is squtun's
# root helper and its only child the worker (UNIT_HELPER, UNIT_WORKER), and
# what the unit's settings and squtun's own sandbox give each of them is in
# force, as /proc shows it.
check_unit_hardening() {
    local svc=$1 file=$2 helper worker want hf wf f bad tmp_root
    helper=$(unit_prop "$svc" MainPID)
    worker=$(children_in "${helper:-0}")
    UNIT_HELPER=$helper UNIT_WORKER=$worker
    log "$svc: helper $helper, worker $worker (the container's pids)"
    check "$svc: the main process is the helper, its only child the worker" \
        test -n "$helper" -a "$helper" != 0 -a -n "$worker"
    check "helper: uid 0" test "$(proc_field "$helper" Uid)" = 0
    check "helper: NoNewPrivs 1 (NoNewPrivileges=yes)" test "$(proc_field "$helper" NoNewPrivs)" = 1
    check "helper: Seccomp 2 (the unit's filters: SystemCallArchitectures=, RestrictAddressFamilies=, ...)" \
        test "$(proc_field "$helper" Seccomp)" = 2
    want=$(bounding_of "$file")
    check "helper: CapBnd $(proc_field "$helper" CapBnd) is CapabilityBoundingSet= ($want)" \
        test "$(proc_field "$helper" CapBnd)" = "$want"
    check "helper: CapEff within it, CapAmb 0" \
        test $(( 0x$(proc_field "$helper" CapEff) & ~0x$want )) = 0 -a $(( 0x$(proc_field "$helper" CapAmb) )) = 0
    cin cat "/proc/$helper/mountinfo" >"$WORK/helper.mountinfo" 2>/dev/null
    check "helper: / read-only (ProtectSystem=strict: $(mount_opts /))" has "$(mount_opts /)" ro
    check "helper: /etc read-only ($(mount_opts /etc))" has "$(mount_opts /etc)" ro
    check "helper: /usr read-only ($(mount_opts /usr))" has "$(mount_opts /usr)" ro
    check "helper: /run/squtun writable (ReadWritePaths=: $(mount_opts /run/squtun))" has "$(mount_opts /run/squtun)" rw
    check "helper: /proc with hidepid=invisible (ProtectProc=: $(super_opts /proc))" has "$(super_opts /proc)" hidepid=invisible
    tmp_root=$(awk '$5 == "/tmp" {r = $4} END {print r}' "$WORK/helper.mountinfo")
    check "helper: /tmp its own (PrivateTmp=: $tmp_root)" \
        sh -c "case '$tmp_root' in */systemd-private-*-$svc-*/tmp) exit 0 ;; *) exit 1 ;; esac"
    check "worker: uid squtun ($(proc_field "$worker" Uid))" test "$(proc_field "$worker" Uid)" = "$(id -u squtun)"
    bad=""
    for f in CapEff CapPrm CapInh CapAmb; do
        [ "$(( 0x$(proc_field "$worker" $f || echo 1) ))" = 0 ] || bad="$bad $f"
    done
    check "worker: CapEff, CapPrm, CapInh, CapAmb 0 (not 0:${bad:- none})" test -z "$bad"
    check "worker: NoNewPrivs 1, Seccomp 2" test "$(proc_field "$worker" NoNewPrivs)/$(proc_field "$worker" Seccomp)" = 1/2
    hf=$(proc_field "$helper" Seccomp_filters); wf=$(proc_field "$worker" Seccomp_filters)
    check "worker: its own seccomp filter on top of the unit's ($wf filters, the helper $hf)" test "${wf:-0}" -gt "${hf:-0}"
    check "worker: chrooted into /var/lib/squtun/empty" test "$(cin readlink "/proc/$worker/root")" = /var/lib/squtun/empty
}
# From the helper's mountinfo: a mount point's options, its file system's.
mount_opts() { awk -v m="$1" '$5 == m {o = $6} END {print o}' "$WORK/helper.mountinfo"; }
super_opts() { awk -v m="$1" '$5 == m {for (i = 7; $i != "-"; i++); o = $(i + 3)} END {print o}' "$WORK/helper.mountinfo"; }
has() { case ",$1," in *",$2,"*) return 0 ;; *) return 1 ;; esac; }

# check_worker_kill_restarts UNIT: SIGKILL to the worker (UNIT_WORKER) makes
# the helper exit non-zero, and the unit (Restart=on-failure) starts the
# service again after RestartSec=. UNIT_HELPER becomes the new helper.
check_worker_kill_restarts() {
    local svc=$1 before old=$UNIT_HELPER new
    before=$(unit_prop "$svc" NRestarts)
    cin kill -KILL "$UNIT_WORKER"
    check "worker $UNIT_WORKER killed: the unit restarts the service (NRestarts $before -> $((before + 1)))" \
        wait_for 30 unit_is "$svc" NRestarts $((before + 1))
    check "... it is active again" wait_for 10 unit_is "$svc" ActiveState active
    new=$(unit_prop "$svc" MainPID)
    check "... with a new helper ($new, was $old)" test -n "$new" -a "$new" != 0 -a "$new" != "$old"
    check "... the old helper is gone" sh -c "! nsenter -t $CT_INIT -m -p -- test -e /proc/$old"
    UNIT_HELPER=$new UNIT_WORKER=$(children_in "$new")
}

# check_unit_stops UNIT NAME: systemctl stop ends it cleanly (the helper
# exits 0 on SIGTERM, no SIGKILL), leaving no squtun process and neither
# /run/squtun/NAME.pid nor NAME.sock.
check_unit_stops() {
    local svc=$1 name=$2 rc procs run ok
    cin systemctl stop "$svc"
    rc=$?
    check "systemctl stop $svc: exit 0 ($rc)" test "$rc" = 0
    check "... the unit is inactive, Result=success (the helper exited 0 on SIGTERM, no SIGKILL)" \
        test "$(unit_prop "$svc" ActiveState)/$(unit_prop "$svc" Result)" = inactive/success
    procs=$(cin ps -e -o comm=)
    # (ps must have listed the container's processes: systemd at least.)
    ok=0; grep -qx systemd <<<"$procs" && ! grep -q squtun <<<"$procs" && ok=1
    check "... no squtun process in the container ($(grep squtun <<<"$procs" | tr '\n' ' '))" test $ok = 1
    run=$(cin ls -A /run/squtun) || run="(cannot list)"
    ok=0; [ "$run" != "(cannot list)" ] && ! grep -qxE "$name\.(pid|sock)" <<<"$run" && ok=1
    check "... no pid file or status socket left (/run/squtun: $(tr '\n' ' ' <<<"$run"))" test $ok = 1
}
