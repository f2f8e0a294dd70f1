#!/usr/bin/env bash
# Restarting either peer: traffic resumes without touching the other one.
# Once per cipher suite (ciphers.sh), and once more in TAP mode (--tap,
# TAP devices) with the default suite.
ALSO_TAP=1
. "$(dirname "$0")/ciphers.sh"
. "$(dirname "$0")/lib.sh"
T_NAME="$T_NAME/$CIPHER"
trap cleanup EXIT
echo "restart: either peer restarts, --cipher $CIPHER${MODE_ARGS[*]:+ ${MODE_ARGS[*]}}"
make_world
genkey "$WORK/key"
args_a=(-l 3456 -p "$UNDER_B" -r 3457 -i "$DEV" -k "$WORK/key" -a 2 --cipher "$CIPHER")
args_b=(-l 3457 -p "$UNDER_A" -r 3456 -i "$DEV" -k "$WORK/key" -a 2 --cipher "$CIPHER")
start_squtun "$NS_A" a "${args_a[@]}"
start_squtun "$NS_B" b "${args_b[@]}"
check "ping A → B" wait_for 5 ping_from "$NS_A" "$TUN_B"

for side in b a; do
    if [ $side = b ]; then ns=$NS_B; args=("${args_b[@]}"); else ns=$NS_A; args=("${args_a[@]}"); fi
    [ $side = b ] && session_before=$(counter "$NS_A" a peer-session)
    old=$(cat "$WORK/$side.pid")
    kill -TERM "$old"
    check "peer $side stopped" wait_for 3 dead "$old"
    sleep 1
    t0=$(date +%s%N)
    start_squtun "$ns" "$side" "${args[@]}"
    check "ping A → B after restarting $side" wait_for 10 ping_from "$NS_A" "$TUN_B"
    check "ping B → A after restarting $side" ping_from "$NS_B" "$TUN_A" 2
    check "the new $side runs in $E2E_MODE mode" test "$(counter "$ns" "$side" mode)" = "$E2E_MODE"
    t1=$(date +%s%N)
    log "restart of $side: traffic both ways $(( (t1 - t0) / 1000000 )) ms after the new start"
    if [ $side = b ]; then
        session_after=$(counter "$NS_A" a peer-session)
        check "A moved to B's new, newer session ($session_before → $session_after)" \
            test "$session_after" -gt "$session_before"
    fi
done
finish
