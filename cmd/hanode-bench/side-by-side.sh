#!/usr/bin/env bash
# `make bench`: three hanode servers and a three-member etcd 3.4 cluster on loopback, on the
# same disk with the same TLS setup (client-certificate auth, mTLS peers) and etcd's default
# fsync behaviour on both; runs the standard matrix side by side (hanode = A, etcd = B, rounds
# alternate A B A B) and stops everything it started.
#
# Knobs: SCALE (multiplies request counts, default 1), ROUNDS (default 2), ONLY (a regex of
# matrix rows to run), OUT (the result file).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hanode/target}"
SCALE="${SCALE:-1}"
ROUNDS="${ROUNDS:-2}"
ONLY="${ONLY:-.}"
OUT="${OUT:-$CARGO_TARGET_DIR/bench-latest.txt}"
. cmd/hanode-bench/bench-env.sh
now_ms() { date +%s%3N; }

H_IPS=(127.0.10.1 127.0.10.2 127.0.10.3)
E_IPS=(127.0.20.1 127.0.20.2 127.0.20.3)

echo "== starting hanode on ${H_IPS[*]}"
hanode_start() { # index, extra args...
  local i=$1; shift
  "$HANODE" server --node-name "h$i" --data-dir "$WORK/h$i" --advertise-address "${H_IPS[$i]}" "$@" \
    >>"$WORK/h$i.log" 2>&1 &
  disown
}
ready() { curl -sf --cacert "$WORK/h0/pki/ca.crt" "https://$1:6443/readyz" | grep -q ok; }
hanode_start 0 --init
wait_for "hanode h0" ready "${H_IPS[0]}"
TOKEN=$(cat "$WORK/h0/token")
for i in 1 2; do
  hanode_start $i --join "https://${H_IPS[0]}:6443" --token "$TOKEN"
  wait_for "hanode h$i" ready "${H_IPS[$i]}"
done
HPKI="$WORK/h0/pki"
H_EP=$(printf 'https://%s:2379,' "${H_IPS[@]}"); H_EP=${H_EP%,}
voters() { ETCDCTL_API=3 etcdctl --endpoints="$H_EP" --cacert="$HPKI/ca.crt" --cert="$HPKI/admin.crt" --key="$HPKI/admin.key" member list | grep -c ', false$' | grep -q 3; }
wait_for "three hanode voters" voters

echo "== starting etcd $(etcd --version | head -1 | awk '{print $3}') on ${E_IPS[*]}"
"$BENCH" certs --out "$WORK/epki" --ip "$(IFS=,; echo "${E_IPS[*]}"),127.0.30.2"
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

A=(--endpoints "$H_EP" --cacert "$HPKI/ca.crt" --cert "$HPKI/admin.crt" --key "$HPKI/admin.key" --label hanode)
B=(--vs "$E_EP" --vs-cacert "$EPKI/ca.crt" --vs-cert "$EPKI/client.crt" --vs-key "$EPKI/client.key" --vs-label etcd)
n() { echo $(( $1 * SCALE )); }

{
echo "# hanode-bench side by side, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), disk $(df -h /var/tmp | awk 'NR==2{print $1}')"
echo "# hanode $HANODE_BUILD, etcd $(etcd --version | head -1 | awk '{print $3}'); A = hanode, B = etcd; ratios are A/B"
} | tee "$OUT"

row() { # name, bench args...
  local name=$1; shift
  [[ "$name" =~ $ONLY ]] || return 0
  echo "## $name" | tee -a "$OUT"
  if ! "$BENCH" "$@" "${A[@]}" "${B[@]}" --rounds "$ROUNDS" 2>"$WORK/bench-stderr.log" | tee -a "$OUT"; then
    echo "FAILED: $(tr '\r' '\n' <"$WORK/bench-stderr.log" | grep -v '^ *[A-Za-z]* on ' | tail -3)" | tee -a "$OUT"
  fi
}
row "put 1 client"          put --clients 1 --conns 1 --total "$(n 2000)" --val-size 256
row "put 16 clients"        put --clients 16 --total "$(n 20000)" --val-size 256
row "put 64 clients"        put --clients 64 --total "$(n 40000)" --val-size 256
row "put 256 clients"       put --clients 256 --conns 64 --total "$(n 60000)" --val-size 256
row "range 1 client"        range --consistency s --clients 1 --conns 1 --total "$(n 5000)"
row "range linearizable"    range --consistency l --clients 16 --total "$(n 40000)"
row "range serializable"    range --consistency s --clients 16 --total "$(n 40000)" --target all
row "txn 16 clients"    txn-put --clients 16 --total "$(n 20000)"
row "watch latency"         watch-latency --conns 4 --total "$(n 2000)"
row "lease keep-alive"      lease-keepalive --clients 16 --total "$(n 100000)"
row "failover kill"         failover --fault kill --restart-log "$WORK/restarted.log"
row "failover stop 5s"      failover --fault stop --stop-secs 5
row "footprint"             footprint --clients 16 --total "$(n 10000)"

if [[ "cold start" =~ $ONLY ]]; then
  echo "## cold start (new single-member cluster to ready)" | tee -a "$OUT"
  t0=$(now_ms)
  "$HANODE" server --init --node-name cold --data-dir "$WORK/cold" --advertise-address 127.0.30.1 >>"$WORK/cold.log" 2>&1 &
  disown
  wait_for "cold hanode" bash -c "curl -sf --cacert $WORK/cold/pki/ca.crt https://127.0.30.1:6443/readyz | grep -q ok"
  echo "hanode: $(( $(now_ms) - t0 )) ms to /readyz ok" | tee -a "$OUT"
  t0=$(now_ms)
  etcd --name cold --data-dir "$WORK/ecold" --listen-client-urls https://127.0.30.2:2379 --advertise-client-urls https://127.0.30.2:2379 \
    --listen-peer-urls http://127.0.30.2:2380 --initial-advertise-peer-urls http://127.0.30.2:2380 --initial-cluster cold=http://127.0.30.2:2380 \
    --cert-file "$EPKI/server.crt" --key-file "$EPKI/server.key" --trusted-ca-file "$EPKI/ca.crt" --client-cert-auth \
    --logger zap --log-level warn >>"$WORK/ecold.log" 2>&1 &
  disown
  wait_for "cold etcd" bash -c "curl -sf --cacert $EPKI/ca.crt --cert $EPKI/client.crt --key $EPKI/client.key https://127.0.30.2:2379/health | grep -q true"
  echo "etcd:   $(( $(now_ms) - t0 )) ms to /health true" | tee -a "$OUT"
fi
echo "results: $OUT"
