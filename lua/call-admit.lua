-- call-admit: one provider call's whole admission in one round trip, all or nothing: the queue's
-- depth, the dependency's breaker, a concurrency lease, the quota path with the tree (decide), and the
-- retry budget's request count. A refusal at any stage leaves nothing behind: stages that already
-- took something (a probe slot, a lease) are given back in this same script, so no other caller
-- ever sees them.
--
-- ARGV[1] the steps, "<entry>:<keys>:<args>" separated by spaces, in this order, each optional but
--   decide (each runs with the one TIME this script reads): "queue", "breaker_allow", "lease_acquire", "lease_free", "line", "decide",
--   "tree_free", "retry_budget"; KEYS and ARGV[2...]
--   are the steps' own KEYS and ARGV one after another (each as its script documents; "queue" below).
-- The "queue" step: KEYS queue, queue stats, in flight, events (queue-enter.lua, queue-leave.lua);
--   ARGV caller id, max waiting, growth alert, window ms, scope, the call's ttl ms (in flight until),
--   patience ms (how long the caller would wait for a lease: it counts as waiting meanwhile).
-- Reply: {"admitted", decide's reply, breaker_allow's reply | 0, lease_acquire's reply | 0}; or
--   {"shed", waiting} (the queue is full); {"line", decide's reply, ms until its place} (below); {"breaker",
--   breaker_allow's reply}; {"lease",
--   lease_acquire's reply}; {"quota", decide's reply} (refused by the quota or the tree).
-- The "lease_free" step (KEYS the lease pool's wake-up list, sluice:{P}:lease:<scope>:free, no ARGV;
--   required with "lease_acquire") and the "tree_free" step (KEYS the tree's wake-up list,
--   sluice:{P}:tree:<id>:free; optional, for a call inside a tree): a caller refused because every
--   lease is held, or because its tree has the most calls in flight, waits on that list (pushed by
--   lease-release and by call-finish's "wake" step); this script empties it then, so a wake-up there
--   always stands for something freed since. Every key this script touches comes in KEYS, none is
--   built from another key's name (Redis Cluster and proxies route by the declared keys).
-- The "line" step (batch callers; KEYS the scope's line for the caller's priority,
--   sluice:{P}:queue:<scope>:line:<priority>, a string "<end> <front>": when the line's last place
--   ends, and when the next place at its front is free, ms; the tenants' next turns,
--   ...:line:<priority>:tenants, a hash; the turns of the callers waiting, ...:line:<priority>:turns,
--   and when their places lapse, ...:line:<priority>:lapse, sorted sets of caller ids; the weights
--   operators set, sluice:{P}:weights, a hash of tenant ("kind=name") -> weight; ARGV the caller's
--   patience ms, its tenant ("kind=name", or "*"), the tenant's weight in the caller's configuration,
--   the caller's id): callers the root scope's buckets refuse only because their debt is as deep as it
--   may go wait in line instead of being refused. Each gets a place: the moment the buckets can take
--   its cost, behind every place given before, the places as far apart as those buckets take to refill
--   one call's cost. Reply {"line", decide's reply, ms until its place}; it then counts as waiting, and
--   asks again at its place. While a line waits, newcomers of its priority are admitted at the root
--   only without a wait (decide's "line" option), so they cannot take the debt the line's callers were
--   promised. A place past the caller's patience refuses it as before, with the honest retry-after
--   (when its place would come).
-- Waiting callers take turns by tenant (start-time fair queuing): a newcomer's turn is its tenant's
--   next turn, or the lowest turn waiting if that is later (no tenant saves turns up), and moves its
--   tenant's next turn 1/weight on (the weight operators set in sluice:{P}:weights, else the caller's;
--   one that is not a number from 0.001 to 1000 does not count). A newcomer whose turn is more than
--   AHEAD below the highest waiting (another tenant's backlog fills the line) gets a place at the
--   line's front, not its end; a caller back at its place whose turn is more than AHEAD above the
--   lowest waiting gives the place up (admitted only without a wait, else placed at the front again, or
--   refused past its patience). So the line serves turns about in order: one tenant's backlog lengthens
--   another tenant's wait by about AHEAD turns of it (AHEAD calls at weight 1), not by all of it, and
--   tenants waiting at once are served about in proportion to their weights. Places given are not
--   moved; among tenants about as far on, the line stays first come, first served. A caller refused
--   because its tree's call slots are all taken keeps its turn (it comes back when one frees). A place
--   lapses LAPSE_MS after its time (the caller gave up, or died): a caller back later asks as a
--   newcomer.
-- A caller admitted with a wait (decide's scheduled admission) counts as waiting until it proceeds,
-- then as in flight: no step of the caller's runs in between.

-- The steps' layout, parsed once per header text (bounded), and each step's KEYS and ARGV tables,
-- reused call after call (no step keeps them): the composite allocates nothing per call for them.
local LAYOUTS, layouts, SCRATCH, PICKED, LINE = {}, 0, {}, {}, { spacing = 0 }
local LINE_FORMAT = '^([%d.]+) ([%d.]+)$' -- a line's "<end> <front>", ms to a tenth
-- How far apart turns may be before the line reorders callers (see the header); how long a place outlives
-- its time; the tenants the line remembers at most (beyond, it forgets every tenant's next turn).
local AHEAD, LAPSE_MS, MOST_TENANTS = 4, 1000, 4096

-- The line's turns (line: the step's KEYS and ARGV; now, ms): callers whose place lapsed leave them. Returns
-- the lowest turn waiting and the highest (0, 0 when none wait).
local function turns(line, now)
    local waiting, lapse = line[1][3], line[1][4]
    local gone = redis.call('ZRANGEBYSCORE', lapse, '-inf', now, 'LIMIT', 0, 16)
    if #gone > 0 then
        redis.call('ZREM', lapse, unpack(gone))
        redis.call('ZREM', waiting, unpack(gone))
    end
    local low = redis.call('ZRANGE', waiting, 0, 0, 'WITHSCORES')[2]
    if not low then
        if #gone > 0 then redis.call('DEL', line[1][2]) end -- the last ones lapsed: the tenants' turns go too
        return 0, 0
    end
    return tonumber(low), tonumber(redis.call('ZRANGE', waiting, -1, -1, 'WITHSCORES')[2])
end

-- A newcomer's turn: its tenant's next, or the lowest waiting if that is later (no tenant saves turns up).
-- Returns it and the tenant's next turn (written only if the caller takes a place).
local function take_turn(line, low)
    local weight = tonumber(redis.call('HGET', line[1][5], line[2][2]))
    if not (weight and weight >= 0.001 and weight <= 1000) then weight = tonumber(line[2][3]) end
    if not (weight and weight >= 0.001 and weight <= 1000) then weight = 1 end
    local turn = tonumber(redis.call('HGET', line[1][2], line[2][2])) or 0
    if turn < low then turn = low end
    return turn, turn + 1 / weight
end

-- The caller waits in line with its turn until its place (ms from now) has lapsed; its tenant's next turn.
local function hold(line, turn, next, left, now, ttl)
    local tenants, waiting, lapse, id = line[1][2], line[1][3], line[1][4], line[2][4]
    redis.call('ZADD', waiting, turn, id)
    redis.call('ZADD', lapse, now + left + LAPSE_MS, id)
    -- The keys outlive the line's last place by the lapse; extended with slack, never shortened.
    local needed, keep = ttl + LAPSE_MS, redis.call('PTTL', waiting)
    if keep < needed then
        keep = needed + math.min(needed, 60000)
        redis.call('PEXPIRE', waiting, keep)
        redis.call('PEXPIRE', lapse, keep)
    end
    if next then
        if redis.call('HLEN', tenants) >= MOST_TENANTS then redis.call('DEL', tenants) end -- forgets who went last
        redis.call('HSET', tenants, line[2][2], string.format('%.17g', next))
        redis.call('PEXPIRE', tenants, keep)
    end
end

-- Caller `id` leaves the line (admitted, refused for good, or gone: queue-leave.lua calls this too, for a
-- caller that gave up waiting). The last one out takes the tenants' turns along.
sluice.line_leave = function(tenants, waiting, lapse, id)
    redis.call('ZREM', waiting, id)
    redis.call('ZREM', lapse, id)
    if redis.call('ZCARD', waiting) == 0 then redis.call('DEL', tenants) end
end

local function unhold(line)
    sluice.line_leave(line[1][2], line[1][3], line[1][4], line[2][4])
end

local function layout(header)
    local steps, k, a = {}, 0, 1
    for entry, nk, na in string.gmatch(header, '([%w_]+):(%d+):(%d+)') do
        nk, na = tonumber(nk), tonumber(na)
        steps[#steps + 1] = { entry, k, nk, a, na }
        k, a = k + nk, a + na
    end
    steps.k, steps.a = k, a
    if layouts < 64 then LAYOUTS[header], layouts = steps, layouts + 1 end
    return steps
end

local function steps(KEYS, ARGV)
    local plan = LAYOUTS[ARGV[1]] or layout(ARGV[1])
    if plan.k ~= #KEYS or plan.a ~= #ARGV then
        error('sluice call-admit: the steps name other KEYS or ARGV than sent', 0)
    end
    for entry in pairs(PICKED) do PICKED[entry] = nil end
    for j = 1, #plan do
        local entry, k, nk, a, na = unpack(plan[j])
        local step = SCRATCH[entry]
        if not step then step = { {}, {} }; SCRATCH[entry] = step end
        local keys, args = step[1], step[2]
        for i = 1, nk do keys[i] = KEYS[k + i] end
        for i = #keys, nk + 1, -1 do keys[i] = nil end
        for i = 1, na do args[i] = ARGV[a + i] end
        for i = #args, na + 1, -1 do args[i] = nil end
        PICKED[entry] = step
    end
    return PICKED
end

-- A half-open breaker's probe slot taken by this call, given back (breaker-allow.lua's state format).
local function unprobe(key, probe)
    local raw = redis.call('GET', key)
    if not raw then return end
    local s = cmsgpack.unpack(raw)
    local live = {}
    for _, p in ipairs(s.p or {}) do
        if p[1] ~= probe then live[#live + 1] = p end
    end
    s.p = live
    redis.call('SET', key, cmsgpack.pack(s), 'KEEPTTL')
end

local function admitted(reply) -- decide's reply: the wait alone, {wait, time}, or the flat array
    if type(reply) == 'number' then return true, reply end
    if #reply == 2 then return true, reply[1] end
    return reply[1] == 1, reply[2]
end

local function call_admit(KEYS, ARGV)
    local s = steps(KEYS, ARGV)
    local queue, breaker, lease, decide = s.queue, s.breaker_allow, s.lease_acquire, s.decide
    if not decide then error('sluice call-admit: the decide step is missing', 0) end
    if lease and not s.lease_free then error('sluice call-admit: lease_acquire needs the lease_free step', 0) end
    local t = redis.call('TIME')
    local now = t[1] * 1000 + math.floor(t[2] / 1000)

    if queue then -- full: shed, counted (and reported) by queue-enter itself
        local q, a = queue[1], queue[2]
        local waiting = redis.call('ZCOUNT', q[1], now, '+inf') -- the expired are removed by queue-enter
        if waiting >= tonumber(a[2]) and not redis.call('ZSCORE', q[1], a[1]) then -- not one already waiting
            local r = sluice.queue_enter({ q[1], q[2], q[4] }, { a[1], 1, a[2], a[3], a[4], a[5] })
            return { 'shed', r[2] }
        end
    end
    local permit, probe = 0, 0
    if breaker then
        permit = sluice.breaker_allow(breaker[1], breaker[2], t)
        if permit[1] == 0 then return { 'breaker', permit } end
        if permit[2] == 'half-open' then probe = permit[3] end
    end
    local slot = 0
    if lease then
        slot = sluice.lease_acquire(lease[1], lease[2])
        if slot[1] == 0 then
            redis.call('DEL', s.lease_free[1][1]) -- no slot is free now: older wake-ups are stale
            if probe > 0 then unprobe(breaker[1][1], probe) end
            if queue then -- waiting for a slot: visible in the queue until admitted or given up
                local q, a = queue[1], queue[2]
                if not redis.call('ZSCORE', q[1], a[1]) then
                    sluice.queue_enter({ q[1], q[2], q[4] }, { a[1], a[7], a[2], a[3], a[4], a[5] })
                end
            end
            return { 'lease', slot }
        end
    end
    local line, lineEnds, lineFront, low, high, ticket, yielding = s.line, 0, 0, 0, 0, false, false
    if line then
        local v = redis.call('GET', line[1][1])
        if v then
            local e, f = string.match(v, LINE_FORMAT)
            lineEnds, lineFront = tonumber(e) or 0, tonumber(f) or 0
        end
        low, high = turns(line, now)
        ticket = tonumber(redis.call('ZSCORE', line[1][3], line[2][4])) or false -- the turn it holds
        -- A caller back at its place gives it up to callers whose turns come well before its own (a tenant
        -- that went to the front): it is admitted now only without a wait, like a newcomer.
        yielding = ticket and ticket > low + AHEAD
        if lineEnds > now and (yielding or not ticket) then decide[2][2] = decide[2][2] .. ' line' end
    end
    LINE.spacing = 0 -- set by decide when the root's debt alone refused; kept across calls, so reset first
    local verdict = sluice.decide(decide[1], decide[2], t, line and LINE)
    local ok, wait = admitted(verdict)
    local treeFull = not ok and verdict[5] > 0 and verdict[6 * verdict[5] + 5] == 'tree-in-flight'
    if treeFull and s.tree_free then
        redis.call('DEL', s.tree_free[1][1]) -- every call slot is taken: older wake-ups are stale
    end
    if not ok then
        if slot ~= 0 then -- the slot goes back; a caller waiting for one may take it
            sluice.lease_release({ lease[1][1], s.lease_free[1][1] }, { string.format('%d', slot[2]) .. '|' .. lease[2][3] })
        end
        if probe > 0 then unprobe(breaker[1][1], probe) end
        if line and LINE.spacing > 0 then -- refused by the root's debt alone: a place in line
            -- A newcomer goes to the end of the line (to its front when its tenant is behind); a caller whose
            -- place came and found no room yet (or gave it up) keeps its turn, at the front, behind the others
            -- that did (places at the front are spaced too).
            local turn, next, behind = ticket, nil, false
            if not turn then
                turn, next = take_turn(line, low)
                behind = turn < high - AHEAD -- another tenant's backlog fills the line: to the front
            end
            local place = now + verdict[3]
            local after = (ticket or behind) and lineFront or lineEnds
            if after > place then place = after end
            local left = math.ceil(place - now)
            if left <= tonumber(line[2][1]) then
                -- A newcomer lengthens the line by its place, at the end or (its tenant behind) at the front. A
                -- caller back at the front does not: its place at the end was given when it first joined, and the
                -- callers behind it keep theirs (lengthening the line for each of them would give places no one
                -- holds, and leave the buckets idle meanwhile).
                local ends = ticket and math.max(lineEnds, place + LINE.spacing)
                    or (lineEnds > place and lineEnds or place) + LINE.spacing
                local front = (ticket or behind) and place + LINE.spacing or lineFront
                redis.call('SET', line[1][1], string.format('%.1f %.1f', ends, front), 'PX', math.ceil(ends - now) + 1000)
                hold(line, turn, next, left, now, math.ceil(ends - now) + 1000)
                if queue then -- waiting in line: visible in the queue until it asks again (or gives up)
                    local q, a = queue[1], queue[2]
                    if not redis.call('ZSCORE', q[1], a[1]) then
                        sluice.queue_enter({ q[1], q[2], q[4] }, { a[1], left + 1000, a[2], a[3], a[4], a[5] })
                    end
                end
                return { 'line', verdict, left }
            end
            verdict[3] = left -- past its patience: refused, told when its place would have come
        end
        -- It leaves the line, unless it waits for a call slot of its tree: it comes back with its turn.
        if ticket and not treeFull then unhold(line) end
        return { 'quota', verdict }
    end

    if ticket then
        unhold(line)
        if wait == 0 and lineEnds > now + LINE.spacing then
            -- It found the root's buckets with room to spare (calls used less than their estimates): the line
            -- runs behind them, and moves up by one place.
            redis.call('SET', line[1][1], string.format('%.1f %.1f', lineEnds - LINE.spacing, lineFront), 'KEEPTTL')
        end
    end
    if queue then
        local q, a = queue[1], queue[2]
        local until_ = now + wait + tonumber(a[6])
        if redis.call('ZSCORE', q[1], a[1]) then -- it waited for a lease: it leaves the queue now
            sluice.queue_leave({ q[1], q[2], q[3] }, { a[1], 'gave-up', 1, a[4] })
        end
        if wait > 0 then -- waiting until it proceeds; counted as joined (queue-enter's statistics)
            sluice.queue_enter({ q[1], q[2], q[4] }, { a[1], math.max(1, math.ceil(wait)), a[2], a[3], a[4], a[5] })
        end
        redis.call('ZADD', q[3], until_, a[1])
        -- The set outlives its last member by a minute; extended with slack (up to an hour more than
        -- needed), so that not every call pays a PEXPIRE. Never shortened.
        local needed = until_ - now + 60000
        if redis.call('PTTL', q[3]) < needed then redis.call('PEXPIRE', q[3], needed + math.min(needed, 3600000)) end
    end
    if s.retry_budget then sluice.retry_budget(s.retry_budget[1], s.retry_budget[2], t) end
    return { 'admitted', verdict, permit, slot }
end

-- call-finish.lua's "line_credit" step (KEYS the line, as for "line"; no ARGV), after its settle step:
-- the call gave back to the root's buckets what it did not use of its estimate (or all of it), so they can
-- take the callers in line that much sooner. The line's end moves up by the time they take to refill it
-- (settle.lua's `line_credit`), never before now or before its front; places already given stay. Without
-- this the line would pace the fleet by estimates, not by what calls use. Reply: the ms it moved up.
sluice.line_credit = function(KEYS, _, t, shared)
    local credit = shared and shared.line_credit or 0
    if credit <= 0 then return 0 end
    local v = redis.call('GET', KEYS[1])
    local e, f = string.match(v or '', LINE_FORMAT)
    local ends, front = tonumber(e), tonumber(f) or 0
    local earliest = t[1] * 1000 + t[2] / 1000
    if front > earliest then earliest = front end
    if not ends or ends <= earliest then return 0 end
    local moved = ends - credit < earliest and earliest or ends - credit
    redis.call('SET', KEYS[1], string.format('%.1f %s', moved, f), 'KEEPTTL')
    return math.floor(ends - moved)
end

if redis.register_function then
    redis.register_function('sluice_call_admit_VERSION', function(keys, args) return call_admit(keys, args) end)
else
    return call_admit(KEYS, ARGV)
end
