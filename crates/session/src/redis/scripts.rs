//! The Lua scripts behind every write (and the listing): each runs
//! atomically on the server, so one script call is one round trip and one
//! consistent step.
//!
//! Conventions for every script: `ARGV[1]` is the key prefix, session
//! keys are 64 lowercase hex digits, index names are built from the
//! prefix (so a narrow ACL key pattern such as `~portcullis:*` covers
//! them). Scripts carry Redis 7 flags: without `no-writes` a replica
//! answers `READONLY` before running them; without `allow-oom` a server
//! over `maxmemory` answers `OOM` before running them.

use ::redis::Script;

/// Creates a session unless its key exists.
///
/// KEYS\[1\] session hash. ARGV: prefix, key hex, json, revoked (0/1),
/// created_at, expires_at, subject hash hex, thumbprint hex or "",
/// refresh due time or "" (off the refresh schedule).
/// Returns 1 when created, 0 when the key exists (nothing written).
const CREATE: &str = r"#!lua
local p, k = ARGV[1], ARGV[2]
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local ix = p .. 'ix'
-- A key reused after its record expired by TTL: drop its old index entries.
local old = redis.call('HGET', ix, k)
if old then
  redis.call('SREM', p .. 'u:' .. string.sub(old, 1, 64), k)
  local ot = string.sub(old, 66)
  if ot ~= '' then redis.call('SREM', p .. 't:' .. ot, k) end
end
redis.call('HSET', KEYS[1], 'v', '1', 'r', ARGV[4], 'json', ARGV[3])
redis.call('EXPIREAT', KEYS[1], ARGV[6])
redis.call('SADD', p .. 'u:' .. ARGV[7], k)
if ARGV[8] ~= '' then redis.call('SADD', p .. 't:' .. ARGV[8], k) end
redis.call('HSET', ix, k, ARGV[7] .. ':' .. ARGV[8])
redis.call('ZADD', p .. 'c', ARGV[5], k)
redis.call('ZADD', p .. 'x', ARGV[6], k)
if ARGV[9] ~= '' and ARGV[4] ~= '1' then redis.call('ZADD', p .. 'r', ARGV[9], k) end
return 1
";

/// Compare-and-set on the version field.
///
/// KEYS\[1\] session hash. ARGV: prefix, key hex, expected version, new
/// version, json, revoked (0/1), created_at, expires_at, subject hash
/// hex, thumbprint hex or "", refresh due time or "".
/// Returns 0 when missing, 1 when written, or {json, v, r} of the stored
/// record on a conflict. A revoked record stays revoked.
const CAS: &str = r"#!lua
local p, k = ARGV[1], ARGV[2]
local cur = redis.call('HMGET', KEYS[1], 'json', 'v', 'r')
if not cur[2] then return 0 end
if cur[2] ~= ARGV[3] then return cur end
local r = ARGV[6]
if cur[3] == '1' then r = '1' end
redis.call('HSET', KEYS[1], 'v', ARGV[4], 'r', r, 'json', ARGV[5])
redis.call('EXPIREAT', KEYS[1], ARGV[8])
local ix = p .. 'ix'
local want = ARGV[9] .. ':' .. ARGV[10]
local old = redis.call('HGET', ix, k)
if old ~= want then
  if old then
    redis.call('SREM', p .. 'u:' .. string.sub(old, 1, 64), k)
    local ot = string.sub(old, 66)
    if ot ~= '' then redis.call('SREM', p .. 't:' .. ot, k) end
  end
  redis.call('SADD', p .. 'u:' .. ARGV[9], k)
  if ARGV[10] ~= '' then redis.call('SADD', p .. 't:' .. ARGV[10], k) end
  redis.call('HSET', ix, k, want)
end
redis.call('ZADD', p .. 'c', ARGV[7], k)
redis.call('ZADD', p .. 'x', ARGV[8], k)
if ARGV[11] ~= '' and r ~= '1' then
  redis.call('ZADD', p .. 'r', ARGV[11], k)
else
  redis.call('ZREM', p .. 'r', k)
end
return 1
";

/// Revokes one session. Allowed over `maxmemory`: it frees nothing but
/// grows nothing, and a revocation must never wait for memory.
///
/// KEYS\[1\] session hash. ARGV: prefix, key hex. Returns -1 when
/// missing, 0 when already revoked, 1 when newly revoked. A revoked
/// session leaves the refresh schedule.
const REVOKE: &str = r"#!lua flags=allow-oom
local r = redis.call('HGET', KEYS[1], 'r')
if not r then return -1 end
redis.call('ZREM', ARGV[1] .. 'r', ARGV[2])
if r == '1' then return 0 end
redis.call('HSET', KEYS[1], 'r', '1')
redis.call('HINCRBY', KEYS[1], 'v', 1)
return 1
";

/// Revokes every session of a subject and/or bound to a thumbprint.
///
/// ARGV: prefix, subject hash hex or "", thumbprint hex or "" (never
/// both empty: the caller refuses that). Returns how many were newly
/// revoked.
const REVOKE_MATCHING: &str = r"#!lua flags=allow-oom
local p, u, t = ARGV[1], ARGV[2], ARGV[3]
local members
if u ~= '' and t ~= '' then
  members = redis.call('SINTER', p .. 'u:' .. u, p .. 't:' .. t)
elseif u ~= '' then
  members = redis.call('SMEMBERS', p .. 'u:' .. u)
elseif t ~= '' then
  members = redis.call('SMEMBERS', p .. 't:' .. t)
else
  return redis.error_reply('ERR empty filter')
end
local n = 0
for _, k in ipairs(members) do
  local s = p .. 's:' .. k
  if redis.call('HGET', s, 'r') == '0' then
    redis.call('HSET', s, 'r', '1')
    redis.call('HINCRBY', s, 'v', 1)
    redis.call('ZREM', p .. 'r', k)
    n = n + 1
  end
end
return n
";

/// Lists records, read-only (runs on replicas and over `maxmemory`).
///
/// ARGV: prefix, subject hash hex or "", thumbprint hex or "", limit.
/// With no filter: the newest `limit` records by creation time, as a flat
/// array of json, v, r. With a filter: every matching record (the caller
/// sorts and truncates).
const LIST: &str = r"#!lua flags=no-writes
local p, u, t, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
local function add(k)
  local rec = redis.call('HMGET', p .. 's:' .. k, 'json', 'v', 'r')
  if rec[1] then
    out[#out + 1] = rec[1]
    out[#out + 1] = rec[2]
    out[#out + 1] = rec[3]
    return true
  end
  return false
end
if u == '' and t == '' then
  local found, start, chunk = 0, 0, 128
  while found < limit do
    local ks = redis.call('ZREVRANGE', p .. 'c', start, start + chunk - 1)
    if #ks == 0 then break end
    for _, k in ipairs(ks) do
      if found < limit and add(k) then found = found + 1 end
    end
    start = start + chunk
  end
  return out
end
local members
if u ~= '' and t ~= '' then
  members = redis.call('SINTER', p .. 'u:' .. u, p .. 't:' .. t)
elseif u ~= '' then
  members = redis.call('SMEMBERS', p .. 'u:' .. u)
else
  members = redis.call('SMEMBERS', p .. 't:' .. t)
end
for _, k in ipairs(members) do add(k) end
return out
";

/// Removes up to `batch` sessions whose `expires_at <= now`, with their
/// index entries (the record itself may already be gone by TTL). Allowed
/// over `maxmemory`: it frees memory.
///
/// ARGV: prefix, now, batch. Returns how many were removed.
const COLLECT: &str = r"#!lua flags=allow-oom
local p = ARGV[1]
local ks = redis.call('ZRANGEBYSCORE', p .. 'x', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local ix = p .. 'ix'
for _, k in ipairs(ks) do
  redis.call('DEL', p .. 's:' .. k)
  local old = redis.call('HGET', ix, k)
  if old then
    redis.call('SREM', p .. 'u:' .. string.sub(old, 1, 64), k)
    local ot = string.sub(old, 66)
    if ot ~= '' then redis.call('SREM', p .. 't:' .. ot, k) end
    redis.call('HDEL', ix, k)
  end
  redis.call('ZREM', p .. 'c', k)
  redis.call('ZREM', p .. 'x', k)
  redis.call('ZREM', p .. 'r', k)
end
return #ks
";

/// The sessions due for a provider-token refresh: up to `limit` keys
/// whose refresh time is at or before `before`, earliest first. Entries
/// whose record is gone (expired by TTL) or revoked are dropped from the
/// schedule as they are met, so they do not come back in later rounds.
/// Allowed over `maxmemory`: it only removes.
///
/// ARGV: prefix, before, limit. Returns the keys (hex).
const DUE: &str = r"#!lua flags=allow-oom
local p = ARGV[1]
local ks = redis.call('ZRANGEBYSCORE', p .. 'r', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, k in ipairs(ks) do
  if redis.call('HGET', p .. 's:' .. k, 'r') == '0' then
    out[#out + 1] = k
  else
    redis.call('ZREM', p .. 'r', k)
  end
end
return out
";

/// The loaded scripts (their SHA-1 is computed once; `EVALSHA` with a
/// fallback to loading them after a server restart).
pub(super) struct Scripts {
    pub(super) create: Script,
    pub(super) cas: Script,
    pub(super) revoke: Script,
    pub(super) revoke_matching: Script,
    pub(super) list: Script,
    pub(super) collect: Script,
    pub(super) due: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            create: Script::new(CREATE),
            cas: Script::new(CAS),
            revoke: Script::new(REVOKE),
            revoke_matching: Script::new(REVOKE_MATCHING),
            list: Script::new(LIST),
            collect: Script::new(COLLECT),
            due: Script::new(DUE),
        }
    }
}
