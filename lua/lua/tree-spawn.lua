-- tree-spawn: a node of a tree starts a child (a sub-agent, a parallel branch). Refused past the
-- deadline, beyond the max depth, or beyond the parent's max children. A tree nobody opened has
-- no limits but the deadline its context carries.
--
-- KEYS[1] sluice:{P}:tree:<id>  HASH (see tree-open)
-- ARGV[1] parent node id   ARGV[2] the child's depth   ARGV[3] deadline at ms from the context (0: none)
-- Reply: {1, children of the parent} spawned; {0, reason, limit} reason "deadline" | "depth" | "children"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local key, depth, carried = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local field = 'c:' .. ARGV[1]
local h = redis.call('HMGET', key, 'dl', 'md', 'mc', field)
local deadline = tonumber(h[1]) or 0
if (deadline > 0 and now >= deadline) or (carried > 0 and now >= carried) then
    return { 0, 'deadline', deadline > 0 and deadline or carried }
end
if not h[1] then return { 1, 0 } end
local maxDepth, maxChildren, children = tonumber(h[2]), tonumber(h[3]), tonumber(h[4]) or 0
if maxDepth > 0 and depth > maxDepth then return { 0, 'depth', maxDepth } end
if maxChildren > 0 and children >= maxChildren then return { 0, 'children', maxChildren } end
redis.call('HINCRBY', key, field, 1)
return { 1, children + 1 }
