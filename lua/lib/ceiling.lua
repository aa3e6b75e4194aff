-- ceiling: the reconciler's record "~" in the root scope's state (lib/state.lua), and the ceiling it
-- sets (the library keeps it as lib.ceiling). reconcile.lua writes the record (its rules are there),
-- decide.lua lowers the root's buckets to the ceiling, reconcile-status.lua reports it.
-- (lease-acquire.lua reads the "#concurrency" share with a copy of the format and of share().)
--
-- The record: a pause-until ms, b last cut at ms, c cuts so far, x its expiry (a ttl after the last
-- observation); the blob one ENTRY per resource ("*": every root bucket without an entry of its own;
-- "#concurrency": the share of lease slots): name, then
--   stated limit per window (0: unknown), window ms, a pending stated limit and how often it was
--   seen, safety;
--   the cap rate, per ms: capRate (stated x safety / window), climbing to it from capFrom since
--   capSince at capClimb per ms (0: not climbing): capNow = min(capRate, capFrom + capClimb x dt);
--   the share g the last cut left: g0 at cutAt, climbing by climb per ms to 1;
--   the remaining cap: capLevel reported for a request sent at capAt (0: none), refilled at
--   capRefill per ms (0: at the bucket's own rate; no stated limit was known).
-- Only what runs when the library loads may be at the top level: no globals (struct, math) there.

local ceiling = { TAG = '~', ENTRY = '<Bc0ddddddddddddddd' }
local ENTRY = ceiling.ENTRY

-- The blob's entries, in order: { {name = , stated = , window = , ...}... } (fresh tables). Each table is
-- made by one constructor, which sizes it once (filling an empty table field by field grows it five times).
function ceiling.entries(blob)
    local out, pos = {}, 1
    while pos < #blob do
        local name, stated, window, pending, seen, safety, capRate, capFrom, capSince, capClimb, g0, cutAt, climb,
            capLevel, capAt, capRefill, nxt = struct.unpack(ENTRY, blob, pos)
        out[#out + 1] = {
            name = name, stated = stated, window = window, pending = pending, seen = seen, safety = safety,
            capRate = capRate, capFrom = capFrom, capSince = capSince, capClimb = capClimb, g0 = g0, cutAt = cutAt,
            climb = climb, capLevel = capLevel, capAt = capAt, capRefill = capRefill,
        }
        pos = nxt
    end
    return out
end

-- The blob holding `entries` (a list, in order).
function ceiling.pack(entries)
    local parts = {}
    for k, e in ipairs(entries) do
        parts[k] = struct.pack(ENTRY, #e.name, e.name, e.stated, e.window, e.pending, e.seen, e.safety, e.capRate,
            e.capFrom, e.capSince, e.capClimb, e.g0, e.cutAt, e.climb, e.capLevel, e.capAt, e.capRefill)
    end
    return table.concat(parts)
end

-- ms from t to now, never negative (Redis' clock may step back).
local function since(t, now) return now > t and now - t or 0 end

-- g now: what the last cut left, climbed back since, at most 1.
function ceiling.share(e, now)
    local g = e.g0 + e.climb * since(e.cutAt, now)
    return g < 1 and g or 1
end

-- The cap rate now, per ms (0: no stated limit).
function ceiling.capNow(e, now)
    local c = e.capClimb > 0 and e.capFrom + e.capClimb * since(e.capSince, now) or e.capRate
    return c < e.capRate and c or e.capRate
end

-- The lowest remaining reported, refilled since its request was sent: at capRefill, else at `refill`.
function ceiling.capLevel(e, now, refill)
    return e.capLevel + (e.capRefill > 0 and e.capRefill or refill) * since(e.capAt, now)
end

-- A root bucket (rate and ceiling rate cr per ms, burst, headroom) under entry e's ceiling:
--   rate = min(configured, capNow) x g, burst = min(configured, capNow x window) x g, the ceiling
--   rate and the headroom scaled with them; returns those, the most a cost may be and still pass some
--   day (the burst at the stated limit in force), and the cap on the level (nil: none).
function ceiling.bucket(e, now, rate, cr, burst, headroom)
    local capNow, g = ceiling.capNow(e, now), ceiling.share(e, now)
    local target, top, most = rate, burst, burst
    if capNow > 0 and capNow < target then target = capNow end
    if capNow > 0 and capNow * e.window < top then top = capNow * e.window end
    if e.capRate > 0 and e.capRate * e.window < most then most = e.capRate * e.window end
    if g < 1 then target, top = target * g, top * g end
    if target < rate then
        if cr then cr = cr * target / rate end
        rate = target
    end
    if top < burst then burst, headroom = top, headroom * top / burst end
    return rate, cr, burst, headroom, most, e.capAt > 0 and ceiling.capLevel(e, now, rate) or nil
end

return ceiling
