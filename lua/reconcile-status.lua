-- reconcile-status: the reconciler's state of a partition, read only (lib/ceiling.lua describes it).
--
-- KEYS[1] the root scope's state key
-- Reply: {Redis time ms, pause-until ms (0: none in force), last cut ms (0: none), cuts, N, then per
--   resource: name, stated limit (0: unknown), window ms, pending stated limit (0: none), times seen,
--   safety, the ceiling's share now (g, text), the ceiling now per window (the cap rate now, that is
--   stated x safety climbing after a raise, x window x g; text, "" if no stated limit), the lowest
--   remaining reported (-1: none), when its request was sent ms}
local ceiling = lib.ceiling
local time = redis.call('TIME')
local now = time[1] * 1000 + time[2] / 1000
local r = lib.state.read(redis.call('GET', KEYS[1]), now).byTag[ceiling.TAG]
if not r then return { math.floor(now), 0, 0, 0, 0 } end
local entries = ceiling.entries(r.blob)
local reply = { math.floor(now), r.a > now and math.floor(r.a) or 0, math.floor(r.b), r.c, #entries }
for _, e in ipairs(entries) do
    local g, cap = ceiling.share(e, now), ceiling.capNow(e, now)
    for _, v in ipairs({ e.name, e.stated, e.window, e.pending, e.seen, string.format('%.6g', e.safety),
        string.format('%.6g', g), e.stated > 0 and string.format('%.6g', cap * e.window * g) or '',
        e.capAt > 0 and math.floor(e.capLevel) or -1, math.floor(e.capAt) }) do
        reply[#reply + 1] = v
    end
end
return reply
