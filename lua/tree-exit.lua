-- tree-exit: a call admitted by tree-enter is done. "settle" charges its actual usage instead of
-- the estimate (a resource it does not name keeps the estimate); "refund" undoes the admission
-- entirely (the call never ran: another check refused it). Idempotent per call id. A call decide.lua
-- admitted together with its quota path is closed by settle.lua, which does this same work.
--
-- KEYS[1] sluice:{P}:tree:<id>  HASH (see tree-open)   KEYS[2] sluice:{P}:tree:<id>:calls  ZSET
-- ARGV[1] call id   ARGV[2] "settle" | "refund"   ARGV[3...] pairs: resource, actual (settle)
-- Reply: 1 settled or refunded; 0 unknown call (already done, or the tree expired)
-- lib/tree.lua does the work (settle.lua uses it too).
local actual = {}
for i = 3, #ARGV - 1, 2 do actual[ARGV[i]] = tonumber(ARGV[i + 1]) end
return lib.tree.exit(KEYS[1], KEYS[2], ARGV[1], ARGV[2] == 'refund', actual) and 1 or 0
