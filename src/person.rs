//! `gatehouse admin export-person` and `erase-person`: a person's rights
//! over what is held about them, for the operator.

use std::process::ExitCode;

use gatehouse_core::{Actor, Gatehouse};
use serde_json::json;

use crate::terminal::refuse;

const ACTOR: &Actor = &Actor::COMMAND_LINE;

/// Prints everything held about the person with `username`, as JSON
/// whatever `--json` says (it is for a subject access request).
pub async fn export(g: &Gatehouse, username: &str) -> Result<ExitCode, gatehouse_core::Error> {
    let export = g.export_person(ACTOR, username).await?;
    let text = serde_json::to_string_pretty(&export).map_err(|e| {
        gatehouse_core::Error::Internal(format!("the export could not be written: {e}"))
    })?;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Erases the personal details of the person with `username`.
pub async fn erase(
    g: &Gatehouse,
    json: bool,
    username: &str,
    reason: &str,
) -> Result<ExitCode, gatehouse_core::Error> {
    match g.erase_person(ACTOR, username, reason).await? {
        Ok(()) if json => println!("{}", json!({ "username": username, "erased": true })),
        Ok(()) => println!(
            "{username}'s personal details are erased: the account is disabled for good, its username stays reserved, and its audit trail is kept."
        ),
        Err(refusal) => return Ok(refuse(json, 1, &format!("Not erased: {refusal}."))),
    }
    Ok(ExitCode::SUCCESS)
}
