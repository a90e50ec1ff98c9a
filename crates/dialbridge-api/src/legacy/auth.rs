//! The legacy authentication families and their MD5 quirks (the spec's §1).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dialbridge_core::{Cno, EnterpriseId};
use dialbridge_store::StoreError;

use crate::credentials::Verdict;
use crate::AppState;
use md5::{Digest, Md5};

/// Lowercase, and left-padded with zeros to 32 characters (Java's `BigInteger.toString(16)`
/// drops leading zeros). `None` when it is not hex at all.
pub fn normalize_md5(given: &str) -> Option<String> {
    let lower = given.trim().to_ascii_lowercase();
    if lower.is_empty() || lower.len() > 32 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(format!("{lower:0>32}"))
}

pub(crate) fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// The seed scheme: `pwd` = md5(md5(admin password) + seed); a client that drops leading zeros
/// does so in the inner digest too.
pub fn seed_matches(inner_md5: &str, seed: &str, pwd: &str) -> bool {
    let Some(pwd) = normalize_md5(pwd) else { return false };
    if md5_hex(&format!("{inner_md5}{seed}")) == pwd {
        return true;
    }
    let stripped = inner_md5.trim_start_matches('0');
    stripped.len() != inner_md5.len() && md5_hex(&format!("{stripped}{seed}")) == pwd
}

/// What an unknown admin's `pwd` is checked against, so that a user name that does not exist
/// costs what one that exists costs (no leading zero: a real md5 rarely has one, and one would
/// cost the seed scheme a second digest).
const NO_SUCH_ADMIN_MD5: &str = "9e107d9d372bb6826bd81d3542a419d6";

/// Whether `pwd` (with a `seed`, the seed scheme; without, md5 of the password) proves the
/// admin whose md5(password) is `inner` (`None`: no such admin, checked all the same).
pub fn admin_matches(inner: Option<&str>, seed: Option<&str>, pwd: &str) -> bool {
    let known = inner.is_some();
    let inner = inner.unwrap_or(NO_SUCH_ADMIN_MD5);
    let matched = match seed {
        Some(seed) => seed_matches(inner, seed, pwd),
        None => normalize_md5(pwd).is_some_and(|p| p == inner),
    };
    matched && known
}

/// The account a credential names, as failures are counted (the same whether it exists or
/// not): `enterprise/admin:user` or `enterprise/cno`.
fn admin_account(enterprise: EnterpriseId, user: &str) -> String {
    format!("{enterprise}/admin:{}", dialbridge_core::text::printable(user, 64))
}

/// Checks an admin of `enterprise` from `source` (with a `seed`, the seed scheme; without,
/// `pwd` = md5(admin password)): throttled when that source failed too often for that name,
/// never evaluated then.
pub async fn check_admin(
    app: &AppState,
    source: IpAddr,
    enterprise: EnterpriseId,
    user: &str,
    seed: Option<&str>,
    pwd: &str,
) -> Result<Verdict, StoreError> {
    let account = admin_account(enterprise, user);
    if let Some(throttled) = app.credentials.admit(source, Some(&account)) {
        return Ok(throttled);
    }
    let configuration = app.calls.configuration().await?;
    let inner = configuration
        .enterprise(enterprise)
        .and_then(|e| e.admin_password_md5(user));
    if admin_matches(inner, seed, pwd) {
        app.credentials.succeeded(source, &account);
        return Ok(Verdict::Valid);
    }
    app.credentials.failed(source, &account);
    Ok(Verdict::Invalid)
}

/// Checks an agent's login (`pwd` = md5 of its password, against its stored hash; `None`: no
/// such agent, checked against a dummy hash all the same) from `source`: throttled or busy
/// without being evaluated, else valid or invalid. Names that do not exist also count against
/// the source (each costs a hash). A success is remembered for a while.
pub async fn check_agent(
    app: &AppState,
    source: IpAddr,
    enterprise: EnterpriseId,
    cno: &Cno,
    hash: Option<&str>,
    pwd: &str,
) -> Verdict {
    let account = format!("{enterprise}/{cno}");
    if let Some(throttled) = app.credentials.admit(source, Some(&account)) {
        return throttled;
    }
    if hash.is_none() {
        if let Some(throttled) = app.credentials.admit(source, None) {
            return throttled;
        }
        app.credentials.malformed(source);
    }
    let Some(pwd) = normalize_md5(pwd) else {
        app.credentials.failed(source, &account);
        return Verdict::Invalid;
    };
    if let Some(hash) = hash {
        if app.agent_auth.remembers(enterprise, cno, &pwd, hash) {
            app.credentials.succeeded(source, &account);
            return Verdict::Valid;
        }
    }
    let verdict = app.credentials.verify_hash(&pwd, hash).await;
    match (verdict, hash) {
        (Verdict::Valid, Some(hash)) => {
            app.agent_auth.remember(enterprise, cno, &pwd, hash);
            app.credentials.succeeded(source, &account);
        }
        (Verdict::Invalid, _) => app.credentials.failed(source, &account),
        _ => {}
    }
    verdict
}

/// Why the admin seed family's parameters did not authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedRefusal {
    BadEnterprise,
    MissingCredentials,
    Failed,
    /// Not evaluated: this source failed too often lately (answered as a failure: CRMs parse
    /// only the family's codes).
    Throttled,
}

impl SeedRefusal {
    pub fn message(self) -> &'static str {
        match self {
            SeedRefusal::BadEnterprise => "bad enterpriseId",
            SeedRefusal::MissingCredentials => "userName and pwd are required",
            SeedRefusal::Failed => "authentication failed",
            SeedRefusal::Throttled => "authentication failed: too many failed attempts, try again later",
        }
    }
}

/// An admin credential family: the enterprise, or why not. `pwd_name` is the parameter that
/// carries the password (`pwd` in the seed family, `password` in agent management).
pub async fn admin_family(
    app: &AppState,
    params: &super::Params,
    pwd_name: &str,
) -> Result<Result<EnterpriseId, SeedRefusal>, StoreError> {
    let Some(enterprise) = params.get("enterpriseId").and_then(|e| EnterpriseId::parse(e).ok()) else {
        return Ok(Err(SeedRefusal::BadEnterprise));
    };
    let (Some(user), Some(pwd)) = (params.get("userName"), params.get(pwd_name)) else {
        return Ok(Err(SeedRefusal::MissingCredentials));
    };
    let seed = match pwd_name {
        "pwd" => Some(params.get("seed").unwrap_or("")),
        _ => params.get("seed"),
    };
    Ok(
        match check_admin(app, params.source(), enterprise, user, seed, pwd).await? {
            Verdict::Valid => Ok(enterprise),
            Verdict::Throttled(_) | Verdict::Busy => Err(SeedRefusal::Throttled),
            Verdict::Invalid => Err(SeedRefusal::Failed),
        },
    )
}

/// The admin seed family (`enterpriseId`, `userName`, `seed`, `pwd`): the enterprise, or why not.
pub async fn admin_seed(
    app: &AppState,
    params: &super::Params,
) -> Result<Result<EnterpriseId, SeedRefusal>, StoreError> {
    admin_family(app, params, "pwd").await
}

/// Successful agent checks, remembered for an hour, so that an agent's clicks do not pay the
/// slow hash each time — nor wait behind a flood of wrong guesses for a hash thread. An entry
/// names the stored hash it was checked against, so a changed password is never taken from
/// memory (and a disabled agent is refused by the call's policy all the same).
#[derive(Default)]
pub struct AgentAuthCache {
    entries: Mutex<HashMap<(i64, String, String, String), Instant>>,
}

const CACHE_TTL: Duration = Duration::from_secs(3600);

impl AgentAuthCache {
    fn key(enterprise: EnterpriseId, cno: &Cno, pwd: &str, hash: &str) -> (i64, String, String, String) {
        (enterprise.get(), cno.to_string(), pwd.to_owned(), hash.to_owned())
    }

    /// Whether this (normalised) `pwd` was found to match this stored `hash` lately.
    pub fn remembers(&self, enterprise: EnterpriseId, cno: &Cno, pwd: &str, hash: &str) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, at| at.elapsed() < CACHE_TTL);
        entries.contains_key(&Self::key(enterprise, cno, pwd, hash))
    }

    pub fn remember(&self, enterprise: EnterpriseId, cno: &Cno, pwd: &str, hash: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Self::key(enterprise, cno, pwd, hash), Instant::now());
    }
}

#[cfg(test)]
#[path = "auth_test.rs"]
mod tests;
