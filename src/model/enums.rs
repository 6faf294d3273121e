//! Enumerations ThoughtSpot reports as strings. Newer clusters add values, so
//! each enum keeps what it does not know verbatim in `Other` instead of failing.

use std::fmt;

macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this version of ts-principals does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The value as ThoughtSpot spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(text) => text,
                }
            }

            /// Reads ThoughtSpot's spelling; unknown values become `Other`.
            pub fn parse(text: &str) -> Self {
                match text {
                    $($text => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Ok(Self::parse(&text))
            }
        }
    };
}

open_enum! {
    /// Whether a principal can be shared with (`visibility`).
    Visibility {
        /// Content can be shared with this principal.
        Sharable = "SHARABLE",
        /// Hidden from sharing dialogs.
        NonSharable = "NON_SHARABLE",
    }
}

open_enum! {
    /// How a user account authenticates (`account_type`).
    AccountType {
        /// Password stored in ThoughtSpot.
        LocalUser = "LOCAL_USER",
        /// LDAP / Active Directory.
        LdapUser = "LDAP_USER",
        /// SAML single sign-on.
        SamlUser = "SAML_USER",
        /// OpenID Connect single sign-on.
        OidcUser = "OIDC_USER",
        /// Trusted authentication / remote.
        RemoteUser = "REMOTE_USER",
    }
}

open_enum! {
    /// Whether a user can log in (`account_status`).
    AccountStatus {
        /// Can log in.
        Active = "ACTIVE",
        /// Disabled.
        Inactive = "INACTIVE",
        /// Past its expiry date.
        Expired = "EXPIRED",
        /// Locked after failed logins.
        Locked = "LOCKED",
        /// Invited, not yet activated.
        Pending = "PENDING",
    }
}

open_enum! {
    /// Kind of group (`type`).
    GroupType {
        /// Created in ThoughtSpot.
        LocalGroup = "LOCAL_GROUP",
        /// Synchronised from LDAP.
        LdapGroup = "LDAP_GROUP",
        /// A team group.
        TeamGroup = "TEAM_GROUP",
        /// A tenant group.
        TenantGroup = "TENANT_GROUP",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_round_trip() {
        for text in ["SHARABLE", "NON_SHARABLE"] {
            assert_eq!(Visibility::parse(text).as_str(), text);
        }
        assert_eq!(AccountType::parse("SAML_USER"), AccountType::SamlUser);
    }

    #[test]
    fn unknown_values_are_kept_verbatim() {
        let value = AccountStatus::parse("SUSPENDED_BY_ROBOT");
        assert_eq!(value, AccountStatus::Other("SUSPENDED_BY_ROBOT".into()));
        assert_eq!(value.to_string(), "SUSPENDED_BY_ROBOT");
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(json, "\"SUSPENDED_BY_ROBOT\"");
        let back: AccountStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(back, value);
    }
}
