//! Authentication for every HTTP front end: HTTP Basic with the account password or an app
//! password. argon2id costs ~40 ms and clients send Basic on every request, so verified
//! credentials are cached briefly, keyed by a keyed hash of the credential (never the secret
//! itself), and dropped when `store` announces a credential change. Failed sign-ins are
//! throttled per source address and per user name (a growing delay, then 429) and audited.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use store::{Store, User, UserId};

/// How long a verified credential is trusted without asking `store` again.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Failures remembered this long.
const FAILURE_WINDOW: Duration = Duration::from_secs(900);
/// Failures before answering slower.
const FREE_FAILURES: u32 = 3;
/// Failures (per address or per user) after which sign-ins get 429 until the window passes.
const LOCKOUT_FAILURES: u32 = 20;

/// The outcome of checking a request's credentials.
pub enum AuthOutcome {
    /// Signed in.
    User(User),
    /// No or wrong credentials: answer 401.
    Denied,
    /// Too many failures: answer 429.
    Throttled,
    /// The credentials could not be checked (the database is unreachable): answer 503. Not a
    /// failed sign-in — nothing is counted or audited, and a client must not take it for a
    /// wrong password (an app would sign its user out).
    Unavailable,
}

/// What a session cookie turned out to be.
pub enum SessionCheck {
    /// A live session: its user and CSRF token.
    Valid(User, String),
    /// Unknown or ended.
    Invalid,
    /// It could not be checked now (see [`AuthOutcome::Unavailable`]).
    Unavailable,
}

/// A verified credential: the user, the session's CSRF token (sessions only), when verified,
/// and `store`'s credential generation read before verifying it.
type Verified = (User, Option<String>, Instant, u64);

/// Credential cache and failure throttle, shared by all connections.
pub struct Auth {
    store: Store,
    key: [u8; 32],
    /// Verified credentials: Basic pairs, bearer tokens and session cookies (each keyed by a
    /// keyed hash with its own prefix), with the session's CSRF token.
    cache: Mutex<HashMap<[u8; 32], Verified>>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Auth {
    /// A new cache that follows `store`'s credential changes.
    pub fn new(store: Store) -> Arc<Auth> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source failed");
        let auth = Arc::new(Auth {
            store: store.clone(),
            key,
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        });
        let mut changes = store.watch_credentials();
        let weak = Arc::downgrade(&auth);
        tokio::spawn(async move {
            while let Some(change) = changes.recv().await {
                let Some(auth) = weak.upgrade() else { return };
                auth.forget(change);
            }
        });
        auth
    }

    /// Drop cached credentials of one user, or of everyone.
    pub fn forget(&self, user: Option<UserId>) {
        let mut cache = self.cache.lock().expect("auth cache poisoned");
        match user {
            Some(id) => cache.retain(|_, (u, _, _, _)| u.id != id),
            None => cache.clear(),
        }
    }

    /// Check an `Authorization: Basic` header value.
    pub async fn check(&self, header: Option<&str>, remote: IpAddr) -> AuthOutcome {
        let Some((name, secret)) = header.and_then(parse_basic) else { return AuthOutcome::Denied };
        self.password(&name, &secret, remote, store::Origin::Dav).await
    }

    fn cache_key(&self, kind: &str, secret: &str) -> [u8; 32] {
        *blake3::keyed_hash(&self.key, format!("{kind}\0{secret}").as_bytes()).as_bytes()
    }

    /// A cached credential, or on a miss the generation to [`Auth::remember`] it with. An entry
    /// verified before this process's latest credential change is not used: the change may
    /// have revoked it, and the cross-process notice that also drops it comes asynchronously.
    fn cached(&self, key: &[u8; 32]) -> Result<(User, Option<String>), u64> {
        let generation = self.store.credential_generation();
        let cache = self.cache.lock().expect("auth cache poisoned");
        cache
            .get(key)
            .filter(|(_, _, at, g)| at.elapsed() < CACHE_TTL && *g == generation)
            .map(|(u, c, _, _)| (u.clone(), c.clone()))
            .ok_or(generation)
    }

    /// Sleep as the failure history of `keys` asks; `false` when they are locked out.
    async fn throttle(&self, keys: &[&str]) -> bool {
        let delay = {
            let failures = self.failures.lock().expect("failure table poisoned");
            let count =
                |k: &str| failures.get(k).filter(|(_, at)| at.elapsed() < FAILURE_WINDOW).map_or(0, |f| f.0);
            let n = keys.iter().map(|k| count(k)).max().unwrap_or(0);
            if n >= LOCKOUT_FAILURES {
                return false;
            }
            (n > FREE_FAILURES).then(|| Duration::from_millis(100 << (n - FREE_FAILURES).min(4)))
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        true
    }

    fn note_failure(&self, keys: Vec<String>) {
        let mut failures = self.failures.lock().expect("failure table poisoned");
        for k in keys {
            let entry = failures.entry(k).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= FAILURE_WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
            entry.1 = Instant::now();
        }
        // Keep the table bounded under a spray of names.
        if failures.len() > 100_000 {
            failures.retain(|_, (_, at)| at.elapsed() < FAILURE_WINDOW);
        }
    }

    /// The sign-in throttle, for public links' passwords: waits as `keys`' failures ask;
    /// `false` when they are locked out.
    pub(crate) async fn gate(&self, keys: &[&str]) -> bool {
        self.throttle(keys).await
    }

    /// Count a wrong public-link password against `keys`.
    pub(crate) fn count_failure(&self, keys: Vec<String>) {
        self.note_failure(keys);
    }

    /// Count an attempt refused while `key` is locked out; returns how many there were in this
    /// window (the caller audits the first and every thousandth, not each one).
    pub(crate) fn count_refusal(&self, key: String) -> u32 {
        self.note_failure(vec![key.clone()]);
        self.failures.lock().expect("failure table poisoned").get(&key).map_or(0, |f| f.0)
    }

    /// Cache a verified credential.
    fn remember(&self, key: [u8; 32], generation: u64, user: &User, csrf: Option<String>) {
        let entry = (user.clone(), csrf, Instant::now(), generation);
        self.cache.lock().expect("auth cache poisoned").insert(key, entry);
    }

    /// A refused credential: log internal causes, count the failure against `keys`, and (for
    /// sign-in attempts) write it to the audit log as `actor` trying `name`.
    async fn failed(&self, e: &store::Error, keys: Vec<String>, audit: Option<(store::Actor, &str)>) {
        if e.kind() != store::ErrorKind::Unauthenticated {
            tracing::error!(error = %e, "authentication failed for an internal reason");
        }
        self.note_failure(keys);
        if let Some((actor, name)) = audit
            && let Err(e) = self.store.audit_auth_failure(&actor, name).await
        {
            tracing::warn!(error = %e, "could not audit a failed sign-in");
        }
    }

    /// Check a bearer token (an app password on its own).
    pub async fn bearer(&self, token: &str, remote: IpAddr) -> AuthOutcome {
        let key = self.cache_key("bearer", token);
        let generation = match self.cached(&key) {
            Ok((user, _)) => return AuthOutcome::User(user),
            Err(generation) => generation,
        };
        let ip_key = format!("ip:{remote}");
        if !self.throttle(&[&ip_key]).await {
            return AuthOutcome::Throttled;
        }
        match self.store.authenticate_bearer(token).await {
            Ok(user) => {
                self.remember(key, generation, &user, None);
                AuthOutcome::User(user)
            }
            Err(e) if e.kind().is_server_side() => unavailable(&e),
            Err(e) => {
                let actor = store::Actor {
                    origin: store::Origin::Rest,
                    name: "(bearer)".into(),
                    remote: Some(remote.to_string()),
                };
                self.failed(&e, vec![ip_key], Some((actor, "(bearer token)"))).await;
                AuthOutcome::Denied
            }
        }
    }

    /// Check a session cookie: the user and the session's CSRF token.
    pub async fn session(&self, token: &str, remote: IpAddr) -> SessionCheck {
        let key = self.cache_key("session", token);
        let generation = match self.cached(&key) {
            Ok((user, Some(csrf))) => return SessionCheck::Valid(user, csrf),
            Ok((_, None)) => self.store.credential_generation(),
            Err(generation) => generation,
        };
        let ip_key = format!("ip:{remote}");
        if !self.throttle(&[&ip_key]).await {
            return SessionCheck::Invalid;
        }
        match self.store.session(token).await {
            Ok(s) => {
                self.remember(key, generation, &s.user, Some(s.csrf.clone()));
                SessionCheck::Valid(s.user, s.csrf)
            }
            Err(e) if e.kind().is_server_side() => {
                unavailable(&e);
                SessionCheck::Unavailable
            }
            Err(e) => {
                // An unknown cookie is not a sign-in attempt worth an audit record.
                self.failed(&e, vec![ip_key], None).await;
                SessionCheck::Invalid
            }
        }
    }

    /// Forget a session at sign-out.
    pub fn forget_session(&self, token: &str) {
        let key = self.cache_key("session", token);
        self.cache.lock().expect("auth cache poisoned").remove(&key);
    }

    /// Check a user name and password (account or app password), throttled and audited.
    pub async fn password(
        &self,
        name: &str,
        secret: &str,
        remote: IpAddr,
        origin: store::Origin,
    ) -> AuthOutcome {
        let (name, secret) = (name.to_owned(), secret.to_owned());
        let key = self.cache_key(&name, &secret);
        let generation = match self.cached(&key) {
            Ok((user, _)) => return AuthOutcome::User(user),
            Err(generation) => generation,
        };
        let ip_key = format!("ip:{remote}");
        let user_key = format!("user:{name}");
        if !self.throttle(&[&ip_key, &user_key]).await {
            return AuthOutcome::Throttled;
        }
        // App passwords are 64 hex digits; anything else is an account password.
        let looks_like_token = secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit());
        let res = if looks_like_token {
            match self.store.authenticate_token(&name, &secret).await {
                Ok(u) => Ok(u),
                Err(e) if e.kind().is_server_side() => Err(e),
                Err(_) => self.store.authenticate(&name, &secret).await,
            }
        } else {
            self.store.authenticate(&name, &secret).await
        };
        match res {
            Ok(user) => {
                let mut failures = self.failures.lock().expect("failure table poisoned");
                failures.remove(&ip_key);
                failures.remove(&user_key);
                drop(failures);
                self.remember(key, generation, &user, None);
                AuthOutcome::User(user)
            }
            Err(e) if e.kind().is_server_side() => unavailable(&e),
            Err(e) => {
                let actor = store::Actor { origin, name: name.clone(), remote: Some(remote.to_string()) };
                self.failed(&e, vec![ip_key, user_key], Some((actor, &name))).await;
                AuthOutcome::Denied
            }
        }
    }
}

/// Credentials that could not be checked for the server's own reason.
fn unavailable(e: &store::Error) -> AuthOutcome {
    tracing::error!(error = %e, "credentials could not be checked");
    AuthOutcome::Unavailable
}

/// `Basic base64(name:secret)` → (name, secret).
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (name, secret) = text.split_once(':')?;
    Some((name.to_owned(), secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_headers() {
        assert_eq!(parse_basic("Basic YWxpY2U6czNjcjN0"), Some(("alice".into(), "s3cr3t".into())));
        assert_eq!(parse_basic("basic YWxpY2U6YTpi"), Some(("alice".into(), "a:b".into())));
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Basic YWxpY2U="), None);
    }
}
