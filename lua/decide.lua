-- decide: one admission decision for a path of scopes (root first), all or nothing: every limit on
-- the path is checked, then all of them are charged or none. Time only from TIME; writes expire.
--
-- KEYS[1] sluice:{P}:quotas  config hash: field "<scope pattern>", value a spec (QuotaConfiguration.md)
-- KEYS[2] sluice:{P}:stats   shadow would-deny counters (written only when one happens)
-- KEYS[2+i] the state of scope i = 1..n, one string holding all its limits (lib/state.lua)
-- KEYS[3+n] sluice:{P}:r:<id> the reservation record, only when ARGV[4] > 0
-- KEYS[4+n], KEYS[5+n], KEYS[6+n] only for a call inside a request tree (the ARGV "tree" group below):
--   sluice:{P}:tree:<id> its HASH (tree-open.lua), sluice:{P}:tree:<id>:calls the calls in flight
--   (ZSET, score when each stops counting, ms) and sluice:{P}:events; the same hash tag as KEYS[1]
-- ARGV[1] the plan: "<resource> <resource>...\n<default spec of scope 1>\n...\n<of scope n>"
-- ARGV[2] options: words among "batch" (a batch admission), "report" (report every limit), "time"
--   (reply with Redis' time even in the common case) and "line" (callers of this priority are waiting
--   in line for the root scope, call-admit.lua: its buckets admit only without a wait, so that a newcomer
--   cannot take the debt the line's callers were promised)
-- ARGV[3] max wait ms (0: now or never)
-- ARGV[4] reservation ttl ms (0: none)       ARGV[4+j] the cost of resource j, an integer >= 0
-- ARGV[5+R...] for i = 1..n, the i config fields of scope i, most specific first, e.g.
--   "global=openai tenant=acme", "global=openai tenant=*" (the last one is the class pattern)
-- ARGV[T...], T = 5 + R + n(n+1)/2, only for a call inside a request tree, which then needs a
--   reservation: "tree", the call id (unique in the tree; Sluice passes the reservation id), the
--   call's ttl ms (then it stops counting as in flight), the caller's depth, the deadline at ms its
--   context carries (0: none), the loop key "<tool>|<fingerprint>" ("": none), the tree id (for
--   events), and the 0-based index of the scope a tree refusal is reported on (the path's tree
--   scope; 0 when it has none). The tree's checks (tree-enter.lua's: deadline, depth, loop guard,
--   budgets, calls in flight) read only; its writes (each budget reserves the decision's cost, the
--   call's record "r:<call>" and loop count in the hash, the call in flight) join step 3, so a
--   call is admitted by the tree and the quota at once or by neither. A tree refusal is a
--   pseudo-limit like the pause (below) and writes only its own bookkeeping: the loop guard's count
--   and the once-per-tree "loop-guard" or "budget-exhausted" event. settle.lua closes both sides;
--   the reservation record lives at least as long as the call counts in flight, so that it can.
-- Reply: admitted with nothing to report (no reservation, no warning, no would-deny, no "report"):
--   just the wait ms, an integer ({wait ms, Redis time ms} with "time"). Otherwise a flat array:
--   allowed 1|0, wait ms, retry-after ms (-1: never), reservation "" | "created" |
--   "exists" | "closed", the denying limit's number (0: none), K limits reported (all of them when
--   asked to, or when any denies or would deny; else none), W warnings, Redis time ms; then per
--   limit scope (0-based), resource, kind, remaining (whole units, floored), limit, verdict (0
--   allows, 1 denies, 2 would deny: a shadow limit); then per warning scope, field ("default" for
--   the caller's), reason.
--   A tree refusal is reported as a limit of kind "tree-deadline", "tree-depth", "loop-guard",
--   "tree-budget" or "tree-in-flight" on the tree's scope, resource "*" (a budget: its resource),
--   limit the deadline at ms / max depth / loop guard N / budget / max in flight, remaining limit
--   minus what is used (now, the depth, the identical calls, spent + reserved, calls in flight); the
--   denying limit is the tree's even when a quota limit denies too (tree-enter used to decide
--   first), and it is retryable only for calls in flight (retry-after 0: when one exits).
--   A ninth tree argument, for a tree started without a round trip (RequestTrees.start), holds its
--   limits as tree-open.lua records them: "<deadline at ms, 0 none> <lifetime ms> <max depth> <max
--   children> <max in flight> <loop guard>" and then "<resource> <budget>" pairs (0: unlimited). The
--   first call that finds the tree unrecorded checks against them and records them with its own
--   writes (and so does a refusal that writes the tree's bookkeeping); a recorded tree keeps its own.
-- A pseudo-limit of kind "resharded" (scope 0, resource "*", retry-after 0) refuses a decision sent to
-- a partition's own keys (KEYS[1] its config hash) once `quota set --shards` has split it (the hash's
-- "shards" field; a shard's config hash has none): the caller's view of the layout is stale, and it
-- decides again on the tenant's shard. So no worker needs to re-read the layout to notice a split.
-- The reconciler (reconcile.lua) keeps a record "~" in the root scope's state: while it pauses the
-- partition, admissions are refused (a pseudo-limit of kind "pause"; a scheduled admission whose
-- max wait covers the pause waits it out), and it lowers the root's buckets to its ceiling.
-- The library (ScriptLibrary.swift) registers this as sluice_decide_VERSION: specs, plans and
-- scratch tables then live across calls (parse once, allocate little).

-- Specs ("tokens: bucket rate=90000/min burst=5000; requests: window 100/min") are parsed by
-- lib/spec.lua: { tokens = {limit}, requests = {limit} }, or { [ERR] = reason }.
local parse, ERR = lib.spec.parse, lib.spec.ERR
local NONE = {} -- no limits (an empty default spec), no warnings

-- Memo: specs, plans and options repeat call after call; parse each once (for as long as the
-- function lives). One table per parser, so that a text sent in the wrong place (a plan as the
-- options, by a malformed call) never hands one parser's result to the other's callers.
local SPECS, PLANS, OPTIONS, memoSize = {}, {}, {}, {}
local function memoized(memo, text, parser)
    local hit = memo[text]
    if not hit then
        local size = memoSize[memo] or 0
        if size >= 2000 then -- emptied in place: the tables are upvalues
            for k in pairs(memo) do memo[k] = nil end
            size = 0
        end
        hit, memoSize[memo] = parser(text), size + 1
        memo[text] = hit
    end
    return hit
end
local function parseOptions(text) -- ARGV[2] -> { batch = true?, report = true? }
    local options = {}
    for word in string.gmatch(text, '%S+') do options[word] = true end
    return options
end
local function parsePlan(text) -- ARGV[1] -> { resources..., defaults = {spec per scope}, n }
    local p, i = { defaults = {} }, 0
    for line in string.gmatch(text .. '\n', '([^\n]*)\n') do
        if i == 0 then
            for res in string.gmatch(line, '%S+') do p[#p + 1] = res end
        else
            p.defaults[i] = line == '' and NONE or memoized(SPECS, line, parse)
        end
        i = i + 1
    end
    p.n = i - 1
    return p
end

-- State -------------------------------------------------------------------------------------------
-- lib/state.lua holds the format of a scope's key: its expiry, then one record per limit. Decide
-- reads and writes it in place (the hot path: no table per record), with its formats.
local state = lib.state
local RECORD, HEADED, HORIZON, expiry = state.RECORD, state.HEADED, state.HORIZON, state.expiry

-- The reconciler's record "~" in the root scope (lib/ceiling.lua; reconcile.lua writes it): a is
-- the pause-until, the blob one entry per resource, whose ceiling lowers the root's buckets of that
-- resource ("*": the others).
local ceiling = lib.ceiling
local reconMemo, reconMemoSize = {}, 0
local function reconEntries(blob) -- name -> entry, memoized: the blob changes only when an observation is merged
    local hit = reconMemo[blob]
    if hit then return hit end
    if reconMemoSize >= 64 then reconMemo, reconMemoSize = {}, 0 end
    hit = {}
    for _, e in ipairs(ceiling.entries(blob)) do hit[e.name] = e end
    reconMemo[blob], reconMemoSize = hit, reconMemoSize + 1
    return hit
end
local PAUSE = { kind = 'pause', res = '*', tag = '~', limit = 0, shadow = false } -- the pseudo-limit

-- Scratch tables reused call after call (fewer allocations, less GC): an entry per limit on the
-- path, and per scope its entries' range and what its key held. Table accesses cost about as much
-- as a Redis call's share of a decision here, so the hot path keeps values in locals.
local POOL, FROM, TO, EXPIRES, OTHERS, COST, PARENT, CONFIG, FIELD = {}, {}, {}, {}, {}, {}, {}, {}, {}
-- And for writing: a scope's parts, a reservation's record and its charges (packed, then left), the reply.
local PARTS, RESERVATION, CHARGES, CHARGE, REPLY, replyLength, TIMED = {}, {}, {}, {}, {}, 0, {}
-- The limit kinds' rules: their charges (and settle's refunds) live in lib/bucket.lua, lib/window.lua
-- and lib/budget.lua.
local bucketCharge, bucketRetry = lib.bucket.charge, lib.bucket.retry
local windowCharge, windowChargeExact, windowLog = lib.window.charge, lib.window.chargeExact, lib.window.log
local budgetCharge = lib.budget.charge

local function warn(warnings, i, field, reason)
    if warnings == NONE then warnings = {} end
    for _, v in ipairs({ i - 1, field, reason }) do warnings[#warnings + 1] = v end
    return warnings
end

-- An entry's record, packed after the key's expiry: as charged (e.ok), else as it was read.
-- Without expires, the record alone (to follow another).
local function record(e, now, expires)
    local l = e.l
    local tag = l.tag
    if not e.ok then
        if not expires then return struct.pack(RECORD, #tag, tag, e.a, e.b, e.c, e.x, #e.blob, e.blob) end
        return struct.pack(HEADED, expires, #tag, tag, e.a, e.b, e.c, e.x, #e.blob, e.blob)
    end
    local blob = l.kind == 'bucket' and e.nblob or l.exact and windowLog(e) or ''
    if not expires then return struct.pack(RECORD, #tag, tag, e.next, e.nb, e.nc, e.nx, #blob, blob) end
    return struct.pack(HEADED, expires, #tag, tag, e.next, e.nb, e.nc, e.nx, #blob, blob)
end

-- C functions as upvalues (a function library cannot read globals while it loads; set at first call).
local pack, unpack_, floor, ceil

-- Request trees: a call inside one (ARGV[T...], KEYS[4+n...]) is checked as tree-enter.lua does,
-- reading only; what it would write waits in TREE for step 3. Only such calls pay for any of this.
local TREE = { fields = {}, writes = {}, lines = {} } -- scratch: the check's findings, for step 3
local TREE_LIMIT = { res = '*', tag = '', limit = 0, shadow = false } -- a refusal's pseudo-limit
local function hashTag(key) -- Redis Cluster's: between the first "{" and the next "}", if not empty
    local tag = string.match(key, '{(.-)}')
    return tag ~= '' and tag or key
end
-- The numbers callers send (max wait, ttl, costs) repeat call after call: each text is parsed and
-- range-checked once (a decimal integer, 0 to 2^50; false: anything else), the memo bounded.
local count = lib.numbers.count
local NUMS, numsSize = {}, 0
local function amount(text)
    local v = count(text) or false
    if text then
        if numsSize >= 4096 then
            for k in pairs(NUMS) do NUMS[k] = nil end
            numsSize = 0
        end
        NUMS[text], numsSize = v, numsSize + 1
    end
    return v
end
local function count0(v) -- an integer >= 0 in decimal, else nil
    return count(v, 1 / 0)
end

-- A started tree's limits (the tree group's ninth argument), parsed once per text: nil, or why they are bad.
local OPENING = { budgets = {} }
local function treeOpening(text)
    local o = OPENING
    if text == o.text then return nil end
    o.text = nil
    local v, k = o.words or {}, 0
    o.words = v
    for word in string.gmatch(text, '%S+') do
        if k >= 6 + 2 * 64 then return 'a started tree names at most 64 budgets' end
        k = k + 1
        v[k] = word
    end
    if k < 6 or k % 2 == 1 then return 'a started tree\'s limits are 6 integers, then resource and budget pairs' end
    for i = 1, 6 do
        local x = count0(v[i])
        if not x or x > 1e15 then return 'a started tree\'s limits are integers, 0 to 1e15' end
        v[i] = x
    end
    if v[2] < 1 then return 'a started tree\'s lifetime is at least 1 ms' end
    for res in pairs(o.budgets) do o.budgets[res] = nil end
    for i = 7, k, 2 do
        local budget = count0(v[i + 1])
        if #v[i] > 32 or not budget or budget > 1e15 then return 'a started tree\'s budgets are a name and an integer' end
        o.budgets[v[i]] = budget
    end
    o.deadline, o.lifetime, o.md, o.mc, o.mi, o.lg, o.size, o.text = v[1], v[2], v[3], v[4], v[5], v[6], k, text
    return nil
end

-- Records a started tree (tree-open.lua's fields and expiry), once its first call writes to it.
local function treeRecord(key, now)
    local o, v = OPENING, OPENING.words
    local fields = { 'dl', o.deadline, 'md', o.md, 'mc', o.mc, 'mi', o.mi, 'lg', o.lg }
    for i = 7, o.size, 2 do
        fields[#fields + 1], fields[#fields + 2] = 'b:' .. v[i], v[i + 1]
    end
    redis.call('HSET', key, unpack(fields))
    redis.call('PEXPIRE', key, o.deadline > 0 and o.deadline - floor(now) + 3600000 or o.lifetime)
end

-- The tree group, checked before anything is read or written: nil, or why it is bad.
local function treeInput(KEYS, ARGV, T, n, resTTL)
    if ARGV[T] ~= 'tree' then return 'ARGV[' .. T .. '] is "tree" (a call inside a tree) or nothing' end
    if #ARGV ~= T + 7 and #ARGV ~= T + 8 then return 'the tree group has 8 or 9 arguments' end
    if ARGV[T + 8] then
        local bad = treeOpening(ARGV[T + 8])
        if bad then return bad end
    end
    if #KEYS ~= 6 + n then return 'a call inside a tree needs KEYS[4+n..6+n]: tree, calls, events' end
    if not resTTL or resTTL <= 0 then return 'a call inside a tree needs a reservation (ARGV[4] > 0)' end
    local tree, tag = KEYS[4 + n], hashTag(KEYS[1])
    if KEYS[5 + n] ~= tree .. ':calls' then return 'KEYS[5+n] is KEYS[4+n] .. ":calls"' end
    if hashTag(tree) ~= tag or hashTag(KEYS[6 + n]) ~= tag then
        return 'the tree keys share the hash tag of the quota keys'
    end
    if ARGV[T + 1] == '' or ARGV[T + 6] == '' then return 'a tree call needs a call id and a tree id' end
    local ttl, depth, deadline, at = count0(ARGV[T + 2]), count0(ARGV[T + 3]), count0(ARGV[T + 4]), count0(ARGV[T + 7])
    if not ttl or ttl == 0 or ttl > 604800000 then return 'the call ttl is 1 ms to 7 days' end
    if not depth or not deadline then return 'the depth and the deadline are integers >= 0' end
    if not at or at >= n then return 'the tree scope index is 0 to n - 1' end
    return nil
end

-- tree-enter.lua's checks, in its order (deadline, depth, loop guard, budgets, in flight), reading
-- only. Returns nil when the tree admits the call (TREE holds its writes; TREE.open false: a tree
-- nobody opened, which has no limits but its deadline), else the refusal's kind, limit, used, retry.
local function treeCheck(KEYS, ARGV, T, n, plan, now)
    local t, fields = TREE, TREE.fields
    local key, loop, R = KEYS[4 + n], ARGV[T + 5], #plan
    t.loop, t.open, t.loopCount, t.refused = loop, false, 0, nil
    if not plan.treeFields then -- the fields per resource, once per plan: b: budget, u: used, x: told
        local f = {}
        for j = 1, R do f[3 * j - 2], f[3 * j - 1], f[3 * j] = 'b:' .. plan[j], 'u:' .. plan[j], 'x:' .. plan[j] end
        plan.treeFields = f
    end
    fields[1], fields[2], fields[3], fields[4], fields[5] = 'dl', 'md', 'mi', 'lg', 'l:' .. loop
    local f = plan.treeFields
    for k = 1, 3 * R do fields[5 + k] = f[k] end
    local h = redis.call('HMGET', key, unpack(fields, 1, 5 + 3 * R))
    now = floor(now)
    t.h, t.now, t.record = h, now, false
    if not h[1] and ARGV[T + 8] then -- a started tree's first call: its limits as recorded
        local o = OPENING
        t.record, h[1], h[2], h[3], h[4] = true, o.deadline, o.md, o.mi, o.lg
        for j = 1, R do h[3 + 3 * j] = o.budgets[plan[j]] end
    end
    local deadline, carried = tonumber(h[1]) or 0, tonumber(ARGV[T + 4])
    if deadline > 0 and now >= deadline or carried > 0 and now >= carried then
        return 'tree-deadline', '*', deadline > 0 and deadline or carried, now, -1
    end
    if not h[1] then return nil end -- an untracked tree: no limits but its deadline
    t.open = true
    local depth, maxDepth, maxInFlight = tonumber(ARGV[T + 3]), tonumber(h[2]) or 0, tonumber(h[3]) or 0
    local loopLimit, loopCount = tonumber(h[4]) or 0, tonumber(h[5]) or 0
    t.loopCount = loopCount
    if maxDepth > 0 and depth > maxDepth then return 'tree-depth', '*', maxDepth, depth, -1 end
    if loop ~= '' and loopLimit > 0 and loopCount >= loopLimit then
        t.refused = 'loop'
        return 'loop-guard', '*', loopLimit, loopCount, -1
    end
    for j = 1, R do
        local budget, used = tonumber(h[3 + 3 * j]), tonumber(h[4 + 3 * j]) or 0
        if budget and used + COST[j] > budget then
            t.refused, t.resource, t.told = 'budget', j, h[5 + 3 * j]
            return 'tree-budget', plan[j], budget, used, -1
        end
    end
    if maxInFlight > 0 then -- calls whose ttl passed (a crashed worker's) no longer count
        local inFlight = redis.call('ZCOUNT', KEYS[5 + n], '(' .. now, '+inf')
        if inFlight >= maxInFlight then return 'tree-in-flight', '*', maxInFlight, inFlight, 0 end
    end
    return nil
end

-- Step 3 for an admitted call in an opened tree: reserve the cost on the budgets, record the call
-- (its reservation as tree-exit.lua reads it, and the loop count), count it in flight until its ttl.
local function treeAdmit(KEYS, ARGV, T, n, plan, now, wait)
    local t = TREE
    if t.record then treeRecord(KEYS[4 + n], now) end
    local h, writes, lines, w = t.h, t.writes, t.lines, 0
    lines[1] = t.loop
    local l = 1
    for j = 1, #plan do -- an estimate of 0 is recorded too: settle charges its actual usage
        local cost = COST[j]
        if cost > 0 then writes[w + 1], writes[w + 2], w = 'u:' .. plan[j], (tonumber(h[4 + 3 * j]) or 0) + cost, w + 2 end
        lines[l + 1], l = plan[j] .. '=' .. cost, l + 1
    end
    if t.loop ~= '' then writes[w + 1], writes[w + 2], w = 'l:' .. t.loop, t.loopCount + 1, w + 2 end
    writes[w + 1], writes[w + 2], w = 'r:' .. ARGV[T + 1], table.concat(lines, '\n', 1, l), w + 2
    redis.call('HSET', KEYS[4 + n], unpack(writes, 1, w))
    local calls, ttl, nowMs = KEYS[5 + n], tonumber(ARGV[T + 2]), floor(now)
    redis.call('ZREMRANGEBYSCORE', calls, '-inf', nowMs)
    redis.call('ZADD', calls, nowMs + ceil(wait) + ttl, ARGV[T + 1])
    if redis.call('PTTL', calls) < ceil(wait) + ttl + 60000 then redis.call('PEXPIRE', calls, ceil(wait) + ttl + 60000) end
end

-- A refusal's own bookkeeping (as tree-enter.lua): the loop guard counts refused calls too, and the
-- first loop-guard refusal and the first budget refusal of a tree each tell a human, once.
local function treeRefused(KEYS, ARGV, T, n, plan)
    local t = TREE
    local key, events, id = KEYS[4 + n], KEYS[6 + n], ARGV[T + 6]
    if t.record then treeRecord(key, t.now) end
    local detail
    if t.refused == 'loop' then
        local limit = tonumber(t.h[4])
        if t.loopCount == limit then
            detail = 'call ' .. t.loop .. ' refused after ' .. limit .. ' identical calls'
        end
        redis.call('HINCRBY', key, 'l:' .. t.loop, 1)
    elseif t.refused == 'budget' and not t.told then
        local j = t.resource
        local res = plan[j]
        redis.call('HSET', key, 'x:' .. res, 1)
        detail = res .. ' budget ' .. t.h[3 + 3 * j] .. ' of tree ' .. id .. ': ' .. (tonumber(t.h[4 + 3 * j]) or 0) ..
            ' spent or reserved, a call asked for ' .. COST[j]
    end
    if detail then
        redis.call('XADD', events, 'MAXLEN', '~', 10000, '*', 'type', t.refused == 'loop' and 'loop-guard' or
            'budget-exhausted', 'tree', id, 'detail', detail)
        redis.call('PEXPIRE', events, 604800000)
    end
end

-- Per scope (root first) and resource: the most specific valid config spec that names the resource,
-- else the caller's default. Returns per scope i a flat list (resource index, limit, config field's
-- ARGV index) and the warnings; remembered on the plan for the next call when there are none.
local function resolve(plan, config, ARGV, F, n, R)
    local out, warnings = { texts = {} }, NONE
    for i = 1, n do
        local first, specs, default, list, m = (i - 1) * i / 2, 0, plan.defaults[i], {}, 0
        for k = 1, i do
            local text = config[1 + first + k] -- config[1]: the partition's "shards"
            if text then
                local spec = memoized(SPECS, text, parse)
                if spec[ERR] then
                    warnings = warn(warnings, i, ARGV[F + first + k], spec[ERR])
                else
                    specs = specs + 1
                    CONFIG[specs], FIELD[specs] = spec, F + first + k
                end
            end
        end
        if default[ERR] then warnings = warn(warnings, i, 'default', default[ERR]) end
        for j = 1, R do
            local res = plan[j]
            local limits, field = default[res], F + first + i -- a default counts under the class pattern
            for k = 1, specs do
                local spec = CONFIG[k]
                if spec[res] then limits, field = spec[res], FIELD[k]; break end
            end
            for q = 1, limits and #limits or 0 do
                list[m + 1], list[m + 2], list[m + 3], m = j, limits[q], field, m + 3
            end
        end
        out[i] = list
    end
    local texts = out.texts
    for k = 1, n * (n + 1) / 2 do texts[k] = config[k + 1] end
    plan.resolved = warnings == NONE and out or nil
    return out, warnings
end

-- clock: the TIME reply a composite already has. line: a composite's table; decide sets line.spacing to
-- the ms the root scope's buckets take to refill this call's cost (how far apart callers waiting in
-- line must be), or to 0 when a limit other than those buckets refused it.
local function decide(KEYS, ARGV, clock, line)
    if not pack then pack, unpack_, floor, ceil = struct.pack, struct.unpack, math.floor, math.ceil end
    local plan = PLANS[ARGV[1]] or memoized(PLANS, ARGV[1], parsePlan)
    local options = OPTIONS[ARGV[2]] or memoized(OPTIONS, ARGV[2], parseOptions)
    local n, R = plan.n, #plan
    local F = 4 + R -- ARGV[F + first + k]: a scope's config field k
    local batch, maxWait, resTTL = options.batch, NUMS[ARGV[3]], NUMS[ARGV[4]]
    if maxWait == nil then maxWait = amount(ARGV[3]) end
    if resTTL == nil then resTTL = amount(ARGV[4]) end
    local T = F + n * (n + 1) / 2 + 1 -- ARGV[T...]: a call inside a request tree, when given
    local tree = ARGV[T] ~= nil
    -- Bad input is refused before anything is read or written: every length and duration is checked.
    if not maxWait or maxWait > 86400000 then return redis.error_reply('decide: max wait is 0 to 86400000 ms') end
    if not resTTL or resTTL > 604800000 then return redis.error_reply('decide: the reservation ttl is 0 to 7 days') end
    if #ARGV < T - 1 or #KEYS < (resTTL > 0 and 3 or 2) + n then
        return redis.error_reply('decide: fewer keys or arguments than the plan needs')
    end
    for j = 1, R do
        local cost = NUMS[ARGV[4 + j]]
        if cost == nil then cost = amount(ARGV[4 + j]) end
        if not cost then return redis.error_reply('decide: a cost is an integer, 0 to 2^50') end
        COST[j] = cost
    end
    if tree then
        local bad = treeInput(KEYS, ARGV, T, n, resTTL)
        if bad then return redis.error_reply('decide: ' .. bad) end
    end
    local time = clock or redis.call('TIME')
    local now = time[1] * 1000 + time[2] / 1000
    local config = redis.call('HMGET', KEYS[1], 'shards', unpack(ARGV, F + 1, F + n * (n + 1) / 2))
    local raw = redis.call('MGET', unpack(KEYS, 3, resTTL > 0 and 3 + n or 2 + n))
    if resTTL > 0 and raw[n + 1] then -- a retried reserve must not charge twice
        local old = raw[n + 1]
        if old == 'settled' or old == 'cancelled' then return { 0, 0, -1, 'closed', 0, 0, 0, floor(now) } end
        local at = cmsgpack.unpack(old).at - now
        return { 1, at > 0 and ceil(at) or 0, 0, 'exists', 0, 0, 0, floor(now) }
    end
    local shards = config[1] -- then the scopes' fields, config[2...]
    if shards and (tonumber(shards) or 0) > 1 then
        -- `quota set --shards` split this partition after the caller read its layout: its decisions belong
        -- to the tenants' shards now. Refused with nothing written; the caller reads the layout again. (A
        -- reservation made here before the split is found above: a retried reserve is not charged twice.)
        if line then line.spacing = 0 end
        return { 0, 0, 0, '', 1, 1, 0, floor(now), 0, '*', 'resharded', 0, 0, 1 }
    end

    -- 1. Per scope (root first) and resource: the most specific valid config spec that names the
    --    resource, else the caller's default. Read the limits' state, bring it to now, check it.
    local K, warnings = 0, NONE
    local recon, reconRaw, pauseUntil = nil, nil, 0 -- the reconciler's record, if the root has one
    for j = 1, R do PARENT[plan[j]] = false end
    -- Which limits apply depends only on the plan and the config texts read: resolved once, then
    -- reused while the texts stay the same (not when a field is invalid: its warning names the field).
    local resolved = plan.resolved
    if resolved then
        local texts = resolved.texts
        for k = 1, n * (n + 1) / 2 do
            if config[k + 1] ~= texts[k] then resolved = nil; break end
        end
    end
    if not resolved then resolved, warnings = resolve(plan, config, ARGV, F, n, R) end
    for i = 1, n do
        local list = resolved[i] -- resource index, limit, field: per limit
        FROM[i] = K + 1
        for t = 1, #list, 3 do
            local cost = COST[list[t]]
            -- A reservation records every limit, a cost of 0 too: settle charges the actual usage.
            if cost > 0 or resTTL > 0 then
                K = K + 1
                local e = POOL[K]
                if not e then e = {}; POOL[K] = e end
                e.i, e.l, e.cost, e.field, e.found = i, list[t + 1], cost, list[t + 2], false
            end
        end
        TO[i], EXPIRES[i], OTHERS[i] = K, 0, false
        local s, from = raw[i], FROM[i]
        if s then -- hand each record to its limit's entry
            local pos, len, expires = 1, #s, nil
            while pos < len do
                local tag, a, b, c, x, blob, nxt
                if pos == 1 then -- the key's expiry and the first record, in one call
                    expires, tag, a, b, c, x, blob, nxt = unpack_(HEADED, s)
                    EXPIRES[i] = expires
                else
                    tag, a, b, c, x, blob, nxt = unpack_(RECORD, s, pos)
                end
                local owner
                for k = from, K do if POOL[k].l.tag == tag then owner = POOL[k] end end
                if owner and x > now then
                    owner.found, owner.a, owner.b, owner.c, owner.x, owner.blob = true, a, b, c, x, blob
                elseif i == 1 and tag == '~' then
                    if x > now then
                        recon, reconRaw, pauseUntil = reconEntries(blob), string.sub(s, pos == 1 and 9 or pos, nxt - 1), a
                    end
                elseif x > now then
                    OTHERS[i] = true
                end
                pos = nxt
            end
        end
        for k = from, K do
            local e = POOL[k]
            local l, cost, found = e.l, e.cost, e.found
            local kind = l.kind
            e.ok = true
            if kind == 'bucket' then -- lib/bucket.lua checks it, and charges the record it would write
                local r = i == 1 and recon and (recon[l.res] or recon['*']) -- the reconciler's ceiling
                -- A line's root bucket admits only without a wait (ARGV[2] "line").
                local wait = (i == 1 and options.line) and 0 or maxWait
                bucketCharge(e, now, r, PARENT[l.res], batch, wait, maxWait, resTTL > 0)
                if not l.shadow then PARENT[l.res] = e end
            elseif kind == 'window' and l.exact then -- lib/window.lua, as for buckets
                windowChargeExact(e, now)
            elseif kind == 'window' then
                windowCharge(e, now)
            else
                budgetCharge(e, now)
            end
        end
    end

    if pauseUntil > now then -- the reconciler paused the partition: a pseudo-limit, waited out or refusing
        K = K + 1
        local e, left = POOL[K], pauseUntil - now
        if not e then e = {}; POOL[K] = e end
        e.i, e.l, e.cost, e.used, e.found, e.ok, e.wait, e.retry = 1, PAUSE, 0, 0, false, left <= maxWait, left, left
    end

    local treeK = 0 -- the tree's pseudo-limit when it refuses (checked after the path, like the pause)
    if tree then
        local kind, res, limit, used, retry = treeCheck(KEYS, ARGV, T, n, plan, now)
        if kind then
            K, treeK = K + 1, K + 1
            local e = POOL[K]
            if not e then e = {}; POOL[K] = e end
            TREE_LIMIT.kind, TREE_LIMIT.res, TREE_LIMIT.limit = kind, res, limit
            e.i, e.l, e.cost, e.used, e.found, e.ok, e.wait, e.retry = tonumber(ARGV[T + 7]) + 1, TREE_LIMIT, 0, used,
                false, false, 0, retry
        end
    end

    -- 2. All or nothing: admitted only if every (enforced) limit allows; shadow limits just count.
    local allowed, wait, retry, denied, shadowed = true, 0, 0, 0, false
    for k = 1, K do
        local e = POOL[k]
        local l, ok = e.l, e.ok
        if l.shadow then
            shadowed = shadowed or not ok
        elseif not ok then
            if l.kind == 'bucket' then e.retry = bucketRetry(e) end
            allowed = false
            if denied == 0 then denied = k end
            retry = (retry < 0 or e.retry < 0) and -1 or (e.retry > retry and e.retry or retry)
        elseif (l.kind == 'bucket' or l.kind == 'pause') and e.wait > wait then
            wait = e.wait
        end
    end
    if treeK > 0 then denied = treeK end -- the tree's refusal first, as when tree-enter decided first
    if line then
        local spacing = 0
        for k = 1, K do
            local e = POOL[k]
            local root = e.l.kind == 'bucket' and e.i == 1
            if not (e.ok or e.l.shadow or root and e.retry >= 0) then spacing = 0; break end
            if root and not e.l.shadow and e.cost / e.rate > spacing then spacing = e.cost / e.rate end
        end
        line.spacing = spacing
    end

    -- 3. Charge every limit (shadow limits only where they allowed), and write each scope once. A
    --    key's expiry is refreshed only when a record would outlive it (SET KEEPTTL is cheaper).
    if allowed then
        local charges, nc = CHARGES, 0
        for i = 1, n do
            local from, to, records, last, only, body = FROM[i], TO[i], 0, now, nil, ''
            for k = from, to do
                local e = POOL[k]
                local x = e.ok and e.nx or e.found and e.x -- charged: the new record; else the old one
                if x then
                    records, only = records + 1, e
                    if x > last then last = x end
                    if e.ok and resTTL > 0 then
                        local l = e.l
                        nc = nc + 1 -- a scratch table per charge, reused
                        local ch = CHARGE[nc]
                        if not ch then ch = {}; CHARGE[nc] = ch end
                        charges[nc], ch[1], ch[2], ch[3], ch[5], ch[6] = ch, i, l.res, l.tag, e.cost, e.mark
                        if l.kind == 'bucket' then -- with its pool when charged (lib/bucket.lua)
                            ch[4], ch[7], ch[8], ch[9], ch[10], ch[11] = 'bucket', l.rate, l.burst, l.ceil or false,
                                e.born, e.absorbed
                            ch[12] = l.shadow and true or nil -- no line credit for a bucket that enforces nothing
                        else
                            ch[4], ch[7], ch[8], ch[9], ch[10], ch[11] = l.exact and 'exact' or l.kind, nil, nil, nil, nil, nil
                            ch[12] = nil
                        end
                    end
                end
            end
            local key, s, expires, others = KEYS[2 + i], raw[i], expiry(EXPIRES[i], last, now), OTHERS[i]
            if records == 1 and not others then -- the common case: one record, one pack
                body = record(only, now, expires)
                if i == 1 and reconRaw then body = body .. reconRaw end
            elseif records > 0 then -- the parts joined once (no string built by repeated concatenation)
                local parts, p = PARTS, 1
                parts[1] = pack('<d', expires)
                for k = from, to do
                    local e = POOL[k]
                    if e.ok or e.found then p = p + 1; parts[p] = record(e, now) end
                end
                local pos = 9
                while others and pos < #s do -- keep the live records of limits not on this path
                    local tag, _, _, _, x, _, nxt = unpack_(RECORD, s, pos)
                    local owned = false
                    for k = from, to do owned = owned or POOL[k].l.tag == tag end
                    if x > now and not owned and tag ~= '~' then p = p + 1; parts[p] = string.sub(s, pos, nxt - 1) end
                    pos = nxt
                end
                if i == 1 and reconRaw then p = p + 1; parts[p] = reconRaw end
                body = table.concat(parts, '', 1, p)
                for k = 1, p do parts[k] = nil end -- no string kept alive until the next call
            end
            if records > 0 and expires == EXPIRES[i] then
                redis.call('SET', key, body, 'KEEPTTL')
            elseif records > 0 then
                redis.call('SET', key, body, 'PX', expires - floor(now))
            end
        end
        if resTTL > 0 then
            for k = nc + 1, #charges do charges[k] = nil end
            local reservation, ttl = RESERVATION, resTTL
            reservation.at, reservation.leaf, reservation.charges, reservation.tree, reservation.call =
                now + wait, KEYS[2 + n], charges, nil, nil
            if tree then -- its settle closes the tree side too, for as long as the call counts in flight
                reservation.tree = KEYS[4 + n]
                if TREE.open then
                    reservation.call = ARGV[T + 1]
                    treeAdmit(KEYS, ARGV, T, n, plan, now, wait)
                    local counted = ceil(wait) + tonumber(ARGV[T + 2])
                    if ttl < counted then ttl = counted end
                end
            end
            redis.call('SET', KEYS[3 + n], cmsgpack.pack(reservation), 'PX', ttl)
        end
        if shadowed then
            for k = 1, K do
                local e = POOL[k]
                if not e.ok then redis.call('HINCRBY', KEYS[2], ARGV[e.field] .. '|' .. e.l.res .. '|' .. e.l.kind, 1) end
            end
            redis.call('PEXPIRE', KEYS[2], 86400000)
        end
    end

    if treeK > 0 and TREE.refused then treeRefused(KEYS, ARGV, T, n, plan) end

    -- 4. Reply; in the common case (admitted now, nothing to report) just the wait.
    if allowed and resTTL == 0 and not (options.report or shadowed) and warnings == NONE then
        if options.time then
            TIMED[1], TIMED[2] = ceil(wait), floor(now)
            return TIMED
        end
        return ceil(wait)
    end
    if not (options.report or denied > 0 or shadowed) then K = 0 end
    local reply, length = REPLY, 8 + 6 * K -- reused: Redis converts it before the next call
    reply[1], reply[2], reply[3], reply[4] = allowed and 1 or 0, ceil(wait),
        allowed and 0 or (retry < 0 and -1 or ceil(retry)), resTTL > 0 and allowed and 'created' or ''
    reply[5], reply[6], reply[7], reply[8] = denied, K, #warnings / 3, floor(now)
    for k = 1, K do
        local e = POOL[k]
        local l, at = e.l, 6 * k + 3
        local cap = l.limit or l.total or floor(e.burst)
        reply[at], reply[at + 1], reply[at + 2] = e.i - 1, l.res, l.kind
        local left = l.burst and e.level or cap - e.used
        if allowed and e.ok then left = l.burst and e.next or left - e.cost end
        reply[at + 3], reply[at + 4] = floor(left), cap
        reply[at + 5] = e.ok and 0 or l.shadow and 2 or 1
    end
    for _, v in ipairs(warnings) do length = length + 1; reply[length] = v end
    for k = length + 1, replyLength do reply[k] = nil end
    replyLength = length
    return reply
end

if redis.register_function then -- FUNCTION LOAD: registered once; memo and scratch tables persist
    redis.register_function('sluice_decide_VERSION', function(keys, args) return decide(keys, args) end)
else -- EVAL
    return decide(KEYS, ARGV)
end
