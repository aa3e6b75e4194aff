-- state: the format of a scope's state key, which decide.lua, settle.lua, reconcile.lua and
-- shard-share.lua read and write (the library keeps it as lib.state).
--
-- A scope's key holds its own expiry (a double, ms), then per limit a record: "<tag length><tag>",
-- four doubles a, b, c, x (the record's expiry) and "<16-bit length><blob>".
--   bucket "<res>/b"      a level, b updated at, c ceiling level; blob its pool (lib/bucket.lua)
--   window "<res>/w<ms>"  a count in this window, b count in the last one, c this window's index
--   exact  "<res>/w<ms>"  a running count before the log; blob the log: (time, running count)*
--   budget "<res>/g"      a used, b period index
--   "~"                   the reconciler's record, in the root scope only (lib/ceiling.lua)
-- A record past its expiry reads as fresh and is dropped at the next write. The key's expiry is
-- refreshed only when a record would outlive it (SET KEEPTTL otherwise: cheaper than PX).
-- Only what runs when the library loads may be at the top level: no globals (struct, math) there.

local state = {
    RECORD = '<Bc0ddddHc0', -- one record
    HEADED = '<dBc0ddddHc0', -- the key's expiry and the first record, read or written in one call
    -- The longest a record lives (ms, about 31 years): a bucket refilling 1 a million days from a debt
    -- of 2^50 would need 10^29 ms, which SET ... PX cannot take. Past it, a record reads as fresh.
    HORIZON = 1e12,
}
local RECORD = state.RECORD

-- The key's live records (s: its value, or false): { expires = the key's expiry (0: none),
-- records = { {tag, a, b, c, x, blob}... } in the key's order, byTag = tag -> record }.
function state.read(s, now)
    local st, pos = { expires = 0, records = {}, byTag = {} }, 9
    if s then st.expires = struct.unpack('<d', s) end
    while s and pos < #s do
        local tag, a, b, c, x, blob, nxt = struct.unpack(RECORD, s, pos)
        if x > now then state.add(st, tag, a, b, c, x, blob) end
        pos = nxt
    end
    return st
end

-- A record added to st (last in the key); returns it.
function state.add(st, tag, a, b, c, x, blob)
    local r = { tag = tag, a = a, b = b, c = c, x = x, blob = blob }
    st.records[#st.records + 1], st.byTag[tag] = r, r
    return r
end

-- The key's expiry for records that live until `last`: `old` while it covers them, else `last` with
-- slack (as long again, at most an hour: a busy scope refreshes rarely) and a second.
function state.expiry(old, last, now)
    if old >= last then return old end
    return math.ceil(last + (last - now < 3600000 and last - now or 3600000)) + 1000
end

-- Writes st's live records to `key` (deleted when none is left), with the key's expiry `expires`
-- (default: state.expiry); KEEPTTL while it stays the one the key has.
function state.write(key, st, now, expires)
    local parts, last = {}, now
    for _, r in ipairs(st.records) do
        if r.x > now then
            parts[#parts + 1] = struct.pack(RECORD, #r.tag, r.tag, r.a, r.b, r.c, r.x, #r.blob, r.blob)
            if r.x > last then last = r.x end
        end
    end
    if #parts == 0 then
        redis.call('DEL', key)
        return
    end
    expires = expires or state.expiry(st.expires, last, now)
    local body = struct.pack('<d', expires) .. table.concat(parts)
    if expires == st.expires then
        redis.call('SET', key, body, 'KEEPTTL')
    else
        redis.call('SET', key, body, 'PX', expires - math.floor(now))
    end
end

return state
