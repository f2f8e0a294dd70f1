import COpenSSL

/// The libcrypto this process runs with (not the headers it was built
/// against): what `squtun --version` reports.
public enum OpenSSLVersion {
    /// e.g. "OpenSSL 3.0.17 1 Jul 2025".
    public static var text: String {
        guard let p = OpenSSL_version(Int32(OPENSSL_VERSION)) else { return "OpenSSL (version unknown)" }
        return String(cString: p)
    }
}
