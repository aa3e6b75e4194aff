-- window: the sliding window, its charge (decide.lua) and its refund (settle.lua) together; the
-- library keeps it as lib.window.
--
-- A limit (decide.lua parses it): limit calls per ms, exact (at most 100: a log of every charge) or
-- approximate (two fixed windows, the last one weighted by its overlap), shadow. Both kinds of one
-- length share their record "<res>/w<ms>" in a scope's state (lib/state.lua), so that editing a
-- limit between them (100/min is exact, 101/min approximate) keeps the count:
--   exact        a the running count before the log, c = 0; blob the log: (time, running count)*,
--                16 bytes an entry, in time order
--   approximate  a the count in this window, b the count in the last one, c this window's index
-- Only what runs when the library loads may be at the top level: no globals (struct, math) there.

local window = {}
local HORIZON = lib.state.HORIZON
local pack, unpack_, floor, ceil, max -- C functions, fetched at the first call
local function init() pack, unpack_, floor, ceil, max = struct.pack, struct.unpack, math.floor, math.ceil, math.max end

local function logAt(blob, k) -- the k-th entry of an exact log: time, running count
    return unpack_('<dd', blob, k * 16 - 15)
end
local function firstLive(blob, since) -- the first entry newer than since (#entries + 1: none)
    local lo, hi = 1, #blob / 16 + 1
    while lo < hi do
        local mid = floor((lo + hi) / 2)
        if logAt(blob, mid) > since then hi = mid else lo = mid + 1 end
    end
    return lo
end

-- An approximate record's count now: this window's, plus the last one's weighted by its overlap.
local function approxUsed(e, now, ms)
    local idx = floor(now / ms)
    if e.c > idx then return e.a + e.b end -- ahead of now: Redis' clock stepped back
    if e.c == idx then return e.b * (1 - (now - idx * ms) / ms) + e.a end
    if e.c == idx - 1 then return e.a * (1 - (now - idx * ms) / ms) end
    return 0
end

-- Checks decide's entry e of an exact window (e.l the limit, e.cost; when e.found, its record e.a,
-- e.b, e.c, e.blob) at now: sets e.ok (and e.retry when refused), e.used, the record as charged but
-- its log (e.next, e.nb, e.nc, e.nx; e.mark the charge's time, which settle finds it by) and what
-- window.log needs.
function window.chargeExact(e, now)
    if not pack then init() end
    local l, cost, found = e.l, e.cost, e.found
    local log, base = found and e.blob or '', found and e.a or 0
    if found and e.c ~= 0 then -- an approximate window's record (its limit was edited): its count
        local used = approxUsed(e, now, l.ms)
        log, base = used > 0 and pack('<dd', now - 0.001, ceil(used)) or '', 0
    end
    local live, limit = firstLive(log, now - l.ms), l.limit
    local total = #log > 0 and select(2, logAt(log, #log / 16)) or base
    local before = live > 1 and select(2, logAt(log, live - 1)) or base
    e.log, e.live, e.total, e.before, e.used = log, live, total, before, total - before
    local at = #log > 0 and logAt(log, #log / 16) or now -- the log stays in time order, even when
    if at < now then at = now end -- Redis' clock stepped back
    e.next, e.nb, e.nc, e.nx, e.mark = before, 0, 0, at + (l.ms < HORIZON and l.ms or HORIZON), at
    if cost > 0 and total - before + cost > limit then -- until enough of the oldest entries have left
        local at = live
        while cost <= limit and select(2, logAt(log, at)) - before < total - before + cost - limit do at = at + 1 end
        e.ok, e.retry = false, cost > limit and -1 or logAt(log, at) + l.ms - now
    end
end

-- The log of an exact window's record as charged: its live entries, and the charge's own.
function window.log(e)
    local log = string.sub(e.log, e.live * 16 - 15)
    if e.cost > 0 then log = log .. pack('<dd', e.mark, e.total + e.cost) end
    return log
end

-- Checks decide's entry e of an approximate window, as window.chargeExact (e.mark: the window's index).
function window.charge(e, now)
    if not pack then init() end
    local l, cost, found = e.l, e.cost, e.found
    local ms, limit = l.ms, l.limit
    local idx, cur, prev = floor(now / ms), 0, 0
    if found and e.c > idx then idx = e.c end -- a window ahead of now (Redis' clock stepped back)
    local elapsed = now - idx * ms
    if elapsed < 0 then elapsed = 0 end
    if found and e.c == 0 then -- an exact log's record (its limit was edited): its live count, now
        local log = e.blob
        if #log > 0 then
            local live = firstLive(log, now - ms)
            cur = select(2, logAt(log, #log / 16)) - (live > 1 and select(2, logAt(log, live - 1)) or e.a)
        end
    elseif found and e.c == idx then
        cur, prev = e.a, e.b
    elseif found and e.c == idx - 1 then
        prev = e.a
    end
    local used = prev * (1 - elapsed / ms) + cur
    e.idx, e.cur, e.prev, e.used = idx, cur, prev, used
    local nx = (idx + 2) * ms
    if nx > now + HORIZON then nx = now + HORIZON end
    e.next, e.nb, e.nc, e.nx, e.mark = cur + cost, prev, idx, nx, idx
    if cost > 0 and used + cost > limit then
        e.ok = false
        if cost > limit then
            e.retry = -1
        elseif cur + cost <= limit then -- until the last window's weight has faded enough
            e.retry = ms * (1 - (limit - cur - cost) / prev) - elapsed
        else -- the next window, then until this one's weight has faded enough
            e.retry = (idx + 1) * ms - now + ms * (1 - (limit - cost) / cur)
        end
    end
end

-- Settles one charge on an exact window's record r (lib/state.lua's, changed in place) of length
-- ms: refund > 0 gives back what the call did not use, refund < 0 charges its overrun. mark: the
-- charge's time, as decide recorded it. Returns whether r changed.
function window.refundExact(r, now, refund, mark, ms)
    if not pack then init() end
    local log, at = r.blob, 0
    for k = 1, #log / 16 do
        if unpack_('<d', log, k * 16 - 15) == mark then at = k end
    end
    if at > 0 then -- lower (or raise) the running count from that entry on
        local parts, last = { string.sub(log, 1, at * 16 - 16) }, r.a
        if at > 1 then last = select(2, unpack_('<dd', log, at * 16 - 31)) end
        for k = at, #log / 16 do
            local t, running = unpack_('<dd', log, k * 16 - 15)
            running = max(last, running - refund)
            -- An entry that no longer weighs anything (cancelled, settled at 0) is dropped:
            -- kept, such entries would fill the log until its 16-bit length wraps.
            if running > last then parts[#parts + 1] = pack('<dd', t, running) end
            last = running
        end
        r.blob = table.concat(parts)
        return true
    elseif refund < 0 then -- no entry of its own (an estimate of 0): the overrun counts from now
        local t, last, entries = now, r.a, #log / 16
        if entries > 0 then
            local lt, running = unpack_('<dd', log, entries * 16 - 15)
            if lt > t then t = lt end -- the log stays in order when Redis' clock stepped back
            last = running
        end
        if entries < 1024 then
            r.blob = log .. pack('<dd', t, last - refund)
        else -- bounded (its length is 16 bits): the last entry takes the overrun, and counts longer
            r.blob = string.sub(log, 1, entries * 16 - 16) .. pack('<dd', t, last - refund)
        end
        if r.x < t + ms then r.x = t + ms end
        return true
    end
    return false
end

-- Settles one charge on an approximate window's record r, made in the window of index mark: while
-- that window is this one or the last one. Returns whether r changed.
function window.refund(r, refund, mark)
    if not pack then init() end
    local changed = false
    if r.c == mark then r.a, changed = max(0, r.a - refund), true end
    if r.c == mark + 1 then r.b, changed = max(0, r.b - refund), true end
    return changed
end

return window
