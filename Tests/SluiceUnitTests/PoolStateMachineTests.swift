import SluiceStorm
import Testing

@testable import SluiceRedis

/// The pool's decisions without I/O: connections are strings, time is an integer.
@Suite("Pool state machine")
struct PoolStateMachineTests {
    typealias Machine = PoolStateMachine<String, Int>

    private struct Boom: Error {}

    /// Leases `request`, expecting it to wait, and returns the opens that caused.
    private func wait(_ machine: inout Machine, _ request: Int, deadline: Int? = nil, now: Int = 0) -> [Int] {
        let (result, actions) = machine.lease(request, deadline: deadline, now: now)
        guard case .waiting = result else {
            Issue.record("request \(request) did not wait: \(result)")
            return []
        }
        return actions.open
    }

    private func handOvers(_ actions: Machine.Actions) -> [Int] { actions.handOver.map(\.request) }
    private func failures(_ actions: Machine.Actions) -> [Int] { actions.fail.map(\.request) }

    @Test("A first lease opens a connection, which goes to the waiter; given back, it is reused without opening")
    func leaseOpensThenReuses() {
        var machine = Machine(maximumConnections: 2)
        #expect(wait(&machine, 1) == [0])
        let opened = machine.opened(0, "c0")
        #expect(handOvers(opened) == [1] && opened.handOver.first?.value == "c0")
        #expect(machine.release(0, "c0").isEmpty)
        #expect(machine.idle.count == 1)

        let (again, actions) = machine.lease(2, deadline: nil, now: 0)
        guard case .leased(0, "c0") = again else {
            Issue.record("the idle connection was not reused: \(again)")
            return
        }
        #expect(actions.isEmpty)
        #expect(machine.slotsInUse == 1)
    }

    @Test("Beyond the maximum, callers wait first come first served for released connections")
    func waitersAreServedInOrder() {
        var machine = Machine(maximumConnections: 2)
        #expect(wait(&machine, 1) == [0])
        #expect(wait(&machine, 2) == [1])
        #expect(wait(&machine, 3) == [], "no third connection above the maximum")
        #expect(wait(&machine, 4) == [])
        #expect(handOvers(machine.opened(1, "c1")) == [1], "the first waiter gets the first connection to open")
        #expect(handOvers(machine.opened(0, "c0")) == [2])
        #expect(handOvers(machine.release(0, "c0")) == [3])
        #expect(handOvers(machine.release(1, "c1")) == [4])
        #expect(machine.waiters.isEmpty && machine.slotsInUse == 2)
    }

    @Test("A discard frees the slot and opens a connection for a waiter: the wake-up is not lost")
    func discardWakesAWaiter() {
        var machine = Machine(maximumConnections: 1)
        _ = wait(&machine, 1)
        _ = machine.opened(0, "c0")
        #expect(wait(&machine, 2) == [], "the only slot is leased")
        let discarded = machine.discard(0, "c0")
        #expect(discarded.close == ["c0"])
        #expect(discarded.open == [1], "the freed slot opens a connection for the waiter")
        #expect(handOvers(machine.opened(1, "c1")) == [2])
        #expect(machine.slotsInUse == 1)
    }

    @Test("A discard without waiters only frees the slot; the next lease opens a new connection")
    func discardWithoutWaiters() {
        var machine = Machine(maximumConnections: 1)
        _ = wait(&machine, 1)
        _ = machine.opened(0, "c0")
        let discarded = machine.discard(0, "c0")
        #expect(discarded.close == ["c0"] && discarded.open.isEmpty)
        #expect(machine.slotsInUse == 0)
        #expect(wait(&machine, 2) == [1])
    }

    @Test("A failed open fails the first waiter with its error, and the others get another try")
    func failedOpen() {
        var machine = Machine(maximumConnections: 1)
        #expect(wait(&machine, 1) == [0])
        #expect(wait(&machine, 2) == [])
        let failed = machine.openFailed(0, Boom())
        #expect(failures(failed) == [1])
        if case .openFailed(let error) = failed.fail.first?.failure {
            #expect(error is Boom)
        } else {
            Issue.record("the waiter did not get the open's error: \(failed.fail)")
        }
        #expect(failed.open == [1], "the remaining waiter gets a new open")
        #expect(handOvers(machine.opened(1, "c1")) == [2])
    }

    @Test("A failed open with nobody waiting frees its slot")
    func failedOpenWithoutWaiters() {
        var machine = Machine(maximumConnections: 1)
        _ = wait(&machine, 1)
        #expect(failures(machine.cancelled(1)) == [1])
        #expect(machine.openFailed(0, Boom()).isEmpty)
        #expect(machine.slotsInUse == 0)
    }

    @Test("A waiter whose deadline passes fails once; a late timer for a served waiter does nothing")
    func timeout() {
        var machine = Machine(maximumConnections: 1)
        _ = wait(&machine, 1)
        _ = machine.opened(0, "c0")
        _ = wait(&machine, 2, deadline: 10)
        _ = wait(&machine, 3, deadline: 20)
        let timedOut = machine.timedOut(2)
        #expect(failures(timedOut) == [2])
        if case .timeout = timedOut.fail.first?.failure {} else { Issue.record("not a timeout: \(timedOut.fail)") }
        #expect(machine.timedOut(2).isEmpty, "a second timer does nothing")
        #expect(handOvers(machine.release(0, "c0")) == [3], "the timed-out waiter is skipped")
        #expect(machine.timedOut(3).isEmpty, "served before its deadline")
    }

    @Test("A deadline already passed refuses at once and opens nothing")
    func deadlinePassed() {
        var machine = Machine(maximumConnections: 1)
        let (result, actions) = machine.lease(1, deadline: 5, now: 5)
        guard case .failed(.timeout) = result else {
            Issue.record("not refused: \(result)")
            return
        }
        #expect(actions.isEmpty && machine.slotsInUse == 0)
    }

    @Test("A cancelled waiter leaves the queue; the connection opened for it becomes idle, not leaked")
    func cancellation() {
        var machine = Machine(maximumConnections: 2)
        _ = wait(&machine, 1)
        let cancelled = machine.cancelled(1)
        #expect(failures(cancelled) == [1])
        if case .cancelled = cancelled.fail.first?.failure {} else { Issue.record("not cancelled: \(cancelled.fail)") }
        #expect(machine.cancelled(1).isEmpty && machine.cancelled(99).isEmpty)
        #expect(machine.opened(0, "c0").isEmpty)
        #expect(machine.idle.map(\.value) == ["c0"] && machine.leased.isEmpty)
    }

    @Test("Close fails the waiters, closes idle connections now and the others when they come back")
    func close() {
        var machine = Machine(maximumConnections: 2)
        #expect(wait(&machine, 1) == [0])
        #expect(handOvers(machine.opened(0, "c0")) == [1])
        #expect(wait(&machine, 2) == [1])
        #expect(wait(&machine, 3) == [], "both slots are taken")
        let closed = machine.close()
        #expect(failures(closed) == [2, 3])
        #expect(closed.fail.allSatisfy { if case .closed = $0.failure { true } else { false } })
        #expect(machine.close().isEmpty, "closing twice is harmless")
        #expect(machine.release(0, "c0").close == ["c0"], "a leased connection closes when it comes back")
        #expect(machine.opened(1, "c1").close == ["c1"], "an opening connection closes when it arrives")
        #expect(machine.slotsInUse == 0)
        let (late, _) = machine.lease(4, deadline: nil, now: 0)
        guard case .failed(.closed) = late else {
            Issue.record("a lease after close did not fail: \(late)")
            return
        }

        var idle = Machine(maximumConnections: 2)
        _ = wait(&idle, 1)
        _ = idle.opened(0, "c0")
        _ = idle.release(0, "c0")
        #expect(idle.close().close == ["c0"], "an idle connection closes at once")
    }

    @Test("Giving a connection back twice, or discarding it after release, frees its slot only once")
    func doubleRelease() {
        var machine = Machine(maximumConnections: 1)
        _ = wait(&machine, 1)
        _ = machine.opened(0, "c0")
        _ = machine.release(0, "c0")
        #expect(machine.release(0, "c0").isEmpty)
        #expect(machine.discard(0, "c0").isEmpty)
        #expect(machine.idle.count == 1 && machine.slotsInUse == 1)
    }

    /// Random interleavings of every event, checking the invariants after each step and that every
    /// request ends exactly once with a connection or a failure.
    @Test("Random interleavings keep the slots, the queue and every request's single outcome", arguments: 0..<20)
    func randomInterleavings(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let maximum = Int(random.next() % 4) + 1
        var machine = Machine(maximumConnections: maximum)
        var now = 0
        var nextRequest = 0
        var outcomes: [Int: Int] = [:]  // request -> how many outcomes
        var holding: [(request: Int, connection: Int)] = []
        var opening: [Int] = []
        var openConnections: Set<Int> = []  // opened and not yet closed

        func apply(_ actions: Machine.Actions) {
            for (request, connection, value) in actions.handOver {
                outcomes[request, default: 0] += 1
                holding.append((request, connection))
                #expect(value == "c\(connection)")
            }
            for (request, _) in actions.fail { outcomes[request, default: 0] += 1 }
            for value in actions.close { openConnections.remove(Int(value.dropFirst())!) }
            opening += actions.open
        }

        for _ in 0..<400 {
            switch random.next() % 9 {
            case 0, 1:
                let request = nextRequest
                nextRequest += 1
                let deadline = random.next() % 2 == 0 ? nil : now + Int(random.next() % 5)
                let (result, actions) = machine.lease(request, deadline: deadline, now: now)
                switch result {
                case .leased(let id, _):
                    outcomes[request, default: 0] += 1
                    holding.append((request, id))
                case .failed: outcomes[request, default: 0] += 1
                case .waiting: break
                }
                apply(actions)
            case 2 where !holding.isEmpty:
                let held = holding.remove(at: Int(random.next() % UInt64(holding.count)))
                apply(machine.release(held.connection, "c\(held.connection)"))
            case 3 where !holding.isEmpty:
                let held = holding.remove(at: Int(random.next() % UInt64(holding.count)))
                apply(machine.discard(held.connection, "c\(held.connection)"))
            case 4 where !opening.isEmpty:
                let id = opening.remove(at: Int(random.next() % UInt64(opening.count)))
                openConnections.insert(id)
                apply(machine.opened(id, "c\(id)"))
            case 5 where !opening.isEmpty:
                let id = opening.remove(at: Int(random.next() % UInt64(opening.count)))
                apply(machine.openFailed(id, Boom()))
            case 6 where !machine.waiters.isEmpty:
                let waiter = machine.waiters[Int(random.next() % UInt64(machine.waiters.count))]
                if let deadline = waiter.deadline { now = max(now, deadline) }
                apply(machine.timedOut(waiter.request))
            case 7 where !machine.waiters.isEmpty:
                let waiter = machine.waiters[Int(random.next() % UInt64(machine.waiters.count))]
                apply(machine.cancelled(waiter.request))
            case 8:
                now += 1
            default:
                break
            }
            // The invariants.
            #expect(machine.slotsInUse <= maximum)
            #expect(machine.waiters.isEmpty || machine.idle.isEmpty, "a caller waits while a connection is idle")
            #expect(
                machine.waiters.isEmpty || machine.opening.count >= machine.waiters.count
                    || machine.slotsInUse == maximum,
                "a waiter is stranded: nothing opens for it and a slot is free")
            #expect(machine.leased.count == holding.count)
            #expect(Set(machine.opening) == Set(opening))
        }
        // Drain: every opening connection arrives, every holder gives back; nobody may be left waiting.
        while !opening.isEmpty || !holding.isEmpty {
            if let id = opening.popLast() {
                openConnections.insert(id)
                apply(machine.opened(id, "c\(id)"))
            } else if let held = holding.popLast() {
                apply(machine.release(held.connection, "c\(held.connection)"))
            }
        }
        #expect(machine.waiters.isEmpty, "waiters left behind after every connection came back")
        for request in 0..<nextRequest {
            #expect(outcomes[request] == 1, "request \(request) ended \(outcomes[request] ?? 0) times")
        }
        apply(machine.close())
        #expect(openConnections.isEmpty, "connections neither idle nor closed: \(openConnections)")
    }
}
