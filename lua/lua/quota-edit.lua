-- quota-edit: compare-and-set one field of a partition's config hash, for `sluice quota set/rm`
-- (the CLI reads the field, edits the spec, and writes it back only if nobody changed it since).
-- The config hash is operator data: the one key Sluice writes without an expiry.
--
-- KEYS[1] sluice:{P}:quotas
-- ARGV[1] the field   ARGV[2] "1" if the field is expected to hold ARGV[3], "0" if expected absent
-- ARGV[4] "1": set the field to ARGV[5]; "0": delete it
-- Reply: 1 when written, 0 when the field had changed (read it again and retry)
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (ARGV[2] == '1' and current ~= ARGV[3]) or (ARGV[2] == '0' and current) then return 0 end
if ARGV[4] == '1' then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
else
    redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
