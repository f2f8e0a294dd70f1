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
    case "$state" in running|degraded) ;; *) return 1 ;; esac
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
