# hostile.sh part: tampered and forged datagrams (random bytes, valid
# headers with a random MAC, sealed with a wrong key).

c_tamper() {
    atk "$NS_A" tamper --in "$WORK/cap.ab" --datagrams $TAMPER_K --append 64 $(to_b) "${AS_A[@]}"
}
c_forge_random() {
    atk "$NS_A" forge --kind random --rounds $FORGE_ROUNDS --max-length 2000 $(to_b) --from "$OTHER:40000"
}
c_forge_header() {
    atk "$NS_A" forge --kind header --count $((FORGE_N / 2)) $(to_b) "${AS_A[@]}"
    atk "$NS_A" forge --kind header --count $((FORGE_N / 2)) $(to_b) --from "$OTHER:40001"
}
c_forge_wrongkey() {
    atk "$NS_A" forge --kind wrongkey --count $((FORGE_N / 2)) --inner-dst "$TUN_B" $(to_b) "${AS_A[@]}"
    atk "$NS_A" forge --kind wrongkey --count $((FORGE_N / 2)) --inner-dst "$TUN_B" $(to_b) --from "$OTHER:40002"
}

run_class "tamper: bit flips, truncations, appends" b c_tamper
run_class "forge: random, every length 0-2000" b c_forge_random
run_class "forge: valid header, random MAC" b c_forge_header
check "forged datagrams did not move B's peer" test "$(field "$WORK/st.after" peer)" = "$UNDER_A:$PORT_A"
run_class "forge: sealed with a wrong key" b c_forge_wrongkey
