-- reconcile-status: the reconciler's state of a partition, read only (reconcile.lua describes it).
--
-- KEYS[1] the root scope's state key
-- Reply: {Redis time ms, pause-until ms (0: none in force), last cut ms (0: none), cuts, N, then per
--   resource: name, stated limit (0: unknown), window ms, pending stated limit (0: none), times seen,
--   safety, the ceiling's share now (g, text), the ceiling now per window (the cap rate now, that is
--   stated x safety climbing after a raise, x window x g; text, "" if no stated limit), the lowest
--   remaining reported (-1: none), when its request was sent ms}
local ENTRY = '<Bc0ddddddddddddddd'
local time = redis.call('TIME')
local now = time[1] * 1000 + time[2] / 1000
local function since(t) return now > t and now - t or 0 end
local r = lib.state.read(redis.call('GET', KEYS[1]), now).byTag['~']
if not r then return { math.floor(now), 0, 0, 0, 0 } end
local blob = r.blob
local reply, n, at = { math.floor(now), r.a > now and math.floor(r.a) or 0, math.floor(r.b), r.c, 0 }, 0, 1
while at < #blob do
    local name, stated, window, pending, seen, safety, capRate, capFrom, capSince, capClimb, g0, cutAt, climb,
        capLevel, capAt, _, after = struct.unpack(ENTRY, blob, at)
    local g = math.min(1, g0 + climb * since(cutAt))
    local cap = capClimb > 0 and math.min(capRate, capFrom + capClimb * since(capSince)) or capRate
    for _, v in ipairs({ name, stated, window, pending, seen, string.format('%.6g', safety),
        string.format('%.6g', g), stated > 0 and string.format('%.6g', cap * window * g) or '',
        capAt > 0 and math.floor(capLevel) or -1, math.floor(capAt) }) do
        reply[#reply + 1] = v
    end
    n, at = n + 1, after
end
reply[5] = n
return reply
