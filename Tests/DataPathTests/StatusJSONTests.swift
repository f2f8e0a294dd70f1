import XCTest
@testable import SqutunDataPath

final class StatusJSONTests: XCTestCase {
    func testPointToPointIsOneFlatObject() {
        let text = "interface: tun0\ncipher: aes-256-gcm\npeer: 198.51.100.2:3457\ntx-packets: 12\ndrop-replay: 0\noffload: tcp udp\n"
        XCTAssertEqual(StatusJSON.convert(text),
                       #"{"interface":"tun0","cipher":"aes-256-gcm","peer":"198.51.100.2:3457","tx-packets":12,"drop-replay":0,"offload":"tcp udp"}"# + "\n")
    }

    func testServerBlocksBecomeClients() {
        let text = "mode: server\nclients-authorized: 2\n\nclient: alice\ninterface: sqc0\nrx-packets: 5\n\nclient: bob\ninterface: none\nrx-packets: 0\n"
        XCTAssertEqual(StatusJSON.convert(text),
                       #"{"mode":"server","clients-authorized":2,"clients":[{"client":"alice","interface":"sqc0","rx-packets":5},{"client":"bob","interface":"none","rx-packets":0}]}"# + "\n")
    }

    func testStringsAreEscapedAndOnlyWholeNumbersAreNumbers() {
        XCTAssertEqual(StatusJSON.convert("a: say \"hi\" \\ there\nb: 007\nc: 1.5 s ago\nd: -3\ne: \u{1}\n"),
                       #"{"a":"say \"hi\" \\ there","b":"007","c":"1.5 s ago","d":"-3","e":"\u0001"}"# + "\n")
    }
}
