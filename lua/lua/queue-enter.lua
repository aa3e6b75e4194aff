-- queue-enter: a caller starts waiting for admission in a scope; beyond the queue depth it is shed.
-- Waiters are scored by when they give up, so a crashed waiter leaves the count by itself.
--
-- KEYS[1] sluice:{P}:queue:<scope>  ZSET: member caller id, score the time it gives up (ms)
-- KEYS[2] sluice:{P}:queue:<scope>:stats  HASH: w window index, in / out joined and left in it,
--         sh shed in it, ga / sa the last window that raised a growth / shed event
-- KEYS[3] sluice:{P}:events  the partition's event stream
-- ARGV[1] caller id   ARGV[2] gives up in ms   ARGV[3] max waiting (queue depth)
-- ARGV[4] growth alert: net growth (joined - left) within one window   ARGV[5] window ms
-- ARGV[6] the scope, for events
-- Reply: {1, waiting} queued; {0, waiting} shed (overloaded)
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local queue, stats, events = KEYS[1], KEYS[2], KEYS[3]
local maxWaiting, alert, window = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', queue, '-inf', now)
local waiting = redis.call('ZCARD', queue)
local s = redis.call('HMGET', stats, 'w', 'in', 'out', 'sh', 'ga', 'sa')
local w = math.floor(now / window)
local joined, left, shed = 0, 0, 0
if tonumber(s[1]) == w then joined, left, shed = tonumber(s[2]) or 0, tonumber(s[3]) or 0, tonumber(s[4]) or 0 end
local function event(kind, detail)
    redis.call('XADD', events, 'MAXLEN', '~', 10000, '*', 'type', kind, 'scope', ARGV[6], 'detail', detail)
    redis.call('PEXPIRE', events, 604800000)
end
local admitted = waiting < maxWaiting
if admitted then
    local ttl = tonumber(ARGV[2]) + 60000
    redis.call('ZADD', queue, now + tonumber(ARGV[2]), ARGV[1])
    if redis.call('PTTL', queue) < ttl then redis.call('PEXPIRE', queue, ttl) end -- never cut another's wait
    waiting, joined = waiting + 1, joined + 1
else
    shed = shed + 1
end
local ga, sa = s[5], s[6]
if not admitted and tonumber(sa) ~= w then
    sa = w
    event('shed', 'queue full at ' .. waiting .. ' waiting; new callers are shed')
end
if admitted and alert > 0 and joined - left >= alert and tonumber(ga) ~= w then
    ga = w
    event('queue-growth', 'queue grew by ' .. (joined - left) .. ' in ' .. window .. ' ms (' .. joined ..
        ' joined, ' .. left .. ' left); ' .. waiting .. ' waiting')
end
redis.call('HSET', stats, 'w', w, 'in', joined, 'out', left, 'sh', shed, 'ga', ga or -1, 'sa', sa or -1)
redis.call('PEXPIRE', stats, 2 * window + 60000)
return { admitted and 1 or 0, waiting }
