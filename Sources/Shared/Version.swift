/// squtun's release. `--version` prints it; the Debian package's version
/// (debian/changelog) must be the same (SharedTests checks that).
public enum Version {
    public static let squtun = "0.3.0"
}
