-- queue-leave: a waiting caller stops waiting, admitted (it becomes in flight) or not.
--
-- KEYS[1] sluice:{P}:queue:<scope>  ZSET of waiters (see queue-enter)
-- KEYS[2] sluice:{P}:queue:<scope>:stats  HASH (see queue-enter)
-- KEYS[3] sluice:{P}:inflight:<scope>  ZSET: member caller id, score when its call expires (ms)
-- KEYS[4..6] optional, for a batch caller that waited in line: the line's turns, lapses and tenants'
--   next turns (sluice:{P}:queue:<scope>:line:<priority>:turns, :lapse, :tenants; see call-admit.lua):
--   its turn goes too, so that no caller behind it gives its place up to a turn nobody holds
-- ARGV[1] caller id   ARGV[2] "admitted" | "gave-up"   ARGV[3] in-flight ttl ms   ARGV[4] window ms
-- Reply: {waiting, in flight}
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local queue, stats, inflight, window = KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[4])
if redis.call('ZREM', queue, ARGV[1]) == 1 then
    local w = math.floor(now / window)
    if tonumber(redis.call('HGET', stats, 'w')) == w then
        redis.call('HINCRBY', stats, 'out', 1)
    else
        redis.call('HSET', stats, 'w', w, 'in', 0, 'out', 1, 'sh', 0)
        redis.call('PEXPIRE', stats, 2 * window + 60000)
    end
end
if KEYS[6] then sluice.line_leave(KEYS[6], KEYS[4], KEYS[5], ARGV[1]) end
if ARGV[2] == 'admitted' then
    local ttl = tonumber(ARGV[3]) + 60000
    redis.call('ZADD', inflight, now + tonumber(ARGV[3]), ARGV[1])
    if redis.call('PTTL', inflight) < ttl then redis.call('PEXPIRE', inflight, ttl) end
end
redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
return { redis.call('ZCOUNT', queue, now, '+inf'), redis.call('ZCARD', inflight) }
