-- worker-heartbeat: a worker says it is alive; the reply is how many workers are, so that each
-- knows its share of a ceiling when it has to decide locally.
--
-- KEYS[1] sluice:{P}:workers  ZSET: member worker id, score when its registration lapses (ms)
-- ARGV[1] worker id   ARGV[2] ttl ms (a few heartbeat intervals)
-- Reply: the number of live workers, this one included
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl + 60000)
return redis.call('ZCARD', KEYS[1])
