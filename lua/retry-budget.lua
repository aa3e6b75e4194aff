-- retry-budget: counts first attempts and retries per scope over a sliding window (two fixed
-- windows, the previous one weighted by its overlap) and allows a retry only while
-- retries + 1 <= ratio * requests + floor. A refused retry is not counted.
--
-- KEYS[1] sluice:{P}:retry:<scope>  HASH: q<w> / t<w> requests and retries in window w (only the
--         current and the previous window are kept), x the last window that raised an exhaustion
--         event. Counting a request is one HINCRBY; the first count of a window also drops older
--         windows and refreshes the expiry (two windows and a minute). Older versions kept w, rq, rt,
--         prq, prt in the same hash: both count on side by side while a fleet upgrades.
-- KEYS[2] sluice:{P}:events  the partition's event stream
-- ARGV[1] "request" | "retry" | "count" (a request, counted without reading the window: what
--   call-admit sends)   ARGV[2] ratio, e.g. "0.1"   ARGV[3] floor (retries per window)
-- ARGV[4] window ms   ARGV[5] the scope (for events)
-- Reply: {allowed 1|0, retries in the window, requests in the window} (the counts as strings);
--   "count": 1
-- The third parameter, when a composite (call-admit) runs it, is the TIME reply it already has.

local function newWindow(key, w, window) -- the first count of window w: older windows go
    local fields = redis.call('HKEYS', key)
    for i = 1, #fields do
        local old = tonumber(string.match(fields[i], '^[qt](%d+)$')) -- (fields of older versions stay)
        if old and old < w - 1 then redis.call('HDEL', key, fields[i]) end
    end
    redis.call('PEXPIRE', key, 2 * window + 60000)
end

local function retry_budget(KEYS, ARGV, t)
    local key, op, window = KEYS[1], ARGV[1], tonumber(ARGV[4])
    if not window or window ~= window or window < 1 or window > 1e11 then
        return redis.error_reply('retry-budget: the window is 1 to 1e11 ms')
    end
    t = t or redis.call('TIME')
    local now = t[1] * 1000 + math.floor(t[2] / 1000)
    local w = math.floor(now / window)
    local qw, tw = 'q' .. w, 't' .. w
    if op == 'request' or op == 'count' then
        if redis.call('HINCRBY', key, qw, 1) == 1 then newWindow(key, w, window) end
        if op == 'count' then return 1 end
    elseif op ~= 'retry' then
        return redis.error_reply('retry-budget: ARGV[1] is request, retry or count')
    end
    local h = redis.call('HMGET', key, qw, tw, 'q' .. (w - 1), 't' .. (w - 1), 'x')
    local weight = 1 - (now - w * window) / window
    local requests = (tonumber(h[1]) or 0) + (tonumber(h[3]) or 0) * weight
    local retries = (tonumber(h[2]) or 0) + (tonumber(h[4]) or 0) * weight
    local allowed = true
    if op == 'retry' then
        allowed = retries + 1 <= tonumber(ARGV[2]) * requests + tonumber(ARGV[3])
        if allowed then
            retries = retries + 1
            if redis.call('HINCRBY', key, tw, 1) == 1 and not h[1] then newWindow(key, w, window) end
        elseif tonumber(h[5]) ~= w then
            redis.call('HSET', key, 'x', w)
            redis.call('PEXPIRE', key, 2 * window + 60000)
            redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'type', 'retry-budget-exhausted', 'scope', ARGV[5],
                'detail', string.format('%.1f retries for %.1f requests; allowed %s x requests + %s', retries,
                    requests, ARGV[2], ARGV[3]))
            redis.call('PEXPIRE', KEYS[2], 604800000)
        end
    end
    return { allowed and 1 or 0, string.format('%.3f', retries), string.format('%.3f', requests) }
end

if redis.register_function then
    redis.register_function('sluice_retry_budget_VERSION', function(keys, args) return retry_budget(keys, args) end)
else
    return retry_budget(KEYS, ARGV)
end
