-- Baseline: the naive three-level token bucket (three keys, HMGET/HSET/PEXPIRE each), the
-- reference of issue 3's throughput requirement. Not used by Sluice.
-- KEYS[1..3]: the bucket hashes of global, tenant and tree (fields level, t).
-- ARGV: rate per second and burst for each level (6 values), then the cost.
-- Reply: {allowed 0|1, denying level (0 when allowed)}.
local cost = tonumber(ARGV[7])
local time = redis.call('TIME')
local now = time[1] * 1000 + time[2] / 1000
local levels = {}
for i = 1, 3 do
    local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
    local state = redis.call('HMGET', KEYS[i], 'level', 't')
    local level, t = tonumber(state[1]) or burst, tonumber(state[2]) or now
    level = math.min(burst, level + math.max(0, now - t) * rate / 1000)
    if level < cost then return {0, i} end
    levels[i] = level
end
for i = 1, 3 do
    local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
    local level = levels[i] - cost
    redis.call('HSET', KEYS[i], 'level', level, 't', now)
    redis.call('PEXPIRE', KEYS[i], math.ceil((burst - level) * 1000 / rate) + 1000)
end
return {1, 0}
