//! The legacy authentication families and their MD5 quirks (the spec's §1).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dialbridge_core::{Cno, EnterpriseId};
use dialbridge_store::{PasswordHashing, StoreError, Tx};
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

fn md5_hex(text: &str) -> String {
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

/// Checks an admin: with a `seed`, the seed scheme; without, `pwd` = md5(admin password).
pub async fn admin_ok(
    tx: &mut Tx<'_>,
    enterprise: EnterpriseId,
    user_name: &str,
    seed: Option<&str>,
    pwd: &str,
) -> Result<bool, StoreError> {
    let inner = tx.admin_password_md5(enterprise, user_name).await?;
    Ok(admin_matches(inner.as_deref(), seed, pwd))
}

/// Whether `pwd` (with a `seed`, the seed scheme; without, md5 of the password) proves the
/// admin whose md5(password) is `inner` (`None`: no such admin).
pub fn admin_matches(inner: Option<&str>, seed: Option<&str>, pwd: &str) -> bool {
    let Some(inner) = inner else {
        return false;
    };
    match seed {
        Some(seed) => seed_matches(inner, seed, pwd),
        None => normalize_md5(pwd).is_some_and(|p| p == inner),
    }
}

/// Why the admin seed family's parameters did not authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedRefusal {
    BadEnterprise,
    MissingCredentials,
    Failed,
}

impl SeedRefusal {
    pub fn message(self) -> &'static str {
        match self {
            SeedRefusal::BadEnterprise => "bad enterpriseId",
            SeedRefusal::MissingCredentials => "userName and pwd are required",
            SeedRefusal::Failed => "authentication failed",
        }
    }
}

/// The admin seed family (`enterpriseId`, `userName`, `seed`, `pwd`): the enterprise, or why not.
pub async fn admin_seed(
    tx: &mut Tx<'_>,
    params: &super::Params,
) -> Result<Result<EnterpriseId, SeedRefusal>, StoreError> {
    let Some(enterprise) = params.get("enterpriseId").and_then(|e| EnterpriseId::parse(e).ok()) else {
        return Ok(Err(SeedRefusal::BadEnterprise));
    };
    let (Some(user), Some(pwd)) = (params.get("userName"), params.get("pwd")) else {
        return Ok(Err(SeedRefusal::MissingCredentials));
    };
    if admin_ok(tx, enterprise, user, Some(params.get("seed").unwrap_or("")), pwd).await? {
        Ok(Ok(enterprise))
    } else {
        Ok(Err(SeedRefusal::Failed))
    }
}

/// Successful agent checks, remembered for a few seconds so that a burst of PreviewOutcall
/// clicks does not pay the slow hash each time. An entry names the stored hash it was checked
/// against, so a changed password is never taken from memory.
#[derive(Default)]
pub struct AgentAuthCache {
    entries: Mutex<HashMap<(i64, String, String, String), Instant>>,
}

const CACHE_TTL: Duration = Duration::from_secs(10);

impl AgentAuthCache {
    /// Whether `pwd` (md5 of the login password) matches the agent's stored `hash`.
    pub fn agent_ok(
        &self,
        hashing: &PasswordHashing,
        enterprise: EnterpriseId,
        cno: &Cno,
        hash: Option<&str>,
        pwd: &str,
    ) -> bool {
        let (Some(pwd), Some(hash)) = (normalize_md5(pwd), hash) else {
            return false;
        };
        let key = (enterprise.get(), cno.to_string(), pwd, hash.to_owned());
        {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.retain(|_, at| at.elapsed() < CACHE_TTL);
            if entries.contains_key(&key) {
                return true;
            }
        }
        let ok = hashing.verify(&key.2, hash);
        if ok {
            self.entries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, Instant::now());
        }
        ok
    }
}

#[cfg(test)]
#[path = "auth_test.rs"]
mod tests;
