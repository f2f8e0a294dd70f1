// Fuzz target 4: helper<->worker messages (docs/FUZZING.md).
//
// The codec is the SqutunPrivsep library's (Sources/SqutunPrivsep/Monitor/ChannelCodec.swift).
//
// Input: byte 0 picks the descriptors that "arrived" with the message —
// bits 0-1 the count reported (0-3), bits 2-3 how many numbers the buffer
// holds (0-3) — and the rest is the received datagram. The descriptor
// numbers are fake (1000 and up, checked to be closed); nothing may be done
// with them. Checks, besides "never crash":
// - decode returns a message or a ChannelFault, whose text renders;
// - a decoded message has the type of byte 1, an fd count its type allows
//   (for `fds`: exactly as many as it lists, each role once), and `.fds`
//   hands back exactly the numbers given, in order;
// - a config is of the one version this build reads;
// - decode neither closes nor opens descriptors: stdin/out/err and a
//   sentinel pipe stay open, the fake numbers stay closed;
// - encode(decode(x)) decodes to the same message, and is byte for byte x
//   (one encoding per value), except that a config whose IPv6 peer is an
//   IPv4-mapped address re-encodes as the plain IPv4 peer (equal values);
// - a log text is 1-1024 bytes of UTF-8 without control characters.

import FuzzOracle
import Shared
import SqutunSystem
import SqutunPrivsep
#if canImport(Glibc)
import Glibc
#endif

// fail/note/require: FuzzOracle.

private func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) != -1 }

/// Three numbers from 1000 up that are not open descriptors.
private let fakeFDs: [Int32] = {
    var found: [Int32] = []
    var n: Int32 = 1000
    while found.count < 3 {
        if !isOpen(n) { found.append(n) }
        n += 1
    }
    return found
}()

/// Descriptors that must still be open after every decode.
private let sentinels: [Int32] = {
    var p: [Int32] = [-1, -1]
    require(pipe(&p) == 0, "pipe")
    return [0, 1, 2, p[0], p[1]]
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChannel(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    guard let control = input.first else { return 0 }
    let fdCount = Int(control & 3)
    let held = Int(control >> 2 & 3)
    let bytes = UnsafeRawBufferPointer(rebasing: input[1...])
    // An exact-size copy of the fd numbers, so ASan sees a read past `held`.
    let fds = UnsafeMutableBufferPointer<Int32>.allocate(capacity: held)
    defer { fds.deallocate() }
    for i in 0..<held { fds[i] = fakeFDs[i] }

    let message: ChannelMessage
    do throws(ChannelFault) {
        message = try ChannelCodec.decode(bytes, fdCount: fdCount, fds: UnsafeBufferPointer(fds))
    } catch {
        note("fault: \(error)")
        require(!error.description.isEmpty, "empty fault text")
        checkDescriptors()
        return 0
    }
    checkDescriptors()
    note("message: \(message.type) \(message)")

    require(message.type.rawValue == bytes[0], "type \(message.type) from byte \(bytes[0])")
    require(message.type.fdCount.contains(fdCount), "\(message.type) accepted with \(fdCount) fds")
    require(message.fileDescriptors.map(\.rawValue) == Array(fakeFDs.prefix(fdCount)),
            "fds \(message.fileDescriptors) are not the ones given")
    switch message {
    case .key(let key):
        require(key.count == ChannelCodec.keyBytes, "key of \(key.count) bytes")
        key.withUnsafeBytes { require($0.elementsEqual(bytes[1...]), "key bytes differ") }
    case .log(_, let text):
        require((1...ChannelCodec.maxLogBytes).contains(text.utf8.count), "log text of \(text.utf8.count) bytes")
        require(!text.unicodeScalars.contains(where: ChannelCodec.isControl), "log text with control characters")
    case .config(let c):
        // The version this build reads (little-endian u32 after the type byte).
        let v = ChannelCodec.configVersion
        require(bytes.count > 4 && bytes[1] == UInt8(v & 0xff) && bytes[2] == UInt8(v >> 8 & 0xff)
                && bytes[3] == UInt8(v >> 16 & 0xff) && bytes[4] == UInt8(v >> 24), "config of another version")
        require(Tun.isValidName(c.interface), "interface \(c.interface.debugDescription)")
        require(c.chrootPath.hasPrefix("/"), "relative chroot")
    case .fds(let list):
        require(list.count == fdCount && Set(list.map(\.role)).count == list.count, "fds \(list) for \(fdCount) descriptors")
    case let .clientKey(_, name, key):
        require(ClientID.isValid(name), "client identifier \(name.debugDescription)")
        require(key.count == ChannelCodec.keyBytes, "client key of \(key.count) bytes")
    case let .clientTun(_, interface, _, _):
        require(Tun.isValidName(interface), "client tun \(interface.debugDescription)")
    case .hello, .keyRequest, .fdsRequest, .ready, .clientForget, .clientRefused, .clientClosed, .clientTunRequest:
        break
    }

    // Round trip.
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ChannelCodec.maxMessageBytes, alignment: 8)
    defer { buffer.deallocate() }
    let length: Int
    do throws(ChannelFault) {
        length = try ChannelCodec.encode(message, into: buffer)
    } catch {
        fail("a decoded \(message.type) message does not encode: \(error)")
    }
    let encoded = UnsafeRawBufferPointer(rebasing: buffer[0..<length])
    let again: ChannelMessage
    do throws(ChannelFault) {
        again = try ChannelCodec.decode(encoded, fdCount: fdCount, fds: UnsafeBufferPointer(fds))
    } catch {
        fail("re-encoded \(message.type) message does not decode: \(error)")
    }
    require(again == message, "round trip changed the \(message.type) message")
    if !encoded.elementsEqual(bytes) {
        // A mapped IPv4 address is written as IPv4: its one other encoding.
        let address: SocketAddress? = switch message {
        case .config(let c): c.peer
        case .clientTunRequest(_, let a): a
        default: nil
        }
        guard let peer = address, peer.family == .ipv6, peer.isMappedIPv4 else {
            fail("\(message.type) message has a second encoding (\(bytes.count) vs \(length) bytes)")
        }
    }
    return 0
}

private func checkDescriptors() {
    for fd in sentinels { require(isOpen(fd), "fd \(fd) was closed") }
    for fd in fakeFDs { require(!isOpen(fd), "fake fd \(fd) is open now") }
}
