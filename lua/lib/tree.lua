-- tree: what a request tree's calls share (tree-open.lua keeps the tree's HASH); the library keeps
-- it as lib.tree. A call admitted into a tree (by tree-enter.lua, or by decide.lua with its quota
-- path) is recorded in the hash as "r:<call id>": its loop key ("" none), then a line
-- "<resource>=<estimate>" per resource, each estimate reserved on that resource's budget ("u:<res>");
-- the call counts as in flight in the tree's calls ZSET until it exits or its ttl passes.
-- Only what runs when the library loads may be at the top level: no globals (string) there.

local tree = {}

-- A call is done (tree-exit.lua, or settle.lua for a call decide admitted): it stops counting as in
-- flight, and its budgets are charged actual[res] instead of the estimate (a resource not named
-- keeps it); refund gives back the estimates and the loop guard's count (the call never ran).
-- Returns false when the call is unknown (done already, or the tree expired).
function tree.exit(key, calls, call, refund, actual)
    redis.call('ZREM', calls, call)
    local record = redis.call('HGET', key, 'r:' .. call)
    if not record then return false end
    local loop
    for line in string.gmatch(record .. '\n', '([^\n]*)\n') do
        if not loop then
            loop = line
        else
            local res, estimate = string.match(line, '^(.*)=(%d+)$')
            estimate = tonumber(estimate)
            local delta = refund and -estimate or (actual[res] or estimate) - estimate
            if delta ~= 0 then redis.call('HINCRBY', key, 'u:' .. res, delta) end
        end
    end
    if refund and loop ~= '' then redis.call('HINCRBY', key, 'l:' .. loop, -1) end
    redis.call('HDEL', key, 'r:' .. call)
    return true
end

return tree
