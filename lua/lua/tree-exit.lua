-- tree-exit: a call admitted by tree-enter is done. "settle" charges its actual usage instead of
-- the estimate (a resource it does not name keeps the estimate); "refund" undoes the admission
-- entirely (the call never ran: another check refused it). Idempotent per call id. A call decide.lua
-- admitted together with its quota path is closed by settle.lua, which does this same work.
--
-- KEYS[1] sluice:{P}:tree:<id>  HASH (see tree-open)   KEYS[2] sluice:{P}:tree:<id>:calls  ZSET
-- ARGV[1] call id   ARGV[2] "settle" | "refund"   ARGV[3...] pairs: resource, actual (settle)
-- Reply: 1 settled or refunded; 0 unknown call (already done, or the tree expired)
local tree, calls, field = KEYS[1], KEYS[2], 'r:' .. ARGV[1]
local record = redis.call('HGET', tree, field)
redis.call('ZREM', calls, ARGV[1])
if not record then return 0 end
local actual = {}
for i = 3, #ARGV - 1, 2 do actual[ARGV[i]] = tonumber(ARGV[i + 1]) end
local refund = ARGV[2] == 'refund'
local loop
for line in string.gmatch(record .. '\n', '([^\n]*)\n') do
    if not loop then
        loop = line
    else
        local res, estimate = string.match(line, '^(.*)=(%d+)$')
        local delta = refund and -tonumber(estimate) or (actual[res] or tonumber(estimate)) - tonumber(estimate)
        if delta ~= 0 then redis.call('HINCRBY', tree, 'u:' .. res, delta) end
    end
end
if refund and loop ~= '' then redis.call('HINCRBY', tree, 'l:' .. loop, -1) end
redis.call('HDEL', tree, field)
return 1
