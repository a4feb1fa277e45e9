//! The console's HTTP surface: the pages, the forms they post, and the JSON API.
//!
//! | route | who | what |
//! | --- | --- | --- |
//! | `GET /login`, `POST /login` | anyone | the login form; the reviewer token opens a session |
//! | `POST /logout` | session + CSRF | closes the session |
//! | `GET /` | session | pending requests and recent decisions |
//! | `POST /requests/{handle}/approve`, `…/deny` | session + CSRF | answers one request |
//! | `GET /api/requests` | bearer or session | the same as JSON |
//! | `POST /api/requests/{handle}/approve`, `…/deny` | bearer, or session + `X-CSRF-Token` | answers, with `{"comment": …}` |
//!
//! Every handler checks who is asking before it reads anything else, so a request without the
//! reviewer's token or session changes nothing, whatever it carries.

use super::ConsoleState;
use super::auth::{Reviewer, SESSION_COOKIE};
use super::board::{AnswerError, Settled, Verdict};
use super::render;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, SET_COOKIE,
    WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The longest comment a reviewer may attach, in characters.
pub(super) const MAX_COMMENT_CHARS: usize = 2000;

/// The header a session-authenticated JSON POST carries its CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";

type Shared = State<Arc<ConsoleState>>;

/// The console's routes, sharing `state`.
pub(super) fn router(state: Arc<ConsoleState>) -> Router {
    Router::new()
        .route("/", get(console))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/requests/{handle}/approve", post(approve_form))
        .route("/requests/{handle}/deny", post(deny_form))
        .route("/api/requests", get(api_list))
        .route("/api/requests/{handle}/approve", post(api_approve))
        .route("/api/requests/{handle}/deny", post(api_deny))
        .with_state(state)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: Option<String>,
}

/// An answer from the console's own form.
#[derive(Deserialize)]
struct AnswerForm {
    csrf: Option<String>,
    comment: Option<String>,
    args_digest: Option<String>,
}

/// An answer through the JSON API; an empty body is an answer without a comment.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    comment: Option<String>,
    args_digest: Option<String>,
}

async fn console(State(state): Shared, headers: HeaderMap) -> Response {
    let Some(reviewer) = state.gate.page_reviewer(&headers) else {
        return Redirect::to("/login").into_response();
    };
    let csrf = match &reviewer {
        Reviewer::Session { csrf } => csrf.as_str(),
        // `page_reviewer` only returns sessions; this arm is never taken.
        Reviewer::Bearer => "",
    };
    let (pending, recent) = state.board.snapshot();
    html(StatusCode::OK, render::console_page(&state.reviewer_name, csrf, &pending, &recent))
}

async fn login_form(State(state): Shared, headers: HeaderMap) -> Response {
    if state.gate.page_reviewer(&headers).is_some() {
        return Redirect::to("/").into_response();
    }
    html(StatusCode::OK, render::login_page(None))
}

async fn login(State(state): Shared, form: Result<Form<LoginForm>, FormRejection>) -> Response {
    let token = form.map(|Form(form)| form.token).unwrap_or_default();
    if !state.gate.is_reviewer_token(&token) {
        tracing::warn!("a login to the approval console failed: not the reviewer token");
        let page = render::login_page(Some("That is not the reviewer token."));
        return html(StatusCode::UNAUTHORIZED, page);
    }
    match state.gate.open_session() {
        Ok(id) => {
            tracing::info!("a reviewer logged in to the approval console");
            let cookie = format!("{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/");
            with_cookie(&cookie, Redirect::to("/").into_response())
        }
        Err(error) => {
            tracing::error!(%error, "no session could be opened");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                render::message_page("Sign-in failed", "The console could not open a session."),
            )
        }
    }
}

async fn logout(
    State(state): Shared,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let Some(reviewer) = state.gate.page_reviewer(&headers) else {
        return Redirect::to("/login").into_response();
    };
    let csrf = form.ok().and_then(|Form(form)| form.csrf);
    if !reviewer.may_post(csrf.as_deref()) {
        return forbidden_page();
    }
    if let Some(id) = super::auth::session_id(&headers) {
        state.gate.close_session(id);
    }
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    with_cookie(&cookie, Redirect::to("/login").into_response())
}

async fn approve_form(
    state: Shared,
    headers: HeaderMap,
    Path(handle): Path<String>,
    form: Result<Form<AnswerForm>, FormRejection>,
) -> Response {
    answer_form(state, &headers, &handle, form, Verdict::Approve)
}

async fn deny_form(
    state: Shared,
    headers: HeaderMap,
    Path(handle): Path<String>,
    form: Result<Form<AnswerForm>, FormRejection>,
) -> Response {
    answer_form(state, &headers, &handle, form, Verdict::Deny)
}

fn answer_form(
    State(state): Shared,
    headers: &HeaderMap,
    handle: &str,
    form: Result<Form<AnswerForm>, FormRejection>,
    verdict: Verdict,
) -> Response {
    let Some(reviewer) = state.gate.page_reviewer(headers) else {
        return Redirect::to("/login").into_response();
    };
    let Ok(Form(form)) = form else {
        return forbidden_page();
    };
    if !reviewer.may_post(form.csrf.as_deref()) {
        return forbidden_page();
    }
    let outcome = comment(form.comment)
        .and_then(|comment| answer(&state, handle, verdict, comment, form.args_digest.as_deref()));
    match outcome {
        Ok(_) => Redirect::to("/").into_response(),
        Err((status, message)) => html(status, render::message_page("Not answered", &message)),
    }
}

async fn api_list(State(state): Shared, headers: HeaderMap) -> Response {
    if state.gate.api_reviewer(&headers).is_none() {
        return unauthorized_json();
    }
    let (pending, recent) = state.board.snapshot();
    json_response(
        StatusCode::OK,
        &json!({ "reviewer": state.reviewer_name, "pending": pending, "recent": recent }),
    )
}

async fn api_approve(
    state: Shared,
    headers: HeaderMap,
    Path(handle): Path<String>,
    body: Bytes,
) -> Response {
    api_answer(state, &headers, &handle, &body, Verdict::Approve)
}

async fn api_deny(
    state: Shared,
    headers: HeaderMap,
    Path(handle): Path<String>,
    body: Bytes,
) -> Response {
    api_answer(state, &headers, &handle, &body, Verdict::Deny)
}

fn api_answer(
    State(state): Shared,
    headers: &HeaderMap,
    handle: &str,
    body: &[u8],
    verdict: Verdict,
) -> Response {
    let Some(reviewer) = state.gate.api_reviewer(headers) else {
        return unauthorized_json();
    };
    let csrf = headers.get(CSRF_HEADER).and_then(|value| value.to_str().ok());
    if !reviewer.may_post(csrf) {
        return error_json(StatusCode::FORBIDDEN, "missing or wrong CSRF token");
    }
    let body: AnswerBody = if body.iter().all(u8::is_ascii_whitespace) {
        AnswerBody::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(body) => body,
            Err(error) => {
                let message = format!("the body is not an answer: {error}");
                return error_json(StatusCode::BAD_REQUEST, &message);
            }
        }
    };
    let outcome = comment(body.comment)
        .and_then(|comment| answer(&state, handle, verdict, comment, body.args_digest.as_deref()));
    match outcome {
        Ok(settled) => json_response(StatusCode::OK, &settled),
        Err((status, message)) => error_json(status, &message),
    }
}

/// Answers the request with `handle`, or says why not (as a status and a sentence).
fn answer(
    state: &ConsoleState,
    handle: &str,
    verdict: Verdict,
    comment: Option<String>,
    shown_digest: Option<&str>,
) -> Result<Settled, (StatusCode, String)> {
    let not_found = || (StatusCode::NOT_FOUND, "no request has this number".to_owned());
    let handle: u64 = handle.parse().map_err(|_| not_found())?;
    state.board.answer(handle, verdict, &state.reviewer_name, comment, shown_digest).map_err(
        |error| match error {
            AnswerError::Unknown => not_found(),
            AnswerError::Settled(_) | AnswerError::DigestMismatch => {
                (StatusCode::CONFLICT, error.to_string())
            }
        },
    )
}

/// A reviewer's comment: trimmed, absent when empty, refused when too long.
fn comment(comment: Option<String>) -> Result<Option<String>, (StatusCode, String)> {
    let comment = comment.map(|comment| comment.trim().to_owned()).filter(|c| !c.is_empty());
    match comment {
        Some(comment) if comment.chars().count() > MAX_COMMENT_CHARS => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a comment may have at most {MAX_COMMENT_CHARS} characters"),
        )),
        comment => Ok(comment),
    }
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(render::content_security_policy())
            // The policy is ASCII by construction; were it not, fall back to the strictest one.
            .unwrap_or(HeaderValue::from_static("default-src 'none'")),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn forbidden_page() -> Response {
    let message = "The form did not come from this console's current page. Reload and try again.";
    html(StatusCode::FORBIDDEN, render::message_page("Not answered", message))
}

fn with_cookie(cookie: &str, mut response: Response) -> Response {
    if let Ok(cookie) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error_json(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

fn unauthorized_json() -> Response {
    let mut response =
        error_json(StatusCode::UNAUTHORIZED, "only the reviewer token or session may use this");
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
