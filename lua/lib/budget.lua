-- budget: the budget, a total per period that does not refill, its charge (decide.lua) and its
-- refund (settle.lua) together; the library keeps it as lib.budget.
--
-- A limit (decide.lua parses it): total, period (s, min, h, d, w or mo; none: the total lasts while
-- the scope is in use, ttl ms after its last charge), shadow. Its record "<res>/g" in a scope's
-- state (lib/state.lua): a used, b the period's index, x when the period ends.
-- Only what runs when the library loads may be at the top level: no globals (math) there.

local budget = { PERIOD = { s = 1000, min = 60000, h = 3600000, d = 86400000, w = 604800000, mo = 0 } }
local PERIOD, HORIZON = budget.PERIOD, lib.state.HORIZON

local function days(y, m) -- days from 1970-01-01 to the first of month m (1-12) of year y
    if m <= 2 then y = y - 1 end
    local era = math.floor(y / 400)
    local yoe = y - era * 400
    return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100)
        + math.floor((153 * (m > 2 and m - 3 or m + 9) + 2) / 5) - 719468
end

-- A budget's period -> index, end ms; calendar periods are UTC.
local function period(l, now)
    local p = l.period
    if not p then return 0, now + l.ttl end -- no period: the total lasts while the scope is in use
    if p == 'mo' then -- today's civil month (H. Hinnant's algorithm), then the next month's first
        local z = math.floor(now / 86400000) + 719468
        local era = math.floor(z / 146097)
        local doe = z - era * 146097
        local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
        local mp = math.floor((5 * (doe - 365 * yoe - math.floor(yoe / 4) + math.floor(yoe / 100)) + 2) / 153)
        local y, m = yoe + era * 400 + (mp >= 10 and 1 or 0), mp < 10 and mp + 3 or mp - 9
        return y * 12 + m, days(m == 12 and y + 1 or y, m % 12 + 1) * 86400000
    end
    local len, shift = PERIOD[p], p == 'w' and 259200000 or 0 -- weeks start on Monday
    local idx = math.floor((now + shift) / len)
    return idx, (idx + 1) * len - shift
end

-- Checks decide's entry e of a budget (e.l the limit, e.cost; when e.found, its record e.a, e.b,
-- e.x) at now: sets e.ok (and e.retry when refused: the period's end, -1 never), e.used, the record
-- as charged (e.next, e.nb, e.nc, e.nx; e.mark the period's index, which settle checks).
function budget.charge(e, now)
    local l, cost, found = e.l, e.cost, e.found
    local idx, ends = period(l, now)
    if found and e.b > idx then idx, ends = e.b, e.x end -- a period ahead of now: Redis' clock stepped back
    local used = found and e.b == idx and e.a or 0
    e.idx, e.ends, e.used = idx, ends, used
    e.next, e.nb, e.nc, e.nx, e.mark = used + cost, idx, 0, ends < now + HORIZON and ends or now + HORIZON, idx
    if cost > 0 and used + cost > l.total then -- a cost above the total never passes
        e.ok, e.retry = false, l.period and cost <= l.total and ends - now or -1
    end
end

-- Settles one charge on a budget's record r (lib/state.lua's, changed in place), made in the period
-- of index mark: only within that period. Returns whether r changed.
function budget.refund(r, refund, mark)
    if r.b ~= mark then return false end
    r.a = math.max(0, r.a - refund)
    return true
end

return budget
