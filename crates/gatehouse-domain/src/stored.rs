//! How domain values are stored (with the `sqlx` feature, which the store
//! turns on): each as the text or number it is written as, so that the
//! store's rows hold domain types, and a value read back that this build
//! does not know is an error rather than a default.
//!
//! These are conversions only; the domain still does no I/O.

use sqlx::any::{Any, AnyTypeInfo};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use crate::account::{EmailAddress, Role, Username, UsernameKey};
use crate::audit::AuditEvent;
use crate::mail::EmailStatus;
use crate::oidc::client::{ClientId, ClientKind};
use crate::oidc::jose::SigningAlg;
use crate::oidc::scope::Scopes;
use crate::recovery::RequestStatus;
use crate::reset_link::{LinkPurpose, VoidReason};
use crate::time::Timestamp;
use crate::token::TokenHash;

/// Stores a type as text: `$show` writes it, `$read` reads it back (`None`
/// for text this build does not know).
macro_rules! stored_as_text {
    ($type:ty, $read:expr, $show:expr) => {
        impl Type<Any> for $type {
            fn type_info() -> AnyTypeInfo {
                <str as Type<Any>>::type_info()
            }
        }

        impl Encode<'_, Any> for $type {
            fn encode_by_ref(
                &self,
                buf: &mut <Any as Database>::ArgumentBuffer,
            ) -> Result<IsNull, BoxDynError> {
                let text: &str = $show(self);
                <String as Encode<'_, Any>>::encode(text.to_owned(), buf)
            }
        }

        impl<'r> Decode<'r, Any> for $type {
            fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<'r, Any>>::decode(value)?;
                $read(text).ok_or_else(|| {
                    format!(
                        "the database holds {text:?}, which is not a {} this build knows",
                        stringify!($type)
                    )
                    .into()
                })
            }
        }
    };
}

stored_as_text!(Role, Role::from_stored, |r: &Role| r.as_str());
stored_as_text!(AuditEvent, AuditEvent::from_stored, |e: &AuditEvent| e
    .as_str());
stored_as_text!(EmailStatus, EmailStatus::from_stored, |s: &EmailStatus| s
    .as_str());
stored_as_text!(
    RequestStatus,
    RequestStatus::from_stored,
    |s: &RequestStatus| s.as_str()
);
stored_as_text!(LinkPurpose, LinkPurpose::from_stored, |p: &LinkPurpose| p
    .as_str());
stored_as_text!(VoidReason, VoidReason::from_stored, |r: &VoidReason| r
    .as_str());
stored_as_text!(
    Username,
    |t: &str| Some(Username::from_trusted(t.to_owned())),
    Username::as_str
);
stored_as_text!(
    UsernameKey,
    |t: &str| Some(UsernameKey::from_trusted(t.to_owned())),
    UsernameKey::as_str
);
stored_as_text!(
    EmailAddress,
    |t: &str| Some(EmailAddress::from_trusted(t.to_owned())),
    EmailAddress::as_str
);

stored_as_text!(ClientKind, ClientKind::parse, |k: &ClientKind| k.as_str());
stored_as_text!(
    SigningAlg,
    |t: &str| SigningAlg::parse(t).ok(),
    |a: &SigningAlg| a.as_str()
);
stored_as_text!(ClientId, ClientId::parse, ClientId::as_str);

/// Scopes are stored as a `scope` value ("openid profile email").
impl Type<Any> for Scopes {
    fn type_info() -> AnyTypeInfo {
        <str as Type<Any>>::type_info()
    }
}

impl Encode<'_, Any> for Scopes {
    fn encode_by_ref(
        &self,
        buf: &mut <Any as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<'_, Any>>::encode(self.as_string(), buf)
    }
}

impl<'r> Decode<'r, Any> for Scopes {
    fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Scopes::requested(<&str as Decode<'r, Any>>::decode(value)?))
    }
}

/// A time is stored as whole seconds since the Unix epoch.
impl Type<Any> for Timestamp {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl Encode<'_, Any> for Timestamp {
    fn encode_by_ref(
        &self,
        buf: &mut <Any as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'_, Any>>::encode(self.unix(), buf)
    }
}

impl<'r> Decode<'r, Any> for Timestamp {
    fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Timestamp::from_unix(<i64 as Decode<'r, Any>>::decode(
            value,
        )?))
    }
}

/// A token's hash is stored as its 32 bytes.
impl Type<Any> for TokenHash {
    fn type_info() -> AnyTypeInfo {
        <[u8] as Type<Any>>::type_info()
    }
}

impl Encode<'_, Any> for TokenHash {
    fn encode_by_ref(
        &self,
        buf: &mut <Any as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <Vec<u8> as Encode<'_, Any>>::encode(self.as_bytes().to_vec(), buf)
    }
}

impl<'r> Decode<'r, Any> for TokenHash {
    fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let bytes = <&[u8] as Decode<'r, Any>>::decode(value)?;
        TokenHash::from_slice(bytes)
            .ok_or_else(|| format!("a stored hash has {} bytes, not 32", bytes.len()).into())
    }
}
