#!/usr/bin/env bash
# Two-node RabbitMQ 3.10 (Debian 12 package) cluster with the MQTT plugin, on loopback only,
# for tests.  Runs the Erlang VM directly (no /usr/sbin/rabbitmq-server wrapper, which would
# `su rabbitmq` and use /var/lib/rabbitmq), so it works the same as root or as any user.
#
#   cluster.sh start   DIR      start node 1 and node 2 in parallel, node 2 joins node 1, wait
#                               until both MQTT ports accept and both nodes run clustered;
#                               writes DIR/ports.env
#   cluster.sh kill    DIR N    SIGKILL node N's beam (a crash)
#   cluster.sh restart DIR N    start node N again (same data dir); it rejoins by itself; waits
#   cluster.sh stop    DIR      stop both nodes (SIGTERM, then SIGKILL after a timeout) and epmd
#   cluster.sh ctl     DIR N ARGS...   run `rabbitmqctl -n NODE_N ARGS...` against node N
#   cluster.sh rpc     DIR N 'mod fun [args]'  evaluate an Erlang call on node N (erl_call)
#   cluster.sh status  DIR      print ports.env and which pids are alive
#
# Environment knobs: R2F_RMQ_TIMEOUT (s, default 60) for each wait; R2F_RMQ_SCHEDULERS (e.g. "1"
# to give each VM one scheduler thread; default: Erlang's default = number of cores);
# R2F_RMQ_EXTRA_CONF (extra rabbitmq.conf lines for both nodes, read at start);
# R2F_RMQ_STOP_TIMEOUT (s, default 5: SIGTERM grace before SIGKILL in stop);
# R2F_RMQ_NO_RA_KICK=1 (restart: do not start the MQTT Ra server by hand, see wait_ready);
# R2F_RMQ_START_TRIES (default 3: a start whose node dies or does not get ready is retried with
# fresh ports and data dirs; the failed try's logs stay in DIR/failed-K/).
set -euo pipefail

RMQ_HOME=${RMQ_HOME:-$(ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-3.* 2>/dev/null | sort -V | tail -1)}
RMQCTL_BIN="$RMQ_HOME/sbin/rabbitmqctl"   # the real script, not the Debian su wrapper
ERL_CALL=$(ls /usr/lib/erlang/erts-*/bin/erl_call 2>/dev/null | sort -V | tail -1)
TIMEOUT=${R2F_RMQ_TIMEOUT:-60}
# The only applications a node with just rabbitmq_mqtt needs.  Pointing ERL_LIBS and
# RABBITMQ_PLUGINS_DIR at a directory holding only these cuts boot time roughly in half
# (fewer cuttlefish schemas, fewer modules scanned for feature flags and boot steps).
APPS="rabbitmq_mqtt amqp_client rabbit rabbit_common rabbitmq_prelaunch amqp10_common osiris
      observer_cli stdout_formatter sysmon_handler ra seshat gen_batch_server aten ranch systemd
      enough cuttlefish credentials_obfuscation recon jsx syslog"

die() { echo "cluster.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

USED_PORTS=" "
free_port() {   # sets PORT to a random port in 20000..31999 (below the ephemeral range) not in use
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 12000))
        [[ "$USED_PORTS" == *" $p "* ]] && continue
        if [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]; then
            USED_PORTS+="$p "; PORT=$p; return 0
        fi
    done
    die "no free port found"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

load_env() {
    [ -f "$DIR/ports.env" ] || die "$DIR/ports.env missing (cluster not started?)"
    # shellcheck disable=SC1091
    . "$DIR/ports.env"
}

ctl() {   # ctl N args...
    local n=$1; shift
    local node; eval "node=\$NODE$n"
    HOME="$DIR" ERL_EPMD_PORT="$EPMD" RABBITMQ_CTL_DIST_PORT_MIN=0 RABBITMQ_CTL_DIST_PORT_MAX=0 \
        RABBITMQ_CONF_ENV_FILE=/dev/null "$RMQCTL_BIN" -n "$node" "$@"
}

write_conf() {   # write_conf N  (node 2 is told to discover node 1 through classic_config)
    local n=$1 d="$DIR/node$1"
    local amqp mqtt; eval "amqp=\$AMQP$n; mqtt=\$MQTT$n"
    mkdir -p "$d/mnesia" "$d/log"
    cat > "$d/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$amqp
mqtt.listeners.tcp.default = 127.0.0.1:$mqtt
mqtt.allow_anonymous = true
mqtt.vhost = /
mqtt.exchange = amq.topic
log.console = false
log.file.level = info
EOF
    # extra rabbitmq.conf lines for both nodes, e.g. "max_message_size = 268435456"
    if [ -n "${R2F_RMQ_EXTRA_CONF:-}" ]; then printf "%s\n" "$R2F_RMQ_EXTRA_CONF" >> "$d/rabbitmq.conf"; fi
    if [ "$n" = 2 ]; then
        cat >> "$d/rabbitmq.conf" <<EOF
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = $NODE1
cluster_formation.discovery_retry_limit = 120
cluster_formation.discovery_retry_interval = 250
EOF
    fi
    echo '[rabbitmq_mqtt].' > "$d/enabled_plugins"
}

launch() {   # launch N : start node N's VM in the background, record its pid
    local n=$1 d="$DIR/node$1"
    local node dist; eval "node=\$NODE$n; dist=\$DIST$n"
    local sched=()
    [ -n "${R2F_RMQ_SCHEDULERS:-}" ] && sched=(+S "$R2F_RMQ_SCHEDULERS:$R2F_RMQ_SCHEDULERS")
    # Same VM flags as $RMQ_HOME/sbin/rabbitmq-server, plus loopback-only distribution and no
    # auto-started epmd (we run our own on $EPMD).  `erl` execs erlexec which execs beam.smp,
    # so $! is the beam pid.
    ( cd "$d" && exec setsid env \
        HOME="$DIR" RABBITMQ_HOME="$RMQ_HOME" RABBITMQ_CONF_ENV_FILE=/dev/null \
        ERL_LIBS="$DIR/plugins" RABBITMQ_PLUGINS_DIR="$DIR/plugins" \
        RABBITMQ_NODENAME="$node" RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" \
        RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
        RABBITMQ_CONFIG_FILES="$d/conf.d" RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" \
        RABBITMQ_DIST_PORT="$dist" ERL_EPMD_PORT="$EPMD" \
        erl -noinput -s rabbit boot -boot start_sasl +W w \
            +MBas ageffcbf +MHas ageffcbf +MBlmbcs 512 +MHlmbcs 512 +MMmcs 30 \
            +P 1048576 +t 5000000 +stbt db +zdbbl 128000 +sbwt none +sbwtdcpu none +sbwtdio none \
            "${sched[@]}" +B i -start_epmd false \
            -kernel inet_dist_use_interface '{127,0,0,1}' \
            -syslog logger '[]' -syslog syslog_error_logger false \
            -kernel prevent_overlapping_partitions false \
        > "$d/stdout.log" 2>&1 < /dev/null ) &
    echo $! > "$d/pid"
}

alive() { local p; p=$(cat "$DIR/node$1/pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }

wait_mqtt() {   # wait_mqtt N T0
    local n=$1 t0=$2 port; eval "port=\$MQTT$n"
    while ! port_open "$port"; do
        alive "$n" || die "node $n died while starting; see $DIR/node$n/log and stdout.log"
        awk -v a="$t0" -v b="$(now)" -v t="$TIMEOUT" 'BEGIN{exit !(b-a>t)}' \
            && die "node $n: MQTT port $port not open after ${TIMEOUT}s"
        sleep 0.1
    done
}

rpc() {   # rpc N 'module function [args]' : evaluate on node N through erl_call (~20 ms)
    local n=$1; shift
    local node; eval "node=\$NODE$n"
    HOME="$DIR" ERL_EPMD_PORT="$EPMD" "$ERL_CALL" -n "$node" -a "$*" 2>/dev/null
}

timed_out() { awk -v a="$1" -v b="$(now)" -v t="$TIMEOUT" 'BEGIN{exit !(b-a>t)}'; }

# Ready = both nodes see both nodes running (rabbit_nodes:all_running) and, on both, the MQTT
# client-id tracker (a 2-member Raft cluster "mqtt_node") has a leader.  Without a leader the
# MQTT port accepts TCP but CONNECT does not complete.  A fresh pair often loses its first
# election (node 1 asks for votes before node 2's Ra server exists) and Ra retries only after
# ~5 s; we trigger the election ourselves as soon as both Ra servers are up.
wait_ready() {   # wait_ready T0 [KICK_NODE]
    local t0=$1 kick=${2:-} last_trigger=0 last_kick=0 clustered_at=0
    while :; do
        local ok=1 cl=1 n r
        for n in 1 2; do
            r=$(rpc "$n" 'rabbit_nodes all_running []') || r=""
            [[ "$r" == *"$NODE1"* && "$r" == *"$NODE2"* ]] || { ok=0; cl=0; }
            r=$(rpc "$n" 'ra_leaderboard lookup_leader [mqtt_node]') || r=""
            [[ "$r" == *"{mqtt_node"* ]] || ok=0
        done
        [ $ok = 1 ] && return 0
        for n in 1 2; do alive "$n" || { echo "cluster.sh: node $n is not running; see $DIR/node$n/log" >&2; return 1; }; done
        local w1 w2
        w1=$(rpc 1 'erlang whereis [mqtt_node]') || w1=""
        w2=$(rpc 2 'erlang whereis [mqtt_node]') || w2=""
        if [[ "$w1" == "<"* && "$w2" == "<"* ]] && [ $((SECONDS - last_trigger)) -ge 2 ]; then
            if [ $last_trigger = 0 ]; then last_trigger=$SECONDS   # give Ra a moment first
            else rpc 1 "ra trigger_election [{mqtt_node, '$NODE1'}]" >/dev/null || true; last_trigger=$SECONDS; fi
        fi
        # Restart of the node that was the Ra leader: its MQTT plugin blocks in ra:members()
        # (100 s timeout) asking the surviving follower, which cannot elect a leader without
        # this node's Ra server, which the plugin starts only after that call.  Start the
        # restarted node's Ra server ourselves to break the loop (set R2F_RMQ_NO_RA_KICK=1 to
        # see RabbitMQ's own behaviour: MQTT listener of the restarted node up after ~100 s).
        if [ -n "$kick" ] && [ -z "${R2F_RMQ_NO_RA_KICK:-}" ] && [ $cl = 1 ]; then
            [ $clustered_at = 0 ] && clustered_at=$SECONDS
            local wk; eval "wk=\$w$kick"
            local nk; eval "nk=\$NODE$kick"
            if [[ "$wk" != "<"* ]] && [ $((SECONDS - last_kick)) -ge 2 ]; then
                echo "cluster.sh: starting the mqtt_node Ra server of node $kick by hand" >&2
                rpc "$kick" "ra restart_server [coordination, {mqtt_node, '$nk'}]" >/dev/null || true
                last_kick=$SECONDS
            fi
        fi
        timed_out "$t0" && return 1
        sleep 0.1
    done
}

start_attempt() {   # one try: fresh ports, names, data dirs; returns 1 on failure (all stopped)
    local t0=$1 tag="r2f$$x$RANDOM"
    USED_PORTS=" "
    free_port; EPMD=$PORT
    free_port; AMQP1=$PORT; free_port; MQTT1=$PORT; free_port; DIST1=$PORT
    free_port; AMQP2=$PORT; free_port; MQTT2=$PORT; free_port; DIST2=$PORT
    NODE1="${tag}a@localhost"; NODE2="${tag}b@localhost"
    cat > "$DIR/ports.env" <<EOF
DIR=$DIR
EPMD=$EPMD
NODE1=$NODE1
NODE2=$NODE2
AMQP1=$AMQP1
AMQP2=$AMQP2
MQTT1=$MQTT1
MQTT2=$MQTT2
DIST1=$DIST1
DIST2=$DIST2
EOF
    write_conf 1; write_conf 2
    # our own epmd, loopback only (it also always binds ::1)
    ( exec setsid epmd -port "$EPMD" -address 127.0.0.1 > "$DIR/epmd.log" 2>&1 < /dev/null ) &
    echo $! > "$DIR/epmd.pid"
    local i
    for i in $(seq 1 50); do port_open "$EPMD" && break; sleep 0.05; done
    port_open "$EPMD" || { echo "cluster.sh: epmd did not start on $EPMD" >&2; cmd_stop; return 1; }
    # both nodes in parallel: node 2 joins node 1 during its boot (classic_config discovery,
    # retried until node 1 answers), before its MQTT plugin starts.
    launch 1; launch 2
    if ! ( wait_ready "$t0" && wait_mqtt 1 "$t0" && wait_mqtt 2 "$t0" ); then
        cmd_stop; return 1
    fi
}

cmd_start() {
    [ -e "$DIR/ports.env" ] && die "$DIR/ports.env exists: stop the cluster and remove DIR first"
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    local t0; t0=$(now)
    umask 077
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/.erlang.cookie"
    chmod 400 "$DIR/.erlang.cookie"
    umask 022
    mkdir -p "$DIR/plugins"
    local a src
    for a in $APPS; do
        src=$(ls -d "$RMQ_HOME/plugins/$a"-* 2>/dev/null | head -1)
        [ -n "$src" ] || die "application $a not found under $RMQ_HOME/plugins"
        ln -sfn "$src" "$DIR/plugins/"
    done
    # Up to R2F_RMQ_START_TRIES tries (default 3); a failed try's node dirs (logs) are kept as
    # DIR/failed-K/.
    local try tries=${R2F_RMQ_START_TRIES:-3}
    for try in $(seq 1 "$tries"); do
        if start_attempt "$(now)"; then
            local note=""; [ "$try" -gt 1 ] && note=" (try $try)"
            echo "cluster.sh: started $NODE1 (mqtt $MQTT1) + $NODE2 (mqtt $MQTT2) in $(elapsed "$t0") s$note"
            return 0
        fi
        mkdir -p "$DIR/failed-$try"
        mv "$DIR/node1" "$DIR/node2" "$DIR/ports.env" "$DIR/epmd.log" "$DIR/failed-$try/" 2>/dev/null || true
        echo "cluster.sh: start try $try failed; logs in $DIR/failed-$try" >&2
    done
    die "start failed $tries times (see $DIR/failed-*)"
}

cmd_kill() {
    load_env
    local p; p=$(cat "$DIR/node$N/pid" 2>/dev/null) || die "no pid for node $N"
    kill -KILL "$p" 2>/dev/null || true
    while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
    echo "cluster.sh: node $N ($p) killed"
}

cmd_restart() {
    load_env
    alive "$N" && die "node $N is still running"
    local t0; t0=$(now)
    launch "$N"
    ( wait_ready "$t0" "$N" && wait_mqtt "$N" "$t0" ) || die "node $N did not rejoin the cluster / MQTT leader in ${TIMEOUT}s"
    echo "cluster.sh: node $N restarted and clustered in $(elapsed "$t0") s"
}

cmd_stop() {
    [ -f "$DIR/ports.env" ] && . "$DIR/ports.env"
    local pids="" n p
    for n in 1 2; do
        p=$(cat "$DIR/node$n/pid" 2>/dev/null) || continue
        kill -0 "$p" 2>/dev/null && { kill -TERM "$p" 2>/dev/null || true; pids+=" $p"; }
    done
    local deadline=$((SECONDS + ${R2F_RMQ_STOP_TIMEOUT:-5}))
    for p in $pids; do
        while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    p=$(cat "$DIR/epmd.pid" 2>/dev/null) && { kill -TERM "$p" 2>/dev/null || true; }
    rm -f "$DIR/node1/pid" "$DIR/node2/pid" "$DIR/epmd.pid"
    return 0
}

cmd_status() {
    load_env; cat "$DIR/ports.env"
    local n
    for n in 1 2; do
        if alive "$n"; then echo "node $n: running (pid $(cat "$DIR/node$n/pid"))"; else echo "node $n: down"; fi
    done
}

[ $# -ge 2 ] || { awk 'NR>1 && /^#/{sub(/^# ?/,"");print;next} NR>1{exit}' "$0"; exit 2; }
CMD=$1; DIR=$2; shift 2
case "$CMD" in
    start)   cmd_start ;;
    kill)    N=${1:?node number}; cmd_kill ;;
    restart) N=${1:?node number}; cmd_restart ;;
    stop)    cmd_stop ;;
    status)  cmd_status ;;
    ctl)     load_env; N=${1:?node number}; shift; ctl "$N" "$@" ;;
    rpc)     load_env; N=${1:?node number}; shift; rpc "$N" "$@"; echo ;;
    *)       die "unknown command $CMD" ;;
esac
