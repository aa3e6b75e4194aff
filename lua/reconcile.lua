-- reconcile: merges one provider response into the partition's ceiling, atomically, so that many
-- workers reporting the same event change it once. decide.lua applies the result on every
-- admission; the state lives in the root scope's state key, so decide reads it for free.
--
-- State: the record "~" among the root scope's records (lib/ceiling.lua describes it and the
--   ceiling decide applies: rate = min(configured, capNow) x g, burst = min(configured, capNow x
--   window) x g, and a level never above capLevel + refill x (now - capAt)).
-- Rules:
--   remaining only ever lowers the bucket: the cap moves to this remaining only when that is lower
--     than the cap in force, both projected to now from their send times at the cap rate (without a
--     stated limit: only a later and lower report replaces it), so late, duplicated or reordered
--     observations cannot credit the fleet.
--   a stated limit is taken at once when none is known; a change, after two observations agree. A
--     lower one applies at once; the cap rate climbs to a higher one within the recovery time.
--   quota (429): a congestion event when its request was admitted after the last cut (429s to
--     requests admitted before describe the ceiling before the cut): it then cuts g by the cut
--     factor and pauses the partition until now + retry-after (or the exhausted resource's reset,
--     else ARGV[10]). Any 429 extends a pause in force; none restarts one. So many workers
--     reporting one 429 make one cut and one pause.
--     The cut applies to the resources it reports exhausted (remaining 0), else to those it names,
--     else to "*" (every root bucket without an entry of its own).
--   after a cut, g climbs back linearly to 1 within the recovery time (whatever it was cut to), never
--     above the stated limit x safety.
--   overload (5xx, 529, timeouts) never touches the quota ceiling: with ARGV[11] = 1 it cuts the
--     concurrency share instead (entry "#concurrency", same rules: once per overload event, the
--     same climb), which lease pools following this partition apply to their slots
--     (lease-acquire.lua); breakers count overloads too (Backpressure.call records them).
--   do_not_retry: only its headers count.
-- Changes (a pause starting, a cut, a new stated limit) go to the partition's event stream.
--
-- KEYS[1] the root scope's state key   KEYS[2] sluice:{P}:events
-- ARGV[1] the root scope, for events   ARGV[2] ok | quota | overload | do_not_retry
-- ARGV[3] when the request was sent, ms in Redis time (0: now)   ARGV[4] retry-after ms (-1: none)
-- ARGV[5] window ms   ARGV[6] safety factor (0, 1]   ARGV[7] cut factor (0, 1)   ARGV[8] recovery ms
-- ARGV[9] state ttl ms   ARGV[10] pause ms for a 429 that names no wait
-- ARGV[11] 1: an overload cuts the concurrency share; 0: it does not
-- ARGV[12] when the request was admitted, ms in Redis time (0: when it was sent): gates the cuts
-- ARGV[13...] per resource: name, limit, remaining, reset ms (each -1 when unknown)
-- Reply: {pause-until ms (0: none in force), 1 if this cut the ceiling (or, for an overload, the
--   concurrency share), 1 if this started a pause, Redis time ms}

local state, ceiling = lib.state, lib.ceiling
local max, floor, ceil = math.max, math.floor, math.ceil
local function number(at, low, high, what)
    local v = tonumber(ARGV[at])
    if not v or v ~= v or v < low or v > high then error('sluice reconcile: ' .. what, 0) end
    return v
end
local class = ARGV[2]
if class ~= 'ok' and class ~= 'quota' and class ~= 'overload' and class ~= 'do_not_retry' then
    error('sluice reconcile: the class is ok, quota, overload or do_not_retry', 0)
end
local sent, retryAfter = number(3, 0, 1e15, 'sent at is ms'), number(4, -1, 1e12, 'retry-after is ms or -1')
local window, safety = number(5, 1, 1e12, 'the window is positive ms'), number(6, 1e-6, 1, 'safety is in (0, 1]')
local cutFactor, recovery = number(7, 0.01, 0.99, 'the cut factor is in (0, 1)'), number(8, 1, 1e12, 'recovery is positive ms')
local ttl, defaultPause = number(9, 1000, 1e12, 'the ttl is at least 1000 ms'), number(10, 0, 1e12, 'the pause is ms')
local adaptConcurrency, admitted = ARGV[11] == '1', number(12, 0, 1e15, 'admitted at is ms')
if (#ARGV - 12) % 4 ~= 0 then error('sluice reconcile: resources come as name, limit, remaining, reset', 0) end
-- Every resource is checked before anything is written (events included): at most MAX_NAMED per
-- response, each value -1 (unknown) or a decimal integer in range. The record keeps at most
-- MAX_ENTRIES resources (its blob's length is 16 bits): the oldest ones not named now make room.
local MAX_NAMED, MAX_ENTRIES = 64, 256
if (#ARGV - 12) / 4 > MAX_NAMED then error('sluice reconcile: at most ' .. MAX_NAMED .. ' resources per response', 0) end
local MAX = lib.numbers.MAX
local function value(at, high, what)
    local v = ARGV[at]
    if v == '-1' then return -1 end
    v = lib.numbers.count(v, high)
    if not v then error('sluice reconcile: ' .. what .. ' is -1 or an integer, 0 to ' .. high, 0) end
    return v
end
for k = 13, #ARGV, 4 do
    local name = ARGV[k]
    if name == '' or name == '*' or #name > 32 then error('sluice reconcile: a resource is a name of 1 to 32 characters', 0) end
    value(k + 1, MAX, 'a limit')
    value(k + 2, MAX, 'a remaining')
    value(k + 3, 1e12, 'a reset (ms)')
end

local time = redis.call('TIME')
local now = time[1] * 1000 + time[2] / 1000
if sent <= 0 or sent > now then sent = now end
if admitted <= 0 or admitted > sent then admitted = sent end

-- Read the root's records: ours, and the others (kept as they are).
local st = state.read(redis.call('GET', KEYS[1]), now)
local record = st.byTag[ceiling.TAG] or state.add(st, ceiling.TAG, 0, 0, 0, 0, '')
local pauseUntil, lastCut, cuts = record.a, record.b, record.c
local entries, order = {}, {}
for _, e in ipairs(ceiling.entries(record.blob)) do entries[e.name], order[#order + 1] = e, e.name end
local function entry(name)
    local e = entries[name]
    if not e then
        e = { name = name, stated = 0, window = window, pending = 0, seen = 0, safety = safety, capRate = 0,
            capFrom = 0, capSince = 0, capClimb = 0, g0 = 1, cutAt = 0, climb = 0, capLevel = 0, capAt = 0,
            capRefill = 0 }
        entries[name], order[#order + 1] = e, name
    end
    return e
end
local function since(t) -- ms from t to now, never negative (Redis' clock may step back)
    return now > t and now - t or 0
end
local function share(e) return ceiling.share(e, now) end -- g now
local function capNow(e) return ceiling.capNow(e, now) end -- the cap rate now, per ms (0: no stated limit)
local function event(kind, detail)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'type', kind, 'scope', ARGV[1], 'detail', detail)
    redis.call('PEXPIRE', KEYS[2], 604800000)
end

-- Headers: stated limits, remaining.
local named, exhausted, longestReset = {}, {}, -1
for k = 13, #ARGV, 4 do
    local name = ARGV[k]
    local limit, remaining, reset = value(k + 1, MAX), value(k + 2, MAX), value(k + 3, 1e12)
    local e = entry(name)
    e.window, e.safety, named[#named + 1] = window, safety, e
    if limit > 0 then
        if e.stated == 0 or limit == e.stated then
            e.stated, e.pending, e.seen = limit, 0, 0
        elseif limit == e.pending then
            e.seen = e.seen + 1
            if e.seen >= 2 then
                event('stated-limit', name .. ': ' .. e.stated .. ' -> ' .. limit .. ' per ' .. window .. ' ms')
                local from, to = capNow(e), limit * safety / window
                e.capFrom, e.capSince, e.capClimb = from, now, to > from and (to - from) / recovery or 0
                e.stated, e.pending, e.seen = limit, 0, 0
            end
        else
            e.pending, e.seen = limit, 1
        end
    end
    e.capRate = e.stated * safety / window
    if remaining >= 0 then
        if remaining == 0 then
            exhausted[#exhausted + 1] = e
            if reset > longestReset then longestReset = reset end
        end
        local refill = capNow(e)
        local lower
        if e.capAt == 0 then
            lower = true
        elseif refill > 0 then -- both projected to now, each at its own refill rate
            local old = ceiling.capLevel(e, now, refill)
            lower = remaining + refill * since(sent) < old
        else -- decide refills at a rate unknown here: only a later, lower report is surely lower
            lower = sent >= e.capAt and remaining <= e.capLevel
        end
        if lower then e.capLevel, e.capAt, e.capRefill = remaining, sent, refill end
    end
end

-- A 429: one pause, and one cut per congestion event.
local cut, started = 0, 0
if class == 'quota' then
    local wait = retryAfter >= 0 and retryAfter or longestReset >= 0 and longestReset or defaultPause
    local congestion = admitted > lastCut
    if pauseUntil > now then
        if now + wait > pauseUntil then pauseUntil = now + wait end
    elseif congestion and wait > 0 then
        started, pauseUntil = 1, now + wait
        event('pause', 'a 429: admissions paused for ' .. ceil(wait) .. ' ms')
    end
    if congestion then
        local targets = #exhausted > 0 and exhausted or #named > 0 and named or { entry('*') }
        local words = {}
        for _, e in ipairs(targets) do
            local before = share(e)
            e.g0, e.cutAt = max(0.05, before * cutFactor), now
            e.climb = (1 - e.g0) / recovery
            words[#words + 1] = string.format('%s %.0f%% -> %.0f%%', e.name, before * 100, e.g0 * 100)
        end
        lastCut, cuts, cut = now, cuts + 1, 1
        event('ceiling-cut', table.concat(words, ', ') .. ' of the ceiling')
    end
end

-- An overload: one cut of the concurrency share per overload event (its request admitted after the last).
if class == 'overload' and adaptConcurrency then
    local e = entry('#concurrency')
    if admitted > e.cutAt then
        local before = share(e)
        e.g0, e.cutAt = max(0.05, before * cutFactor), now
        e.climb, cut = (1 - e.g0) / recovery, 1
        event('concurrency-cut', string.format('an overload: %.0f%% -> %.0f%% of the concurrency slots', before * 100, e.g0 * 100))
    end
end

-- Write the root's key: the other records, ours (at most MAX_ENTRIES resources).
local kept, keep = {}, #order
for _, e in ipairs(named) do e.named = true end
for _, name in ipairs(order) do
    local e = entries[name]
    if keep > MAX_ENTRIES and not e.named and name ~= '*' and name ~= '#concurrency' then
        keep, entries[name] = keep - 1, nil
    end
end
for _, name in ipairs(order) do
    if entries[name] then kept[#kept + 1] = entries[name] end
end
local x = max(now + ttl, pauseUntil + ttl)
record.a, record.b, record.c, record.x, record.blob = pauseUntil, lastCut, cuts, x, ceiling.pack(kept)
-- The key lives a second past the record (no slack: the record already outlives the last observation).
state.write(KEYS[1], st, now, st.expires >= x and st.expires or ceil(x) + 1000)
return { pauseUntil > now and floor(pauseUntil) or 0, cut, started, floor(now) }
