//! Who asks for an administrative action, and what each may do.
//!
//! Every administrative service takes an [`Actor`] and checks it here,
//! whatever called it: the console, the command line, a test. A console
//! member is made only by [`crate::Gatehouse::console_access`], from a
//! session that passed the second factor, so the web layer cannot claim a
//! role it was not given.
//!
//! | action | operator (command line) | admin | helpdesk |
//! | --- | --- | --- | --- |
//! | find people, "did the email go out?", the audit log | yes | yes | yes |
//! | see an account, change its email, end its sessions | yes | yes | staff accounts only |
//! | disable or enable an account, lift a lock early | yes | yes (not their own to disable) | no |
//! | load a staff file | yes | yes | no |
//! | roles, set-up links, second-factor resets | yes | no | no |
//! | see the registered applications | yes | yes | no |
//! | register, change or remove applications; rotate signing keys | yes | no | no |
//! | export everything held about a person; erase a person | yes | no | no |
//!
//! Helpdesk members act on staff accounts only: a helpdesk member who could
//! change an administrator's email address could send themselves that
//! administrator's reset link.

use gatehouse_domain::Role;
use gatehouse_store::AccountRecord;

/// What an actor asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See an account's details (date of birth, email address, lock, sessions).
    ViewAccount,
    /// Change an account's email address.
    ChangeEmail,
    /// End every session of an account.
    EndSessions,
    /// Disable or enable an account.
    DisableAccount,
    /// Lift a lock before it ends.
    LiftLock,
    /// Load a staff file.
    ImportStaff,
    /// Change a role, issue a set-up link, or reset a second factor.
    ManagePrivilege,
    /// See the registered applications (OpenID Connect clients).
    ViewClients,
    /// Register, change or remove applications, or rotate the signing keys.
    ManageClients,
    /// Write out everything held about a person (a subject access request).
    ExportPerson,
    /// Erase a person's personal details.
    ErasePerson,
}

impl Action {
    /// The action in words, for refusals and the audit log.
    pub fn describe(self) -> &'static str {
        match self {
            Action::ViewAccount => "see the account of",
            Action::ChangeEmail => "change the email address of",
            Action::EndSessions => "end the sessions of",
            Action::DisableAccount => "disable or enable",
            Action::LiftLock => "lift the lock of",
            Action::ImportStaff => "load a staff file",
            Action::ManagePrivilege => "change the role or second factor of",
            Action::ViewClients => "see the registered applications",
            Action::ManageClients => "register or change applications",
            Action::ExportPerson => "export everything held about",
            Action::ErasePerson => "erase the personal details of",
        }
    }
}

/// A helpdesk or admin member in the console, past the second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    account_id: i64,
    username: String,
    role: Role,
    client_ip: String,
}

impl Member {
    /// Only core makes members, from a session that passed the second factor.
    pub(crate) fn new(account: &AccountRecord, role: Role, client_ip: &str) -> Self {
        Self {
            account_id: account.id,
            username: account.username.to_string(),
            role,
            client_ip: client_ip.to_owned(),
        }
    }

    /// The member's own account.
    pub fn account_id(&self) -> i64 {
        self.account_id
    }

    /// The member's role: helpdesk or admin.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The member's username.
    pub fn username(&self) -> &str {
        &self.username
    }
}

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The operator on the server's command line, trusted with everything;
    /// the audit log names the command (`admin (command line)`,
    /// `import (command line)`, `demo`).
    Operator(&'static str),
    /// A helpdesk or admin member in the console.
    Member(Member),
}

impl Actor {
    /// `gatehouse admin …`.
    pub const COMMAND_LINE: Actor = Actor::Operator("admin (command line)");
    /// `gatehouse import`.
    pub const IMPORT: Actor = Actor::Operator("import (command line)");

    /// How the audit log names the actor (`helpdesk 999AKHAN01`, `admin (command line)`).
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Operator(name) => (*name).to_owned(),
            Actor::Member(m) => format!("{} {}", m.role.as_str(), m.username),
        }
    }

    /// The client address of a console member (the command line has none).
    pub fn client_ip(&self) -> Option<&str> {
        match self {
            Actor::Operator(_) => None,
            Actor::Member(m) => Some(&m.client_ip),
        }
    }

    /// The actor's own account, if it has one.
    pub fn account_id(&self) -> Option<i64> {
        match self {
            Actor::Operator(_) => None,
            Actor::Member(m) => Some(m.account_id),
        }
    }

    /// Whether the actor may do `action` to an account with role `target`
    /// (`None`: an action on no one account).
    pub fn permits(&self, action: Action, target: Option<Role>) -> bool {
        match self {
            Actor::Operator(_) => true,
            Actor::Member(m) => match (m.role, action) {
                (
                    _,
                    Action::ManagePrivilege
                    | Action::ManageClients
                    | Action::ExportPerson
                    | Action::ErasePerson,
                ) => false,
                (Role::Admin, _) => true,
                (
                    Role::Helpdesk,
                    Action::ViewAccount | Action::ChangeEmail | Action::EndSessions,
                ) => target == Some(Role::Staff),
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(role: Role) -> Actor {
        Actor::Member(Member {
            account_id: 1,
            username: "999AKHAN01".to_owned(),
            role,
            client_ip: "192.0.2.1".to_owned(),
        })
    }

    #[test]
    fn the_helpdesk_acts_on_staff_accounts_only() {
        let helpdesk = member(Role::Helpdesk);
        for action in [
            Action::ViewAccount,
            Action::ChangeEmail,
            Action::EndSessions,
        ] {
            assert!(helpdesk.permits(action, Some(Role::Staff)), "{action:?}");
            assert!(
                !helpdesk.permits(action, Some(Role::Helpdesk)),
                "{action:?}"
            );
            assert!(!helpdesk.permits(action, Some(Role::Admin)), "{action:?}");
        }
        for action in [
            Action::DisableAccount,
            Action::LiftLock,
            Action::ImportStaff,
            Action::ManagePrivilege,
        ] {
            assert!(!helpdesk.permits(action, Some(Role::Staff)), "{action:?}");
        }
    }

    #[test]
    fn admins_act_on_every_account_but_privilege_is_the_operators() {
        let admin = member(Role::Admin);
        for target in [Role::Staff, Role::Helpdesk, Role::Admin] {
            assert!(admin.permits(Action::ChangeEmail, Some(target)));
            assert!(admin.permits(Action::DisableAccount, Some(target)));
            assert!(!admin.permits(Action::ManagePrivilege, Some(target)));
            assert!(!admin.permits(Action::ManageClients, Some(target)));
            assert!(Actor::COMMAND_LINE.permits(Action::ManagePrivilege, Some(target)));
        }
        assert!(admin.permits(Action::ImportStaff, None));
        assert!(admin.permits(Action::ViewClients, None));
        assert!(!member(Role::Helpdesk).permits(Action::ViewClients, None));
        assert!(Actor::COMMAND_LINE.permits(Action::ManageClients, None));
    }

    #[test]
    fn the_audit_log_names_the_member_by_role_and_username() {
        assert_eq!(member(Role::Helpdesk).audit_name(), "helpdesk 999AKHAN01");
        assert_eq!(Actor::IMPORT.audit_name(), "import (command line)");
        assert_eq!(Actor::IMPORT.client_ip(), None);
    }
}
