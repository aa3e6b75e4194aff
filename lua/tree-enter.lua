-- tree-enter: admits one provider or tool call into a tree, or refuses it with the reason:
-- deadline, depth, calls in flight, the loop guard, or a budget. An admitted call reserves its
-- estimate on every budget (tree-exit settles it) and counts as in flight until it exits or its
-- ttl passes (a crashed worker's call stops counting; its reservation stays spent).
-- A call that also has a quota path is admitted by decide.lua instead, which makes these same checks
-- (keep the two in step) and charges the quota and the tree at once; settle.lua then closes both.
--
-- KEYS[1] sluice:{P}:tree:<id>  HASH (see tree-open)
-- KEYS[2] sluice:{P}:tree:<id>:calls  ZSET: calls in flight, score when they expire (ms)
-- KEYS[3] sluice:{P}:events  the partition's event stream
-- ARGV[1] call id   ARGV[2] call ttl ms   ARGV[3] the caller's depth
-- ARGV[4] deadline at ms from the context (0: none)   ARGV[5] loop key "<tool>|<fingerprint>" ("": none)
-- ARGV[6] tree id (for events)   ARGV[7...] pairs: resource, estimate (integers >= 0)
-- Reply: {1, calls in flight} admitted; {0, reason, detail, limit, used}, reason one of "deadline",
--        "depth", "in-flight", "loop", "budget" (detail: the resource), used as a string
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local tree, calls, events = KEYS[1], KEYS[2], KEYS[3]
local depth, carried, loop = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local fields = { 'dl', 'md', 'mi', 'lg', 'l:' .. loop }
for i = 7, #ARGV - 1, 2 do
    fields[#fields + 1] = 'b:' .. ARGV[i]
    fields[#fields + 1] = 'u:' .. ARGV[i]
    fields[#fields + 1] = 'x:' .. ARGV[i]
end
local h = redis.call('HMGET', tree, unpack(fields))
local deadline = tonumber(h[1]) or 0
if (deadline > 0 and now >= deadline) or (carried > 0 and now >= carried) then
    return { 0, 'deadline', '', deadline > 0 and deadline or carried, now }
end
if not h[1] then return { 1, 0 } end -- an untracked tree: no limits but its deadline
local function event(kind, detail)
    redis.call('XADD', events, 'MAXLEN', '~', 10000, '*', 'type', kind, 'tree', ARGV[6], 'detail', detail)
    redis.call('PEXPIRE', events, 604800000)
end
local maxDepth, maxInFlight, loopLimit, loopCount = tonumber(h[2]), tonumber(h[3]), tonumber(h[4]), tonumber(h[5]) or 0
if maxDepth > 0 and depth > maxDepth then return { 0, 'depth', '', maxDepth, depth } end
if loop ~= '' and loopLimit > 0 and loopCount >= loopLimit then
    if loopCount == loopLimit then -- the first refusal tells a human; later ones only count
        event('loop-guard', 'call ' .. loop .. ' refused after ' .. loopLimit .. ' identical calls')
    end
    redis.call('HINCRBY', tree, 'l:' .. loop, 1)
    return { 0, 'loop', loop, loopLimit, tostring(loopCount) }
end
local writes, reservation = {}, { loop }
for i = 7, #ARGV - 1, 2 do
    local k = 6 + (i - 7) / 2 * 3 -- this resource's b:, u:, x: fields in h
    local budget, used, estimate = tonumber(h[k]), tonumber(h[k + 1]) or 0, tonumber(ARGV[i + 1])
    if budget and used + estimate > budget then
        if not h[k + 2] then
            redis.call('HSET', tree, 'x:' .. ARGV[i], 1)
            event('budget-exhausted', ARGV[i] .. ' budget ' .. budget .. ' of tree ' .. ARGV[6] .. ': ' .. used ..
                ' spent or reserved, a call asked for ' .. estimate)
        end
        return { 0, 'budget', ARGV[i], budget, tostring(used) }
    end
    if estimate > 0 then
        writes[#writes + 1] = 'u:' .. ARGV[i]
        writes[#writes + 1] = used + estimate
    end
    reservation[#reservation + 1] = ARGV[i] .. '=' .. estimate -- 0 too: tree-exit charges the actual usage
end
redis.call('ZREMRANGEBYSCORE', calls, '-inf', now)
local inFlight = redis.call('ZCARD', calls)
if maxInFlight > 0 and inFlight >= maxInFlight then return { 0, 'in-flight', '', maxInFlight, tostring(inFlight) } end
if loop ~= '' then
    writes[#writes + 1] = 'l:' .. loop
    writes[#writes + 1] = loopCount + 1
end
writes[#writes + 1] = 'r:' .. ARGV[1]
writes[#writes + 1] = table.concat(reservation, '\n')
redis.call('HSET', tree, unpack(writes))
local ttl = tonumber(ARGV[2]) + 60000
redis.call('ZADD', calls, now + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', calls) < ttl then redis.call('PEXPIRE', calls, ttl) end
return { 1, inFlight + 1 }
