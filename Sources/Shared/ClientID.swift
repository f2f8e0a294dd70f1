// TEMPORARY (lead's branch): replaced by the srvcfg helper's ClientID.swift at merge.
public enum ClientID {
    public static func isValid(_ name: String) -> Bool {
        let b = Array(name.utf8)
        guard (1...32).contains(b.count) else { return false }
        func ok(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2e || c == 0x5f || c == 0x2d }
        return b.allSatisfy(ok) && b[0] != 0x2e && b[0] != 0x5f && b[0] != 0x2d
    }
}
