import Testing

/// Runs every test of a suite twice: against the single server (`REDIS_URL`), then — when `REDIS_CLUSTER_URL`
/// names a Redis Cluster — against the cluster, with ``TestRedis/url`` pointing at it (so fixtures, clients
/// and worker processes follow). Issues from the second run say that they happened on the cluster.
///
/// ```swift
/// @Suite("Quota decisions against a real Redis", .serialized, .onEveryServer)
/// ```
struct OnEveryServer: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func scopeProvider(for test: Test, testCase: Test.Case?) -> OnEveryServer? {
        testCase == nil ? nil : self
    }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        try await function()
        guard let cluster = TestRedis.clusterURL else { return }
        let onCluster: IssueHandlingTrait = .compactMapIssues { issue in
            var issue = issue
            issue.comments.append("on the Redis Cluster (\(cluster))")
            return issue
        }
        try await TestRedis.$current.withValue(cluster) {
            try await onCluster.provideScope(for: test, testCase: testCase) {
                do {
                    try await function()
                } catch {
                    Issue.record(error)
                }
            }
        }
    }
}

extension Trait where Self == OnEveryServer {
    /// Runs each test on the single server, then on the cluster when `REDIS_CLUSTER_URL` is set.
    static var onEveryServer: Self { OnEveryServer() }
}
