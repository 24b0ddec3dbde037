//! etcd's Cluster service (membership).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use etcd_client::proto::*;
use hanode_kv::{KvBackend, MemberList};

use crate::convert;
use crate::error::status;

/// Cluster over a store.
pub struct ClusterService {
    pub(crate) backend: Arc<dyn KvBackend>,
}

fn members(list: MemberList) -> (Option<PbResponseHeader>, Vec<PbMember>) {
    (
        convert::header(list.header),
        list.members.into_iter().map(convert::member).collect(),
    )
}

#[tonic::async_trait]
impl PbClusterService for ClusterService {
    async fn member_add(
        &self,
        request: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        let req = request.into_inner();
        let (added, list) = self
            .backend
            .member_add(req.peer_ur_ls, req.is_learner)
            .await
            .map_err(|e| status(&e))?;
        let (header, members) = members(list);
        Ok(Response::new(PbMemberAddResponse {
            header,
            member: Some(convert::member(added)),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        let list = self
            .backend
            .member_remove(request.into_inner().id)
            .await
            .map_err(|e| status(&e))?;
        let (header, members) = members(list);
        Ok(Response::new(PbMemberRemoveResponse { header, members }))
    }

    async fn member_update(
        &self,
        _request: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: member update is not supported; a restarted hanode server re-announces its URLs when it joins",
        ))
    }

    async fn member_list(
        &self,
        _request: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        let list = self.backend.member_list().await.map_err(|e| status(&e))?;
        let (header, members) = members(list);
        Ok(Response::new(PbMemberListResponse { header, members }))
    }

    async fn member_promote(
        &self,
        request: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        let list = self
            .backend
            .member_promote(request.into_inner().id)
            .await
            .map_err(|e| status(&e))?;
        let (header, members) = members(list);
        Ok(Response::new(PbMemberPromoteResponse { header, members }))
    }
}
