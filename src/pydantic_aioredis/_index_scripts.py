"""The server-side scripts of secondary indexes: scanning an indexed field for a query,
counting, deleting what still meets conditions, and building and dropping indexes.

They follow the calling convention of every script (see `_scripts`): KEYS start with the
shard's index and expiry sets and each indexed field's sorted set and hash of encodings;
ARGV with the namespace, the number of indexed fields and a write token.
"""

from __future__ import annotations

from ._scripts import DELETE_RECORDS, RANGES, READ_ROWS, LuaScript
from ._scripts import script as _script

__all__ = [
    "BUILD_INDEX",
    "BUILD_LOCK",
    "COUNT_RANGES",
    "DELETE_MATCHING",
    "DROP_KEYS",
    "INDEX_COUNTS",
    "INDEX_STATE",
    "QUERY",
]


# Scan one indexed field's sorted set along ranges, keep the records that meet the other
# conditions. ARGV after the header: mode ('rows' or 'keys'), the scanned field's position,
# direction ('asc' or 'desc'), the range to start in (1-based), a cursor (the last member
# seen, '' for none), matches to pass over, matches to give (0: no limit), group ('': none;
# '*': once enough are given, go on with the matches of the same value; an encoding: doing
# so for that value), the most members to scan, the position of the field whose member to
# give (0: the primary key), the count of ranges and their bounds, the conditions (see
# read_conditions), and in 'rows' mode a count of fields and their names.
# Returns {range, cursor or false, finished, group or false, passed over, given, bad, out,
# entries}: 'rows' gives `pk, v1..vn` per record (see READ_ROWS), 'keys' the member or
# primary key. In 'rows' mode with a field to give, `entries` holds `pk, encoding` (false
# when the record has no entry in that field's index) per record read, bad keys included:
# what a query in that field's order sorts the rows of several buckets by.
QUERY = _script(
    "query",
    """
if not purge() then return redis.status_reply('AGAIN') end
local mode, scanned_field, direction = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local range, cursor = tonumber(ARGV[7]), ARGV[8]
local skip, want, group = tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11]
local budget, given_field = tonumber(ARGV[12]), tonumber(ARGV[13])
local nranges = tonumber(ARGV[14])
local ranges = argv_list(15, 2 * nranges)
local conditions, at = read_conditions(15 + 2 * nranges)
local fields = {}
if mode == 'rows' then fields = {unpack(ARGV, at + 1, at + tonumber(ARGV[at]))} end
local zkey = KEYS[1 + 2 * scanned_field]
local out, bad = {}, {}
local scanned, passed, given, finished = 0, 0, 0, false

local entries = {}
local function entry_of(enc, pk)
  if given_field == scanned_field then return enc end
  return redis.call('HGET', KEYS[2 + 2 * given_field], pk)
end

local function give(member, enc, pk)
  if mode == 'keys' then
    if given_field == 0 then
      out[#out + 1] = pk
    elseif given_field == scanned_field then
      out[#out + 1] = member
    else
      out[#out + 1] = (entry_of(enc, pk) or '') .. pk
    end
    return true
  end
  local before_rows, before_bad = #out, #bad
  read_rows({pk}, fields, out, bad)
  if given_field > 0 and (#out > before_rows or #bad > before_bad) then
    entries[#entries + 1] = pk
    entries[#entries + 1] = entry_of(enc, pk)
  end
  return #out > before_rows
end

while not finished and scanned < budget do
  if range > nranges then finished = true; break end
  local r = range  -- descending, the ranges are walked from the last one
  if direction == 'desc' then r = nranges - range + 1 end
  local low, high = ranges[2 * r - 1], ranges[2 * r]
  local asked = budget - scanned
  local page
  if direction == 'asc' then
    if cursor ~= '' then low = '(' .. cursor end
    page = redis.call('ZRANGEBYLEX', zkey, low, high, 'LIMIT', 0, asked)
  else
    if cursor ~= '' then high = '(' .. cursor end
    page = redis.call('ZREVRANGEBYLEX', zkey, high, low, 'LIMIT', 0, asked)
  end
  for k = 1, #page do
    local member = page[k]
    local cut = string.find(member, '\\0', 1, true)
    local enc, pk = string.sub(member, 1, cut), string.sub(member, cut + 1)
    if group ~= '' and group ~= '*' and enc ~= group then finished = true; break end
    scanned, cursor = scanned + 1, member
    if meets(pk, conditions) then
      if passed < skip then
        passed = passed + 1
      elseif give(member, enc, pk) then
        given = given + 1
        if want > 0 and given >= want and group == '' then finished = true; break end
        if want > 0 and given >= want and group == '*' then group = enc end
      end
    end
  end
  if not finished and #page < asked then  -- the range is done: on to the next one
    range, cursor = range + 1, ''
  end
end
if range > nranges then finished = true end
local state_group = false
if group ~= '' and group ~= '*' then state_group = group end
return {range, cursor ~= '' and cursor or false, finished and 1 or 0, state_group,
        passed, given, bad, out, entries}
""",
    READ_ROWS,
    RANGES,
    repeatable=True,
    reads=True,
)

# ARGV after the header: conditions (see read_conditions). Returns the number of records of
# the shard and, per condition, how many of its index members lie in its ranges; or AGAIN.
COUNT_RANGES = _script(
    "count_ranges",
    """
if not purge() then return redis.status_reply('AGAIN') end
local conditions = read_conditions(4)
local counts = {redis.call('ZCARD', INDEX)}
for c = 1, #conditions do
  local field, bounds = conditions[c][1], conditions[c][2]
  local total = 0
  for r = 1, #bounds, 2 do
    total = total + redis.call('ZLEXCOUNT', KEYS[1 + 2 * field], bounds[r], bounds[r + 1])
  end
  counts[#counts + 1] = total
end
return counts
""",
    RANGES,
    repeatable=True,
    reads=True,
)

# ARGV after the header: conditions (see read_conditions), then pks. Deletes the records that
# still meet the conditions (a writer may have changed one since it was found); how many.
DELETE_MATCHING = _script(
    "delete_matching",
    """
local replayed = replay()
if replayed then return replayed end
local err = check_shard()
if err then return err end
local conditions, at = read_conditions(4)
local doomed = {}
for i = at, #ARGV do
  if meets(ARGV[i], conditions) then doomed[#doomed + 1] = ARGV[i] end
end
return remember(delete_records(doomed))
""",
    RANGES,
    DELETE_RECORDS,
    writes=True,
)

# Returns, once no expired record is left (else AGAIN), the number of records of the shard
# and the number of entries of each indexed field's hash of encodings: where they are equal,
# every record has its entry, so that field's index is complete.
INDEX_COUNTS = _script(
    "index_counts",
    """
if not purge() then return redis.status_reply('AGAIN') end
local counts = {redis.call('ZCARD', INDEX)}
for i = 1, nfields do counts[#counts + 1] = redis.call('HLEN', KEYS[2 + 2 * i]) end
return counts
""",
    repeatable=True,
    reads=True,
)

# Index records that were written before their field was indexed. ARGV after the header:
# the field's position, its name, then per record: pk, '1' if the record held the field
# ('0' if it took the default), the text it held, its encoding. A record whose text changed
# since it was read is left alone: the write that changed it indexed it.
BUILD_INDEX = _script(
    "build_index",
    """
local err = check_shard()
if err then return err end
local field, name = tonumber(ARGV[4]), ARGV[5]
local zkey, values = KEYS[1 + 2 * field], KEYS[2 + 2 * field]
local done = 0
for i = 6, #ARGV, 4 do
  local pk, held, text, enc = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local now = redis.call('HGET', ns .. pk, name)
  if (held == '1' and now == text) or (held == '0' and not now and
      redis.call('EXISTS', ns .. pk) == 1) then
    local old = redis.call('HGET', values, pk)
    if old ~= enc then
      if old then redis.call('ZREM', zkey, old .. pk) end
      redis.call('ZADD', zkey, 0, enc .. pk)
      redis.call('HSET', values, pk, enc)
    end
    done = done + 1
  end
end
return done
""",
    writes=True,
)

# KEYS: the keys to delete (an index that is no longer declared, or must be built again).
DROP_KEYS = LuaScript("drop_keys", "return redis.call('DEL', unpack(KEYS))")

# KEYS: a model's hash of index states. ARGV: 'get'; 'set' and field/state pairs; 'del' and
# fields; 'claim' or 'cas' (below). Returns the states (field, state, ...) after the change.
INDEX_STATE = LuaScript(
    "index_state",
    """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' and kind ~= 'none' then
  local problem = ' holds a ' .. kind .. ', expected a hash'
  return redis.error_reply('WRONGTYPE key ' .. KEYS[1] .. problem)
end
local op = ARGV[1]
if op == 'set' then redis.call('HSET', KEYS[1], unpack(ARGV, 2)) end
if op == 'del' then redis.call('HDEL', KEYS[1], unpack(ARGV, 2)) end
-- 'claim': the state for an index nobody writes yet, then field, signature, and the state
-- that marks an index of mixed encodings, per field. An index that has no state gets the
-- first (complete when the model has no records, else `partial:<signature>`); one whose
-- state names another encoding gets the mixed state, since this store's writes add
-- entries of its own.
if op == 'claim' then
  for i = 3, #ARGV, 3 do
    local field, signature, mixed = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local state = redis.call('HGET', KEYS[1], field)
    if not state then
      redis.call('HSET', KEYS[1], field, ARGV[2] .. signature)
    elseif state ~= signature and state ~= 'partial:' .. signature
        and state ~= 'building:' .. signature then
      redis.call('HSET', KEYS[1], field, mixed)
    end
  end
end
-- 'cas': field, the state expected, the new state, per field: set where it is as expected.
if op == 'cas' then
  for i = 2, #ARGV, 3 do
    if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
      redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    end
  end
end
return redis.call('HGETALL', KEYS[1])
""",
)

# KEYS: a model's build lock. ARGV: 'take', 'renew' or 'free', a token, milliseconds. Returns
# 1 when the lock is (still) the token's, 0 when another build holds it (for 'take': minus
# the milliseconds the other build's lock has left, if it never renews it, or 'foreign' when
# the key holds something without a TTL, which no build wrote).
BUILD_LOCK = LuaScript(
    "build_lock",
    """
if ARGV[1] == 'take' then
  if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
  local left = redis.call('PTTL', KEYS[1])
  if left == -1 then return 'foreign' end  -- it never expires: no build wrote it
  return -math.max(left, 0)
end
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
if ARGV[1] == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
""",
)
