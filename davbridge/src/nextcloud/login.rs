//! Login Flow v2 on the wire: `POST /index.php/login/v2` starts a flow (anonymous, the app's
//! User-Agent names it), `POST /index.php/login/v2/poll` answers 404 until the person grants
//! it in the web UI (`/index.php/login/v2/flow/TOKEN`, which asks the REST API for the app's
//! name and grants it there), then 200 with the account and its new app password, once.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use super::{base_url, json};
use crate::Bridge;
use crate::body::Body;
use crate::error::HttpError;

/// A readable name for the app behind a User-Agent: "Nextcloud desktop 3.7.3 (nextcloudcmd,
/// debian)" from `Mozilla/5.0 (Linux) mirall/3.7.3git (nextcloudcmd, debian-6.1 ...)`,
/// "Nextcloud Android 3.29.0" from `Mozilla/5.0 (Android) Nextcloud-android/3.29.0`, and the
/// User-Agent itself for anything else.
pub(crate) fn device_name(ua: &str) -> String {
    let ua = ua.trim();
    let version_after = |marker: &str| -> Option<String> {
        let i = ua.to_ascii_lowercase().find(&marker.to_ascii_lowercase())?;
        let v: String =
            ua[i + marker.len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
        Some(v.trim_end_matches("git").to_owned())
    };
    if let Some(v) = version_after("mirall/") {
        // `(<app>, <os> ClientArchitecture: ...)` after the version.
        let detail = ua
            .split_once("mirall/")
            .and_then(|(_, rest)| rest.split_once('('))
            .and_then(|(_, d)| d.split_once(')'))
            .map(|(d, _)| d.split(" ClientArchitecture").next().unwrap_or(d).trim().to_owned());
        let app = if ua.contains("ownCloud") { "ownCloud desktop" } else { "Nextcloud desktop" };
        return match detail {
            Some(d) if !d.is_empty() => format!("{app} {v} ({d})"),
            _ => format!("{app} {v}"),
        };
    }
    for (marker, name) in [
        ("Nextcloud-android/", "Nextcloud Android"),
        ("Nextcloud-iOS/", "Nextcloud iOS"),
        ("ownCloud-android/", "ownCloud Android"),
        ("ownCloudApp/", "ownCloud iOS"),
    ] {
        if let Some(v) = version_after(marker) {
            return format!("{name} {v}");
        }
    }
    let name: String = ua.chars().filter(|c| !c.is_control()).take(120).collect();
    if name.is_empty() { "an app that did not name itself".to_owned() } else { name }
}

/// `POST /index.php/login/v2`.
pub(crate) fn start<B>(bridge: &Bridge, req: &Request<B>) -> Result<Response<Body>, HttpError> {
    let ua = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let flow = bridge.store.start_login_flow(&device_name(ua));
    let base = base_url(bridge, req);
    Ok(json(
        StatusCode::OK,
        &json!({
            "poll": {"token": flow.poll_token, "endpoint": format!("{base}/index.php/login/v2/poll")},
            "login": format!("{base}/index.php/login/v2/flow/{}", flow.login_token),
        }),
    ))
}

/// `POST /index.php/login/v2/poll` with `token=<poll token>` (form-encoded).
pub(crate) async fn poll(bridge: &Bridge, req: Request<Incoming>) -> Result<Response<Body>, HttpError> {
    let base = base_url(bridge, &req);
    let body = Limited::new(req.into_body(), 4096)
        .collect()
        .await
        .map_err(|_| HttpError::new(StatusCode::BAD_REQUEST, "could not read the request body"))?
        .to_bytes();
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let token = form.iter().find(|(k, _)| k == "token").map(|(_, v)| v.as_str()).unwrap_or("");
    match bridge.store.poll_login_flow(token) {
        Ok(Some((user, password))) => Ok(json(
            StatusCode::OK,
            &json!({"server": base, "loginName": user.as_str(), "appPassword": password}),
        )),
        // Pending, unknown or expired alike: the app keeps polling until it gives up.
        Ok(None) | Err(_) => Ok(json(StatusCode::NOT_FOUND, &json!([]))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_apps() {
        assert_eq!(
            device_name(
                "Mozilla/5.0 (Linux) mirall/3.7.3git (nextcloudcmd, debian-6.1.0-27-amd64 ClientArchitecture: x86_64 OsArchitecture: x86_64)"
            ),
            "Nextcloud desktop 3.7.3 (nextcloudcmd, debian-6.1.0-27-amd64)"
        );
        assert_eq!(device_name("Mozilla/5.0 (Android) Nextcloud-android/3.29.0"), "Nextcloud Android 3.29.0");
        assert_eq!(device_name("Mozilla/5.0 (iOS) Nextcloud-iOS/5.5.2"), "Nextcloud iOS 5.5.2");
        assert_eq!(device_name("curl/8.0"), "curl/8.0");
        assert_eq!(device_name(""), "an app that did not name itself");
    }
}
