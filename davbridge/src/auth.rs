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
}

/// Credential cache and failure throttle, shared by all connections.
pub struct Auth {
    store: Store,
    key: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], (User, Instant)>>,
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
            Some(id) => cache.retain(|_, (u, _)| u.id != id),
            None => cache.clear(),
        }
    }

    /// Check an `Authorization` header value.
    pub async fn check(&self, header: Option<&str>, remote: IpAddr) -> AuthOutcome {
        let Some((name, secret)) = header.and_then(parse_basic) else { return AuthOutcome::Denied };
        let key = *blake3::keyed_hash(&self.key, format!("{name}\0{secret}").as_bytes()).as_bytes();
        if let Some((user, at)) = self.cache.lock().expect("auth cache poisoned").get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return AuthOutcome::User(user.clone());
        }
        let ip_key = format!("ip:{remote}");
        let user_key = format!("user:{name}");
        let delay = {
            let failures = self.failures.lock().expect("failure table poisoned");
            let count =
                |k: &str| failures.get(k).filter(|(_, at)| at.elapsed() < FAILURE_WINDOW).map_or(0, |f| f.0);
            let n = count(&ip_key).max(count(&user_key));
            if n >= LOCKOUT_FAILURES {
                return AuthOutcome::Throttled;
            }
            (n > FREE_FAILURES).then(|| Duration::from_millis(100 << (n - FREE_FAILURES).min(4)))
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        // App passwords are 64 hex digits; anything else is an account password.
        let looks_like_token = secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit());
        let res = if looks_like_token {
            match self.store.authenticate_token(&name, &secret).await {
                Ok(u) => Ok(u),
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
                self.cache.lock().expect("auth cache poisoned").insert(key, (user.clone(), Instant::now()));
                AuthOutcome::User(user)
            }
            Err(e) => {
                if e.kind() != store::ErrorKind::Unauthenticated {
                    tracing::error!(error = %e, "authentication failed for an internal reason");
                }
                {
                    let mut failures = self.failures.lock().expect("failure table poisoned");
                    for k in [ip_key, user_key] {
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
                let actor = store::Actor {
                    origin: store::Origin::Dav,
                    name: name.clone(),
                    remote: Some(remote.to_string()),
                };
                if let Err(e) = self.store.audit_auth_failure(&actor, &name).await {
                    tracing::warn!(error = %e, "could not audit a failed sign-in");
                }
                AuthOutcome::Denied
            }
        }
    }
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
