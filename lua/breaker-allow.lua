-- breaker-allow: may a call to this dependency go ahead? Closed: yes. Open: no, until the
-- cool-down has passed; then half-open, where at most ARGV[2] probe calls are let through fleet-wide
-- (a probe that never reports frees its slot after the probe timeout).
--
-- KEYS[1] sluice:{P}:breaker:<name>  STRING: cmsgpack { s = "closed"|"open"|"half-open", u = open
--         until (ms), b = {{bucket, calls, failures}...}, p = {{probe id, expires at}...},
--         n = last probe id, ok = probe successes, g = times opened, e = when the key's expiry was
--         last set (ms, breaker-record) }. The state s is the only string value in it, so a closed
--         breaker is recognised by the bytes cmsgpack writes for s = "closed" without unpacking.
-- KEYS[2] sluice:{P}:events  the partition's event stream
-- ARGV[1] breaker name (for events)   ARGV[2] max probes   ARGV[3] probe timeout ms   ARGV[4] key ttl ms
-- ARGV[5] optional "if-closed": a permit only if the breaker is closed, else {2, state, 0} and nothing
--   written (call-finish asks so for a retry after its backoff: a closed breaker's permit holds nothing,
--   while a probe slot must not be held through the pause)
-- Reply: {1, state, probe id (0: not a probe)} go ahead; {0, state, retry after ms} refused
-- The third parameter, when a composite (call-admit) runs it, is the TIME reply it already has.

local CLOSED = { 1, 'closed', 0 } -- the common reply, never changed
local IS_CLOSED = '\161s\166closed' -- cmsgpack of the key "s" and the value "closed"

local function breaker_allow(KEYS, ARGV, t)
    local raw = redis.call('GET', KEYS[1])
    if not raw or string.find(raw, IS_CLOSED, 1, true) then return CLOSED end
    local s = cmsgpack.unpack(raw)
    if s.s == 'closed' then return CLOSED end
    if ARGV[5] == 'if-closed' then return { 2, s.s, 0 } end
    t = t or redis.call('TIME')
    local now = t[1] * 1000 + math.floor(t[2] / 1000)
    if s.s == 'open' then
        if now < s.u then return { 0, 'open', s.u - now } end
        s.s, s.p, s.ok = 'half-open', {}, 0
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'type', 'breaker-half-open', 'breaker', ARGV[1],
            'detail', 'cool-down over; letting ' .. ARGV[2] .. ' probe calls through')
        redis.call('PEXPIRE', KEYS[2], 604800000)
    end
    local live, first = {}, nil
    for _, p in ipairs(s.p) do
        if p[2] > now then
            live[#live + 1] = p
            first = math.min(first or p[2], p[2])
        end
    end
    s.p, s.e = live, now
    if #live >= tonumber(ARGV[2]) then
        redis.call('SET', KEYS[1], cmsgpack.pack(s), 'PX', ARGV[4])
        return { 0, 'half-open', first - now }
    end
    s.n = (s.n or 0) + 1
    live[#live + 1] = { s.n, now + tonumber(ARGV[3]) }
    redis.call('SET', KEYS[1], cmsgpack.pack(s), 'PX', ARGV[4])
    return { 1, 'half-open', s.n }
end

if redis.register_function then
    redis.register_function('sluice_breaker_allow_VERSION', function(keys, args) return breaker_allow(keys, args) end)
else
    return breaker_allow(KEYS, ARGV)
end
