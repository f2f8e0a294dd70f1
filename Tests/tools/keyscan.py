#!/usr/bin/env python3
"""keyscan.py PID KEY: where the 32-byte key KEY sits in the memory of
process PID. KEY is a squtun key file (a PSK's 64 hex digits, a private
key's squtun-private-HEX or a public key's squtun-public-HEX) or hex:HEX,
32 bytes given on the command line (a derived secret, tunnelkey.py) (root reads /proc/PID/mem), and whether
those pages are kept out of core dumps (VmFlags "dd" in /proc/PID/smaps).

Prints one line per copy found: address, mapping, VmFlags. Exit status:
0 at least one copy and every copy in a "dd" mapping; 1 a copy outside one;
2 no copy found; 3 cannot read the process."""
import sys


def regions(pid):
    """(start, end, perms, name, vmflags) of every mapping."""
    out = []
    current = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if fields and "-" in fields[0] and len(fields) >= 5 and ":" not in fields[0]:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                current = [start, end, fields[1], fields[5] if len(fields) > 5 else "[anon]", []]
                out.append(current)
            elif line.startswith("VmFlags:") and current is not None:
                current[4] = fields[1:]
    return out


def load_key(arg):
    """The 32 bytes KEY names (see the docstring)."""
    text = arg[4:] if arg.startswith("hex:") else open(arg).read().strip()
    for prefix in ("squtun-private-", "squtun-public-"):
        if text.lower().startswith(prefix):
            text = text[len(prefix):]
    key = bytes.fromhex(text)
    assert len(key) == 32, "not a squtun key"
    return key


def main():
    pid, key = sys.argv[1], load_key(sys.argv[2])
    try:
        maps = regions(pid)
        mem = open(f"/proc/{pid}/mem", "rb", buffering=0)
    except OSError as e:
        print(f"keyscan: cannot read process {pid}: {e}")
        return 3
    found = []
    for start, end, perms, name, flags in maps:
        if not perms.startswith("r") or name in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
            continue
        try:
            mem.seek(start)
            data = mem.read(end - start)
        except OSError:
            continue
        at = data.find(key)
        while at >= 0:
            found.append((start + at, name, flags))
            at = data.find(key, at + 1)
    for address, name, flags in found:
        print(f"key at 0x{address:x} in {name}: VmFlags {' '.join(flags)}")
    if not found:
        print("keyscan: the key is not in memory")
        return 2
    return 0 if all("dd" in flags for _, _, flags in found) else 1


if __name__ == "__main__":
    sys.exit(main())
