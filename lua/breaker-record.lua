-- breaker-record: the outcome of a call the breaker let through. Closed: counted in a sliding
-- window of buckets; at least ARGV[5] calls with a failure ratio >= ARGV[6] open the breaker for
-- the whole fleet (once: one transition, one event). Half-open: a failed probe opens it again; once
-- ARGV[8] probes have succeeded it closes. Outcomes that arrive while open are stale and ignored.
--
-- KEYS[1] sluice:{P}:breaker:<name>  STRING (see breaker-allow)   KEYS[2] sluice:{P}:events
-- ARGV[1] breaker name (for events)   ARGV[2] "success" | "failure"   ARGV[3] probe id (0: none)
-- ARGV[4] window ms   ARGV[5] minimum calls   ARGV[6] failure ratio, e.g. "0.15"   ARGV[7] cool-down ms
-- ARGV[8] probe successes that close it   ARGV[9] buckets per window   ARGV[10] key ttl ms
-- Reply: {state, calls in the window, failures in the window}
-- The key's expiry is set (PX) when it is new and once half of it has passed (its state's e records
-- when); in between the state is written with KEEPTTL, which costs Redis a fraction of PX.
-- The third parameter, when a composite (call-finish) runs it, is the TIME reply it already has.

-- The last state this library wrote, and its table: every worker's calls run in this one Lua VM, so
-- the value read back is nearly always the one written last, and its cmsgpack need not be unpacked
-- again. (Forgotten while a record is changed: a script error half way leaves no half-changed table.)
local lastRaw, lastState = nil, nil

local function breaker_record(KEYS, ARGV, t)
    t = t or redis.call('TIME')
    local now = t[1] * 1000 + math.floor(t[2] / 1000)
    local raw = redis.call('GET', KEYS[1])
    local s
    if raw and raw == lastRaw then
        s = lastState
    else
        s = raw and cmsgpack.unpack(raw) or { s = 'closed', u = 0, b = {}, p = {}, n = 0, ok = 0, g = 0 }
    end
    lastRaw, lastState = nil, nil
    local failed, probe = ARGV[2] == 'failure', tonumber(ARGV[3])
    local window, buckets = tonumber(ARGV[4]), tonumber(ARGV[9])
    local function event(kind, detail)
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'type', kind, 'breaker', ARGV[1], 'detail', detail)
        redis.call('PEXPIRE', KEYS[2], 604800000)
    end
    local function open(why)
        s.s, s.u, s.b, s.p, s.ok, s.g = 'open', now + tonumber(ARGV[7]), {}, {}, 0, (s.g or 0) + 1
        event('breaker-open', why .. '; open for ' .. ARGV[7] .. ' ms')
    end
    local calls, failures = 0, 0
    if s.s == 'closed' then
        local width = math.max(1, math.floor(window / buckets))
        local current, b, kept, found = math.floor(now / width), s.b, 0, false
        for i = 1, #b do -- the buckets still in the window, kept in place
            local bucket = b[i]
            b[i] = nil
            if bucket[1] > current - buckets then
                if bucket[1] == current then
                    bucket[2], bucket[3], found = bucket[2] + 1, bucket[3] + (failed and 1 or 0), true
                end
                kept = kept + 1
                b[kept] = bucket
                calls, failures = calls + bucket[2], failures + bucket[3]
            end
        end
        if not found then
            b[kept + 1] = { current, 1, failed and 1 or 0 }
            calls, failures = calls + 1, failures + (failed and 1 or 0)
        end
        if failed and calls >= tonumber(ARGV[5]) and failures >= tonumber(ARGV[6]) * calls then
            open(failures .. ' of ' .. calls .. ' calls failed in ' .. window .. ' ms')
        end
    elseif s.s == 'half-open' and probe > 0 then
        local live, mine = {}, false
        for _, p in ipairs(s.p) do
            if p[1] == probe then mine = true else live[#live + 1] = p end
        end
        s.p = live
        if mine and failed then
            open('a probe call failed')
        elseif mine then
            s.ok = s.ok + 1
            if s.ok >= tonumber(ARGV[8]) then
                s.s, s.b, s.p, s.ok = 'closed', {}, {}, 0
                event('breaker-closed', ARGV[8] .. ' probe calls succeeded')
            end
        end
    else
        lastRaw, lastState = raw, s -- unchanged
        return { s.s, 0, 0 } -- stale: the outcome of a call let through before the breaker opened
    end
    local ttl = tonumber(ARGV[10])
    local keep = raw and s.e and now >= s.e and now - s.e < ttl / 2
    if not keep then s.e = now end
    local packed = cmsgpack.pack(s)
    if keep then
        redis.call('SET', KEYS[1], packed, 'KEEPTTL')
    else
        redis.call('SET', KEYS[1], packed, 'PX', ARGV[10])
    end
    lastRaw, lastState = packed, s
    return { s.s, calls, failures }
end

if redis.register_function then
    redis.register_function('sluice_breaker_record_VERSION', function(keys, args) return breaker_record(keys, args) end)
else
    return breaker_record(KEYS, ARGV)
end
