// Fuzz target 3: the command line (docs/FUZZING.md).
//
// The input is split into arguments at NUL and newline bytes (a trailing
// separator ends the last argument; each argument is decoded as UTF-8,
// invalid sequences repaired) and given to `TunnelOptions.parse`, then
// `resolve()` (not for command lines with --config, which would make it
// read a file named by the input). Errors are expected; crashes are not.
// Checks:
// - a command line `parse` accepts also passes `check()` (validate ran);
// - a resolved configuration holds only values the checks allow: ports
//   1-65535, a valid interface name, -a 0-3600, -c 0-86400, absolute
//   paths, a user name, an address literal for -b, -r only with -p, a link
//   MTU whose tun MTU exists; exactly one peer;
// - every ConfigError is one line of printable ASCII; ArgumentParser's
//   full message (usage, help) for any parse error can be rendered.

import ArgumentParser
import FuzzOracle
import Shared
import SqutunConfig
#if canImport(Glibc)
import Glibc
#endif

// fail/note/require: FuzzOracle.

private func checkMessage(_ e: ConfigError) {
    let text = e.description
    require(!text.isEmpty && text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7f },
            "error message is not one printable line: \(text.debugDescription)")
}

private func arguments(_ d: UnsafeRawBufferPointer) -> [String] {
    var args: [String] = []
    var start = 0
    for i in 0..<d.count where d[i] == 0 || d[i] == 0x0a {
        args.append(String(decoding: UnsafeRawBufferPointer(rebasing: d[start..<i]), as: UTF8.self))
        start = i + 1
    }
    if start < d.count {
        args.append(String(decoding: UnsafeRawBufferPointer(rebasing: d[start...]), as: UTF8.self))
    }
    return args
}

private func checkValid(_ check: () throws(ConfigError) -> Void, _ what: String) {
    do throws(ConfigError) { try check() } catch { fail("\(what) failed the option checks: \(error)") }
}

private func checkConfig(_ c: TunnelConfig, _ o: TunnelOptions) {
    require(c.tap == o.tap, "TAP mode \(c.tap) from --tap \(o.tap)")
    if let s = c.server {
        require(!c.tap, "a server in TAP mode")
        // A server: no peer; its clients are the peers directory's files.
        require(c.peers.isEmpty, "a server with \(c.peers.count) peers")
        require(c.clientID == nil, "a server with a client identifier")
        require(s.peersDirectory.hasPrefix("/"), "relative peers directory \(s.peersDirectory)")
        require(s.tunPattern.utf8.count <= 15 && s.tunPattern.contains("%d"), "tun pattern \(s.tunPattern)")
        require((1...ServerSettings.maxClientsLimit).contains(s.maxClients), "max clients \(s.maxClients)")
        require((0...ServerSettings.maxIdleTimeoutSeconds).contains(s.idleTimeoutSeconds), "idle timeout \(s.idleTimeoutSeconds)")
        require(s.hook?.first.map { $0.hasPrefix("/") } ?? true, "relative hook \(s.hook ?? [])")
        return
    }
    require(c.clientID.map(ClientID.isValid) ?? true, "client identifier \(c.clientID ?? "")")
    require(!(c.tap && c.clientID != nil), "a server's client in TAP mode")
    require(c.peers.count == 1, "\(c.peers.count) peers from one command line")
    require(c.localPort >= 1 && c.remotePort >= 1, "port 0 in \(c)")
    require(o.remotePort == nil || c.peer != nil, "-r without -p accepted")
    if o.remotePort == nil { require(c.remotePort == UInt16(TunnelOptions.defaultPort), "default remote port") }
    checkValid({ () throws(ConfigError) in try OptionCheck.interfaceName(c.interface, option: "i") }, "interface")
    require(!c.interface.utf8.contains(UInt8(ascii: "/")), "interface with '/'")
    require(!c.keyPath.isEmpty, "empty key path")
    require((0...TunnelOptions.maxKeepaliveSeconds).contains(c.keepaliveSeconds), "keepalive \(c.keepaliveSeconds)")
    require((0...TunnelOptions.maxSkewSeconds).contains(c.skewSeconds), "skew \(c.skewSeconds)")
    if let peer = c.peer { checkValid({ () throws(ConfigError) in try OptionCheck.host(peer, option: "p") }, "peer") }
    if let bind = c.bindAddress {
        checkValid({ () throws(ConfigError) in try OptionCheck.ipAddress(bind, option: "b") }, "bind")
    }
    checkValid({ () throws(ConfigError) in try OptionCheck.userName(c.user, option: "u") }, "user")
    for path in [c.chrootDirectory, c.pidfile, c.controlSocket] {
        require(path.hasPrefix("/"), "relative path \(path.debugDescription)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOptions(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let args = arguments(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    note("arguments: \(args)")
    let options: TunnelOptions
    do {
        options = try TunnelOptions.parse(args)
    } catch {
        note("parse: \(TunnelOptions.message(for: error))")
        // A failed option check arrives as ValidationError carrying ConfigError's one line.
        if let v = error as? ValidationError {
            let text = String(describing: v)
            require(!text.isEmpty && text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7f },
                    "validation message is not one printable line: \(text.debugDescription)")
        }
        // Renders usage/help text too (--help); must not trap either.
        _ = TunnelOptions.fullMessage(for: error)
        return 0
    }
    do throws(ConfigError) { try options.check() } catch { fail("parse accepted \(args) but check() says \(error)") }
    // `--config FILE` makes resolve() read FILE: a path from the input would
    // make the outcome depend on this machine's files (and could name a
    // device). The config file's parser needs a target of its own.
    if args.contains(where: { $0 == "--config" || $0.hasPrefix("--config=") }) { return 0 }
    do throws(ConfigError) {
        let resolved = try options.resolve()
        note("resolve: \(resolved)")
        switch resolved {
        case let .mtu(linkMTU, underlay, suite, tap):
            require(options.mtu != nil, "-m result without -m")
            require(underlay == (options.ipv6 ? .ipv6 : .ipv4), "underlay")
            require(suite == (options.cipher.flatMap(SuiteID.init(name:)) ?? .defaultSuite), "suite")
            require(tap == options.tap, "TAP mode")
            guard let tun = MTU.tunMTU(linkMTU: linkMTU, underlay: underlay, suite: suite, tap: tap) else {
                fail("link MTU \(linkMTU) (\(underlay)) accepted but has no tun MTU")
            }
            let layout = suite.layout
            // A TAP device's frames: its MTU plus the Ethernet header.
            let frame = tun + (tap ? MTU.ethernetHeaderLength : 0)
            require(tun >= underlay.minimumMTU && frame <= layout.maxPayloadLength, "tun MTU \(tun)")
            require(layout.packetLength(payload: frame) + underlay.headerLength <= linkMTU,
                    "tun MTU \(tun) does not fit \(linkMTU)")
        case let .tunnel(config):
            require(options.mtu == nil, "tunnel with -m")
            checkConfig(config, options)
        }
    } catch {
        note("resolve: \(error)")
        guard case .missingOption = error else { fail("resolve threw \(error) after check() passed") }
        checkMessage(error)
    }
    return 0
}
