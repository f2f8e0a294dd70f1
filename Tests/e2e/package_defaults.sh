# What the Debian package's postinst sets up, for the tests that run squtun
# with its defaults (t_debian, t_systemd, t_ifupdown; sourced after lib.sh):
# the user `squtun` and /var/lib/squtun/empty, made only if missing, for
# the test's run; undo_package_defaults removes only what this test made.
# Not part of scripts/test-setup: a lasting `squtun` user would be one the
# package did not make (t_package checks that its postinst makes it and its
# purge leaves the machine as it found it).
made_user=0; made_dir=0
ensure_package_defaults() {
    if ! id -u squtun >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin squtun; made_user=1
    fi
    if [ ! -d /var/lib/squtun/empty ]; then
        mkdir -p /var/lib/squtun/empty; chmod 755 /var/lib/squtun /var/lib/squtun/empty; made_dir=1
    fi
}
undo_package_defaults() {
    [ $made_dir = 1 ] && rmdir /var/lib/squtun/empty /var/lib/squtun 2>/dev/null
    [ $made_user = 1 ] && userdel squtun 2>/dev/null
    return 0
}
