/// The runner's version: the one place it is defined. `runner --version` prints it
/// and every run report records it (`runner_version`).
public enum RunnerVersion {
    public static let current = "0.11.0"
}
