-- A claim made when its message was fetched, confirmed just before the attempt starts: the
-- cancel and pause flags are read again (taskhub/engine/claims.py confirm_claim).
-- KEYS: claim, cancel flag, pause flag. ARGV: worker id, attempt.
-- Returns 'claimed', 'cancelled', 'paused' or 'duplicate' (the claim is not ours).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'duplicate' end
return stopped(KEYS[2], KEYS[3], ARGV[2]) or 'claimed'
