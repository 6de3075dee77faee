//! The server side of the Redis backend: one Lua script per operation, each run atomically by the server
//! (`EVALSHA`, loaded on first use and again after a server restart).
//!
//! # Keys
//! Every key of the deque NAME starts with `shmdeque:{NAME}:`, so that the hash tag `{NAME}` keeps them in
//! one Redis Cluster slot and a script may touch them all:
//!
//! | key | type | what |
//! |---|---|---|
//! | `…:meta` | hash | `version`, `capacity`, `slot_size`, `closed`, counters (`pushed`, `popped`, `high_water`, `requeued`, `producers_lost`), `abandoned` |
//! | `…:list` | list | the messages, front = left |
//! | `…:pending:ID` | list | messages that consumer ID has taken but not yet acknowledged |
//! | `…:consumers` | sorted set | consumer IDs, scored by the server time (ms) at which their heartbeat expires |
//! | `…:ends` | hash | consumer ID → the end (`L`, `R`) its pending messages came from; `ID#` → the number and outcome of its last acknowledgement |
//! | `…:producers` | sorted set | registered producer IDs, scored like consumers |
//! | `…:room` | list | the doorbell: tokens pushed when room appears in a full deque, popped by waiting pushers |
//!
//! Scripts name `KEYS[1]` (the meta hash) and derive the others from it: they are in the same slot by
//! construction. Times come from the server's clock (`TIME`), so the hosts' clocks need not agree.
//!
//! # Capacity
//! The capacity bounds the messages in the list *plus* those in consumers' pending lists: a message taken
//! by a consumer that then dies comes back to the list, and must find its room there. Pending lists are
//! empty except for the round trip between a take and its acknowledgement, so in practice the capacity is
//! the list's.

use std::sync::LazyLock;

use redis::Script;

/// The layout version of the Redis keys of a deque (see the key table in the crate's Redis module);
/// a deque whose meta hash holds another `version` is refused with [`Error::VersionMismatch`](crate::Error::VersionMismatch).
pub const REDIS_LAYOUT_VERSION: u32 = 1;

/// The key prefix of the deque `name`.
pub(crate) fn base(name: &str) -> String {
    format!("shmdeque:{{{name}}}:")
}

/// Helpers every script starts with.
const PRELUDE: &str = r#"
local meta = KEYS[1]
local base = string.sub(meta, 1, -5)
local list = base .. 'list'
local consumers = base .. 'consumers'
local producers = base .. 'producers'
local ends = base .. 'ends'
local room = base .. 'room'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function pending(id) return base .. 'pending:' .. id end

-- Pushes t[i..j] with cmd, at most 1000 values per call (Lua's unpack limit is 8000).
local function push_all(cmd, key, t, i, j)
  while i <= j do
    local k = math.min(i + 999, j)
    redis.call(cmd, key, unpack(t, i, k))
    i = k + 1
  end
end

-- Messages held in consumers' pending lists: they count against the capacity.
local function held()
  local n = 0
  for _, id in ipairs(redis.call('ZRANGE', consumers, 0, -1)) do
    n = n + redis.call('LLEN', pending(id))
  end
  return n
end

-- Puts consumer id's pending messages back at the end they came from, in their order.
local function requeue(id)
  local p = pending(id)
  local msgs = redis.call('LRANGE', p, 0, -1)
  if #msgs == 0 then return 0 end
  local rev = {}
  for i = #msgs, 1, -1 do rev[#rev + 1] = msgs[i] end
  local e = redis.call('HGET', ends, id)
  push_all(e == 'R' and 'RPUSH' or 'LPUSH', list, rev, 1, #rev)
  redis.call('DEL', p)
  redis.call('HINCRBY', meta, 'requeued', #msgs)
  return #msgs
end

-- Consumers whose heartbeat expired: their messages go back, their registration goes.
local function reap_consumers(now)
  local dead = redis.call('ZRANGEBYSCORE', consumers, '-inf', now, 'LIMIT', 0, 16)
  for _, id in ipairs(dead) do
    requeue(id)
    redis.call('ZREM', consumers, id)
    redis.call('HDEL', ends, id)
  end
end

-- Producers whose heartbeat expired; when none is left, the deque is abandoned.
local function reap_producers(now)
  local n = redis.call('ZREMRANGEBYSCORE', producers, '-inf', now)
  if n > 0 then
    redis.call('HINCRBY', meta, 'producers_lost', n)
    if redis.call('ZCARD', producers) == 0 then redis.call('HSET', meta, 'abandoned', '1') end
  end
end

-- Wakes up to n pushers waiting for room (the doorbell keeps at most 16 tokens).
local function ring(n)
  if n > 0 then
    local t = {}
    for i = 1, math.min(n, 16) do t[i] = '1' end
    redis.call('RPUSH', room, unpack(t))
    redis.call('LTRIM', room, -16, -1)
  end
end
"#;

macro_rules! script {
    ($body:literal) => {
        LazyLock::new(|| Script::new(&format!("{PRELUDE}{}", $body)))
    };
}

/// ARGV: mode (`create`, `open`, `either`), capacity, slot size, layout version.
/// Returns `{1, capacity, slot_size, version}` when created, `{0, …}` when it existed, `{-1}` not found,
/// `{-2}` not a deque, `{-3}` already exists.
pub(crate) static CREATE: LazyLock<Script> = script!(
    r#"
local t = redis.call('TYPE', meta)['ok']
if t == 'none' then
  if ARGV[1] == 'open' then return {-1} end
  redis.call('HSET', meta, 'version', ARGV[4], 'capacity', ARGV[2], 'slot_size', ARGV[3], 'closed', '0',
    'pushed', '0', 'popped', '0', 'high_water', '0', 'requeued', '0', 'producers_lost', '0', 'abandoned', '0')
  return {1, ARGV[2], ARGV[3], ARGV[4]}
end
if t ~= 'hash' then return {-2} end
local m = redis.call('HMGET', meta, 'version', 'capacity', 'slot_size')
if not m[1] then return {-2} end
if ARGV[1] == 'create' then return {-3} end
return {0, m[2] or '', m[3] or '', m[1]}
"#
);

/// ARGV: end (`L` front, `R` back), then the messages. Pushes as many as fit, in order.
/// Returns how many (> 0), `-1` full, `-2` closed, `-3` no such deque.
pub(crate) static PUSH: LazyLock<Script> = script!(
    r#"
local m = redis.call('HMGET', meta, 'version', 'capacity', 'closed', 'high_water')
if not m[1] then return -3 end
if m[3] == '1' then return -2 end
local total = redis.call('LLEN', list) + held()
local k = math.min(#ARGV - 1, tonumber(m[2]) - total)
if k <= 0 then return -1 end
push_all(ARGV[1] == 'L' and 'LPUSH' or 'RPUSH', list, ARGV, 2, k + 1)
redis.call('HINCRBY', meta, 'pushed', k)
if total + k > tonumber(m[4] or '0') then redis.call('HSET', meta, 'high_water', total + k) end
return k
"#
);

/// ARGV: consumer id, end, max, heartbeat (ms), whether to record the end anew (`1`).
/// Moves up to max messages from that end into the consumer's pending list and returns `{0, messages}`;
/// if the pending list already holds messages (a take whose reply was lost), returns those instead.
/// Otherwise `{-1}` nothing now, `{-2}` closed and drained, `{-3}` no such deque, `{-4}` producers gone.
pub(crate) static TAKE: LazyLock<Script> = script!(
    r#"
local id, e = ARGV[1], ARGV[2]
local m = redis.call('HMGET', meta, 'version', 'closed')
if not m[1] then return {-3} end
local now = now_ms()
reap_consumers(now)
if redis.call('ZADD', consumers, now + tonumber(ARGV[4]), id) == 1 or ARGV[5] == '1' then
  redis.call('HSET', ends, id, e)
end
local p = pending(id)
local mine = redis.call('LRANGE', p, 0, -1)
if #mine > 0 then return {0, mine} end
local got = redis.call(e == 'L' and 'LPOP' or 'RPOP', list, tonumber(ARGV[3]))
if got then
  push_all('RPUSH', p, got, 1, #got)
  return {0, got}
end
-- Messages held by other consumers may still come back: not drained yet.
if held() > 0 then return {-1} end
if m[2] == '1' then return {-2} end
reap_producers(now)
if redis.call('HGET', meta, 'abandoned') == '1' then return {-4} end
return {-1}
"#
);

/// ARGV: consumer id, heartbeat (ms), how many to keep (`-1`: all), the acknowledgement's number (one
/// more than the consumer's previous one). Acknowledges the first messages of the consumer's pending list,
/// as many as it keeps (the caller has them), and gives the rest back. Returns how many were acknowledged,
/// or `-1` if the consumer's registration had expired meanwhile, in which case all its messages went (or
/// now go) back to the deque and the caller must not deliver them.
///
/// The outcome is recorded under the acknowledgement's number (`ends` field `ID#`), and running it again
/// with the same number (a retry after a lost reply) returns that outcome without touching anything: the
/// pending list may hold the next batch by then, taken in the same round trip, which must not be
/// acknowledged in its place. The record outlives an expired registration for that reason; a consumer's
/// `bye` deletes it.
pub(crate) static ACK: LazyLock<Script> = script!(
    r#"
local id = ARGV[1]
local tag = id .. '#'
local seen = redis.call('HGET', ends, tag)
if seen then
  local sep = string.find(seen, ' ', 1, true)
  if sep and string.sub(seen, 1, sep - 1) == ARGV[4] then return tonumber(string.sub(seen, sep + 1)) end
end
local function done(r)
  redis.call('HSET', ends, tag, ARGV[4] .. ' ' .. r)
  return r
end
local now = now_ms()
if not redis.call('ZSCORE', consumers, id) then
  requeue(id)
  return done(-1)
end
redis.call('ZADD', consumers, now + tonumber(ARGV[2]), id)
local p = pending(id)
local n = redis.call('LLEN', p)
local k = tonumber(ARGV[3])
if k < 0 or k > n then k = n end
if k < n then
  if k > 0 then redis.call('LTRIM', p, k, -1) end
  requeue(id)
else
  redis.call('DEL', p)
end
if k == 0 then return done(0) end
local cap = redis.call('HGET', meta, 'capacity')
if not cap then return done(k) end
redis.call('HINCRBY', meta, 'popped', k)
if redis.call('LLEN', list) + held() + k >= tonumber(cap) then ring(k) end
return done(k)
"#
);

/// ARGV: consumer id, heartbeat (ms). Renews the consumer's registration; returns 1, or `-1` if it had
/// expired (its pending messages went back to the deque).
pub(crate) static TOUCH: LazyLock<Script> = script!(
    r#"
if not redis.call('ZSCORE', consumers, ARGV[1]) then return -1 end
redis.call('ZADD', consumers, now_ms() + tonumber(ARGV[2]), ARGV[1])
return 1
"#
);

/// ARGV: consumer id. Gives the consumer's pending messages back to the deque; returns how many.
pub(crate) static GIVE_BACK: LazyLock<Script> = script!(
    r#"
return requeue(ARGV[1])
"#
);

/// ARGV: consumer id. A handle going away: gives back its pending messages and unregisters it.
pub(crate) static BYE: LazyLock<Script> = script!(
    r#"
local n = requeue(ARGV[1])
redis.call('ZREM', consumers, ARGV[1])
redis.call('HDEL', ends, ARGV[1], ARGV[1] .. '#')
return n
"#
);

/// ARGV: `join`, `beat` or `leave`; producer id; heartbeat (ms); close if last (`1`).
/// Join and beat return the number of live producers; leave returns 1 if it closed the deque, else 0;
/// `-3`: no such deque.
pub(crate) static PRODUCER: LazyLock<Script> = script!(
    r#"
if redis.call('EXISTS', meta) == 0 then return -3 end
local now = now_ms()
local id = ARGV[2]
if ARGV[1] == 'leave' then
  redis.call('ZREM', producers, id)
  reap_producers(now)
  if ARGV[4] == '1' and redis.call('ZCARD', producers) == 0 and redis.call('HGET', meta, 'closed') ~= '1' then
    redis.call('HSET', meta, 'closed', '1')
    ring(16)
    return 1
  end
  return 0
end
reap_producers(now)
if redis.call('ZADD', producers, now + tonumber(ARGV[3]), id) == 1 then
  redis.call('HSET', meta, 'abandoned', '0')
end
return redis.call('ZCARD', producers)
"#
);

/// Closes the deque and wakes waiting pushers. Returns 1, or `-3`: no such deque.
pub(crate) static CLOSE: LazyLock<Script> = script!(
    r#"
if redis.call('EXISTS', meta) == 0 then return -3 end
redis.call('HSET', meta, 'closed', '1')
ring(16)
return 1
"#
);

/// Removes every message of the list. Returns how many, or `-3`: no such deque.
pub(crate) static CLEAR: LazyLock<Script> = script!(
    r#"
if redis.call('EXISTS', meta) == 0 then return -3 end
local n = redis.call('LLEN', list)
redis.call('DEL', list)
redis.call('HINCRBY', meta, 'popped', n)
ring(n)
return n
"#
);

/// Deletes every key of the deque. Returns 1, or 0 if there was no deque.
pub(crate) static REMOVE: LazyLock<Script> = script!(
    r#"
if redis.call('EXISTS', meta) == 0 then return 0 end
for _, id in ipairs(redis.call('ZRANGE', consumers, 0, -1)) do redis.call('DEL', pending(id)) end
redis.call('DEL', list, meta, consumers, producers, ends, room)
return 1
"#
);

/// Returns `{0, meta as a flat field/value array, list length, held, live consumers, live producers}`, or
/// `{-3}`: no such deque.
pub(crate) static STATS: LazyLock<Script> = script!(
    r#"
if redis.call('EXISTS', meta) == 0 then return {-3} end
local now = now_ms()
return {0, redis.call('HGETALL', meta), redis.call('LLEN', list), held(),
  redis.call('ZCOUNT', consumers, '(' .. now, '+inf'), redis.call('ZCOUNT', producers, '(' .. now, '+inf')}
"#
);
