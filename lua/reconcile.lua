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
-- A merge that changes nothing writes nothing, unless the record's expiry (a ttl after the last
--   observation) would otherwise fall more than a tenth of the ttl, at most a minute, behind.
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
-- As call-finish.lua's "reconcile" step it takes that script's TIME reply (clock). The settings (ARGV[5]
-- to ARGV[11]) are parsed once per text, and the resources' values once per call, into tables kept
-- across calls (no step keeps them).

local state, ceiling = lib.state, lib.ceiling
local MAX = lib.numbers.MAX
-- Every resource is checked before anything is written (events included): at most MAX_NAMED per
-- response, each value -1 (unknown) or a decimal integer in range. The record keeps at most
-- MAX_ENTRIES resources (its blob's length is 16 bits): the oldest ones not named now make room.
local MAX_NAMED, MAX_ENTRIES = 64, 256
-- The settings as last parsed (ARGV[5] to ARGV[11], texts and values), and the response's resources.
local SETTINGS = { texts = {} }
local NAMES, LIMITS, REMAINING, RESETS = {}, {}, {}, {}

local function number(ARGV, at, low, high, what)
    local v = tonumber(ARGV[at])
    if not v or v ~= v or v < low or v > high then error('sluice reconcile: ' .. what, 0) end
    return v
end

local function value(v, high, what)
    if v == '-1' then return -1 end
    v = lib.numbers.count(v, high)
    if not v then error('sluice reconcile: ' .. what .. ' is -1 or an integer, 0 to ' .. high, 0) end
    return v
end

-- ARGV[5] to ARGV[11], parsed when their texts differ from the last call's.
local function settings(ARGV)
    local c, texts = SETTINGS, SETTINGS.texts
    local same = true
    for k = 5, 11 do
        if texts[k] ~= ARGV[k] then same = false; break end
    end
    if same then return c end
    -- All checked before any is kept: a call refused halfway must not leave half its settings behind.
    local window, safety = number(ARGV, 5, 1, 1e12, 'the window is positive ms'), number(ARGV, 6, 1e-6, 1, 'safety is in (0, 1]')
    local cutFactor = number(ARGV, 7, 0.01, 0.99, 'the cut factor is in (0, 1)')
    local recovery = number(ARGV, 8, 1, 1e12, 'recovery is positive ms')
    local ttl, pause = number(ARGV, 9, 1000, 1e12, 'the ttl is at least 1000 ms'), number(ARGV, 10, 0, 1e12, 'the pause is ms')
    c.window, c.safety, c.cutFactor, c.recovery, c.ttl, c.defaultPause = window, safety, cutFactor, recovery, ttl, pause
    c.adaptConcurrency = ARGV[11] == '1'
    for k = 5, 11 do texts[k] = ARGV[k] end
    return c
end

-- The response's resources, checked and parsed into NAMES, LIMITS, REMAINING, RESETS; returns how many.
local function resources(ARGV)
    if (#ARGV - 12) % 4 ~= 0 then error('sluice reconcile: resources come as name, limit, remaining, reset', 0) end
    local n = (#ARGV - 12) / 4
    if n > MAX_NAMED then error('sluice reconcile: at most ' .. MAX_NAMED .. ' resources per response', 0) end
    for j = 1, n do
        local k = 9 + 4 * j
        local name = ARGV[k]
        if name == '' or name == '*' or #name > 32 then error('sluice reconcile: a resource is a name of 1 to 32 characters', 0) end
        NAMES[j], LIMITS[j] = name, value(ARGV[k + 1], MAX, 'a limit')
        REMAINING[j], RESETS[j] = value(ARGV[k + 2], MAX, 'a remaining'), value(ARGV[k + 3], 1e12, 'a reset (ms)')
    end
    return n
end

local function since(t, now) -- ms from t to now, never negative (Redis' clock may step back)
    return now > t and now - t or 0
end

local function event(KEYS, ARGV, kind, detail)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'type', kind, 'scope', ARGV[1], 'detail', detail)
    redis.call('PEXPIRE', KEYS[2], 604800000)
end

local function reconcile(KEYS, ARGV, clock)
    local max, floor, ceil = math.max, math.floor, math.ceil
    local class = ARGV[2]
    if class ~= 'ok' and class ~= 'quota' and class ~= 'overload' and class ~= 'do_not_retry' then
        error('sluice reconcile: the class is ok, quota, overload or do_not_retry', 0)
    end
    local sent, retryAfter = number(ARGV, 3, 0, 1e15, 'sent at is ms'), number(ARGV, 4, -1, 1e12, 'retry-after is ms or -1')
    local c = settings(ARGV)
    local window, safety, recovery, ttl = c.window, c.safety, c.recovery, c.ttl
    local admitted = number(ARGV, 12, 0, 1e15, 'admitted at is ms')
    local n = resources(ARGV)

    local time = clock or redis.call('TIME')
    local now = time[1] * 1000 + time[2] / 1000
    if sent <= 0 or sent > now then sent = now end
    if admitted <= 0 or admitted > sent then admitted = sent end

    -- Read the root's records: ours, and the others (kept as they are).
    local st = state.read(redis.call('GET', KEYS[1]), now)
    local record = st.byTag[ceiling.TAG]
    local changed = not record
    if not record then record = state.add(st, ceiling.TAG, 0, 0, 0, 0, '') end
    local pauseUntil, lastCut, cuts = record.a, record.b, record.c
    local entries, order = {}, {}
    for _, e in ipairs(ceiling.entries(record.blob)) do entries[e.name], order[#order + 1] = e, e.name end
    local function entry(name)
        local e = entries[name]
        if not e then
            e = { name = name, stated = 0, window = window, pending = 0, seen = 0, safety = safety, capRate = 0,
                capFrom = 0, capSince = 0, capClimb = 0, g0 = 1, cutAt = 0, climb = 0, capLevel = 0, capAt = 0,
                capRefill = 0 }
            entries[name], order[#order + 1], changed = e, name, true
        end
        return e
    end

    -- Headers: stated limits, remaining.
    local named, exhausted, longestReset = {}, {}, -1
    for j = 1, n do
        local name, limit, remaining, reset = NAMES[j], LIMITS[j], REMAINING[j], RESETS[j]
        local e = entry(name)
        if e.window ~= window or e.safety ~= safety then changed = true end
        e.window, e.safety, named[#named + 1] = window, safety, e
        if limit > 0 then
            if e.stated == 0 or limit == e.stated then
                if e.stated ~= limit or e.pending ~= 0 or e.seen ~= 0 then changed = true end
                e.stated, e.pending, e.seen = limit, 0, 0
            elseif limit == e.pending then
                e.seen, changed = e.seen + 1, true
                if e.seen >= 2 then
                    event(KEYS, ARGV, 'stated-limit', name .. ': ' .. e.stated .. ' -> ' .. limit .. ' per ' .. window .. ' ms')
                    local from, to = ceiling.capNow(e, now), limit * safety / window
                    e.capFrom, e.capSince, e.capClimb = from, now, to > from and (to - from) / recovery or 0
                    e.stated, e.pending, e.seen = limit, 0, 0
                end
            else
                e.pending, e.seen, changed = limit, 1, true
            end
        end
        local capRate = e.stated * safety / window
        if e.capRate ~= capRate then e.capRate, changed = capRate, true end
        if remaining >= 0 then
            if remaining == 0 then
                exhausted[#exhausted + 1] = e
                if reset > longestReset then longestReset = reset end
            end
            local refill = ceiling.capNow(e, now)
            local lower
            if e.capAt == 0 then
                lower = true
            elseif refill > 0 then -- both projected to now, each at its own refill rate
                local old = ceiling.capLevel(e, now, refill)
                -- No window holds more than its stated limit: a cap refilled past it caps nothing, and
                -- neither does a report of a full window (no write then).
                if e.stated > 0 and old > e.stated then old = e.stated end
                lower = remaining + refill * since(sent, now) < old
            else -- decide refills at a rate unknown here: only a later, lower report is surely lower
                lower = sent >= e.capAt and remaining <= e.capLevel
            end
            if lower and (e.capLevel ~= remaining or e.capAt ~= sent or e.capRefill ~= refill) then
                e.capLevel, e.capAt, e.capRefill, changed = remaining, sent, refill, true
            end
        end
    end

    -- A 429: one pause, and one cut per congestion event.
    local cut, started = 0, 0
    if class == 'quota' then
        local wait = retryAfter >= 0 and retryAfter or longestReset >= 0 and longestReset or c.defaultPause
        local congestion = admitted > lastCut
        if pauseUntil > now then
            if now + wait > pauseUntil then pauseUntil, changed = now + wait, true end
        elseif congestion and wait > 0 then
            started, pauseUntil, changed = 1, now + wait, true
            event(KEYS, ARGV, 'pause', 'a 429: admissions paused for ' .. ceil(wait) .. ' ms')
        end
        if congestion then
            local targets = #exhausted > 0 and exhausted or #named > 0 and named or { entry('*') }
            local words = {}
            for _, e in ipairs(targets) do
                local before = ceiling.share(e, now)
                e.g0, e.cutAt = max(0.05, before * c.cutFactor), now
                e.climb = (1 - e.g0) / recovery
                words[#words + 1] = string.format('%s %.0f%% -> %.0f%%', e.name, before * 100, e.g0 * 100)
            end
            lastCut, cuts, cut, changed = now, cuts + 1, 1, true
            event(KEYS, ARGV, 'ceiling-cut', table.concat(words, ', ') .. ' of the ceiling')
        end
    end

    -- An overload: one cut of the concurrency share per overload event (its request admitted after the last).
    if class == 'overload' and c.adaptConcurrency then
        local e = entry('#concurrency')
        if admitted > e.cutAt then
            local before = ceiling.share(e, now)
            e.g0, e.cutAt = max(0.05, before * c.cutFactor), now
            e.climb, cut, changed = (1 - e.g0) / recovery, 1, true
            event(KEYS, ARGV, 'concurrency-cut',
                string.format('an overload: %.0f%% -> %.0f%% of the concurrency slots', before * 100, e.g0 * 100))
        end
    end

    -- Write the root's key: the other records, ours (at most MAX_ENTRIES resources). Nothing when nothing
    -- changed and the record's expiry is recent enough.
    local x = max(now + ttl, pauseUntil + ttl)
    local reply = { pauseUntil > now and floor(pauseUntil) or 0, cut, started, floor(now) }
    if not changed and record.x >= x - (ttl < 600000 and ttl / 10 or 60000) then return reply end
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
    record.a, record.b, record.c, record.x, record.blob = pauseUntil, lastCut, cuts, x, ceiling.pack(kept)
    -- The key lives a second past the record (no slack: the record already outlives the last observation).
    state.write(KEYS[1], st, now, st.expires >= x and st.expires or ceil(x) + 1000)
    return reply
end

if redis.register_function then -- FUNCTION LOAD
    redis.register_function('sluice_reconcile_VERSION', function(keys, args) return reconcile(keys, args) end)
else -- EVAL
    return reconcile(KEYS, ARGV)
end
