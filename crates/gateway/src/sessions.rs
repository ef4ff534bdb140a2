//! Opening the configured session store.

use std::sync::Arc;

use portcullis_config::SessionStoreConfig;
use portcullis_session::SessionStore;

/// Opens (embedded) or connects to (Redis) the session store.
pub(crate) async fn open_store(cfg: &SessionStoreConfig) -> Result<Arc<dyn SessionStore>, String> {
    match cfg {
        SessionStoreConfig::Embedded { path } => {
            let store = portcullis_session::EmbeddedStore::open(
                path,
                portcullis_session::EmbeddedOptions::default(),
            )
            .map_err(|e| format!("sessions.store.embedded: `{}`: {e}", path.display()))?;
            Ok(Arc::new(store))
        }
        SessionStoreConfig::Redis {
            url,
            username,
            password,
            ca,
            timeout,
            key_prefix,
        } => {
            let store = portcullis_session::RedisStore::connect(portcullis_session::RedisOptions {
                url: url.clone(),
                username: username.clone(),
                password: password.as_ref().map(|p| p.0.clone()),
                tls_roots: ca.clone(),
                op_timeout: *timeout,
                key_prefix: key_prefix.clone(),
                ..portcullis_session::RedisOptions::new(url.clone())
            })
            .await
            .map_err(|e| format!("sessions.store.redis: {e}"))?;
            Ok(Arc::new(store))
        }
    }
}
