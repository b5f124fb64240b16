//! The output on Redis: a stream whose entry ids are `EPOCH-OFFSET`, appended by a script
//! that checks the claim first (and finds a retried append already there), trimmed with
//! `MAXLEN ~`; read with blocking `XREAD`s on a connection of its own, the last records
//! with `XREVRANGE`.

use super::{bytes_of, claim_value, int, RedisEngine, BLOCKING_SLACK, CONTROL_TIMEOUT};
use crate::broadcast::bus::Position;
use crate::broadcast::cluster::engine::{Claim, EngineError, Record};
use bytes::Bytes;
use redis::Value;
use std::time::Duration;

/// Appends the records if the claim is the caller's: 1 appended, 2 already there, 0
/// fenced.
pub(super) const APPEND: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local epoch = ARGV[2]
local first = tonumber(ARGV[3])
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if top[1] then
  local id = top[1][1]
  local dash = string.find(id, '-', 1, true)
  if string.sub(id, 1, dash - 1) == epoch and tonumber(string.sub(id, dash + 1)) >= first then
    return 2
  end
end
for i = 5, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], epoch .. '-' .. string.format('%d', first + i - 5), 'd', ARGV[i])
end
return 1
";

impl RedisEngine {
    /// The arguments of [`APPEND`]: `records` at offsets `first`… of the claim's epoch.
    pub(super) fn append_args(
        &self,
        claim: &Claim,
        first: u64,
        records: Vec<Bytes>,
    ) -> Vec<Vec<u8>> {
        let mut args = vec![
            claim_value(claim),
            claim.epoch.to_string().into_bytes(),
            first.to_string().into_bytes(),
            self.window.to_string().into_bytes(),
        ];
        args.extend(records.into_iter().map(|record| record.to_vec()));
        args
    }

    /// Appends through [`APPEND`].
    pub(super) async fn append_now(&self, args: Vec<Vec<u8>>) -> Result<(), EngineError> {
        let value = self
            .control_script(&self.append, &[&self.claim_key, &self.out_key], args)
            .await?;
        match int(&value) {
            Some(1 | 2) => Ok(()),
            _ => Err(EngineError::Fenced),
        }
    }

    /// Up to `max` records after `after`, waiting up to `wait` for the first.
    pub(super) async fn read_now(
        &self,
        after: Position,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Record>, EngineError> {
        let mut connection = self.reader.get().await.map_err(|e| self.unreachable(&e))?;
        let id = format!("{}-{}", after.epoch, after.offset);
        let mut command = redis::cmd("XREAD");
        command
            .arg("COUNT")
            .arg(max.max(1))
            .arg("BLOCK")
            .arg(wait.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.out_key)
            .arg(id);
        let value = self
            .query(&mut connection, &command, wait + BLOCKING_SLACK)
            .await?;
        Ok(read_reply(&value))
    }

    /// The last `count` records, oldest first.
    pub(super) async fn last_now(&self, count: usize) -> Result<Vec<Record>, EngineError> {
        let mut connection = self.control.get().await.map_err(|e| self.unreachable(&e))?;
        let mut command = redis::cmd("XREVRANGE");
        command
            .arg(&self.out_key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count.max(1));
        let value = self
            .query(&mut connection, &command, CONTROL_TIMEOUT)
            .await?;
        let mut records = entries(&value);
        records.reverse();
        records.truncate(count);
        Ok(records)
    }
}

/// `EPOCH-OFFSET` → position.
fn parse_id(id: &[u8]) -> Option<Position> {
    let text = std::str::from_utf8(id).ok()?;
    let (epoch, offset) = text.split_once('-')?;
    Some(Position {
        epoch: epoch.parse().ok()?,
        offset: offset.parse().ok()?,
    })
}

/// The entries of one stream in an `XRANGE`-shaped reply: `[[id, [field, value, …]], …]`.
fn entries(value: &Value) -> Vec<Record> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let [id, Value::Array(fields)] = pair.as_slice() else {
                return None;
            };
            let position = parse_id(&bytes_of(id)?)?;
            let data = fields
                .chunks(2)
                .find(|kv| kv.len() == 2 && bytes_of(&kv[0]).is_some_and(|k| k == "d"))
                .and_then(|kv| bytes_of(&kv[1]))?;
            Some(Record { position, data })
        })
        .collect()
}

/// The entries of the first stream in an `XREAD` reply (RESP2 array or RESP3 map).
fn read_reply(value: &Value) -> Vec<Record> {
    match value {
        Value::Array(streams) => streams
            .first()
            .and_then(|stream| match stream {
                Value::Array(pair) if pair.len() == 2 => Some(entries(&pair[1])),
                _ => None,
            })
            .unwrap_or_default(),
        Value::Map(streams) => streams
            .first()
            .map(|(_, items)| entries(items))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_replies_parse() {
        assert_eq!(
            parse_id(b"7-42"),
            Some(Position {
                epoch: 7,
                offset: 42
            })
        );
        assert_eq!(parse_id(b"7"), None);
        assert_eq!(parse_id(b"x-1"), None);
        let entry = |id: &str, data: &str| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::Array(vec![
                    Value::BulkString(b"d".to_vec()),
                    Value::BulkString(data.as_bytes().to_vec()),
                ]),
            ])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"k".to_vec()),
            Value::Array(vec![
                entry("1-1", "a"),
                entry("bad", "b"),
                entry("2-1", "c"),
            ]),
        ])]);
        let records = read_reply(&reply);
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[1].position,
            Position {
                epoch: 2,
                offset: 1
            }
        );
        assert_eq!(records[1].data, Bytes::from_static(b"c"));
        assert!(read_reply(&Value::Nil).is_empty());
        assert!(read_reply(&Value::Int(3)).is_empty());
    }
}
