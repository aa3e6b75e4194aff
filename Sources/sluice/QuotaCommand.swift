import ArgumentParser

/// `sluice quota`: the limits operators keep in Redis (one config hash per partition).
struct QuotaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quota",
        abstract: "Set, show, list and remove the quotas kept in Redis.",
        discussion: """
            SCOPE is KIND=NAME or KIND=* (every name of that kind under the exact scopes before it):
              sluice quota set global=openai tenant=* tree=* --resource tokens --budget 200000
            The next decision anywhere in the fleet uses the new values.
            """,
        subcommands: [
            QuotaSetCommand.self, QuotaGetCommand.self, QuotaListCommand.self, QuotaRemoveCommand.self,
            QuotaWeightCommand.self,
        ]
    )
}
