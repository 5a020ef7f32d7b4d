-- Claim a batch of attempts without rate limits (the common case) in one script call
-- (taskhub/engine/claims.py claim_fetched, and the shared round trips of claim_attempt).
-- KEYS: claim, cancel flag, pause flag of each attempt, in threes.
-- ARGV: claim TTL, then the claiming worker and the attempt of each. One answer per attempt:
-- 'claimed', 'cancelled', 'paused' or 'duplicate'.
local answers = {}
for i = 1, #KEYS / 3 do
    local claim, cancel, pause = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
    if not redis.call('SET', claim, ARGV[2 * i], 'NX', 'EX', ARGV[1]) then
        answers[i] = 'duplicate'
    else
        answers[i] = stopped(cancel, pause, ARGV[2 * i + 1]) or 'claimed'
    end
end
return answers
