//! The runner claim on Redis: a key set with `SET NX PX` by a script that also bumps the
//! `INCR` epoch counter (never below the caller's floor), renewed and released by
//! compare-and-set scripts on `TOKEN/EPOCH`.

use super::{claim_value, int, RedisEngine};
use crate::broadcast::cluster::engine::{Claim, EngineError};
use std::time::Duration;

/// Takes the claim if the key is free; returns the new epoch, or 0.
pub(super) const ACQUIRE: &str = r"
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then return 0 end
local e = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[2])
if e <= floor then e = floor + 1; redis.call('SET', KEYS[2], e) end
redis.call('SET', KEYS[1], ARGV[1] .. '/' .. e, 'KEEPTTL')
return e
";

/// Extends the claim if it is still the caller's; 1 if so, else 0.
pub(super) const RENEW: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Deletes the claim if it is still the caller's.
pub(super) const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

impl RedisEngine {
    /// Takes the claim with `token` if nobody holds it.
    pub(super) async fn acquire_now(
        &self,
        token: String,
        floor: u64,
        lease: Duration,
    ) -> Result<Option<Claim>, EngineError> {
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

    /// Extends `claim` to `lease` from now if it still holds.
    pub(super) async fn renew_now(&self, args: Vec<Vec<u8>>) -> Result<(), EngineError> {
        let value = self
            .control_script(&self.renew, &[&self.claim_key], args)
            .await?;
        match int(&value) {
            Some(1) => Ok(()),
            _ => Err(EngineError::Fenced),
        }
    }

    /// The arguments of [`RENEW`] for `claim` and `lease`.
    pub(super) fn renew_args(claim: &Claim, lease: Duration) -> Vec<Vec<u8>> {
        vec![
            claim_value(claim),
            lease.as_millis().to_string().into_bytes(),
        ]
    }

    /// Gives the claim up if it still holds.
    pub(super) async fn release_now(&self, args: Vec<Vec<u8>>) -> Result<(), EngineError> {
        self.control_script(&self.release, &[&self.claim_key], args)
            .await
            .map(|_| ())
    }
}
