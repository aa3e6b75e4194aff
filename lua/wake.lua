-- wake: one wake-up for a caller blocked on a list (BLPOP), e.g. waiting for a request tree's call in
-- flight to end. The list is bounded and short-lived; whoever refuses a caller for want of the thing it
-- waits for empties it first (call-admit), so a wake-up there always stands for something freed since.
--
-- KEYS[1] the list, sluice:{P}:...:free
-- Reply: 1
redis.call('LPUSH', KEYS[1], 1)
redis.call('LTRIM', KEYS[1], 0, 999)
redis.call('PEXPIRE', KEYS[1], 60000)
return 1
