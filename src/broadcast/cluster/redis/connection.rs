//! Connections to Redis: the client for a `--cluster` target (credentials and TLS, the
//! password never formatted into a URL), and a connection made on first use that then
//! reconnects by itself.

use crate::broadcast::cluster::target::ClusterTarget;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use std::time::Duration;
use tokio::sync::Mutex;

/// Longest wait for a connection to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A lazily made, reconnecting connection.
pub(super) struct Lazy {
    /// The client, or why none could be made (reported on every use).
    client: Result<Client, String>,
    config: ConnectionManagerConfig,
    connection: Mutex<Option<ConnectionManager>>,
}

impl Lazy {
    /// A connection through `client` whose answers are late after `response_timeout`.
    pub(super) fn new(client: Result<Client, String>, response_timeout: Duration) -> Lazy {
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

    /// The connection, made now if it was not yet.
    pub(super) async fn get(&self) -> Result<ConnectionManager, redis::RedisError> {
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

/// The client for `target`, with credentials and TLS; the URL itself is never formatted
/// with the password.
pub(super) fn client(target: &ClusterTarget) -> redis::RedisResult<Client> {
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
