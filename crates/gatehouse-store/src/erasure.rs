//! Erasing a person's personal data: what is held about them goes, their
//! username stays reserved and the audit trail keeps naming it.

use gatehouse_domain::Timestamp;

use crate::{Result, Tx};

/// Erases the personal details of an account: names, date of birth, email
/// address and employee number are emptied; the password, its history,
/// the second factor and its recovery codes, reset links, emails, the
/// browsers it signed in from and what applications were allowed go; its
/// sessions and applications' grants end (applications are told); the
/// account stays disabled, its username reserved. False if there is no
/// such account or it was erased already.
pub async fn erase(tx: &mut Tx, account_id: i64, now: Timestamp) -> Result<bool> {
    let erased = sqlx::query(
        "UPDATE accounts SET first_name = '', last_name = '', last_name_key = '', \
         date_of_birth = '', email = '', email_key = '', employee_number = NULL, \
         password_hash = NULL, password_changed_at = NULL, second_factor_setup_until = NULL, \
         disabled_at = COALESCE(disabled_at, $2), erased_at = $2, updated_at = $2 \
         WHERE id = $1 AND erased_at IS NULL",
    )
    .bind(account_id)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if !erased {
        return Ok(false);
    }
    crate::sessions::end_all_of(tx, account_id, now).await?;
    for table in [
        "password_history",
        "recovery_codes",
        "second_factors",
        "reset_links",
        "outbox",
        "account_browsers",
        "oidc_consents",
        "passkeys",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE account_id = $1"
        )))
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(true)
}
