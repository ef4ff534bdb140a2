pub(crate) mod bundle;
pub(crate) mod config;
pub(crate) mod keys;
pub(crate) mod login;
pub(crate) mod pki;
pub(crate) mod policy;
pub(crate) mod quickstart;
pub(crate) mod run;
pub(crate) mod session;
pub(crate) mod token_store;

/// A multi-threaded runtime for commands that serve traffic.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
