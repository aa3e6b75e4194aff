-- A trivial script: the client benchmark's EVALSHA target and a health probe.
-- KEYS: none. ARGV: none. Reply: 1.
return 1
