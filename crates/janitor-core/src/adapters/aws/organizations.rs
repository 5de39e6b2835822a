//! `OrganizationsDirectory`: the organization's accounts through AWS Organizations
//! `ListAccounts` (paginated), called from the management or a delegated-administrator account.

use async_trait::async_trait;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::AwsClients;
use crate::error::{JanitorError, Result};
use crate::ports::{AccountDirectory, OrgAccount};

pub struct OrganizationsDirectory {
    clients: AwsClients,
}

impl OrganizationsDirectory {
    pub fn new(clients: AwsClients) -> Self {
        OrganizationsDirectory { clients }
    }
}

#[async_trait]
impl AccountDirectory for OrganizationsDirectory {
    async fn organization_accounts(&self) -> Result<Option<Vec<OrgAccount>>> {
        let organizations = self.clients.organizations().await?;
        let pages: std::result::Result<Vec<_>, _> =
            organizations.list_accounts().into_paginator().send().try_collect().await;
        let pages = match pages {
            Ok(pages) => pages,
            Err(e) if e.code() == Some("AWSOrganizationsNotInUseException") => return Ok(None),
            Err(e) => return Err(JanitorError::from_sdk("organizations", "ListAccounts", e)),
        };
        Ok(Some(
            pages
                .iter()
                .flat_map(|page| page.accounts())
                .filter_map(|a| {
                    // `State` replaces the deprecated `Status`; either may be the one answered.
                    #[allow(deprecated)]
                    let state = a
                        .state()
                        .map(|s| s.as_str().to_owned())
                        .or_else(|| a.status().map(|s| s.as_str().to_owned()))
                        .unwrap_or_default();
                    Some(OrgAccount { id: a.id()?.to_owned(), name: a.name().unwrap_or_default().to_owned(), state })
                })
                .collect(),
        ))
    }
}
