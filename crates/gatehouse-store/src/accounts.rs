//! Accounts: who people are, their employer, role and password.

use gatehouse_domain::{EmailAddress, Role, Timestamp, Username, UsernameKey};
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::{Result, Tx};

/// An account, with its employer.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRecord {
    /// Storage id.
    pub id: i64,
    /// Employer's organisation number.
    pub employer_code: String,
    /// Employer's name.
    pub employer_name: String,
    /// Username as shown.
    pub username: Username,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// Email address on record.
    pub email: EmailAddress,
    /// Employee number, if any.
    pub employee_number: Option<String>,
    /// What the person may do.
    pub role: Role,
    /// Argon2id PHC string; `None` until the person sets a password.
    pub password_hash: Option<String>,
    /// When the password was last set.
    pub password_changed_at: Option<Timestamp>,
    /// The latest sign-in.
    pub last_sign_in_at: Option<Timestamp>,
    /// The sign-in before the latest, shown on "My account" as "last signed in".
    pub previous_sign_in_at: Option<Timestamp>,
    /// When an administrator disabled the account; `None` while enabled.
    pub disabled_at: Option<Timestamp>,
    /// Until when a privileged account that has no authenticator yet may
    /// set one up: set when a set-up link sets its password, cleared by any
    /// other password set, an email change, or a second-factor reset.
    pub second_factor_setup_until: Option<Timestamp>,
    /// The subject (`sub`) applications know the person by: assigned the
    /// first time one asks ([`assign_subject`]).
    pub subject: Option<String>,
    /// When the person's details were erased (a subject's request, or a
    /// disabled account past its retention period); `None` while held.
    pub erased_at: Option<Timestamp>,
}

impl AccountRecord {
    /// The username's lookup key.
    pub fn username_key(&self) -> UsernameKey {
        self.username.key()
    }
}

/// The columns of [`AccountRecord`], read with its employer.
const ACCOUNT: &str = "SELECT a.id, e.code AS employer_code, e.name AS employer_name, \
    a.username, a.first_name, a.last_name, a.date_of_birth, a.email, a.employee_number, a.role, \
    a.password_hash, a.password_changed_at, a.last_sign_in_at, a.previous_sign_in_at, \
    a.disabled_at, a.second_factor_setup_until, a.subject, a.erased_at \
    FROM accounts a JOIN employers e ON e.id = a.employer_id";

/// The order people are listed in: by surname, then first name, read from
/// the index already in that order.
const BY_NAME: &str = "ORDER BY a.last_name_key, a.first_name, a.username_key";

/// The account with this username.
pub async fn by_username(
    conn: &mut AnyConnection,
    key: &UsernameKey,
) -> Result<Option<AccountRecord>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "{ACCOUNT} WHERE a.username_key = $1"
    )))
    .bind(key)
    .fetch_optional(conn)
    .await?)
}

/// The account with this id.
pub async fn by_id(conn: &mut AnyConnection, id: i64) -> Result<Option<AccountRecord>> {
    Ok(
        sqlx::query_as(AssertSqlSafe(format!("{ACCOUNT} WHERE a.id = $1")))
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Accounts whose username, email address or employee number is `query`,
/// or whose surname (or first name and surname) it is, without regard to
/// case: at most `limit`, exact identifiers first.
pub async fn search(
    conn: &mut AnyConnection,
    query: &str,
    limit: u32,
) -> Result<Vec<AccountRecord>> {
    let typed = query.trim();
    if typed.is_empty() {
        return Ok(Vec::new());
    }
    let limit_i64 = i64::from(limit);
    // Exact identifiers first (a handful of rows, each by its index), then
    // people with that surname in name order, so only `limit` index
    // entries are touched.
    let mut found: Vec<AccountRecord> = sqlx::query_as(AssertSqlSafe(format!(
        "{ACCOUNT} WHERE a.id IN ( \
         SELECT id FROM accounts WHERE username_key = $1 \
         UNION SELECT id FROM accounts WHERE email_key = $2 \
         UNION SELECT id FROM accounts WHERE employee_number = $3) {BY_NAME} LIMIT $4"
    )))
    .bind(typed.to_ascii_uppercase())
    .bind(typed.to_ascii_lowercase())
    .bind(typed)
    .bind(limit_i64)
    .fetch_all(&mut *conn)
    .await?;
    let mut more: Vec<AccountRecord> = sqlx::query_as(AssertSqlSafe(format!(
        "{ACCOUNT} WHERE a.last_name_key = $1 {BY_NAME} LIMIT $2"
    )))
    .bind(typed.to_lowercase())
    .bind(limit_i64)
    .fetch_all(&mut *conn)
    .await?;
    // "Jane Smith": a first name and a surname (a surname with a space in
    // it was tried whole above).
    if let Some((first, last)) = typed.rsplit_once(char::is_whitespace) {
        more.extend(
            sqlx::query_as::<_, AccountRecord>(AssertSqlSafe(format!(
                "{ACCOUNT} WHERE a.last_name_key = $1 AND lower(a.first_name) = $2 \
                 {BY_NAME} LIMIT $3"
            )))
            .bind(last.trim().to_lowercase())
            .bind(first.trim().to_lowercase())
            .bind(limit_i64)
            .fetch_all(&mut *conn)
            .await?,
        );
    }
    for account in more {
        if !found.iter().any(|f| f.id == account.id) {
            found.push(account);
        }
    }
    found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(found)
}

/// The enabled accounts with this email address and date of birth (and
/// username, if given), by employer: what a recovery request matches.
pub async fn for_recovery(
    conn: &mut AnyConnection,
    email_key: &str,
    date_of_birth: &str,
    username_key: Option<&str>,
) -> Result<Vec<AccountRecord>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "{ACCOUNT} WHERE a.email_key = $1 AND a.date_of_birth = $2 \
         AND ($3 IS NULL OR a.username_key = $3) AND a.disabled_at IS NULL \
         ORDER BY e.code, a.username_key"
    )))
    .bind(email_key)
    .bind(date_of_birth)
    .bind(username_key)
    .fetch_all(conn)
    .await?)
}

/// The account's previous password hashes, newest first (the current one included).
pub async fn password_history(conn: &mut AnyConnection, account_id: i64) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT password_hash FROM password_history WHERE account_id = $1 ORDER BY id DESC",
    )
    .bind(account_id)
    .fetch_all(conn)
    .await?)
}

/// Replaces a password hash with a stronger one of the same password
/// (parameters raised), in the account and its history.
pub async fn upgrade_password_hash(
    tx: &mut Tx,
    account_id: i64,
    old: &str,
    new: &str,
) -> Result<()> {
    let changed =
        sqlx::query("UPDATE accounts SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
            .bind(account_id)
            .bind(old)
            .bind(new)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if changed == 1 {
        sqlx::query(
            "UPDATE password_history SET password_hash = $3 \
             WHERE account_id = $1 AND password_hash = $2",
        )
        .bind(account_id)
        .bind(old)
        .bind(new)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Sets an account's password and adds it to the history, keeping `keep`
/// entries; the account may set up a second factor until
/// `second_factor_setup_until` (a set-up link's password), or not at all
/// (`None`: any other password).
pub async fn set_password(
    tx: &mut Tx,
    account_id: i64,
    hash: &str,
    now: Timestamp,
    keep: usize,
    second_factor_setup_until: Option<Timestamp>,
) -> Result<()> {
    sqlx::query(
        "UPDATE accounts SET password_hash = $2, password_changed_at = $3, updated_at = $3, \
         second_factor_setup_until = $4 WHERE id = $1",
    )
    .bind(account_id)
    .bind(hash)
    .bind(now)
    .bind(second_factor_setup_until)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO password_history (account_id, password_hash, created_at) VALUES ($1, $2, $3)",
    )
    .bind(account_id)
    .bind(hash)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "DELETE FROM password_history WHERE account_id = $1 AND id NOT IN (\
           SELECT id FROM password_history WHERE account_id = $1 ORDER BY id DESC LIMIT $2)",
    )
    .bind(account_id)
    .bind(i64::try_from(keep).unwrap_or(i64::MAX))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Changes an account's email address (which closes a set-up link's window).
pub async fn set_email(
    conn: &mut AnyConnection,
    account_id: i64,
    email: &EmailAddress,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE accounts SET email = $2, email_key = $3, updated_at = $4, \
         second_factor_setup_until = NULL WHERE id = $1",
    )
    .bind(account_id)
    .bind(email)
    .bind(email.key())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a sign-in: the latest becomes the one before.
pub async fn record_sign_in(
    conn: &mut AnyConnection,
    account_id: i64,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE accounts SET previous_sign_in_at = last_sign_in_at, last_sign_in_at = $2 \
         WHERE id = $1",
    )
    .bind(account_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets an account's role; false if there is no such account.
pub async fn set_role(
    conn: &mut AnyConnection,
    account_id: i64,
    role: Role,
    now: Timestamp,
) -> Result<bool> {
    Ok(
        sqlx::query("UPDATE accounts SET role = $2, updated_at = $3 WHERE id = $1")
            .bind(account_id)
            .bind(role)
            .bind(now)
            .execute(conn)
            .await?
            .rows_affected()
            == 1,
    )
}

/// Disables (`Some(when)`: its sessions end and a set-up link's window
/// closes) or enables (`None`) an account; false if there is no such account.
pub async fn set_disabled(tx: &mut Tx, account_id: i64, at: Option<Timestamp>) -> Result<bool> {
    let changed = sqlx::query(
        "UPDATE accounts SET disabled_at = $2, updated_at = COALESCE($2, updated_at), \
         second_factor_setup_until = CASE WHEN $2 IS NULL THEN second_factor_setup_until END, \
         left_at = NULL WHERE id = $1",
    )
    .bind(account_id)
    .bind(at)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if let Some(now) = at {
        crate::sessions::end_all_of(tx, account_id, now).await?;
    }
    Ok(changed)
}

/// Disables those of `ids` still enabled as leavers of a full import and
/// ends their sessions and applications' grants; returns the ids it
/// disabled (an account disabled by hand meanwhile is left as it is).
pub async fn disable_leavers(tx: &mut Tx, ids: &[i64], now: Timestamp) -> Result<Vec<i64>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = crate::database::id_list(ids);
    let mut disabled: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "UPDATE accounts SET disabled_at = $1, left_at = $1, updated_at = $1, \
         second_factor_setup_until = NULL WHERE id IN ({list}) AND disabled_at IS NULL \
         RETURNING id"
    )))
    .persistent(false)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    disabled.sort_unstable();
    crate::sessions::end_all_of_accounts(tx, &disabled, now).await?;
    Ok(disabled)
}

/// Enables those of `ids` a full import disabled as leavers; returns the
/// ids it enabled (not one enabled already, or disabled by hand since,
/// which a file does not undo).
pub async fn enable_returners(tx: &mut Tx, ids: &[i64], now: Timestamp) -> Result<Vec<i64>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = crate::database::id_list(ids);
    let mut enabled: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "UPDATE accounts SET disabled_at = NULL, left_at = NULL, updated_at = $1 \
         WHERE id IN ({list}) AND disabled_at IS NOT NULL AND disabled_at = left_at \
         RETURNING id"
    )))
    .persistent(false)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    enabled.sort_unstable();
    Ok(enabled)
}

/// Gives an account the subject `subject` unless it has one; returns the
/// account's subject either way (another node may have got there first).
pub async fn assign_subject(
    conn: &mut AnyConnection,
    account_id: i64,
    subject: &str,
) -> Result<Option<String>> {
    sqlx::query("UPDATE accounts SET subject = $2 WHERE id = $1 AND subject IS NULL")
        .bind(account_id)
        .bind(subject)
        .execute(&mut *conn)
        .await?;
    Ok(
        sqlx::query_scalar("SELECT subject FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_optional(conn)
            .await?
            .flatten(),
    )
}
