//! Field-by-field translation between etcd's protobuf messages and the store's types. Enum
//! values are etcd's wire numbers.

use etcd_client::proto::*;

use hanode_kv as kv;

/// `mvccpb.Event.EventType`.
pub const EVENT_PUT: i32 = 0;
/// `mvccpb.Event.EventType`.
pub const EVENT_DELETE: i32 = 1;
/// `WatchCreateRequest.FilterType`: drop puts.
pub const FILTER_NOPUT: i32 = 0;
/// `WatchCreateRequest.FilterType`: drop deletes.
pub const FILTER_NODELETE: i32 = 1;

pub fn header(h: kv::ResponseHeader) -> Option<PbResponseHeader> {
    Some(PbResponseHeader {
        cluster_id: h.cluster_id,
        member_id: h.member_id,
        revision: h.revision,
        raft_term: h.raft_term,
    })
}

pub fn key_value(kv: kv::KeyValue) -> PbKeyValue {
    PbKeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

pub fn range_request(r: PbRangeRequest) -> kv::RangeRequest {
    kv::RangeRequest {
        key: r.key,
        range_end: r.range_end,
        limit: r.limit,
        revision: r.revision,
        sort_order: match r.sort_order {
            1 => kv::SortOrder::Ascend,
            2 => kv::SortOrder::Descend,
            _ => kv::SortOrder::None,
        },
        sort_target: match r.sort_target {
            1 => kv::SortTarget::Version,
            2 => kv::SortTarget::Create,
            3 => kv::SortTarget::Mod,
            4 => kv::SortTarget::Value,
            _ => kv::SortTarget::Key,
        },
        serializable: r.serializable,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    }
}

pub fn range_response(r: kv::RangeResponse) -> PbRangeResponse {
    PbRangeResponse {
        header: header(r.header),
        kvs: r.kvs.into_iter().map(key_value).collect(),
        more: r.more,
        count: r.count,
    }
}

pub fn put_request(r: PbPutRequest) -> kv::PutRequest {
    kv::PutRequest {
        key: r.key,
        value: r.value,
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

pub fn put_response(r: kv::PutResponse) -> PbPutResponse {
    PbPutResponse {
        header: header(r.header),
        prev_kv: r.prev_kv.map(key_value),
    }
}

pub fn delete_request(r: PbDeleteRequest) -> kv::DeleteRangeRequest {
    kv::DeleteRangeRequest {
        key: r.key,
        range_end: r.range_end,
        prev_kv: r.prev_kv,
    }
}

pub fn delete_response(r: kv::DeleteRangeResponse) -> PbDeleteResponse {
    PbDeleteResponse {
        header: header(r.header),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(key_value).collect(),
    }
}

fn compare(c: PbCompare) -> Result<kv::Compare, String> {
    let union = c.target_union;
    let target = match c.target {
        0 => kv::CompareTarget::Version(match union {
            Some(PbTargetUnion::Version(v)) => v,
            _ => 0,
        }),
        1 => kv::CompareTarget::Create(match union {
            Some(PbTargetUnion::CreateRevision(v)) => v,
            _ => 0,
        }),
        2 => kv::CompareTarget::Mod(match union {
            Some(PbTargetUnion::ModRevision(v)) => v,
            _ => 0,
        }),
        3 => kv::CompareTarget::Value(match union {
            Some(PbTargetUnion::Value(v)) => v,
            _ => Vec::new(),
        }),
        4 => kv::CompareTarget::Lease(match union {
            Some(PbTargetUnion::Lease(v)) => v,
            _ => 0,
        }),
        other => return Err(format!("unknown compare target {other}")),
    };
    let result = match c.result {
        0 => kv::CompareResult::Equal,
        1 => kv::CompareResult::Greater,
        2 => kv::CompareResult::Less,
        3 => kv::CompareResult::NotEqual,
        other => return Err(format!("unknown compare result {other}")),
    };
    Ok(kv::Compare {
        result,
        target,
        key: c.key,
        range_end: c.range_end,
    })
}

fn request_op(op: PbTxnRequestOp) -> Result<kv::RequestOp, String> {
    match op.request {
        Some(PbTxnOpRequest::RequestRange(r)) => Ok(kv::RequestOp::Range(range_request(r))),
        Some(PbTxnOpRequest::RequestPut(r)) => Ok(kv::RequestOp::Put(put_request(r))),
        Some(PbTxnOpRequest::RequestDeleteRange(r)) => {
            Ok(kv::RequestOp::DeleteRange(delete_request(r)))
        }
        Some(PbTxnOpRequest::RequestTxn(r)) => Ok(kv::RequestOp::Txn(txn_request(r)?)),
        None => Err("txn operation without a request".into()),
    }
}

pub fn txn_request(r: PbTxnRequest) -> Result<kv::TxnRequest, String> {
    Ok(kv::TxnRequest {
        compare: r
            .compare
            .into_iter()
            .map(compare)
            .collect::<Result<_, _>>()?,
        success: r
            .success
            .into_iter()
            .map(request_op)
            .collect::<Result<_, _>>()?,
        failure: r
            .failure
            .into_iter()
            .map(request_op)
            .collect::<Result<_, _>>()?,
    })
}

fn response_op(op: kv::ResponseOp) -> PbResponseOp {
    let response = match op {
        kv::ResponseOp::Range(r) => PbTxnOpResponse::ResponseRange(range_response(r)),
        kv::ResponseOp::Put(r) => PbTxnOpResponse::ResponsePut(put_response(r)),
        kv::ResponseOp::DeleteRange(r) => PbTxnOpResponse::ResponseDeleteRange(delete_response(r)),
        kv::ResponseOp::Txn(r) => PbTxnOpResponse::ResponseTxn(txn_response(r)),
    };
    PbResponseOp {
        response: Some(response),
    }
}

pub fn txn_response(r: kv::TxnResponse) -> PbTxnResponse {
    PbTxnResponse {
        header: header(r.header),
        succeeded: r.succeeded,
        responses: r.responses.into_iter().map(response_op).collect(),
    }
}

pub fn event(e: kv::Event) -> PbEvent {
    PbEvent {
        r#type: match e.kind {
            kv::EventType::Put => EVENT_PUT,
            kv::EventType::Delete => EVENT_DELETE,
        },
        kv: Some(key_value(e.kv)),
        prev_kv: e.prev_kv.map(key_value),
    }
}

pub fn member(m: kv::MemberInfo) -> PbMember {
    let started = m.member.is_started();
    PbMember {
        id: m.id,
        name: m.member.name,
        peer_ur_ls: vec![m.member.peer_url],
        client_ur_ls: if started {
            m.member.client_urls
        } else {
            Vec::new()
        },
        is_learner: m.is_learner,
    }
}

pub fn alarm_type(value: i32) -> Option<kv::AlarmType> {
    match value {
        1 => Some(kv::AlarmType::NoSpace),
        2 => Some(kv::AlarmType::Corrupt),
        _ => None,
    }
}

pub fn alarm_member(a: kv::AlarmMember) -> PbAlarmMember {
    PbAlarmMember {
        member_id: a.member_id,
        alarm: match a.alarm {
            kv::AlarmType::NoSpace => 1,
            kv::AlarmType::Corrupt => 2,
        },
    }
}
