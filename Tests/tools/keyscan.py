#!/usr/bin/env python3
"""keyscan.py PID KEYFILE: where the 32-byte key of KEYFILE (64 hex digits)
sits in the memory of process PID (root reads /proc/PID/mem), and whether
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


def main():
    pid, keyfile = sys.argv[1], sys.argv[2]
    key = bytes.fromhex(open(keyfile).read().strip())
    assert len(key) == 32, "not a squtun key file"
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
