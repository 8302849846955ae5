package redis

// The scripts run atomically on the server, so a session and its subject's
// set never disagree for another client to see. They read the time with
// TIME (allowed since Redis 5 replicates script effects, not scripts) and
// use PEXPIRETIME and PEXPIREAT ... GT, hence Redis 7.0 or later. Lua
// numbers are doubles: instants cross into Lua as milliseconds (exact), and
// LastSeen in nanoseconds stays a string.

// createScript: KEYS session, subject set; ARGV id, json, LastSeen ns,
// LastSeen ms, ExpiresAt ms, IdleTimeout ms, CreatedAt ms, bound, session
// key prefix, subject. Returns -1 if a live session has the ID, else the
// number of sessions evicted.
const createScript = `
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = tonumber(ARGV[5])
local idle = tonumber(ARGV[6])
local deadline = exp
if idle > 0 and tonumber(ARGV[4]) + idle < deadline then deadline = tonumber(ARGV[4]) + idle end
if deadline <= now then return 0 end

-- Count the subject's live sessions; forget members that expired or whose
-- ID was reused by another subject.
local live = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('HGET', ARGV[9] .. m, 's') == ARGV[10] then
    live[#live + 1] = m
  else
    redis.call('ZREM', KEYS[2], m)
  end
end
local evicted = 0
local bound = tonumber(ARGV[8])
while #live - evicted >= bound do
  evicted = evicted + 1
  redis.call('DEL', ARGV[9] .. live[evicted])
  redis.call('ZREM', KEYS[2], live[evicted])
end

redis.call('HSET', KEYS[1], 'j', ARGV[2], 'l', ARGV[3], 'x', ARGV[5], 'i', ARGV[6], 's', ARGV[10])
redis.call('PEXPIREAT', KEYS[1], deadline)
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[1])
-- The set lives as long as its longest-lived session could.
if redis.call('PEXPIRETIME', KEYS[2]) < exp then redis.call('PEXPIREAT', KEYS[2], exp) end
return evicted
`

// touchScript: KEYS session. Returns false if there is no live session,
// else {json, LastSeen ns}.
const touchScript = `
local h = redis.call('HMGET', KEYS[1], 'j', 'l', 'x', 'i')
if not h[1] then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = tonumber(h[3])
if now >= exp then return false end
local last = t[1] .. string.format('%06d', tonumber(t[2])) .. '000'
if #h[2] > #last or (#h[2] == #last and h[2] > last) then
  last = h[2] -- a LastSeen ahead of the server's clock is not rewound
else
  redis.call('HSET', KEYS[1], 'l', last)
end
local idle = tonumber(h[4])
if idle > 0 then
  local deadline = exp
  if now + idle < exp then deadline = now + idle end
  redis.call('PEXPIREAT', KEYS[1], deadline, 'GT')
end
return {h[1], last}
`

// deleteScript: KEYS session; ARGV subject key prefix, id. Returns 1 if it
// deleted a live session, else 0.
const deleteScript = `
local s = redis.call('HGET', KEYS[1], 's')
if not s then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[1] .. s, ARGV[2])
return 1
`

// deleteSubjectScript: KEYS subject set; ARGV session key prefix, subject.
// Returns how many live sessions it deleted.
const deleteSubjectScript = `
local n = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('HGET', ARGV[1] .. m, 's') == ARGV[2] then
    n = n + redis.call('DEL', ARGV[1] .. m)
  end
end
redis.call('DEL', KEYS[1])
return n
`

// updateScript: KEYS session; ARGV the json the caller read, the new json,
// the new ExpiresAt ms, the subject key prefix. Returns 0 if there is no live session, -1 if its
// json is no longer what the caller read (another Update won), else 1. The
// comparison is of the whole stored json, byte for byte: no version field
// is needed, and Touch (which writes only l) never conflicts.
const updateScript = `
local h = redis.call('HMGET', KEYS[1], 'j', 'l', 'i', 's')
if not h[1] then return 0 end
if h[1] ~= ARGV[1] then return -1 end
local exp = tonumber(ARGV[3])
local deadline = exp
local idle = tonumber(h[3])
if idle > 0 then
  local last = math.floor(tonumber(h[2]) / 1000000)
  if last + idle < deadline then deadline = last + idle end
end
redis.call('HSET', KEYS[1], 'j', ARGV[2], 'x', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], deadline)
-- The subject's set must outlive a session whose expiry moved later.
local set = ARGV[4] .. h[4]
if redis.call('PEXPIRETIME', set) < exp then redis.call('PEXPIREAT', set, exp) end
return 1
`
