-- lease-renew: the heartbeat. Extends a lease that is still held; an expired one stays lost (its
-- slot may already serve someone else).
--
-- KEYS[1] sluice:{P}:lease:<scope>  ZSET (see lease-acquire)
-- ARGV[1] the lease's member "<token>|<holder>"   ARGV[2] lease ttl ms
-- Reply: {1, expires at ms} renewed; {0, 0} lost (expired, released, or never held)
local key, member, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2])
if not ttl or ttl ~= ttl or ttl < 1 or ttl > 1e11 then return redis.error_reply('lease-renew: the ttl is 1 to 1e11 ms') end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local score = redis.call('ZSCORE', key, member)
if not score or tonumber(score) <= now then
    if score then redis.call('ZREM', key, member) end
    return { 0, 0 }
end
redis.call('ZADD', key, 'XX', now + ttl, member)
if redis.call('PTTL', key) < ttl + 86400000 then redis.call('PEXPIRE', key, ttl + 86400000) end -- only extended
return { 1, now + ttl }
