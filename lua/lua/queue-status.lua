-- queue-status: a scope's fleet-wide queue at this moment (read only).
--
-- KEYS[1] sluice:{P}:queue:<scope>  KEYS[2] sluice:{P}:queue:<scope>:stats  KEYS[3] sluice:{P}:inflight:<scope>
-- ARGV[1] window ms
-- Reply: {waiting, in flight, joined, left, shed} (the last three in the current window)
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local s = redis.call('HMGET', KEYS[2], 'w', 'in', 'out', 'sh')
local current = tonumber(s[1]) == math.floor(now / tonumber(ARGV[1]))
return { redis.call('ZCOUNT', KEYS[1], now, '+inf'), redis.call('ZCOUNT', KEYS[3], now, '+inf'),
    current and tonumber(s[2]) or 0, current and tonumber(s[3]) or 0, current and tonumber(s[4]) or 0 }
