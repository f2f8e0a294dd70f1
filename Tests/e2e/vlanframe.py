#!/usr/bin/env python3
"""802.1Q-tagged Ethernet frames through a TAP tunnel, without a VLAN
interface (the kernel may lack 8021q): `send DEV VID LENGTH` writes one
tagged frame of LENGTH bytes to DEV through a packet socket; `receive DEV
VID LENGTH` waits up to 5 s for it on DEV and prints what it got. The
receiving kernel may move the tag out of the frame into the packet's
metadata (PACKET_AUXDATA): either place counts, the length is the
frame's with its tag."""
import socket, struct, sys, select, time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
ETHERTYPE = 0x88B5  # IEEE local experimental: nothing else on the link uses it
MARK = b"squtun-vlan-frame"


def frame(vid, length):
    head = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x07" + struct.pack("!HHH", 0x8100, vid, ETHERTYPE)
    body = MARK + bytes(length - len(head) - len(MARK))
    return head + body


def receive(dev, vid, length):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((dev, 0))
    print("ready", flush=True)
    end = time.time() + 5
    while time.time() < end:
        if not select.select([s], [], [], 0.2)[0]:
            continue
        data, anc, _, _ = s.recvmsg(70000, socket.CMSG_SPACE(20))
        tci = None
        for level, kind, value in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _, _, _, _, vlan_tci = struct.unpack("IIIHHH", value[:18])
                if status & TP_STATUS_VLAN_VALID:
                    tci = vlan_tci
        if tci is None and len(data) >= 18 and struct.unpack("!H", data[12:14])[0] == 0x8100:
            tci = struct.unpack("!H", data[14:16])[0]
            got = len(data)
        else:
            got = len(data) + (4 if tci is not None else 0)
        if MARK in data and tci is not None:
            print("vid %d length %d" % (tci & 0xFFF, got))
            return 0 if (tci & 0xFFF) == vid and got == length else 1
    print("nothing")
    return 1


def main():
    what, dev, vid, length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if what == "send":
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((dev, 0))
        for _ in range(3):
            s.send(frame(vid, length))
            time.sleep(0.2)
        return 0
    return receive(dev, vid, length)


sys.exit(main())
