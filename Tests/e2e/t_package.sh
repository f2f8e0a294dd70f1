#!/usr/bin/env bash
# The Debian package: builds it (scripts/package = dpkg-buildpackage -us -uc
# -b) unless SQUTUN_DEB names a built .deb, runs lintian on it, installs it
# with dpkg -i on this machine, checks the user, directories and files, runs
# /usr/sbin/squtun -m 1500 and -h (with the Swift toolchain hidden), the
# installed bash completion, systemd-analyze verify on the installed unit,
# ifup/ifdown with the installed hooks (t_ifupdown.sh, SQUTUN_INSTALLED=1),
# then purges it and checks that nothing is left.
#
# Refuses to run if a squtun package or /usr/sbin/squtun is already there.
# Needs dpkg-dev debhelper lintian ifupdown systemd man-db groff-base
# (scripts/test-setup installs them);
# bash-completion is not needed (the script is sourced directly).
. "$(dirname "$0")/lib.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)

installed=0
before_user=0; before_group=0; before_var=0; before_run=0
getent passwd squtun >/dev/null && before_user=1
getent group squtun >/dev/null && before_group=1
[ -e /var/lib/squtun ] && before_var=1
[ -e /run/squtun ] && before_run=1

package_cleanup() {
    if [ $installed = 1 ]; then
        dpkg --purge squtun >/dev/null 2>&1 || echo "    cleanup: dpkg --purge squtun failed"
    fi
    cleanup
}
trap package_cleanup EXIT
need_pkgs dpkg-dev debhelper lintian man-db groff-base systemd ifupdown iproute2 iputils-ping procps \
    libssl-dev libseccomp-dev pkg-config

echo "package: build, lintian, dpkg -i, checks, purge"
if dpkg-query -W -f='${Status}' squtun 2>/dev/null | grep -q installed || [ -e /usr/sbin/squtun ]; then
    fail "a squtun package or /usr/sbin/squtun is already on this machine; not touching it"; finish; exit
fi

# --- build
if [ -n "${SQUTUN_DEB:-}" ]; then
    DEB=$SQUTUN_DEB
    log "using SQUTUN_DEB=$DEB"
else
    start=$SECONDS
    DEB=$("$REPO/scripts/package" --out "$WORK/deb" 2>"$WORK/build.log" | tail -n 1)
    rc=$?
    check "scripts/package builds the .deb ($((SECONDS - start)) s)" test "$rc" = 0 -a -f "$DEB"
fi
if [ ! -f "${DEB:-}" ]; then
    tail -n 20 "$WORK/build.log" 2>/dev/null | sed 's/^/    | /'
    finish; exit
fi
log "$DEB"

# --- lintian
if command -v lintian >/dev/null; then
    lintian --pedantic "$DEB" >"$WORK/lintian.log" 2>&1
    grep -E '^[EW]: ' "$WORK/lintian.log" | sed 's/^/    | /'
    check "lintian: no errors" sh -c "! grep -q '^E: ' '$WORK/lintian.log'"
    check "lintian: no warnings" sh -c "! grep -q '^W: ' '$WORK/lintian.log'"
else
    fail "lintian not installed (apt-get install lintian)"
fi

# --- the binary needs no Swift toolchain
x="$WORK/extract"
dpkg-deb -x "$DEB" "$x"
ldd "$x/usr/sbin/squtun" >"$WORK/ldd.txt" 2>&1
check "ldd: no Swift runtime libraries (linked statically)" sh -c "! grep -qiE 'swift|Foundation|libdispatch|BlocksRuntime' '$WORK/ldd.txt'"
check "ldd: only libc, libm, libcrypto, libseccomp, libstdc++, libgcc_s" sh -c "
    ! grep -vE '^\s*(linux-vdso|/lib64/ld-linux|lib(c|m|crypto|seccomp|stdc\+\+|gcc_s)\.so)' '$WORK/ldd.txt' | grep -q ."
depends=$(dpkg-deb -f "$DEB" Depends)
log "Depends: $depends"
for d in libssl3 libseccomp2 iproute2 adduser; do
    check "Depends: lists $d" sh -c "echo '$depends' | grep -qw '$d'"
done

# --- install
dpkg -i "$DEB" >"$WORK/dpkg-i.log" 2>&1
rc=$?
[ $rc = 0 ] && installed=1
check "dpkg -i exits 0 ($rc)" test "$rc" = 0
[ $rc = 0 ] || { sed 's/^/    | /' "$WORK/dpkg-i.log"; finish; exit; }

pw=$(getent passwd squtun)
check "user squtun exists$([ $before_user = 1 ] && echo ' (it existed before)')" test -n "$pw"
IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
check "user squtun is a system user (uid $uid < 1000)" test "${uid:-1000}" -lt 1000
check "user squtun has no login shell ($shell)" sh -c "case '$shell' in */nologin|*/false) true;; *) false;; esac"
check "user squtun has no home ($home does not exist)" test ! -e "${home:-/}"
check "group squtun exists, the user's primary group" test "$(getent group squtun | cut -d: -f3)" = "$gid"
check "/var/lib/squtun/empty: directory, root:root, 0755" \
    test "$(stat -c '%F %U:%G %a' /var/lib/squtun/empty 2>/dev/null)" = "directory root:root 755"
check "/var/lib/squtun/empty is empty" test -z "$(ls -A /var/lib/squtun/empty 2>/dev/null)"
check "/run/squtun made (tmpfiles.d): root:squtun, sticky, group-writable ($(stat -c '%U:%G %a' /run/squtun 2>/dev/null))" \
    test "$(stat -c '%F %U:%G %a' /run/squtun 2>/dev/null)" = "directory root:squtun 1775"
for f in /usr/sbin/squtun /usr/share/man/man8/squtun.8.gz /lib/systemd/system/squtun@.service \
         /lib/systemd/system/squtun-server.service \
         /usr/share/bash-completion/completions/squtun /usr/lib/tmpfiles.d/squtun.conf \
         /usr/libexec/squtun/ifupdown /usr/share/doc/squtun/CONFIG.md /usr/share/doc/squtun/SERVER.md; do
    check "installed: $f" test -s "$f"
done
check "installed: /etc/squtun (directory)" test -d /etc/squtun
for p in if-pre-up.d if-up.d if-down.d if-post-down.d; do
    check "installed: /etc/network/$p/squtun runs the hook" \
        test -x "/etc/network/$p/squtun" -a "$(readlink -f "/etc/network/$p/squtun")" = /usr/libexec/squtun/ifupdown
done
for f in etc/squtun/tun0.conf.example etc/network/interfaces.d/squtun.example \
         etc/network/interfaces.d/squtun-hooks.example etc/network/interfaces.d/squtun-su.example \
         etc/squtun/server.conf.example etc/squtun/server-hook.example; do
    check "installed example = the repo's $f" cmp -s "$REPO/$f" "/usr/share/doc/squtun/examples/$(basename "$f")"
done
check "installed example directory = the repo's etc/squtun/peers.example" \
    diff -r "$REPO/etc/squtun/peers.example" /usr/share/doc/squtun/examples/peers.example
check "installed hook = the repo's etc/network/squtun-ifupdown" cmp -s "$REPO/etc/network/squtun-ifupdown" /usr/libexec/squtun/ifupdown
check "installed unit = the repo's systemd/squtun@.service" cmp -s "$REPO/systemd/squtun@.service" /lib/systemd/system/squtun@.service
check "installed unit = the repo's systemd/squtun-server.service" \
    cmp -s "$REPO/systemd/squtun-server.service" /lib/systemd/system/squtun-server.service
check "squtun-server.service is not enabled at install (no link to it in /etc/systemd/system)" \
    test -z "$(find /etc/systemd/system -name squtun-server.service 2>/dev/null)"

# --- postinst/postrm user handling, on a machine without a squtun user:
# the installed maintainer scripts run in a private mount namespace where
# /etc is a writable overlay (upper layer in $WORK) whose passwd, group,
# shadow and gshadow lack squtun, and /var/lib/squtun is an empty directory.
# The host's users are never touched.
iso="$WORK/iso"
mkdir -p "$iso/upper" "$iso/work" "$iso/var"
for f in passwd group shadow gshadow; do
    [ -e "/etc/$f" ] && grep -v '^squtun:' "/etc/$f" >"$iso/upper/$f"
    [ -e "/etc/$f" ] && chmod --reference="/etc/$f" "$iso/upper/$f" && chown --reference="/etc/$f" "$iso/upper/$f"
done
isolated() {
    unshare --mount --propagation private sh -c '
        mount -t overlay sqt-iso -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc || exit 99
        mount --bind "$1/var" /var/lib/squtun || exit 99
        shift; exec "$@"' sh "$iso" "$@"
}
check "isolated: no user squtun to begin with" isolated sh -c '! getent passwd squtun'
isolated sh /var/lib/dpkg/info/squtun.postinst configure >"$WORK/iso-postinst.log" 2>&1
check "isolated: postinst configure exits 0" test $? = 0
pw=$(isolated getent passwd squtun)
IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
check "isolated: postinst made system user squtun (uid ${uid:-none} < 1000)" test "${uid:-1000}" -lt 1000
check "isolated: ... shell nologin, home /nonexistent" test "${shell:-}:${home:-}" = /usr/sbin/nologin:/nonexistent
check "isolated: ... and group squtun, its primary group" \
    test "$(isolated getent group squtun | cut -d: -f3)" = "${gid:-x}"
check "isolated: postinst made /var/lib/squtun/empty root:root 0755" \
    test "$(stat -c '%F %U:%G %a' "$iso/var/empty" 2>/dev/null)" = "directory root:root 755"
isolated sh /var/lib/dpkg/info/squtun.postinst configure >>"$WORK/iso-postinst.log" 2>&1
check "isolated: postinst configure again exits 0, still one user" \
    test $? = 0 -a "$(isolated getent passwd | grep -c '^squtun:')" = 1
isolated sh /var/lib/dpkg/info/squtun.postrm purge >"$WORK/iso-postrm.log" 2>&1
check "isolated: postrm purge exits 0" test $? = 0
check "isolated: postrm purge removed user and group squtun" \
    isolated sh -c '! getent passwd squtun && ! getent group squtun'
check "isolated: postrm purge removed the chroot directory and its markers" \
    test -z "$(ls -A "$iso/var")"
check "isolated: the host still has its own state" \
    sh -c "[ $before_user = 0 ] || getent passwd squtun >/dev/null"

# --- run it, with the Swift toolchain (/opt/swift) hidden
nosw() { unshare --mount --propagation private sh -c 'mount -t tmpfs none /opt && exec "$@"' sh "$@"; }
out=$(nosw /usr/sbin/squtun -m 1500 2>&1); rc=$?
check "/usr/sbin/squtun -m 1500 prints 1391 without /opt/swift ($rc, '$out')" test "$rc" = 0 -a "$out" = 1391
nosw /usr/sbin/squtun -h >"$WORK/help.txt" 2>&1; rc=$?
check "/usr/sbin/squtun -h exits 0 without /opt/swift ($rc)" test "$rc" = 0
check "squtun -h lists --config" grep -q -- "--config <file>" "$WORK/help.txt"

# --- man page
check "man -w squtun finds the installed page" test "$(man -w squtun 2>/dev/null)" = /usr/share/man/man8/squtun.8.gz
LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z /usr/share/man/man8/squtun.8.gz \
    >/dev/null 2>"$WORK/man.log"
check "man renders squtun(8) without warnings" test ! -s "$WORK/man.log"

# --- bash completion (the installed script, sourced by bash)
complete_words() { # words of the command line, last one being completed
    bash -c 'shopt -s extglob; source /usr/share/bash-completion/completions/squtun
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        _squtun "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"   # as bash calls it
        printf "%s\n" "${COMPREPLY[@]}"' sh "$@" 2>&1
}
check "completion: squtun --con -> --config --control" \
    test "$(complete_words squtun --con | sort | tr '\n' ' ')" = "--config --control "
check "completion: squtun sta -> status" test "$(complete_words squtun sta | tr '\n' ' ')" = "status "
check "completion: squtun --local -> --local-port" test "$(complete_words squtun --local | tr '\n' ' ')" = "--local-port "

# --- systemd unit, installed
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify squtun@tun0.service >"$WORK/verify.log" 2>&1; rc=$?
    sed 's/^/    | /' "$WORK/verify.log"
    check "systemd-analyze verify squtun@tun0.service (installed) passes, no messages ($rc)" \
        test "$rc" = 0 -a ! -s "$WORK/verify.log"
    systemd-analyze verify squtun-server.service >"$WORK/verify-server.log" 2>&1; rc=$?
    sed 's/^/    | /' "$WORK/verify-server.log"
    check "systemd-analyze verify squtun-server.service (installed) passes, no messages ($rc)" \
        test "$rc" = 0 -a ! -s "$WORK/verify-server.log"
else
    fail "systemd-analyze not installed (apt-get install systemd)"
fi

# --- ifup/ifdown with the installed hooks and binary
out=$(E2E_ID="${E2E_ID}i" SQUTUN=/usr/sbin/squtun SQUTUN_INSTALLED=1 bash "$(dirname "$0")/t_ifupdown.sh" 2>&1)
# Its checks count as this test's: its own summary line is not shown.
grep -vE '^t_ifupdown: [0-9]+ passed, [0-9]+ failed$' <<<"$out" | sed 's/^/  /'
if summary_read t_ifupdown /dev/stdin <<<"$out"; then
    T_PASS=$((T_PASS + SUM_PASS)); T_FAIL=$((T_FAIL + SUM_FAIL))
else
    fail "t_ifupdown.sh (installed) gave no summary"
fi

# --- idempotent postinst
dpkg -i "$DEB" >"$WORK/dpkg-i2.log" 2>&1
check "dpkg -i again (postinst idempotent) exits 0" test $? = 0
check "still one user squtun" test "$(getent passwd | grep -c '^squtun:')" = 1

# --- purge
dpkg --purge squtun >"$WORK/purge.log" 2>&1
rc=$?
[ $rc = 0 ] && installed=0
check "dpkg --purge squtun exits 0 ($rc)" test "$rc" = 0
check "dpkg knows no squtun" sh -c "! dpkg-query -W -f='\${Status}' squtun 2>/dev/null | grep -q installed"
for f in /usr/sbin/squtun /usr/share/man/man8/squtun.8.gz /lib/systemd/system/squtun@.service \
         /lib/systemd/system/squtun-server.service \
         /usr/share/bash-completion/completions/squtun /usr/lib/tmpfiles.d/squtun.conf /usr/libexec/squtun \
         /usr/share/doc/squtun /etc/squtun /etc/network/if-pre-up.d/squtun /etc/network/if-up.d/squtun \
         /etc/network/if-down.d/squtun /etc/network/if-post-down.d/squtun; do
    check "purged: $f" test ! -e "$f" -a ! -L "$f"
done
if [ $before_user = 0 ]; then
    check "purged: user squtun" sh -c "! getent passwd squtun >/dev/null"
else
    check "user squtun kept (it existed before the package)" sh -c "getent passwd squtun >/dev/null"
fi
if [ $before_group = 0 ]; then
    check "purged: group squtun" sh -c "! getent group squtun >/dev/null"
fi
if [ $before_var = 0 ]; then
    check "purged: /var/lib/squtun" test ! -e /var/lib/squtun
else
    check "/var/lib/squtun kept, without the package's markers (it existed before)" \
        sh -c "! ls -A /var/lib/squtun | grep -q '^\.created-'"
fi
if [ $before_run = 0 ]; then
    # (unless another squtun on this machine has its pid file there meanwhile)
    check "purged: /run/squtun" sh -c 'test ! -e /run/squtun || test -n "$(ls -A /run/squtun)"'
fi
finish
