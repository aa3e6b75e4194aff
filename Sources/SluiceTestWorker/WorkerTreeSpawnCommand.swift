import ArgumentParser
import Sluice
import SluiceRedis

/// `sluice worker tree-spawn`: from the node of --header, starts --children children at once, then
/// descends from the first admitted child one level at a time until refused; reports the counts,
/// the deepest depth reached and why it stopped.
struct WorkerTreeSpawnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tree-spawn", shouldDisplay: false)

    @OptionGroup var options: WorkerOptions
    @Option var header: String
    @Option var children: Int = 1
    @Flag var descend = false

    func run() async throws {
        guard let context = TreeContext(headerValue: header) else { throw ValidationError("bad --header") }
        let client = try options.makeClient()
        defer { client.close() }
        let trees = RequestTrees(redis: client)
        let spawned = await withTaskGroup(of: Result<TreeContext, BackpressureError>?.self) { group in
            for _ in 0..<children {
                group.addTask {
                    do { return .success(try await trees.spawn(from: context)) } catch let error as BackpressureError {
                        return .failure(error)
                    } catch { return nil }
                }
            }
            var all: [Result<TreeContext, BackpressureError>?] = []
            for await result in group { all.append(result) }
            return all
        }
        var outcomes = OutcomeCounts()
        var admitted: [TreeContext] = []
        for result in spawned {
            switch result {
            case .success(let child): admitted.append(child); outcomes.add("admitted")
            case .failure(let error): outcomes.add(error.code.description)
            case nil: outcomes.add("error")
            }
        }
        var deepest = admitted.first?.depth ?? context.depth
        var stop = ""
        var deepestHeader = ""
        if descend, var node = admitted.first {
            while true {
                do {
                    node = try await trees.spawn(from: node)
                    deepest = node.depth
                    deepestHeader = node.headerValue
                } catch let error as BackpressureError {
                    stop = error.code.description
                    break
                }
            }
        }
        try options.write(
            [
                "outcomes": outcomes.json, "deepest": deepest, "stopped_by": stop, "deepest_header": deepestHeader,
            ])
    }
}
