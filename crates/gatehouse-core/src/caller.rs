//! Who is at the other end of a request: the client address and the
//! browser, as the audit log, the activity page and "Where you're signed
//! in" show them.

/// The longest user agent kept: enough to name any real browser, and no
/// more for one that sends a novel.
const USER_AGENT_MAX: usize = 512;

/// A request's client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The client address (from `X-Forwarded-For` only behind a trusted proxy).
    pub ip: String,
    /// The browser's `User-Agent`, without control characters and cut to a
    /// sensible length; `None` when it sent none.
    pub user_agent: Option<String>,
}

impl Caller {
    /// A caller at `ip` whose browser said `user_agent`.
    pub fn new(ip: &str, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(USER_AGENT_MAX)
                    .collect::<String>()
            })
            .map(|ua| ua.trim().to_owned())
            .filter(|ua| !ua.is_empty());
        Self {
            ip: ip.to_owned(),
            user_agent,
        }
    }

    /// A caller known only by address (an application's server, a test).
    pub fn at(ip: &str) -> Self {
        Self::new(ip, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_agent_is_kept_printable_and_short() {
        let c = Caller::new("10.0.0.1", Some("Mozilla/5.0\r\nX-Evil: 1"));
        assert_eq!(c.user_agent.as_deref(), Some("Mozilla/5.0X-Evil: 1"));
        let long = "a".repeat(2000);
        assert_eq!(
            Caller::new("x", Some(&long)).user_agent.map(|u| u.len()),
            Some(USER_AGENT_MAX)
        );
        assert_eq!(Caller::new("x", Some("  ")).user_agent, None);
    }
}
