-- retry-budget: counts first attempts and retries per scope over a sliding window (two fixed
-- windows, the previous one weighted by its overlap) and allows a retry only while
-- retries + 1 <= ratio * requests + floor. A refused retry is not counted.
--
-- KEYS[1] sluice:{P}:retry:<scope>  HASH: w window index, rq / rt requests and retries in it,
--         prq / prt in the previous one, x the last window that raised an exhaustion event
-- KEYS[2] sluice:{P}:events  the partition's event stream
-- ARGV[1] "request" | "retry"   ARGV[2] ratio, e.g. "0.1"   ARGV[3] floor (retries per window)
-- ARGV[4] window ms   ARGV[5] the scope (for events)
-- Reply: {allowed 1|0, retries in the window, requests in the window} (the counts as strings)
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local key, window = KEYS[1], tonumber(ARGV[4])
local h = redis.call('HMGET', key, 'w', 'rq', 'rt', 'prq', 'prt', 'x')
local w, stored = math.floor(now / window), tonumber(h[1])
local rq, rt, prq, prt = 0, 0, 0, 0
if stored == w then
    rq, rt, prq, prt = tonumber(h[2]), tonumber(h[3]), tonumber(h[4]), tonumber(h[5])
elseif stored == w - 1 then
    prq, prt = tonumber(h[2]), tonumber(h[3])
end
local weight = 1 - (now - w * window) / window
local requests, retries = rq + prq * weight, rt + prt * weight
local allowed = true
if ARGV[1] == 'retry' then
    allowed = retries + 1 <= tonumber(ARGV[2]) * requests + tonumber(ARGV[3])
    if allowed then rt, retries = rt + 1, retries + 1 end
else
    rq, requests = rq + 1, requests + 1
end
local x = h[6]
if not allowed and tonumber(x) ~= w then
    x = w
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'type', 'retry-budget-exhausted', 'scope', ARGV[5],
        'detail', string.format('%.1f retries for %.1f requests; allowed %s x requests + %s', retries, requests,
            ARGV[2], ARGV[3]))
    redis.call('PEXPIRE', KEYS[2], 604800000)
end
if allowed or x ~= h[6] then
    redis.call('HSET', key, 'w', w, 'rq', rq, 'rt', rt, 'prq', prq, 'prt', prt, 'x', x or -1)
    redis.call('PEXPIRE', key, 2 * window + 60000)
end
return { allowed and 1 or 0, string.format('%.3f', retries), string.format('%.3f', requests) }
