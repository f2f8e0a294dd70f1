#!/usr/bin/env bash
# The hostile-network suite (docs/HOSTILE.md): while a real tunnel carries
# live traffic, an attacker on the underlay replays, tampers with, forges,
# reflects, skews and resends old-session datagrams (squtun-attack), and we
# count on the tun side — independently of squtun — what got through (must
# be nothing), and check that squtun's drop counters grew by exactly the
# number the protocol prescribes for each class. Then load and faults:
# a junk flood during iperf3, a flood of new-session forgeries during
# pings, RSS and fds around a long flood, kill -9 and
# restart of either end, a roaming client, a 10 s underlay blackhole, and
# the tun device deleted under a running daemon. Ends with a table.
#
# This file sets the run up (mode, sizes, the tunnel's options) and runs
# the parts in hostile/ in order, one per attack family or fault; they
# share this shell: the world, the judge (run_class) and the figures.
#
#   SQUTUN=path/to/squtun [ATTACK=path/to/squtun-attack] [CIPHER=NAME | CIPHERS="A B"] \
#       [MODE=tun|tap] bash Tests/e2e/hostile.sh [--quick]
#
# Once per cipher suite (ciphers.sh): without CIPHER it runs itself for
# each of CIPHERS (default all three), both ends and squtun-attack with
# --cipher of that suite, and adds their lines up.
#
# MODE=tap runs it in TAP mode (--tap): TAP devices (tap0) in the world,
# --tap on both ends and on every squtun-attack command (what it seals,
# forges, floods and captures carries the Ethernet flag; its predictions
# are a TAP receiver's), the tun witness reading whole Ethernet frames.
# Each run's line is then named NAME/SUITE/tap. Default MODE=tun.
#
# Not named t_*.sh: scripts/e2e does not pick it up; scripts/hostile runs
# the full mode, CI the --quick one. HOSTILE_REPORT=FILE also writes the
# table and figures (markdown) to FILE.
. "$(dirname "$0")/ciphers.sh"
. "$(dirname "$0")/lib.sh"
MODE=${MODE:-tun}
case $MODE in
    tun) DEV=tun0 MODE_ARGS=() ;;
    tap) DEV=tap0 MODE_ARGS=(--tap) ;;
    *) echo "hostile.sh: MODE must be tun or tap, not '$MODE'" >&2; exit 64 ;;
esac
T_NAME="$T_NAME/$CIPHER"
[ "$MODE" = tap ] && T_NAME="$T_NAME/tap"
trap cleanup EXIT

RUN=full
[ "${1:-}" = "--quick" ] && RUN=quick
need_attack
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
# nftables is optional (without it the blackhole is the link set down).
need_pkgs iproute2 iputils-ping iperf3 procps python3

# Sizes. Full: >= 100,000 adversarial datagrams, 60 s resource flood.
if [ "$RUN" = full ]; then
    CAPN=40 TAMPER_K=40 FORGE_ROUNDS=10 FORGE_N=10000 SKEW_N=1000 OLD_N=3000
    IPERF_S=10 RES_S=60 BLACKHOLE_S=10 MIN_ADVERSARIAL=100000 FORGE_FLOOD_S=20
else
    CAPN=8 TAMPER_K=2 FORGE_ROUNDS=1 FORGE_N=1000 SKEW_N=100 OLD_N=300
    IPERF_S=3 RES_S=5 BLACKHOLE_S=5 MIN_ADVERSARIAL=3000 FORGE_FLOOD_S=9
fi
RATE=${HOSTILE_RATE:-20000}             # adversarial datagrams per second (paced)
FLOOD_RATE=${HOSTILE_FLOOD_RATE:-110000} # junk flood target, datagrams per second
SKEW_S=30                               # -c on both ends
KA=2                                    # -a on both ends
BURST=3000                              # pings that move the replay window (> 1984 + counter span)
PATTERN=4c495645                        # "LIVE": the live pings' data (ping -p), see tunwatch
OTHER=198.51.100.9                      # an address nobody has: "another source"
PORT_A=3456 PORT_B=3457
T0=$SECONDS

echo "hostile: adversarial datagrams, load and faults ($RUN, --cipher $CIPHER, $MODE mode)"
PART=$(dirname "$0")/hostile
. "$PART/world.sh"              # the tunnel, tun witnesses, live pings both ways
. "$PART/judge.sh"              # run_class: attack, snapshots, predicted drops

echo "  -- adversarial classes (attack pacing $RATE/s; live pings both ways meanwhile)"
. "$PART/replay.sh"
. "$PART/forge.sh"              # tamper and forge
. "$PART/wrong_mode.sh"         # genuine datagrams of the other mode (TUN at TAP, TAP at TUN)
. "$PART/reflect.sh"
. "$PART/skew.sh"
. "$PART/restart.sh"            # replay after a restart, the old session
. "$PART/adversarial_totals.sh"

. "$PART/junk_flood.sh"         # load: iperf3 during a junk flood
. "$PART/forgery_flood.sh"      # load: pings during a new-session forgery flood
. "$PART/resources.sh"          # load: RSS and fds around a long flood
. "$PART/peer_faults.sh"        # kill -9 of either end, address change
. "$PART/blackhole.sh"
. "$PART/run_totals.sh"         # witness and live-ping totals of the whole run
. "$PART/tun_fault.sh"          # the tun device deleted (A exits)
. "$PART/report.sh"
finish
