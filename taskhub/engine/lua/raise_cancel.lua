-- Raise cancel flags (taskhub/engine/claims.py set_cancel_flags).
-- KEYS: cancel flags. ARGV: TTL, then the attempt each flag must cover. A flag only ever rises:
-- a late write for an earlier attempt can't uncover a later cancel.
for i = 1, #KEYS do
    if (tonumber(redis.call('GET', KEYS[i])) or 0) < tonumber(ARGV[i + 1]) then
        redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ARGV[1])
    else
        redis.call('EXPIRE', KEYS[i], ARGV[1])
    end
end
return #KEYS
