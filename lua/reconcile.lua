-- reconcile: merges one provider response into the partition's ceiling, atomically, so that many
-- workers reporting the same event change it once. decide.lua applies the result on every
-- admission; the state lives in the root scope's state key, so decide reads it for free.
--
-- State: the record "~" among the root scope's records (decide.lua describes the key's layout):
--   a pause-until ms, b last cut at ms, c cuts so far, x the record's expiry (ttl after the last
--   observation); the blob one ENTRY per resource: name, stated limit per window (0: unknown),
--   window ms, a pending stated limit and how often it was seen, capRate (stated x safety / window,
--   per ms), g0 (the ceiling's share right after the last cut), cut at, climb (g per ms), capLevel
--   and capAt (the lowest remaining reported, and when its request was sent; capAt 0: none), safety.
--   decide: rate = min(configured, capRate) x min(1, g0 + climb x (now - cut at)), and a level never
--   above capLevel + rate x (now - capAt).
-- Rules:
--   remaining only ever lowers the bucket: the cap moves to this remaining only when that is lower
--     than the cap in force, both projected to now from their send times, so late, duplicated or
--     reordered observations cannot credit the fleet.
--   a stated limit is taken at once when none is known; a change, after two observations agree.
--     The ceiling in force carries over: a lower limit lowers it at once, a higher one is climbed to
--     (g rebased on the new limit), as after a cut.
--   quota (429): pauses the partition until now + retry-after (or the exhausted resource's reset,
--     else ARGV[10]); a pause in force is only extended, so many workers reporting one 429 make one
--     pause. It cuts g by the cut factor only if its request was sent after the last cut (later
--     429s to requests sent before the cut describe the old ceiling): one cut per congestion event.
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
-- ARGV[12...] per resource: name, limit, remaining, reset ms (each -1 when unknown)
-- Reply: {pause-until ms (0: none in force), 1 if this cut the ceiling (or, for an overload, the
--   concurrency share), 1 if this started a pause, Redis time ms}

local RECORD, ENTRY = '<Bc0ddddHc0', '<Bc0ddddddddddd'
local max, floor, ceil = math.max, math.floor, math.ceil
local function number(at, low, high, what)
    local v = tonumber(ARGV[at])
    if not v or v < low or v > high then error('sluice reconcile: ' .. what, 0) end
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
local adaptConcurrency = ARGV[11] == '1'
if (#ARGV - 11) % 4 ~= 0 then error('sluice reconcile: resources come as name, limit, remaining, reset', 0) end

local time = redis.call('TIME')
local now = time[1] * 1000 + time[2] / 1000
if sent <= 0 or sent > now then sent = now end

-- Read the root's records: ours, and the others (kept as they are).
local s = redis.call('GET', KEYS[1])
local expires, others, pauseUntil, lastCut, cuts, blob = 0, {}, 0, 0, 0, ''
if s then
    expires = struct.unpack('<d', s)
    local pos = 9
    while pos < #s do
        local tag, a, b, c, x, bytes, nxt = struct.unpack(RECORD, s, pos)
        if x > now and tag == '~' then
            pauseUntil, lastCut, cuts, blob = a, b, c, bytes
        elseif x > now then
            others[#others + 1] = string.sub(s, pos, nxt - 1)
        end
        pos = nxt
    end
end
local entries, order = {}, {}
local pos = 1
while pos < #blob do
    local e, nxt = {}, nil
    e.name, e.stated, e.window, e.pending, e.seen, e.capRate, e.g0, e.cutAt, e.climb, e.capLevel, e.capAt, e.safety, nxt =
        struct.unpack(ENTRY, blob, pos)
    entries[e.name], order[#order + 1], pos = e, e.name, nxt
end
local function entry(name)
    local e = entries[name]
    if not e then
        e = { name = name, stated = 0, window = window, pending = 0, seen = 0, capRate = 0, g0 = 1, cutAt = 0,
            climb = 0, capLevel = 0, capAt = 0, safety = safety }
        entries[name], order[#order + 1] = e, name
    end
    return e
end
local function share(e) -- g now
    local g = e.g0 + e.climb * (now - e.cutAt)
    return g < 1 and g or 1
end
local function event(kind, detail)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'type', kind, 'scope', ARGV[1], 'detail', detail)
    redis.call('PEXPIRE', KEYS[2], 604800000)
end

-- Headers: stated limits, remaining.
local named, exhausted, longestReset = {}, {}, -1
for k = 12, #ARGV, 4 do
    local name = ARGV[k]
    if name == '' or name == '*' or #name > 32 then error('sluice reconcile: a resource is a name of 1 to 32 characters', 0) end
    local limit, remaining, reset = tonumber(ARGV[k + 1]) or -1, tonumber(ARGV[k + 2]) or -1, tonumber(ARGV[k + 3]) or -1
    local e = entry(name)
    e.window, e.safety, named[#named + 1] = window, safety, e
    if limit > 0 then
        if e.stated == 0 or limit == e.stated then
            e.stated, e.pending, e.seen = limit, 0, 0
        elseif limit == e.pending then
            e.seen = e.seen + 1
            if e.seen >= 2 then
                event('stated-limit', name .. ': ' .. e.stated .. ' -> ' .. limit .. ' per ' .. window .. ' ms')
                local carried = e.stated * share(e) / limit -- the ceiling in force, as a share of the new limit
                e.g0, e.cutAt = carried < 1 and carried or 1, now
                e.climb = (1 - e.g0) / recovery
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
        local rate = e.capRate * share(e)
        if e.capAt == 0 or remaining + rate * (now - sent) < e.capLevel + rate * (now - e.capAt) then
            e.capLevel, e.capAt = remaining, sent
        end
    end
end

-- A 429: one pause, and one cut per congestion event.
local cut, started = 0, 0
if class == 'quota' then
    local wait = retryAfter >= 0 and retryAfter or longestReset >= 0 and longestReset or defaultPause
    if pauseUntil <= now and wait > 0 then
        started = 1
        event('pause', 'a 429: admissions paused for ' .. ceil(wait) .. ' ms')
    end
    if now + wait > pauseUntil then pauseUntil = now + wait end
    if sent > lastCut then
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

-- An overload: one cut of the concurrency share per overload event (its request sent after the last).
if class == 'overload' and adaptConcurrency then
    local e = entry('#concurrency')
    if sent > e.cutAt then
        local before = share(e)
        e.g0, e.cutAt = max(0.05, before * cutFactor), now
        e.climb, cut = (1 - e.g0) / recovery, 1
        event('concurrency-cut', string.format('an overload: %.0f%% -> %.0f%% of the concurrency slots', before * 100, e.g0 * 100))
    end
end

-- Write the root's key: its expiry, the other records, ours.
local parts = {}
for _, name in ipairs(order) do
    local e = entries[name]
    parts[#parts + 1] = struct.pack(ENTRY, #name, name, e.stated, e.window, e.pending, e.seen, e.capRate, e.g0,
        e.cutAt, e.climb, e.capLevel, e.capAt, e.safety)
end
blob = table.concat(parts)
local x = max(now + ttl, pauseUntil + ttl)
local body = table.concat(others) .. struct.pack(RECORD, 1, '~', pauseUntil, lastCut, cuts, x, #blob, blob)
if expires >= x then
    redis.call('SET', KEYS[1], struct.pack('<d', expires) .. body, 'KEEPTTL')
else
    expires = ceil(x) + 1000
    redis.call('SET', KEYS[1], struct.pack('<d', expires) .. body, 'PX', expires - floor(now))
end
return { pauseUntil > now and floor(pauseUntil) or 0, cut, started, floor(now) }
