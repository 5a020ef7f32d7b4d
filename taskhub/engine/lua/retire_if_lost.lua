-- Retire an attempt whose claim may have gone with Redis's data: a message RabbitMQ delivered
-- again, sent before Redis last lost its data (taskhub/engine/claims.py retire_if_lost).
-- KEYS: the attempt's claim, the marker of when Redis's current data began
-- (taskhub/engine/redis_memory.py kept_key). ARGV: the message's send time (epoch ms), claim TTL.
-- Returns 'retired' (the claim is now taken by 'retired'), or 'unknown' when nothing says the
-- claim was lost (it is held, or the message was sent since the data began).
if redis.call('EXISTS', KEYS[1]) == 1 then return 'unknown' end
local kept = redis.call('GET', KEYS[2])
if not kept then
    -- Nobody has looked since the data went: it begins now, and every message already sent
    -- is older than it.
    local t = redis.call('TIME')
    kept = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', KEYS[2], kept)
end
if tonumber(ARGV[1]) >= tonumber(kept) * 1000 then return 'unknown' end
redis.call('SET', KEYS[1], 'retired', 'EX', ARGV[2])
return 'retired'
