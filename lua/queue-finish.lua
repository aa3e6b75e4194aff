-- queue-finish: an admitted call is done: it counts neither as waiting nor as in flight any more.
--
-- KEYS[1] sluice:{P}:queue:<scope>  ZSET of waiters   KEYS[2] sluice:{P}:inflight:<scope>  ZSET in flight
-- ARGV[1] caller id
-- Reply: 1 when it was in flight, else 0
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('ZREM', KEYS[2], ARGV[1])
