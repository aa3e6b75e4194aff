-- bucket: the token bucket, its charge (decide.lua) and its refund (settle.lua) together; the
-- library keeps it as lib.bucket.
--
-- A limit (decide.lua parses it): rate and, for an HTB child, its ceiling rate ceil (per ms), burst,
-- debt (how deep a scheduled admission may run the level below 0), headroom (the tokens batch
-- admissions leave to interactive ones), shadow. Its record "<res>/b" in a scope's state
-- (lib/state.lua): a level, b updated at, c the ceiling level (refilled at the ceiling rate: what a
-- borrowing child may still take), x when both levels are full again; the blob, when not empty,
-- EXTRAS (four doubles):
--   pool: what open reservations charged and may still refund. Refunds never lift a bucket above
--     what it would hold had the call never been charged: the pool shrinks as the level without its
--     charges would have reached the burst (refilled more than it holds), every charge in it by the
--     same fraction. "absorbed" sums -ln(1 - fraction) over those shrinks, so a charge c made when it
--     was a0 keeps c * exp(a0 - absorbed) of itself in the pool: a settle gives back at most that
--     (and at most the pool), and takes it out of the pool, the reservation being closed. The
--     pool's shares then always add up to the pool, under any load; a pool emptied and started
--     again is "born" anew, so older charges get nothing.
--   absorbed, born: see the pool.   bdebt: see the headroom (batch admissions, below).
-- Only what runs when the library loads may be at the top level: no globals (struct, math) there.

local bucket = { EXTRAS = '<dddd' }
local EXTRAS, HORIZON, ceilingBucket = bucket.EXTRAS, lib.state.HORIZON, lib.ceiling.bucket
local pack, unpack_, log -- C functions, fetched at the first call

-- As if the pool's charges had never been made: the level without them caps first. Returns the
-- pool (emptied when there is no room left: the next charge starts a pool anew), absorbed, the room.
local function shrink(pool, absorbed, level, burst)
    local left = level < burst and burst - level or 0
    if pool > left then
        if left > 0 then absorbed = absorbed + log(pool / left) end
        pool = left
    end
    return pool, absorbed, left
end

-- ms until both levels are full again (never negative): the record's life.
local function full(level, ceiling, burst, rate, cr)
    local ms = (burst - level) / rate
    local ceilingMs = (burst - ceiling) / (cr or rate)
    if ceilingMs > ms then ms = ceilingMs end
    return ms > 0 and ms or 0
end

-- Checks and charges the bucket of decide's entry e (e.l the limit, e.cost; when e.found, its record
-- e.a, e.b, e.c, e.blob) at now. r: the reconciler's ceiling entry for it (root buckets only), up:
-- the entry of the same resource's bucket in the scope above (its HTB parent) or false, batch: a
-- batch admission, wait: the ms a call may wait for it (0: it admits only without a wait), maxWait:
-- the decision's, reserve: a reservation is made. Sets e.ok, e.wait, what the reply and a refusal's
-- retry need (e.level, e.lowest, e.rate, e.burst, e.headroom, e.most), the record as charged
-- (e.next, e.nb, e.nc, e.nx, e.nblob; e.mark 1 when it borrowed: only its ceiling level was charged)
-- and, with reserve, its pool's e.born and e.absorbed; may raise up's floor.
function bucket.charge(e, now, r, up, batch, wait, maxWait, reserve)
    if not pack then pack, unpack_, log = struct.pack, struct.unpack, math.log end
    local l, cost = e.l, e.cost
    local burst, rate, cr, headroom, cap = l.burst, l.rate, l.ceil, l.headroom, nil
    e.most = burst -- the most a cost may be and still pass some day, at the stated limit in force
    if r then rate, cr, burst, headroom, e.most, cap = ceilingBucket(r, now, rate, cr, burst, headroom) end
    local level, ceiling, pool, absorbed, born, bdebt, dt, at = burst, burst, 0, 0, 0, 0, 0, now
    if e.found then
        local b = e.b
        dt = now - b
        if dt < 0 then dt, at = 0, b end -- never back in time (Redis' clock may step back)
        level, ceiling = e.a + dt * rate, e.c + dt * (cr or rate)
        local blob = e.blob
        if #blob == 32 then pool, absorbed, born, bdebt = unpack_(EXTRAS, blob) end
        if pool > 0 then pool, absorbed = shrink(pool, absorbed, level, burst) end
        if level > burst then level = burst end
        if ceiling > burst then ceiling = burst end
    end
    if cap and level > cap then level = cap end
    if cap and ceiling > cap then ceiling = cap end
    -- Batch admissions leave every headroom alone, scheduled ones too: what a batch admission
    -- charged below the headroom (bdebt) falls due as the bucket refills, and until then
    -- interactive calls may still use the headroom it left them (that refill is the batch's).
    if bdebt > 0 then
        bdebt = bdebt - dt * rate
        if bdebt > headroom - level then bdebt = headroom - level end
        if bdebt < 0 then bdebt = 0 end
    end
    local bottom, avail = 0, level + bdebt
    if batch then bottom, avail = headroom, level end
    local allowance = rate * wait -- may run into debt, at most max wait deep (scheduled admission)
    if l.debt < allowance then allowance = l.debt end
    local borrow = false
    -- HTB: above its guarantee a child borrows, up to its ceiling, while the parent bucket
    -- keeps its headroom (re-checked here: the parent was checked before its child).
    if cr and cost > 0 and avail - cost < bottom and ceiling >= cost and (not up or up.level - up.cost >= up.headroom) then
        borrow = true
        if up and not batch and up.headroom > 0 then -- raise the parent's floor
            local allowance = up.rate * maxWait
            if up.l.debt < allowance then allowance = up.l.debt end
            up.lowest = up.headroom - allowance
            up.ok = up.level - up.cost >= up.lowest
            up.wait = (up.headroom - up.level + up.cost) / up.rate
        end
    end
    e.level, e.lowest, e.rate, e.burst, e.headroom = level, bottom - allowance, rate, burst, headroom
    local immediate = borrow or cost == 0 or avail - cost >= bottom -- admitted without a wait
    e.ok, e.wait = immediate or level - cost >= bottom - allowance, immediate and 0 or (bottom - level + cost) / rate
    -- The record as charged (written only if the whole decision is admitted).
    if batch and not borrow and headroom > 0 and level - cost < headroom then
        bdebt = bdebt + headroom - (level - cost) - (level < headroom and headroom - level or 0)
    end
    if not borrow then level = level - cost end
    if cr then ceiling = ceiling - cost else ceiling = level end
    if ceiling < -burst then ceiling = -burst end
    local ms = (burst - level) / rate -- full(), unrolled (the hot path); without cr the ceiling level is the level
    if cr and (burst - ceiling) / cr > ms then ms = (burst - ceiling) / cr end
    if ms > HORIZON then ms = HORIZON end
    e.next, e.nb, e.nc, e.nx, e.mark = level, at, ceiling, at + ms, borrow and 1 or 0
    if reserve then
        if cost > 0 and not borrow then -- a reservation's charge joins the pool
            if pool <= 0 then born, absorbed = now, 0 end -- a new pool: older charges get nothing back
            pool = pool + cost
        end
        e.born, e.absorbed = born, absorbed
    end
    e.nblob = (pool > 0 or bdebt > 0) and pack(EXTRAS, pool, absorbed, born, bdebt) or ''
end

-- A refused entry's retry-after ms (-1: never), once every entry is checked (a child may have raised
-- its floor since).
function bucket.retry(e)
    return e.cost + e.lowest > e.most and -1 or (e.cost + e.lowest - e.level) / e.rate
end

-- Settles one charge of a reservation on the bucket's record r (lib/state.lua's, changed in place):
-- refund > 0 gives back what the call did not use, refund < 0 charges its overrun (into debt).
-- cost, mark, rate, burst, cr, born, absorbedThen: as decide recorded the charge (born false: charged
-- by an older version, which kept no pool). Returns what went back to the level.
function bucket.refund(r, now, refund, cost, mark, rate, burst, cr, born, absorbedThen)
    if not pack then pack, unpack_, log = struct.pack, struct.unpack, math.log end
    local max, min = math.max, math.min
    -- The record holds the levels at r.b; a refund goes back only while the level is below the
    -- burst, where adding to it then is adding to it now.
    local dt = max(0, now - r.b)
    local level, top = r.a + dt * rate, r.c + dt * (cr or rate)
    local pool, absorbed, poolBorn, bdebt = 0, 0, 0, 0
    if #r.blob == 32 then pool, absorbed, poolBorn, bdebt = unpack_(EXTRAS, r.blob) end
    local give, given, share, left = refund, 0, 0, 0 -- refund < 0: an overrun, charged whole
    if mark == 0 then -- never above what the bucket would hold without the charge
        pool, absorbed, left = shrink(pool, absorbed, level, burst)
        -- What is left of its charge in the pool leaves it, refunded or not (the reservation is
        -- closed); never more than the charge (an index ahead of the pool's: charged by an older
        -- version that counted tokens there).
        if born and poolBorn == born then
            share = min(pool, cost * math.exp(min(0, absorbedThen - absorbed)))
            pool = pool - share
        end
        if refund > 0 then -- charged by an older version, which kept no pool: at most up to the burst
            give = max(0, born and min(refund, share) or min(refund, left))
        end
    end
    if refund > 0 and mark == 0 then
        given = give
        r.a = r.a + give
        r.c = r.c + min(give, max(0, burst - top))
    elseif refund > 0 then -- a borrowing admission charged only its ceiling
        r.c = r.c + min(refund, max(0, burst - top))
    else
        if mark == 0 then r.a = r.a + refund end
        r.c = r.c + refund
    end
    r.blob = (pool > 0 or bdebt > 0) and pack(EXTRAS, pool, absorbed, poolBorn, bdebt) or ''
    r.x = min(r.b + full(r.a, r.c, burst, rate, cr), now + HORIZON)
    return given
end

return bucket
