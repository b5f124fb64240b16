//! Client input on Redis: any instance adds to the input stream (trimmed with
//! `MAXLEN ~`); the claim's holder takes from it through a consumer group, by a script
//! that checks the claim in the same step, and waits for more with a blocking `XREAD` on
//! a connection of its own.

use super::{bytes_of, claim_value, int, RedisEngine, BLOCKING_SLACK, CONTROL_TIMEOUT};
use crate::broadcast::cluster::engine::{Claim, EngineError, INPUT_WINDOW};
use bytes::Bytes;
use redis::Value;
use std::time::Duration;

/// Takes new inputs if the claim is the caller's: `{2, input…}` taken, `{1, last id}`
/// nothing new, `{0}` fenced.
pub(super) const TAKE_INPUT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
redis.pcall('XGROUP', 'CREATE', KEYS[2], 'runner', '0', 'MKSTREAM')
local got = redis.call('XREADGROUP', 'GROUP', 'runner', 'runner', 'COUNT', ARGV[2], 'NOACK', 'STREAMS', KEYS[2], '>')
if got and got[1] and #got[1][2] > 0 then
  local out = {2}
  for _, entry in ipairs(got[1][2]) do
    local fields = entry[2]
    for j = 1, #fields, 2 do
      if fields[j] == 'd' then table.insert(out, fields[j + 1]) end
    end
  end
  return out
end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if top[1] then return {1, top[1][1]} end
return {1, '0-0'}
";

/// What one run of [`TAKE_INPUT`] found.
enum Taken {
    /// Inputs, now taken.
    Inputs(Vec<Bytes>),
    /// Nothing new; the id of the input stream's last entry, if the reply had one.
    Nothing(Option<Bytes>),
}

impl RedisEngine {
    /// Adds one input to the input stream.
    pub(super) async fn push_input_now(&self, input: Bytes) -> Result<(), EngineError> {
        let mut connection = self.control.get().await.map_err(|e| self.unreachable(&e))?;
        let mut command = redis::cmd("XADD");
        command
            .arg(&self.in_key)
            .arg("MAXLEN")
            .arg("~")
            .arg(INPUT_WINDOW)
            .arg("*")
            .arg("d")
            .arg(input.as_ref());
        self.query(&mut connection, &command, CONTROL_TIMEOUT)
            .await
            .map(|_| ())
    }

    /// Takes up to `max` inputs for the holder of `claim`, waiting up to `wait` for one.
    pub(super) async fn take_input_now(
        &self,
        claim: &Claim,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Bytes>, EngineError> {
        let args = vec![claim_value(claim), max.max(1).to_string().into_bytes()];
        let top = match self.take(args.clone()).await? {
            Taken::Inputs(inputs) => return Ok(inputs),
            Taken::Nothing(Some(top)) => top,
            Taken::Nothing(None) => return Ok(Vec::new()),
        };
        // Nothing new: wait (without taking) for an entry after the last one, then take
        // through the script, which checks the claim again.
        let mut connection = self.input.get().await.map_err(|e| self.unreachable(&e))?;
        let mut command = redis::cmd("XREAD");
        command
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(wait.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.in_key)
            .arg(top.as_ref());
        let value = self
            .query(&mut connection, &command, wait + BLOCKING_SLACK)
            .await?;
        if matches!(value, Value::Nil) {
            return Ok(Vec::new());
        }
        match self.take(args).await? {
            Taken::Inputs(inputs) => Ok(inputs),
            Taken::Nothing(_) => Ok(Vec::new()),
        }
    }

    /// Runs [`TAKE_INPUT`] once.
    async fn take(&self, args: Vec<Vec<u8>>) -> Result<Taken, EngineError> {
        let value = self
            .control_script(&self.take_input, &[&self.claim_key, &self.in_key], args)
            .await?;
        let Value::Array(items) = value else {
            return Ok(Taken::Nothing(None));
        };
        match items.first().and_then(int) {
            Some(2) => Ok(Taken::Inputs(
                items[1..].iter().filter_map(bytes_of).collect(),
            )),
            Some(1) => Ok(Taken::Nothing(items.get(1).and_then(bytes_of))),
            _ => Err(EngineError::Fenced),
        }
    }
}
