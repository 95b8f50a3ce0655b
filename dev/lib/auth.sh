# shellcheck shell=bash disable=SC2034 # the *_V variables are read by dev/stack.sh
# Authentication of the local stack: AUTH=jwt|off for the three services, the signing keys and
# the internal secret in .stack/auth, and the dev identity provider (`devauth serve`).
#
# With AUTH=jwt, before the services start: `devauth keys .stack/auth` (a P-256 key, its kid and
# jwks.json; kept across restarts) and .stack/auth/internal-secret (`openssl rand -hex 32`, made
# once, 0600). orders and payments get AUTH=jwt and AUTH_INTERNAL_SECRET; the gateway also
# AUTH_JWKS (the file), AUTH_ISSUER and AUTH_AUDIENCE. `devauth serve` answers the frontend's
# dev sign-in (nginx proxies /auth/ to it) on DEVAUTH_PORT. With AUTH=off all three get AUTH=off
# and devauth does not run.

AUTH_DIR=$STACK/auth
AUTH_SECRET_FILE=$AUTH_DIR/internal-secret
AUTH_JWKS_FILE=$AUTH_DIR/jwks.json
AUTH_KEY_FILE=$AUTH_DIR/signing-key.pem
DEVAUTH_PORT=${DEVAUTH_PORT:-8084}
AUTH_ISSUER_V=${AUTH_ISSUER:-orders-payments-dev}
AUTH_AUDIENCE_V=${AUTH_AUDIENCE:-orders-payments}
STACK_AUTH=""  # jwt | off for this invocation, set by auth_choose
AUTH_READY=0   # 1 once auth_prepare has the key id and the secret (AUTH_KID_V, AUTH_SECRET_V)
AUTH_KID_V=""
AUTH_SECRET_V=""

# auth_choose DEFAULT — the stack's AUTH: the caller's own AUTH (captured as EXT_AUTH before
# anything could set it) wins, else DEFAULT (`up`: off, `test`: jwt, `scale`: what runs).
auth_choose() {
	local mode=${EXT_AUTH:-${1:-off}}
	mode=${mode,,}
	case $mode in
	jwt | off) ;;
	*) die "AUTH must be jwt or off (got '$mode')" ;;
	esac
	STACK_AUTH=$mode
	state_set AUTH "$mode"
}

auth_on() { [[ $STACK_AUTH == jwt ]]; }

# What a running service's authentication settings must equal for it to be kept: the mode and,
# with jwt, the issuer, audience and a digest of the secret (never the secret itself).
auth_fingerprint() {
	if auth_on; then
		printf 'jwt:%s:%s:%s' "$AUTH_ISSUER_V" "$AUTH_AUDIENCE_V" "$(printf '%s' "$AUTH_SECRET_V" | sha256sum | cut -c1-12)"
	else
		printf 'off'
	fi
}

# auth_prepare — with AUTH=jwt: the keys and the internal secret (both kept when present, so a
# restart, or the services restarted on the other broker by `test`, keep verifying the tokens
# already issued); then the AUTH lines of .stack/env. Needs the built devauth binary.
auth_prepare() {
	[[ -n $STACK_AUTH ]] || auth_choose "$(state_get AUTH || true)"
	if auth_on; then
		[[ -x $BIN_DIR/devauth ]] || die "$BIN_DIR/devauth not found (cargo build -p devauth; AUTH=jwt needs it)"
		mkdir -p "$AUTH_DIR"
		chmod 700 "$AUTH_DIR"
		"$BIN_DIR/devauth" keys "$AUTH_DIR" </dev/null >"$LOGS/devauth-keys.log" 2>&1 ||
			fail "devauth keys" "$LOGS/devauth-keys.log" "cannot create the signing keys in $AUTH_DIR"
		AUTH_KID_V=$(head -n1 "$AUTH_DIR/kid")
		if [[ ! -s $AUTH_SECRET_FILE ]]; then
			command -v openssl >/dev/null 2>&1 || die "openssl not installed (run: dev/stack.sh install)"
			(
				umask 077
				openssl rand -hex 32 >"$AUTH_SECRET_FILE.tmp"
			) && mv -f "$AUTH_SECRET_FILE.tmp" "$AUTH_SECRET_FILE"
			log "auth: internal secret created in $AUTH_SECRET_FILE"
		fi
		chmod 600 "$AUTH_SECRET_FILE"
		AUTH_SECRET_V=$(head -n1 "$AUTH_SECRET_FILE")
		((${#AUTH_SECRET_V} >= 32)) || die "$AUTH_SECRET_FILE holds fewer than 32 characters (remove it to make a new one)"
		log "auth: AUTH=jwt, signing key $AUTH_KID_V, issuer $AUTH_ISSUER_V, audience $AUTH_AUDIENCE_V"
	else
		log "auth: AUTH=off (no tokens; \`AUTH=jwt make up\` turns authentication on)"
	fi
	AUTH_READY=1
	auth_write_env
}

# auth_service_env NAME — the authentication lines of service NAME's environment.
auth_service_env() {
	if ! auth_on; then
		printf '%s\n' "AUTH=off"
		return 0
	fi
	printf '%s\n' "AUTH=jwt" "AUTH_INTERNAL_SECRET=$AUTH_SECRET_V"
	if [[ $(service_kind "$1") == gateway ]]; then
		printf '%s\n' "AUTH_JWKS=$AUTH_JWKS_FILE" "AUTH_ISSUER=$AUTH_ISSUER_V" "AUTH_AUDIENCE=$AUTH_AUDIENCE_V"
	fi
}

# auth_env_lines — the AUTH part of .stack/env; before auth_prepare (e.g. `infra` while the
# services run) the lines already there, which still describe the running services.
auth_env_lines() {
	if [[ $AUTH_READY != 1 ]]; then
		[[ ! -f $ENV_FILE ]] || grep -E "^export (AUTH|AUTH_[A-Z_]+|DEVAUTH_URL)=" "$ENV_FILE" || true
		return 0
	fi
	env_line AUTH "$STACK_AUTH"
	auth_on || return 0
	env_line AUTH_ISSUER "$AUTH_ISSUER_V"
	env_line AUTH_AUDIENCE "$AUTH_AUDIENCE_V"
	env_line AUTH_JWKS "$AUTH_JWKS_FILE"
	env_line AUTH_SIGNING_KEY "$AUTH_KEY_FILE"
	env_line AUTH_SIGNING_KID "$AUTH_KID_V"
	env_line AUTH_INTERNAL_SECRET "$AUTH_SECRET_V"
	env_line DEVAUTH_URL "http://127.0.0.1:$DEVAUTH_PORT"
}

# auth_write_env — replace the AUTH lines of an existing .stack/env (the rest stays as written).
auth_write_env() {
	[[ -f $ENV_FILE ]] || return 0
	{
		grep -v -E "^export (AUTH|AUTH_[A-Z_]+|DEVAUTH_URL)=" "$ENV_FILE" || true
		auth_env_lines
	} >"$ENV_FILE.tmp"
	chmod 600 "$ENV_FILE.tmp" # it holds the internal secret
	mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------- devauth serve

# Ours when its pid file says so and its command line names our key directory (any profile).
devauth_pid() { running_pid "$PIDS/devauth.pid" "$AUTH_DIR"; }

# devauth_up — with AUTH=jwt: `devauth serve` on DEVAUTH_PORT (restarted when its binary was
# rebuilt or the settings changed); with AUTH=off: stopped if it runs.
devauth_up() {
	if ! auth_on; then
		devauth_down
		return 0
	fi
	local pid bin=$BIN_DIR/devauth fresh=1 t
	if pid=$(devauth_pid); then
		fresh=0 # running before this command: a restart is not ours to stop in `test`
		if [[ $(state_get BIN_devauth) == "$bin" && ! $bin -nt $PIDS/devauth.pid &&
			$(state_get AUTH_devauth) == "$(auth_fingerprint)" ]]; then
			log "devauth already running (pid $pid, http://127.0.0.1:$DEVAUTH_PORT)"
			return 0
		fi
		log "devauth: binary or settings changed since it started: restarting"
		stop_pid devauth "$pid" 10
	fi
	port_in_use "$DEVAUTH_PORT" && die "devauth: port $DEVAUTH_PORT is in use by a process not started by dev/stack.sh (set DEVAUTH_PORT)"
	rotate_log devauth
	t=$(clock)
	nohup env AUTH_ISSUER="$AUTH_ISSUER_V" AUTH_AUDIENCE="$AUTH_AUDIENCE_V" RUST_LOG="${RUST_LOG:-info}" \
		"$bin" serve --host "$SERVICE_HOST" --port "$DEVAUTH_PORT" --dir "$AUTH_DIR" </dev/null >>"$LOGS/devauth.log" 2>&1 &
	echo $! >"$PIDS/devauth.pid"
	state_set BIN_devauth "$bin"
	state_set AUTH_devauth "$(auth_fingerprint)"
	if ((fresh)); then started devauth; fi
	wait_for devauth 20 "$(pid_of "$PIDS/devauth.pid")" "$LOGS/devauth.log" http_ok "http://127.0.0.1:$DEVAUTH_PORT/health"
	log "devauth ready in $(since "$t")s (pid $(pid_of "$PIDS/devauth.pid"), http://127.0.0.1:$DEVAUTH_PORT)"
}

devauth_down() {
	local pid
	pid=$(devauth_pid) || return 0
	stop_pid devauth "$pid" 10
	rm -f "$PIDS/devauth.pid"
}

devauth_status() {
	local pid
	if pid=$(devauth_pid); then
		status_line devauth running "$pid" "http://127.0.0.1:$DEVAUTH_PORT (/health $(http_status "http://127.0.0.1:$DEVAUTH_PORT/health"))"
	elif [[ $(state_get AUTH || true) == jwt ]]; then
		status_line devauth stopped - "-"
	fi
}
