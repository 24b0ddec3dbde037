#!/usr/bin/env bash
# `make bench-api`: the Kubernetes-style API under `hanode-bench api`, side by side:
#   A = three stacked hanode servers (store + API on each), 127.0.40.1-3;
#   B = three hanode --role control-plane servers on a three-member etcd 3.4 cluster (the
#       kubeadm-style split: API servers over an external etcd), 127.0.60.1-3 over 127.0.50.1-3.
# Both use client-certificate TLS everywhere and etcd's default fsync behaviour. Rounds
# alternate A B A B; everything started here is stopped at the end.
#
# Knobs: RATE (paced creates/gets per second, default 500), PHASE_SECS (per paced phase, default
# 10), PODS (default 10000), ROUNDS (default 1), OUT (the result file).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hanode/target}"
RATE="${RATE:-500}"
PHASE_SECS="${PHASE_SECS:-10}"
PODS="${PODS:-10000}"
ROUNDS="${ROUNDS:-1}"
OUT="${OUT:-$CARGO_TARGET_DIR/bench-api-latest.txt}"
. cmd/hanode-bench/bench-env.sh
ready() { curl -sf --cacert "$1" "https://$2:6443/readyz" | grep -q ok; }
start() { # name, ip, args...
  local name=$1 ip=$2; shift 2
  "$HANODE" server --node-name "$name" --data-dir "$WORK/$name" --advertise-address "$ip" "$@" \
    >>"$WORK/$name.log" 2>&1 &
  disown
}

H_IPS=(127.0.40.1 127.0.40.2 127.0.40.3)
E_IPS=(127.0.50.1 127.0.50.2 127.0.50.3)
C_IPS=(127.0.60.1 127.0.60.2 127.0.60.3)

echo "== A: three stacked hanode servers on ${H_IPS[*]}"
start h0 "${H_IPS[0]}" --init
wait_for "h0" ready "$WORK/h0/pki/ca.crt" "${H_IPS[0]}"
for i in 1 2; do
  start "h$i" "${H_IPS[$i]}" --join "https://${H_IPS[0]}:6443" --token "$(cat "$WORK/h0/token")"
  wait_for "h$i" ready "$WORK/h0/pki/ca.crt" "${H_IPS[$i]}"
done

echo "== B: etcd $(etcd --version | head -1 | awk '{print $3}') on ${E_IPS[*]}, control-plane servers on ${C_IPS[*]}"
"$BENCH" certs --out "$WORK/epki" --ip "$(IFS=,; echo "${E_IPS[*]}")"
EPKI="$WORK/epki"
CLUSTER=$(for i in 0 1 2; do printf 'e%s=https://%s:2380,' "$i" "${E_IPS[$i]}"; done); CLUSTER=${CLUSTER%,}
for i in 0 1 2; do
  ip=${E_IPS[$i]}
  etcd --name "e$i" --data-dir "$WORK/e$i" \
    --listen-client-urls "https://$ip:2379" --advertise-client-urls "https://$ip:2379" \
    --listen-peer-urls "https://$ip:2380" --initial-advertise-peer-urls "https://$ip:2380" \
    --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token bench \
    --cert-file "$EPKI/server.crt" --key-file "$EPKI/server.key" --trusted-ca-file "$EPKI/ca.crt" --client-cert-auth \
    --peer-cert-file "$EPKI/server.crt" --peer-key-file "$EPKI/server.key" --peer-trusted-ca-file "$EPKI/ca.crt" \
    --peer-client-cert-auth --quota-backend-bytes 2147483648 --logger zap --log-level warn \
    >>"$WORK/e$i.log" 2>&1 &
  disown
done
E_EP=$(printf 'https://%s:2379,' "${E_IPS[@]}"); E_EP=${E_EP%,}
ehealth() { ETCDCTL_API=3 etcdctl --endpoints="$E_EP" --cacert="$EPKI/ca.crt" --cert="$EPKI/client.crt" --key="$EPKI/client.key" endpoint health; }
wait_for "etcd" ehealth
STORAGE=(--role control-plane --storage-endpoints "$E_EP" --storage-cafile "$EPKI/ca.crt"
  --storage-certfile "$EPKI/client.crt" --storage-keyfile "$EPKI/client.key")
start c0 "${C_IPS[0]}" --init "${STORAGE[@]}"
wait_for "c0" ready "$WORK/c0/pki/ca.crt" "${C_IPS[0]}"
for i in 1 2; do
  start "c$i" "${C_IPS[$i]}" --join "https://${C_IPS[0]}:6443" --token "$(cat "$WORK/c0/token")" "${STORAGE[@]}"
  wait_for "c$i" ready "$WORK/c0/pki/ca.crt" "${C_IPS[$i]}"
done

urls() { printf 'https://%s:6443,' "$@" | sed 's/,$//'; }
A=(--servers "$(urls "${H_IPS[@]}")" --cacert "$WORK/h0/pki/ca.crt" --cert "$WORK/h0/pki/admin.crt"
  --key "$WORK/h0/pki/admin.key" --label hanode)
B=(--vs-servers "$(urls "${C_IPS[@]}")" --vs-cacert "$WORK/c0/pki/ca.crt" --vs-cert "$WORK/c0/pki/admin.crt"
  --vs-key "$WORK/c0/pki/admin.key" --vs-label cp+etcd)
{
echo "# hanode-bench api side by side, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
echo "# hanode $HANODE_BUILD; A = stacked hanode, B = hanode control plane on etcd $(etcd --version | head -1 | awk '{print $3}'); ratios are A/B"
echo "# $BENCH api --rate $RATE --seconds $PHASE_SECS --pods $PODS --rounds $ROUNDS"
} | tee "$OUT"
"$BENCH" api "${A[@]}" "${B[@]}" --rate "$RATE" --seconds "$PHASE_SECS" --pods "$PODS" \
  --rounds "$ROUNDS" | tee -a "$OUT"
echo "results: $OUT"
