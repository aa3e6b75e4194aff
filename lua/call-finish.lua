-- call-finish: everything one provider call does after the provider answered, in one round trip:
-- settle (or cancel) its reservation, record the outcome for the breaker, give the lease back, leave
-- the queue (in flight no more), and merge the provider's observation for the reconciler. Each step
-- runs on its own: one that fails (say, an observation the reconciler refuses) does not keep the
-- others from running, and its error is reported in its place.
--
-- ARGV[1] the steps, "<entry>:<keys>:<args>" separated by spaces, among "settle", "breaker_record",
--   "lease_release", "queue_finish", "line_credit", "reconcile"; KEYS and ARGV[2...] are the steps' own KEYS and
--   ARGV one after another, each as its script documents ("queue_finish": queue-finish.lua).
-- Reply: one element per step, in order: the step's reply, or "!error <message>".
-- Steps share one table (SHARED, emptied per call): settle leaves there what "line_credit" (after it)
-- moves call-admit.lua's line up by.

-- The steps' layout, parsed and checked once per header text (bounded), and each step's KEYS and
-- ARGV tables and the reply, reused call after call (no step keeps them).
local LAYOUTS, layouts, SCRATCH, OUT, SHARED = {}, 0, {}, {}, {}

local function layout(header)
    local steps, k, a = {}, 0, 1
    for entry, nk, na in string.gmatch(header, '([%w_]+):(%d+):(%d+)') do
        if not sluice[entry] or entry == 'call_admit' or entry == 'call_finish' then
            error('sluice call-finish: a step names an unknown entry', 0)
        end
        nk, na = tonumber(nk), tonumber(na)
        steps[#steps + 1] = { entry, k, nk, a, na }
        k, a = k + nk, a + na
    end
    steps.k, steps.a = k, a
    if layouts < 64 then LAYOUTS[header], layouts = steps, layouts + 1 end
    return steps
end

local function call_finish(KEYS, ARGV)
    local plan = LAYOUTS[ARGV[1]] or layout(ARGV[1])
    if plan.k ~= #KEYS or plan.a ~= #ARGV then
        error('sluice call-finish: the steps name other KEYS or ARGV than sent', 0)
    end
    local t = redis.call('TIME') -- one TIME for every step that takes it
    for name in pairs(SHARED) do SHARED[name] = nil end
    for j = 1, #plan do
        local entry, k, nk, a, na = unpack(plan[j])
        local step = SCRATCH[j]
        if not step then step = { {}, {} }; SCRATCH[j] = step end
        local keys, args = step[1], step[2]
        for i = 1, nk do keys[i] = KEYS[k + i] end
        for i = #keys, nk + 1, -1 do keys[i] = nil end
        for i = 1, na do args[i] = ARGV[a + i] end
        for i = #args, na + 1, -1 do args[i] = nil end
        local ok, reply = pcall(sluice[entry], keys, args, t, SHARED)
        if ok then
            OUT[j] = reply == nil and 0 or reply
        else
            OUT[j] = '!error ' .. tostring(type(reply) == 'table' and reply.err or reply)
        end
    end
    for j = #OUT, #plan + 1, -1 do OUT[j] = nil end
    return OUT
end

if redis.register_function then
    redis.register_function('sluice_call_finish_VERSION', function(keys, args) return call_finish(keys, args) end)
else
    return call_finish(KEYS, ARGV)
end
