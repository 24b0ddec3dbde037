//! Field-by-field translation between the store's types and `etcd-client`'s: requests go out
//! through its option builders, responses come back from the protobuf messages it exposes
//! (feature `pub-response-field`), so no field is lost on the way.

use etcd_client::proto::{
    PbDeleteResponse, PbEvent, PbKeyValue, PbMember, PbPutResponse, PbRangeResponse,
    PbResponseHeader, PbStatusResponse, PbTxnOpResponse, PbTxnResponse,
};
use etcd_client::{
    Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp,
};

use hanode_kv as kv;

/// `mvccpb.Event.EventType` PUT.
const EVENT_PUT: i32 = 0;
/// `mvccpb.Event.EventType` DELETE.
const EVENT_DELETE: i32 = 1;

pub(crate) fn header(h: Option<&PbResponseHeader>) -> kv::ResponseHeader {
    h.map(|h| kv::ResponseHeader {
        cluster_id: h.cluster_id,
        member_id: h.member_id,
        revision: h.revision,
        raft_term: h.raft_term,
    })
    .unwrap_or_default()
}

pub(crate) fn key_value(kv: PbKeyValue) -> kv::KeyValue {
    kv::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

fn sort_order(order: kv::SortOrder) -> SortOrder {
    match order {
        kv::SortOrder::None => SortOrder::None,
        kv::SortOrder::Ascend => SortOrder::Ascend,
        kv::SortOrder::Descend => SortOrder::Descend,
    }
}

fn sort_target(target: kv::SortTarget) -> SortTarget {
    match target {
        kv::SortTarget::Key => SortTarget::Key,
        kv::SortTarget::Version => SortTarget::Version,
        kv::SortTarget::Create => SortTarget::Create,
        kv::SortTarget::Mod => SortTarget::Mod,
        kv::SortTarget::Value => SortTarget::Value,
    }
}

/// Everything of a range but its key, which etcd-client takes apart.
pub(crate) fn get_options(r: &kv::RangeRequest) -> GetOptions {
    // etcd-client turns (Key, Ascend) into (Key, None): the same result, as keys come sorted.
    let mut options = GetOptions::new()
        .with_range(r.range_end.clone())
        .with_limit(r.limit)
        .with_revision(r.revision)
        .with_sort(sort_target(r.sort_target), sort_order(r.sort_order))
        .with_min_mod_revision(r.min_mod_revision)
        .with_max_mod_revision(r.max_mod_revision)
        .with_min_create_revision(r.min_create_revision)
        .with_max_create_revision(r.max_create_revision);
    if r.serializable {
        options = options.with_serializable();
    }
    if r.keys_only {
        options = options.with_keys_only();
    }
    if r.count_only {
        options = options.with_count_only();
    }
    options
}

/// Everything of a put but its key and value.
pub(crate) fn put_options(r: &kv::PutRequest) -> PutOptions {
    let mut options = PutOptions::new().with_lease(r.lease);
    if r.prev_kv {
        options = options.with_prev_key();
    }
    if r.ignore_value {
        options = options.with_ignore_value();
    }
    if r.ignore_lease {
        options = options.with_ignore_lease();
    }
    options
}

/// Everything of a delete but its key.
pub(crate) fn delete_options(r: &kv::DeleteRangeRequest) -> DeleteOptions {
    let options = DeleteOptions::new().with_range(r.range_end.clone());
    if r.prev_kv {
        options.with_prev_key()
    } else {
        options
    }
}

fn compare(c: kv::Compare) -> Compare {
    let op = match c.result {
        kv::CompareResult::Equal => CompareOp::Equal,
        kv::CompareResult::Greater => CompareOp::Greater,
        kv::CompareResult::Less => CompareOp::Less,
        kv::CompareResult::NotEqual => CompareOp::NotEqual,
    };
    let key = c.key;
    let compare = match c.target {
        kv::CompareTarget::Version(v) => Compare::version(key, op, v),
        kv::CompareTarget::Create(rev) => Compare::create_revision(key, op, rev),
        kv::CompareTarget::Mod(rev) => Compare::mod_revision(key, op, rev),
        kv::CompareTarget::Value(value) => Compare::value(key, op, value),
        kv::CompareTarget::Lease(id) => Compare::lease(key, op, id),
    };
    compare.with_range(c.range_end)
}

fn request_op(op: kv::RequestOp) -> TxnOp {
    match op {
        kv::RequestOp::Range(r) => {
            let options = get_options(&r);
            TxnOp::get(r.key, Some(options))
        }
        kv::RequestOp::Put(r) => {
            let options = put_options(&r);
            TxnOp::put(r.key, r.value, Some(options))
        }
        kv::RequestOp::DeleteRange(r) => {
            let options = delete_options(&r);
            TxnOp::delete(r.key, Some(options))
        }
        kv::RequestOp::Txn(t) => TxnOp::txn(txn(t)),
    }
}

pub(crate) fn txn(t: kv::TxnRequest) -> Txn {
    Txn::new()
        .when(t.compare.into_iter().map(compare).collect::<Vec<_>>())
        .and_then(t.success.into_iter().map(request_op).collect::<Vec<_>>())
        .or_else(t.failure.into_iter().map(request_op).collect::<Vec<_>>())
}

pub(crate) fn range_response(r: PbRangeResponse) -> kv::RangeResponse {
    kv::RangeResponse {
        header: header(r.header.as_ref()),
        kvs: r.kvs.into_iter().map(key_value).collect(),
        more: r.more,
        count: r.count,
    }
}

pub(crate) fn put_response(r: PbPutResponse) -> kv::PutResponse {
    kv::PutResponse {
        header: header(r.header.as_ref()),
        prev_kv: r.prev_kv.map(key_value),
    }
}

pub(crate) fn delete_response(r: PbDeleteResponse) -> kv::DeleteRangeResponse {
    kv::DeleteRangeResponse {
        header: header(r.header.as_ref()),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(key_value).collect(),
    }
}

pub(crate) fn txn_response(r: PbTxnResponse) -> kv::TxnResponse {
    kv::TxnResponse {
        header: header(r.header.as_ref()),
        succeeded: r.succeeded,
        // A response op without a response is malformed and carries nothing to translate.
        responses: r
            .responses
            .into_iter()
            .filter_map(|op| op.response)
            .map(|op| match op {
                PbTxnOpResponse::ResponseRange(r) => kv::ResponseOp::Range(range_response(r)),
                PbTxnOpResponse::ResponsePut(r) => kv::ResponseOp::Put(put_response(r)),
                PbTxnOpResponse::ResponseDeleteRange(r) => {
                    kv::ResponseOp::DeleteRange(delete_response(r))
                }
                PbTxnOpResponse::ResponseTxn(r) => kv::ResponseOp::Txn(txn_response(r)),
            })
            .collect(),
    }
}

/// A watch event; `None` for an event of a kind this client does not know.
pub(crate) fn event(e: PbEvent) -> Option<kv::Event> {
    let kind = match e.r#type {
        EVENT_PUT => kv::EventType::Put,
        EVENT_DELETE => kv::EventType::Delete,
        _ => return None,
    };
    Some(kv::Event {
        kind,
        kv: key_value(e.kv?),
        prev_kv: e.prev_kv.map(key_value),
    })
}

pub(crate) fn member(m: PbMember) -> kv::MemberInfo {
    kv::MemberInfo {
        id: m.id,
        member: hanode_types::Member {
            name: m.name,
            // hanode members have one peer URL; etcd's may have several, the first is primary.
            peer_url: m.peer_ur_ls.into_iter().next().unwrap_or_default(),
            client_urls: m.client_ur_ls,
            ..hanode_types::Member::default()
        },
        is_learner: m.is_learner,
    }
}

pub(crate) fn status(s: PbStatusResponse) -> kv::StatusResponse {
    kv::StatusResponse {
        header: header(s.header.as_ref()),
        version: s.version,
        db_size: s.db_size,
        db_size_in_use: s.db_size_in_use,
        leader: s.leader,
        raft_index: s.raft_index,
        raft_term: s.raft_term,
        raft_applied_index: s.raft_applied_index,
        errors: s.errors,
        is_learner: s.is_learner,
    }
}

pub(crate) fn alarm_type(alarm: Option<kv::AlarmType>) -> etcd_client::AlarmType {
    match alarm {
        None => etcd_client::AlarmType::None,
        Some(kv::AlarmType::NoSpace) => etcd_client::AlarmType::Nospace,
        Some(kv::AlarmType::Corrupt) => etcd_client::AlarmType::Corrupt,
    }
}

pub(crate) fn alarm_action(action: kv::AlarmAction) -> etcd_client::AlarmAction {
    match action {
        kv::AlarmAction::Get => etcd_client::AlarmAction::Get,
        kv::AlarmAction::Activate => etcd_client::AlarmAction::Activate,
        kv::AlarmAction::Deactivate => etcd_client::AlarmAction::Deactivate,
    }
}

/// An active alarm; `None` for the "no alarm" value or a kind this client does not know.
pub(crate) fn alarm_member(member_id: u64, alarm: i32) -> Option<kv::AlarmMember> {
    let alarm = match alarm {
        1 => kv::AlarmType::NoSpace,
        2 => kv::AlarmType::Corrupt,
        _ => return None,
    };
    Some(kv::AlarmMember { member_id, alarm })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_client::proto::{
        PbCompare, PbRangeRequest, PbTargetUnion, PbTxnOpRequest, PbTxnRequest,
    };

    /// A range request keeps every field on its way through etcd-client's builder.
    #[test]
    fn range_request_keeps_every_field() {
        let request = kv::RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            limit: 3,
            revision: 7,
            sort_order: kv::SortOrder::Descend,
            sort_target: kv::SortTarget::Mod,
            serializable: true,
            keys_only: true,
            count_only: true,
            min_mod_revision: 1,
            max_mod_revision: 2,
            min_create_revision: 3,
            max_create_revision: 4,
        };
        let txn: PbTxnRequest = txn(kv::TxnRequest {
            success: vec![kv::RequestOp::Range(request)],
            ..Default::default()
        })
        .into();
        let Some(PbTxnOpRequest::RequestRange(wire)) = txn.success[0].request.clone() else {
            panic!("not a range: {txn:?}");
        };
        assert_eq!(
            wire,
            PbRangeRequest {
                key: b"a".to_vec(),
                range_end: b"b".to_vec(),
                limit: 3,
                revision: 7,
                sort_order: 2,
                sort_target: 3,
                serializable: true,
                keys_only: true,
                count_only: true,
                min_mod_revision: 1,
                max_mod_revision: 2,
                min_create_revision: 3,
                max_create_revision: 4,
            }
        );
    }

    /// Compares keep target, relation, key and range; nested transactions stay nested.
    #[test]
    fn txn_keeps_compares_and_nesting() {
        let inner = kv::TxnRequest {
            compare: vec![kv::Compare {
                result: kv::CompareResult::NotEqual,
                target: kv::CompareTarget::Lease(5),
                key: b"k".to_vec(),
                range_end: Vec::new(),
            }],
            failure: vec![kv::RequestOp::DeleteRange(kv::DeleteRangeRequest {
                key: b"d".to_vec(),
                range_end: b"e".to_vec(),
                prev_kv: true,
            })],
            ..Default::default()
        };
        let outer = kv::TxnRequest {
            compare: vec![kv::Compare {
                result: kv::CompareResult::Less,
                target: kv::CompareTarget::Mod(9),
                key: b"a".to_vec(),
                range_end: b"z".to_vec(),
            }],
            success: vec![
                kv::RequestOp::Put(kv::PutRequest {
                    key: b"p".to_vec(),
                    value: b"v".to_vec(),
                    lease: 3,
                    prev_kv: true,
                    ignore_value: false,
                    ignore_lease: true,
                }),
                kv::RequestOp::Txn(inner),
            ],
            failure: Vec::new(),
        };
        let wire: PbTxnRequest = txn(outer).into();
        assert_eq!(
            wire.compare,
            vec![PbCompare {
                result: 2,
                target: 2,
                key: b"a".to_vec(),
                range_end: b"z".to_vec(),
                target_union: Some(PbTargetUnion::ModRevision(9)),
            }]
        );
        let Some(PbTxnOpRequest::RequestPut(put)) = wire.success[0].request.clone() else {
            panic!("not a put: {wire:?}");
        };
        assert_eq!(
            (
                put.key,
                put.value,
                put.lease,
                put.prev_kv,
                put.ignore_value,
                put.ignore_lease
            ),
            (b"p".to_vec(), b"v".to_vec(), 3, true, false, true)
        );
        let Some(PbTxnOpRequest::RequestTxn(nested)) = wire.success[1].request.clone() else {
            panic!("not a txn: {wire:?}");
        };
        assert_eq!(
            nested.compare[0].target_union,
            Some(PbTargetUnion::Lease(5))
        );
        assert_eq!(nested.compare[0].result, 3);
        let Some(PbTxnOpRequest::RequestDeleteRange(delete)) = nested.failure[0].request.clone()
        else {
            panic!("not a delete: {nested:?}");
        };
        assert_eq!(
            (delete.key, delete.range_end, delete.prev_kv),
            (b"d".to_vec(), b"e".to_vec(), true)
        );
    }
}
