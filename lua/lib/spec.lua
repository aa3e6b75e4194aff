-- spec: a quota spec's text -> its limits (QuotaConfiguration.md); decide.lua parses the config
-- hash's specs and the callers' defaults with it (and memoizes them). The library keeps it as
-- lib.spec. The limits it returns are what lib/bucket.lua, lib/window.lua and lib/budget.lua charge:
--   bucket { rate, ceil (per ms; ceil only with "ceiling"), burst, debt, headroom (tokens) }
--   window { limit, ms, exact }     budget { total, period, ttl (ms) }
-- each with kind, res (the resource), tag (its state record's, lib/state.lua) and shadow.
-- Only what runs when the library loads may be at the top level: no globals (string) there.

local spec = {}
local UNIT = { s = 1000, min = 60000, h = 3600000, d = 86400000 }
local PERIOD = lib.budget.PERIOD -- a budget's periods
local OPTION = {
    bucket = { rate = 1, burst = 1, debt = 1, ceiling = 1, headroom = 1, shadow = 1 },
    window = { limit = 1, exact = 1, approx = 1, shadow = 1 },
    budget = { total = 1, period = 1, ttl = 1, shadow = 1 },
}
local MAIN = { bucket = 'rate', window = 'limit', budget = 'total' }
local MAX_LIMITS = 32 -- per spec, all resources together (QuotaSpec.maximumLimits)
local NONE = {}

-- "tokens: bucket rate=90000/min burst=5000; requests: window 100/min; budget 5000 period=d"
-- -> { tokens = {limit}, requests = {limit, limit} } or { [ERR] = reason }. "R: none" = no limits.
-- The reason's key is no resource name (a resource "err" is a resource like any other).
local ERR = '?err'
spec.ERR = ERR
local count = lib.numbers.count -- "5000" -> 5000 (0 to 2^50), else nil
local function per(v) -- "90000/min", "100/10s" -> amount, ms
    local n, k, u = string.match(type(v) == 'string' and v or '', '^(%d+)/(%d*)(%a+)$')
    n, k = count(n), k == '' and 1 or count(k)
    if not UNIT[u] or not n or n == 0 or not k or k == 0 or k > 1000000 then return nil end
    return n, UNIT[u] * k
end

local function compile(c) -- one clause's options -> a limit, or nil and the reason
    for _, flag in ipairs({ 'shadow', 'exact', 'approx' }) do
        if c[flag] ~= nil and c[flag] ~= true then return nil, flag .. ' takes no value' end
    end
    local kind, shadow = c.kind, c.shadow == true
    if kind == 'bucket' then -- rate and ceiling are kept per ms
        local n, ms = per(c.rate)
        if not n then return nil, 'rate must be N/UNIT, UNIT s, min, h or d' end
        local burst = c.burst == nil and n or count(c.burst)
        if not burst or burst == 0 then return nil, 'burst must be a positive integer' end
        local debt = c.debt == nil and burst or count(c.debt)
        if not debt then return nil, 'debt must be an integer >= 0' end
        local ceil
        if c.ceiling ~= nil then
            local cn, cms = per(c.ceiling)
            if not cn or cn / cms < n / ms then return nil, 'ceiling must be N/UNIT, at least the rate' end
            ceil = cn / cms
        end
        local headroom = c.headroom == nil and 0 or count(c.headroom)
        if not headroom or headroom > 100 then return nil, 'headroom must be a percentage, 0 to 100' end
        return { kind = kind, suffix = '/b', rate = n / ms, burst = burst, debt = debt, ceil = ceil,
            headroom = burst * headroom / 100, shadow = shadow }
    elseif kind == 'window' then
        local n, ms = per(c.limit)
        if not n then return nil, 'window must be N/UNIT, UNIT s, min, h or d' end
        if c.exact and (c.approx or n > 100) then return nil, 'exact windows allow at most 100' end
        return { kind = kind, suffix = '/w' .. ms, limit = n, ms = ms, exact = c.exact or (n <= 100 and not c.approx),
            shadow = shadow }
    end
    local total = count(c.total)
    if not total then return nil, 'budget must be an integer' end
    if c.period ~= nil and not PERIOD[c.period] then return nil, 'period must be s, min, h, d, w or mo' end
    local n, u = string.match(c.ttl == nil and '7d' or tostring(c.ttl), '^(%d+)(%a+)$')
    n = count(n)
    if not UNIT[u] or not n or n == 0 or n > 1000000 then return nil, 'ttl must be N followed by s, min, h or d' end
    return { kind = kind, suffix = '/g', total = total, period = c.period, ttl = n * UNIT[u], shadow = shadow }
end

-- A spec's text -> its limits per resource (see above), or { [ERR] = the reason }.
function spec.parse(text)
    local out, res, c, seen, err, limits = {}, nil, nil, {}, nil, 0
    local function finish()
        if c and (c.kind == 'none' and #out[res] > 0 or c.kind ~= 'none' and out[res].none) then
            err = res .. ': none and limits at once'
        elseif c and c.kind == 'none' then
            out[res].none = true
            if next(c, nil) ~= 'kind' or next(c, 'kind') then err = 'none takes no options' end
        elseif c then
            local l, why = compile(c)
            if l then l.res, l.tag = res, res .. l.suffix end -- the tag names its state record
            if l and seen[l.tag] then l, why = nil, 'two ' .. res .. ' ' .. l.kind .. ' limits alike' end
            if l then table.insert(out[res], l) end
            if l then seen[l.tag] = true else err = why end
            -- A decision checks every limit of its path in one script, Redis blocked meanwhile: an
            -- operator's spec with more is ignored (and reported), as QuotaSpec refuses it.
            limits = limits + 1
            if limits > MAX_LIMITS then err = 'a spec holds at most ' .. MAX_LIMITS .. ' limits' end
        end
        c = nil
    end
    for word, sep in string.gmatch(text, '([^%s;]+)%s*(;?)') do
        local name, rest = string.match(word, '^([%a_][%w_]*):(.*)$')
        if name and not c then
            res, word = name, rest
            if out[res] then err = res .. ' given twice' end
            if #res > 32 then err = 'a resource name has at most 32 characters' end
            out[res] = {}
        end
        if word == '' then
            -- "tokens:" alone: the kind follows
        elseif not res then
            err = 'a spec starts with "<resource>:"'
        elseif not c then
            c = { kind = word }
            if word ~= 'none' and not OPTION[word] then err = 'unknown limit kind "' .. word .. '"' end
        else
            local eq, key, value = string.find(word, '=', 1, true), word, true
            if eq then
                key, value = string.sub(word, 1, eq - 1), string.sub(word, eq + 1)
            elseif string.find(word, '^%d') then
                key, value = MAIN[c.kind], word
            end
            if not (OPTION[c.kind] or NONE)[key] then err = 'unknown option "' .. tostring(key) .. '"'
            elseif c[key] ~= nil then err = '"' .. key .. '" given twice'
            else c[key] = value end
        end
        if err then return { [ERR] = err } end
        if sep == ';' then finish() end
    end
    finish()
    if err then return { [ERR] = err } end
    if not res then return { [ERR] = 'empty spec' } end
    return out
end

return spec
