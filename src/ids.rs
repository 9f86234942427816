//! Typed identifiers. Each is a UUIDv7 (time-ordered, so tables keyed by id list in creation
//! order), parsed once at the edge and stored as a `u128` key.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, unique id that sorts after every id made before it.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_key(key: u128) -> Self {
                Self(Uuid::from_u128(key))
            }

            /// The form used in table keys.
            pub fn key(self) -> u128 {
                self.0.as_u128()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::try_parse(s).map(Self)
            }
        }
    };
}

typed_id!(
    /// A customer organisation of the app.
    TenantId
);
typed_id!(
    /// A person in a tenant's directory.
    UserId
);
typed_id!(
    /// A group in a tenant's directory.
    GroupId
);
typed_id!(
    /// A sign-in session.
    SessionId
);
typed_id!(
    /// An operator's admin API key.
    AdminKeyId
);
typed_id!(
    /// A tenant's SCIM bearer token.
    ScimTokenId
);
typed_id!(
    /// A lifecycle event or an audit record, unique across the instance.
    EntryId
);
typed_id!(
    /// An OAuth client of the app (its `client_id`).
    ClientId
);
typed_id!(
    /// An authorization request waiting for the person to sign in.
    AuthRequestId
);
typed_id!(
    /// A chain of refresh tokens, each replacing the one before (RFC 6819 §5.2.2.3).
    RefreshFamilyId
);
typed_id!(
    /// A back-channel logout token waiting to be delivered to a client.
    DeliveryId
);
typed_id!(
    /// A webhook endpoint of the app's: where lifecycle events are delivered.
    EndpointId
);
typed_id!(
    /// A tenant's SAML or OpenID Connect connection to its identity provider.
    ConnectionId
);
typed_id!(
    /// A time-limited link that lets a customer's IT admin set up their own tenant.
    SetupLinkId
);
