//! SIP accounts from the store: a phone registers as `<enterpriseId>-<extension>` (for example
//! `3000001-801`), which keeps two enterprises' extension 801 apart without a DNS domain per
//! enterprise, and is what a person types into a softphone's user name.

use std::future::Future;
use std::pin::Pin;

use dialbridge_core::{EnterpriseId, ExtensionNumber};
use dialbridge_sip::AccountDirectory;
use dialbridge_store::Store;

pub fn extension_aor(enterprise: EnterpriseId, extension: &ExtensionNumber) -> String {
    format!("{enterprise}-{extension}")
}

pub fn parse_aor(aor: &str) -> Option<(EnterpriseId, ExtensionNumber)> {
    let (enterprise, extension) = aor.split_once('-')?;
    Some((
        EnterpriseId::parse(enterprise).ok()?,
        ExtensionNumber::parse(extension).ok()?,
    ))
}

pub struct StoreDirectory {
    store: Store,
}

impl StoreDirectory {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl AccountDirectory for StoreDirectory {
    fn sip_password(&self, aor: &str) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
        let parsed = parse_aor(aor);
        Box::pin(async move {
            let (enterprise, extension) = parsed?;
            let mut tx = self.store.begin_read().await.ok()?;
            match tx.extension_password(enterprise, &extension).await {
                Ok(password) => password,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read an extension's SIP password");
                    None
                }
            }
        })
    }
}

#[cfg(test)]
#[path = "directory_test.rs"]
mod tests;
