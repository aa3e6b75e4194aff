import Foundation
import Sluice
import SluiceRedis
import Testing

/// A request tree's limits, enforced for workers in separate processes that joined the tree
/// through its header.
@Suite("Trees: budgets, depth, fan-out, loop guard and deadline across processes", .serialized, .onEveryServer)
struct TreesProcessTests {
    @Test("A tree's token budget is never exceeded across four processes, and settles account exactly")
    func budgetAcrossFourProcesses() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let trees = RequestTrees(redis: fixture.client)
        let budget = 20_000
        let root = try await trees.open(
            partition: fixture.partition, limits: TreeLimits(budgets: ["tokens": Int64(budget)]))
        let arguments = [
            "tree-calls", "--partition", fixture.partition, "--header", root.headerValue, "--calls", "60",
            "--concurrency", "6", "--estimate", "400", "--actual-min", "100", "--actual-max", "400",
        ]
        let results = try await WorkerProcess.runAll(Array(repeating: arguments, count: 4))
        let outcomes = totalOutcomes(results)
        let spent = results.reduce(0) { $0 + $1.int("spent") }
        let usage = try await trees.usage(root)

        #expect(outcomes.values.reduce(0, +) == 240, "every call accounted for: \(outcomes) \(results)")
        #expect(outcomes["admitted", default: 0] > 0 && outcomes["tree-budget", default: 0] > 0, "\(outcomes)")
        #expect(usage.used["tokens"] == Int64(spent), "Redis charged exactly what the workers report they used")
        #expect(spent <= budget, "spent \(spent) of a budget of \(budget)")
        #expect(spent > budget / 2, "the budget was used, not refused early: \(spent)")
        #expect(usage.inFlight == 0)
        let exhausted = try await fixture.events("budget-exhausted")
        #expect(exhausted.count == 1, "one event for a human, not one per refusal")
        #expect(exhausted.first?["tree"] == root.treeID)
    }

    @Test(
        "With a quota path, four processes decide tree and quota at once: the budget holds, accounts exactly, and settles close both"
    )
    func budgetWithQuotaAcrossFourProcesses() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let trees = RequestTrees(redis: fixture.client)
        let budget = 4_000
        let root = try await trees.open(
            partition: fixture.partition, limits: TreeLimits(budgets: ["tokens": Int64(budget)]))
        let arguments = [
            "tree-calls", "--partition", fixture.partition, "--header", root.headerValue, "--calls", "200",
            "--concurrency", "6", "--estimate", "400", "--actual-min", "100", "--actual-max", "400",
            "--quota", "requests: bucket rate=200/s burst=2 debt=0",
        ]
        let results = try await WorkerProcess.runAll(Array(repeating: arguments, count: 4))
        let outcomes = totalOutcomes(results)
        let spent = results.reduce(0) { $0 + $1.int("spent") }
        let usage = try await trees.usage(root)

        #expect(outcomes.values.reduce(0, +) == 800, "every call accounted for: \(outcomes) \(results)")
        #expect(outcomes["admitted", default: 0] > 0 && outcomes["tree-budget", default: 0] > 0, "\(outcomes)")
        #expect(outcomes["quota-denied", default: 0] > 0, "the quota's bucket refused some calls: \(outcomes)")
        #expect(usage.used["tokens"] == Int64(spent), "Redis charged exactly what the workers report they used")
        #expect(
            usage.used["requests"] == Int64(outcomes["admitted", default: 0]),
            "one request per admitted call, none for refused ones")
        #expect(spent <= budget, "spent \(spent) of a budget of \(budget)")
        #expect(usage.inFlight == 0, "every settle closed the tree side")
        let reservations = try await fixture.keys().filter { $0.contains(":r:") }
        #expect(reservations.count == outcomes["admitted"], "one reservation record per admitted call")
        #expect(try await fixture.events("budget-exhausted").count == 1)
    }

    @Test("Depth and fan-out limits hold for children started from two processes at once")
    func depthAndFanOut() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let trees = RequestTrees(redis: fixture.client)
        let root = try await trees.open(
            partition: fixture.partition, limits: TreeLimits(maxDepth: 3, maxChildren: 4))
        let spawn = [
            "tree-spawn", "--partition", fixture.partition, "--header", root.headerValue, "--children", "5",
            "--descend",
        ]
        let results = try await WorkerProcess.runAll([spawn, spawn])
        let outcomes = totalOutcomes(results)
        #expect(outcomes["admitted"] == 4, "the root may have 4 children: \(outcomes)")
        #expect(outcomes["tree-children"] == 6, "\(outcomes)")

        // A worker that got children goes on down from one of them until the max depth stops it.
        let descended = results.first { $0["stopped_by"] as? String == "tree-depth" }
        let deepest = try #require(descended, "no worker was stopped by the max depth: \(results)")
        for result in results where result.outcomes()["admitted", default: 0] > 0 {
            #expect(result["stopped_by"] as? String == "tree-depth" && result.int("deepest") == 3, "\(result)")
        }
        #expect(deepest.int("deepest") == 3)
        let header = try #require(deepest["deepest_header"] as? String)
        let bottom = try #require(TreeContext(headerValue: header))
        #expect(bottom.depth == 3 && bottom.treeID == root.treeID)
        // A call made below the max depth (a node that skipped spawn) is refused as well.
        let error = await #expect(throws: BackpressureError.self) { try await trees.enter(bottom.child()) }
        #expect(error?.code == .treeDepth)
        #expect(try await trees.usage(root).children[root.nodeID] == 4)
    }

    @Test("The loop guard trips on the N+1th identical call, whichever process makes it")
    func loopGuard() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let trees = RequestTrees(redis: fixture.client)
        let root = try await trees.open(partition: fixture.partition, limits: TreeLimits(loopGuard: 5))
        let calls = [
            "tree-calls", "--partition", fixture.partition, "--header", root.headerValue, "--calls", "3",
            "--tool", "search", "--arguments", "{\"q\":\"weather in Paris\"}",
        ]
        let results = try await WorkerProcess.runAll([calls, calls])
        let outcomes = totalOutcomes(results)
        #expect(outcomes["admitted"] == 5 && outcomes["loop-guard"] == 1, "\(outcomes)")

        let again = await #expect(throws: BackpressureError.self) {
            try await trees.enter(root, tool: "search", arguments: "{\"q\":\"weather in Paris\"}")
        }
        #expect(again?.code == .loopGuard)
        let other = try await trees.enter(root, tool: "search", arguments: "{\"q\":\"weather in Rome\"}")
        try await trees.settle(other, usage: [:])
        #expect(try await fixture.events("loop-guard").count == 1)
    }

    @Test("Calls after the tree's deadline are refused with a clear reason; so are new children")
    func deadline() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let trees = RequestTrees(redis: fixture.client)
        // 2 s: the first call comes well before it even on a loaded machine.
        let root = try await trees.open(partition: fixture.partition, limits: TreeLimits(deadline: .seconds(2)))
        #expect(root.deadlineMilliseconds != nil)
        let ticket = try await trees.enter(root)
        try await trees.settle(ticket, usage: [:])
        try await Task.sleep(for: .milliseconds(2_200))
        let late = await #expect(throws: BackpressureError.self) { try await trees.enter(root) }
        #expect(late?.code == .deadlineExceeded)
        #expect(late?.message.contains("deadline") == true)
        let child = await #expect(throws: BackpressureError.self) { try await trees.spawn(from: root) }
        #expect(child?.code == .deadlineExceeded)
    }

    @Test("Max in flight holds, and a settled or refunded call frees its place")
    func inFlight() async throws {
        let fixture = try BackpressureFixture()
        defer { Task { await fixture.cleanUp() } }
        let trees = RequestTrees(redis: fixture.client)
        let root = try await trees.open(
            partition: fixture.partition, limits: TreeLimits(budgets: ["tokens": 1_000], maxInFlight: 2))
        let one = try await trees.enter(root, estimate: ["tokens": 300])
        let two = try await trees.enter(root, estimate: ["tokens": 300])
        let three = await #expect(throws: BackpressureError.self) {
            try await trees.enter(root, estimate: ["tokens": 1])
        }
        #expect(three?.code == .treeInFlight)
        #expect(try await trees.refund(one))
        #expect(try await trees.refund(one) == false, "refunds are idempotent")
        #expect(try await trees.settle(two, usage: ["tokens": 120]))
        #expect(try await trees.settle(two, usage: ["tokens": 999]) == false, "settles are idempotent")
        let usage = try await trees.usage(root)
        #expect(usage.used["tokens"] == 120 && usage.inFlight == 0)
    }
}
