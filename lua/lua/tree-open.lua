-- tree-open: records a request tree's limits once, fleet-wide; the first opener wins and later
-- ones (a retried root, a sub-agent racing it) read the same limits back.
--
-- KEYS[1] sluice:{P}:tree:<id>  HASH: dl deadline (ms, 0 none), md max depth, mc max children per
--         node, mi max calls in flight, lg loop guard (max identical calls), b:<resource> budget;
--         written later: u:<resource> spent, c:<node> children, l:<tool>|<fingerprint> calls,
--         r:<call> open reservations, x:<resource> budget-exhausted event sent (0 = unlimited)
-- ARGV[1] deadline in ms from now (0: none)   ARGV[2] lifetime ms of a tree without a deadline
-- ARGV[3] max depth   ARGV[4] max children   ARGV[5] max in flight   ARGV[6] loop guard N
-- ARGV[7...] pairs: resource, budget
-- Reply: {1 created | 0 existed, deadline at ms (0: none), now ms}
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local key = KEYS[1]
local existing = redis.call('HGET', key, 'dl')
if existing then return { 0, tonumber(existing), now } end
local within = tonumber(ARGV[1])
local deadline = within > 0 and now + within or 0
local fields = { 'dl', deadline, 'md', ARGV[3], 'mc', ARGV[4], 'mi', ARGV[5], 'lg', ARGV[6] }
for i = 7, #ARGV - 1, 2 do
    fields[#fields + 1] = 'b:' .. ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
end
redis.call('HSET', key, unpack(fields))
redis.call('PEXPIRE', key, deadline > 0 and within + 3600000 or tonumber(ARGV[2]))
return { 1, deadline, now }
