-- call-finish: everything one provider call does after the provider answered, in one round trip:
-- settle (or cancel) its reservation, record the outcome for the breaker, give the lease back, leave
-- the queue (in flight no more), and merge the provider's observation for the reconciler. Each step
-- runs on its own: one that fails (say, an observation the reconciler refuses) does not keep the
-- others from running, and its error is reported in its place.
--
-- ARGV[1] the steps, "<entry>:<keys>:<args>" separated by spaces, among "settle", "breaker_record",
--   "lease_release", "queue_finish", "reconcile"; KEYS and ARGV[2...] are the steps' own KEYS and
--   ARGV one after another, each as its script documents ("queue_finish": queue-finish.lua).
-- Reply: one element per step, in order: the step's reply, or "!error <message>".

local function call_finish(KEYS, ARGV)
    local out, k, a, t = {}, 0, 1, redis.call('TIME') -- one TIME for every step that takes it
    for entry, nk, na in string.gmatch(ARGV[1], '([%w_]+):(%d+):(%d+)') do
        nk, na = tonumber(nk), tonumber(na)
        local keys, args = {}, {}
        for i = 1, nk do keys[i] = KEYS[k + i] end
        for i = 1, na do args[i] = ARGV[a + i] end
        local run = sluice[entry]
        if #keys ~= nk or #args ~= na or not run or entry == 'call_admit' or entry == 'call_finish' then
            error('sluice call-finish: a step names an unknown entry or more KEYS and ARGV than sent', 0)
        end
        local ok, reply = pcall(run, keys, args, t)
        if ok then
            out[#out + 1] = reply == nil and 0 or reply
        else
            out[#out + 1] = '!error ' .. tostring(type(reply) == 'table' and reply.err or reply)
        end
        k, a = k + nk, a + na
    end
    return out
end

if redis.register_function then
    redis.register_function('sluice_call_finish_VERSION', function(keys, args) return call_finish(keys, args) end)
else
    return call_finish(KEYS, ARGV)
end
