-- lease-release: gives a slot back, fenced by the lease's token: a late or repeated release names
-- a member that is gone (or expired), so it can never free a slot that someone else holds now.
--
-- KEYS[1] sluice:{P}:lease:<scope>  ZSET (see lease-acquire)
-- KEYS[2] sluice:{P}:lease:<scope>:free  LIST, the pool's wake-up list (bounded, short-lived): a slot
--         released in time pushes a wake-up onto it; callers waiting for a slot block on it (BLPOP)
--         instead of asking again and again. call-admit empties it whenever it finds every slot held,
--         so a wake-up there always stands for a slot freed since. (Declared, not built from KEYS[1]:
--         a script touches only the keys it is given, as Redis Cluster and proxies require.)
-- ARGV[1] the lease's member "<token>|<holder>"
-- Reply: 1 released in time; 0 it was no longer held (expired, or released before)
-- The third parameter, when a composite (call-finish) runs it, is the TIME reply it already has.
local function lease_release(KEYS, ARGV, t)
    if not KEYS[2] then return redis.error_reply('lease-release: KEYS[2] is the wake-up list') end
    t = t or redis.call('TIME')
    local now = t[1] * 1000 + math.floor(t[2] / 1000)
    local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
    if not score then return 0 end
    redis.call('ZREM', KEYS[1], ARGV[1])
    if tonumber(score) <= now then return 0 end
    sluice.wake({ KEYS[2] })
    return 1
end

if redis.register_function then
    redis.register_function('sluice_lease_release_VERSION', function(keys, args) return lease_release(keys, args) end)
else
    return lease_release(KEYS, ARGV)
end
