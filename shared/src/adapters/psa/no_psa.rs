//! `psa_kind = "none"`: a company without a PSA. The steps see the kind and make no ticket or
//! note (the report goes by email and into the result); a call that reaches this adapter
//! anyway is refused.

use crate::error::{ErrorKind, RemoteError};
use crate::model::PsaKind;
use crate::ports::{NewTicket, Psa, PsaCompany};
use async_trait::async_trait;

const SERVICE: &str = "psa";

pub struct NoPsa;

fn refused(operation: &str) -> RemoteError {
    RemoteError::new(
        SERVICE,
        operation,
        ErrorKind::InvalidInput {
            field: "psa_kind",
            message: "this company has no PSA (psa_kind = \"none\")".into(),
        },
    )
}

#[async_trait]
impl Psa for NoPsa {
    fn check_ticket_id(&self, ticket_id: &str) -> Result<(), RemoteError> {
        match PsaKind::None.ticket_id_error(ticket_id) {
            None => Ok(()),
            Some(message) => Err(RemoteError::new(
                SERVICE,
                "check ticket id",
                ErrorKind::InvalidInput {
                    field: "ticket_id",
                    message,
                },
            )),
        }
    }

    async fn create_ticket(&self, _ticket: &NewTicket) -> Result<String, RemoteError> {
        Err(refused("create ticket"))
    }

    async fn add_note(&self, _ticket_id: &str, _text: &str) -> Result<(), RemoteError> {
        Err(refused("add note"))
    }

    async fn find_ticket(&self, _marker: &str) -> Result<Option<String>, RemoteError> {
        Ok(None)
    }

    async fn has_note(&self, _ticket_id: &str, _marker: &str) -> Result<bool, RemoteError> {
        Ok(false)
    }

    async fn ticket_company(&self, _ticket_id: &str) -> Result<Option<PsaCompany>, RemoteError> {
        Ok(None)
    }

    async fn find_company(&self, _psa_company: &str) -> Result<Option<PsaCompany>, RemoteError> {
        Ok(None)
    }
}
