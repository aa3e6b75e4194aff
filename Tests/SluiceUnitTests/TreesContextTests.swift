import SluiceRedis
import Testing
import Tracing

@testable import Sluice

@Suite("Trees: the context, its header and task-local inheritance")
struct TreesContextTests {
    @Test("A context survives its header unchanged, including a deadline and batch priority")
    func headerRoundTrip() throws {
        let context = TreeContext(
            treeID: "req-7f3", nodeID: "n1", parentID: "n0", depth: 2, deadlineMilliseconds: 1_718_000_000_000,
            priority: .batch, partition: "openai")
        let header = context.headerValue
        #expect(header == "1;req-7f3;n1;n0;2;1718000000000;batch;openai")
        #expect(TreeContext(headerValue: header) == context)
    }

    @Test("A tree on a shard writes version 3, with or without limits to record, and comes back on its shard")
    func shardedHeader() throws {
        var context = TreeContext(treeID: "t", nodeID: "n", partition: "openai", shard: 3)
        #expect(context.headerValue == "3;t;n;;0;;interactive;openai;;3")
        #expect(TreeContext(headerValue: context.headerValue) == context)
        context.limitsToRecord = TreeLimits(budgets: ["tokens": 500], maxDepth: 2)
        let header = context.headerValue
        #expect(header.hasPrefix("3;") && header.hasSuffix(";3"))
        #expect(TreeContext(headerValue: header) == context)
        #expect(context.partitionKeys(namespace: "sluice").prefix == "sluice:{openai~s3}:")
        #expect(
            TreeContext(treeID: "t", partition: "openai").partitionKeys(namespace: "sluice").prefix
                == "sluice:{openai}:")
    }

    @Test("Separators, percent signs, spaces and non-ASCII in names are escaped and come back intact")
    func escapedNames() throws {
        let context = TreeContext(
            treeID: "a;b%c d", nodeID: "ü,é", depth: 0, priority: .interactive, partition: "tenant;{x}")
        let header = context.headerValue
        #expect(header.split(separator: ";", omittingEmptySubsequences: false).count == 8)
        #expect(!header.contains(" "))
        #expect(TreeContext(headerValue: header) == context)
    }

    @Test(
        "Malformed headers are refused rather than joining the wrong tree",
        arguments: [
            "", "2;t;n;;0;;interactive;p", "1;t;n;;0;;interactive", "1;;n;;0;;interactive;p",
            "1;t;n;;-1;;interactive;p",
            "1;t;n;;x;;interactive;p", "1;t;n;;0;soon;interactive;p", "1;t;n;;0;;urgent;p", "1;t;n;;0;;interactive;",
            "1;t%;n;;0;;interactive;p", "1;t;n;;0;;interactive;p;extra", "3;t;n;;0;;interactive;p;",
            "3;t;n;;0;;interactive;p;;x", "3;t;n;;0;;interactive;p;;-1", "3;t;n;;0;;interactive;p;;1024",
            "3;t;n;;0;;interactive;p;nonsense;1",
        ])
    func malformed(header: String) {
        #expect(TreeContext(headerValue: header) == nil)
    }

    @Test("A child is one level deeper, names its parent and keeps the tree, deadline and partition")
    func child() {
        let root = TreeContext(treeID: "t", nodeID: "root", deadlineMilliseconds: 42, partition: "p")
        let child = root.child(nodeID: "c")
        #expect(child.depth == 1 && child.parentID == "root" && child.nodeID == "c")
        #expect(child.treeID == "t" && child.deadlineMilliseconds == 42 && child.partition == "p")
    }

    @Test("Child tasks inherit the current context; outside it there is none")
    func taskLocal() async {
        let root = TreeContext(treeID: "t-local", partition: "p")
        #expect(TreeContext.current == nil)
        let seen = await root.run {
            await withTaskGroup(of: String?.self) { group in
                for _ in 0..<4 { group.addTask { TreeContext.current?.treeID } }
                var all: [String?] = []
                for await id in group { all.append(id) }
                return all
            }
        }
        #expect(seen == Array(repeating: "t-local", count: 4))
        #expect(TreeContext.current == nil)
    }

    @Test("The tree is a value of the ServiceContext: run keeps the application's other values beside it")
    func serviceContextValue() async {
        var application = ServiceContext.topLevel
        application[RequestIDKey.self] = "r-42"
        let root = TreeContext(treeID: "t-service", partition: "p")
        let seen = await ServiceContext.withValue(application) {
            await root.run { (ServiceContext.current?[RequestIDKey.self], ServiceContext.current?.sluiceTree?.treeID) }
        }
        #expect(seen.0 == "r-42" && seen.1 == "t-service")
        var extracted = ServiceContext.topLevel
        extracted.sluiceTree = root.child(nodeID: "n2")
        let current = ServiceContext.withValue(extracted) { TreeContext.current }
        #expect(current?.treeID == "t-service" && current?.depth == 1, "a context set by the application is current")
    }

    @Test("The propagator carries the tree in the Sluice-Tree header and ignores a malformed one")
    func propagator() {
        let propagator = TreeContextPropagator()
        var context = ServiceContext.topLevel
        context.sluiceTree = TreeContext(
            treeID: "t-wire", nodeID: "n1", depth: 1, deadlineMilliseconds: 1_718_000_000_000, priority: .batch,
            partition: "openai")
        var headers: [String: String] = [:]
        propagator.inject(context, into: &headers, using: DictionaryInjector())
        #expect(headers == [TreeContext.headerName: context.sluiceTree!.headerValue])

        var received = ServiceContext.topLevel
        propagator.extract(headers, into: &received, using: DictionaryExtractor())
        #expect(received.sluiceTree == context.sluiceTree)

        var untouched = ServiceContext.topLevel
        propagator.extract([TreeContext.headerName: "2;x"], into: &untouched, using: DictionaryExtractor())
        propagator.extract([:], into: &untouched, using: DictionaryExtractor())
        #expect(untouched.sluiceTree == nil)
        var nothing: [String: String] = [:]
        propagator.inject(.topLevel, into: &nothing, using: DictionaryInjector())
        #expect(nothing.isEmpty, "no tree, no header")
    }

    @Test("A started tree's header carries its limits (version 2) and comes back with them; a malformed one is ignored")
    func startedTreeHeader() throws {
        let trees = RequestTrees(redis: try RedisClient(url: "redis://127.0.0.1:1"))
        let limits = TreeLimits(
            budgets: ["tokens": 20_000, "usd_micros": 5], maxDepth: 3, maxChildren: 4, maxInFlight: 8, loopGuard: 2,
            deadline: .seconds(30), lifetime: .seconds(600))
        let started = try trees.start(id: "req;1", partition: "open ai", limits: limits, priority: .batch)
        #expect(started.limitsToRecord != nil)
        #expect(started.headerValue.hasPrefix("2;"))
        let back = try #require(TreeContext(headerValue: started.headerValue))
        #expect(back == started)
        #expect(back.limitsToRecord?.budgets == limits.budgets && back.limitsToRecord?.loopGuard == 2)
        #expect(back.limitsToRecord?.lifetime == .seconds(600) && back.limitsToRecord?.deadline == nil)
        // A child carries the limits too: whichever node calls first records the tree.
        #expect(started.child().limitsToRecord == started.limitsToRecord)
        // The deadline is counted from now on this machine's clock.
        let remaining = try #require(started.remaining)
        #expect(remaining > .seconds(25) && remaining <= .seconds(30))
        // An opened tree's context keeps writing version 1, which earlier versions read.
        let opened = TreeContext(treeID: "t", partition: "openai")
        #expect(opened.headerValue.hasPrefix("1;"))
        for bad in ["x", "0 1 0 0 0", "0 0 0 0 0 0", "0 1 0 0 0 0 tokens", "0 1 -1 0 0 0", "0 1 0 0 0 0 tokens -5"] {
            let header =
                started.headerValue.split(separator: ";").dropLast().joined(separator: ";") + ";"
                + bad
                .replacingOccurrences(of: " ", with: "%20")
            #expect(TreeContext(headerValue: header) == nil, "\(bad)")
        }
        #expect(throws: BackpressureError.self) {
            try trees.start(partition: "openai", limits: TreeLimits(maxDepth: 0))
        }
    }

    @Test("Invalid limits are refused before any I/O")
    func invalidLimits() {
        #expect(throws: BackpressureError.self) { try TreeLimits(budgets: ["tokens": -1]).validate() }
        #expect(throws: BackpressureError.self) { try TreeLimits(budgets: ["to kens": 1]).validate() }
        #expect(throws: BackpressureError.self) { try TreeLimits(maxDepth: 0).validate() }
        #expect(throws: BackpressureError.self) { try TreeLimits(deadline: .zero).validate() }
        #expect(throws: Never.self) { try TreeLimits(budgets: ["usd_micros": 5]).validate() }
    }

    @Test("A call's cost is checked by the same rules as a decision's, and the quota's error stays underneath")
    func callCostUsesTheQuotaRules() throws {
        let tooLong = String(repeating: "t", count: 33)  // the quota's identifiers stop at 32 characters
        let error = try #require(throws: BackpressureError.self) {
            try ProviderCall(scope: "s", estimate: [tooLong: 1]).validate()
        }
        #expect(error.code == .invalidArgument)
        #expect((error.underlying as? QuotaError)?.code == .invalidResource)
        #expect(throws: Never.self) { try ProviderCall(scope: "s", estimate: [:]).validate() }  // nothing reserved
        let merged = Cost(["tokens": 500, "requests": 1]).merging(["tokens": 120])
        #expect(merged == ["tokens": 120, "requests": 1], "a resource the usage does not name keeps its estimate")
    }

    @Test("The loop guard's fingerprint is stable per tool and arguments, and differs when they differ")
    func loopKey() {
        let key = RequestTrees.loopKey(tool: "search", arguments: "{\"q\":\"x\"}")
        #expect(key == RequestTrees.loopKey(tool: "search", arguments: "{\"q\":\"x\"}"))
        #expect(key != RequestTrees.loopKey(tool: "search", arguments: "{\"q\":\"y\"}"))
        #expect(key != RequestTrees.loopKey(tool: "fetch", arguments: "{\"q\":\"x\"}"))
        #expect(RequestTrees.loopKey(tool: "a|b\n", arguments: "").hasPrefix("a%7Cb%0A|"))
    }
}

private enum RequestIDKey: ServiceContextKey {
    typealias Value = String
}

private struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

private struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}
