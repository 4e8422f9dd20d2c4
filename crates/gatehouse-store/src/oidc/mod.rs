//! OpenID Connect's storage: the registered clients, the signing keys, the
//! codes and grants issued to clients, and the back-channel logout notices
//! waiting to be delivered.

pub mod clients;
pub mod grants;
pub mod logout_notices;
pub mod signing_keys;
