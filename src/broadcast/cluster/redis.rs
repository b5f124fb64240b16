//! The Redis engine (Redis ≥ 6.2): the claim is a key set with `SET NX PX` and renewed,
//! released and checked by compare-and-set scripts; the epoch is an `INCR` counter bumped
//! in the acquiring script; output is a stream whose entry ids are `EPOCH-OFFSET`, appended
//! by a script that checks the claim first and trimmed with `MAXLEN ~`; input is a second
//! stream consumed through a consumer group, by a script that checks the claim too.
//!
//! Three connections per stream, each a reconnecting connection manager made on first
//! use: one for claims and appends, one for the blocking reads of the output stream, one
//! for the runner's blocking waits on the input stream (a blocking read holds up every
//! other request on its connection).

use super::engine::{Claim, Engine, EngineError, Record, StreamKey, INPUT_WINDOW, MIN_WINDOW};
use super::target::ClusterTarget;
use crate::broadcast::bus::Position;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Script, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Longest wait for a connection to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the answer to a claim or append request.
const CONTROL_TIMEOUT: Duration = Duration::from_millis(1500);
/// Added to a blocking read's own wait for its answer to be late.
const BLOCKING_SLACK: Duration = Duration::from_secs(2);

const ACQUIRE: &str = r"
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then return 0 end
local e = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[2])
if e <= floor then e = floor + 1; redis.call('SET', KEYS[2], e) end
redis.call('SET', KEYS[1], ARGV[1] .. '/' .. e, 'KEEPTTL')
return e
";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

const APPEND: &str = r"
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

const TAKE_INPUT: &str = r"
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

/// A lazily made, reconnecting connection.
struct Lazy {
    /// The client, or why none could be made (reported on every use).
    client: Result<Client, String>,
    config: ConnectionManagerConfig,
    connection: Mutex<Option<ConnectionManager>>,
}

impl Lazy {
    fn new(client: Result<Client, String>, response_timeout: Duration) -> Lazy {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        Lazy {
            client,
            config,
            connection: Mutex::new(None),
        }
    }

    async fn get(&self) -> Result<ConnectionManager, redis::RedisError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let client = self.client.as_ref().map_err(|why| {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "unusable address",
                why.clone(),
            ))
        })?;
        let connection = client
            .get_connection_manager_with_config(self.config.clone())
            .await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

/// The Redis engine of one stream.
pub struct RedisEngine {
    target: ClusterTarget,
    claim_key: String,
    epoch_key: String,
    out_key: String,
    in_key: String,
    window: usize,
    control: Lazy,
    reader: Lazy,
    input: Lazy,
    acquire: Script,
    renew: Script,
    release: Script,
    append: Script,
    take_input: Script,
}

/// Opens the Redis engine for `key` (connecting on first use); `window` is the replay
/// window the output stream keeps at least.
pub fn open(target: &ClusterTarget, key: &StreamKey, window: usize) -> Arc<dyn Engine> {
    Arc::new(RedisEngine::new(target, key, window))
}

impl RedisEngine {
    fn new(target: &ClusterTarget, key: &StreamKey, window: usize) -> RedisEngine {
        let prefix = format!("websocketd:{{{}}}", key.safe_id());
        let client = client(target).map_err(|err| target.redact(&err.to_string()));
        RedisEngine {
            target: target.clone(),
            claim_key: format!("{prefix}:claim"),
            epoch_key: format!("{prefix}:epoch"),
            out_key: format!("{prefix}:out"),
            in_key: format!("{prefix}:in"),
            window: window.max(MIN_WINDOW),
            control: Lazy::new(client.clone(), CONTROL_TIMEOUT),
            reader: Lazy::new(client.clone(), CONTROL_TIMEOUT + BLOCKING_SLACK),
            input: Lazy::new(client, CONTROL_TIMEOUT + BLOCKING_SLACK),
            acquire: Script::new(ACQUIRE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            append: Script::new(APPEND),
            take_input: Script::new(TAKE_INPUT),
        }
    }

    fn unreachable(&self, err: &redis::RedisError) -> EngineError {
        EngineError::Unreachable(
            self.target
                .redact(&format!("Redis at {}: {err}", self.target)),
        )
    }

    /// Runs `script` on the control connection, bounded in time.
    async fn control_script(
        &self,
        script: &Script,
        keys: &[&str],
        args: Vec<Vec<u8>>,
    ) -> Result<Value, EngineError> {
        let mut connection = self.control.get().await.map_err(|e| self.unreachable(&e))?;
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        match tokio::time::timeout(CONTROL_TIMEOUT, invocation.invoke_async(&mut connection)).await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.unreachable(&err)),
            Err(_) => Err(EngineError::Unreachable(format!(
                "Redis at {} did not answer in time",
                self.target
            ))),
        }
    }
}

/// The client for `target`, with credentials and TLS; the URL itself is never formatted
/// with the password.
fn client(target: &ClusterTarget) -> redis::RedisResult<Client> {
    let addr = if target.tls {
        ConnectionAddr::TcpTls {
            host: target.host.clone(),
            port: target.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(target.host.clone(), target.port)
    };
    let mut redis = RedisConnectionInfo::default();
    if let Some(user) = &target.username {
        redis = redis.set_username(user);
    }
    if let Some(password) = &target.password {
        redis = redis.set_password(password.expose());
    }
    let info = addr
        .into_connection_info()
        .map(|info| info.set_redis_settings(redis));
    info.and_then(Client::open)
}

fn claim_value(claim: &Claim) -> Vec<u8> {
    format!("{}/{}", claim.token, claim.epoch).into_bytes()
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

fn bytes_of(value: &Value) -> Option<Bytes> {
    match value {
        Value::BulkString(data) => Some(Bytes::copy_from_slice(data)),
        Value::SimpleString(text) => Some(Bytes::copy_from_slice(text.as_bytes())),
        _ => None,
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

impl Engine for RedisEngine {
    fn acquire(
        &self,
        token: &str,
        floor: u64,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Option<Claim>, EngineError>> {
        let token = token.to_string();
        async move {
            let value = self
                .control_script(
                    &self.acquire,
                    &[&self.claim_key, &self.epoch_key],
                    vec![
                        token.clone().into_bytes(),
                        floor.to_string().into_bytes(),
                        lease.as_millis().to_string().into_bytes(),
                    ],
                )
                .await?;
            Ok(int(&value)
                .and_then(|epoch| u64::try_from(epoch).ok())
                .filter(|&epoch| epoch > 0)
                .map(|epoch| Claim { token, epoch }))
        }
        .boxed()
    }

    fn renew(&self, claim: &Claim, lease: Duration) -> BoxFuture<'_, Result<(), EngineError>> {
        let args = vec![
            claim_value(claim),
            lease.as_millis().to_string().into_bytes(),
        ];
        async move {
            let value = self
                .control_script(&self.renew, &[&self.claim_key], args)
                .await?;
            match int(&value) {
                Some(1) => Ok(()),
                _ => Err(EngineError::Fenced),
            }
        }
        .boxed()
    }

    fn release(&self, claim: &Claim) -> BoxFuture<'_, Result<(), EngineError>> {
        let args = vec![claim_value(claim)];
        async move {
            self.control_script(&self.release, &[&self.claim_key], args)
                .await
                .map(|_| ())
        }
        .boxed()
    }

    fn append(
        &self,
        claim: &Claim,
        first: u64,
        records: Vec<Bytes>,
    ) -> BoxFuture<'_, Result<(), EngineError>> {
        let mut args = vec![
            claim_value(claim),
            claim.epoch.to_string().into_bytes(),
            first.to_string().into_bytes(),
            self.window.to_string().into_bytes(),
        ];
        args.extend(records.into_iter().map(|record| record.to_vec()));
        async move {
            let value = self
                .control_script(&self.append, &[&self.claim_key, &self.out_key], args)
                .await?;
            match int(&value) {
                Some(1 | 2) => Ok(()),
                _ => Err(EngineError::Fenced),
            }
        }
        .boxed()
    }

    fn read(
        &self,
        after: Position,
        max: usize,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<Record>, EngineError>> {
        async move {
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
            match tokio::time::timeout(
                wait + BLOCKING_SLACK,
                command.query_async::<Value>(&mut connection),
            )
            .await
            {
                Ok(Ok(value)) => Ok(read_reply(&value)),
                Ok(Err(err)) => Err(self.unreachable(&err)),
                Err(_) => Err(EngineError::Unreachable(format!(
                    "Redis at {} did not answer in time",
                    self.target
                ))),
            }
        }
        .boxed()
    }

    fn last(&self, count: usize) -> BoxFuture<'_, Result<Vec<Record>, EngineError>> {
        async move {
            let mut connection = self.control.get().await.map_err(|e| self.unreachable(&e))?;
            let mut command = redis::cmd("XREVRANGE");
            command
                .arg(&self.out_key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(count.max(1));
            match tokio::time::timeout(
                CONTROL_TIMEOUT,
                command.query_async::<Value>(&mut connection),
            )
            .await
            {
                Ok(Ok(value)) => {
                    let mut records = entries(&value);
                    records.reverse();
                    records.truncate(count);
                    Ok(records)
                }
                Ok(Err(err)) => Err(self.unreachable(&err)),
                Err(_) => Err(EngineError::Unreachable(format!(
                    "Redis at {} did not answer in time",
                    self.target
                ))),
            }
        }
        .boxed()
    }

    fn push_input(&self, input: Bytes) -> BoxFuture<'_, Result<(), EngineError>> {
        async move {
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
            match tokio::time::timeout(
                CONTROL_TIMEOUT,
                command.query_async::<Value>(&mut connection),
            )
            .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) => Err(self.unreachable(&err)),
                Err(_) => Err(EngineError::Unreachable(format!(
                    "Redis at {} did not answer in time",
                    self.target
                ))),
            }
        }
        .boxed()
    }

    fn take_input(
        &self,
        claim: &Claim,
        max: usize,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<Bytes>, EngineError>> {
        let args = vec![claim_value(claim), max.max(1).to_string().into_bytes()];
        async move {
            let value = self
                .control_script(
                    &self.take_input,
                    &[&self.claim_key, &self.in_key],
                    args.clone(),
                )
                .await?;
            let Value::Array(items) = value else {
                return Ok(Vec::new());
            };
            match items.first().and_then(int) {
                Some(2) => return Ok(items[1..].iter().filter_map(bytes_of).collect()),
                Some(1) => {}
                _ => return Err(EngineError::Fenced),
            }
            // Nothing new: wait (without taking) for an entry after the last one, then
            // take through the script, which checks the claim again.
            let Some(top) = items.get(1).and_then(bytes_of) else {
                return Ok(Vec::new());
            };
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
            match tokio::time::timeout(
                wait + BLOCKING_SLACK,
                command.query_async::<Value>(&mut connection),
            )
            .await
            {
                Ok(Ok(Value::Nil)) => Ok(Vec::new()),
                Ok(Ok(_)) => {
                    let value = self
                        .control_script(&self.take_input, &[&self.claim_key, &self.in_key], args)
                        .await?;
                    let Value::Array(items) = value else {
                        return Ok(Vec::new());
                    };
                    match items.first().and_then(int) {
                        Some(2) => Ok(items[1..].iter().filter_map(bytes_of).collect()),
                        Some(1) => Ok(Vec::new()),
                        _ => Err(EngineError::Fenced),
                    }
                }
                Ok(Err(err)) => Err(self.unreachable(&err)),
                Err(_) => Err(EngineError::Unreachable(format!(
                    "Redis at {} did not answer in time",
                    self.target
                ))),
            }
        }
        .boxed()
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
