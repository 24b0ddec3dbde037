//! etcd's Lease service.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use etcd_client::proto::*;
use hanode_kv::KvBackend;

use crate::convert;
use crate::error::status;

/// Lease over a store.
pub struct LeaseService {
    pub(crate) backend: Arc<dyn KvBackend>,
}

#[tonic::async_trait]
impl PbLeaseService for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        let req = request.into_inner();
        let resp = self
            .backend
            .lease_grant(req.id, req.ttl)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(PbLeaseGrantResponse {
            header: convert::header(resp.header),
            id: resp.id,
            ttl: resp.ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        let header = self
            .backend
            .lease_revoke(request.into_inner().id)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(PbLeaseRevokeResponse {
            header: convert::header(header),
        }))
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<PbLeaseKeepAliveResponse, Status>> + Send>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let require_leader = crate::requires_leader(&request);
        let backend = self.backend.clone();
        if require_leader {
            crate::check_leader(&*backend).await?;
        }
        let requests = request.into_inner();
        let responses = requests.then(move |next| {
            let backend = backend.clone();
            async move {
                let req = next?;
                let resp = backend
                    .lease_keep_alive(req.id)
                    .await
                    .map_err(|e| status(&e))?;
                Ok(PbLeaseKeepAliveResponse {
                    header: convert::header(resp.header),
                    id: resp.id,
                    ttl: resp.ttl,
                })
            }
        });
        Ok(Response::new(Box::pin(responses)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let resp = self
            .backend
            .lease_time_to_live(req.id, req.keys)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(PbLeaseTimeToLiveResponse {
            header: convert::header(resp.header),
            id: resp.id,
            ttl: resp.ttl,
            granted_ttl: resp.granted_ttl,
            keys: resp.keys,
        }))
    }

    async fn lease_leases(
        &self,
        _request: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        let resp = self.backend.lease_leases().await.map_err(|e| status(&e))?;
        Ok(Response::new(PbLeaseLeasesResponse {
            header: convert::header(resp.header),
            leases: resp
                .leases
                .into_iter()
                .map(|id| PbLeaseStatus { id })
                .collect(),
        }))
    }
}
