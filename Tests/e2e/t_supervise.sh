#!/usr/bin/env bash
# The root helper facing a broken or compromised worker: a malformed channel
# message, requests its table refuses (a setup request after ready, a
# once-only request asked twice), a channel closed by a worker that keeps running, log lines full of
# terminal escapes, a status reply full of them, and a helper that stops
# reading the worker's log lines (the data path must go on).
#
# The misbehaving worker is the real one, made to misbehave after `ready`
# (under its seccomp filter) by SQUTUN_DEBUG_WORKER_FAULT, which only debug
# builds have (WorkerFault.swift); with a release binary those checks are
# skipped. One check needs no switch: a byte injected into the worker's end
# of the channel from outside (Tests/tools/inject.py, pidfd_getfd).
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
# grep -P matches code points above 0xff only in a UTF-8 locale.
export LC_ALL=C.UTF-8
echo "supervise: the helper against a misbehaving worker"
make_world
genkey "$WORK/key"
TOOLS="$(dirname "$0")/../tools"
ARGS=(-l 3456 -p "$UNDER_B" -r 3457 -i tun0 -k "$WORK/key")
up() { grep -q "tunnel on tun0 is up" "$WORK/$1.log"; }
# The worker's pid as the helper logged it (it may be gone already).
logged_worker() { grep -o "worker pid [0-9]*" "$WORK/$1.log" | head -n 1 | awk '{print $3}'; }

# start_faulty NAME FAULT: instance NAME in namespace A with the fault set.
start_faulty() {
    SQUTUN_DEBUG_WORKER_FAULT=$2 start_squtun "$NS_A" "$1" "${ARGS[@]}"
    wait_for 5 up "$1"
}

# stopped_cleanly NAME WORKER WHAT: the helper exited non-zero by itself,
# killed its worker, and removed its files.
stopped_cleanly() {
    local name=$1 worker=$2 what=$3 pid rc
    pid=$(eval "echo \$PID_$name")
    check "$what: helper exits by itself" wait_for 4 dead "$pid"
    reap "$pid" 1; rc=$?
    check "$what: exit status 2 ($rc)" test "$rc" = 2
    check "$what: worker $worker is gone" sh -c "[ -n '$worker' ] && [ ! -e /proc/$worker ]"
    check "$what: pid file removed" test ! -e "$WORK/$name.pid"
    check "$what: control socket removed" test ! -e "$WORK/$name.sock"
}

debug=0
SQUTUN_DEBUG_WORKER_FAULT=probe start_squtun "$NS_A" p "${ARGS[@]}"
wait_for 5 grep -q "unknown SQUTUN_DEBUG_WORKER_FAULT" "$WORK/p.log" && debug=1
kill -TERM "$PID_p"; reap "$PID_p"
[ $debug = 1 ] || log "a release build: no SQUTUN_DEBUG_WORKER_FAULT, those checks skipped"

if [ $debug = 1 ]; then
    # 1. One 0xff byte from the worker on its channel.
    start_faulty bad bad-byte
    worker=$(logged_worker bad)
    stopped_cleanly bad "$worker" "malformed message"
    check "malformed message: logged" grep -q "broke the channel protocol" "$WORK/bad.log"

    # 2. The worker closes its channel and hangs: killed after the grace time.
    start_faulty hup hang-up
    worker=$(logged_worker hup)
    stopped_cleanly hup "$worker" "closed channel"
    check "closed channel: logged" grep -q "closed its channel but did not exit: killing it" "$WORK/hup.log"

    # 2a. After ready, the worker asks for the key again: a setup request in
    # the running phase. Killed at once, one line, exit 2.
    start_faulty again key-again
    worker=$(logged_worker again)
    stopped_cleanly again "$worker" "setup request after ready"
    check "setup request after ready: one line naming it" \
        test "$(grep -c 'broke the channel protocol' "$WORK/again.log")" = 1
    check "setup request after ready: the line" \
        grep -q "worker $worker broke the channel protocol (a keyRequest request after ready): killing it" "$WORK/again.log"

    # 2b. During setup, the worker says hello twice (the table allows it
    # once): killed before the tunnel is up, one line, exit 2.
    SQUTUN_DEBUG_WORKER_FAULT=hello-twice start_squtun "$NS_A" twice "${ARGS[@]}"
    check "second hello: the helper says why" wait_for 5 grep -q "broke the channel protocol during startup" "$WORK/twice.log"
    worker=$(grep -o "worker [0-9]* broke" "$WORK/twice.log" | head -n 1 | awk '{print $2}')
    stopped_cleanly twice "$worker" "second hello"
    check "second hello: one line naming it" \
        grep -q "worker $worker broke the channel protocol during startup (a second hello request): killed it" "$WORK/twice.log"
    check "second hello: only that line" test "$(grep -c 'broke the channel protocol' "$WORK/twice.log")" = 1
    check "second hello: never up" sh -c "! grep -q 'is up' $WORK/twice.log"

    # 3. A log line of terminal escapes, controls and bidi overrides.
    start_faulty esc log-escapes
    check "escapes: the line arrived" wait_for 3 grep -q "escapes: " "$WORK/esc.log"
    check "escapes: no control byte (ESC, BEL, CR, DEL, C1) in the log" \
        sh -c "! LC_ALL=C grep -q \$(printf '[\\033\\007\\r\\177]') $WORK/esc.log && ! grep -qP '\\x{9b}' $WORK/esc.log"
    check "escapes: no bidi override in the log" sh -c "! grep -qP '[\\x{202a}-\\x{202e}\\x{2066}-\\x{2069}]' $WORK/esc.log"
    check "escapes: one line, shown escaped" grep -qF 'escapes: \x1b]0;owned\x07\x1b[2J\x1b[31mred\x0d\x0aforged line\x7f\u{9b}31m \u{202e}desrever' "$WORK/esc.log"
    kill -TERM "$PID_esc"; reap "$PID_esc"
fi

# 4. Injected from outside into the worker's end of the channel: any build.
# First a well-formed log message (type 5, level info) with what the channel
# lets through but a terminal must not get as it is (bidi overrides and
# isolates, a line separator: the channel itself refuses C0/C1 controls),
# then one 0xff byte.
start_squtun "$NS_A" inj "${ARGS[@]}"
wait_for 5 up inj
worker=$(logged_worker inj)
line=$(printf 'injected: \342\200\256evil\342\201\246x\342\201\251 \342\200\250forged' | od -An -tx1 | tr -d ' \n')
if python3 "$TOOLS/inject.py" "$worker" 3 "0502$line"; then
    check "injected log line: arrived" wait_for 3 grep -q "injected: " "$WORK/inj.log"
    check "injected log line: no bidi override, isolate or line separator in the log" \
        sh -c "! grep -qP '[\\x{202e}\\x{2066}\\x{2069}\\x{2028}]' $WORK/inj.log"
    check "injected log line: shown escaped" grep -qF 'injected: \u{202e}evil\u{2066}x\u{2069} \u{2028}forged' "$WORK/inj.log"
    python3 "$TOOLS/inject.py" "$worker" 3 ff
    stopped_cleanly inj "$worker" "injected byte"
else
    log "pidfd_getfd unavailable: injection check skipped"
    kill -TERM "$PID_inj"; reap "$PID_inj"
fi

# 4a. Injected requests the table refuses after ready: a hello (setup only)
# and a second ready (once only). Each: killed, one line, exit 2.
for req in hello:0601000000 ready:04; do
    name=${req%%:*}
    start_squtun "$NS_A" "inj$name" "${ARGS[@]}"
    wait_for 5 up "inj$name"
    worker=$(logged_worker "inj$name")
    if python3 "$TOOLS/inject.py" "$worker" 3 "${req#*:}"; then
        stopped_cleanly "inj$name" "$worker" "injected $name after ready"
        check "injected $name after ready: one line naming it" \
            grep -q "worker $worker broke the channel protocol (a $name request after ready): killing it" "$WORK/inj$name.log"
        check "injected $name after ready: only that line" \
            test "$(grep -c 'broke the channel protocol' "$WORK/inj$name.log")" = 1
    else
        log "pidfd_getfd unavailable: injection check skipped"
        eval "kill -TERM \$PID_inj$name; reap \$PID_inj$name"
    fi
done

# 5. `squtun status` prints a reply full of escapes harmlessly.
python3 - "$WORK/fake.sock" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept()
c.sendall("interface: tun0\npeer: \x1b]0;owned\x07\x1b[2J\u202eevil\u2066\r\x9b\n".encode())
c.close()
PY
fake=$!
wait_for 3 test -S "$WORK/fake.sock"
"$SQUTUN" status tun0 --control "$WORK/fake.sock" > "$WORK/status.out" 2>&1
check "status: no control byte from the reply reaches the terminal" \
    sh -c "! LC_ALL=C grep -q \$(printf '[\\033\\007\\r]') $WORK/status.out && ! grep -qP '[\\x{9b}\\x{202e}\\x{2066}]' $WORK/status.out"
check "status: shown escaped, lines kept" \
    sh -c "head -n 1 $WORK/status.out | grep -qx 'interface: tun0' && grep -qF 'peer: \x1b]0;owned\x07\x1b[2J\u{202e}evil\u{2066}\x0d\u{9b}' $WORK/status.out"
wait "$fake" 2>/dev/null

# 6. A helper that stops reading (SIGSTOP) must not stall the data path:
# the worker's log lines are lost and counted instead. SIGUSR1 straight to
# the worker makes it log its status (some 30 lines) each time.
start_squtun "$NS_A" a "${ARGS[@]}" -a 1
start_squtun "$NS_B" b -l 3457 -p "$UNDER_A" -r 3456 -i tun0 -k "$WORK/key" -a 1
check "tunnel up" wait_for 5 ping_from "$NS_A" "$TUN_B"
worker=$(worker_of "$PID_a")
kill -STOP "$PID_a"
for _ in $(seq 60); do kill -USR1 "$worker"; sleep 0.02; done
check "helper stopped: ping through the tunnel still works" ping_from "$NS_A" "$TUN_B" 3
check "helper stopped: and the other way" ping_from "$NS_B" "$TUN_A" 3
dropped=$(counter "$NS_A" a log-lines-dropped)
check "helper stopped: the lost log lines are counted (log-lines-dropped $dropped)" test "${dropped:-0}" -gt 0
kill -CONT "$PID_a"
check "helper resumed: the loss is logged" wait_for 3 grep -qE "[0-9]+ log lines? lost" "$WORK/a.log"
check "helper resumed: still up" alive "$PID_a"
finish
