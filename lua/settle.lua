-- settle: close a reservation made by decide. "settle" with the actual costs refunds what was
-- charged beyond them, or charges the overrun (buckets run into debt, budgets past their total);
-- "cancel" refunds everything. Idempotent: a closed reservation stays closed (until it expires).
--
-- KEYS[1] sluice:{P}:r:<id>, the reservation   KEYS[1+i] the state of scope i = 1..n, as for decide
-- KEYS[2+n], KEYS[3+n] only for a reservation made inside a request tree (decide.lua's "tree"
--   group): the tree's hash and its calls in flight, sluice:{P}:tree:<id> and sluice:{P}:tree:<id>:calls.
--   Settling then does tree-exit.lua's work as well: the call stops counting as in flight and its
--   tree budgets are charged the actual costs instead of the estimate ("cancel": given back, with
--   the loop guard's count), in the same step as the quota, and only once.
-- ARGV[1] "settle" | "cancel"   ARGV[2k], ARGV[2k+1] a resource and its actual cost (integer >= 0);
--   a resource not named keeps its estimate (a "settle" naming none, outside a tree, only marks the
--   reservation settled: the fast path of a call that cost what it estimated)
-- Reply: {status}: "settled" | "cancelled" | "already settled" | "already cancelled" | "unknown"
--   (never made, or expired: its estimate stays charged) | "mismatch" (KEYS are not its path, or
--   not its tree)
-- The library registers it as sluice_settle_VERSION, like decide.
-- Inside a composite (call-finish.lua), `shared.line_credit` is set to the ms the root scope's binding
-- bucket (the one slowest to refill a call's cost, which spaces call-admit.lua's line; shadow buckets
-- enforce nothing and are left out) takes to refill what this settle gave back to it: its "line_credit"
-- step moves the line up by that much.
-- A settle at the estimate that names no resource (the fast path below) leaves its charge in the bucket's
-- pool: reading and writing the scope there would cost every such settle. Such a share only takes part
-- in later shrinking, so the other reservations get back less, never more.

local state, count = lib.state, lib.numbers.count -- the scopes' state format; "5000" -> 5000
local bucket, window, budget = lib.bucket, lib.window, lib.budget -- the limit kinds' refunds
local NONE = { byTag = {} } -- the records of a scope no charge changes: never read, never written

local function settle(KEYS, ARGV, clock, shared) -- clock: the TIME reply a composite already has
    -- Bad input is refused before anything is read or written: a negative actual cost would refund
    -- more than was charged (other callers' usage); "nan", "inf" or "0x10" are no costs.
    if ARGV[1] ~= 'settle' and ARGV[1] ~= 'cancel' then return redis.error_reply('settle: ARGV[1] is settle or cancel') end
    if #ARGV % 2 ~= 1 then return redis.error_reply('settle: actual costs come as resource, cost') end
    local actual = {}
    for k = 2, #ARGV, 2 do
        local res, cost = ARGV[k], ARGV[k + 1]
        if not string.find(res, '^[%a_][%w_]*$') or #res > 32 then
            return redis.error_reply('settle: a resource is a letter or _, then letters, digits or _ (at most 32)')
        end
        cost = count(cost)
        if not cost then return redis.error_reply('settle: a cost is an integer, 0 to 2^50') end
        actual[res] = cost
    end
    if #KEYS < 2 then return redis.error_reply('settle: KEYS are the reservation and its path') end
    local n, cancel = #KEYS - 1, ARGV[1] == 'cancel'
    local record = redis.call('GET', KEYS[1])
    if not record then return { 'unknown' } end
    if record == 'settled' or record == 'cancelled' then return { 'already ' .. record } end
    -- Settled at the estimate (no actual cost named) outside a tree: nothing changes but the status,
    -- so the record is not even unpacked. (cmsgpack writes the record's "tree" field as \164tree; a
    -- resource named tree takes the long way, which comes to the same.)
    if #ARGV == 1 and not cancel and not string.find(record, '\164tree', 1, true) then
        redis.call('SET', KEYS[1], 'settled', 'KEEPTTL')
        return { 'settled' }
    end
    local reservation = cmsgpack.unpack(record)
    local tree = reservation.tree
    if tree then -- made inside a request tree: its two keys follow the path's
        n = #KEYS - 3
        if KEYS[2 + n] ~= tree or KEYS[3 + n] ~= tree .. ':calls' then return { 'mismatch' } end
    end
    if reservation.leaf ~= KEYS[1 + n] then return { 'mismatch' } end
    -- The scopes' states are read only when a charge changes: settling at the estimate (the common
    -- case for a request count) reads and writes no scope.
    local raw = { record }
    for _, ch in ipairs(reservation.charges) do
        if (cancel and ch[5] or ch[5] - (actual[ch[2]] or ch[5])) ~= 0 then
            raw = redis.call('MGET', unpack(KEYS, 1, 1 + n))
            break
        end
    end
    local time = clock or redis.call('TIME')
    local now = time[1] * 1000 + time[2] / 1000

    local scopes = {} -- scope i -> its live records (lib/state.lua), read when first needed
    local function records(i)
        if not scopes[i] then scopes[i] = state.read(raw[1 + i], now) end
        return scopes[i]
    end

    local binding, credit = 0, 0 -- the root's slowest refill of a call's cost, and what it got back (ms)
    for _, ch in ipairs(reservation.charges) do
        local i, res, tag, kind, cost, mark, rate, burst, ceiling, born, absorbedThen, shadow = unpack(ch, 1, 12)
        local refund = cancel and cost or cost - (actual[res] or cost) -- < 0: an overrun to charge
        local st = refund ~= 0 and records(i) or NONE
        local r = st.byTag[tag]
        local given = 0
        if refund ~= 0 and kind == 'bucket' then
            if not r and refund < 0 then -- expired, so full: record the overrun as fresh debt
                r = state.add(st, tag, burst, now, burst, 0, '')
            end
            if r then
                given = bucket.refund(r, now, refund, cost, mark, rate, burst, ceiling, born, absorbedThen)
                st.dirty = true
            end
        elseif refund ~= 0 and (kind == 'exact' or kind == 'window' and r and r.blob ~= '') then -- an exact log
            local ms = tonumber(string.match(tag, '/w(%d+)$'))
            if not r and refund < 0 then -- expired (or never written): the overrun starts a fresh log
                r = state.add(st, tag, 0, 0, 0, now + ms, '')
            end
            if r and r.c ~= 0 then r = nil end -- the limit was edited into an approximate window since
            if r and window.refundExact(r, now, refund, mark, ms) then st.dirty = true end
        elseif refund ~= 0 and r and kind == 'window' then
            if window.refund(r, refund, mark) then st.dirty = true end
        elseif refund ~= 0 and r and kind == 'budget' then
            if budget.refund(r, refund, mark) then st.dirty = true end
        end
        if i == 1 and kind == 'bucket' and not shadow and rate > 0 and cost / rate > binding then
            binding, credit = cost / rate, given / rate
        end
    end
    if shared then shared.line_credit = credit end

    for i, st in pairs(scopes) do
        if st.dirty then state.write(KEYS[1 + i], st, now) end
    end
    if reservation.call then -- tree-exit.lua's work for the call decide admitted into the tree
        lib.tree.exit(KEYS[2 + n], KEYS[3 + n], reservation.call, cancel, actual)
    end
    local status = cancel and 'cancelled' or 'settled'
    redis.call('SET', KEYS[1], status, 'KEEPTTL')
    return { status }
end

if redis.register_function then -- FUNCTION LOAD
    redis.register_function('sluice_settle_VERSION', function(keys, args) return settle(keys, args) end)
else -- EVAL
    return settle(KEYS, ARGV)
end
