#!/usr/bin/env bash
# gw_update_client.sh — does a MOBIKE client (the original initiator: strongSwan's charon or
# batond) follow a gateway's UPDATE_SA_ADDRESSES sent from a new address (a Multi-LAN transfer)?
# The gateway is the engine itself (gw_update_peer.c): it answers the client at 10.77.0.1, then
# sends ike_mobike_gw_update from 10.77.0.3. Checks: the client answers, its IKE SA now ends at
# 10.77.0.3; charon: a Child SA is installed (kernel-libipsec cannot change an SA's addresses, so
# charon rekeys it with the new gateway: new SPIs); batond: the same SPIs, the move counted.
# Root. Namespaces bt-gw-upd-ID-{c,g}, removed on every exit (scripts/testbed.sh's cleanup);
# TB_KEEP=1 keeps the work folder of a failed run.
#   tests/interop/gw_update_client.sh BUILD_DIR [ss|baton]   (BUILD_DIR: a built tree, e.g. build/dev;
#                                                           the client: charon (default) or batond)
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: gw_update_client.sh BUILD_DIR [ss|baton]}" && pwd)
kind=${2:-ss}
. "$src/scripts/testbed.sh"
. "$src/bench/peers.sh"
set -uo pipefail
case $kind in ss|baton) ;; *) echo "gw_update_client.sh: the client is ss or baton" >&2; exit 2 ;; esac
tb_init gw-upd nobins
TB_NODES="c g"
fail() { echo "FAIL $*"; exit 1; }

cc -std=gnu11 -O1 -g -I"$src/src" "$src/tests/interop/gw_update_peer.c" "$build/libbt_ike.a" "$build/libbt_policy.a" \
    "$build/libbt_esp.a" "$build/libbt_util.a" -lcrypto -lpthread -o "$TB_DIR/gw_update_peer" || fail "build"

read -r va vb _ <<<"$(tb_veths)"
for n in c g; do ip netns add "$(tb_ns $n)" && tb_nsx $n ip link set lo up || fail "netns"; done
ip link add "$va" type veth peer name "$vb" || fail "veth"
ip link set "$va" netns "$(tb_ns c)" && ip link set "$vb" netns "$(tb_ns g)"
tb_nsx c ip addr add 10.77.0.2/24 dev "$va"
tb_nsx c ip addr add 10.1.0.1/32 dev lo # the tunnel's inner address: charon routes 10.2.0.0/24 from it
tb_nsx g ip addr add 10.77.0.1/24 dev "$vb"
tb_nsx g ip addr add 10.77.0.3/24 dev "$vb"
tb_nsx c ip link set "$va" up && tb_nsx g ip link set "$vb" up

# The client's connection, in the syntax swanctl.conf and batond's configuration share. $1: a line
# only swanctl wants, $2: how each names the first ID of a secret.
conn_conf() {
    cat <<CONF
connections {
    gw {
$1
        encap = yes
        mobike = yes
        local_addrs = 10.77.0.2
        remote_addrs = 10.77.0.1
        proposals = aes128gcm16-prfsha256-x25519
        local {
            auth = psk
            id = 10.77.0.2
        }
        remote {
            auth = psk
            id = 10.77.0.1
        }
        children {
            net {
                local_ts = 10.1.0.1/32
                remote_ts = 10.2.0.0/24
                esp_proposals = aes128gcm16
            }
        }
    }
}
secrets {
    ike {
        $2 = 10.77.0.2
        id-2 = 10.77.0.1
        secret = "gw-update-interop"
    }
}
CONF
}

# --- strongSwan's charon (kernel-libipsec, encap = yes) as the client
ss() { tb_nsx c swanctl "$@" --uri "unix://$TB_DIR/ss/charon.vici" 2>&1 | grep -v "^plugin"; }
ss_start() {
    SS_LOG_EXTRA="ike = 2" ss_charon c "$TB_DIR/ss" || fail "charon did not start"
    CLIENT_LOG=$TB_DIR/ss/charon.log
    conn_conf "        version = 2" id-1 >"$TB_DIR/swanctl.conf"
    ss --load-all --file "$TB_DIR/swanctl.conf" >"$TB_DIR/load.log" || fail "swanctl --load-all"
}
ss_initiate() { ss --initiate --child net --timeout 15 >"$TB_DIR/initiate.log"; }
ss_list() { ss --list-sas; }
spis() { grep -oE "(in|out) +[0-9a-f]{8}" "$1" | awk '{print $2}' | tr '\n' ' '; }
ss_check() {
    grep -q "remote .* @ 10.77.0.3\[4500\]" "$TB_DIR/after.txt" || fail "charon's IKE SA does not end at 10.77.0.3"
    grep -q "INSTALLED" "$TB_DIR/after.txt" || fail "charon has no installed Child SA after the move"
    echo "PASS: charon followed the gateway to 10.77.0.3; Child SA SPIs $(spis "$TB_DIR/before.txt")-> $(spis "$TB_DIR/after.txt")"
}

# --- batond as the client
bt() { tb_nsx c timeout 10 "$build/batonctl" -s "$TB_DIR/c.sock" "$@"; }
baton_start() {
    { printf 'baton {\n    tun = bt0\n    log_level = debug\n    retransmit_timeout = 0.5\n}\n'; conn_conf "" id; } >"$TB_DIR/c.conf"
    CLIENT_LOG=$TB_DIR/c.log
    tb_bg c "$build/batond" -c "$TB_DIR/c.conf" -s "$TB_DIR/c.sock" >"$CLIENT_LOG" 2>&1 </dev/null
    tb_wait 10 test -S "$TB_DIR/c.sock" || fail "batond did not start"
}
baton_initiate() {
    bt initiate gw/net >"$TB_DIR/initiate.log" 2>&1 || return 1
    for _ in $(seq 50); do [ -n "$(baton_list | grep '"state": "established"')" ] && return 0; sleep 0.2; done
    return 1
}
# the IKE SA, then one line per ESP SA: direction, SPI, the peer's outer address
baton_list() { bt --json list-sas | python3 -c "
import json, sys
j = json.load(sys.stdin)
for s in j.get('ike_sas', []):
    print(json.dumps({k: s.get(k) for k in ('state', 'local', 'local_port', 'remote', 'remote_port', 'spi_i', 'spi_r')}))
for s in j.get('sas', []):
    print(s.get('dir'), s.get('spi'), s.get('remote'))"; }
baton_check() {
    local after=$TB_DIR/after.txt moves
    grep -q '"remote": "10.77.0.3", "remote_port": 4500' "$after" || fail "batond's IKE SA does not end at 10.77.0.3:4500"
    [ -n "$(grep -E '^(in|out) ' "$after")" ] && [ -z "$(grep -E '^(in|out) ' "$after" | grep -v ' 10.77.0.3$')" ] ||
        fail "batond's ESP SAs are not all bound to 10.77.0.3"
    [ "$(grep -E '^(in|out) ' "$TB_DIR/before.txt" | cut -d' ' -f1-2)" = "$(grep -E '^(in|out) ' "$after" | cut -d' ' -f1-2)" ] ||
        fail "the ESP SAs' SPIs changed"
    moves=$(bt --json stats | python3 -c "import json, sys; print(json.load(sys.stdin)['stats']['ike']['mobike_gateway_moves'])")
    [ "$moves" = 1 ] || fail "mobike_gateway_moves is $moves, not 1"
    echo "PASS: batond followed the gateway to 10.77.0.3 (mobike_gateway_moves 1, same SPIs)"
}

${kind}_start
tb_bg g "$TB_DIR/gw_update_peer" 10.77.0.1 10.77.0.3 10.77.0.2 gw-update-interop >"$TB_DIR/peer.log" 2>&1
peer=${TB_PIDS[-1]}
sleep 0.5
${kind}_initiate || { cat "$TB_DIR/peer.log"; fail "initiate"; }
${kind}_list >"$TB_DIR/before.txt" 2>&1
wait "$peer"
rc=$?
cat "$TB_DIR/peer.log"
${kind}_list >"$TB_DIR/after.txt" 2>&1
echo "--- the client's SAs before:"; head -8 "$TB_DIR/before.txt"
echo "--- after:"; head -8 "$TB_DIR/after.txt"
echo "--- the client's log on the update:"
grep -iE "N\(UPD|endpoint changed|gateway moved|rebind|INFORMATIONAL|received packet: from 10.77.0.3" "$CLIENT_LOG" |
    tail -n 10 | sed 's/^/  | /'
[ $rc = 0 ] || fail "the gateway's update was not answered"
${kind}_check
