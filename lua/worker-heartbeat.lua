-- worker-heartbeat: a worker says it is alive; the reply is how many workers are, so that each
-- knows its share of a ceiling when it has to decide locally.
--
-- KEYS[1] sluice:{P}:workers  ZSET: member worker id, score when its registration lapses (ms)
-- ARGV[1] worker id   ARGV[2] ttl ms (a few heartbeat intervals)
-- Reply: the number of live workers, this one included
local ttl = tonumber(ARGV[2])
if not ttl or ttl ~= ttl or ttl < 1 or ttl > 1e11 then return redis.error_reply('worker-heartbeat: the ttl is 1 to 1e11 ms') end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
-- Only ever extended: a worker with a short ttl never lets a longer-lived registration's key expire.
if redis.call('PTTL', KEYS[1]) < ttl + 60000 then redis.call('PEXPIRE', KEYS[1], ttl + 60000) end
return redis.call('ZCARD', KEYS[1])
