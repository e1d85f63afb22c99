//! Login Flow v2 (how the Nextcloud apps sign in): an app starts a flow and gets two secrets,
//! a poll token it keeps and a login token it opens in the browser. The person signs in there,
//! sees which app asks, and grants it; that creates an app password labelled with the app,
//! which the app's next poll receives once.
//!
//! Pending flows live in this process's memory only: they last minutes, and the app password
//! travels from the grant to the poll without ever being written anywhere (its hash is, as
//! for every app password). A restart drops pending flows; the app starts another.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::disk::random_hex;
use crate::types::{Actor, User};
use crate::{Error, Result, Store, UserName};

/// A flow not granted and polled within this time is forgotten (Nextcloud's is 20 minutes).
pub const LOGIN_FLOW_TTL: Duration = Duration::from_secs(20 * 60);

/// Pending flows kept at most; a flood of starts (they need no sign-in) drops the oldest.
const MAX_FLOWS: usize = 1000;

struct Flow {
    /// The app's name for itself, as it asked (its User-Agent).
    device: String,
    /// The blake3 of the poll token (the map is keyed by the login token).
    poll: [u8; 32],
    started: Instant,
    /// Once granted: the account and the new app password, handed to the next poll.
    granted: Option<(UserName, String)>,
}

/// The pending flows of this process.
#[derive(Default)]
pub(crate) struct LoginFlows(Mutex<HashMap<String, Flow>>);

impl LoginFlows {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flow>> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, f| f.started.elapsed() < LOGIN_FLOW_TTL);
        map
    }
}

/// A started flow's two secrets.
#[derive(Debug, Clone)]
pub struct NewLoginFlow {
    /// Kept by the app, sent with each poll.
    pub poll_token: String,
    /// Part of the URL the person opens.
    pub login_token: String,
}

impl Store {
    /// Start a flow for the app that calls itself `device`.
    pub fn start_login_flow(&self, device: &str) -> NewLoginFlow {
        let flow = NewLoginFlow { poll_token: random_hex(32), login_token: random_hex(32) };
        let mut map = self.inner.login_flows.lock();
        if map.len() >= MAX_FLOWS
            && let Some(oldest) = map.iter().min_by_key(|(_, f)| f.started).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let device: String = device.chars().filter(|c| !c.is_control()).take(200).collect();
        map.insert(
            flow.login_token.clone(),
            Flow {
                device,
                poll: *blake3::hash(flow.poll_token.as_bytes()).as_bytes(),
                started: Instant::now(),
                granted: None,
            },
        );
        flow
    }

    /// The app a pending flow is for (`NotFound` once granted, expired, or never started).
    pub fn login_flow_device(&self, login_token: &str) -> Result<String> {
        let map = self.inner.login_flows.lock();
        match map.get(login_token) {
            Some(f) if f.granted.is_none() => Ok(f.device.clone()),
            _ => Err(Error::not_found("login request")),
        }
    }

    /// Grant a pending flow to `user`: an app password labelled `label` (the app's name as
    /// the person saw it) is made, for the flow's next poll.
    pub async fn grant_login_flow(
        &self,
        actor: &Actor,
        user: &User,
        login_token: &str,
        label: &str,
    ) -> Result<()> {
        // Claimed before the password exists, so that one flow never yields two.
        {
            let mut map = self.inner.login_flows.lock();
            match map.get_mut(login_token) {
                Some(f) if f.granted.is_none() => f.granted = Some((user.name.clone(), String::new())),
                _ => return Err(Error::not_found("login request")),
            }
        }
        let made = self.create_app_password(actor, user, label).await;
        let mut map = self.inner.login_flows.lock();
        match made {
            Ok((_, secret)) => {
                if let Some(f) = map.get_mut(login_token) {
                    f.granted = Some((user.name.clone(), secret));
                }
                Ok(())
            }
            Err(e) => {
                map.remove(login_token);
                Err(e)
            }
        }
    }

    /// Poll with the app's token: `Ok(None)` while the person has not granted access yet;
    /// once granted, the account and app password, exactly once (the flow then ends).
    /// `NotFound` for an unknown or expired token.
    pub fn poll_login_flow(&self, poll_token: &str) -> Result<Option<(UserName, String)>> {
        let key = *blake3::hash(poll_token.as_bytes()).as_bytes();
        let mut map = self.inner.login_flows.lock();
        let login = map.iter().find(|(_, f)| f.poll == key).map(|(k, _)| k.clone());
        let Some(login) = login else { return Err(Error::not_found("login request")) };
        match &map[&login].granted {
            None => Ok(None),
            Some((_, secret)) if secret.is_empty() => Ok(None), // being granted right now
            Some(_) => Ok(map.remove(&login).and_then(|f| f.granted)),
        }
    }
}
