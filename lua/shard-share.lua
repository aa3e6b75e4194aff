-- shard-share: the share of a sharded global ceiling one shard holds, and its transfers. A root
-- scope set with `--shards N` splits each of its token buckets (rate R, burst B) across N shard
-- partitions, {<root>~s0} ... {<root>~s<N-1>}: shard k holds a burst share b_k (sum of the b_k = B)
-- and refills at R x b_k / B, so the shards together never hold more than B nor refill faster than R.
-- decide.lua runs unchanged on a shard: this script writes the shard's spec into its config hash
-- (field "global=<root>") whenever its share changes, and moves the bucket's tokens with the share.
--
-- A transfer moves share AND tokens from a donor to a receiver in two steps on two slots:
--   give (donor):    b_d -= s, level_d -= s (only unused tokens: s <= level_d, and b_d stays >= 1);
--                    the amount waits in the donor's in-transit hash under the transfer id, with a
--                    deadline (the donor's time + the transit ms). Held by nobody meanwhile.
--   take (receiver): before the deadline, once per transfer id: b_r += s, level_r += s; a claim key
--                    records "taken" (or "refused": too late, or another epoch) for the transfer id.
--   finish (donor):  the in-transit record is dropped.
-- A transfer cut short: past its deadline (plus a margin) the donor's next sweep finds the record;
-- the caller reads the receiver's claim (final after the deadline: a take never succeeds later) and
-- "return" gives the share back to the donor unless it was taken. The primaries' clocks must agree
-- within the margin for the bound to hold across servers (one server: always).
-- "set" (re)splits the limits: a new epoch; transfers of another epoch are never credited.
--
-- KEYS[1] sluice:{<root>~s<k>}:quotas  the shard's config hash; field "share" holds this script's
--   state (cmsgpack: e epoch, i index, n shards, L per bucket: r resource, n rate amount, ms rate
--   window ms, B burst, D debt (-1: default), h headroom (-1: none), sh shadow 0|1, b the share),
--   field "global=<root>" the spec decide.lua reads (operator data: the config hash has no expiry)
-- KEYS[2] sluice:{<root>~s<k>}:s:global=<root>  the shard's root state (lib/state.lua)
-- KEYS[3] sluice:{<root>~s<k>}:transit  HASH transfer id -> cmsgpack { to, r, s, e, d deadline }
-- KEYS[4] sluice:{<root>~s<k>}:claim:<id>  take only: the receiver's claim of transfer <id>
-- ARGV[1] the operation, then:
--   set      ARGV[2] epoch, [3] index, [4] shards, [5] the spec field "global=<root>", then per
--            bucket 8 values: resource, rate amount, rate window ms, burst, debt (-1), headroom (-1),
--            shadow 0|1, this shard's share. Reply 1.
--   give     ARGV[2] epoch, [3] resource, [4] the tokens needed, [5] transfer id, [6] receiver
--            index, [7] transit ms. Gives min(spare, max(needed, half the spare)), spare =
--            min(level, share - 1). Reply {given (0: nothing to spare, or another epoch), deadline ms}.
--   take     ARGV[2] epoch, [3] resource, [4] amount, [5] transfer id, [6] deadline ms, [7] donor
--            index. Reply 1 taken (now or before), 0 refused.
--   finish   ARGV[2] transfer id. Reply 1.
--   sweep    ARGV[2] margin ms. Reply: per in-transit record past deadline + margin: id, receiver.
--   return   ARGV[2] margin ms, then pairs: transfer id, 1 if the receiver took it (else 0).
--            Reply: the tokens given back.
--   status   Reply {epoch, index, shards, then per bucket: resource, share, level (floored)}.
-- Every key but the config hash expires: the state as decide.lua keeps it, the in-transit hash a day
-- after its last deadline, a claim two days after its transfer's deadline.

local state = lib.state
local HORIZON = state.HORIZON
local MAX = lib.numbers.MAX -- 2^50
local UNITS = { { 'd', 86400000 }, { 'h', 3600000 }, { 'min', 60000 }, { 's', 1000 } }
local floor, ceil = math.floor, math.ceil
local op = ARGV[1]
local time = redis.call('TIME')
local now = time[1] * 1000 + time[2] / 1000

local function fail(why) return redis.error_reply('shard-share: ' .. why) end
local function int(v, low)
    local n = type(v) == 'string' and string.find(v, '^%-?%d+$') and tonumber(v)
    if not n or n < (low or 0) or n > MAX then return nil end
    return n
end
local function text(v) return string.format('%.0f', v) end

local function gcd(a, b)
    while b > 0 do a, b = b, math.fmod(a, b) end
    return a
end
-- The rate R x b / B as decide.lua's "N/KUNIT": exact when it can be written so, else rounded down
-- (a shard never refills faster than its share of the rate; a share too small to write at all
-- refills 1 per 1,000,000 days).
local function rateText(l)
    local num, den = l.n * l.b, l.ms * l.B
    if num < 2 ^ 53 and den < 2 ^ 53 then
        local g = gcd(num, den)
        local a, w = num / g, den / g
        for _, u in ipairs(UNITS) do
            if math.fmod(w, u[2]) == 0 and w / u[2] <= 1000000 and a <= MAX then
                local k = w / u[2]
                return text(a) .. '/' .. (k == 1 and '' or text(k)) .. u[1]
            end
        end
    end
    local perMs = l.n / l.ms * (l.b / l.B)
    local k, unit = 1000000, 86400000
    if perMs * k * unit > MAX then unit, k = 1000, floor(MAX / (perMs * 1000)) end
    if k < 1 then k = 1 end
    local a = floor(perMs * k * unit * (1 - 1e-12))
    if a < 1 then return '1/1000000d' end
    if a > MAX then a = MAX end
    return text(a) .. '/' .. (k == 1 and '' or text(k)) .. (unit == 1000 and 's' or 'd')
end
local function specText(share)
    local parts = {}
    for _, l in ipairs(share.L) do
        local s = l.r .. ': bucket rate=' .. rateText(l) .. ' burst=' .. text(l.b)
        if l.D >= 0 then s = s .. ' debt=' .. text(math.min(l.D, floor(l.D * (l.b / l.B)))) end
        if l.h >= 0 then s = s .. ' headroom=' .. text(l.h) end
        if l.sh == 1 then s = s .. ' shadow' end
        parts[#parts + 1] = s
    end
    return table.concat(parts, '; ')
end
local function perMs(l) return l.n / l.ms * (l.b / l.B) end

-- The root state's live records (lib/state.lua).
local function readState() return state.read(redis.call('GET', KEYS[2]), now) end
-- The bucket's level now, refilled at the share in force (as decide.lua would read it).
local function levelNow(st, l)
    local r = st.byTag[l.r .. '/b']
    if not r then return l.b end
    local dt = now - r.b
    if dt < 0 then dt = 0 end
    local level = r.a + dt * perMs(l)
    if level > l.b then level = l.b end
    return level
end
-- Writes the bucket's record at `level` (updated now) under the share in force, keeping the others.
local function writeLevel(st, l, level)
    local tag = l.r .. '/b'
    local r = st.byTag[tag]
    local full = (l.b - level) / perMs(l)
    if full > HORIZON then full = HORIZON end
    if not r then
        if level >= l.b then return end -- no record reads as full: nothing to write
        r = state.add(st, tag, 0, 0, 0, 0, '')
    end
    r.a, r.b, r.c, r.x = level, now, level, now + full
    state.write(KEYS[2], st, now)
end
local function readShare()
    local raw = redis.call('HGET', KEYS[1], 'share')
    return raw and cmsgpack.unpack(raw) or nil
end
local function limitOf(share, res)
    for _, l in ipairs(share.L) do
        if l.r == res then return l end
    end
    return nil
end
local function saveShare(share, field)
    redis.call('HSET', KEYS[1], 'share', cmsgpack.pack(share), field or share.f, specText(share))
end
-- Adds `amount` (negative: removes) to the share and the level of bucket l, the level first
-- brought to now at the old share.
local function move(st, l, amount)
    local level = levelNow(st, l)
    l.b = l.b + amount
    writeLevel(st, l, level + amount)
end

if op == 'set' then
    local epoch, index, count, field = ARGV[2], int(ARGV[3]), int(ARGV[4], 1), ARGV[5]
    if not epoch or epoch == '' or not index or not count or index >= count or not field then
        return fail('set takes an epoch, an index below the shard count, and the spec field')
    end
    if (#ARGV - 5) % 8 ~= 0 or #ARGV == 5 then return fail('set takes 8 values per bucket') end
    local share = { e = epoch, i = index, n = count, f = field, L = {} }
    for at = 6, #ARGV, 8 do
        local l = { r = ARGV[at], n = int(ARGV[at + 1], 1), ms = int(ARGV[at + 2], 1000), B = int(ARGV[at + 3], 1),
            D = int(ARGV[at + 4], -1), h = int(ARGV[at + 5], -1), sh = int(ARGV[at + 6]), b = int(ARGV[at + 7], 1) }
        if not string.find(l.r, '^[%a_][%w_]*$') or not l.n or not l.ms or not l.B or not l.D or not l.h
            or not l.sh or not l.b or l.b > l.B then
            return fail('a bucket is: resource, rate amount, window ms, burst, debt, headroom, shadow, share <= burst')
        end
        share.L[#share.L + 1] = l
    end
    -- Tokens left from before stay, up to the new share (never more: the shards' sum stays <= B).
    local st, old = readState(), readShare()
    for _, l in ipairs(share.L) do
        local level = l.b
        local before = old and limitOf(old, l.r)
        if before then level = levelNow(st, before) else
            local r = st.byTag[l.r .. '/b']
            if r then level = r.a end
        end
        if level > l.b then level = l.b end
        writeLevel(st, l, level)
    end
    saveShare(share, field)
    return 1
elseif op == 'give' then
    local share = readShare()
    local need, transit = int(ARGV[4], 1), int(ARGV[7], 1)
    if not need or not transit or not ARGV[5] or ARGV[5] == '' or not int(ARGV[6]) then
        return fail('give takes an epoch, a resource, the tokens needed, an id, the receiver, the transit ms')
    end
    if not share or share.e ~= ARGV[2] then return { 0, 0 } end
    local l = limitOf(share, ARGV[3])
    if not l then return { 0, 0 } end
    local st = readState()
    local spare = floor(levelNow(st, l))
    if spare > l.b - 1 then spare = l.b - 1 end
    if spare < 1 then return { 0, 0 } end
    local s = ceil(spare / 2)
    if s < need then s = need end
    if s > spare then s = spare end
    move(st, l, -s)
    saveShare(share)
    local deadline = floor(now) + transit
    redis.call('HSET', KEYS[3], ARGV[5], cmsgpack.pack({ to = tonumber(ARGV[6]), r = l.r, s = s, e = share.e, d = deadline }))
    local ttl = transit + 86400000
    if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
    return { s, deadline }
elseif op == 'take' then
    local amount, deadline = int(ARGV[4], 1), int(ARGV[6], 1)
    if not amount or not deadline or not ARGV[5] or ARGV[5] == '' or not KEYS[4] then
        return fail('take takes an epoch, a resource, an amount, an id, a deadline, the donor; and the claim key')
    end
    local claim = redis.call('GET', KEYS[4])
    if claim then return claim == 'taken' and 1 or 0 end
    local share = readShare()
    local l = share and share.e == ARGV[2] and limitOf(share, ARGV[3])
    local ttl = ceil(deadline - now) + 2 * 86400000
    if ttl < 2 * 86400000 then ttl = 2 * 86400000 end
    if not l or now >= deadline then
        redis.call('SET', KEYS[4], 'refused', 'PX', ttl)
        return 0
    end
    move(readState(), l, amount)
    saveShare(share)
    redis.call('SET', KEYS[4], 'taken', 'PX', ttl)
    return 1
elseif op == 'finish' then
    redis.call('HDEL', KEYS[3], ARGV[2])
    return 1
elseif op == 'sweep' or op == 'return' then
    local margin = int(ARGV[2])
    if not margin then return fail(op .. ' takes the margin ms') end
    if op == 'sweep' then
        local out, all = {}, redis.call('HGETALL', KEYS[3])
        for k = 1, #all, 2 do
            local t = cmsgpack.unpack(all[k + 1])
            if t.d + margin < now then out[#out + 1] = all[k]; out[#out + 1] = t.to end
        end
        return out
    end
    local share, st, back = readShare(), nil, 0
    for at = 3, #ARGV - 1, 2 do
        local raw = redis.call('HGET', KEYS[3], ARGV[at])
        local t = raw and cmsgpack.unpack(raw)
        if t and t.d + margin < now then
            local l = ARGV[at + 1] ~= '1' and share and share.e == t.e and limitOf(share, t.r)
            if l then
                st = st or readState()
                move(st, l, t.s)
                back = back + t.s
            end
            redis.call('HDEL', KEYS[3], ARGV[at])
        end
    end
    if back > 0 then saveShare(share) end
    return back
elseif op == 'status' then
    local share = readShare()
    if not share then return {} end
    local out, st = { share.e, share.i, share.n }, readState()
    for _, l in ipairs(share.L) do
        out[#out + 1] = l.r
        out[#out + 1] = l.b
        out[#out + 1] = floor(levelNow(st, l))
    end
    return out
end
return fail('the operation is set, give, take, finish, sweep, return or status')
