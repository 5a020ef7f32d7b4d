-- The check every claim script starts with (taskhub/engine/pause.py loads it; the scripts of
-- taskhub/engine/claims.py call it): why an attempt must not start now, or false if it may.
-- 'cancelled': its task's cancel flag covers the attempt (a flag holds the highest attempt a
-- cancel covers). 'paused': its queue's pause flag is set.
local function stopped(cancel_flag, pause_flag, attempt)
    if (tonumber(redis.call('GET', cancel_flag)) or 0) >= tonumber(attempt) then
        return 'cancelled'
    end
    if redis.call('EXISTS', pause_flag) == 1 then
        return 'paused'
    end
    return false
end
