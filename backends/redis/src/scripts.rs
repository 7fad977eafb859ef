//! The Lua scripts: each clock or lock call is one script, so it is one atomic
//! step on the server.
//!
//! They run through [`redis::Script`] (EVALSHA, then EVAL-by-loading when the
//! server does not know the script yet, as after a restart). Conventions:
//!
//! - Counters are decimal strings. Lua numbers are doubles, exact only up to
//!   2^53, so counters are compared as strings (longer is larger, then
//!   lexicographically) and returned as the strings Redis stores, never
//!   through a Lua number.
//! - Clock scripts take the epoch key first and the epoch the clock saw at
//!   connect as `ARGV[1]`; when they differ (or the key is gone) they change
//!   nothing and return the status [`STATE_LOST`].
//! - Times come from the server's `TIME`, never from the client, so deadlines
//!   agree across hosts. (Writing after `TIME` needs effect replication: Redis
//!   5 or later.)

use std::sync::LazyLock;

use redis::Script;

/// The status a clock script returns when the epoch is not the one it expects.
pub(crate) const STATE_LOST: &str = "STATE_LOST";

/// The status the tick script returns, followed by ` <index>` (1-based), when
/// a counter cannot be incremented (at Redis' largest integer, or not a number).
pub(crate) const NOT_INCREMENTABLE: &str = "NOT_INCREMENTABLE";

/// Reads the epoch, creating it when absent.
///
/// KEYS[1]: the epoch key. ARGV[1]: a fresh value made by the client.
/// Returns the epoch stored. The new value is the server time in microseconds
/// followed by the client's value, so two clocks connecting to an empty server
/// at once agree on the one that was set first (`SET NX`).
const EPOCH_LUA: &str = r"
local now = redis.call('TIME')
local candidate = now[1] .. string.format('%06d', tonumber(now[2])) .. '-' .. ARGV[1]
redis.call('SET', KEYS[1], candidate, 'NX')
return redis.call('GET', KEYS[1])
";

/// Reads some counters, then adds one to others, and records the intent of
/// the publication that took them, in one atomic step: the publisher's step
/// for an operation (with no counter to read and no intent, a plain tick).
/// Checks every counter before changing any, so a counter at the largest
/// integer (or holding something else) leaves all of them untouched.
///
/// KEYS[1]: the epoch key; KEYS[2..n+1]: the counters to increment;
/// KEYS[n+2..n+m+1]: the counters to read; then, with an intent, its hash
/// and its scope's intents zset. ARGV[1]: the expected epoch; ARGV[2]: n;
/// ARGV[3]: m; ARGV[4]: `1` with an intent; ARGV[5]: its id; ARGV[6]: its
/// data; ARGV[7]: how long it is kept, in ms; ARGV[8]: the zset's key, kept
/// in the hash so forgetting finds it.
/// Returns the n new values followed by the values read (`'0'` when missing).
/// The intent hash holds `data`, `ticked` and `read` (comma-separated) and
/// `zset`; the zset scores each intent id with the server time it was
/// recorded at.
const TAKE_LUA: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.status_reply('STATE_LOST')
end
local n = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
for i = 2, n + 1 do
  local value = redis.call('GET', KEYS[i])
  if value and not (string.match(value, '^%d+$')
      and (#value < 19 or (#value == 19 and value < '9223372036854775807'))) then
    return redis.status_reply('NOT_INCREMENTABLE ' .. (i - 1))
  end
end
local read = {}
for i = n + 2, n + m + 1 do
  read[#read + 1] = redis.call('GET', KEYS[i]) or '0'
end
local values = {}
for i = 2, n + 1 do
  redis.call('INCR', KEYS[i])
  values[i - 1] = redis.call('GET', KEYS[i])
end
if ARGV[4] == '1' and n > 0 then
  local intent = KEYS[n + m + 2]
  redis.call('HSET', intent, 'data', ARGV[6], 'ticked', table.concat(values, ','), 'read', table.concat(read, ','), 'zset', ARGV[8])
  redis.call('PEXPIRE', intent, ARGV[7])
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('ZADD', KEYS[n + m + 3], string.format('%.0f', ms), ARGV[5])
end
for _, value in ipairs(read) do
  values[#values + 1] = value
end
return values
";

/// An intent: `{data, ticked, read}`, or nil when it is not kept.
///
/// KEYS[1]: the epoch key; KEYS[2]: the intent hash. ARGV[1]: the expected epoch.
const INTENT_LUA: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.status_reply('STATE_LOST')
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return false
end
return redis.call('HMGET', KEYS[2], 'data', 'ticked', 'read')
";

/// Forgets intents: each hash, and its id in the zset the hash names.
///
/// KEYS: the intent hashes. ARGV: their ids, in the same order.
const FORGET_LUA: &str = r"
for i = 1, #KEYS do
  local zset = redis.call('HGET', KEYS[i], 'zset')
  redis.call('DEL', KEYS[i])
  if zset then
    redis.call('ZREM', zset, ARGV[i])
  end
end
return #KEYS
";

/// Intents recorded more than an age ago: `{id, data, ticked, read}` lists,
/// oldest first, at most the limit; ids whose hash expired are dropped from
/// the zset on the way.
///
/// KEYS[1]: the epoch key; KEYS[2]: the intents zset. ARGV[1]: the expected
/// epoch; ARGV[2]: the prefix of intent hashes; ARGV[3]: the age in ms;
/// ARGV[4]: the limit.
const STALE_INTENTS_LUA: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.status_reply('STATE_LOST')
end
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local result = {}
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', cutoff), 'LIMIT', 0, limit * 2 + 16)
for _, id in ipairs(ids) do
  local fields = redis.call('HMGET', ARGV[2] .. id, 'data', 'ticked', 'read')
  if fields[1] then
    result[#result + 1] = {id, fields[1], fields[2], fields[3]}
    if #result >= limit then
      break
    end
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return result
";

/// The values of the counters, in order, `'0'` for a missing one.
///
/// KEYS[1]: the epoch key; KEYS[2..]: the counters. ARGV[1]: the expected epoch.
/// (A Lua table cannot hold nil, hence the explicit `'0'`.)
const READ_LUA: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.status_reply('STATE_LOST')
end
local values = {}
for i = 2, #KEYS do
  values[i - 1] = redis.call('GET', KEYS[i]) or '0'
end
return values
";

/// Raises counters, then publishes the keys that changed, JSON-encoded, on
/// the channel, and returns them. Mode `max` (`advance`): each counter below
/// its target is raised to it, never lowered. Mode `unset` (`seed`): only
/// counters that are missing (0) are set.
///
/// KEYS[1]: the epoch key; KEYS[2..]: the counters. ARGV[1]: the expected
/// epoch; ARGV[2]: the channel; ARGV[3]: the mode; ARGV[4..]: the targets,
/// decimal without leading zeros, in the order of the counters.
const RAISE_LUA: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.status_reply('STATE_LOST')
end
local only_unset = ARGV[3] == 'unset'
local changed = {}
for i = 2, #KEYS do
  local target = ARGV[i + 2]
  local current = redis.call('GET', KEYS[i]) or '0'
  local raise
  if only_unset then
    raise = current == '0' and target ~= '0'
  else
    raise = #target > #current or (#target == #current and target > current)
  end
  if raise then
    redis.call('SET', KEYS[i], target)
    changed[#changed + 1] = KEYS[i]
  end
end
if #changed > 0 then
  redis.call('PUBLISH', ARGV[2], cjson.encode(changed))
end
return changed
";

/// Reads a page of counters matching a pattern.
///
/// KEYS[1]: the epoch key. ARGV[1]: the expected epoch; ARGV[2]: the SCAN
/// cursor; ARGV[3]: the MATCH pattern; ARGV[4]: the COUNT hint.
/// Returns `{next cursor, key1, value1, key2, value2, ...}`.
const SCAN_LUA: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.status_reply('STATE_LOST')
end
local page = redis.call('SCAN', ARGV[2], 'MATCH', ARGV[3], 'COUNT', ARGV[4])
local out = {page[1]}
for _, key in ipairs(page[2]) do
  local value = redis.call('GET', key)
  if value then
    out[#out + 1] = key
    out[#out + 1] = value
  end
end
return out
";

/// Takes a lock unless it is held.
///
/// KEYS: the lock key, the owner hash, the data hash, the expiry zset.
/// ARGV: the lock name, the owner, the time-to-live in ms, the recovery data.
/// Returns nil when held; `{'free'}`; or `{'expired', previous owner, previous
/// data}` when the previous owner let it expire unreleased (its entry is still
/// in the owner hash). Either way the lock is then set for the new owner.
const TRY_ACQUIRE_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local result
local previous = redis.call('HGET', KEYS[2], ARGV[1])
if previous then
  result = {'expired', previous, redis.call('HGET', KEYS[3], ARGV[1]) or ''}
else
  result = {'free'}
end
local now = redis.call('TIME')
local deadline = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
redis.call('ZADD', KEYS[4], string.format('%.0f', deadline), ARGV[1])
return result
";

/// Releases a lock its owner still holds: 1, else 0 (an expired lock stays
/// listed for recovery).
///
/// KEYS: the lock key, the owner hash, the data hash, the expiry zset.
/// ARGV: the lock name, the owner.
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
";

/// Extends a lock its owner still holds to a new time-to-live: 1, else 0.
///
/// KEYS: the lock key, the expiry zset. ARGV: the lock name, the owner, the
/// time-to-live in ms.
const EXTEND_LUA: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return 0
end
local now = redis.call('TIME')
local deadline = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], string.format('%.0f', deadline), ARGV[1])
return 1
";

/// Lists locks that expired unreleased: `{name, owner, data}` triples, by
/// deadline (oldest first), at most the limit.
///
/// KEYS: the expiry zset, the owner hash, the data hash. ARGV: the prefix of
/// lock keys (`<prefix>lock:`), the prefix the names must start with (a plain
/// prefix, compared with `string.sub`, not a pattern), the limit.
/// A listed lock has passed its deadline and its lock key is gone. The lock
/// keys are read by name, so this script needs a single server (no cluster).
const EXPIRED_LUA: &str = r"
local limit = tonumber(ARGV[3])
local result = {}
if limit < 1 then
  return result
end
local now = redis.call('TIME')
local now_ms = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
local wanted = ARGV[2]
local offset = 0
while #result < limit do
  local names = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', offset, 256)
  if #names == 0 then
    break
  end
  for _, name in ipairs(names) do
    if string.sub(name, 1, #wanted) == wanted and redis.call('EXISTS', ARGV[1] .. name) == 0 then
      local owner = redis.call('HGET', KEYS[2], name)
      if owner then
        result[#result + 1] = {name, owner, redis.call('HGET', KEYS[3], name) or ''}
        if #result >= limit then
          break
        end
      end
    end
  end
  offset = offset + #names
end
return result
";

/// See [`EPOCH_LUA`].
pub(crate) static EPOCH: LazyLock<Script> = LazyLock::new(|| Script::new(EPOCH_LUA));
/// See [`READ_LUA`].
pub(crate) static READ: LazyLock<Script> = LazyLock::new(|| Script::new(READ_LUA));
/// See [`TAKE_LUA`].
pub(crate) static TAKE: LazyLock<Script> = LazyLock::new(|| Script::new(TAKE_LUA));
/// See [`INTENT_LUA`].
pub(crate) static INTENT: LazyLock<Script> = LazyLock::new(|| Script::new(INTENT_LUA));
/// See [`FORGET_LUA`].
pub(crate) static FORGET: LazyLock<Script> = LazyLock::new(|| Script::new(FORGET_LUA));
/// See [`STALE_INTENTS_LUA`].
pub(crate) static STALE_INTENTS: LazyLock<Script> =
    LazyLock::new(|| Script::new(STALE_INTENTS_LUA));
/// See [`RAISE_LUA`].
pub(crate) static RAISE: LazyLock<Script> = LazyLock::new(|| Script::new(RAISE_LUA));
/// See [`SCAN_LUA`].
pub(crate) static SCAN: LazyLock<Script> = LazyLock::new(|| Script::new(SCAN_LUA));
/// See [`TRY_ACQUIRE_LUA`].
pub(crate) static TRY_ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(TRY_ACQUIRE_LUA));
/// See [`RELEASE_LUA`].
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_LUA));
/// See [`EXTEND_LUA`].
pub(crate) static EXTEND: LazyLock<Script> = LazyLock::new(|| Script::new(EXTEND_LUA));
/// See [`EXPIRED_LUA`].
pub(crate) static EXPIRED: LazyLock<Script> = LazyLock::new(|| Script::new(EXPIRED_LUA));
