# ike_lib.sh — IKE configurations for the integration tests, sourced after scripts/testbed.sh:
# batond with an IKE connection (ike_conf), and strongSwan 5.9.8's charon with kernel-libipsec in a
# gateway namespace (ss_gw_start / ss_gw_stop), both for the bed h1 — g1 ==== g2 — h2.

# ike_conf GW FILE: g1 and g2 of the bed, PSK, one child 10.1.0.0/24 <-> 10.2.0.0/24.
# Knobs: IKE_PROPOSALS, ESP_PROPOSALS, START (none|trap|start), DPD (seconds), DPD_ACTION,
# IKE_RTX (first retransmission, seconds), IKE_TRIES, PSK, IKE_REMOTE_ADDRS, IKE_LOCAL_ID, IKE_REMOTE_ID,
# IKE_ENCAP, IKE_LOG, IKE_LOCAL_ADDRS (the ID stays the bed's outer address), IKE_BATON_EXTRA (lines for
# baton {}).
ike_conf() {
    local gw=$1 file=$2 la=172.16.0.1 ra=172.16.0.2 lts=10.1.0.0/24 rts=10.2.0.0/24 t
    if [ "$gw" = g2 ]; then t=$la; la=$ra; ra=$t; t=$lts; lts=$rts; rts=$t; fi
    local start=${START:-none}
    [ "$gw" = g2 ] && start=${START_G2:-none}
    cat >"$file" <<CONF
baton {
    tun = bt0
    log_level = ${IKE_LOG:-debug}
    retransmit_timeout = ${IKE_RTX:-0.5}
    retransmit_tries = ${IKE_TRIES:-3}
    socket = $TB_DIR/$gw.sock
${IKE_BATON_EXTRA:-}
}
connections {
    gw {
        local_addrs = ${IKE_LOCAL_ADDRS:-$la}
        remote_addrs = ${IKE_REMOTE_ADDRS:-$ra}
        encap = ${IKE_ENCAP:-yes}
        proposals = ${IKE_PROPOSALS:-aes128gcm16-prfsha256-x25519}
        dpd_delay = ${DPD:-0}
${IKE_CONN_EXTRA:-}
        local {
            auth = psk
            id = ${IKE_LOCAL_ID:-$la}
        }
        remote {
            auth = psk
            id = ${IKE_REMOTE_ID:-$ra}
        }
        children {
            net {
                local_ts = $lts
                remote_ts = $rts
                esp_proposals = ${ESP_PROPOSALS:-aes128gcm16}
                start_action = $start
                dpd_action = ${DPD_ACTION:-clear}
${IKE_CHILD_EXTRA:-}
            }
        }
    }
}
secrets {
    ike-gw {
        id = 172.16.0.1
        id-2 = 172.16.0.2
        secret = "${PSK:-baton-test-psk-0123456789}"
    }
}
CONF
}

# ike_sa GW EXPR: EXPR over the first IKE SA of GW's list-sas (as s), e.g. "s['state']".
ike_sa() {
    tb_ctl "$1" --json list-sas | python3 -c "
import json, sys
a = json.load(sys.stdin).get('ike_sas', [])
s = a[0] if a else {}
print($2)"
}

# ike_up GW [SECONDS]: wait until GW has an established IKE SA with a Child SA.
ike_up() {
    local end=$((SECONDS + ${2:-10}))
    until [ "$(ike_sa "$1" "s.get('state') == 'established' and 'child_sa' in s" 2>/dev/null)" = True ]; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.05
    done
}

# sa_count GW: IKE SAs + ESP SAs GW lists.
sa_count() {
    tb_ctl "$1" --json list-sas | python3 -c "import json,sys; r=json.load(sys.stdin); print(len(r['ike_sas']) + len(r['sas']))"
}
