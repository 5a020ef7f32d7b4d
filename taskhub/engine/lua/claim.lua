-- Claim one attempt, waiting for rate-limit slots (taskhub/engine/claims.py claim_attempt).
-- KEYS: claim, cancel flag, pause flag, then one sliding-window key per rate limit.
-- ARGV: worker id, claim TTL, attempt, then one limit (starts per second) per rate key.
-- Returns 'claimed', 'cancelled', 'paused', 'duplicate', or the milliseconds to wait for a rate
-- slot. Everything is decided in one script so two workers can't both squeeze into one slot.
if redis.call('EXISTS', KEYS[1]) == 1 then return 'duplicate' end
local stop = stopped(KEYS[2], KEYS[3], ARGV[3])
if stop then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
    return stop
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for i = 4, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - 1000)
    if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[i]) then
        local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
        wait = math.max(wait, tonumber(oldest[2]) + 1000 - now)
    end
end
if wait > 0 then return tostring(wait) end
for i = 4, #KEYS do
    redis.call('ZADD', KEYS[i], now, ARGV[1] .. ':' .. KEYS[1])
    redis.call('PEXPIRE', KEYS[i], 2000)
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 'claimed'
