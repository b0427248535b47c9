//! The sign-in rules that do not need a browser (`auth.rs` applies them): what a 401 means
//! given the token the request carried and the token the tab holds now.

/// Why the sign-in form opens.
pub const REQUIRED: &str = "This Orrery requires an API token.";
pub const EXPIRED: &str =
    "The API token of this tab was refused (it may have been changed). Sign in again.";
/// The form's answer to a wrong token.
pub const REFUSED: &str = "Token refused.";

#[derive(Debug, PartialEq, Eq)]
pub enum On401 {
    /// The request was made with other credentials than the tab's current ones (a sign-in or
    /// sign-out happened while it was in flight): its 401 says nothing about them.
    Ignore,
    /// No token was sent and none is held: ask for one.
    Required,
    /// The held token was refused (rotated on the server): drop it and ask again.
    Expired,
}

pub fn on_401(sent: Option<&str>, current: Option<&str>) -> On401 {
    if sent != current {
        On401::Ignore
    } else if sent.is_some() {
        On401::Expired
    } else {
        On401::Required
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_401_opens_the_form_only_for_the_credentials_the_tab_holds() {
        assert_eq!(on_401(None, None), On401::Required);
        assert_eq!(on_401(Some("a"), Some("a")), On401::Expired);
        // Late answers to requests made before the latest sign-in / sign-out change nothing:
        // an unauthenticated request from before signing in, an old token after re-signing in,
        // a token request from before signing out.
        assert_eq!(on_401(None, Some("a")), On401::Ignore);
        assert_eq!(on_401(Some("old"), Some("new")), On401::Ignore);
        assert_eq!(on_401(Some("a"), None), On401::Ignore);
    }
}
