# hostile.sh part: an end's own datagrams sent back to it.

# Reflect: B's own datagrams (recorded B → A) sent back to B as if from A;
# A's own (the A → B recording) back to A as if from B.
c_reflect_b() {
    atk "$NS_A" capture --iface "$VETH_A" --dport $PORT_A --src "$UNDER_B" --count $CAPN --timeout 30 --out "$WORK/cap.ba"
    atk "$NS_A" reflect --in "$WORK/cap.ba" $(to_b) "${AS_A[@]}"
}
c_reflect_a() { atk "$NS_B" reflect --in "$WORK/cap.ab" $(to_a) "${AS_B[@]}"; }

run_class "reflect: B's own datagrams to B" b c_reflect_b
run_class "reflect: A's own datagrams to A" a c_reflect_a
