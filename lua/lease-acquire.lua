-- lease-acquire: take one of a scope's concurrency slots, or say when the first one frees up.
-- Expired leases are pruned here, so a crashed holder's slot comes back by itself (no sweeper).
--
-- KEYS[1] sluice:{P}:lease:<scope>  ZSET: member "<token>|<holder>", score its expiry (ms); the
--         member "#seq" (score -last token) numbers the leases: fencing tokens only ever grow, also
--         past the key's expiry (a day after its last lease): a new key's tokens start at Redis'
--         time in microseconds, above any token the expired key handed out (one per script call at
--         most, and scripts take more than a microsecond). The key's expiry is only ever extended.
-- KEYS[2] optional: the root scope's state key of a partition whose reconciler adapts concurrency:
--         its "#concurrency" share (reconcile.lua) scales the slots, at least one
-- ARGV[1] slots (>= 1)   ARGV[2] lease ttl ms   ARGV[3] holder (free text, shown to operators)
-- Reply: {1, token, expires at ms, held, slots} acquired; {0, ms until the earliest lease expires,
--   held, slots}; slots as scaled
local key, slots, ttl = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
if not slots or slots ~= slots or slots < 0 or slots > 1e9 then return redis.error_reply('lease-acquire: slots is 0 to 1e9') end
if not ttl or ttl ~= ttl or ttl < 1 or ttl > 1e11 then return redis.error_reply('lease-acquire: the ttl is 1 to 1e11 ms') end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local root = KEYS[2] and redis.call('GET', KEYS[2])
local pos = 9
while root and pos < #root do -- the reconciler's record "~", then its "#concurrency" entry
    local tag, _, _, _, x, blob, nxt = struct.unpack('<Bc0ddddHc0', root, pos)
    if tag == '~' and x > now then
        local at = 1
        while at < #blob do
            local name, _, _, _, _, _, _, _, _, _, g0, cutAt, climb, _, _, _, after =
                struct.unpack('<Bc0ddddddddddddddd', blob, at)
            if name == '#concurrency' then
                local share = math.min(1, g0 + climb * math.max(0, now - cutAt))
                slots = math.max(math.min(slots, 1), math.floor(slots * share))
            end
            at = after
        end
    end
    pos = nxt
end
redis.call('ZREMRANGEBYSCORE', key, '(0', now)
local held = redis.call('ZCOUNT', key, '(0', '+inf')
if held >= slots then
    local first = redis.call('ZRANGEBYSCORE', key, '(0', '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    return { 0, first[2] and math.max(1, tonumber(first[2]) - now) or 1, held, slots }
end
local token = -tonumber(redis.call('ZINCRBY', key, -1, '#seq'))
if token == 1 then -- a new key, or one that expired: start above every token it ever handed out
    token = t[1] * 1000000 + t[2]
    redis.call('ZADD', key, -token, '#seq')
end
redis.call('ZADD', key, now + ttl, string.format('%d', token) .. '|' .. ARGV[3])
-- The counter outlives the last lease by a day; a shorter lease never shortens a longer one's. The
-- expiry is extended with an hour of slack, so that not every acquire pays a PEXPIRE.
if redis.call('PTTL', key) < ttl + 86400000 then redis.call('PEXPIRE', key, ttl + 86400000 + 3600000) end
return { 1, token, now + ttl, held + 1, slots }
