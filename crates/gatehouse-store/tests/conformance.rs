//! The storage conformance suite: every backend must pass every scenario in
//! `scenarios/`, each on a fresh, migrated, empty store.

#[macro_use]
mod scenarios;
use scenarios::*;

/// Instantiates the named tests for one backend.
macro_rules! conformance {
    ($backend:ident: $($test:ident),* $(,)?) => {
        mod $backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let (store, _guard) = super::$backend().await;
                super::$test(store).await;
            })*
        }
    };
}

with_scenarios!(conformance!(sqlite:));
with_scenarios!(conformance!(postgres:));
