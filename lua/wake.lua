-- wake: one wake-up for a caller blocked on a list (BLPOP), e.g. waiting for a request tree's call in
-- flight to end. The list is bounded and short-lived; whoever refuses a caller for want of the thing it
-- waits for empties it first (call-admit), so a wake-up there always stands for something freed since.
--
-- KEYS[1] the list, sluice:{P}:...:free
-- Reply: 1
-- A new list expires a minute after its first wake-up: a wake-up nobody took by then is stale (a caller
-- about to wait empties the list first). Trimmed only when it outgrows its bound: one call per wake-up.
local function wake(KEYS)
    local length = redis.call('LPUSH', KEYS[1], 1)
    if length == 1 then
        redis.call('PEXPIRE', KEYS[1], 60000)
    elseif length > 1000 then
        redis.call('LTRIM', KEYS[1], 0, 999)
    end
    return 1
end

if redis.register_function then
    redis.register_function('sluice_wake_VERSION', function(keys, args) return wake(keys, args) end)
else
    return wake(KEYS, ARGV)
end
