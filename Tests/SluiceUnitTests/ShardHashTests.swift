import Testing

@testable import Sluice

@Suite("Sharded ceiling: tenant-to-shard map and shard keys")
struct ShardHashTests {
    @Test("Every tenant maps to a shard in range, the same one every time")
    func inRangeAndStable() {
        for shards in [1, 2, 4, 8, 1024] {
            for index in 0..<500 {
                let shard = ShardHash.shard(of: "tenant-\(index)", shards: shards)
                #expect((0..<shards).contains(shard))
                #expect(shard == ShardHash.shard(of: "tenant-\(index)", shards: shards))
            }
        }
    }

    @Test("Growing from N to N+1 shards moves tenants only to the new shard, and about 1/(N+1) of them")
    func consistentOnGrowth() {
        for shards in 1..<16 {
            var moved = 0
            for index in 0..<4000 {
                let before = ShardHash.shard(of: "t\(index)", shards: shards)
                let after = ShardHash.shard(of: "t\(index)", shards: shards + 1)
                if before != after {
                    #expect(after == shards)
                    moved += 1
                }
            }
            let expected = 4000 / (shards + 1)
            #expect(abs(moved - expected) < expected / 3 + 40, "\(moved) moved, about \(expected) expected")
        }
    }

    @Test("A shard's tag is the escaped root with ~s<k>, which no escaped name can equal")
    func shardTags() {
        let layout = ShardLayout(partition: "open ai", count: 4, epoch: "1")
        #expect(layout.tag(3) == "open%20ai~s3")
        #expect(layout.keys(3, namespace: "sluice").quotas == "sluice:{open%20ai~s3}:quotas")
        #expect(KeyName.escape("open ai~s3") != layout.tag(3))
        #expect(QuotaStore.isShardConfig("sluice:{open%20ai~s3}:quotas"))
        #expect(!QuotaStore.isShardConfig("sluice:{open%7Es3}:quotas"))
        #expect(!QuotaStore.isShardConfig("sluice:{openai}:quotas"))
    }
}
