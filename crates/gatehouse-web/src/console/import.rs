//! Uploading a staff file (admins): a preview of what would change, then
//! the import.

use axum::Extension;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use gatehouse_core::import::{ImportRefusal, Preview, too_many_leavers};
use gatehouse_domain::import::FullImport;
use gatehouse_domain::recovery::FieldError;

use crate::AppState;
use crate::csrf::CsrfForm;
use crate::error::WebError;
use crate::handlers::{layout, see_other};
use crate::session::Visitor;
use crate::views::{ConsoleImportPage, render};

use super::{Privileged, WebResult, admin_only};

/// Problems listed on the page when a file is refused (all are counted).
const PROBLEMS_SHOWN: usize = 200;

fn import_page(p: &Privileged, state: &AppState) -> ConsoleImportPage {
    ConsoleImportPage {
        l: layout(state, Some(&p.session), false),
        csrf: p.session.csrf_token.clone(),
        flash: None,
        errors: Vec::new(),
        file_name: String::new(),
        preview: None,
        staged_id: 0,
        problems: Vec::new(),
        problem_count: 0,
        full: false,
        coverage: Vec::new(),
        refusal: None,
        max_leavers: String::new(),
        max_error: None,
    }
}

/// What an administrator's upload asks for: a full import or not.
fn full_import(full: bool, max_leavers: Option<usize>) -> Option<FullImport> {
    full.then_some(FullImport {
        // The console covers every employer in the file.
        employers: Vec::new(),
        max_leavers,
        importer: None,
    })
}

/// `GET /console/import`: choose a staff file (admin).
pub async fn import_form(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
) -> WebResult {
    let p = or_redirect!(admin_only(&state, &visitor, "/console/import"));
    let mut page = import_page(&p, &state);
    page.flash = state.gatehouse.take_flash(&p.session).await?;
    Ok(render(StatusCode::OK, &page))
}

/// An upload: its form token, the file (its name and bytes), and whether
/// the "every member of staff" box was ticked.
struct Upload {
    token: String,
    file: Option<(String, Vec<u8>)>,
    full: bool,
}

/// Reads an upload's fields.
async fn read_upload(
    multipart: &mut Multipart,
) -> Result<Upload, axum::extract::multipart::MultipartError> {
    let mut upload = Upload {
        token: String::new(),
        file: None,
        full: false,
    };
    while let Some(field) = multipart.next_field().await? {
        match field.name() {
            Some("csrf_token") => upload.token = field.text().await?,
            Some("full") => upload.full = field.text().await? == "yes",
            Some("file") => {
                let name = field.file_name().unwrap_or("").chars().take(200).collect();
                upload.file = Some((name, field.bytes().await?.to_vec()));
            }
            _ => {}
        }
    }
    Ok(upload)
}

/// `POST /console/import` (multipart): check the file and show what would
/// change; nothing is written but the staged file.
pub async fn import_preview(
    State(state): State<AppState>,
    Extension(visitor): Extension<Visitor>,
    headers: axum::http::HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> WebResult {
    // Who is asking is known before the body is read: only an
    // administrator's upload is read at all.
    let p = or_redirect!(admin_only(&state, &visitor, "/console/import"));
    // axum's own answer to a body that is not multipart is plain text
    // naming its internals: this service's 400 page instead.
    let mut multipart = multipart.map_err(|e| WebError::BadRequest(format!("upload: {e}")))?;
    let Upload { token, file, full } = match read_upload(&mut multipart).await {
        Ok(upload) => upload,
        // Nothing is changed by showing the form again, so no form token
        // is needed to say the file was too big.
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let mut page = import_page(&p, &state);
            page.l.has_error = true;
            page.errors.push(FieldError {
                field: "file",
                message: format!(
                    "The file is larger than {} MiB: load it on the server with gatehouse import",
                    state.upload_limit / (1024 * 1024)
                ),
            });
            return Ok(render(StatusCode::PAYLOAD_TOO_LARGE, &page));
        }
        Err(e) => return Err(WebError::BadRequest(format!("upload: {e}"))),
    };
    let cross_site = !crate::csrf::same_site(&headers, &state);
    crate::csrf::check(&state, &visitor, cross_site, &token, false).await?;
    let mut page = import_page(&p, &state);
    let Some((name, content)) = file.filter(|(_, c)| !c.is_empty()) else {
        page.l.has_error = true;
        page.errors.push(FieldError {
            field: "file",
            message: "Choose a staff file (a CSV file)".to_owned(),
        });
        return Ok(render(StatusCode::OK, &page));
    };
    page.file_name = if name.is_empty() {
        "the file".to_owned()
    } else {
        name.clone()
    };
    match state
        .gatehouse
        .preview_staff_file(
            &p.actor(),
            &page.file_name,
            &content,
            full_import(full, None),
        )
        .await?
    {
        Preview::Ready { report, staged_id } => {
            page.staged_id = staged_id;
            page.full = report.full();
            let over = report.over_limit();
            if !over.is_empty() {
                page.refusal = Some(too_many_leavers(&over));
            }
            page.coverage = report.coverage;
            page.preview = Some(report.summary);
        }
        Preview::Problems(problems) => {
            show_problems(&mut page, &problems);
        }
    }
    Ok(render(StatusCode::OK, &page))
}

/// The import button's form: a full import, and the limit typed for it.
#[derive(serde::Deserialize)]
pub struct ImportFields {
    #[serde(default)]
    full: String,
    #[serde(default)]
    max_leavers: String,
}

/// `POST /console/import/{id}`: import a previewed file.
pub async fn import_apply(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    form: CsrfForm<ImportFields>,
) -> WebResult {
    let p = or_redirect!(admin_only(&state, &form.visitor, "/console/import"));
    let g = &state.gatehouse;
    let full = form.form.full == "yes";
    let typed = form.form.max_leavers.trim();
    let max_leavers = match typed.parse::<usize>() {
        _ if typed.is_empty() || !full => None,
        Ok(n) => Some(n),
        Err(_) => {
            let mut page = import_page(&p, &state);
            page.staged_id = id;
            page.full = true;
            page.max_leavers = typed.chars().take(20).collect();
            refuse_limit(
                &mut page,
                "Enter the most people to disable per employer as a whole number, like 40",
            );
            return Ok(render(StatusCode::OK, &page));
        }
    };
    let Some((name, outcome)) = g
        .import_staged(&p.actor(), id, full_import(full, max_leavers))
        .await?
    else {
        g.set_flash(
            &p.session,
            "That preview has expired or was already imported. Choose the file again.",
        )
        .await?;
        return Ok(see_other("/console/import"));
    };
    match outcome {
        Ok(report) => {
            let s = report.summary;
            let mut message = format!(
                "{name} was imported: {} people added, {} changed, {} already up to date, {} email address change{}",
                s.created,
                s.updated,
                s.unchanged,
                s.email_changes.len(),
                if s.email_changes.len() == 1 { "" } else { "s" }
            );
            if report.coverage.is_empty() {
                message.push('.');
            } else {
                message.push_str(&format!(
                    ", {} disabled as not in the file.",
                    s.leavers.len()
                ));
            }
            if !s.returners.is_empty() {
                message.push_str(&format!(
                    " {} enabled again as back in the file.",
                    s.returners.len()
                ));
            }
            g.set_flash(&p.session, &message).await?;
            Ok(see_other("/console/import"))
        }
        Err(ImportRefusal::TooManyLeavers(over)) => {
            // The file is kept: the administrator may raise the limit and
            // import it again from this page.
            let mut page = import_page(&p, &state);
            page.file_name = name;
            page.staged_id = id;
            page.full = true;
            page.max_leavers = typed.to_owned();
            page.refusal = Some(too_many_leavers(&over));
            page.coverage = over;
            let sentence = format!(
                "Nothing was imported: {}. If they have all left, raise the limit",
                page.refusal.clone().unwrap_or_default()
            );
            refuse_limit(&mut page, &sentence);
            Ok(render(StatusCode::OK, &page))
        }
        Err(ImportRefusal::Problems(problems)) => {
            // Something changed between the preview and now (another import).
            let mut page = import_page(&p, &state);
            page.file_name = name;
            show_problems(&mut page, &problems);
            Ok(render(StatusCode::OK, &page))
        }
    }
}

/// A refusal beside the limit's field and in the error summary.
fn refuse_limit(page: &mut ConsoleImportPage, message: &str) {
    page.l.has_error = true;
    page.max_error = Some(message.to_owned());
    page.errors.push(FieldError {
        field: "max_leavers",
        message: message.to_owned(),
    });
}

/// The problems of a refused file on its page: all counted, the first
/// [`PROBLEMS_SHOWN`] listed.
fn show_problems(page: &mut ConsoleImportPage, problems: &[impl ToString]) {
    page.problem_count = problems.len();
    page.problems = problems
        .iter()
        .take(PROBLEMS_SHOWN)
        .map(ToString::to_string)
        .collect();
}
