#!/usr/bin/env bash
# test_ike_children.sh — several Child SAs on one IKE SA (RFC 7296 1.3.1) on the bed
# h1 — g1 ==== g2 — h2, PSK. Two children: net (10.1.0.0/24 <-> 10.2.0.0/24) and hosts
# (10.11.0.0/24 <-> 10.12.0.0/24, h1 and h2 hold .2 of each):
#  baton <-> baton: start_action = start brings both up (the second with CREATE_CHILD_SA), traffic
#  through each, a reload keeps them, rekey / terminate / initiate of one child by name, the other
#  untouched; simultaneous rekeys of one child from both ends leave one Child SA (RFC 7296 2.8.1);
#  start_action = trap: the second child's first packet brings it up on the existing IKE SA; a
#  reload that adds a child brings it up on the IKE SA in place.
#  baton <-> strongSwan 5.9.8 (charon, kernel-libipsec) with the same two children, both roles.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/ike_lib.sh"
. "$(dirname "$0")/../../bench/peers.sh"
tb_init ikech
tb_topology || die "tb_topology failed"
# (the gateways hold .1 of theirs: charon's kernel-libipsec routes want a source inside local_ts)
tb_nsx h1 ip addr add 10.11.0.2/24 dev eth0 && tb_nsx h2 ip addr add 10.12.0.2/24 dev eth0 &&
    tb_nsx g1 ip addr add 10.11.0.1/24 dev in0 && tb_nsx g2 ip addr add 10.12.0.1/24 dev in0 &&
    tb_nsx h1 ip route add 10.12.0.0/24 via 10.11.0.1 src 10.11.0.2 &&
    tb_nsx h2 ip route add 10.11.0.0/24 via 10.12.0.1 src 10.12.0.2 || die "second inner networks"
export TB_ROUTES_g1="10.2.0.0/24 10.12.0.0/24" TB_ROUTES_g2="10.1.0.0/24 10.11.0.0/24"

# children_conf GW FILE START: ike_conf's connection with the second child added.
children_conf() {
    local gw=$1 file=$2 lts=10.11.0.0/24 rts=10.12.0.0/24 t
    [ "$gw" = g2 ] && { t=$lts; lts=$rts; rts=$t; }
    if [ "$gw" = g1 ]; then START=$3 ike_conf g1 "$file"; else START_G2=$3 ike_conf g2 "$file"; fi
    cat >"$TB_DIR/$gw.child2" <<CONF
            hosts {
                local_ts = $lts
                remote_ts = $rts
                esp_proposals = ${ESP_PROPOSALS:-aes128gcm16}
                start_action = $3
            }
CONF
    sed -i "/^        children {/r $TB_DIR/$gw.child2" "$file"
}

# kids GW EXPR: EXPR over the children of GW's first IKE SA, as a dict name -> child (k).
kids() {
    tb_ctl "$1" --json list-sas | python3 -c "
import json, sys
a = json.load(sys.stdin).get('ike_sas', [])
k = {c['name']: c for c in (a[0].get('children', []) if a else [])}
print($2)"
}
n_ike() { tb_ctl "$1" --json list-sas | python3 -c "import json,sys; print(len(json.load(sys.stdin)['ike_sas']))"; }
n_esp() { tb_ctl "$1" --json list-sas | python3 -c "import json,sys; print(len(json.load(sys.stdin)['sas']))"; }
both_up() { test "$(kids "$1" "sorted(k)")" = "['hosts', 'net']"; }
# in_packets GW NAME: packets GW received on the inbound SA of conn/child NAME
in_packets() {
    tb_ctl "$1" --json list-sas | python3 -c "
import json, sys
print(sum(s['packets'] for s in json.load(sys.stdin)['sas'] if s['name'] == sys.argv[1] and s['dir'] == 'in'))" "$2"
}
ping_hosts() { tb_nsx h1 ping -c "${1:-3}" -i 0.2 -W 2 -q 10.12.0.2 >/dev/null 2>&1; }
all_same() { same_spis net && same_spis hosts; }
settled() { test "$(n_esp g1) $(n_esp g2)" = "4 4" && all_same; }
both_one() { both_up "$1" && test "$(n_ike "$1")" = 1; }
# the second inner networks' hosts, for xfer
node_of() {
    case $1 in
        10.12.*|10.2.*) echo h2 ;; 10.11.*|10.1.*) echo h1 ;; 172.16.0.2) echo g2 ;; 172.16.0.1) echo g1 ;; *) return 1 ;;
    esac
}
same_spis() { # GW1's inbound SPI of CHILD is GW2's outbound one, both ways
    test "$(kids g1 "k['$1']['spi_in'] + k['$1']['spi_out']")" = "$(kids g2 "k['$1']['spi_out'] + k['$1']['spi_in']")"
}

echo "== baton -> baton: start_action = start brings up both children on one IKE SA"
tb_stop g1; tb_stop g2
children_conf g2 "$TB_DIR/g2.conf" none && children_conf g1 "$TB_DIR/g1.conf" start &&
    tb_start g2 "$TB_DIR/g2.conf" && tb_start g1 "$TB_DIR/g1.conf" || die "gateways did not start"
check "both children up on the initiator" tb_wait 5 both_up g1
check "... and on the responder" tb_wait 5 both_up g2
check "one IKE SA on each end, two Child SAs (four ESP SAs) each" test "$(n_ike g1) $(n_ike g2) $(n_esp g1) $(n_esp g2)" = "1 1 4 4"
check "the second came with CREATE_CHILD_SA on the IKE SA" grep -q "asking for the Child SA on IKE SA" "$TB_DIR/g1.log"
check "each child's SPIs match on both ends" all_same
check "the responder narrowed each to its own selectors" test "$(kids g2 "k['hosts']['local_ts'] + k['net']['local_ts']")" = "['10.12.0.0/24', '10.2.0.0/24']"
check "ping through net (10.1.0.2 -> 10.2.0.2)" ping_ok h1 10.2.0.2
check "ping through hosts (10.11.0.2 -> 10.12.0.2)" ping_hosts
check "each went through its own Child SA (g2 in: net $(in_packets g2 gw/net), hosts $(in_packets g2 gw/hosts))" \
    test "$(in_packets g2 gw/net)" -ge 3 -a "$(in_packets g2 gw/hosts)" -ge 3
check "256 KiB h2 -> h1 over TCP through hosts" xfer h2 10.11.0.2 262144 5002
check "list-sas shows both children" bash -c "$BATONCTL -s $TB_DIR/g1.sock list-sas | grep -q 'child hosts:' && $BATONCTL -s $TB_DIR/g1.sock list-sas | grep -q 'child net:'"
spis0=$(kids g1 "k['net']['spi_in'] + k['hosts']['spi_in']")
check "a reload of the same file keeps both" tb_ctl g1 load
check "... with their SPIs" test "$(kids g1 "k['net']['spi_in'] + k['hosts']['spi_in']")" = "$spis0"

echo "== one child by name: rekey, terminate, initiate"
net0=$(kids g1 "k['net']['spi_in']"); hosts0=$(kids g1 "k['hosts']['spi_in']"); ike0=$(ike_sa g1 "s['spi_i']")
check "rekey gw/hosts is accepted" tb_ctl g1 rekey gw/hosts
check "... hosts has new SPIs" tb_wait 5 test "$(kids g1 "k['hosts']['spi_in']")" != "$hosts0"
check "... net kept its own" test "$(kids g1 "k['net']['spi_in']")" = "$net0"
check "... and the ends agree" same_spis hosts
check "... traffic through hosts" ping_hosts
check "g2 rekeys gw/net" tb_ctl g2 rekey gw/net
net_new() { test "$(kids g1 "k['net']['spi_in']")" != "$net0" && same_spis net; }
check "... net has new SPIs on both ends" tb_wait 5 net_new
check "... four ESP SAs on each end" tb_wait 5 test "$(n_esp g1) $(n_esp g2)" = "4 4"
check "terminate gw/hosts is accepted" tb_ctl g1 terminate gw/hosts
check "... hosts is gone from both ends" tb_wait 5 test "$(kids g1 "sorted(k)") $(kids g2 "sorted(k)")" = "['net'] ['net']"
check "... two ESP SAs left on each end" tb_wait 5 test "$(n_esp g1) $(n_esp g2)" = "2 2"
check "... the IKE SA and net stay: ping through net" ping_ok h1 10.2.0.2
no_hosts() { ! ping_hosts 1; }
check "... nothing passes for hosts" no_hosts
check "initiate gw/hosts brings it back" tb_ctl g1 initiate gw/hosts
check "... on the same IKE SA" tb_wait 5 both_up g1
check "... which is still the one ($(ike_sa g1 "s['spi_i']"))" test "$(ike_sa g1 "s['spi_i']") $(n_ike g1)" = "$ike0 1"
check "... traffic through hosts" ping_hosts

echo "== both ends rekey net at the same moment (RFC 7296 2.8.1), three times"
for i in 1 2 3; do
    tb_ctl g1 rekey gw/net >/dev/null & a=$!
    tb_ctl g2 rekey gw/net >/dev/null & b=$!
    wait "$a" "$b"
    sleep 0.3
done
coll=$(grep -c "both ends rekeyed at once" "$TB_DIR/g1.log")
check "every rekey completed: four ESP SAs on each end, the same net SPIs on both ($coll collisions seen on g1)" \
    tb_wait 5 settled
check "traffic through net" ping_ok h1 10.2.0.2
check "traffic through hosts" ping_hosts
echo "== both ends rekey the IKE SA at the same moment (RFC 7296 2.8.2), three times"
for i in 1 2 3; do
    tb_ctl g1 rekey-ike gw >/dev/null & a=$!
    tb_ctl g2 rekey-ike gw >/dev/null & b=$!
    wait "$a" "$b"
    sleep 0.3
done
coll=$(grep -c "rekeyed the IKE SA at once" "$TB_DIR/g1.log")
ike_same() { test "$(n_ike g1) $(n_ike g2)" = "1 1" && test "$(ike_sa g1 "s['spi_i'] + s['spi_r']")" = "$(ike_sa g2 "s['spi_i'] + s['spi_r']")"; }
check "one IKE SA on each end, the same on both ($coll collisions seen on g1)" tb_wait 5 ike_same
check "... it was rekeyed ($(ike_sa g1 "s['ike_rekeys']") rekeys on g1)" test "$(ike_sa g1 "s['ike_rekeys']")" -ge 3
check "... the children stayed" settled
check "... a Child SA rekey over it" tb_ctl g2 rekey gw/hosts
check "traffic through net" ping_ok h1 10.2.0.2
check "traffic through hosts" ping_hosts
check "terminate deletes the IKE SA with both children" tb_ctl g1 terminate gw
check "... on both ends" tb_wait 5 test "$(n_ike g1) $(n_ike g2) $(n_esp g1) $(n_esp g2)" = "0 0 0 0"

echo "== start_action = trap on both children: the second's first packet uses the existing IKE SA"
tb_stop g1; tb_stop g2
children_conf g2 "$TB_DIR/g2.conf" none && children_conf g1 "$TB_DIR/g1.conf" trap &&
    tb_start g2 "$TB_DIR/g2.conf" && tb_start g1 "$TB_DIR/g1.conf" || die "gateways did not start"
tb_nsx h1 ping -c 1 -W 1 -q 10.2.0.2 >/dev/null 2>&1
check "traffic for net brought up the IKE SA with net" ike_up g1 5
check "... only net" test "$(kids g1 "sorted(k)")" = "['net']"
tb_nsx h1 ping -c 1 -W 1 -q 10.12.0.2 >/dev/null 2>&1
check "traffic for hosts brought up hosts" tb_wait 5 both_up g1
check "... with CREATE_CHILD_SA on the same IKE SA (one IKE SA on each end)" test "$(n_ike g1) $(n_ike g2)" = "1 1"
check "ping through hosts" ping_hosts

echo "== a reload that adds a child with start_action = start: it comes up on the IKE SA in place"
tb_stop g1; tb_stop g2
children_conf g2 "$TB_DIR/g2.conf" none && START=start ike_conf g1 "$TB_DIR/g1.conf" &&
    tb_start g2 "$TB_DIR/g2.conf" && tb_start g1 "$TB_DIR/g1.conf" || die "gateways did not start"
check "net alone comes up" ike_up g1 5
check "... only net" test "$(kids g1 "sorted(k)")" = "['net']"
ike0=$(ike_sa g1 "s['spi_i']"); net0=$(kids g1 "k['net']['spi_in']")
children_conf g1 "$TB_DIR/g1.conf" start
check "the reload with hosts added is accepted" tb_ctl g1 load
check "... hosts comes up" tb_wait 5 both_up g1
check "... on the same IKE SA, net untouched" test "$(ike_sa g1 "s['spi_i']") $(kids g1 "k['net']['spi_in']") $(n_ike g1)" = "$ike0 $net0 1"
check "... ping through hosts" ping_hosts
tb_stop g1; tb_stop g2

# ss_children GW: charon in GW with connection gw and the children net and hosts.
ss_children() {
    local gw=$1 d="$TB_DIR/ss-$1" la=172.16.0.1 ra=172.16.0.2 n1=10.1.0.0/24 n2=10.2.0.0/24 h1n=10.11.0.0/24 h2n=10.12.0.0/24
    [ "$gw" = g2 ] && { la=172.16.0.2 ra=172.16.0.1 n1=10.2.0.0/24 n2=10.1.0.0/24 h1n=10.12.0.0/24 h2n=10.11.0.0/24; }
    ss_charon "$gw" "$d" || return 1
    cat >"$d/swanctl.conf" <<CONF
connections {
  gw {
    version = 2
    encap = yes
    local_addrs = $la
    remote_addrs = $ra
    proposals = aes128-sha256-ecp256
    local {
      auth = psk
      id = $la
    }
    remote {
      auth = psk
      id = $ra
    }
    children {
      net {
        local_ts = $n1
        remote_ts = $n2
        esp_proposals = aes128gcm16
      }
      hosts {
        local_ts = $h1n
        remote_ts = $h2n
        esp_proposals = aes128gcm16
      }
    }
  }
}
secrets {
  ike-gw {
    id-1 = 172.16.0.1
    id-2 = 172.16.0.2
    secret = "baton-bench-only-psk"
  }
}
CONF
    tb_nsx "$gw" swanctl --load-all --file "$d/swanctl.conf" --uri "unix://$d/charon.vici" >"$d/load.log" 2>&1
}
ss_installed() { tb_nsx "$1" swanctl --list-sas --uri "unix://$TB_DIR/ss-$1/charon.vici" | grep -c INSTALLED; }
ss_ikes() { tb_nsx "$1" swanctl --list-sas --uri "unix://$TB_DIR/ss-$1/charon.vici" | grep -c ESTABLISHED; }

echo "== baton (initiator, start_action = start) -> strongSwan 5.9.8 (responder), two children"
IKE_PROPOSALS=aes128-sha256-ecp256 PSK=baton-bench-only-psk children_conf g1 "$TB_DIR/g1.conf" start
if ss_children g2 && tb_start g1 "$TB_DIR/g1.conf"; then
    check "both children up in baton" tb_wait 10 both_up g1
    check "charon has one IKE SA with two installed Child SAs" tb_wait 5 test "$(ss_ikes g2) $(ss_installed g2)" = "1 2"
    check "ping through net (baton ESP -> kernel-libipsec)" tb_wait 5 ping_ok h1 10.2.0.2 1
    check "ping through hosts" ping_hosts
    check "each through its own Child SA (baton in: net $(in_packets g1 gw/net), hosts $(in_packets g1 gw/hosts))" \
        test "$(in_packets g1 gw/net)" -ge 1 -a "$(in_packets g1 gw/hosts)" -ge 3
    hosts0=$(kids g1 "k['hosts']['spi_in']")
    tb_nsx g2 swanctl --rekey --child hosts --uri "unix://$TB_DIR/ss-g2/charon.vici" >/dev/null 2>&1
    check "charon rekeys hosts: new SPIs in baton" tb_wait 5 test "$(kids g1 "k['hosts']['spi_in']")" != "$hosts0"
    check "... traffic through hosts" ping_hosts
    check "baton rekeys net" tb_ctl g1 rekey gw/net
    check "... charon still has exactly two Child SAs" tb_wait 5 test "$(ss_installed g2)" = 2
    check "... traffic through net" ping_ok h1 10.2.0.2
    check "baton terminates hosts" tb_ctl g1 terminate gw/hosts
    check "... charon drops it too" tb_wait 5 test "$(ss_installed g2) $(ss_ikes g2)" = "1 1"
    check "... net still carries traffic" ping_ok h1 10.2.0.2
else
    bad "strongSwan or baton did not start"
fi
for p in "${PEER_PIDS[@]:-}"; do [ -n "$p" ] && tb_kill "$p"; done; PEER_PIDS=()
tb_stop g1

echo "== strongSwan 5.9.8 (initiator) -> baton (responder), two children"
IKE_PROPOSALS=aes128-sha256-ecp256 PSK=baton-bench-only-psk children_conf g2 "$TB_DIR/g2.conf" none
if tb_start g2 "$TB_DIR/g2.conf" && ss_children g1; then
    check "swanctl --initiate --child net" tb_nsx g1 swanctl --initiate --child net --timeout 20 --uri "unix://$TB_DIR/ss-g1/charon.vici"
    check "swanctl --initiate --child hosts" tb_nsx g1 swanctl --initiate --child hosts --timeout 20 --uri "unix://$TB_DIR/ss-g1/charon.vici"
    check "baton: one IKE SA (responder) with both children" tb_wait 5 both_one g2
    check "... picked per the selectors charon asked for" test "$(kids g2 "k['hosts']['remote_ts'] + k['net']['remote_ts']")" = "['10.11.0.0/24', '10.1.0.0/24']"
    check "ping through net (kernel-libipsec -> baton)" tb_wait 5 ping_ok h1 10.2.0.2 1
    check "ping through hosts" ping_hosts
    check "each through its own Child SA (baton in: net $(in_packets g2 gw/net), hosts $(in_packets g2 gw/hosts))" \
        test "$(in_packets g2 gw/net)" -ge 1 -a "$(in_packets g2 gw/hosts)" -ge 3
    check "512 KiB h1 -> h2 over TCP through hosts" xfer h1 10.12.0.2 524288
    check "baton rekeys hosts" tb_ctl g2 rekey gw/hosts
    check "... charon still has exactly two Child SAs" tb_wait 5 test "$(ss_installed g1)" = 2
    check "... traffic through hosts" ping_hosts
    check "charon terminates net" tb_nsx g1 swanctl --terminate --child net --timeout 10 --uri "unix://$TB_DIR/ss-g1/charon.vici"
    check "... baton drops net, keeps hosts" tb_wait 5 test "$(kids g2 "sorted(k)")" = "['hosts']"
    check "... traffic through hosts" ping_hosts
else
    bad "strongSwan or baton did not start"
fi
finish
