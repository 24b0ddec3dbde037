//! etcd's KV service.

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};

use etcd_client::proto::*;
use hanode_kv::{CompactionRequest, KvBackend, KvError};

use crate::convert;
use crate::error::{status, too_large};

/// KV over a store.
pub struct KvService {
    pub(crate) backend: Arc<dyn KvBackend>,
    pub(crate) max_request_bytes: usize,
}

impl KvService {
    fn check_size(&self, message: &impl Message) -> Result<(), Status> {
        if message.encoded_len() > self.max_request_bytes {
            Err(too_large())
        } else {
            Ok(())
        }
    }
}

#[tonic::async_trait]
impl PbKvService for KvService {
    async fn range(
        &self,
        request: Request<PbRangeRequest>,
    ) -> Result<Response<PbRangeResponse>, Status> {
        let req = convert::range_request(request.into_inner());
        let resp = self.backend.range(req).await.map_err(|e| status(&e))?;
        Ok(Response::new(convert::range_response(resp)))
    }

    type RangeStreamStream =
        futures::stream::Once<futures::future::Ready<Result<PbRangeStreamResponse, Status>>>;

    async fn range_stream(
        &self,
        request: Request<PbRangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        // One message with the whole range: a valid stream for clients of the newer API.
        let req = convert::range_request(request.into_inner());
        let resp = self.backend.range(req).await.map_err(|e| status(&e))?;
        let message = PbRangeStreamResponse {
            range_response: Some(convert::range_response(resp)),
        };
        Ok(Response::new(futures::stream::once(
            futures::future::ready(Ok(message)),
        )))
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        let req = request.into_inner();
        self.check_size(&req)?;
        let resp = self
            .backend
            .put(convert::put_request(req))
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(convert::put_response(resp)))
    }

    async fn delete_range(
        &self,
        request: Request<PbDeleteRequest>,
    ) -> Result<Response<PbDeleteResponse>, Status> {
        let req = convert::delete_request(request.into_inner());
        let resp = self
            .backend
            .delete_range(req)
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(convert::delete_response(resp)))
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        let req = request.into_inner();
        self.check_size(&req)?;
        let req = convert::txn_request(req).map_err(|e| status(&KvError::InvalidArgument(e)))?;
        let resp = self.backend.txn(req).await.map_err(|e| status(&e))?;
        Ok(Response::new(convert::txn_response(resp)))
    }

    async fn compact(
        &self,
        request: Request<PbCompactionRequest>,
    ) -> Result<Response<PbCompactionResponse>, Status> {
        let req = request.into_inner();
        let header = self
            .backend
            .compact(CompactionRequest {
                revision: req.revision,
                physical: req.physical,
            })
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(PbCompactionResponse {
            header: convert::header(header),
        }))
    }
}
