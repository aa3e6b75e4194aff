-- numbers: the integers callers send as text (costs, limits, ms), read one way everywhere; the
-- library keeps it as lib.numbers.
-- Only what runs when the library loads may be at the top level: no globals (string) there.

local numbers = {
    MAX = 1125899906842624, -- 2^50: a larger count is absurd, and inexact in doubles
}
local MAX = numbers.MAX

-- "5000" -> 5000: a decimal integer, 0 to high (default MAX); nil for anything else ("-1", "1e2",
-- "0x10", "1.5", "inf", "", a number too large).
function numbers.count(v, high)
    local n = type(v) == 'string' and string.find(v, '^%d+$') and tonumber(v)
    if n and n <= (high or MAX) then return n end
    return nil
end

return numbers
