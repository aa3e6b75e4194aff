-- Baseline: a one-key token bucket, the reference cost for PERFORMANCE.md ("TIME, HMGET, HSET,
-- PEXPIRE"). Not used by Sluice; benchmarked beside lua/decide.lua (Benchmarks/README-quota.md).
-- KEYS[1]: the bucket hash (fields level, t).
-- ARGV: rate per second, burst, cost.
-- Reply: {allowed 0|1, remaining as a string}.
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local time = redis.call('TIME')
local now = time[1] * 1000 + time[2] / 1000
local state = redis.call('HMGET', KEYS[1], 'level', 't')
local level, t = tonumber(state[1]) or burst, tonumber(state[2]) or now
level = math.min(burst, level + math.max(0, now - t) * rate / 1000)
local allowed = 0
if level >= cost then
    level = level - cost
    allowed = 1
    redis.call('HSET', KEYS[1], 'level', level, 't', now)
    redis.call('PEXPIRE', KEYS[1], math.ceil((burst - level) * 1000 / rate) + 1000)
end
return {allowed, tostring(level)}
